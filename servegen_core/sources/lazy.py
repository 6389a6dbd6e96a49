"""Lazy trace sources: a raw trace scanned, never loaded, for characterization in bounded memory.

:func:`scan_trace` maps a Parquet file, a folder or glob of Parquet files, or a CSV / JSON Lines
file onto the RequestTrace columns as a :class:`polars.LazyFrame` and returns it in a
:class:`LazyTrace`. Nothing but the schema (and, for a trace whose time origin is not kept, the
earliest timestamp: one streaming pass over one column) is read. The statistics of
:mod:`servegen_core.characterize.streaming` run on it with Polars' streaming engine.

Column mapping: the presets of :mod:`servegen_core.sources.traces` (:data:`PRESETS`, detected
with :func:`detect_preset` from the column names when not given), the user's ``columns`` on
top, ``client_column`` as in :func:`~servegen_core.sources.traces.load_trace`. Without a
client column every request's ``client_id`` is ``"all"``.

Timestamps become ``timestamp_s``, float64 seconds from the earliest request (the ``servegen``
preset keeps its ``timestamp_s`` as written), as :func:`load_trace` makes them: integer times
are offset in integers, then divided by the unit in float64; wall-clock text (``YYYY-MM-DD
HH:MM:SS[.fffffffff]``, UTC) and native date-times become integer nanoseconds first.

How this differs from :func:`load_trace` (the in-memory loader):

- CSV and JSON Lines are scanned with an explicit schema (token and count columns ``Int64``,
  numeric times ``Float64`` or ``Int64`` as the first rows show, wall clocks ``String``): decimal
  time text is read through float64, not as an exact 38-digit decimal, and a cell that does not
  parse fails the query (:class:`~servegen_core.errors.DataFormatError` naming the file, without
  the line). Blank CSV lines are skipped by Polars without a warning.
- Rows are not sorted (no statistic here needs file order) and no load budget applies: the
  point of this path is traces too large to load. Values are checked by :meth:`LazyTrace.check`
  (one streaming pass), which the characterization entry points call once.
- AIPerf conversations (Mooncake ``session_id``) are not rebuilt into whole prompts, and
  BurstGPT's ``failed`` flag is not added.
"""

from __future__ import annotations

import glob as globbing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import polars as pl

from servegen_core.errors import DataFormatError, OptionError, quoted
from servegen_core.limits import max_span_s as default_max_span_s
from servegen_core.schema import DATETIME, SCHEMA, TARGETS, TIME_UNITS, TOKEN_COLUMNS
from servegen_core.sources.traces import PRESETS, Preset, detect_preset

__all__ = ["LazyTrace", "divide", "run", "scan_trace"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv",)
_JSONL = (".jsonl", ".ndjson")
_REQUIRED_TARGETS = ("timestamp", "input_tokens", "output_tokens")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class LazyTrace:
    """A trace as a lazy query in the RequestTrace schema.

    ``frame`` yields ``timestamp_s`` (float64 seconds), ``client_id`` (string),
    ``input_tokens``, ``output_tokens`` and the optional columns the preset found, with the
    dtypes of :data:`servegen_core.schema.SCHEMA`. ``paths`` are the files scanned,
    ``columns`` maps each target to its source column, ``time_origin`` is the raw time value
    subtracted (in the source unit; ``0`` when the origin is kept).
    """

    frame: pl.LazyFrame
    paths: tuple[str, ...]
    file_format: str
    preset: str
    detected: bool
    columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    time_origin: float | int = 0
    max_span_s: float | None = None

    @property
    def path(self) -> str:
        """The first file (the one errors name when there are several)."""
        return self.paths[0]

    @property
    def fields(self) -> tuple[str, ...]:
        """The RequestTrace columns the frame has."""
        return tuple(self.frame.collect_schema())

    def collect(self) -> pl.DataFrame:
        """All rows, in file order (for small traces and tests)."""
        return run(self, self.frame)

    def check(self) -> int:
        """Check every value in one streaming pass and return the number of requests.

        Refuses (:class:`DataFormatError` naming the file and the column) a null or
        non-finite timestamp, a negative one, timestamps spanning more than ``max_span_s``
        (default :func:`servegen_core.limits.max_span_s`), a null ``client_id``, a null or
        negative token or count, a ``reason_ratio`` outside [0, 1], and an empty trace.
        """
        names = self.fields
        ts = pl.col("timestamp_s")
        exprs = [
            pl.len().alias("rows"),
            (ts.is_null() | ~ts.is_finite() | (ts < 0)).sum().alias("timestamp_s"),
            ts.min().alias("__lo"),
            ts.max().alias("__hi"),
            pl.col("client_id").is_null().sum().alias("client_id"),
        ]
        for col in (c for c in TOKEN_COLUMNS if c in names):
            exprs.append((pl.col(col).is_null() | (pl.col(col) < 0)).sum().alias(col))
        if "reason_ratio" in names:
            r = pl.col("reason_ratio")
            exprs.append((r.is_nan() | (r < 0) | (r > 1)).sum().alias("reason_ratio"))
        got = run(self, self.frame.select(exprs)).row(0, named=True)
        if not got["rows"]:
            raise DataFormatError(self.path, None, "no requests: the trace has no data rows")
        for col, n in got.items():
            if col in ("rows", "__lo", "__hi") or not n:
                continue
            what = {
                "timestamp_s": "timestamps that are missing, not finite or negative",
                "client_id": "missing client ids",
                "reason_ratio": "reason ratios outside [0, 1]",
            }.get(col, "missing or negative values")
            src = self.columns.get("timestamp" if col == "timestamp_s" else col, col)
            raise DataFormatError(self.path, f"column {quoted(src)}", f"{n:,} row(s) with {what}")
        limit = default_max_span_s() if self.max_span_s is None else float(self.max_span_s)
        span = got["__hi"] if self.time_origin == 0 and self.preset == "servegen" else got["__hi"] - got["__lo"]
        if span > limit:
            msg = f"the timestamps span {span:.3g} s, more than the limit of {limit:,.0f} s (check the time unit)"
            raise DataFormatError(self.path, f"column {quoted(self.columns.get('timestamp', 'timestamp_s'))}", msg)
        return int(got["rows"])


def divide(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` in float64, correctly rounded as NumPy divides.

    Polars turns a division by a scalar into a multiplication by its reciprocal, which is off
    by one unit in the last place for about a third of the values; dividing by a column of the
    divisor (``expr * 0 + divisor``, for finite ``expr``) keeps the true division.
    """
    value = expr.cast(pl.Float64)
    return value / (value * 0.0 + float(divisor))


def run(trace: LazyTrace, query: pl.LazyFrame) -> pl.DataFrame:
    """Collect ``query`` (built on ``trace.frame``) with the streaming engine; a read or parse
    failure becomes a :class:`DataFormatError` naming the trace's file."""
    try:
        return query.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        text = str(exc).strip().splitlines()
        msg = f"cannot be read as {trace.file_format}: {text[0] if text else type(exc).__name__}"
        raise DataFormatError(trace.path, None, msg) from None


def _files(source: str | Path) -> tuple[list[str], str]:
    """The files a path, folder or glob names, and their format."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _PARQUET)
        if not files:
            msg = "the folder holds no .parquet or .pq file"
            raise DataFormatError(path, None, msg)
        return files, "parquet"
    if path.is_file():
        files = [text]
    elif _GLOB_CHARS & set(text):
        files = sorted(p for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            msg = f"no file matches the pattern {quoted(text)}"
            raise FileNotFoundError(msg)
    else:
        msg = f"trace file not found: {path}"
        raise FileNotFoundError(msg)
    formats = set()
    for f in files:
        suffix = Path(f).suffix.lower()
        fmt = "parquet" if suffix in _PARQUET else "csv" if suffix in _CSV else "jsonl" if suffix in _JSONL else None
        if fmt is None:
            msg = "unknown file type for a lazy scan; use .parquet/.pq (a file, folder or glob), .csv or .jsonl/.ndjson"
            raise DataFormatError(f, None, msg)
        formats.add(fmt)
    if len(formats) > 1:
        msg = f"the pattern matches files of several formats ({sorted(formats)}); scan one format at a time"
        raise DataFormatError(files[0], None, msg)
    fmt = formats.pop()
    if fmt != "parquet" and len(files) > 1:
        msg = "several CSV or JSON Lines files: scan them one at a time (only Parquet is scanned as a set)"
        raise DataFormatError(files[0], None, msg)
    return files, fmt


def _names(files: list[str], fmt: str) -> list[str]:
    try:
        if fmt == "parquet":
            return list(pl.scan_parquet(files[0], glob=False).collect_schema())
        if fmt == "csv":
            return list(pl.scan_csv(files[0], infer_schema=False, glob=False, n_rows=0).collect_schema())
        return list(pl.read_ndjson(files[0], n_rows=1).columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        text = str(exc).strip().splitlines()
        msg = f"cannot be read as {fmt}: {text[0] if text else type(exc).__name__}"
        raise DataFormatError(files[0], None, msg) from None


def _mapping(
    spec: Preset, available: list[str], columns: Mapping[str, str] | None, client_column: str | None, path: str
) -> dict[str, str]:
    """Target -> source column: the preset's first match per target, then ``columns``, then ``client_column``."""
    user = dict(columns or {})
    for target in user:
        if target not in TARGETS:
            msg = f"unknown target {quoted(target)} in columns; choose from {list(TARGETS)}"
            raise OptionError(msg)
    if client_column is not None:
        user["client_id"] = client_column
    mapping: dict[str, str] = {}
    for target, srcs in {**spec.required, **spec.optional}.items():
        found = next((s for s in srcs if s in available), None)
        if found is not None:
            mapping[target] = found
    mapping.update(user)
    missing = [t for t in _REQUIRED_TARGETS if t not in mapping]
    if missing:
        msg = f"preset '{spec.name}' needs {spec.needs()}; the file has {quoted(available, limit=2000)}"
        raise DataFormatError(path, f"column {quoted(missing[0])}", msg)
    for target, src in mapping.items():
        if src not in available:
            msg = f"column {quoted(src)} (mapped to {target}) not found; the file has {quoted(available, limit=2000)}"
            raise DataFormatError(path, f"column {quoted(src)}", msg)
    return mapping


def _text_schema(files: list[str], fmt: str, available: list[str], mapping: Mapping[str, str], unit: str) -> dict[str, pl.DataType]:
    """Explicit scan schema of a CSV / JSON Lines file: every column (CSV) or the mapped ones."""
    by_source = {src: target for target, src in mapping.items()}
    schema: dict[str, pl.DataType] = {}
    for name in available if fmt == "csv" else list(mapping.values()):
        target = by_source.get(name)
        if target is None:
            schema[name] = pl.String()
        elif target == "timestamp":
            schema[name] = pl.String() if unit == DATETIME else _numeric_time_dtype(files[0], fmt, name)
        else:
            schema[name] = SCHEMA.get(target, pl.String())
    return schema


def _numeric_time_dtype(path: str, fmt: str, name: str) -> pl.DataType:
    """Int64 when the first 1000 time values are written as whole numbers, else Float64."""
    if fmt == "csv":
        head = pl.scan_csv(path, infer_schema=False, glob=False).select(name).head(1000).collect().to_series()
    else:
        head = pl.read_ndjson(path, n_rows=1000, schema={name: pl.String()}).to_series()
    whole = head.drop_nulls().str.strip_chars().str.contains(r"^-?\d+$").all()
    return pl.Int64() if whole else pl.Float64()


def _raw_scan(files: list[str], fmt: str, schema: dict[str, pl.DataType] | None) -> pl.LazyFrame:
    if fmt == "parquet":
        return pl.scan_parquet(files, glob=False)
    if fmt == "csv":
        return pl.scan_csv(files[0], schema=schema, glob=False)
    return pl.scan_ndjson(globbing.escape(files[0]), schema=schema)


def _time_ns(c: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A date-time or wall-clock text column as Int64 nanoseconds since the epoch (UTC)."""
    if isinstance(dtype, pl.Datetime):
        d = c.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if dtype.time_zone else c
        return d.cast(pl.Datetime("ns")).cast(pl.Int64)
    if isinstance(dtype, pl.Date):
        return c.cast(pl.Datetime("ns")).cast(pl.Int64)
    text = c.str.strip_chars().str.replace("T", " ", literal=True)
    return text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=True).cast(pl.Int64)


def scan_trace(
    source: str | Path,
    *,
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    client_column: str | None = None,
    max_span_s: float | None = None,
) -> LazyTrace:
    """Scan a trace lazily into the RequestTrace columns (see the module docstring).

    ``source`` is a Parquet file, a folder (every ``.parquet``/``.pq`` file under it) or a glob
    of Parquet files, or one CSV or JSON Lines file. ``preset``, ``columns``, ``time_unit`` and
    ``client_column`` mean what they mean for :func:`~servegen_core.sources.traces.load_trace`.
    Raises :class:`FileNotFoundError`, :class:`DataFormatError` (unknown suffix, no matching
    preset, missing column) or :class:`OptionError` (unknown preset, target or unit).
    """
    if preset is not None and preset not in PRESETS:
        msg = f"unknown preset {quoted(preset)}; choose from {list(PRESETS)}"
        raise OptionError(msg)
    files, fmt = _files(source)
    available = _names(files, fmt)
    detected = preset is None and columns is None
    if preset is None:
        preset = "generic" if columns is not None else detect_preset(available, source=files[0])
    spec = PRESETS[preset]
    unit = time_unit if time_unit is not None else spec.time_unit
    if unit is None or (unit not in TIME_UNITS and unit != DATETIME):
        msg = f"time_unit must be one of {[*TIME_UNITS, DATETIME]}, got {quoted(unit)}"
        raise OptionError(msg)
    mapping = _mapping(spec, available, columns, client_column, files[0])
    schema = None if fmt == "parquet" else _text_schema(files, fmt, available, mapping, unit)
    raw = _raw_scan(files, fmt, schema)
    raw_schema = raw.collect_schema()
    tcol = mapping["timestamp"]
    tdtype = raw_schema[tcol]
    t = pl.col(tcol)
    if unit == DATETIME or isinstance(tdtype, (pl.Datetime, pl.Date)):
        t, divisor = _time_ns(t, tdtype), 1e9
    elif tdtype.is_integer():
        t, divisor = t.cast(pl.Int64), TIME_UNITS[unit]
    elif tdtype.is_numeric():
        t, divisor = t.cast(pl.Float64), TIME_UNITS[unit]
    else:
        msg = f"the time column is {tdtype}, not numbers or date-times (give time_unit='datetime' for wall-clock text)"
        raise DataFormatError(files[0], f"column {quoted(tcol)}", msg)
    origin: float | int = 0
    if not spec.keep_time_origin:
        lazy = LazyTrace(raw, tuple(files), fmt, spec.name, detected)
        origin = run(lazy, raw.select(t.min())).item()
        if origin is None:
            raise DataFormatError(files[0], None, "no requests: the trace has no data rows")
    seconds = (t - origin).cast(pl.Float64)
    if divisor != 1.0:
        seconds = divide(seconds, divisor)
    exprs = [seconds.alias("timestamp_s")]
    exprs.append(pl.col(mapping["client_id"]).cast(pl.String) if "client_id" in mapping else pl.lit("all", pl.String))
    exprs[-1] = exprs[-1].alias("client_id")
    for target in TARGETS:
        if target in ("timestamp", "client_id") or target not in mapping or target not in SCHEMA:
            continue
        exprs.append(pl.col(mapping[target]).cast(SCHEMA[target], strict=True).alias(target))
    order = [c for c in SCHEMA if c in {"timestamp_s", "client_id", *mapping}]
    frame = raw.select(exprs).select(order)
    return LazyTrace(
        frame=frame,
        paths=tuple(files),
        file_format=fmt,
        preset=spec.name,
        detected=detected,
        columns=MappingProxyType(dict(mapping)),
        time_origin=origin,
        max_span_s=max_span_s,
    )
