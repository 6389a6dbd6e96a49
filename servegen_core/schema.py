"""The RequestTrace schema: one row per request, the same for real traces and generated workloads.

A RequestTrace is a plain :class:`polars.DataFrame` with the columns below. Units live in
the names. Only ``REQUIRED`` columns must exist; optional columns appear when the source
knows them. :func:`validate_trace` checks a frame and returns it with canonical dtypes
and column order.

The module also holds what a raw trace's columns may become: the accepted time units
(:data:`TIME_UNITS`, :data:`DATETIME`) and the targets of a column mapping with their kinds
(:data:`TARGETS`), read by the trace loader and by the frozen spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import polars as pl

from servegen_core.errors import DataFormatError

#: Columns every RequestTrace has.
REQUIRED: dict[str, pl.DataType] = {
    "timestamp_s": pl.Float64(),
    "client_id": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
}

#: Columns a RequestTrace may have, where the source knows them.
OPTIONAL: dict[str, pl.DataType] = {
    "text_tokens": pl.Int64(),
    "image_tokens": pl.Int64(),
    "image_count": pl.Int64(),
    "audio_tokens": pl.Int64(),
    "audio_count": pl.Int64(),
    "video_tokens": pl.Int64(),
    "video_count": pl.Int64(),
    "reasoning_tokens": pl.Int64(),
    "answer_tokens": pl.Int64(),
    "reason_ratio": pl.Float64(),
    "session_id": pl.String(),
    "turn_index": pl.Int64(),
    "segment_ids": pl.List(pl.Int64()),
    "segment_tokens": pl.List(pl.Int64()),
    "model": pl.String(),
    "failed": pl.Boolean(),
    "hash_ids": pl.List(pl.Int64()),
    "image_ids": pl.List(pl.Int64()),
    "slo_class": pl.String(),
    "slo_priority": pl.Int64(),
}

SCHEMA: dict[str, pl.DataType] = {**REQUIRED, **OPTIONAL}
#: ``image_ids``: the ids of a request's images (ServeGen's offline ``img_ids``: one id per image,
#: the same id for the same image), for image reuse (:func:`servegen_core.characterize.prefix.image_reuse`).

#: Columns of a workload composed with a prefix model (:mod:`servegen_core.generate.sessions`):
#: ``session_id`` (null where the client has no sessions), ``turn_index`` (0 for a session's
#: first turn), and the request's prompt as segments: ``segment_ids[i]`` names a piece of
#: content of which the request holds the first ``segment_tokens[i]`` tokens, in prompt
#: order (``sum(segment_tokens) == input_tokens``). Two requests share exactly the tokens of
#: their common leading segments (a segment with the same id but different lengths is shared
#: up to the shorter length, and nothing after it). ``hash_ids`` at any block size are derived
#: from them by :func:`servegen_core.generate.sessions.hash_ids`.
PREFIX_COLUMNS: tuple[str, ...] = ("session_id", "turn_index", "segment_ids", "segment_tokens")

#: Token-count columns: integers, never negative, never null where present.
TOKEN_COLUMNS: tuple[str, ...] = tuple(
    c for c, t in SCHEMA.items() if t == pl.Int64() and c.endswith(("_tokens", "_count"))
)


# Loading raw traces: time units and the targets of a column mapping

#: Accepted ``time_unit`` values: numeric units (value divided by the number of units per second) ...
TIME_UNITS: Mapping[str, float] = MappingProxyType({"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9})
#: ... and ``"datetime"`` for wall-clock text or a native date-time column.
DATETIME = "datetime"

#: Kinds of a column-mapping target (the values of :data:`TARGETS`).
KIND_INT = "int"
KIND_FLOAT = "float"
KIND_STR = "str"
KIND_BOOL = "bool"
KIND_LIST = "list"
KIND_TIME = "time"

#: Every target a column mapping may name, and its kind. ``timestamp`` is the raw time
#: column (converted to ``timestamp_s``); ``delay`` (AIPerf's mooncake ``delay``: a later
#: conversation turn's time after the previous turn, in the time column's unit) places a
#: record without a timestamp and is not kept; ``log_type`` (BurstGPT's ``Log Type``) is
#: kept as an extra string column; the rest are RequestTrace columns.
TARGETS: Mapping[str, str] = MappingProxyType(
    {
        "timestamp": KIND_TIME,
        "client_id": KIND_STR,
        "input_tokens": KIND_INT,
        "output_tokens": KIND_INT,
        **{
            name: (
                KIND_INT
                if dtype == pl.Int64()
                else KIND_FLOAT
                if dtype == pl.Float64()
                else KIND_BOOL
                if dtype == pl.Boolean()
                else KIND_LIST
                if isinstance(dtype, pl.List)
                else KIND_STR
            )
            for name, dtype in OPTIONAL.items()
        },
        "log_type": KIND_STR,
        "delay": KIND_TIME,
    }
)


def empty_trace(columns: tuple[str, ...] = ()) -> pl.DataFrame:
    """An empty RequestTrace with the required columns plus ``columns``."""
    names = list(REQUIRED) + [c for c in columns if c not in REQUIRED]
    return pl.DataFrame(schema={c: SCHEMA[c] for c in names})


def validate_trace(
    df: pl.DataFrame,
    *,
    source: str | Path | None = None,
    sort: bool = True,
) -> pl.DataFrame:
    """Check ``df`` against the RequestTrace schema and return it in canonical form.

    - every REQUIRED column exists; unknown columns are kept after the known ones;
    - known columns are cast strictly to their dtype (a failed cast is an error);
    - timestamps are finite and non-negative; token counts are non-null and non-negative;
    - rows are sorted by ``timestamp_s`` (stable) when ``sort`` is true, otherwise an
      unsorted frame is an error.

    Errors are :class:`DataFormatError` naming ``source`` and the first offending row (1-based).
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        msg = f"missing required column(s) {missing}; found {df.columns}"
        raise DataFormatError(source, None, msg)
    exprs = []
    for name in df.columns:
        if name in SCHEMA:
            try:
                df.select(pl.col(name).cast(SCHEMA[name], strict=True))
            except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
                msg = f"cannot read as {SCHEMA[name]}: {str(exc).splitlines()[0]}"
                raise DataFormatError(source, f"column {name}", msg) from None
            exprs.append(pl.col(name).cast(SCHEMA[name], strict=True))
    known = [c for c in SCHEMA if c in df.columns]
    extra = [c for c in df.columns if c not in SCHEMA]
    out = df.with_columns(exprs).select(known + extra)

    ts = out["timestamp_s"]
    bad = out.with_row_index("row").filter(
        pl.col("timestamp_s").is_null() | ~pl.col("timestamp_s").is_finite() | (pl.col("timestamp_s") < 0)
    )
    if bad.height:
        row = bad["row"][0]
        msg = f"timestamp_s must be finite and >= 0, got {bad['timestamp_s'][0]}"
        raise DataFormatError(source, f"row {row + 1}", msg)
    if out["client_id"].null_count():
        row = out.with_row_index("row").filter(pl.col("client_id").is_null())["row"][0]
        raise DataFormatError(source, f"row {row + 1}", "client_id is null")
    for col in [c for c in TOKEN_COLUMNS if c in out.columns]:
        bad = out.with_row_index("row").filter(pl.col(col).is_null() | (pl.col(col) < 0))
        if bad.height:
            msg = f"{col} must be a non-negative integer, got {bad[col][0]}"
            raise DataFormatError(source, f"row {bad['row'][0] + 1}", msg)
    if "reason_ratio" in out.columns:
        bad = out.with_row_index("row").filter(
            pl.col("reason_ratio").is_nan() | (pl.col("reason_ratio") < 0) | (pl.col("reason_ratio") > 1)
        )
        if bad.height:
            msg = f"reason_ratio must be in [0, 1], got {bad['reason_ratio'][0]}"
            raise DataFormatError(source, f"row {bad['row'][0] + 1}", msg)
    if out.height > 1 and not ts.is_sorted():
        if not sort:
            row = int((out["timestamp_s"].diff() < 0).arg_true()[0])
            msg = "timestamps are not sorted (pass sort=True to sort them)"
            raise DataFormatError(source, f"row {row + 1}", msg)
        out = out.sort("timestamp_s", maintain_order=True)
    return out


def has_columns(df: pl.DataFrame, *names: str) -> bool:
    """True when every column in ``names`` exists and has at least one non-null value."""
    return all(n in df.columns and df[n].null_count() < df.height for n in names) and df.height > 0
