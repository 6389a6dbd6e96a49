"""Where data lives: the embedded demo, the shared reference data, the user cache.

Every path is anchored to this file or to an environment variable, never to the
current working directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent

#: Environment variable that overrides the shared reference data folder.
SHARED_DATA_ENV = "SERVEGEN_SHARED_DATA"
#: Environment variable that overrides the columnar cache folder.
CACHE_ENV = "SERVEGEN_CACHE_DIR"


def demo_data_dir() -> Path:
    """The embedded synthetic demo data (``data/demo`` in the project)."""
    return PROJECT_DIR / "data" / "demo"


def shared_data_dir() -> Path:
    """The shared reference data: ``$SERVEGEN_SHARED_DATA`` or ``../shared/data`` beside the project."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (PROJECT_DIR.parent / "shared" / "data").resolve()


def default_cache_dir() -> Path:
    """The columnar cache folder: ``$SERVEGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/servegen``, else ``~/.cache/servegen``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "servegen"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename it.

    A reader never sees a partial file; on any failure the temp file is removed and ``path``
    is left as it was. Text is written as UTF-8. The folder must exist.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# Confinement: the folders a server may read from and write into
# --------------------------------------------------------------------------------------------

#: Environment variable: folders raw traces may be read from by path (``os.pathsep``-separated).
DATA_ROOTS_ENV = "SERVEGEN_DATA_ROOTS"
#: Environment variable: the folder exports are saved into (empty: saving to a path is off).
EXPORT_DIR_ENV = "SERVEGEN_EXPORT_DIR"


class PathNotAllowedError(ValueError):
    """A user-given path resolves outside the folder(s) it must stay in."""


def resolve_under(root: str | Path, user_path: str | Path) -> Path:
    """``user_path`` as an absolute path inside ``root``, or :class:`PathNotAllowedError`.

    A relative ``user_path`` is taken relative to ``root``; ``~`` is not expanded. Both are
    resolved (symbolic links followed, ``..`` removed) before the check, so neither a link
    nor ``..`` leads out of ``root``. The path need not exist (a file about to be written);
    the parts of it that exist are resolved. The result is ``root`` itself or a path below it.
    """
    text = str(user_path)
    if not text.strip():
        msg = "empty path"
        raise PathNotAllowedError(msg)
    if "\x00" in text:
        msg = "a path cannot contain a NUL character"
        raise PathNotAllowedError(msg)
    try:
        base = Path(root).resolve()
        candidate = (base / Path(text)).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name too long
        msg = f"{text} cannot be resolved ({type(exc).__name__})"
        raise PathNotAllowedError(msg) from None
    if candidate != base and base not in candidate.parents:
        msg = f"{text} is outside {base}"
        raise PathNotAllowedError(msg)
    return candidate


def resolve_under_any(roots: tuple[Path, ...] | list[Path], user_path: str | Path) -> Path:
    """``user_path`` confined to one of ``roots`` (see :func:`resolve_under`).

    An absolute path must lie under one of them. A relative path is tried under each root in
    order; the first under which it exists is returned, else its place under the first root.
    Raises :class:`PathNotAllowedError` naming the roots when no root holds it.
    """
    if not roots:
        msg = f"no data folders are configured (set {DATA_ROOTS_ENV})"
        raise PathNotAllowedError(msg)
    found: list[Path] = []
    for root in roots:
        try:
            found.append(resolve_under(root, user_path))
        except PathNotAllowedError:
            continue
    for path in found:
        if path.exists():
            return path
    if found:
        return found[0]
    names = ", ".join(str(Path(r).resolve()) for r in roots)
    msg = f"{user_path} is outside the data folders ({names}; set {DATA_ROOTS_ENV} to change them)"
    raise PathNotAllowedError(msg)


def data_roots() -> tuple[Path, ...]:
    """Folders that user-given data paths may point into, resolved.

    ``$SERVEGEN_DATA_ROOTS`` (``os.pathsep``-separated; empty entries ignored), else the
    project's ``data/`` folder and the shared reference data (:func:`shared_data_dir`).
    """
    env = os.environ.get(DATA_ROOTS_ENV)
    if env is not None and env.strip():
        roots = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    else:
        roots = [PROJECT_DIR / "data", shared_data_dir()]
    out: list[Path] = []
    for root in roots:
        resolved = root.resolve()
        if resolved not in out:
            out.append(resolved)
    return tuple(out)


def export_dir() -> Path | None:
    """The folder exports may be saved into, resolved; ``None`` when saving to a path is off.

    ``$SERVEGEN_EXPORT_DIR`` when set (an empty value turns saving off), else ``exports/``
    in the project. The folder is not created here.
    """
    env = os.environ.get(EXPORT_DIR_ENV)
    if env is None:
        return (PROJECT_DIR / "exports").resolve()
    if not env.strip():
        return None
    return Path(env).expanduser().resolve()
