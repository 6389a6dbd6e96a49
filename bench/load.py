"""Benchmark: ClientPool loading time and peak memory for each ServeGen model.

For every model, each run starts fresh Python subprocesses:

* ``cold``: an empty columnar cache folder, so the loader parses the CSV/JSON files and writes
  the Parquet cache (the first load a user sees);
* ``warm``: the cache written by the cold run is present (every later load).

Inside the subprocess, ``import`` time (``servegen_core.sources.pool`` with Polars and NumPy) and
``load_pool`` time are measured separately with ``time.perf_counter``; interpreter start is
excluded. The CPU time of the load (``time.process_time``, all threads) is printed too: on a
shared machine it shows the cost without the waiting for a core. Peak RSS is the subprocess's ``ru_maxrss`` from ``os.wait4``. Each measurement is
repeated ``--repeat`` times (default 3) and the median is printed. The source files are in the
OS page cache after the first run, so "cold" means "no columnar cache", not "cold disk".

Usage::

    python bench/load.py [--data DIR] [--models language/m-large ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from servegen_core.sources.pool import load_pool
t1 = time.perf_counter()
c1 = time.process_time()
pool = load_pool(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({
    "import_s": t1 - t0,
    "load_s": t2 - t1,
    "load_cpu_s": c2 - c1,
    "clients": len(pool.client_ids),
    "windows": pool.windows.height,
    "distributions": pool.distributions.height,
}))
"""

#: Targets for language/m-large on the 2-core reference machine (seconds, MB).
TARGETS = {"cold_s": 2.5, "warm_s": 0.3, "rss_mb": 600.0}


def run_child(data_dir: Path, model: str, cache_dir: Path) -> dict:
    """One load in a fresh interpreter; its timings and peak RSS (MB)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), model, str(cache_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        msg = f"load of {model} failed:\n{err}"
        raise RuntimeError(msg)
    result = json.loads(out)
    result["rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def bench_model(data_dir: Path, model: str, repeat: int) -> dict:
    cold, warm = [], []
    for _ in range(repeat):
        cache = Path(tempfile.mkdtemp(prefix="servegen-bench-"))
        try:
            cold.append(run_child(data_dir, model, cache))
            warm.append(run_child(data_dir, model, cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "model": model,
        "clients": cold[0]["clients"],
        "windows": cold[0]["windows"],
        "distributions": cold[0]["distributions"],
        "import_s": med(cold + warm, "import_s"),
        "cold_s": med(cold, "load_s"),
        "warm_s": med(warm, "load_s"),
        "cold_cpu_s": med(cold, "load_cpu_s"),
        "warm_cpu_s": med(warm, "load_cpu_s"),
        "cold_rss_mb": med(cold, "rss_mb"),
        "warm_rss_mb": med(warm, "rss_mb"),
        "cold_runs": [round(r["load_s"], 3) for r in cold],
        "warm_runs": [round(r["load_s"], 3) for r in warm],
    }


def main(argv: list[str] | None = None) -> int:
    from servegen_core.sources.pool import list_models
    from servegen_core.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "servegen")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    models = args.models or list_models(args.data)

    import polars as pl

    print(f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"median of {args.repeat} runs, each in a fresh subprocess\n")
    header = (
        f"{'model':<22}{'clients':>8}{'windows':>10}{'dist rows':>11}{'import s':>10}"
        f"{'cold s':>9}{'cold CPU s':>12}{'warm s':>9}{'warm CPU s':>12}{'cold RSS MB':>13}{'warm RSS MB':>13}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for model in models:
        r = bench_model(args.data, model, args.repeat)
        rows.append(r)
        print(
            f"{r['model']:<22}{r['clients']:>8}{r['windows']:>10,}{r['distributions']:>11,}{r['import_s']:>10.2f}"
            f"{r['cold_s']:>9.2f}{r['cold_cpu_s']:>12.2f}{r['warm_s']:>9.3f}{r['warm_cpu_s']:>12.3f}"
            f"{r['cold_rss_mb']:>13.0f}{r['warm_rss_mb']:>13.0f}",
            flush=True,
        )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in rows:
        print(f"{r['model']}: cold runs {r['cold_runs']} s, warm runs {r['warm_runs']} s")
    large = next((r for r in rows if r["model"] == "language/m-large"), None)
    if large is not None:
        checks = [
            ("cold", large["cold_s"], TARGETS["cold_s"], "s"),
            ("warm", large["warm_s"], TARGETS["warm_s"], "s"),
            ("peak RSS", max(large["cold_rss_mb"], large["warm_rss_mb"]), TARGETS["rss_mb"], "MB"),
        ]
        print("\nlanguage/m-large targets:")
        for name, got, target, unit in checks:
            print(f"  {name:<9} {got:8.3f} {unit} (target <= {target} {unit}): {'met' if got <= target else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
