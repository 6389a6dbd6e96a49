"""What the ``servegen`` command reads: data folders (or their shortcuts), trace files with a
progress line for large ones, and spec files."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from servegen_core.cli.common import CliError
from servegen_core.errors import ServeGenError
from servegen_core.paths import demo_data_dir, shared_data_dir
from servegen_core.sources.pool import list_models
from servegen_core.sources.traces import LoadedTrace, load_trace
from servegen_core.spec import TraceSource, WorkloadSpec

__all__ = [
    "DATA_SHORTCUTS",
    "LOAD_PROGRESS_MIN_BYTES",
    "LoadProgress",
    "check_preset",
    "is_model_dir",
    "load_trace_file",
    "pool_source",
    "read_spec",
    "resolve_data_dir",
]


#: Names accepted in place of a data folder.
DATA_SHORTCUTS: dict[str, Callable[[], Path]] = {
    "demo": lambda: demo_data_dir() / "servegen",
    "shared": lambda: shared_data_dir() / "servegen",
}


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is one model's folder (it holds ``chunk-<client>-trace.csv`` files)."""
    return path.is_dir() and any(path.glob("chunk-*-trace.csv"))


def resolve_data_dir(text: str | Path) -> Path:
    """The ServeGen data folder named by ``text`` (a shortcut of :data:`DATA_SHORTCUTS` or a path).

    A folder that holds a ``servegen/`` folder with models (e.g. ``../shared/data``) resolves
    to that ``servegen/`` folder.
    """
    key = str(text)
    path = DATA_SHORTCUTS[key]() if key in DATA_SHORTCUTS else Path(key).expanduser()
    if not path.exists():
        msg = f"data folder not found: {path}"
        if key not in DATA_SHORTCUTS:
            msg += f" (shortcuts: {', '.join(DATA_SHORTCUTS)})"
        raise CliError(msg)
    if not path.is_dir():
        msg = f"not a folder: {path}"
        raise CliError(msg)
    inner = path / "servegen"
    if inner.is_dir() and not _has_models(path):
        return inner
    return path


def _has_models(path: Path) -> bool:
    try:
        return bool(list_models(path))
    except ServeGenError:
        return False


def pool_source(text: str, model: str | None) -> tuple[Path, str]:
    """``(data_dir, model)`` for a data folder (+ ``model``) or one model's folder."""
    path = DATA_SHORTCUTS[text]() if text in DATA_SHORTCUTS else Path(text).expanduser()
    if is_model_dir(path):
        resolved = path.resolve()
        name = f"{resolved.parent.name}/{resolved.name}"
        if model is not None and model != name:
            msg = f"{path} is the folder of model {name}, but --model {model} was given"
            raise CliError(msg)
        return resolved.parent.parent, name
    data_dir = resolve_data_dir(text)
    models = list_models(data_dir)
    if model is None:
        if len(models) == 1:
            return data_dir, models[0]
        msg = f"{data_dir} holds {len(models)} models; choose one with --model ({', '.join(models) or 'none found'})"
        raise CliError(msg)
    if model not in models:
        msg = f"no model {model!r} in {data_dir}; models there: {', '.join(models) or 'none'}"
        raise CliError(msg)
    return data_dir, model


#: Trace files at least this large show a loading progress line on stderr.
LOAD_PROGRESS_MIN_BYTES = 32 * 2**20


class LoadProgress:
    """Rows read so far from a large trace file, as one line on ``stream`` (stderr).

    The share done is estimated from the file size and the length of its first lines (plain
    CSV and JSON Lines; for ``.gz`` and Parquet only the rows are shown). On a terminal the
    line is redrawn in place; in a log a line is written per tenth (or per 5,000,000 rows).
    """

    def __init__(self, path: Path, *, stream: TextIO) -> None:
        self.stream = stream
        self.name = path.name
        self.t0 = time.perf_counter()
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -1
        self.rows_estimate: float | None = None
        if path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
            try:
                with path.open("rb") as fh:
                    head = fh.read(1 << 16)
                lines = head.count(b"\n")
                if lines > 1:
                    self.rows_estimate = path.stat().st_size / (len(head) / lines)
            except OSError:
                pass

    def __call__(self, rows: int) -> None:
        share = min(rows / self.rows_estimate, 0.99) if self.rows_estimate else None
        step = int(share * 10) if share is not None else rows // 5_000_000
        text = f"reading {self.name}: {rows:,} rows" + (f" (~{share:.0%})" if share is not None else "")
        text += f", {time.perf_counter() - self.t0:.0f} s"
        if self._tty:
            self.stream.write("\r" + text)
        elif step != self._last:
            self.stream.write(text + "\n")
        self._last = step
        self.stream.flush()

    def close(self, rows: int | None = None) -> None:
        if rows is not None:
            text = f"read {self.name}: {rows:,} rows in {time.perf_counter() - self.t0:.0f} s"
            self.stream.write(("\r" + text + "\n") if self._tty else text + "\n")
        elif self._tty:
            self.stream.write("\n")
        self.stream.flush()


def load_trace_file(path: Path, *, preset: str | None, hash_block_size: int | None = None) -> LoadedTrace:
    """:func:`servegen_core.sources.traces.load_trace` with a progress line on stderr for a large file."""
    try:
        big = path.stat().st_size >= LOAD_PROGRESS_MIN_BYTES
    except OSError:
        big = False
    if not big:
        return load_trace(path, preset=preset, hash_block_size=hash_block_size)
    progress = LoadProgress(path, stream=sys.stderr)
    loaded = None
    try:
        loaded = load_trace(path, preset=preset, progress=progress, hash_block_size=hash_block_size)
    finally:
        progress.close(None if loaded is None else loaded.trace.height)
    return loaded


def read_spec(path: str | Path, *, seed: int | None = None, hash_block_size: int | None = None) -> WorkloadSpec:
    """Read a spec file (relative paths in it resolve against its folder); ``seed`` overrides its seed,
    ``hash_block_size`` its trace source's ``source.hash_block_size`` (``--hash-block-size``; an error
    for a spec whose source is ServeGen data, which has no hash ids)."""
    p = Path(path)
    if not p.is_file():
        msg = f"spec file not found: {p}" if not p.exists() else f"not a file: {p}"
        raise CliError(msg)
    spec = WorkloadSpec.from_file(p)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    if hash_block_size is not None:
        if not isinstance(spec.source, TraceSource):
            msg = f"--hash-block-size applies to a trace source, but {p} composes from ServeGen data"
            raise CliError(msg)
        spec = dataclasses.replace(spec, source=dataclasses.replace(spec.source, hash_block_size=hash_block_size))
    return spec


def check_preset(preset: str | None) -> None:
    """Refuse ``--preset generic``: it needs a column mapping, which only a spec's trace source gives."""
    if preset == "generic":
        msg = (
            "--preset generic needs a column mapping and a time unit, which the command line does not take; "
            "convert the file to a named preset's columns, or use a spec whose source is "
            '{"kind": "trace", "preset": "generic", "columns": {...}, "time_unit": ...}'
        )
        raise CliError(msg)
