"""Rate shifts: aggregate rate over time, diurnal and day-over-day change, client concentration.

Every function takes a :class:`~servegen_core.sources.pool.ClientPool` or a RequestTrace and returns a
:class:`~servegen_core.result.Result` (mostly a :class:`~servegen_core.result.Table` holding a
tidy frame a chart can plot as it is). Empty or degenerate input gives an empty result whose
``reason`` says why; invalid options (a non-positive resolution, k < 1) raise ``ValueError``.

Requests ("load")
    For a pool, the requests of a window are ``rate_rps * duration_s`` (the recorded rate over
    the 600 s window; float64). For a trace, one row is one request.

Bins
    A time bin ``[start_s, start_s + resolution_s)`` starts on a multiple of ``resolution_s``.
    For a pool, ``resolution_s`` must be a multiple of the pool's window length (600 s); the
    bin's ``rate_rps`` is ``requests / resolution_s``, so at 600 s it is the sum of the client
    rates of that window. A trace spans ``[0, t_last]`` (``timestamp_s`` counts from its start);
    its last bin is usually cut short by the end of the trace, which the ``complete`` column
    marks (rate over the full bin length, as in a histogram).

Days and hours
    A pool's time 0 is midnight (:func:`servegen_core.sources.pool.hour_of_day`). A trace's time 0 is
    its first request, at an unknown hour of day: ``origin_hour`` (default 0) says which hour
    of the day time 0 is, so the day of a request is ``floor((timestamp_s + origin_hour*3600)
    / 86400)`` and its hour ``((timestamp_s + origin_hour*3600) mod 86400) / 3600``.
    ``origin_hour`` applies to traces only; a pool ignores it.

Base tables
    Several statistics derive from a base table and accept either a source or that table, so
    a page computes the base once and derives the rest from it:
    :func:`rate_series` → :func:`peak_trough`, :func:`daily_peak_trough`, :func:`busiest_window`;
    :func:`client_shares` → :func:`top_k_share`, :func:`lorenz`, :func:`gini`;
    :func:`daily_volumes` → :func:`day_over_day`, :func:`client_stability`,
    :func:`stability_summary`.

Clients are listed in order of request volume (ties by id, numeric order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.sources.view import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    Source,
    check_positive,
    is_pool,
    pool_bins,
    pool_load,
    pool_no_data,
    trace_clients,
    trace_no_data,
    trace_times,
)
from servegen_core.limits import check_time_bins
from servegen_core.sources.pool import ClientPool
from servegen_core.result import Result, Table

__all__ = [
    "BusiestWindow",
    "Gini",
    "PeakTrough",
    "Share",
    "busiest_window",
    "client_shares",
    "client_stability",
    "daily_peak_trough",
    "daily_volumes",
    "day_over_day",
    "gini",
    "hour_day_matrix",
    "lorenz",
    "peak_trough",
    "rate_series",
    "stability_summary",
    "top_k_series",
    "top_k_share",
]

REST = "rest"

SERIES_SCHEMA = {"start_s": pl.Int64(), "requests": pl.Float64(), "rate_rps": pl.Float64(), "complete": pl.Boolean()}


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeakTrough(Result):
    """Highest and lowest bin rate over the whole span (lowest among bins with requests)."""

    peak_rps: float | None
    trough_rps: float | None
    ratio: float | None
    peak_start_s: int | None
    trough_start_s: int | None
    bins: int
    resolution_s: int


@dataclass(frozen=True)
class BusiestWindow(Result):
    """The window of ``window_s`` seconds with the most requests: ``[start_s, end_s)``, its requests and mean rate.

    ``mean_rps`` is the mean rate over all complete bins of the series (for "x times the mean");
    ``windows`` is how many candidate windows were compared.
    """

    start_s: int | None
    end_s: int | None
    requests: float | None
    rate_rps: float | None
    mean_rps: float | None
    windows: int
    window_s: int
    resolution_s: int


@dataclass(frozen=True)
class Share(Result):
    """Share of all requests carried by the ``k`` busiest clients; ``float(share)`` gives the value."""

    share: float | None
    k: int
    clients: int

    def __float__(self) -> float:
        if self.share is None:
            msg = f"no top-k share: {self.reason}"
            raise ValueError(msg)
        return self.share


@dataclass(frozen=True)
class Gini(Result):
    """Gini coefficient of request volume across clients (0: equal, → 1: one client carries all)."""

    value: float | None
    clients: int

    def __float__(self) -> float:
        if self.value is None:
            msg = f"no Gini coefficient: {self.reason}"
            raise ValueError(msg)
        return self.value


# --------------------------------------------------------------------------------------------
# Internal: binned requests
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: float) -> int:
    check_positive(name, value)
    if int(value) != value:
        msg = f"{name} must be a whole number of seconds, got {value}"
        raise ValueError(msg)
    return int(value)


def _problem(source: Source, *trace_columns: str) -> str | None:
    """Why a source has no rate to characterize: no windows or requests, all-zero rates, a
    missing column, or a trace with a single request (or all requests at one instant: a span
    of 0 s has no rate)."""
    if is_pool(source):
        return pool_no_data(source)
    if reason := trace_no_data(source, *trace_columns):
        return reason
    if source.height < 2:
        return "the trace has a single request; a rate needs at least two"
    ts = source["timestamp_s"]
    if ts.max() == ts.min():
        return "all requests of the trace share one timestamp (a span of 0 s has no rate)"
    return None


def _table_input(data: object, columns: tuple[str, ...], made_by: str) -> Table | None:
    """``data`` when it is a Table from ``made_by`` (checked by its columns), None for a source."""
    if not isinstance(data, Table):
        return None
    if data.ok and not set(columns) <= set(data.frame.columns):
        msg = f"expected a table from {made_by} with columns {list(columns)}, got {data.frame.columns}"
        raise ValueError(msg)
    return data


@dataclass(frozen=True)
class _Binned:
    """Requests per (client, bin) as a dense matrix; bins are consecutive."""

    ids: list[str]  # one per row of counts (empty when only the total was asked for)
    bin_start: np.ndarray  # int64, first second of each bin (source time, or shifted for traces)
    counts: np.ndarray  # (clients or 1, bins) float64
    covered_s: np.ndarray  # float64 per bin: seconds of the bin inside the source's span
    bin_s: int


def _bin_pool(pool: ClientPool, bin_s: int, *, per_client: bool) -> _Binned:
    if bin_s % pool.window_s:
        pool_bins(pool, bin_s)  # raises the explanatory ValueError
    w = pool.windows
    start = w["start_s"].to_numpy()
    req = w["rate_rps"].to_numpy() * w["duration_s"].to_numpy()
    first = int(start.min()) // bin_s * bin_s
    b = (start - first) // bin_s
    nb = int(b.max()) + 1
    check_time_bins(nb, bin_s, clients=len(pool.client_ids) if per_client else 1)
    # Seconds covered: distinct window starts per bin, times the window length.
    slot = (start - first) // pool.window_s
    present = np.flatnonzero(np.bincount(slot))
    covered = np.bincount(present * pool.window_s // bin_s, minlength=nb) * float(pool.window_s)
    if per_client:
        ids = list(pool.client_ids)
        c = w["client_id"].cast(pl.Enum(ids)).to_physical().to_numpy().astype(np.int64)
        counts = np.bincount(c * nb + b, weights=req, minlength=len(ids) * nb).reshape(len(ids), nb)
    else:
        ids = []
        counts = np.bincount(b, weights=req, minlength=nb).reshape(1, nb)
    return _Binned(ids, first + np.arange(nb, dtype=np.int64) * bin_s, counts, covered, bin_s)


def _bin_trace(df: pl.DataFrame, bin_s: int, *, per_client: bool, shift_s: float = 0.0) -> _Binned:
    """Bins of ``bin_s`` over ``timestamp_s + shift_s``; counts from positions in the sorted times."""
    times = trace_times(df)
    ts = times.ts
    first = int(np.floor((ts[0] + shift_s) / bin_s))
    nb = int(np.floor((ts[-1] + shift_s) / bin_s)) - first + 1
    check_time_bins(nb, bin_s)
    lo = (first + np.arange(nb, dtype=np.int64)) * bin_s
    pos = np.searchsorted(ts, np.append(lo, lo[-1] + bin_s) - shift_s, side="left")
    pos[-1] = ts.size
    per_bin = np.diff(pos)
    # The trace spans [0, t_last] in source time, i.e. [shift_s, t_last + shift_s] here.
    covered = np.clip(np.minimum(lo + bin_s, times.end_s + shift_s) - np.maximum(lo, shift_s), 0.0, None)
    if not per_client:
        return _Binned([], lo, per_bin.astype(np.float64).reshape(1, nb), covered, bin_s)
    tc = trace_clients(df)
    check_time_bins(nb, bin_s, clients=len(tc.ids))
    codes, ncodes = tc.in_time_order(times), tc.ncodes
    if ncodes * nb > 1 << 23:  # sparse categorical codes: number the clients densely first
        codes, ncodes = tc.rank[codes], len(tc.ids)
        by_code = np.bincount(np.repeat(np.arange(nb, dtype=np.int64) * ncodes, per_bin) + codes, minlength=nb * ncodes)
        counts = by_code.reshape(nb, ncodes).T.astype(np.float64)
    else:
        key = np.repeat(np.arange(nb, dtype=np.int64) * ncodes, per_bin)
        key += codes
        by_code = np.bincount(key, minlength=nb * ncodes).reshape(nb, ncodes).T
        counts = tc.per_client(by_code).astype(np.float64)
    return _Binned(list(tc.ids), lo, counts, covered, bin_s)


def _binned(source: Source, bin_s: int, *, per_client: bool, origin_hour: float = 0.0) -> _Binned:
    if is_pool(source):
        return _bin_pool(source, bin_s, per_client=per_client)
    return _bin_trace(source, bin_s, per_client=per_client, shift_s=origin_hour * SECONDS_PER_HOUR)


def _covered_rate(bd: _Binned, totals: np.ndarray) -> np.ndarray:
    """Requests per second of the time each bin covers (``bin_s`` for a complete bin; 0 for a bin covering nothing)."""
    covered = np.minimum(bd.covered_s, float(bd.bin_s))
    return np.divide(totals, covered, out=np.zeros_like(totals, dtype=np.float64), where=covered > 0)


def _series_frame(bd: _Binned, totals: np.ndarray, *, per_covered_time: bool = False) -> pl.DataFrame:
    """The series table; ``rate_rps`` is requests per bin length, or per covered time with ``per_covered_time``."""
    rate = _covered_rate(bd, totals) if per_covered_time else totals / bd.bin_s
    return pl.DataFrame(
        {
            "start_s": bd.bin_start,
            "requests": totals,
            "rate_rps": rate,
            "complete": bd.covered_s >= bd.bin_s,
        },
        schema=SERIES_SCHEMA,
    )


def _client_totals(source: Source) -> tuple[list[str], np.ndarray]:
    """Requests per client (every client of a pool, every client seen in a trace), in id order."""
    if is_pool(source):
        ids = list(source.client_ids)
        load = pool_load(source)
        c = load["client_id"].cast(pl.Enum(ids)).to_physical().to_numpy()
        return ids, np.bincount(c, weights=load["requests"].to_numpy(), minlength=len(ids))
    tc = trace_clients(source)
    return list(tc.ids), tc.per_client(tc.counts).astype(np.float64)


def _ranked(ids: list[str], req: np.ndarray) -> np.ndarray:
    """Row order by requests descending, ties in id order (``ids`` are in id order already)."""
    return np.lexsort((np.arange(len(ids)), -req))


# --------------------------------------------------------------------------------------------
# Aggregate rate
# --------------------------------------------------------------------------------------------


def rate_series(source: Source, *, resolution_s: int = 600) -> Table:
    """Aggregate request rate per time bin: ``start_s, requests, rate_rps, complete``.

    Every bin from the first to the last is listed (bins without requests have rate 0).
    ``complete`` is False for a bin cut short by the end of a trace (or, for a pool, a bin
    only partly inside the pool's span); its rate is still ``requests / resolution_s``.
    """
    resolution_s = _check_int("resolution_s", resolution_s)
    if reason := _problem(source):
        return Table.empty(SERIES_SCHEMA, reason)
    bd = _binned(source, resolution_s, per_client=False)
    return Table(_series_frame(bd, bd.counts[0]))


def _series_input(data: Source | Table, resolution_s: int) -> Table:
    table = _table_input(data, ("start_s", "requests", "rate_rps", "complete"), "rate_series")
    return table if table is not None else rate_series(data, resolution_s=resolution_s)


def _usable_bins(frame: pl.DataFrame) -> pl.DataFrame:
    """Bins with requests; only complete ones when there are any."""
    f = frame.filter(pl.col("requests") > 0)
    return f.filter(pl.col("complete")) if f["complete"].any() else f


def peak_trough(data: Source | Table, *, resolution_s: int = 600) -> PeakTrough:
    """Peak and trough of the aggregate rate over the whole span, and their ratio.

    ``data`` is a source or a :func:`rate_series` table (then ``resolution_s`` is read from it).
    The trough is the lowest rate among bins *with* requests, so the ratio stays finite; bins
    cut short by the end of a trace are left out when complete bins exist. With 600 s bins on
    a pool this is max/min of the summed client rates over non-empty windows.
    """
    resolution_s = _check_int("resolution_s", resolution_s)
    series = _series_input(data, resolution_s)
    if isinstance(data, Table) and series.ok and series.frame.height > 1:
        resolution_s = int(series.frame["start_s"][1] - series.frame["start_s"][0])
    if not series.ok:
        return PeakTrough(None, None, None, None, None, 0, resolution_s, reason=series.reason)
    f = _usable_bins(series.frame)
    if f.height < 2:
        return PeakTrough(
            None, None, None, None, None, f.height, resolution_s,
            reason=f"only {f.height} bin of {resolution_s} s holds requests; a peak/trough ratio needs two",
        )
    hi = f.row(int(f["rate_rps"].arg_max()), named=True)
    lo = f.row(int(f["rate_rps"].arg_min()), named=True)
    return PeakTrough(
        hi["rate_rps"], lo["rate_rps"], hi["rate_rps"] / lo["rate_rps"], hi["start_s"], lo["start_s"], f.height, resolution_s
    )


def busiest_window(data: Source | Table, *, window_s: int = 3600, resolution_s: int = 600) -> BusiestWindow:
    """The ``window_s`` seconds (a run of whole bins) holding the most requests.

    ``data`` is a source or a :func:`rate_series` table (then ``resolution_s`` is read from it).
    Candidate windows start on every bin and cover ``window_s / resolution_s`` consecutive
    bins, all complete (a bin cut short by the end of a trace or the edge of a pool's span is
    never part of one), so the window's rate is its requests over ``window_s``. Ties go to the
    earliest window. ``window_s`` must be a positive multiple of ``resolution_s``; a series
    with fewer complete consecutive bins than one window, or without requests, gives an empty
    result whose ``reason`` says so.
    """
    resolution_s = _check_int("resolution_s", resolution_s)
    window_s = _check_int("window_s", window_s)
    series = _series_input(data, resolution_s)
    if isinstance(data, Table) and series.ok and series.frame.height > 1:
        resolution_s = int(series.frame["start_s"][1] - series.frame["start_s"][0])
    if window_s % resolution_s:
        msg = f"window_s must be a multiple of the {resolution_s} s bins, got {window_s}"
        raise ValueError(msg)

    def empty(reason: str, windows: int = 0) -> BusiestWindow:
        return BusiestWindow(None, None, None, None, None, windows, window_s, resolution_s, reason=reason)

    if not series.ok:
        return empty(series.reason or "no rate series")
    frame = series.frame
    n_bins = window_s // resolution_s
    requests = frame["requests"].to_numpy().astype(np.float64)
    complete = frame["complete"].to_numpy()
    if complete.any() and requests[complete].sum() <= 0:
        return empty("no requests in the complete bins")
    if frame.height < n_bins:
        return empty(f"the series covers {frame.height} bin(s) of {resolution_s} s, fewer than one {window_s} s window")
    summed = np.concatenate(([0.0], np.cumsum(requests)))
    incomplete = np.concatenate(([0], np.cumsum(~complete)))
    window_requests = summed[n_bins:] - summed[:-n_bins]
    whole = (incomplete[n_bins:] - incomplete[:-n_bins]) == 0
    if not whole.any():
        return empty(f"no run of {n_bins} complete {resolution_s} s bins: the source is shorter than one {window_s} s window")
    candidates = np.where(whole, window_requests, -np.inf)
    best = int(np.argmax(candidates))
    start = int(frame["start_s"][best])
    mean_rps = float(requests[complete].sum() / (complete.sum() * resolution_s))
    best_requests = float(window_requests[best])
    return BusiestWindow(
        start, start + window_s, best_requests, best_requests / window_s, mean_rps, int(whole.sum()), window_s, resolution_s
    )


def daily_peak_trough(data: Source | Table, *, resolution_s: int = 600, origin_hour: float = 0.0) -> Table:
    """Per day: peak and trough rate among its bins with requests, and their ratio.

    Columns ``day, peak_rps, trough_rps, ratio, bins``. ``data`` is a source or a
    :func:`rate_series` table. A bin belongs to the day its start falls in (for a trace or a
    table, after adding ``origin_hour``); incomplete bins at the end of a trace are left out
    (unless no bin is complete), and so are days with fewer than two bins with requests.
    From a source, a bin's rate is its requests divided by the time it covers (a partial
    hour of a trace is not diluted over 3,600 s); a table's rates are used as they are.
    """
    schema = {"day": pl.Int64(), "peak_rps": pl.Float64(), "trough_rps": pl.Float64(), "ratio": pl.Float64(), "bins": pl.UInt32()}
    resolution_s = _check_int("resolution_s", resolution_s)
    table = _table_input(data, ("start_s", "requests", "rate_rps", "complete"), "rate_series")
    if table is None:
        if reason := _problem(data):
            return Table.empty(schema, reason)
        bd = _binned(data, resolution_s, per_client=False, origin_hour=origin_hour)
        frame, shift = _series_frame(bd, bd.counts[0], per_covered_time=True), 0.0
    elif not table.ok:
        return Table.empty(schema, table.reason)
    else:
        frame, shift = table.frame, origin_hour * SECONDS_PER_HOUR
    f = _usable_bins(frame)
    out = (
        f.group_by(((pl.col("start_s") + shift) // SECONDS_PER_DAY).cast(pl.Int64).alias("day"))
        .agg(
            pl.col("rate_rps").max().alias("peak_rps"),
            pl.col("rate_rps").min().alias("trough_rps"),
            pl.len().alias("bins"),
        )
        .filter(pl.col("bins") >= 2)
        .with_columns((pl.col("peak_rps") / pl.col("trough_rps")).alias("ratio"))
        .select(list(schema))
        .sort("day")
    )
    if out.height == 0:
        return Table.empty(schema, f"no day has two bins of {resolution_s} s with requests")
    return Table(out.cast(schema))


def hour_day_matrix(source: Source, *, origin_hour: float = 0.0) -> Table:
    """Aggregate rate per (day, hour of day): ``day, hour, requests, rate_rps, complete, covered_s``.

    One row per hour of the span (a matrix in long form, ready for a heatmap); ``covered_s`` is
    the time of the hour inside the data (3,600 s for a complete hour), ``rate_rps`` the hour's
    requests / ``covered_s``, and ``complete`` is False for an hour only partly inside a trace.
    """
    schema = {
        "day": pl.Int64(), "hour": pl.Int64(), "requests": pl.Float64(), "rate_rps": pl.Float64(), "complete": pl.Boolean(),
        "covered_s": pl.Float64(),
    }
    if reason := _problem(source):
        return Table.empty(schema, reason)
    bd = _binned(source, SECONDS_PER_HOUR, per_client=False, origin_hour=origin_hour)
    out = _series_frame(bd, bd.counts[0], per_covered_time=True).select(
        (pl.col("start_s") // SECONDS_PER_DAY).alias("day"),
        ((pl.col("start_s") % SECONDS_PER_DAY) // SECONDS_PER_HOUR).alias("hour"),
        "requests",
        "rate_rps",
        "complete",
        pl.Series("covered_s", np.minimum(bd.covered_s, float(bd.bin_s)), dtype=pl.Float64),
    )
    return Table(out.cast(schema))


# --------------------------------------------------------------------------------------------
# Daily volumes: day-over-day change and client stability
# --------------------------------------------------------------------------------------------

DAILY_SCHEMA = {
    "client_id": pl.String(),
    "day": pl.Int64(),
    "requests": pl.Float64(),
    "covered_s": pl.Float64(),
    "rate_rps": pl.Float64(),
}


def daily_volumes(source: Source, *, origin_hour: float = 0.0) -> Table:
    """Requests of every client on every day of the span: ``client_id, day, requests, covered_s, rate_rps``.

    ``covered_s`` is how much of the day lies inside the source's span (a trace's first and
    last days are usually partial) and ``rate_rps = requests / covered_s``. Every (client,
    day) pair is listed, zeros included; clients in id order. Base table of
    :func:`day_over_day`, :func:`client_stability` and :func:`stability_summary`.
    """
    if reason := _problem(source, "client_id"):
        return Table.empty(DAILY_SCHEMA, reason)
    bd = _binned(source, SECONDS_PER_DAY, per_client=True, origin_hour=origin_hour)
    nc, nb = bd.counts.shape
    covered = np.tile(bd.covered_s, nc)
    req = bd.counts.ravel()
    out = pl.DataFrame(
        {
            "client_id": pl.Series(bd.ids, dtype=pl.String).gather(np.repeat(np.arange(nc), nb)),
            "day": np.tile(bd.bin_start // SECONDS_PER_DAY, nc),
            "requests": req,
            "covered_s": covered,
            "rate_rps": np.divide(req, covered, out=np.zeros_like(req), where=covered > 0),
        },
        schema=DAILY_SCHEMA,
    )
    return Table(out)


def _daily_input(data: Source | Table, origin_hour: float) -> Table:
    table = _table_input(data, tuple(DAILY_SCHEMA), "daily_volumes")
    return table if table is not None else daily_volumes(data, origin_hour=origin_hour)


@dataclass(frozen=True)
class _Daily:
    ids: list[str]
    days: np.ndarray
    requests: np.ndarray  # (clients, days)
    rates: np.ndarray  # (clients, days), requests / covered seconds
    covered_s: np.ndarray  # per day


def _daily_matrix(table: Table) -> _Daily | str:
    """The daily table as matrices; a reason when it cannot show day-to-day change."""
    if not table.ok:
        return table.reason
    f = table.frame.filter(pl.col("covered_s") > 0)
    days = np.unique(f["day"].to_numpy())
    if days.size < 2:
        return "the span covers a single day; day-to-day change needs two"
    ids = f["client_id"].unique(maintain_order=True).to_list()
    if f.height != len(ids) * days.size:
        msg = "a daily_volumes table lists every (client, day) pair; this one does not"
        raise ValueError(msg)
    f = f.sort(pl.col("client_id").cast(pl.Enum(ids)), "day")
    shape = (len(ids), days.size)
    req = f["requests"].to_numpy().reshape(shape)
    if req.sum() <= 0:
        return "no client has requests"
    return _Daily(ids, days, req, f["rate_rps"].to_numpy().reshape(shape), f["covered_s"].to_numpy()[: days.size])


def day_over_day(data: Source | Table, *, origin_hour: float = 0.0) -> Table:
    """Daily volume and its change from the day before: ``day, requests, covered_s, rate_rps, change_pct``.

    ``data`` is a source or a :func:`daily_volumes` table. ``rate_rps`` is the day's requests /
    seconds of the day inside the span, so a partial first or last day of a trace compares
    fairly. ``change_pct`` is ``100 * (rate / previous day's rate - 1)``; null on the first day
    and after a day without requests. Needs at least two days.
    """
    schema = {
        "day": pl.Int64(),
        "requests": pl.Float64(),
        "covered_s": pl.Float64(),
        "rate_rps": pl.Float64(),
        "change_pct": pl.Float64(),
    }
    table = _table_input(data, tuple(DAILY_SCHEMA), "daily_volumes")
    if table is None:  # from a source: the total per day, no client ids needed
        if reason := _problem(data):
            return Table.empty(schema, reason)
        bd = _binned(data, SECONDS_PER_DAY, per_client=False, origin_hour=origin_hour)
        keep = bd.covered_s > 0
        days, req, covered = bd.bin_start[keep] // SECONDS_PER_DAY, bd.counts[0][keep], bd.covered_s[keep]
        if days.size < 2:
            return Table.empty(schema, "the span covers a single day; day-to-day change needs two")
    else:
        daily = _daily_matrix(table)
        if isinstance(daily, str):
            return Table.empty(schema, daily)
        days, req, covered = daily.days, daily.requests.sum(axis=0), daily.covered_s
    out = pl.DataFrame(
        {"day": days, "requests": req, "covered_s": covered, "rate_rps": req / covered}
    ).with_columns(
        pl.when(pl.col("rate_rps").shift() > 0)
        .then(100.0 * (pl.col("rate_rps") / pl.col("rate_rps").shift() - 1.0))
        .alias("change_pct")
    )
    return Table(out.cast(schema))


def _cv_rows(x: np.ndarray) -> np.ndarray:
    """CV (population std / mean) of each row; NaN where the mean is 0 (made null by the caller)."""
    mean = x.mean(axis=1)
    std = x.std(axis=1)
    return np.divide(std, mean, out=np.full_like(mean, np.nan), where=mean > 0)


def client_stability(data: Source | Table, *, k: int = 10, origin_hour: float = 0.0) -> Table:
    """Day-to-day variation of each client's volume.

    Columns ``client_id, requests, rank, top_k, mean_daily_rps, daily_cv``: ``daily_cv`` is the
    coefficient of variation (population std / mean) of the client's daily rate (requests /
    seconds of the day inside the span, so a partial day of a trace counts fairly) across the
    days; null for a client without requests. ``top_k`` marks the ``k`` busiest clients; rows
    are sorted busiest first. ``data`` is a source or a :func:`daily_volumes` table. Needs at
    least two days.
    """
    schema = {
        "client_id": pl.String(),
        "requests": pl.Float64(),
        "rank": pl.Int64(),
        "top_k": pl.Boolean(),
        "mean_daily_rps": pl.Float64(),
        "daily_cv": pl.Float64(),
    }
    k = _check_int("k", k)
    daily = _daily_matrix(_daily_input(data, origin_hour))
    if isinstance(daily, str):
        return Table.empty(schema, daily)
    req = daily.requests.sum(axis=1)
    order = _ranked(daily.ids, req)
    out = pl.DataFrame(
        {
            "client_id": [daily.ids[i] for i in order],
            "requests": req[order],
            "rank": np.arange(1, len(order) + 1, dtype=np.int64),
            "top_k": np.arange(len(order)) < k,
            "mean_daily_rps": daily.rates.mean(axis=1)[order],
            "daily_cv": _cv_rows(daily.rates)[order],
        },
        schema=schema,
    ).with_columns(pl.col("daily_cv").fill_nan(None))
    return Table(out)


def stability_summary(data: Source | Table, *, k: int = 10, origin_hour: float = 0.0) -> Table:
    """How much of the day-to-day change of the total comes from the ``k`` busiest clients.

    One row per group ``"top-<k>"``, ``"rest"``, ``"all"``: ``group, clients, request_share,
    daily_cv, variance_share``. ``daily_cv`` is the CV of the group's summed daily rate;
    ``variance_share`` is ``Cov(group, total) / Var(total)`` over days (the group's part of the
    variance of the total daily rate; top-k and rest add up to 1; null when the total does not
    vary). ``data`` is a source or a :func:`daily_volumes` table. Needs at least two days.
    """
    schema = {
        "group": pl.String(),
        "clients": pl.Int64(),
        "request_share": pl.Float64(),
        "daily_cv": pl.Float64(),
        "variance_share": pl.Float64(),
    }
    k = _check_int("k", k)
    daily = _daily_matrix(_daily_input(data, origin_hour))
    if isinstance(daily, str):
        return Table.empty(schema, daily)
    req = daily.requests.sum(axis=1)
    order = _ranked(daily.ids, req)
    top, rest = order[:k], order[k:]
    g = np.vstack([daily.rates[top].sum(axis=0), daily.rates[rest].sum(axis=0), daily.rates.sum(axis=0)])
    total = g[2]
    var = total.var()
    cov = ((g - g.mean(axis=1, keepdims=True)) * (total - total.mean())).mean(axis=1)
    vshare = cov / var if var > 0 else np.full(3, np.nan)
    out = pl.DataFrame(
        {
            "group": [f"top-{k}", REST, "all"],
            "clients": [len(top), len(rest), len(order)],
            "request_share": [req[top].sum() / req.sum(), req[rest].sum() / req.sum(), 1.0],
            "daily_cv": _cv_rows(g),
            "variance_share": vshare,
        },
        schema=schema,
    ).with_columns(pl.col("daily_cv", "variance_share").fill_nan(None))
    return Table(out)


# --------------------------------------------------------------------------------------------
# Client concentration
# --------------------------------------------------------------------------------------------

SHARES_SCHEMA = {
    "client_id": pl.String(),
    "requests": pl.Float64(),
    "share": pl.Float64(),
    "rank": pl.Int64(),
    "cum_share": pl.Float64(),
}


def client_shares(data: Source | Table) -> Table:
    """Each client's requests over the span and its share: ``client_id, requests, share, rank, cum_share``.

    Sorted by requests, busiest first (``rank`` 1; ties in id order); ``cum_share`` is the
    share of the top ``rank`` clients. A pool lists every client, including those without
    requests. ``data`` is a source or a :func:`daily_volumes` table (summed over its days).
    Base table of :func:`top_k_share`, :func:`lorenz` and :func:`gini`.
    """
    daily = _table_input(data, tuple(DAILY_SCHEMA), "daily_volumes")
    if daily is not None:
        if not daily.ok:
            return Table.empty(SHARES_SCHEMA, daily.reason)
        tot = daily.frame.group_by("client_id", maintain_order=True).agg(pl.col("requests").sum())
        ids, req = tot["client_id"].to_list(), tot["requests"].to_numpy()
    elif reason := _problem(data, "client_id"):
        return Table.empty(SHARES_SCHEMA, reason)
    else:
        ids, req = _client_totals(data)
    return shares_table(ids, req)


def shares_table(ids: list[str], req: np.ndarray) -> Table:
    """The :data:`SHARES_SCHEMA` table of clients ``ids`` (in id order) with ``req`` requests
    each: ranked busiest first, ties in id order (shared by the in-memory and streaming paths)."""
    total = req.sum()
    if total <= 0:
        return Table.empty(SHARES_SCHEMA, "no client has requests")
    order = _ranked(ids, req)
    r = req[order]
    out = pl.DataFrame(
        {
            "client_id": pl.Series(ids, dtype=pl.String).gather(order),
            "requests": r,
            "share": r / total,
            "rank": np.arange(1, len(ids) + 1, dtype=np.int64),
            "cum_share": np.cumsum(r) / total,
        },
        schema=SHARES_SCHEMA,
    )
    return Table(out)


def _shares_input(data: Source | Table) -> Table:
    table = _table_input(data, tuple(SHARES_SCHEMA), "client_shares")
    return table if table is not None else client_shares(data)


def top_k_share(data: Source | Table, k: int) -> Share:
    """Share of all requests sent by the ``k`` clients with most requests (``float()`` it).

    ``data`` is a source or a :func:`client_shares` table.
    """
    k = _check_int("k", k)
    shares = _shares_input(data)
    if not shares.ok:
        return Share(None, k, 0, reason=shares.reason)
    f = shares.frame
    return Share(float(f["share"].head(k).sum()), k, f.height)


def lorenz(data: Source | Table) -> Table:
    """Lorenz curve of request volume over clients: ``client_share, load_share`` from (0, 0) to (1, 1).

    Clients sorted from least to most requests; point ``i`` says the ``i`` lightest clients
    (a ``client_share`` of all clients) carry ``load_share`` of the requests. ``data`` is a
    source or a :func:`client_shares` table. Needs at least two clients.
    """
    schema = {"client_share": pl.Float64(), "load_share": pl.Float64()}
    shares = _shares_input(data)
    if not shares.ok:
        return Table.empty(schema, shares.reason)
    r = np.sort(shares.frame["requests"].to_numpy())
    n = r.size
    if n < 2:
        return Table.empty(schema, f"{n} client; a Lorenz curve needs at least two")
    out = pl.DataFrame(
        {"client_share": np.arange(n + 1) / n, "load_share": np.concatenate([[0.0], np.cumsum(r) / r.sum()])},
        schema=schema,
    )
    return Table(out)


def gini(data: Source | Table) -> Gini:
    """Gini coefficient of request volume across clients: ``Σ_i (2i − n − 1) x_(i) / (n Σ x)``.

    ``x_(i)`` are the clients' request counts in ascending order (i = 1..n); equal to the mean
    absolute difference over twice the mean. ``data`` is a source or a :func:`client_shares`
    table. Needs at least two clients.
    """
    shares = _shares_input(data)
    if not shares.ok:
        return Gini(None, 0, reason=shares.reason)
    r = np.sort(shares.frame["requests"].to_numpy())
    n = r.size
    if n < 2:
        return Gini(None, n, reason=f"{n} client; a Gini coefficient needs at least two")
    i = np.arange(1, n + 1)
    return Gini(float(((2 * i - n - 1) * r).sum() / (n * r.sum())), n)


def top_k_series(source: Source, k: int, *, resolution_s: int = 600) -> Table:
    """Rate of each of the ``k`` busiest clients and of all the others (``"rest"``) per bin.

    Columns ``start_s, group, requests, rate_rps, share`` in long form, ready for a stacked
    area chart: ``group`` is a client id (busiest first) or ``"rest"``; ``share`` is the
    group's fraction of the bin's requests (0 in a bin without requests). The top ``k`` are
    chosen by requests over the whole span. Every bin appears for every group.
    """
    schema = {
        "start_s": pl.Int64(),
        "group": pl.String(),
        "requests": pl.Float64(),
        "rate_rps": pl.Float64(),
        "share": pl.Float64(),
    }
    k = _check_int("k", k)
    resolution_s = _check_int("resolution_s", resolution_s)
    if reason := _problem(source, "client_id"):
        return Table.empty(schema, reason)
    bd = _binned(source, resolution_s, per_client=True)
    req = bd.counts.sum(axis=1)
    if req.sum() <= 0:
        return Table.empty(schema, "no client has requests")
    order = _ranked(bd.ids, req)
    top = order[:k]
    groups = [bd.ids[i] for i in top]
    rows = [bd.counts[top]]
    if len(order) > k:
        groups.append(REST)
        rows.append(bd.counts[order[k:]].sum(axis=0, keepdims=True))
    m = np.vstack(rows)
    tot = bd.counts.sum(axis=0)
    share = np.divide(m, tot, out=np.zeros_like(m), where=tot > 0)
    nb = bd.bin_start.size
    out = pl.DataFrame(
        {
            "start_s": np.tile(bd.bin_start, len(groups)),
            "group": pl.Series(groups, dtype=pl.String).gather(np.repeat(np.arange(len(groups)), nb)),
            "requests": m.ravel(),
            "rate_rps": m.ravel() / resolution_s,
            "share": share.ravel(),
        },
        schema=schema,
    )
    return Table(out)
