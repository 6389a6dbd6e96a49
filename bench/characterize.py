"""Benchmark: every characterization function on a real pool and on a large synthetic trace.

Two sources, each characterized by every entry of :data:`CASES` in order:

* ``language/m-large`` (162 clients, 14 days of 600 s windows), loaded from the columnar
  cache (warm: a first load writes the cache; its time is printed apart). A first pass over
  all cases is printed in its own column: it includes one-off set-up (tables built once per
  pool object, such as the length index of ``servegen_core.sources.view``). Then ``--repeat``
  timed passes follow; the median per case is printed.
* a synthetic RequestTrace of ``--rows`` rows (default 10,000,000): 200 clients with
  Zipf-like volumes over 14 days with a diurnal rate, lognormal input and exponential output
  lengths (:func:`synthetic_trace`, seeded). Built once, untimed; one timed pass.

Every case is ``(name, fn)``; ``fn(ctx)`` gets a :class:`Context` with the ``source`` and
returns the result. Statistics that derive from a base table (see ``servegen_core.characterize.rates``
and ``servegen_core.characterize.arrivals``) take it from ``ctx.memo``, where an earlier case put it with
``ctx.keep(key, value)`` — as a dashboard page computes a base table once. Other modules
append their own entries to :data:`CASES`.

Peak RSS (``ru_maxrss``) covers the whole process, including building the synthetic trace.

Usage::

    python bench/characterize.py [--data DIR] [--rows 10000000] [--repeat 5] [--only arrivals,rates]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from servegen_core.characterize import arrivals, lengths, multimodal, rates, reasoning, summary
from servegen_core.paths import shared_data_dir
from servegen_core.sources.pool import ClientPool, load_pool
from servegen_core.result import Result

MODEL = "language/m-large"


@dataclass
class Context:
    """What a case sees: the source, a label, and base tables kept by earlier cases."""

    source: ClientPool | pl.DataFrame
    label: str
    memo: dict[str, object] = field(default_factory=dict)

    @property
    def is_pool(self) -> bool:
        return isinstance(self.source, ClientPool)

    def keep(self, key: str, value: object) -> object:
        self.memo[key] = value
        return value


def _busiest_window(ctx: Context) -> tuple[str, int]:
    """The (client, window) with most requests in the kept ``window_cv`` table: a chosen window."""
    f = ctx.memo["window_cv"].frame
    row = f.row(int(f["requests"].arg_max()), named=True)
    return row["client_id"], int(row["start_s"])


def _pool_only(fn: Callable[[Context], object]) -> Callable[[Context], object]:
    return lambda ctx: fn(ctx) if ctx.is_pool else None


#: (name, fn(ctx)) in run order; base tables before the statistics derived from them.
CASES: list[tuple[str, Callable[[Context], object]]] = [
    # arrivals
    ("arrivals.window_cv", lambda c: c.keep("window_cv", arrivals.window_cv(c.source))),
    ("arrivals.cv_cdf(window_cv)", lambda c: arrivals.cv_cdf(c.memo["window_cv"])),
    ("arrivals.burstiness_summary(window_cv)", lambda c: arrivals.burstiness_summary(c.memo["window_cv"])),
    ("arrivals.aggregate_cv", lambda c: c.keep("aggregate_cv", arrivals.aggregate_cv(c.source))),
    ("arrivals.cv_cdf(aggregate_cv)", lambda c: arrivals.cv_cdf(c.memo["aggregate_cv"])),
    ("arrivals.interarrival_histogram(busiest window)", lambda c: arrivals.interarrival_histogram(c.source, *_busiest_window(c))),
    ("arrivals.pattern_shares (pools)", _pool_only(lambda c: arrivals.pattern_shares(c.source))),
    ("arrivals.recorded_vs_implied_cv (pools)", _pool_only(lambda c: arrivals.recorded_vs_implied_cv(c.source))),
    # rates
    ("rates.rate_series", lambda c: c.keep("rate_series", rates.rate_series(c.source))),
    ("rates.peak_trough(rate_series)", lambda c: rates.peak_trough(c.memo["rate_series"])),
    ("rates.daily_peak_trough(rate_series)", lambda c: rates.daily_peak_trough(c.memo["rate_series"])),
    ("rates.hour_day_matrix", lambda c: rates.hour_day_matrix(c.source)),
    ("rates.daily_volumes", lambda c: c.keep("daily_volumes", rates.daily_volumes(c.source))),
    ("rates.day_over_day(daily_volumes)", lambda c: rates.day_over_day(c.memo["daily_volumes"])),
    ("rates.client_stability(daily_volumes)", lambda c: rates.client_stability(c.memo["daily_volumes"])),
    ("rates.stability_summary(daily_volumes)", lambda c: rates.stability_summary(c.memo["daily_volumes"])),
    ("rates.client_shares(daily_volumes)", lambda c: c.keep("client_shares", rates.client_shares(c.memo["daily_volumes"]))),
    ("rates.top_k_share(client_shares)", lambda c: rates.top_k_share(c.memo["client_shares"], 10)),
    ("rates.lorenz(client_shares)", lambda c: rates.lorenz(c.memo["client_shares"])),
    ("rates.gini(client_shares)", lambda c: rates.gini(c.memo["client_shares"])),
    ("rates.top_k_series", lambda c: rates.top_k_series(c.source, 10)),
    # lengths
    ("lengths.length_pdf(input)", lambda c: lengths.length_pdf(c.source, "input_tokens")),
    ("lengths.length_pdf(output)", lambda c: lengths.length_pdf(c.source, "output_tokens")),
    ("lengths.length_percentiles(input, per window)", lambda c: lengths.length_percentiles(c.source, "input_tokens", per_window=True)),
    ("lengths.length_shift(input)", lambda c: lengths.length_shift(c.source, "input_tokens")),
    ("lengths.length_shift(output)", lambda c: lengths.length_shift(c.source, "output_tokens")),
    ("lengths.fit_input_lengths", lambda c: lengths.fit_input_lengths(c.source)),
    ("lengths.fit_output_lengths", lambda c: lengths.fit_output_lengths(c.source)),
    ("lengths.client_length_means(input)", lambda c: lengths.client_length_means(c.source, "input_tokens")),
    ("lengths.client_length_means(output)", lambda c: lengths.client_length_means(c.source, "output_tokens")),
    ("lengths.length_correlation (traces)", lambda c: None if c.is_pool else lengths.length_correlation(c.source)),
    # multimodal and reasoning: language data has neither (empty results, timed as such)
    ("multimodal.modality_shares", lambda c: multimodal.modality_shares(c.source)),
    ("multimodal.image_count_distribution", lambda c: multimodal.image_count_distribution(c.source)),
    ("multimodal.tokens_per_image", lambda c: multimodal.tokens_per_image(c.source)),
    ("multimodal.modality_over_time", lambda c: multimodal.modality_over_time(c.source)),
    ("reasoning.reason_ratio_distribution", lambda c: reasoning.reason_ratio_distribution(c.source)),
    ("reasoning.reasoning_tokens", lambda c: reasoning.reasoning_tokens(c.source)),
    ("reasoning.bimodality(per client)", lambda c: reasoning.bimodality(c.source, per_client=True)),
    # client summary (reuses the window_cv table, as the client explorer does)
    ("summary.client_summary(window_cv)", lambda c: c.keep("summary", summary.client_summary(c.source, window_cv=c.memo["window_cv"]))),
    ("summary.filter_clients(summary)", lambda c: summary.filter_clients(c.memo["summary"], ranges={"request_share": (0.001, None)}, top_k=20)),
]


def synthetic_trace(rows: int, *, clients: int = 200, days: int = 14, seed: int = 0) -> pl.DataFrame:
    """A RequestTrace of ``rows`` requests, vectorized and seeded.

    Arrival times follow a diurnal rate ``1 + 0.5 sin(2π t / 1 day)`` (inverse-CDF sampling on
    a 1 s grid); client volumes are Zipf-like (weight ``1 / rank^1.2``); input lengths are
    lognormal, output lengths exponential.
    """
    rng = np.random.default_rng(seed)
    span = days * 86400
    grid = np.arange(span + 1, dtype=np.float64)
    cum = grid + 0.5 * 86400 / (2 * np.pi) * (1 - np.cos(2 * np.pi * grid / 86400))
    ts = np.interp(np.sort(rng.uniform(0.0, cum[-1], rows)), cum, grid)
    weights = 1.0 / np.arange(1, clients + 1) ** 1.2
    client = rng.choice(clients, size=rows, p=weights / weights.sum())
    ids = pl.Series("client_id", [str(i) for i in range(clients)], dtype=pl.String)
    return pl.DataFrame(
        {
            "timestamp_s": ts,
            "client_id": ids.gather(client),
            "input_tokens": np.maximum(1, rng.lognormal(6.5, 1.0, rows)).astype(np.int64),
            "output_tokens": np.maximum(1, rng.exponential(250.0, rows)).astype(np.int64),
        }
    )


def run_cases(ctx: Context, only: tuple[str, ...], cpu: dict[str, float] | None = None) -> dict[str, float]:
    """One pass over the selected cases; wall seconds per case (CPU seconds of this process into
    ``cpu`` when given: on a machine shared with other work they show the cost without the
    waiting). A case returning None did not apply."""
    out = {}
    for name, fn in CASES:
        if only and not name.startswith(only):
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(ctx)
        dt = time.perf_counter() - t0
        if cpu is not None and result is not None:
            cpu[name] = time.process_time() - c0
        if result is None:
            continue
        if isinstance(result, Result) and not result.ok:
            print(f"  note: {name} on {ctx.label}: empty ({result.reason})", file=sys.stderr)
        out[name] = dt
    return out


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "servegen", help="folder holding <category>/<model>/")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic trace (0: skip it)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the pool")
    parser.add_argument("--only", default="", help="comma-separated name prefixes of the cases to run")
    args = parser.parse_args(argv)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())

    print(f"python {platform.python_version()}, polars {pl.__version__}, numpy {np.__version__}, {platform.machine()}")
    load_pool(args.data, MODEL)  # writes the columnar cache if missing
    t0 = time.perf_counter()
    pool = load_pool(args.data, MODEL)
    print(f"{MODEL}: warm load {1000 * (time.perf_counter() - t0):.0f} ms (not counted below)")
    # First pass: includes tables some modules build once per pool object and reuse (the
    # per-pool length index of servegen_core.sources.view); printed as its own column.
    first_times = run_cases(Context(pool, MODEL), only)
    passes = [run_cases(Context(pool, MODEL), only) for _ in range(max(1, args.repeat))]
    pool_times = {name: statistics.median(p[name] for p in passes) for name in passes[0]}

    trace_times: dict[str, float] = {}
    trace_cpu: dict[str, float] = {}
    if args.rows > 0:
        t0 = time.perf_counter()
        trace = synthetic_trace(args.rows)
        label = f"synthetic {args.rows:,} rows"
        print(f"{label}: built in {time.perf_counter() - t0:.1f} s (not counted), RSS so far {peak_rss_mb():.0f} MB")
        trace_times = run_cases(Context(trace, label), only, cpu=trace_cpu)

    width = max(len(n) for n, _ in CASES)
    print(f"\n{'case':<{width}}  {MODEL + ' ms':>18}  {'first pass ms':>13}  {'trace ms':>10}  {'trace cpu ms':>12}")
    for name, _ in CASES:
        if name not in pool_times and name not in trace_times:
            continue
        p = f"{1000 * pool_times[name]:.1f}" if name in pool_times else "-"
        f = f"{1000 * first_times[name]:.1f}" if name in first_times else "-"
        t = f"{1000 * trace_times[name]:.0f}" if name in trace_times else "-"
        c = f"{1000 * trace_cpu[name]:.0f}" if name in trace_cpu else "-"
        print(f"{name:<{width}}  {p:>18}  {f:>13}  {t:>10}  {c:>12}")
    print(
        f"{'total':<{width}}  {1000 * sum(pool_times.values()):>18.1f}  {1000 * sum(first_times.values()):>13.1f}"
        f"  {1000 * sum(trace_times.values()):>10.0f}  {1000 * sum(trace_cpu.values()):>12.0f}"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
