"""Benchmark: fitting raw traces (``servegen_core.sources.fit``) and the fit -> compose round trip.

Three parts, in one process (imports excluded; times are wall clock, median of ``--repeat``):

``groups``
    :func:`servegen_core.sources.fit.fit_gap_groups` on synthetic windows (a third Gamma, a third
    Weibull, a third exponential, 3..400 gaps each; seeded) — 3,000 and 30,000 windows — and,
    for comparison, :func:`servegen_core.characterize.arrivals.fit_interarrivals` (scipy's ``gamma.fit``
    and the Weibull profile root search, one window at a time) on the first 300 windows,
    extrapolated per window. Then 200 windows whose gaps have ties below the resolution
    (Gamma CV 3..15, 500 requests each at t ~ 1000 s: censored fits, one window at a time).
``pools``
    :func:`servegen_core.sources.fit.pool_from_trace` end to end on the Azure conversation trace,
    the Mooncake trace, the synthetic bursty trace of ``tests/sources/test_fit.py`` and a larger
    synthetic trace: 200 clients x 1 day of 600 s windows (28,800 client-windows, Gamma
    and Weibull renewal processes with CV 0.5..4).
``roundtrip``
    fit -> compose -> compare on Azure, Mooncake and the bursty trace, for every arrivals
    mode the spec accepts: inter-arrival KS of the aggregate stream, share of zero gaps
    (source and generated), generated/source variance-to-mean ratio of counts per 1/10/60 s,
    and the request-count ratio (``tests/sources/test_fit.py::roundtrip_figures``; targets KS < 0.1,
    zero share within 2 points, VMR ratios within 1/1.5..1.5, count within 1 %); each figure
    is the median over composition seeds 3, 4 and 5, as in the tests.

Usage (from the project root)::

    PYTHONPATH=. python bench/fit.py [--data ../shared/data] [--repeat 3] [--only groups,pools,roundtrip]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servegen_core.characterize.arrivals import fit_interarrivals  # noqa: E402
from servegen_core.generate.compose import compose  # noqa: E402
from servegen_core.sources.fit import fit_gap_groups, pool_from_trace  # noqa: E402
from servegen_core.spec import ARRIVALS, Span, TraceSource, WorkloadSpec  # noqa: E402
from servegen_core.sources.traces import load_trace  # noqa: E402
from tests.test_fit import bursty_trace, quantized_sources, roundtrip_figures  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def mixed_groups(n_groups: int, seed: int = 1) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = []
    for j in range(n_groups):
        n = int(rng.integers(3, 400))
        mean = rng.uniform(0.01, 10)
        if j % 3 == 0:
            k = rng.uniform(0.05, 4)
            groups.append(rng.gamma(k, mean / k, size=n))
        elif j % 3 == 1:
            groups.append(rng.weibull(rng.uniform(0.3, 3), size=n) * mean)
        else:
            groups.append(rng.exponential(mean, size=n))
    return groups, np.concatenate(groups), np.repeat(np.arange(n_groups), [g.size for g in groups])


def bench_groups(repeat: int) -> None:
    print("## fit_gap_groups\n")
    print("| windows | gaps | vectorized (s) | per window (µs) | fit_interarrivals per window (ms) | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n_groups in (3000, 30000):
        groups, x, g = mixed_groups(n_groups)
        t_vec, _ = timed(lambda: fit_gap_groups(x, g, n_groups), repeat)
        t0 = time.perf_counter()
        for arr in groups[:300]:
            fit_interarrivals(arr)
        t_ref = (time.perf_counter() - t0) / 300
        per = t_vec / n_groups
        print(f"| {n_groups:,} | {x.size:,} | {t_vec:.3f} | {per * 1e6:.0f} | {t_ref * 1e3:.2f} | {t_ref / per:.0f}x |")
    rng = np.random.default_rng(2)
    xs, gs = [], []
    for j in range(200):
        k = 1 / rng.uniform(3, 15) ** 2
        d = np.diff(1000.0 + np.cumsum(rng.gamma(k, 1 / k, size=500)))
        xs.append(d)
        gs.append(np.full(d.size, j))
    x, g = np.concatenate(xs), np.concatenate(gs)
    t_c, table = timed(lambda: fit_gap_groups(x, g, 200, censor_below=1e-7), 1)
    share = float(table["censored"].sum() / table["n"].sum())
    print(f"\ncensored: 200 windows of 499 gaps ({share:.0%} below 100 ns): {t_c:.2f} s, {t_c / 200 * 1e3:.1f} ms per window\n")


def large_trace(seed: int = 3, clients: int = 200, windows: int = 144) -> pl.DataFrame:
    """``clients`` renewal processes over ``windows`` 600 s windows: odd clients Gamma, even
    ones Weibull, a CV from 0.5..4 per window, lognormal client rates (median 0.08 req/s)."""
    rng = np.random.default_rng(seed)
    ts, cids = [], []
    for c in range(clients):
        rate = float(np.exp(rng.normal(-2.5, 1.0)))
        m = int(rate * 1800) + 20
        cv = rng.uniform(0.5, 4.0, size=windows)[:, None]
        if c % 2:
            k = 1 / cv**2
            gaps = rng.gamma(np.broadcast_to(k, (windows, m)), 1.0) / (k * rate)
        else:
            gaps = rng.weibull(np.broadcast_to(np.maximum(0.3, 1 / cv), (windows, m)))
            gaps /= rate * gaps.mean(axis=1, keepdims=True)
        t = np.cumsum(gaps, axis=1)
        t = (np.arange(windows)[:, None] * 600 + t)[t < 600]
        ts.append(t)
        cids.append(np.full(t.size, c))
    df = pl.DataFrame({"timestamp_s": np.concatenate(ts), "client_id": np.concatenate(cids).astype(str)}).sort("timestamp_s")
    n = df.height
    return df.with_columns(pl.Series("input_tokens", rng.integers(10, 4000, n)), pl.Series("output_tokens", rng.integers(1, 800, n)))


def bench_pools(data: Path, repeat: int) -> dict[str, pl.DataFrame]:
    traces = {
        "azure conv (1 h)": load_trace(data / "traces" / "AzureLLMInferenceTrace_conv.csv", preset="azure").trace,
        "mooncake": load_trace(data / "traces" / "mooncake_synthetic_trace.jsonl").trace,
        "synthetic bursty (4 clients, 2 h)": bursty_trace(),
        "synthetic 200 clients x 1 day": large_trace(),
    }
    print("## pool_from_trace\n")
    print("| trace | requests | client-windows | censored windows | time (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, trace in traces.items():
        t, pool = timed(lambda trace=trace: pool_from_trace(trace), repeat)
        gaps = pool.gaps
        censored = gaps.filter(pl.col("gap_s") < 1e-7).select("client_id", "start_s").unique().height
        print(f"| {name} | {trace.height:,} | {pool.windows.height:,} | {censored:,} | {t:.3f} |")
    print()
    return traces


def bench_roundtrip(traces: dict[str, pl.DataFrame]) -> None:
    print("## round trip: fit -> compose -> compare\n")
    print("| trace | arrivals | KS | zero gaps source / generated | VMR ratio 1 s | 10 s | 60 s | count ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in ("azure conv (1 h)", "mooncake", "synthetic bursty (4 clients, 2 h)"):
        trace = traces[name]
        pool = pool_from_trace(trace)
        for arrivals in ARRIVALS:
            runs = []
            for seed in (3, 4, 5):
                spec = WorkloadSpec(source=TraceSource(path="t.csv"), span=Span(0, None), arrivals=arrivals, seed=seed)
                gen = compose(spec, pool=pool).trace["timestamp_s"].to_numpy()
                runs.append(roundtrip_figures(trace["timestamp_s"].to_numpy(), gen))
            f = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            print(
                f"| {name} | {arrivals} | {f['ks']:.3f} | {f['zero_source']:.2%} / {f['zero_generated']:.2%} | "
                f"{f['vmr_1s']:.2f} | {f['vmr_10s']:.2f} | {f['vmr_60s']:.2f} | {f['count_ratio']:.4f} |"
            )
    print()
    print("Quantized sources: the recorded trace is fitted and composed (arrivals 'fitted'); the figures")
    print("compare the composed trace with the *true* times (tests/sources/test_fit.py::quantized_sources).\n")
    print("| source | KS vs true | zero gaps true / generated | VMR ratio 1 s | 10 s | 60 s | count ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (true, recorded) in quantized_sources().items():
        pool = pool_from_trace(recorded)
        runs = []
        for seed in (3, 4, 5):
            spec = WorkloadSpec(source=TraceSource(path="q.csv"), span=Span(0, None), seed=seed)
            gen = compose(spec, pool=pool).trace["timestamp_s"].to_numpy()
            runs.append(roundtrip_figures(true["timestamp_s"].to_numpy(), gen))
        f = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        print(
            f"| {name} | {f['ks']:.3f} | {f['zero_source']:.2%} / {f['zero_generated']:.2%} | "
            f"{f['vmr_1s']:.2f} | {f['vmr_10s']:.2f} | {f['vmr_60s']:.2f} | {f['count_ratio']:.4f} |"
        )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="groups,pools,roundtrip")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    print(f"python {platform.python_version()}, polars {pl.__version__}, numpy {np.__version__}\n")
    if "groups" in parts:
        bench_groups(args.repeat)
    traces = bench_pools(args.data, args.repeat) if parts & {"pools", "roundtrip"} else {}
    if "roundtrip" in parts:
        bench_roundtrip(traces)


if __name__ == "__main__":
    main()
