"""Hostile corpus, issue 22 item 4: uploads are bounded per session (Streamlit's in-memory files
plus the session's upload folder), and a closed session's uploads are freed promptly.

The server test starts ``streamlit run dashboard/app.py``, opens a session over its websocket
(as a browser does) and PUTs 8 x 45 MB to file ids no widget uses, under
``SERVEGEN_MAX_UPLOAD_MB=50`` (each file is under the per-file limit).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
import websockets
from _dash import APP
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

import uploads

MB = 1024 * 1024


@pytest.fixture
def empty_folder_registry(monkeypatch):
    """A fresh process-wide registry of upload folders for this test.

    Every AppTest runs under the one session id ``"test session id"``: a dashboard test that
    uploaded a file earlier in this process left that id's folder in the registry, and the reaper
    (rightly) frees it too, since no AppTest session counts as connected here."""
    monkeypatch.setattr(uploads, "_SESSION_FOLDERS", {})


@pytest.mark.usefixtures("empty_folder_registry")
def test_the_reaper_frees_a_closed_sessions_memory_and_folder(tmp_path):
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    add = uploads.capped_add_file(manager, manager.add_file)
    active = {"open", "closed"}
    for sid in ("open", "closed"):
        folder = tmp_path / sid
        folder.mkdir()
        (folder / "t.csv").write_bytes(b"x" * 1000)
        uploads.register_session_folder(sid, folder)
        add(sid, UploadedFileRec(file_id="f1", name="a.csv", type="text/csv", data=b"y" * 500))
    assert uploads.session_held_bytes("closed", manager) == 1500
    reaper = uploads.SessionReaper(manager, lambda sid: sid in active, grace_s=120, period_s=30)
    assert reaper.sweep(now=0) == []
    active.discard("closed")
    assert reaper.sweep(now=10) == []  # within the reconnect grace: kept
    assert (tmp_path / "closed").is_dir() and manager.file_storage.get("closed")
    assert reaper.sweep(now=140) == ["closed"]
    assert not (tmp_path / "closed").exists() and "closed" not in manager.file_storage
    assert uploads.session_folder("closed") is None
    assert (tmp_path / "open").is_dir() and manager.file_storage["open"]  # the open session keeps its files


@pytest.mark.usefixtures("empty_folder_registry")
def test_the_cap_counts_memory_and_folder_and_replacing_a_file_id(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVEGEN_MAX_SESSION_UPLOAD_MB", "3")
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    add = uploads.capped_add_file(manager, manager.add_file)
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "saved.csv").write_bytes(b"x" * MB)
    uploads.register_session_folder("s", folder)
    add("s", UploadedFileRec(file_id="a", name="a", type="", data=b"y" * MB))
    add("s", UploadedFileRec(file_id="a", name="a", type="", data=b"y" * (2 * MB)))  # replaces its own id: 1 + 2 MB
    with pytest.raises(Exception) as info:
        add("s", UploadedFileRec(file_id="b", name="b", type="", data=b"z"))
    assert info.value.status_code == 413 and "SERVEGEN_MAX_SESSION_UPLOAD_MB" in info.value.detail
    add("other", UploadedFileRec(file_id="b", name="b", type="", data=b"z" * (2 * MB)))  # per session, not per server


# -- a real server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def open_session(port: int) -> tuple[object, str]:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None)
    back = BackMsg()
    back.rerun_script.query_string = ""
    await ws.send(back.SerializeToString())
    session_id = None
    while True:  # wait for the first script run to finish: it installs the session upload cap
        msg = ForwardMsg()
        msg.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
        if msg.WhichOneof("type") == "new_session":
            session_id = msg.new_session.initialize.session_id
        if msg.WhichOneof("type") == "script_finished" and session_id is not None:
            return ws, session_id


def upload_bytes(port: int) -> int:
    text = requests.get(f"http://127.0.0.1:{port}/_stcore/metrics", timeout=30).text
    found = re.findall(r'cache_memory_bytes\{[^}]*UploadedFileManager[^}]*\} (\d+)', text)
    return sum(int(x) for x in found)


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "SERVEGEN_MAX_UPLOAD_MB": "50", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true",
         "--server.enableXsrfProtection", "false", "--server.maxUploadSize", "50", "--server.disconnectedSessionTTL", "2",
         "--browser.gatherUsageStats", "false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_8_puts_of_45_mb_are_refused_past_the_session_cap_and_freed_when_it_closes(server):
    port = server

    async def scenario() -> tuple[list[int], int, int]:
        ws, sid = await open_session(port)
        codes = []
        for i in range(8):
            body = os.urandom(45 * MB)
            r = await asyncio.to_thread(
                requests.put, f"http://127.0.0.1:{port}/_stcore/upload_file/{sid}/unused-{i}",
                files={"file": (f"f{i}.csv", body, "text/csv")}, timeout=120,
            )
            codes.append(r.status_code)
        held = upload_bytes(port)
        await ws.close()
        start = time.monotonic()
        while upload_bytes(port) and time.monotonic() - start < 60:
            await asyncio.sleep(0.5)
        return codes, held, time.monotonic() - start

    codes, held, freed_after = asyncio.run(scenario())
    # cap = 2 x 50 MB: two 45 MB files fit, the other six are refused with 413
    assert codes == [204, 204] + [413] * 6, codes
    assert held == 2 * 45 * MB, held
    assert upload_bytes(port) == 0 and freed_after < 30, freed_after  # TTL 2 s + a reaper pass
    assert requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=10).ok  # the server still answers
