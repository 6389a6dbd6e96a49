"""Client summary on the shared pools and traces, checked against independent calculations; the
client filter used by the explorer and the composer."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from servegen_core.errors import SpecError
from servegen_core.result import Table
from servegen_core.schema import empty_trace, validate_trace
from servegen_core.characterize.summary import BASE_COLUMNS, client_summary, filter_clients
from servegen_core.sources.traces import load_trace

from _reference import assert_empty, assert_no_nan, pool_weighted, stats, weighted_mean


@pytest.fixture(scope="module")
def large_summary(m_large):
    return client_summary(m_large)


@pytest.fixture(scope="module")
def azure(traces_dir):
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace


def test_pool_load_columns(m_large, large_summary):
    s = large_summary.frame
    assert list(s.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert s["client_id"].to_list() == list(m_large.client_ids)
    w = m_large.windows.with_columns((pl.col("rate_rps") * pl.col("duration_s")).alias("req"))
    ref = w.group_by("client_id").agg(pl.col("req").sum(), pl.col("rate_rps").mean().alias("mean"), pl.col("rate_rps").max().alias("peak"))
    total = ref["req"].sum()
    joined = s.join(ref, on="client_id")
    np.testing.assert_allclose(joined["requests"], joined["req"], rtol=1e-12)
    np.testing.assert_allclose(joined["request_share"], joined["req"] / total, rtol=1e-12)
    np.testing.assert_allclose(joined["mean_rate_rps"], joined["mean"], rtol=1e-12)
    np.testing.assert_allclose(joined["peak_rate_rps"], joined["peak"], rtol=1e-12)
    assert s["request_share"].sum() == pytest.approx(1.0)


def test_pool_dominant_pattern_and_cv(m_large, large_summary):
    w = m_large.windows.with_columns((pl.col("rate_rps") * pl.col("duration_s")).alias("req"))
    s = large_summary.frame
    for c in ("0", "3", "61"):
        mine = w.filter(pl.col("client_id") == c)
        by = mine.filter(pl.col("pattern") != "").group_by("pattern").agg(pl.col("req").sum()).sort("req", descending=True)
        row = s.filter(pl.col("client_id") == c).row(0, named=True)
        assert row["dominant_pattern"] == by["pattern"][0]
        # window_cv semantics: windows with at least 10 requests and a finite CV
        ok = mine.filter((pl.col("req") >= 10 - 1e-9) & pl.col("cv").is_finite())
        assert row["cv_mean"] == pytest.approx(ok["cv"].mean(), rel=1e-9)
        assert row["cv_rate_weighted"] == pytest.approx(weighted_mean(ok["cv"], ok["req"]), rel=1e-9)


def test_pool_lengths_and_flag(m_large, large_summary, servegen_dir):
    s = large_summary.frame
    missing = {
        line.split("chunk-")[1].split("-")[0]
        for line in (servegen_dir / "MISSING.txt").read_text().split()
        if line.startswith("language/m-large/")
    }
    assert set(s.filter(~pl.col("has_lengths"))["client_id"].to_list()) == missing
    nolen = s.filter(~pl.col("has_lengths"))
    assert nolen["input_mean"].null_count() == nolen.height == 15
    ref = pool_weighted(m_large, "output_tokens")
    for c in ("0", "2", "140"):
        part = ref.filter(pl.col("client_id") == c)
        exp = stats(part["value"].to_numpy(), part["weight"].to_numpy())
        row = s.filter(pl.col("client_id") == c).row(0, named=True)
        assert row["output_mean"] == pytest.approx(exp["mean"], rel=1e-9)
        assert (row["output_p50"], row["output_p90"], row["output_p99"]) == (exp["p50"], exp["p90"], exp["p99"])
    assert_no_nan(large_summary)


def test_multimodal_pool_columns(mm_image):
    mm = mm_image
    s = client_summary(mm).frame
    for c in ("image_token_share", "image_request_share", "image_count_mean", "text_tokens_mean", "image_tokens_mean"):
        assert c in s.columns
    img = pool_weighted(mm, "image_tokens")
    txt = pool_weighted(mm, "text_tokens")
    c = "5"
    it = img.filter(pl.col("client_id") == c)
    tt = txt.filter(pl.col("client_id") == c)
    row = s.filter(pl.col("client_id") == c).row(0, named=True)
    img_tok, txt_tok = float((it["value"] * it["weight"]).sum()), float((tt["value"] * tt["weight"]).sum())
    audio_video = 0.0  # recorded as 0 throughout in this model
    assert row["image_token_share"] == pytest.approx(img_tok / (img_tok + txt_tok + audio_video), rel=1e-9)
    assert row["input_mean"] == pytest.approx((img_tok + txt_tok) / float(it["weight"].sum()), rel=1e-9)
    # No input_tokens PDF: the percentiles of the sum are not identified.
    assert s["input_p50"].null_count() == s.height
    assert_no_nan(client_summary(mm))


def test_reasoning_pool_columns(deepseek_r1):
    r1 = deepseek_r1
    s = client_summary(r1).frame
    out = pool_weighted(r1, "output_tokens")
    rat = pool_weighted(r1, "reason_ratio")
    c = "3"
    o = out.filter(pl.col("client_id") == c).group_by("start_s").agg(
        (pl.col("value") * pl.col("weight")).sum().alias("tok")
    )
    r = rat.filter(pl.col("client_id") == c).group_by("start_s").agg(
        ((pl.col("value") * pl.col("weight")).sum() / pl.col("weight").sum()).alias("ratio")
    )
    j = o.join(r, on="start_s")
    row = s.filter(pl.col("client_id") == c).row(0, named=True)
    assert row["reasoning_share"] == pytest.approx(float((j["tok"] * j["ratio"]).sum() / j["tok"].sum()), rel=1e-9)
    mine = rat.filter(pl.col("client_id") == c)
    assert row["reason_ratio_mean"] == pytest.approx(weighted_mean(mine["value"], mine["weight"]), rel=1e-9)
    assert row["reason_ratio_p50"] == stats(mine["value"].to_numpy(), mine["weight"].to_numpy())["p50"]
    # Sarle's coefficient from the request-weighted moments (n = the client's requests)
    x, w = mine["value"].to_numpy(), mine["weight"].to_numpy()
    n, m = w.sum(), weighted_mean(x, w)
    m2, m3, m4 = (weighted_mean((x - m) ** k, w) for k in (2, 3, 4))
    g1, g2 = m3 / m2**1.5, m4 / m2**2 - 3
    G1 = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    G2 = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
    assert row["reason_ratio_bc"] == pytest.approx((G1**2 + 1) / (G2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), rel=1e-9)
    assert_no_nan(client_summary(r1))


def test_azure_trace_summary(azure, traces_dir):
    raw = pl.read_csv(traces_dir / "AzureLLMInferenceTrace_conv.csv")
    s = client_summary(azure).frame
    assert s.height == 1
    row = s.row(0, named=True)
    assert row["client_id"] == "all" and row["requests"] == 19366 and row["request_share"] == 1.0
    assert row["input_mean"] == pytest.approx(raw["ContextTokens"].mean(), rel=1e-12)
    assert row["output_p90"] == np.quantile(raw["GeneratedTokens"].to_numpy(), 0.9, method="inverted_cdf")
    ts = azure["timestamp_s"].to_numpy()
    w = np.floor(ts / 600).astype(int)
    span = (w.max() - w.min() + 1) * 600
    assert row["mean_rate_rps"] == pytest.approx(19366 / span)
    assert row["peak_rate_rps"] == pytest.approx(np.bincount(w).max() / 600)
    assert row["dominant_pattern"] is None and row["has_lengths"] is True
    # CVs of the 600 s windows with at least 10 requests, by hand
    cvs, counts = [], []
    for k in np.unique(w):
        inside = np.sort(ts[w == k])
        if inside.size >= 10:
            gaps = np.diff(inside)
            cvs.append(gaps.std() / gaps.mean())
            counts.append(inside.size)
    assert row["cv_mean"] == pytest.approx(np.mean(cvs), rel=1e-9)
    assert row["cv_rate_weighted"] == pytest.approx(np.average(cvs, weights=counts), rel=1e-9)


def test_trace_with_several_clients():
    rng = np.random.default_rng(2)
    n = 3000
    ts = np.sort(rng.uniform(0, 7200, n))
    clients = rng.choice(np.array(["10", "2", "x"]), n, p=[0.5, 0.3, 0.2])
    inp = rng.integers(1, 3000, n)
    out = rng.integers(1, 800, n)
    ratio = rng.integers(0, 501, n) / 501
    trace = validate_trace(pl.DataFrame({"timestamp_s": ts, "client_id": clients, "input_tokens": inp, "output_tokens": out, "reason_ratio": ratio}))
    s = client_summary(trace).frame
    assert s["client_id"].to_list() == ["2", "10", "x"]  # numeric ids in numeric order
    for c in ("2", "10", "x"):
        m = clients == c
        row = s.filter(pl.col("client_id") == c).row(0, named=True)
        assert row["requests"] == m.sum()
        assert row["input_p99"] == np.quantile(inp[m], 0.99, method="inverted_cdf")
        assert row["reason_ratio_mean"] == pytest.approx(ratio[m].mean())
        assert row["reasoning_share"] == pytest.approx(np.round(out[m] * ratio[m]).sum() / out[m].sum())
        n = m.sum()  # Sarle's coefficient from SciPy's bias-corrected skewness and kurtosis
        g1, g2 = sps.skew(ratio[m], bias=False), sps.kurtosis(ratio[m], bias=False)
        assert row["reason_ratio_bc"] == pytest.approx((g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), rel=1e-9)
    assert_no_nan(client_summary(trace))


def test_multimodal_trace_columns():
    rng = np.random.default_rng(3)
    n = 2000
    clients = rng.choice(np.array(["a", "b"]), n)
    count = rng.integers(0, 3, n)
    image = count * 576
    text = rng.integers(10, 500, n)
    trace = validate_trace(
        pl.DataFrame({"timestamp_s": np.arange(n, dtype=float), "client_id": clients, "input_tokens": text + image,
                      "output_tokens": np.ones(n, dtype=np.int64), "text_tokens": text, "image_tokens": image, "image_count": count})
    )
    s = client_summary(trace).frame
    for c in ("a", "b"):
        m = clients == c
        row = s.filter(pl.col("client_id") == c).row(0, named=True)
        assert row["image_token_share"] == pytest.approx(image[m].sum() / (image[m].sum() + text[m].sum()))
        assert row["image_request_share"] == pytest.approx((image[m] > 0).mean())
        assert row["image_count_mean"] == pytest.approx(count[m].mean())
        assert row["input_mean"] == pytest.approx((text[m] + image[m]).mean())


# ---------------------------------------------------------------------------------------------
# filter_clients
# ---------------------------------------------------------------------------------------------


def test_filter_by_range_and_top_k(large_summary):
    s = large_summary.frame
    ids = filter_clients(large_summary, ranges={"request_share": (0.005, None), "input_mean": (None, 2000)}, top_k=5)
    ref = (
        s.filter((pl.col("request_share") >= 0.005) & (pl.col("input_mean") <= 2000))
        .sort("request_share", descending=True)
        .head(5)["client_id"]
        .to_list()
    )
    assert ids == ref and len(ids) == 5


def test_filter_excludes_nulls_and_orders_by(large_summary):
    s = large_summary.frame
    ids = filter_clients(s, ranges={"output_p50": [0, None]}, by="output_mean")
    assert len(ids) == s.filter(pl.col("has_lengths")).height
    means = s.filter(pl.col("client_id").is_in(ids)).sort("output_mean", descending=True)["client_id"].to_list()
    assert ids == means
    assert filter_clients(s, ranges={"has_lengths": (0, 0)}) == s.filter(~pl.col("has_lengths")).sort(
        "request_share", descending=True
    )["client_id"].to_list()
    assert filter_clients(s, top_k=0) == []
    assert len(filter_clients(s)) == s.height


def test_filter_errors(large_summary):
    with pytest.raises(SpecError, match="clients.ranges.nope"):
        filter_clients(large_summary, ranges={"nope": (0, 1)})
    with pytest.raises(SpecError, match="above"):
        filter_clients(large_summary, ranges={"request_share": (0.5, 0.1)})
    with pytest.raises(SpecError, match="not numeric"):
        filter_clients(large_summary, ranges={"dominant_pattern": (0, 1)})
    with pytest.raises(SpecError, match="clients.by"):
        filter_clients(large_summary, by="nope")
    with pytest.raises(SpecError, match="top_k"):
        filter_clients(large_summary, top_k=-1)
    with pytest.raises(SpecError, match="finite"):
        filter_clients(large_summary, ranges={"request_share": (float("nan"), None)})


# ---------------------------------------------------------------------------------------------
# Degenerate input
# ---------------------------------------------------------------------------------------------


def test_degenerate_inputs(m_large):
    assert_empty(client_summary(empty_trace()), "empty trace")
    assert_empty(client_summary(m_large.span(10**9, 10**9 + 600)), "empty selection")
    zero = dataclasses.replace(m_large, windows=m_large.windows.with_columns(pl.lit(0.0).alias("rate_rps")))
    assert_empty(client_summary(zero), "rates are zero")
    assert filter_clients(Table(pl.DataFrame(schema=BASE_COLUMNS))) == []


def test_client_without_lengths_only(m_large):
    res = client_summary(m_large.select_clients(["15"]))
    assert res.ok
    row = res.frame.row(0, named=True)
    assert row["has_lengths"] is False and row["input_mean"] is None and row["request_share"] == 1.0
    assert_no_nan(res)


def test_single_request_trace(azure):
    res = client_summary(azure.head(1))
    row = res.frame.row(0, named=True)
    assert row["requests"] == 1 and row["cv_mean"] is None and row["input_p50"] == azure["input_tokens"][0]
    assert_no_nan(res)
