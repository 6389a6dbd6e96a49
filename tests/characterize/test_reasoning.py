"""Reasoning statistics on the shared deepseek-r1 pool and on synthetic traces with known modes."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from servegen_core.characterize import reasoning as R
from servegen_core.schema import empty_trace, validate_trace

from _reference import assert_empty, assert_no_nan, cell_requests, pool_weighted, stats, weighted_mean


def trace_with(ratio=None, output=None, clients=None, **extra) -> pl.DataFrame:
    n = len(ratio if ratio is not None else output)
    rng = np.random.default_rng(0)
    cols = {
        "timestamp_s": np.sort(rng.uniform(0, 86400, n)),
        "client_id": clients if clients is not None else np.array(["c"] * n),
        "input_tokens": np.full(n, 100),
        "output_tokens": output if output is not None else np.full(n, 1000),
        **extra,
    }
    if ratio is not None:
        cols["reason_ratio"] = ratio
    return validate_trace(pl.DataFrame(cols))


def bc_reference(x: np.ndarray) -> float:
    n = x.size
    g1 = sps.skew(x, bias=False)
    g2 = sps.kurtosis(x, bias=False)
    return (g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


# ---------------------------------------------------------------------------------------------
# Reason ratio on the pool
# ---------------------------------------------------------------------------------------------


def test_reason_ratio_bins_are_k_over_501(deepseek_r1):
    values = deepseek_r1.distributions.filter(pl.col("field") == "reason_ratio")["value"].unique().to_numpy()
    k = values * 501
    assert np.abs(k - np.round(k)).max() < 1e-9
    assert np.abs(values * 500 - np.round(values * 500)).max() > 0.1  # not k/500
    res = R.reason_ratio_distribution(deepseek_r1)
    assert res.grid_denominator == 501
    assert R.ratio_grid(np.arange(0, 501) / 500) == 500
    assert R.ratio_grid(np.array([0.5, 1 / np.pi])) is None


def test_reason_ratio_distribution_matches_reference(deepseek_r1):
    ref = pool_weighted(deepseek_r1, "reason_ratio")
    res = R.reason_ratio_distribution(deepseek_r1)
    exp = stats(ref["value"].to_numpy(), ref["weight"].to_numpy())
    row = res.summary.row(0, named=True)
    assert row["mean"] == pytest.approx(exp["mean"], rel=1e-9)
    for k in ("p50", "p90", "p99", "max"):
        assert row[k] == exp[k]
    agg = ref.group_by("value").agg(pl.col("weight").sum()).sort("value")
    np.testing.assert_allclose(res.frame["prob"].to_numpy(), (agg["weight"] / agg["weight"].sum()).to_numpy(), rtol=1e-9)
    assert res.frame["reason_ratio"].to_list() == agg["value"].to_list()


def test_pool_reasoning_share_and_sampled_tokens(deepseek_r1):
    out = pool_weighted(deepseek_r1, "output_tokens")
    rat = pool_weighted(deepseek_r1, "reason_ratio")
    cell_out = out.group_by("client_id", "start_s").agg((pl.col("value") * pl.col("weight")).sum().alias("tok"), pl.col("weight").sum().alias("req"))
    cell_rat = rat.group_by("client_id", "start_s").agg(((pl.col("value") * pl.col("weight")).sum() / pl.col("weight").sum()).alias("ratio"))
    cells = cell_out.join(cell_rat, on=["client_id", "start_s"])
    share = float((cells["tok"] * cells["ratio"]).sum() / cells["tok"].sum())
    mean_reasoning = float((cells["tok"] * cells["ratio"]).sum() / cells["req"].sum())
    res = R.reasoning_tokens(deepseek_r1, sample_size=300_000, seed=5)
    assert res.reasoning_share == pytest.approx(share, rel=1e-9)
    s = {r["quantity"]: r for r in res.summary.iter_rows(named=True)}
    # Sampled draws keep the expected values (independence within a cell): 2 % tolerance.
    assert s["reasoning"]["mean"] == pytest.approx(mean_reasoning, rel=0.02)
    assert s["output"]["mean"] == pytest.approx(float(cell_out["tok"].sum() / cell_out["req"].sum()), rel=0.02)
    assert s["answer"]["mean"] == pytest.approx(s["output"]["mean"] - s["reasoning"]["mean"], rel=1e-9)
    assert res.requests == pytest.approx(float(cell_requests(deepseek_r1).join(out.select("client_id", "start_s").unique(), on=["client_id", "start_s"])["requests"].sum()), rel=1e-9)
    for q in ("output", "reasoning", "answer"):
        assert res.histogram.filter(pl.col("quantity") == q)["prob"].sum() == pytest.approx(1.0)
    assert_no_nan(res)


def test_pool_ratio_bimodality(deepseek_r1):
    res = R.bimodality(deepseek_r1)
    ref = pool_weighted(deepseek_r1, "reason_ratio")
    x, w = ref["value"].to_numpy(), ref["weight"].to_numpy()
    n = w.sum()
    m = weighted_mean(x, w)
    m2, m3, m4 = (weighted_mean((x - m) ** k, w) for k in (2, 3, 4))
    g1, g2 = m3 / m2**1.5, m4 / m2**2 - 3
    G1 = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    G2 = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
    bc = (G1**2 + 1) / (G2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    assert res.bc == pytest.approx(bc, rel=1e-9)
    assert res.threshold == pytest.approx(5 / 9)
    assert res.bimodal is bool(bc > 5 / 9)
    comps = res.components
    assert comps["weight"].sum() == pytest.approx(1.0)
    assert comps["location"][0] < comps["location"][1]
    # The fitted mixture explains the data better than one Gaussian.
    fit = R.fit_two_gaussians(x, w)
    sd = np.sqrt(m2)
    assert fit.loglik[0] > float(np.dot(w, sps.norm.logpdf(x, m, sd)))
    assert_no_nan(res)


def test_pool_per_client_bimodality(deepseek_r1):
    res = R.bimodality(deepseek_r1, per_client=True, min_requests=1000)
    per = res.per_client
    req = cell_requests(deepseek_r1).group_by("client_id").agg(pl.col("requests").sum())
    big = set(req.filter(pl.col("requests") >= 1000)["client_id"].to_list())
    assert set(per["client_id"].to_list()) <= big and len(per) >= len(big) - 2
    ref = pool_weighted(deepseek_r1, "reason_ratio")
    c = per["client_id"][0]
    mine = ref.filter(pl.col("client_id") == c)
    x, w = mine["value"].to_numpy(), mine["weight"].to_numpy()
    single = R.bimodality_coefficient(x, w)[0]
    assert per["bc"][0] == pytest.approx(single, rel=1e-9)
    assert per["requests"][0] == pytest.approx(w.sum(), rel=1e-9)
    assert (per["bimodal"] == (per["bc"] > 5 / 9)).all()
    assert_no_nan(res)


# ---------------------------------------------------------------------------------------------
# Synthetic traces with known modes
# ---------------------------------------------------------------------------------------------


def test_two_mode_ratio_located_within_ten_percent():
    rng = np.random.default_rng(21)
    n = 20_000
    low = rng.normal(0.25, 0.05, int(n * 0.4))
    high = rng.normal(0.75, 0.06, n - low.size)
    ratio = np.clip(np.concatenate([low, high]), 0, 1)
    res = R.bimodality(trace_with(ratio=ratio))
    c = res.components
    assert c["location"][0] == pytest.approx(0.25, rel=0.1)
    assert c["location"][1] == pytest.approx(0.75, rel=0.1)
    assert c["weight"][0] == pytest.approx(0.4, abs=0.03)
    assert res.bimodal and res.bc > 5 / 9
    assert res.bc == pytest.approx(bc_reference(ratio), rel=1e-6)
    assert res.ashman_d > 2


def test_unimodal_ratio_is_not_bimodal():
    rng = np.random.default_rng(22)
    ratio = np.clip(rng.normal(0.6, 0.1, 20_000), 0, 1)
    res = R.bimodality(trace_with(ratio=ratio))
    assert res.bc == pytest.approx(bc_reference(ratio), rel=1e-6)
    assert res.bc < 5 / 9 and res.bimodal is False


def test_two_mode_reasoning_length_located_within_ten_percent():
    rng = np.random.default_rng(23)
    n = 30_000
    reasoning = np.round(np.exp(np.concatenate([rng.normal(np.log(300), 0.3, n // 2), rng.normal(np.log(3000), 0.3, n - n // 2)])))
    output = (reasoning + 200).astype(np.int64)
    trace = trace_with(output=output, reasoning_tokens=reasoning.astype(np.int64))
    res = R.bimodality(trace, on="reasoning_tokens")
    loc = res.components["location"].to_list()
    assert loc[0] == pytest.approx(300, rel=0.1)
    assert loc[1] == pytest.approx(3000, rel=0.1)
    assert res.components["weight"][0] == pytest.approx(0.5, abs=0.03)
    assert res.bc == pytest.approx(bc_reference(np.log(reasoning)), rel=1e-6)
    assert res.bimodal


def test_per_client_on_trace():
    rng = np.random.default_rng(24)
    n = 4000
    bimodal = np.clip(np.concatenate([rng.normal(0.2, 0.04, n // 2), rng.normal(0.8, 0.04, n // 2)]), 0, 1)
    unimodal = np.clip(rng.normal(0.5, 0.1, n), 0, 1)
    clients = np.array(["bi"] * n + ["uni"] * n + ["few"] * 5)
    ratio = np.concatenate([bimodal, unimodal, np.full(5, 0.3)])
    res = R.bimodality(trace_with(ratio=ratio, clients=clients), per_client=True)
    per = {r["client_id"]: r for r in res.per_client.iter_rows(named=True)}
    assert set(per) == {"bi", "uni"}  # "few" has fewer than min_requests
    assert per["bi"]["bimodal"] and not per["uni"]["bimodal"]
    assert per["bi"]["location1"] == pytest.approx(0.2, rel=0.1) and per["bi"]["location2"] == pytest.approx(0.8, rel=0.1)
    assert per["bi"]["bc"] == pytest.approx(bc_reference(bimodal), rel=1e-6)
    assert per["uni"]["bc"] == pytest.approx(bc_reference(unimodal), rel=1e-6)


def test_trace_reasoning_tokens_from_ratio():
    rng = np.random.default_rng(25)
    out = rng.integers(10, 5000, 3000)
    ratio = rng.integers(0, 501, 3000) / 501
    res = R.reasoning_tokens(trace_with(ratio=ratio, output=out))
    reasoning = np.round(out * ratio)
    s = {r["quantity"]: r for r in res.summary.iter_rows(named=True)}
    assert s["reasoning"]["mean"] == pytest.approx(reasoning.mean())
    assert s["reasoning"]["p90"] == np.quantile(reasoning, 0.9, method="inverted_cdf")
    assert s["answer"]["p50"] == np.quantile(out - reasoning, 0.5, method="inverted_cdf")
    assert res.reasoning_share == pytest.approx(reasoning.sum() / out.sum())
    edges = np.unique(np.concatenate(([0.0], np.geomspace(1.0, out.max() + 1.0, 40))))
    for q, x in (("output", out), ("reasoning", reasoning), ("answer", out - reasoning)):
        h = res.histogram.filter(pl.col("quantity") == q)
        np.testing.assert_allclose(h["bin_lo"].to_numpy(), edges[:-1])
        np.testing.assert_allclose(h["prob"].to_numpy(), np.histogram(x, bins=edges)[0] / x.size)
    dist = R.reason_ratio_distribution(trace_with(ratio=ratio, output=out))
    assert dist.grid_denominator == 501
    assert dist.summary["mean"][0] == pytest.approx(ratio.mean())


def test_trace_ratio_derived_from_reasoning_tokens():
    out = np.array([100, 200, 0, 400])
    reasoning = np.array([50, 200, 0, 100])
    res = R.reason_ratio_distribution(trace_with(output=out, reasoning_tokens=reasoning))
    # the request with 0 output tokens has no ratio
    assert res.summary["requests"][0] == 3
    assert sorted(res.frame["reason_ratio"].to_list()) == [0.25, 0.5, 1.0]


def test_em_vectorized_over_groups_matches_separate_fits():
    rng = np.random.default_rng(26)
    xa = np.concatenate([rng.normal(0, 1, 3000), rng.normal(6, 1, 2000)])
    xb = np.concatenate([rng.normal(10, 2, 1000), rng.normal(20, 1, 4000)])
    both = R.fit_two_gaussians(np.concatenate([xa, xb]), groups=np.r_[np.zeros(xa.size, int), np.ones(xb.size, int)])
    a, b = R.fit_two_gaussians(xa), R.fit_two_gaussians(xb)
    np.testing.assert_allclose(both.mu, np.vstack([a.mu, b.mu]), rtol=1e-6)
    np.testing.assert_allclose(both.weight, np.vstack([a.weight, b.weight]), rtol=1e-6)
    assert both.mu[0] == pytest.approx([0, 6], abs=0.1)
    assert both.mu[1] == pytest.approx([10, 20], abs=0.3)
    assert both.converged.all()


# ---------------------------------------------------------------------------------------------
# Degenerate input
# ---------------------------------------------------------------------------------------------


def _all(source):
    return [
        R.reason_ratio_distribution(source),
        R.reasoning_tokens(source),
        R.bimodality(source),
        R.bimodality(source, on="reasoning_tokens"),
    ]


def test_language_pool_has_no_reason_ratio(m_large):
    for r in _all(m_large):
        assert_empty(r, "reason_ratio")


def test_trace_without_reasoning_columns(traces_dir):
    from servegen_core.sources.traces import load_trace

    azure = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace
    for r in _all(azure):
        assert_empty(r, "no reason")


def test_empty_inputs(deepseek_r1):
    for r in _all(empty_trace(("reason_ratio",))):
        assert_empty(r, "empty trace")
    for r in _all(deepseek_r1.span(10**9, 10**9 + 600)):
        assert_empty(r, "empty selection")
    zero = dataclasses.replace(deepseek_r1, windows=deepseek_r1.windows.with_columns(pl.lit(0.0).alias("rate_rps")))
    for r in _all(zero):
        assert_empty(r, "rates are zero")


def test_single_request_and_constant_ratio():
    one = trace_with(ratio=np.array([0.5]))
    assert R.reason_ratio_distribution(one).ok
    assert_empty(R.bimodality(one), "more than 3")
    const = trace_with(ratio=np.full(100, 0.5))
    assert_empty(R.bimodality(const), "no spread")
    no_reasoning = R.bimodality(trace_with(ratio=np.zeros(50)), on="reasoning_tokens")
    assert_empty(no_reasoning, "no request has reasoning tokens")


def test_bad_option():
    with pytest.raises(ValueError, match="on must be"):
        R.bimodality(trace_with(ratio=np.array([0.5])), on="ratio")
