"""pool_from_trace(): a raw trace summarized into a ClientPool, checked against direct computations."""

from __future__ import annotations

from pathlib import Path

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize.arrivals import fit_interarrivals
from servegen_core.renewal import implied_cv
from servegen_core.sources.fit import fit_gap_groups, length_correlation, pool_from_trace
from servegen_core.sources.pool import DISTRIBUTION_SCHEMA, LENGTH_WINDOW_SCHEMA, WINDOW_SCHEMA, ClientPool
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def azure(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv", preset="azure").trace


@pytest.fixture(scope="module")
def mooncake(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace


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


def test_rates_cv_and_maximum_likelihood_fits_match_the_trace(azure):
    pool = pool_from_trace(azure)
    ts = azure["timestamp_s"].to_numpy()
    n_windows = int(ts.max() // 600) + 1
    assert pool.windows.height == n_windows
    assert (pool.windows["rate_rps"] * pool.windows["duration_s"]).sum() == pytest.approx(len(ts))
    for row in pool.windows.iter_rows(named=True):
        inside = ts[(ts >= row["start_s"]) & (ts < row["start_s"] + 600)]
        assert row["rate_rps"] * row["duration_s"] == pytest.approx(len(inside))
        gaps = np.diff(inside)
        assert row["cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-9)  # the empirical CV
        # the pattern is the BIC choice of scipy-based maximum-likelihood fits of the same gaps
        ref = fit_interarrivals(gaps)
        best = ref.table.filter(pl.col("family") == ref.best).row(0, named=True)
        assert row["pattern"] == ("Weibull" if ref.best == "Weibull" else "Gamma")
        assert row["shape"] == pytest.approx(best["shape"], rel=1e-6)
        assert row["scale"] == pytest.approx(best["scale"], rel=1e-6)
        # azure conversations are close to Poisson: the shape is near 1, nowhere near a burst fit
        assert 0.7 < row["shape"] < 1.3


def test_a_partial_last_window_has_its_true_duration(azure, mooncake):
    for trace in (azure, mooncake):
        pool = pool_from_trace(trace)
        ts = trace["timestamp_s"].to_numpy()
        last = pool.windows.row(-1, named=True)
        assert last["start_s"] == ts.max() // 600 * 600
        # the trace ends mid-window: the window lasts to its last request (whole seconds)
        assert last["duration_s"] == math.ceil(ts.max() - last["start_s"]) < 600
        n_last = int((ts >= last["start_s"]).sum())
        assert last["rate_rps"] == pytest.approx(n_last / last["duration_s"], rel=1e-12)
        assert (pool.windows["duration_s"][:-1] == 600).all()
        assert pool.end_s == last["start_s"] + last["duration_s"]


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
    assert ((j["rate_rps"] * j["duration_s"] - j["len"]).abs() < 1e-9).all()
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
    assert (single.windows["rate_rps"] * single.windows["duration_s"]).sum() == pytest.approx(trace.height)


def test_windows_without_usable_gaps_get_the_poisson_pattern():
    # window 0: two requests; window 1: five requests at one instant; window 2: none; window 3:
    # four requests, a fit. The times are off any grid (100 ns resolution), so the tie is
    # below the resolution, not a grid artefact to spread.
    ts = [10.1234567, 300.7654321, *[700.3141593] * 5, 1800.2718281, 1801.4142136, 1803.7320508, 1810.5772157]
    trace = pl.DataFrame({"timestamp_s": ts, "client_id": ["c"] * len(ts), "input_tokens": [5] * len(ts), "output_tokens": [7] * len(ts)})
    pool = pool_from_trace(trace)
    w = pool.windows
    assert w["duration_s"].to_list() == [600, 600, 600, 11]  # the last window ends at 1810.58 s
    assert w["rate_rps"].to_list() == pytest.approx([2 / 600, 5 / 600, 0.0, 4 / 11])
    assert w["pattern"].to_list() == ["Gamma", "Gamma", "", w["pattern"][3]]
    assert w["shape"][:2].to_list() == [1.0, 1.0] and w["cv"][:2].to_list() == [1.0, 1.0]
    assert w["scale"][:2].to_list() == pytest.approx([300.0, 120.0])  # 1 / rate
    gaps = np.diff(np.array(ts[-4:]))
    assert w["cv"][3] == pytest.approx(gaps.std() / gaps.mean())
    ref = fit_interarrivals(gaps)
    assert w["shape"][3] == pytest.approx(ref.table.filter(pl.col("family") == ref.best)["shape"][0], rel=1e-6)
    assert pool.gaps.filter(pl.col("start_s") == 600)["gap_s"].to_list() == [0.0] * 4
    assert pool.warnings == ()


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


# ------------------------------------------------------------------------------------------
# Maximum-likelihood fits of many windows at once
# ------------------------------------------------------------------------------------------


def test_fit_gap_groups_agrees_with_the_scipy_based_fit_of_each_window():
    rng = np.random.default_rng(11)
    groups = []
    for j in range(120):
        n = int(rng.integers(3, 300))
        mean = rng.uniform(0.01, 20)
        if j % 3 == 0:
            k = rng.uniform(0.05, 5)
            x = rng.gamma(k, mean / k, size=n)
        elif j % 3 == 1:
            x = rng.weibull(rng.uniform(0.3, 3), size=n) * mean
        else:
            x = rng.exponential(mean, size=n)
        groups.append(x)
    gaps = np.concatenate(groups)
    group = np.repeat(np.arange(len(groups)), [g.size for g in groups])
    table = fit_gap_groups(gaps, group, len(groups))
    assert table["group"].to_list() == list(range(len(groups)))
    families = set()
    for j, x in enumerate(groups):
        ref = fit_interarrivals(x)
        row = table.row(j, named=True)
        assert row["family"] == ref.best
        families.add(ref.best)
        for fam in ("Gamma", "Weibull", "Exponential"):
            want = ref.table.filter(pl.col("family") == fam).row(0, named=True)
            assert row[f"bic_{fam.lower()}"] == pytest.approx(want["bic"], rel=1e-7, abs=1e-6)
        best = ref.table.filter(pl.col("family") == ref.best).row(0, named=True)
        assert row["shape"] == pytest.approx(best["shape"], rel=1e-6)
        assert row["scale"] == pytest.approx(best["scale"], rel=1e-6)
    assert families == {"Gamma", "Weibull", "Exponential"}


@pytest.mark.parametrize("cv", [3.0, 8.0, 15.0])
def test_gaps_below_the_resolution_are_censored_not_fitted_as_zeros(cv):
    # A very bursty Gamma renewal process: most gaps are far below float64's resolution at
    # t ~ 1000 s and read as exact 0. They are known only to be short: censored.
    rng = np.random.default_rng(int(cv))
    k = 1.0 / cv**2
    ts = 1000.0 + np.cumsum(rng.gamma(k, 1.0 / k, size=4000))
    gaps = np.diff(ts)
    assert (gaps == 0).mean() > 0.02
    table = fit_gap_groups(gaps, np.zeros(gaps.size, dtype=np.int64), 1, censor_below=1e-7)
    row = table.row(0, named=True)
    assert row["censored"] == int((gaps < 1e-7).sum())
    assert row["family"] == "Gamma"
    assert row["shape"] == pytest.approx(k, rel=0.15)
    # without censoring, a zero gap has no density: the tie-only window is not fitted at all
    assert fit_gap_groups(np.zeros(5), np.zeros(5, dtype=np.int64), 1).height == 0


def test_censored_fits_of_many_windows_maximize_the_censored_likelihood():
    # An independent check: scipy.stats densities and CDFs, maximized by scipy.optimize.
    from scipy import optimize, stats

    rng = np.random.default_rng(21)
    delta = 1e-7
    groups = []
    for j in range(8):
        n = int(rng.integers(200, 1500))
        if j % 2:
            x = rng.weibull(rng.uniform(0.12, 0.4), size=n)
        else:
            k = 1.0 / rng.uniform(3.0, 15.0) ** 2
            x = rng.gamma(k, 1.0 / k, size=n)
        groups.append(np.diff(500.0 + np.cumsum(x)))
    gaps = np.concatenate(groups)
    table = fit_gap_groups(gaps, np.repeat(np.arange(8), [g.size for g in groups]), 8, censor_below=delta)
    assert (table["censored"] > 0).all()
    for j, x in enumerate(groups):
        row = table.row(j, named=True)
        obs, n0 = x[x >= delta], int((x < delta).sum())
        for fam, dist in (("gamma", stats.gamma), ("weibull", stats.weibull_min)):

            def nll(p, dist=dist, obs=obs, n0=n0):
                k, sc = np.exp(p)
                return -(dist.logpdf(obs, k, scale=sc).sum() + n0 * dist.logcdf(delta, k, scale=sc))

            start = [math.log(0.1), math.log(obs.mean())]
            ref = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20000})
            ll_ref = -ref.fun
            ll_ours = (2 * math.log(x.size) - row[f"bic_{fam}"]) / 2
            assert ll_ours >= ll_ref - 1e-6 * abs(ll_ref)  # at least as good as scipy's optimum
            if row["family"].lower() == fam:
                assert row["shape"] == pytest.approx(float(np.exp(ref.x[0])), rel=1e-3)


def test_fit_gap_groups_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        fit_gap_groups(np.ones(3), np.zeros(2, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="non-negative"):
        fit_gap_groups(np.array([1.0, -1.0]), np.zeros(2, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="group must lie"):
        fit_gap_groups(np.ones(2), np.array([0, 3]), 2)


# ------------------------------------------------------------------------------------------
# Quantized timestamps
# ------------------------------------------------------------------------------------------


def _gamma_trace(rng: np.random.Generator, *, cv: float, rate: float, duration_s: float) -> pl.DataFrame:
    k = 1.0 / cv**2
    n = int(rate * duration_s * 1.5) + 100
    t = np.cumsum(rng.gamma(k, 1.0 / (k * rate), size=n))
    t = t[t < duration_s]
    m = t.size
    return pl.DataFrame(
        {
            "timestamp_s": t - t[0],
            "client_id": ["a"] * m,
            "input_tokens": rng.integers(10, 1000, m),
            "output_tokens": rng.integers(1, 300, m),
        }
    )


def _gaps_span_the_recorded_extent(pool, recorded: pl.DataFrame, *, grid_s: float) -> None:
    extent = (
        recorded.with_columns((pl.col("timestamp_s") // 600 * 600).cast(pl.Int64).alias("start_s"))
        .group_by("start_s")
        .agg((pl.col("timestamp_s").max() - pl.col("timestamp_s").min()).alias("extent"))
    )
    spanned = pool.gaps.group_by("start_s").agg(pl.col("gap_s").sum().alias("spanned"))
    j = extent.join(spanned, on="start_s")
    assert j.height == extent.height
    assert ((j["spanned"] - j["extent"]).abs() < grid_s).all()


def test_quantized_timestamps_are_spread_within_their_grid_cells_and_censored_in_the_fit():
    rng = np.random.default_rng(5)
    true = _gamma_trace(rng, cv=2.0, rate=4.0, duration_s=3600)
    exact = pool_from_trace(true)
    # Recorded on a 1 s grid (floor): most gaps become 0 or whole seconds.
    coarse = true.with_columns(pl.col("timestamp_s").floor())
    zeros = float((np.diff(coarse["timestamp_s"].to_numpy()) == 0).mean())
    assert zeros > 0.5
    pool = pool_from_trace(coarse, seed=1)
    assert len(pool.warnings) == 1 and "cannot be recovered" in pool.warnings[0] and f"{zeros:.1%}" in pool.warnings[0]
    g = pool.gaps["gap_s"].to_numpy()
    assert (g > 0).all()  # no tie survives
    # every request is kept and stays in its grid cell: a window's gaps span its recorded
    # extent to within one grid step
    assert (pool.windows["rate_rps"] * pool.windows["duration_s"]).sum() == pytest.approx(true.height)
    _gaps_span_the_recorded_extent(pool, coarse, grid_s=1.0)
    # the fit does not take the spread gaps for measurements: gaps shorter than the grid are
    # censored, and each window's cv is its fitted family's (it has censored gaps). Under a
    # 1 s grid with 70 % ties the CV of the exact times is recovered within 25 %
    assert (pool.windows["cv"] / exact.windows["cv"]).is_between(0.75, 1.25).all()
    for row in pool.windows.iter_rows(named=True):
        assert row["cv"] == pytest.approx(float(implied_cv(row["pattern"], row["shape"])), rel=1e-9)
    # explicit seed: the same trace and seed give the same pool, another seed other gaps
    again = pool_from_trace(coarse, seed=1)
    assert again.gaps.equals(pool.gaps) and again.windows.equals(pool.windows)
    assert not pool_from_trace(coarse, seed=2).gaps.equals(pool.gaps)


def test_a_fine_grid_is_spread_without_a_warning(mooncake):
    # Mooncake's timestamps are whole milliseconds with 0.28 % ties: de-quantized, no warning.
    pool = pool_from_trace(mooncake)
    assert pool.warnings == ()
    assert (pool.gaps["gap_s"] > 0).all()
    ms = np.diff(mooncake["timestamp_s"].to_numpy())
    assert 0 < (ms == 0).mean() < 0.01
    _gaps_span_the_recorded_extent(pool, mooncake, grid_s=0.001)
    assert (pool.windows["shape"] > 0.8).all() and (pool.windows["shape"] < 1.25).all()


# ------------------------------------------------------------------------------------------
# Input/output length correlation
# ------------------------------------------------------------------------------------------


def test_length_correlation_recovers_a_gaussian_copula():
    from scipy import stats

    rng = np.random.default_rng(3)
    for rho in (-0.5, 0.0, 0.7):
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=20000)
        u = stats.norm.cdf(z)
        trace = pl.DataFrame(
            {
                "timestamp_s": np.arange(20000, dtype=float),
                "client_id": ["a"] * 20000,
                "input_tokens": np.floor(np.exp(6 + 1.2 * stats.norm.ppf(u[:, 0]))).astype(np.int64),
                "output_tokens": np.floor(stats.expon.ppf(u[:, 1], scale=200)).astype(np.int64),
            }
        )
        assert length_correlation(trace) == pytest.approx(rho, abs=0.02)


def test_composing_with_the_fitted_correlation_keeps_the_rank_correlation(azure, mooncake):
    from scipy import stats

    from servegen_core.generate.compose import compose
    from servegen_core.spec import Span, TraceSource, WorkloadSpec

    def spearman(df: pl.DataFrame) -> float:
        return float(stats.spearmanr(df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy()).statistic)

    for trace in (azure, mooncake):
        pool = pool_from_trace(trace, per_client=False)
        rho = length_correlation(trace)
        base = WorkloadSpec(source=TraceSource(path="t.csv"), span=Span(0, None), seed=1)
        fitted = compose(dataclasses.replace(base, length_correlation=rho), pool=pool).trace
        independent = compose(base, pool=pool).trace
        assert spearman(fitted) == pytest.approx(spearman(trace), abs=0.03)
        assert abs(spearman(independent)) < 0.03
    assert length_correlation(mooncake) < -0.3  # long prompts, short answers


def test_length_correlation_needs_two_varying_columns(azure):
    with pytest.raises(ValueError, match="constant"):
        length_correlation(azure.with_columns(pl.lit(5).alias("output_tokens")))
    with pytest.raises(ValueError, match="no column"):
        length_correlation(azure.drop("output_tokens"))
    with pytest.raises(ValueError, match="at least 3"):
        length_correlation(azure.head(2))


# ------------------------------------------------------------------------------------------
# Round trips: fit -> compose -> compare with the source
# ------------------------------------------------------------------------------------------


def bursty_trace(seed: int = 7, *, clients: int = 4, windows: int = 12, window_s: int = 600) -> pl.DataFrame:
    """A synthetic bursty trace: per client and 600 s window a Gamma renewal process with a CV
    drawn from [3, 15] and a rate that shifts by factors 0.25/1/3 around the client's base."""
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(clients):
        base = rng.uniform(0.5, 4.0)
        for w in range(windows):
            rate = base * rng.choice([0.25, 1.0, 3.0])
            k = 1.0 / rng.uniform(3.0, 15.0) ** 2
            n = int(rate * window_s * 3) + 50
            t = w * window_s + np.cumsum(rng.gamma(k, 1.0 / (k * rate), size=n))
            t = t[t < (w + 1) * window_s]
            parts.append(pl.DataFrame({"timestamp_s": t, "client_id": [str(c)] * t.size}))
    df = pl.concat(parts).sort("timestamp_s")
    n = df.height
    return df.with_columns(
        pl.Series("input_tokens", rng.integers(10, 2000, n)), pl.Series("output_tokens", rng.integers(1, 500, n))
    )


def roundtrip_figures(source: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """The round-trip figures: KS distance of the aggregate inter-arrival gaps, share of zero
    gaps (timestamp_resolution's rule), variance-to-mean ratio of counts per 1/10/60 s, count."""
    from scipy import stats

    from servegen_core.sources.traces import timestamp_resolution

    a, b = np.sort(source), np.sort(generated)
    out = {
        "ks": float(stats.ks_2samp(np.diff(a), np.diff(b)).statistic),
        "zero_source": timestamp_resolution(pl.Series(a)).share_zero_gaps,
        "zero_generated": timestamp_resolution(pl.Series(b)).share_zero_gaps,
        "count_ratio": b.size / a.size,
    }
    for bw in (1, 10, 60):
        end = math.floor(a[-1] / bw) * bw  # whole bins only
        edges = np.arange(0.0, end + bw / 2, bw)
        cs, cg = np.histogram(a, edges)[0], np.histogram(b, edges)[0]
        out[f"vmr_{bw}s"] = (cg.var() / cg.mean()) / (cs.var() / cs.mean())
    return out


ROUNDTRIP_SOURCES = ("azure", "mooncake", "bursty")


@pytest.fixture(scope="module")
def roundtrips(azure, mooncake) -> dict[str, dict[str, dict[str, float]]]:
    """Round-trip figures per source and arrivals mode: the median over three composition
    seeds of each figure (a count variance over Mooncake's 17 one-minute bins varies by
    +-40 % from one draw to the next; the median judges the model, not one draw)."""
    from servegen_core.generate.compose import compose
    from servegen_core.spec import Span, TraceSource, WorkloadSpec

    traces = {"azure": azure, "mooncake": mooncake, "bursty": bursty_trace()}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, trace in traces.items():
        pool = pool_from_trace(trace, name=f"trace/{name}")
        out[name] = {}
        for arrivals in ("fitted", "empirical", "poisson"):
            runs = []
            for seed in (3, 4, 5):
                spec = WorkloadSpec(source=TraceSource(path=f"{name}.csv"), span=Span(0, None), arrivals=arrivals, seed=seed)
                generated = compose(spec, pool=pool).trace["timestamp_s"].to_numpy()
                runs.append(roundtrip_figures(trace["timestamp_s"].to_numpy(), generated))
            out[name][arrivals] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return out


#: The arrivals modes a fitted pool is composed with: the fitted family per window, and the
#: window's observed gaps (``ClientPool.gaps``).
ROUNDTRIP_ARRIVALS = ("fitted", "empirical")


@pytest.mark.parametrize("arrivals", ROUNDTRIP_ARRIVALS)
@pytest.mark.parametrize("name", ROUNDTRIP_SOURCES)
def test_roundtrip_interarrival_ks(roundtrips, name, arrivals):
    assert roundtrips[name][arrivals]["ks"] < 0.1


@pytest.mark.parametrize("arrivals", ROUNDTRIP_ARRIVALS)
@pytest.mark.parametrize("name", ROUNDTRIP_SOURCES)
def test_roundtrip_zero_gap_share(roundtrips, name, arrivals):
    f = roundtrips[name][arrivals]
    assert abs(f["zero_generated"] - f["zero_source"]) <= 0.02


@pytest.mark.parametrize("arrivals", ROUNDTRIP_ARRIVALS)
@pytest.mark.parametrize("name", ROUNDTRIP_SOURCES)
@pytest.mark.parametrize("bin_s", [1, 10, 60])
def test_roundtrip_count_dispersion(roundtrips, name, bin_s, arrivals):
    ratio = roundtrips[name][arrivals][f"vmr_{bin_s}s"]
    assert 1 / 1.5 <= ratio <= 1.5


@pytest.mark.parametrize("arrivals", ROUNDTRIP_ARRIVALS)
@pytest.mark.parametrize("name", ROUNDTRIP_SOURCES)
def test_roundtrip_request_count(roundtrips, name, arrivals):
    assert roundtrips[name][arrivals]["count_ratio"] == pytest.approx(1.0, abs=0.01)


def quantized_sources() -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """(true, recorded) traces: exact times, and the same requests with their times floored to
    a grid (as a logger with coarse timestamps records them)."""
    gamma = _gamma_trace(np.random.default_rng(13), cv=2.0, rate=2.0, duration_s=7200)
    bursty = bursty_trace()
    return {
        "gamma-cv2-1s-grid": (gamma, gamma.with_columns(pl.col("timestamp_s").floor())),
        "bursty-1ms-grid": (bursty, bursty.with_columns((pl.col("timestamp_s") * 1000).floor() / 1000)),
    }


@pytest.fixture(scope="module")
def quantized_roundtrips() -> dict[str, dict[str, float]]:
    """Fit the recorded (quantized) trace, compose, compare with the *true* times: what the
    fit recovers below the grid. Median over three composition seeds, as ``roundtrips``."""
    from servegen_core.generate.compose import compose
    from servegen_core.spec import Span, TraceSource, WorkloadSpec

    out = {}
    for name, (true, recorded) in quantized_sources().items():
        pool = pool_from_trace(recorded)
        assert pool.warnings  # the grid hides sub-grid timing: the fit says so
        runs = []
        for seed in (3, 4, 5):
            spec = WorkloadSpec(source=TraceSource(path="q.csv"), span=Span(0, None), seed=seed)
            generated = compose(spec, pool=pool).trace["timestamp_s"].to_numpy()
            runs.append(roundtrip_figures(true["timestamp_s"].to_numpy(), generated))
        out[name] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return out


QUANTIZED = ("gamma-cv2-1s-grid", "bursty-1ms-grid")


@pytest.mark.parametrize("name", QUANTIZED)
def test_quantized_roundtrip_recovers_the_true_gaps(quantized_roundtrips, name):
    f = quantized_roundtrips[name]
    assert f["ks"] < 0.1
    assert abs(f["zero_generated"] - f["zero_source"]) <= 0.02
    assert f["count_ratio"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", QUANTIZED)
@pytest.mark.parametrize("bin_s", [1, 10, 60])
def test_quantized_roundtrip_recovers_the_true_dispersion(quantized_roundtrips, name, bin_s):
    assert 1 / 1.5 <= quantized_roundtrips[name][f"vmr_{bin_s}s"] <= 1.5


def test_the_roundtrip_figures_fail_a_poisson_baseline_of_the_bursty_trace(roundtrips):
    # The same figures on Poisson arrivals from the same pool: the bursty source is told apart.
    p = roundtrips["bursty"]["poisson"]
    assert roundtrips["bursty"]["fitted"]["zero_source"] > 0.3
    assert p["ks"] > 0.5
    assert abs(p["zero_generated"] - p["zero_source"]) > 0.3
    assert p["vmr_1s"] < 1 / 1.5 and p["vmr_10s"] < 1 / 1.5


# ------------------------------------------------------------------------------------------
# A spec from a raw trace, with the fitted length correlation
# ------------------------------------------------------------------------------------------


def test_spec_template_of_a_trace_fits_the_length_correlation(traces_dir, mooncake, tmp_path, capsys):
    from servegen_core.cli import main
    from servegen_core.generate.compose import compose
    from servegen_core.spec import TraceSource, WorkloadSpec

    path = traces_dir / "mooncake_synthetic_trace.jsonl"
    out = tmp_path / "spec.json"
    assert main(["spec-template", "--trace", str(path), "--fit-length-correlation", "-o", str(out)]) == 0
    assert "length_correlation" in capsys.readouterr().out
    spec = WorkloadSpec.from_file(out)
    assert isinstance(spec.source, TraceSource) and spec.source.preset == "mooncake"
    assert spec.span.start_s == 0 and spec.span.duration_s is None
    assert spec.length_correlation == pytest.approx(length_correlation(mooncake), abs=1e-4)
    assert compose(spec).trace.height == mooncake.height
    # without the flag the lengths stay independent; the flag needs a trace
    plain = tmp_path / "plain.json"
    assert main(["spec-template", "--trace", str(path), "--no-prefix", "-o", str(plain)]) == 0
    assert WorkloadSpec.from_file(plain).length_correlation == 0.0
    capsys.readouterr()
    assert main(["spec-template", "--fit-length-correlation", "-o", "-"]) == 2
    assert "a raw trace (--trace FILE)" in capsys.readouterr().err
    assert main(["spec-template", "--trace", str(path), "--duration-s", "5000", "-o", "-"]) == 2
    assert "outside the trace" in capsys.readouterr().err


def test_the_fit_warning_reaches_the_composed_workload():
    from servegen_core.generate.compose import compose
    from servegen_core.spec import Span, TraceSource, WorkloadSpec

    coarse = _gamma_trace(np.random.default_rng(9), cv=2.0, rate=4.0, duration_s=1200).with_columns(pl.col("timestamp_s").floor())
    pool = pool_from_trace(coarse)
    assert len(pool.warnings) == 1
    wl = compose(WorkloadSpec(source=TraceSource(path="t.csv"), span=Span(0, None)), pool=pool)
    assert pool.warnings[0] in wl.warnings


def test_a_window_of_clusters_is_bursty_not_poisson():
    # two bursts of 40 simultaneous requests (off any grid): one gap above the resolution, 78 ties
    ts = [100.1234567] * 40 + [400.7654321] * 40 + [900.1111111, 905.2222222, 911.3333333]
    trace = pl.DataFrame({"timestamp_s": ts, "client_id": ["c"] * len(ts), "input_tokens": [5] * len(ts), "output_tokens": [7] * len(ts)})
    w = pool_from_trace(trace).windows.row(0, named=True)
    gaps = np.diff(np.array(ts[:80]))
    assert w["pattern"] == "Gamma"
    assert w["cv"] == pytest.approx(gaps.std() / gaps.mean())  # sqrt(78): the ties count as 0
    assert w["shape"] == pytest.approx(1 / w["cv"] ** 2) and w["shape"] < 0.02
    assert w["shape"] * w["scale"] == pytest.approx(gaps.mean())


def test_a_span_too_long_for_its_clients_is_refused_with_the_number():
    # epoch seconds instead of seconds from the start: 28 million windows per client
    trace = pl.DataFrame(
        {"timestamp_s": [0.0, 1.7e10], "client_id": ["a", "b"], "input_tokens": [1, 2], "output_tokens": [3, 4]}
    )
    cells = 2 * (int(1.7e10 // 600) + 1)
    with pytest.raises(ValueError, match=f"{cells:,} client-windows, more than 20,000,000"):
        pool_from_trace(trace)
    assert pool_from_trace(trace, per_client=False, window_s=3600).windows.height == int(1.7e10 // 3600) + 1


def test_a_grid_of_few_gaps_is_a_coincidence_not_a_resolution():
    # 3 whole-second gaps and ties: "quantized to 1 s" by the detector, but too few gaps to tell
    ts = [10.0, 10.0, 10.0, 12.0, 15.0, 19.0]
    trace = pl.DataFrame({"timestamp_s": ts, "client_id": ["c"] * 6, "input_tokens": [1] * 6, "output_tokens": [1] * 6})
    pool = pool_from_trace(trace)
    assert pool.warnings == ()
    assert sorted(pool.gaps["gap_s"].to_list()) == [0.0, 0.0, 2.0, 3.0, 4.0]  # not spread
    w = pool.windows.row(0, named=True)
    assert w["duration_s"] == 19 and w["rate_rps"] == pytest.approx(6 / 19)
