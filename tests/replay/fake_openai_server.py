"""A small OpenAI-compatible server for replay tests: logs every request, answers with canned tokens.

``python fake_openai_server.py --port-file P --log L [--model NAME]`` binds 127.0.0.1 on a free
port, writes the port number to ``P`` (atomically, once listening) and serves until killed:

- ``GET /v1/models`` lists ``NAME``; ``GET /health`` answers ``ok``;
- ``POST /v1/chat/completions`` (and ``/v1/completions``) answers ``max_tokens`` words, as SSE
  chunks ending with ``data: [DONE]`` when ``stream`` is true, else as one JSON body.

Each request appends one JSON line to ``L`` (flushed before the answer is sent):
``arrival_s`` (``time.time()`` when the request line was read), ``path``, ``max_tokens``,
``stream``, ``messages`` (count), ``roles``, ``contents`` (each message's text) and ``prompt``
(the message contents joined in order, or the ``prompt`` field of a completion). Standard library only, so it runs under any Python.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: the JSONL log is the record
        return

    def _send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model", "owned_by": "test"}]})
        elif self.path.rstrip("/") == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})

    def do_POST(self):  # noqa: N802
        arrival = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        messages = body.get("messages") or []
        contents = [_content_text(m.get("content")) for m in messages]
        prompt = "".join(contents) if messages else str(body.get("prompt", ""))
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        n_out = int(max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else 16
        stream = bool(body.get("stream"))
        record = {
            "arrival_s": arrival,
            "path": path,
            "max_tokens": max_tokens,
            "stream": stream,
            "messages": len(messages),
            "roles": [m.get("role") for m in messages],
            "contents": contents,
            "prompt": prompt,
        }
        with self.server.lock:
            self.server.log.write(json.dumps(record) + "\n")
            self.server.log.flush()
        chat = path == "/v1/chat/completions"
        rid = f"cmpl-{id(record):x}"
        if not stream:
            text = " tok" * n_out
            choice = {"index": 0, "finish_reason": "length"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            self._send_json(200, {"id": rid, "object": "chat.completion" if chat else "text_completion", "model": self.server.model,
                                  "choices": [choice], "usage": {"completion_tokens": n_out}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i in range(n_out):
            delta = {"delta": {"content": " tok"}} if chat else {"text": " tok"}
            choice = {"index": 0, "finish_reason": "length" if i == n_out - 1 else None, **delta}
            chunk = {"id": rid, "object": obj, "created": int(arrival), "model": self.server.model, "choices": [choice]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class Server(ThreadingHTTPServer):
    """A threading HTTP server with a deep listen backlog.

    The standard library's backlog of 5 refused connections (ECONNREFUSED) when a replay client
    opened a burst of them while the machine was busy and the accept loop lagged.
    """

    request_queue_size = 256
    daemon_threads = True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--model", default="fake-model")
    args = ap.parse_args(argv)
    server = Server(("127.0.0.1", 0), Handler)
    server.model = args.model
    server.lock = threading.Lock()
    server.log = open(args.log, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's life
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
