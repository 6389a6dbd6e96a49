"""Benchmark: wall time of the provisioning what-if on the m-large 18:00 hour at observed rate.

language/m-large, 18:00-19:00 of day 0 (``start_s=64800``), all clients at the observed rates
(about 1.07 M requests), llama-3-8b on an A10G (roofline defaults, chunked prefill), the
default objective (p99 TTFT <= 2 s and p99 TPOT <= 0.1 s): :func:`compare_spec` of the
realistic workload and its three default naive baselines (derived by common random numbers),
as ``servegen whatif --no-range`` runs it. Prints the wall time, the simulations run per
workload and the answers, then a table of the figure before the speed work (:data:`BEFORE`)
against this run's, and whether each answer is unchanged; ``--range`` also times
:func:`answer_range` started from the answer.

``--workers N`` runs replicas in ``N`` forkserver worker processes (this script has the
``if __name__ == "__main__":`` guard they need).

Usage::

    python bench/whatif_speed.py [--workers 2] [--range]
"""

from __future__ import annotations

import argparse
import platform
import time

from servegen_core.paths import shared_data_dir
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.whatif import DEFAULT_SLO, answer_range, compare_spec
from servegen_core.sources.load import load_source
from servegen_core.spec import ObservedRate, ServeGenSource, Span, WorkloadSpec

#: The search before the pilot, bracket, cache and worker processes (commit 0740c10, serial,
#: run on 2026-12-08 01:43-02:01 UTC on the shared 2-core machine, load average 2-8): wall
#: seconds and the answers per workload. The last figure recorded before that, 1,854 s, is kept
#: for reference (see BENCHMARKS.md).
BEFORE = {"wall_s": 1065.7, "recorded_wall_s": 1854.0, "realistic": 160, "poisson": 133, "pooled_lengths": 175, "poisson_pooled": 140}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--range", action="store_true")
    args = parser.parse_args()
    spec = WorkloadSpec(ServeGenSource(str(shared_data_dir() / "servegen"), "language/m-large"), Span(64800, 3600), rate=ObservedRate())
    cost = roofline("llama-3-8b", "a10g")
    pool = load_source(spec)  # loading the pool is not timed (the CLI reads the columnar cache)
    print(platform.platform(), platform.processor() or platform.machine(), f"workers={args.workers}")
    t0 = time.perf_counter()
    lines = []
    c = compare_spec(spec, DEFAULT_SLO, cost, pool=pool, workers=args.workers, progress=lambda text: lines.append((time.perf_counter() - t0, text)))
    wall = time.perf_counter() - t0
    for t, text in lines:
        print(f"{t:7.1f} s  {text}")
    print(c.table.select("workload", "requests", "replicas", "under_provisioning", "ttft_p99_s", "tpot_p99_s", "attainment", "met"))
    print(c.curves.group_by("workload", maintain_order=True).len().rename({"len": "simulations"}))
    print(c.sentence())
    print(f"compare_spec (realistic + 3 baselines): {wall:.1f} s wall")
    print()
    print("| | before | now | |")
    print("|---|---:|---:|---|")
    print(f"| wall time, realistic + 3 baselines | {BEFORE['wall_s']:,.1f} s (last recorded {BEFORE['recorded_wall_s']:,.0f} s) | {wall:,.1f} s | target < 30 s {'met' if wall < 30 else 'not met'} |")
    for r in c.table.iter_rows(named=True):
        old = BEFORE.get(r["workload"])
        same = "unchanged" if old == r["replicas"] else "CHANGED"
        print(f"| replicas, {r['workload']} | {old} | {r['replicas']} | {same} |")
    if args.range:
        t1 = time.perf_counter()
        r = answer_range(spec, DEFAULT_SLO, cost, pool=pool, start=c.table["replicas"][0], workers=args.workers)
        print(r.table)
        print(r.sentence())
        print(f"answer_range: {time.perf_counter() - t1:.1f} s wall")


if __name__ == "__main__":
    main()
