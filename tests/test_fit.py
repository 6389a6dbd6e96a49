"""pool_from_trace(): a raw trace summarized into a ClientPool, checked against direct computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.fit import pool_from_trace
from servegen_core.pool import DISTRIBUTION_SCHEMA, LENGTH_WINDOW_SCHEMA, WINDOW_SCHEMA, ClientPool
from servegen_core.traces import load_trace


@pytest.fixture(scope="module")
def azure(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv", preset="azure").trace


@pytest.fixture(scope="module")
def demo_trace(demo_dir: Path) -> pl.DataFrame:
    return load_trace(demo_dir / "traces" / "demo_requests.csv", client_column="client_id").trace


def test_frames_have_the_pool_schemas(azure):
    pool = pool_from_trace(azure, name="trace/azure")
    assert dict(pool.windows.schema) == WINDOW_SCHEMA
    assert dict(pool.distributions.schema) == DISTRIBUTION_SCHEMA
    assert dict(pool.length_windows.schema) == LENGTH_WINDOW_SCHEMA
    assert pool.name == "trace/azure" and pool.client_ids == ("all",)
    assert pool.fields == ("input_tokens", "output_tokens")


def test_rates_cv_and_gamma_moments_match_the_trace(azure):
    pool = pool_from_trace(azure)
    ts = azure["timestamp_s"].to_numpy()
    n_windows = int(ts.max() // 600) + 1
    assert pool.windows.height == n_windows
    assert (pool.windows["rate_rps"] * 600).sum() == pytest.approx(len(ts))
    for row in pool.windows.iter_rows(named=True):
        inside = ts[(ts >= row["start_s"]) & (ts < row["start_s"] + 600)]
        assert row["rate_rps"] * 600 == pytest.approx(len(inside))
        gaps = np.diff(inside)
        assert row["cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-9)
        assert row["pattern"] == "Gamma"
        assert row["shape"] == pytest.approx(1 / row["cv"] ** 2, rel=1e-9)
        assert row["shape"] * row["scale"] == pytest.approx(gaps.mean(), rel=1e-9)


def test_length_pdfs_are_the_empirical_frequencies(azure):
    pool = pool_from_trace(azure)
    assert pool.length_windows["active"].to_list() == [True]
    sums = pool.distributions.group_by("field").agg(pl.col("prob").sum())
    assert sums["prob"].to_list() == pytest.approx([1.0, 1.0])
    counts = azure["output_tokens"].value_counts()
    top = counts.sort("count", descending=True).row(0, named=True)
    pdf = pool.pdf("all", "output_tokens", 0)
    assert pdf.filter(pl.col("value") == top["output_tokens"])["prob"][0] == pytest.approx(top["count"] / azure.height)
    assert pdf.height == counts.height


def test_per_client_windows_and_sparse_windows(demo_trace):
    # Thin one client out: nothing in 600-1800 s and 3600-7200 s, two requests in 1800-2400 s.
    cid = demo_trace["client_id"][0]
    t = pl.col("timestamp_s")
    inside = (pl.col("client_id") == cid) & (((t >= 600) & (t < 2400)) | ((t >= 3600) & (t < 7200)))
    kept = (pl.col("client_id") == cid) & (t >= 1800) & (t < 2400)
    kept_two = demo_trace.with_row_index("i").filter(kept)["i"].head(2)
    trace = demo_trace.with_row_index("i").filter(~inside | pl.col("i").is_in(kept_two.implode())).drop("i")
    pool = pool_from_trace(trace, name="trace/demo", length_window_s=3600)
    ids = sorted(trace["client_id"].unique().to_list(), key=int)
    assert pool.client_ids == tuple(ids)
    n_windows = int(trace["timestamp_s"].max() // 600) + 1
    assert pool.windows.height == len(ids) * n_windows  # every client gets every window
    per = trace.with_columns((pl.col("timestamp_s") // 600 * 600).cast(pl.Int64).alias("start_s")).group_by("client_id", "start_s").len()
    j = pool.windows.join(per, on=["client_id", "start_s"], how="left").with_columns(pl.col("len").fill_null(0))
    assert ((j["rate_rps"] * 600 - j["len"]).abs() < 1e-9).all()
    # empty windows: rate 0 and no pattern; windows with 1-2 requests: Poisson pattern
    empty = j.filter(pl.col("len") == 0)
    assert empty.height == 2 + 6 and (empty["pattern"] == "").all() and (empty["shape"] == 0.0).all()
    two = j.filter((pl.col("client_id") == cid) & (pl.col("start_s") == 1800)).row(0, named=True)
    assert two["len"] == 2 and (two["pattern"], two["shape"], two["cv"]) == ("Gamma", 1.0, 1.0)
    # a length window without requests is inactive and has no distribution rows
    lw_counts = trace.with_columns((pl.col("timestamp_s") // 3600 * 3600).cast(pl.Int64).alias("start_s")).group_by("client_id", "start_s").len()
    lw = pool.length_windows.join(lw_counts, on=["client_id", "start_s"], how="left")
    assert (lw["active"] == lw["len"].is_not_null()).all()
    assert lw.filter(~pl.col("active")).select("client_id", "start_s").rows() == [(cid, 3600)]
    assert pool.distributions.filter((pl.col("client_id") == cid) & (pl.col("start_s") == 3600)).height == 0
    single = pool_from_trace(trace, per_client=False)
    assert single.client_ids == ("all",)
    assert (single.windows["rate_rps"] * 600).sum() == pytest.approx(trace.height)


def test_windows_without_usable_gaps_get_the_poisson_pattern():
    # window 0: two requests; window 1: five requests at one instant; window 2: none; window 3: a fit
    ts = [10.0, 300.0, 700.0, 700.0, 700.0, 700.0, 700.0, 1800.0, 1801.0, 1803.0, 1810.0]
    trace = pl.DataFrame({"timestamp_s": ts, "client_id": ["c"] * len(ts), "input_tokens": [5] * len(ts), "output_tokens": [7] * len(ts)})
    w = pool_from_trace(trace).windows
    assert w["rate_rps"].to_list() == pytest.approx([2 / 600, 5 / 600, 0.0, 4 / 600])
    assert w["pattern"].to_list() == ["Gamma", "Gamma", "", "Gamma"]
    assert w["shape"][:2].to_list() == [1.0, 1.0] and w["cv"][:2].to_list() == [1.0, 1.0]
    assert w["scale"][:2].to_list() == pytest.approx([300.0, 120.0])  # 1 / rate
    gaps = np.array([1.0, 2.0, 7.0])
    assert w["cv"][3] == pytest.approx(gaps.std() / gaps.mean())


def test_bad_arguments(azure):
    with pytest.raises(ValueError, match="multiple of window_s"):
        pool_from_trace(azure, window_s=600, length_window_s=1000)
    with pytest.raises(ValueError, match="window_s"):
        pool_from_trace(azure, window_s=0)
    with pytest.raises(ValueError, match="empty"):
        pool_from_trace(azure.head(0))


def test_gaps_are_the_observed_gaps_of_each_client_window(demo_trace):
    pool = pool_from_trace(demo_trace, name="trace/demo")
    assert pool.gaps is not None
    assert dict(pool.gaps.schema) == {"client_id": pl.String(), "start_s": pool.windows.schema["start_s"], "gap_s": pl.Float64()}
    # every client-window with n requests has n - 1 gaps, and they sum to last - first arrival
    per = (
        demo_trace.with_columns((pl.col("timestamp_s") // 600 * 600).cast(pl.Int64).alias("start_s"))
        .group_by("client_id", "start_s")
        .agg(pl.len().alias("n"), (pl.col("timestamp_s").max() - pl.col("timestamp_s").min()).alias("extent"))
    )
    got = pool.gaps.group_by("client_id", "start_s").agg(pl.len().alias("m"), pl.col("gap_s").sum().alias("total"))
    j = per.join(got, on=["client_id", "start_s"], how="left").with_columns(pl.col("m").fill_null(0), pl.col("total").fill_null(0.0))
    assert (j["m"] == j["n"] - 1).all()
    assert np.allclose(j["total"].to_numpy(), j["extent"].to_numpy(), rtol=0, atol=1e-6)
    assert (pool.gaps["gap_s"] >= 0).all()
    # carried through span and select_clients
    sub = pool.span(600, 1800)
    assert set(sub.gaps["start_s"].unique().to_list()) <= {600, 1200}
    assert sub.gaps.height == pool.gaps.filter(pl.col("start_s").is_between(600, 1200)).height > 0
    cid = pool.client_ids[0]
    one = pool.select_clients([cid])
    assert one.gaps["client_id"].unique().to_list() == [cid]
    assert one.gaps.height == pool.gaps.filter(pl.col("client_id") == cid).height


def test_gaps_frame_is_checked():
    w = pl.DataFrame(schema=WINDOW_SCHEMA)
    d = pl.DataFrame(schema=DISTRIBUTION_SCHEMA)
    lw = pl.DataFrame(schema=LENGTH_WINDOW_SCHEMA)
    bad = pl.DataFrame({"client_id": ["a"], "start_s": [0], "gap": [1.0]})
    with pytest.raises(ValueError, match="gaps must have the columns"):
        ClientPool(name="x", source="", windows=w, distributions=d, length_windows=lw, gaps=bad)
    assert ClientPool(name="x", source="", windows=w, distributions=d, length_windows=lw).gaps is None
