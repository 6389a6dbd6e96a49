"""Where data lives: the embedded demo, the shared reference data, the user cache.

Every path is anchored to this file or to an environment variable, never to the
current working directory.
"""

from __future__ import annotations

import os
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
