"""Benchmark: serving-simulator speed, and the realistic-vs-naive provisioning gap on m-large.

``speed``
    language/m-large, one hour from 20:00 of day 0 (``start_s=72000``) at the observed rates
    (about 770,000 requests), composed once (not timed), then simulated with the roofline
    model of llama-3-8b on an A100-80GB on 16 replicas (overloaded at this rate) and on a
    replica count that meets p99 TTFT <= 2 s, in one process and in ``--workers`` processes.
    Median and best of ``--repeat`` wall times and the median CPU time (this process and its
    workers: on a machine shared with other jobs the wall time also counts their share of
    the cores); also the latency summary of each run.
``gap``
    language/m-large from 18:00 of day 0 (``start_s=64800``) for ``--gap-hours`` hours at the
    observed rates x ``--factor``, llama-3-8b on an A10G, p99 TTFT <= 2 s: the replicas the
    realistic workload and each naive baseline (:data:`servegen_core.spec.NAIVE_KINDS`)
    need, and the under-provisioning of each.

``traces``
    the Azure conversation trace (as recorded and 8 times faster) and the Mooncake trace
    against their Poisson baselines (:func:`servegen_core.serve.whatif.compare_trace`).

Usage::

    python bench/serving.py [--repeat 3] [--workers 2] [--skip-speed] [--skip-gap] [--skip-traces]
                            [--gap-hours 6] [--factor 0.03]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

from servegen_core.generate.compose import compose

from servegen_core.sources.load import load_source
from servegen_core.paths import shared_data_dir
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import simulate
from servegen_core.serve.whatif import Slo, compare_spec, compare_trace
from servegen_core.spec import NAIVE_KINDS, ObservedRate, ServeGenSource, Span, WorkloadSpec

#: Target: an hour of m-large at the observed rates on 16 replicas (seconds).
TARGET_S = 15.0


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (worker processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def speed(repeat: int, workers: int) -> None:
    data_dir = str(shared_data_dir() / "servegen")
    spec = WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(72000, 3600))
    t0 = time.perf_counter()
    trace = compose(spec).trace.select("timestamp_s", "input_tokens", "output_tokens")
    print(f"composed {trace.height:,} requests in {time.perf_counter() - t0:.2f} s (not timed below)")
    cost = roofline("llama-3-8b", "a100")
    print(cost.note)
    print()
    print(f"{'replicas':>8}  {'workers':>7}  {'median s':>8}  {'best s':>7}  {'CPU s':>6}  {'p99 TTFT s':>10}  {'p99 TPOT s':>10}  {'util':>5}  target")
    for n in (16, 48):
        for w in sorted({1, workers}):
            times = []
            cpus = []
            for _ in range(repeat):
                c0 = cpu_s()
                t0 = time.perf_counter()
                res = simulate(trace, cost, replicas=n, workers=w)
                times.append(time.perf_counter() - t0)
                cpus.append(cpu_s() - c0)
            s = res.summary()
            ok = "ok" if n != 16 or min(times) < TARGET_S else "MISSED"
            mark = f"< {TARGET_S:g} s {ok}" if n == 16 else ""
            print(
                f"{n:>8}  {w:>7}  {statistics.median(times):>8.2f}  {min(times):>7.2f}  {statistics.median(cpus):>6.2f}  {s['ttft_p99_s']:>10.3f}  "
                f"{s['tpot_p99_s']:>10.4f}  {s['utilization_mean']:>5.2f}  {mark}"
            )


def gap(hours: float, factor: float, workers: int) -> None:
    data_dir = str(shared_data_dir() / "servegen")
    spec = WorkloadSpec(ServeGenSource(data_dir, "language/m-large"), Span(64800, hours * 3600), rate=ObservedRate(factor=factor))
    slo = Slo(ttft_p99_s=2.0)
    cost = roofline("llama-3-8b", "a10g")
    t0 = time.perf_counter()
    c = compare_spec(spec, slo, cost, naive=NAIVE_KINDS, pool=load_source(spec), workers=workers)
    print(f"\nm-large from 18:00 for {hours:g} h, observed rates x {factor:g}, {cost.name}, {slo.describe()} "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"{'workload':<15} {'requests':>9} {'replicas':>8} {'under-prov.':>11} {'p99 TTFT s at realistic N':>26}")
    for r in c.table.iter_rows(named=True):
        under = "" if r["under_provisioning"] is None else f"{r['under_provisioning']:.0%}"
        print(f"{r['workload']:<15} {r['requests']:>9,} {r['replicas'] or '-':>8} {under:>11} {r['ttft_p99_s']:>26.3f}")
    print(c.sentence())


def traces() -> None:
    """Raw traces against their Poisson baselines (same requests, same count per 600 s window)."""
    import polars as pl

    from servegen_core.sources.traces import load_trace

    folder = shared_data_dir() / "traces"
    cases = [
        ("AzureLLMInferenceTrace_conv.csv", 1, "a100", 1.0),
        ("AzureLLMInferenceTrace_conv.csv", 8, "a100", 1.0),
        ("mooncake_synthetic_trace.jsonl", 1, "h100", 10.0),
    ]
    print("\nraw traces vs their Poisson baselines (llama-3-8b, roofline)")
    print(f"{'trace':<34} {'speed-up':>8} {'GPU':>5} {'SLO p99 TTFT':>12} {'realistic':>9} {'poisson':>7} {'under-prov.':>11}")
    for name, speedup, gpu, ttft in cases:
        trace = load_trace(folder / name).trace.with_columns(pl.col("timestamp_s") / speedup)
        c = compare_trace(trace, Slo(ttft_p99_s=ttft), roofline("llama-3-8b", gpu))
        real, pois = c.table["replicas"].to_list()
        under = c.table["under_provisioning"][1]
        print(f"{name:<34} {speedup:>7}x {gpu:>5} {ttft:>10g} s {real or '-':>9} {pois or '-':>7} {'' if under is None else f'{under:.0%}':>11}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-gap", action="store_true")
    ap.add_argument("--skip-traces", action="store_true")
    ap.add_argument("--gap-hours", type=float, default=6.0)
    ap.add_argument("--factor", type=float, default=0.03)
    args = ap.parse_args()
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    if not args.skip_speed:
        speed(args.repeat, args.workers)
    if not args.skip_gap:
        gap(args.gap_hours, args.factor, args.workers)
    if not args.skip_traces:
        traces()


if __name__ == "__main__":
    main()
