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
