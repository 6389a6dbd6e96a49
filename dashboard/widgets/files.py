"""A file the user gives by path (under the data roots) or by upload (into the session's upload folder)."""

from __future__ import annotations

from collections.abc import Sequence
import streamlit as st

from core_calls import show_error
from plaintext import md
from servegen_core.paths import DATA_ROOTS_ENV, PathNotAllowedError, data_roots
from settings import MAX_UPLOAD_ENV, max_upload_mb
from uploads import ReadablePath, readable_path, save_upload


def upload_or_path(
    what: str,
    *,
    keys: tuple[str, str, str],
    allowed: Sequence[str],
    slot: str = "",
    path_label: str | None = None,
    upload_label: str | None = None,
    persist: bool = False,
) -> tuple[ReadablePath, str] | None:
    """A file given by path under the data roots (:func:`uploads.readable_path`) or uploaded within
    :func:`max_upload_mb` into this session's upload folder (:func:`save_upload`).

    ``what`` names the file ("Trace file"); ``keys`` are the widget keys of the Path/Upload
    choice, the path field and the uploader; ``allowed`` the file suffixes; ``slot`` the
    upload's place in the session folder (the sidebar's trace: the default). Returns the local
    path and the name to show (the uploaded name, or "" for a path), or None after saying why
    (nothing chosen yet, a path outside the roots, a missing file, an upload above the limit).
    """
    how_key, path_key, upload_key = keys
    keep = {"persist_state": "session"} if persist else {}
    noun = what.lower().removesuffix(" file")
    how = st.radio(what, ["Path", "Upload"], key=how_key, horizontal=True, **keep)
    if how == "Path":
        text = st.text_input(
            path_label or f"{what} path ({', '.join('.' + x for x in allowed)})", key=path_key,
            help="A file under one of the data folders: " + ", ".join(str(r) for r in data_roots())
            + f" (set by {DATA_ROOTS_ENV}); a relative path is looked up in each.",
            **keep,
        ).strip()
        if not text:
            st.caption(md(f"Enter the path of a {noun} under " + ", ".join(str(r) for r in data_roots()) + "."))
            return None
        try:
            path = readable_path(text)
        except PathNotAllowedError as exc:
            show_error(exc)
            return None
        if not path.is_file():
            st.error(md(f"{noun} file not found: {path}"))
            return None
        return path, ""
    try:
        limit = max_upload_mb()
    except ValueError as exc:
        show_error(exc)
        return None
    upload = st.file_uploader(
        f"{upload_label or f'Upload a {noun}'} (up to {limit} MB)", type=list(allowed), key=upload_key, max_upload_size=limit
    )
    if upload is None:
        return None
    if upload.size > limit * 1024 * 1024:
        st.error(md(
            f"{upload.name} is {upload.size / 1024 / 1024:.0f} MB, above the {limit} MB upload limit "
            f"(set {MAX_UPLOAD_ENV} to change it, or give the file's path instead)"
        ))
        return None
    try:
        return readable_path(save_upload(upload, slot=slot, allowed=allowed)), upload.name
    except (OSError, ValueError) as exc:
        show_error(exc)
        return None
