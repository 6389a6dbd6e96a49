"""Multimodal characterization: text vs image/audio/video tokens, item counts, tokens per item.

Every function takes a :class:`~servegen_core.sources.pool.ClientPool` or a RequestTrace and returns
a frozen :class:`~servegen_core.result.Result`; weights follow :mod:`servegen_core.characterize.lengths`
(a pool's PDF bins weigh ``prob * requests`` of their client's length window).

Modalities are ``text``, ``image``, ``audio`` and ``video``, with the token fields
``<modality>_tokens`` and the item counts ``<modality>_count`` (no count for text).

Per-item token PDFs
    In ServeGen's multimodal data the ``<m>_tokens`` PDF of image, audio and video is per item
    (every window where some requests carry no image has no mass at 0 tokens while
    ``<m>_count`` has; per-image bins are capped at 1280 for clients sending dozens of images),
    and :mod:`servegen_core.generate.compose` generates a request's ``<m>_tokens`` as one draw per item
    of its ``<m>_count``, summed. Pool statistics read the PDFs the same way wherever the pool
    has both fields: a cell's expected tokens are ``E[count] x E[tokens per item]``, a request
    has tokens of the modality with probability ``1 - E[p0^count]`` (``p0`` the per-item
    probability of 0 tokens), and sampled requests sum ``count`` per-item draws.
Identified exactly and computed so for a pool
    token shares (ratio of expected tokens), the share of requests with tokens of a modality,
    item-count distributions, mean tokens per item (expected tokens over expected items), and
    all of these per window.
Not identified by a pool, estimated by a seeded sample
    A pool records one *marginal* PDF per field and window, so the per-request share of a
    modality and the tokens per image of a request are not determined by the data. They are
    estimated by drawing ``sample_size`` requests: a (client, length window) cell with
    probability proportional to its requests, then each field independently from the cell's
    PDF (:func:`servegen_core.sources.view.sample_pool`). Within a cell, fields are thus taken as
    independent; the ``method`` attribute of the result says so.
RequestTrace
    Everything comes from the rows. Without a ``text_tokens`` column the text part is
    ``input_tokens`` minus the other modalities' tokens (floored at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.sources.view import (
    DEFAULT_TRACE_WINDOW_S,
    EMPTY_TRACE,
    NoData,
    Source,
    dense_codes,
    field_data,
    group,
    missing_column,
    pool_field_data,
    pool_fields,
    pool_window_requests,
    sample_pool,
)
from servegen_core.sources.pool import ClientPool, hour_of_day
from servegen_core.result import Result, Table

__all__ = [
    "MODALITIES",
    "CountDistribution",
    "ModalityShares",
    "TokensPerItem",
    "image_count_distribution",
    "modality_over_time",
    "modality_shares",
    "tokens_per_image",
]

#: Modalities in display order; ``<m>_tokens`` are their token fields.
MODALITIES: tuple[str, ...] = ("text", "image", "audio", "video")
_MEDIA = MODALITIES[1:]

#: Default number of requests drawn from a pool where a statistic needs joint draws.
DEFAULT_SAMPLE_SIZE = 100_000


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def _modal_source(source: Source) -> tuple[Source, tuple[str, ...]] | NoData:
    """The source with its modality token fields (a trace gains a derived ``text_tokens``)."""
    if isinstance(source, ClientPool):
        fields = pool_fields(source)
        have = [m for m in MODALITIES if f"{m}_tokens" in fields]
        if "text" not in have or len(have) < 2:
            fd = pool_field_data(source, "text_tokens")
            if isinstance(fd, NoData) and not str(fd).startswith("the pool has no"):
                return fd
            return NoData(
                "the pool has no per-modality token fields (text_tokens with image/audio/video_tokens); "
                f"its fields are {', '.join(fields) or 'none'}"
            )
        return source, tuple(have)
    trace = source
    if trace.height == 0:
        return EMPTY_TRACE
    media = [m for m in _MEDIA if f"{m}_tokens" in trace.columns]
    if not media:
        return NoData("the trace has no image_tokens, audio_tokens or video_tokens column")
    if "text_tokens" in trace.columns:
        text = pl.col("text_tokens")
    else:
        text = pl.max_horizontal(
            pl.col("input_tokens") - pl.sum_horizontal(pl.col(f"{m}_tokens").fill_null(0) for m in media), pl.lit(0)
        ).alias("text_tokens")
    extra = [c for c in (f"{m}_count" for m in _MEDIA) if c in trace.columns]
    frame = trace.select("timestamp_s", "client_id", text, *(f"{m}_tokens" for m in media), *extra).drop_nulls(
        ["text_tokens", *(f"{m}_tokens" for m in media)]
    )
    if frame.height == 0:
        return NoData("no request has all its modality token counts")
    return frame, ("text", *media)


# ---------------------------------------------------------------------------------------------
# Token shares
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalityShares(Result):
    """How the input divides between modalities.

    ``summary``: ``modality, token_share, request_share, mean_share, p50_share, p90_share``:
    the modality's share of all input tokens, the share of requests with any of its tokens,
    and the mean / median / 90th percentile of its per-request share.
    ``distribution``: ``modality, share_lo, share_hi, prob``: histogram of the per-request
    share over ``[0, 1]`` (requests with no input tokens left out).
    """

    summary: pl.DataFrame
    distribution: pl.DataFrame
    requests: float = 0.0
    method: str = ""


_SHARE_SUMMARY = {
    "modality": pl.String(),
    "token_share": pl.Float64(),
    "request_share": pl.Float64(),
    "mean_share": pl.Float64(),
    "p50_share": pl.Float64(),
    "p90_share": pl.Float64(),
}
_SHARE_DIST = {"modality": pl.String(), "share_lo": pl.Float64(), "share_hi": pl.Float64(), "prob": pl.Float64()}


def item_modalities(pool: ClientPool) -> tuple[str, ...]:
    """Modalities whose ``<m>_tokens`` PDF is per item (the pool has ``<m>_count`` too)."""
    fields = set(pool_fields(pool))
    return tuple(m for m in _MEDIA if f"{m}_tokens" in fields and f"{m}_count" in fields)


def _pool_item_cells(pool: ClientPool, m: str) -> pl.DataFrame:
    """Per (client, length window) of a per-item modality: ``client_id, start_s, requests,
    tokens`` (expected tokens per request, ``E[count] E[tokens per item]``) and ``p_any``
    (the probability that a request has tokens of it, ``1 - E[p0^count]``)."""
    tf, cf = f"{m}_tokens", f"{m}_count"
    d = pool.distributions.filter(pl.col("field").is_in([tf, cf])).with_columns(pl.col("value").cast(pl.Float64))
    keys = ["client_id", "start_s"]
    per = d.group_by(*keys, "field").agg(
        ((pl.col("value") * pl.col("prob")).sum() / pl.col("prob").sum()).alias("mean"),
        (pl.col("prob").filter(pl.col("value") == 0).sum() / pl.col("prob").sum()).alias("p0"),
    )
    tok = per.filter(pl.col("field") == tf).select(*keys, pl.col("mean").alias("item_mean"), "p0")
    cnt = per.filter(pl.col("field") == cf).select(*keys, pl.col("mean").alias("count_mean"))
    none = (
        d.filter(pl.col("field") == cf)
        .join(tok.select(*keys, "p0"), on=keys, how="inner")
        .group_by(keys)
        .agg(((pl.col("prob") * pl.col("p0").pow(pl.col("value"))).sum() / pl.col("prob").sum()).alias("p_none"))
    )
    return (
        pool_window_requests(pool)
        .join(tok, on=keys, how="inner")
        .join(cnt, on=keys, how="inner")
        .join(none, on=keys, how="inner")
        .select(*keys, "requests", (pl.col("count_mean") * pl.col("item_mean")).alias("tokens"), (1.0 - pl.col("p_none")).alias("p_any"))
        .sort(keys)  # a fixed order, so sums over cells are the same bits every time
    )


def _exact_token_stats(src: Source, modalities: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float], float] | NoData:
    """Per modality: total tokens and weight of requests with tokens > 0; plus the total weight."""
    cols = [f"{m}_tokens" for m in modalities]
    if isinstance(src, pl.DataFrame):
        row = src.select(
            *(pl.col(c).cast(pl.Float64).sum().alias(f"s_{c}") for c in cols),
            *((pl.col(c) > 0).sum().cast(pl.Float64).alias(f"p_{c}") for c in cols),
            pl.len().cast(pl.Float64).alias("n"),
        ).row(0, named=True)
        return (
            {m: row[f"s_{c}"] for m, c in zip(modalities, cols, strict=True)},
            {m: row[f"p_{c}"] for m, c in zip(modalities, cols, strict=True)},
            row["n"],
        )
    tokens: dict[str, float] = {}
    positive: dict[str, float] = {}
    total = 0.0
    per_item = item_modalities(src)
    for m, c in zip(modalities, cols, strict=True):
        if m in per_item:
            cells = _pool_item_cells(src, m)
            req = cells["requests"].to_numpy()
            tokens[m] = float(np.sum(req * cells["tokens"].to_numpy()))
            positive[m] = float(np.sum(req * cells["p_any"].to_numpy()))
            total = max(total, float(np.sum(req)))
            continue
        fd = field_data(src, c, need_client=False, need_window=False)
        if isinstance(fd, NoData):
            return fd
        g = group(fd, ())
        tokens[m] = float((g.weight * g.value).sum())
        positive[m] = float(g.weight[g.value > 0].sum())
        total = max(total, float(g.weight.sum()))
    return tokens, positive, total


def _share_summary_and_hist(shares: dict[str, np.ndarray], bins: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Mean, median and 90th percentile (inverse CDF) of each per-request share, and its histogram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, hists = [], []
    for m, s in shares.items():
        p50, p90 = np.quantile(s, [0.5, 0.9], method="inverted_cdf")
        rows.append({"modality": m, "mean_share": float(s.mean()), "p50_share": float(p50), "p90_share": float(p90)})
        h, _ = np.histogram(s, bins=bins, range=(0.0, 1.0))
        hists.append(pl.DataFrame({"modality": m, "share_lo": edges[:-1], "share_hi": edges[1:], "prob": h / h.sum()}))
    return pl.DataFrame(rows), pl.concat(hists)


def modality_shares(
    source: Source,
    *,
    bins: int = 20,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int | np.random.Generator | None = 0,
) -> ModalityShares:
    """Share of text vs image/audio/video tokens: overall, per request, and its distribution."""

    def empty(reason: str) -> ModalityShares:
        return ModalityShares(pl.DataFrame(schema=_SHARE_SUMMARY), pl.DataFrame(schema=_SHARE_DIST), reason=reason)

    if bins < 1:
        msg = f"bins must be at least 1, got {bins}"
        raise ValueError(msg)
    got = _modal_source(source)
    if isinstance(got, NoData):
        return empty(str(got))
    src, modalities = got
    exact = _exact_token_stats(src, modalities)
    if isinstance(exact, NoData):
        return empty(str(exact))
    tokens, positive, total = exact
    all_tokens = sum(tokens.values())
    if total <= 0:
        return empty("no requests with modality data")
    if all_tokens <= 0:
        return empty("every request has 0 input tokens: no shares to compute")
    if isinstance(src, ClientPool):
        per_item = {f"{m}_tokens": f"{m}_count" for m in item_modalities(src) if m in modalities}
        fields = tuple(f"{m}_tokens" for m in modalities) + tuple(per_item.values())
        s = sample_pool(src, fields, sample_size, _rng(seed), items=per_item)
        if isinstance(s, NoData):
            return empty(str(s))
        mat = np.column_stack([s.values[f"{m}_tokens"] for m in modalities])
        method = (
            f"token and request shares exact from the PDFs; per-request shares from {sample_size:,} requests "
            "drawn with each modality independent within its (client, 6 h window) cell"
            + (", per-item tokens summed over the drawn item count" if per_item else "")
        )
    else:
        mat = src.select(pl.col(f"{m}_tokens").fill_null(0).cast(pl.Float64) for m in modalities).to_numpy()
        method = f"from {src.height:,} requests"
    row_total = mat.sum(axis=1)
    has = row_total > 0
    if not has.any():
        return empty("every request has 0 input tokens: no per-request shares")
    if not has.all():
        mat, row_total = mat[has], row_total[has]
    shares = {m: mat[:, i] / row_total for i, m in enumerate(modalities)}
    per_req, dist = _share_summary_and_hist(shares, bins)
    exact_frame = pl.DataFrame(
        {
            "modality": list(modalities),
            "token_share": [tokens[m] / all_tokens for m in modalities],
            "request_share": [positive[m] / total for m in modalities],
        }
    )
    summary = exact_frame.join(per_req, on="modality", how="left", maintain_order="left").select(list(_SHARE_SUMMARY))
    return ModalityShares(summary, dist, requests=total, method=method)


# ---------------------------------------------------------------------------------------------
# Item counts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountDistribution(Table):
    """``count, prob, cdf`` of the items (e.g. images) per request; ``mean``, ``share_nonzero``."""

    field: str = ""
    mean: float | None = None
    share_nonzero: float | None = None


_COUNT_SCHEMA = {"count": pl.Int64(), "prob": pl.Float64(), "cdf": pl.Float64()}


def image_count_distribution(source: Source, *, modality: str = "image") -> CountDistribution:
    """Distribution of the number of images (or ``modality`` items) per request."""
    if modality not in _MEDIA:
        msg = f"modality must be one of {_MEDIA}, got {modality!r}"
        raise ValueError(msg)
    f = f"{modality}_count"
    fd = field_data(source, f, need_client=False, need_window=False)
    if isinstance(fd, NoData):
        return CountDistribution(pl.DataFrame(schema=_COUNT_SCHEMA), field=f, reason=str(fd))
    g = group(fd, ())
    frame = pl.DataFrame({"count": g.value.round().astype(np.int64), "prob": g.prob(), "cdf": g.cdf()})
    mean = float(g.mean()[0])
    nonzero = float(g.weight[g.value > 0].sum() / g.weight.sum())
    return CountDistribution(frame, field=f, mean=mean, share_nonzero=nonzero)


# ---------------------------------------------------------------------------------------------
# Tokens per item
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokensPerItem(Result):
    """Tokens per image (or other item), each item counted once.

    ``distribution``: ``tokens_per_item, prob, cdf`` (tokens of a request divided by its item
    count, rounded to whole tokens, weighted by the item count). ``dominant``: ``rank,
    tokens_per_item, share`` — the ``top_k`` most frequent sizes. ``mean_tokens_per_item``:
    all tokens of the modality over all its items.
    """

    distribution: pl.DataFrame
    dominant: pl.DataFrame
    mean_tokens_per_item: float | None = None
    modality: str = "image"
    method: str = ""


_TPI_DIST = {"tokens_per_item": pl.Float64(), "prob": pl.Float64(), "cdf": pl.Float64()}
_TPI_TOP = {"rank": pl.Int64(), "tokens_per_item": pl.Float64(), "share": pl.Float64()}


def tokens_per_image(
    source: Source,
    *,
    modality: str = "image",
    top_k: int = 5,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int | np.random.Generator | None = 0,
) -> TokensPerItem:
    """Distribution of tokens per image (or ``modality`` item) and its dominant sizes."""
    if modality not in _MEDIA:
        msg = f"modality must be one of {_MEDIA}, got {modality!r}"
        raise ValueError(msg)
    tf, cf = f"{modality}_tokens", f"{modality}_count"

    def empty(reason: str) -> TokensPerItem:
        return TokensPerItem(pl.DataFrame(schema=_TPI_DIST), pl.DataFrame(schema=_TPI_TOP), modality=modality, reason=reason)

    sums = []
    per_item = isinstance(source, ClientPool) and modality in item_modalities(source)
    for f in (tf, cf):
        if per_item:
            break
        if isinstance(source, pl.DataFrame):
            if source.height == 0:
                return empty(EMPTY_TRACE)
            if f not in source.columns:
                return empty(missing_column(f))
            sums.append(float(source[f].cast(pl.Float64).sum()))
            continue
        fd = field_data(source, f, need_client=False, need_window=False)
        if isinstance(fd, NoData):
            return empty(str(fd))
        g = group(fd, ())
        sums.append(float((g.weight * g.value).sum()))
    if per_item:
        cells = _pool_item_cells(source, modality)
        cnt = pool_field_data(source, cf)
        if isinstance(cnt, NoData):
            return empty(str(cnt))
        gc = group(cnt, ())
        sums = [float((cells["requests"] * cells["tokens"]).sum()), float((gc.weight * gc.value).sum())]
    if sums[1] <= 0:
        return empty(f"no request has any {modality}: {cf} is 0 throughout")
    mean_tpi = sums[0] / sums[1]
    if per_item:
        s = sample_pool(source, (tf, cf), sample_size, _rng(seed), positive=(cf,), items={tf: cf})
        if isinstance(s, NoData):
            return empty(str(s))
        tokens, count = s.values[tf], s.values[cf]
        method = (
            f"{sample_size:,} {modality} requests ({cf} > 0) drawn within their (client, 6 h window) cell, each "
            f"with one {tf} draw per item (the PDF is per item), as composed; the mean is exact"
        )
    elif isinstance(source, ClientPool):
        s = sample_pool(source, (tf, cf), sample_size, _rng(seed), positive=(tf, cf))
        if isinstance(s, NoData):
            return empty(str(s))
        tokens, count = s.values[tf], s.values[cf]
        method = (
            f"{sample_size:,} {modality} requests drawn with {tf} and {cf} independent (each > 0) within "
            f"their (client, 6 h window) cell; the mean is exact"
        )
    else:
        t = source.select(tf, cf).drop_nulls().filter(pl.col(cf) > 0)
        if t.height == 0:
            return empty(f"no request has {cf} > 0")
        tokens, count = t[tf].to_numpy(), t[cf].to_numpy()
        method = f"from {t.height:,} requests with {cf} > 0"
    # Tokens per item, rounded half to even, each request weighted by its item count.
    tpi = np.rint(tokens / count).astype(np.int64)
    u, code = dense_codes(tpi)
    vals = u.astype(np.float64)
    w = np.bincount(code, weights=count.astype(np.float64), minlength=u.size)
    prob = w / w.sum()
    dist = pl.DataFrame({"tokens_per_item": vals, "prob": prob, "cdf": np.minimum(np.cumsum(prob), 1.0)})
    top = np.argsort(-prob, kind="stable")[: max(top_k, 0)]
    dominant = pl.DataFrame(
        {"rank": np.arange(1, top.size + 1, dtype=np.int64), "tokens_per_item": vals[top], "share": prob[top]},
        schema=_TPI_TOP,
    )
    return TokensPerItem(dist, dominant, mean_tokens_per_item=mean_tpi, modality=modality, method=method)


# ---------------------------------------------------------------------------------------------
# Modality mix over time
# ---------------------------------------------------------------------------------------------

_TIME_SCHEMA = {
    "start_s": pl.Int64(),
    "hour": pl.Float64(),
    "modality": pl.String(),
    "tokens_per_request": pl.Float64(),
    "token_share": pl.Float64(),
    "request_share": pl.Float64(),
}


def modality_over_time(source: Source, *, window_s: int | None = None) -> Table:
    """Per window and modality: ``tokens_per_request``, ``token_share``, ``request_share``.

    Windows are a pool's 6 h length windows (or multiples, ``window_s``) or ``window_s``
    windows of a trace (default 6 h). ``token_share`` divides the window's expected tokens
    between modalities; ``request_share`` is the share of requests with tokens of it.
    """
    got = _modal_source(source)
    if isinstance(got, NoData):
        return Table.empty(_TIME_SCHEMA, str(got))
    src, modalities = got
    if isinstance(src, pl.DataFrame):
        return Table(_trace_modality_over_time(src, modalities, window_s))
    parts = []
    per_item = item_modalities(src)
    for m in modalities:
        if m in per_item:
            cells = _pool_item_cells(src, m)
            ws = int(src.length_window_s if window_s is None else window_s)
            origin = int(src.length_windows["start_s"].min()) if src.length_windows.height else 0
            agg = (
                cells.with_columns((((pl.col("start_s") - origin) // ws) * ws + origin).cast(pl.Int64).alias("start_s"))
                .group_by("start_s")
                .agg(
                    ((pl.col("requests") * pl.col("tokens")).sum() / pl.col("requests").sum()).alias("tokens_per_request"),
                    ((pl.col("requests") * pl.col("p_any")).sum() / pl.col("requests").sum()).alias("request_share"),
                )
                .sort("start_s")
            )
            parts.append(agg.select("start_s", pl.lit(m).alias("modality"), "tokens_per_request", "request_share"))
            continue
        fd = field_data(src, f"{m}_tokens", window_s=window_s, need_client=False, need_window=True)
        if isinstance(fd, NoData):
            return Table.empty(_TIME_SCHEMA, str(fd))
        g = group(fd, ("window",))
        req = g.requests()
        pos = np.bincount(g.gid, weights=np.where(g.value > 0, g.weight, 0.0), minlength=g.n_groups)
        parts.append(
            pl.DataFrame(
                {
                    "start_s": fd.window_starts[g.window],
                    "modality": m,
                    "tokens_per_request": g.mean(),
                    "request_share": pos / req,
                }
            )
        )
    return Table(_finish_over_time(pl.concat(parts)))


def _trace_modality_over_time(src: pl.DataFrame, modalities: tuple[str, ...], window_s: int | None) -> pl.DataFrame:
    w = DEFAULT_TRACE_WINDOW_S if window_s is None else int(window_s)
    if w <= 0:
        msg = f"window_s must be positive, got {window_s}"
        raise ValueError(msg)
    per = (
        src.group_by((pl.col("timestamp_s") // w).cast(pl.Int64).alias("k"))
        .agg(
            pl.len().cast(pl.Float64).alias("n"),
            *(pl.col(f"{m}_tokens").cast(pl.Float64).sum().alias(f"s_{m}") for m in modalities),
            *((pl.col(f"{m}_tokens") > 0).sum().cast(pl.Float64).alias(f"p_{m}") for m in modalities),
        )
        .with_columns((pl.col("k") * w).alias("start_s"))
    )
    parts = [
        per.select(
            "start_s",
            pl.lit(m).alias("modality"),
            (pl.col(f"s_{m}") / pl.col("n")).alias("tokens_per_request"),
            (pl.col(f"p_{m}") / pl.col("n")).alias("request_share"),
        )
        for m in modalities
    ]
    return _finish_over_time(pl.concat(parts))


def _finish_over_time(frame: pl.DataFrame) -> pl.DataFrame:
    tot = pl.col("tokens_per_request").sum().over("start_s")
    frame = frame.with_columns(
        hour_of_day(pl.col("start_s").cast(pl.Float64)).alias("hour"),
        pl.when(tot > 0).then(pl.col("tokens_per_request") / tot).otherwise(0.0).alias("token_share"),
    )
    order = {m: i for i, m in enumerate(MODALITIES)}
    return frame.sort("start_s", pl.col("modality").replace_strict(order, return_dtype=pl.Int64)).select(list(_TIME_SCHEMA))
