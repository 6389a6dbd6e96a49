"""ClientPool: ServeGen's per-client workload model, loaded from its on-disk format.

On disk (``<data_dir>/<category>/<model>/``), one pair of files per client::

    chunk-<client>-trace.csv     no header: window_start_s, rate_rps, cv, pattern, shape, scale
    chunk-<client>-dataset.json  {"<window_start_s>": {"<field>": "{bin: prob, ...}"}}

In memory, a :class:`ClientPool` holds three tidy Polars frames (four when fitted from a trace):

``windows``
    one row per (client, arrival window): ``client_id, start_s, duration_s, rate_rps, cv,
    pattern, shape, scale``. ``pattern`` is ``"Gamma"``, ``"Weibull"`` or ``""`` (no requests).
``distributions``
    one row per (client, length window, field, bin): ``client_id, start_s, field, value, prob``.
    ``value`` is the bin exactly as written in the data, stored as float64: token bins are whole
    numbers (exact in float64 up to 2**53), ``reason_ratio`` bins are the data's floats (k/501).
``length_windows``
    one row per (client, length window): ``client_id, start_s, duration_s, active``. A window
    whose PDF dicts are all empty (``"{}"``) is inactive: the client sent no requests then, and
    it has no rows in ``distributions``.

``gaps`` (optional, ``None`` for ServeGen data)
    one row per observed inter-arrival gap of a pool fitted from a raw trace
    (:func:`servegen_core.sources.fit.pool_from_trace`): ``client_id, start_s, gap_s``, ``start_s``
    naming the arrival window, the gaps in arrival order. It keeps each client-window's
    empirical inter-arrival distribution next to its fitted pattern.
``arrival_models`` and ``arrival_tables`` (optional, ``None`` for ServeGen data)
    the sub-window arrival model fitted and chosen per client from a raw trace
    (:func:`servegen_core.arrival_models.fit_client_arrivals` with ``model="auto"``): one row
    per client-window with requests (:data:`ARRIVAL_MODEL_SCHEMA`: ``client_id, start_s,
    model`` and the columns of :class:`servegen_core.arrival_models.ArrivalModelTable`), and
    the unit-mean gap tables its ``table``/``state_table0``/``state_table1`` ids point to
    (:data:`ARRIVAL_TABLE_SCHEMA`: ``table, gap``, each table's gaps in order).

A client with a trace file but no dataset file is loaded with its windows and listed in
:attr:`ClientPool.clients_without_lengths`. A dataset file without its trace file is an error.

The PDF fields are Python dict literals. They are parsed as data by a strict grammar
(``{number: number, ...}``) and never evaluated.

Time: ``start_s`` counts seconds from the trace start, which is midnight, so the hour of
day is ``(start_s mod 86400) / 3600`` (:func:`hour_of_day`).

A columnar cache (Parquet) in :func:`servegen_core.paths.default_cache_dir` makes the second
load of a model near-instant. It is keyed on the model folder and invalidated when any source
file's name, size or modification time changes (or a file is added or removed). Each Parquet
file's SHA-256 is checked before it is read: an unreadable, altered or stale cache is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from servegen_core.errors import DataFormatError
from servegen_core.limits import MAX_SPAN_ENV, MAX_TOKENS_ENV, max_span_s, max_tokens
from servegen_core.paths import default_cache_dir

__all__ = [
    "ARRIVAL_MODEL_SCHEMA",
    "ARRIVAL_TABLE_SCHEMA",
    "ClientPool",
    "PATTERNS",
    "client_sort_key",
    "hour_of_day",
    "list_models",
    "load_pool",
    "parse_pdf_literal",
]

#: Arrival patterns the data may name; ``""`` marks a window without requests.
PATTERNS: tuple[str, ...] = ("Gamma", "Weibull", "")

#: Bump when the cached frames' layout or the parsing rules change.
CACHE_VERSION = 3

PROB_TOLERANCE = 1e-6

WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "duration_s": pl.Int64(),
    "rate_rps": pl.Float64(),
    "cv": pl.Float64(),
    "pattern": pl.String(),
    "shape": pl.Float64(),
    "scale": pl.Float64(),
}
DISTRIBUTION_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "field": pl.String(),
    "value": pl.Float64(),
    "prob": pl.Float64(),
}
GAP_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "gap_s": pl.Float64(),
}
ARRIVAL_MODEL_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "model": pl.String(),
    **{name: pl.Float64() for name in ("shape", "mean0", "mean1", "shape0", "shape1", "stay0", "stay1", "batch")},
    **{name: pl.Int64() for name in ("table", "state_table0", "state_table1")},
}
ARRIVAL_TABLE_SCHEMA: dict[str, pl.DataType] = {"table": pl.Int64(), "gap": pl.Float64()}
LENGTH_WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "duration_s": pl.Int64(),
    "active": pl.Boolean(),
}

_TRACE_RE = re.compile(r"^chunk-(\d+)-trace\.csv$")
_DATASET_RE = re.compile(r"^chunk-(\d+)-dataset\.json$")


def hour_of_day(start_s: float | np.ndarray | pl.Expr) -> float | np.ndarray | pl.Expr:
    """Hour of day (0 ≤ h < 24) of a time in source seconds; the data's time 0 is midnight."""
    return (start_s % 86400) / 3600


def client_sort_key(client_id: str) -> tuple[int, int | str]:
    """Sort key of client ids: numeric ids in numeric order, then the others by name."""
    return (0, int(client_id)) if client_id.isdigit() else (1, client_id)


@dataclass(frozen=True)
class ClientPool:
    """ServeGen's per-client model of one LLM service. See the module docstring for the frames.

    Frozen: :meth:`span` and :meth:`select_clients` return new pools.
    """

    name: str
    source: str
    windows: pl.DataFrame
    distributions: pl.DataFrame
    length_windows: pl.DataFrame
    window_s: int = 600
    length_window_s: int = 21600
    #: Observed inter-arrival gaps of each client-window (``client_id, start_s, gap_s``, see
    #: :data:`GAP_SCHEMA`) when the pool was fitted from a raw trace; ``None`` for ServeGen data.
    gaps: pl.DataFrame | None = None
    #: What a fit could not recover (e.g. sub-grid timing of quantized timestamps), in words.
    warnings: tuple[str, ...] = ()
    #: Sub-window arrival models fitted from a raw trace, per client-window
    #: (:data:`ARRIVAL_MODEL_SCHEMA`), and their gap tables (:data:`ARRIVAL_TABLE_SCHEMA`);
    #: ``None`` for ServeGen data.
    arrival_models: pl.DataFrame | None = None
    arrival_tables: pl.DataFrame | None = None
    #: Arrays derived from this pool by :mod:`servegen_core.sources.view` (client codes, the
    #: length-field index, per-field weights), each computed once and kept here: the pool is
    #: frozen, so they stay valid, and they are freed with the pool. Not an argument: a new pool
    #: (:meth:`span`, :func:`dataclasses.replace`) starts empty.
    derived: dict[tuple, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.gaps is not None:
            if not isinstance(self.gaps, pl.DataFrame):
                msg = f"ClientPool.gaps must be a polars DataFrame or None, got {type(self.gaps).__name__}"
                raise TypeError(msg)
            schema = dict(self.gaps.schema)
            want = {**GAP_SCHEMA, "start_s": self.windows.schema.get("start_s", pl.Int64())}
            if schema != want:
                msg = f"ClientPool.gaps must have the columns {want}, got {schema}"
                raise ValueError(msg)
        for name, want in (("arrival_models", ARRIVAL_MODEL_SCHEMA), ("arrival_tables", ARRIVAL_TABLE_SCHEMA)):
            frame = getattr(self, name)
            if frame is None:
                continue
            if not isinstance(frame, pl.DataFrame):
                msg = f"ClientPool.{name} must be a polars DataFrame or None, got {type(frame).__name__}"
                raise TypeError(msg)
            if dict(frame.schema) != want:
                msg = f"ClientPool.{name} must have the columns {want}, got {dict(frame.schema)}"
                raise ValueError(msg)

    @property
    def category(self) -> str:
        """``language``, ``multimodal`` or ``reason`` (the first part of the name)."""
        return self.name.split("/", 1)[0]

    @property
    def client_ids(self) -> tuple[str, ...]:
        """Every client, in numeric order of its id."""
        ids = set(self.windows["client_id"].unique().to_list())
        return tuple(sorted(ids, key=client_sort_key))

    @property
    def fields(self) -> tuple[str, ...]:
        """Length fields present in the distributions, in the data's order."""
        return tuple(self.distributions["field"].unique(maintain_order=True).to_list())

    @property
    def clients_without_lengths(self) -> tuple[str, ...]:
        """Clients with arrival windows but no length-distribution data."""
        with_lengths = set(self.length_windows["client_id"].unique().to_list())
        return tuple(c for c in self.client_ids if c not in with_lengths)

    @property
    def start_s(self) -> int:
        """Start of the span covered by the arrival windows (source seconds)."""
        return int(self.windows["start_s"].min()) if self.windows.height else 0

    @property
    def end_s(self) -> int:
        """End (exclusive) of the span covered by the arrival windows (source seconds)."""
        if not self.windows.height:
            return 0
        return int(self.windows.select((pl.col("start_s") + pl.col("duration_s")).max()).item())

    @property
    def duration_s(self) -> int:
        return self.end_s - self.start_s

    def span(self, start_s: float, end_s: float) -> ClientPool:
        """The arrival windows starting in ``[start_s, end_s)`` and the length windows overlapping it."""
        if end_s <= start_s:
            msg = f"span end ({end_s}) must be after its start ({start_s})"
            raise ValueError(msg)
        w = self.windows.filter((pl.col("start_s") >= start_s) & (pl.col("start_s") < end_s))
        overlap = (pl.col("start_s") < end_s) & (pl.col("start_s") + pl.col("duration_s") > start_s)
        lw = self.length_windows.filter(overlap)
        d = self.distributions.join(lw.select("client_id", "start_s"), on=["client_id", "start_s"], how="semi")
        in_span = (pl.col("start_s") >= start_s) & (pl.col("start_s") < end_s)
        g = None if self.gaps is None else self.gaps.filter(in_span)
        am = None if self.arrival_models is None else self.arrival_models.filter(in_span)
        return dataclasses.replace(self, windows=w, distributions=d, length_windows=lw, gaps=g, arrival_models=am)

    def select_clients(self, client_ids: Iterable[str]) -> ClientPool:
        """A pool restricted to ``client_ids`` (unknown ids are an error)."""
        ids = [str(c) for c in client_ids]
        known = set(self.client_ids)
        unknown = [c for c in ids if c not in known]
        if unknown:
            msg = f"unknown client id(s) {unknown[:10]} in pool {self.name}"
            raise ValueError(msg)
        keep = pl.col("client_id").is_in(ids)
        return dataclasses.replace(
            self,
            windows=self.windows.filter(keep),
            distributions=self.distributions.filter(keep),
            length_windows=self.length_windows.filter(keep),
            gaps=None if self.gaps is None else self.gaps.filter(keep),
            arrival_models=None if self.arrival_models is None else self.arrival_models.filter(keep),
        )

    def pdf(self, client_id: str, field: str, start_s: int) -> pl.DataFrame:
        """The ``value, prob`` table of one client, length window and field (empty if inactive)."""
        return self.distributions.filter(
            (pl.col("client_id") == client_id) & (pl.col("start_s") == start_s) & (pl.col("field") == field)
        ).select("value", "prob")


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------


def list_models(data_dir: str | Path) -> list[str]:
    """Models under ``data_dir`` as ``"<category>/<model>"``, sorted; a model is a folder of trace CSVs."""
    root = Path(data_dir)
    if not root.is_dir():
        msg = "not a folder"
        raise DataFormatError(root, None, msg)
    models = []
    for category in sorted(p for p in root.iterdir() if p.is_dir()):
        for model in sorted(p for p in category.iterdir() if p.is_dir()):
            if any(_TRACE_RE.match(f.name) for f in model.iterdir()):
                models.append(f"{category.name}/{model.name}")
    return models


def _model_files(model_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    traces: dict[str, Path] = {}
    datasets: dict[str, Path] = {}
    for f in model_dir.iterdir():
        if m := _TRACE_RE.match(f.name):
            traces[m.group(1)] = f
        elif m := _DATASET_RE.match(f.name):
            datasets[m.group(1)] = f
    if not traces:
        msg = "no chunk-<client>-trace.csv files"
        raise DataFormatError(model_dir, None, msg)
    orphans = sorted(set(datasets) - set(traces), key=client_sort_key)
    if orphans:
        msg = f"dataset file has no trace file chunk-{orphans[0]}-trace.csv"
        raise DataFormatError(datasets[orphans[0]], None, msg)
    return traces, datasets


# --------------------------------------------------------------------------------------------
# Trace CSVs
# --------------------------------------------------------------------------------------------

_RAW_TRACE_SCHEMA = {
    "start_s": pl.String(),
    "rate_rps": pl.String(),
    "cv": pl.String(),
    "pattern": pl.String(),
    "shape": pl.String(),
    "scale": pl.String(),
}


def _diagnose_trace_csv(path: Path) -> None:
    """Slow path, only after the fast reader failed: find the first bad line and raise."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, f"line {line}", "not valid UTF-8 text") from None
    lines = text.splitlines()
    if not lines:
        raise DataFormatError(path, None, "empty file (expected 6 comma-separated columns per line)")
    for i, line in enumerate(lines, start=1):
        parts = line.split(",")
        if len(parts) != 6:
            msg = f"expected 6 columns (start_s, rate_rps, cv, pattern, shape, scale), found {len(parts)}"
            raise DataFormatError(path, f"line {i}", msg)
        # Same casts as the fast path, so a value it rejected is found here too.
        for name, raw in zip(("start_s", "rate_rps", "cv", "shape", "scale"), parts[:3] + parts[4:]):
            if pl.Series([raw], dtype=pl.String()).cast(pl.Float64, strict=False)[0] is None:
                raise DataFormatError(path, f"line {i}, column {name}", "not a number")
        if pl.Series([parts[0]], dtype=pl.String()).cast(pl.Int64, strict=False)[0] is None:
            raise DataFormatError(path, f"line {i}, column start_s", "not a whole number of seconds")
    msg = "could not be read as a trace CSV"
    raise DataFormatError(path, None, msg)


def _read_trace_csvs(traces: dict[str, Path]) -> tuple[pl.DataFrame, int]:
    """All trace CSVs of a model as one validated ``windows`` frame, and the window length in s."""
    ids = sorted(traces, key=client_sort_key)
    paths = [str(traces[c]) for c in ids]
    try:
        raw = pl.read_csv(
            paths if len(paths) > 1 else paths[0],
            has_header=False,
            schema=_RAW_TRACE_SCHEMA,
            include_file_paths="path",
            glob=False,
        ) if len(paths) > 1 else pl.read_csv(
            paths[0], has_header=False, schema=_RAW_TRACE_SCHEMA, glob=False
        ).with_columns(pl.lit(paths[0]).alias("path"))
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError):
        raw = None
    if raw is None:
        for p in paths:
            try:
                pl.read_csv(p, has_header=False, schema=_RAW_TRACE_SCHEMA, glob=False)
            except (pl.exceptions.PolarsError, UnicodeDecodeError):
                _diagnose_trace_csv(Path(p))
        _diagnose_trace_csv(Path(paths[0]))
    # Per-file: empty files, wrong widths show up as nulls from a short/long line.
    counts = raw.group_by("path").len()
    empty = [p for p in paths if p not in set(counts["path"].to_list())]
    if empty:
        raise DataFormatError(empty[0], None, "empty file (expected one line per 600 s window)")
    nullish = raw.filter(pl.any_horizontal(pl.col(c).is_null() for c in ("start_s", "rate_rps", "cv", "shape", "scale")))
    if nullish.height:
        _diagnose_trace_csv(Path(nullish["path"][0]))
    cast = {c: pl.Float64 for c in ("rate_rps", "cv", "shape", "scale")}
    try:
        raw.select(pl.col("start_s").cast(pl.Int64, strict=True), *(pl.col(c).cast(t, strict=True) for c, t in cast.items()))
    except pl.exceptions.PolarsError:
        bad_paths = raw.filter(
            pl.col("start_s").cast(pl.Int64, strict=False).is_null()
            | pl.any_horizontal(pl.col(c).cast(pl.Float64, strict=False).is_null() for c in cast)
        )["path"]
        _diagnose_trace_csv(Path(bad_paths[0]))
    id_of_path = pl.DataFrame({"path": paths, "client_id": ids})
    df = (
        raw.with_columns(
            pl.col("start_s").cast(pl.Int64),
            *(pl.col(c).cast(pl.Float64) for c in cast),
            pl.col("pattern").fill_null(""),
        )
        .with_columns(pl.int_range(pl.len()).over("path").alias("line"))
        .join(id_of_path, on="path", how="left", maintain_order="left")
    )
    window_s = _check_windows(df)
    out = df.select(
        "client_id",
        "start_s",
        pl.lit(window_s, dtype=pl.Int64).alias("duration_s"),
        "rate_rps",
        "cv",
        "pattern",
        "shape",
        "scale",
    )
    return out, window_s


def _grid_step(gaps: np.ndarray, *, default: int) -> int:
    """The most common positive gap between window starts (the smallest one on a tie)."""
    if not len(gaps):
        return default
    values, counts = np.unique(gaps, return_counts=True)
    return int(values[np.argmax(counts)])


def _first_bad(df: pl.DataFrame, cond: pl.Expr) -> dict | None:
    bad = df.filter(cond)
    return bad.row(0, named=True) if bad.height else None


def _check_windows(df: pl.DataFrame) -> int:
    """Validate values and the window grid; return the window length (s)."""
    where = lambda r, col: f"line {r['line'] + 1}, column {col}"  # noqa: E731
    for col in ("rate_rps", "cv", "shape", "scale"):
        if r := _first_bad(df, ~pl.col(col).is_finite() | (pl.col(col) < 0)):
            raise DataFormatError(r["path"], where(r, col), "must be a finite non-negative number")
    if r := _first_bad(df, ~pl.col("pattern").is_in(PATTERNS)):
        msg = "unknown arrival pattern (expected Gamma, Weibull or empty)"
        raise DataFormatError(r["path"], where(r, "pattern"), msg)
    if r := _first_bad(df, (pl.col("pattern") == "") & (pl.col("rate_rps") > 0)):
        msg = "empty pattern with a positive rate (an empty pattern marks a window without requests)"
        raise DataFormatError(r["path"], where(r, "pattern"), msg)
    if r := _first_bad(df, pl.col("start_s") < 0):
        raise DataFormatError(r["path"], where(r, "start_s"), "negative window start")
    limit = max_span_s()
    if r := _first_bad(df, pl.col("start_s") > limit):
        msg = (
            f"window start is more than {limit:,.0f} s after the trace start (the span limit, ${MAX_SPAN_ENV}); "
            "window starts are seconds from the trace start"
        )
        raise DataFormatError(r["path"], where(r, "start_s"), msg)
    gaps = df.with_columns(pl.col("start_s").diff().over("path").alias("gap"))
    if r := _first_bad(gaps, pl.col("gap") == 0):
        raise DataFormatError(r["path"], where(r, "start_s"), "duplicate window start (the same as on the line before)")
    if r := _first_bad(gaps, pl.col("gap") < 0):
        raise DataFormatError(r["path"], where(r, "start_s"), "windows not sorted: this start is before the start on the line before")
    positive = gaps["gap"].drop_nulls()
    # The grid step is the most common gap, so the window off the grid is the one blamed.
    window_s = _grid_step(positive.to_numpy(), default=600)
    if r := _first_bad(gaps, (pl.col("start_s") - pl.col("start_s").min()) % window_s != 0):
        msg = f"window start is off the {window_s} s grid of the other windows"
        raise DataFormatError(r["path"], where(r, "start_s"), msg)
    return window_s


# --------------------------------------------------------------------------------------------
# Dataset JSONs: strict dict-literal parsing
# --------------------------------------------------------------------------------------------

_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_PAIR = rf"\s*{_NUM}\s*:\s*{_NUM}\s*"
_LITERAL_RE = re.compile(rf"\{{(?:{_PAIR}(?:,{_PAIR})*,?)?\s*\}}")
_TOKEN_RE = re.compile(rf"\s*(?:({_NUM})|([{{}}:,])|(\S+?)(?=[\s{{}}:,]|$))")


def _literal_problem(text: str) -> str:
    """Describe the first thing in ``text`` that is not part of a ``{number: number}`` literal."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return "expected a {number: number} dict literal"
    for m in _TOKEN_RE.finditer(stripped):
        if m.group(3):
            return f"not a number at character {m.start(3) + 1} (only {{number: number}} literals are read)"
    return "malformed {number: number} dict literal"


def parse_pdf_literal(text: str, *, path: str | Path | None = None, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse a ``{bin: prob, ...}`` literal of numbers into ``(values, probs)`` float64 arrays.

    The grammar is JSON numbers as keys and values, separated by ``:`` and ``,``, with an
    optional trailing comma, inside braces. Anything else (a name, a call, a string, an
    attribute) raises :class:`DataFormatError` naming ``path`` and ``where``. The text is
    never evaluated. Duplicate bins are an error.
    """
    if not isinstance(text, str):
        raise DataFormatError(path, where, f"expected a string holding a dict literal, found {type(text).__name__}")
    if _LITERAL_RE.fullmatch(text.strip()) is None:
        raise DataFormatError(path, where, _literal_problem(text))
    inner = text.strip()[1:-1].strip().rstrip(",")
    if not inner:
        return np.empty(0), np.empty(0)
    numbers = np.asarray(json.loads("[" + inner.replace(":", ",") + "]"), dtype=np.float64)
    values, probs = numbers[0::2], numbers[1::2]
    if len(np.unique(values)) != len(values):
        raise DataFormatError(path, where, "duplicate bin in dict literal")
    return values, probs


class _KeyedObject(dict):
    """A JSON object that remembers the first key it saw twice (``json`` keeps only the last)."""

    duplicate: str | None = None


def _keyed_object(pairs: list[tuple[str, object]]) -> _KeyedObject:
    obj = _KeyedObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                obj.duplicate = key
                break
            seen.add(key)
    return obj


def _load_dataset_json(path: Path) -> dict:
    """Read one dataset JSON file and check its outer shape (an object of window objects)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, f"line {line}", "not valid UTF-8 text") from None
    if not text.strip():
        raise DataFormatError(path, None, "empty file (expected a JSON object of length windows)")
    try:
        data = json.loads(text, object_pairs_hook=_keyed_object)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise DataFormatError(path, None, "invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise DataFormatError(path, None, f"expected a JSON object of length windows, found {type(data).__name__}")
    if data.duplicate is not None:
        raise DataFormatError(path, f"window {data.duplicate}", "duplicate window")
    prev = None
    for n, (key, fields) in enumerate(data.items(), start=1):
        if not re.fullmatch(r"[0-9]+", key):
            raise DataFormatError(path, f"key {n} of the object", "window key must be a whole number of seconds")
        start = int(key)
        if prev is not None and start <= prev:
            problem = "duplicate window" if start == prev else f"windows not sorted ({start} after {prev})"
            raise DataFormatError(path, f"window {key}", problem)
        prev = start
        if not isinstance(fields, dict):
            raise DataFormatError(path, f"window {key}", f"expected an object of fields, found {type(fields).__name__}")
        if fields.duplicate is not None:
            raise DataFormatError(path, f"window {key}, field {fields.duplicate}", "duplicate field")
        for field, literal in fields.items():
            if not isinstance(literal, str):
                msg = f"expected a string holding a dict literal, found {type(literal).__name__}"
                raise DataFormatError(path, f"window {key}, field {field}", msg)
    return data


def _read_datasets(datasets: dict[str, Path]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """All dataset JSONs of a model → (distributions, length_windows, length window in s).

    Files are parsed in batches of about :data:`_BATCH_CHARS` characters of literal text to
    bound memory; each batch is parsed vectorized by :func:`_parse_batch`.
    """
    dist_parts: list[pl.DataFrame] = []
    lw_parts: list[pl.DataFrame] = []
    batch: list[tuple[str, Path, dict]] = []
    size = 0
    ids = sorted(datasets, key=client_sort_key)
    for n, client_id in enumerate(ids):
        path = datasets[client_id]
        data = _load_dataset_json(path)
        batch.append((client_id, path, data))
        size += path.stat().st_size
        if size >= _BATCH_CHARS or n == len(ids) - 1:
            dist, lw = _parse_batch(batch)
            dist_parts.append(dist)
            lw_parts.append(lw)
            batch, size = [], 0
    dist = pl.concat(dist_parts) if dist_parts else pl.DataFrame(schema=DISTRIBUTION_SCHEMA)
    lw = pl.concat(lw_parts) if lw_parts else pl.DataFrame(schema={k: v for k, v in LENGTH_WINDOW_SCHEMA.items() if k != "duration_s"})
    starts = np.unique(lw["start_s"].to_numpy())
    diffs = np.diff(starts)
    length_window_s = _grid_step(diffs, default=21600)
    if r := _first_bad(lw, (pl.col("start_s") - pl.col("start_s").min()) % length_window_s != 0):
        msg = f"length window start {r['start_s']} is off the {length_window_s} s grid of the other windows"
        raise DataFormatError(datasets[r["client_id"]], f"window {r['start_s']}", msg)
    lw = lw.select(
        "client_id", "start_s", pl.lit(length_window_s, dtype=pl.Int64).alias("duration_s"), "active"
    )
    return dist, lw, length_window_s


_BATCH_CHARS = 12_000_000


def _parse_batch(batch: list[tuple[str, Path, dict]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse the dict literals of several dataset files together, vectorized in Polars.

    Each literal must be braces around ``number: number`` pairs separated by commas (optional
    trailing comma); each number must parse as a finite float. Any literal that fails is
    re-parsed by :func:`parse_pdf_literal`, whose error names the file, window and field.
    """
    paths: list[Path] = []
    lit_client: list[str] = []
    lit_start: list[int] = []
    lit_field: list[str] = []
    lit_path: list[int] = []
    literals: list[str] = []
    lw_client: list[str] = []
    lw_start: list[int] = []
    for client_id, path, data in batch:
        paths.append(path)
        for key, fields in data.items():
            lw_client.append(client_id)
            lw_start.append(int(key))
            for field, literal in fields.items():
                lit_client.append(client_id)
                lit_start.append(int(key))
                lit_field.append(field)
                lit_path.append(len(paths) - 1)
                literals.append(literal)

    def fail(i: int, problem: str | None = None) -> None:
        where = f"window {lit_start[i]}, field {lit_field[i]}"
        parse_pdf_literal(literals[i], path=paths[lit_path[i]], where=where)
        raise DataFormatError(paths[lit_path[i]], where, problem or "malformed {number: number} dict literal")

    lits = pl.DataFrame({"lit": literals}, schema={"lit": pl.String()}).with_row_index("i")
    lits = lits.with_columns(stripped=pl.col("lit").str.strip_chars())
    braces = lits.select(pl.col("stripped").str.starts_with("{") & pl.col("stripped").str.ends_with("}"))
    if braces.height and not braces.to_series().all():
        fail(int(braces.to_series().arg_min()))
    lits = lits.select(
        "i",
        pl.col("stripped").str.slice(1, pl.col("stripped").str.len_bytes() - 2).str.strip_chars().alias("inner0"),
    ).with_columns(inner=pl.col("inner0").str.strip_suffix(","))
    # A trailing comma needs a pair before it: "{,}" is malformed, not empty.
    if r := _first_bad(lits, (pl.col("inner") == "") & (pl.col("inner0") != "")):
        fail(int(r["i"]))
    pieces = (
        lits.filter(pl.col("inner") != "")
        .select("i", pl.col("inner").str.split(","))
        .explode("inner")
        .select(
            "i",
            pl.col("inner").str.count_matches(":", literal=True).alias("colons"),
            pl.col("inner").str.split_exact(":", 1).struct.rename_fields(["k", "v"]).alias("kv"),
        )
        .unnest("kv")
        .with_columns(
            pl.col("k").str.strip_chars().cast(pl.Float64, strict=False),
            pl.col("v").str.strip_chars().cast(pl.Float64, strict=False),
        )
    )
    bad = pieces.filter(
        (pl.col("colons") != 1)
        | pl.col("k").is_null()
        | pl.col("v").is_null()
        | ~pl.col("k").is_finite()
        | ~pl.col("v").is_finite()
    )
    if bad.height:
        fail(int(bad["i"][0]))
    field_s = pl.Series("field", lit_field, dtype=pl.String())
    pieces = pieces.with_columns(field=field_s.gather(pieces["i"]))
    if r := _first_bad(pieces, pl.col("v") < 0):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}",
            "probability must be non-negative",
        )
    is_ratio = pl.col("field") == "reason_ratio"
    if r := _first_bad(pieces, ~is_ratio & ((pl.col("k") < 0) | (pl.col("k") != pl.col("k").floor()))):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}",
            "token bins must be non-negative whole numbers",
        )
    token_limit = max_tokens()
    if r := _first_bad(pieces, ~is_ratio & (pl.col("k") > token_limit)):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}",
            f"a token bin is above the limit of {token_limit:,} tokens per request (${MAX_TOKENS_ENV})",
        )
    if r := _first_bad(pieces, is_ratio & ((pl.col("k") < 0) | (pl.col("k") > 1))):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}",
            "reason_ratio bins must lie in [0, 1]",
        )
    per_lit = pieces.group_by("i").agg(
        pl.col("v").sum().alias("total"), (pl.col("k").n_unique() != pl.len()).alias("dup")
    ).sort("i")
    if r := _first_bad(per_lit, pl.col("dup")):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}", "duplicate bin in dict literal"
        )
    if r := _first_bad(per_lit, (pl.col("total") - 1.0).abs() > PROB_TOLERANCE):
        fail_i = r["i"]
        raise DataFormatError(
            paths[lit_path[fail_i]], f"window {lit_start[fail_i]}, field {lit_field[fail_i]}",
            f"probabilities sum to {r['total']!r}, not 1 (tolerance {PROB_TOLERANCE})",
        )

    meta = pl.DataFrame(
        {"client_id": lit_client, "start_s": lit_start, "field": lit_field},
        schema={"client_id": pl.String(), "start_s": pl.Int64(), "field": pl.String()},
    ).with_row_index("i")
    dist = (
        pieces.select("i", pl.col("k").alias("value"), pl.col("v").alias("prob"))
        .join(meta.drop("field"), on="i", how="left", maintain_order="left")
        .with_columns(field=field_s.gather(pieces["i"]))
        .select(list(DISTRIBUTION_SCHEMA))
    )
    active = lits.filter(pl.col("inner") != "").select(
        pl.col("i").cast(pl.UInt32)
    ).join(meta.select("i", "client_id", "start_s"), on="i", how="left").select("client_id", "start_s").unique()
    lw = pl.DataFrame(
        {"client_id": lw_client, "start_s": lw_start},
        schema={"client_id": pl.String(), "start_s": pl.Int64()},
    ).join(active.with_columns(active=pl.lit(True)), on=["client_id", "start_s"], how="left", maintain_order="left")
    return dist, lw.with_columns(pl.col("active").fill_null(False))


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _manifest(model_dir: Path, files: Iterable[Path]) -> dict:
    entries = []
    for f in sorted(files, key=lambda p: p.name):
        st = f.stat()
        entries.append([f.name, st.st_size, st.st_mtime_ns])
    return {"version": CACHE_VERSION, "model_dir": str(model_dir), "files": entries}


def _cache_folder(cache_dir: Path, model_dir: Path) -> Path:
    digest = hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
    return cache_dir / f"{model_dir.parent.name}-{model_dir.name}-{digest}"


_CACHED_FRAMES = ("windows", "distributions", "length_windows")


def _read_cache(folder: Path, manifest: dict) -> dict | None:
    """The cached frames if the cache matches ``manifest`` and its files are intact, else ``None``.

    Each Parquet file's SHA-256 is recorded when it is written and checked before it is read,
    so a truncated or altered file is never decoded; any other failure also means "rebuild".
    """
    try:
        stored = json.loads((folder / "manifest.json").read_text())
        if not isinstance(stored, dict) or stored.get("manifest") != manifest:
            return None
        schemas = {"windows": WINDOW_SCHEMA, "distributions": DISTRIBUTION_SCHEMA, "length_windows": LENGTH_WINDOW_SCHEMA}
        frames = {}
        for name in _CACHED_FRAMES:
            data = (folder / f"{name}.parquet").read_bytes()
            if hashlib.sha256(data).hexdigest() != stored["sha256"][name]:
                return None
            frame = pl.read_parquet(io.BytesIO(data))
            if dict(frame.schema) != schemas[name] or frame.height != stored["rows"][name]:
                return None
            frames[name] = frame
        return {**frames, "window_s": int(stored["window_s"]), "length_window_s": int(stored["length_window_s"])}
    except (Exception, pl.exceptions.PanicException):
        return None


def _write_cache(folder: Path, manifest: dict, pool: ClientPool) -> None:
    """Write the cache into a temp folder, then swap it in; failures leave no cache behind."""
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        digests = {}
        for name in _CACHED_FRAMES:
            target = tmp / f"{name}.parquet"
            getattr(pool, name).write_parquet(target, compression="lz4", statistics=False)
            digests[name] = hashlib.sha256(target.read_bytes()).hexdigest()
        meta = {
            "manifest": manifest,
            "window_s": pool.window_s,
            "length_window_s": pool.length_window_s,
            "rows": {name: getattr(pool, name).height for name in _CACHED_FRAMES},
            "sha256": digests,
        }
        (tmp / "manifest.json").write_text(json.dumps(meta))
        if folder.exists():
            old = folder.with_name(folder.name + f".old-{os.getpid()}")
            os.replace(folder, old)
            _rmtree(old)
        os.replace(tmp, folder)
        tmp = None
    except (OSError, pl.exceptions.PolarsError):
        pass
    finally:
        if tmp is not None:
            _rmtree(tmp)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_pool(
    data_dir: str | Path,
    model: str,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> ClientPool:
    """Load one model's client pool, e.g. ``load_pool("../shared/data/servegen", "language/m-large")``.

    Parameters
    ----------
    data_dir:
        Folder holding ``<category>/<model>/`` folders in ServeGen's layout.
    model:
        ``"<category>/<model>"``.
    cache_dir:
        Folder for the columnar cache; default :func:`servegen_core.paths.default_cache_dir`.
    use_cache:
        Read and write the cache (default). ``False`` always parses the source files.

    Raises
    ------
    DataFormatError
        A file is malformed; the message names the file and the line, window or field.
    """
    model_dir = (Path(data_dir) / model).resolve()
    if not model_dir.is_dir():
        available = list_models(data_dir) if Path(data_dir).is_dir() else []
        msg = f"no such model folder; models here: {available}"
        raise DataFormatError(model_dir, None, msg)
    traces, datasets = _model_files(model_dir)
    manifest = folder = None
    if use_cache:
        manifest = _manifest(model_dir, [*traces.values(), *datasets.values()])
        folder = _cache_folder(Path(cache_dir) if cache_dir else default_cache_dir(), model_dir)
        cached = _read_cache(folder, manifest)
        if cached is not None:
            return ClientPool(name=model, source=str(model_dir), **cached)
    windows, window_s = _read_trace_csvs(traces)
    dist, lw, length_window_s = _read_datasets(datasets)
    pool = ClientPool(
        name=model,
        source=str(model_dir),
        windows=windows,
        distributions=dist,
        length_windows=lw,
        window_s=window_s,
        length_window_s=length_window_s,
    )
    if use_cache:
        _write_cache(folder, manifest, pool)
    return pool


def expected_requests(pool: ClientPool) -> float:
    """Requests implied by the recorded rates: sum of ``rate_rps * duration_s`` over windows."""
    return float(pool.windows.select((pl.col("rate_rps") * pl.col("duration_s")).sum()).item())


