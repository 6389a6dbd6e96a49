"""Reference calculations for the characterization tests, written independently of the package.

They use plain Polars joins and group-bys and NumPy sorting, not the package's array codes, so
that a test compares two different routes to the same number.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl

LENGTH_WINDOW_S = 21600


def cell_requests(pool) -> pl.DataFrame:
    """``client_id, start_s, requests``: load of each (client, 6 h length window)."""
    assert (pool.length_windows["start_s"] % LENGTH_WINDOW_S == 0).all()
    return pool.windows.group_by("client_id", (pl.col("start_s") // LENGTH_WINDOW_S * LENGTH_WINDOW_S).alias("start_s")).agg(
        (pl.col("rate_rps") * pl.col("duration_s")).sum().alias("requests")
    )


def pool_weighted(pool, field: str) -> pl.DataFrame:
    """``client_id, start_s, value, weight`` with weight = prob x requests of the cell."""
    d = pool.distributions.filter(pl.col("field") == field)
    return (
        d.join(cell_requests(pool), on=["client_id", "start_s"], how="inner")
        .with_columns((pl.col("prob") * pl.col("requests")).alias("weight"))
        .filter(pl.col("weight") > 0)
        .select("client_id", "start_s", "value", "weight")
    )


def weighted_quantile(values, weights, q: float) -> float:
    """Smallest value whose cumulative weight reaches ``q`` of the total."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    i = int(np.argmax(cum >= q * cum[-1] * (1 - 1e-12)))
    return float(v[i])


def weighted_mean(values, weights) -> float:
    w = np.asarray(weights, dtype=float)
    return float(np.dot(np.asarray(values, dtype=float), w) / w.sum())


def stats(values, weights) -> dict[str, float]:
    return {
        "requests": float(np.sum(weights)),
        "mean": weighted_mean(values, weights),
        "p50": weighted_quantile(values, weights, 0.5),
        "p90": weighted_quantile(values, weights, 0.9),
        "p99": weighted_quantile(values, weights, 0.99),
        "max": float(np.max(values)),
    }


def float_frames(result) -> list[tuple[str, pl.DataFrame]]:
    """Every DataFrame attribute of a result object."""
    out = []
    for f in dataclasses.fields(result):
        v = getattr(result, f.name)
        if isinstance(v, pl.DataFrame):
            out.append((f.name, v))
    return out


def assert_no_nan(result) -> None:
    """No float column of any frame of ``result`` holds NaN or an infinity."""
    for name, frame in float_frames(result):
        for col, dtype in frame.schema.items():
            if dtype == pl.Float64:
                s = frame[col].drop_nulls()
                assert s.is_finite().all(), f"{name}.{col} holds NaN/inf"


def assert_empty(result, *words: str) -> None:
    """An empty result: not ok, a reason containing ``words``, every frame without rows."""
    assert not result.ok
    assert isinstance(result.reason, str) and result.reason
    for w in words:
        assert w in result.reason, (w, result.reason)
    for name, frame in float_frames(result):
        assert frame.height == 0, name


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
