"""The native and benchmark replay formats a RequestTrace is exported in.

One small, pure function per format turns a chunk of a RequestTrace into the
output frame (``<format>_frame``, listed in :data:`FRAMES`); :func:`render_frame`
turns that frame into bytes (CSV or JSON Lines; Parquet frames are written by
:mod:`servegen_core.export.writer`, which also streams chunks and makes every write
atomic). :data:`FORMATS` describes each format; :func:`replay_commands` gives the commands
that replay it, one per consumer (every row, the block size named, ``<MODEL>``/``<URL>``/
``<TOKENIZER>`` left for the user; :func:`usage_hint` is them as shell text),
:func:`dropped_columns` the columns it leaves out and
:func:`format_block_size` / :func:`export_block_size` its tokens per ``hash_ids`` block.
The ``blis`` format is two files: the data CSV at the path and its YAML header
(:func:`blis_header_path`, written by :mod:`servegen_core.export.writer`).

Timestamps in a RequestTrace are seconds from the workload start; chunks carry
absolute timestamps, so every format is written on the same time line whether
the trace arrives whole or in chunks. The same frame gives the same bytes, and
a trace written in chunks gives the same bytes as written at once (the
partitioned Parquet folder aside, which is one file per chunk).

Time precision per format: native Parquet/CSV/JSONL keep the float64 value
exactly (CSV/JSONL print the shortest decimal that round-trips); ``mooncake``
writes integer milliseconds (rounded half to even); ``blis`` integer microseconds; ``azure``
a UTC wall clock with six decimals from :data:`AZURE_EPOCH`; every other format writes
seconds with exactly six decimals (microseconds), e.g. ``12.345679``.

``hash_ids`` (block ids for prefix-cache simulation), at the block size of the
target (:func:`format_block_size`: 512 tokens for ``mooncake`` and ``guidellm``,
16 for ``vllm``; ``block_size=`` overrides it and :func:`usage_hint` prints the
matching flag): a trace that already has a ``hash_ids`` column (e.g. read from a
Mooncake file) keeps it. A workload composed with a prefix model (shared system
prompts, sessions: ``segment_ids``/``segment_tokens``) gets ids derived from its
segments (:func:`segment_hash_ids`): requests sharing their first X tokens share
exactly their first ``floor(X / block_size)`` ids, at any block size. Other rows
get ``ceil(input_tokens / block_size)`` fresh ids, increasing, never used before
in the file; so requests of a workload without a prefix model share no blocks
(the ServeGen data carry no prefix information, and none is invented). Numbering
continues across chunks, above every id already seen.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from servegen_core.blocks import TAG_DELTA, block_keys, hash_parts, id63, lists_by_owner
from servegen_core.errors import DataFormatError, ExportError
from servegen_core.limits import MAX_BLOCK_SIZE
from servegen_core.schema import SCHEMA

__all__ = [
    "AZURE_EPOCH",
    "BLIS_COLUMNS",
    "ChunkContext",
    "PLACEHOLDERS",
    "ReplayCommand",
    "azure_frame",
    "blis_frame",
    "blis_header_path",
    "blis_header_text",
    "replay_commands",
    "DEFAULT_BLOCK_SIZE",
    "FORMATS",
    "FRAMES",
    "FormatInfo",
    "HASH_FORMATS",
    "SESSION_FORMATS",
    "SESSION_TIMINGS",
    "VIDUR_DATE",
    "VIDUR_MAX_TOKENS",
    "VLLM_BLOCK_SIZE",
    "ZERO_OUTPUT_NOTES",
    "assign_hash_ids",
    "burstgpt_frame",
    "dropped_columns",
    "export_block_size",
    "format_block_size",
    "get_format",
    "guidellm_frame",
    "mooncake_frame",
    "native_csv_frame",
    "native_frame",
    "render_frame",
    "segment_hash_ids",
    "spec_sidecar_path",
    "splitwise_frame",
    "usage_hint",
    "vidur_frame",
    "vllm_frame",
]

#: Tokens per ``hash_ids`` block (Mooncake's block size; AIPerf's default for ``mooncake_trace``,
#: GuideLLM's ``hash_id_block_size`` default for ``kind=mooncake``).
DEFAULT_BLOCK_SIZE = 512
#: vLLM ``timed_trace``'s ``--timed-trace-chunk-hash-size`` default (tokens per hash id).
VLLM_BLOCK_SIZE = 16
#: The ``Date`` of every row of a ``vidur`` export: Vidur's default ``trace_request_generator_config_date``
#: (its trace replay keeps only the rows of that date; the printed command names it too).
VIDUR_DATE = "2023-08-21"
#: Vidur's trace request generator's default ``max_tokens`` (prefill + decode per request).
VIDUR_MAX_TOKENS = 4096

#: Decimals written for seconds in the benchmark formats (microseconds).
SECONDS_DECIMALS = 6

@dataclass(frozen=True)
class FormatInfo:
    """What one export format is and where its definition comes from.

    ``columns`` are the RequestTrace columns the format carries (for the native
    formats: every schema column, plus unknown extra columns when
    ``carries_extra``). ``fields`` are the output field names in order (empty for
    the native formats, whose fields are the trace's columns).
    """

    name: str
    extension: str
    container: str  # "parquet" | "csv" | "jsonl"
    description: str
    columns: tuple[str, ...]
    fields: tuple[str, ...]
    time_field: str
    time_unit: str
    citation: str
    usage: str = ""
    carries_extra: bool = False
    block_size: int | None = None


@dataclass(frozen=True)
class ChunkContext:
    """State carried from one chunk to the next: rows and hash-block ids written so far, and
    the dense id of every prompt block (a key derived from the request's segments) met so far."""

    block_size: int = DEFAULT_BLOCK_SIZE
    row_offset: int = 0
    next_hash_id: int = 0
    block_table: pl.DataFrame | None = None
    sessions: pl.DataFrame | None = None
    #: ``"open"``: later turns of an AIPerf conversation carry their ``timestamp``; ``"closed"``:
    #: their ``delay`` after the previous response (:data:`SESSION_TIMINGS`).
    session_timing: str = "open"


#: How a ``mooncake`` export times a conversation's later turns (:class:`ChunkContext`).
SESSION_TIMINGS = ("open", "closed")


# --------------------------------------------------------------------------- #
# Pure per-format transforms: chunk -> output frame
# --------------------------------------------------------------------------- #


#: Most hash ids :func:`assign_hash_ids` creates for one chunk (8 bytes each).
MAX_HASH_IDS_PER_CHUNK = 1 << 28


def assign_hash_ids(
    chunk: pl.DataFrame,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    next_id: int = 0,
) -> tuple[pl.Series, int]:
    """Block ids per request, and the first id free after this chunk.

    Rows with a non-null ``hash_ids`` value keep it. Every other row gets
    ``ceil(input_tokens / block_size)`` consecutive ids, starting at the lowest
    id that is at least ``next_id``, above every id seen so far in this chunk,
    and after the ids given to earlier rows. The result does not depend on how
    a trace is cut into chunks when the returned id is passed on as ``next_id``.
    """
    if not 1 <= block_size <= MAX_BLOCK_SIZE:
        msg = f"block_size must be a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}], got {block_size}"
        raise ExportError(msg)
    if chunk.height == 0:
        return pl.Series("hash_ids", [], dtype=pl.List(pl.Int64)), next_id
    blocks = (pl.col("input_tokens").cast(pl.Int64) + block_size - 1) // block_size
    if "hash_ids" in chunk.columns:
        blocks = pl.when(pl.col("hash_ids").is_null()).then(blocks).otherwise(0)
    n_ids = chunk.select(blocks.sum()).item() or 0
    if n_ids > MAX_HASH_IDS_PER_CHUNK:
        msg = (
            f"{chunk.height:,} requests need {n_ids:,} hash_ids blocks of {block_size:,} tokens, more than "
            f"{MAX_HASH_IDS_PER_CHUNK:,} at once; use a larger block size or smaller chunks"
        )
        raise ExportError(msg)
    if "hash_ids" in chunk.columns:
        old = chunk["hash_ids"].cast(pl.List(pl.Int64))
    else:
        old = pl.Series("hash_ids", [None] * chunk.height, dtype=pl.List(pl.Int64))
    work = (
        pl.DataFrame({"inp": chunk["input_tokens"].cast(pl.Int64), "old": old})
        .with_columns(keep=pl.col("old").is_not_null())
        .with_columns(
            n_new=pl.when(pl.col("keep")).then(0).otherwise((pl.col("inp") + block_size - 1) // block_size),
            seen=pl.col("old").list.max().fill_null(-1),
        )
        .with_columns(
            floor=pl.max_horizontal(pl.lit(next_id, dtype=pl.Int64), pl.col("seen").cum_max() + 1),
            before=pl.col("n_new").cum_sum() - pl.col("n_new"),
        )
        # start_r = max(start_{r-1} + n_{r-1}, floor_r), solved in closed form
        .with_columns(start=pl.col("before") + (pl.col("floor") - pl.col("before")).cum_max())
        .with_columns(
            hash_ids=pl.when(pl.col("keep"))
            .then(pl.col("old"))
            .otherwise(pl.int_ranges(pl.col("start"), pl.col("start") + pl.col("n_new"), dtype=pl.Int64))
        )
    )
    last = work.select(pl.col("start").last() + pl.col("n_new").last()).item()
    return work["hash_ids"], int(last)


def segment_hash_ids(
    chunk: pl.DataFrame,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    next_id: int = 0,
    table: pl.DataFrame | None = None,
) -> tuple[pl.Series, int, pl.DataFrame]:
    """``hash_ids`` of a workload composed with a prefix model, from its ``segment_ids`` and
    ``segment_tokens`` (see :mod:`servegen_core.generate.sessions`): ``ceil(input_tokens /
    block_size)`` ids per request, one per block, equal exactly where the blocks' whole
    prefixes are equal, so two requests sharing their first X tokens share their first
    ``floor(X / block_size)`` ids at any block size.

    Ids are dense: a block met for the first time (in row order, then block order) gets
    the next id from ``next_id``; ``table`` (key -> id of every block met in earlier chunks,
    16 bytes per distinct block) carries the numbering across chunks, so ids stay small
    (GuideLLM reads them as int32) and a chunked export equals a whole one. Returns the
    ids, the next free id and the grown table.
    """
    seg_ids, seg_tok = _check_segments(chunk, block_size)
    keys, owner = block_keys(seg_ids, seg_tok, block_size=block_size)
    return _dense_ids(keys, owner, chunk.height, next_id=next_id, table=table)


def _check_segments(chunk: pl.DataFrame, block_size: int) -> tuple[pl.Series, pl.Series]:
    """The segment columns, after checking the block size, that every row's segments add up
    to its input and that the chunk does not need too many ids at once."""
    if not 1 <= block_size <= MAX_BLOCK_SIZE:
        msg = f"block_size must be a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}], got {block_size}"
        raise ExportError(msg)
    seg_ids = chunk["segment_ids"].cast(pl.List(pl.Int64)).fill_null([])
    seg_tok = chunk["segment_tokens"].cast(pl.List(pl.Int64)).fill_null([])
    total = seg_tok.list.sum().fill_null(0)
    bad = (total != chunk["input_tokens"]).arg_true()
    if len(bad):
        i = int(bad[0])
        msg = f"row {i + 1}: segment_tokens sum to {total[i]} but input_tokens is {chunk['input_tokens'][i]}"
        raise DataFormatError(None, "segments", msg)
    n_ids = int(((chunk["input_tokens"] + block_size - 1) // block_size).sum() or 0)
    if n_ids > MAX_HASH_IDS_PER_CHUNK:
        msg = (
            f"{chunk.height:,} requests need {n_ids:,} hash_ids blocks of {block_size:,} tokens, more than "
            f"{MAX_HASH_IDS_PER_CHUNK:,} at once; use a larger block size or smaller chunks"
        )
        raise ExportError(msg)
    return seg_ids, seg_tok


def _dense_ids(
    keys: np.ndarray, owner: np.ndarray, n: int, *, next_id: int, table: pl.DataFrame | None
) -> tuple[pl.Series, int, pl.DataFrame]:
    """Block keys (flat, with their row) renumbered densely: a key met for the first time
    (row order, then block order) gets the next id; ``table`` (``key``, ``id``, sorted by
    key) holds the keys met before and is returned grown."""
    t_keys = np.zeros(0, dtype=np.int64) if table is None else table["key"].to_numpy()
    t_ids = np.zeros(0, dtype=np.int64) if table is None else table["id"].to_numpy()
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    pos = np.searchsorted(t_keys, uniq)
    found = pos < len(t_keys)
    found[found] = t_keys[pos[found]] == uniq[found]
    uid = np.empty(len(uniq), dtype=np.int64)
    uid[found] = t_ids[pos[found]]
    new = np.flatnonzero(~found)
    new = new[np.argsort(first[new], kind="stable")]  # new keys in order of first use
    uid[new] = next_id + np.arange(len(new), dtype=np.int64)
    ins = np.sort(new)  # uniq is sorted, so its new keys are too
    t_keys = np.insert(t_keys, pos[ins], uniq[ins])
    t_ids = np.insert(t_ids, pos[ins], uid[ins])
    series = lists_by_owner(owner, n, hash_ids=uid[inverse])["hash_ids"]
    table = pl.DataFrame({"key": t_keys, "id": t_ids}, schema={"key": pl.Int64(), "id": pl.Int64()})
    return series, next_id + len(new), table


def native_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """Native Parquet / JSONL: the RequestTrace itself, every column, exact values."""
    return chunk, replace(ctx, row_offset=ctx.row_offset + chunk.height)


def native_csv_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """Native CSV: the RequestTrace without nested columns (``hash_ids``), which CSV cannot hold."""
    flat = [c for c, t in chunk.schema.items() if not t.is_nested()]
    return chunk.select(flat), replace(ctx, row_offset=ctx.row_offset + chunk.height)


def _with_hash_ids(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.Series, ChunkContext]:
    if "segment_ids" in chunk.columns and "segment_tokens" in chunk.columns and "hash_ids" not in chunk.columns:
        ids, nxt, table = segment_hash_ids(
            chunk, block_size=ctx.block_size, next_id=ctx.next_hash_id, table=ctx.block_table
        )
        return ids, replace(ctx, row_offset=ctx.row_offset + chunk.height, next_hash_id=nxt, block_table=table)
    ids, nxt = assign_hash_ids(chunk, block_size=ctx.block_size, next_id=ctx.next_hash_id)
    return ids, replace(ctx, row_offset=ctx.row_offset + chunk.height, next_hash_id=nxt)


def mooncake_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """Mooncake / AIPerf ``mooncake_trace`` record: ``timestamp`` (integer ms), lengths, ``hash_ids``.

    Sources: kvcache-ai/Mooncake ``FAST25-release/README.md`` (record
    ``{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [...]}``);
    ai-dynamo/aiperf ``src/aiperf/dataset/loader/models.py`` (``MooncakeTrace``:
    ``timestamp`` in milliseconds, ``input_length``, ``output_length``, ``hash_ids``)
    and ``docs/benchmark-modes/trace-replay.md``; AIPerf's
    ``--prompt-input-tokens-block-size`` help text gives 512 tokens per hash id as the
    ``mooncake_trace`` default, prompt length ``(len(hash_ids) - 1) * block + last block``.

    A workload composed with sessions (``session_id``, ``turn_index`` and prompt
    segments) is written as AIPerf conversations, with a ``session_id`` field on every
    record (see :func:`_mooncake_sessions`). A trace with a ``session_id`` but no
    segments (e.g. a loaded BurstGPT file) is written without it: its input lengths
    already count the whole context, which AIPerf would send twice. The format has no
    multimodal or reasoning fields (AIPerf's ``messages``/``payload`` modes replace
    ``input_length``).

    Every record also carries the request's tenant as ``client_id``. AIPerf 0.13.0's
    ``MooncakeTrace`` has no tenant field; its models allow extra keys
    (``AIPerfBaseModel``: ``extra="allow"``), so the key is accepted and not sent. It
    keeps the tenant in the file for analysis, and :func:`~servegen_core.sources.traces.load_trace`
    reads it back.
    """
    if _has_sessions(chunk):
        return _mooncake_sessions(chunk, ctx)
    ids, nxt = _with_hash_ids(chunk, ctx)
    out = chunk.select(
        timestamp=(pl.col("timestamp_s") * 1000.0).round(0).cast(pl.Int64),
        input_length=pl.col("input_tokens"),
        output_length=pl.col("output_tokens"),
    ).with_columns(ids.alias("hash_ids"), chunk["client_id"])
    return _with_class_fields(out, chunk), nxt


def _with_class_fields(out: pl.DataFrame, chunk: pl.DataFrame) -> pl.DataFrame:
    """A mooncake frame with the request's SLO class, when the workload has one: ``slo_class``
    (an extra key, kept in the file and not sent, like ``client_id``) and ``extra``
    ``{"priority": p}`` (AIPerf 0.13.0 merges a record's ``extra`` into the request body, where
    vLLM reads ``priority``: lower is served first under ``--scheduling-policy priority``)."""
    if "slo_class" in chunk.columns:
        out = out.with_columns(chunk["slo_class"].cast(pl.String).fill_null(""))
    if "slo_priority" in chunk.columns:
        out = out.with_columns(pl.struct(chunk["slo_priority"].cast(pl.Int64).fill_null(0).alias("priority")).alias("extra"))
    return out


#: A session's state is kept this long (span seconds) after its last turn; a later turn starts
#: a new AIPerf conversation (its hash_ids still carry the shared context).
SESSION_STATE_S = 3600.0


def _has_sessions(chunk: pl.DataFrame) -> bool:
    return {"session_id", "turn_index", "segment_ids", "segment_tokens"} <= set(chunk.columns)


def _mooncake_sessions(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """Mooncake records of a workload with sessions, as AIPerf replays conversations.

    AIPerf (ai-dynamo/aiperf 0.13.0, ``dataset/loader/mooncake_trace.py``, ``models.py``
    ``MooncakeTrace``: ``session_id``, ``timestamp`` and ``delay`` in ms; rows sharing a
    ``session_id`` are one conversation, in file order; ``common/enums/enums.py``: the
    default ``DELTAS_WITHOUT_RESPONSES`` context mode accumulates the turns and threads the
    live responses into the history; ``timing/strategies/fixed_schedule.py``: a later turn
    is sent at its ``timestamp`` once the previous turn's response is back) builds turn
    ``j``'s request from the history plus turn ``j``'s own prompt. So a turn that extends
    its previous turn's whole context (prompt and output) is written with only its new
    tokens: ``input_length`` = the new tokens, ``hash_ids`` = their fresh blocks. A first
    turn, and a turn that keeps only part of the previous context, is written whole (full
    ``input_length`` and ``hash_ids``) and opens a conversation of its own
    (``<session_id>~<k>``). Every record has a ``session_id`` (rows outside sessions get
    ``r<row>``) and its absolute ``timestamp``: AIPerf sends it then, or when the previous
    response arrives if that is later.
    """
    state = ctx.sessions
    if state is None:
        state = pl.DataFrame(schema={"session_id": pl.String(), "_prev": pl.Int64(), "_chain": pl.Int64(), "_last": pl.Float64()})
    n = chunk.height
    rows = chunk.select(
        pl.int_range(n, dtype=pl.Int64).alias("_i"),
        "session_id",
        "turn_index",
        "timestamp_s",
        "input_tokens",
        "output_tokens",
        pl.col("segment_tokens").list.last().fill_null(0).alias("_new"),
    )
    bad = rows.filter(pl.col("session_id").str.contains(r"[\x00-\x1f]"))
    if bad.height:
        raise ExportError(f"row {int(bad['_i'][0]) + ctx.row_offset + 1}: session_id holds a control character")
    sess = rows.filter(pl.col("session_id").is_not_null())
    prior = state.join(sess.select("session_id").unique(), on="session_id", how="semi").select(
        pl.lit(-1, dtype=pl.Int64).alias("_i"), "session_id", pl.lit(-1, dtype=pl.Int64).alias("turn_index"),
        pl.col("_last").alias("timestamp_s"), pl.lit(0, dtype=pl.Int64).alias("input_tokens"),
        pl.lit(0, dtype=pl.Int64).alias("output_tokens"), pl.lit(0, dtype=pl.Int64).alias("_new"),
        "_prev", "_chain",
    )
    both = pl.concat(
        [prior, sess.with_columns(pl.lit(None, dtype=pl.Int64).alias("_prev"), pl.lit(None, dtype=pl.Int64).alias("_chain"))]
    ).sort("session_id", "_i", maintain_order=True)
    ctx_prev = (pl.col("input_tokens") + pl.col("output_tokens")).shift(1).over("session_id")
    prev = pl.when(pl.col("_i").shift(1).over("session_id") == -1).then(pl.col("_prev").shift(1).over("session_id")).otherwise(ctx_prev)
    both = both.with_columns(prev.alias("_p"), pl.col("timestamp_s").shift(1).over("session_id").alias("_pt"))
    extends = (pl.col("turn_index") > 0) & (pl.col("input_tokens") - pl.col("_new") == pl.col("_p")) & (pl.col("_new") > 0)
    both = both.with_columns(extends.fill_null(False).alias("_ext"))
    base = pl.col("_chain").first().over("session_id").fill_null(-1)
    opens = ((pl.col("_i") >= 0) & ~pl.col("_ext")).cast(pl.Int64)
    both = both.with_columns((base + opens.cum_sum().over("session_id")).alias("_k"))
    mine = both.filter(pl.col("_i") >= 0).sort("_i")
    info = rows.select("_i").join(mine.select("_i", "_ext", "_k", "_pt"), on="_i", how="left", maintain_order="left")
    ext = info["_ext"].fill_null(False)
    chain = info["_k"].fill_null(0)
    # block keys: an extending turn's own new blocks (keyed by its last segment), else the
    # whole prompt's blocks; renumbered densely in row order
    _check_segments(chunk, ctx.block_size)
    full_keys, full_owner = block_keys(chunk["segment_ids"], chunk["segment_tokens"], block_size=ctx.block_size)
    ext_np = ext.to_numpy()
    keep_full = ~ext_np[full_owner]
    new_tok = rows["_new"]
    n_new = np.where(ext_np, (new_tok.to_numpy() + ctx.block_size - 1) // ctx.block_size, 0)
    d_owner = np.repeat(np.arange(n, dtype=np.int64), n_new)
    d_first = np.concatenate([[0], np.cumsum(n_new)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    d_k = np.arange(int(n_new.sum())) - np.repeat(d_first, n_new)
    last_seg = chunk["segment_ids"].list.last().fill_null(0).to_numpy().astype(np.int64)
    d_keys = id63(hash_parts(TAG_DELTA, last_seg[d_owner], d_k))
    owner = np.concatenate([full_owner[keep_full], d_owner])
    keys = np.concatenate([full_keys[keep_full], d_keys])
    order = np.argsort(owner, kind="stable")
    hash_col, nxt, table = _dense_ids(keys[order], owner[order], n, next_id=ctx.next_hash_id, table=ctx.block_table)
    sid = chunk.select(
        pl.when(pl.col("session_id").is_null())
        .then(pl.concat_str(pl.lit("r"), pl.int_range(ctx.row_offset, ctx.row_offset + n, dtype=pl.Int64).cast(pl.String)))
        .otherwise(pl.col("session_id"))
        .alias("s")
    )["s"]
    sid = pl.DataFrame({"s": sid, "k": chain}).select(
        pl.when(pl.col("k") > 0).then(pl.concat_str("s", pl.lit("~"), pl.col("k").cast(pl.String))).otherwise("s")
    ).to_series()
    out = chunk.select(
        timestamp=(pl.col("timestamp_s") * 1000.0).round(0).cast(pl.Int64),
        input_length=pl.when(ext).then(new_tok).otherwise(pl.col("input_tokens")),
        output_length=pl.col("output_tokens"),
    ).with_columns(hash_col.alias("hash_ids"), chunk["client_id"], sid.alias("session_id"))
    if ctx.session_timing == "closed":  # a later turn of a conversation: its delay after the previous response
        prev_ms = (info["_pt"] * 1000.0).round(0).cast(pl.Int64)
        out = out.with_columns(
            pl.when(ext).then(None).otherwise(pl.col("timestamp")).alias("timestamp"),
            pl.when(ext).then(pl.col("timestamp") - prev_ms).otherwise(None).alias("delay"),
        ).select("timestamp", "delay", *[c for c in out.columns if c != "timestamp"])
    out = _with_class_fields(out, chunk)
    # carry: each session's last context and conversation number, dropped after SESSION_STATE_S
    last = mine.group_by("session_id", maintain_order=True).agg(
        (pl.col("input_tokens") + pl.col("output_tokens")).last().alias("_prev"),
        pl.col("_k").last().alias("_chain"),
        pl.col("timestamp_s").last().alias("_last"),
    )
    t_end = float(chunk["timestamp_s"].max()) if n else 0.0
    state = (
        pl.concat([state.join(last.select("session_id"), on="session_id", how="anti"), last])
        .filter(pl.col("_last") >= t_end - SESSION_STATE_S)
    )
    return out, replace(
        ctx, row_offset=ctx.row_offset + n, next_hash_id=nxt, block_table=table, sessions=state
    )


def vllm_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """vLLM ``timed_trace`` JSONL: ``timestamp`` (seconds), ``input_length``, ``output_length``, ``hash_ids``.

    Source: vllm-project/vllm PR #39795 ("timed trace replay in `vllm bench serve`")
    and the ``vllm bench serve`` CLI reference: ``--dataset-name timed_trace``;
    ``--timed-trace-label-{timestamp,input-length,output-length,hash-ids}`` default to
    these field names; ``--timed-trace-sec-multiplier`` (default 1) multiplies the
    timestamps into seconds, so seconds need no multiplier; each hash id stands for
    ``--timed-trace-chunk-hash-size`` tokens, **default 16**, and the prompt is built
    from the ids, so the export's block size defaults to 16 (another ``block_size`` is
    printed as that flag). The loader class itself (``TimedTrace`` in
    ``vllm/benchmarks/datasets``) was not available to read; the fields above come from
    the PR and the CLI reference (``timed_trace_chunk_hash_size=16`` in ``vllm bench
    serve``'s argument dump). No session, multimodal or reasoning fields: every turn of
    a session is written as a request on its own (its ``hash_ids`` carry the shared
    context), which vLLM sends on its timestamp without waiting for the previous turn.
    """
    ids, nxt = _with_hash_ids(chunk, ctx)
    out = chunk.select(
        timestamp=pl.col("timestamp_s"),
        input_length=pl.col("input_tokens"),
        output_length=pl.col("output_tokens"),
    ).with_columns(ids.alias("hash_ids"))
    return out, nxt


def guidellm_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """GuideLLM replay JSONL: ``timestamp`` (seconds), ``input_length``, ``output_length``, ``hash_ids``.

    Sources: vllm-project/guidellm ``src/guidellm/data/deserializers/trace_common.py``
    (``TraceDataArgs``: ``timestamp_column="timestamp"``,
    ``prompt_tokens_column="input_length"``, ``output_tokens_column="output_length"``;
    each row's ``relative_timestamp`` is its timestamp minus the first one);
    ``docs/guides/trace_replay.md`` (``--data kind=trace_synthetic,path=...`` reads
    those three fields and ignores the rest; ``kind=mooncake`` also reads
    ``hash_ids_column="hash_ids"`` with ``hash_id_block_size=512``);
    ``docs/guides/datasets.md`` (trace timestamps are numbers in seconds on a shared
    time line; GuideLLM sorts them and offsets them from the first event). Run with
    ``--profile kind=replay``. ``src/guidellm/data/deserializers/trace_mooncake.py``
    (``kind=mooncake``): ``hash_ids`` are read as int32, must be non-negative, and every
    row needs ``ceil(input_length / hash_id_block_size) == len(hash_ids)`` (default
    block 512; the ids this module writes are small dense integers and the printed
    command passes the block size). No session, multimodal or reasoning fields (every
    turn is a request on its own, its ``hash_ids`` carrying the shared context).
    """
    return vllm_frame(chunk, ctx)


def vidur_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """Vidur trace CSV: ``Date`` (:data:`VIDUR_DATE`), ``Time`` (seconds), ``PromptTokenCount``,
    ``CompletionTokenCount``.

    Sources: microsoft/vidur ``vidur/request_generator/trace_replay_request_generator.py`` (the
    revision on PyPI as vidur 0.0.26, run in tests/replay/test_replay_commands.py): it keeps the
    rows whose ``Date`` equals ``trace_request_generator_config_date`` (default 2023-08-21),
    multiplies ``PromptTokenCount`` by ``prefill_scale_factor`` (default 0.3),
    ``CompletionTokenCount`` by ``decode_scale_factor`` (1) and ``Time`` by ``time_scale_factor``
    (0.04), clips both counts to at least 1 and cuts prefill so that prefill + decode <=
    ``max_tokens`` (4096); the printed command sets the date, all three factors to 1 and
    ``max_tokens`` to the file's largest request. No multimodal, reasoning or client fields.
    """
    out = chunk.select(
        Date=pl.lit(VIDUR_DATE),
        Time=pl.col("timestamp_s"),
        PromptTokenCount=pl.col("input_tokens"),
        CompletionTokenCount=pl.col("output_tokens"),
    )
    return out, replace(ctx, row_offset=ctx.row_offset + chunk.height)


def splitwise_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """splitwise-sim trace CSV (columns in the order ``generate_trace.py`` writes them).

    Sources: Mutinifni/splitwise-sim ``generate_trace.py`` (columns ``request_id,
    request_type, application_id, arrival_timestamp, batch_size, prompt_size,
    token_size``; arrivals are cumulative sums of inter-arrival seconds), ``request.py``
    (``RequestType.GENERATIVE_LLM = 2``; every CSV column is passed as a keyword to
    ``GenerativeLLMRequest``, so no other column may appear; the token task has
    ``token_size - 1`` tokens) and ``trace.py`` (``Trace.from_csv``).
    ``request_id`` numbers rows from 0 across chunks; ``application_id`` is 0 and
    ``batch_size`` 1, as in the generator's own traces.
    """
    n = chunk.height
    out = chunk.select(
        request_id=pl.int_range(ctx.row_offset, ctx.row_offset + n, dtype=pl.Int64),
        request_type=pl.lit(2, dtype=pl.Int64),
        application_id=pl.lit(0, dtype=pl.Int64),
        arrival_timestamp=pl.col("timestamp_s"),
        batch_size=pl.lit(1, dtype=pl.Int64),
        prompt_size=pl.col("input_tokens"),
        token_size=pl.col("output_tokens"),
    )
    return out, replace(ctx, row_offset=ctx.row_offset + n)


#: Value of BurstGPT's ``Model`` column: vLLM's BurstGPT loader keeps only ``"GPT-4"`` rows.
BURSTGPT_MODEL = "GPT-4"
#: Value of BurstGPT's ``Log Type`` column (the trace is replayed as API calls).
BURSTGPT_LOG_TYPE = "API log"


def burstgpt_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """BurstGPT CSV in the release column order.

    Sources: HPMLL/BurstGPT ``README.md`` ("Schema": ``Timestamp`` seconds from 0:00
    on the first day, ``Model`` ``ChatGPT``/``GPT-4``, ``Request tokens``, ``Response
    tokens``, ``Total tokens``, ``Log Type`` ``Conversation log``/``API log``);
    vllm-project/vllm ``vllm/benchmarks/datasets/burstgpt.py`` (reads request and
    response tokens by position 2 and 3, keeps rows with ``Model == "GPT-4"`` and
    ``Response tokens > 0``); ai-dynamo/aiperf ``src/aiperf/dataset/loader/burst_gpt.py``
    (``Timestamp`` in seconds, ``Request tokens``, ``Response tokens``). The v1.1 CSV
    files themselves are stored as LFS pointers and could not be read; the order
    follows the README list, which agrees with vLLM's positional reads.
    ``Model`` is always :data:`BURSTGPT_MODEL` and ``Log Type``
    :data:`BURSTGPT_LOG_TYPE`: the trace's own model names are not BurstGPT's, and
    BurstGPT marks failed requests with 0 response tokens.
    """
    out = chunk.select(
        pl.col("timestamp_s").alias("Timestamp"),
        pl.lit(BURSTGPT_MODEL).alias("Model"),
        pl.col("input_tokens").alias("Request tokens"),
        pl.col("output_tokens").alias("Response tokens"),
        (pl.col("input_tokens") + pl.col("output_tokens")).alias("Total tokens"),
        pl.lit(BURSTGPT_LOG_TYPE).alias("Log Type"),
    )
    return out, replace(ctx, row_offset=ctx.row_offset + chunk.height)



#: Wall-clock origin of the ``azure`` export: ``timestamp_s`` 0 (the workload start) is written as this
#: instant (UTC); readers of the AzurePublicDataset layout replay from the first row's time.
AZURE_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def azure_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """AzurePublicDataset CSV: ``TIMESTAMP`` (UTC wall clock, microseconds), ``ContextTokens``,
    ``GeneratedTokens``.

    Sources: Azure/AzurePublicDataset ``AzureLLMInferenceDataset2023.md`` (columns ``TIMESTAMP,
    ContextTokens, GeneratedTokens``); kubernetes-sigs/inference-perf
    ``inference_perf/utils/trace_reader.py`` (``AzurePublicDatasetReader``: skips a header row
    that ``csv.Sniffer`` detects, splits each line on ``,``, reads column 0 as
    ``%Y-%m-%d %H:%M:%S.%f`` UTC (``T`` and a trailing ``Z`` accepted, the fraction cut to six
    digits), columns 1 and 2 as integers, and replays each request at its timestamp minus the
    first row's) and ``inference_perf/config/datagen/replay.py`` (``TraceFormat``
    ``AzurePublicDataset``, the only trace format). ``timestamp_s`` is written as
    :data:`AZURE_EPOCH` plus that many seconds, rounded to whole microseconds. No client,
    session, prefix, multimodal or reasoning fields.
    """
    epoch_us = int(AZURE_EPOCH.timestamp()) * 1_000_000
    us = (pl.col("timestamp_s") * 1e6).round(0).cast(pl.Int64) + epoch_us
    out = chunk.select(
        TIMESTAMP=us.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d %H:%M:%S%.6f"),
        ContextTokens=pl.col("input_tokens"),
        GeneratedTokens=pl.col("output_tokens"),
    )
    return out, replace(ctx, row_offset=ctx.row_offset + chunk.height)


#: BLIS (inference-sim) trace v2 CSV columns, in the order ``ExportTraceV2`` writes them
#: (inference-sim/inference-sim ``sim/workload/tracev2.go``, ``traceV2Columns``).
BLIS_COLUMNS = (
    "request_id", "client_id", "tenant_id", "slo_class", "session_id", "round_index",
    "prefix_group", "prefix_length", "streaming", "input_tokens", "output_tokens",
    "text_tokens", "image_tokens", "audio_tokens", "video_tokens", "reason_ratio",
    "model", "deadline_us", "server_input_tokens",
    "arrival_time_us", "send_time_us", "first_chunk_time_us", "last_chunk_time_us",
    "num_chunks", "status", "error_message", "finish_reason",
)


def _int_or_zero(chunk: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).fill_null(0) if name in chunk.columns else pl.lit(0, dtype=pl.Int64)


def blis_frame(chunk: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, ChunkContext]:
    """BLIS (inference-sim) trace v2 data CSV; its YAML header is :func:`blis_header_text`.

    Source: inference-sim/inference-sim ``sim/workload/tracev2.go`` (``traceV2Columns``,
    ``LoadTraceV2``/``parseTraceRecord``: a positional parser over these 27 columns, integer
    microsecond times, ``round_index``/``prefix_length``/token counts whole and non-negative,
    ``reason_ratio`` in [0, 1], ``streaming`` a Go bool; ``RequestsToTraceRecords``:
    ``input_tokens`` is the suffix after a shared prefix of ``prefix_length`` tokens named by
    ``prefix_group``). Written: ``request_id`` numbers rows from 0 across chunks;
    ``client_id`` and ``tenant_id`` are the trace's ``client_id`` (the tenant column BLIS groups
    by); ``slo_class`` is the workload's ``slo_class`` (a spec's ``slo_classes``; empty
    without one); ``session_id`` and
    ``round_index`` from ``session_id``/``turn_index`` (empty and 0 outside sessions);
    ``prefix_group`` empty and ``prefix_length`` 0, so ``input_tokens`` is the whole prompt
    (prompt sharing is not carried); modality token counts and ``reason_ratio`` where the trace
    has them, else 0 (``text_tokens`` = ``input_tokens`` without one); ``arrival_time_us`` =
    ``send_time_us`` = ``timestamp_s`` in whole microseconds; the observed-result columns
    (chunk times, ``num_chunks``, ``status``, ...) empty or 0, as for a generated workload.
    """
    n = chunk.height
    us = (pl.col("timestamp_s") * 1e6).round(0).cast(pl.Int64)
    text = pl.col("text_tokens").fill_null(pl.col("input_tokens")) if "text_tokens" in chunk.columns else pl.col("input_tokens")
    ratio = pl.col("reason_ratio").fill_null(0.0) if "reason_ratio" in chunk.columns else pl.lit(0.0)
    session = pl.col("session_id").fill_null("") if "session_id" in chunk.columns else pl.lit("")
    slo_class = pl.col("slo_class").cast(pl.String).fill_null("") if "slo_class" in chunk.columns else pl.lit("")
    out = chunk.select(
        request_id=pl.int_range(ctx.row_offset, ctx.row_offset + n, dtype=pl.Int64),
        client_id=pl.col("client_id"),
        tenant_id=pl.col("client_id"),
        slo_class=slo_class,
        session_id=session,
        round_index=_int_or_zero(chunk, "turn_index"),
        prefix_group=pl.lit(""),
        prefix_length=pl.lit(0, dtype=pl.Int64),
        streaming=pl.lit("true"),
        input_tokens=pl.col("input_tokens"),
        output_tokens=pl.col("output_tokens"),
        text_tokens=text,
        image_tokens=_int_or_zero(chunk, "image_tokens"),
        audio_tokens=_int_or_zero(chunk, "audio_tokens"),
        video_tokens=_int_or_zero(chunk, "video_tokens"),
        reason_ratio=ratio.cast(pl.String),
        model=pl.lit(""),
        deadline_us=pl.lit(0, dtype=pl.Int64),
        server_input_tokens=pl.lit(0, dtype=pl.Int64),
        arrival_time_us=us,
        send_time_us=us,
        first_chunk_time_us=pl.lit(0, dtype=pl.Int64),
        last_chunk_time_us=pl.lit(0, dtype=pl.Int64),
        num_chunks=pl.lit(0, dtype=pl.Int64),
        status=pl.lit(""),
        error_message=pl.lit(""),
        finish_reason=pl.lit(""),
    )
    return out, replace(ctx, row_offset=ctx.row_offset + n)


def blis_header_path(path: str | Path) -> Path:
    """Where the trace v2 YAML header of a BLIS export at ``path`` goes: ``<stem>.yaml`` beside it."""
    p = Path(path)
    return p.with_suffix(".yaml")


def blis_header_text() -> str:
    """The trace v2 header BLIS reads with ``KnownFields(true)`` (``TraceHeader`` in
    ``sim/workload/tracev2.go``): version 2, times in microseconds, a generated workload."""
    return "trace_version: 2\ntime_unit: us\nmode: generated\nwarm_up_requests: 0\n"


# --------------------------------------------------------------------------- #
# Format table
# --------------------------------------------------------------------------- #

_ALL = tuple(SCHEMA)
_BASIC = ("timestamp_s", "input_tokens", "output_tokens")
_WITH_HASH = (*_BASIC, "hash_ids")
_LEN_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")

FORMATS: dict[str, FormatInfo] = {
    "parquet": FormatInfo(
        name="parquet",
        extension=".parquet",
        container="parquet",
        description="Native RequestTrace as Parquet (streamed: a folder of part-NNNNN.parquet files)",
        columns=_ALL,
        fields=(),
        time_field="timestamp_s",
        time_unit="s",
        citation="servegen_core.schema (RequestTrace columns, units in the names)",
        carries_extra=True,
    ),
    "csv": FormatInfo(
        name="csv",
        extension=".csv",
        container="csv",
        description="Native RequestTrace as CSV with a header (nested columns such as hash_ids left out)",
        columns=tuple(c for c in _ALL if c != "hash_ids"),
        fields=(),
        time_field="timestamp_s",
        time_unit="s",
        citation="servegen_core.schema (RequestTrace columns, units in the names)",
        carries_extra=True,
    ),
    "jsonl": FormatInfo(
        name="jsonl",
        extension=".jsonl",
        container="jsonl",
        description="Native RequestTrace as JSON Lines, one object per request",
        columns=_ALL,
        fields=(),
        time_field="timestamp_s",
        time_unit="s",
        citation="servegen_core.schema (RequestTrace columns, units in the names)",
        carries_extra=True,
    ),
    "mooncake": FormatInfo(
        name="mooncake",
        extension=".jsonl",
        container="jsonl",
        description="Mooncake / AIPerf mooncake_trace JSONL (timestamp in integer ms, hash_ids per block, client_id)",
        columns=(*_WITH_HASH, "client_id"),
        fields=(*_LEN_FIELDS, "client_id"),
        time_field="timestamp",
        time_unit="ms",
        citation=(
            "kvcache-ai/Mooncake FAST25-release/README.md; ai-dynamo/aiperf "
            "src/aiperf/dataset/loader/models.py (MooncakeTrace), docs/benchmark-modes/trace-replay.md"
        ),
        usage="AIPerf",
        block_size=DEFAULT_BLOCK_SIZE,
    ),
    "vllm": FormatInfo(
        name="vllm",
        extension=".jsonl",
        container="jsonl",
        description="vLLM `vllm bench serve` timed_trace JSONL (timestamp in seconds, hash_ids per block)",
        columns=_WITH_HASH,
        fields=_LEN_FIELDS,
        time_field="timestamp",
        time_unit="s",
        citation="vllm-project/vllm PR #39795; `vllm bench serve` CLI reference (timed-trace dataset options)",
        usage="vLLM",
        block_size=VLLM_BLOCK_SIZE,
    ),
    "guidellm": FormatInfo(
        name="guidellm",
        extension=".jsonl",
        container="jsonl",
        description="GuideLLM replay trace JSONL (timestamp in seconds from the workload start)",
        columns=_WITH_HASH,
        fields=_LEN_FIELDS,
        time_field="timestamp",
        time_unit="s",
        citation=(
            "vllm-project/guidellm src/guidellm/data/deserializers/trace_common.py, "
            "docs/guides/trace_replay.md, docs/guides/datasets.md"
        ),
        usage="GuideLLM",
        block_size=DEFAULT_BLOCK_SIZE,
    ),
    "vidur": FormatInfo(
        name="vidur",
        extension=".csv",
        container="csv",
        description="Vidur simulator trace CSV (Date, Time seconds, prompt and completion tokens)",
        columns=_BASIC,
        fields=("Date", "Time", "PromptTokenCount", "CompletionTokenCount"),
        time_field="Time",
        time_unit="s",
        citation=(
            "microsoft/vidur vidur/request_generator/trace_replay_request_generator.py, "
            "data/processed_traces/splitwise_conv.csv"
        ),
        usage="Vidur",
    ),
    "splitwise": FormatInfo(
        name="splitwise",
        extension=".csv",
        container="csv",
        description="splitwise-sim request trace CSV (arrival_timestamp seconds, prompt_size, token_size)",
        columns=_BASIC,
        fields=(
            "request_id",
            "request_type",
            "application_id",
            "arrival_timestamp",
            "batch_size",
            "prompt_size",
            "token_size",
        ),
        time_field="arrival_timestamp",
        time_unit="s",
        citation="Mutinifni/splitwise-sim generate_trace.py, request.py, trace.py",
        usage="splitwise-sim",
    ),
    "burstgpt": FormatInfo(
        name="burstgpt",
        extension=".csv",
        container="csv",
        description="BurstGPT-style CSV (release column order; Timestamp in seconds)",
        columns=_BASIC,
        fields=("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"),
        time_field="Timestamp",
        time_unit="s",
        citation=(
            "HPMLL/BurstGPT README.md (Schema); vllm-project/vllm vllm/benchmarks/datasets/burstgpt.py; "
            "ai-dynamo/aiperf src/aiperf/dataset/loader/burst_gpt.py"
        ),
        usage="AIPerf",
    ),
    "azure": FormatInfo(
        name="azure",
        extension=".csv",
        container="csv",
        description="AzurePublicDataset LLM trace CSV (TIMESTAMP UTC wall clock, ContextTokens, GeneratedTokens)",
        columns=_BASIC,
        fields=("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
        time_field="TIMESTAMP",
        time_unit="datetime",
        citation=(
            "Azure/AzurePublicDataset AzureLLMInferenceDataset2023.md; kubernetes-sigs/inference-perf "
            "inference_perf/utils/trace_reader.py (AzurePublicDatasetReader), inference_perf/config/datagen/replay.py"
        ),
        usage="inference-perf",
    ),
    "blis": FormatInfo(
        name="blis",
        extension=".csv",
        container="csv",
        description="BLIS (inference-sim) trace v2: data CSV (µs times, tenant_id, session_id, round_index) plus a YAML header <stem>.yaml",
        columns=(*_BASIC, "client_id", "session_id", "turn_index", "text_tokens", "image_tokens",
                 "audio_tokens", "video_tokens", "reason_ratio"),
        fields=BLIS_COLUMNS,
        time_field="arrival_time_us",
        time_unit="us",
        citation="inference-sim/inference-sim sim/workload/tracev2.go (TraceHeader, traceV2Columns, LoadTraceV2)",
        usage="BLIS",
    ),
}

#: Each format's chunk -> output frame function (the frame and the context for the next chunk).
FRAMES: dict[str, Callable[[pl.DataFrame, ChunkContext], tuple[pl.DataFrame, ChunkContext]]] = {
    "parquet": native_frame,
    "csv": native_csv_frame,
    "jsonl": native_frame,
    "mooncake": mooncake_frame,
    "vllm": vllm_frame,
    "guidellm": guidellm_frame,
    "vidur": vidur_frame,
    "splitwise": splitwise_frame,
    "burstgpt": burstgpt_frame,
    "azure": azure_frame,
    "blis": blis_frame,
}

#: Formats that carry sessions (the native ones keep the columns; mooncake writes AIPerf conversations).
SESSION_FORMATS = ("parquet", "csv", "jsonl", "mooncake")
#: Formats whose hash_ids carry prompt sharing.
HASH_FORMATS = ("mooncake", "vllm", "guidellm")

#: What a request with zero output tokens means to a format's reader, where it matters.
ZERO_OUTPUT_NOTES = {
    "vidur": "Vidur clips decode tokens to at least 1",
    "splitwise": "splitwise-sim builds a token task of token_size - 1 tokens",
    "burstgpt": "BurstGPT marks failed requests with 0 response tokens; vLLM's loader drops them",
}


def format_block_size(fmt: str, block_size: int | None = None) -> int:
    """Tokens per ``hash_ids`` block for ``fmt``: ``block_size`` when given, else the block
    size the format's consumer assumes without a flag (512 for ``mooncake`` and ``guidellm``,
    16 for ``vllm``'s ``timed_trace``; 512 for formats without block ids)."""
    info = get_format(fmt)
    if block_size is not None:
        return int(block_size)
    return info.block_size or DEFAULT_BLOCK_SIZE


def export_block_size(fmt: str, columns: Iterable[str], *, block_size: int | None = None) -> int:
    """Tokens per ``hash_ids`` block an export in ``fmt`` of a RequestTrace with ``columns``
    uses (its :attr:`~servegen_core.export.writer.ExportResult.block_size`, the block size for :func:`usage_hint`):
    ``block_size`` when given; a trace that carries its own ``hash_ids`` (Mooncake's
    512-token blocks) keeps them in the hash-block formats, so 512
    (:data:`DEFAULT_BLOCK_SIZE`; :class:`~servegen_core.export.writer.ChunkWriter` decides it from the first chunk, whose
    ``hash_ids`` must not be all null); otherwise :func:`format_block_size`."""
    info = get_format(fmt)
    if block_size is None and info.name in HASH_FORMATS and "hash_ids" in set(columns):
        return DEFAULT_BLOCK_SIZE
    return format_block_size(fmt, block_size)


def dropped_columns(fmt: str, columns: Mapping[str, Any] | Iterable[str]) -> tuple[str, ...]:
    """The columns of a RequestTrace with ``columns`` that an export in ``fmt`` leaves out, in
    their order (:attr:`~servegen_core.export.writer.ExportResult.dropped_columns` is this for the columns written).

    ``columns`` is a schema (name -> polars dtype) or names (dtypes from the RequestTrace
    schema; an unknown name counts as a flat column). Native Parquet and JSONL keep every
    column, native CSV every flat one (not ``hash_ids`` nor the prompt segments). The other
    formats write their own fields (:attr:`FormatInfo.columns`); the hash-block formats turn
    the prompt segments (``segment_ids``, ``segment_tokens``) into ``hash_ids``; ``mooncake``
    writes a workload with sessions (``session_id``, ``turn_index`` and the segments) as
    AIPerf conversations, so those are kept too (a ``session_id`` without segments is not).
    """
    info = get_format(fmt)
    types = dict(columns) if isinstance(columns, Mapping) else {c: SCHEMA.get(c) for c in columns}
    if info.carries_extra:
        if info.container != "csv":
            return ()
        return tuple(c for c, t in types.items() if t is not None and t.is_nested())
    kept = set(info.columns)
    if info.name in ("mooncake", "blis"):  # the SLO class: mooncake's slo_class and extra.priority, BLIS's slo_class
        kept |= {"slo_class", "slo_priority"} if info.name == "mooncake" else {"slo_class"}
    if info.name in SESSION_FORMATS and {"session_id", "turn_index", "segment_ids", "segment_tokens"} <= set(types):
        kept |= {"session_id", "turn_index", "segment_ids", "segment_tokens"}
    elif info.name in HASH_FORMATS:
        kept |= {"segment_ids", "segment_tokens"}
    return tuple(c for c in types if c not in kept)


#: What the user fills in a printed replay command: the served model, the server's base URL and the
#: tokenizer (a Hugging Face name or path) the load generator counts prompt tokens with.
PLACEHOLDERS = ("<MODEL>", "<URL>", "<TOKENIZER>")
#: Stands for the number of requests in a command printed before the file is written.
ROWS_PLACEHOLDER = "<N>"
#: Stands for the largest prompt + output of a request (Vidur's max_tokens) before the file is written.
MAX_TOKENS_PLACEHOLDER = "<MAX_TOKENS>"


@dataclass(frozen=True)
class ReplayCommand:
    """One consumer's command line for an export (``text``, shell-quoted, placeholders from
    :data:`PLACEHOLDERS` left for the user) and what that consumer leaves out (``note``)."""

    consumer: str
    version: str
    text: str
    note: str = ""


# Templates: FILE (the export), BLOCK (tokens per hash id), ROWS (requests in the file), MAXTOK (the
# largest prompt + output of one request), HEADER (BLIS's YAML header), STEM (the file name without
# its extension). Flags checked against each consumer's own parser: AIPerf 0.13.0, GuideLLM 0.8.1 and
# Vidur 0.0.26 in tests/replay/test_replay_commands.py; vLLM, SGLang, inference-perf, splitwise-sim and
# BLIS from their published sources (cited per format), not run here.
_AIPERF = (
    "aiperf profile --model <MODEL> --url <URL> --tokenizer <TOKENIZER> --endpoint-type chat --streaming "
    "--input-file FILE --custom-dataset-type {kind} --fixed-schedule --request-count ROWS"
)
_REPLAY: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "mooncake": (
        ("AIPerf", "0.13.0", _AIPERF.format(kind="mooncake_trace") + " --prompt-input-tokens-block-size BLOCK",
         "replays every record on its timestamp, sessions as conversations; client_id is in every record, "
         "but AIPerf has no tenant field and does not send it"),
        ("SGLang", "0.5.23",
         "python -m sglang.bench_serving --backend sglang-oai --base-url <URL> --model <MODEL> --tokenizer <TOKENIZER> "
         "--dataset-name mooncake --dataset-path FILE --use-trace-timestamps --num-prompts ROWS",
         "SGLang's mooncake loader ignores input_length: it builds each prompt from a fixed text per hash id, "
         "so prompt lengths are not the file's (0.5-0.7x here); output_length and timestamps are honoured; no client field "
         "(client_id is not read)"),
    ),
    "vllm": (
        ("vLLM", "0.34.0",
         "vllm bench serve --model <MODEL> --base-url <URL> --tokenizer <TOKENIZER> --dataset-name timed_trace "
         "--dataset-path FILE --num-prompts ROWS --no-oversample --self-timed --timed-trace-chunk-hash-size BLOCK",
         "no sessions: every turn is sent on its own timestamp; no client field (timed_trace has no tenant)"),
    ),
    "guidellm": (
        ("GuideLLM", "0.8.1",
         "guidellm run --backend kind=openai_http,target=<URL>,model=<MODEL> --tokenizer kind=hf_auto,model=<TOKENIZER> "
         "--data kind=mooncake,source.kind=json_file,source.path=FILE,hash_id_block_size=BLOCK "
         "--profile kind=replay,time_scale=1.0,schedule_turn=timestamp",
         "replays every row (no request limit); no sessions: every turn is a request on its own; "
         "no client field (GuideLLM's trace rows have no tenant)"),
    ),
    "burstgpt": (
        ("AIPerf", "0.13.0", _AIPERF.format(kind="burst_gpt_trace"),
         "replays the Timestamp column with --fixed-schedule (--request-count: without it AIPerf counts the CSV header as a request); "
         "no prefix blocks; no client field (BurstGPT's columns have no tenant)"),
        ("vLLM", "0.34.0",
         "vllm bench serve --model <MODEL> --base-url <URL> --tokenizer <TOKENIZER> --dataset-name burstgpt "
         "--dataset-path FILE --num-prompts ROWS --no-oversample --request-rate inf",
         "lengths only: vLLM's burstgpt loader ignores Timestamp (arrivals come from --request-rate); no client field"),
    ),
    "azure": (
        ("inference-perf", "main",
         "inference-perf --config_file <CONFIG>  # <CONFIG>: load: {type: trace_replay, trace: {file: FILE, "
         "format: AzurePublicDataset}}; server: {base_url: <URL>, model_name: <MODEL>}; tokenizer: "
         "{pretrained_model_name_or_path: <TOKENIZER>}",
         "replays TIMESTAMP (from the first row) with exact lengths; no clients, sessions or prefix blocks"),
    ),
    "vidur": (
        ("Vidur", "0.0.26",
         "python -m vidur.main --replica_config_model_name <MODEL> --request_generator_config_type trace_replay "
         "--trace_request_generator_config_trace_file FILE --trace_request_generator_config_max_tokens MAXTOK "
         f"--trace_request_generator_config_date {VIDUR_DATE} --trace_request_generator_config_prefill_scale_factor 1 "
         "--trace_request_generator_config_decode_scale_factor 1 --trace_request_generator_config_time_scale_factor 1",
         "max_tokens is set to the file's largest prompt + output: at Vidur's default 4096 a request with "
         "decode >= 4096 gets prefill <= 0; the scale factors are set to 1 (Vidur's defaults: prompts x 0.3, "
         "times x 0.04); token counts of 0 become 1; no clients, sessions or prefix blocks"),
    ),
    "splitwise": (
        ("splitwise-sim", "main",
         "cp FILE <SPLITWISE_SIM>/traces/STEM.csv && cd <SPLITWISE_SIM> && python run.py trace.filename=STEM",
         "splitwise-sim reads traces/<trace.filename>.csv; no clients, sessions or prefix blocks"),
    ),
    "blis": (
        ("BLIS", "main",
         "blis replay --trace-header HEADER --trace-data FILE --model <MODEL>",
         "tenant_id = client_id, sessions as session_id/round_index; prompt sharing not carried (prefix_length 0)"),
    ),
}


def replay_commands(
    fmt: str,
    path: str | Path,
    block_size: int | None = None,
    *,
    rows: int | None = None,
    max_request_tokens: int | None = None,
) -> tuple[ReplayCommand, ...]:
    """The commands that replay an export of ``fmt`` at ``path`` (none for the native formats):
    every row (``rows``; :data:`ROWS_PLACEHOLDER` when not known yet), at the file's block size
    (:func:`format_block_size` of ``block_size``), the placeholders of :data:`PLACEHOLDERS` left
    for the user; Vidur's ``max_tokens`` is ``max_request_tokens`` (the file's largest prompt +
    output, :data:`MAX_TOKENS_PLACEHOLDER` when not known)."""
    info = get_format(fmt)
    block = format_block_size(fmt, block_size)
    p = Path(path)
    fill = {
        "FILE": shlex.quote(str(path)),
        "BLOCK": str(block),
        "ROWS": ROWS_PLACEHOLDER if rows is None else str(rows),
        "MAXTOK": MAX_TOKENS_PLACEHOLDER if max_request_tokens is None else str(max(1, max_request_tokens)),
        "HEADER": shlex.quote(str(blis_header_path(p))),
        "STEM": shlex.quote(p.stem),
    }
    pattern = re.compile(r"\b(" + "|".join(fill) + r")\b")
    return tuple(
        ReplayCommand(consumer, version, pattern.sub(lambda m: fill[m.group(1)], text), note)
        for consumer, version, text, note in _REPLAY.get(info.name, ())
    )


def usage_hint(
    fmt: str,
    path: str | Path,
    block_size: int | None = None,
    *,
    rows: int | None = None,
    max_request_tokens: int | None = None,
) -> str:
    """The replay commands of :func:`replay_commands` as shell text (empty when there is none):
    per consumer a ``# consumer version: note`` comment line, then the command."""
    return "\n".join(
        f"# {c.consumer} {c.version}: {c.note}\n{c.text}"
        for c in replay_commands(fmt, path, block_size, rows=rows, max_request_tokens=max_request_tokens)
    )


def get_format(fmt: str) -> FormatInfo:
    """The :class:`FormatInfo` named ``fmt``; :class:`ExportError` listing the known names otherwise."""
    info = FORMATS.get(fmt)
    if info is None:
        msg = f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}"
        raise ExportError(msg)
    return info


def spec_sidecar_path(path: str | Path) -> Path:
    """Where the spec JSON of an export at ``path`` goes: ``<path>.spec.json``."""
    p = Path(path)
    return p.with_name(p.name + ".spec.json")


# --------------------------------------------------------------------------- #
# Rendering: output frame -> bytes
# --------------------------------------------------------------------------- #


def _seconds_text(col: str) -> pl.Expr:
    """Seconds as text with exactly six decimals, from the value rounded to whole microseconds."""
    us = (pl.col(col) * 1e6).round(0).cast(pl.Int64)
    scale = 10**SECONDS_DECIMALS
    return pl.concat_str(
        (us // scale).cast(pl.String),
        pl.lit("."),
        (us % scale).cast(pl.String).str.zfill(SECONDS_DECIMALS),
    )


def _value_text(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Float64():
        return _seconds_text(name)
    if dtype.is_integer():
        return pl.col(name).cast(pl.String)
    if dtype == pl.List(pl.Int64()):
        inner = pl.col(name).list.eval(pl.element().cast(pl.String)).list.join(", ")
        return pl.concat_str(pl.lit("["), inner, pl.lit("]"))
    if isinstance(dtype, pl.Struct) and all(f.dtype.is_integer() for f in dtype.fields):  # {"priority": 0}
        parts: list[pl.Expr] = []
        for k, f in enumerate(dtype.fields):
            parts += [pl.lit(("{" if k == 0 else ", ") + json.dumps(f.name) + ": "), pl.col(name).struct.field(f.name).cast(pl.String)]
        return pl.concat_str([*parts, pl.lit("}")])
    if dtype == pl.String():  # JSON string: backslash and quote escaped (control characters refused upstream)
        escaped = pl.col(name).str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))
    msg = f"column {name!r} of type {dtype} has no JSON rendering in the benchmark formats"
    raise ExportError(msg)


def _render_jsonl_lines(frame: pl.DataFrame) -> bytes:
    """``{"a": 1, "b": [1, 2]}`` per row, keys in column order (the layout of Mooncake's own files)."""
    if frame.height == 0:
        return b""
    parts: list[pl.Expr] = []
    nullable = [name for name in frame.columns if frame[name].null_count()]
    if nullable:  # a key whose value is null is left out of that line (AIPerf: the field is unset)
        for name, dtype in frame.schema.items():
            item = pl.concat_str(pl.lit(", " + json.dumps(name) + ": "), _value_text(name, dtype))
            parts.append(pl.when(pl.col(name).is_null()).then(pl.lit("")).otherwise(item) if name in nullable else item)
        body = pl.concat_str(parts).str.slice(2)
        lines = frame.select(pl.concat_str(pl.lit("{"), body, pl.lit("}")).alias("line"))
    else:
        for i, (name, dtype) in enumerate(frame.schema.items()):
            parts.append(pl.lit(("{" if i == 0 else ", ") + json.dumps(name) + ": "))
            parts.append(_value_text(name, dtype))
        parts.append(pl.lit("}"))
        lines = frame.select(pl.concat_str(parts).alias("line"))
    buf = io.BytesIO()
    lines.write_csv(buf, include_header=False, quote_style="never", line_terminator="\n")
    return buf.getvalue()


def _render_csv(frame: pl.DataFrame, *, header: bool, fixed_seconds: bool) -> bytes:
    if fixed_seconds:
        floats = [c for c, t in frame.schema.items() if t == pl.Float64()]
        frame = frame.with_columns(_seconds_text(c).alias(c) for c in floats)
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=header, line_terminator="\n")
    return buf.getvalue()


def render_frame(info: FormatInfo, frame: pl.DataFrame, *, first: bool) -> bytes:
    """The bytes of an output frame in a CSV or JSON Lines format (``first``: the chunk that
    carries the CSV header): native CSV/JSONL keep exact floats, the benchmark formats write
    seconds with six decimals and JSON objects in column order."""
    native = info.name in ("csv", "jsonl")
    if info.container == "csv":
        return _render_csv(frame, header=first, fixed_seconds=not native)
    if native:
        if frame.height == 0:
            return b""
        buf = io.BytesIO()
        frame.write_ndjson(buf)
        return buf.getvalue()
    return _render_jsonl_lines(frame)
