"""Benchmark: workload composition speed and memory, in memory and streamed to disk.

Two measurements, each in a fresh Python subprocess (interpreter start and imports excluded):

``compose``
    language/m-large, one hour from 20:00 of day 0 (``start_s=72000``), at a constant
    aggregate 100 req/s (about 360,000 requests), and the same hour at the observed rates
    (about 770,000 requests). The pool is loaded from the columnar cache first (not timed);
    then ``compose(spec, pool=pool)`` is run ``--repeat`` times and the median and best wall
    times are printed, split into planning (``plan_workload``) and generation. Peak memory
    above the loaded pool: the kernel's resident-set high-water mark is reset after loading
    (``/proc/self/clear_refs``), and ``VmHWM`` after the runs minus ``VmRSS`` before them is
    printed.
``stream``
    language/m-large over its 14 days at the observed rates scaled to about
    ``--stream-requests`` requests (default 10 million), generated with
    ``iter_compose(chunk_s=3600)`` and written with ``export_chunks`` to a partitioned
    Parquet folder (and, with ``--jsonl``, to a native JSON Lines file). Wall time, rows,
    bytes written and the subprocess's peak RSS (``ru_maxrss``, pool included) are printed.

Usage::

    python bench/generate.py [--repeat 7] [--stream-requests 1e7] [--jsonl] [--skip-stream]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Acceptance targets for language/m-large at 100 req/s for one hour (seconds, MB).
TARGETS = {"compose_s": 0.25, "rss_above_pool_mb": 300.0, "stream_rss_mb": 2048.0}

COMPOSE_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    return float("nan")

from servegen_core.generate.compose import ConstantRate, ServeGenSource, Span, WorkloadSpec, compose, plan_workload
from servegen_core.sources.pool import load_pool

data_dir, cache, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
pool = load_pool(data_dir, "language/m-large", cache_dir=cache)
specs = {
    "constant 100 req/s": WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(72000, 3600), rate=ConstantRate(100.0)),
    "observed rates": WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(72000, 3600)),
}
compose(specs["constant 100 req/s"], pool=pool)  # warm-up: first-call costs of numpy/polars
rss_pool = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
    reset = True
except OSError:
    reset = False
out = {"rss_pool_mb": rss_pool, "hwm_reset": reset, "runs": {}}
for name, spec in specs.items():
    plan_s, gen_s, total_s = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = plan_workload(spec, pool=pool)
        t1 = time.perf_counter()
        w = plan.compose()
        t2 = time.perf_counter()
        plan_s.append(t1 - t0); gen_s.append(t2 - t1); total_s.append(t2 - t0)
        rows = w.trace.height
        del w, plan
    out["runs"][name] = {
        "rows": rows,
        "total_median_s": statistics.median(total_s),
        "total_best_s": min(total_s),
        "plan_median_s": statistics.median(plan_s),
        "generate_median_s": statistics.median(gen_s),
        "all_s": [round(x, 4) for x in total_s],
    }
out["hwm_mb"] = status("VmHWM")
print(json.dumps(out))
"""

STREAM_CHILD = r"""
import json, sys, time
from pathlib import Path
from servegen_core.generate.compose import ObservedRate, ServeGenSource, Span, WorkloadSpec, iter_compose, plan_workload
from servegen_core.export.writer import export_chunks
from servegen_core.sources.pool import load_pool

data_dir, cache, target, out_path, fmt = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
t0 = time.perf_counter()
pool = load_pool(data_dir, "language/m-large", cache_dir=cache)
base = WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(0))
full = plan_workload(base, pool=pool).expected_requests
spec = WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(0), rate=ObservedRate(target / full))
t1 = time.perf_counter()
plan = plan_workload(spec, pool=pool)
t2 = time.perf_counter()
result = export_chunks(plan.iter_chunks(3600), out_path, fmt, spec=spec, note=None)
t3 = time.perf_counter()
p = Path(out_path)
size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
rows = result.rows if hasattr(result, "rows") else None
print(json.dumps({"load_s": t1 - t0, "plan_s": t2 - t1, "write_s": t3 - t2, "expected": plan.expected_requests,
                  "rows": rows, "bytes": size, "factor": target / full}))
"""


def run_child_rusage(code: str, *args: str) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; its JSON output and its peak RSS in MB (``ru_maxrss``)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        msg = f"benchmark child failed:\n{err}"
        raise RuntimeError(msg)
    return json.loads(out), usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    from servegen_core.paths import shared_data_dir
    from servegen_core.sources.pool import load_pool

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "servegen")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--stream-requests", type=float, default=1e7)
    parser.add_argument("--jsonl", action="store_true", help="also stream to native JSON Lines")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    import numpy as np
    import polars as pl

    print(f"python {platform.python_version()}, polars {pl.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cache = Path(tempfile.mkdtemp(prefix="servegen-bench-cache-"))
    results: dict = {}
    try:
        load_pool(args.data, "language/m-large", cache_dir=cache)  # write the columnar cache once
        comp, child_peak = run_child_rusage(COMPOSE_CHILD, str(args.data), str(cache), str(args.repeat))
        results["compose"] = comp
        above = comp["hwm_mb"] - comp["rss_pool_mb"]
        print(f"\ncompose, language/m-large 20:00-21:00 day 0; median (best) of {args.repeat} runs in one process")
        print(f"  RSS with the pool loaded: {comp['rss_pool_mb']:.0f} MB; peak above it during the runs: {above:.0f} MB"
              + ("" if comp["hwm_reset"] else " (peak counter could not be reset: includes loading)"))
        for name, r in comp["runs"].items():
            print(
                f"  {name:<20} {r['rows']:>9,} requests  {r['total_median_s']:.3f} s ({r['total_best_s']:.3f})"
                f"  = plan {r['plan_median_s']:.3f} + generate {r['generate_median_s']:.3f} s"
                f"  -> {r['rows'] / r['total_median_s'] / 1e6:.2f} M requests/s"
            )
        r100 = comp["runs"]["constant 100 req/s"]
        print(f"  targets (100 req/s): time {r100['total_median_s']:.3f} s <= {TARGETS['compose_s']} s: "
              f"{'met' if r100['total_median_s'] <= TARGETS['compose_s'] else 'MISSED'}; "
              f"memory {above:.0f} MB <= {TARGETS['rss_above_pool_mb']:.0f} MB: "
              f"{'met' if above <= TARGETS['rss_above_pool_mb'] else 'MISSED'}")

        if not args.skip_stream:
            fmts = [("parquet", "w.parquet")] + ([("jsonl", "w.jsonl")] if args.jsonl else [])
            results["stream"] = []
            for fmt, name in fmts:
                out_dir = Path(tempfile.mkdtemp(prefix="servegen-bench-out-"))
                try:
                    st, peak = run_child_rusage(STREAM_CHILD, str(args.data), str(cache), str(args.stream_requests), str(out_dir / name), fmt)
                finally:
                    shutil.rmtree(out_dir, ignore_errors=True)
                st.update(fmt=fmt, peak_rss_mb=peak)
                results["stream"].append(st)
                rows = st["rows"] if st["rows"] is not None else st["expected"]
                rate = rows / (st["plan_s"] + st["write_s"])
                print(f"\nstream to {fmt}: language/m-large, 14 days, observed rates x {st['factor']:.4f}")
                print(f"  {rows:,.0f} requests, {st['bytes'] / 1e6:,.0f} MB on disk; plan {st['plan_s']:.1f} s, "
                      f"generate+write {st['write_s']:.1f} s ({rate / 1e6:.2f} M requests/s); "
                      f"peak RSS {peak:.0f} MB (pool load {st['load_s']:.1f} s included in the process)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
