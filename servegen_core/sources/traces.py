"""Raw request traces: load CSV, Parquet and JSON Lines files into the RequestTrace schema.

:func:`load_trace` reads a file, picks a column preset (given, or detected from the
column names), parses every value strictly and returns a :class:`LoadedTrace`: the
validated RequestTrace plus what was chosen and what was noticed on the way
(timestamp resolution, skipped blank lines, sorting, failed requests).

:func:`trace_columns` reads only a file's column names (CSV header, Parquet schema,
keys of the first JSON line), cheaply, e.g. to offer them for a column mapping.

Formats are chosen by suffix: ``.csv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``,
each optionally followed by ``.gz``. A gzip file is first measured by streaming
decompression and refused above :func:`servegen_core.limits.max_decompressed_bytes`
(``$SERVEGEN_MAX_DECOMPRESSED_MB``, 4096 MB by default), so a gzip bomb is never
inflated; then it is decompressed into memory (up to 256 MB) or into a temporary file,
deleted after loading. Plain files (and that temporary file) are scanned lazily
(``pl.scan_*`` with an explicit schema) and collected once.

Before a file's body is read its size as a table is estimated (Parquet rows and columns from
the metadata, CSV columns from the header, CSV and JSON Lines rows from a bounded count of the
lines) and a file above the load budget (:func:`servegen_core.limits.max_rows`,
:func:`~servegen_core.limits.max_columns`, ``$SERVEGEN_MAX_ROWS``/``$SERVEGEN_MAX_COLUMNS``, or
the tighter limits a caller passes for an upload) is refused with
:class:`~servegen_core.errors.InputTooLargeError`, so a small file of millions of constant rows
never reaches memory.

Parsing rules
-------------
- CSV cells are read as text and converted here, so that a bad cell can be named.
  JSON Lines values are read as their JSON text for the same reason.
- Token counts must be whole, finite, non-negative numbers (``12`` and ``12.0`` are
  accepted, ``12.5``, ``NaN``, ``-1`` and empty cells are errors).
- Timestamps become ``timestamp_s``: float64 seconds from the earliest request (the
  ``servegen`` preset keeps its ``timestamp_s`` as written and reads decimal text as the
  float64 it spells, so a native CSV/JSON Lines export reloads bit for bit). Decimal text is parsed exactly (as a 38-digit decimal with 9 fractional
  digits) and wall-clock text is split into whole seconds and a fraction of up to 9
  digits, so a gap of 100 ns in a 7-decimal wall clock survives.
- CSV lines whose fields are all empty (blank lines) are skipped and counted in
  ``warnings``; a line with too few or too many fields is an error. Every CSV column
  is read (as text) so that a ragged line cannot hide in an unused column.
- Wall-clock text looks like ``2023-11-16 18:15:46.6805900`` (``T`` also accepted as
  the separator), optionally followed by ``Z`` or an offset such as ``+00:00``; text
  without an offset is taken as UTC.

Row order
---------
With ``sort=True`` (the default) rows whose timestamps go backwards are sorted by
timestamp with a stable sort (ties keep file order) and the result's ``warnings`` say
how many rows were out of order. With ``sort=False`` an unsorted file is an error that
names the first line whose timestamp is earlier than the one before it.

Error locations
---------------
Every :class:`~servegen_core.errors.DataFormatError` names the file and the place:
``line N`` is the 1-based physical line of a CSV or JSON Lines file (the CSV header is
line 1; for a ``.gz`` file, a line of the decompressed text), ``row N`` is the 1-based
data row of a Parquet file; a column or field name is added where one is at fault.
Lines are located with a pass over the text (``csv``/``json`` modules) only when
something is wrong, or when a CSV's last column has empty cells (to tell a short line
from an empty value).

Nothing read from a file is ever evaluated: JSON is parsed with the ``json`` module or
Polars, CSV with Polars or the ``csv`` module.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import itertools
import json
import math
import operator
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from glob import escape as _glob_escape
from pathlib import Path
from types import MappingProxyType

import numpy as np
import polars as pl

from servegen_core.errors import DataFormatError, InputTooLargeError, OptionError, quoted
from servegen_core.limits import (
    CELLS_PER_ROW,
    MAX_BLOCK_SIZE,
    MAX_COLUMNS_ENV,
    MAX_DECOMPRESSED_ENV,
    MAX_ROWS_ENV,
    MAX_SPAN_ENV,
    MAX_TOKENS_ENV,
    max_decompressed_bytes,
    max_span_s,
    max_tokens,
)
from servegen_core.limits import max_columns as default_max_columns
from servegen_core.limits import max_rows as default_max_rows
from servegen_core.schema import (
    DATETIME,
    KIND_BOOL,
    KIND_FLOAT,
    KIND_INT,
    KIND_LIST,
    KIND_STR,
    KIND_TIME,
    OPTIONAL,
    TARGETS,
    TIME_UNITS,
    validate_trace,
)

__all__ = [
    "GRID_TICK_S",
    "BAILIAN_FIELDS",
    "CONVERSATION_FIELDS",
    "CONVERSATION_MAX_BYTES",
    "FORMAT_HASH_BLOCK_SIZE",
    "LINKED_BLOCK_SIZE",
    "OFFLINE_FIELDS",
    "PRESETS",
    "GRID_CANDIDATES_MS",
    "GRID_JITTER",
    "GRID_MIN_GAPS",
    "GRID_SHARE",
    "linked_trace_kind",
    "conversation_turns_estimate",
    "load_conversations",
    "load_linked_trace",
    "QUANTIZED_GRID_S",
    "TARGETS",
    "TIME_UNITS",
    "LoadedTrace",
    "Preset",
    "TimestampResolution",
    "detect_preset",
    "load_trace",
    "timestamp_resolution",
    "trace_columns",
]

#: Gaps are measured on this tick (100 ns) when looking for the timestamp grid.
GRID_TICK_S = 1e-7
#: A grid this coarse or coarser (1 ms) counts as quantized.
QUANTIZED_GRID_S = 1e-3
#: Candidate recording periods (ms) tried by the jitter-tolerant grid search of
#: :func:`timestamp_resolution`, besides the exact common divisor of the gaps.
GRID_CANDIDATES_MS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 3000, 5000, 10_000, 15_000, 20_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
)
#: A gap counts as on a candidate grid within this fraction of the period of a whole multiple
#: (0.2 %: within 6 ms of multiples of 3 s).
GRID_JITTER = 0.002
#: Share of the gaps (and of the gaps of at least one period) that must lie on a candidate
#: grid for it to be the recording resolution.
GRID_SHARE = 0.95
#: Fewest gaps of at least one period that a jitter-tolerant grid needs.
GRID_MIN_GAPS = 10

#: Most characters of a list of column names quoted in a message.
_LIST_LIMIT = 2000

_REQUIRED_TARGETS = ("timestamp", "input_tokens", "output_tokens")
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Preset:
    """How one trace family maps onto the RequestTrace.

    ``required`` and ``optional`` map a target (a key of :data:`TARGETS`) to the source
    column names accepted for it, first match wins. ``time_unit`` is the unit of the
    source time column (a key of :data:`TIME_UNITS` or ``"datetime"``); ``None`` means
    the user gives it (``generic``).
    """

    name: str
    description: str
    required: Mapping[str, tuple[str, ...]]
    optional: Mapping[str, tuple[str, ...]]
    time_unit: str | None
    keep_time_origin: bool = False
    flag_failed: bool = False

    def needs(self) -> str:
        """The required source columns in words, e.g. ``"TIMESTAMP, ContextTokens, GeneratedTokens"``."""
        if not any(self.required.values()):
            return "a column mapping: columns={" + ", ".join(f"'{t}': ..." for t in self.required) + "}"
        return ", ".join(" or ".join(repr(s) for s in srcs) for srcs in self.required.values())


def _preset(name, description, required, optional, time_unit, **kw) -> Preset:
    return Preset(name, description, MappingProxyType(required), MappingProxyType(optional), time_unit, **kw)


#: The presets, in detection order.
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "servegen": _preset(
            "servegen",
            "This project's own RequestTrace export (Parquet, CSV or JSON Lines): timestamp_s in "
            "seconds from the trace start, kept as written.",
            {"timestamp": ("timestamp_s",), "input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",)},
            {"client_id": ("client_id",), **{c: (c,) for c in OPTIONAL}},
            "s",
            keep_time_origin=True,
        ),
        "azure": _preset(
            "azure",
            "Azure LLM/LMM inference traces (AzurePublicDataset): TIMESTAMP wall clock, ContextTokens, "
            "GeneratedTokens, and NumImages in the multimodal trace.",
            {"timestamp": ("TIMESTAMP",), "input_tokens": ("ContextTokens",), "output_tokens": ("GeneratedTokens",)},
            {"image_count": ("NumImages",)},
            DATETIME,
        ),
        "mooncake": _preset(
            "mooncake",
            "Mooncake / AIPerf mooncake_trace JSON Lines: timestamp in milliseconds, input_length, "
            "output_length, hash_ids (one id per 512-token block); with session_id, rows of one AIPerf "
            "conversation are rebuilt into whole prompts (history plus new tokens), and a later turn with "
            "AIPerf's delay instead of a timestamp (a closed-loop export) is placed at the previous turn's "
            "timestamp plus its delay; client_id where present (this project's mooncake export writes it).",
            {"timestamp": ("timestamp",), "input_tokens": ("input_length",), "output_tokens": ("output_length",)},
            {"hash_ids": ("hash_ids",), "session_id": ("session_id",), "client_id": ("client_id",), "delay": ("delay",)},
            "ms",
        ),
        "timed_trace": _preset(
            "timed_trace",
            "vLLM timed_trace / GuideLLM replay JSON Lines (this project's vllm and guidellm exports): Mooncake's "
            "fields with timestamp in seconds. Detected instead of mooncake when the timestamps have decimals "
            "and a spec sidecar sits beside the file.",
            {"timestamp": ("timestamp",), "input_tokens": ("input_length",), "output_tokens": ("output_length",)},
            {"hash_ids": ("hash_ids",)},
            "s",
        ),
        "burstgpt": _preset(
            "burstgpt",
            "BurstGPT CSV: Timestamp in seconds, Model, Request tokens, Response tokens, Log Type, "
            "Session ID where present (newer releases; their Elapsed time column is not read). Requests with "
            "0 response tokens are failures, flagged in 'failed'.",
            {"timestamp": ("Timestamp",), "input_tokens": ("Request tokens",), "output_tokens": ("Response tokens",)},
            {"model": ("Model",), "log_type": ("Log Type",), "session_id": ("Session ID", "SessionID")},
            "s",
            flag_failed=True,
        ),
        "generic": _preset(
            "generic",
            "Any table: map columns={'timestamp', 'input_tokens', 'output_tokens', optional 'client_id', "
            "'session_id', ...} to your column names and give time_unit (s, ms, us, ns or datetime).",
            {t: () for t in _REQUIRED_TARGETS},
            {},
            None,
        ),
    }
)


# --------------------------------------------------------------------------- linked and batch traces

#: Alibaba Bailian (alibaba-edu/qwen-bailian-usagetraces-anon) JSON Lines fields, as AIPerf 0.13.0's
#: ``BailianTrace`` model reads them: ``chat_id``, ``parent_chat_id`` (-1 for a root request),
#: ``timestamp`` (seconds), ``input_length``, ``output_length``, ``type`` (text/search/image/file),
#: ``turn`` (1 for the first), ``hash_ids`` (one salted id per 16-token block).
BAILIAN_FIELDS = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length", "type", "turn", "hash_ids")
#: ServeGen's offline (batch) release ``data/offline/trace_*.jsonl`` (its ``data/offline/README.md``): no
#: timestamps; ``request_id``, ``type``, ``input_length``; the content-hash files a-c add ``hash_ids``
#: (16-token blocks, one namespace for the files) and ``img_ids`` (text such as ``"img_00001"``) but no
#: output length; the stat files d-f add ``output_length`` and ``duration`` (ms) instead.
OFFLINE_FIELDS = ("request_id", "type", "input_length", "output_length", "hash_ids", "img_ids", "duration")
#: Tokens per hash id in both releases.
LINKED_BLOCK_SIZE = 16
#: Tokens per ``hash_ids`` entry that a trace's own layout documents, by the preset (or detected
#: layout) it was read with: Mooncake's 512-token blocks, the Bailian and ServeGen offline releases'
#: 16. A layout not listed has no documented block size: :func:`load_trace`'s ``hash_block_size``
#: states it (its :attr:`LoadedTrace.hash_block_size`).
FORMAT_HASH_BLOCK_SIZE = MappingProxyType({"mooncake": 512, "bailian": LINKED_BLOCK_SIZE, "servegen_offline": LINKED_BLOCK_SIZE})
_INT_FIELDS = ("chat_id", "parent_chat_id", "input_length", "output_length", "turn", "request_id")


def linked_trace_kind(columns: Iterable[str]) -> str | None:
    """``"bailian"`` or ``"servegen_offline"`` when ``columns`` (a JSON Lines file's first keys) are
    those of a Bailian or ServeGen offline trace, else ``None`` (the :data:`PRESETS` apply)."""
    names = set(columns)
    if {"chat_id", "parent_chat_id", "timestamp", "input_length", "output_length"} <= names:
        return "bailian"
    if {"request_id", "input_length"} <= names and not {"timestamp", "chat_id"} & names:
        return "servegen_offline"
    return None


def _read_records(path: Path, fields: tuple[str, ...], required: tuple[str, ...]) -> pl.DataFrame:
    """The JSON Lines file's ``fields`` that its first line has, read by Polars with an explicit
    schema (numbers as float64, ``hash_ids`` as int64 lists, ``img_ids`` as text lists: ServeGen
    writes ``"img_00001"``) and checked column-wise: ``required``
    on every record, the integer fields whole and (``parent_chat_id``'s -1 aside) non-negative,
    ``timestamp`` finite and non-negative, ids non-negative. Errors name the file, the record
    (1-based) and the field; a file above the row budget (``$SERVEGEN_MAX_ROWS``) is refused."""
    present = set(trace_columns(path))
    kinds = {"type": pl.String(), "hash_ids": pl.List(pl.Int64()), "img_ids": pl.List(pl.String())}
    schema = {k: kinds.get(k, pl.Float64()) for k in fields if k in present}
    try:
        frame = pl.read_ndjson(path, schema=schema)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataFormatError(path, None, f"cannot be read as JSON Lines with {list(schema)}: {_polars_message(exc)}") from None
    limit = default_max_rows()
    if frame.height > limit:
        msg = f"{frame.height:,} records, above the load budget of {limit:,} (${MAX_ROWS_ENV})"
        raise DataFormatError(path, None, msg)
    if frame.height == 0:
        raise DataFormatError(path, None, "no records")

    def fail(cond: pl.Expr, name: str, what: str) -> None:
        bad = frame.select(cond.arg_true().first()).item()
        if bad is not None:
            raise DataFormatError(path, f"record {bad + 1}, field {quoted(name)}", what)

    for name in required:
        if name not in frame.columns:
            raise DataFormatError(path, f"field {quoted(name)}", "missing from the first record")
        fail(pl.col(name).is_null(), name, "missing")
    for name in (c for c in _INT_FIELDS if c in frame.columns):
        col = pl.col(name)
        fail(col.is_not_null() & (~col.is_finite() | (col != col.floor())), name, "not a whole number")
        fail(col < (-1 if name == "parent_chat_id" else 0), name, "negative")
        frame = frame.with_columns(col.cast(pl.Int64))
    if "timestamp" in frame.columns:
        ts = pl.col("timestamp")
        fail(ts.is_not_null() & (~ts.is_finite() | (ts < 0)), "timestamp", "not a finite non-negative number")
    if "hash_ids" in frame.columns:
        fail(pl.col("hash_ids").list.min() < 0, "hash_ids", "holds a negative id")
    return frame


def _dense_codes(lists: pl.Series) -> pl.Series:
    """Lists of text ids (``"img_00001"``) as lists of integers, one per distinct id (0, 1, ... in
    sorted order of the ids), a null list kept null: equal ids stay equal, as reuse needs. Ids that
    are all whole numbers (written as JSON integers) are kept as those numbers."""
    values = lists.explode().drop_nulls()
    if values.str.contains(r"^\d{1,18}$").all():
        return lists.list.eval(pl.element().cast(pl.Int64))
    rows = pl.DataFrame({"ids": lists}).with_row_index("row")
    flat = rows.explode("ids").filter(pl.col("ids").is_not_null())
    coded = flat.with_columns((pl.col("ids").rank("dense") - 1).cast(pl.Int64).alias("code"))
    lists_of_codes = coded.group_by("row", maintain_order=True).agg("code")
    out = rows.join(lists_of_codes, on="row", how="left", maintain_order="left").select(
        pl.when(pl.col("ids").is_null()).then(None).otherwise(pl.col("code").fill_null([])).alias(lists.name)
    )
    return out.to_series()


def _session_roots(chat: pl.Series, parent: pl.Series, path: Path) -> pl.Series:
    """Each request's conversation root: follow ``parent_chat_id`` up to a root (-1) or to a parent
    the file does not hold; one join per level of the deepest chain (not per request)."""
    table = pl.DataFrame({"chat_id": chat, "up": parent})
    if table["chat_id"].n_unique() != table.height:
        raise DataFormatError(path, "field 'chat_id'", "the same chat_id on more than one line")
    cur = pl.DataFrame({"i": pl.int_range(table.height, eager=True), "at": chat, "up": parent})
    for _ in range(table.height + 1):
        step = cur.join(table.rename({"chat_id": "up", "up": "next"}), on="up", how="left", maintain_order="left")
        moves = step["next"].is_not_null()  # the parent is in the file: climb to it
        if not moves.any():
            return step.sort("i")["at"].cast(pl.String).alias("session_id")
        cur = step.select(
            "i",
            pl.when(moves).then(pl.col("up")).otherwise(pl.col("at")).alias("at"),
            pl.when(moves).then(pl.col("next")).otherwise(-1).alias("up"),
        )
    raise DataFormatError(path, "field 'parent_chat_id'", "the parent links form a cycle")


def load_linked_trace(path: str | Path, *, submission_rps: float | None = None) -> LoadedTrace:
    """A Bailian trace (:data:`BAILIAN_FIELDS`) or a ServeGen offline batch trace (:data:`OFFLINE_FIELDS`)
    as a RequestTrace, the kind told by :func:`linked_trace_kind` from the first line's keys.

    Bailian: ``timestamp_s`` = ``timestamp`` minus the earliest; sessions from the parent links
    (``session_id`` = the conversation root's ``chat_id``, ``turn_index`` = ``turn`` - 1);
    ``client_id`` = the request ``type``; ``hash_ids`` kept (16-token blocks). ServeGen offline: a
    batch job without timestamps, submitted all at t = 0 (``submission_rps=None``) or at a stated
    rate in file order (``timestamp_s`` = row / rate); ``client_id`` = ``type`` (``"all"`` without
    one); ``output_tokens`` = ``output_length``, 0 in the content-hash files (a-c) that have none (said in
    ``warnings``); ``hash_ids`` kept; ``image_ids`` = ``img_ids`` (text ids such as ``"img_00001"`` as one
    integer per distinct id) and ``image_count`` its length; ``duration`` is not a
    RequestTrace column and is left out (said in ``warnings``).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise FileNotFoundError(msg)
    kind = linked_trace_kind(trace_columns(path))
    if kind is None:
        msg = f"neither a Bailian ({', '.join(BAILIAN_FIELDS[:5])}) nor a ServeGen offline ({', '.join(OFFLINE_FIELDS[:4])}) trace"
        raise DataFormatError(path, None, msg)
    if submission_rps is not None and not (math.isfinite(submission_rps) and submission_rps > 0):
        msg = f"submission_rps must be a positive number of requests per second, got {submission_rps}"
        raise OptionError(msg)
    warnings: list[str] = []
    if kind == "bailian":
        raw = _read_records(path, BAILIAN_FIELDS, ("chat_id", "timestamp", "input_length", "output_length"))
        roots = _session_roots(raw["chat_id"], raw["parent_chat_id"].fill_null(-1), path)
        t = raw["timestamp"]
        out = pl.DataFrame({
            "timestamp_s": t - t.min(),
            "client_id": raw["type"].fill_null("all") if "type" in raw.columns else pl.Series(["all"] * raw.height),
            "input_tokens": raw["input_length"],
            "output_tokens": raw["output_length"],
            "session_id": roots,
            "turn_index": (raw["turn"].fill_null(1) - 1).clip(lower_bound=0) if "turn" in raw.columns else pl.Series([0] * raw.height),
        })
        mapped = {"timestamp": "timestamp", "input_tokens": "input_length", "output_tokens": "output_length",
                  "client_id": "type", "session_id": "chat_id/parent_chat_id", "turn_index": "turn"}
    else:
        has_output = "output_length" in trace_columns(path)
        raw = _read_records(path, OFFLINE_FIELDS, ("input_length", "output_length") if has_output else ("input_length",))
        mapped = {"input_tokens": "input_length", "client_id": "type"}
        n = raw.height
        ts = pl.Series([0.0] * n) if submission_rps is None else pl.int_range(n, eager=True).cast(pl.Float64) / submission_rps
        if has_output:
            mapped["output_tokens"] = "output_length"
        else:
            warnings.append(
                "no output_length (the content-hash traces a-c record inputs only): output_tokens set to 0; "
                "their input lengths, prefix blocks and images are what they characterize"
            )
        out = pl.DataFrame({
            "timestamp_s": ts,
            "client_id": raw["type"].fill_null("all") if "type" in raw.columns else pl.Series(["all"] * n),
            "input_tokens": raw["input_length"],
            "output_tokens": raw["output_length"] if has_output else pl.Series([0] * n, dtype=pl.Int64),
        })
        if "img_ids" in raw.columns:
            codes = _dense_codes(raw["img_ids"])
            out = out.with_columns(image_count=codes.list.len().fill_null(0), image_ids=codes.fill_null([]))
            mapped["image_ids"] = "img_ids"
        if "duration" in raw.columns:
            warnings.append("'duration' left out: the RequestTrace has no column for a recorded duration")
        warnings.append(
            "a batch job without timestamps: every request submitted at t = 0" if submission_rps is None
            else f"a batch job without timestamps: submitted in file order at {submission_rps:g} requests/s"
        )
    if "hash_ids" in raw.columns:
        out = out.with_columns(hash_ids=raw["hash_ids"])
        ids = raw.filter(pl.col("hash_ids").is_not_null())
        off = int((ids["hash_ids"].list.len() != (ids["input_length"] + LINKED_BLOCK_SIZE - 1) // LINKED_BLOCK_SIZE).sum())
        if off:
            warnings.append(f"{off:,} request(s) whose hash_ids count is not ceil(input_length / {LINKED_BLOCK_SIZE})")
        mapped["hash_ids"] = "hash_ids"
    return _detected_trace(out, path, kind, "jsonl", mapped, warnings)


def _detected_trace(
    frame: pl.DataFrame, path: Path, preset: str, file_format: str, mapped: dict[str, str], warnings: list[str],
    start_time: datetime.datetime | None = None,
) -> LoadedTrace:
    """The LoadedTrace of a file read by its detected layout: ``frame`` validated as a RequestTrace."""
    trace = validate_trace(frame, source=str(path))
    return LoadedTrace(
        trace=trace,
        preset=preset,
        detected=True,
        path=str(path),
        resolution=timestamp_resolution(trace["timestamp_s"]),
        warnings=tuple(warnings),
        file_format=file_format,
        columns=MappingProxyType(mapped),
        start_time=start_time,
    )


# --------------------------------------------------------------------------- ServeGen conversations

#: ServeGen's multi-turn conversation release, ``data/conversations/conversations_hashed.json``
#: (alibaba/ServeGen README: "Input and output content are replaced with block hashes ... structural
#: characteristics are retained"): one JSON document holding the conversations, each a list of turns
#: with ``turn``, ``timestamp``, ``input_token_count``, ``output_token_count`` and the hashed content
#: lists ``input_tokens`` / ``output_tokens``. The release documents no schema; these field names are
#: those reported by studies of the file (1,616 conversations, 5,720 turns over about 24 h).
CONVERSATION_FIELDS = ("turn", "timestamp", "input_token_count", "output_token_count", "input_tokens", "output_tokens")
#: Keys under which a conversation object may hold its turn list, and its id.
CONVERSATION_TURN_KEYS = ("turns", "conversation", "messages")
CONVERSATION_ID_KEYS = ("conversation_id", "session_id", "id")
#: Largest conversation file read whole (bytes): a JSON document is parsed in one piece, at about
#: ten times its size in memory.
CONVERSATION_MAX_BYTES = 512 * 1024 * 1024


def _conversation_turns(path: Path, doc: object) -> tuple[list[str], list[list]]:
    """The conversations of a parsed conversation file as (ids, turn lists): a top-level list of
    conversations, an object ``{"conversations": [...]}``, or an object ``{id: conversation}``; a
    conversation is a list of turns or an object with its turns under one of
    :data:`CONVERSATION_TURN_KEYS` (and its id under one of :data:`CONVERSATION_ID_KEYS`). One step
    per conversation; the turns stay as parsed."""
    if isinstance(doc, dict) and isinstance(doc.get("conversations"), list):
        doc = doc["conversations"]
    if isinstance(doc, list):
        keys = [str(i) for i in range(len(doc))]
        items = doc
    elif isinstance(doc, dict):
        keys = [str(k) for k in doc]
        items = list(doc.values())
    else:
        raise DataFormatError(path, None, f"the document is a JSON {type(doc).__name__}, not a list or object of conversations")
    if not items:
        raise DataFormatError(path, None, "no conversations")
    ids: list[str] = []
    turns: list[list] = []
    for key, conv in zip(keys, items, strict=True):
        if isinstance(conv, dict):
            turn_list = next((conv[k] for k in CONVERSATION_TURN_KEYS if isinstance(conv.get(k), list)), None)
            if turn_list is None:
                msg = f"an object without a turn list (one of {', '.join(CONVERSATION_TURN_KEYS)})"
                raise DataFormatError(path, f"conversation {quoted(key)}", msg)
            own = next((conv[k] for k in CONVERSATION_ID_KEYS if isinstance(conv.get(k), (str, int))), None)
            key = key if own is None else str(own)
            conv = turn_list
        if not isinstance(conv, list) or not conv:
            raise DataFormatError(path, f"conversation {quoted(key)}", "not a non-empty list of turns")
        ids.append(key)
        turns.append(conv)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataFormatError(path, f"conversation {quoted(dup)}", "the same conversation id twice")
    return ids, turns


def _locate_bad_turn(
    path: Path, ids: list[str], turns: list[list], wall_clock: bool, id_type: type | None = None
) -> DataFormatError:
    """The first turn whose fields do not parse (only called once the column-wise read failed);
    with ``id_type`` its ``input_tokens`` must be a list of that type (``int`` or ``str``)."""
    for cid, conv in zip(ids, turns, strict=True):
        for i, turn in enumerate(conv):
            where = f"conversation {quoted(cid)}, turn {i + 1}"
            if not isinstance(turn, dict):
                return DataFormatError(path, where, f"a JSON {type(turn).__name__}, not an object")
            for name in ("turn", "input_token_count", "output_token_count"):
                if type(turn.get(name)) not in (int, float, type(None)):
                    return DataFormatError(path, f"{where}, field {quoted(name)}", "not a number")
            ts = turn.get("timestamp")
            if type(ts) not in ((str, type(None)) if wall_clock else (int, float, type(None))):
                what = "date-time text like the first turn's" if wall_clock else "a number of seconds like the first turn's"
                return DataFormatError(path, f"{where}, field 'timestamp'", f"not {what}")
            hashed = turn.get("input_tokens")
            if id_type is not None and hashed is not None and (
                not isinstance(hashed, list) or any(type(v) is not id_type for v in hashed)
            ):
                kind = "integers" if id_type is int else "strings"
                return DataFormatError(path, f"{where}, field 'input_tokens'", f"not a list of {kind} like the first turn's")
    return DataFormatError(path, None, "the turns cannot be read as a table")


def load_conversations(path: str | Path, *, hash_block_size: int | None = None, max_rows: int | None = None) -> LoadedTrace:
    """ServeGen's conversation file (:data:`CONVERSATION_FIELDS`) as a RequestTrace of sessions.

    Every turn is a request: ``session_id`` = the conversation's id (its key or ``conversation_id``,
    else its 0-based position in the file), ``turn_index`` = the turn's rank in its conversation by
    ``turn`` (0 for the first), ``timestamp_s`` = ``timestamp`` minus the file's earliest (a number of
    seconds, or date-time text read as UTC), ``input_tokens`` = ``input_token_count``,
    ``output_tokens`` = ``output_token_count``, ``client_id`` = ``"all"``. The think time between turns
    is the gap between their arrivals (measured by
    :func:`servegen_core.characterize.prefix.sessions`).

    The hashed ``input_tokens`` lists are not token ids and their block size is not documented; they
    are kept as ``hash_ids`` only with ``hash_block_size`` (tokens per entry), and then every list
    must hold ``ceil(input_token_count / hash_block_size)`` entries (strings are mapped to integers by
    their sorted order). Without it they are left out, and ``warnings`` give the tokens per entry.

    Parsed strictly: counts whole and non-negative, ``turn`` values unique within a conversation, a
    conversation's timestamps non-decreasing in turn order. Errors name the file, the conversation
    and the turn (1-based, in file order) and the field. A file above
    :data:`CONVERSATION_MAX_BYTES` or of more turns than ``max_rows`` (default ``$SERVEGEN_MAX_ROWS``:
    :func:`servegen_core.limits.max_rows`) is refused.
    """
    path = Path(path)
    if hash_block_size is not None and not (isinstance(hash_block_size, int) and 0 < hash_block_size <= MAX_BLOCK_SIZE):
        msg = f"hash_block_size must be a whole number of tokens from 1 to {MAX_BLOCK_SIZE}, got {hash_block_size!r}"
        raise OptionError(msg)
    ids, turns = _conversation_turns(path, _conversation_document(path, max_rows))
    lengths = np.fromiter((len(t) for t in turns), dtype=np.int64, count=len(turns))
    limit = default_max_rows() if max_rows is None else max_rows
    if int(lengths.sum()) > limit:
        hint = f"raise ${MAX_ROWS_ENV}" if max_rows is None else "load a file of fewer turns"
        raise InputTooLargeError(path, "turns", int(lengths.sum()), limit, estimated="counted in the document", hint=hint)
    flat = list(itertools.chain.from_iterable(turns))
    first = flat[0]
    wall_clock = isinstance(first, dict) and isinstance(first.get("timestamp"), str)
    raw = _conversation_table(path, ids, turns, flat, wall_clock, hash_block_size is not None)
    raw = raw.with_columns(
        session_id=pl.Series(ids).gather(np.repeat(np.arange(len(ids)), lengths)),
        position=pl.Series(np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1),
    )

    for name in ("turn", "input_token_count", "output_token_count"):
        col = pl.col(name)
        _raise_at_turn(path, raw, col.is_null(), name, "missing")
        _raise_at_turn(path, raw, ~col.is_finite() | (col != col.floor()), name, "not a whole number")
        _raise_at_turn(path, raw, col < 0, name, "negative")
    tokens = max_tokens()
    for name in ("input_token_count", "output_token_count"):
        _raise_at_turn(path, raw, pl.col(name) > tokens, name, f"above the limit of {tokens:,} tokens (${MAX_TOKENS_ENV})")
    _raise_at_turn(path, raw, pl.col("timestamp").is_null(), "timestamp", "missing")
    seconds, start = _conversation_seconds(path, raw, wall_clock)
    raw = raw.with_columns(timestamp_s=seconds)
    _raise_at_turn(path, raw, pl.col("turn").is_duplicated().over("session_id"), "turn", "the same turn number twice in the conversation")
    raw = raw.sort("session_id", "turn", maintain_order=True)
    _raise_at_turn(path, raw, pl.col("timestamp_s").diff().over("session_id") < 0, "timestamp", "earlier than the conversation's previous turn")
    span = max_span_s()
    _raise_at_turn(path, raw, pl.col("timestamp_s") > span, "timestamp", f"the span is above the limit of {span:,.0f} s (${MAX_SPAN_ENV})")
    out = raw.select(
        "timestamp_s",
        pl.lit("all").alias("client_id"),
        pl.col("input_token_count").cast(pl.Int64).alias("input_tokens"),
        pl.col("output_token_count").cast(pl.Int64).alias("output_tokens"),
        "session_id",
        (pl.col("turn").rank("ordinal").over("session_id") - 1).cast(pl.Int64).alias("turn_index"),
    )
    mapped = {"timestamp": "timestamp", "input_tokens": "input_token_count", "output_tokens": "output_token_count",
              "session_id": "conversation", "turn_index": "turn"}
    warnings: list[str] = []
    if hash_block_size is not None:
        out = out.with_columns(hash_ids=_conversation_hash_ids(path, raw, hash_block_size))
        mapped["hash_ids"] = "input_tokens"
    else:
        warnings.extend(_left_out_hashes(raw, first, flat))
    n_multi = int((lengths > 1).sum())
    warnings.append(f"{len(ids):,} conversations ({n_multi:,} of more than one turn), {raw.height:,} turns")
    return _detected_trace(out.sort("timestamp_s", maintain_order=True), path, "servegen_conversations", "json", mapped, warnings, start)


class _RepeatedKey(ValueError):
    """A JSON object of a conversation file names ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads``'s ``object_pairs_hook``: the object as a dict, or :class:`_RepeatedKey` for the
    first key it repeats (JSON leaves duplicates undefined; Python would keep the last silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def conversation_turns_estimate(path: Path) -> int:
    """Turns of a conversation file counted before it is parsed: the occurrences of the key
    ``"input_token_count"`` (one per turn), counted in 1 MB blocks of the raw bytes (nothing kept)."""
    key = b'"input_token_count"'
    count, carry = 0, b""
    with path.open("rb") as fh:
        while block := fh.read(_GZIP_BLOCK):
            data = carry + block  # the carry, shorter than the key, holds no whole key: none is counted twice
            count += data.count(key)
            carry = data[-(len(key) - 1):]
    return count


def _conversation_document(path: Path, max_rows: int | None = None) -> object:
    """The parsed JSON of a conversation file, refused above :data:`CONVERSATION_MAX_BYTES` or, from a
    count of its turns before parsing (:func:`conversation_turns_estimate`), above ``max_rows`` turns;
    a key repeated in an object and nesting deeper than Python parses are errors naming the file."""
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise FileNotFoundError(msg)
    size = path.stat().st_size
    if size > CONVERSATION_MAX_BYTES:
        raise InputTooLargeError(path, "bytes", size, CONVERSATION_MAX_BYTES, estimated="the file's size",
                                 hint="a conversation file is parsed whole")
    limit = default_max_rows() if max_rows is None else max_rows
    turns = conversation_turns_estimate(path)
    if turns > limit:
        hint = f"raise ${MAX_ROWS_ENV}" if max_rows is None else "load a file of fewer turns"
        raise InputTooLargeError(path, "turns", turns, limit, estimated="counted before parsing", hint=hint)
    try:
        return json.loads(path.read_bytes(), parse_constant=_reject_constant, object_pairs_hook=_unique_pairs)
    except _RepeatedKey as exc:
        msg = f"an object names the key {quoted(exc.key)} twice (a conversation file names each key once)"
        raise DataFormatError(path, None, msg) from None
    except RecursionError:
        raise DataFormatError(path, None, "not a conversation file: its JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else None
        raise DataFormatError(path, where, f"not a JSON document: {getattr(exc, 'msg', exc)}") from None


def _conversation_table(
    path: Path, ids: list[str], turns: list[list], flat: list, wall_clock: bool, keep_ids: bool
) -> pl.DataFrame:
    """The turns as a typed table (``turn, timestamp, input_token_count, output_token_count`` and,
    with ``keep_ids``, the hashed ``input_tokens`` lists); a wrongly typed turn is named."""
    first = flat[0]
    # the JSON types, checked without a Python step per turn (Polars would coerce "5" and true)
    numbers = {int, float, type(None)}
    typed = set(map(type, flat)) == {dict} and all(
        set(map(type, map(operator.methodcaller("get", name), flat))) <= ({str, type(None)} if wall_clock and name == "timestamp" else numbers)
        for name in ("turn", "timestamp", "input_token_count", "output_token_count")
    )
    if not typed:
        raise _locate_bad_turn(path, ids, turns, wall_clock)
    textual = False
    schema = {"turn": pl.Float64(), "timestamp": pl.String() if wall_clock else pl.Float64(),
              "input_token_count": pl.Float64(), "output_token_count": pl.Float64()}
    if keep_ids:
        sample = first.get("input_tokens") if isinstance(first, dict) else None
        textual = isinstance(sample, list) and bool(sample) and isinstance(sample[0], str)
        schema["input_tokens"] = pl.List(pl.String() if textual else pl.Int64())
    try:
        raw = pl.from_dicts(flat, schema=schema, strict=True)
    except (pl.exceptions.PolarsError, TypeError, ValueError, AttributeError):
        id_type = (str if textual else int) if keep_ids else None
        raise _locate_bad_turn(path, ids, turns, wall_clock, id_type) from None
    return raw


def _raise_at_turn(path: Path, turns: pl.DataFrame, condition: pl.Expr, field: str, what: str) -> None:
    """Raise :class:`DataFormatError` naming the first of ``turns`` (with ``session_id`` and its
    1-based ``position`` in file order) where ``condition`` holds, if any."""
    bad = turns.filter(condition).head(1)
    if bad.height:
        where = f"conversation {quoted(bad['session_id'][0])}, turn {bad['position'][0]}, field {quoted(field)}"
        raise DataFormatError(path, where, what)


def _conversation_seconds(path: Path, raw: pl.DataFrame, wall_clock: bool) -> tuple[pl.Series, datetime.datetime | None]:
    """Seconds since the file's earliest ``timestamp`` (numbers, or date-time text read as UTC)
    and the wall-clock start (``None`` for numbers)."""
    if not wall_clock:
        _raise_at_turn(path, raw, ~pl.col("timestamp").is_finite() | (pl.col("timestamp") < 0), "timestamp", "not a finite non-negative number")
        return raw["timestamp"] - raw["timestamp"].min(), None
    parsed_expr = (
        pl.col("timestamp").str.strip_chars().str.replace(r"^(\d{4}-\d{2}-\d{2})T", "$1 ")
        .str.replace(r"Z$", "+00:00").str.replace(r"(\d{2}:\d{2}:\d{2}(?:\.\d+)?)$", "$1+00:00")
        .str.to_datetime(format="%Y-%m-%d %H:%M:%S%.f%:z", time_unit="us", strict=False).dt.convert_time_zone("UTC")
    )
    _raise_at_turn(path, raw, parsed_expr.is_null(), "timestamp", "not date-time text like the first turn's")
    parsed = raw.select(parsed_expr)["timestamp"]
    seconds = (parsed - parsed.min()).dt.total_microseconds().cast(pl.Float64) / 1e6
    return seconds, parsed.min().replace(tzinfo=None)


def _conversation_hash_ids(path: Path, raw: pl.DataFrame, block_size: int) -> pl.Series:
    """The hashed ``input_tokens`` lists as ``hash_ids`` (text hashes coded as integers), each
    holding ``ceil(input_token_count / block_size)`` entries."""
    _raise_at_turn(path, raw, pl.col("input_tokens").is_null(), "input_tokens", "missing (hash_block_size was given)")
    if raw.schema["input_tokens"] == pl.List(pl.String()):
        ids = _dense_codes(raw["input_tokens"])
    else:
        _raise_at_turn(path, raw, pl.col("input_tokens").list.min() < 0, "input_tokens", "holds a negative id")
        ids = raw["input_tokens"]
    need = (pl.col("input_token_count") + block_size - 1) // block_size
    _raise_at_turn(path, raw.with_columns(hash_ids=ids), pl.col("hash_ids").list.len() != need, "input_tokens",
                   f"does not hold ceil(input_token_count / {block_size}) entries")
    return ids.alias("hash_ids")


def _left_out_hashes(raw: pl.DataFrame, first: dict, flat: list) -> list[str]:
    """The warning for hashed lists read without a block size (left out), with their measured
    input tokens per entry."""
    present = [c for c in ("input_tokens", "output_tokens") if c in first]
    if not present:
        return []
    per_entry = ""
    try:
        entries = sum(map(len, map(operator.methodcaller("get", "input_tokens", ()), flat)))
    except TypeError:  # not lists everywhere: nothing to measure (they are not read)
        entries = 0
    if entries:
        per_entry = f"; about {raw['input_token_count'].sum() / entries:,.0f} input tokens per input_tokens entry"
    return [
        f"hashed {', '.join(present)} lists left out (their block size is not documented{per_entry}; "
        "pass hash_block_size to keep input_tokens as hash_ids)"
    ]


@dataclass(frozen=True)
class TimestampResolution:
    """How finely a trace's timestamps are recorded.

    ``grid_s`` is the largest step all positive inter-arrival gaps are whole multiples
    of, measured on a :data:`GRID_TICK_S` (100 ns) tick: gaps are rounded to whole ticks
    and the grid is their greatest common divisor, so a grid finer than 100 ns reads as
    100 ns and gaps under 50 ns count as zero. ``quantized`` is true when
    ``grid_s >= QUANTIZED_GRID_S`` (1 ms): at that coarseness simultaneous arrivals
    and a lattice of gaps start to inflate measured burstiness (the inter-arrival CV).
    ``grid_s`` and ``min_gap_s`` are NaN when there is no positive gap.

    Grids recorded with jitter (a poller that stamps requests every 3 s, a few ms late) have
    no exact common divisor: the gaps are also compared with the periods of
    :data:`GRID_CANDIDATES_MS`. A period ``P`` is a grid when at least :data:`GRID_SHARE` of
    all gaps, and of the gaps of at least half a period (at least :data:`GRID_MIN_GAPS` of
    them), lie within ``GRID_JITTER * P`` of a whole multiple of ``P`` (ties, gaps near 0,
    included: a grid whose every tick is occupied has all its gaps at 0 or 1 period). The
    largest such period, when coarser than the exact divisor, is ``grid_s``; ``on_grid_share``
    is the share of gaps within the tolerance, ``exact_share`` the share that are whole
    multiples to the tick, and ``jitter_s`` the largest distance from a multiple among the
    gaps on the grid (0 for an exact grid).
    """

    n_gaps: int
    grid_s: float
    min_gap_s: float
    mean_gap_s: float
    share_zero_gaps: float
    quantized: bool
    message: str
    on_grid_share: float = 1.0
    exact_share: float = 1.0
    jitter_s: float = 0.0


@dataclass(frozen=True)
class LoadedTrace:
    """A raw trace read into the RequestTrace schema.

    ``trace`` is validated (:func:`servegen_core.schema.validate_trace`) and sorted by
    ``timestamp_s``. ``preset`` is the preset used and ``detected`` says whether it was
    detected from the column names. ``columns`` maps each target to the source column
    it came from. ``n_failed`` counts rows flagged ``failed`` (BurstGPT requests with 0
    response tokens); drop them with ``trace.filter(~pl.col("failed"))``.
    """

    trace: pl.DataFrame
    preset: str
    detected: bool
    path: str
    resolution: TimestampResolution
    warnings: tuple[str, ...] = ()
    n_failed: int = 0
    file_format: str = ""
    columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Wall-clock time (UTC, naive) of ``timestamp_s = 0`` when the file gives wall-clock
    #: times (e.g. Azure's ``2023-11-16 18:15:46.68``), else ``None``.
    start_time: datetime.datetime | None = None
    #: Tokens per ``hash_ids`` entry: the ``hash_block_size`` given to :func:`load_trace`, else the
    #: one the layout documents (:data:`FORMAT_HASH_BLOCK_SIZE`), else ``None`` (unknown, or no
    #: ``hash_ids``); what prefix statistics and fits of this trace should use.
    hash_block_size: int | None = None

    @property
    def summary(self) -> str:
        """One paragraph saying what was read and how."""
        how = "detected from the column names" if self.detected else "as requested"
        mapped = ", ".join(f"{src} -> {tgt}" for tgt, src in self.columns.items())
        text = (
            f"{self.trace.height:,} requests read from {self.path} ({self.file_format}) with preset "
            f"'{self.preset}' ({how}); columns {mapped}. {self.resolution.message}"
        )
        if self.n_failed:
            text += f" {self.n_failed:,} failed requests flagged in column 'failed'."
        return text


# --------------------------------------------------------------------------- resolution


def _fmt_s(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if x >= scale:
            return f"{x / scale:.6g} {unit}"
    return f"{x / 1e-9:.6g} ns"


#: Gaps measured at a time by :func:`timestamp_resolution`.
_RESOLUTION_BLOCK = 1 << 20


def timestamp_resolution(ts: pl.Series) -> TimestampResolution:
    """Measure the grid of positive gaps and the share of zero gaps in timestamps (seconds).

    Nulls are ignored and the values are sorted first. See :class:`TimestampResolution`
    for the rule; the result's ``message`` states it in words.
    """
    series = ts.drop_nulls().cast(pl.Float64)
    if not series.is_sorted():
        series = series.sort()
    values = series.to_numpy()
    if values.size and not np.isfinite(values).all():
        msg = "timestamps must be finite to measure their resolution"
        raise ValueError(msg)
    if values.size < 2:
        nan = float("nan")
        return TimestampResolution(0, nan, nan, nan, 0.0, False, "fewer than two timestamps: no resolution to measure")
    n_gaps = int(values.size - 1)
    # Gaps in blocks, so that memory stays a few MB above the timestamps themselves.
    # A gap of 2**62 ticks or more (~14,600 years) does not fit int64 (nor has a float64 any
    # sub-tick digit there): it counts as a positive gap but not towards the grid.
    grid_ticks, min_ticks, zeros = 0, None, 0
    for a in range(0, n_gaps, _RESOLUTION_BLOCK):
        b = min(a + _RESOLUTION_BLOCK, n_gaps)
        ticks = np.rint((values[a + 1 : b + 1] - values[a:b]) / GRID_TICK_S)
        pos = ticks[ticks > 0]
        zeros += (b - a) - pos.size
        if pos.size:
            exact = pos[pos < 2.0**62].astype(np.int64)
            if exact.size:
                grid_ticks = int(np.gcd(grid_ticks, np.gcd.reduce(exact)))
            low = float(pos.min())
            min_ticks = low if min_ticks is None else min(min_ticks, low)
    share_zero = float(zeros) / n_gaps
    mean_gap = float((values[-1] - values[0]) / n_gaps)
    if min_ticks is None:
        nan = float("nan")
        text = f"all {n_gaps:,} gaps are zero: every request has the same timestamp"
        return TimestampResolution(n_gaps, nan, nan, mean_gap, share_zero, True, text)
    # Only gaps too long for the tick grid: the shortest of them stands for the grid.
    grid_s = float(grid_ticks or min_ticks) / (1.0 / GRID_TICK_S)
    min_gap = float(min_ticks) / (1.0 / GRID_TICK_S)
    zeros = f"{share_zero:.2%} of gaps are zero"
    jittered = _jittered_grid(values, n_gaps)
    if jittered is not None and jittered[0] > grid_s * (1 + 1e-9):
        period, on_share, exact_share, jitter = jittered
        text = (
            f"timestamps are quantized: timestamps on a {_fmt_s(period)} grid ({exact_share * 100:.1f} % of the gaps "
            f"multiples of {period * 1000:,.0f} ms, {on_share * 100:.1f} % within ±{_fmt_s(max(jitter, GRID_TICK_S))} of one; "
            f"mean gap {_fmt_s(mean_gap)}, {zeros}); quantization inflates measured burstiness (inter-arrival CV)"
        )
        return TimestampResolution(n_gaps, period, min_gap, mean_gap, share_zero, True, text, on_share, exact_share, jitter)
    quantized = grid_s >= QUANTIZED_GRID_S
    if quantized:
        text = (
            f"timestamps are quantized: timestamps on a {_fmt_s(grid_s)} grid (every gap is a multiple of "
            f"{grid_s * 1000:,.6g} ms; smallest positive gap "
            f"{_fmt_s(min_gap)}, mean gap {_fmt_s(mean_gap)}, {zeros}); quantization inflates measured "
            "burstiness (inter-arrival CV)"
        )
    else:
        finer = " or finer" if grid_ticks == 1 else ""
        text = (
            f"timestamps resolve {_fmt_s(grid_s)}{finer} (smallest positive gap {_fmt_s(min_gap)}, "
            f"mean gap {_fmt_s(mean_gap)}, {zeros}); not quantized (grid below {_fmt_s(QUANTIZED_GRID_S)})"
        )
    return TimestampResolution(n_gaps, grid_s, min_gap, mean_gap, share_zero, quantized, text)


def _jittered_grid(values: np.ndarray, n_gaps: int) -> tuple[float, float, float, float] | None:
    """``(period_s, on_grid_share, exact_share, jitter_s)`` of the largest period of
    :data:`GRID_CANDIDATES_MS` the gaps of the sorted ``values`` lie on, within
    :data:`GRID_JITTER` of a period (see :class:`TimestampResolution`); None when none does."""
    periods = np.asarray(GRID_CANDIDATES_MS, dtype=np.float64) / 1000.0
    P = len(periods)
    near = np.zeros(P, dtype=np.int64)  # gaps within the tolerance of a multiple
    long_ = np.zeros(P, dtype=np.int64)  # gaps of at least half a period
    long_near = np.zeros(P, dtype=np.int64)
    exact = np.zeros(P, dtype=np.int64)
    worst = np.zeros(P)
    for a in range(0, n_gaps, _RESOLUTION_BLOCK):
        b = min(a + _RESOLUTION_BLOCK, n_gaps)
        gaps = values[a + 1 : b + 1] - values[a:b]
        for i, period in enumerate(periods):  # a loop over the few candidate periods
            k = np.rint(gaps / period)
            off = np.abs(gaps - k * period)
            on = off <= GRID_JITTER * period
            near[i] += int(on.sum())
            is_long = k >= 1
            long_[i] += int(is_long.sum())
            long_near[i] += int((on & is_long).sum())
            exact[i] += int((off < GRID_TICK_S / 2).sum())
            if on.any():
                worst[i] = max(worst[i], float(off[on].max()))
    ok = (long_ >= GRID_MIN_GAPS) & (long_near >= GRID_MIN_GAPS) & (near >= GRID_SHARE * n_gaps) & (long_near >= GRID_SHARE * np.maximum(long_, 1))
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[-1])
    return float(periods[i]), float(near[i] / n_gaps), float(exact[i] / n_gaps), float(worst[i])


# --------------------------------------------------------------------------- presets


def detect_preset(columns: Iterable[str], *, source: str | Path | None = None) -> str:
    """The first preset (in :data:`PRESETS` order, ``generic`` excluded) whose required columns are all present.

    Raises :class:`DataFormatError` listing every preset and the columns it needs when
    none matches.
    """
    names = set(columns)
    for preset in PRESETS.values():
        if preset.name == "generic":
            continue
        if all(any(s in names for s in srcs) for srcs in preset.required.values()):
            return preset.name
    needs = "; ".join(f"{p.name} needs {p.needs()}" for p in PRESETS.values())
    msg = f"no preset matches the columns {quoted(sorted(names), limit=_LIST_LIMIT)}: {needs}"
    raise DataFormatError(source, None, msg)


def _mapping(
    preset: Preset,
    available: list[str],
    columns: Mapping[str, str] | None,
    client_column: str | None,
    path: Path,
) -> dict[str, str]:
    """Target -> source column, from the preset, then the user's ``columns``, then ``client_column``."""
    user = dict(columns or {})
    for target in user:
        if target not in TARGETS:
            msg = f"unknown target {quoted(target)} in columns; choose from {list(TARGETS)}"
            raise OptionError(msg)
    if client_column is not None:
        if user.get("client_id", client_column) != client_column:
            msg = f"client_column={quoted(client_column)} contradicts columns['client_id']={quoted(user['client_id'])}"
            raise OptionError(msg)
        user["client_id"] = client_column
    if preset.name == "generic":
        missing = [t for t in _REQUIRED_TARGETS if t not in user]
        if missing:
            msg = f"preset 'generic' needs columns={{...}} mapping {missing} to column names"
            raise OptionError(msg)
    mapping: dict[str, str] = {}
    absent: list[tuple[str, ...]] = []
    for target, srcs in {**preset.required, **preset.optional}.items():
        found = next((s for s in srcs if s in available), None)
        if found is not None:
            mapping[target] = found
        elif target in preset.required and target not in user:
            absent.append(srcs)
    if absent:
        names = ", ".join(" or ".join(map(repr, srcs)) for srcs in absent)
        msg = (
            f"required column(s) {names} not found: preset '{preset.name}' needs {preset.needs()}; "
            f"the file has {quoted(available, limit=_LIST_LIMIT)}"
        )
        raise DataFormatError(path, f"column {quoted(absent[0][0])}", msg)
    mapping.update(user)
    for target, src in mapping.items():
        if src not in available:
            msg = f"column {quoted(src)} (mapped to {target}) not found; the file has {quoted(available, limit=_LIST_LIMIT)}"
            raise DataFormatError(path, f"column {quoted(src)}", msg)
    sources = list(mapping.values())
    dup = sorted({s for s in sources if sources.count(s) > 1})
    if dup:
        msg = f"column(s) {dup} mapped to more than one target"
        raise OptionError(msg)
    return mapping


# --------------------------------------------------------------------------- reading


#: Rows per batch of the streaming read (memory of one batch's text, progress granularity).
_BATCH_ROWS = 1_000_000

#: A gzip file that decompresses to at most this many bytes is held in memory; a larger one is
#: decompressed (as a stream) into a temporary file that is deleted after loading.
_GZIP_IN_MEMORY_BYTES = 256 * 1024 * 1024
_GZIP_BLOCK = 1 << 20


def _too_large_gzip(path: Path, limit: int) -> DataFormatError:
    msg = (
        f"decompresses to more than {limit / 2**20:,.0f} MB, the limit for compressed input "
        f"(${MAX_DECOMPRESSED_ENV}); not read (a gzip bomb, or raise the limit)"
    )
    return DataFormatError(path, None, msg)


def _gunzip_size(path: Path, limit: int) -> int:
    """Decompressed size of a gzip file, counted by streaming (nothing kept); raises past ``limit``."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(_GZIP_BLOCK):
                total += len(block)
                if total > limit:
                    raise _too_large_gzip(path, limit)
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"not a valid gzip file ({exc})"
        raise DataFormatError(path, None, msg) from None
    return total


@dataclass(frozen=True)
class _Count:
    """What one streaming pass over a text file (decompressed, for a ``.gz``) found."""

    lines: int  # physical lines seen (a last line without a newline counts)
    size: int  # bytes read (decompressed)
    complete: bool  # the whole file was read
    estimate: int  # lines the whole file holds: counted when complete, else extrapolated


def _count_lines(path: Path, *, gz: bool, line_cap: int, byte_limit: int | None) -> _Count:
    """Count the lines of a text file in blocks of ``_GZIP_BLOCK`` bytes (nothing kept),
    stopping once more than ``line_cap`` lines are seen; a ``.gz`` file is decompressed as a
    stream and refused past ``byte_limit`` decompressed bytes. A pass that stops early
    extrapolates the line count from the (compressed) bytes read so far."""
    lines = size = 0
    last = b"\n"
    total = path.stat().st_size
    try:
        with path.open("rb") as raw, (gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw) as fh:
            while block := fh.read(_GZIP_BLOCK):
                size += len(block)
                if byte_limit is not None and size > byte_limit:
                    raise _too_large_gzip(path, byte_limit)
                lines += block.count(b"\n")
                last = block[-1:]
                if lines > line_cap and (gz or raw.tell() < total):
                    estimate = int(lines * total / raw.tell()) if raw.tell() else lines
                    return _Count(lines, size, complete=False, estimate=max(lines, estimate))
    except (OSError, EOFError, zlib.error) as exc:
        if not gz:
            raise
        msg = f"not a valid gzip file ({exc})"
        raise DataFormatError(path, None, msg) from None
    lines += last != b"\n"
    return _Count(lines, size, complete=True, estimate=lines)


def _csv_field_count(head: bytes) -> int:
    """Fields of a CSV header record (its bytes, as :func:`_csv_header_bytes` reads them)."""
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    try:
        return len(next(csv.reader(io.StringIO(text, newline="")), []))
    except csv.Error:
        return text.count(",") + 1


class _Source:
    """A file on disk: its format, bytes (decompressed, read only when needed) and Polars input.

    Before anything is loaded, the file's size as a table is estimated and refused above
    ``max_rows`` rows, ``max_columns`` columns or ``max_rows`` x
    :data:`~servegen_core.limits.CELLS_PER_ROW` cells (rows x columns read), with
    :class:`~servegen_core.errors.InputTooLargeError`: Parquet rows and columns from the file
    metadata; CSV columns from the header and CSV/JSON Lines rows by counting lines in a
    streaming pass (nothing kept, stopped past the limit; skipped when the file has fewer
    bytes than the limit allows rows). A ``.gz`` file is measured by that streaming
    decompression (refused past :func:`servegen_core.limits.max_decompressed_bytes`), then
    decompressed into memory when small or into a temporary file when large; :meth:`close`
    deletes that file.
    """

    def __init__(self, path: Path, *, max_rows: int, max_columns: int, env_limits: bool = True) -> None:
        self.path = path
        suffixes = [s.lower() for s in path.suffixes]
        self.gzip = bool(suffixes) and suffixes[-1] == ".gz"
        if self.gzip:
            suffixes = suffixes[:-1]
        fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
        if fmt is None:
            msg = f"unknown file type; use one of {sorted(set(_FORMATS))}, optionally followed by .gz"
            raise DataFormatError(path, None, msg)
        self.format = fmt
        self.max_rows = max_rows
        self.max_columns = max_columns
        self._env_limits = env_limits
        #: Rows the file holds (an upper bound: Parquet rows, or text lines after the header).
        self.rows: int | None = None
        self._data: bytes | None = None
        self._plain: Path | None = None  # decompressed temporary file of a large .gz
        if not self.gzip and path.stat().st_size == 0:
            raise DataFormatError(path, None, "the file is empty")
        size = self._check_text_shape() if self.text_based else None
        if self.gzip:
            if size is None:
                size = _gunzip_size(path, max_decompressed_bytes())
            if size <= _GZIP_IN_MEMORY_BYTES:
                with gzip.open(path, "rb") as fh:
                    self._data = fh.read()
                if not self._data.strip():
                    raise DataFormatError(path, None, "the file is empty (after gzip decompression)")
            else:
                self._plain = self._gunzip_to_temp()
        if self.format == "parquet":
            self._check_parquet_shape()

    # -- the load budget -------------------------------------------------------------------

    def _hint(self, env: str) -> str:
        if self._env_limits:
            return f"load a smaller file, or raise ${env}"
        return "load a smaller file: this door takes fewer rows and columns than the command line"

    def too_many(self, quantity: str, value: int, limit: int, *, estimated: str, at_least: bool = False) -> InputTooLargeError:
        """The error for a file estimated to hold ``value`` rows, columns or cells (``quantity``)."""
        env = MAX_COLUMNS_ENV if quantity == "columns" else MAX_ROWS_ENV
        return InputTooLargeError(self.path, quantity, value, limit, estimated=estimated, hint=self._hint(env), at_least=at_least)

    def check_columns(self, n_columns: int, *, estimated: str) -> None:
        """Refuse a file of more than ``max_columns`` columns."""
        if n_columns > self.max_columns:
            raise self.too_many("columns", n_columns, self.max_columns, estimated=estimated)

    def check_cells(self, n_columns: int) -> None:
        """Refuse reading ``n_columns`` columns of :attr:`rows` rows above the cell budget."""
        budget = self.max_rows * CELLS_PER_ROW
        if self.rows is not None and self.rows * n_columns > budget:
            raise self.too_many(
                "cells", self.rows * n_columns, budget,
                estimated=f"{self.rows:,} rows x {n_columns:,} columns read; the budget is {CELLS_PER_ROW} cells per row "
                f"of the row limit",
            )

    def _check_text_shape(self) -> int | None:
        """Check a CSV's columns and a text file's rows; return the decompressed size of a
        ``.gz`` file when the pass measured it whole."""
        path = self.path
        n_columns = 1
        header_lines = 0
        if self.format == "csv":
            try:
                with path.open("rb") as raw, (gzip.GzipFile(fileobj=raw, mode="rb") if self.gzip else raw) as fh:
                    head = _csv_header_bytes(fh, path)
            except (OSError, EOFError, zlib.error) as exc:
                if not self.gzip:
                    raise
                msg = f"not a valid gzip file ({exc})"
                raise DataFormatError(path, None, msg) from None
            n_columns = max(1, _csv_field_count(head))
            self.check_columns(n_columns, estimated="fields of the header line")
            header_lines = max(1, head.count(b"\n"))
        row_cap = min(self.max_rows, self.max_rows * CELLS_PER_ROW // n_columns)
        if not self.gzip and path.stat().st_size < row_cap:
            return None  # every line holds at least one byte: too few bytes for too many rows
        count = _count_lines(
            path, gz=self.gzip, line_cap=row_cap + header_lines, byte_limit=max_decompressed_bytes() if self.gzip else None,
        )
        rows = max(0, count.estimate - header_lines)
        self.rows = rows
        if rows > row_cap:
            what = "decompressed text" if self.gzip else "file"
            how = (
                f"{count.lines:,} lines counted in the first {count.size / 2**20:,.1f} MB of the {what}, "
                "extrapolated to the whole file"
                if not count.complete
                else f"lines counted in the {what}"
            )
            if rows > self.max_rows:
                raise self.too_many("rows", rows, self.max_rows, estimated=how)
            self.check_cells(n_columns)
        return count.size if self.gzip and count.complete else None

    def _check_parquet_shape(self) -> None:
        """Check a Parquet file's rows and columns, read from its metadata (the data is not read)."""
        try:
            n_columns = len(_parquet_columns(self.polars_input()))
            rows = pl.scan_parquet(self.polars_input(), glob=False).select(pl.len()).collect().item()
        except (pl.exceptions.PolarsError, OSError):
            return  # not valid Parquet: reading the columns says so, naming the problem
        self.rows = int(rows)
        self.check_columns(n_columns, estimated="from the Parquet metadata")
        if self.rows > self.max_rows:
            raise self.too_many("rows", self.rows, self.max_rows, estimated="from the Parquet metadata")

    def _gunzip_to_temp(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="servegen-gunzip-", suffix=f".{self.format}")
        try:
            with gzip.open(self.path, "rb") as src, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, _GZIP_BLOCK)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def close(self) -> None:
        """Delete the decompressed temporary file, if any."""
        if self._plain is not None:
            self._plain.unlink(missing_ok=True)
            self._plain = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = (self._plain or self.path).read_bytes()
        return self._data

    def polars_input(self) -> Path | io.BytesIO:
        if self._plain is not None:
            return self._plain
        return io.BytesIO(self._data) if self.gzip else self.path

    @property
    def text_based(self) -> bool:
        return self.format in ("csv", "jsonl")


def _polars_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _utf8_problem(src: _Source) -> tuple[int, str] | None:
    data = src.data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return line, f"byte 0x{data[exc.start]:02x} at byte {col} of the line is not valid UTF-8"
    return None


def _text(src: _Source) -> str:
    return src.data.decode("utf-8").removeprefix("\ufeff")


class _CsvError(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def _csv_records(src: _Source) -> Iterable[tuple[int, list[str]]]:
    """(start line, fields) for every CSV record after the header; blank lines give [].

    Raises :class:`_CsvError` with the start line of a record the ``csv`` module rejects.
    """
    reader = csv.reader(io.StringIO(_text(src), newline=""), strict=True)
    prev = 0
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _CsvError(prev + 1, f"malformed CSV: {exc}") from None
        if prev:
            yield prev + 1, rec
        prev = reader.line_num


def _csv_diagnose(src: _Source, n_columns: int) -> tuple[int, str] | None:
    """The first line that is not valid UTF-8, not valid CSV or has the wrong number of fields."""
    bad = _utf8_problem(src)
    if bad:
        return bad
    try:
        for line, rec in _csv_records(src):
            if rec and len(rec) != n_columns:
                problem = f"the line has {len(rec)} field(s), the header has {n_columns} (truncated or malformed line)"
                return line, problem
    except _CsvError as exc:
        return exc.line, exc.problem
    return None


def _jsonl_lines(src: _Source) -> Iterable[tuple[int, str]]:
    """(line number, text) of every non-blank line."""
    for number, line in enumerate(_text(src).splitlines(), start=1):
        if line.strip():
            yield number, line


def _reject_constant(name: str) -> float:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _json_object(line: str) -> dict:
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc.msg} at character {exc.colno}"
        raise ValueError(msg) from None
    except RecursionError:
        msg = "not valid here: the JSON is nested too deeply"
        raise ValueError(msg) from None
    if not isinstance(obj, dict):
        msg = f"expected a JSON object, got {type(obj).__name__}"
        raise ValueError(msg)
    return obj


def _jsonl_diagnose(src: _Source, list_fields: Iterable[str]) -> tuple[int, str] | None:
    bad = _utf8_problem(src)
    if bad:
        return bad
    list_fields = tuple(list_fields)
    for number, line in _jsonl_lines(src):
        try:
            obj = _json_object(line)
        except ValueError as exc:
            return number, str(exc)
        for name, value in obj.items():  # e.g. 1e999: valid JSON, but no float64 holds it
            if isinstance(value, float) and not math.isfinite(value):
                return number, f"field {quoted(name)} is not a finite number (too large for a float64)"
        for name in list_fields:
            value = obj.get(name)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                what = "a list holding a non-integer" if isinstance(value, list) else f"a JSON {type(value).__name__}"
                return number, f"field {quoted(name)} must be a list of integers, got {what}"
    return None


def _columns(src: _Source) -> list[str]:
    """Column names: the CSV header, the Parquet schema, or the keys of the first JSON line (and
    ``delay`` when the file mentions it: a closed-loop conversation's first turn has none)."""
    try:
        if src.format == "csv":
            return list(pl.scan_csv(src.polars_input(), infer_schema=False, glob=False).collect_schema())
        if src.format == "parquet":
            return _parquet_columns(src.polars_input())
    except pl.exceptions.NoDataError:
        raise DataFormatError(src.path, None, "the file is empty") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        if src.format == "csv":
            bad = _utf8_problem(src)
            if bad:
                raise DataFormatError(src.path, f"line {bad[0]}", bad[1]) from None
        msg = f"cannot be read as {src.format}: {_polars_message(exc)}"
        raise DataFormatError(src.path, None, msg) from None
    bad = _utf8_problem(src)
    if bad:
        raise DataFormatError(src.path, f"line {bad[0]}", bad[1])
    first = next(iter(_jsonl_lines(src)), None)
    if first is None:
        raise DataFormatError(src.path, None, "the file has no JSON lines")
    try:
        names = list(_json_object(first[1]))
    except ValueError as exc:
        raise DataFormatError(src.path, f"line {first[0]}", str(exc)) from None
    if "delay" not in names and b'"delay"' in src.data:  # a closed-loop file: its first turn has no delay
        names.append("delay")
    if "delay" in names and "timestamp" not in names and b'"timestamp"' in src.data:  # refused as no first turn
        names.append("timestamp")
    return names


#: Longest CSV header (bytes) :func:`trace_columns` reads before giving up.
_MAX_HEADER_BYTES = 1 << 20
#: Longest JSON line (bytes) :func:`trace_columns` reads before giving up.
_MAX_JSON_LINE_BYTES = 64 << 20


def _header_format(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        msg = f"unknown file type; use one of {sorted(set(_FORMATS))}, optionally followed by .gz"
        raise DataFormatError(path, None, msg)
    return fmt, gz


def _csv_header_bytes(fh: io.BufferedIOBase, path: Path) -> bytes:
    """The bytes of the first CSV record (several physical lines when a quoted name holds a newline)."""
    head = b""
    while True:
        line = fh.readline(_MAX_HEADER_BYTES + 1 - len(head))
        head += line
        if not line or head.count(b'"') % 2 == 0:
            break
        if len(head) > _MAX_HEADER_BYTES:
            break
    if len(head) > _MAX_HEADER_BYTES:
        msg = f"the header line is longer than {_MAX_HEADER_BYTES:,} bytes"
        raise DataFormatError(path, "line 1", msg)
    return head


def trace_columns(path: str | Path, *, max_columns: int | None = None) -> list[str]:
    """The column names of a trace file, read from its header only.

    CSV: the first line (the names :func:`load_trace` sees, e.g. ``a_duplicated_0`` for a
    repeated name); Parquet: the schema in the file footer; JSON Lines: the keys of the
    first non-blank line. A ``.gz`` file is decompressed as a stream up to that point
    (all of it for Parquet, whose schema sits at the end), never past
    :func:`servegen_core.limits.max_decompressed_bytes`. The format is chosen by suffix,
    as in :func:`load_trace`.

    Raises :class:`DataFormatError` naming the file (and the line where there is one) when
    the suffix is unknown, the file is empty, not valid gzip/UTF-8/CSV/Parquet/JSON, or
    the first JSON line is not an object; :class:`FileNotFoundError` when ``path`` is not a
    file (as :func:`load_trace`). A file of more than ``max_columns`` columns (default
    :func:`servegen_core.limits.max_columns`) raises
    :class:`~servegen_core.errors.InputTooLargeError` (a CSV's are counted before they are parsed).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise FileNotFoundError(msg)
    limit = default_max_columns() if max_columns is None else max_columns
    names = _column_names(path, limit, env_limit=max_columns is None)
    if len(names) > limit:
        raise _too_many_columns(path, len(names), limit, env_limit=max_columns is None)
    return names


def _too_many_columns(path: Path, n_columns: int, limit: int, *, env_limit: bool) -> InputTooLargeError:
    hint = f"load a smaller file, or raise ${MAX_COLUMNS_ENV}" if env_limit else "load a file of fewer columns"
    return InputTooLargeError(path, "columns", n_columns, limit, estimated="from the header", hint=hint)


def _column_names(path: Path, limit: int, *, env_limit: bool) -> list[str]:
    """:func:`trace_columns` without the final column check (a CSV header is checked before it is parsed)."""
    fmt, gz = _header_format(path)
    if gz and fmt == "parquet":
        _gunzip_size(path, max_decompressed_bytes())
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as fh:
            if fmt == "parquet":
                data = fh.read() if gz else None
                if data is not None and not data:
                    raise DataFormatError(path, None, "the file is empty")
                try:
                    return _parquet_columns(io.BytesIO(data) if gz else path)
                except (pl.exceptions.PolarsError, OSError) as exc:
                    msg = f"cannot be read as parquet: {_polars_message(exc)}"
                    raise DataFormatError(path, None, msg) from None
            if fmt == "csv":
                head = _csv_header_bytes(fh, path)
                if not head.strip():
                    raise DataFormatError(path, "line 1" if head else None, "the file is empty" if not head else "the header line is blank")
                try:
                    head.decode("utf-8")
                except UnicodeDecodeError as exc:
                    msg = f"byte 0x{head[exc.start]:02x} at byte {exc.start + 1} of the header is not valid UTF-8"
                    raise DataFormatError(path, "line 1", msg) from None
                n_fields = _csv_field_count(head)
                if n_fields > limit:
                    raise _too_many_columns(path, n_fields, limit, env_limit=env_limit)
                try:
                    return pl.read_csv(io.BytesIO(head), infer_schema=False, n_rows=0).columns
                except pl.exceptions.PolarsError as exc:
                    msg = f"cannot be read as csv: {_polars_message(exc)}"
                    raise DataFormatError(path, "line 1", msg) from None
            # A .gz file is read no further than the decompression limit (blank lines included).
            limit = max_decompressed_bytes() if gz else None
            cap = _MAX_JSON_LINE_BYTES if limit is None else min(_MAX_JSON_LINE_BYTES, limit)
            consumed = 0
            for number, raw in enumerate(iter(lambda: fh.readline(cap + 1), b""), start=1):
                consumed += len(raw)
                if limit is not None and consumed > limit:
                    raise _too_large_gzip(path, limit)
                if len(raw) > _MAX_JSON_LINE_BYTES:
                    msg = f"the line is longer than {_MAX_JSON_LINE_BYTES:,} bytes"
                    raise DataFormatError(path, f"line {number}", msg)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    msg = f"byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line is not valid UTF-8"
                    raise DataFormatError(path, f"line {number}", msg) from None
                if number == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                try:
                    return list(_json_object(line))
                except ValueError as exc:
                    raise DataFormatError(path, f"line {number}", str(exc)) from None
            raise DataFormatError(path, None, "the file has no JSON lines")
    except (OSError, EOFError, zlib.error) as exc:
        if gz:
            msg = f"not a valid gzip file ({exc})"
            raise DataFormatError(path, None, msg) from None
        raise


def _parquet_columns(source: Path | io.BytesIO) -> list[str]:
    """Column names of a Parquet file or buffer (a path is taken literally, never as a glob)."""
    if isinstance(source, Path):
        return list(pl.scan_parquet(source, glob=False).collect_schema())
    return list(pl.read_parquet_schema(source))


def _scan(src: _Source, available: list[str], sources: list[str], kinds: dict[str, str]) -> pl.LazyFrame:
    # Paths are file names, not glob patterns: a name like "x[1].csv" is read as it is.
    source = src.polars_input()
    if src.format == "csv":
        # Every column is read (as text) so that a line with too many fields is an error.
        return pl.scan_csv(source, infer_schema=False, glob=False)
    if src.format == "parquet":
        return pl.scan_parquet(source, glob=False).select(sources)
    schema = {s: (pl.List(pl.Int64()) if kinds[s] == KIND_LIST else pl.String()) for s in sources}
    # scan_ndjson has no glob switch: escape the pattern characters so the path matches only itself.
    return pl.scan_ndjson(_glob_escape(str(source)) if isinstance(source, Path) else source, schema=schema)


# --------------------------------------------------------------------------- parsing


_NUM_DTYPES = (pl.Float32, pl.Float64)
_DT_PATTERN = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$"
_PLAIN_DT = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
_DEC = pl.Decimal(38, 9)


def _blank(c: pl.Expr) -> pl.Expr:
    return c.is_null() | (c.str.strip_chars() == "")


def _whole(f: pl.Expr) -> pl.Expr:
    return pl.when(f.is_finite() & (f == f.round(0)) & (f.abs() < 9.2e18)).then(f.cast(pl.Int64, strict=False))


def _parse_int(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    c = pl.col(name)
    if dtype.is_integer():
        return c.cast(pl.Int64, strict=False), c.is_null()
    if isinstance(dtype, _NUM_DTYPES):
        return _whole(c.cast(pl.Float64)), c.is_null()
    if dtype == pl.String():
        s = c.str.strip_chars()
        return pl.coalesce(s.cast(pl.Int64, strict=False), _whole(s.cast(pl.Float64, strict=False))), _blank(c)
    return pl.lit(None, pl.Int64), pl.lit(True)  # noqa: FBT003  (wrong dtype: every row fails)


def _parse_float(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    c = pl.col(name)
    if dtype.is_numeric():
        return c.cast(pl.Float64), c.is_null()
    if dtype == pl.String():
        return c.str.strip_chars().cast(pl.Float64, strict=False), _blank(c)
    return pl.lit(None, pl.Float64), pl.lit(True)  # noqa: FBT003


def _parse_bool(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    c = pl.col(name)
    if dtype == pl.Boolean():
        return c, c.is_null()
    if dtype.is_integer():
        return pl.when(c == 1).then(True).when(c == 0).then(False), c.is_null()  # noqa: FBT003
    if dtype == pl.String():
        s = c.str.strip_chars().str.to_lowercase()
        return (
            pl.when(s.is_in(["true", "1"])).then(True).when(s.is_in(["false", "0"])).then(False),  # noqa: FBT003
            _blank(c),
        )
    return pl.lit(None, pl.Boolean), pl.lit(True)  # noqa: FBT003


def _parse_wallclock(c: pl.Expr) -> pl.Expr:
    """Wall-clock text -> Int64 nanoseconds since the epoch (UTC); null where it does not parse."""
    g = c.str.strip_chars().str.extract_groups(_DT_PATTERN)
    base = pl.concat_str(g.struct.field("1"), pl.lit(" "), g.struct.field("2")).str.to_datetime(
        "%Y-%m-%d %H:%M:%S", time_unit="ns", strict=False
    )
    frac = g.struct.field("3").str.pad_end(9, "0").cast(pl.Int64, strict=False).fill_null(0)
    tz = g.struct.field("4").str.replace(":", "", literal=True)
    sign = pl.when(tz.str.slice(0, 1) == "-").then(-1).otherwise(1)
    hours = tz.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = tz.str.slice(3, 2).cast(pl.Int64, strict=False)
    offset_s = pl.when(tz.is_null() | (tz == "Z")).then(0).otherwise(sign * (hours * 3600 + minutes * 60))
    return base.cast(pl.Int64) + frac - offset_s * 1_000_000_000


def _parse_time(
    name: str, dtype: pl.DataType, unit: str, sample: str | None, *, as_float: bool = False
) -> tuple[pl.Expr, pl.Expr, str]:
    """(parsed value, missing flag, representation) where representation tells how to reach seconds.

    ``sample`` is the column's first non-empty text value: when it is a plain
    ``YYYY-MM-DD HH:MM:SS[.fffffffff]`` wall clock the column is parsed with one
    fixed format (fast, exact to the nanosecond); otherwise with the general pattern.
    ``as_float``: decimal text is read as the float64 it spells (correctly rounded), for
    seconds kept as written (the ``servegen`` preset): this project's CSV/JSON Lines write
    the shortest text that reads back as the same float64, so a reload is bit-exact.
    """
    c = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        d = c.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if dtype.time_zone else c
        return d.cast(pl.Datetime("ns")).cast(pl.Int64), c.is_null(), "ns"
    if isinstance(dtype, pl.Date):
        return c.cast(pl.Datetime("ns")).cast(pl.Int64), c.is_null(), "ns"
    if unit == DATETIME:
        if dtype == pl.String():
            if sample is not None and re.fullmatch(_PLAIN_DT, sample.strip()):
                fast = c.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=False).cast(pl.Int64)
                return fast, _blank(c), "ns"
            return _parse_wallclock(c), _blank(c), "ns"
        return pl.lit(None, pl.Int64), pl.lit(True), "ns"  # noqa: FBT003
    if dtype.is_integer():
        return c.cast(pl.Int64, strict=False), c.is_null(), "int"
    if isinstance(dtype, _NUM_DTYPES):
        f = c.cast(pl.Float64)
        return pl.when(f.is_finite()).then(f), c.is_null(), "float"
    if dtype == pl.String():
        s = c.str.strip_chars()
        f = s.cast(pl.Float64, strict=False)
        if as_float:
            return pl.when(f.is_finite()).then(f), _blank(c), "float"
        exact = s.cast(_DEC, strict=False)
        # Exact decimal where it fits; finite scientific notation ("1e3") through float64.
        fallback = pl.when(f.is_finite() & (f.abs() < 1e28)).then(f.cast(_DEC, strict=False))
        return pl.coalesce(exact, fallback), _blank(c), "decimal"
    return pl.lit(None, pl.Int64), pl.lit(True), "int"  # noqa: FBT003


def _expected(kind: str, unit: str | None) -> str:
    if kind == KIND_TIME:
        if unit == DATETIME:
            return "a date-time like 2023-11-16 18:15:46.6805900"
        return f"a number (time unit {unit})"
    return {
        KIND_INT: "a whole non-negative number",
        KIND_FLOAT: "a number",
        KIND_BOOL: "true/false",
        KIND_LIST: "a list of integers",
        KIND_STR: "text",
    }[kind]


# --------------------------------------------------------------------------- loader


def _unit(preset: Preset, time_unit: str | None) -> str:
    unit = time_unit if time_unit is not None else preset.time_unit
    if unit is None:
        msg = f"preset 'generic' needs time_unit, one of {[*TIME_UNITS, DATETIME]}"
        raise OptionError(msg)
    if unit not in TIME_UNITS and unit != DATETIME:
        msg = f"unknown time_unit {quoted(unit)}; choose from {[*TIME_UNITS, DATETIME]}"
        raise OptionError(msg)
    return unit


class _Locator:
    """Turns a 0-based Polars row index into the place in the file (computed on failure paths only)."""

    def __init__(self, src: _Source) -> None:
        self.src = src

    def line(self, row: int) -> int | None:
        if self.src.format == "csv":
            try:
                for i, (line, _rec) in enumerate(_csv_records(self.src)):
                    if i == row:
                        return line
            except _CsvError:
                return None
            return None
        if self.src.format == "jsonl":
            for i, (line, _text_) in enumerate(_jsonl_lines(self.src)):
                if i == row:
                    return line
            return None
        return None

    def where(self, row: int, column: str | None = None) -> str:
        line = self.line(row)
        place = f"line {line}" if line is not None else f"row {row + 1}"
        if column is not None:
            place += f", {'field' if self.src.format == 'jsonl' else 'column'} {quoted(column)}"
        return place


def load_trace(
    path: str | Path,
    *,
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    client_column: str | None = None,
    sort: bool = True,
    max_span_s: float | None = None,
    max_rows: int | None = None,
    max_columns: int | None = None,
    progress: Callable[[int], object] | None = None,
    hash_block_size: int | None = None,
) -> LoadedTrace:
    """Read a raw request trace into a validated RequestTrace.

    Parameters
    ----------
    path:
        A ``.csv``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson`` file, optionally ``.gz``; a
        ``.json`` file is ServeGen's conversation file, read by :func:`load_conversations`.
    preset:
        A key of :data:`PRESETS`. ``None`` detects it from the column names
        (:func:`detect_preset`), or means ``generic`` when ``columns`` is given.
    columns:
        Target -> source column name (targets are the keys of :data:`TARGETS`, e.g.
        ``{"timestamp": "ts", "input_tokens": "prompt", "output_tokens": "completion"}``).
        Required for ``generic``; with another preset it overrides or adds to the
        preset's own mapping.
    time_unit:
        Unit of the source time column: ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or
        ``"datetime"``; overrides the preset's. A native date-time column is always
        read as date-times.
    client_column:
        Source column to use as ``client_id`` (same as ``columns={"client_id": ...}``).
        Without one, ``client_id`` is ``"all"`` for every request.
    sort:
        Sort rows by timestamp (stable) when they are out of order and say so in
        ``warnings``; with ``False`` an unsorted file is an error.
    max_span_s:
        Longest time span accepted (seconds; default
        :func:`servegen_core.limits.max_span_s`, 366 days or ``$SERVEGEN_MAX_SPAN_S``).
        A longer span (or, for the ``servegen`` preset, a later timestamp) is an error
        naming the column and suggesting the time unit the values look like.
    max_rows, max_columns:
        The load budget (default :func:`servegen_core.limits.max_rows` and
        :func:`~servegen_core.limits.max_columns`: ``$SERVEGEN_MAX_ROWS``,
        ``$SERVEGEN_MAX_COLUMNS``); a door that loads a visitor's upload passes the tighter
        ``max_rows(upload=True)`` and ``max_columns(upload=True)``. See "Limits".
    progress:
        Called with the number of rows read so far, after each batch of
        :data:`_BATCH_ROWS` rows (e.g. to draw a progress bar for a large file).
    hash_block_size:
        Tokens per ``hash_ids`` entry of this file, for a trace whose block size is not its
        layout's documented one (:data:`FORMAT_HASH_BLOCK_SIZE`: 512 for Mooncake, 16 for the
        Bailian and ServeGen offline releases), e.g. a ``vllm`` export's 16-token ids read with
        the ``timed_trace`` preset. It becomes :attr:`LoadedTrace.hash_block_size`, and every
        ``hash_ids`` list must then hold between ``floor(input_tokens / B)`` and
        ``ceil(input_tokens / B)`` ids (a file of other blocks is refused, naming the first row
        that contradicts it). A ServeGen conversation file keeps its hashed input lists as
        ``hash_ids`` only with it (:func:`load_conversations`).

    Limits
    ------
    Before the file's body is read its size as a table is estimated, and a file of more than
    ``max_rows`` rows, ``max_columns`` columns, or more than ``max_rows`` x
    :data:`~servegen_core.limits.CELLS_PER_ROW` cells read (rows x the columns read: every
    column of a CSV, the mapped ones of Parquet and JSON Lines) is refused with
    :class:`~servegen_core.errors.InputTooLargeError` naming the file, the estimate, how it
    was made and the limit. Parquet rows and columns come from the file metadata; CSV columns
    from the header; CSV and JSON Lines rows from a count of the lines (of the decompressed
    stream for ``.gz``), read in 1 MB blocks and stopped once past the limit, when the
    file's bytes could hold that many lines. A ``.gz`` file is refused when it decompresses to more than
    :func:`servegen_core.limits.max_decompressed_bytes`. Token counts (``*_tokens``) and
    item counts (``*_count``) above :func:`servegen_core.limits.max_tokens` are errors naming
    the line and column, and so is a ``hash_ids`` list whose length cannot be the block
    count of its request's ``input_tokens`` (more blocks than tokens, or blocks of more than
    :data:`servegen_core.limits.MAX_BLOCK_SIZE` tokens) or that holds a negative id or one of
    2**62 or more. Error messages name the place, never quote the file's cells.

    Raises
    ------
    DataFormatError
        The file is empty, unreadable, lacks a required column, holds a value that
        does not parse, or is above a limit; the message names the file and the
        line/row and column.
    ValueError
        The arguments are inconsistent (unknown preset, target or time unit).
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise FileNotFoundError(msg)
    if preset is not None and preset not in PRESETS:
        msg = f"unknown preset {quoted(preset)}; choose from {list(PRESETS)}"
        raise OptionError(msg)
    _check_block_size_arg(hash_block_size)
    if preset is None and columns is None and path.suffix == ".json":  # ServeGen's conversation file
        block = None if hash_block_size is None else int(hash_block_size)
        return _with_block_size(load_conversations(path, hash_block_size=block, max_rows=max_rows), block)
    if preset is None and columns is None and _FORMATS.get(Path(path.name.removesuffix(".gz")).suffix) == "jsonl":
        if linked_trace_kind(trace_columns(path)) is not None:  # Bailian or ServeGen offline: their own loader
            return _with_block_size(load_linked_trace(path), hash_block_size)
    src = _Source(
        path,
        max_rows=default_max_rows() if max_rows is None else max_rows,
        max_columns=default_max_columns() if max_columns is None else max_columns,
        env_limits=max_rows is None and max_columns is None,
    )
    try:
        loaded = _load_trace(
            src, preset=preset, columns=columns, time_unit=time_unit, client_column=client_column, sort=sort,
            max_span_s=max_span_s, progress=progress,
        )
    finally:
        src.close()
    return _with_block_size(loaded, hash_block_size)


def _check_block_size_arg(hash_block_size: int | None) -> None:
    """``hash_block_size`` is ``None`` or a whole number of tokens in [1, MAX_BLOCK_SIZE]."""
    if hash_block_size is None:
        return
    if isinstance(hash_block_size, bool) or not isinstance(hash_block_size, (int, np.integer)) or not (
        1 <= hash_block_size <= MAX_BLOCK_SIZE
    ):
        msg = f"hash_block_size must be a whole number of tokens from 1 to {MAX_BLOCK_SIZE:,}, got {hash_block_size!r}"
        raise OptionError(msg)


def _with_block_size(loaded: LoadedTrace, hash_block_size: int | None) -> LoadedTrace:
    """``loaded`` with its :attr:`~LoadedTrace.hash_block_size`: the stated one, checked against the
    file's ``hash_ids`` counts, else the layout's documented one (``None`` without ``hash_ids``)."""
    trace = loaded.trace
    has_ids = "hash_ids" in trace.columns and trace["hash_ids"].null_count() < trace.height
    if hash_block_size is None:
        return replace(loaded, hash_block_size=FORMAT_HASH_BLOCK_SIZE.get(loaded.preset) if has_ids else None)
    block = int(hash_block_size)
    if has_ids and "input_tokens" in trace.columns:
        n = pl.col("hash_ids").list.len()
        tokens = pl.col("input_tokens").cast(pl.Int64)
        bad = trace.with_row_index("__row").filter(
            pl.col("hash_ids").is_not_null() & ((n < tokens // block) | (n > (tokens + block - 1) // block))
        )
        if bad.height:
            first = bad.row(0, named=True)
            msg = (
                f"hash_ids do not hold {block:,}-token blocks (hash_block_size): {bad.height:,} request(s) have a "
                f"count outside [floor, ceil](input_tokens / {block:,}), the first (request {first['__row'] + 1:,} "
                f"in time order) {len(first['hash_ids']):,} ids for {first['input_tokens']:,} input tokens"
            )
            raise DataFormatError(Path(loaded.path), "column hash_ids", msg)
    return replace(loaded, hash_block_size=block)


def _load_trace(
    src: _Source,
    *,
    preset: str | None,
    columns: Mapping[str, str] | None,
    time_unit: str | None,
    client_column: str | None,
    sort: bool,
    max_span_s: float | None,
    progress: Callable[[int], object] | None,
) -> LoadedTrace:
    path = src.path
    available = _columns(src)
    src.check_columns(len(available), estimated="names in the first line" if src.format == "jsonl" else "from the header")
    detected = preset is None and columns is None
    if preset is None:
        preset = "generic" if columns is not None else detect_preset(available, source=path)
    spec = PRESETS[preset]
    unit = _unit(spec, time_unit)
    mapping = _mapping(spec, available, columns, client_column, path)
    kinds = {src_col: TARGETS[target] for target, src_col in mapping.items()}
    if src.format != "csv":  # a CSV's every column is read, checked with its line count
        src.check_cells(len(kinds))
    locate = _Locator(src)
    warnings: list[str] = []

    lf = _scan(src, available, list(mapping.values()), kinds)
    if detected and preset == "mooncake" and time_unit is None:
        preset = _mooncake_or_timed(path, src, lf, mapping["timestamp"], available, kinds)
        if preset != "mooncake":
            spec = PRESETS[preset]
            unit = _unit(spec, time_unit)
            warnings.append(
                "timestamps with decimals beside a spec sidecar: read as seconds (a vllm/guidellm export of this "
                "project), not Mooncake milliseconds"
            )
    try:
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot be read as {src.format}: {_polars_message(exc)}"
        raise DataFormatError(path, None, msg) from None

    sample = None
    if schema[mapping["timestamp"]] == pl.String():
        sample = _first_text(src, lf, mapping["timestamp"], available, kinds)
    token_limit = max_tokens()
    parsed, missing, flags, time_repr = _parse_exprs(mapping, schema, unit, spec, sample, token_limit=token_limit)
    is_csv = src.format == "csv"
    blank = pl.all_horizontal([pl.col(c).is_null() for c in schema]) if is_csv else pl.lit(False)  # noqa: FBT003
    short = pl.col(list(schema)[-1]).is_null() if is_csv else pl.lit(False)  # noqa: FBT003
    # Two stages: each value is parsed once, then the flags are computed from the parsed column.
    query = (
        lf.with_row_index("__row")
        .select(
            "__row",
            *[v.alias(f"__v_{t}") for t, v in parsed.items()],
            *[m.alias(f"__m_{t}") for t, m in missing.items()],
            blank.alias("__blank"),
            short.alias("__short"),
        )
        .with_columns(*[f.alias(f"__bad_{t}") for t, f in flags.items()])
        .drop([f"__m_{t}" for t in missing])
    )
    # The streaming engine reads the file in batches: the raw text is never all in memory.
    batches: list[pl.DataFrame] = []
    rows = 0
    try:
        for batch in query.collect_batches(chunk_size=_BATCH_ROWS, engine="streaming"):
            batches.append(batch)
            rows += batch.height
            if progress is not None:
                progress(rows)
    except (pl.exceptions.PolarsError, OSError) as exc:
        _raise_read_error(src, exc, available, kinds)
        raise  # pragma: no cover  (_raise_read_error always raises)
    frame = pl.concat(batches, rechunk=False) if batches else pl.DataFrame(schema=query.collect_schema())
    del batches

    # Lines with too few fields leave the last column empty: check those lines' field counts.
    if src.format == "csv" and frame.filter(pl.col("__short") & ~pl.col("__blank")).height:
        bad = _csv_diagnose(src, len(available))
        if bad:
            raise DataFormatError(path, f"line {bad[0]}", bad[1])
    n_blank = int(frame["__blank"].sum())
    if n_blank:
        frame = frame.filter(~pl.col("__blank"))
        warnings.append(f"skipped {n_blank:,} blank line(s)")
    if frame.height == 0:
        raise DataFormatError(path, None, "no requests: the file has no data rows")

    _check_flags(frame, mapping, unit, locate, path, lf, token_limit=token_limit)

    # Memory: drop each intermediate as soon as it is used (a 1 GB CSV has ~30M rows).
    values = frame.select(pl.col("__row"), *[pl.col(f"__v_{t}").alias(t) for t in mapping])
    del frame
    values, time_repr = _delayed_timestamps(values, time_repr, locate, path, mapping, warnings)
    start_time = None
    if time_repr == "ns" and not spec.keep_time_origin and values["timestamp"].null_count() < values.height:
        start_time = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=int(values["timestamp"].min()) // 1000)
    seconds = _seconds(values["timestamp"], time_repr, unit, spec.keep_time_origin)
    _check_span(seconds, values["timestamp"], time_repr, unit, spec.keep_time_origin,
                path=path, column=mapping["timestamp"], limit=max_span_s)
    out = values.drop("timestamp").with_columns(seconds)
    del values, seconds
    if "hash_ids" in mapping and "input_tokens" in mapping:
        _check_hash_ids(out, locate, path, mapping["hash_ids"])
    if spec.name == "mooncake" and "session_id" in mapping and out["session_id"].null_count() < out.height:
        _check_conversation_size(out, locate, path, token_limit)
        out = _conversations(out)
        warnings.append(
            "session_id: rows of one AIPerf conversation hold only their new tokens; input_tokens were rebuilt "
            "as the history plus the new tokens, hash_ids as the history's blocks plus the new ones"
        )
    # Optional text/list columns that are empty everywhere carry no information.
    empty = [t for t in mapping if t not in ("timestamp", "client_id", "delay") and out[t].null_count() == out.height]
    out = out.drop(empty)

    box = [out]  # _order takes the only reference, so that it can sort one column at a time
    del out
    out = _order(box, sort=sort, locate=locate, column=mapping["timestamp"], warnings=warnings)
    if "client_id" not in mapping:  # after sorting: a constant column needs no reordering
        out = out.with_columns(pl.lit("all").alias("client_id"))

    n_failed = 0
    if spec.flag_failed:
        out = out.with_columns((pl.col("output_tokens") == 0).alias("failed"))
        n_failed = int(out["failed"].sum())
        if n_failed:
            warnings.append(
                f"{n_failed:,} failed request(s) (0 response tokens) flagged in column 'failed'; "
                "drop them with trace.filter(~pl.col('failed'))"
            )
    out = out.drop("__row", strict=False)
    trace = validate_trace(out, source=path, sort=True)
    resolution = timestamp_resolution(trace["timestamp_s"])
    if resolution.quantized:
        warnings.append(resolution.message)
    return LoadedTrace(
        trace=trace,
        preset=spec.name,
        detected=detected,
        path=str(path),
        resolution=resolution,
        warnings=tuple(warnings),
        n_failed=n_failed,
        file_format=src.format + (".gz" if src.gzip else ""),
        columns=MappingProxyType(dict(mapping)),
        start_time=start_time,
    )


def _delayed_timestamps(
    values: pl.DataFrame, time_repr: str, locate: _Locator, path: Path, mapping: Mapping[str, str], warnings: list[str]
) -> tuple[pl.DataFrame, str]:
    """``values`` without ``delay`` (if mapped), a record with a delay and no timestamp given one.

    AIPerf's mooncake ``delay`` (a closed-loop export, ``servegen generate --sessions closed``)
    sends a later turn of a conversation that long after the previous turn's response
    completes. The file holds no response times, so the turn is placed at the previous
    turn's timestamp (the row above it in the file with its ``session_id``) plus its delay: the
    think time only, a lower bound of the time it was sent. A delay with no earlier turn in
    its session (or no ``session_id``), or beside a timestamp on one record, is an error
    naming the line. Returns the values and the time representation (``"float"`` when the
    two columns' types differ and a delay is fractional).
    """
    if "delay" not in values.columns:
        return values, time_repr
    delay = values["delay"]
    values = values.drop("delay")
    if delay.null_count() == delay.len():
        return values, time_repr
    t = values["timestamp"]
    if t.dtype != delay.dtype:
        given = delay.drop_nulls().cast(pl.Float64)
        if t.dtype == pl.Int64 and bool((given == given.round(0)).all()) and float(given.max()) < 2.0**62:
            delay = delay.cast(pl.Float64).cast(pl.Int64)
        else:
            t, delay, time_repr = t.cast(pl.Float64), delay.cast(pl.Float64), "float"
    sid = values["session_id"] if "session_id" in values.columns else pl.repeat(None, values.height, dtype=pl.String, eager=True).alias("session_id")
    work = pl.DataFrame({"__row": values["__row"], "s": sid, "t": t, "d": delay})
    if r := _first(work, pl.col("t").is_not_null() & pl.col("d").is_not_null()):
        msg = "both a delay and a timestamp: a record gives one (delay: a later turn, sent that long after the previous response)"
        raise DataFormatError(path, locate.where(int(r["__row"]), mapping["delay"]), msg)
    work = work.with_columns(pl.col("t").is_not_null().cum_sum().over("s").alias("g"))
    if r := _first(work, pl.col("d").is_not_null() & (pl.col("s").is_null() | (pl.col("g") == 0))):
        what = "its session_id has no earlier turn in the file" if r["s"] is not None else "the record has no session_id"
        msg = f"a delay places a later turn after the previous turn of its session, but {what}"
        raise DataFormatError(path, locate.where(int(r["__row"]), mapping["delay"]), msg)
    placed = work.select(pl.col("t").first().over("s", "g") + pl.col("d").fill_null(0).cum_sum().over("s", "g"))
    n = delay.len() - delay.null_count()
    warnings.append(
        f"delay: {n:,} later conversation turn(s) have AIPerf's delay (sent that long after the previous turn's "
        "response) and no timestamp; the file holds no response times, so each was placed at the previous turn's "
        "timestamp plus its delay (think time only): timestamps of later turns are lower bounds"
    )
    return values.with_columns(placed.to_series().alias("timestamp")), time_repr


def _parse_exprs(
    mapping: Mapping[str, str],
    schema: pl.Schema,
    unit: str,
    spec: Preset,
    sample: str | None,
    *,
    token_limit: int,
) -> tuple[dict[str, pl.Expr], dict[str, pl.Expr], dict[str, pl.Expr], str]:
    """Per target: the parsing expression, a "missing in the file" expression, and a flag that
    is true on rows that fail, computed from the columns ``__v_<target>`` (the parsed value)
    and ``__m_<target>`` (missing), so that each value is parsed only once.

    A row fails when the value is missing where one is needed, present but
    unparseable, or out of range. Also returns the time representation (see
    :func:`_parse_time`).
    """
    parsed: dict[str, pl.Expr] = {}
    missings: dict[str, pl.Expr] = {}
    flags: dict[str, pl.Expr] = {}
    time_repr = "int"
    if "delay" in mapping and unit == DATETIME:
        msg = f"a delay column ({quoted(mapping['delay'])}) needs a numeric time unit, not {DATETIME!r}"
        raise OptionError(msg)
    for target, col in mapping.items():
        kind, dtype = TARGETS[target], schema[col]
        if target == "delay":
            value, missing, _repr = _parse_time(col, dtype, unit, None)
        elif kind == KIND_TIME:
            value, missing, time_repr = _parse_time(col, dtype, unit, sample, as_float=spec.keep_time_origin and unit == "s")
        elif kind == KIND_INT:
            value, missing = _parse_int(col, dtype)
        elif kind == KIND_FLOAT:
            value, missing = _parse_float(col, dtype)
        elif kind == KIND_BOOL:
            value, missing = _parse_bool(col, dtype)
        elif kind == KIND_LIST:
            if dtype == pl.String():
                value = pl.col(col).str.json_decode(pl.List(pl.Int64()))
            else:
                value = pl.col(col).cast(pl.List(pl.Int64()), strict=False)
            missing = pl.col(col).is_null()
        else:
            value, missing = pl.col(col).cast(pl.String), pl.col(col).is_null()
        parsed[target] = value
        missings[target] = missing
        value, missing = pl.col(f"__v_{target}"), pl.col(f"__m_{target}")
        nullable = kind in (KIND_STR, KIND_LIST) and target != "client_id"
        bad = (value.is_null() & ~missing) | (pl.lit(False) if nullable else missing)  # noqa: FBT003
        if kind == KIND_INT:
            bad = bad | (value < 0)
            if _bounded(target):
                bad = bad | (value > token_limit)
        elif kind == KIND_FLOAT and target == "reason_ratio":
            bad = bad | ~value.is_finite() | (value < 0) | (value > 1)
        elif kind == KIND_TIME and spec.keep_time_origin and time_repr in ("int", "float", "decimal"):
            bad = bad | (value < 0)
        if target == "delay":  # optional, non-negative where given
            bad = (value.is_null() & ~missing) | (value < 0).fill_null(False)  # noqa: FBT003
        elif target == "timestamp" and "delay" in mapping:  # a record with a delay needs no timestamp
            bad = bad & ~(missing & ~pl.col("__m_delay"))
        flags[target] = bad.fill_null(True)  # noqa: FBT003
    return parsed, missings, flags, time_repr


def _first_text(
    src: _Source, lf: pl.LazyFrame, col: str, available: list[str], kinds: Mapping[str, str]
) -> str | None:
    """The first non-empty value among the first 1000 rows of a text column."""
    try:
        head = lf.select(pl.col(col)).head(1000).collect().to_series()
    except (pl.exceptions.PolarsError, OSError) as exc:
        _raise_read_error(src, exc, available, kinds)
        raise  # pragma: no cover
    head = head.filter(head.str.strip_chars() != "")
    return head[0] if head.len() else None


#: Most hash ids the rebuilt whole prompts of a conversation file may hold together (8 bytes each).
MAX_REBUILT_HASH_IDS = 1 << 27


def _check_conversation_size(out: pl.DataFrame, locate: _Locator, path: Path, token_limit: int) -> None:
    """Refuse AIPerf conversations whose rebuilt whole prompts would be too large: a turn's
    history plus new tokens above the token limit, or more than :data:`MAX_REBUILT_HASH_IDS`
    hash ids over all rebuilt prompts (each turn repeats its history's ids, so a long
    conversation grows quadratically)."""
    has_ids = "hash_ids" in out.columns
    s = pl.col("session_id").fill_null(pl.concat_str(pl.lit("\x00row"), pl.col("__row").cast(pl.String)))
    n_ids = pl.col("hash_ids").list.len().fill_null(0).cast(pl.Int64) if has_ids else pl.lit(0, pl.Int64)
    sizes = out.sort("__row").select(
        "__row",
        (pl.col("input_tokens").cum_sum().over(s) + pl.col("output_tokens").cum_sum().over(s)
         - pl.col("output_tokens")).alias("tokens"),
        n_ids.cum_sum().over(s).alias("ids"),
    )
    if r := _first(sizes, pl.col("tokens") > token_limit):
        msg = (
            f"the conversation's whole prompt at this turn (history plus new tokens) is above the limit of "
            f"{token_limit:,} tokens (${MAX_TOKENS_ENV})"
        )
        raise DataFormatError(path, locate.where(int(r["__row"]), "session_id"), msg)
    total = int(sizes["ids"].sum())
    if total > MAX_REBUILT_HASH_IDS:
        msg = (
            f"rebuilding the conversations' whole prompts would make {total:,} hash ids, more than "
            f"{MAX_REBUILT_HASH_IDS:,}"
        )
        raise DataFormatError(path, "field 'session_id'", msg)


def _first(df: pl.DataFrame, cond: pl.Expr) -> dict | None:
    hit = df.filter(cond)
    return hit.row(0, named=True) if hit.height else None


def _conversations(out: pl.DataFrame) -> pl.DataFrame:
    """Whole prompts of a Mooncake file written as AIPerf conversations (rows sharing a
    ``session_id``, in file order, each after the first holding only its new tokens, as
    AIPerf's default context mode sends them): turn ``j``'s ``input_tokens`` become
    ``sum(input[:j+1]) + sum(output[:j])`` and its ``hash_ids`` the concatenation of the
    turns' ids so far (the outputs, produced live by the server, have no ids). Adds
    ``turn_index``. Rows without a ``session_id`` are left alone."""
    keyed = out.with_columns(
        pl.col("session_id").fill_null(pl.concat_str(pl.lit("\x00row"), pl.col("__row").cast(pl.String))).alias("__s")
    ).sort("__row")
    keyed = keyed.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("__s").alias("turn_index"),
        (pl.col("input_tokens").cum_sum().over("__s") + (pl.col("output_tokens").cum_sum().over("__s") - pl.col("output_tokens"))).alias("__x"),
    )
    if "hash_ids" in keyed.columns:
        flat = (
            keyed.select("__row", "__s", "turn_index", pl.col("hash_ids").fill_null([]))
            .explode("hash_ids")
            .drop_nulls("hash_ids")
            .with_columns(pl.int_range(pl.len()).over("__row").alias("__p"))
        )
        upto = (
            keyed.select("__row", "__s", pl.col("turn_index").alias("__t"))
            .join(flat.select("__s", "turn_index", "__p", "hash_ids"), on="__s")
            .filter(pl.col("turn_index") <= pl.col("__t"))
            .sort("__row", "turn_index", "__p")
            .group_by("__row", maintain_order=True)
            .agg(pl.col("hash_ids").alias("__h"))
        )
        keyed = keyed.join(upto, on="__row", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("hash_ids").is_null()).then(None).otherwise(pl.col("__h").fill_null([])).alias("hash_ids")
        ).drop("__h")
    return keyed.with_columns(pl.col("__x").alias("input_tokens")).drop("__s", "__x")


def _mooncake_or_timed(
    path: Path, src: _Source, lf: pl.LazyFrame, column: str, available: list[str], kinds: Mapping[str, str]
) -> str:
    """``"mooncake"`` or ``"timed_trace"`` for a file with Mooncake's fields.

    Mooncake files, and this project's ``mooncake`` exports, write whole milliseconds; its
    ``vllm`` and ``guidellm`` exports write the same fields in seconds with six decimals.
    Whole numbers throughout: milliseconds. Decimals: seconds when a spec sidecar
    (``<file>.spec.json``) marks the file as this project's export; otherwise the unit is
    ambiguous (seconds, or AIPerf's fractional milliseconds) and the load is refused with
    a :class:`DataFormatError` naming the choices.
    """
    try:
        text = lf.select(pl.col(column).cast(pl.String).str.contains(r"[.eE]").any()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:
        _raise_read_error(src, exc, available, kinds)
        raise  # pragma: no cover
    if not text:
        return "mooncake"
    if path.with_name(path.name + ".spec.json").is_file():
        return "timed_trace"
    msg = (
        f"column {quoted(column)} holds decimals and the file has Mooncake's fields: seconds (a vLLM timed_trace or "
        "GuideLLM file) or fractional milliseconds (AIPerf)? Pass preset='timed_trace' (seconds) or "
        "preset='mooncake' (milliseconds)"
    )
    raise DataFormatError(path, f"column {column}", msg)


def _order(box: list[pl.DataFrame], *, sort: bool, locate: _Locator, column: str, warnings: list[str]) -> pl.DataFrame:
    """Sort by timestamp (stable) with a warning, or refuse an unsorted trace when ``sort`` is false.

    ``box`` holds the only reference to the frame: it is sorted one column at a time, each
    unsorted column freed as its sorted copy replaces it (memory: the frame plus one column).
    """
    out = box.pop()
    if out["timestamp_s"].is_sorted():
        return out
    backwards = out["timestamp_s"].diff() < 0
    if not backwards.any():
        return out
    first = int(backwards.arg_true()[0])
    row = int(out["__row"][first])
    if not sort:
        msg = "timestamps are not sorted: this timestamp is earlier than the one before (load with sort=True to sort them)"
        raise DataFormatError(locate.src.path, locate.where(row, column), msg)
    warnings.append(
        f"{int(backwards.sum()):,} row(s) had a timestamp earlier than the row before (first at data row "
        f"{row + 1}); rows were sorted by timestamp (stable)"
    )
    del backwards
    out = out.drop("__row")  # not needed after the warning
    order = out.select(pl.arg_sort_by("timestamp_s", maintain_order=True)).to_series()
    for name in out.columns:
        out = out.with_columns(out[name].gather(order))
    return out


def _seconds(t: pl.Series, representation: str, unit: str, keep_origin: bool) -> pl.Series:
    """Parsed time values -> float64 seconds (from the earliest value unless ``keep_origin``).

    The offset is taken in the exact representation (integer or decimal) and the
    division runs in NumPy, which rounds correctly (Polars may multiply by a reciprocal).
    """
    divisor = 1e9 if representation == "ns" else TIME_UNITS[unit]
    if t.dtype in (pl.Int64, pl.Float64) and t.null_count() == 0:
        # One float64 array, no temporaries: the exact offset (int64 or float64) is cast
        # to float64 in NumPy's buffered loop, then divided in place.
        # Chunk by chunk (a streamed read leaves several), so no contiguous copy of ``t`` is made.
        values = np.empty(t.len(), dtype=np.float64)
        origin = t.dtype.to_python()(0) if keep_origin else t.min()
        pos = 0
        for chunk in t.get_chunks():
            raw = chunk.to_numpy()
            np.subtract(raw, origin, out=values[pos : pos + raw.size], casting="unsafe")
            pos += raw.size
    else:
        rel = t if keep_origin else t - t.min()
        values = rel.cast(pl.Float64).to_numpy(writable=True)
        del rel
    if divisor != 1.0:
        np.divide(values, divisor, out=values)
    return pl.Series("timestamp_s", values, dtype=pl.Float64)


def _bounded(target: str) -> bool:
    """Whether an integer target is a token or item count, bounded by the token limit."""
    return target.endswith(("_tokens", "_count"))


def _check_flags(
    frame: pl.DataFrame,
    mapping: Mapping[str, str],
    unit: str,
    locate: _Locator,
    path: Path,
    lf: pl.LazyFrame,
    *,
    token_limit: int,
) -> None:
    """Raise for the first row (in file order) that has a bad value, naming the place and what
    is wrong with the value (never the value itself: a cell may be huge or hostile)."""
    bad_cols = [f"__bad_{t}" for t in mapping]
    bad = frame.select("__row", *bad_cols).filter(pl.any_horizontal(bad_cols))
    if bad.height == 0:
        return
    first = bad.row(0, named=True)
    row = int(first["__row"])
    target = next(t for t in mapping if first[f"__bad_{t}"])
    col = mapping[target]
    kind = TARGETS[target]
    where = locate.where(row, col)
    raw = lf.select(pl.col(col)).slice(row, 1).collect().item()
    expected = _expected(kind, unit)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise DataFormatError(path, where, f"empty value; expected {expected}")
    number = _as_float(raw) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and number is None:
        numeric = kind in (KIND_INT, KIND_FLOAT) or (kind == KIND_TIME and unit != DATETIME)
        what = "text that is not a number" if numeric else "a value that does not parse"
    elif number is not None and not math.isfinite(number):
        what = "not a finite number"
    else:
        what = "a value that does not parse"
    problem = f"{what}; expected {expected}"
    if kind == KIND_INT and number is not None and math.isfinite(number):
        if number != round(number):
            problem = f"a fraction; expected {expected}"
        elif number < 0:
            problem = "a negative number; token counts must be >= 0"
        elif _bounded(target) and number > token_limit:
            problem = (
                f"above the limit of {token_limit:,} per request (${MAX_TOKENS_ENV}); "
                "check the column mapping"
            )
    elif kind == KIND_TIME and unit != DATETIME and isinstance(raw, str) and number is None:
        if pl.Series([raw]).str.contains(r"^\s*\d{4}-\d{2}-\d{2}").item():
            problem = f"wall-clock text, not {expected}; for wall-clock text use time_unit='datetime'"
    elif target == "delay" and number is not None and number < 0:
        problem = "a negative delay; a later turn is sent its delay after the previous turn's response (>= 0)"
    elif kind == KIND_TIME and number is not None and number < 0:
        problem = "a negative number; timestamp_s must be >= 0"
    elif target == "reason_ratio":
        problem = "not a number in [0, 1]"
    raise DataFormatError(path, where, problem)


#: Seconds per unit, to suggest the time unit of a span that is too long.
_UNIT_SCALES = (("ms", 1e3), ("us", 1e6), ("ns", 1e9))


def _check_span(
    seconds: pl.Series,
    raw: pl.Series,
    representation: str,
    unit: str,
    keep_origin: bool,
    *,
    path: Path,
    column: str,
    limit: float | None,
) -> None:
    """Refuse timestamps spanning more than ``limit`` seconds, naming the column and the likely unit.

    For a preset that keeps the time origin (``servegen``) the largest timestamp is measured
    (it is seconds from the workload start); otherwise the span from the earliest one.
    """
    limit = max_span_s() if limit is None else float(limit)
    lo, hi = seconds.min(), seconds.max()
    if lo is None or hi is None:
        return
    span = float(hi) if keep_origin else float(hi) - float(lo)
    if span <= limit:
        return
    what = "reach" if keep_origin else "span"
    msg = (
        f"the timestamps {what} {span:.3g} s ({span / 86400 / 365.25:,.3g} years), more than the limit of "
        f"{limit:,.0f} s (${MAX_SPAN_ENV}, or max_span_s=)"
    )
    if unit == DATETIME or representation == "ns":
        msg += "; some dates are far from the others (check the column mapping and the date format)"
    else:
        scale = TIME_UNITS[unit]
        biggest = raw.cast(pl.Float64).abs().max()
        # Epoch times read in a finer unit than given: ~1.7e9 s now is ~1.7e12 ms, 1.7e15 us, 1.7e18 ns.
        fits = [(u, sc) for u, sc in _UNIT_SCALES if sc > scale and span * scale / sc <= limit]
        epoch = [u for u, sc in fits if biggest is not None and 1e8 <= biggest / sc <= 1e10]
        if epoch or fits:
            guess = epoch[0] if epoch else fits[0][0]
            msg += f"; the values look like {_UNIT_NAMES[guess]}: load with time_unit='{guess}'"
        else:
            msg += "; check the column mapping and the time unit"
    raise DataFormatError(path, f"column {quoted(column)}", msg)


_UNIT_NAMES = {"ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

#: Largest hash id accepted in a trace (ids are renumbered above the largest when exporting).
MAX_HASH_ID = 2**62


def _check_hash_ids(out: pl.DataFrame, locate: _Locator, path: Path, column: str) -> None:
    """Refuse ``hash_ids`` lists that cannot be the blocks of their request: more blocks than
    input tokens, blocks larger than :data:`servegen_core.limits.MAX_BLOCK_SIZE` tokens, or ids
    outside ``[0, MAX_HASH_ID)``."""
    n = pl.col("hash_ids").list.len().cast(pl.Int64)
    inp = pl.col("input_tokens")
    checks = out.select(
        "__row",
        pl.col("hash_ids").is_not_null().alias("has"),
        (n > inp).alias("too_many"),
        (n * MAX_BLOCK_SIZE < inp).alias("too_few"),
        ((pl.col("hash_ids").list.min() < 0) | (pl.col("hash_ids").list.max() >= MAX_HASH_ID)).alias("range"),
    ).filter(pl.col("has") & (pl.col("too_many") | pl.col("too_few") | pl.col("range").fill_null(False)))
    if checks.height == 0:
        return
    r = checks.sort("__row").row(0, named=True)
    where = locate.where(int(r["__row"]), column)
    if r["too_many"]:
        problem = "more hash ids than input tokens (every block holds at least one token)"
    elif r["too_few"]:
        problem = f"too few hash ids for the input tokens (blocks of more than {MAX_BLOCK_SIZE:,} tokens)"
    else:
        problem = "a hash id outside [0, 2**62)"
    raise DataFormatError(path, where, problem)


def _as_float(raw: object) -> float | None:
    try:
        return float(str(raw).strip())
    except ValueError:
        return None


def _raise_read_error(src: _Source, exc: Exception, available: list[str], kinds: Mapping[str, str]) -> None:
    """Re-diagnose a Polars read failure with a pass over the text to name the bad line."""
    if src.format == "csv":
        bad = _csv_diagnose(src, len(available))
    elif src.format == "jsonl":
        bad = _jsonl_diagnose(src, [c for c, k in kinds.items() if k == KIND_LIST])
    else:
        bad = None
    if bad:
        raise DataFormatError(src.path, f"line {bad[0]}", bad[1]) from None
    msg = f"cannot be read as {src.format}: {_polars_message(exc)}"
    raise DataFormatError(src.path, None, msg) from None
