"""Where data lives: the embedded demo, the shared reference data, the user cache.

Every path is anchored to this file or to an environment variable, never to the
current working directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from servegen_core.errors import PATH_LIMIT, ExportError, printable

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
    is left as it was. Text is written as UTF-8. The folder must exist. An existing ``path``
    is replaced only when it is a regular file (or a symbolic link to one, which is replaced
    by the new file); a folder, device, FIFO or socket raises :class:`~servegen_core.errors.ExportError`.
    Stale temp files of killed runs in the folder are removed first (:func:`clean_stale_temps`).
    """
    target = Path(path)
    problem = replace_problem(target)
    if problem:
        raise ExportError(problem)
    clean_stale_temps(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        problem = replace_problem(target)
        if problem:
            raise ExportError(problem)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# Temp files and targets of atomic writes
# --------------------------------------------------------------------------------------------

#: Marker in the name of every temp file or folder an atomic write makes beside its target:
#: ``.<target name>.servegen-tmp-<pid>-<tag>-<random>.tmp``, where ``<tag>`` is 8 hex digits
#: of a hash of the target name and the pid (:func:`temp_tag`) and ``<random>`` the 8 characters
#: ``tempfile`` chooses (``[a-z0-9_]``).
TEMP_MARK = "servegen-tmp"
TEMP_SUFFIX = ".tmp"
#: A temp file whose process is still alive is left alone unless it is older than this (s),
#: in case the process id was reused.
STALE_TEMP_AGE_S = 24 * 3600
_TEMP_RE = re.compile(
    rf"\.(?P<name>.+)\.{TEMP_MARK}-(?P<pid>[1-9][0-9]{{0,9}})-(?P<tag>[0-9a-f]{{8}})-[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}"
)


def temp_tag(target_name: str, pid: int) -> str:
    """8 hex digits binding a temp name to its target name and process id: a file named like
    a temp file by hand (``.x.servegen-tmp-999999-abcdefgh.tmp``) lacks it and is never removed."""
    key = os.fsencode(target_name) + b"\x00" + str(pid).encode()
    return hashlib.blake2b(key, digest_size=4, person=b"servegen-tmp").hexdigest()


def temp_prefix(target: Path, *, pid: int | None = None) -> str:
    """Prefix of a temp file or folder for ``target`` (``tempfile.mkstemp(prefix=..., suffix=TEMP_SUFFIX)``),
    for this process (or process ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return f".{target.name}.{TEMP_MARK}-{pid}-{temp_tag(target.name, pid)}-"


def is_temp_name(name: str) -> bool:
    """True when ``name`` is one this program gives a temp file: ``temp_prefix(...)`` followed by
    ``tempfile``'s 8 random characters and :data:`TEMP_SUFFIX`, with a matching tag."""
    m = _TEMP_RE.fullmatch(name)
    return m is not None and m.group("tag") == temp_tag(m.group("name"), int(m.group("pid")))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # exists, owned by another user
    return True


def clean_stale_temps(folder: str | Path, *, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temp files and folders of atomic writes in ``folder`` that a killed run left.

    A temp entry (named ``.<name>.servegen-tmp-<pid>-<tag>-<random>.tmp``, see :func:`is_temp_name`)
    is stale when its process is no longer running, or when it is older than ``max_age_s`` (the
    process id may have been reused). Entries of live processes, including this one, are kept;
    anything not named so (a user's file named like a temp file but without the tag of its name
    and pid, or with another random part) is never touched. A temp folder is removed with its contents (symbolic links inside it
    are unlinked, never followed). Returns the removed paths; errors (a permission, a race with
    another cleaner) are ignored.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not is_temp_name(entry.name):
            continue
        pid = int(_TEMP_RE.fullmatch(entry.name).group("pid"))
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if _pid_alive(pid) and age <= max_age_s:
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM, once
    :func:`raise_on_sigterm` is installed.

    It is a :class:`KeyboardInterrupt`, so everything that cleans up after Ctrl-C (the temp
    file of an atomic write, removed by its ``except BaseException``) does so after SIGTERM
    too, and a command's ``except KeyboardInterrupt`` catches it. ``exit_code`` is the code a
    command should end with (143 = 128 + SIGTERM).
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"terminated by signal {signal.Signals(signum).name}")


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def raise_on_sigterm() -> bool:
    """Make SIGTERM raise :class:`Terminated` in the main thread instead of ending the process
    at once, so that temp files are removed as after Ctrl-C (for a command-line entry point:
    call it first thing in ``main``).

    Installed only from the main thread and over the default handler (a host that set its own,
    e.g. a web server, keeps it); returns whether it was installed. A second SIGTERM while the
    cleanup runs raises again; SIGKILL cannot be caught (its temp file is removed by the next
    write into the folder, :func:`clean_stale_temps`).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _raise_terminated:
        return True
    if current not in (signal.SIG_DFL, None):
        return False
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def replace_problem(target: str | Path, *, parts_folder_ok: bool = False) -> str | None:
    """Why an existing ``target`` must not be replaced by a write, or ``None`` when it may be.

    A missing target and a regular file may be replaced; so may a symbolic link to a regular
    file (the link is replaced, the file it points to is left alone). A folder, device, FIFO,
    socket, a link to one of them or a dangling link may not: a write never deletes them. With
    ``parts_folder_ok`` a folder holding only ``part-*.parquet`` files (a partitioned Parquet
    export) may be replaced too.
    """
    p = Path(target)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot write {p}: {exc.strerror}"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(p)
        except OSError:
            return f"{p} is a symbolic link that points nowhere; only a regular file is replaced"
        if stat.S_ISREG(st.st_mode):
            return None
        return f"{p} is a symbolic link to {_kind(st.st_mode)}; only a regular file is replaced"
    if stat.S_ISDIR(st.st_mode) and parts_folder_ok and is_parts_folder(p):
        return None
    what = "only a regular file or a folder of part-*.parquet files" if parts_folder_ok else "only a regular file"
    return f"{p} is {_kind(st.st_mode)}; {what} is replaced (remove it yourself or choose another name)"


def is_parts_folder(path: str | Path) -> bool:
    """True for a real folder (not a link) holding only regular ``part-*.parquet`` files."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    try:
        entries = list(os.scandir(p))
    except OSError:
        return False
    return all(
        e.is_file(follow_symlinks=False) and re.fullmatch(r"part-[0-9]+\.parquet", e.name) for e in entries
    )


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


def resolve_under_any(
    roots: tuple[Path, ...] | list[Path], user_path: str | Path, *, relative_to: str | Path | None = None
) -> Path:
    """``user_path`` confined to one of ``roots`` (see :func:`resolve_under`).

    An absolute path must lie under one of them. A relative path is tried under each root in
    order and, with ``relative_to`` (e.g. the project folder), relative to that folder too,
    where it is kept only when it resolves under a root (``../shared/data/traces/x.csv``
    from the project). The first candidate that exists is returned, else the first one
    found. Raises :class:`PathNotAllowedError` naming the roots when no root holds it.
    """
    if not roots:
        msg = f"no data folders are configured (set {DATA_ROOTS_ENV})"
        raise PathNotAllowedError(msg)
    tries = [(Path(root), user_path) for root in roots]
    if relative_to is not None and str(user_path).strip() and not Path(str(user_path)).is_absolute():
        # the path as written from ``relative_to``, then confined to each root as an absolute path
        tries += [(Path(root), Path(relative_to) / str(user_path)) for root in roots]
    found: list[Path] = []
    for root, text in tries:
        try:
            found.append(resolve_under(root, text))
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


def confine(
    user_path: str | Path,
    roots: Sequence[str | Path],
    *,
    named: Sequence[str | Path] | None = None,
    relative_to: str | Path | None = None,
) -> Path:
    """``user_path`` confined to one of ``roots`` (:func:`resolve_under_any`): THE check every door
    through which a user's path enters a server goes through.

    A relative path is looked up under each root (the first under which it exists, else its place
    under the first); one that leads out of any root (``..``, a symbolic link) is refused rather
    than tried under the next. A refusal always has the one message ``refused: <path> is outside
    the data folders this dashboard may read (<folders>; set by SERVEGEN_DATA_ROOTS)``, whatever
    the reason (outside every root, a symbolic link out of one, a link loop, a name too long), so
    it never tells whether the path exists; only an empty path or a NUL character (text no path
    can hold) are named as such.
    ``named`` are the folders the message lists (default: ``roots``), for a caller that adds
    folders of its own (the demo data, a session's uploads) to the configured ones.
    ``relative_to`` (e.g. the project folder) also accepts a relative path written from that
    folder, when it leads into a root (``../shared/data/traces/x.csv`` from the project).
    """
    text = str(user_path)
    if not text.strip():
        msg = "refused: an empty path"
        raise PathNotAllowedError(msg)
    if "\x00" in text:
        msg = "refused: a path cannot contain a NUL character"
        raise PathNotAllowedError(msg)
    relative = not Path(text).is_absolute()
    found: list[Path] = []
    for root in roots:
        try:
            found.append(resolve_under(root, text))
        except PathNotAllowedError:
            if relative:  # a relative path that leads out of one root (a link, ..) is refused, not tried elsewhere
                found = []
                break
    if relative and relative_to is not None:
        written_from = Path(relative_to) / text
        for root in roots:
            try:
                found.append(resolve_under(root, written_from))
                break
            except PathNotAllowedError:
                continue
    existing = [path for path in found if path.exists()]
    if found:
        return (existing or found)[0]
    shown = roots if named is None else named
    names = ", ".join(str(Path(r).resolve()) for r in shown) or "none"
    msg = (
        f"refused: {printable(text, limit=PATH_LIMIT)} is outside the data folders this dashboard may read "
        f"({names}; set by {DATA_ROOTS_ENV})"
    )
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
    return resolved_roots(roots)


def resolved_roots(roots: Sequence[str | Path]) -> tuple[Path, ...]:
    """``roots`` resolved, each once, in their order."""
    return tuple(dict.fromkeys(Path(root).resolve() for root in roots))


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
