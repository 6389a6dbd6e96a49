"""Files the user gives: uploads kept in a private folder per session, typed paths confined to the data roots.

Each session keeps its upload in a folder of its own under ``<tmp>/servegen-uploads-<uid>``:
a new upload replaces the previous file, the folder is removed when the session's state is
dropped (the session ended), and folders older than :data:`settings.UPLOAD_MAX_AGE_H` (left by
a server that stopped abruptly) are removed the first time a server process stores an upload.
The widget that asks for a file (path or upload) is :func:`widgets.files.upload_or_path`.

Bytes per session, not per file: Streamlit keeps every PUT to its upload endpoint in memory
(``MemoryUploadedFileManager.file_storage``, by session and file id, used by a widget or not)
until the session shuts down. :func:`install_session_upload_cap` (once per server process)
makes that manager refuse, with HTTP 413, a file that would take the session's memory plus its
upload folder past :func:`settings.max_session_upload_mb`, and starts :class:`SessionReaper`:
Streamlit keeps a closed session for ``server.disconnectedSessionTTL`` seconds for a reconnect
and then drops it without shutting it down (its uploads stay in memory until the process ends),
so the reaper frees the uploads and the folder of a session inactive that long, checking every
few seconds (at most 30) even on an idle server.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import NewType

import streamlit as st
from starlette.exceptions import HTTPException
from streamlit import runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

from servegen_core.paths import (
    PROJECT_DIR, PathNotAllowedError, confine, data_roots, demo_data_dir, resolved_roots, shared_data_dir, write_atomic,
)
from servegen_core.spec import ServeGenSource, TraceSource
from settings import MAX_SESSION_UPLOAD_ENV, UPLOAD_MAX_AGE_H, max_session_upload_mb, servegen_folders

#: File suffixes the trace loader reads (``.gz`` after one of the others): what a trace upload may end in.
#: ``.json`` is ServeGen's conversation file (``load_trace`` sends it to ``load_conversations``; not ``.json.gz``).
TRACE_SUFFIXES = ("csv", "parquet", "pq", "jsonl", "ndjson", "json", "gz")

#: Runs of characters an upload's file name may not keep (each becomes ``_``).
_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: Session key of this session's :class:`UploadFolder`.
_FOLDER_KEY = "_upload_dir"
#: Prefix of the sub-folder of a session's upload folder holding the uploads of one other purpose (a slot).
_SLOT_PREFIX = "slot-"


def uploads_root() -> Path:
    """The folder holding every session's upload folder (created private to this user)."""
    root = Path(tempfile.gettempdir()) / f"servegen-uploads-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        msg = f"{root} is not a private folder of this user; uploads are off"
        raise OSError(msg)
    return root


def is_upload(path: str | Path) -> bool:
    """Whether ``path`` is a file a visitor uploaded (under :func:`uploads_root`): such files are
    loaded under the core's tighter upload budget (``limits.max_rows(upload=True)``)."""
    try:
        Path(path).resolve().relative_to(uploads_root().resolve())
    except (ValueError, OSError):
        return False
    return True


def sweep_stale_uploads(root: Path, *, max_age_h: float = UPLOAD_MAX_AGE_H, now: float | None = None) -> list[Path]:
    """Remove the upload folders under ``root`` not modified for ``max_age_h`` hours; returns them."""
    limit = (time.time() if now is None else now) - max_age_h * 3600
    removed = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.name.startswith("session-") and folder.stat().st_mtime < limit:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@st.cache_resource(show_spinner=False)
def _swept_once() -> bool:
    """Sweep stale upload folders once per server process."""
    sweep_stale_uploads(uploads_root())
    return True


class UploadFolder:
    """A session's upload folder (``session-*`` under :func:`uploads_root`).

    Kept in the session state; the folder is removed when the object is garbage-collected
    (the session ended and its state was dropped) or when the server process exits.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        weakref.finalize(self, shutil.rmtree, str(self.path), True)


# --------------------------------------------------------------------------------------------
# Bytes a session holds: Streamlit's in-memory uploads plus its upload folder
# --------------------------------------------------------------------------------------------

MB = 1024 * 1024
#: Upload folders by Streamlit session id (process-wide: the reaper and the upload cap read it).
_SESSION_FOLDERS: dict[str, Path] = {}
_REGISTRY_LOCK = threading.Lock()


def register_session_folder(session_id: str, folder: Path) -> None:
    """Record ``folder`` as the upload folder of Streamlit session ``session_id`` (counted by the cap, removed by the reaper)."""
    with _REGISTRY_LOCK:
        _SESSION_FOLDERS[session_id] = folder


def session_folder(session_id: str) -> Path | None:
    """The upload folder recorded for a session (``None`` when it has none or it was reaped)."""
    with _REGISTRY_LOCK:
        return _SESSION_FOLDERS.get(session_id)


def folder_bytes(folder: Path | None) -> int:
    """Bytes of the regular files under ``folder`` (symbolic links not followed; 0 when missing)."""
    if folder is None:
        return 0
    total = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            try:
                st_ = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st_.st_size
    return total


def memory_upload_bytes(manager: MemoryUploadedFileManager, session_id: str, *, except_file_id: str | None = None) -> int:
    """Bytes of a session's uploads Streamlit holds in memory (``except_file_id`` left out: a file being replaced)."""
    files = list(manager.file_storage.get(session_id, {}).values())
    return sum(len(f.data) for f in files if f.file_id != except_file_id)


def upload_manager() -> MemoryUploadedFileManager | None:
    """The server's in-memory upload manager (``None`` outside a server, e.g. under AppTest)."""
    if not runtime.exists():
        return None
    manager = runtime.get_instance().uploaded_file_mgr
    return manager if isinstance(manager, MemoryUploadedFileManager) else None


def session_held_bytes(session_id: str, manager: MemoryUploadedFileManager | None = None) -> int:
    """Upload bytes a session holds: in Streamlit's memory and in its upload folder."""
    manager = manager or upload_manager()
    memory = memory_upload_bytes(manager, session_id) if manager is not None else 0
    with _REGISTRY_LOCK:
        folder = _SESSION_FOLDERS.get(session_id)
    return memory + folder_bytes(folder)


def cap_message(held: int, adding: int, cap_mb: int) -> str:
    return (
        f"refused: this session would hold {(held + adding) / MB:,.0f} MB of uploads, more than the {cap_mb:,} MB "
        f"a session may hold ({MAX_SESSION_UPLOAD_ENV}); remove an upload first"
    )


_CAP_LOCK = threading.Lock()


def capped_add_file(manager: MemoryUploadedFileManager, add_file):
    """``manager.add_file`` refusing (HTTP 413) a file past the session's upload cap."""

    def add(session_id: str, file: UploadedFileRec) -> None:
        cap_mb = max_session_upload_mb()
        with _CAP_LOCK:  # check and add as one step: two PUTs of a session cannot both slip under
            held = memory_upload_bytes(manager, session_id, except_file_id=file.file_id)
            with _REGISTRY_LOCK:
                folder = _SESSION_FOLDERS.get(session_id)
            held += folder_bytes(folder)
            if held + len(file.data) > cap_mb * MB:
                raise HTTPException(status_code=413, detail=cap_message(held, len(file.data), cap_mb))
            add_file(session_id=session_id, file=file)

    add.servegen_capped = True
    return add


class SessionReaper:
    """Frees the uploads (memory and folder) of sessions inactive for ``grace_s`` seconds.

    ``is_active(session_id)`` says whether a session is connected; :meth:`sweep` is one pass
    (the thread of :meth:`start` runs it every ``period_s``). A session seen active again before
    ``grace_s`` keeps its files (a reconnect within Streamlit's TTL).
    """

    def __init__(self, manager: MemoryUploadedFileManager, is_active, *, grace_s: float, period_s: float) -> None:
        self.manager = manager
        self.is_active = is_active
        self.grace_s = grace_s
        self.period_s = period_s
        self.inactive_since: dict[str, float] = {}

    def sweep(self, now: float | None = None) -> list[str]:
        """One pass; returns the session ids whose uploads were freed."""
        now = time.monotonic() if now is None else now
        with _REGISTRY_LOCK:
            known = set(_SESSION_FOLDERS)
        known |= set(self.manager.file_storage)
        freed = []
        for sid in known:
            if self.is_active(sid):
                self.inactive_since.pop(sid, None)
                continue
            since = self.inactive_since.setdefault(sid, now)
            if now - since < self.grace_s:
                continue
            self.manager.remove_session_files(sid)
            with _REGISTRY_LOCK:
                folder = _SESSION_FOLDERS.pop(sid, None)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            self.inactive_since.pop(sid, None)
            freed.append(sid)
        return freed

    def run_forever(self) -> None:
        while True:
            time.sleep(self.period_s)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001, S112 - a failed pass is retried at the next one
                continue

    def start(self) -> None:
        threading.Thread(target=self.run_forever, name="servegen-upload-reaper", daemon=True).start()


@st.cache_resource(show_spinner=False)
def install_session_upload_cap() -> bool:
    """Once per server process: cap each session's upload bytes and start the :class:`SessionReaper`
    (no-op outside a server). Returns whether it was installed."""
    manager = upload_manager()
    if manager is None or getattr(manager.add_file, "servegen_capped", False):
        return False
    manager.add_file = capped_add_file(manager, manager.add_file)
    grace = float(st.get_option("server.disconnectedSessionTTL") or 120)
    rt = runtime.get_instance()
    SessionReaper(manager, rt.is_active_session, grace_s=grace, period_s=min(30.0, max(1.0, grace / 2))).start()
    return True


def session_upload_folder() -> Path | None:
    """This session's upload folder if it has one (none is created)."""
    holder = st.session_state.get(_FOLDER_KEY)
    return None if holder is None else holder.path


def session_upload_dir() -> Path:
    """This session's upload folder (created on first use)."""
    holder = st.session_state.get(_FOLDER_KEY)
    if holder is None or not holder.path.is_dir():
        _swept_once()
        holder = UploadFolder(uploads_root())
        st.session_state[_FOLDER_KEY] = holder
    ctx = get_script_run_ctx()
    if ctx is not None:
        register_session_folder(ctx.session_id, holder.path)
    return holder.path


def upload_file_name(name: str, *, allowed: Sequence[str] = TRACE_SUFFIXES) -> str:
    """A safe file name for an upload: letters, digits, ``.``, ``_`` and ``-`` only, its suffixes kept.

    The suffix must be one of ``allowed`` (default: those the trace loader reads,
    :data:`TRACE_SUFFIXES`, ``.gz`` after one of them).
    """
    suffixes = [x.lower() for x in Path(name).suffixes[-2:]]
    if not suffixes or suffixes[-1].lstrip(".") not in allowed:
        msg = f"an upload must end in one of {', '.join('.' + x for x in allowed)}"
        raise ValueError(msg)
    keep = suffixes if suffixes[-1] == ".gz" and len(suffixes) == 2 else suffixes[-1:]
    stem = name[: len(name) - len("".join(keep))] if name.lower().endswith("".join(keep)) else Path(name).stem
    stem = _UPLOAD_NAME.sub("_", Path(stem).name).strip("._")[:80] or "upload"
    return stem + "".join(keep)


def save_upload(upload: UploadedFile, *, slot: str = "", allowed: Sequence[str] = TRACE_SUFFIXES) -> Path:
    """Write an upload into this session's folder (atomically), replacing the session's previous upload.

    The sidebar's trace is the default slot; another purpose (e.g. the Provisioning page's
    calibration file) names its ``slot`` and keeps one upload of its own there, with the file
    suffixes it reads (``allowed``).
    """
    folder = session_upload_dir()
    if slot:
        folder = folder / (_SLOT_PREFIX + _UPLOAD_NAME.sub("_", slot))
        folder.mkdir(exist_ok=True)
    tag = hashlib.sha1(str(upload.file_id).encode()).hexdigest()[:12]
    target = folder / tag / upload_file_name(upload.name, allowed=allowed)
    if target.exists():
        return target
    for old in folder.iterdir():  # one upload per session and slot: the previous one is deleted
        if old.name.startswith(_SLOT_PREFIX):
            continue  # another slot's upload stays
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    ctx = get_script_run_ctx()
    if ctx is not None:  # the saved copy counts too: in memory (held already) plus on disk
        cap_mb = max_session_upload_mb()
        held = session_held_bytes(ctx.session_id)
        if held + upload.size > cap_mb * MB:
            raise ValueError(cap_message(held, upload.size, cap_mb))
    target.parent.mkdir()
    write_atomic(target, upload.getbuffer())  # the buffer itself: no second copy of a large upload
    return target


#: A path confined by :func:`readable_path`. Every dashboard call that opens, lists or loads a
#: user-given path takes one (tests/dashboard/test_doors.py checks it from the code).
ReadablePath = NewType("ReadablePath", Path)


def readable_roots() -> tuple[Path, ...]:
    """The folders this session may read: the data roots (:func:`servegen_core.paths.data_roots`),
    the embedded demo data, the ServeGen folders the sidebar offers and this session's upload folder."""
    roots = [*data_roots(), demo_data_dir(), *(Path(f) for f in servegen_folders())]
    folder = session_upload_folder()
    if folder is not None:
        roots.append(folder)
    return resolved_roots(roots)


def readable_path(text: str | Path) -> ReadablePath:
    """``text`` confined to :func:`readable_roots` by :func:`servegen_core.paths.confine` (THE door
    check): a relative path is looked up under each root; outside them, the one ``refused: ...``
    message naming the data roots, which never says whether the path exists, followed by the
    forms accepted. A path relative to the project folder that leads into a root is accepted too
    (the README's ``../shared/data/...``)."""
    roots = data_roots()
    try:
        return ReadablePath(confine(text, readable_roots(), named=roots, relative_to=PROJECT_DIR))
    except PathNotAllowedError as exc:
        example = _project_relative_example(roots)
        msg = (
            f"{exc}. Accepted: an absolute path under one of them, a path relative to one of them "
            f"(e.g. traces/<file>.csv), or a path relative to the project folder {PROJECT_DIR} that leads "
            "into one of them" + (f" (e.g. {example})" if example else "")
        )
        raise PathNotAllowedError(msg) from None


def data_path(text: str) -> ReadablePath:
    """A data path typed by the user, confined (:func:`readable_path`)."""
    return readable_path(text)


def _project_relative_example(roots: tuple[Path, ...]) -> str:
    """A data root written relative to the project folder (``../shared/data/<file>``), or ``""``."""
    relative = []
    for root in roots:
        try:
            relative.append(os.path.relpath(root, PROJECT_DIR))
        except ValueError:  # another drive on Windows
            continue
    outside = [r for r in relative if r.startswith("..")]  # the README's form, ../shared/data/...
    return f"{(outside or relative)[0]}/<file>" if relative else ""


def check_spec_source(source: ServeGenSource | TraceSource) -> None:
    """Raise :class:`~servegen_core.paths.PathNotAllowedError` unless a spec's source is one this
    session may read (:func:`readable_path`); ``"demo"`` and ``"shared"`` name their folders."""
    if isinstance(source, TraceSource):
        readable_path(source.path)
        return
    folder = {"demo": demo_data_dir() / "servegen", "shared": shared_data_dir() / "servegen"}.get(source.data_dir)
    readable_path(folder or source.data_dir)
    readable_path((folder or Path(readable_path(source.data_dir))) / source.model)


install_session_upload_cap()  # at the first script run of a server process, before any upload can arrive
