"""The fit in client partitions (fit_input / fit_partition / merge_parts): any partitioning of
the clients gives the pool of pool_from_trace byte for byte, on real traces and on a synthetic
bursty trace with known structure, and each client draws from its own stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.sources.fit import (
    client_key,
    client_partitions,
    client_rng,
    fit_gap_groups,
    fit_input,
    fit_partition,
    merge_parts,
    pool_from_trace,
)
from servegen_core.sources.traces import load_trace
from tests.engines.test_ray import _bursty_trace, _pool_digest


def _merged(trace: pl.DataFrame, n_parts: int, **options: object):
    inp, df = fit_input(trace, **options)
    parts = client_partitions(inp, df, n_parts)
    # the parts are fitted in reverse order: merge_parts puts them back in client order
    return merge_parts(inp, [fit_partition(inp, p) for p in reversed(parts)]), len(parts)


@pytest.mark.parametrize("n_parts", [2, 3, 6, 50])
@pytest.mark.parametrize("grid", [None, 1.0])
def test_any_partitioning_gives_the_whole_pool(n_parts: int, grid: float | None) -> None:
    trace = _bursty_trace()
    if grid is not None:
        trace = trace.with_columns((pl.col("timestamp_s") / grid).floor() * grid)
    whole = pool_from_trace(trace, seed=8)
    merged, used = _merged(trace, n_parts, seed=8)
    assert 2 <= used <= min(n_parts, 6)  # partitions of whole clients, about equal in requests
    assert _pool_digest(merged) == _pool_digest(whole)
    assert whole.windows["client_id"].n_unique() == 6
    if grid is None:
        assert whole.arrival_models is not None and whole.arrival_models["client_id"].n_unique() == 6
    else:
        assert whole.arrival_models is None
        # de-quantized: every kept time lies in its grid cell, the gaps are not whole seconds
        assert (whole.gaps["gap_s"] % 1.0 != 0.0).mean() > 0.9


@pytest.mark.parametrize("name", ["AzureLLMInferenceTrace_conv.csv", "mooncake_synthetic_trace.jsonl"])
def test_partitions_of_a_real_trace(traces_dir: Path, name: str) -> None:
    trace = load_trace(traces_dir / name).trace
    whole = pool_from_trace(trace, seed=3)
    merged, _ = _merged(trace, 4, seed=3)
    assert _pool_digest(merged) == _pool_digest(whole)
    assert whole.windows.height > 0


def test_a_client_draws_from_its_own_stream() -> None:
    """A client's de-quantized gaps do not depend on which other clients share the trace."""
    trace = _bursty_trace().with_columns(pl.col("timestamp_s").floor())
    both = trace.filter(pl.col("client_id").is_in(["c2", "c5"]))
    # a third client whose requests end before c2's and c5's keeps the grid the same
    other = trace.filter(pl.col("client_id") == "c1").filter(pl.col("timestamp_s") < 3000)
    p_both = pool_from_trace(both, seed=1)
    p_three = pool_from_trace(pl.concat([both, other]).sort("timestamp_s", maintain_order=True), seed=1)
    assert p_both.windows["duration_s"].to_list()[-1] == p_three.windows["duration_s"].to_list()[-1]
    for c in ("c2", "c5"):
        a = p_both.gaps.filter(pl.col("client_id") == c)["gap_s"]
        b = p_three.gaps.filter(pl.col("client_id") == c)["gap_s"]
        assert a.len() > 1000 and a.equals(b)
    assert not pool_from_trace(both, seed=2).gaps["gap_s"].equals(p_both.gaps["gap_s"])
    # the key is the SHA-256 of the id; distinct clients, distinct streams
    assert client_key("c2") == 0x9C0ABE51C6E6655D  # sha256(b"c2") = 9c0abe51c6e6655d...
    assert client_rng(1, "c2", 0).random() != client_rng(1, "c5", 0).random()
    assert client_rng(1, "c2", 0).random() == client_rng(1, "c2", 0).random()


def test_merge_refuses_missing_or_repeated_clients() -> None:
    trace = _bursty_trace(n_clients=3, seconds=1800.0)
    inp, df = fit_input(trace, seed=0)
    parts = [fit_partition(inp, p) for p in client_partitions(inp, df, 3)]
    assert len(parts) >= 2
    with pytest.raises(ValueError, match="expected each of the 3 exactly once"):
        merge_parts(inp, parts[:-1])
    with pytest.raises(ValueError, match="expected each of the 3 exactly once"):
        merge_parts(inp, [*parts, parts[0]])
    with pytest.raises(ValueError, match="not in the fit input"):
        fit_partition(inp, df.with_columns(pl.lit("zz").alias("client_id")))
    with pytest.raises(ValueError, match="n_parts must be at least 1"):
        client_partitions(inp, df, 0)
    # the partitions hold whole clients, every request once
    cut = client_partitions(inp, df, 2)
    assert sum(p.height for p in cut) == df.height
    assert not set(cut[0]["client_id"].unique()) & set(cut[1]["client_id"].unique())
    assert sum(p.height for p in cut) == trace.height


@pytest.mark.parametrize("censor_below", [0.0, 0.05])
def test_a_window_fit_does_not_depend_on_the_other_windows(censor_below: float) -> None:
    """fit_gap_groups solves all windows at once; each window's fit (Weibull profile Newton,
    censored roots) stops on its own convergence, so fitted alone it has the same bits."""
    rng = np.random.default_rng(0)
    gaps, group = [], []
    for g in range(40):
        k = 0.3 + 0.1 * g
        x = rng.weibull(k, 50 + 10 * g) * 2.0 if g % 2 else rng.gamma(k, 2.0, 50 + 10 * g)
        gaps.append(np.where(x < censor_below, 0.0, x))
        group.append(np.full(x.size, g))
    x, grp = np.concatenate(gaps), np.concatenate(group)
    together = fit_gap_groups(x, grp, 40, censor_below=censor_below)
    assert together.height == 40 and (together["family"] == "Weibull").sum() > 5
    for g in (0, 7, 21, 39):
        alone = fit_gap_groups(gaps[g], np.zeros(gaps[g].size, dtype=np.int64), 1, censor_below=censor_below)
        assert alone.drop("group").row(0) == together.filter(pl.col("group") == g).drop("group").row(0)
