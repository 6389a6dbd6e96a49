"""Fit a raw request trace to a ClientPool: the "raw request trace -> fit -> ClientPool" arrow.

:func:`pool_from_trace` summarizes a RequestTrace the way the ServeGen data summarize the
production traces, so that a raw trace can be composed, scaled and validated like ServeGen
data:

arrival windows (``window_s``, default 600 s), per client (or one client ``"all"``)
    ``rate_rps`` = requests in the window / ``window_s``; ``cv`` = standard deviation /
    mean of the inter-arrival times between consecutive requests inside the window; the
    pattern is ``"Gamma"`` fitted by moments, as in the ServeGen data (``shape = 1/cv**2``,
    ``scale = mean_iat / shape``, so ``shape * scale`` is the mean inter-arrival time). A
    window with fewer than 3 requests, or whose requests all share one timestamp, has no
    usable inter-arrival statistics: it gets the Poisson pattern (Gamma, shape 1, cv 1,
    scale ``1 / rate``). A window without requests has rate 0 and pattern ``""``.
length windows (``length_window_s``, default 6 h), per client
    the empirical PDF (value -> share of the window's requests) of ``input_tokens``,
    ``output_tokens`` and, where the trace has it, ``reason_ratio``. A length window without
    requests is inactive and has no rows.

The windows tile the trace from time 0 (its first request) to the end of the window holding
its last request; every client gets every window. Everything is computed with Polars
group-bys, with no loop per request.
"""

from __future__ import annotations

import math

import polars as pl

from servegen_core.pool import DISTRIBUTION_SCHEMA, GAP_SCHEMA, LENGTH_WINDOW_SCHEMA, WINDOW_SCHEMA, ClientPool, client_sort_key
from servegen_core.schema import validate_trace

__all__ = ["FITTED_FIELDS", "MIN_FIT_REQUESTS", "pool_from_trace"]

#: Length fields taken from a trace when present, in this order.
FITTED_FIELDS: tuple[str, ...] = ("input_tokens", "output_tokens", "reason_ratio")
#: Fewer requests than this in a window: Poisson pattern instead of a moment fit.
MIN_FIT_REQUESTS = 3


def pool_from_trace(
    trace: pl.DataFrame,
    *,
    window_s: int = 600,
    length_window_s: int = 21600,
    name: str = "trace",
    per_client: bool = True,
    source: str = "",
) -> ClientPool:
    """Fit ``trace`` (a RequestTrace) to a :class:`~servegen_core.pool.ClientPool`.

    Parameters
    ----------
    trace:
        A RequestTrace (validated here; timestamps are seconds from the trace start).
    window_s, length_window_s:
        Arrival and length window lengths in seconds; ``length_window_s`` must be a
        multiple of ``window_s``.
    name:
        The pool's name (shown by pages and reports), e.g. ``"trace/azure-conv"``.
    per_client:
        One client per ``client_id`` value (default), or a single client ``"all"``.
    source:
        Where the trace came from (a path), kept as :attr:`ClientPool.source`.
    """
    if not (isinstance(window_s, int) and window_s > 0):
        msg = f"window_s must be a positive whole number of seconds, got {window_s!r}"
        raise ValueError(msg)
    if not (isinstance(length_window_s, int) and length_window_s > 0 and length_window_s % window_s == 0):
        msg = f"length_window_s must be a positive multiple of window_s ({window_s}), got {length_window_s!r}"
        raise ValueError(msg)
    df = validate_trace(trace, source=source or name)
    if df.height == 0:
        msg = "cannot fit an empty trace"
        raise ValueError(msg)
    if not per_client:
        df = df.with_columns(pl.lit("all").alias("client_id"))
    ids = sorted(df["client_id"].unique().to_list(), key=client_sort_key)
    n_windows = int(math.floor(float(df["timestamp_s"].max()) / window_s)) + 1
    n_length = int(math.ceil(n_windows * window_s / length_window_s))

    df = df.with_columns(
        (pl.col("timestamp_s") // window_s).cast(pl.Int64).alias("w"),
        (pl.col("timestamp_s") // length_window_s).cast(pl.Int64).alias("lw"),
    )
    iat = pl.col("timestamp_s").diff()
    stats = (
        df.sort("client_id", "w", "timestamp_s", maintain_order=True)
        .group_by("client_id", "w")
        .agg(
            pl.len().alias("n"),
            iat.mean().alias("mean_iat"),
            iat.std(ddof=0).alias("std_iat"),
        )
    )
    grid = pl.DataFrame({"client_id": ids}, schema={"client_id": pl.String()}).join(
        pl.DataFrame({"w": list(range(n_windows))}, schema={"w": pl.Int64()}), how="cross"
    )
    fit_ok = (pl.col("n") >= MIN_FIT_REQUESTS) & (pl.col("mean_iat") > 0)
    cv = pl.col("std_iat") / pl.col("mean_iat")
    shape = 1.0 / (cv * cv)
    rate = pl.col("n") / window_s
    windows = (
        grid.join(stats, on=["client_id", "w"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .with_columns(
            (pl.col("w") * window_s).alias("start_s"),
            pl.lit(window_s, dtype=pl.Int64).alias("duration_s"),
            rate.cast(pl.Float64).alias("rate_rps"),
            pl.when(pl.col("n") == 0).then(0.0).when(fit_ok & (cv > 0)).then(cv).otherwise(1.0).alias("cv"),
            pl.when(pl.col("n") == 0).then(pl.lit("")).otherwise(pl.lit("Gamma")).alias("pattern"),
            pl.when(pl.col("n") == 0).then(0.0).when(fit_ok & (cv > 0)).then(shape).otherwise(1.0).alias("shape"),
            pl.when(pl.col("n") == 0)
            .then(0.0)
            .when(fit_ok & (cv > 0))
            .then(pl.col("mean_iat") / shape)
            .when(fit_ok)
            .then(pl.col("mean_iat"))
            .otherwise(1.0 / rate)
            .alias("scale"),
        )
        .select(list(WINDOW_SCHEMA))
        .cast(WINDOW_SCHEMA)
    )

    fields = [f for f in FITTED_FIELDS if f in df.columns and df[f].null_count() < df.height]
    parts = []
    for f in fields:
        parts.append(
            df.filter(pl.col(f).is_not_null())
            .group_by("client_id", "lw", pl.col(f).cast(pl.Float64).alias("value"))
            .agg(pl.len().alias("count"))
            .with_columns(
                (pl.col("lw") * length_window_s).alias("start_s"),
                pl.lit(f).alias("field"),
                (pl.col("count") / pl.col("count").sum().over("client_id", "lw")).alias("prob"),
            )
        )
    order = pl.DataFrame({"client_id": ids, "_rank": list(range(len(ids)))}, schema={"client_id": pl.String(), "_rank": pl.Int64()})
    field_rank = pl.DataFrame({"field": fields, "_frank": list(range(len(fields)))}, schema={"field": pl.String(), "_frank": pl.Int64()})
    distributions = (
        pl.concat(parts)
        .join(order, on="client_id")
        .join(field_rank, on="field")
        .sort("_rank", "start_s", "_frank", "value")
        .select(list(DISTRIBUTION_SCHEMA))
        .cast(DISTRIBUTION_SCHEMA)
    )
    active = df.select("client_id", (pl.col("lw") * length_window_s).alias("start_s")).unique()
    length_windows = (
        pl.DataFrame({"client_id": ids}, schema={"client_id": pl.String()})
        .join(pl.DataFrame({"start_s": [i * length_window_s for i in range(n_length)]}, schema={"start_s": pl.Int64()}), how="cross")
        .join(active.with_columns(pl.lit(True).alias("active")), on=["client_id", "start_s"], how="left")
        .with_columns(pl.lit(length_window_s, dtype=pl.Int64).alias("duration_s"), pl.col("active").fill_null(False))
        .select(list(LENGTH_WINDOW_SCHEMA))
        .cast(LENGTH_WINDOW_SCHEMA)
    )
    windows = windows.join(order, on="client_id").sort("_rank", "start_s").drop("_rank")
    gaps = (
        df.sort("client_id", "w", "timestamp_s", maintain_order=True)
        .with_columns(pl.col("timestamp_s").diff().over("client_id", "w").alias("gap_s"))
        .filter(pl.col("gap_s").is_not_null())
        .join(order, on="client_id")
        .sort("_rank", "w", maintain_order=True)
        .select("client_id", (pl.col("w") * window_s).alias("start_s"), "gap_s")
        .cast(GAP_SCHEMA)
    )
    return ClientPool(
        name=name,
        source=source,
        windows=windows,
        distributions=distributions,
        length_windows=length_windows,
        window_s=window_s,
        length_window_s=length_window_s,
        gaps=gaps,
    )
