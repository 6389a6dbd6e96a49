"""The dashboard's settings from the environment: folders offered, upload, download, preview and memory limits.

Every limit a server operator can set lives here, with its variable and its default; pages
and the sidebar read them through these functions (a bad value raises ``ValueError`` naming
the variable).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from servegen_core import limits
from servegen_core.paths import shared_data_dir

#: Environment variable: a ServeGen data folder to offer besides the shared one.
DATA_DIR_ENV = "SERVEGEN_DATA_DIR"
#: Environment variable: largest accepted upload, in MB (default :data:`DEFAULT_MAX_UPLOAD_MB`).
MAX_UPLOAD_ENV = "SERVEGEN_MAX_UPLOAD_MB"
#: The default upload limit; ``dashboard/.streamlit/config.toml`` sets Streamlit's
#: ``server.maxUploadSize`` to the same number.
DEFAULT_MAX_UPLOAD_MB = 500
#: Upload folders older than this (a session that ended without cleaning up) are removed at start.
UPLOAD_MAX_AGE_H = 24

#: Environment variable: most upload bytes one session may hold, in MB: the files Streamlit keeps
#: in memory for its uploaders plus the session's upload folder (default twice the upload limit:
#: one largest upload, in memory and saved).
MAX_SESSION_UPLOAD_ENV = "SERVEGEN_MAX_SESSION_UPLOAD_MB"

#: Environment variable: largest workload (requests) offered as a browser download.
MAX_DOWNLOAD_ENV = "SERVEGEN_MAX_DOWNLOAD_REQUESTS"
DEFAULT_MAX_DOWNLOAD_REQUESTS = 2_000_000
#: Largest workload (requests) composed in memory on the Preview page.
PREVIEW_MAX_REQUESTS = 5_000_000

#: Environment variable: the memory budget (MB) of the heavy work of all sessions together
#: (loading, composing, validating, simulating), default half the machine's memory; read by
#: :func:`servegen_core.limits.server_budget`, which :func:`core_calls.within_budget` reserves from.
SERVER_BUDGET_ENV = limits.SERVER_BUDGET_ENV

def env_int(name: str, default: int, *, unit: str) -> int:
    """``$name`` as a positive whole number (``default`` when unset or empty); ``ValueError`` naming it otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        msg = f"{name} must be a whole number of {unit}, got {text!r}"
        raise ValueError(msg) from None
    if value <= 0:
        msg = f"{name} must be positive, got {value}"
        raise ValueError(msg)
    return value


def max_upload_mb() -> int:
    """Largest accepted upload in MB: ``$SERVEGEN_MAX_UPLOAD_MB`` (default 500), at most Streamlit's ``server.maxUploadSize``.

    Streamlit's server refuses a larger body whatever the page says, so the page never offers
    more than the server takes; ``scripts/dashboard.sh`` sets both from the same variable.
    """
    own = env_int(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB, unit="MB")
    server = st.get_option("server.maxUploadSize")
    return min(own, int(server)) if server else own


def max_session_upload_mb() -> int:
    """Most upload MB one session may hold (memory and folder): ``$SERVEGEN_MAX_SESSION_UPLOAD_MB``,
    default twice :func:`max_upload_mb`."""
    return env_int(MAX_SESSION_UPLOAD_ENV, 2 * max_upload_mb(), unit="MB")


def max_download_requests() -> int:
    """Largest workload offered as a browser download: ``$SERVEGEN_MAX_DOWNLOAD_REQUESTS`` or 2,000,000.

    (About 180 MB as Mooncake JSON Lines, 60 MB as CSV; larger workloads are saved to a path.)
    """
    return env_int(MAX_DOWNLOAD_ENV, DEFAULT_MAX_DOWNLOAD_REQUESTS, unit="requests")


def servegen_folders() -> list[str]:
    """ServeGen data folders to offer: ``$SERVEGEN_DATA_DIR`` and the shared data, where they exist."""
    found = []
    env = os.environ.get(DATA_DIR_ENV)
    for path in ([Path(env).expanduser()] if env else []) + [shared_data_dir() / "servegen"]:
        if path.is_dir() and str(path) not in found:
            found.append(str(path))
    return found
