"""Write a RequestTrace in native and benchmark replay formats.

One small, pure function per format turns a chunk of a RequestTrace into the
output frame (``<format>_frame``); a generic renderer turns that frame into
bytes (Parquet, CSV or JSON Lines). :func:`export_trace` writes a whole trace,
:class:`ChunkWriter` / :func:`export_chunks` stream a workload chunk by chunk
with memory bounded by the chunk size.

Every write is atomic: the data go to a temporary file (or folder) in the
target's folder, which is renamed onto the target only when complete; on any
error the temporary is removed. An existing target, or an existing spec
sidecar ``<path>.spec.json``, is refused unless ``overwrite=True``; even then
only a regular file (or a link to one) is replaced, and for a partitioned
Parquet export a folder holding only ``part-*.parquet`` files: a folder,
device, FIFO or socket is an :class:`~servegen_core.errors.ExportError`, never
deleted. Temporaries are named ``.<name>.servegen-tmp-<pid>-<random>.tmp``;
the next write into the folder removes those a killed run left behind
(:func:`servegen_core.paths.clean_stale_temps`).

Timestamps in a RequestTrace are seconds from the workload start; chunks carry
absolute timestamps, so every format is written on the same time line whether
the trace arrives whole or in chunks. The same frame gives the same bytes, and
a trace written in chunks gives the same bytes as written at once (the
partitioned Parquet folder aside, which is one file per chunk).

Time precision per format: native Parquet/CSV/JSONL keep the float64 value
exactly (CSV/JSONL print the shortest decimal that round-trips); ``mooncake``
writes integer milliseconds (rounded half to even); every other format writes
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

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from servegen_core.blocks import TAG_DELTA, block_keys, hash_parts, id63, lists_by_owner
from servegen_core.errors import DataFormatError, ExportError
from servegen_core.limits import MAX_BLOCK_SIZE
from servegen_core.paths import TEMP_SUFFIX, clean_stale_temps, replace_problem, temp_prefix
from servegen_core.schema import SCHEMA, empty_trace, validate_trace

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FORMATS",
    "VIDUR_MAX_TOKENS",
    "VLLM_BLOCK_SIZE",
    "ChunkContext",
    "ChunkWriter",
    "ExportResult",
    "FormatInfo",
    "assign_hash_ids",
    "check_target",
    "dropped_columns",
    "export_block_size",
    "format_block_size",
    "segment_hash_ids",
    "usage_hint",
    "burstgpt_frame",
    "export_chunks",
    "export_trace",
    "get_format",
    "guidellm_frame",
    "mooncake_frame",
    "native_csv_frame",
    "native_frame",
    "spec_sidecar_path",
    "splitwise_frame",
    "vidur_frame",
    "vllm_frame",
]

#: Tokens per ``hash_ids`` block (Mooncake's block size; AIPerf's default for ``mooncake_trace``,
#: GuideLLM's ``hash_id_block_size`` default for ``kind=mooncake``).
DEFAULT_BLOCK_SIZE = 512
#: vLLM ``timed_trace``'s ``--timed-trace-chunk-hash-size`` default (tokens per hash id).
VLLM_BLOCK_SIZE = 16
#: Vidur's trace request generator's default ``max_tokens`` (prefill + decode per request).
VIDUR_MAX_TOKENS = 4096

#: Decimals written for seconds in the benchmark formats (microseconds).
SECONDS_DECIMALS = 6

#: Rows per slice when :func:`export_trace` renders a large frame (bounds the rendering memory).
_SLICE_ROWS = 262_144


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


@dataclass(frozen=True)
class ExportResult:
    """Outcome of an export: where, what, how much, which columns were left out, and the
    tokens per ``hash_ids`` block used (for the replay command, :func:`usage_hint`)."""

    path: Path
    format: str
    rows: int
    bytes: int
    spec_path: Path | None
    dropped_columns: tuple[str, ...]
    block_size: int = DEFAULT_BLOCK_SIZE


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
    """
    if _has_sessions(chunk):
        return _mooncake_sessions(chunk, ctx)
    ids, nxt = _with_hash_ids(chunk, ctx)
    out = chunk.select(
        timestamp=(pl.col("timestamp_s") * 1000.0).round(0).cast(pl.Int64),
        input_length=pl.col("input_tokens"),
        output_length=pl.col("output_tokens"),
    ).with_columns(ids.alias("hash_ids"))
    return out, nxt


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
    both = both.with_columns(prev.alias("_p"))
    extends = (pl.col("turn_index") > 0) & (pl.col("input_tokens") - pl.col("_new") == pl.col("_p")) & (pl.col("_new") > 0)
    both = both.with_columns(extends.fill_null(False).alias("_ext"))
    base = pl.col("_chain").first().over("session_id").fill_null(-1)
    opens = ((pl.col("_i") >= 0) & ~pl.col("_ext")).cast(pl.Int64)
    both = both.with_columns((base + opens.cum_sum().over("session_id")).alias("_k"))
    mine = both.filter(pl.col("_i") >= 0).sort("_i")
    info = rows.select("_i").join(mine.select("_i", "_ext", "_k"), on="_i", how="left", maintain_order="left")
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
    ).with_columns(hash_col.alias("hash_ids"), sid.alias("session_id"))
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
    """Vidur trace CSV: ``arrived_at`` (seconds), ``num_prefill_tokens``, ``num_decode_tokens``.

    Sources: microsoft/vidur ``vidur/request_generator/trace_replay_request_generator.py``
    (current revision reads these three columns, scales ``arrived_at`` by
    ``time_scale_factor`` and clips both token counts to at least 1; older
    revisions read ``Date, Time, PromptTokenCount, CompletionTokenCount``) and
    ``data/processed_traces/splitwise_conv.csv`` (same header, seconds with six
    decimals). No multimodal, reasoning or client fields.
    """
    out = chunk.select(
        arrived_at=pl.col("timestamp_s"),
        num_prefill_tokens=pl.col("input_tokens"),
        num_decode_tokens=pl.col("output_tokens"),
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
        description="Mooncake / AIPerf mooncake_trace JSONL (timestamp in integer ms, hash_ids per block)",
        columns=_WITH_HASH,
        fields=_LEN_FIELDS,
        time_field="timestamp",
        time_unit="ms",
        citation=(
            "kvcache-ai/Mooncake FAST25-release/README.md; ai-dynamo/aiperf "
            "src/aiperf/dataset/loader/models.py (MooncakeTrace), docs/benchmark-modes/trace-replay.md"
        ),
        usage="aiperf profile --input-file FILE --custom-dataset-type mooncake_trace --fixed-schedule",
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
        usage="vllm bench serve --dataset-name timed_trace --dataset-path FILE --self-timed",
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
        usage=(
            "guidellm run --backend kind=openai_http,target=http://localhost:8000 "
            "--data kind=mooncake,path=FILE,hash_id_block_size=BLOCK_SIZE --profile kind=replay,time_scale=1.0"
        ),
        block_size=DEFAULT_BLOCK_SIZE,
    ),
    "vidur": FormatInfo(
        name="vidur",
        extension=".csv",
        container="csv",
        description="Vidur simulator trace CSV (arrived_at seconds, prefill and decode tokens)",
        columns=_BASIC,
        fields=("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
        time_field="arrived_at",
        time_unit="s",
        citation=(
            "microsoft/vidur vidur/request_generator/trace_replay_request_generator.py, "
            "data/processed_traces/splitwise_conv.csv"
        ),
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
        usage=(
            "aiperf profile --input-file FILE --custom-dataset-type burst_gpt_trace --fixed-schedule "
            "(AIPerf replays the Timestamp column only with --fixed-schedule); or vllm bench serve "
            "--dataset-name burstgpt --dataset-path FILE (lengths only, arrivals from --request-rate)"
        ),
    ),
}

_FRAMES: dict[str, Callable[[pl.DataFrame, ChunkContext], tuple[pl.DataFrame, ChunkContext]]] = {
    "parquet": native_frame,
    "csv": native_csv_frame,
    "jsonl": native_frame,
    "mooncake": mooncake_frame,
    "vllm": vllm_frame,
    "guidellm": guidellm_frame,
    "vidur": vidur_frame,
    "splitwise": splitwise_frame,
    "burstgpt": burstgpt_frame,
}

#: Formats that carry sessions (the native ones keep the columns; mooncake writes AIPerf conversations).
_SESSION_FORMATS = ("parquet", "csv", "jsonl", "mooncake")
#: Formats whose hash_ids carry prompt sharing.
_HASH_FORMATS = ("mooncake", "vllm", "guidellm")

#: What a request with zero output tokens means to a format's reader, where it matters.
_ZERO_OUTPUT = {
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
    uses (its :attr:`ExportResult.block_size`, the block size for :func:`usage_hint`):
    ``block_size`` when given; a trace that carries its own ``hash_ids`` (Mooncake's
    512-token blocks) keeps them in the hash-block formats, so 512
    (:data:`DEFAULT_BLOCK_SIZE`; :class:`ChunkWriter` decides it from the first chunk, whose
    ``hash_ids`` must not be all null); otherwise :func:`format_block_size`."""
    info = get_format(fmt)
    if block_size is None and info.name in _HASH_FORMATS and "hash_ids" in set(columns):
        return DEFAULT_BLOCK_SIZE
    return format_block_size(fmt, block_size)


def dropped_columns(fmt: str, columns: Mapping[str, Any] | Iterable[str]) -> tuple[str, ...]:
    """The columns of a RequestTrace with ``columns`` that an export in ``fmt`` leaves out, in
    their order (:attr:`ExportResult.dropped_columns` is this for the columns written).

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
    if info.name in _SESSION_FORMATS and {"session_id", "turn_index", "segment_ids", "segment_tokens"} <= set(types):
        kept |= {"session_id", "turn_index", "segment_ids", "segment_tokens"}
    elif info.name in _HASH_FORMATS:
        kept |= {"segment_ids", "segment_tokens"}
    return tuple(c for c in types if c not in kept)


def usage_hint(fmt: str, path: str | Path, block_size: int | None = None) -> str:
    """The command that replays an export of ``fmt`` at ``path`` (empty when there is none),
    with the flag that tells the consumer a block size other than its default."""
    info = get_format(fmt)
    block = format_block_size(fmt, block_size)
    text = info.usage.replace("FILE", str(path)).replace("BLOCK_SIZE", str(block))
    if info.name == "vllm" and block != VLLM_BLOCK_SIZE:
        text += f" --timed-trace-chunk-hash-size {block}"
    if info.name == "mooncake" and block != DEFAULT_BLOCK_SIZE:
        text += f" --prompt-input-tokens-block-size {block}"
    return text


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


def _render(info: FormatInfo, frame: pl.DataFrame, *, first: bool) -> bytes:
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


# --------------------------------------------------------------------------- #
# Spec sidecar and atomic replacement
# --------------------------------------------------------------------------- #


def _spec_text(spec: Any) -> str:
    """JSON text of ``spec``: an object with ``to_json()``, a JSON string, or a dict."""
    if hasattr(spec, "to_json"):
        text = spec.to_json()
    elif isinstance(spec, str):
        text = spec
    elif isinstance(spec, dict):
        text = json.dumps(spec, indent=2, sort_keys=True)
    else:
        msg = f"spec must have a to_json() method, or be a JSON string or a dict; got {type(spec).__name__}"
        raise ExportError(msg)
    if not isinstance(text, str):
        msg = f"spec.to_json() must return a str, got {type(text).__name__}"
        raise ExportError(msg)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"spec is not valid JSON: {exc}"
        raise ExportError(msg) from None
    return text if text.endswith("\n") else text + "\n"


def _public_mode(path: Path) -> None:
    """Give a temporary file or folder the permissions a plain ``open``/``mkdir`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _replace(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """Move ``tmp`` onto ``target``; an existing target is replaced only when ``overwrite``, and
    only when it is a regular file (or a partitioned Parquet folder, see :func:`_check_kind`)."""
    if os.path.lexists(target):
        if not overwrite:
            msg = f"{target} exists; pass overwrite=True to replace it"
            raise ExportError(msg)
        _check_kind(target, parts_folder_ok=tmp.is_dir())
        if tmp.is_file() and not target.is_dir():
            os.replace(tmp, target)
            return
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_prefix(target), suffix=TEMP_SUFFIX))
        aside.rmdir()
        os.replace(target, aside)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(aside, target)
            raise
        _remove(aside)
        return
    os.replace(tmp, target)


def check_target(path: str | Path, *, overwrite: bool = False) -> None:
    """Raise :class:`ExportError` if ``path`` cannot be written: its folder is missing, or it or
    its spec sidecar exists and ``overwrite`` is false. The writers run the same check; callers
    may run it first to fail before doing any work."""
    target = Path(path)
    _check_targets(target, spec_sidecar_path(target), overwrite=overwrite)


def _check_targets(path: Path, sidecar: Path, *, overwrite: bool, folder: bool = True) -> None:
    if not path.parent.is_dir():
        msg = f"cannot write {path}: folder {path.parent} does not exist"
        raise ExportError(msg)
    for p in (path, sidecar):
        if os.path.lexists(p):
            if not overwrite:
                msg = f"{p} exists; pass overwrite=True to replace it"
                raise ExportError(msg)
            _check_kind(p, parts_folder_ok=folder and p == path)


def _check_kind(path: Path, *, parts_folder_ok: bool) -> None:
    """Refuse to replace anything but a regular file (or a link to one) or, for the output
    itself, a folder of ``part-*.parquet`` files (a partitioned Parquet export): a folder,
    device, FIFO or socket is never replaced or deleted."""
    problem = replace_problem(path, parts_folder_ok=parts_folder_ok)
    if problem:
        raise ExportError(problem)


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


class ChunkWriter:
    """Stream a workload to ``path`` chunk by chunk, atomically.

    JSONL and CSV formats append each chunk to one temporary file in the target's
    folder; ``parquet`` writes a temporary folder of ``part-00000.parquet``, ... .
    :meth:`close` renames the result onto ``path`` (and writes the spec sidecar);
    leaving the ``with`` block on an exception removes every temporary instead.
    Each chunk is a RequestTrace slice with absolute timestamps (seconds from the
    workload start), sorted, and not earlier than the previous chunk. Memory use
    is bounded by one chunk and its rendering.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str,
        *,
        spec: Any = None,
        overwrite: bool = False,
        block_size: int | None = None,
        note: Callable[[str], Any] | None = print,
    ) -> None:
        self.info = get_format(fmt)
        # a trace that carries its own hash_ids (Mooncake's 512-token blocks) keeps them, so its
        # block size stays 512 unless one is given (decided at the first chunk)
        self._block_auto = block_size is None and self.info.name in _HASH_FORMATS
        block_size = format_block_size(fmt, block_size)
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
            msg = f"block_size must be a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}], got {block_size}"
            raise ExportError(msg)
        self.path = Path(path)
        self.sidecar = spec_sidecar_path(self.path)
        self.overwrite = overwrite
        self._spec = None if spec is None else _spec_text(spec)
        self._note = note
        self._ctx = ChunkContext(block_size=block_size)
        self._tmp: Path | None = None
        self._handle: io.BufferedWriter | None = None
        self._parts = 0
        self._chunks = 0
        self._columns: list[str] | None = None
        self._last_ts: float | None = None
        self._dropped: dict[str, None] = {}
        self._zero_output = 0
        self._over_vidur = 0
        self._later_turns = 0
        self._off_blocks = 0
        self._result: ExportResult | None = None
        _check_targets(self.path, self.sidecar, overwrite=overwrite, folder=self.info.container == "parquet")

    # -- lifecycle ---------------------------------------------------------- #
    def __enter__(self) -> ChunkWriter:
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
            return
        self.close()

    def open(self) -> None:
        """Create the temporary file or folder next to the target."""
        if self._tmp is not None:
            return
        clean_stale_temps(self.path.parent)
        prefix = temp_prefix(self.path)
        if self.info.container == "parquet":
            self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=prefix, suffix=TEMP_SUFFIX))
            _public_mode(self._tmp)
        else:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=prefix, suffix=TEMP_SUFFIX)
            self._tmp = Path(name)
            self._handle = os.fdopen(fd, "wb")
            _public_mode(self._tmp)

    def abort(self) -> None:
        """Remove the temporary output; the target is left as it was."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tmp is not None:
            _remove(self._tmp)
            self._tmp = None

    @property
    def result(self) -> ExportResult:
        if self._result is None:
            msg = f"export to {self.path} is not finished"
            raise ExportError(msg)
        return self._result

    # -- writing ------------------------------------------------------------ #
    def write(self, chunk: pl.DataFrame) -> None:
        """Validate ``chunk`` as a RequestTrace slice, transform it and append it."""
        if self._result is not None:
            msg = f"export to {self.path} is already closed"
            raise ExportError(msg)
        self.open()
        where = f"chunk {self._chunks}"
        if not isinstance(chunk, pl.DataFrame):
            msg = f"{where}: expected a polars DataFrame, got {type(chunk).__name__}"
            raise ExportError(msg)
        chunk = validate_trace(chunk, source=f"export {where}", sort=False)
        if chunk.height and self._last_ts is not None and chunk["timestamp_s"][0] < self._last_ts:
            msg = (
                f"first timestamp {chunk['timestamp_s'][0]} is earlier than the previous chunk's last "
                f"({self._last_ts}); chunks must come in time order"
            )
            raise DataFormatError(None, where, msg)
        if self._chunks == 0 and self._block_auto and "hash_ids" in chunk.columns and chunk["hash_ids"].null_count() < chunk.height:
            self._ctx = replace(self._ctx, block_size=DEFAULT_BLOCK_SIZE)
        if "hash_ids" in chunk.columns and self.info.name in _HASH_FORMATS:
            kept = chunk.filter(pl.col("hash_ids").is_not_null())
            bs = self._ctx.block_size
            self._off_blocks += int((kept["hash_ids"].list.len() != (kept["input_tokens"] + bs - 1) // bs).sum())
        frame, self._ctx = _FRAMES[self.info.name](chunk, self._ctx)
        if self._columns is None:
            self._columns = frame.columns
        elif frame.columns != self._columns:
            msg = f"columns {frame.columns} differ from the first chunk's {self._columns}"
            raise DataFormatError(None, where, msg)
        self._dropped.update((c, None) for c in dropped_columns(self.info.name, chunk.schema))
        if self.info.name in _ZERO_OUTPUT:
            self._zero_output += int((chunk["output_tokens"] == 0).sum())
        if self.info.name == "vidur":
            self._over_vidur += int((chunk["input_tokens"] + chunk["output_tokens"] > VIDUR_MAX_TOKENS).sum())
        if "turn_index" in chunk.columns and self.info.name not in _SESSION_FORMATS:
            self._later_turns += int((chunk["turn_index"] > 0).sum())
        if chunk.height:
            self._last_ts = float(chunk["timestamp_s"][-1])

        if self.info.container == "parquet":
            if frame.height or self._parts == 0:
                assert self._tmp is not None
                frame.write_parquet(self._tmp / f"part-{self._parts:05d}.parquet")
                self._parts += 1
        else:
            assert self._handle is not None
            self._handle.write(_render(self.info, frame, first=self._chunks == 0))
        self._chunks += 1

    def close(self) -> ExportResult:
        """Finish the temporary output and rename it (and the spec sidecar) into place."""
        if self._result is not None:
            return self._result
        self.open()
        try:
            if self._chunks == 0:
                self.write(empty_trace())
            if self._handle is not None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()
                self._handle = None
            self._result = self._commit()
        except BaseException:
            self.abort()
            raise
        self._tmp = None
        self._emit_notes()
        return self._result

    def _commit(self) -> ExportResult:
        assert self._tmp is not None
        spec_tmp: Path | None = None
        try:
            if self._spec is not None:
                fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=temp_prefix(self.sidecar), suffix=TEMP_SUFFIX)
                spec_tmp = Path(name)
                _public_mode(spec_tmp)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._spec.encode("utf-8"))
            _replace(self._tmp, self.path, overwrite=self.overwrite)
            stale = False
            if spec_tmp is not None:
                _replace(spec_tmp, self.sidecar, overwrite=True)
                spec_tmp = None
            elif os.path.lexists(self.sidecar):
                _check_kind(self.sidecar, parts_folder_ok=False)
                self.sidecar.unlink()
                stale = True
        finally:
            if spec_tmp is not None:
                spec_tmp.unlink(missing_ok=True)
        if stale:
            self._say(f"{self.sidecar}: removed the spec of the replaced export (no spec given)")
        return ExportResult(
            path=self.path,
            format=self.info.name,
            rows=self._ctx.row_offset,
            bytes=_size(self.path),
            spec_path=self.sidecar if self._spec is not None else None,
            dropped_columns=tuple(self._dropped),
            block_size=self._ctx.block_size,
        )

    def _say(self, text: str) -> None:
        if self._note is not None:
            self._note(text)

    def _emit_notes(self) -> None:
        name = self.info.name
        if self._dropped:
            self._say(
                f"{name} export: {', '.join(self._dropped)} not written ({name} format has no field for them)"
            )
        if self._zero_output:
            self._say(f"{name} export: {self._zero_output} request(s) with 0 output tokens; {_ZERO_OUTPUT[name]}")
        if self._off_blocks:
            self._say(
                f"{name} export: {self._off_blocks} request(s) keep hash_ids whose count is not "
                f"ceil(input_length / {self._ctx.block_size}); GuideLLM refuses such rows and AIPerf/vLLM build "
                "prompts of another length"
            )
        if self._over_vidur:
            self._say(
                f"vidur export: {self._over_vidur} request(s) with prefill + decode tokens above Vidur's default "
                f"max_tokens {VIDUR_MAX_TOKENS}; raise the trace request generator's max_tokens (and the model's "
                "context) or Vidur will not replay them as written"
            )
        if self._later_turns:
            self._say(
                f"{name} export: sessions not written ({name} has no session field): {self._later_turns} later "
                "turn(s) are sent on their own timestamps without waiting for the previous turn's response; "
                "their hash_ids still carry the shared context"
                if name in _HASH_FORMATS
                else f"{name} export: sessions and prompt prefixes not written ({name} has no field for them); "
                f"{self._later_turns} later turn(s) become independent requests"
            )


def export_chunks(
    chunks: Iterable[pl.DataFrame],
    path: str | Path,
    fmt: str,
    *,
    spec: Any = None,
    overwrite: bool = False,
    block_size: int | None = None,
    note: Callable[[str], Any] | None = print,
) -> ExportResult:
    """Stream ``chunks`` (RequestTrace slices in time order) to ``path`` in format ``fmt``.

    JSONL/CSV formats become one file, byte for byte the file :func:`export_trace`
    writes for the concatenated trace; ``parquet`` becomes a folder of
    ``part-NNNNN.parquet`` files, one per non-empty chunk. If the iterator or a
    write fails, nothing is left behind. Memory is bounded by one chunk.
    """
    with ChunkWriter(path, fmt, spec=spec, overwrite=overwrite, block_size=block_size, note=note) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.result


def export_trace(
    trace: pl.DataFrame,
    path: str | Path,
    fmt: str,
    *,
    spec: Any = None,
    overwrite: bool = False,
    block_size: int | None = None,
    note: Callable[[str], Any] | None = print,
) -> ExportResult:
    """Write the RequestTrace ``trace`` to ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    ``spec`` (an object with ``to_json()``, a JSON string or a dict) is written
    beside the file as ``<path>.spec.json``. Columns the format cannot hold are
    left out and named once through ``note`` (``print`` by default; ``None``
    silences it) and in :attr:`ExportResult.dropped_columns`. ``block_size`` is the
    number of tokens per ``hash_ids`` block (``None``: the format's consumer default,
    :func:`format_block_size`). The write is atomic and refuses an
    existing target or sidecar unless ``overwrite``.
    """
    info = get_format(fmt)
    if not isinstance(trace, pl.DataFrame):
        msg = f"expected a polars DataFrame, got {type(trace).__name__}"
        raise ExportError(msg)
    if info.container != "parquet":
        slices = trace.iter_slices(_SLICE_ROWS) if trace.height else iter([trace])
        return export_chunks(
            slices, path, fmt, spec=spec, overwrite=overwrite, block_size=block_size, note=note
        )
    # Parquet, whole trace: one file rather than a partitioned folder.
    target = Path(path)
    sidecar = spec_sidecar_path(target)
    spec_text = None if spec is None else _spec_text(spec)
    _check_targets(target, sidecar, overwrite=overwrite, folder=False)
    frame = validate_trace(trace, source="export", sort=False)
    clean_stale_temps(target.parent)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    _public_mode(tmp)
    spec_tmp: Path | None = None
    try:
        frame.write_parquet(tmp)
        if spec_text is not None:
            fd, sname = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(sidecar), suffix=TEMP_SUFFIX)
            spec_tmp = Path(sname)
            _public_mode(spec_tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(spec_text.encode("utf-8"))
        _replace(tmp, target, overwrite=overwrite)
        if spec_tmp is not None:
            _replace(spec_tmp, sidecar, overwrite=True)
            spec_tmp = None
        elif os.path.lexists(sidecar):
            _check_kind(sidecar, parts_folder_ok=False)
            sidecar.unlink()
            if note is not None:
                note(f"{sidecar}: removed the spec of the replaced export (no spec given)")
    finally:
        tmp.unlink(missing_ok=True)
        if spec_tmp is not None:
            spec_tmp.unlink(missing_ok=True)
    return ExportResult(
        path=target,
        format=info.name,
        rows=frame.height,
        bytes=_size(target),
        spec_path=sidecar if spec_text is not None else None,
        dropped_columns=(),
    )
