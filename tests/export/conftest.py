"""Fixtures of the export tests: a composed-like workload and the Mooncake release trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.schema import validate_trace


@pytest.fixture(scope="module")
def workload() -> pl.DataFrame:
    """A multimodal, reasoning, multi-client RequestTrace shaped like a composed workload."""
    rng = np.random.default_rng(20250611)
    n = 400
    clients = rng.choice(["0", "17", "42"], size=n, p=[0.6, 0.3, 0.1])
    gaps = rng.gamma(shape=0.5, scale=0.2, size=n)
    ts = np.cumsum(gaps) - gaps[0]
    image_count = rng.poisson(0.8, size=n)
    image_tokens = image_count * rng.integers(200, 1300, size=n)
    text_tokens = np.maximum(1, rng.lognormal(6.5, 1.2, size=n).astype(np.int64))
    output = rng.exponential(300, size=n).astype(np.int64)
    output[::37] = 0  # a few empty answers
    ratio = np.round(rng.beta(2, 2, size=n) * 501) / 501
    reasoning = np.round(output * ratio).astype(np.int64)
    session = np.where(rng.random(n) < 0.1, np.char.add("s", rng.integers(0, 20, n).astype(str)), None)
    df = pl.DataFrame(
        {
            "timestamp_s": ts,
            "client_id": clients,
            "input_tokens": text_tokens + image_tokens,
            "output_tokens": output,
            "text_tokens": text_tokens,
            "image_tokens": image_tokens,
            "image_count": image_count,
            "reasoning_tokens": reasoning,
            "answer_tokens": output - reasoning,
            "reason_ratio": ratio,
            "session_id": pl.Series(session.tolist(), dtype=pl.String),
        }
    )
    return validate_trace(df)


@pytest.fixture(scope="module")
def mooncake_source(traces_dir: Path) -> tuple[Path, pl.DataFrame]:
    """The Mooncake release trace as a RequestTrace (read with polars directly)."""
    path = traces_dir / "mooncake_synthetic_trace.jsonl"
    raw = pl.read_ndjson(path)
    trace = raw.select(
        timestamp_s=pl.col("timestamp") / 1000.0,
        client_id=pl.lit("0"),
        input_tokens=pl.col("input_length"),
        output_tokens=pl.col("output_length"),
        hash_ids=pl.col("hash_ids"),
    )
    return path, validate_trace(trace)
