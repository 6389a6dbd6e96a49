"""compose(): per-client composition on the shared ServeGen data and the demo data.

Expected values are derived here from the pool frames (rates, PDFs, bins) independently of the
composition code, then compared with the generated trace.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servegen_core.generate.compose import (
    EXCLUSION_REASONS,
    BoundedRate,
    ClientSelection,
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    ServeGenSource,
    Span,
    TraceSource,
    Weights,
    Workload,
    WorkloadSpec,
    compose,
    iter_compose,
    load_source,
    naive_spec,
    plan_workload,
)
from servegen_core.errors import DataFormatError, SpecError
from servegen_core.export.writer import export_chunks, export_trace
from servegen_core.sources.pool import load_pool
from servegen_core.schema import validate_trace

HOUR = Span(72000, 3600)  # 20:00-21:00 of day 0


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture(scope="module")
def r1(servegen_dir: Path, cache: Path):
    return load_pool(servegen_dir, "reason/deepseek-r1", cache_dir=cache)


def spec_for(data_dir: Path | str, model: str, **kw) -> WorkloadSpec:
    kw.setdefault("span", HOUR)
    # most tests here check against the clients that have length data; borrowing is tested apart
    kw.setdefault("missing_lengths", "exclude")
    return WorkloadSpec(source=ServeGenSource(str(data_dir), model), **kw)


@pytest.fixture(scope="module")
def observed_hour(servegen_dir: Path, m_large) -> Workload:
    return compose(spec_for(servegen_dir, "language/m-large"), pool=m_large)


def count_tol(plan, *, client: str | None = None, t0: float | None = None, t1: float | None = None) -> float:
    """Tolerance on a request count: one request per selected client-window (each client-window's
    count is its target rounded down or up), plus a float margin."""
    cw = plan.client_windows
    if client is not None:
        cw = cw.filter(pl.col("client_id") == client)
    if t0 is not None:
        cw = cw.filter(pl.col("t0_s") >= t0)
    if t1 is not None:
        cw = cw.filter(pl.col("t0_s") < t1)
    return cw.height + 1e-6


def hour_windows(pool, start=72000, end=75600) -> pl.DataFrame:
    return pool.windows.filter((pl.col("start_s") >= start) & (pl.col("start_s") < end) & (pl.col("rate_rps") > 0))


# ---------------------------------------------------------------------------------------------
# Shape of the result
# ---------------------------------------------------------------------------------------------


def test_observed_hour_is_a_valid_sorted_request_trace(observed_hour: Workload):
    tr = observed_hour.trace
    assert tr.columns == ["timestamp_s", "client_id", "input_tokens", "output_tokens"]
    assert_frame_equal(validate_trace(tr, sort=False), tr)
    assert tr["timestamp_s"].is_sorted()
    assert tr["timestamp_s"].min() >= 0 and tr["timestamp_s"].max() < 3600
    assert tr.height > 500_000


def test_clients_without_lengths_are_excluded_with_a_warning(observed_hour: Workload, m_large):
    hw = hour_windows(m_large)
    active = set(hw["client_id"].to_list())
    missing = set(m_large.clients_without_lengths)
    expected_excluded_active = sorted(active & missing, key=int)
    assert expected_excluded_active, "the hour has active clients without length data"
    generated = set(observed_hour.trace["client_id"].unique().to_list())
    assert generated == active - missing
    assert set(expected_excluded_active) <= set(observed_hour.excluded_clients)
    (warning,) = [w for w in observed_hour.warnings if "without length data excluded" in w]
    for cid in expected_excluded_active:
        assert f" {cid}," in warning + "," or f" {cid} " in warning
    # the warning states the share of requests that was left out, computed here from the rates
    load = hw.with_columns((pl.col("rate_rps") * 600).alias("n"))
    share = load.filter(pl.col("client_id").is_in(list(missing)))["n"].sum() / load["n"].sum()
    assert f"{share:.1%}" in warning


def test_exclusions_say_why_each_client_is_left_out(observed_hour: Workload, servegen_dir: Path, m_large):
    hw = hour_windows(m_large)
    active = set(hw["client_id"].to_list())
    # length data for the hour: the client's 18:00-24:00 length window has rows
    with_lengths = set(m_large.distributions.filter(pl.col("start_s") == 64800)["client_id"].to_list())
    ex = observed_hour.exclusions
    assert tuple(ex) == EXCLUSION_REASONS
    assert ex["not_selected"] == () and ex["weight_zero"] == ()
    assert set(ex["idle"]) == set(m_large.client_ids) - active
    assert set(ex["no_lengths"]) == active - with_lengths
    assert set(observed_hour.clients) == active & with_lengths
    assert observed_hour.excluded_clients == tuple(sorted(ex["idle"] + ex["no_lengths"], key=int))
    assert len(ex["idle"]) > len(ex["no_lengths"]) > 0  # most left-out clients simply send nothing at 20:00
    # a selection and explicit weights: unselected and weight-0 clients are named as such
    top = list(observed_hour.plan.weights.sort("observed_share", descending=True)["client_id"].head(3))
    spec = spec_for(
        servegen_dir, "language/m-large", clients=ClientSelection("ids", ids=(*top, ex["idle"][0], ex["no_lengths"][0])),
        weights=Weights("explicit", {top[0]: 1.0, top[1]: 1.0, ex["idle"][0]: 1.0, ex["no_lengths"][0]: 1.0}),
    )
    plan = plan_workload(spec, pool=m_large)
    assert set(plan.clients) == set(top[:2])
    assert plan.exclusions["weight_zero"] == (top[2],)
    assert plan.exclusions["idle"] == (ex["idle"][0],)
    assert plan.exclusions["no_lengths"] == (ex["no_lengths"][0],)
    assert len(plan.exclusions["not_selected"]) == len(m_large.client_ids) - 5
    parts = [set(plan.clients), *(set(v) for v in plan.exclusions.values())]
    assert sum(len(x) for x in parts) == len(set().union(*parts)) == len(m_large.client_ids)
    assert set(plan.excluded_clients) == {top[2], ex["idle"][0], ex["no_lengths"][0]}


def test_observed_rates_give_each_client_its_recorded_requests(observed_hour: Workload, m_large):
    hw = hour_windows(m_large).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    expected = hw.group_by("client_id").agg((pl.col("rate_rps") * 600).sum().alias("expected"))
    got = observed_hour.trace.group_by("client_id").len()
    both = expected.join(got, on="client_id", how="full", coalesce=True).fill_null(0)
    # counts per client-window are target x 600 rounded at random: within one request per window
    tol = np.array([count_tol(observed_hour.plan, client=c) for c in both["client_id"]])
    assert ((both["len"] - both["expected"]).abs().to_numpy() <= tol).all()
    assert abs(observed_hour.trace.height - expected["expected"].sum()) <= 0.01 * expected["expected"].sum()


def test_lengths_come_from_the_clients_own_bins(observed_hour: Workload, m_large):
    tr = observed_hour.trace
    bins = m_large.distributions.filter(pl.col("start_s") == 64800)  # the 6 h window holding 20:00-21:00
    for field in ("input_tokens", "output_tokens"):
        allowed = bins.filter(pl.col("field") == field).select("client_id", pl.col("value").cast(pl.Int64).alias(field), pl.lit(True).alias("ok"))
        joined = tr.select("client_id", field).join(allowed, on=["client_id", field], how="left")
        assert joined["ok"].null_count() == 0, f"{field}: a value outside the client's own bins"


def test_input_and_output_are_drawn_independently_within_a_client(observed_hour: Workload):
    per_client = (
        observed_hour.trace.group_by("client_id")
        .agg(pl.len(), pl.corr("input_tokens", "output_tokens", method="spearman").alias("rho"))
        .filter(pl.col("len") >= 5000)
    )
    assert per_client.height >= 10
    # one shared random number per request (ServeGen's code) would give rho = 1 for every client
    assert per_client["rho"].abs().max() < 0.1


# ---------------------------------------------------------------------------------------------
# Determinism, chunking, export
# ---------------------------------------------------------------------------------------------


def test_same_spec_same_frame_other_seed_other_frame(servegen_dir: Path, m_large, observed_hour: Workload):
    spec = spec_for(servegen_dir, "language/m-large")
    again = compose(spec, pool=m_large)
    assert_frame_equal(again.trace, observed_hour.trace)
    other = compose(dataclasses.replace(spec, seed=1), pool=m_large)
    assert other.trace.height == pytest.approx(again.trace.height, abs=count_tol(again.plan))
    assert not other.trace["timestamp_s"].equals(again.trace["timestamp_s"])


# span 72300-74700 touches 5 arrival windows starting (span time) at 0, 300, 900, 1500, 2100;
# a chunk holds the windows whose start falls in it
@pytest.mark.parametrize(("chunk_s", "n_chunks"), [(250.0, 5), (600, 4), (1000, 3), (3600, 1)])
def test_chunks_concatenate_to_the_composed_frame(servegen_dir: Path, m_large, chunk_s, n_chunks):
    spec = spec_for(servegen_dir, "language/m-large", span=Span(72300, 2400), rate=ConstantRate(40.0), seed=5)
    whole = compose(spec, pool=m_large).trace
    chunks = list(iter_compose(spec, chunk_s=chunk_s, pool=m_large))
    assert len(chunks) == n_chunks
    for c in chunks:
        assert c.height > 0
        assert c["timestamp_s"].is_sorted()
    for a, b in zip(chunks, chunks[1:]):
        assert a["timestamp_s"][-1] <= b["timestamp_s"][0]
    assert_frame_equal(pl.concat(chunks), whole)


def test_export_is_byte_identical_and_streams_identically(tmp_path: Path, servegen_dir: Path, m_large):
    spec = spec_for(servegen_dir, "language/m-large", span=Span(72000, 1800), rate=ConstantRate(30.0), seed=9)
    a = export_trace(compose(spec, pool=m_large).trace, tmp_path / "a.jsonl", "mooncake", spec=spec, note=None)
    b = export_trace(compose(spec, pool=m_large).trace, tmp_path / "b.jsonl", "mooncake", spec=spec, note=None)
    c = export_chunks(iter_compose(spec, chunk_s=600, pool=m_large), tmp_path / "c.jsonl", "mooncake", spec=spec, note=None)
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()
    assert len(data) > 0
    assert a.rows == b.rows == c.rows == data.count(b"\n")
    # the sidecar spec reads back to the same spec
    sidecar = Path(str(tmp_path / "a.jsonl") + ".spec.json")
    assert WorkloadSpec.from_file(sidecar) == spec


# ---------------------------------------------------------------------------------------------
# Rate functions
# ---------------------------------------------------------------------------------------------


def window_counts(trace: pl.DataFrame, width: float = 600.0) -> np.ndarray:
    k = (trace["timestamp_s"] // width).cast(pl.Int64).to_numpy()
    return np.bincount(k)


def test_constant_rate_splits_by_observed_shares_each_window(servegen_dir: Path, m_large):
    w = compose(spec_for(servegen_dir, "language/m-large", rate=ConstantRate(100.0)), pool=m_large)
    counts = window_counts(w.trace)
    assert len(counts) == 6
    # per window: 100 rps x 600 s, up to one request of rounding per active client
    tol = [count_tol(w.plan, t0=600 * k, t1=600 * (k + 1)) for k in range(6)]
    assert np.all(np.abs(counts - 60_000) <= tol)
    assert abs(counts.sum() - 360_000) <= 0.01 * 360_000
    # client shares inside a window follow the recorded rates (of the clients with lengths)
    hw = hour_windows(m_large, 72600, 73200).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    share = hw.select("client_id", (pl.col("rate_rps") / pl.col("rate_rps").sum()).alias("share"))
    got = w.trace.filter((pl.col("timestamp_s") >= 600) & (pl.col("timestamp_s") < 1200)).group_by("client_id").len()
    both = share.join(got, on="client_id", how="left").fill_null(0)
    tol = np.array([count_tol(w.plan, client=c, t0=600, t1=1200) for c in both["client_id"]])
    assert ((both["len"] - both["share"] * 60_000).abs().to_numpy() <= tol).all()


def test_observed_factor_scales_every_client(servegen_dir: Path, m_large, observed_hour: Workload):
    w = compose(spec_for(servegen_dir, "language/m-large", rate=ObservedRate(0.25)), pool=m_large)
    assert w.plan.expected_requests == pytest.approx(observed_hour.plan.expected_requests * 0.25, rel=1e-9)
    assert w.trace.height == pytest.approx(w.plan.expected_requests, abs=count_tol(w.plan))
    a = w.trace.group_by("client_id").len().sort("client_id")
    b = observed_hour.trace.group_by("client_id").len().sort("client_id")
    assert set(a["client_id"]) <= set(b["client_id"])
    # every client of the full hour, including any whose quarter rounds to no request at all
    j = b.join(a, on="client_id", how="left", suffix="_quarter").fill_null(0)
    tol = np.array([count_tol(observed_hour.plan, client=c) for c in j["client_id"]])
    # both counts are their targets rounded per client-window: 1.25 requests per window apart at most
    assert ((j["len_quarter"] - 0.25 * j["len"]).abs().to_numpy() <= 1.25 * tol).all()


def test_bounded_rate_caps_the_busiest_window(servegen_dir: Path, m_large):
    w = compose(spec_for(servegen_dir, "language/m-large", rate=BoundedRate(peak_rps=50.0)), pool=m_large)
    counts = window_counts(w.trace)
    # the observed peak is above 50 rps, so the busiest window's target is scaled down to it
    target = w.plan.targets["target_rps"].to_numpy() * 600
    assert target.max() == pytest.approx(50 * 600)
    # the shape over the hour is the observed aggregate's (clients with lengths)
    hw = hour_windows(m_large).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    agg = hw.group_by("start_s").agg(pl.col("rate_rps").sum()).sort("start_s")["rate_rps"].to_numpy()
    assert np.allclose(target / target.max(), agg / agg.max(), rtol=1e-9)
    tol = [count_tol(w.plan, t0=600 * k, t1=600 * (k + 1)) for k in range(6)]
    assert np.all(np.abs(counts - target) <= tol)
    # a cap above the observed peak leaves the observed rates unchanged
    loose = compose(spec_for(servegen_dir, "language/m-large", rate=BoundedRate(peak_rps=1e6)), pool=m_large)
    assert loose.plan.expected_requests == pytest.approx(hw["rate_rps"].sum() * 600, rel=1e-9)
    assert loose.trace.height == pytest.approx(hw["rate_rps"].sum() * 600, abs=count_tol(loose.plan))


def test_ramp_follows_the_rate_inside_windows(servegen_dir: Path, m_large):
    # 0 -> 100 rps over 600 s: one arrival window; the cumulative count must follow t^2.
    # Poisson arrivals isolate the rate function (bursty clients add their own clustering).
    spec = spec_for(servegen_dir, "language/m-large", span=Span(72000, 600), rate=RampRate(0.0, 100.0), arrivals="poisson")
    w = compose(spec, pool=m_large)
    ts = w.trace["timestamp_s"].to_numpy()
    assert len(ts) == pytest.approx(30_000, abs=count_tol(w.plan))
    for frac in (0.25, 0.5, 0.75):
        assert np.mean(ts < frac * 600) == pytest.approx(frac**2, abs=0.01)


def test_piecewise_step_and_linear(servegen_dir: Path, m_large):
    step = PiecewiseRate(((0, 20.0), (900, 80.0), (2700, 0.0)), "step")
    # window by window the counts follow the step with the fitted (bursty) arrivals ...
    fitted = compose(spec_for(servegen_dir, "language/m-large", rate=step), pool=m_large)
    counts = window_counts(fitted.trace)
    assert len(counts) == 5  # none in 3000-3600
    tol = [count_tol(fitted.plan, t0=600 * k, t1=600 * (k + 1)) for k in range(5)]
    assert np.all(np.abs(counts - np.array([12_000, 30_000, 48_000, 48_000, 24_000])) <= tol)
    # ... and inside a window the step is honoured (shown with Poisson arrivals: 20 rps for
    # 900 s, 80 rps for 1800 s, nothing after 2700 s)
    w = compose(spec_for(servegen_dir, "language/m-large", rate=step, arrivals="poisson"), pool=m_large)
    ts = w.trace["timestamp_s"]
    assert ts.filter(ts < 900).len() == pytest.approx(18_000, rel=0.02)
    assert ts.filter((ts >= 900) & (ts < 2700)).len() == pytest.approx(144_000, rel=0.01)
    assert ts.filter(ts >= 2700).len() == 0
    lin = PiecewiseRate(((0, 0.0), (3600, 100.0)), "linear")
    w2 = compose(spec_for(servegen_dir, "language/m-large", rate=lin, arrivals="poisson"), pool=m_large)
    assert w2.trace.height == pytest.approx(180_000, abs=count_tol(w2.plan))
    assert np.mean(w2.trace["timestamp_s"].to_numpy() < 1800) == pytest.approx(0.25, abs=0.005)


# ---------------------------------------------------------------------------------------------
# Clients and weights
# ---------------------------------------------------------------------------------------------


def test_explicit_weights_set_request_shares(servegen_dir: Path, m_large):
    hw = hour_windows(m_large).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    top = hw.group_by("client_id").agg(pl.col("rate_rps").sum()).sort("rate_rps", descending=True)["client_id"].to_list()
    a, b, c = top[0], top[1], top[5]
    spec = spec_for(
        servegen_dir, "language/m-large",
        clients=ClientSelection("ids", ids=(a, b, c)),
        weights=Weights("explicit", {a: 1.0, b: 3.0, c: 0.0}),
        rate=ConstantRate(50.0),
    )
    w = compose(spec, pool=m_large)
    shares = w.trace.group_by("client_id").len().with_columns(pl.col("len") / pl.col("len").sum())
    got = dict(zip(shares["client_id"], shares["len"]))
    assert set(got) == {a, b}  # weight 0 leaves a client out
    plan_share = dict(w.plan.weights.select("client_id", "weight_share").iter_rows())
    assert plan_share[a] == pytest.approx(0.25) and plan_share[b] == pytest.approx(0.75)
    n = dict(w.trace.group_by("client_id").len().iter_rows())
    assert n[a] == pytest.approx(0.25 * 50 * 3600, abs=count_tol(w.plan, client=a))
    assert n[b] == pytest.approx(0.75 * 50 * 3600, abs=count_tol(w.plan, client=b))
    assert w.plan.expected_requests == pytest.approx(50 * 3600)
    assert w.trace.height == pytest.approx(50 * 3600, abs=count_tol(w.plan))


def test_explicit_weights_with_observed_rate_keep_the_total(servegen_dir: Path, m_large):
    hw = hour_windows(m_large).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    ranked = hw.group_by("client_id").agg(pl.col("rate_rps").sum()).sort("rate_rps", descending=True)["client_id"].to_list()
    ids = tuple(sorted((ranked[0], ranked[3]), key=int))
    base = spec_for(servegen_dir, "language/m-large", clients=ClientSelection("ids", ids=ids))
    observed = compose(base, pool=m_large)
    weighted = compose(dataclasses.replace(base, weights=Weights("explicit", {ids[0]: 1.0, ids[1]: 1.0})), pool=m_large)
    assert weighted.plan.expected_requests == pytest.approx(observed.plan.expected_requests, rel=1e-6)
    assert weighted.trace.height == pytest.approx(observed.trace.height, abs=count_tol(weighted.plan) + count_tol(observed.plan))
    shares = weighted.trace.group_by("client_id").len().with_columns(pl.col("len") / pl.col("len").sum())
    assert shares["len"].to_list() == pytest.approx([0.5, 0.5], abs=0.01)


def test_unknown_ids_and_a_span_outside_the_data_name_the_key(servegen_dir: Path, m_large):
    bad = [
        (spec_for(servegen_dir, "language/m-large", clients=ClientSelection("ids", ids=("0", "99999"))), "clients.ids[1]"),
        (spec_for(servegen_dir, "language/m-large", weights=Weights("explicit", {"0": 1.0, "99999": 1.0})), "weights.values.99999"),
        (
            spec_for(servegen_dir, "language/m-large", clients=ClientSelection("ids", ids=("0",)), weights=Weights("explicit", {"17": 1.0})),
            "weights.values.17",
        ),
        (spec_for(servegen_dir, "language/m-large", span=Span(14 * 86400, 600)), "span.start_s"),
        (spec_for(servegen_dir, "language/m-large", span=Span(13 * 86400, 2 * 86400)), "span.duration_s"),
        (spec_for(servegen_dir, "language/m-nonexistent"), "source.model"),
        (spec_for(Path("/nonexistent/folder"), "language/m-large"), "source.data_dir"),
    ]
    for spec, key in bad:
        with pytest.raises(SpecError) as info:
            compose(spec, pool=None if key.startswith("source") else m_large)
        assert info.value.key == key, str(info.value)


def test_weights_of_silent_clients_sum_to_zero(servegen_dir: Path, m_large):
    # a client without length data cannot carry weight; if it is the only weighted one, nothing is left
    missing = m_large.clients_without_lengths[0]
    spec = spec_for(servegen_dir, "language/m-large", weights=Weights("explicit", {missing: 1.0}))
    with pytest.raises(SpecError) as info:
        compose(spec, pool=m_large)
    assert info.value.key == "weights.values"


def test_missing_lengths_pooled_keeps_every_client(servegen_dir: Path, m_large, observed_hour: Workload):
    w = compose(spec_for(servegen_dir, "language/m-large", missing_lengths="pooled"), pool=m_large)
    hw = hour_windows(m_large)
    assert set(w.clients) == set(hw["client_id"].unique())
    assert set(w.trace["client_id"].unique()) == set(hw["client_id"].unique())
    assert w.trace.height == pytest.approx(hw["rate_rps"].sum() * 600, abs=count_tol(w.plan))
    assert any("pooled lengths" in x for x in w.warnings)
    # clients with lengths are composed exactly as in the excluding workload (same per-window seeds
    # only differ by the added clients' draws, so compare distributions, not rows)
    assert w.trace.height > observed_hour.trace.height


# ---------------------------------------------------------------------------------------------
# Naive baselines
# ---------------------------------------------------------------------------------------------


def test_naive_poisson_changes_only_the_arrivals(servegen_dir: Path, m_large, observed_hour: Workload):
    spec = spec_for(servegen_dir, "language/m-large")
    naive = naive_spec(spec, "poisson")
    assert naive == dataclasses.replace(spec, arrivals="poisson")
    w = compose(naive, pool=m_large)
    # the same targets per client-window, and each client keeps its own lengths
    assert_frame_equal(
        w.plan.client_windows.select("client_id", "start_s", "expected_requests", "length_source"),
        observed_hour.plan.client_windows.select("client_id", "start_s", "expected_requests", "length_source"),
    )
    a = w.trace.group_by("client_id").agg(pl.len(), pl.col("input_tokens").mean().alias("mean_in"))
    b = observed_hour.trace.group_by("client_id").agg(pl.len(), pl.col("input_tokens").mean().alias("mean_in"))
    both = a.join(b, on="client_id", suffix="_real").filter(pl.col("len") >= 5000)
    assert both.height >= 10
    assert ((both["mean_in"] / both["mean_in_real"] - 1).abs() < 0.1).all()


def test_naive_pooled_lengths_pool_only_the_lengths(servegen_dir: Path, m_large, observed_hour: Workload):
    spec = spec_for(servegen_dir, "language/m-large")
    naive = naive_spec(spec, "pooled_lengths")
    assert naive == dataclasses.replace(spec, lengths="pooled")
    assert naive_spec(spec, "poisson_pooled") == dataclasses.replace(spec, arrivals="poisson", lengths="pooled")
    w = compose(naive, pool=m_large)
    # pooled lengths: two very different clients get the same input distribution
    per = w.trace.group_by("client_id").agg(pl.len(), pl.col("input_tokens").median().alias("med")).filter(pl.col("len") > 5000)
    real = observed_hour.trace.group_by("client_id").agg(pl.len(), pl.col("input_tokens").median().alias("med")).filter(pl.col("len") > 5000)
    assert real["med"].max() / real["med"].min() > 3
    assert per["med"].max() / per["med"].min() < 1.2
    # pooled = mixture of the clients' own tables weighted by their requests: same overall mean
    assert w.trace["input_tokens"].mean() == pytest.approx(observed_hour.trace["input_tokens"].mean(), rel=0.03)


def test_naive_poisson_has_poisson_gaps(servegen_dir: Path, m_large):
    naive = naive_spec(spec_for(servegen_dir, "language/m-large"), "poisson")
    tr = compose(naive, pool=m_large).trace
    assert set(compose(naive, pool=m_large).plan.client_windows["model_pattern"]) == {"Exponential"}
    big = tr.group_by("client_id").len().sort("len", descending=True)["client_id"][0]
    ts = tr.filter((pl.col("client_id") == big) & (pl.col("timestamp_s") < 600))["timestamp_s"].to_numpy()
    gaps = np.diff(ts)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_naive_constant_is_flat_at_the_mean_rate_with_the_same_client_mix(servegen_dir: Path, m_large, observed_hour: Workload):
    spec = spec_for(servegen_dir, "language/m-large")
    naive = naive_spec(spec, "constant", pool=m_large)
    assert isinstance(naive.rate, ConstantRate)
    assert naive.arrivals == "poisson" and naive.lengths == "client"
    assert naive.rate.rps == pytest.approx(observed_hour.plan.expected_requests / 3600, rel=1e-6)
    w = compose(naive, pool=m_large)
    counts = window_counts(w.trace)
    tol = [count_tol(w.plan, t0=600 * k, t1=600 * (k + 1)) for k in range(6)]
    assert np.all(np.abs(counts - naive.rate.rps * 600) <= tol)
    # flattening the rate keeps every client's share of the requests (not the per-window mix)
    real = observed_hour.trace.group_by("client_id").len().with_columns(pl.col("len") / pl.col("len").sum())
    flat = w.trace.group_by("client_id").len().with_columns(pl.col("len") / pl.col("len").sum())
    both = real.join(flat, on="client_id", how="full", coalesce=True).fill_null(0.0)
    assert (both["len"] - both["len_right"]).abs().max() < 0.01
    # and so the length marginals: mean output within 3 % (the per-window mix would shift it)
    assert w.trace["output_tokens"].mean() == pytest.approx(observed_hour.trace["output_tokens"].mean(), rel=0.03)
    with pytest.raises(ValueError, match="poisson"):
        naive_spec(spec, "uniform")


# ---------------------------------------------------------------------------------------------
# Multimodal and reasoning data
# ---------------------------------------------------------------------------------------------


def test_mm_image_counts_tokens_and_totals(servegen_dir: Path, mm_image):
    w = compose(spec_for(servegen_dir, "multimodal/mm-image", span=Span(43200, 7200)), pool=mm_image)
    tr = w.trace
    for c in ("text_tokens", "image_tokens", "image_count", "audio_tokens", "video_tokens"):
        assert c in tr.columns
    total = tr["text_tokens"] + tr["image_tokens"] + tr["audio_tokens"] + tr["video_tokens"]
    assert (tr["input_tokens"] == total).all()
    assert ((tr["image_count"] == 0) == (tr["image_tokens"] == 0)).all()
    dist = mm_image.distributions.filter(pl.col("start_s") == 43200)
    # image counts are the client's own bins, per request
    counts = dist.filter(pl.col("field") == "image_count").select("client_id", pl.col("value").cast(pl.Int64).alias("image_count"), pl.lit(1).alias("ok"))
    assert tr.join(counts, on=["client_id", "image_count"], how="left")["ok"].null_count() == 0
    # one image: its tokens are one per-image bin of the client's image_tokens PDF
    per_image = dist.filter(pl.col("field") == "image_tokens").select("client_id", pl.col("value").cast(pl.Int64).alias("image_tokens"), pl.lit(1).alias("ok"))
    single = tr.filter(pl.col("image_count") == 1)
    assert single.height > 1000
    assert single.join(per_image, on=["client_id", "image_tokens"], how="left")["ok"].null_count() == 0
    # several images: the total is a sum of per-image draws, so it can exceed the per-image cap of 1280
    many = tr.filter(pl.col("image_count") >= 3)
    assert many.height > 0
    assert (many["image_tokens"] <= many["image_count"] * 1280).all()
    assert many["image_tokens"].max() > 1280
    # mean tokens per image follow the per-image PDFs (weighted by the clients' image volume)
    mean_pdf = (
        dist.filter(pl.col("field") == "image_tokens").group_by("client_id").agg((pl.col("value") * pl.col("prob")).sum().alias("m"))
    )
    j = tr.filter(pl.col("image_count") > 0).group_by("client_id").agg(
        (pl.col("image_tokens").sum() / pl.col("image_count").sum()).alias("per_image"), pl.col("image_count").sum().alias("imgs")
    ).join(mean_pdf, on="client_id").filter(pl.col("imgs") > 2000)
    assert j.height > 0
    assert ((j["per_image"] / j["m"] - 1).abs() < 0.05).all()


def test_reasoning_split_uses_the_exact_ratio_bins(servegen_dir: Path, r1):
    w = compose(spec_for(servegen_dir, "reason/deepseek-r1", span=Span(43200, 3600)), pool=r1)
    tr = w.trace
    assert (tr["reasoning_tokens"] + tr["answer_tokens"] == tr["output_tokens"]).all()
    assert (tr["reasoning_tokens"] >= 0).all() and (tr["answer_tokens"] >= 0).all()
    ratio_bins = r1.distributions.filter((pl.col("field") == "reason_ratio") & (pl.col("start_s") == 43200))
    allowed = ratio_bins.select("client_id", pl.col("value").alias("reason_ratio"), pl.lit(1).alias("ok"))
    assert tr.join(allowed, on=["client_id", "reason_ratio"], how="left")["ok"].null_count() == 0
    # the data's bins are k/501; values off that grid (k/500) never appear
    k = tr["reason_ratio"].to_numpy() * 501
    assert np.allclose(k, np.round(k), atol=1e-6)
    expected = np.rint(tr["output_tokens"].to_numpy() * tr["reason_ratio"].to_numpy()).astype(np.int64)
    assert np.array_equal(tr["reasoning_tokens"].to_numpy(), expected)


def test_length_correlation_couples_input_and_output(servegen_dir: Path, m_large):
    spec = spec_for(servegen_dir, "language/m-large", span=Span(72000, 1200), length_correlation=0.6)
    tr = compose(spec, pool=m_large).trace
    per = tr.group_by("client_id").agg(pl.len(), pl.corr("input_tokens", "output_tokens", method="spearman").alias("rho")).filter(
        pl.col("len") >= 5000
    )
    target = 6 / math.pi * math.asin(0.3)
    assert per.height >= 5
    assert per["rho"].median() == pytest.approx(target, abs=0.08)


# ---------------------------------------------------------------------------------------------
# Spans, trace sources, demo data
# ---------------------------------------------------------------------------------------------


def test_unaligned_span_clips_windows(servegen_dir: Path, m_large):
    w = compose(spec_for(servegen_dir, "language/m-large", span=Span(72300, 1000)), pool=m_large)
    ts = w.trace["timestamp_s"]
    assert ts.min() >= 0 and ts.max() < 1000
    hw = hour_windows(m_large, 72000, 73800).filter(~pl.col("client_id").is_in(list(m_large.clients_without_lengths)))
    # covered seconds per window: 72300-72600 (300), 72600-73200 (600), 73200-73300 (100)
    cover = {72000: 300, 72600: 600, 73200: 100}
    expected = sum(r["rate_rps"] * cover.get(r["start_s"], 0) for r in hw.iter_rows(named=True))
    assert w.plan.expected_requests == pytest.approx(expected, rel=1e-9)
    assert w.trace.height == pytest.approx(expected, abs=count_tol(w.plan))
    assert w.plan.targets["duration_s"].to_list() == [300.0, 600.0, 100.0]


def test_trace_source_fitted_and_scaled(traces_dir: Path):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    spec = WorkloadSpec(TraceSource(str(path), "azure"), Span(0), rate=ObservedRate(2.0), seed=3)
    pool = load_source(spec)
    assert pool.client_ids == ("all",)
    w = compose(spec, pool=pool)
    assert w.plan.expected_requests == pytest.approx(2 * 19_366, rel=1e-9)
    assert w.trace.height == pytest.approx(2 * 19_366, abs=count_tol(w.plan))
    assert w.trace["timestamp_s"].max() < pool.end_s
    # a relative path in a spec file resolves against the file's folder
    from servegen_core.sources.traces import load_trace

    raw = load_trace(path, preset="azure").trace
    assert w.trace["input_tokens"].is_in(raw["input_tokens"].unique().implode()).all()


def test_trace_source_with_a_custom_column_mapping(traces_dir: Path, tmp_path: Path):
    # the Azure trace under other column names, with a client column: read with the generic preset
    raw = pl.read_csv(traces_dir / "AzureLLMInferenceTrace_conv.csv", infer_schema=False)
    users = np.where(np.arange(raw.height) % 3 == 0, "u-a", "u-b")
    mine = raw.rename({"TIMESTAMP": "when", "ContextTokens": "prompt", "GeneratedTokens": "completion"}).with_columns(
        pl.Series("user", users)
    )
    mine.write_csv(tmp_path / "mine.csv")
    source = TraceSource(
        "mine.csv",
        "generic",
        columns={"timestamp": "when", "input_tokens": "prompt", "output_tokens": "completion"},
        time_unit="datetime",
        client_column="user",
    )
    spec_path = WorkloadSpec(source, Span(0), seed=5).to_file(tmp_path / "spec.json")
    spec = WorkloadSpec.from_file(spec_path)  # the relative trace path resolves against the spec's folder
    assert spec.source == source
    pool = load_source(spec)
    assert pool.client_ids == ("u-a", "u-b")
    w = compose(spec, pool=pool)
    counts = dict(w.trace.group_by("client_id").len().iter_rows())
    expected = dict(w.plan.weights.select("client_id", "expected_requests").iter_rows())
    assert expected["u-a"] == pytest.approx(19_366 / 3, abs=1) and expected["u-b"] == pytest.approx(2 * 19_366 / 3, abs=1)
    for c in ("u-a", "u-b"):
        assert counts[c] == pytest.approx(expected[c], abs=count_tol(w.plan, client=c))
    assert w.trace["input_tokens"].is_in(raw["ContextTokens"].cast(pl.Int64).unique().implode()).all()
    # per_client=False on the same mapping: one client, the same arrival windows as the azure preset
    one = dataclasses.replace(spec, source=dataclasses.replace(source, per_client=False))
    azure = WorkloadSpec(TraceSource(str(traces_dir / "AzureLLMInferenceTrace_conv.csv"), "azure", per_client=False), Span(0))
    assert_frame_equal(load_source(one).windows, load_source(azure).windows)
    # a mapped column the file lacks is a data error naming the file and the column
    bad = dataclasses.replace(spec, source=dataclasses.replace(source, client_column="tenant"))
    with pytest.raises(DataFormatError, match=r"mine\.csv.*'tenant'"):
        load_source(bad)
    # a mapping that clashes with the preset's own columns names source.columns
    clash = dataclasses.replace(spec, source=TraceSource(str(traces_dir / "AzureLLMInferenceTrace_conv.csv"), "azure", columns={"client_id": "ContextTokens"}))
    with pytest.raises(SpecError) as info:
        load_source(clash)
    assert info.value.key == "source.columns"


@pytest.mark.parametrize("model", ["language/demo-chat", "multimodal/demo-vl", "reason/demo-r1"])
def test_demo_models_compose_and_stream(demo_dir: Path, model: str, cache: Path):
    pool = load_pool(demo_dir / "servegen", model, cache_dir=cache)
    spec = WorkloadSpec(ServeGenSource("demo", model), Span(pool.start_s, 6 * 3600), seed=11)
    assert spec.resolve_path("demo") == (demo_dir / "servegen").resolve()
    w = compose(spec, pool=pool)
    assert w.trace.height > 1000
    assert_frame_equal(pl.concat(list(iter_compose(spec, chunk_s=3600, pool=pool))), w.trace)
    assert set(w.trace["client_id"].unique()) <= set(pool.client_ids)
    if "reasoning_tokens" in w.trace.columns:
        assert (w.trace["reasoning_tokens"] + w.trace["answer_tokens"] == w.trace["output_tokens"]).all()
    if "image_tokens" in w.trace.columns:
        assert (w.trace["input_tokens"] == w.trace["text_tokens"] + w.trace["image_tokens"] + w.trace["audio_tokens"] + w.trace["video_tokens"]).all()


def test_plan_reports_targets_without_drawing(servegen_dir: Path, m_large, observed_hour: Workload):
    plan = plan_workload(spec_for(servegen_dir, "language/m-large"), pool=m_large)
    assert plan.expected_requests == pytest.approx(observed_hour.trace.height, abs=count_tol(plan))
    assert plan.target_requests == pytest.approx(plan.expected_requests)
    assert plan.targets.height == 6
    assert plan.weights["weight_share"].sum() == pytest.approx(1.0)
    assert set(plan.client_windows["length_source"].unique()) == {"client"}


def test_top_k_by_request_share_ranks_client_shares_without_the_summary(servegen_dir: Path, m_large, monkeypatch):
    """top_k by request share picks the k busiest clients of the span (ties in id order) from
    rates.client_shares, the same ids the summary ranking picks, without building the summary."""
    from servegen_core.characterize.summary import client_summary, filter_clients
    from servegen_core.generate import stages

    spec = spec_for(servegen_dir, "language/m-large", clients=ClientSelection("top_k", k=7), missing_lengths="pooled")
    span = stages.cut_span(spec, m_large)
    expected = sorted(filter_clients(client_summary(span.pool), top_k=7), key=int)

    def no_summary(*args, **kwargs):
        raise AssertionError("top_k by request_share built the client summary")

    monkeypatch.setattr(stages, "client_summary", no_summary)
    choice = stages.select_clients(spec, span)
    assert list(choice.chosen) == expected
    assert len(expected) == 7
    hw = hour_windows(m_large)
    busiest = hw.group_by("client_id").agg((pl.col("rate_rps") * 600).sum().alias("n")).sort("n", descending=True)
    assert set(choice.chosen) == set(busiest["client_id"].head(7).to_list())
    with pytest.raises(AssertionError, match="built the client summary"):  # other columns still need it
        stages.select_clients(dataclasses.replace(spec, clients=ClientSelection("top_k", k=3, by="cv")), span)


def test_top_k_and_filter_select_by_the_span_summary(servegen_dir: Path, m_large):
    hw = hour_windows(m_large)
    totals = hw.group_by("client_id").agg((pl.col("rate_rps") * 600).sum().alias("n")).sort("n", descending=True)
    share = totals.with_columns(pl.col("n") / pl.col("n").sum())
    missing = set(m_large.clients_without_lengths)
    top5 = totals["client_id"].head(5).to_list()
    w = compose(spec_for(servegen_dir, "language/m-large", clients=ClientSelection("top_k", k=5)), pool=m_large)
    assert set(w.clients) == set(top5) - missing
    assert set(w.excluded_clients) >= set(top5) & missing
    big = share.filter(pl.col("n") >= 0.02)["client_id"].to_list()
    sel = ClientSelection("filter", ranges=(("request_share", 0.02, None), ("has_lengths", 1, 1)))
    w2 = compose(spec_for(servegen_dir, "language/m-large", clients=sel), pool=m_large)
    assert set(w2.clients) == set(big) - missing
    assert not w2.warnings  # clients without lengths were filtered out, not excluded
    with pytest.raises(SpecError) as info:
        compose(spec_for(servegen_dir, "language/m-large", clients=ClientSelection("filter", ranges=(("no_such", 0, 1),))), pool=m_large)
    assert info.value.key == "clients.ranges.no_such"
