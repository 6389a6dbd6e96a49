"""What every module of the ``servegen`` command shares: its name, exit codes, error and defaults."""

from __future__ import annotations

from servegen_core.errors import ServeGenError

__all__ = ["DEFAULT_CHUNK_S", "EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_OK", "EXIT_UNEXPECTED", "PROG", "CliError"]

#: The command's name, as its messages start (``servegen: error: ...``).
PROG = "servegen"


#: Exit codes.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_UNEXPECTED = 3


class CliError(ServeGenError):
    """A command-line request that cannot be carried out (bad combination of arguments, ...)."""


#: Span seconds per chunk when ``generate`` streams without ``--chunk-s``.
DEFAULT_CHUNK_S = 3600.0
