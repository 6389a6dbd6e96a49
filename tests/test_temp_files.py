"""Temp files of atomic writes (issue 22, item 5): only names this program makes are ever
cleaned, and SIGTERM during a write removes the temp file as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from servegen_core.paths import (
    PROJECT_DIR,
    TEMP_SUFFIX,
    Terminated,
    clean_stale_temps,
    is_temp_name,
    raise_on_sigterm,
    temp_prefix,
    write_atomic,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_names_made_by_this_program_are_recognised(tmp_path):
    fd, name = tempfile.mkstemp(dir=tmp_path, prefix=temp_prefix(tmp_path / "w.jsonl"), suffix=TEMP_SUFFIX)
    os.close(fd)
    assert is_temp_name(Path(name).name)
    folder = tempfile.mkdtemp(dir=tmp_path, prefix=temp_prefix(tmp_path / "w.parquet", pid=12345), suffix=TEMP_SUFFIX)
    assert is_temp_name(Path(folder).name)
    # The tag binds the name to the target and the pid: renaming either breaks it.
    made = Path(name).name
    assert not is_temp_name(made.replace(".w.jsonl.", ".v.jsonl.", 1))
    assert not is_temp_name(made.replace(f"-{os.getpid()}-", f"-{os.getpid() + 1}-", 1))


@pytest.mark.parametrize(
    "name",
    [
        ".X.servegen-tmp-999999-abcdefgh.tmp",  # the file: our old format, no tag
        ".X.servegen-tmp-999999-....tmp",
        ".X.servegen-tmp-999999-0badf00d-abcdefgh.tmp",  # a tag that does not match
        ".w.jsonl.servegen-tmp-999999-abc12345.tmp",
    ],
)
def test_a_user_file_named_like_a_temp_file_survives_the_next_write(tmp_path, name):
    user = tmp_path / name
    user.write_text("my notes")
    _age(user, 3 * 86400)  # old, and pid 999999 is not running
    write_atomic(tmp_path / "w.jsonl", "data\n")
    assert user.read_text() == "my notes"
    assert clean_stale_temps(tmp_path, max_age_s=0) == []


def test_a_stale_temp_of_a_dead_process_is_removed_and_a_live_one_kept(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / (temp_prefix(tmp_path / "w.jsonl", pid=dead) + "abc12345" + TEMP_SUFFIX)
    stale.write_text("partial")
    stale_dir = tmp_path / (temp_prefix(tmp_path / "w.parquet", pid=dead) + "zz_99xyz" + TEMP_SUFFIX)
    stale_dir.mkdir()
    (stale_dir / "part-00000.parquet").write_bytes(b"partial")
    live = tmp_path / (temp_prefix(tmp_path / "w.jsonl") + "live0001" + TEMP_SUFFIX)
    live.write_text("in progress")
    old_live = tmp_path / (temp_prefix(tmp_path / "x.csv") + "old00001" + TEMP_SUFFIX)
    old_live.write_text("pid reused?")
    _age(old_live, 2 * 86400)
    write_atomic(tmp_path / "w.jsonl", "data\n")
    left = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in left and stale_dir.name not in left and old_live.name not in left
    assert {live.name, "w.jsonl"} <= left


def test_sigterm_raises_terminated_once_installed():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert raise_on_sigterm() is True
        assert raise_on_sigterm() is True  # idempotent
        with pytest.raises(Terminated) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
        assert isinstance(info.value, KeyboardInterrupt) and info.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_host_handler_is_kept():
    previous = signal.getsignal(signal.SIGTERM)

    def host(_signum, _frame):
        return None

    try:
        signal.signal(signal.SIGTERM, host)
        assert raise_on_sigterm() is False
        assert signal.getsignal(signal.SIGTERM) is host
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_during_generate_removes_its_temp_file(tmp_path, servegen_dir):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
                "span": {"start_s": 0, "duration_s": 86400},
                "seed": 1,
            }
        )
    )
    out = tmp_path / "w.jsonl"
    # The command line itself: main() installs the SIGTERM handler first.
    entry = "import sys; from servegen_core.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    cmd = [sys.executable, "-c", entry, "generate", "--spec", str(spec), "-f", "mooncake", "-o", str(out), "--chunk-s", "600", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        temps: list[Path] = []
        while time.time() < deadline and not temps:
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(f".w.jsonl.servegen-tmp-{proc.pid}-")]
            time.sleep(0.05)
        assert temps, "the run never created its temp file"
        assert is_temp_name(temps[0].name)
        while temps[0].exists() and temps[0].stat().st_size == 0 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr  # 128 + SIGTERM, after the Ctrl-C cleanup path
    assert "servegen: terminated" in stderr
    assert not temps[0].exists() and not out.exists()
    assert not [p for p in tmp_path.iterdir() if "servegen-tmp" in p.name]
