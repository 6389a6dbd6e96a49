"""Benchmark: characterizing a huge Parquet trace in bounded memory (issue 21, item 1).

1. Writes a synthetic RequestTrace Parquet file of ``--rows`` rows (default 100,000,000) chunk
   by chunk (one row group of ``--chunk`` rows at a time, zstd), so writing is bounded too:
   200 clients with Zipf-like volumes over 14 days, a diurnal rate, bursty arrivals (requests
   come in bursts of geometric size, mean 8, with exponential 2 s gaps inside a burst), lognormal
   input and geometric output lengths; rows in time order (seeded: same ``--seed``, same file).
2. Measures, each in a fresh subprocess (time and that process's peak RSS from ``wait4``):

   * ``floor``: plain Polars lazy queries on the streaming engine computing the same
     statistics: requests and time bounds; requests per (client, 600 s window); requests per
     hour; histograms per (client, value) of input and output tokens; per (client, window)
     inter-arrival gap sums, one query per slice of whole windows of at most ``--slice-rows``
     requests (``diff`` needs order within a client and has no streaming node).
   * ``ours``: :meth:`LazyTrace.check` (every value validated, one pass),
     :func:`streaming.client_summary` (counts, sliced window CV, exact length percentiles)
     and :func:`streaming.hour_day_matrix`.

Usage::

    python bench/scale.py [--rows 100000000] [--dir /tmp] [--keep] [--only floor,ours]

The file is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

SPAN_S = 14 * 86400
CLIENTS = 200
WINDOW_S = 600


def write_trace(path: Path, rows: int, *, chunk: int, seed: int) -> None:
    """Write the synthetic trace chunk by chunk: chunk ``i`` covers the ``i``-th slice of the span."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, CLIENTS + 1) ** 1.1
    weights /= weights.sum()
    ids = np.array([str(i) for i in range(CLIENTS)], dtype=object)
    n_chunks = max(1, -(-rows // chunk))
    schema = pa.schema(
        [("timestamp_s", pa.float64()), ("client_id", pa.string()), ("input_tokens", pa.int64()), ("output_tokens", pa.int64())]
    )
    # Expected rate per second of the span ~ 1 + 0.8 sin(2 pi (t / 86400 - 0.25)): chunk sizes follow it.
    edges = np.linspace(0.0, SPAN_S, n_chunks + 1)
    mass = np.diff(edges - 0.8 * 86400 / (2 * np.pi) * np.cos(2 * np.pi * (edges / 86400 - 0.25)))
    sizes = np.floor(mass / mass.sum() * rows).astype(np.int64)
    sizes[-1] += rows - sizes.sum()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for i in range(n_chunks):
            n = int(sizes[i])
            lo, hi = edges[i], edges[i + 1]
            n_bursts = max(1, n // 8)
            # Burst starts with the diurnal density inside the chunk (rejection sampling).
            starts = np.empty(0)
            while starts.size < n_bursts:
                t = rng.uniform(lo, hi, size=2 * n_bursts)
                keep = rng.uniform(size=t.size) * 1.8 < 1 + 0.8 * np.sin(2 * np.pi * (t / 86400 - 0.25))
                starts = np.concatenate((starts, t[keep]))
            starts = starts[:n_bursts]
            size = rng.geometric(1 / 8, size=n_bursts)
            size = np.maximum(1, np.floor(size * n / size.sum())).astype(np.int64)
            size[-1] = max(1, size[-1] + n - size.sum())
            while size.sum() > n:  # rounding: trim the largest bursts
                j = int(np.argmax(size))
                size[j] -= min(size[j] - 1, size.sum() - n)
            burst = np.repeat(np.arange(n_bursts), size)[:n]
            first = np.concatenate(([0], np.cumsum(size)[:-1]))[burst]
            gaps = rng.exponential(2.0, size=n)
            within = np.cumsum(gaps) - np.cumsum(gaps)[first] + gaps[first]
            ts = np.clip(starts[burst] + within - gaps[first], lo, np.nextafter(hi, lo))
            client = rng.choice(CLIENTS, size=n_bursts, p=weights)[burst]
            order = np.argsort(ts, kind="stable")
            table = pa.table(
                {
                    "timestamp_s": ts[order],
                    "client_id": pa.array(ids[client[order]], type=pa.string()),
                    "input_tokens": rng.lognormal(6.5, 1.0, size=n).astype(np.int64) + 1,
                    "output_tokens": rng.geometric(1 / 250, size=n).astype(np.int64),
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=chunk)


def floor(path: str, slice_rows: int) -> None:
    """The plain Polars streaming queries (see the module docstring)."""
    lf = pl.scan_parquet(path)
    t = pl.col("timestamp_s")
    go = {"engine": "streaming"}
    lf.select(pl.len(), t.min().alias("lo"), t.max().alias("hi")).collect(**go)
    win = (t / WINDOW_S).floor().cast(pl.Int64)
    per = lf.group_by("client_id", win.alias("w")).agg(pl.len()).collect(**go)
    lf.group_by((t / 3600).floor().cast(pl.Int64).alias("h")).agg(pl.len()).collect(**go)
    for f in ("input_tokens", "output_tokens"):
        lf.group_by("client_id", f).agg(pl.len()).collect(**go)
    counts = per.group_by("w").agg(pl.col("len").sum()).sort("w")
    ws, ns = counts["w"].to_numpy(), counts["len"].to_numpy()
    a, rows = int(ws[0]), 0
    bounds = []
    for w, n in zip(ws.tolist(), ns.tolist()):
        if rows and rows + n > slice_rows:
            bounds.append((a, prev))
            a, rows = w, 0
        rows += n
        prev = w
    bounds.append((a, prev))
    gaps = t.sort().diff().drop_nulls()
    for a, b in bounds:
        q = lf.filter((t >= (a - 1) * WINDOW_S) & (t < (b + 2) * WINDOW_S)).with_columns(win.alias("w")).filter(pl.col("w").is_between(a, b))
        q.group_by("client_id", "w").agg(pl.len(), gaps.sum(), (gaps * gaps).sum().alias("s2")).collect(**go)


def ours(path: str, slice_rows: int) -> None:
    from servegen_core.characterize import streaming
    from servegen_core.sources.lazy import scan_trace

    trace = scan_trace(path, preset="servegen")
    trace.check()
    streaming.client_summary(trace, slice_rows=slice_rows)
    streaming.hour_day_matrix(trace)


def measure(kind: str, path: Path, slice_rows: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ``kind`` run in a fresh subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--run", kind, "--file", str(path), "--slice-rows", str(slice_rows)])
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"{kind} failed with status {status}"
        raise RuntimeError(msg)
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--chunk", type=int, default=5_000_000)
    ap.add_argument("--slice-rows", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="floor,ours")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        {"floor": floor, "ours": ours}[args.run](args.file, args.slice_rows)
        return
    path = args.dir / f"servegen-scale-{args.rows}.parquet"
    try:
        if not path.exists():
            start = time.perf_counter()
            write_trace(path, args.rows, chunk=args.chunk, seed=args.seed)
            print(f"wrote {args.rows:,} rows to {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - start:.1f} s")
        print(f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} CPUs; slice {args.slice_rows:,} rows")
        results = {}
        for kind in args.only.split(","):
            results[kind] = measure(kind, path, args.slice_rows)
            sec, rss = results[kind]
            print(f"{kind:6s} {sec:8.1f} s  {rss:8.0f} MB peak RSS  ({sec / args.rows * 1e9:,.0f} s per 1e9 rows)")
        if {"floor", "ours"} <= results.keys():
            print(f"ours / floor: {results['ours'][0] / results['floor'][0]:.2f}x time")
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
