"""Tests of servegen_core.characterize.rates on the shared ServeGen data and the shared raw traces.

Pool statistics are compared with sums over the raw trace CSVs (read here with Polars, not
through the loader); trace statistics with NumPy histograms and group-bys over the rows and,
for hours of day, with the Azure trace's own wall-clock timestamps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import rates
from servegen_core.sources.pool import DISTRIBUTION_SCHEMA, LENGTH_WINDOW_SCHEMA, WINDOW_SCHEMA, ClientPool
from servegen_core.result import Table
from servegen_core.schema import empty_trace
from servegen_core.sources.traces import load_trace

MODEL = "language/m-large"
AZURE = "AzureLLMInferenceTrace_conv.csv"
DAY = 86400
RAW_SCHEMA = {
    "start_s": pl.Int64,
    "rate_rps": pl.Float64,
    "cv": pl.Float64,
    "pattern": pl.String,
    "shape": pl.Float64,
    "scale": pl.Float64,
}


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def raw(servegen_dir: Path) -> pl.DataFrame:
    """Every window of every m-large trace CSV with its requests (rate x 600 s), read directly."""
    frames = []
    for f in sorted((servegen_dir / MODEL).glob("chunk-*-trace.csv")):
        cid = re.match(r"chunk-(\d+)-trace\.csv", f.name).group(1)
        frames.append(pl.read_csv(f, has_header=False, schema=RAW_SCHEMA).with_columns(pl.lit(cid).alias("client_id")))
    return pl.concat(frames).with_columns((pl.col("rate_rps") * 600).alias("requests"))


@pytest.fixture(scope="module")
def azure(traces_dir: Path) -> pl.DataFrame:
    return load_trace(traces_dir / AZURE).trace


@pytest.fixture(scope="module")
def azure_wall_clock(traces_dir: Path) -> pl.Series:
    """The Azure trace's TIMESTAMP column parsed here, sorted like the loaded trace."""
    ts = pl.read_csv(traces_dir / AZURE, schema_overrides={"TIMESTAMP": pl.String})["TIMESTAMP"]
    return ts.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns").sort()


def with_clients(trace: pl.DataFrame, n: int) -> pl.DataFrame:
    return trace.with_columns((pl.col("input_tokens") % n).cast(pl.String).alias("client_id"))


def three_days(azure: pl.DataFrame) -> pl.DataFrame:
    """Three copies of the Azure hour, one per day, at 00:00, 01:00 and 02:00, thinned 1, 1/2, 1/3."""
    parts = []
    for d in range(3):
        part = with_clients(azure, 5).with_row_index("i").filter(pl.col("i") % (d + 1) == 0).drop("i")
        parts.append(part.with_columns(pl.col("timestamp_s") + d * (DAY + 3600)))
    return pl.concat(parts).sort("timestamp_s")


def make_pool(windows: list[dict]) -> ClientPool:
    w = pl.DataFrame([{"duration_s": 600, **r} for r in windows] if windows else None, schema=WINDOW_SCHEMA)
    return ClientPool(
        name="language/test",
        source="test",
        windows=w.select(list(WINDOW_SCHEMA)),
        distributions=pl.DataFrame(schema=DISTRIBUTION_SCHEMA),
        length_windows=pl.DataFrame(schema=LENGTH_WINDOW_SCHEMA),
    )


def window(cid: str, start: int, rate: float) -> dict:
    pattern = "Gamma" if rate > 0 else ""
    return {"client_id": cid, "start_s": start, "rate_rps": rate, "cv": 1.0 if rate else 0.0, "pattern": pattern, "shape": 1.0 if rate else 0.0, "scale": 1.0 if rate else 0.0}


# --------------------------------------------------------------------------- reference figures of m-large


def test_top_10_clients_carry_63_2_percent(m_large, raw) -> None:
    per_client = raw.group_by("client_id").agg(pl.col("requests").sum()).sort("requests", descending=True)
    expected = per_client["requests"].head(10).sum() / per_client["requests"].sum()
    got = rates.top_k_share(m_large, 10)
    assert got.ok and got.clients == 162
    assert got.share == pytest.approx(expected, rel=1e-12)
    assert got.share == pytest.approx(0.632, abs=0.001)
    assert float(got) == got.share


def test_aggregate_peak_trough_ratio_is_about_12(m_large, raw) -> None:
    agg = raw.group_by("start_s").agg(pl.col("rate_rps").sum()).filter(pl.col("rate_rps") > 0)
    expected = agg["rate_rps"].max() / agg["rate_rps"].min()
    got = rates.peak_trough(m_large)
    assert got.ratio == pytest.approx(expected, rel=1e-12)
    assert 11.5 < got.ratio < 12.5  # about 12
    assert got.peak_rps == pytest.approx(agg["rate_rps"].max())
    assert got.trough_start_s == agg.filter(pl.col("rate_rps") == agg["rate_rps"].min())["start_s"][0]
    assert got.bins == agg.height == 2016


# --------------------------------------------------------------------------- aggregate rate (pool)


@pytest.mark.parametrize("resolution", [600, 3600, 7200])
def test_rate_series_sums_the_client_rates(m_large, raw, resolution: int) -> None:
    got = rates.rate_series(m_large, resolution_s=resolution).frame
    expected = (
        raw.group_by((pl.col("start_s") // resolution * resolution).alias("start_s"))
        .agg(pl.col("requests").sum())
        .sort("start_s")
    )
    assert got["start_s"].to_list() == expected["start_s"].to_list()
    np.testing.assert_allclose(got["requests"].to_numpy(), expected["requests"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["rate_rps"].to_numpy(), expected["requests"].to_numpy() / resolution, rtol=1e-12)
    assert got["complete"].all()
    with pytest.raises(ValueError, match="multiple"):
        rates.rate_series(m_large, resolution_s=900)


def test_hour_day_matrix_of_the_pool(m_large, raw) -> None:
    got = rates.hour_day_matrix(m_large).frame
    assert got.height == 14 * 24
    expected = raw.group_by((pl.col("start_s") // DAY).alias("day"), (pl.col("start_s") % DAY // 3600).alias("hour")).agg(
        (pl.col("requests").sum() / 3600).alias("expected")
    )
    joined = got.join(expected, on=["day", "hour"])
    assert joined.height == got.height
    np.testing.assert_allclose(joined["rate_rps"].to_numpy(), joined["expected"].to_numpy(), rtol=1e-12)


def test_daily_peak_trough_of_the_pool(m_large, raw) -> None:
    got = rates.daily_peak_trough(m_large).frame
    per_window = raw.group_by("start_s").agg(pl.col("rate_rps").sum()).filter(pl.col("rate_rps") > 0)
    expected = per_window.group_by((pl.col("start_s") // DAY).alias("day")).agg(
        pl.col("rate_rps").max().alias("hi"), pl.col("rate_rps").min().alias("lo")
    ).sort("day")
    assert got["day"].to_list() == list(range(14))
    np.testing.assert_allclose(got["ratio"].to_numpy(), (expected["hi"] / expected["lo"]).to_numpy(), rtol=1e-12)
    # from the rate_series table: the same
    assert rates.daily_peak_trough(rates.rate_series(m_large)).frame.equals(got)


def test_day_over_day_of_the_pool(m_large, raw) -> None:
    got = rates.day_over_day(m_large).frame
    daily = raw.group_by((pl.col("start_s") // DAY).alias("day")).agg(pl.col("requests").sum()).sort("day")
    req = daily["requests"].to_numpy()
    assert got["covered_s"].to_list() == [float(DAY)] * 14
    np.testing.assert_allclose(got["requests"].to_numpy(), req, rtol=1e-12)
    assert got["change_pct"][0] is None
    np.testing.assert_allclose(got["change_pct"].to_numpy()[1:], 100 * (req[1:] / req[:-1] - 1), rtol=1e-9)


# --------------------------------------------------------------------------- concentration (pool)


def test_client_shares_lorenz_and_gini(m_large, raw) -> None:
    shares = rates.client_shares(m_large).frame
    per_client = raw.group_by("client_id").agg(pl.col("requests").sum())
    x = np.sort(per_client["requests"].to_numpy())
    assert shares.height == 162 and shares["rank"].to_list() == list(range(1, 163))
    np.testing.assert_allclose(shares["requests"].to_numpy(), x[::-1], rtol=1e-12)
    np.testing.assert_allclose(shares["cum_share"].to_numpy(), np.cumsum(x[::-1]) / x.sum(), rtol=1e-12)
    # Gini as the mean absolute difference over twice the mean
    n = x.size
    mad_gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean())
    g = rates.gini(m_large)
    assert g.value == pytest.approx(mad_gini, rel=1e-9) and g.clients == 162
    curve = rates.lorenz(m_large).frame
    assert curve.row(0) == (0.0, 0.0) and curve.row(-1) == pytest.approx((1.0, 1.0))
    assert (curve["load_share"].diff().drop_nulls() >= 0).all()
    # the area between the Lorenz curve and the diagonal is half the Gini coefficient
    area = np.trapezoid(curve["load_share"].to_numpy(), curve["client_share"].to_numpy())
    assert 1 - 2 * area == pytest.approx(mad_gini, rel=1e-9)
    # from the client_shares table: the same
    table = rates.client_shares(m_large)
    assert rates.gini(table) == g and rates.top_k_share(table, 10) == rates.top_k_share(m_large, 10)


def test_client_shares_list_clients_without_requests(m_large) -> None:
    quiet = m_large.span(0, 600)
    shares = rates.client_shares(quiet).frame
    active = quiet.windows.filter(pl.col("rate_rps") > 0).height
    assert shares.height == 162
    assert shares.filter(pl.col("requests") == 0).height == 162 - active
    assert shares["rank"][-1] == 162 and shares["cum_share"][-1] == pytest.approx(1.0)


def test_top_k_series_stacks_to_the_total(m_large) -> None:
    k = 5
    series = rates.top_k_series(m_large, k, resolution_s=3600).frame
    total = rates.rate_series(m_large, resolution_s=3600).frame
    top = rates.client_shares(m_large).frame["client_id"].head(k).to_list()
    assert series["group"].unique(maintain_order=True).to_list() == [*top, "rest"]
    stacked = series.group_by("start_s").agg(pl.col("rate_rps").sum(), pl.col("share").sum()).sort("start_s")
    np.testing.assert_allclose(stacked["rate_rps"].to_numpy(), total["rate_rps"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(stacked["share"].to_numpy(), 1.0, rtol=1e-9)
    one = series.filter(pl.col("group") == top[0])
    per_hour = m_large.windows.filter(pl.col("client_id") == top[0]).group_by(pl.col("start_s") // 3600 * 3600).agg(
        (pl.col("rate_rps") * 600).sum().alias("req")
    ).sort("start_s")
    np.testing.assert_allclose(one["requests"].to_numpy(), per_hour["req"].to_numpy(), rtol=1e-12)


def test_client_stability_and_the_top_clients_share_of_variance(m_large, raw) -> None:
    stab = rates.client_stability(m_large, k=10).frame
    daily = raw.group_by("client_id", (pl.col("start_s") // DAY).alias("day")).agg(pl.col("requests").sum())
    for cid in stab["client_id"].head(3).to_list() + stab["client_id"].tail(2).to_list():
        v = daily.filter(pl.col("client_id") == cid).sort("day")["requests"].to_numpy() / DAY
        row = stab.filter(pl.col("client_id") == cid).row(0, named=True)
        assert row["daily_cv"] == pytest.approx(v.std() / v.mean(), rel=1e-9)
        assert row["mean_daily_rps"] == pytest.approx(v.mean(), rel=1e-9)
    assert stab["top_k"].sum() == 10 and stab.head(10)["top_k"].all()

    summary = rates.stability_summary(m_large, k=10).frame
    top_ids = stab["client_id"].head(10).to_list()
    wide = daily.with_columns(pl.col("client_id").is_in(top_ids).alias("top")).group_by("day", "top").agg(
        pl.col("requests").sum()
    )
    top = wide.filter(pl.col("top")).sort("day")["requests"].to_numpy()
    rest = wide.filter(~pl.col("top")).sort("day")["requests"].to_numpy()
    total = top + rest
    expected_share = np.cov(top, total, bias=True)[0, 1] / total.var()
    row = summary.filter(pl.col("group") == "top-10").row(0, named=True)
    assert row["variance_share"] == pytest.approx(expected_share, rel=1e-9)
    assert row["daily_cv"] == pytest.approx(top.std() / top.mean(), rel=1e-9)
    shares = summary["variance_share"].to_list()
    assert shares[0] + shares[1] == pytest.approx(1.0) and shares[2] == pytest.approx(1.0)
    # the paper's observation: a few top clients cause most of the day-to-day change
    assert row["variance_share"] > 0.5


def test_tables_give_the_same_results_as_sources(m_large) -> None:
    daily = rates.daily_volumes(m_large)
    assert daily.frame.height == 162 * 14
    assert rates.client_shares(daily).frame.equals(rates.client_shares(m_large).frame)
    assert rates.day_over_day(daily).frame.equals(rates.day_over_day(m_large).frame)
    assert rates.client_stability(daily).frame.equals(rates.client_stability(m_large).frame)
    assert rates.peak_trough(rates.rate_series(m_large, resolution_s=3600)) == rates.peak_trough(m_large, resolution_s=3600)
    with pytest.raises(ValueError, match="rate_series"):
        rates.peak_trough(rates.client_shares(m_large))


# --------------------------------------------------------------------------- traces


def test_trace_rate_series_and_peak_trough(azure) -> None:
    ts = azure["timestamp_s"].to_numpy()
    got = rates.rate_series(azure, resolution_s=60).frame
    nb = int(ts.max() // 60) + 1
    counts, _ = np.histogram(ts, bins=np.arange(nb + 1) * 60.0)
    np.testing.assert_array_equal(got["requests"].to_numpy(), counts)
    complete = (np.arange(nb) + 1) * 60 <= ts.max()
    np.testing.assert_array_equal(got["complete"].to_numpy(), complete)
    pt = rates.peak_trough(azure, resolution_s=60)
    use = counts[complete & (counts > 0)] / 60
    assert pt.peak_rps == pytest.approx(use.max()) and pt.trough_rps == pytest.approx(use.min())
    assert pt.bins == use.size


def test_trace_hours_follow_the_wall_clock(azure, azure_wall_clock) -> None:
    first = azure_wall_clock[0]
    origin_hour = first.hour + first.minute / 60 + (first.second + first.microsecond / 1e6) / 3600
    got = rates.hour_day_matrix(azure, origin_hour=origin_hour).frame
    expected = azure_wall_clock.dt.hour().value_counts().sort("TIMESTAMP")
    assert got["day"].unique().to_list() == [0]
    assert got["hour"].to_list() == expected["TIMESTAMP"].to_list() == [18, 19]
    np.testing.assert_array_equal(got["requests"].to_numpy(), expected["count"].to_numpy())
    assert not got["complete"].any()  # the hour of 18:15 to 19:13 fills neither hour


def test_trace_shares_and_series_by_client(azure) -> None:
    trace = with_clients(azure, 7)
    shares = rates.client_shares(trace).frame
    counts = trace["client_id"].value_counts()
    expected = dict(zip(counts["client_id"].to_list(), counts["count"].to_list()))
    assert dict(zip(shares["client_id"].to_list(), shares["requests"].to_list())) == expected
    assert (shares["requests"].diff().drop_nulls() <= 0).all()
    x = np.array(sorted(expected.values()), dtype=float)
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert rates.gini(trace).value == pytest.approx(mad, rel=1e-9)
    series = rates.top_k_series(trace, 2, resolution_s=600).frame
    top = shares["client_id"].head(2).to_list()
    for cid in top:
        ts = trace.filter(pl.col("client_id") == cid)["timestamp_s"].to_numpy()
        c, _ = np.histogram(ts, bins=np.arange(7) * 600.0)
        np.testing.assert_array_equal(series.filter(pl.col("group") == cid)["requests"].to_numpy(), c)
    rest = trace.filter(~pl.col("client_id").is_in(top))["timestamp_s"].to_numpy()
    c, _ = np.histogram(rest, bins=np.arange(7) * 600.0)
    np.testing.assert_array_equal(series.filter(pl.col("group") == "rest")["requests"].to_numpy(), c)


def test_trace_daily_volumes_and_day_over_day(azure) -> None:
    trace = three_days(azure)
    ts = trace["timestamp_s"].to_numpy()
    daily = rates.daily_volumes(trace)
    assert daily.frame.height == 5 * 3
    covered = [DAY, DAY, ts.max() - 2 * DAY]
    dod = rates.day_over_day(daily).frame
    per_day = np.bincount((ts // DAY).astype(int))
    np.testing.assert_allclose(dod["covered_s"].to_numpy(), covered)
    np.testing.assert_array_equal(dod["requests"].to_numpy(), per_day)
    rate = per_day / np.array(covered)
    np.testing.assert_allclose(dod["rate_rps"].to_numpy(), rate)
    np.testing.assert_allclose(dod["change_pct"].to_numpy()[1:], 100 * (rate[1:] / rate[:-1] - 1))
    # origin at 23:00: day boundaries move by one hour
    shifted = rates.day_over_day(trace, origin_hour=23.0).frame
    per_day = np.bincount(((ts + 23 * 3600) // DAY).astype(int))
    np.testing.assert_array_equal(shifted["requests"].to_numpy(), per_day[per_day.nonzero()[0][0] :])
    stab = rates.client_stability(trace, k=2).frame
    cid = stab["client_id"][0]
    mine = np.bincount((trace.filter(pl.col("client_id") == cid)["timestamp_s"].to_numpy() // DAY).astype(int), minlength=3)
    r = mine / np.array(covered)
    assert stab["daily_cv"][0] == pytest.approx(r.std() / r.mean(), rel=1e-9)


# --------------------------------------------------------------------------- degenerate input


def _sources(azure: pl.DataFrame) -> dict[str, object]:
    return {
        "empty pool": make_pool([]),
        "all-zero pool": make_pool([window("0", 0, 0.0), window("1", 0, 0.0), window("0", 600, 0.0), window("1", 600, 0.0)]),
        "empty trace": empty_trace(),
        "single request": azure.head(1),
        "no client_id": azure.drop("client_id"),
    }


CALLS = {
    "rate_series": lambda s: rates.rate_series(s),
    "peak_trough": lambda s: rates.peak_trough(s),
    "daily_peak_trough": lambda s: rates.daily_peak_trough(s),
    "hour_day_matrix": lambda s: rates.hour_day_matrix(s),
    "daily_volumes": lambda s: rates.daily_volumes(s),
    "day_over_day": lambda s: rates.day_over_day(s),
    "client_shares": lambda s: rates.client_shares(s),
    "top_k_share": lambda s: rates.top_k_share(s, 3),
    "lorenz": lambda s: rates.lorenz(s),
    "gini": lambda s: rates.gini(s),
    "top_k_series": lambda s: rates.top_k_series(s, 3),
    "client_stability": lambda s: rates.client_stability(s),
    "stability_summary": lambda s: rates.stability_summary(s),
}
NEEDS_CLIENTS = {"daily_volumes", "client_shares", "top_k_share", "lorenz", "gini", "top_k_series", "client_stability", "stability_summary"}


@pytest.mark.parametrize("case", ["empty pool", "all-zero pool", "empty trace", "single request", "no client_id"])
def test_degenerate_input_gives_empty_results_with_reasons(case: str, azure) -> None:
    source = _sources(azure)[case]
    for name, call in CALLS.items():
        result = call(source)
        if case == "no client_id" and name not in NEEDS_CLIENTS:
            # the aggregate rate needs no client ids; day-level figures need two days
            if name in ("day_over_day",):
                assert not result.ok and "single day" in result.reason
            else:
                assert result.ok, (name, result.reason)
            continue
        assert not result.ok, name
        assert isinstance(result.reason, str) and result.reason, name
        frame = getattr(result, "frame", None)
        if frame is not None:
            assert frame.height == 0, name
        if isinstance(result, Table) is False and hasattr(result, "__float__"):
            with pytest.raises(ValueError, match="no"):
                float(result)
        if case == "no client_id":
            assert "client_id" in result.reason


def test_one_day_and_one_client_need_more(m_large) -> None:
    one_day = m_large.span(0, DAY)
    for call in (rates.day_over_day, rates.client_stability, rates.stability_summary):
        r = call(one_day)
        assert not r.ok and "single day" in r.reason
    one = m_large.select_clients(["61"])
    assert not rates.gini(one).ok and not rates.lorenz(one).ok
    assert rates.top_k_share(one, 3).share == 1.0


def test_all_requests_at_one_instant(azure) -> None:
    same = azure.head(5).with_columns(pl.lit(0.0).alias("timestamp_s"))
    r = rates.rate_series(same)
    assert not r.ok and "0 s" in r.reason


def test_invalid_options_raise(m_large) -> None:
    with pytest.raises(ValueError):
        rates.rate_series(m_large, resolution_s=0)
    with pytest.raises(ValueError):
        rates.top_k_share(m_large, 0)
    with pytest.raises(TypeError):
        rates.rate_series({"timestamp_s": [1.0]})
    assert math.isfinite(rates.peak_trough(m_large, resolution_s=86400).ratio)


def test_partial_hours_are_divided_by_the_time_they_cover(azure, azure_wall_clock) -> None:
    """The Azure trace spans 18:15 to 19:14: each hour's rate is its requests over the minutes it covers."""
    first = azure_wall_clock[0]
    origin_hour = first.hour + first.minute / 60 + (first.second + first.microsecond / 1e6) / 3600
    got = rates.hour_day_matrix(azure, origin_hour=origin_hour).frame
    ts = azure["timestamp_s"].to_numpy()
    to_19 = 3600 * (19 - origin_hour)
    n18 = int((ts < to_19).sum())
    n19 = ts.size - n18
    np.testing.assert_allclose(got["covered_s"].to_numpy(), [to_19, ts.max() - to_19], rtol=1e-9)
    np.testing.assert_allclose(got["rate_rps"].to_numpy(), [n18 / to_19, n19 / (ts.max() - to_19)], rtol=1e-9)
    assert got["rate_rps"][0] == pytest.approx(5.88, abs=0.01) and got["rate_rps"][1] == pytest.approx(4.43, abs=0.01)
    daily = rates.daily_peak_trough(azure, resolution_s=3600, origin_hour=origin_hour).frame
    assert daily["ratio"].to_list() == pytest.approx([got["rate_rps"].max() / got["rate_rps"].min()])
    assert daily["ratio"][0] == pytest.approx(1.33, abs=0.01)


# --------------------------------------------------------------------------- busiest window


def test_busiest_hour_of_a_pool_with_a_known_peak() -> None:
    # client a: 1 req/s in every window of two hours; client b adds 5 req/s over 00:40-01:30
    rows = [window("a", 600 * i, 1.0) for i in range(12)] + [window("b", 600 * i, 5.0) for i in range(4, 9)]
    got = rates.busiest_window(make_pool(rows), window_s=3600)
    assert got.ok, got.reason
    # candidate hours start on 00:00 .. 01:00 (7 windows); 00:30-01:30 holds all 5 windows of b, as does 00:40-01:40
    assert (got.start_s, got.end_s) == (1800, 5400)  # ties: the earliest
    assert got.requests == pytest.approx(3600 * 1.0 + 5 * 600 * 5.0)
    assert got.rate_rps == pytest.approx(1.0 + 25 / 6)
    assert got.mean_rps == pytest.approx((12 * 600 + 5 * 600 * 5) / 7200)
    assert got.windows == 7
    # a window of the whole series; one longer than it has no answer; a window off the bins is refused
    assert rates.busiest_window(make_pool(rows), window_s=7200).start_s == 0
    too_long = rates.busiest_window(make_pool(rows), window_s=3 * 3600)
    assert not too_long.ok and "fewer than one" in too_long.reason
    with pytest.raises(ValueError, match="multiple of the 600 s bins"):
        rates.busiest_window(make_pool(rows), window_s=1000)


def test_busiest_hour_of_m_large_matches_the_raw_windows(m_large, raw) -> None:
    agg = raw.group_by("start_s").agg(pl.col("requests").sum()).sort("start_s")
    full = pl.DataFrame({"start_s": np.arange(agg["start_s"].min(), agg["start_s"].max() + 1, 600)}).join(agg, on="start_s", how="left").fill_null(0.0)
    hourly = full["requests"].rolling_sum(6).to_numpy()[5:]
    best = int(np.argmax(hourly))
    got = rates.busiest_window(m_large)
    assert got.ok and got.window_s == 3600
    assert got.start_s == full["start_s"][best] and got.end_s == got.start_s + 3600
    assert got.requests == pytest.approx(hourly[best], rel=1e-9)
    assert got.rate_rps > got.mean_rps
    # the same answer from the rate series table
    assert rates.busiest_window(rates.rate_series(m_large)) == got


def test_busiest_hour_needs_a_full_hour_of_complete_bins(azure) -> None:
    # the Azure trace covers just under an hour: no whole hour of complete bins, said so
    got = rates.busiest_window(azure)
    assert not got.ok and got.start_s is None and "shorter than one 3600 s window" in got.reason
    # 10-minute windows of it: the busiest is among the complete bins, its requests counted from the rows
    ten = rates.busiest_window(azure, window_s=600)
    assert ten.ok
    in_window = azure.filter((pl.col("timestamp_s") >= ten.start_s) & (pl.col("timestamp_s") < ten.end_s)).height
    assert ten.requests == in_window
