"""Client summary: one row per client, and a filter over it (for the client explorer and compose).

:func:`client_summary` works on a :class:`~servegen_core.sources.pool.ClientPool` or a RequestTrace and
returns a :class:`~servegen_core.result.Table` with one row per client, in client order:

=======================  ==================================================================
``client_id``            the client
``requests``             requests over the span (a pool: ``Σ rate_rps * duration_s``)
``request_share``        its share of all requests
``mean_rate_rps``        requests / span (a pool: the mean of its windows' rates)
``peak_rate_rps``        its busiest arrival window (600 s) in requests per second
``cv_mean``              mean inter-arrival CV over its windows with a CV
``cv_rate_weighted``     the same, weighted by the windows' requests
``dominant_pattern``     arrival pattern carrying most of its load (pool: ``Gamma``/``Weibull``,
                         ``""`` without requests; trace: null, patterns are not recorded)
``has_lengths``          the client has length data
``input_mean/p50/p90/p99``, ``output_mean/p50/p90/p99``
                         request-weighted length statistics (null without length data)
=======================  ==================================================================

Where the source has them, also:

- multimodal: ``text_tokens_mean``, ``image_tokens_mean``, ``image_token_share`` (image
  tokens over all input tokens), ``image_request_share`` (requests with image tokens),
  ``image_count_mean``. A multimodal pool records no ``input_tokens`` PDF: its ``input_mean``
  is the sum of the modality means (exact) and its input percentiles are null (the
  distribution of a sum is not identified by per-field marginals).
- reasoning: ``reason_ratio_mean``, ``reason_ratio_p50``, ``reasoning_share`` (reasoning
  tokens over output tokens; for a pool ``Σ E[out] E[ratio] / Σ E[out]`` over its windows)
  and ``reason_ratio_bc`` (Sarle's bimodality coefficient of its ratio, see
  :mod:`servegen_core.characterize.reasoning`).

CVs come from :func:`servegen_core.characterize.arrivals.window_cv` (600 s windows with at least 10
requests). Nulls mark values that do not exist for a client (never NaN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from servegen_core.sources.view import (
    EMPTY_POOL,
    EMPTY_TRACE,
    ZERO_RATE_POOL,
    FieldData,
    NoData,
    Source,
    field_data,
    group,
    pool_clients,
    pool_clients_without_lengths,
    pool_window_clients,
    trace_clients,
    trace_field_data,
)
from servegen_core.characterize.arrivals import WindowCV, window_cv
from servegen_core.errors import SpecError
from servegen_core.characterize.lengths import stats_frame
from servegen_core.sources.pool import ClientPool
from servegen_core.characterize.reasoning import bimodality_coefficient, ratio_source
from servegen_core.result import Table

__all__ = ["BASE_COLUMNS", "client_summary", "filter_clients"]

#: Columns every summary has, in order.
BASE_COLUMNS: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "requests": pl.Float64(),
    "request_share": pl.Float64(),
    "mean_rate_rps": pl.Float64(),
    "peak_rate_rps": pl.Float64(),
    "cv_mean": pl.Float64(),
    "cv_rate_weighted": pl.Float64(),
    "dominant_pattern": pl.String(),
    "has_lengths": pl.Boolean(),
    **{f"{io}_{s}": pl.Float64() for io in ("input", "output") for s in ("mean", "p50", "p90", "p99")},
}

#: Window of the arrival statistics of a trace (the pools' arrival window).
ARRIVAL_WINDOW_S = 600


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------


def _pool_load(pool: ClientPool) -> pl.DataFrame:
    """client_id, requests, mean_rate_rps, peak_rate_rps, dominant_pattern."""
    clients = pool_clients(pool)
    n = len(clients)
    code = pool_window_clients(pool)
    w = pool.windows
    rate = w["rate_rps"].to_numpy()
    req = rate * w["duration_s"].to_numpy()
    count = np.bincount(code, minlength=n)
    peak = np.zeros(n)
    np.maximum.at(peak, code, rate)
    patterns = ("Gamma", "Weibull")
    pat = w["pattern"].cast(pl.Enum(["", *patterns])).to_physical().to_numpy().astype(np.int64)
    load = np.bincount(code * 3 + pat, weights=req, minlength=3 * n).reshape(n, 3)[:, 1:]
    best = np.argmax(load, axis=1)  # ties: the first pattern in name order
    dominant = np.where(load.max(axis=1) > 0, np.array(patterns)[best], "")
    return pl.DataFrame(
        {
            "client_id": list(clients),
            "requests": np.bincount(code, weights=req, minlength=n),
            "mean_rate_rps": np.bincount(code, weights=rate, minlength=n) / np.maximum(count, 1),
            "peak_rate_rps": peak,
            "dominant_pattern": dominant.tolist(),
        }
    )


def _trace_load(trace: pl.DataFrame, codes: np.ndarray, ids: tuple[str, ...]) -> pl.DataFrame:
    ts = trace["timestamp_s"].to_numpy()
    win = np.floor(ts / ARRIVAL_WINDOW_S).astype(np.int64)
    w0 = int(win.min())
    nw = int(win.max()) - w0 + 1
    span_s = nw * ARRIVAL_WINDOW_S
    n = len(ids)
    req = np.bincount(codes, minlength=n).astype(np.float64)
    if n * nw <= 1 << 24:
        peak = np.bincount(codes.astype(np.int64) * nw + (win - w0), minlength=n * nw).reshape(n, nw).max(axis=1)
    else:
        per = pl.DataFrame({"c": codes.astype(np.int64) * nw + (win - w0)}).group_by("c").len()
        peak = np.zeros(n)
        np.maximum.at(peak, per["c"].to_numpy() // nw, per["len"].to_numpy().astype(np.float64))
    return pl.DataFrame(
        {
            "client_id": list(ids),
            "requests": req,
            "mean_rate_rps": req / span_s,
            "peak_rate_rps": peak / ARRIVAL_WINDOW_S,
            "dominant_pattern": pl.Series([None] * n, dtype=pl.String),
        }
    )


def _cv(source: Source, table: WindowCV | None) -> pl.DataFrame:
    if table is not None and table.window_s != ARRIVAL_WINDOW_S:
        msg = f"client_summary takes a window_cv table of {ARRIVAL_WINDOW_S} s windows, got {table.window_s} s"
        raise ValueError(msg)
    cv = window_cv(source) if table is None else table
    schema = {"client_id": pl.String(), "cv_mean": pl.Float64(), "cv_rate_weighted": pl.Float64()}
    if not cv.ok:
        return pl.DataFrame(schema=schema)
    return cv.frame.group_by("client_id").agg(
        pl.col("cv").mean().alias("cv_mean"),
        ((pl.col("cv") * pl.col("requests")).sum() / pl.col("requests").sum()).alias("cv_rate_weighted"),
    )


def _fd(source: Source, field: str) -> FieldData | NoData:
    if isinstance(source, ClientPool):
        return field_data(source, field)
    return trace_field_data(source, field, need_window=False)


def _length_columns(source: Source, field: str, prefix: str) -> pl.DataFrame | None:
    fd = _fd(source, field)
    if isinstance(fd, NoData):
        return None
    frame = stats_frame(fd, group(fd, ("client",)))
    cols = {"mean": f"{prefix}_mean", **{f"p{p}": f"{prefix}_p{p}" for p in (50, 90, 99)}}
    return frame.select("client_id", *(pl.col(k).alias(v) for k, v in cols.items()))


def _client_sums(source: Source, field: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray] | None:
    """Per client (in the returned order): requests, sum of ``field``, requests with ``field`` > 0."""
    if isinstance(source, pl.DataFrame):
        if source.height == 0 or field not in source.columns:
            return None
        tc = trace_clients(source)
        codes, ids = tc.id_codes, tc.ids
        col = source[field]
        if col.null_count():
            codes = codes[col.is_not_null().to_numpy()]
            col = col.drop_nulls()
        v = col.cast(pl.Float64).to_numpy()
        n = len(ids)
        w = np.bincount(codes, minlength=n).astype(np.float64)
        return ids, w, np.bincount(codes, weights=v, minlength=n), np.bincount(codes, weights=(v > 0).astype(np.float64), minlength=n)
    fd = _fd(source, field)
    if isinstance(fd, NoData):
        return None
    g = group(fd, ("client",))
    n = len(fd.clients)
    at = g.client[g.gid]
    w = np.bincount(at, weights=g.weight, minlength=n)
    s = np.bincount(at, weights=g.weight * g.value, minlength=n)
    pos = np.bincount(at, weights=np.where(g.value > 0, g.weight, 0.0), minlength=n)
    return fd.clients, w, s, pos


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _frame(clients: tuple[str, ...], cols: Mapping[str, np.ndarray], has: np.ndarray) -> pl.DataFrame:
    """Per-client columns, null where ``has`` is false or the value is not finite."""
    data = {"client_id": list(clients)}
    for k, v in cols.items():
        data[k] = pl.Series(k, np.where(has & np.isfinite(v), v, np.nan)).fill_nan(None)
    return pl.DataFrame(data)


def _multimodal_columns(source: Source) -> pl.DataFrame | None:
    media = {}
    for m in ("text", "image", "audio", "video"):
        got = _client_sums(source, f"{m}_tokens")
        if got is not None:
            media[m] = got
    if "image" not in media:
        return None
    clients, w_img, s_img, pos_img = media["image"]
    cols = {"image_tokens_mean": _ratio(s_img, w_img), "image_request_share": _ratio(pos_img, w_img)}
    if "text" in media:
        cols["text_tokens_mean"] = _ratio(media["text"][2], media["text"][1])
    all_tokens = sum(v[2] for v in media.values())
    cols["image_token_share"] = _ratio(s_img, all_tokens)
    cnt = _client_sums(source, "image_count")
    if cnt is not None:
        cols["image_count_mean"] = _ratio(cnt[2], cnt[1])
    order = ["text_tokens_mean", "image_tokens_mean", "image_token_share", "image_request_share", "image_count_mean"]
    frame = _frame(clients, {k: cols[k] for k in order if k in cols}, w_img > 0)
    if isinstance(source, ClientPool) and "text" in media:
        # A multimodal pool has no input_tokens PDF: the input mean is the sum of modality means.
        means = sum(_ratio(v[2], v[1]) for v in media.values())
        frame = frame.with_columns(pl.Series("_input_mean", np.where(np.isfinite(means), means, np.nan)).fill_nan(None))
    return frame


def _reasoning_columns(source: Source) -> pl.DataFrame | None:
    src = ratio_source(source)
    if isinstance(src, NoData):
        return None
    fd = _fd(src, "reason_ratio")
    if isinstance(fd, NoData):
        return None
    g = group(fd, ("client",))
    n = len(fd.clients)
    at = g.client[g.gid]
    w = np.bincount(at, weights=g.weight, minlength=n)
    mean = _ratio(np.bincount(at, weights=g.weight * g.value, minlength=n), w)
    p50 = np.full(n, np.nan)
    p50[g.client] = g.quantile(0.5)
    bc = np.full(n, np.nan)
    bc[g.client] = bimodality_coefficient(g.value, g.weight, g.gid)
    frame = _frame(fd.clients, {"reason_ratio_mean": mean, "reason_ratio_p50": p50, "reason_ratio_bc": bc}, w > 0)
    frame = frame.filter(pl.Series(w > 0))
    share = _reasoning_share(source)
    frame = frame.join(share, on="client_id", how="left", maintain_order="left") if share is not None else frame.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("reasoning_share")
    )
    return frame.select("client_id", "reason_ratio_mean", "reason_ratio_p50", "reasoning_share", "reason_ratio_bc")


def _reasoning_share(source: Source) -> pl.DataFrame | None:
    """``client_id, reasoning_share``: reasoning tokens over output tokens per client."""
    if isinstance(source, pl.DataFrame):
        if "reasoning_tokens" in source.columns:
            reasoning = pl.col("reasoning_tokens").cast(pl.Float64)
        else:
            reasoning = (pl.col("output_tokens") * pl.col("reason_ratio")).round()
        tc = trace_clients(source)
        codes, ids = tc.id_codes, tc.ids
        t = source.select(reasoning.fill_null(0.0).alias("r"), pl.col("output_tokens").cast(pl.Float64).fill_null(0.0).alias("o"))
        num = np.bincount(codes, weights=t["r"].to_numpy(), minlength=len(ids))
        den = np.bincount(codes, weights=t["o"].to_numpy(), minlength=len(ids))
        return _frame(ids, {"reasoning_share": _ratio(num, den)}, den > 0)
    cells = {}
    for f in ("output_tokens", "reason_ratio"):
        fd = field_data(source, f)
        if isinstance(fd, NoData):
            return None
        g = group(fd, ("client", "window"))
        keys = g.client.astype(np.int64) * (1 << 32) + fd.window_starts[g.window]
        cells[f] = (keys, g.requests(), g.mean(), g.client)
    k_o, req, m_o, cl = cells["output_tokens"]
    k_r, _, m_r, _ = cells["reason_ratio"]
    _c, i_o, i_r = np.intersect1d(k_o, k_r, assume_unique=True, return_indices=True)
    clients = pool_clients(source)
    n = len(clients)
    out_tok = req[i_o] * m_o[i_o]
    num = np.bincount(cl[i_o], weights=out_tok * m_r[i_r], minlength=n)
    den = np.bincount(cl[i_o], weights=out_tok, minlength=n)
    return _frame(clients, {"reasoning_share": _ratio(num, den)}, den > 0)


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def client_summary(source: Source, *, window_cv: WindowCV | None = None) -> Table:
    """One row per client: load, burstiness, lengths, modality and reasoning statistics.

    ``window_cv``: the source's :func:`servegen_core.characterize.arrivals.window_cv` table when the caller
    already has it (600 s windows); computed here otherwise.
    """
    if isinstance(source, ClientPool):
        if source.windows.height == 0:
            return Table.empty(BASE_COLUMNS, EMPTY_POOL)
        load = _pool_load(source)
        total = float(load["requests"].sum())
        if not total > 0:
            return Table.empty(BASE_COLUMNS, ZERO_RATE_POOL)
        clients = pool_clients(source)
        has = pl.DataFrame({"client_id": list(clients)}).with_columns(
            (~pl.col("client_id").is_in(list(pool_clients_without_lengths(source)))).alias("has_lengths")
        )
    else:
        trace = source
        if trace.height == 0:
            return Table.empty(BASE_COLUMNS, EMPTY_TRACE)
        missing = [c for c in ("timestamp_s", "client_id") if c not in trace.columns]
        if missing:
            return Table.empty(BASE_COLUMNS, f"the trace has no {', '.join(missing)} column")
        tc = trace_clients(trace)
        codes, clients = tc.id_codes, tc.ids
        load = _trace_load(trace, codes, clients)
        total = float(trace.height)
        has = pl.DataFrame(
            {"client_id": list(clients), "has_lengths": [("input_tokens" in trace.columns) and ("output_tokens" in trace.columns)] * len(clients)}
        )
    frame = (
        pl.DataFrame({"client_id": list(clients)})
        .join(load, on="client_id", how="left", maintain_order="left")
        .with_columns((pl.col("requests") / total).alias("request_share"))
        .join(_cv(source, window_cv), on="client_id", how="left", maintain_order="left")
        .join(has, on="client_id", how="left", maintain_order="left")
    )
    for field, prefix in (("input_tokens", "input"), ("output_tokens", "output")):
        cols = _length_columns(source, field, prefix)
        if cols is not None:
            frame = frame.join(cols, on="client_id", how="left", maintain_order="left")
    mm = _multimodal_columns(source)
    if mm is not None:
        frame = frame.join(mm, on="client_id", how="left", maintain_order="left")
        if "_input_mean" in frame.columns:
            frame = frame.with_columns(pl.coalesce("input_mean", "_input_mean").alias("input_mean") if "input_mean" in frame.columns else pl.col("_input_mean").alias("input_mean")).drop("_input_mean")
    rs = _reasoning_columns(source)
    if rs is not None:
        frame = frame.join(rs, on="client_id", how="left", maintain_order="left")
    for c, t in BASE_COLUMNS.items():
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=t).alias(c))
    extra = [c for c in frame.columns if c not in BASE_COLUMNS]
    frame = frame.select(*BASE_COLUMNS, *extra).with_columns(pl.col("has_lengths").fill_null(False))
    return Table(frame)


# ---------------------------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------------------------


def filter_clients(
    summary: Table | pl.DataFrame,
    *,
    ranges: Mapping[str, tuple[float | None, float | None] | Sequence[float | None]] | None = None,
    top_k: int | None = None,
    by: str = "request_share",
) -> list[str]:
    """Client ids whose summary columns fall in ``ranges``, then the ``top_k`` by ``by``.

    ``ranges`` maps a column to ``(low, high)``, both inclusive; ``None`` leaves a side open. A
    client whose value is null in a filtered column (e.g. no length data) does not match.
    Ids come in descending order of ``by`` (ties in summary order). Unknown columns, a
    non-numeric range, or ``top_k < 0`` raise :class:`~servegen_core.errors.SpecError`.
    """
    frame = summary.frame if isinstance(summary, Table) else summary
    if "client_id" not in frame.columns:
        raise SpecError("clients", "the summary has no client_id column")
    if by not in frame.columns:
        raise SpecError("clients.by", f"unknown summary column {by!r}; columns: {', '.join(frame.columns)}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise SpecError("clients.top_k", f"must be a non-negative whole number, got {top_k!r}")
    cond = pl.lit(True)
    for col, bounds in (ranges or {}).items():
        key = f"clients.ranges.{col}"
        if col not in frame.columns:
            raise SpecError(key, f"unknown summary column; columns: {', '.join(frame.columns)}")
        if isinstance(bounds, str | bytes) or len(bounds) != 2:
            raise SpecError(key, f"expected [low, high], got {bounds!r}")
        lo, hi = bounds
        dtype = frame.schema[col]
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            raise SpecError(key, f"column is {dtype}, not numeric: ranges apply to numeric columns")
        for b in (lo, hi):
            if b is not None and (isinstance(b, str) or not np.isfinite(float(b))):
                raise SpecError(key, f"bounds must be finite numbers or null, got {b!r}")
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise SpecError(key, f"low {lo} is above high {hi}")
        c = pl.col(col).cast(pl.Float64)
        part = c.is_not_null()
        if lo is not None:
            part &= c >= float(lo)
        if hi is not None:
            part &= c <= float(hi)
        cond &= part
    kept = frame.with_row_index("_order").filter(cond)
    kept = kept.sort(pl.col(by).fill_null(-np.inf) if frame.schema[by].is_numeric() else pl.col(by), "_order", descending=[True, False], nulls_last=True)
    ids = kept["client_id"].to_list()
    return ids if top_k is None else ids[:top_k]
