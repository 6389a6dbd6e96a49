"""Characterization of a :class:`~servegen_core.sources.lazy.LazyTrace` in bounded memory.

Each statistic is a Polars lazy query run on the streaming engine: a group-by whose result
is small (per client, per time bin, per (client, value) of a length field), so memory stays
bounded by the number of groups, never the number of requests. The one statistic that needs
order, the inter-arrival gaps of :func:`window_cv`, runs one query per slice of whole
windows (at most ``slice_rows`` requests each, from a first pass counting requests per
window): the slice's rows are sorted by client and time in memory, so peak memory is one
slice.

The results are those of the in-memory functions on the loaded trace (same columns, same
order, same dtypes):

=================================  ===============================================  ===========
here                               in memory                                        equality
=================================  ===============================================  ===========
:func:`rate_series`                :func:`~servegen_core.characterize.rates.rate_series`        exact
:func:`hour_day_matrix`            :func:`~servegen_core.characterize.rates.hour_day_matrix`    exact
:func:`client_shares`              :func:`~servegen_core.characterize.rates.client_shares`      exact
:func:`top_k_share`                :func:`~servegen_core.characterize.rates.top_k_share`        exact
:func:`length_percentiles`         :func:`~servegen_core.characterize.lengths.length_percentiles`  exact
:func:`length_pdf`                 :func:`~servegen_core.characterize.lengths.length_pdf`       exact
:func:`window_cv`                  :func:`~servegen_core.characterize.arrivals.window_cv`       counts exact, ``cv`` to 1e-9 relative
:func:`client_summary`             :func:`~servegen_core.characterize.summary.client_summary`   base columns; CV columns to 1e-9
=================================  ===============================================  ===========

Length percentiles are exact, not sketched: the streamed aggregate is the weighted histogram
(one row per distinct (group, value)), the very entries the in-memory
:class:`~servegen_core.sources.view.Grouped` holds, and the same quantile rule runs on it.
Length fields must be integer columns (token and item counts). The CV differs from the
in-memory one only by the order of the floating-point sums of the gaps (Polars' sum against
NumPy's ``reduceat``): tested to 1e-9 relative. Multimodal and reasoning columns of
:func:`client_summary` are not computed here yet.

Call :meth:`LazyTrace.check <servegen_core.sources.lazy.LazyTrace.check>` once first:
these functions assume valid values (as the in-memory ones assume a validated trace).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.characterize.arrivals import CV_SCHEMA, WindowCV
from servegen_core.characterize.lengths import PERCENTILES, stats_frame
from servegen_core.characterize.rates import SERIES_SCHEMA, Share, shares_table
from servegen_core.characterize.summary import ARRIVAL_WINDOW_S, BASE_COLUMNS
from servegen_core.result import Table
from servegen_core.sources.lazy import LazyTrace, divide, run
from servegen_core.sources.view import FieldData, client_order, group

__all__ = [
    "DEFAULT_SLICE_ROWS",
    "TraceBounds",
    "client_requests",
    "client_shares",
    "client_summary",
    "client_window_counts",
    "hour_day_matrix",
    "length_pdf",
    "length_percentiles",
    "rate_series",
    "top_k_share",
    "trace_bounds",
    "window_cv",
]

#: Most requests one slice of :func:`window_cv` holds in memory (about 40 bytes each).
DEFAULT_SLICE_ROWS = 20_000_000

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class TraceBounds:
    """Requests and the first and last ``timestamp_s`` of a trace."""

    requests: int
    first_s: float
    last_s: float


def trace_bounds(trace: LazyTrace) -> TraceBounds:
    """Requests, first and last timestamp (one streaming pass over ``timestamp_s``)."""
    ts = pl.col("timestamp_s")
    row = run(trace, trace.frame.select(pl.len(), ts.min().alias("lo"), ts.max().alias("hi"))).row(0)
    if not row[0]:
        return TraceBounds(0, float("nan"), float("nan"))
    return TraceBounds(int(row[0]), float(row[1]), float(row[2]))


def _window(window_s: int) -> pl.Expr:
    """``floor(timestamp_s / window_s)`` as Int64 (the in-memory window index)."""
    return divide(pl.col("timestamp_s"), window_s).floor().cast(pl.Int64)


def client_window_counts(trace: LazyTrace, window_s: int = ARRIVAL_WINDOW_S) -> pl.DataFrame:
    """``client_id, window, requests``: requests per client and window (``floor(t / window_s)``)."""
    query = trace.frame.group_by("client_id", _window(window_s).alias("window")).agg(pl.len().cast(pl.Int64).alias("requests"))
    return run(trace, query)


def _ordered_ids(ids: pl.Series | list[str]) -> list[str]:
    return client_order(list(ids))


def client_requests(trace: LazyTrace) -> pl.DataFrame:
    """``client_id, requests`` for every client, in client order (numeric ids by number)."""
    got = run(trace, trace.frame.group_by("client_id").agg(pl.len().cast(pl.Int64).alias("requests")))
    ids = _ordered_ids(got["client_id"])
    return pl.DataFrame({"client_id": ids}).join(got, on="client_id", how="left", maintain_order="left")


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------


def _bin_counts(trace: LazyTrace, bin_s: int, shift_s: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Bin starts (shifted time), requests per bin (every bin from first to last), last time.

    A request at ``t`` falls in bin ``b`` when ``b * bin_s - shift_s <= t < (b + 1) * bin_s - shift_s``
    (comparisons in float64, as the in-memory ``searchsorted`` makes them).
    """
    t = pl.col("timestamp_s")
    b = divide(t + shift_s, bin_s).floor().cast(pl.Int64)
    lo = b.cast(pl.Float64) * float(bin_s) - shift_s
    hi = (b + 1).cast(pl.Float64) * float(bin_s) - shift_s
    exact = pl.when(t < lo).then(b - 1).when(t >= hi).then(b + 1).otherwise(b)
    got = run(trace, trace.frame.group_by(exact.alias("bin")).agg(pl.len().alias("n"), t.max().alias("last")))
    first, last_bin = int(got["bin"].min()), int(got["bin"].max())
    nb = last_bin - first + 1
    counts = np.zeros(nb, dtype=np.float64)
    counts[got["bin"].to_numpy() - first] = got["n"].to_numpy()
    starts = (first + np.arange(nb, dtype=np.int64)) * bin_s
    return starts, counts, float(got["last"].max())


def _series(trace: LazyTrace, bin_s: int, shift_s: float) -> pl.DataFrame:
    starts, counts, end_s = _bin_counts(trace, bin_s, shift_s)
    covered = np.clip(np.minimum(starts + bin_s, end_s + shift_s) - np.maximum(starts, shift_s), 0.0, None)
    return pl.DataFrame(
        {"start_s": starts, "requests": counts, "rate_rps": counts / bin_s, "complete": covered >= bin_s},
        schema=SERIES_SCHEMA,
    )


def rate_series(trace: LazyTrace, *, resolution_s: int = 600) -> Table:
    """Aggregate rate per bin: ``start_s, requests, rate_rps, complete`` (as :func:`rates.rate_series`)."""
    return Table(_series(trace, int(resolution_s), 0.0))


def hour_day_matrix(trace: LazyTrace, *, origin_hour: float = 0.0) -> Table:
    """Rate per (day, hour of day): ``day, hour, requests, rate_rps, complete, covered_s`` (as
    :func:`rates.hour_day_matrix`: ``rate_rps`` is the hour's requests / the time it covers)."""
    shift_s = origin_hour * SECONDS_PER_HOUR
    starts, counts, end_s = _bin_counts(trace, SECONDS_PER_HOUR, shift_s)
    covered = np.clip(np.minimum(starts + SECONDS_PER_HOUR, end_s + shift_s) - np.maximum(starts, shift_s), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(covered > 0, counts / covered, 0.0)
    out = pl.DataFrame(
        {
            "day": starts // SECONDS_PER_DAY,
            "hour": (starts % SECONDS_PER_DAY) // SECONDS_PER_HOUR,
            "requests": counts,
            "rate_rps": rate,
            "complete": covered >= SECONDS_PER_HOUR,
            "covered_s": covered,
        }
    )
    return Table(out)


def client_shares(trace: LazyTrace) -> Table:
    """``client_id, requests, share, rank, cum_share``, busiest first (as :func:`rates.client_shares`)."""
    per = client_requests(trace)
    return shares_table(per["client_id"].to_list(), per["requests"].to_numpy().astype(np.float64))


def top_k_share(trace: LazyTrace | Table, k: int) -> Share:
    """Share of all requests sent by the ``k`` busiest clients (``trace`` or a :func:`client_shares` table)."""
    shares = trace if isinstance(trace, Table) else client_shares(trace)
    if not shares.ok:
        return Share(None, k, 0, reason=shares.reason)
    f = shares.frame
    return Share(float(f["share"].head(k).sum()), k, f.height)


# ---------------------------------------------------------------------------------------------
# Inter-arrival CV per (client, window)
# ---------------------------------------------------------------------------------------------


def _slices(windows: np.ndarray, counts: np.ndarray, slice_rows: int) -> list[tuple[int, int]]:
    """Runs ``[first, last]`` of consecutive windows holding at most ``slice_rows`` requests
    (a single window above it forms a slice of its own)."""
    out: list[tuple[int, int]] = []
    start, rows = None, 0
    for w, n in zip(windows.tolist(), counts.tolist()):
        if start is not None and rows + n > slice_rows:
            out.append((start, prev))
            start, rows = None, 0
        if start is None:
            start = w
        rows += n
        prev = w
    if start is not None:
        out.append((start, prev))
    return out


def window_cv(
    trace: LazyTrace,
    *,
    window_s: int = 600,
    min_requests: int = 10,
    slice_rows: int = DEFAULT_SLICE_ROWS,
    window_counts: pl.DataFrame | None = None,
) -> WindowCV:
    """Inter-arrival CV per (client, window): ``client_id, start_s, requests, rate_rps, cv``.

    As :func:`servegen_core.characterize.arrivals.window_cv` on the loaded trace: gaps between a
    client's consecutive requests inside one window (population std over mean of at least two
    gaps); windows with fewer than ``min_requests`` requests are excluded and counted.
    ``window_counts``: this trace's :func:`client_window_counts` at ``window_s`` when the caller
    has it (saves the pass that plans the slices).
    """
    if min_requests < 3:
        msg = f"min_requests must be at least 3 (a CV needs two gaps), got {min_requests}"
        raise ValueError(msg)
    if window_s <= 0 or int(window_s) != window_s:
        msg = f"window_s must be a positive whole number of seconds, got {window_s}"
        raise ValueError(msg)
    window_s = int(window_s)
    win = _window(window_s)
    if window_counts is None:
        per_window = run(trace, trace.frame.group_by(win.alias("w")).agg(pl.len().alias("n")).sort("w"))
    else:
        per_window = window_counts.group_by(pl.col("window").alias("w")).agg(pl.col("requests").sum().alias("n")).sort("w")
    parts = []
    t = pl.col("timestamp_s")
    for a, b in _slices(per_window["w"].to_numpy(), per_window["n"].to_numpy(), slice_rows):
        # The coarse time range lets a Parquet scan skip row groups; the window index decides.
        rows = trace.frame.filter((t >= (a - 1) * float(window_s)) & (t < (b + 2) * float(window_s)))
        rows = rows.select("client_id", t, win.alias("w")).filter(pl.col("w").is_between(a, b))
        gaps = t.sort().diff().drop_nulls()
        query = rows.group_by("client_id", "w").agg(
            pl.len().cast(pl.Float64).alias("requests"), gaps.sum().alias("s1"), (gaps * gaps).sum().alias("s2")
        )
        parts.append(run(trace, query))
    if not parts:
        frame = pl.DataFrame(schema={"client_id": pl.String(), "w": pl.Int64(), "requests": pl.Float64(), "s1": pl.Float64(), "s2": pl.Float64()})
    else:
        frame = pl.concat(parts)
    ngap = frame["requests"].to_numpy() - 1
    s1, s2 = frame["s1"].to_numpy(), frame["s2"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / ngap
        var = np.clip(s2 / ngap - mean * mean, 0.0, None)
        cv = np.where((mean > 0) & (ngap >= 2), np.sqrt(var) / mean, np.nan)
    ids = _ordered_ids(frame["client_id"].unique())
    rank = pl.DataFrame({"client_id": ids, "__rank": np.arange(len(ids))})
    frame = (
        frame.with_columns(pl.Series("cv", cv))
        .join(rank, on="client_id")
        .sort("__rank", "w")
        .select(
            "client_id",
            (pl.col("w") * window_s).alias("start_s"),
            "requests",
            pl.col("cv").fill_nan(None),
        )
    )
    frame = frame.insert_column(3, pl.Series("rate_rps", frame["requests"].to_numpy() / window_s))
    ok = (pl.col("requests") >= min_requests - 1e-9) & pl.col("cv").is_not_null() & pl.col("cv").is_finite()
    kept = frame.filter(ok).select(list(CV_SCHEMA)).cast(CV_SCHEMA)
    dropped = frame.filter(~ok)
    opts = {
        "excluded": dropped.height,
        "excluded_requests": float(dropped["requests"].sum()) if dropped.height else 0.0,
        "window_s": window_s,
        "min_requests": min_requests,
    }
    if kept.height == 0:
        reason = f"no window of {window_s} s has at least {min_requests} requests ({dropped.height} window(s) excluded)"
        return WindowCV(pl.DataFrame(schema=CV_SCHEMA), reason=reason, **opts)
    return WindowCV(kept, **opts)


# ---------------------------------------------------------------------------------------------
# Lengths
# ---------------------------------------------------------------------------------------------


_STATS_SCHEMA = {
    "requests": pl.Float64(),
    "mean": pl.Float64(),
    **{f"p{p}": pl.Float64() for p in PERCENTILES},
    "max": pl.Float64(),
}


def _length_field_data(
    trace: LazyTrace, field: str, *, by_client: bool, window_s: int | None, ids: list[str] | None = None
) -> FieldData | str:
    """The weighted histogram of ``field`` (one entry per distinct (client, window, value)) as
    :class:`FieldData`, or the reason there is none."""
    if field not in trace.fields:
        return f"the trace has no '{field}' column"
    dtype = trace.frame.collect_schema()[field]
    if not dtype.is_integer():
        return f"'{field}' is not an integer column: the streamed histogram takes token and item counts"
    keys: list[pl.Expr] = []
    if by_client:
        keys.append(pl.col("client_id"))
    w = 600 if window_s is None else int(window_s)
    if window_s is not None:
        keys.append(_window(w).alias("__w"))
    query = trace.frame.filter(pl.col(field).is_not_null()).group_by(*keys, pl.col(field).alias("__v")).agg(
        pl.len().cast(pl.Float64).alias("__n")
    )
    hist = run(trace, query)
    if hist.height == 0:
        return f"the trace's '{field}' column holds no values"
    values = np.unique(hist["__v"].to_numpy())
    vcode = np.searchsorted(values, hist["__v"].to_numpy()).astype(np.int32)
    client, clients = None, ()
    if by_client:
        clients = tuple(ids if ids is not None else client_requests(trace)["client_id"].to_list())
        lut = pl.DataFrame({"client_id": list(clients), "__c": np.arange(len(clients), dtype=np.int32)})
        client = hist.select("client_id").join(lut, on="client_id", how="left", maintain_order="left")["__c"].to_numpy()
    window, starts = None, np.zeros(0, dtype=np.int64)
    if window_s is not None:
        b = trace_bounds(trace)
        lo, hi = int(np.floor(b.first_s / w)), int(np.floor(b.last_s / w))
        window = (hist["__w"].to_numpy() - lo).astype(np.int32)
        starts = (np.arange(hi - lo + 1, dtype=np.int64) + lo) * w
    weight = hist["__n"].to_numpy()
    return FieldData(
        field=field,
        values=values.astype(np.float64),
        vcode=vcode,
        weight=weight,
        client=client,
        clients=clients,
        window=window,
        window_starts=starts,
        window_s=w,
        total=float(weight.sum()),
    )


def length_percentiles(trace: LazyTrace, field: str, *, per_window: bool = False, window_s: int | None = None) -> Table:
    """Weighted ``[start_s,] requests, mean, p50, p90, p99, max`` of one integer length field
    (as :func:`servegen_core.characterize.lengths.length_percentiles`)."""
    schema = {**({"start_s": pl.Int64()} if per_window else {}), **_STATS_SCHEMA}
    w = (600 if window_s is None else window_s) if per_window else None
    fd = _length_field_data(trace, field, by_client=False, window_s=w)
    if isinstance(fd, str):
        return Table.empty(schema, fd)
    return Table(stats_frame(fd, group(fd, ("window",) if per_window else ())))


def length_pdf(trace: LazyTrace, field: str, *, per_window: bool = False, window_s: int | None = None) -> Table:
    """Weighted PDF and CDF ``[start_s,] value, prob, cdf`` of one integer length field
    (as :func:`servegen_core.characterize.lengths.length_pdf`)."""
    schema = {**({"start_s": pl.Int64()} if per_window else {}), "value": pl.Float64(), "prob": pl.Float64(), "cdf": pl.Float64()}
    w = (600 if window_s is None else window_s) if per_window else None
    fd = _length_field_data(trace, field, by_client=False, window_s=w)
    if isinstance(fd, str):
        return Table.empty(schema, fd)
    g = group(fd, ("window",) if per_window else ())
    cols = {}
    if per_window:
        cols["start_s"] = pl.Series("start_s", fd.window_starts[g.window], dtype=pl.Int64).gather(g.gid)
    return Table(pl.DataFrame({**cols, "value": g.value, "prob": g.prob(), "cdf": g.cdf()}))


# ---------------------------------------------------------------------------------------------
# Client summary
# ---------------------------------------------------------------------------------------------


def client_summary(trace: LazyTrace, *, cv: WindowCV | None = None, slice_rows: int = DEFAULT_SLICE_ROWS) -> Table:
    """One row per client with the base columns of
    :func:`servegen_core.characterize.summary.client_summary`: requests, share, mean and peak
    rate (600 s windows), CV mean and request-weighted CV, and input/output mean and
    percentiles. ``cv``: this trace's :func:`window_cv` table when the caller has it."""
    counts = client_window_counts(trace, ARRIVAL_WINDOW_S)
    if counts.height == 0:
        return Table.empty(BASE_COLUMNS, "the trace has no requests")
    ids = _ordered_ids(counts["client_id"].unique())
    w0, w1 = int(counts["window"].min()), int(counts["window"].max())
    span_s = (w1 - w0 + 1) * ARRIVAL_WINDOW_S
    load = counts.group_by("client_id").agg(
        pl.col("requests").sum().cast(pl.Float64).alias("requests"),
        pl.col("requests").max().cast(pl.Float64).alias("peak_rate_rps"),
    )
    load = load.with_columns(
        pl.Series("peak_rate_rps", load["peak_rate_rps"].to_numpy() / ARRIVAL_WINDOW_S),
        pl.Series("mean_rate_rps", load["requests"].to_numpy() / span_s),
    )
    total = float(load["requests"].sum())
    table = window_cv(trace, window_s=ARRIVAL_WINDOW_S, slice_rows=slice_rows, window_counts=counts) if cv is None else cv
    cv_cols = (
        table.frame.group_by("client_id").agg(
            pl.col("cv").mean().alias("cv_mean"),
            ((pl.col("cv") * pl.col("requests")).sum() / pl.col("requests").sum()).alias("cv_rate_weighted"),
        )
        if table.ok
        else pl.DataFrame(schema={"client_id": pl.String(), "cv_mean": pl.Float64(), "cv_rate_weighted": pl.Float64()})
    )
    # As the in-memory summary computes it (a Polars division by a scalar).
    load = load.with_columns((pl.col("requests") / total).alias("request_share"))
    has = "input_tokens" in trace.fields and "output_tokens" in trace.fields
    frame = (
        pl.DataFrame({"client_id": ids})
        .join(load, on="client_id", how="left", maintain_order="left")
        .with_columns(
            pl.lit(None, pl.String).alias("dominant_pattern"),
        )
        .join(cv_cols, on="client_id", how="left", maintain_order="left")
        .with_columns(pl.lit(has).alias("has_lengths"))
    )
    for field, prefix in (("input_tokens", "input"), ("output_tokens", "output")):
        fd = _length_field_data(trace, field, by_client=True, window_s=None, ids=ids)
        if isinstance(fd, str):
            continue
        stats = stats_frame(fd, group(fd, ("client",)))
        names = {"mean": f"{prefix}_mean", **{f"p{p}": f"{prefix}_p{p}" for p in (50, 90, 99)}}
        frame = frame.join(
            stats.select("client_id", *(pl.col(k).alias(v) for k, v in names.items())), on="client_id", how="left", maintain_order="left"
        )
    for c, t in BASE_COLUMNS.items():
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=t).alias(c))
    return Table(frame.select(*BASE_COLUMNS).with_columns(pl.col("has_lengths").fill_null(False)))
