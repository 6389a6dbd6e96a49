"""Benchmark: wall time of the provisioning what-if on the m-large 18:00 hour at observed rate.

language/m-large, 18:00-19:00 of day 0 (``start_s=64800``), all clients at the observed rates
(about 1.07 M requests), llama-3-8b on an A10G (roofline defaults, chunked prefill), the
default objective (p99 TTFT <= 2 s and p99 TPOT <= 0.1 s): :func:`compare_spec` of the
realistic workload and its three default naive baselines (derived by common random numbers),
as ``servegen whatif --no-range`` runs it. Prints the wall time, the simulations run per
workload and the answers; ``--range`` also times :func:`answer_range` started from the answer.

Usage::

    python bench/whatif_speed.py [--workers 1] [--range]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
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
    if args.range:
        t1 = time.perf_counter()
        r = answer_range(spec, DEFAULT_SLO, cost, pool=pool, start=c.table["replicas"][0], workers=args.workers)
        print(r.table)
        print(r.sentence())
        print(f"answer_range: {time.perf_counter() - t1:.1f} s wall")


if __name__ == "__main__":
    main()
