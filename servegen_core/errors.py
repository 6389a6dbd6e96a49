"""Exception types raised by servegen_core.

Every error that comes from reading a file names the file and the place in it
(row, window, field, key) so the user can fix the input without a debugger.
"""

from __future__ import annotations

from pathlib import Path


class ServeGenError(Exception):
    """Base class of every error this package raises on purpose."""


class DataFormatError(ServeGenError, ValueError):
    """A data file does not have the expected shape or content.

    Parameters
    ----------
    path:
        The file that was being read.
    where:
        The place in the file, e.g. ``"row 12"``, ``"window 21600, field input_tokens"``.
    problem:
        What is wrong, in plain words.
    """

    def __init__(self, path: str | Path | None, where: str | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.where = where
        self.problem = problem
        parts = []
        if self.path:
            parts.append(self.path)
        if where:
            parts.append(where)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class SpecError(ServeGenError, ValueError):
    """A WorkloadSpec (or a CLI/dashboard request built from one) is invalid.

    ``key`` names the offending spec key, e.g. ``"rate.peak_rps"``.
    """

    def __init__(self, key: str | None, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"spec key '{key}': {problem}" if key else problem)


class ExportError(ServeGenError):
    """An export could not be written (target exists, unknown format, ...)."""


class LimitError(ServeGenError, ValueError):
    """A request or an input is larger than a configured resource limit.

    ``quantity`` says what was measured (e.g. ``"expected requests"``), ``value`` its size
    and ``limit`` the limit; the message says how to raise the limit.
    """

    def __init__(self, quantity: str, value: float, limit: float, hint: str = "") -> None:
        self.quantity = quantity
        self.value = value
        self.limit = limit
        text = f"{quantity} {value:,.0f} is above the limit of {limit:,.0f}"
        super().__init__(f"{text}; {hint}" if hint else text)


class OptionError(ServeGenError, ValueError):
    """An option given to a function or command is invalid or incomplete (e.g. an unknown
    preset, or preset ``generic`` without a column mapping)."""
