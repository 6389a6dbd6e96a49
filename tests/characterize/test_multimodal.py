"""Multimodal statistics on the shared mm-image pool and on synthetic traces, checked against
independent calculations."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import multimodal as M
from servegen_core.schema import empty_trace, validate_trace

from _reference import assert_empty, assert_no_nan, cell_requests, pool_weighted, weighted_mean


def expected_tokens(pool, field: str) -> float:
    ref = pool_weighted(pool, field)
    return float((ref["value"] * ref["weight"]).sum())


def cell_means(pool, field: str) -> pl.DataFrame:
    """Per (client, length window): its requests ``w``, the field's mean and P(value = 0)."""
    ref = pool_weighted(pool, field)
    return ref.group_by("client_id", "start_s").agg(
        pl.col("weight").sum().alias("w"),
        ((pl.col("value") * pl.col("weight")).sum() / pl.col("weight").sum()).alias("mean"),
        (pl.col("weight").filter(pl.col("value") == 0).sum() / pl.col("weight").sum()).alias("p0"),
    )


def expected_item_tokens(pool, m: str) -> pl.DataFrame:
    """Per cell, the per-item reading: tokens per request ``E[count] x E[tokens per item]`` and
    the probability that a request has any, ``1 - sum_c P(count = c) p0^c``."""
    keys = ["client_id", "start_s"]
    tok = cell_means(pool, f"{m}_tokens")
    cnt = cell_means(pool, f"{m}_count")
    counts = pool_weighted(pool, f"{m}_count").join(tok.select(*keys, "p0"), on=keys)
    none = counts.group_by(keys).agg(
        ((pl.col("weight") * pl.col("p0").pow(pl.col("value"))).sum() / pl.col("weight").sum()).alias("p_none")
    )
    return tok.join(cnt.select(*keys, pl.col("mean").alias("cmean")), on=keys).join(none, on=keys).select(
        *keys, "w", (pl.col("mean") * pl.col("cmean")).alias("tokens"), (1 - pl.col("p_none")).alias("p_any")
    )


def make_trace(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"timestamp_s": np.linspace(0, 86400 - 1, n), "client_id": np.array(["c"] * n)}
    return validate_trace(pl.DataFrame({**base, **cols}))


# ---------------------------------------------------------------------------------------------
# Pool
# ---------------------------------------------------------------------------------------------


def test_pool_token_and_request_shares(mm_image):
    res = M.modality_shares(mm_image)
    assert res.ok
    s = {r["modality"]: r for r in res.summary.iter_rows(named=True)}
    assert list(s) == ["text", "image", "audio", "video"]
    # image_tokens is per image: a request's image tokens are its image count times the mean per image
    items = expected_item_tokens(mm_image, "image")
    tokens = {m: expected_tokens(mm_image, f"{m}_tokens") for m in ("text", "audio", "video")}
    tokens["image"] = float((items["w"] * items["tokens"]).sum())
    total = sum(tokens.values())
    for m in s:
        assert s[m]["token_share"] == pytest.approx(tokens[m] / total, rel=1e-9)
    img = pool_weighted(mm_image, "image_tokens")
    assert s["image"]["request_share"] == pytest.approx(float((items["w"] * items["p_any"]).sum() / items["w"].sum()), rel=1e-9)
    # audio and video are recorded as all-zero in this model
    assert s["audio"]["token_share"] == 0 and s["video"]["request_share"] == 0
    assert res.requests == pytest.approx(float(img["weight"].sum()), rel=1e-9)
    dist = res.distribution
    for m in s:
        assert dist.filter(pl.col("modality") == m)["prob"].sum() == pytest.approx(1.0)
    assert_no_nan(res)


def test_pool_sample_keeps_each_fields_mean(mm_image):
    # The per-request shares come from requests drawn per (client, window) cell; each field's
    # drawn values must reproduce the exact request-weighted mean of that field.
    from servegen_core.sources.view import sample_pool

    s = sample_pool(mm_image, ("text_tokens", "image_tokens"), 400_000, np.random.default_rng(3))
    req = float(pool_weighted(mm_image, "image_tokens")["weight"].sum())
    for f in ("text_tokens", "image_tokens"):
        assert s.values[f].mean() == pytest.approx(expected_tokens(mm_image, f) / req, rel=0.01)
    # Cells are drawn in proportion to their requests: client 1's share of the draws.
    share = cell_requests(mm_image).filter(pl.col("client_id") == "1")["requests"].sum() / cell_requests(mm_image)["requests"].sum()
    assert (np.asarray(s.clients)[s.client] == "1").mean() == pytest.approx(share, abs=0.005)


def test_pool_sampled_shares_are_seeded(mm_image):
    res = M.modality_shares(mm_image, sample_size=200_000, seed=1)
    s = {r["modality"]: r for r in res.summary.iter_rows(named=True)}
    assert 0 < s["image"]["p50_share"] <= s["image"]["p90_share"] <= 1
    assert s["text"]["mean_share"] + s["image"]["mean_share"] == pytest.approx(1.0, abs=1e-9)
    again = M.modality_shares(mm_image, sample_size=200_000, seed=1)
    assert again.summary.equals(res.summary)
    other = M.modality_shares(mm_image, sample_size=200_000, seed=2)
    assert not other.summary.equals(res.summary)
    assert other.summary["mean_share"][1] == pytest.approx(s["image"]["mean_share"], abs=0.01)


def test_image_count_distribution(mm_image):
    res = M.image_count_distribution(mm_image)
    ref = pool_weighted(mm_image, "image_count").group_by("value").agg(pl.col("weight").sum()).sort("value")
    tot = ref["weight"].sum()
    assert res.frame["count"].to_list() == ref["value"].cast(pl.Int64).to_list()
    np.testing.assert_allclose(res.frame["prob"].to_numpy(), ref["weight"].to_numpy() / tot, rtol=1e-9)
    assert res.mean == pytest.approx(weighted_mean(ref["value"], ref["weight"]), rel=1e-9)
    assert res.share_nonzero == pytest.approx(float(ref.filter(pl.col("value") > 0)["weight"].sum() / tot), rel=1e-9)


def test_tokens_per_image_pool(mm_image):
    res = M.tokens_per_image(mm_image, top_k=3)
    assert res.ok
    items = expected_item_tokens(mm_image, "image")
    assert res.mean_tokens_per_item == pytest.approx(
        float((items["w"] * items["tokens"]).sum()) / expected_tokens(mm_image, "image_count"), rel=1e-9
    )
    assert res.distribution["prob"].sum() == pytest.approx(1.0)
    assert res.dominant.height == 3 and res.dominant["rank"].to_list() == [1, 2, 3]
    shares = res.dominant["share"].to_list()
    assert shares == sorted(shares, reverse=True)
    top = res.distribution.sort("prob", descending=True).head(3)
    assert res.dominant["tokens_per_item"].to_list() == top["tokens_per_item"].to_list()
    # The most frequent size is one of the most frequent single-image token counts of the data.
    one_image = pool_weighted(mm_image, "image_tokens").filter(pl.col("value") > 0).group_by("value").agg(pl.col("weight").sum())
    top_values = one_image.sort("weight", descending=True).head(5)["value"].to_list()
    assert res.dominant["tokens_per_item"][0] in top_values
    assert "per item" in res.method


def test_modality_over_time_pool(mm_image):
    res = M.modality_over_time(mm_image)
    assert res.ok and res.frame.height == 4 * 4
    items = expected_item_tokens(mm_image, "image")
    for start in (0, 43200):
        per = {}
        d = pool_weighted(mm_image, "text_tokens").filter(pl.col("start_s") == start)
        per["text"] = weighted_mean(d["value"], d["weight"])
        it = items.filter(pl.col("start_s") == start)
        per["image"] = float((it["w"] * it["tokens"]).sum() / it["w"].sum())
        row = res.frame.filter((pl.col("start_s") == start) & (pl.col("modality") == "image")).row(0, named=True)
        assert row["tokens_per_request"] == pytest.approx(per["image"], rel=1e-9)
        assert row["token_share"] == pytest.approx(per["image"] / (per["image"] + per["text"]), rel=1e-9)
        assert row["hour"] == start / 3600
    sums = res.frame.group_by("start_s").agg(pl.col("token_share").sum())["token_share"]
    np.testing.assert_allclose(sums.to_numpy(), 1.0)


# ---------------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------------


def test_trace_shares_known_values():
    # 300 text-only requests (share 0) and 100 with text 100 + image 300 (image share 0.75).
    text = np.r_[np.full(300, 200), np.full(100, 100)]
    image = np.r_[np.zeros(300, dtype=np.int64), np.full(100, 300)]
    count = (image > 0).astype(np.int64)
    trace = make_trace(input_tokens=text + image, output_tokens=np.full(400, 5), text_tokens=text, image_tokens=image, image_count=count)
    res = M.modality_shares(trace, bins=4)
    s = {r["modality"]: r for r in res.summary.iter_rows(named=True)}
    assert s["image"]["token_share"] == pytest.approx(30000 / (300 * 200 + 100 * 400))
    assert s["image"]["request_share"] == pytest.approx(0.25)
    assert s["image"]["mean_share"] == pytest.approx(0.25 * 0.75)
    assert s["image"]["p50_share"] == 0.0 and s["image"]["p90_share"] == 0.75
    hist = res.distribution.filter(pl.col("modality") == "image")
    assert hist["prob"].to_list() == [0.75, 0.0, 0.0, 0.25]
    assert list(s) == ["text", "image"]


def test_trace_text_derived_from_input():
    image = np.array([0, 100, 200, 300])
    trace = make_trace(input_tokens=np.array([50, 150, 200, 400]), output_tokens=np.ones(4, dtype=np.int64), image_tokens=image)
    res = M.modality_shares(trace)
    s = {r["modality"]: r for r in res.summary.iter_rows(named=True)}
    text = np.array([50, 50, 0, 100])
    assert s["text"]["token_share"] == pytest.approx(text.sum() / (text.sum() + image.sum()))


def test_trace_tokens_per_image_and_counts():
    # Requests: 1 image of 576 tokens (x3), 2 images of 576 each, 3 images of 1000 tokens total.
    tokens = np.array([576, 576, 576, 1152, 1000, 0])
    count = np.array([1, 1, 1, 2, 3, 0])
    trace = make_trace(input_tokens=tokens + 10, output_tokens=np.ones(6, dtype=np.int64), image_tokens=tokens, image_count=count)
    res = M.tokens_per_image(trace, top_k=2)
    dist = dict(zip(res.distribution["tokens_per_item"].to_list(), res.distribution["prob"].to_list(), strict=True))
    # Per image: five images of 576, three of round(1000/3) = 333.
    assert dist == pytest.approx({333.0: 3 / 8, 576.0: 5 / 8})
    assert res.dominant["tokens_per_item"].to_list() == [576.0, 333.0]
    assert res.mean_tokens_per_item == pytest.approx(tokens.sum() / count.sum())
    cnt = M.image_count_distribution(trace)
    assert dict(zip(cnt.frame["count"].to_list(), cnt.frame["prob"].to_list(), strict=True)) == pytest.approx(
        {0: 1 / 6, 1: 3 / 6, 2: 1 / 6, 3: 1 / 6}
    )
    assert cnt.mean == pytest.approx(8 / 6)


def test_trace_modality_over_time():
    n = 800
    ts = np.linspace(0, 2 * 21600 - 1, n)
    image = np.where(ts < 21600, 100, 0)
    trace = validate_trace(
        pl.DataFrame({"timestamp_s": ts, "client_id": ["c"] * n, "input_tokens": image + 100, "output_tokens": [1] * n,
                      "text_tokens": [100] * n, "image_tokens": image})
    )
    f = M.modality_over_time(trace).frame
    first = f.filter((pl.col("start_s") == 0) & (pl.col("modality") == "image")).row(0, named=True)
    second = f.filter((pl.col("start_s") == 21600) & (pl.col("modality") == "image")).row(0, named=True)
    assert first["token_share"] == pytest.approx(0.5) and first["request_share"] == 1.0
    assert second["token_share"] == 0.0 and second["request_share"] == 0.0


# ---------------------------------------------------------------------------------------------
# Degenerate input
# ---------------------------------------------------------------------------------------------


def _all(source):
    return [M.modality_shares(source), M.image_count_distribution(source), M.tokens_per_image(source), M.modality_over_time(source)]


def test_language_pool_has_no_modalities(m_large):
    for r in _all(m_large):
        assert not r.ok and r.reason
    assert "per-modality" in M.modality_shares(m_large).reason
    assert "image_count" in M.image_count_distribution(m_large).reason


def test_trace_without_image_columns(traces_dir):
    from servegen_core.sources.traces import load_trace

    azure = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace
    assert_empty(M.modality_shares(azure), "image_tokens")
    assert_empty(M.image_count_distribution(azure), "image_count")
    assert_empty(M.tokens_per_image(azure), "image_tokens")
    assert_empty(M.modality_over_time(azure), "image_tokens")


def test_empty_inputs(mm_image):
    for r in _all(empty_trace(("text_tokens", "image_tokens", "image_count"))):
        assert_empty(r, "empty trace")
    for r in _all(mm_image.span(10**9, 10**9 + 600)):
        assert_empty(r, "empty selection")
    zero = dataclasses.replace(mm_image, windows=mm_image.windows.with_columns(pl.lit(0.0).alias("rate_rps")))
    for r in _all(zero):
        assert_empty(r, "rates are zero")


def test_no_images_at_all():
    trace = make_trace(input_tokens=np.full(5, 10), output_tokens=np.ones(5, dtype=np.int64), image_tokens=np.zeros(5, dtype=np.int64),
                       image_count=np.zeros(5, dtype=np.int64))
    assert_empty(M.tokens_per_image(trace), "no request has any image")
    res = M.modality_shares(trace)
    assert res.ok and res.summary.filter(pl.col("modality") == "image")["token_share"][0] == 0.0


def test_zero_input_tokens():
    trace = make_trace(input_tokens=np.zeros(3, dtype=np.int64), output_tokens=np.ones(3, dtype=np.int64), image_tokens=np.zeros(3, dtype=np.int64))
    assert_empty(M.modality_shares(trace), "0 input tokens")


def test_single_request():
    trace = make_trace(input_tokens=np.array([400]), output_tokens=np.array([3]), text_tokens=np.array([100]),
                       image_tokens=np.array([300]), image_count=np.array([2]))
    s = M.modality_shares(trace).summary.filter(pl.col("modality") == "image").row(0, named=True)
    assert s["mean_share"] == 0.75 and s["token_share"] == 0.75
    assert M.tokens_per_image(trace).dominant["tokens_per_item"].to_list() == [150.0]
    assert_no_nan(M.modality_over_time(trace))


def test_pool_statistics_read_the_image_pdf_per_image_as_composed(servegen_dir, mm_image):
    # A workload composed from the pool and the pool itself give the same multimodal statistics:
    # the image share (per-request reading: 0.532 vs 0.603) and the tokens per image.
    from servegen_core.generate.compose import ServeGenSource, Span, WorkloadSpec, compose

    trace = compose(WorkloadSpec(ServeGenSource(str(servegen_dir), "multimodal/mm-image"), Span(0, 86400)), pool=mm_image).trace
    pool_s = M.modality_shares(mm_image).summary.filter(pl.col("modality") == "image").row(0, named=True)
    gen_s = M.modality_shares(trace).summary.filter(pl.col("modality") == "image").row(0, named=True)
    assert pool_s["token_share"] == pytest.approx(gen_s["token_share"], abs=0.003)
    assert pool_s["request_share"] == pytest.approx(gen_s["request_share"], abs=0.002)
    assert pool_s["mean_share"] == pytest.approx(gen_s["mean_share"], abs=0.005)
    a, b = M.tokens_per_image(mm_image), M.tokens_per_image(trace)
    assert a.mean_tokens_per_item == pytest.approx(b.mean_tokens_per_item, rel=0.01)
    assert a.dominant["tokens_per_item"].to_list()[:3] == b.dominant["tokens_per_item"].to_list()[:3]
    # the distributions of tokens per image agree (KS on the union of sizes)
    both = a.distribution.join(b.distribution, on="tokens_per_item", how="full", coalesce=True).fill_null(0.0).sort("tokens_per_item")
    ks = np.abs(np.cumsum(both["prob"].to_numpy()) - np.cumsum(both["prob_right"].to_numpy())).max()
    assert ks < 0.02
    ta = M.modality_over_time(mm_image).frame.filter(pl.col("modality") == "image")
    tb = M.modality_over_time(trace).frame.filter(pl.col("modality") == "image")
    np.testing.assert_allclose(ta["tokens_per_request"].to_numpy(), tb["tokens_per_request"].to_numpy(), rtol=0.02)
