"""Benchmark: the per-client fit (``pool_from_trace`` = ``fit_input`` + ``fit_partition`` +
``merge_parts``) on large synthetic Parquet traces, time and peak RSS.

The trace is the one of ``bench/scale.py`` (200 clients with Zipf-like volumes over 14 days,
diurnal, bursty; written chunk by chunk). Each size is fitted in a fresh subprocess under an
address-space limit (``prlimit --as``, default 6.5 GB) that reads the Parquet file, fits it in
``--partitions`` client partitions one after the other (the partitions a Ray cluster would run
as tasks; the same pool as one partition) and prints its wall time per step and its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). A size whose peak RSS, extrapolated linearly
from the previous size, is above ``--max-rss-mb`` is not started.

Usage::

    PYTHONPATH=. python bench/fit_scale.py [--rows 1000000,10000000,100000000] [--partitions 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import write_trace  # noqa: E402

from servegen_core.sources.fit import client_partitions, fit_input, fit_partition, merge_parts  # noqa: E402


def run(path: str, partitions: int) -> None:
    """Fit the trace at ``path``; print the steps' times, the clients and the peak RSS as JSON."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    trace = pl.read_parquet(path)
    out["read_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inp, df = fit_input(trace, name="scale", seed=0)
    del trace
    out["input_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = client_partitions(inp, df, partitions)
    del df
    fitted = []
    while parts:
        fitted.append(fit_partition(inp, parts.pop(0)))
    out["partitions_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pool = merge_parts(inp, fitted)
    out["merge_s"] = time.perf_counter() - t0
    out["clients"] = len(pool.client_ids)
    out["windows"] = pool.windows.height
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(path: Path, partitions: int, limit: int) -> dict[str, float] | None:
    cmd = [sys.executable, __file__, "--run", str(path), "--partitions", str(partitions)]
    if shutil.which("prlimit"):
        cmd = ["prlimit", f"--as={limit}", *cmd]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000,10000000,100000000")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--as-limit", type=int, default=6_500_000_000)
    ap.add_argument("--max-rss-mb", type=float, default=6000.0)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run(args.run, args.partitions)
        return
    print(f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} CPUs; "
          f"{args.partitions} client partitions, address space limit {args.as_limit / 1e9:.1f} GB\n")
    print("| rows | read s | fit_input s | partitions s | merge s | total s | peak RSS MB | s per client |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    previous: tuple[int, float] | None = None
    for rows in (int(r) for r in args.rows.split(",")):
        if previous is not None and previous[1] * rows / previous[0] > args.max_rss_mb:
            print(f"| {rows:,} | not run: {previous[1] * rows / previous[0]:,.0f} MB projected from {previous[0]:,} rows "
                  f"(> {args.max_rss_mb:,.0f} MB) | | | | | | |")
            continue
        path = args.dir / f"servegen-fitscale-{rows}.parquet"
        try:
            write_trace(path, rows, chunk=min(rows, 5_000_000), seed=0)
            r = measure(path, args.partitions, args.as_limit)
        finally:
            path.unlink(missing_ok=True)
        if r is None:
            print(f"| {rows:,} | failed under the limit | | | | | | |")
            continue
        total = r["read_s"] + r["input_s"] + r["partitions_s"] + r["merge_s"]
        print(f"| {rows:,} | {r['read_s']:.1f} | {r['input_s']:.1f} | {r['partitions_s']:.1f} | {r['merge_s']:.1f} | "
              f"{total:.1f} | {r['peak_rss_mb']:,.0f} | {r['partitions_s'] / r['clients']:.3f} |")
        previous = (rows, r["peak_rss_mb"])


if __name__ == "__main__":
    main()
