"""Exception types raised by servegen_core.

Every error that comes from reading a file names the file and the place in it
(row, window, field, key) so the user can fix the input without a debugger.

A value the user gave (a name, a path, a spec value) is shown in a message through
:func:`quoted` (a Python-style quoted string) or :func:`printable` (the text itself): both
cut it to its first :data:`QUOTE_LIMIT` characters plus ``... (N characters)`` and escape
the characters a terminal or a page would act on instead of showing (control characters
such as ESC, bidirectional overrides such as U+202E, line separators such as U+2028). The
message of every :class:`ServeGenError` is passed through :func:`safe_message` as a last
net: such characters are escaped there too and the whole message is capped at
:data:`MESSAGE_LIMIT` characters.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

#: Most characters of one user value quoted in a message.
QUOTE_LIMIT = 200
#: Most characters of a file path shown in a message (a real path is far shorter).
PATH_LIMIT = 1000
#: Most characters of a whole error message.
MESSAGE_LIMIT = 4000

#: Unicode categories escaped in messages: controls, format characters (bidirectional
#: marks and overrides, zero-width characters, the byte-order mark), line and paragraph
#: separators, surrogates, private-use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


#: Control characters a multi-line message keeps.
_MESSAGE_KEEPS = "\n\t"


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str, keep: str) -> bool:
    return ch not in keep and not ch.isprintable() and unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _escape(text: str, keep: str = "") -> str:
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) if _unsafe(ch, keep) else ch for ch in text)


def printable(text: object, *, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as shown inside a message, unquoted (a path, a key, a file name).

    Control, format and separator characters are escaped (``\\x1b``, ``\\u202e``,
    ``\\u2028``); text longer than ``limit`` characters is cut to its first ``limit`` and
    followed by ``... (N characters)``.
    """
    text = str(text)
    if len(text) > limit:
        return f"{_escape(text[:limit])}... ({len(text):,} characters)"
    return _escape(text)


def quoted(value: object, *, limit: int = QUOTE_LIMIT) -> str:
    """A user-given value as quoted in a message: its ``repr`` (a string in quotes, with
    control, format and separator characters escaped as ``repr`` does), cut like
    :func:`printable` when longer than ``limit`` characters.

    A string is cut before it is quoted (``'abc...'... (900,000 characters)`` counts the
    characters of the value); any other value's ``repr`` is cut as text. An integer too
    long to print is described by its digit count.
    """
    if isinstance(value, str):
        if len(value) > limit:
            return f"{_escape(repr(value[:limit]))}... ({len(value):,} characters)"
        return _escape(repr(value))
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        if isinstance(value, int):
            return f"an integer of more than {sys.get_int_max_str_digits():,} digits"
        raise
    return printable(text, limit=limit)


def safe_message(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` with control, format and separator characters escaped (newlines and tabs
    kept), cut to ``limit`` characters plus ``... (N characters)`` when longer."""
    if len(text) > limit:
        return f"{_escape(text[:limit], keep=_MESSAGE_KEEPS)}... ({len(text):,} characters)"
    return _escape(text, keep=_MESSAGE_KEEPS)


class ServeGenError(Exception):
    """Base class of every error this package raises on purpose.

    A single-string message is passed through :func:`safe_message`.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (safe_message(args[0]),)
        super().__init__(*args)


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
            parts.append(printable(self.path, limit=PATH_LIMIT))
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
        super().__init__(f"spec key '{printable(key)}': {problem}" if key else problem)


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


class InputTooLargeError(DataFormatError, LimitError):
    """A data file would take more memory to load than a limit allows (too many rows, columns
    or cells); raised from an estimate, before the file's body is read.

    It is a :class:`DataFormatError` (``path``, ``where``, ``problem``) and a
    :class:`LimitError` (``quantity``, ``value``, ``limit``). ``estimated`` says how the value
    was found (e.g. ``"from the Parquet metadata"``); ``at_least`` that counting stopped at the
    limit, so the file holds at least ``value``.
    """

    def __init__(
        self,
        path: str | Path,
        quantity: str,
        value: float,
        limit: float,
        *,
        estimated: str,
        hint: str,
        at_least: bool = False,
    ) -> None:
        self.quantity = quantity
        self.value = value
        self.limit = limit
        self.estimated = estimated
        self.at_least = at_least
        amount = f"{'at least' if at_least else 'about'} {value:,.0f} {quantity}"
        self.path = str(path)
        self.where = None
        self.problem = f"{amount} ({estimated}), above the limit of {limit:,.0f} {quantity}; not loaded ({hint})"
        ServeGenError.__init__(self, f"{printable(self.path, limit=PATH_LIMIT)}: {self.problem}")


class OptionError(ServeGenError, ValueError):
    """An option given to a function or command is invalid or incomplete (e.g. an unknown
    preset, or preset ``generic`` without a column mapping)."""
