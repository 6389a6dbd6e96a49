"""The source a spec composes from: ServeGen data, or a raw trace fitted to a ClientPool."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from servegen_core.errors import DataFormatError, SpecError
from servegen_core.paths import confine
from servegen_core.sources.fit import pool_from_trace
from servegen_core.sources.pool import ClientPool, list_models, load_pool
from servegen_core.sources.traces import PRESETS, LoadedTrace, load_trace
from servegen_core.spec import ServeGenSource, WorkloadSpec

__all__ = ["load_source", "load_source_trace", "read_source_trace", "source_location", "trace_source_pool"]


def source_location(spec: WorkloadSpec, text: str, *, roots: Sequence[str | Path] | None) -> Path:
    """The absolute path a spec's ``source.path`` or ``source.data_dir`` names.

    Without ``roots`` it is :meth:`WorkloadSpec.resolve_path` (``~`` expanded, a relative path
    taken from the spec file's folder or the working directory). With ``roots`` (a server
    reading a stranger's spec) it is confined to them by :func:`servegen_core.paths.confine`:
    ``"demo"``/``"shared"`` name their folders, a relative path is taken from the spec file's
    folder when it has one and otherwise looked up under each root, ``~`` is not expanded, and a
    path outside every root raises :class:`~servegen_core.paths.PathNotAllowedError` with the one
    message that never says whether it exists.
    """
    if roots is None:
        return spec.resolve_path(text)
    is_folder = isinstance(spec.source, ServeGenSource) and text == spec.source.data_dir
    if is_folder and text in ("demo", "shared"):
        return confine(spec.resolve_path(text), roots)
    if "\x00" not in text and spec.base_dir and not Path(text).is_absolute():
        return confine(Path(spec.base_dir) / text, roots)
    return confine(text, roots)


def load_source(
    spec: WorkloadSpec, *, roots: Sequence[str | Path] | None = None, cache_dir: str | Path | None = None
) -> ClientPool:
    """The ClientPool a spec composes from: ServeGen data, or a raw trace fitted to a pool.

    ``roots`` confines the source to those folders (:func:`source_location`): a server passes
    the folders it may read, and nothing outside them is opened, listed or even tested for
    existence; ``None`` (the command line, a user reading their own files) reads any path.

    A trace source is read with its ``preset``, ``columns``, ``time_unit`` and
    ``client_column`` passed to :func:`servegen_core.sources.traces.load_trace`; its failed
    requests are dropped and the rest fitted by :func:`servegen_core.sources.fit.pool_from_trace`.
    A trace with ``hash_ids`` composed by a spec without a ``prefix`` section gets a pool
    warning (it reaches the plan's warnings): the export will have no prefix reuse.

    Raises :class:`SpecError` naming ``source.data_dir``/``source.model``/``source.path``/
    ``source.preset`` when they point nowhere (``source.columns`` when the mapping clashes
    with the preset's own); malformed files, and mapped columns the file lacks, raise
    :class:`~servegen_core.errors.DataFormatError`.
    """
    src = spec.source
    if isinstance(src, ServeGenSource):
        root = source_location(spec, src.data_dir, roots=roots)
        if roots is not None:  # a model named "../.." or a model folder linked out of the root
            confine(root / src.model, roots)
        if not root.is_dir():
            raise SpecError("source.data_dir", f"not a folder: {root}")
        if not (root / src.model).is_dir():
            try:
                models = list_models(root)
            except DataFormatError:
                models = []
            raise SpecError("source.model", f"no model {src.model!r} in {root}; models there: {models}")
        return load_pool(root, src.model, cache_dir=cache_dir)
    return trace_source_pool(spec, load_source_trace(spec, roots=roots))


def trace_source_pool(spec: WorkloadSpec, trace: pl.DataFrame) -> ClientPool:
    """The ClientPool of a trace-source spec, fitted to ``trace`` (:func:`load_source_trace`'s
    frame) by :func:`servegen_core.sources.fit.pool_from_trace` with the source's ``per_client``."""
    src = spec.source
    if isinstance(src, ServeGenSource):
        raise SpecError("source", "ServeGen data are a client pool, not a request trace")
    path = spec.resolve_path(src.path)
    pool = pool_from_trace(trace, name=f"trace/{path.name}", per_client=src.per_client, source=str(path))
    if "hash_ids" in trace.columns and spec.prefix is None and trace["hash_ids"].drop_nulls().len():
        note = (
            f"{path.name} has hash_ids (prefix-cache block ids) but the spec has no prefix section: the export "
            "will have no prefix reuse (fit one with spec-template --trace FILE, or sessions.fit_prefix)"
        )
        pool = dataclasses.replace(pool, warnings=(*pool.warnings, note))
    return pool


def load_source_trace(spec: WorkloadSpec, *, roots: Sequence[str | Path] | None = None) -> pl.DataFrame:
    """The RequestTrace of :func:`read_source_trace` (its ``trace``, failed requests dropped)."""
    return read_source_trace(spec, roots=roots).trace


def read_source_trace(spec: WorkloadSpec, *, roots: Sequence[str | Path] | None = None) -> LoadedTrace:
    """The RequestTrace a spec with a trace source composes from: the file read with the
    source's ``preset``, ``columns``, ``time_unit``, ``client_column`` and ``hash_block_size``, failed requests
    dropped (what :func:`load_source` fits to a pool), as a
    :class:`~servegen_core.sources.traces.LoadedTrace` (its ``hash_block_size``: the source's, else
    the layout's documented one). ``roots`` confines ``source.path`` as :func:`load_source` does.

    Raises :class:`SpecError` for a ServeGen source (it is a client pool, not a trace) and,
    for a trace source, as :func:`load_source` does.
    """
    src = spec.source
    if isinstance(src, ServeGenSource):
        raise SpecError("source", "ServeGen data are a client pool, not a request trace")
    path = source_location(spec, src.path, roots=roots)
    if not path.is_file():
        raise SpecError("source.path", f"trace file not found: {path}")
    if src.preset is not None and src.preset not in PRESETS:
        raise SpecError("source.preset", f"unknown preset {src.preset!r}; choose from {list(PRESETS)}")
    try:
        loaded = load_trace(
            path,
            preset=src.preset,
            columns=dict(src.columns) or None,
            time_unit=src.time_unit,
            client_column=src.client_column,
            hash_block_size=src.hash_block_size,
        )
    except DataFormatError:
        raise
    except ValueError as exc:  # arguments the file contradicts (e.g. a column mapped twice with the preset's)
        raise SpecError("source.columns", str(exc)) from None
    trace = loaded.trace
    if "failed" in trace.columns:
        loaded = dataclasses.replace(loaded, trace=trace.filter(~pl.col("failed").fill_null(False)))
    return loaded
