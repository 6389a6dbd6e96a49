"""The stages of planning a workload, each a function from typed records to one frozen record
(:mod:`servegen_core.generate.plan`), run in this order by
:func:`servegen_core.generate.compose.plan_workload`:

1. :func:`cut_span`: the source cut to the span; arrival windows the span cuts are clipped.
2. :func:`select_clients`: all, ids, the top k by request share
   (:func:`servegen_core.characterize.rates.client_shares`) or summary filters; explicit
   weights checked and weight-0 clients dropped.
3. :func:`resolve_targets`: the composed client-windows and their target rates (see
   :mod:`servegen_core.generate.compose` for the rate kinds and weights), clients or windows
   without length data excluded or given borrowed or pooled lengths.
4. :func:`arrival_model`: the gap model of every client-window.
5. :func:`length_tables`: the inverse-CDF tables (:mod:`servegen_core.generate.tables`).
6. :func:`cut_units`: the generation units (windows, cut into pieces when busy).
7. :func:`servegen_core.generate.sessions.plan_prefix`: the prefix model, when the spec has one.

A new arrival model is one more function beside :func:`_renewal_shapes`,
:func:`_fitted_rows` and :func:`_empirical_windows` that :func:`arrival_model` consults
(returning :class:`~servegen_core.arrival_models.ArrivalModelTable` rows); a new model of the requests
(like the prefix model) is one more stage.
"""

from __future__ import annotations

import dataclasses
import math
from itertools import chain
from types import MappingProxyType

import numpy as np
import polars as pl

from servegen_core.characterize.rates import client_shares
from servegen_core.characterize.summary import client_summary, filter_clients
from servegen_core.errors import SpecError
from servegen_core.generate.plan import (
    EXCLUSION_REASONS,
    UNIT_REQUESTS,
    ArrivalModel,
    ClientChoice,
    GenerationUnits,
    SpanCut,
    Targets,
    rate_segments,
)
from servegen_core.arrival_models import KINDS, ArrivalModelTable, rows_from_rate_cv
from servegen_core.generate.tables import LengthTables, build_length_tables, table_ids
from servegen_core.renewal import (
    EXPONENTIAL,
    GAMMA,
    MAX_SHAPE,
    MIN_GAMMA_SHAPE,
    MIN_WEIBULL_SHAPE,
    WEIBULL,
    empirical_tables,
    family_cv,
    gamma_shape_for_cv,
    weibull_shape_for_sample_cv,
)
from servegen_core.sources.pool import ClientPool, client_sort_key
from servegen_core.spec import BoundedRate, ClientSelection, ObservedRate, PiecewiseRate, RampRate, WorkloadSpec

__all__ = [
    "ITEM_MODALITIES",
    "arrival_model",
    "cut_span",
    "cut_units",
    "length_tables",
    "resolve_targets",
    "select_clients",
    "split_fields",
]

#: Modalities whose ``<m>_tokens`` PDF is per item, drawn ``<m>_count`` times per request.
ITEM_MODALITIES: tuple[str, ...] = ("image", "audio", "video")
#: Summary columns whose top-k ranking equals the ranking by recorded requests.
_SHARE_COLUMNS = ("request_share", "requests")


# --------------------------------------------------------------------------------------------
# 1. Span
# --------------------------------------------------------------------------------------------


def cut_span(spec: WorkloadSpec, pool: ClientPool) -> SpanCut:
    """The span of ``spec`` checked against ``pool`` and the pool cut to it (from the span start
    moved back to the arrival-window grid). Raises :class:`SpecError` naming
    ``span.start_s``/``span.duration_s`` for a span outside the data."""
    window_s = int(pool.window_s)
    if pool.windows.height == 0:
        raise SpecError("source", f"the source {pool.name} has no arrival windows")
    start = float(spec.span.start_s)
    data_start, data_end = pool.start_s, pool.end_s
    if not (data_start <= start < data_end):
        raise SpecError("span.start_s", f"{start:g} s is outside the data of {pool.name}, which covers [{data_start}, {data_end}) s")
    duration = float(spec.span.duration_s) if spec.span.duration_s is not None else float(data_end - start)
    end = start + duration
    if end > data_end + 1e-9:
        raise SpecError(
            "span.duration_s",
            f"the span ends at {end:g} s, after the end of the data of {pool.name} ({data_end} s); "
            f"the longest duration from {start:g} s is {data_end - start:g} s",
        )
    aligned = start - ((start - data_start) % window_s)
    return SpanCut(
        source=pool,
        pool=_span_pool(pool, aligned, end),
        start_s=start,
        duration_s=duration,
        end_s=end,
        aligned_start_s=aligned,
        data_start_s=data_start,
        window_s=window_s,
    )


def _span_pool(pool: ClientPool, start: float, end: float) -> ClientPool:
    """``pool.span(start, end)``, restricting the distributions by a range filter on their
    window start instead of a join (the same rows: distributions exist only for length
    windows, and a length window overlaps the span exactly when its start is in range)."""
    lws = pool.length_window_s
    if start <= pool.start_s and end >= pool.end_s:
        return pool  # the whole pool: no copy
    windows = pool.windows.filter((pl.col("start_s") >= start) & (pl.col("start_s") < end))
    overlap = (pl.col("start_s") < end) & (pl.col("start_s") + lws > start)
    length_windows = pool.length_windows.filter((pl.col("start_s") < end) & (pl.col("start_s") + pl.col("duration_s") > start))
    distributions = pool.distributions.filter(overlap)
    in_span = (pl.col("start_s") >= start) & (pl.col("start_s") < end)
    gaps = None if pool.gaps is None else pool.gaps.filter(in_span)
    models = None if pool.arrival_models is None else pool.arrival_models.filter(in_span)
    return dataclasses.replace(
        pool, windows=windows, distributions=distributions, length_windows=length_windows, gaps=gaps, arrival_models=models
    )


# --------------------------------------------------------------------------------------------
# 2. Clients
# --------------------------------------------------------------------------------------------


def select_clients(spec: WorkloadSpec, span: SpanCut) -> ClientChoice:
    """The clients ``spec.clients`` chooses among the span's, and those with a positive weight.

    Raises :class:`SpecError` for unknown ids (``clients.ids``, ``weights.values.<id>``),
    weights of clients not chosen, unknown summary columns, or a filter that selects no one.
    """
    source = span.source
    chosen = _chosen_clients(spec.clients, source, span.pool)
    weighted = chosen
    if spec.weights.mode == "explicit":
        known = set(source.client_ids)
        chosen_set = set(chosen)
        for cid, _w in spec.weights.values:
            if cid not in known:
                raise SpecError(f"weights.values.{cid}", f"unknown client id {cid!r} in {source.name}")
            if cid not in chosen_set:
                raise SpecError(f"weights.values.{cid}", f"client {cid!r} is not among the selected clients")
        weight_of = spec.weights.as_dict()
        weighted = [c for c in chosen if weight_of.get(c, 0.0) > 0]
    pool = span.pool.select_clients(weighted) if len(weighted) < len(span.pool.client_ids) else span.pool
    return ClientChoice(chosen=tuple(chosen), weighted=tuple(weighted), pool=pool)


def _chosen_clients(selection: ClientSelection, source: ClientPool, span_pool: ClientPool) -> list[str]:
    """Client ids chosen by ``selection``, in numeric order.

    ``top_k`` by request share (or requests) ranks :func:`client_shares` of the span (busiest
    first, ties in id order, as the summary ranks them); other columns and ``filter`` need
    the whole :func:`client_summary`.
    """
    if selection.mode == "all":
        return list(span_pool.client_ids)
    if selection.mode == "ids":
        known = set(source.client_ids)
        for i, c in enumerate(selection.ids):
            if c not in known:
                shown = ", ".join(source.client_ids[:10])
                raise SpecError(f"clients.ids[{i}]", f"unknown client id {c!r} in {source.name} (ids look like: {shown}, ...)")
        return sorted(selection.ids, key=client_sort_key)
    if selection.mode == "top_k" and selection.by in _SHARE_COLUMNS:
        ids = _top_by_share(span_pool, selection.k)
    else:
        summary = client_summary(span_pool)
        frame = summary.frame
        if selection.by not in frame.columns:
            raise SpecError("clients.by", f"unknown summary column {selection.by!r}; columns: {frame.columns}")
        if selection.mode == "top_k":
            ids = filter_clients(summary, top_k=selection.k, by=selection.by)
        else:
            for name, _lo, _hi in selection.ranges:
                if name not in frame.columns:
                    raise SpecError(f"clients.ranges.{name}", f"unknown summary column {name!r}; columns: {frame.columns}")
            ranges = {name: (lo, hi) for name, lo, hi in selection.ranges}
            ids = filter_clients(summary, ranges=ranges or None, top_k=selection.top_k, by=selection.by)
    ids = [str(c) for c in ids]
    if not ids:
        raise SpecError("clients", "the client filter selects no client")
    return sorted(ids, key=client_sort_key)


def _top_by_share(span_pool: ClientPool, k: int) -> list[str]:
    """The ``k`` clients of the span with the largest request share, ties in id order."""
    shares = client_shares(span_pool)
    if not shares.ok:
        return []
    position = {c: i for i, c in enumerate(span_pool.client_ids)}
    frame = shares.frame.with_columns(
        pl.col("client_id").replace_strict(position, return_dtype=pl.Int64).alias("_order")
    )
    return frame.sort("share", "_order", descending=[True, False])["client_id"].head(k).to_list()


# --------------------------------------------------------------------------------------------
# 3. Targets
# --------------------------------------------------------------------------------------------


def resolve_targets(spec: WorkloadSpec, span: SpanCut, choice: ClientChoice) -> Targets:
    """The composed client-windows, their target rates and every window's target (see
    :class:`~servegen_core.generate.plan.Targets`).

    Raises :class:`SpecError` for a source without length distributions, weights that sum
    to 0 over the clients that send requests, or nothing to compose.
    """
    warnings: list[str] = list(span.source.warnings)  # what fitting a trace source could not recover
    client_order = pl.DataFrame(
        {"client_id": list(choice.weighted), "client_rank": list(range(len(choice.weighted)))},
        schema={"client_id": pl.String(), "client_rank": pl.Int64()},
    )
    fields = _length_fields(span.source, choice.pool)
    if not fields:
        raise SpecError("source", f"{span.source.name} has no length distributions")
    client_windows = _client_windows(span, choice.pool, client_order, fields)
    active = set(client_windows["client_id"].unique().to_list())  # recorded requests in the span
    client_windows = _missing_lengths(spec, client_windows, client_order, warnings)
    per_client = _client_weights(spec, span.source, client_windows, client_order, warnings)
    client_windows = client_windows.join(per_client.select("client_id", "adjust"), on="client_id", how="inner").with_columns(
        (pl.col("rate_rps") * pl.col("adjust")).alias("_base")
    )
    composed = [c for c in choice.weighted if c in set(per_client["client_id"].to_list())]
    chosen, weighted, done = set(choice.chosen), set(choice.weighted), set(composed)
    reasons = {
        "not_selected": [c for c in span.pool.client_ids if c not in chosen],
        "weight_zero": [c for c in choice.chosen if c not in weighted],
        "idle": [c for c in choice.weighted if c not in done and c not in active],
        "no_lengths": [c for c in choice.weighted if c not in done and c in active],
    }
    exclusions = MappingProxyType({r: tuple(sorted(reasons[r], key=client_sort_key)) for r in EXCLUSION_REASONS})
    excluded = tuple(sorted(chain(reasons["weight_zero"], reasons["idle"], reasons["no_lengths"]), key=client_sort_key))

    client_windows, windows = _window_targets(spec, span, client_windows, per_client, warnings)
    client_windows = _length_sources(spec, client_windows)
    weights = (
        per_client.join(client_windows.group_by("client_id").agg(pl.col("expected_requests").sum()), on="client_id", how="left")
        .with_columns(pl.col("expected_requests").fill_null(0.0))
        .join(client_order, on="client_id", how="inner")
        .sort("client_rank")
    )
    if spec.weights.mode == "observed":
        # observed weights: each window keeps its recorded client mix, so a client's share of the
        # workload is what the rate function makes of its per-window shares
        weights = weights.with_columns((pl.col("expected_requests") / pl.col("expected_requests").sum()).alias("weight_share"))
    return Targets(
        client_windows=client_windows,
        windows=windows,
        weights=weights.select("client_id", "observed_share", "weight_share", "expected_requests"),
        clients=tuple(composed),
        excluded_clients=excluded,
        exclusions=exclusions,
        fields=fields,
        warnings=tuple(warnings),
    )


def _length_fields(source: ClientPool, span_pool: ClientPool) -> tuple[str, ...]:
    """Length fields of the source, in the data's order (from the span, else the whole source)."""
    fields = span_pool.fields if span_pool.distributions.height else source.fields
    return tuple(fields)


def _client_windows(span: SpanCut, span_pool: ClientPool, client_order: pl.DataFrame, fields: tuple[str, ...]) -> pl.DataFrame:
    """The span's client-windows with requests, clipped to the span, with their window index,
    length window and whether it holds every length field (``has_lengths``)."""
    source = span.source
    length_origin = int(source.length_windows["start_s"].min()) if source.length_windows.height else 0
    length_window_s = int(source.length_window_s)
    start, end = span.start_s, span.end_s
    client_windows = (
        span_pool.windows.filter(pl.col("rate_rps") > 0)
        .with_columns(
            pl.max_horizontal(pl.col("start_s").cast(pl.Float64), pl.lit(start)).alias("_clip_start"),
            pl.min_horizontal((pl.col("start_s") + pl.col("duration_s")).cast(pl.Float64), pl.lit(end)).alias("_clip_end"),
        )
        .with_columns((pl.col("_clip_end") - pl.col("_clip_start")).alias("span_duration_s"))
        .filter(pl.col("span_duration_s") > 0)
        .with_columns(
            ((pl.col("start_s") - span.data_start_s) // span.window_s).alias("window_index"),
            (pl.col("_clip_start") - start).alias("t0_s"),
            (((pl.col("start_s") - length_origin) // length_window_s) * length_window_s + length_origin).alias("length_start_s"),
            (pl.col("rate_rps") * pl.col("span_duration_s")).alias("source_requests"),
        )
        .join(client_order, on="client_id", how="inner")
    )
    complete = (
        span_pool.distributions.filter(pl.col("field").is_in(fields))
        .group_by("client_id", "start_s")
        .agg(pl.col("field").n_unique().alias("_nf"))
        .filter(pl.col("_nf") == len(fields))
        .select("client_id", pl.col("start_s").alias("length_start_s"), pl.lit(True).alias("has_lengths"))
    )
    return client_windows.join(complete, on=["client_id", "length_start_s"], how="left").with_columns(
        pl.col("has_lengths").fill_null(False)
    )


def _missing_lengths(spec: WorkloadSpec, client_windows: pl.DataFrame, client_order: pl.DataFrame, warnings: list[str]) -> pl.DataFrame:
    """Client-windows without length data: dropped (``missing_lengths="exclude"``) or kept to
    borrow or pool lengths; a warning names the clients either way."""
    missing = client_windows.filter(~pl.col("has_lengths"))
    if not missing.height:
        return client_windows
    by_client = missing.group_by("client_id").agg(pl.col("source_requests").sum().alias("req"), pl.len().alias("nw"))
    total_windows = client_windows.group_by("client_id").agg(pl.len().alias("all_nw"))
    by_client = by_client.join(total_windows, on="client_id").join(client_order, on="client_id").sort("client_rank")
    whole = by_client.filter(pl.col("nw") == pl.col("all_nw"))["client_id"].to_list()
    partial = by_client.filter(pl.col("nw") < pl.col("all_nw"))["client_id"].to_list()
    share = float(missing["source_requests"].sum()) / max(float(client_windows["source_requests"].sum()), 1e-300)
    if spec.missing_lengths == "exclude":
        if whole:
            warnings.append(
                f"{len(whole)} client(s) without length data excluded: {_ids_text(whole)} "
                f"({share:.1%} of the selected clients' recorded requests in the span)"
            )
        if partial:
            warnings.append(
                f"{len(partial)} client(s) lack length data in some windows; those windows are excluded: {_ids_text(partial)}"
            )
        return client_windows.filter(pl.col("has_lengths"))
    if spec.missing_lengths == "borrow":
        warnings.append(
            f"{by_client.height} client(s) without length data in some or all windows borrow lengths "
            "(the request-weighted mixture of the other composed clients' tables in the same length window): "
            f"{_ids_text(by_client['client_id'].to_list())} ({share:.1%} of the recorded requests in the span)"
        )
    else:
        warnings.append(
            f"{by_client.height} client(s) without length data in some or all windows get the pooled lengths: "
            f"{_ids_text(by_client['client_id'].to_list())} ({share:.1%} of the recorded requests in the span)"
        )
    return client_windows


def _client_weights(
    spec: WorkloadSpec, source: ClientPool, client_windows: pl.DataFrame, client_order: pl.DataFrame, warnings: list[str]
) -> pl.DataFrame:
    """One row per composed client: ``n_obs`` (recorded requests in the span), ``w``,
    ``observed_share``, ``weight_share`` and ``adjust`` (weight share / observed share)."""
    per_client = client_windows.group_by("client_id").agg(pl.col("source_requests").sum().alias("n_obs"))
    per_client = client_order.join(per_client, on="client_id", how="left").with_columns(pl.col("n_obs").fill_null(0.0))
    if spec.weights.mode == "explicit":
        weight_of = spec.weights.as_dict()
        silent = per_client.filter(pl.col("n_obs") <= 0)["client_id"].to_list()
        silent = [c for c in silent if weight_of.get(c, 0) > 0]
        if silent:
            warnings.append(
                f"{len(silent)} weighted client(s) send no requests in the span (or only without length data) "
                f"and cannot carry load: {_ids_text(silent)}"
            )
        per_client = per_client.with_columns(
            pl.col("client_id").replace_strict(weight_of, default=0.0, return_dtype=pl.Float64).alias("w")
        ).with_columns(pl.when(pl.col("n_obs") > 0).then(pl.col("w")).otherwise(0.0).alias("w"))
        if not float(per_client["w"].sum()) > 0:
            raise SpecError("weights.values", "the weights of the clients that send requests in the span sum to 0")
    else:
        per_client = per_client.with_columns(pl.col("n_obs").alias("w"))
    per_client = per_client.filter((pl.col("w") > 0) & (pl.col("n_obs") > 0))
    if per_client.height == 0:
        raise SpecError("clients", f"the selected clients send no requests (with length data) in the span of {source.name}")
    return per_client.with_columns(
        (pl.col("n_obs") / pl.col("n_obs").sum()).alias("observed_share"),
        (pl.col("w") / pl.col("w").sum()).alias("weight_share"),
    ).with_columns((pl.col("weight_share") / pl.col("observed_share")).alias("adjust"))


def _window_targets(
    spec: WorkloadSpec, span: SpanCut, client_windows: pl.DataFrame, per_client: pl.DataFrame, warnings: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Target rates: of every client-window (kept where positive, with ``expected_requests``,
    in generation order) and of every arrival window of the span (``targets``)."""
    window_s, aligned, start, end = span.window_s, span.aligned_start_s, span.start_s, span.end_s
    first = int((aligned - span.data_start_s) // window_s)
    n_grid = int(math.ceil((end - aligned) / window_s - 1e-12))
    grid_start = aligned + window_s * np.arange(n_grid, dtype=np.float64)
    grid_t0 = np.maximum(grid_start, start) - start
    grid_t1 = np.minimum(grid_start + window_s, end) - start
    grid = pl.DataFrame(
        {
            "window_index": np.arange(first, first + n_grid, dtype=np.int64),
            "start_s": grid_start.astype(np.int64) if float(aligned).is_integer() else grid_start,
            "t0_s": grid_t0,
            "duration_s": grid_t1 - grid_t0,
        }
    ).filter(pl.col("duration_s") > 0)
    observed = client_windows.group_by("window_index").agg(pl.col("_base").sum().alias("_obs"))
    grid = grid.join(observed, on="window_index", how="left").with_columns(pl.col("_obs").fill_null(0.0))
    rate = spec.rate
    if isinstance(rate, (ObservedRate, BoundedRate)):
        if isinstance(rate, ObservedRate):
            factor = float(rate.factor)
        else:
            peak = float(grid["_obs"].max())
            factor = min(1.0, float(rate.peak_rps) / peak) if peak > 0 else 1.0
        grid = grid.with_columns((pl.col("_obs") * factor).alias("target_rps"))
        client_windows = client_windows.with_columns((pl.col("_base") * factor).alias("target_rps"))
    else:
        segments = rate_segments(rate, span.duration_s)
        window_t0 = grid["t0_s"].to_numpy()
        window_t1 = window_t0 + grid["duration_s"].to_numpy()
        mean_rate = (segments.cumulative(window_t1) - segments.cumulative(window_t0)) / (window_t1 - window_t0)
        grid = grid.with_columns(pl.Series("target_rps", mean_rate, dtype=pl.Float64))
        if spec.weights.mode == "explicit" and per_client.height > 1:
            client_windows, grid, gap = _balance_weights(client_windows, grid, per_client)
            if gap > 1e-3:
                warnings.append(
                    "the explicit weights can be met only approximately with this rate function and span "
                    f"(largest relative gap of a client's requests from its weight: {gap:.1%})"
                )
        client_windows = client_windows.join(
            grid.select("window_index", "target_rps", "_obs"), on="window_index", how="left"
        ).with_columns((pl.col("target_rps") * pl.col("_base") / pl.col("_obs")).alias("target_rps")).drop("_obs")
        idle = grid.filter((pl.col("_obs") <= 0) & (pl.col("target_rps") > 0))
        if idle.height:
            lost = float((idle["target_rps"] * idle["duration_s"]).sum())
            total = float((grid["target_rps"] * grid["duration_s"]).sum())
            warnings.append(
                f"{idle.height} window(s) of the span have no active composed client, so their target of "
                f"{lost:,.0f} requests ({lost / total:.1%} of the rate function's integral) cannot be placed"
            )
    composed = client_windows.group_by("window_index").agg(pl.col("target_rps").sum().alias("composed_rps"))
    targets = (
        grid.join(composed, on="window_index", how="left")
        .with_columns(pl.col("composed_rps").fill_null(0.0))
        .select("window_index", "start_s", "t0_s", "duration_s", "target_rps", "composed_rps")
        .sort("window_index")
    )
    client_windows = (
        client_windows.filter(pl.col("target_rps") > 0)
        .with_columns((pl.col("target_rps") * pl.col("span_duration_s")).alias("expected_requests"))
        .sort("window_index", "client_rank")
    )
    return client_windows, targets


def _length_sources(spec: WorkloadSpec, client_windows: pl.DataFrame) -> pl.DataFrame:
    """``length_source`` of every client-window: ``pooled`` (``lengths="pooled"``, or no
    data to borrow), ``client`` (its own tables) or ``borrowed`` (``missing_lengths="borrow"``
    and a composed client has its own tables in that length window)."""
    lenders = client_windows.filter(pl.col("has_lengths")).select("length_start_s").unique()
    lenders = lenders.with_columns(pl.lit(True).alias("_lender"))
    return (
        client_windows.join(lenders, on="length_start_s", how="left")
        .with_columns(
            pl.when(pl.lit(spec.lengths == "pooled"))
            .then(pl.lit("pooled"))
            .when(pl.col("has_lengths"))
            .then(pl.lit("client"))
            .when(pl.lit(spec.missing_lengths == "borrow") & pl.col("_lender").fill_null(False))
            .then(pl.lit("borrowed"))
            .otherwise(pl.lit("pooled"))
            .alias("length_source")
        )
        .drop("_lender")
        .sort("window_index", "client_rank")
    )


def _balance_weights(
    client_windows: pl.DataFrame, grid: pl.DataFrame, per_client: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """Client multipliers for explicit weights under a given aggregate rate function.

    Each window's target requests are split among its clients in proportion to
    ``multiplier x recorded rate``; the multipliers are fitted by iterative proportional
    scaling (Sinkhorn) so that every client's total over the span is its weight share of the
    placeable total. Returns the client-windows with the new ``_base``, ``grid`` with the
    new ``_obs``, and the largest relative gap left (0 when the weights are met).
    """
    k_of = {w: i for i, w in enumerate(grid["window_index"].to_list())}
    win = client_windows["window_index"].replace_strict(k_of, return_dtype=pl.Int64).to_numpy()
    ids = per_client["client_id"].to_list()
    c_of = {c: i for i, c in enumerate(ids)}
    cli = client_windows["client_id"].replace_strict(c_of, return_dtype=pl.Int64).to_numpy()
    rate = client_windows["rate_rps"].to_numpy()
    cap = (grid["target_rps"] * grid["duration_s"]).to_numpy()
    active = np.bincount(win, rate, minlength=len(cap)) > 0
    goal = per_client["weight_share"].to_numpy() * cap[active].sum()
    m = per_client["adjust"].to_numpy().astype(np.float64)
    gap = math.inf
    for _ in range(2000):
        base = m[cli] * rate
        obs = np.bincount(win, base, minlength=len(cap))
        got = np.bincount(cli, cap[win] * base / obs[win], minlength=len(goal))
        ratio = np.divide(goal, got, out=np.ones_like(goal), where=got > 0)
        gap = float(np.max(np.abs(ratio - 1.0)))
        if gap < 1e-9:
            break
        m = m * ratio
        m = m / m.max()
    base = m[cli] * rate
    client_windows = client_windows.with_columns(pl.Series("_base", base, dtype=pl.Float64))
    obs = client_windows.group_by("window_index").agg(pl.col("_base").sum().alias("_obs2"))
    grid = grid.join(obs, on="window_index", how="left").with_columns(pl.col("_obs2").fill_null(0.0).alias("_obs")).drop("_obs2")
    return client_windows, grid, gap


def _ids_text(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


# --------------------------------------------------------------------------------------------
# 4. Arrival model
# --------------------------------------------------------------------------------------------


def arrival_model(spec: WorkloadSpec, span: SpanCut, choice: ClientChoice, client_windows: pl.DataFrame) -> ArrivalModel:
    """The arrival model of every client-window: an
    :class:`~servegen_core.arrival_models.ArrivalModelTable` row each, and ``model_pattern``
    (``Gamma``, ``Weibull``, ``Exponential``, ``hyperexp``, ``mmpp`` or ``empirical``),
    ``model_shape`` (the renewal shape of unit-mean gaps; NaN for the others) and
    ``model_cv`` (the CV of the model's gaps, zero gaps of a batch included) added to the frame.

    ``arrivals="poisson"``: exponential everywhere. ``fitted``: by ``spec.sub_window``
    (:data:`~servegen_core.spec.SUB_WINDOW_MODELS`):

    - ``recorded``: the window's recorded family (:func:`_renewal_shapes`: with
      ``arrival_shape="recorded_cv"`` the shape solved from the recorded ``cv``, Gamma
      ``1/cv^2``, Weibull by :func:`~servegen_core.renewal.weibull_shape_for_sample_cv` at the
      source window's request count; with ``"fitted_shape"`` the recorded ``shape``; a window
      whose chosen quantity is missing falls back to the other, then to exponential);
    - ``gamma``, ``weibull``, ``hyperexp``, ``mmpp``: that model from the window's recorded
      CV (:func:`~servegen_core.arrival_models.rows_from_rate_cv`);
    - ``source``: for a source fitted from a trace (``ClientPool.arrival_models``), each
      client-window's fitted model (:func:`_fitted_rows`); for a trace fitted without them
      (quantized timestamps, see :mod:`servegen_core.sources.fit`) the recorded families;
      for pool data ``mmpp`` at :data:`~servegen_core.arrival_models.DEFAULT_MMPP_PERSISTENCE`,
      or the recorded families when ``arrival_shape="fitted_shape"`` asks for the recorded
      shapes.

    ``empirical``: the window's observed gaps (``ClientPool.gaps``) where it has at least two,
    else as ``fitted``. The times of ``piecewise`` and ``ramp`` rates are mapped through the
    rate function inside each window (``time_map``).
    """
    rows = client_windows.height
    option = _sub_window_option(spec, choice.pool)
    if spec.arrivals == "poisson":
        table = ArrivalModelTable.make(rows, "exponential")
    elif option == "recorded":
        family, shape = _renewal_shapes(spec, client_windows)
        table = ArrivalModelTable.make(rows, family.astype(np.int8), shape=shape)
    elif option == "fitted":
        table = _fitted_rows(choice.pool, client_windows)
    else:
        table = rows_from_rate_cv(option, client_windows["rate_rps"].to_numpy().astype(np.float64), _model_cv_target(client_windows))
    if spec.arrivals == "empirical":
        gap_table, _observed_cv = _empirical_windows(choice.pool, client_windows)
        has = gap_table >= 0
        if has.any():
            emp = ArrivalModelTable.make(
                rows, "empirical", table=gap_table, tables=_gap_tables(client_windows, choice.pool, gap_table)
            )
            keep = np.flatnonzero(~has)
            table = ArrivalModelTable.concat([table.take(keep), emp.take(np.flatnonzero(has))])
            order = np.empty(rows, dtype=np.int64)
            order[np.concatenate([keep, np.flatnonzero(has)])] = np.arange(rows)
            table = table.take(order)
    names = np.array([_MODEL_NAMES[k] for k in range(len(_MODEL_NAMES))], dtype=object)[table.kind]
    renewal = np.isin(table.kind, (KINDS["gamma"], KINDS["weibull"], KINDS["exponential"]))
    with_model = client_windows.with_columns(
        pl.Series("model_pattern", names.astype(str), dtype=pl.String),
        pl.Series("model_shape", np.where(renewal, table.shape, np.nan), dtype=pl.Float64),
        pl.Series("model_cv", _model_cv(table), dtype=pl.Float64),
    )
    time_map = rate_segments(spec.rate, span.duration_s) if isinstance(spec.rate, (PiecewiseRate, RampRate)) else None
    return ArrivalModel(client_windows=with_model, table=table, time_map=time_map)


#: ``model_pattern`` of each :data:`~servegen_core.arrival_models.KINDS` code.
_MODEL_NAMES: tuple[str, ...] = tuple(
    {"gamma": "Gamma", "weibull": "Weibull", "exponential": "Exponential"}.get(name, name)
    for name, _code in sorted(KINDS.items(), key=lambda kv: kv[1])
)


def _sub_window_option(spec: WorkloadSpec, pool: ClientPool) -> str:
    """``recorded``, a :data:`~servegen_core.arrival_models.POOL_OPTIONS` name, or ``fitted``
    (the trace fit kept on the pool) for ``spec.sub_window`` on ``pool``."""
    if spec.sub_window != "source":
        return spec.sub_window
    if pool.arrival_models is not None:
        return "fitted"
    # a trace fit without sub-window models (quantized timestamps): its censored family fits
    if pool.gaps is not None or spec.arrival_shape == "fitted_shape":
        return "recorded"
    return "mmpp"


def _model_cv_target(client_windows: pl.DataFrame) -> np.ndarray:
    """The CV a named sub-window model is given for each client-window: the recorded ``cv``
    (NaN as 0, which :func:`~servegen_core.arrival_models.rows_from_rate_cv` treats as 1)."""
    return np.nan_to_num(client_windows["cv"].to_numpy().astype(np.float64), nan=0.0)


def _fitted_rows(pool: ClientPool, client_windows: pl.DataFrame) -> ArrivalModelTable:
    """The trace-fitted model (``ClientPool.arrival_models``) of every client-window; a
    client-window without one (none recorded) gets the ``mmpp`` pool option from its CV."""
    models = pool.arrival_models
    joined = (
        client_windows.select("client_id", pl.col("start_s").cast(pl.Int64)).with_row_index("_r")
        .join(models, on=["client_id", "start_s"], how="left")
        .sort("_r")
    )
    has = joined["model"].is_not_null().to_numpy()
    kind = np.array([KINDS.get(m, 0) for m in joined["model"].fill_null("gamma").to_list()], dtype=np.int8)
    columns = {
        f.name: joined[f.name].to_numpy().astype(np.int64 if f.name in _TABLE_ID_COLUMNS else np.float64)
        for f in dataclasses.fields(ArrivalModelTable)
        if f.name not in ("kind", "tables") and f.name in joined.columns  # a fit keeps no CV target
    }
    fitted = ArrivalModelTable.make(client_windows.height, kind, tables=_pool_arrival_tables(pool), **columns)
    if has.all():
        return fitted
    fallback = rows_from_rate_cv("mmpp", client_windows["rate_rps"].to_numpy().astype(np.float64), _model_cv_target(client_windows))
    mine, other = np.flatnonzero(has), np.flatnonzero(~has)
    merged = ArrivalModelTable.concat([fitted.take(mine), fallback.take(other)])
    order = np.empty(client_windows.height, dtype=np.int64)
    order[np.concatenate([mine, other])] = np.arange(client_windows.height)
    return merged.take(order)


_TABLE_ID_COLUMNS = ("table", "state_table0", "state_table1")


def _pool_arrival_tables(pool: ClientPool) -> dict[str, np.ndarray] | None:
    """``ClientPool.arrival_tables`` in the format of
    :func:`servegen_core.renewal.empirical_tables` (already unit-mean), or None."""
    frame = pool.arrival_tables
    if frame is None or frame.height == 0:
        return None
    table = frame["table"].to_numpy()
    gaps = frame["gap"].to_numpy().astype(np.float64)
    sizes = np.bincount(table, minlength=int(table.max()) + 1).astype(np.int64)
    return {
        "gaps": gaps,
        "offsets": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        "sizes": sizes,
        "cum": np.cumsum(gaps),
    }


def _model_cv(table: ArrivalModelTable) -> np.ndarray:
    """The CV of the gaps of every row's model (a batch's zero gaps included): renewal rows by
    :func:`~servegen_core.renewal.family_cv`, two-state rows from the mixture of their states'
    Gamma gaps at the chain's stationary shares, empirical rows from their gap tables."""
    cv = np.ones(len(table))
    renewal = table.kind <= KINDS["exponential"]
    cv[renewal] = family_cv(table.kind[renewal], table.shape[renewal])
    two = (table.kind == KINDS["hyperexp"]) | (table.kind == KINDS["mmpp"])
    if two.any():
        leave0, leave1 = 1.0 - table.stay0[two], 1.0 - table.stay1[two]
        pi0 = leave1 / np.maximum(leave0 + leave1, 1e-300)
        m0, m1 = table.mean0[two], table.mean1[two]
        k0, k1 = np.maximum(table.shape0[two], 1e-9), np.maximum(table.shape1[two], 1e-9)
        mean = pi0 * m0 + (1.0 - pi0) * m1
        second = pi0 * m0 * m0 * (1.0 + 1.0 / k0) + (1.0 - pi0) * m1 * m1 * (1.0 + 1.0 / k1)
        cv[two] = np.sqrt(np.maximum(second / np.maximum(mean * mean, 1e-300) - 1.0, 0.0))
    emp = (table.kind == KINDS["empirical"]) & (table.table >= 0)
    if emp.any() and table.tables is not None:
        tabs = table.tables
        size = np.maximum(tabs["sizes"], 1)
        owner = np.repeat(np.arange(len(tabs["sizes"])), tabs["sizes"])
        second = np.bincount(owner, weights=tabs["gaps"] ** 2, minlength=len(size)) / size
        cv[emp] = np.sqrt(np.maximum(second[table.table[emp]] - 1.0, 0.0))
    b = np.clip(table.batch, 0.0, 0.999)
    return np.sqrt(np.maximum((cv * cv + 1.0) / (1.0 - b) - 1.0, 0.0))


def _renewal_shapes(spec: WorkloadSpec, client_windows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The renewal family code and shape of unit-mean gaps of every client-window (see
    :func:`arrival_model`; exponential for ``arrivals="poisson"``)."""
    cw = client_windows
    pattern = cw["pattern"].to_numpy()
    cv = np.nan_to_num(cw["cv"].to_numpy().astype(np.float64), nan=0.0)
    fitted = np.nan_to_num(cw["shape"].to_numpy().astype(np.float64), nan=0.0)
    is_weibull = pattern == "Weibull"
    family = np.where(is_weibull, WEIBULL, GAMMA).astype(np.int8)
    # the recorded cv is the CV of the source window's gaps: a Weibull shape is solved from it at
    # the source's sample size (servegen_core.renewal.weibull_shape_for_sample_cv)
    n_source = (cw["rate_rps"] * cw["duration_s"]).to_numpy().astype(np.float64)
    safe_cv = np.where(cv > 0, cv, 1.0)
    from_cv = np.where(is_weibull, weibull_shape_for_sample_cv(safe_cv, n_source), gamma_shape_for_cv(safe_cv))
    if spec.arrival_shape == "recorded_cv":
        shape = np.where(cv > 0, from_cv, fitted)
    else:
        shape = np.where(fitted > 0, fitted, np.where(cv > 0, from_cv, 0.0))
    exponential = (
        ~(shape > 0) | (spec.arrivals == "poisson") | ((pattern == "Exponential") & (spec.arrival_shape == "fitted_shape"))
    )
    family = np.where(exponential, EXPONENTIAL, family).astype(np.int8)
    shape = np.where(exponential, 1.0, shape)
    lowest = np.where(family == WEIBULL, MIN_WEIBULL_SHAPE, MIN_GAMMA_SHAPE)
    return family, np.clip(shape, lowest, MAX_SHAPE)


def _empirical_windows(span_pool: ClientPool, client_windows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For ``arrivals="empirical"``: the empirical gap table of every client-window whose
    observed gaps (``ClientPool.gaps``) number at least two with a positive mean (-1
    otherwise, tables numbered in row order) and the CV of those gaps (0 where none)."""
    none = np.full(client_windows.height, -1, dtype=np.int64)
    gaps = getattr(span_pool, "gaps", None)
    if gaps is None or not gaps.height:
        return none, np.zeros(client_windows.height)
    per = (
        gaps.group_by("client_id", "start_s")
        .agg(pl.len().alias("_ng"), pl.col("gap_s").mean().alias("_mg"), pl.col("gap_s").std().alias("_sg"))
        .filter((pl.col("_ng") >= 2) & (pl.col("_mg") > 0))
    )
    joined = (
        client_windows.select("client_id", pl.col("start_s").cast(pl.Float64)).with_row_index("_r")
        .join(per.with_columns(pl.col("start_s").cast(pl.Float64)), on=["client_id", "start_s"], how="left")
        .sort("_r")
    )
    has = joined["_ng"].is_not_null().to_numpy()
    gap_table = np.where(has, np.cumsum(has) - 1, -1).astype(np.int64)
    return gap_table, (joined["_sg"] / joined["_mg"]).fill_null(0.0).to_numpy()


def _gap_tables(client_windows: pl.DataFrame, span_pool: ClientPool, gap_table: np.ndarray) -> dict[str, np.ndarray] | None:
    """The empirical gap tables of the client-windows with ``gap_table >= 0``, in table order."""
    gaps = getattr(span_pool, "gaps", None)
    used = (
        client_windows.select("client_id", pl.col("start_s").cast(pl.Float64))
        .with_columns(pl.Series("_gap_table", gap_table, dtype=pl.Int64))
        .filter(pl.col("_gap_table") >= 0)
    )
    if gaps is None or used.height == 0:
        return None
    indexed = gaps.with_columns(pl.col("start_s").cast(pl.Float64)).with_row_index("_i")
    joined = indexed.join(used, on=["client_id", "start_s"], how="inner").sort("_gap_table", "_i")
    tab = joined["_gap_table"].to_numpy()
    vals = joined["gap_s"].to_numpy().astype(np.float64)
    bounds = np.searchsorted(tab, np.arange(used.height + 1))
    return empirical_tables([vals[bounds[i] : bounds[i + 1]] for i in range(used.height)])


# --------------------------------------------------------------------------------------------
# 5. Length tables
# --------------------------------------------------------------------------------------------


def split_fields(fields: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(request_fields, item_modalities)``: the length fields drawn once per request and the
    modalities whose ``<m>_tokens`` are drawn once per item (those with ``<m>_count`` too)."""
    item_modalities = tuple(m for m in ITEM_MODALITIES if f"{m}_count" in fields and f"{m}_tokens" in fields)
    item_fields = tuple(f"{m}_tokens" for m in item_modalities)
    return tuple(f for f in fields if f not in item_fields), item_modalities


def length_tables(
    span: SpanCut, choice: ClientChoice, client_windows: pl.DataFrame, fields: tuple[str, ...]
) -> tuple[LengthTables, pl.DataFrame]:
    """The length tables of the client-windows for ``fields`` (request fields, then item
    fields) and the pooled distribution (:func:`servegen_core.generate.tables.build_length_tables`)."""
    return build_length_tables(span.source, choice.pool, client_windows, fields)


# --------------------------------------------------------------------------------------------
# 6. Generation units
# --------------------------------------------------------------------------------------------


def cut_units(arrivals: ArrivalModel, tables: LengthTables, fields: tuple[str, ...], client_ids: tuple[str, ...]) -> GenerationUnits:
    """The generation units of the client-windows of ``arrivals`` (generation order).

    A window with ``E`` expected requests becomes ``P = ceil(E / UNIT_REQUESTS)`` units of
    equal duration; every client-window row is repeated per unit with its share of the rate
    integral over the unit (of the time map for ``piecewise``/``ramp``, else of time). Rows
    stay in unit order, then client order.
    """
    cw = arrivals.client_windows
    row_expected = cw["expected_requests"].to_numpy().astype(np.float64)
    row_t0 = cw["t0_s"].to_numpy().astype(np.float64)
    row_d = cw["span_duration_s"].to_numpy().astype(np.float64)
    rows = {
        "row_client": cw["client_rank"].to_numpy().astype(np.int64),
        "row_model": np.arange(cw.height, dtype=np.int64),
        "row_tables": table_ids(cw, tables.keys, fields),
    }
    # window-level arrays (only windows that hold at least one client-window)
    win = cw.group_by("window_index", maintain_order=True).agg(
        pl.col("t0_s").first(), pl.col("span_duration_s").first(), pl.len().alias("rows")
    )
    n_rows = win["rows"].to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
    expected = np.add.reduceat(row_expected, offsets[:-1]) if len(n_rows) else np.empty(0)
    pieces = np.maximum(1, np.ceil(expected / UNIT_REQUESTS)).astype(np.int64)
    w_t0 = win["t0_s"].to_numpy().astype(np.float64)
    w_d = win["span_duration_s"].to_numpy().astype(np.float64)
    if (pieces == 1).all():
        return GenerationUnits(
            window_index=win["window_index"].to_numpy(),
            piece=np.zeros(len(n_rows), dtype=np.int64),
            t0_s=w_t0,
            duration_s=w_d,
            expected=expected,
            row_offsets=offsets,
            client_ids=client_ids,
            row_t0_s=row_t0,
            row_duration_s=row_d,
            row_expected=row_expected,
            **rows,
        )
    # unit u = (window k, piece p); rows of unit u = the window's rows, in order
    unit_win = np.repeat(np.arange(len(n_rows)), pieces)
    unit_piece = np.arange(int(pieces.sum())) - np.repeat(np.concatenate([[0], np.cumsum(pieces)[:-1]]), pieces)
    unit_pieces = pieces[unit_win]
    u_t0 = w_t0[unit_win] + w_d[unit_win] * unit_piece / unit_pieces
    u_t1 = np.where(
        unit_piece + 1 == unit_pieces,
        w_t0[unit_win] + w_d[unit_win],
        w_t0[unit_win] + w_d[unit_win] * (unit_piece + 1) / unit_pieces,
    )
    u_d = u_t1 - u_t0
    time_map = arrivals.time_map
    if time_map is not None:
        frac = (time_map.cumulative(u_t1) - time_map.cumulative(u_t0)) / np.maximum(
            time_map.cumulative(w_t0 + w_d) - time_map.cumulative(w_t0), 1e-300
        )[unit_win]
    else:
        frac = u_d / w_d[unit_win]
    unit_rows = n_rows[unit_win]
    row_idx = np.repeat(offsets[:-1][unit_win], unit_rows) + (
        np.arange(int(unit_rows.sum())) - np.repeat(np.concatenate([[0], np.cumsum(unit_rows)[:-1]]), unit_rows)
    )
    unit_of_row = np.repeat(np.arange(len(unit_win)), unit_rows)
    return GenerationUnits(
        window_index=win["window_index"].to_numpy()[unit_win],
        piece=unit_piece,
        t0_s=u_t0,
        duration_s=u_d,
        expected=expected[unit_win] * frac,
        row_offsets=np.concatenate([[0], np.cumsum(unit_rows)]).astype(np.int64),
        client_ids=client_ids,
        row_t0_s=u_t0[unit_of_row],
        row_duration_s=u_d[unit_of_row],
        row_expected=row_expected[row_idx] * frac[unit_of_row],
        **{key: value[row_idx] for key, value in rows.items()},
    )
