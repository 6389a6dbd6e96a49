"""Arrival model (servegen_core.renewal, compose): window edges, recorded CVs, counts, chunking.

Targets on language/m-large 18:00-24:00 of day 0 (start 64800 s, 6 h): the first and last 10 ms of
the 600 s windows run within 1.3x the mean rate; the request total is within 1 % of the rate
integral; generated/recorded CV per client-window (>= 200 requests) has median 0.95-1.05 for
Gamma and for Weibull windows separately, p10 >= 0.8.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy.special import gammaln

from servegen_core.generate import stages
from servegen_core.generate.compose import ConstantRate, ServeGenSource, Span, WorkloadSpec, compose, iter_compose, plan_workload
from servegen_core.renewal import (
    GAMMA,
    SAMPLE_CV_SIZES,
    WEIBULL,
    WEIBULL_SAMPLE_CV,
    circular_points,
    family_cv,
    gamma_shape_for_cv,
    implied_cv,
    weibull_sample_cv_table,
    weibull_shape_for_cv,
    weibull_shape_for_sample_cv,
    weibull_shape_on_grid,
)

EVENING = Span(64800, 6 * 3600)


@pytest.fixture(scope="module")
def evening(servegen_dir: Path, m_large):
    # the recorded renewal families (sub_window "recorded"): what this module generates
    return compose(WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), EVENING, sub_window="recorded"), pool=m_large)


def window_cvs(trace: pl.DataFrame, origin: float, min_requests: int = 200) -> pl.DataFrame:
    """CV of each client-window's gaps (consecutive requests inside one 600 s window), by hand."""
    return (
        trace.select("client_id", "timestamp_s")
        .with_columns(((pl.col("timestamp_s") // 600) * 600 + origin).cast(pl.Int64).alias("start_s"))
        .sort("client_id", "start_s", "timestamp_s")
        .with_columns(pl.col("timestamp_s").diff().over("client_id", "start_s").alias("gap"))
        .group_by("client_id", "start_s")
        .agg(pl.len().alias("n"), (pl.col("gap").std(ddof=0) / pl.col("gap").mean()).alias("cv"))
        .filter(pl.col("n") >= min_requests)
    )


def test_window_edges_carry_no_burst(evening):
    ts = evening.trace["timestamp_s"].to_numpy()
    mean_rate = len(ts) / EVENING.duration_s
    phase = ts % 600
    n_windows = 36
    edge = ((phase < 0.01) | (phase >= 600 - 0.01)).sum() / (n_windows * 0.02) / mean_rate
    assert edge <= 1.3
    # and no dead zone: the edges sit inside the spread of 20 ms bins elsewhere in the windows
    inner = np.array([((phase >= p) & (phase < p + 0.02)).sum() for p in np.linspace(1.0, 590.0, 300)]) / (n_windows * 0.02) / mean_rate
    lo, hi = np.percentile(inner, [1, 99])
    assert lo <= edge <= hi
    # the first and last second of the windows as a whole run at the mean rate
    first = (phase < 1.0).sum() / n_windows / mean_rate
    last = (phase >= 599.0).sum() / n_windows / mean_rate
    assert first == pytest.approx(1.0, abs=0.1) and last == pytest.approx(1.0, abs=0.1)


def test_request_total_is_the_rate_integral(evening, m_large):
    w = m_large.windows.filter((pl.col("start_s") >= 64800) & (pl.col("start_s") < 64800 + 6 * 3600))
    integral = float((w["rate_rps"] * w["duration_s"]).sum())  # every client: borrowing keeps them all
    assert evening.trace.height == pytest.approx(integral, rel=0.01)
    # per client-window the count is the target rounded down or up
    got = evening.trace.with_columns(((pl.col("timestamp_s") // 600) * 600 + 64800).cast(pl.Int64).alias("start_s")).group_by(
        "client_id", "start_s"
    ).len()
    both = w.filter(pl.col("rate_rps") > 0).join(got, on=["client_id", "start_s"], how="left").fill_null(0)
    assert ((both["len"] - both["rate_rps"] * 600).abs() < 1.0 + 1e-9).all()


def test_generated_cv_follows_the_recorded_cv_per_family(evening, m_large):
    rec = m_large.windows.select("client_id", "start_s", "cv", "pattern")
    j = window_cvs(evening.trace, 64800).join(rec, on=["client_id", "start_s"]).with_columns((pl.col("cv") / pl.col("cv_right")).alias("r"))
    for family in ("Gamma", "Weibull"):
        r = j.filter(pl.col("pattern") == family)["r"]
        assert r.len() >= 100, family
        assert 0.95 <= r.median() <= 1.05, family
        assert r.quantile(0.1) >= 0.8, family


def test_fitted_shape_option_keeps_the_fitted_shapes(servegen_dir: Path, m_large, evening):
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(64800, 3600), arrival_shape="fitted_shape")
    plan = plan_workload(spec, pool=m_large)
    cw = plan.client_windows
    assert (cw["model_shape"] - cw["shape"]).abs().max() < 1e-12
    # the fitted Weibull shapes imply a CV below the recorded one, so these windows come out smoother
    w = plan.compose()
    rec = m_large.windows.select("client_id", "start_s", "cv", "pattern")
    j = window_cvs(w.trace, 64800).join(rec, on=["client_id", "start_s"]).with_columns((pl.col("cv") / pl.col("cv_right")).alias("r"))
    assert j.filter(pl.col("pattern") == "Weibull")["r"].median() < 0.9


def test_weibull_shapes_solve_the_cv_equation():
    cv = np.array([0.3, 0.8, 1.0, 2.0, 5.0, 12.0])
    k = weibull_shape_for_cv(cv)
    implied = np.sqrt(np.exp(gammaln(1 + 2 / k) - 2 * gammaln(1 + 1 / k)) - 1)
    assert np.allclose(implied, cv, rtol=1e-4)
    assert weibull_shape_for_cv(np.array([1.0]))[0] == pytest.approx(1.0, rel=1e-5)


def test_implied_cv_and_family_cv_agree_and_invert_the_shape_solvers():
    # one home for shape <-> CV: the characterization's implied CV, the generator's family CV
    # and the shape solvers are inverse of each other
    k = np.array([0.2, 0.5, 1.0, 2.0, 4.0, 30.0])
    assert np.allclose(implied_cv("Gamma", k), 1 / np.sqrt(k), rtol=1e-12)
    assert np.allclose(implied_cv("Weibull", k), family_cv(np.full(k.size, WEIBULL), k), rtol=1e-9)
    assert np.allclose(implied_cv("Gamma", k), family_cv(np.full(k.size, GAMMA), k), rtol=1e-12)
    assert np.all(implied_cv("Exponential", k) == 1.0)
    assert np.isnan(implied_cv("Weibull", np.array([0.0, -1.0]))).all()
    with pytest.raises(ValueError, match="unknown pattern 'Pareto'"):
        implied_cv("Pareto", k)
    cv = np.array([0.3, 1.0, 2.5])
    assert np.allclose(implied_cv("Gamma", gamma_shape_for_cv(cv)), cv, rtol=1e-12)
    assert np.allclose(implied_cv("Weibull", weibull_shape_for_cv(cv)), cv, rtol=1e-5)
    grid = np.geomspace(0.15, 30.0, 4000)
    on_grid = weibull_shape_on_grid(cv, grid, np.log(implied_cv("Weibull", grid)))
    assert np.allclose(implied_cv("Weibull", on_grid), cv, rtol=1e-4)
    # outside the grid the end shapes are returned
    assert weibull_shape_on_grid(np.array([100.0]), grid, np.log(implied_cv("Weibull", grid)))[0] == pytest.approx(0.15)


def test_sample_cv_table_is_reproducible_and_inverted():
    row = 2  # n = 300
    again = weibull_sample_cv_table(rows=(row,))
    assert np.allclose(again[row], WEIBULL_SAMPLE_CV[row], rtol=1e-4)
    n = float(SAMPLE_CV_SIZES[row])
    # solving a table value at its own size gives back the table's shape
    from servegen_core.renewal import SAMPLE_CV_SHAPES

    for j in (3, 10, 20):
        assert weibull_shape_for_sample_cv(np.array([WEIBULL_SAMPLE_CV[row, j]]), np.array([n]))[0] == pytest.approx(SAMPLE_CV_SHAPES[j], rel=1e-3)
    # a window's sample CV is below the distribution's: the sample shape is smaller
    assert weibull_shape_for_sample_cv(np.array([5.0]), np.array([n]))[0] < weibull_shape_for_cv(np.array([5.0]))[0]


def test_circular_points_are_stationary_and_exact_in_count():
    rng = np.random.default_rng(7)
    R = 4000
    counts = np.full(R, 20)
    for fam, k in ((GAMMA, 4.0), (GAMMA, 0.1), (WEIBULL, 0.4)):
        pos = circular_points(rng, counts, np.full(R, fam), np.full(R, k))
        assert len(pos) == counts.sum()
        assert ((pos >= 0) & (pos < 1)).all()
        hist = np.histogram(pos, bins=20, range=(0, 1))[0] / (len(pos) / 20)
        # uniform intensity, edges included (ServeGen's n+1 rescaled gaps pile up or thin out there)
        assert np.abs(hist - 1).max() < 0.1, (fam, k, hist)


def test_huge_windows_are_generated_in_request_bounded_units(servegen_dir: Path, m_large, monkeypatch):
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 1800), rate=ConstantRate(100.0), seed=4)
    monkeypatch.setattr(stages, "UNIT_REQUESTS", 7_000)  # 60,000 requests per window -> 9 units each
    plan = plan_workload(spec, pool=m_large)
    assert len(plan.units) == 27
    assert (plan.units.expected <= 7_000 + 1e-6).all()
    whole = plan.compose().trace
    assert whole.height == pytest.approx(180_000, abs=plan.client_windows.height * 9)
    chunks = list(plan.iter_chunks(3600, chunk_requests=20_000))
    assert max(c.height for c in chunks) <= 21_000
    assert len(chunks) >= 9
    assert_frame_equal(pl.concat(chunks), whole)
    # the same rows whatever the chunking
    assert_frame_equal(pl.concat(list(iter_compose(spec, chunk_s=250, pool=m_large))), whole)
    # the units follow the rate exactly: per 200 s piece, 100 rps
    counts = np.bincount((whole["timestamp_s"].to_numpy() // 200).astype(int))
    assert np.abs(counts - 20_000).max() <= plan.client_windows.height


def test_borrowed_lengths_are_the_same_windows_mixture(servegen_dir: Path, m_large):
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 3600))
    w = compose(spec, pool=m_large)
    cw = w.plan.client_windows
    borrowers = cw.filter(pl.col("length_source") == "borrowed")["client_id"].unique().to_list()
    assert set(borrowers) == set(m_large.clients_without_lengths) & set(w.plan.clients)
    assert w.plan.weights["weight_share"].sum() == pytest.approx(1.0)
    # the mixture, built here from the lenders' PDFs weighted by their expected requests
    lenders = cw.filter(pl.col("length_source") == "client").group_by("client_id").agg(pl.col("expected_requests").sum().alias("w"))
    pdf = (
        m_large.distributions.filter((pl.col("start_s") == 64800) & (pl.col("field") == "input_tokens"))
        .join(lenders, on="client_id")
        .group_by("value")
        .agg((pl.col("prob") * pl.col("w")).sum().alias("p"))
        .sort("value")
    )
    cdf = np.cumsum(pdf["p"].to_numpy()) / pdf["p"].sum()
    got = np.sort(w.trace.filter(pl.col("client_id").is_in(borrowers))["input_tokens"].to_numpy())
    f = np.searchsorted(got, pdf["value"].to_numpy(), side="right") / len(got)
    assert len(got) > 50_000
    assert np.abs(f - cdf).max() < 0.01


def test_explicit_exclusion_still_drops_clients_without_lengths(servegen_dir: Path, m_large):
    base = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 3600))
    kept = plan_workload(base, pool=m_large)
    dropped = plan_workload(dataclasses.replace(base, missing_lengths="exclude"), pool=m_large)
    assert set(kept.clients) - set(dropped.clients) == set(dropped.exclusions["no_lengths"])
    assert any("borrow lengths" in x for x in kept.warnings)
    assert any("excluded" in x for x in dropped.warnings)


def test_a_poisson_baseline_of_a_bursty_source_fails_the_burstiness_checks(servegen_dir: Path, m_large, evening):
    from servegen_core.generate.compose import naive_spec
    from servegen_core.generate.validate import validate

    burst = ("cv_ratio_tails", "interarrival_ks_self_consistency")
    real = validate(evening)
    for name in (*burst, "edge_burst", "load_kept", "total_requests"):
        assert real.check(name)["passed"], real.check(name)
    naive = validate(compose(naive_spec(evening.spec, "poisson"), pool=m_large))
    for name in burst:
        assert not naive.check(name)["passed"], naive.check(name)
    # only the arrivals changed: the counts and lengths still pass
    for name in ("total_requests", "client_share", "length_ks"):
        assert naive.check(name)["passed"], naive.check(name)


def test_empirical_arrivals_resample_each_windows_observed_gaps(traces_dir: Path):
    from servegen_core.generate.compose import TraceSource
    from servegen_core.sources.load import load_source
    from servegen_core.generate.validate import validate

    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    spec = WorkloadSpec(TraceSource(str(path), "azure"), Span(0), arrivals="empirical", seed=1)
    pool = load_source(spec)
    assert pool.gaps is not None and pool.gaps.height > 0
    w = compose(spec, pool=pool)
    cw = w.plan.client_windows
    assert set(cw["model_pattern"]) == {"empirical"}
    assert w.trace.height == pytest.approx(w.plan.expected_requests, abs=cw.height)
    # every generated gap inside a window is a source gap of that window rescaled by one factor:
    # compare the unit-mean gap distributions window by window
    rep = validate(w)
    ks = rep.check("interarrival_ks")
    assert ks["passed"] and ks["value"] < 0.05, ks
    assert "observed gaps" in ks["detail"]
    # the recorded family (Gamma/Weibull/exponential) instead: a different workload, also valid
    fitted = compose(dataclasses.replace(spec, arrivals="fitted", sub_window="recorded"), pool=pool)
    assert set(fitted.plan.client_windows["model_pattern"]) <= {"Gamma", "Weibull", "Exponential"}
    assert not fitted.trace["timestamp_s"].equals(w.trace["timestamp_s"])
