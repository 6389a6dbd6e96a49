"""Writing outputs next to things that are not regular files, and after a killed run: --overwrite
replaces a regular file only (never a folder, device, FIFO or a link to one), and temp files of a
killed run are recognisable and removed by the next write into the folder."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from _cli import error_line, run
from servegen_core.errors import ExportError
from servegen_core.export.writer import export_trace
from servegen_core.paths import PROJECT_DIR, clean_stale_temps, replace_problem, temp_prefix, write_atomic
from servegen_core.sources.traces import load_trace


@pytest.fixture
def spec_path(tmp_path: Path, servegen_dir: Path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-mid"},
                "span": {"start_s": 43200, "duration_s": 1200},
                "seed": 1,
            }
        )
    )
    return path


@pytest.fixture
def azure(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace.head(2000)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- #
# --overwrite on things that are not regular files
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fmt", ["mooncake", "parquet"])
def test_overwrite_refuses_a_folder_and_keeps_it(capsys, tmp_path, spec_path, fmt):
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    extra = ("--chunk-s", "600") if fmt == "parquet" else ()
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", fmt, "-o", target, "--overwrite", *extra)
    assert code == 2 and "is a folder" in error_line(err) and str(target) in error_line(err)
    assert (target / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "spec.json"]


def test_overwrite_replaces_an_own_parquet_parts_folder(capsys, tmp_path, spec_path):
    target = tmp_path / "parts"
    argv = ("generate", "--spec", spec_path, "-f", "parquet", "-o", target, "--chunk-s", "600", "-q")
    assert run(capsys, *argv)[0] == 0
    first = pl.read_parquet(target / "*.parquet")
    code, _, err = run(capsys, *argv, "--overwrite", "--seed", "2")
    assert code == 0, err
    second = pl.read_parquet(target / "*.parquet")
    assert second.height > 0 and not second.equals(first)
    # ... but a parquet *file* export never replaces that folder
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "parquet", "-o", target, "--overwrite")
    assert code == 2 and "is a folder" in error_line(err)
    assert pl.read_parquet(target / "*.parquet").equals(second)


def test_overwrite_refuses_a_fifo(capsys, tmp_path, spec_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "jsonl", "-o", fifo, "--overwrite")
    assert code == 2 and "FIFO" in error_line(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_overwrite_refuses_links_to_folders_and_devices_but_replaces_a_link_to_a_file(capsys, tmp_path, spec_path):
    folder = tmp_path / "real_folder"
    folder.mkdir()
    (folder / "x").write_text("keep")
    to_dir = tmp_path / "to_dir.csv"
    to_dir.symlink_to(folder)
    to_dev = tmp_path / "to_dev.csv"
    to_dev.symlink_to(os.devnull)
    for link, words in ((to_dir, "symbolic link to a folder"), (to_dev, "symbolic link to a character device")):
        code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", link, "--overwrite")
        assert code == 2 and words in error_line(err)
        assert link.is_symlink()
    assert (folder / "x").read_text() == "keep"
    original = tmp_path / "original.csv"
    original.write_text("old\n")
    to_file = tmp_path / "to_file.csv"
    to_file.symlink_to(original)
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", to_file, "--overwrite", "-q")
    assert code == 0, err
    assert not to_file.is_symlink() and to_file.read_text().startswith("timestamp_s,")
    assert original.read_text() == "old\n"


def test_devices_and_folders_are_never_replaceable():
    assert "character device" in replace_problem(os.devnull)
    assert "folder" in replace_problem(PROJECT_DIR)
    assert "folder" in replace_problem(PROJECT_DIR, parts_folder_ok=True)  # not a parts folder


def test_sidecar_that_is_a_folder_is_refused(tmp_path, azure):
    target = tmp_path / "w.jsonl"
    sidecar = tmp_path / "w.jsonl.spec.json"
    sidecar.mkdir()
    (sidecar / "inside").write_text("keep")
    for spec in ({"seed": 1}, None):
        with pytest.raises(ExportError, match="is a folder"):
            export_trace(azure, target, "mooncake", spec=spec, overwrite=True, note=None)
        with pytest.raises(ExportError, match="is a folder"):
            export_trace(azure, tmp_path / "w.jsonl", "parquet", spec=spec, overwrite=True, note=None)
    assert (sidecar / "inside").read_text() == "keep" and not target.exists()


def test_spec_template_and_write_atomic_refuse_a_folder(capsys, tmp_path):
    folder = tmp_path / "spec.json"
    folder.mkdir()
    code, _, err = run(capsys, "spec-template", "-o", folder, "--overwrite")
    assert code == 2 and "is a folder" in error_line(err)
    with pytest.raises(ExportError, match="FIFO"):
        os.mkfifo(tmp_path / "f")
        write_atomic(tmp_path / "f", "x")
    assert folder.is_dir() and stat.S_ISFIFO(os.lstat(tmp_path / "f").st_mode)


# --------------------------------------------------------------------------- #
# Temp files of killed runs
# --------------------------------------------------------------------------- #


def test_stale_temps_are_removed_and_live_or_foreign_ones_kept(tmp_path, azure):
    dead = _dead_pid()
    stale_file = tmp_path / f"{temp_prefix(tmp_path / 'w.jsonl', pid=dead)}abc12345.tmp"
    stale_file.write_text("partial")
    stale_dir = tmp_path / f"{temp_prefix(tmp_path / 'w.parquet', pid=dead)}zz_99xyz.tmp"
    stale_dir.mkdir()
    (stale_dir / "part-00000.parquet").write_bytes(b"partial")
    (stale_dir / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "outside").write_text("not followed")
    live = tmp_path / f"{temp_prefix(tmp_path / 'w.jsonl')}live0001.tmp"
    live.write_text("in progress")
    old_live = tmp_path / f"{temp_prefix(tmp_path / 'x.csv')}old00001.tmp"
    old_live.write_text("pid reused?")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_live, (two_days_ago, two_days_ago))
    foreign = tmp_path / ".w.jsonl.something.tmp"
    foreign.write_text("not ours")

    export_trace(azure, tmp_path / "w.jsonl", "mooncake", note=None)
    left = {p.name for p in tmp_path.iterdir()}
    assert stale_file.name not in left and stale_dir.name not in left and old_live.name not in left
    assert {live.name, foreign.name, "outside", "w.jsonl"} <= left
    assert (tmp_path / "outside").read_text() == "not followed"
    assert clean_stale_temps(tmp_path) == []


def test_temp_of_a_killed_generate_is_named_and_cleaned_by_the_next_run(tmp_path, servegen_dir):
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
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    cmd = [sys.executable, "-m", "servegen_core", "generate", "--spec", str(spec), "-f", "mooncake", "-o", str(out),
           "--chunk-s", "600", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        temps: list[Path] = []
        while time.time() < deadline and not temps:
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(f".w.jsonl.servegen-tmp-{proc.pid}-")]
            time.sleep(0.05)
        assert temps, "the run never created its temp file"
        while temps[0].stat().st_size == 0 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert temps[0].exists() and not out.exists()  # what a killed run leaves: a named temp, no output
    short = tmp_path / "short.json"
    short.write_text(spec.read_text().replace('"duration_s": 86400', '"duration_s": 600'))
    rerun = subprocess.run([*cmd[:4], "--spec", str(short), *cmd[6:]], env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert not temps[0].exists() and out.exists()
    assert not [p for p in tmp_path.iterdir() if "servegen-tmp" in p.name]
