"""Benchmark: peak memory of loading a ~1 GB CSV trace and of streaming a large workload to Parquet.

1. **Load.** A CSV in the Azure LLM inference trace's layout (``TIMESTAMP`` wall clock,
   ``ContextTokens``, ``GeneratedTokens``) is made in the temp folder (never in the
   repository) from the shared Azure conversation trace, repeated with its timestamps shifted
   by the trace's span each time, until the file reaches ``--csv-mb`` MB (default 1024). A
   fresh Python subprocess loads it with :func:`servegen_core.sources.traces.load_trace`; its peak RSS
   (``ru_maxrss``, from ``os.wait4``) and wall time are printed. The file is deleted at the end
   (also on an error or Ctrl-C).
2. **Generate.** A fresh subprocess runs ``servegen generate`` for a constant ``--rps``
   (default 1e5) over ``--duration-s`` (default 3600) of ``language/m-large`` to a partitioned
   Parquet folder in the temp folder (``--chunk-s``, default 600), with ``--max-requests``
   raised to fit. Its peak RSS, wall time, rows and bytes written are printed; the output is
   deleted.

Each child is watched: above ``--kill-gb`` GB of RSS (default 8) it is killed, so that the
benchmark cannot take a shared machine down; the table then says "killed".

Usage::

    python bench/hardening.py [--csv-mb 1024] [--unsorted] [--rps 1e5] [--duration-s 3600]
                              [--chunk-s 600] [--skip-load] [--skip-generate] [--kill-gb 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from servegen_core.paths import shared_data_dir  # noqa: E402

LOAD_CHILD = r"""
import json, sys, time
from servegen_core.sources.traces import load_trace
t0 = time.perf_counter()
loaded = load_trace(sys.argv[1])
t1 = time.perf_counter()
print(json.dumps({"rows": loaded.trace.height, "seconds": t1 - t0,
                  "span_s": float(loaded.trace["timestamp_s"].max())}))
"""


def make_csv(path: Path, target_mb: int, *, unsorted: bool = False) -> tuple[int, int]:
    """Write the repeated Azure trace to ``path`` until it has ``target_mb`` MB; (rows, bytes).

    With ``unsorted`` each repetition is shifted back instead of forward, so the file runs
    backwards in time between repetitions (the loader must sort it)."""
    src = pl.read_csv(shared_data_dir() / "traces" / "AzureLLMInferenceTrace_conv.csv")
    ts = src["TIMESTAMP"].str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns")
    span = ts.max() - ts.min() + (ts[1] - ts[0])
    base = src.with_columns(ts.alias("TIMESTAMP"))
    rows = 0
    target = target_mb * 2**20
    with path.open("wb") as fh:
        fh.write(b"TIMESTAMP,ContextTokens,GeneratedTokens\n")
        k = 0
        while fh.tell() < target:
            block = pl.concat(
                [base.with_columns(pl.col("TIMESTAMP") + span * ((-1 if unsorted else 1) * (k + j))) for j in range(50)]
            ).with_columns(pl.col("TIMESTAMP").dt.strftime("%Y-%m-%d %H:%M:%S%.f"))
            block.write_csv(fh, include_header=False)
            rows += block.height
            k += 50
    return rows, path.stat().st_size


def run_child(argv: list[str], *, kill_gb: float) -> dict:
    """Run ``argv`` with the project on PYTHONPATH; watch RSS; return its output, peak RSS and wall time."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = threading.Event()
    done = threading.Event()

    def watch() -> None:  # never reaps the child (os.wait4 below does)
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                rss_kb = next(int(ln.split()[1]) for ln in status.read_text().splitlines() if ln.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError):
                rss_kb = 0
            if rss_kb > kill_gb * 2**20:
                killed.set()
                proc.send_signal(signal.SIGKILL)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    watcher.join()
    return {
        "returncode": proc.returncode,
        "killed": killed.is_set(),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "wall_s": time.perf_counter() - t0,
        "stdout": out,
        "stderr": err,
    }


def bench_load(work: Path, csv_mb: int, kill_gb: float, *, unsorted: bool = False) -> None:
    path = work / "big_azure.csv"
    t0 = time.perf_counter()
    rows, size = make_csv(path, csv_mb, unsorted=unsorted)
    print(f"made {path} ({size / 2**20:,.0f} MB, {rows:,} rows) in {time.perf_counter() - t0:.0f} s")
    try:
        r = run_child([sys.executable, "-c", LOAD_CHILD, str(path)], kill_gb=kill_gb)
    finally:
        path.unlink(missing_ok=True)
    if r["returncode"] != 0:
        print(f"load failed (exit {r['returncode']}{', killed above the RSS limit' if r['killed'] else ''}): "
              f"{r['stderr'].strip().splitlines()[-1:]}")
        print(f"peak RSS {r['peak_rss_mb']:,.0f} MB")
        return
    got = json.loads(r["stdout"])
    print()
    print("| file | rows | load (s) | wall incl. start (s) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {size / 2**20:,.0f} MB CSV (Azure layout{', unsorted' if unsorted else ''}) | {got['rows']:,} | {got['seconds']:.1f} | "
          f"{r['wall_s']:.1f} | {r['peak_rss_mb']:,.0f} |")
    print()


def bench_generate(work: Path, rps: float, duration_s: float, chunk_s: float, kill_gb: float) -> None:
    spec = {
        "schema_version": 1,
        "source": {"kind": "servegen", "data_dir": str(shared_data_dir() / "servegen"), "model": "language/m-large"},
        "span": {"start_s": 72000, "duration_s": duration_s},
        "rate": {"kind": "constant", "rps": rps},
        "missing_lengths": "pooled",
        "seed": 0,
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = work / "big_workload.parquet"
    expected = rps * duration_s
    argv = [sys.executable, "-m", "servegen_core", "generate", "--spec", str(spec_path), "-f", "parquet",
            "-o", str(out), "--chunk-s", str(chunk_s), "--max-requests", str(int(expected * 1.1) + 1000), "-q"]
    try:
        r = run_child(argv, kill_gb=kill_gb)
        written = sum(p.stat().st_size for p in out.glob("*.parquet")) if out.is_dir() else 0
        rows = pl.scan_parquet(out / "*.parquet").select(pl.len()).collect().item() if written else 0
    finally:
        shutil.rmtree(out, ignore_errors=True)
        spec_path.unlink(missing_ok=True)
    status = "ok" if r["returncode"] == 0 else ("killed" if r["killed"] else f"exit {r['returncode']}")
    print("| workload | chunk (s) | status | rows | Parquet (MB) | wall (s) | peak RSS (MB) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    print(f"| m-large, {rps:g} req/s x {duration_s:g} s | {chunk_s:g} | {status} | {rows:,} | "
          f"{written / 2**20:,.0f} | {r['wall_s']:.0f} | {r['peak_rss_mb']:,.0f} |")
    if r["returncode"] != 0 and not r["killed"]:
        print(r["stderr"].strip().splitlines()[-1:] if r["stderr"].strip() else "")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv-mb", type=int, default=1024)
    ap.add_argument("--rps", type=float, default=1e5)
    ap.add_argument("--duration-s", type=float, default=3600)
    ap.add_argument("--chunk-s", type=float, default=600)
    ap.add_argument("--kill-gb", type=float, default=8.0)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--unsorted", action="store_true", help="make the CSV run backwards between repetitions")
    ap.add_argument("--skip-generate", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Polars {pl.__version__}); date {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory(prefix="servegen-hardening-") as tmp:
        work = Path(tmp)
        if not args.skip_load:
            bench_load(work, args.csv_mb, args.kill_gb, unsorted=args.unsorted)
        if not args.skip_generate:
            bench_generate(work, args.rps, args.duration_s, args.chunk_s, args.kill_gb)


if __name__ == "__main__":
    main()
