"""Benchmark: prefix-reuse characterization and the LRU hit-ratio curve.

Two inputs:

* the Mooncake trace (``traces/mooncake_synthetic_trace.jsonl`` of the shared data, 3,993
  requests, 121,877 block accesses): every function of :mod:`servegen_core.characterize.prefix`;
* a synthetic trace of ``--accesses`` block accesses (default 3,000,000): requests of 1–60
  blocks whose first blocks come, with probability 0.6, from one of 2,000 shared prefixes
  chosen Zipf-like, the rest fresh ids (seeded; built once, untimed). Timed:
  :func:`~servegen_core.characterize.prefix.lru_hit_ratio`, the bare
  :func:`~servegen_core.characterize.prefix.stack_distances` on a Zipf key stream of the same length,
  :func:`~servegen_core.characterize.prefix.block_reuse` and :func:`~servegen_core.characterize.prefix.prefix_report`.

Each case runs ``--repeat`` times; the median is printed (seconds), with peak RSS at the end.

Usage::

    python bench/prefix.py [--data DIR] [--accesses 3000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import numpy as np
import polars as pl

from servegen_core.characterize import prefix
from servegen_core.paths import shared_data_dir
from servegen_core.sources.traces import load_trace


def synthetic_trace(accesses: int, *, seed: int = 0) -> pl.DataFrame:
    """About ``accesses`` block accesses in requests sharing Zipf-chosen prefixes (vectorized)."""
    rng = np.random.default_rng(seed)
    n_req = max(1, accesses // 30)
    lens = rng.integers(1, 61, size=n_req)
    shared = rng.random(n_req) < 0.6
    which = np.minimum(rng.zipf(1.3, size=n_req), 2000) - 1
    depth = np.where(shared, np.minimum(lens, 1 + which % 16), 0)  # shared prefix p has 1 + p % 16 blocks
    total = int(lens.sum())
    req = np.repeat(np.arange(n_req), lens)
    pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    in_prefix = pos < depth[req]
    ids = np.where(in_prefix, which[req] * 16 + pos, 10**9 + np.arange(total))
    hash_ids = pl.Series("hash_ids", np.split(ids, np.cumsum(lens)[:-1]), dtype=pl.List(pl.Int64))
    return pl.DataFrame(
        {
            "timestamp_s": np.arange(n_req, dtype=np.float64) * 0.01,
            "client_id": "all",
            "input_tokens": lens * 512,
            "output_tokens": 100,
            "hash_ids": hash_ids,
        }
    )


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="shared data folder (default: ../shared/data)")
    ap.add_argument("--accesses", type=int, default=3_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    data = shared_data_dir() if args.data is None else args.data
    print(f"# prefix benchmark — {platform.node()}, {platform.machine()}, Python {platform.python_version()}")

    mooncake = load_trace(f"{data}/traces/mooncake_synthetic_trace.jsonl").trace
    n_blocks = int(mooncake["hash_ids"].list.len().sum())
    print(f"\n## Mooncake trace: {mooncake.height:,} requests, {n_blocks:,} block accesses\n")
    print("| function | median (s) | result |")
    print("|---|---:|---|")
    cases = [
        ("block_reuse", lambda: prefix.block_reuse(mooncake), lambda r: f"reuse ratio {r.reuse_ratio:.4f}"),
        ("prefix_depth", lambda: prefix.prefix_depth(mooncake), lambda r: f"mean depth {r.mean_depth:.2f} blocks"),
        ("top_prefixes", lambda: prefix.top_prefixes(mooncake), lambda r: f"{r.frame.height} prefixes"),
        ("sessions", lambda: prefix.sessions(mooncake), lambda r: f"{r.multi_turn_sessions} multi-turn sessions"),
        ("lru_hit_ratio", lambda: prefix.lru_hit_ratio(mooncake), lambda r: f"max hit ratio {r.max_hit_ratio:.4f}"),
        ("prefix_report (all of the above, one pass)", lambda: prefix.prefix_report(mooncake), lambda r: "the page's one call"),
    ]
    for name, fn, describe in cases:
        t, res = timed(fn, args.repeat)
        print(f"| {name} | {t:.3f} | {describe(res)} |")

    synth = synthetic_trace(args.accesses)
    n_syn = int(synth["hash_ids"].list.len().sum())
    rng = np.random.default_rng(1)
    keys = rng.zipf(1.2, size=n_syn) % 500_000
    print(f"\n## Synthetic: {synth.height:,} requests, {n_syn:,} block accesses\n")
    print("| function | median (s) | accesses/s | result |")
    print("|---|---:|---:|---|")
    t, res = timed(lambda: prefix.lru_hit_ratio(synth), args.repeat)
    print(f"| lru_hit_ratio (trace) | {t:.2f} | {n_syn / t:,.0f} | max hit ratio {res.max_hit_ratio:.4f}, saturation {res.saturation_blocks:,} blocks |")
    t, d = timed(lambda: prefix.stack_distances(keys), args.repeat)
    print(f"| stack_distances (Zipf keys) | {t:.2f} | {n_syn / t:,.0f} | {np.mean(d >= 0):.4f} re-accesses |")
    t, res = timed(lambda: prefix.block_reuse(synth), args.repeat)
    print(f"| block_reuse (trace) | {t:.2f} | {n_syn / t:,.0f} | reuse ratio {res.reuse_ratio:.4f} |")
    t, res = timed(lambda: prefix.prefix_report(synth), args.repeat)
    print(f"| prefix_report (trace, everything) | {t:.2f} | {n_syn / t:,.0f} | {res.sessions.multi_turn_sessions:,} multi-turn sessions |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS: {rss:,.0f} MB")


if __name__ == "__main__":
    main()
