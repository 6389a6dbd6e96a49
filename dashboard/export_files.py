"""The Export page's files: the download's bytes and name, where "Save to a path" may write, the equivalent command."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from core_calls import deferred
from servegen_core.export.formats import FORMATS, spec_sidecar_path
from servegen_core.export.writer import export_trace
from servegen_core.generate.compose import compose as compose_workload
from servegen_core.paths import EXPORT_DIR_ENV, PathNotAllowedError, export_dir, resolve_under
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import WorkloadSpec


def export_name(fmt: str) -> str:
    """File name of a download: ``workload.<ext>``, or ``workload-<fmt>.jsonl`` for the JSONL replay formats."""
    info = FORMATS[fmt]
    return f"workload-{fmt}{info.extension}" if fmt in ("mooncake", "vllm", "guidellm") else f"workload{info.extension}"


def export_bytes(spec: WorkloadSpec, fmt: str, *, pool: ClientPool) -> tuple[bytes, str, tuple[str, ...]]:
    """The workload of ``spec`` as a file in format ``fmt``: its bytes, file name and dropped columns.

    Written with :func:`servegen_core.export.formats.export_trace` into a temporary folder (which is
    removed), so the bytes are exactly what the CLI writes. Parquet is one file.
    """
    made = compose_workload(spec, pool=pool)
    name = export_name(fmt)
    with tempfile.TemporaryDirectory(prefix="servegen-export-") as folder:
        result = export_trace(made.trace, Path(folder) / name, fmt, note=None)
        data = result.path.read_bytes()
    return data, name, result.dropped_columns


def deferred_export(spec: WorkloadSpec, fmt: str, pool: ClientPool) -> Callable[[], bytes]:
    """A callable for ``st.download_button``: the file is written when the button is clicked (cached per spec and format)."""
    make = deferred(export_bytes, spec, fmt, key=(spec, fmt), unhashed={"pool": pool})
    return lambda: make()[0]


def export_target(text: str, *, overwrite: bool = False) -> Path:
    """Where "Save to a path" writes ``text``: a file under the export folder, or an error saying why not.

    The folder is :func:`servegen_core.paths.export_dir` (``$SERVEGEN_EXPORT_DIR``, default
    ``exports/`` in the project; created if missing; empty: saving is off). A relative name is
    relative to it; symbolic links and ``..`` are resolved before the check, so nothing outside
    it is written. An existing folder or other non-regular file is never replaced (nor is a
    file's spec sidecar that is one); an existing file only with ``overwrite``.
    """
    folder = export_dir()
    if folder is None:
        msg = f"saving to a path is off on this server ({EXPORT_DIR_ENV} is empty)"
        raise PathNotAllowedError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target = resolve_under(folder, text.strip())
    except PathNotAllowedError as exc:
        msg = f"refused: {exc}, the export folder (set by {EXPORT_DIR_ENV})"
        raise PathNotAllowedError(msg) from None
    if target == folder:
        msg = "give a file name"
        raise PathNotAllowedError(msg)
    for path in (target, spec_sidecar_path(target)):
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
            msg = f"{path} exists and is not a regular file; it is never replaced (choose another name)"
            raise PathNotAllowedError(msg)
        if os.path.lexists(path) and not overwrite:
            msg = f"{path} exists; tick Overwrite to replace it"
            raise PathNotAllowedError(msg)
    return target


def generate_command(fmt: str, out: str, *, spec_path: str = "spec.json") -> str:
    """The equivalent command line."""
    return f"servegen generate --spec {spec_path} --format {fmt} -o {out}"
