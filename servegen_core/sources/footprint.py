"""The memory a trace file will take to load, estimated before it is read (for the server budget).

:func:`trace_load_bytes` reads only a Parquet file's metadata, or the first
:data:`SAMPLE_BYTES` of a CSV / JSON Lines file, and never more than the load budget of
:func:`servegen_core.sources.traces.load_trace` allows (``max_rows`` rows, at most
``max_rows`` x :data:`~servegen_core.limits.CELLS_PER_ROW` cells): a file larger than that is
refused by the loader itself, after its own estimate.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import polars as pl

from servegen_core.limits import CELLS_PER_ROW, loaded_bytes

__all__ = ["JSON_LIST_BYTES", "JSON_OBJECT_BYTES", "JSON_VALUE_BYTES", "SAMPLE_BYTES", "json_document_bytes", "trace_load_bytes"]

#: Python bytes per element of a parsed JSON document (CPython 3.11, 64-bit), for a conversation
#: file, which is parsed whole: an object (a dict of up to 8 keys), a list's own header, and one
#: value or list element (its pointer, its object, and the lists' over-allocation).
JSON_OBJECT_BYTES = 400
JSON_LIST_BYTES = 64
JSON_VALUE_BYTES = 64

#: Bytes read from the start of a text file to measure its average line.
SAMPLE_BYTES = 64 * 1024

_TEXT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


def _budget_bound(max_rows: int, columns: int) -> int:
    """The most a file within the load budget can take: the row cap at ``columns`` columns."""
    rows = min(max_rows, max_rows * CELLS_PER_ROW // max(1, columns))
    return loaded_bytes(rows, columns)


def json_document_bytes(size: int, sample: bytes) -> int:
    """Estimated peak bytes of parsing a JSON document of ``size`` bytes whose first bytes are
    ``sample``: the raw bytes (read whole) plus their parsed objects, priced per object, list and
    value (``,`` and ``:`` separate values) at the sample's density."""
    if not sample:
        return size
    cost = (
        JSON_OBJECT_BYTES * sample.count(b"{")
        + JSON_LIST_BYTES * sample.count(b"[")
        + JSON_VALUE_BYTES * (sample.count(b",") + sample.count(b":") + 1)
    )
    return int(size * (1.0 + cost / len(sample)))


def trace_load_bytes(path: str | Path, *, max_rows: int, max_columns: int) -> int:
    """Estimated peak bytes of loading the trace at ``path`` (:func:`servegen_core.limits.loaded_bytes`).

    Parquet: rows and columns from the metadata. Plain CSV / JSON Lines: rows from the file size
    over the shorter average line of its first and last :data:`SAMPLE_BYTES` (CSV columns from its header line,
    JSON Lines counted as 8). A ``.json`` conversation file (parsed whole, its size refused above
    :data:`~servegen_core.sources.traces.CONVERSATION_MAX_BYTES` by the loader):
    :func:`json_document_bytes` of its first :data:`SAMPLE_BYTES`, plus its turns as rows. A ``.gz`` file, whose inflated size its bytes do not bound: the
    most the load budget allows. Every estimate is at most that bound; a file that cannot be
    measured (missing, unreadable, not a trace) counts as the bound too: the loader says what is
    wrong with it.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    columns_guess = 8
    try:
        if kind == ".json" and not gz:  # ServeGen's conversation file: parsed whole
            with open(path, "rb") as fh:
                sample = fh.read(SAMPLE_BYTES)
            size = path.stat().st_size
            turns = sample.count(b'"input_token_count"') * size / max(1, len(sample))
            return json_document_bytes(size, sample) + loaded_bytes(min(turns, max_rows), columns_guess)
        if kind in _PARQUET_SUFFIXES and not gz:
            frame = pl.scan_parquet(path, glob=False)
            columns = len(frame.collect_schema())
            rows = int(frame.select(pl.len()).collect().item())
            return min(loaded_bytes(rows, columns), _budget_bound(max_rows, min(columns, max_columns)))
        if kind not in _TEXT_SUFFIXES:
            return _budget_bound(max_rows, columns_guess)
        opener = gzip.open if gz else open
        with opener(path, "rb") as fh:
            head = fh.read(SAMPLE_BYTES)
            size = path.stat().st_size
            tail = b""
            if not gz and size > 2 * SAMPLE_BYTES:
                fh.seek(size - SAMPLE_BYTES)
                tail = fh.read(SAMPLE_BYTES)
    except (OSError, EOFError, zlib.error, pl.exceptions.PolarsError):
        return _budget_bound(max_rows, columns_guess)
    first_line = head.split(b"\n", 1)[0]
    columns = first_line.count(b",") + 1 if _TEXT_SUFFIXES[kind] == "csv" else columns_guess
    columns = max(1, min(columns, max_columns))
    bound = _budget_bound(max_rows, columns)
    if gz:
        return bound
    lines = head.count(b"\n")
    if size <= len(head):
        rows = max(1, lines)
    else:
        # the shorter average line of the file's first and last SAMPLE_BYTES: more rows, never fewer
        line_bytes = [len(part) / part.count(b"\n") for part in (head, tail) if part.count(b"\n")]
        rows = int(size / min(line_bytes)) + 1 if line_bytes else max_rows
    return min(loaded_bytes(rows, columns), bound)
