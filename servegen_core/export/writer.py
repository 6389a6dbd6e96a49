"""Write a RequestTrace to a file, whole or chunk by chunk, atomically.

:func:`export_trace` writes a whole trace; :class:`ChunkWriter` takes one chunk at a time,
and :func:`write_chunks` is the one loop that feeds it an iterable of chunks (reporting
progress after each), used by :func:`export_chunks`, the ``servegen generate`` command
and the dashboard's Export page. Memory is bounded by the chunk size. What each format
writes is :mod:`servegen_core.export.formats`.

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
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl

from servegen_core.errors import DataFormatError, ExportError
from servegen_core.export.formats import (
    blis_header_path,
    blis_header_text,
    DEFAULT_BLOCK_SIZE,
    FRAMES,
    HASH_FORMATS,
    SESSION_FORMATS,
    SESSION_TIMINGS,
    VIDUR_MAX_TOKENS,
    ZERO_OUTPUT_NOTES,
    ChunkContext,
    dropped_columns,
    format_block_size,
    get_format,
    render_frame,
    spec_sidecar_path,
)
from servegen_core.limits import MAX_BLOCK_SIZE
from servegen_core.paths import TEMP_SUFFIX, clean_stale_temps, replace_problem, temp_prefix
from servegen_core.schema import empty_trace, validate_trace
from servegen_core.spec import WorkloadSpec

__all__ = [
    "ChunkWriter",
    "ExportResult",
    "WriteProgress",
    "check_target",
    "export_chunks",
    "export_trace",
    "write_chunks",
    "write_parquet_parts",
]

#: Formats that carry a request's SLO class: the native ones (every column), mooncake
#: (``slo_class`` and ``extra.priority``) and BLIS (its ``slo_class`` column).
CLASS_FORMATS = ("parquet", "csv", "jsonl", "mooncake", "blis")

#: Rows per slice when :func:`export_trace` renders a large frame (bounds the rendering memory).
_SLICE_ROWS = 262_144


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
    #: The largest ``input_tokens + output_tokens`` of one request (Vidur's ``max_tokens`` in the replay command).
    max_request_tokens: int = 0


# --------------------------------------------------------------------------- #
# Spec sidecar and atomic replacement
# --------------------------------------------------------------------------- #


def _spec_text(spec: WorkloadSpec) -> str:
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


def _install(tmp: Path, target: Path, sidecar: Path, spec_text: str | None, *, overwrite: bool) -> bool:
    """Rename the finished ``tmp`` onto ``target``, then write ``spec_text`` as its ``sidecar``
    (through a temporary of its own) or, without a spec, remove the sidecar a replaced export
    left; whether such a stale sidecar was removed."""
    spec_tmp: Path | None = None
    try:
        if spec_text is not None:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(sidecar), suffix=TEMP_SUFFIX)
            spec_tmp = Path(name)
            _public_mode(spec_tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(spec_text.encode("utf-8"))
        _replace(tmp, target, overwrite=overwrite)
        if spec_tmp is not None:
            _replace(spec_tmp, sidecar, overwrite=True)
            spec_tmp = None
            return False
        if os.path.lexists(sidecar):
            _check_kind(sidecar, parts_folder_ok=False)
            sidecar.unlink()
            return True
        return False
    finally:
        if spec_tmp is not None:
            spec_tmp.unlink(missing_ok=True)


def _write_beside(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder (atomic replacement)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TEMP_SUFFIX)
    tmp = Path(name)
    try:
        _public_mode(tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        _replace(tmp, path, overwrite=True)
    finally:
        tmp.unlink(missing_ok=True)


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
        spec: WorkloadSpec | None = None,
        overwrite: bool = False,
        block_size: int | None = None,
        note: Callable[[str], Any] | None = print,
        sessions: str = "open",
    ) -> None:
        self.info = get_format(fmt)
        if sessions not in SESSION_TIMINGS:
            raise ExportError(f"sessions must be one of {', '.join(SESSION_TIMINGS)}, got {sessions!r}")
        # a trace that carries its own hash_ids (Mooncake's 512-token blocks) keeps them, so its
        # block size stays 512 unless one is given (decided at the first chunk)
        self._block_auto = block_size is None and self.info.name in HASH_FORMATS
        block_size = format_block_size(fmt, block_size)
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
            msg = f"block_size must be a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}], got {block_size}"
            raise ExportError(msg)
        self.path = Path(path)
        self.sidecar = spec_sidecar_path(self.path)
        self.overwrite = overwrite
        self._spec = None if spec is None else _spec_text(spec)
        self._note = note
        self._ctx = ChunkContext(block_size=block_size, session_timing=sessions)
        self._tmp: Path | None = None
        self._handle: io.BufferedWriter | None = None
        self._parts = 0
        self._chunks = 0
        self._columns: list[str] | None = None
        self._last_ts: float | None = None
        self._dropped: dict[str, None] = {}
        self._zero_output = 0
        self._over_vidur = 0
        self._decode_over_vidur = 0
        self._max_request_tokens = 0
        self._later_turns = 0
        self._classless = 0
        self._off_blocks = 0
        self._result: ExportResult | None = None
        _check_targets(self.path, self.sidecar, overwrite=overwrite, folder=self.info.container == "parquet")
        self._header = blis_header_path(self.path) if self.info.name == "blis" else None
        if self._header is not None:
            if self._header == self.path:
                msg = f"{self.path}: a BLIS export's data file needs another suffix than its header's (.yaml); use .csv"
                raise ExportError(msg)
            if os.path.lexists(self._header) and not overwrite:
                msg = f"{self._header} exists (the BLIS trace header of {self.path}); pass overwrite to replace it"
                raise ExportError(msg)

    # -- lifecycle ---------------------------------------------------------- #
    def __enter__(self) -> ChunkWriter:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
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
        if "hash_ids" in chunk.columns and self.info.name in HASH_FORMATS:
            kept = chunk.filter(pl.col("hash_ids").is_not_null())
            bs = self._ctx.block_size
            self._off_blocks += int((kept["hash_ids"].list.len() != (kept["input_tokens"] + bs - 1) // bs).sum())
        frame, self._ctx = FRAMES[self.info.name](chunk, self._ctx)
        if self._columns is None:
            self._columns = frame.columns
        elif frame.columns != self._columns:
            msg = f"columns {frame.columns} differ from the first chunk's {self._columns}"
            raise DataFormatError(None, where, msg)
        self._dropped.update((c, None) for c in dropped_columns(self.info.name, chunk.schema))
        if self.info.name in ZERO_OUTPUT_NOTES:
            self._zero_output += int((chunk["output_tokens"] == 0).sum())
        if chunk.height:
            total = chunk["input_tokens"] + chunk["output_tokens"]
            self._max_request_tokens = max(self._max_request_tokens, int(total.max()))
        if self.info.name == "vidur":
            self._over_vidur += int((chunk["input_tokens"] + chunk["output_tokens"] > VIDUR_MAX_TOKENS).sum())
            self._decode_over_vidur += int((chunk["output_tokens"] >= VIDUR_MAX_TOKENS).sum())
        if "turn_index" in chunk.columns and self.info.name not in SESSION_FORMATS:
            self._later_turns += int((chunk["turn_index"] > 0).sum())
        if "slo_class" in chunk.columns and self.info.name not in CLASS_FORMATS:
            self._classless += chunk.height
        if chunk.height:
            self._last_ts = float(chunk["timestamp_s"][-1])

        if self.info.container == "parquet":
            if frame.height or self._parts == 0:
                assert self._tmp is not None
                frame.write_parquet(self._tmp / f"part-{self._parts:05d}.parquet")
                self._parts += 1
        else:
            assert self._handle is not None
            self._handle.write(render_frame(self.info, frame, first=self._chunks == 0))
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
        if _install(self._tmp, self.path, self.sidecar, self._spec, overwrite=self.overwrite):
            self._say(f"{self.sidecar}: removed the spec of the replaced export (no spec given)")
        if self._header is not None:
            _write_beside(self._header, blis_header_text())
        return ExportResult(
            path=self.path,
            format=self.info.name,
            rows=self._ctx.row_offset,
            bytes=_size(self.path),
            spec_path=self.sidecar if self._spec is not None else None,
            dropped_columns=tuple(self._dropped),
            block_size=self._ctx.block_size,
            max_request_tokens=self._max_request_tokens,
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
            self._say(f"{name} export: {self._zero_output} request(s) with 0 output tokens; {ZERO_OUTPUT_NOTES[name]}")
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
                "context) or Vidur will not replay them as written (the replay command sets max_tokens to "
                f"{self._max_request_tokens})"
            )
        if self._decode_over_vidur:
            self._say(
                f"vidur export: {self._decode_over_vidur} request(s) with decode tokens >= Vidur's default max_tokens "
                f"{VIDUR_MAX_TOKENS}: at that default Vidur gives them a prefill of <= 0 tokens"
            )
        if self._later_turns:
            self._say(
                f"{name} export: sessions not written ({name} has no session field): {self._later_turns} later "
                "turn(s) are sent on their own timestamps without waiting for the previous turn's response; "
                "their hash_ids still carry the shared context"
                if name in HASH_FORMATS
                else f"{name} export: sessions and prompt prefixes not written ({name} has no field for them); "
                f"{self._later_turns} later turn(s) become independent requests"
            )
        if self._classless:
            self._say(
                f"{name} export: SLO classes not written ({name} has no class or priority field): "
                f"{self._classless} request(s) lose their slo_class and slo_priority"
            )


@dataclass(frozen=True)
class WriteProgress:
    """Where :func:`write_chunks` stands after a chunk: the chunks and rows written so far,
    and the chunk just written."""

    chunks: int
    rows: int
    chunk: pl.DataFrame


def write_chunks(
    writer: ChunkWriter,
    chunks: Iterable[pl.DataFrame],
    *,
    progress: Callable[[WriteProgress], Any] | None = None,
) -> ExportResult:
    """Feed ``chunks`` (RequestTrace slices in time order) to ``writer``, calling ``progress``
    after each one, and return the finished export.

    The writer is closed (its output renamed into place) when the chunks are exhausted; if
    the iterable, a write or ``progress`` raises, its temporary output is removed and the
    target is left as it was.
    """
    rows = 0
    with writer:
        for number, chunk in enumerate(chunks, start=1):
            writer.write(chunk)
            rows += chunk.height
            if progress is not None:
                progress(WriteProgress(chunks=number, rows=rows, chunk=chunk))
    return writer.result


def export_chunks(
    chunks: Iterable[pl.DataFrame],
    path: str | Path,
    fmt: str,
    *,
    spec: WorkloadSpec | None = None,
    overwrite: bool = False,
    block_size: int | None = None,
    note: Callable[[str], Any] | None = print,
    sessions: str = "open",
) -> ExportResult:
    """Stream ``chunks`` (RequestTrace slices in time order) to ``path`` in format ``fmt``.

    JSONL/CSV formats become one file, byte for byte the file :func:`export_trace`
    writes for the concatenated trace; ``parquet`` becomes a folder of
    ``part-NNNNN.parquet`` files, one per non-empty chunk. If the iterator or a
    write fails, nothing is left behind. Memory is bounded by one chunk.
    """
    writer = ChunkWriter(path, fmt, spec=spec, overwrite=overwrite, block_size=block_size, note=note, sessions=sessions)
    return write_chunks(writer, chunks)


def write_parquet_parts(
    chunks: Iterable[pl.DataFrame],
    path: str | Path,
    *,
    spec: WorkloadSpec | None = None,
    overwrite: bool = False,
    note: Callable[[str], Any] | None = print,
    progress: Callable[[WriteProgress], Any] | None = None,
) -> ExportResult:
    """Partitioned Parquet output of a generated workload: the folder ``path`` of
    ``part-NNNNN.parquet`` files, one per non-empty time chunk of ``chunks`` (RequestTrace
    slices in time order, e.g. ``ComposePlan.iter_chunks`` or the Ray engine's ``iter_chunks``).

    Memory is bounded by one chunk. The parts are written into a temporary folder beside
    ``path`` and renamed onto it when the last chunk is written; if a chunk, a write or
    ``progress`` fails, the temporary folder is removed and ``path`` is left as it was. The
    bytes depend only on the chunks, so the same chunks give the same folder whichever engine
    drew them. Read the folder back with ``pl.scan_parquet(path / "part-*.parquet")``.
    """
    writer = ChunkWriter(path, "parquet", spec=spec, overwrite=overwrite, note=note)
    return write_chunks(writer, chunks, progress=progress)


def export_trace(
    trace: pl.DataFrame,
    path: str | Path,
    fmt: str,
    *,
    spec: WorkloadSpec | None = None,
    overwrite: bool = False,
    block_size: int | None = None,
    note: Callable[[str], Any] | None = print,
    sessions: str = "open",
) -> ExportResult:
    """Write the RequestTrace ``trace`` to ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    ``spec`` (an object with ``to_json()``, a JSON string or a dict) is written
    beside the file as ``<path>.spec.json``. Columns the format cannot hold are
    left out and named once through ``note`` (``print`` by default; ``None``
    silences it) and in :attr:`ExportResult.dropped_columns`. ``block_size`` is the
    number of tokens per ``hash_ids`` block (``None``: the format's consumer default,
    :func:`format_block_size`). The write is atomic and refuses an
    existing target or sidecar unless ``overwrite``. ``sessions="closed"`` writes a ``mooncake``
    conversation's later turns with AIPerf's ``delay`` (sent that long after the previous
    response) instead of a ``timestamp`` (:func:`~servegen_core.export.formats.mooncake_frame`).
    """
    info = get_format(fmt)
    if not isinstance(trace, pl.DataFrame):
        msg = f"expected a polars DataFrame, got {type(trace).__name__}"
        raise ExportError(msg)
    if info.container != "parquet":
        slices = trace.iter_slices(_SLICE_ROWS) if trace.height else iter([trace])
        return export_chunks(
            slices, path, fmt, spec=spec, overwrite=overwrite, block_size=block_size, note=note, sessions=sessions
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
    try:
        frame.write_parquet(tmp)
        stale = _install(tmp, target, sidecar, spec_text, overwrite=overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    if stale and note is not None:
        note(f"{sidecar}: removed the spec of the replaced export (no spec given)")
    return ExportResult(
        path=target,
        format=info.name,
        rows=frame.height,
        bytes=_size(target),
        spec_path=sidecar if spec_text is not None else None,
        dropped_columns=(),
    )
