"""Tests of servegen_core.characterize.arrivals on the shared ServeGen data, the shared raw traces and synthetic data.

Each statistic is compared with a calculation written here: the pool side against the raw
trace CSVs read with Polars, the trace side against per-window NumPy loops, the aggregate CV of
a pool against a direct simulation of the renewal streams it describes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servegen_core.characterize import arrivals
from servegen_core.sources.pool import DISTRIBUTION_SCHEMA, LENGTH_WINDOW_SCHEMA, WINDOW_SCHEMA, ClientPool
from servegen_core.result import Result
from servegen_core.schema import empty_trace
from servegen_core.sources.traces import load_trace

MODEL = "language/m-large"
AZURE = "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = "mooncake_synthetic_trace.jsonl"


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def raw(servegen_dir: Path) -> pl.DataFrame:
    """Every window of every m-large trace CSV, read here with Polars (not through the loader)."""
    files = sorted((servegen_dir / MODEL).glob("chunk-*-trace.csv"))
    frames = []
    for f in files:
        cid = re.match(r"chunk-(\d+)-trace\.csv", f.name).group(1)
        frames.append(
            pl.read_csv(
                f,
                has_header=False,
                schema={"start_s": pl.Int64, "rate_rps": pl.Float64, "cv": pl.Float64, "pattern": pl.String, "shape": pl.Float64, "scale": pl.Float64},
            )
            .with_columns(pl.lit(cid).alias("client_id"), pl.col("pattern").fill_null(""))
        )
    return pl.concat(frames, how="vertical_relaxed")


@pytest.fixture(scope="module")
def azure(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / AZURE).trace


@pytest.fixture(scope="module")
def mooncake(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / MOONCAKE).trace


def with_clients(trace: pl.DataFrame, n: int) -> pl.DataFrame:
    """The trace with its requests spread over ``n`` clients by input length (deterministic)."""
    return trace.with_columns((pl.col("input_tokens") % n).cast(pl.String).alias("client_id"))


def make_pool(windows: list[dict], *, window_s: int = 600) -> ClientPool:
    """A ClientPool from window rows (client_id, start_s, rate_rps, cv, pattern, shape, scale)."""
    w = pl.DataFrame(
        [{"duration_s": window_s, **r} for r in windows] if windows else None, schema=WINDOW_SCHEMA
    ).select(list(WINDOW_SCHEMA)).sort("client_id", "start_s")
    return ClientPool(
        name="language/test",
        source="test",
        windows=w,
        distributions=pl.DataFrame(schema=DISTRIBUTION_SCHEMA),
        length_windows=pl.DataFrame(schema=LENGTH_WINDOW_SCHEMA),
        window_s=window_s,
    )


def reference_window_cv(ts: np.ndarray, window_s: float) -> dict[int, tuple[int, float]]:
    """start_s -> (requests, CV of the gaps inside the window), one window at a time."""
    out = {}
    ts = np.sort(ts)
    for w in np.unique(np.floor(ts / window_s)):
        inside = ts[(ts >= w * window_s) & (ts < (w + 1) * window_s)]
        gaps = np.diff(inside)
        cv = float(np.std(gaps) / np.mean(gaps)) if gaps.size >= 2 and np.mean(gaps) > 0 else math.nan
        out[int(w * window_s)] = (inside.size, cv)
    return out


def equilibrium_start(pattern: str, shape: float, scale: float, rng: np.random.Generator) -> float:
    """First arrival of a stationary renewal stream: U times a length-biased gap."""
    if pattern == "Gamma":
        biased = rng.gamma(shape + 1.0, scale)
    else:
        biased = scale * rng.gamma(1.0 + 1.0 / shape) ** (1.0 / shape)
    return rng.uniform() * biased


def simulate_stream(pattern: str, shape: float, rate: float, horizon: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times in [0, horizon) of a stationary renewal stream with the given shape and mean gap 1/rate."""
    scale = 1.0 / (rate * shape) if pattern == "Gamma" else 1.0 / (rate * math.gamma(1.0 + 1.0 / shape))
    t = [np.array([equilibrium_start(pattern, shape, scale, rng)])]
    last = t[0][-1]
    while last < horizon:
        n = int(rate * (horizon - last) * 1.5) + 100
        gaps = rng.gamma(shape, scale, n) if pattern == "Gamma" else scale * rng.weibull(shape, n)
        more = last + np.cumsum(gaps)
        t.append(more)
        last = more[-1]
    out = np.concatenate(t)
    return out[out < horizon]


def assert_no_nan(result: Result) -> None:
    for name in ("frame", "table", "histogram", "densities"):
        frame = getattr(result, name, None)
        if isinstance(frame, pl.DataFrame):
            for col, dtype in frame.schema.items():
                if dtype.is_float():
                    assert not frame[col].is_nan().any(), f"NaN in {name}.{col}"


# --------------------------------------------------------------------------- window_cv: pool


def test_pool_window_cv_is_the_recorded_cv_of_active_windows(m_large, raw) -> None:
    got = arrivals.window_cv(m_large)
    assert got.ok and got.excluded == 0  # every recorded active window has at least 10 requests
    expected = raw.filter(pl.col("rate_rps") > 0).select(
        "client_id", "start_s", (pl.col("rate_rps") * 600).alias("requests"), "rate_rps", "cv"
    )
    joined = expected.join(got.frame, on=["client_id", "start_s"], how="full", coalesce=True)
    assert joined.height == expected.height == got.frame.height == 99_839
    np.testing.assert_allclose(joined["cv"].to_numpy(), joined["cv_right"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(joined["requests"].to_numpy(), joined["requests_right"].to_numpy(), rtol=1e-12)


def test_pool_window_cv_excludes_and_counts_small_windows(m_large, raw) -> None:
    got = arrivals.window_cv(m_large, min_requests=50)
    active = raw.filter(pl.col("rate_rps") > 0).with_columns((pl.col("rate_rps") * 600).round().alias("n"))
    small = active.filter(pl.col("n") < 50)
    assert small.height > 0
    assert got.excluded == small.height
    assert got.excluded_requests == pytest.approx(float(small["n"].sum()), rel=1e-9)
    assert got.frame.height == active.height - small.height
    assert got.frame["requests"].min() >= 50


def test_pool_window_cv_pools_recorded_windows_into_hours(m_large, raw) -> None:
    got = arrivals.window_cv(m_large, window_s=3600).frame
    # client 61, first day: pool the gap moments of the six 600 s windows of each hour by hand
    client = raw.filter((pl.col("client_id") == "61") & (pl.col("start_s") < 86400) & (pl.col("rate_rps") > 0))
    for hour in range(24):
        rows = client.filter(pl.col("start_s") // 3600 == hour).rows(named=True)
        if not rows:
            continue
        n = sum(r["rate_rps"] * 600 for r in rows)
        m1 = sum(r["rate_rps"] * 600 / r["rate_rps"] for r in rows) / n
        m2 = sum(r["rate_rps"] * 600 * (1 + r["cv"] ** 2) / r["rate_rps"] ** 2 for r in rows) / n
        row = got.filter((pl.col("client_id") == "61") & (pl.col("start_s") == hour * 3600)).row(0, named=True)
        assert row["requests"] == pytest.approx(n)
        assert row["cv"] == pytest.approx(math.sqrt(m2 / m1**2 - 1), rel=1e-9)
    with pytest.raises(ValueError, match="multiple"):
        arrivals.window_cv(m_large, window_s=900)


# --------------------------------------------------------------------------- window_cv: traces


def test_trace_window_cv_matches_per_window_loops(azure) -> None:
    trace = with_clients(azure, 3)
    got = arrivals.window_cv(trace, window_s=600, min_requests=10)
    assert got.ok
    checked = 0
    for cid in ("0", "1", "2"):
        ts = trace.filter(pl.col("client_id") == cid)["timestamp_s"].to_numpy()
        for start, (n, cv) in reference_window_cv(ts, 600).items():
            row = got.frame.filter((pl.col("client_id") == cid) & (pl.col("start_s") == start))
            if n < 10:
                assert row.height == 0
                continue
            assert row["requests"][0] == n
            assert row["rate_rps"][0] == pytest.approx(n / 600)
            assert row["cv"][0] == pytest.approx(cv, rel=1e-9)
            checked += 1
    assert checked == got.frame.height == 18  # 3 clients x 6 windows (the last one partial)
    assert got.frame["client_id"].to_list() == sorted(got.frame["client_id"].to_list())


def test_trace_window_cv_counts_excluded_windows(azure) -> None:
    trace = with_clients(azure, 40)
    got = arrivals.window_cv(trace, window_s=60, min_requests=20)
    counts = trace.group_by("client_id", (pl.col("timestamp_s") // 60).alias("w")).len()
    small = counts.filter(pl.col("len") < 20)
    assert small.height > 0 and got.excluded == small.height
    assert got.excluded_requests == small["len"].sum()
    assert got.frame.height == counts.height - small.height


def test_both_ways_of_finding_window_edges_agree(azure, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = with_clients(azure, 40)
    searched = arrivals.window_cv(trace, window_s=60, min_requests=3)
    monkeypatch.setattr(arrivals, "SEARCH_MAX_CLIENTS", 0)
    vectorized = arrivals.window_cv(trace, window_s=60, min_requests=3)
    assert searched.frame.equals(vectorized.frame)
    assert searched.excluded == vectorized.excluded > 0


def test_unsorted_trace_gives_the_same_cvs(azure) -> None:
    trace = with_clients(azure, 4)
    shuffled = trace.sample(fraction=1.0, shuffle=True, seed=3)
    a, b = arrivals.window_cv(trace), arrivals.window_cv(shuffled)
    np.testing.assert_allclose(a.frame["cv"].to_numpy(), b.frame["cv"].to_numpy(), rtol=1e-12)
    assert a.frame["client_id"].to_list() == b.frame["client_id"].to_list()


def test_trace_aggregate_cv_matches_per_window_loops(mooncake) -> None:
    got = arrivals.aggregate_cv(mooncake, window_s=120)
    ref = reference_window_cv(mooncake["timestamp_s"].to_numpy(), 120)
    assert got.frame["start_s"].to_list() == [s for s, (n, _) in ref.items() if n >= 10]
    for row in got.frame.iter_rows(named=True):
        n, cv = ref[row["start_s"]]
        assert row["requests"] == n
        assert row["cv"] == pytest.approx(cv, rel=1e-9)
    # the aggregate of a one-client trace is that client's stream
    single = arrivals.window_cv(mooncake, window_s=120)
    np.testing.assert_allclose(single.frame["cv"].to_numpy(), got.frame["cv"].to_numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- aggregate_cv: pools


def test_pool_aggregate_cv_of_one_stream_is_its_shape_cv() -> None:
    rows = [
        {"client_id": "1", "start_s": 0, "rate_rps": 2.0, "cv": 2.0, "pattern": "Gamma", "shape": 0.25, "scale": 2.0},
        {"client_id": "1", "start_s": 600, "rate_rps": 0.5, "cv": 1.0, "pattern": "Gamma", "shape": 1.0, "scale": 2.0},
        {"client_id": "1", "start_s": 1200, "rate_rps": 1.0, "cv": 9.9, "pattern": "Weibull", "shape": 0.5, "scale": 0.5},
    ]
    got = arrivals.aggregate_cv(make_pool(rows)).frame
    weibull = math.sqrt(math.gamma(1 + 2 / 0.5) / math.gamma(1 + 1 / 0.5) ** 2 - 1)
    np.testing.assert_allclose(got["cv"].to_numpy(), [2.0, 1.0, weibull], rtol=5e-3)


def test_pool_aggregate_cv_matches_a_simulation_of_independent_streams() -> None:
    streams = [("Gamma", 0.2, 1.0), ("Gamma", 1.0, 3.0), ("Weibull", 0.6, 0.5), ("Gamma", 4.0, 2.0)]
    rows = [
        {"client_id": str(i), "start_s": 0, "rate_rps": r, "cv": 0.0, "pattern": p, "shape": k, "scale": 1.0}
        for i, (p, k, r) in enumerate(streams)
    ]
    got = arrivals.aggregate_cv(make_pool(rows)).frame["cv"][0]
    rng = np.random.default_rng(7)
    horizon = 400_000.0
    merged = np.sort(np.concatenate([simulate_stream(p, k, r, horizon, rng) for p, k, r in streams]))
    gaps = np.diff(merged)
    assert got == pytest.approx(gaps.std() / gaps.mean(), rel=0.02)


def test_pool_aggregate_cv_matches_a_simulation_of_real_windows(m_large) -> None:
    """One hour of m-large, every client: simulate the recorded streams, measure the merged CV."""
    hour = m_large.span(7200, 10800)
    got = arrivals.aggregate_cv(hour)
    assert got.ok and got.frame.height == 6
    rng = np.random.default_rng(11)
    for start in got.frame["start_s"].to_list():
        rows = hour.windows.filter((pl.col("start_s") == start) & (pl.col("rate_rps") > 0)).rows(named=True)
        merged = np.sort(
            np.concatenate([simulate_stream(r["pattern"], r["shape"], r["rate_rps"], 600.0, rng) for r in rows])
        )
        gaps = np.diff(merged)
        row = got.frame.filter(pl.col("start_s") == start).row(0, named=True)
        assert row["requests"] == pytest.approx(sum(r["rate_rps"] * 600 for r in rows))
        assert row["rate_rps"] == pytest.approx(sum(r["rate_rps"] for r in rows))
        assert row["cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=0.06)


def test_pool_aggregate_cv_is_finite_everywhere_on_m_large(m_large) -> None:
    got = arrivals.aggregate_cv(m_large)
    assert got.ok and got.frame.height == 2016
    cv = got.frame["cv"].to_numpy()
    assert np.isfinite(cv).all() and (cv >= 1.0).all()  # merged bursty streams: never smoother than Poisson here
    # merging pulls toward Poisson: the aggregate is far less bursty than the typical client
    per_client = arrivals.burstiness_summary(m_large).weighted_median_cv
    assert np.median(cv) < per_client
    # hours pool the gap moments of their six 600 s aggregate windows
    hourly = arrivals.aggregate_cv(m_large, window_s=3600).frame
    first = got.frame.head(6)
    n = first["requests"].to_numpy()
    m = 1 / first["rate_rps"].to_numpy()
    m2 = (n * m * m * (1 + first["cv"].to_numpy() ** 2)).sum() / n.sum()
    m1 = (n * m).sum() / n.sum()
    assert hourly.height == 336
    assert hourly["requests"][0] == pytest.approx(n.sum())
    assert hourly["cv"][0] == pytest.approx(math.sqrt(m2 / m1**2 - 1), rel=1e-9)


# --------------------------------------------------------------------------- CDF and summary


def test_cv_cdf_unweighted_and_weighted(m_large, raw) -> None:
    cdf = arrivals.cv_cdf(m_large, max_points=None).frame
    active = raw.filter(pl.col("rate_rps") > 0)
    cv = active["cv"].to_numpy()
    load = (active["rate_rps"] * 600).to_numpy()
    assert cdf.height == cv.size
    for x in (0.5, 1.0, 2.0, 5.0):
        below = cdf.filter(pl.col("cv") <= x)
        assert below["cdf"][-1] == pytest.approx(np.mean(cv <= x), abs=1e-12)
        assert below["cdf_weighted"][-1] == pytest.approx(load[cv <= x].sum() / load.sum(), rel=1e-9)
    thin = arrivals.cv_cdf(m_large, max_points=500).frame
    assert thin.height <= 500 and thin["cdf"][-1] == 1.0 and thin["cdf_weighted"][-1] == pytest.approx(1.0)
    assert thin.join(cdf, on=["cv", "cdf"], how="anti").height == 0  # thinned points lie on the full curve


def test_burstiness_summary_shares(m_large, raw) -> None:
    s = arrivals.burstiness_summary(m_large)
    active = raw.filter(pl.col("rate_rps") > 0)
    gt1 = active.filter(pl.col("cv") > 1)
    assert s.windows == active.height
    assert s.share_windows_cv_gt1 == pytest.approx(gt1.height / active.height)
    assert s.share_load_cv_gt1 == pytest.approx(gt1["rate_rps"].sum() / active["rate_rps"].sum())
    assert s.median_cv == pytest.approx(float(np.median(active["cv"].to_numpy())))
    # the same figures from a precomputed table
    again = arrivals.burstiness_summary(arrivals.window_cv(m_large))
    assert again == s


def test_cv_cdf_of_a_trace_and_of_its_table(azure) -> None:
    trace = with_clients(azure, 3)
    table = arrivals.window_cv(trace)
    a, b = arrivals.cv_cdf(trace), arrivals.cv_cdf(table)
    assert a.frame.equals(b.frame)
    s = arrivals.burstiness_summary(table)
    cv = table.frame["cv"].to_numpy()
    assert s.share_windows_cv_gt1 == pytest.approx(np.mean(cv > 1))


# --------------------------------------------------------------------------- fits


@pytest.mark.parametrize("k", [0.3, 0.5, 2.0, 6.0])
def test_gamma_shape_is_fitted_back_within_5_percent(k: float) -> None:
    iat = np.random.default_rng(1).gamma(k, 3.0, 20_000)
    fit = arrivals.fit_interarrivals(iat)
    g = fit.table.filter(pl.col("family") == "Gamma").row(0, named=True)
    assert g["shape"] == pytest.approx(k, rel=0.05)
    assert g["scale"] == pytest.approx(3.0, rel=0.05)
    assert fit.best == "Gamma"
    assert g["ks"] < 0.02
    assert g["ks"] == pytest.approx(stats.kstest(iat, stats.gamma(g["shape"], scale=g["scale"]).cdf).statistic, rel=1e-9)
    assert g["loglik"] == pytest.approx(stats.gamma(g["shape"], scale=g["scale"]).logpdf(iat).sum(), rel=1e-9)
    assert g["cv"] == pytest.approx(1 / math.sqrt(g["shape"]))


def test_exponential_data_is_recognised_as_exponential() -> None:
    best = [arrivals.fit_interarrivals(np.random.default_rng(s).exponential(2.0, 2000)).best for s in range(20)]
    assert best.count("Exponential") >= 18
    fit = arrivals.fit_interarrivals(np.random.default_rng(0).exponential(2.0, 2000))
    e = fit.table.filter(pl.col("family") == "Exponential").row(0, named=True)
    assert e["shape"] == 1.0 and e["cv"] == 1.0


def test_weibull_fit_agrees_with_scipy_and_wins_on_weibull_data() -> None:
    iat = 4.0 * np.random.default_rng(2).weibull(0.6, 20_000)
    fit = arrivals.fit_interarrivals(iat)
    w = fit.table.filter(pl.col("family") == "Weibull").row(0, named=True)
    k, _, scale = stats.weibull_min.fit(iat, floc=0)
    assert w["shape"] == pytest.approx(k, rel=1e-4)
    assert w["scale"] == pytest.approx(scale, rel=1e-4)
    assert fit.best == "Weibull"
    aic = fit.table.select("family", "aic", "loglik").rows()
    for family, a, ll in aic:
        assert a == pytest.approx((2 if family == "Exponential" else 4) - 2 * ll)


def test_fit_drops_and_counts_zero_gaps() -> None:
    iat = np.concatenate([np.zeros(5), np.random.default_rng(0).exponential(1.0, 100), [np.nan]])
    fit = arrivals.fit_interarrivals(iat)
    assert fit.ok and fit.n == 100 and fit.dropped == 6


def test_implied_cv_formulas() -> None:
    assert arrivals.implied_cv("Gamma", 4.0) == pytest.approx(0.5)
    assert arrivals.implied_cv("Weibull", 1.0) == pytest.approx(1.0)
    k = 0.7
    assert arrivals.implied_cv("Weibull", k) == pytest.approx(math.sqrt(math.gamma(1 + 2 / k) / math.gamma(1 + 1 / k) ** 2 - 1))
    assert np.isnan(arrivals.implied_cv("Gamma", 0.0))


# --------------------------------------------------------------------------- recorded patterns (pools)


def test_pattern_shares_match_the_raw_files(m_large, raw) -> None:
    got = arrivals.pattern_shares(m_large).frame
    active = raw.filter(pl.col("rate_rps") > 0)
    for pattern in ("Gamma", "Weibull"):
        sub = active.filter(pl.col("pattern") == pattern)
        row = got.filter(pl.col("pattern") == pattern).row(0, named=True)
        assert row["windows"] == sub.height
        assert row["window_share"] == pytest.approx(sub.height / active.height)
        assert row["request_share"] == pytest.approx(sub["rate_rps"].sum() / active["rate_rps"].sum())
    assert got["windows"].sum() == 99_839


def test_recorded_vs_implied_cv(m_large, raw) -> None:
    got = arrivals.recorded_vs_implied_cv(m_large).frame
    gamma = got.filter(pl.col("pattern") == "Gamma")
    # ServeGen records a Gamma window's CV as 1/sqrt(shape)
    np.testing.assert_allclose(gamma["cv_implied"].to_numpy(), gamma["cv_recorded"].to_numpy(), rtol=1e-6)
    weib = raw.filter((pl.col("pattern") == "Weibull") & (pl.col("rate_rps") > 0)).head(50)
    for r in weib.iter_rows(named=True):
        k = r["shape"]
        expected = math.sqrt(math.gamma(1 + 2 / k) / math.gamma(1 + 1 / k) ** 2 - 1)
        row = got.filter((pl.col("client_id") == r["client_id"]) & (pl.col("start_s") == r["start_s"]))
        assert row["cv_implied"][0] == pytest.approx(expected, rel=1e-9)
        assert row["cv_recorded"][0] == r["cv"]


# --------------------------------------------------------------------------- histogram


def test_pool_histogram_samples_the_recorded_window_and_refits(m_large, raw) -> None:
    n = pl.col("rate_rps") * 600
    big = raw.filter((pl.col("pattern") == "Gamma") & (n > 10_000) & (n < 20_000)).sort("start_s").row(0, named=True)
    h = arrivals.interarrival_histogram(m_large, big["client_id"], big["start_s"], seed=5)
    assert h.ok and h.sampled
    assert h.samples == round(big["rate_rps"] * 600)
    capped = arrivals.interarrival_histogram(m_large, big["client_id"], big["start_s"], seed=5, max_samples=1000)
    assert capped.samples == 1000
    widths = (h.histogram["right_s"] - h.histogram["left_s"]).to_numpy()
    assert float((h.histogram["density"].to_numpy() * widths).sum()) == pytest.approx(1.0)
    assert set(h.densities["family"].unique()) == {"Recorded Gamma", "Gamma", "Weibull", "Exponential"}
    refit = h.fit.table.filter(pl.col("family") == "Gamma").row(0, named=True)
    assert refit["shape"] == pytest.approx(big["shape"], rel=0.05)
    # the recorded density is the recorded distribution
    rec = h.densities.filter(pl.col("family") == "Recorded Gamma")
    x = rec["iat_s"].to_numpy()
    np.testing.assert_allclose(rec["pdf"].to_numpy(), stats.gamma(big["shape"], scale=big["scale"]).pdf(x), rtol=1e-12)
    same = arrivals.interarrival_histogram(m_large, big["client_id"], big["start_s"], seed=5)
    assert same.histogram.equals(h.histogram)
    assert_no_nan(h)


def test_trace_histogram_of_one_window(azure) -> None:
    h = arrivals.interarrival_histogram(azure, None, 1200, window_s=600, bins=40, log_bins=True)
    ts = azure.filter((pl.col("timestamp_s") >= 1200) & (pl.col("timestamp_s") < 1800))["timestamp_s"].to_numpy()
    gaps = np.diff(np.sort(ts))
    assert h.ok and not h.sampled and h.samples == gaps.size
    assert h.histogram["count"].sum() == (gaps > 0).sum()
    assert h.fit.table.height == 3
    g = h.fit.table.filter(pl.col("family") == "Gamma").row(0, named=True)
    k, _, scale = stats.gamma.fit(gaps[gaps > 0], floc=0)
    assert g["shape"] == pytest.approx(k, rel=1e-3) and g["scale"] == pytest.approx(scale, rel=1e-3)
    assert_no_nan(h)


# --------------------------------------------------------------------------- degenerate input


def _all_zero_pool() -> ClientPool:
    return make_pool(
        [{"client_id": "0", "start_s": s, "rate_rps": 0.0, "cv": 0.0, "pattern": "", "shape": 0.0, "scale": 0.0} for s in (0, 600)]
    )


def _degenerate_sources(azure: pl.DataFrame) -> dict[str, object]:
    return {
        "empty pool": make_pool([]),
        "all-zero pool": _all_zero_pool(),
        "empty trace": empty_trace(),
        "single request": azure.head(1),
        "no client_id": azure.drop("client_id"),
    }


@pytest.mark.parametrize("case", ["empty pool", "all-zero pool", "empty trace", "single request", "no client_id"])
def test_degenerate_input_gives_empty_results_with_reasons(case: str, azure) -> None:
    source = _degenerate_sources(azure)[case]
    calls = {
        "window_cv": lambda: arrivals.window_cv(source),
        "aggregate_cv": lambda: arrivals.aggregate_cv(source),
        "cv_cdf": lambda: arrivals.cv_cdf(source),
        "burstiness_summary": lambda: arrivals.burstiness_summary(source),
        "interarrival_histogram": lambda: arrivals.interarrival_histogram(source, "0", 0),
        "pattern_shares": lambda: arrivals.pattern_shares(source),
        "recorded_vs_implied_cv": lambda: arrivals.recorded_vs_implied_cv(source),
    }
    for name, call in calls.items():
        result = call()
        if case == "no client_id" and name == "aggregate_cv":
            assert result.ok  # the merged stream needs no client ids
            continue
        assert not result.ok, name
        assert isinstance(result.reason, str) and result.reason, name
        for attr in ("frame", "histogram", "densities"):
            frame = getattr(result, attr, None)
            if frame is not None:
                assert frame.height == 0, (name, attr)
    if case == "no client_id":
        assert "client_id" in arrivals.window_cv(source).reason
    if case == "single request":
        assert "10 requests" in arrivals.window_cv(source).reason


def test_fit_of_too_few_or_equal_gaps() -> None:
    assert not arrivals.fit_interarrivals(np.array([1.0, 2.0])).ok
    flat = arrivals.fit_interarrivals(np.full(20, 0.5))
    assert not flat.ok and "equal" in flat.reason and flat.table.height == 0


def test_histogram_of_a_window_without_requests(m_large) -> None:
    quiet = m_large.windows.filter(pl.col("rate_rps") == 0).row(0, named=True)
    h = arrivals.interarrival_histogram(m_large, quiet["client_id"], quiet["start_s"])
    assert not h.ok and "no requests" in h.reason
    assert not arrivals.interarrival_histogram(m_large, "no-such-client", 0).ok
    assert not arrivals.interarrival_histogram(m_large, None, 0).ok


def test_invalid_options_raise(m_large) -> None:
    with pytest.raises(ValueError):
        arrivals.window_cv(m_large, window_s=0)
    with pytest.raises(ValueError):
        arrivals.window_cv(m_large, min_requests=2)
    with pytest.raises(TypeError):
        arrivals.window_cv([1, 2, 3])


def test_fit_result_records_its_criterion():
    rng = np.random.default_rng(11)
    x = rng.gamma(0.5, 2.0, 3000)
    by_bic = arrivals.fit_interarrivals(x)
    by_aic = arrivals.fit_interarrivals(x, criterion="aic")
    assert (by_bic.criterion, by_aic.criterion) == ("bic", "aic")
    assert by_bic.best == by_bic.table.sort("bic")["family"][0]
    assert by_aic.best == by_aic.table.sort("aic")["family"][0]
