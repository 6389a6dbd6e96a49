"""Length statistics on the shared data, checked against independent calculations, and fits on
synthetic data with known parameters."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from servegen_core.characterize import lengths as L
from servegen_core.schema import empty_trace, validate_trace
from servegen_core.sources.traces import load_trace

from _reference import assert_empty, assert_no_nan, cell_requests, close, pool_weighted, stats, weighted_mean


@pytest.fixture(scope="module")
def azure(traces_dir):
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace


@pytest.fixture(scope="module")
def azure_raw(traces_dir):
    return pl.read_csv(traces_dir / "AzureLLMInferenceTrace_conv.csv")


@pytest.fixture(scope="module")
def mooncake(traces_dir):
    return load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace


@pytest.fixture(scope="module")
def mooncake_raw(traces_dir):
    rows = [json.loads(line) for line in (traces_dir / "mooncake_synthetic_trace.jsonl").read_text().splitlines() if line.strip()]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in ("input_length", "output_length")}


def synthetic_trace(columns: dict[str, np.ndarray], *, span_s: float = 86400.0, clients=("a",), seed: int = 0) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "timestamp_s": np.sort(rng.uniform(0, span_s, n)),
            "client_id": rng.choice(np.array(clients), n),
            **columns,
        }
    )
    return validate_trace(frame)


# ---------------------------------------------------------------------------------------------
# Pools: weighted distributions and percentiles
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
def test_pool_percentiles_over_span_match_reference(m_large, field):
    ref = pool_weighted(m_large, field)
    expected = stats(ref["value"].to_numpy(), ref["weight"].to_numpy())
    got = L.length_percentiles(m_large, field)
    assert got.ok
    row = got.frame.row(0, named=True)
    assert close(row["requests"], expected["requests"], 1e-9)
    assert close(row["mean"], expected["mean"], 1e-9)
    for k in ("p50", "p90", "p99", "max"):
        assert row[k] == expected[k], k
    assert_no_nan(got)


def test_pool_percentiles_per_window_match_reference(m_large):
    ref = pool_weighted(m_large, "input_tokens")
    got = L.length_percentiles(m_large, "input_tokens", per_window=True)
    assert got.frame["start_s"].to_list() == sorted(ref["start_s"].unique().to_list())
    for start in (0, 21600 * 17, 21600 * 55):
        part = ref.filter(pl.col("start_s") == start)
        expected = stats(part["value"].to_numpy(), part["weight"].to_numpy())
        row = got.frame.filter(pl.col("start_s") == start).row(0, named=True)
        assert close(row["mean"], expected["mean"], 1e-9)
        for k in ("p50", "p90", "p99", "max"):
            assert row[k] == expected[k], (start, k)


def test_pool_pdf_is_the_request_weighted_mixture(m_large):
    ref = pool_weighted(m_large, "output_tokens").group_by("value").agg(pl.col("weight").sum()).sort("value")
    total = ref["weight"].sum()
    got = L.length_pdf(m_large, "output_tokens")
    assert got.frame["value"].to_list() == ref["value"].to_list()
    np.testing.assert_allclose(got.frame["prob"].to_numpy(), ref["weight"].to_numpy() / total, rtol=1e-9)
    np.testing.assert_allclose(got.frame["cdf"].to_numpy(), np.cumsum(ref["weight"].to_numpy()) / total, rtol=1e-9)
    assert got.frame["cdf"][-1] == pytest.approx(1.0)


def test_pool_weights_from_raw_files_for_one_client(m_large, servegen_dir):
    # Client 3 read straight from its two files: requests per 6 h window from the trace CSV,
    # PDF from the dataset JSON (dict literals parsed here with ast.literal_eval as a reference).
    import ast
    import csv

    folder = servegen_dir / "language" / "m-large"
    req: dict[int, float] = {}
    with open(folder / "chunk-3-trace.csv") as fh:
        for row in csv.reader(fh):
            start, rate = int(row[0]), float(row[1])
            req[start // 21600 * 21600] = req.get(start // 21600 * 21600, 0.0) + rate * 600
    data = json.loads((folder / "chunk-3-dataset.json").read_text())
    values, weights = [], []
    for start, fields in data.items():
        pdf = ast.literal_eval(fields["input_tokens"])
        for v, p in pdf.items():
            values.append(float(v))
            weights.append(p * req.get(int(start), 0.0))
    values, weights = np.array(values), np.array(weights)
    keep = weights > 0
    expected = stats(values[keep], weights[keep])
    row = L.length_percentiles(m_large.select_clients(["3"]), "input_tokens").frame.row(0, named=True)
    assert close(row["mean"], expected["mean"], 1e-9)
    assert close(row["requests"], expected["requests"], 1e-9)
    for k in ("p50", "p90", "p99", "max"):
        assert row[k] == expected[k]


def test_span_restricts_weights_to_the_span(m_large):
    day = m_large.span(86400, 2 * 86400)
    ref = pool_weighted(day, "input_tokens")
    expected = stats(ref["value"].to_numpy(), ref["weight"].to_numpy())
    row = L.length_percentiles(day, "input_tokens").frame.row(0, named=True)
    assert close(row["mean"], expected["mean"], 1e-9)
    assert row["p90"] == expected["p90"]


def test_pool_window_multiple_coarsens(m_large):
    got = L.length_percentiles(m_large, "input_tokens", per_window=True, window_s=86400)
    ref = pool_weighted(m_large, "input_tokens").with_columns((pl.col("start_s") // 86400 * 86400).alias("day"))
    assert got.frame.height == 14
    part = ref.filter(pl.col("day") == 3 * 86400)
    row = got.frame.filter(pl.col("start_s") == 3 * 86400).row(0, named=True)
    assert close(row["mean"], weighted_mean(part["value"], part["weight"]), 1e-9)
    with pytest.raises(ValueError, match="multiple"):
        L.length_percentiles(m_large, "input_tokens", per_window=True, window_s=3600)


def test_coverage_counts_clients_without_lengths(m_large):
    total = float((m_large.windows["rate_rps"] * m_large.windows["duration_s"]).sum())
    with_lengths = float(cell_requests(m_large).join(
        m_large.length_windows.filter("active").select("client_id", "start_s"), on=["client_id", "start_s"], how="semi"
    )["requests"].sum())
    assert L.length_coverage(m_large, "input_tokens") == pytest.approx(with_lengths / total, rel=1e-9)
    assert 0 < L.length_coverage(m_large) < 1


# ---------------------------------------------------------------------------------------------
# Traces: raw files read independently
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "raw"), [("input_tokens", "ContextTokens"), ("output_tokens", "GeneratedTokens")])
def test_azure_trace_percentiles(azure, azure_raw, field, raw):
    x = azure_raw[raw].to_numpy().astype(float)
    row = L.length_percentiles(azure, field).frame.row(0, named=True)
    assert row["requests"] == x.size == 19366
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
    for q in (50, 90, 99):
        assert row[f"p{q}"] == np.quantile(x, q / 100, method="inverted_cdf")
    assert row["max"] == x.max()


def test_azure_trace_pdf_counts(azure, azure_raw):
    pdf = L.length_pdf(azure, "input_tokens").frame
    counts = azure_raw["ContextTokens"].value_counts().sort("ContextTokens")
    assert pdf["value"].to_list() == counts["ContextTokens"].cast(pl.Float64).to_list()
    np.testing.assert_allclose(pdf["prob"].to_numpy(), counts["count"].to_numpy() / 19366, rtol=1e-12)


def test_mooncake_trace_percentiles(mooncake, mooncake_raw):
    for field, raw in (("input_tokens", "input_length"), ("output_tokens", "output_length")):
        x = mooncake_raw[raw]
        row = L.length_percentiles(mooncake, field).frame.row(0, named=True)
        assert row["requests"] == 3993
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["p99"] == np.quantile(x, 0.99, method="inverted_cdf")


def test_trace_per_window_uses_timestamp_windows(azure, azure_raw):
    got = L.length_percentiles(azure, "input_tokens", per_window=True, window_s=600).frame
    t = azure["timestamp_s"].to_numpy()
    x = azure["input_tokens"].to_numpy().astype(float)
    w = np.floor(t / 600).astype(int)
    assert got["start_s"].to_list() == [int(k) * 600 for k in np.unique(w)]
    for k in np.unique(w):
        row = got.filter(pl.col("start_s") == k * 600).row(0, named=True)
        assert row["requests"] == (w == k).sum()
        assert row["p90"] == np.quantile(x[w == k], 0.9, method="inverted_cdf")


# ---------------------------------------------------------------------------------------------
# Shift over time
# ---------------------------------------------------------------------------------------------


def test_length_shift_day_over_day(m_large):
    shift = L.length_shift(m_large, "output_tokens")
    assert shift.ok and shift.day_over_day_reason is None
    ref = pool_weighted(m_large, "output_tokens")
    means = {
        s: weighted_mean(g["value"], g["weight"]) for (s,), g in ref.group_by("start_s")
    }
    w = shift.windows
    assert w.height == 56
    assert w["hour"].unique().sort().to_list() == [0.0, 6.0, 12.0, 18.0]
    for start in (86400 + 21600, 10 * 86400):
        row = w.filter(pl.col("start_s") == start).row(0, named=True)
        assert close(row["mean"], means[start], 1e-9)
        d = shift.day_over_day.filter((pl.col("start_s") == start) & (pl.col("stat") == "mean")).row(0, named=True)
        assert close(d["previous"], means[start - 86400], 1e-9)
        assert close(d["rel_change"], means[start] / means[start - 86400] - 1, 1e-9)
    # Every window of days 1..13 has its previous day: 52 windows x 4 statistics.
    assert shift.day_over_day.height == 52 * 4
    assert_no_nan(shift)


def test_length_shift_one_day_has_no_day_over_day(mm_image):
    shift = L.length_shift(mm_image, "output_tokens")
    assert shift.ok and shift.windows.height == 4
    assert shift.day_over_day.height == 0
    assert "previous day" in shift.day_over_day_reason


# ---------------------------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------------------------


def ks_integer_reference(x, w, cdf) -> float:
    """KS distance of weighted integer lengths from a model CDF, each length ``k`` being the
    interval ``(k - 1/2, k + 1/2]``: the largest gap at the half-integer interval edges."""
    x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
    order = np.argsort(x)
    x, cum = x[order], np.cumsum(w[order]) / w.sum()
    edges = np.unique(np.concatenate([x - 0.5, x + 0.5]))
    below = np.searchsorted(x + 0.5, edges, side="right")  # lengths whose interval ends at or below the edge
    emp = np.concatenate([[0.0], cum])[below]
    return float(np.abs(emp - cdf(edges)).max())



def test_exponential_outputs_recognised():
    rng = np.random.default_rng(7)
    out = np.ceil(rng.exponential(250.0, 40_000)).astype(np.int64)
    trace = synthetic_trace({"input_tokens": np.full(out.size, 100), "output_tokens": out})
    fit = L.fit_output_lengths(trace)
    assert fit.best == "exponential"
    table = {r["family"]: r for r in fit.table.iter_rows(named=True)}
    assert table["exponential"]["aic"] < table["lognormal"]["aic"]
    # Rate: MLE on the positive values (the ceiling adds about half a token to the mean).
    assert fit.params["exponential"]["rate"] == pytest.approx(1 / out.mean(), rel=1e-12)
    assert 1 / fit.params["exponential"]["rate"] == pytest.approx(250.5, rel=0.02)
    assert table["exponential"]["ks"] < 0.02


def test_lognormal_inputs_recovered():
    rng = np.random.default_rng(3)
    x = rng.lognormal(6.0, 0.8, 30_000)
    fit = L.fit_lengths(x, families=L.INPUT_FAMILIES)
    assert fit.best == "lognormal"
    assert fit.params["lognormal"]["mu"] == pytest.approx(6.0, abs=0.02)
    assert fit.params["lognormal"]["sigma"] == pytest.approx(0.8, rel=0.02)
    mu, sigma = sps.norm.fit(np.log(x))
    assert fit.params["lognormal"]["mu"] == pytest.approx(mu, rel=1e-12)
    assert fit.params["lognormal"]["sigma"] == pytest.approx(sigma, rel=1e-12)


def test_pareto_recovered():
    rng = np.random.default_rng(4)
    x = 200.0 * (1 + rng.pareto(1.7, 30_000))
    fit = L.fit_lengths(x, families=L.INPUT_FAMILIES)
    assert fit.best == "pareto"
    assert fit.params["pareto"]["alpha"] == pytest.approx(1.7, rel=0.03)
    assert fit.params["pareto"]["xm"] == pytest.approx(x.min())
    b, _loc, scale = sps.pareto.fit(x, floc=0, fscale=x.min())
    assert fit.params["pareto"]["alpha"] == pytest.approx(b, rel=1e-6)


def test_pareto_lognormal_mixture_recovered():
    rng = np.random.default_rng(5)
    n = 60_000
    body = rng.lognormal(5.0, 0.5, int(n * 0.7))
    tail = 800.0 * (1 + rng.pareto(1.5, n - body.size))
    fit = L.fit_lengths(np.concatenate([body, tail]), families=L.INPUT_FAMILIES)
    assert fit.best == "pareto_lognormal"
    p = fit.params["pareto_lognormal"]
    assert p["pareto_weight"] == pytest.approx(0.3, abs=0.03)
    assert p["alpha"] == pytest.approx(1.5, rel=0.1)
    assert p["mu"] == pytest.approx(5.0, abs=0.05)
    assert p["sigma"] == pytest.approx(0.5, rel=0.1)


def test_real_input_fit_is_consistent(m_large):
    fit = L.fit_input_lengths(m_large)
    assert fit.ok and set(fit.table["family"]) == set(L.INPUT_FAMILIES)
    ref = pool_weighted(m_large, "input_tokens").filter(pl.col("value") > 0)
    v, w = ref["value"].to_numpy(), ref["weight"].to_numpy()
    mu = weighted_mean(np.log(v), w)
    sigma = math.sqrt(weighted_mean((np.log(v) - mu) ** 2, w))
    assert fit.params["lognormal"]["mu"] == pytest.approx(mu, rel=1e-9)
    assert fit.params["lognormal"]["sigma"] == pytest.approx(sigma, rel=1e-9)
    rows = {r["family"]: r for r in fit.table.iter_rows(named=True)}
    ll_ln = float(np.dot(w, sps.lognorm.logpdf(v, sigma, scale=math.exp(mu))))
    assert rows["lognormal"]["loglik"] == pytest.approx(ll_ln, rel=1e-9)
    assert rows["lognormal"]["ks"] == pytest.approx(ks_integer_reference(v, w, sps.lognorm(sigma, scale=math.exp(mu)).cdf), rel=1e-9)
    pareto = sps.pareto(fit.params["pareto"]["alpha"], scale=fit.params["pareto"]["xm"]).cdf
    assert rows["pareto"]["ks"] == pytest.approx(ks_integer_reference(v, w, pareto), rel=1e-9)
    for r in rows.values():
        assert r["aic"] == pytest.approx(2 * r["n_params"] - 2 * r["loglik"])
    assert fit.best == min(rows, key=lambda f: rows[f]["aic"])
    # The mixture nests the log-normal: EM must not end below it.
    assert rows["pareto_lognormal"]["loglik"] >= rows["lognormal"]["loglik"]
    assert fit.n == pytest.approx(float(w.sum()), rel=1e-9)
    assert fit.curves["family"].unique().sort().to_list() == sorted(L.INPUT_FAMILIES)
    assert_no_nan(fit)


def test_output_fit_on_azure(azure, azure_raw):
    fit = L.fit_output_lengths(azure)
    x = azure_raw["GeneratedTokens"].to_numpy().astype(float)
    pos = x[x > 0]
    assert fit.excluded_share == pytest.approx((x == 0).mean())
    assert fit.params["exponential"]["rate"] == pytest.approx(1 / pos.mean(), rel=1e-12)
    ecdf_ks = sps.kstest(pos, "lognorm", args=(fit.params["lognormal"]["sigma"], 0, math.exp(fit.params["lognormal"]["mu"])))
    # Integer data: our KS uses the intervals (x - 1/2, x + 1/2]; it is close to scipy's but not equal.
    row = fit.table.filter(pl.col("family") == "lognormal").row(0, named=True)
    assert abs(row["ks"] - ecdf_ks.statistic) < 0.05
    ones = np.ones(pos.size)
    lognormal = sps.lognorm(fit.params["lognormal"]["sigma"], scale=math.exp(fit.params["lognormal"]["mu"])).cdf
    assert row["ks"] == pytest.approx(ks_integer_reference(pos, ones, lognormal), rel=1e-9)
    exponential = sps.expon(scale=1 / fit.params["exponential"]["rate"]).cdf
    row = fit.table.filter(pl.col("family") == "exponential").row(0, named=True)
    assert row["ks"] == pytest.approx(ks_integer_reference(pos, ones, exponential), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Heterogeneity and correlation
# ---------------------------------------------------------------------------------------------


def test_client_length_means(m_large, servegen_dir):
    got = L.client_length_means(m_large, "input_tokens")
    ref = pool_weighted(m_large, "input_tokens")
    means = {c: weighted_mean(g["value"], g["weight"]) for (c,), g in ref.group_by("client_id")}
    assert got.frame.height == len(means) == 147
    for row in got.frame.iter_rows(named=True):
        assert close(row["mean"], means[row["client_id"]], 1e-9)
    missing = sorted(
        line.split("chunk-")[1].split("-")[0]
        for line in (servegen_dir / "MISSING.txt").read_text().split()
        if line.startswith("language/m-large/")
    )
    assert sorted(got.clients_without_lengths) == missing
    arr = np.array(list(means.values()))
    assert got.cv_of_means == pytest.approx(arr.std() / arr.mean(), rel=1e-9)
    assert got.mean_ratio_p90_p10 > 1


def test_pool_rows_in_any_order_give_the_same_means(m_large):
    # The pool's length index reads runs of equal (client, window, field); rows in a shuffled
    # order break them into many short runs, often where only one of the three changes.
    part = m_large.select_clients(list(m_large.client_ids[:12]))
    shuffled = dataclasses.replace(part, distributions=part.distributions.sample(fraction=1.0, shuffle=True, seed=7))
    ref = pool_weighted(part, "output_tokens")
    means = {c: weighted_mean(g["value"], g["weight"]) for (c,), g in ref.group_by("client_id")}
    for pool in (part, shuffled):
        got = L.client_length_means(pool, "output_tokens")
        assert got.frame.height == len(means) > 5
        for row in got.frame.iter_rows(named=True):
            assert close(row["mean"], means[row["client_id"]], 1e-9)


def test_correlation_on_azure(azure, azure_raw):
    corr = L.length_correlation(azure)
    x = azure_raw["ContextTokens"].to_numpy().astype(float)
    y = azure_raw["GeneratedTokens"].to_numpy().astype(float)
    overall = corr.overall.filter(pl.col("scope") == "overall").row(0, named=True)
    assert overall["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert overall["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, rel=1e-9)
    within = corr.overall.filter(pl.col("scope") == "within_client").row(0, named=True)
    assert within["pearson"] == pytest.approx(overall["pearson"], rel=1e-9)  # one client


def test_correlation_within_clients():
    rng = np.random.default_rng(11)
    n = 6000
    client = np.repeat(np.array(["a", "b", "c"]), n // 3)
    base = rng.normal(size=n)
    noise = rng.normal(size=n)
    rho = np.select([client == "a", client == "b"], [0.9, 0.0], -0.5)
    x = np.round(np.exp(5 + base)).astype(np.int64)
    y = np.round(np.exp(4 + rho * base + np.sqrt(1 - rho**2) * noise)).astype(np.int64)
    trace = validate_trace(
        pl.DataFrame({"timestamp_s": np.arange(n, dtype=float), "client_id": client, "input_tokens": x, "output_tokens": y})
    )
    corr = L.length_correlation(trace)
    per = {r["client_id"]: r for r in corr.per_client.iter_rows(named=True)}
    for c in "abc":
        m = client == c
        assert per[c]["spearman"] == pytest.approx(sps.spearmanr(x[m], y[m]).statistic, rel=1e-9)
        assert per[c]["pearson"] == pytest.approx(np.corrcoef(x[m], y[m])[0, 1], rel=1e-9)
    assert per["a"]["spearman"] > 0.85 and abs(per["b"]["spearman"]) < 0.05 and per["c"]["spearman"] < -0.4
    within = corr.overall.filter(pl.col("scope") == "within_client").row(0, named=True)
    assert within["spearman"] == pytest.approx(np.mean([per[c]["spearman"] for c in "abc"]), rel=1e-9)


def test_correlation_needs_a_trace(m_large):
    assert_empty(L.length_correlation(m_large), "not identified")


# ---------------------------------------------------------------------------------------------
# Degenerate input
# ---------------------------------------------------------------------------------------------


def _all(source):
    return [
        L.length_pdf(source, "input_tokens"),
        L.length_percentiles(source, "input_tokens", per_window=True),
        L.length_shift(source, "input_tokens"),
        L.fit_input_lengths(source),
        L.fit_output_lengths(source),
        L.client_length_means(source),
    ]


def test_empty_trace():
    for r in [*_all(empty_trace()), L.length_correlation(empty_trace())]:
        assert_empty(r, "empty trace")


def test_empty_selection(m_large):
    for r in _all(m_large.span(10**9, 10**9 + 600)):
        assert_empty(r, "empty selection")


def test_all_zero_rates(m_large):
    zero = dataclasses.replace(m_large, windows=m_large.windows.with_columns(pl.lit(0.0).alias("rate_rps")))
    for r in _all(zero):
        assert_empty(r, "rates are zero")


def test_client_without_lengths(m_large):
    pool = m_large.select_clients(["15"])
    assert pool.clients_without_lengths == ("15",)
    for r in _all(pool):
        assert_empty(r, "no length data")
    assert L.length_coverage(pool) == 0.0


def test_missing_column(azure):
    for r in (L.length_pdf(azure, "image_tokens"), L.length_shift(azure, "reasoning_tokens"), L.fit_input_lengths(azure, field="text_tokens")):
        assert_empty(r, "has no")
    assert_empty(L.length_pdf(azure, "nope"), "'nope'")


def test_pool_missing_field(m_large):
    assert_empty(L.length_pdf(m_large, "image_tokens"), "no 'image_tokens'")


def test_single_request(azure):
    one = azure.head(1)
    value = float(one["input_tokens"][0])
    pct = L.length_percentiles(one, "input_tokens")
    # One request is a distribution of one value: its statistics exist ...
    assert pct.ok and pct.frame.row(0, named=True) == {
        "requests": 1.0, "mean": value, "p50": value, "p90": value, "p99": value, "max": value
    }
    assert L.length_pdf(one, "input_tokens").frame["prob"].to_list() == [1.0]
    shift = L.length_shift(one, "input_tokens")
    assert shift.windows.height == 1 and shift.day_over_day.height == 0 and shift.day_over_day_reason
    # ... but nothing that needs spread does.
    assert_empty(L.fit_input_lengths(one), "single distinct length")
    assert_empty(L.fit_output_lengths(one), "single distinct length")
    assert_empty(L.length_correlation(one), "at least 3")


def test_constant_lengths_have_no_correlation():
    trace = synthetic_trace({"input_tokens": np.full(50, 10), "output_tokens": np.arange(50)})
    assert_empty(L.length_correlation(trace), "constant")


def test_zero_lengths_only_cannot_be_fitted():
    trace = synthetic_trace({"input_tokens": np.arange(1, 21), "output_tokens": np.zeros(20, dtype=np.int64)})
    assert_empty(L.fit_output_lengths(trace), "every length is 0")


def test_results_are_frozen(azure):
    r = L.length_percentiles(azure, "input_tokens")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.reason = "x"  # type: ignore[misc]


def test_correlation_of_a_long_trace_uses_a_seeded_sample(azure, azure_raw):
    corr = L.length_correlation(azure, max_requests=5000, seed=3)
    assert corr.sampled_from == 19366
    overall = corr.overall.filter(pl.col("scope") == "overall").row(0, named=True)
    assert overall["requests"] == 5000
    full = sps.spearmanr(azure_raw["ContextTokens"].to_numpy(), azure_raw["GeneratedTokens"].to_numpy()).statistic
    assert overall["spearman"] == pytest.approx(full, abs=0.05)  # a few standard errors (1/sqrt(5000))
    again = L.length_correlation(azure, max_requests=5000, seed=3)
    assert again.overall.equals(corr.overall)
    assert L.length_correlation(azure).sampled_from is None


def test_ties_get_average_ranks():
    x = np.array([1, 1, 2, 3, 3, 3, 7, 7, 9, 10])
    y = np.array([5, 4, 4, 4, 1, 2, 2, 8, 8, 8])
    trace = validate_trace(pl.DataFrame({"timestamp_s": np.arange(10.0), "client_id": ["a"] * 10, "input_tokens": x, "output_tokens": y}))
    row = L.length_correlation(trace).overall.row(0, named=True)
    assert row["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, rel=1e-12)


def test_sparse_grouping_path_matches_dense(monkeypatch):
    # Above a size limit, (group, value) sums are taken with a Polars group-by instead of a
    # dense bincount; both must give the same tables.
    from servegen_core.sources import view
    rng = np.random.default_rng(9)
    n = 5000
    trace = synthetic_trace(
        {"input_tokens": rng.integers(1, 4000, n), "output_tokens": rng.integers(0, 300, n)}, span_s=3 * 86400, clients=("a", "b", "7")
    )
    dense = (L.length_percentiles(trace, "input_tokens", per_window=True).frame, L.client_length_means(trace, "output_tokens").frame)
    monkeypatch.setattr(view, "_DENSE_LIMIT", 10)
    fresh = trace.clone()  # a new frame: nothing cached
    sparse = (L.length_percentiles(fresh, "input_tokens", per_window=True).frame, L.client_length_means(fresh, "output_tokens").frame)
    for a, b in zip(dense, sparse, strict=True):
        assert a.equals(b)


def test_trace_cache_notices_a_changed_frame():
    rng = np.random.default_rng(10)
    trace = synthetic_trace({"input_tokens": rng.integers(1, 100, 200), "output_tokens": rng.integers(1, 100, 200)})
    before = L.length_percentiles(trace, "input_tokens").frame
    trace.replace_column(2, pl.Series("input_tokens", np.full(200, 7, dtype=np.int64)))  # in place
    after = L.length_percentiles(trace, "input_tokens").frame
    assert before["max"][0] > 7 and after.row(0, named=True)["max"] == 7.0


def test_trace_cache_sees_a_cell_changed_in_place():
    """Cached per-trace codes are rebuilt when a numeric cell of the same frame is changed."""
    rng = np.random.default_rng(5)
    n = 2_000
    t = pl.DataFrame(
        {
            "timestamp_s": np.sort(rng.random(n) * 100),
            "client_id": ["a"] * n,
            "input_tokens": rng.integers(1, 100, n),
            "output_tokens": rng.integers(1, 100, n),
        }
    )
    assert L.length_percentiles(t, "input_tokens").frame["max"][0] == t["input_tokens"].max()
    t[5, "input_tokens"] = 100_000
    assert L.length_percentiles(t, "input_tokens").frame["max"][0] == 100_000
