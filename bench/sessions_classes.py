"""Benchmark: closed-loop sessions and SLO classes in the serving simulator.

``overhead``
    language/m-large, one hour from 20:00 of day 0 at the observed rates, without sessions,
    simulated on 16 replicas (llama-3-8b, A100-80GB roofline) in one process: the open-loop
    engine's wall time (run it on two checkouts to compare).
``sessions``
    language/m-large from 18:00 for ``--hours`` at the observed rates x ``--factor`` with the
    spec's default sessions profile (``prefix.default.sessions``: 1.106 turns per session,
    think times Gamma mean 100 s), p99 TTFT <= 2 s and p99 TPOT <= 0.1 s: replicas needed
    in closed-loop and open-loop mode, and how much later the closed loop releases the later
    turns at the open-loop answer.
``classes``
    the same workload without sessions, its largest client in a ``batch`` class (priority 1,
    p99 end-to-end <= 600 s) and every other client ``interactive`` (priority 0, p99 TTFT <= 2
    s, p99 TPOT <= 0.1 s): replicas every class needs with priorities, and with both classes at
    the same priority (first come, first served).

Usage::

    python bench/sessions_classes.py [--skip-overhead] [--skip-sessions] [--skip-classes] [--hours 1] [--factor 0.1]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import numpy as np
import polars as pl

from servegen_core.generate.compose import compose
from servegen_core.paths import shared_data_dir
from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import simulate
from servegen_core.serve.sessions import turn_predecessors
from servegen_core.serve.whatif import Slo, min_replicas
from servegen_core.sources.load import load_source
from servegen_core.spec import ObservedRate, PrefixProfile, PrefixSpec, ServeGenSource, Sessions, SloClass, SloClasses, Span, WorkloadSpec

SLO = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)


def overhead() -> None:
    spec = WorkloadSpec(ServeGenSource(str(shared_data_dir() / "servegen"), "language/m-large"), Span(72000, 3600))
    trace = compose(spec).trace.select("timestamp_s", "input_tokens", "output_tokens")
    cost = roofline("llama-3-8b", "a100-80gb")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        simulate(trace, cost, replicas=16)
        times.append(time.perf_counter() - t0)
    print(f"open loop, {trace.height:,} requests on 16 replicas: median {np.median(times):.2f} s, best {min(times):.2f} s")


def _spec(hours: float, factor: float, **kw: object) -> WorkloadSpec:
    src = ServeGenSource(str(shared_data_dir() / "servegen"), "language/m-large")
    return WorkloadSpec(src, Span(64800, hours * 3600), rate=ObservedRate(factor=factor), **kw)


def sessions(hours: float, factor: float) -> None:
    spec = _spec(hours, factor, prefix=PrefixSpec(default=PrefixProfile(sessions=Sessions())))
    trace = compose(spec, pool=load_source(spec)).trace
    later = int((trace["turn_index"] > 0).sum())
    cost = roofline("llama-3-8b", "a100-80gb")
    print(f"\nm-large from 18:00 for {hours:g} h x {factor:g}, default sessions: {trace.height:,} requests, {later:,} later turns")
    rows = {}
    for mode in ("closed", "open"):
        t0 = time.perf_counter()
        res = min_replicas(trace, SLO, cost, sessions=mode)
        rows[mode] = res
        print(f"  {mode:>6}: {res.replicas} replicas for {SLO.describe()} ({time.perf_counter() - t0:.1f} s)")
    n = rows["open"].replicas
    if n:
        sim = simulate(trace, cost, replicas=n, sessions="closed")
        rel = sim.requests["arrival_s"].to_numpy()
        ts = trace["timestamp_s"].to_numpy()
        mask = turn_predecessors(trace) >= 0
        lag = rel[mask] - ts[mask]
        print(f"  at {n} replicas, closed loop: later turns released {np.median(lag):.2f} s (median), {np.percentile(lag, 99):.2f} s (p99) after their timestamps")


def classes(hours: float, factor: float) -> None:
    base = _spec(hours, factor)
    pool = load_source(base)
    trace0 = compose(base, pool=pool).trace
    top = trace0.group_by("client_id").len().sort("len", descending=True)["client_id"][0]
    share = float((trace0["client_id"] == top).mean())
    cost = roofline("llama-3-8b", "a100-80gb")
    print(f"\nm-large from 18:00 for {hours:g} h x {factor:g}: {trace0.height:,} requests; client {top} ({share:.0%}) is batch")
    for label, batch_prio in (("priorities (interactive 0, batch 1)", 1), ("one priority (first come, first served)", 0)):
        sc = SloClasses(
            classes=(("interactive", SloClass(0, ttft_p99_s=2.0, tpot_p99_s=0.1)), ("batch", SloClass(batch_prio, e2e_p99_s=600.0))),
            default="interactive", clients=((top, "batch"),),
        )
        spec = dataclasses.replace(base, slo_classes=sc)
        trace = compose(spec, pool=pool).trace
        t0 = time.perf_counter()
        res = min_replicas_by_class(trace, classes_of_spec(spec), cost)
        own = dict(zip(res.by_class["slo_class"], res.by_class["replicas"], strict=True))
        print(f"  {label}: every class {res.replicas} replicas; interactive alone {own['interactive']}, batch alone {own['batch']} ({time.perf_counter() - t0:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-sessions", action="store_true")
    ap.add_argument("--skip-classes", action="store_true")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--factor", type=float, default=0.1)
    args = ap.parse_args()
    print(f"{platform.machine()} {platform.python_version()}, polars {pl.__version__}")
    if not args.skip_overhead:
        overhead()
    if not args.skip_sessions:
        sessions(args.hours, args.factor)
    if not args.skip_classes:
        classes(args.hours, args.factor)


if __name__ == "__main__":
    main()
