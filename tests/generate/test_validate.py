"""validate(): the acceptance targets on real data (total within 1 %, CV ratio 0.9-1.1, length KS
below 0.02, |Spearman| below 0.1), and checks that fail when the workload is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from scipy import stats
from scipy.optimize import brentq

from servegen_core.generate.compose import (
    ConstantRate,
    ServeGenSource,
    Span,
    Weights,
    Workload,
    WorkloadSpec,
    compose,
    naive_spec,
)
from servegen_core.export.writer import export_trace
from servegen_core.sources.pool import load_pool
from servegen_core.sources.traces import load_trace
from servegen_core.generate.validate import CHECKS_SCHEMA, ValidationReport, validate


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture(scope="module")
def spec(servegen_dir: Path) -> WorkloadSpec:
    # language/m-large, one hour from 20:00 of day 0, observed rates
    return WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 3600))


@pytest.fixture(scope="module")
def realistic(spec: WorkloadSpec, m_large) -> Workload:
    return compose(spec, pool=m_large)


@pytest.fixture(scope="module")
def report(realistic: Workload) -> ValidationReport:
    return validate(realistic)


def test_report_shape(report: ValidationReport):
    assert dict(report.checks.schema) == CHECKS_SCHEMA
    assert report.checks["name"].to_list() == [
        "total_requests",
        "rate_tracking",
        "client_share",
        "cv_ratio",
        "cv_ratio_tails",
        "interarrival_ks_self_consistency",
        "edge_burst",
        "load_kept",
        "borrowed_share",
        "length_ks",
        "input_output_spearman_self_consistency",
    ]
    assert report.ok and report.passed, report.checks


def test_acceptance_targets_on_m_large(report: ValidationReport, realistic: Workload, m_large):
    total = report.check("total_requests")
    assert abs(total["value"] - 1) <= 0.01
    cv = report.check("cv_ratio")
    assert 0.9 <= cv["value"] <= 1.1 and cv["n"] >= 50
    assert (report.cv["requests"] >= 200).all()
    ks = report.check("length_ks")
    # the share of cells over their KS critical value, within the binomial allowance
    assert ks["passed"] and ks["value"] <= ks["high"] and ks["n"] >= 20
    assert float(report.ks["ks"].median()) < 0.02
    assert (report.ks["requests"] >= 2000).all()  # KS only on cells with at least min_ks_requests
    rho = report.check("input_output_spearman_self_consistency")
    assert abs(rho["value"]) < 0.1 and rho["high"] < 0.1  # the tolerance is the estimate's noise
    # the total is compared with the rate function's integral: the recorded requests of every client
    # (those without length data borrow lengths by default)
    hw = m_large.windows.filter((pl.col("start_s") >= 72000) & (pl.col("start_s") < 75600))
    assert report.windows["target_requests"].sum() == pytest.approx((hw["rate_rps"] * 600).sum())
    assert report.windows["requests"].sum() == realistic.trace.height


def test_cv_table_matches_a_direct_computation(report: ValidationReport, realistic: Workload, m_large):
    row = report.cv.sort("requests", descending=True).row(0, named=True)
    t0 = row["start_s"] - 72000
    ts = realistic.trace.filter(
        (pl.col("client_id") == row["client_id"]) & (pl.col("timestamp_s") >= t0) & (pl.col("timestamp_s") < t0 + 600)
    )["timestamp_s"].to_numpy()
    gaps = np.diff(ts)
    assert len(ts) == row["requests"]
    assert gaps.std() / gaps.mean() == pytest.approx(row["cv"], rel=1e-9)
    recorded = m_large.windows.filter((pl.col("client_id") == row["client_id"]) & (pl.col("start_s") == row["start_s"]))["cv"][0]
    assert row["source_cv"] == recorded


def test_ks_table_matches_a_direct_computation(report: ValidationReport, realistic: Workload, m_large):
    row = report.ks.filter(pl.col("field") == "output_tokens").sort("requests").row(0, named=True)
    gen = np.sort(realistic.trace.filter(pl.col("client_id") == row["client_id"])["output_tokens"].to_numpy())
    pdf = m_large.pdf(row["client_id"], "output_tokens", row["length_start_s"]).sort("value")
    xs = np.union1d(pdf["value"].to_numpy(), gen)
    # step CDF of the source at xs
    f_src = np.concatenate([[0.0], np.cumsum(pdf["prob"].to_numpy()) / pdf["prob"].sum()])[
        np.searchsorted(pdf["value"].to_numpy(), xs, side="right")
    ]
    f_gen = np.searchsorted(gen, xs, side="right") / len(gen)
    assert row["ks"] == pytest.approx(np.abs(f_gen - f_src).max(), abs=1e-12)


def test_naive_baseline_fails_the_length_check(spec: WorkloadSpec, m_large):
    naive = validate(compose(naive_spec(spec, "pooled_lengths"), pool=m_large))
    assert naive.check("total_requests")["passed"] and naive.check("client_share")["passed"]
    ks = naive.check("length_ks")
    assert not ks["passed"] and ks["value"] > 0.5  # most cells over their critical value
    assert float(naive.ks["ks"].median()) > 0.1
    assert "length_ks" in naive.failed()
    assert not naive.passed


def test_comonotone_lengths_fail_the_correlation_check(realistic: Workload, spec: WorkloadSpec, m_large):
    # ServeGen's code drives input and output with one random number: the ranks agree within a client
    tr = realistic.trace.with_row_index("i")
    ranked = tr.with_columns(
        pl.col("input_tokens").sort().over("client_id").alias("input_tokens"),
        pl.col("output_tokens").sort().over("client_id").alias("output_tokens"),
    ).sort("i").drop("i")
    bad = validate(ranked, spec, pool=m_large)
    rho = bad.check("input_output_spearman_self_consistency")
    assert rho["value"] > 0.9 and not rho["passed"]
    # lengths are unchanged as multisets, so the KS check still passes
    assert bad.check("length_ks")["passed"]


def realistic_tracking(w: Workload) -> float:
    return validate(w).check("rate_tracking")["value"]


def test_dropped_requests_fail_total_and_tracking(realistic: Workload, spec: WorkloadSpec, m_large):
    tr = realistic.trace
    thinned = tr.filter(~((pl.col("timestamp_s") >= 1200) & (pl.col("timestamp_s") < 1800)))
    bad = validate(thinned, spec, pool=m_large)
    assert not bad.check("total_requests")["passed"]
    # the tracking error computed directly: per-window counts against the per-window targets
    counts = np.bincount((thinned["timestamp_s"].to_numpy() // 600).astype(int), minlength=6)
    target = (realistic.plan.targets["target_rps"] * realistic.plan.targets["duration_s"]).to_numpy()
    assert bad.check("rate_tracking")["value"] == pytest.approx(np.abs(counts - target).sum() / target.sum(), abs=1e-9)
    dropped = tr.height - thinned.height
    assert bad.check("rate_tracking")["value"] >= dropped / target.sum() - realistic_tracking(realistic)
    assert not bad.check("rate_tracking")["passed"]
    one = tr["client_id"].mode()[0]
    skewed = tr.filter(~((pl.col("client_id") == one) & (pl.col("timestamp_s") < 1800)))
    assert not validate(skewed, spec, pool=m_large).check("client_share")["passed"]


def test_smoothed_arrivals_fail_the_cv_check(realistic: Workload, spec: WorkloadSpec, m_large):
    # evenly spaced requests inside every client-window (CV 0) instead of the fitted bursts
    tr = realistic.trace.with_columns(((pl.col("timestamp_s") // 600) * 600).alias("w"))
    even = (
        tr.with_columns(
            (pl.col("w") + (pl.int_range(pl.len()).over("client_id", "w") + 0.5) * 600 / pl.len().over("client_id", "w")).alias("timestamp_s")
        )
        .drop("w")
        .sort("timestamp_s")
    )
    bad = validate(even, spec, pool=m_large)
    assert bad.check("cv_ratio")["value"] < 0.1 and not bad.check("cv_ratio")["passed"]
    assert "bootstrap over clients" in bad.check("cv_ratio")["detail"]


def test_a_trace_read_back_from_a_file_gives_the_same_report(tmp_path: Path, realistic: Workload, spec: WorkloadSpec, m_large, report):
    export_trace(realistic.trace, tmp_path / "w.parquet", "parquet", spec=spec, note=None)
    back = pl.read_parquet(tmp_path / "w.parquet")
    again = validate(back, WorkloadSpec.from_file(tmp_path / "w.parquet.spec.json"), pool=m_large)
    assert again.checks.drop("detail").equals(report.checks.drop("detail"))


def test_explicit_weights_under_a_constant_rate_are_met(spec: WorkloadSpec, m_large):
    rep = validate(
        compose(
            dataclasses.replace(spec, rate=ConstantRate(80.0), weights=Weights("explicit", {"104": 1.0, "143": 1.0, "34": 2.0})),
            pool=m_large,
        )
    )
    assert rep.check("client_share")["passed"]
    shares = dict(zip(rep.clients["client_id"], rep.clients["share"]))
    assert shares == pytest.approx({"104": 0.25, "143": 0.25, "34": 0.5}, abs=0.01)


@pytest.mark.parametrize(("model", "check"), [("multimodal/mm-image", "input_total"), ("reason/deepseek-r1", "reasoning_sum")])
def test_consistency_checks_on_multimodal_and_reasoning(servegen_dir: Path, cache: Path, model: str, check: str):
    pool = load_pool(servegen_dir, model, cache_dir=cache)
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), model), Span(43200, 3600))
    w = compose(spec, pool=pool)
    rep = validate(w)
    assert rep.passed, rep.checks
    assert rep.check(check)["value"] == 0.0
    col = "image_tokens" if check == "input_total" else "reasoning_tokens"
    broken = w.trace.with_columns(pl.when(pl.int_range(pl.len()) % 10 == 0).then(pl.col(col) + 1).otherwise(pl.col(col)).alias(col))
    bad = validate(broken, spec, pool=pool)
    assert bad.check(check)["value"] == pytest.approx(0.1, abs=0.001)
    assert not bad.check(check)["passed"]


@pytest.mark.parametrize("model", ["language/demo-chat", "multimodal/demo-vl", "reason/demo-r1"])
def test_demo_workloads_validate(demo_dir: Path, cache: Path, model: str):
    pool = load_pool(demo_dir / "servegen", model, cache_dir=cache)
    w = compose(WorkloadSpec(ServeGenSource("demo", model), Span(pool.start_s, 6 * 3600), seed=2), pool=pool)
    rep = validate(w)
    assert rep.passed, rep.checks


def test_raw_trace_workload_validates(traces_dir: Path):
    from servegen_core.generate.compose import ObservedRate, TraceSource

    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    spec = WorkloadSpec(TraceSource(str(path), "azure"), Span(0), rate=ObservedRate(1.0))
    w = compose(spec)
    rep = validate(w)
    assert rep.passed, rep.checks
    # counts-per-bin dispersion against the raw trace, by hand
    raw_ts = load_trace(path, preset="azure").trace["timestamp_s"].to_numpy()
    ratios = []
    for b in (1.0, 10.0, 60.0):
        nb = int(w.plan.span_duration_s // b)
        vmr = []
        for ts in (w.trace["timestamp_s"].to_numpy(), raw_ts[raw_ts < w.plan.span_duration_s]):
            c = np.bincount((ts[ts < nb * b] // b).astype(int), minlength=nb)
            vmr.append(c.var() / c.mean())
        # the band of each scale: 1.5x, or the noise of two variances from nb bins each
        factor = max(1.5, np.exp(stats.norm.isf(0.001 / 6) * np.sqrt(4.0 / (nb - 1))))
        ratios.append((vmr[0] / vmr[1], factor))
    worst, factor = max(ratios, key=lambda rf: abs(np.log(rf[0])) / np.log(rf[1]))
    row = rep.check("dispersion")
    assert row["value"] == pytest.approx(worst, rel=1e-9) and row["high"] == pytest.approx(factor, rel=1e-9)
    # the source of the comparison is the fitted trace: its windows' CVs are the raw trace's
    raw = load_trace(path, preset="azure").trace
    first = raw.filter(pl.col("timestamp_s") < 600)["timestamp_s"].to_numpy()
    g = np.diff(first)
    src = rep.cv.filter(pl.col("start_s") == 0)["source_cv"]
    assert src[0] == pytest.approx(g.std() / g.mean(), rel=1e-9)


def test_empty_workload_and_bad_arguments(realistic: Workload, spec: WorkloadSpec, m_large):
    rep = validate(realistic.trace.head(0), spec, pool=m_large)
    assert not rep.ok and "no requests" in rep.reason and not rep.passed
    with pytest.raises(ValueError, match="needs its spec"):
        validate(realistic.trace)
    with pytest.raises(TypeError):
        validate([1, 2, 3], spec)  # type: ignore[arg-type]


def test_excluding_clients_without_lengths_fails_load_kept(spec: WorkloadSpec, m_large, report: ValidationReport):
    kept = report.check("load_kept")
    assert kept["value"] == pytest.approx(1.0) and kept["low"] == 0.9
    dropped = validate(compose(dataclasses.replace(spec, missing_lengths="exclude"), pool=m_large))
    row = dropped.check("load_kept")
    # the share, from the recorded rates: clients with length data over all active clients in the hour
    hw = m_large.windows.filter((pl.col("start_s") >= 72000) & (pl.col("start_s") < 75600))
    with_lengths = hw.filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    assert row["value"] == pytest.approx(float(with_lengths["rate_rps"].sum() / hw["rate_rps"].sum()), rel=1e-9)
    assert row["value"] < 0.9 and not row["passed"]
    # a spec that accepts that loss passes
    lenient = validate(compose(dataclasses.replace(spec, missing_lengths="exclude", min_load_kept=0.5), pool=m_large))
    assert lenient.check("load_kept")["passed"]


def test_requests_piled_on_window_edges_fail_the_edge_check(realistic: Workload, spec: WorkloadSpec, m_large, report: ValidationReport):
    assert report.check("edge_burst")["passed"]
    tr = realistic.trace
    # every 20th request moved to the first 5 ms of its window (what rescaling n+1 gaps does to bursty clients)
    moved = tr.with_row_index("i").with_columns(
        pl.when(pl.col("i") % 20 == 0)
        .then((pl.col("timestamp_s") // 600) * 600 + (pl.col("i") % 5) * 0.001)
        .otherwise(pl.col("timestamp_s"))
        .alias("timestamp_s")
    ).drop("i").sort("timestamp_s")
    bad = validate(moved, spec, pool=m_large).check("edge_burst")
    assert bad["value"] > 1.3 and not bad["passed"]


def test_interarrival_self_consistency_matches_a_direct_computation(report: ValidationReport, realistic: Workload, m_large):
    from scipy import stats
    from scipy.special import gamma as G

    checked = {"Weibull": 0, "Gamma": 0}
    for row in report.gaps.sort("requests").iter_rows(named=True):
        t0 = row["start_s"] - 72000
        ts = realistic.trace.filter(
            (pl.col("client_id") == row["client_id"]) & (pl.col("timestamp_s") >= t0) & (pl.col("timestamp_s") < t0 + 600)
        )["timestamp_s"].to_numpy()
        gaps = np.diff(ts) * len(ts) / 600.0  # in units of the window's mean spacing
        if (gaps < 1e-6).any():
            continue  # gaps below float resolution are compared as a mass only
        rec = m_large.windows.filter((pl.col("client_id") == row["client_id"]) & (pl.col("start_s") == int(row["start_s"]))).row(0, named=True)
        cv = rec["cv"]
        if checked[rec["pattern"]] >= 5:
            continue
        if rec["pattern"] == "Weibull":
            k = brentq(lambda k: G(1 + 2 / k) / G(1 + 1 / k) ** 2 - 1 - cv * cv, 0.05, 50)
            # the scale's maximum-likelihood estimate at the known shape; Stephens' (1974)
            # critical value of an exponential with estimated mean (gaps**k are exponential)
            dist = stats.weibull_min(k, scale=float(np.mean(gaps**k)) ** (1 / k))
            n = len(gaps)
            critical = 1.308 / (np.sqrt(n) + 0.26 + 0.5 / np.sqrt(n)) + 0.2 / n
        else:
            k = 1 / cv**2
            dist = stats.gamma(k, scale=1 / k)
            critical = stats.kstwo.isf(0.01, len(gaps))
        expected = stats.kstest(gaps, dist.cdf).statistic
        assert row["ks"] == pytest.approx(expected, abs=2.0 / 500 + 1e-4)  # evaluated at <= 500 order statistics
        assert row["critical"] == pytest.approx(critical, rel=1e-9)
        checked[rec["pattern"]] += 1
        if min(checked.values()) >= 5:
            break
    # (most of this hour's Weibull windows hold gaps below float resolution: those are left out here)
    assert checked["Gamma"] == 5 and checked["Weibull"] >= 3, checked
