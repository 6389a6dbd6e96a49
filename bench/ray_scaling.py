"""Benchmark: the Ray engine's fit and generation with 1 and 2 local workers, beside the local
engine (same bytes: each run's pool digest and workload digest are printed and compared).

* fit: :func:`servegen_core.engines.ray.fit_pool` (client partitions as Ray tasks, twice the
  workers' CPUs) of the synthetic trace of ``bench/scale.py`` at ``--rows`` rows (200 clients,
  14 days), against :func:`servegen_core.sources.fit.pool_from_trace`;
* generation: :func:`servegen_core.engines.ray.iter_chunks` of the ``language/m-large`` pool,
  ``--hours`` hours from noon, 600 s chunks, written with ``write_parquet_parts``, against
  ``ComposePlan.iter_chunks``.

Each engine runs in a fresh subprocess (``ray.init(num_cpus=N)``, Ray start-up timed apart)
under an address-space limit (``prlimit --as``); the driver's peak RSS is from
``resource.getrusage`` (Ray's worker processes are not included).

Usage::

    PYTHONPATH=. python bench/ray_scaling.py [--rows 300000] [--hours 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import write_trace  # noqa: E402

from servegen_core.engines import ray as ray_engine  # noqa: E402
from servegen_core.export.writer import write_parquet_parts  # noqa: E402
from servegen_core.generate.compose import plan_workload  # noqa: E402
from servegen_core.sources.fit import pool_from_trace  # noqa: E402
from servegen_core.sources.pool import load_pool  # noqa: E402
from servegen_core.spec import ServeGenSource, Span, WorkloadSpec  # noqa: E402


def _digest_pool(pool) -> str:
    h = hashlib.sha256()
    for frame in (pool.windows, pool.gaps, pool.distributions, pool.length_windows, pool.arrival_models, pool.arrival_tables):
        if frame is not None:
            buf = io.BytesIO()
            frame.write_parquet(buf, statistics=False)
            h.update(buf.getvalue())
    return h.hexdigest()[:16]


def _digest_tree(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def run(engine: str, workers: int, trace_path: str, data: str, hours: float) -> None:
    out: dict[str, object] = {}
    if engine == "ray":
        t0 = time.perf_counter()
        ray_engine.connect(num_cpus=workers)
        out["start_s"] = time.perf_counter() - t0
    trace = pl.read_parquet(trace_path)
    t0 = time.perf_counter()
    pool = ray_engine.fit_pool(trace, seed=0) if engine == "ray" else pool_from_trace(trace, seed=0)
    out["fit_s"] = time.perf_counter() - t0
    out["fit_digest"] = _digest_pool(pool)
    out["clients"] = len(pool.client_ids)
    del trace, pool
    m_large = load_pool(Path(data) / "servegen", "language/m-large")
    spec = WorkloadSpec(source=ServeGenSource(data_dir="shared", model="language/m-large"),
                        span=Span(start_s=12 * 3600, duration_s=hours * 3600), seed=7)
    plan = plan_workload(spec, pool=m_large)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        target = Path(tmp) / "parts"
        t0 = time.perf_counter()
        chunks = ray_engine.iter_chunks(plan, 600.0) if engine == "ray" else plan.iter_chunks(600.0)
        result = write_parquet_parts(chunks, target, note=None)
        out["gen_s"] = time.perf_counter() - t0
        out["gen_rows"] = result.rows
        out["gen_digest"] = _digest_tree(target)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(engine: str, workers: int, args: argparse.Namespace, trace: Path) -> dict:
    cmd = [sys.executable, __file__, "--run", engine, "--workers", str(workers), "--trace", str(trace),
           "--data", str(args.data), "--hours", str(args.hours)]
    if shutil.which("prlimit") and engine == "local":  # Ray reserves large virtual areas: watched by RSS instead
        cmd = ["prlimit", f"--as={args.as_limit}", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"{engine} x{workers} failed: {proc.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--as-limit", type=int, default=6_500_000_000)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--trace", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run(args.run, args.workers, args.trace, str(args.data), args.hours)
        return
    print(f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; fit {args.rows:,} rows, generate {args.hours:g} h of m-large\n")
    trace = Path(tempfile.mkdtemp(dir="/tmp")) / "trace.parquet"
    try:
        write_trace(trace, args.rows, chunk=min(args.rows, 5_000_000), seed=0)
        rows = [("local", 1), ("ray", 1), ("ray", 2)]
        results = {key: measure(*key, args, trace) for key in rows}
    finally:
        shutil.rmtree(trace.parent)
    print("| engine | workers | Ray start s | fit s | s per client | generate s | rows | driver peak RSS MB | pool digest | workload digest |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for (engine, workers), r in results.items():
        print(f"| {engine} | {workers} | {r.get('start_s', 0.0):.1f} | {r['fit_s']:.1f} | {r['fit_s'] / r['clients']:.3f} | "
              f"{r['gen_s']:.1f} | {r['gen_rows']:,} | {r['peak_rss_mb']:,.0f} | {r['fit_digest']} | {r['gen_digest']} |")
    digests = {(r["fit_digest"], r["gen_digest"]) for r in results.values()}
    print(f"\nsame bytes on every engine: {len(digests) == 1}")


if __name__ == "__main__":
    main()
