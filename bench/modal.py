"""Benchmark: multimodal and reasoning characterization where the data has those fields.

``bench/characterize.py`` runs every case on ``language/m-large`` and on a language-only
synthetic trace, where the multimodal and reasoning functions return empty results at once.
This script times them on data that has the fields:

* ``multimodal/mm-image`` and ``reason/deepseek-r1`` (warm load from the columnar cache): a
  first pass over the cases (it builds the per-pool length index) and the median of
  ``--repeat`` further passes;
* a synthetic RequestTrace of ``--rows`` rows: :func:`characterize.synthetic_trace` plus
  seeded ``text_tokens``, ``image_tokens``, ``image_count`` and ``reason_ratio`` (on the
  ``k/501`` grid, two modes) columns; one timed pass.

Usage::

    python bench/modal.py [--data DIR] [--rows 10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from characterize import peak_rss_mb, synthetic_trace  # noqa: E402

from servegen_core.characterize import multimodal, reasoning

from servegen_core import summary  # noqa: E402
from servegen_core.paths import shared_data_dir  # noqa: E402
from servegen_core.sources.pool import load_pool  # noqa: E402

CASES = [
    ("multimodal.modality_shares", lambda s: multimodal.modality_shares(s)),
    ("multimodal.image_count_distribution", lambda s: multimodal.image_count_distribution(s)),
    ("multimodal.tokens_per_image", lambda s: multimodal.tokens_per_image(s)),
    ("multimodal.modality_over_time", lambda s: multimodal.modality_over_time(s)),
    ("reasoning.reason_ratio_distribution", lambda s: reasoning.reason_ratio_distribution(s)),
    ("reasoning.reasoning_tokens", lambda s: reasoning.reasoning_tokens(s)),
    ("reasoning.bimodality(per client)", lambda s: reasoning.bimodality(s, per_client=True)),
    ("reasoning.bimodality(reasoning_tokens)", lambda s: reasoning.bimodality(s, on="reasoning_tokens")),
    ("summary.client_summary", lambda s: summary.client_summary(s)),
]


def modal_trace(rows: int, *, seed: int = 1) -> pl.DataFrame:
    """The characterize benchmark's trace plus image and reason-ratio columns (seeded)."""
    base = synthetic_trace(rows)
    rng = np.random.default_rng(seed)
    count = rng.choice(4, size=rows, p=[0.3, 0.5, 0.15, 0.05])
    per_image = rng.choice(np.array([256, 576, 1196]), size=rows, p=[0.3, 0.5, 0.2])
    mode = rng.random(rows) < 0.4
    ratio = np.where(mode, rng.beta(4, 8, rows), rng.beta(12, 3, rows))
    return base.with_columns(
        pl.col("input_tokens").alias("text_tokens"),
        pl.Series("image_count", count, dtype=pl.Int64),
        pl.Series("image_tokens", count * per_image, dtype=pl.Int64),
        pl.Series("reason_ratio", np.round(ratio * 500) / 501),
    ).with_columns((pl.col("text_tokens") + pl.col("image_tokens")).alias("input_tokens"))


def run(source, applicable: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name, fn in CASES:
        if not name.startswith(applicable):
            continue
        t0 = time.perf_counter()
        result = fn(source)
        out[name] = time.perf_counter() - t0
        if not result.ok:
            print(f"  note: {name}: empty ({result.reason})", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "servegen")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    columns: dict[str, dict[str, str]] = {}
    for model, applicable in (
        ("multimodal/mm-image", ("multimodal", "summary")),
        ("reason/deepseek-r1", ("reasoning", "summary")),
    ):
        load_pool(args.data, model)
        pool = load_pool(args.data, model)
        first = run(pool, applicable)
        passes = [run(pool, applicable) for _ in range(max(1, args.repeat))]
        for name in first:
            warm = statistics.median(p[name] for p in passes)
            columns.setdefault(name, {})[model] = f"{1000 * warm:.1f} / {1000 * first[name]:.1f}"
    if args.rows > 0:
        trace = modal_trace(args.rows)
        print(f"synthetic {args.rows:,} rows with image and reason-ratio columns; RSS {peak_rss_mb():.0f} MB")
        c0 = time.process_time()
        times = run(trace, ("multimodal", "reasoning", "summary"))
        cpu = time.process_time() - c0
        for name, t in times.items():
            columns.setdefault(name, {})["trace"] = f"{1000 * t:.0f}"
        print(f"trace total {1000 * sum(times.values()):.0f} ms wall, {1000 * cpu:.0f} ms CPU")
    width = max(len(n) for n, _ in CASES)
    heads = ("multimodal/mm-image", "reason/deepseek-r1", "trace")
    print(f"\n{'case':<{width}}  {'mm-image warm/first ms':>24}  {'deepseek-r1 warm/first ms':>26}  {'trace ms':>9}")
    for name, _ in CASES:
        row = columns.get(name, {})
        print(f"{name:<{width}}  {row.get(heads[0], '-'):>24}  {row.get(heads[1], '-'):>26}  {row.get(heads[2], '-'):>9}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
