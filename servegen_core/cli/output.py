"""How the ``servegen`` command prints: table cells, plain-text tables, JSON and a progress bar."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["ProgressBar", "fmt_number", "format_table", "json_value", "print_json"]


def fmt_number(value: Any, *, digits: int = 3) -> str:
    """Short human text for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-" if math.isnan(value) else str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[bool] | None = None) -> str:
    """A plain-text table: a header, a rule, then rows; numeric columns right-aligned."""
    cells = [[fmt_number(v) for v in row] for row in rows]
    if numeric is None:
        numeric = [
            bool(rows) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
            for i in range(len(headers))
        ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def json_value(value: Any) -> Any:
    """``value`` with NaN/inf turned into ``None`` and tuples into lists, ready for ``json.dumps``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def print_json(obj: Any, out: TextIO) -> None:
    """Write ``obj`` to ``out`` as indented JSON (NaN and inf as ``null``) and a newline."""
    out.write(json.dumps(json_value(obj), indent=2, allow_nan=False) + "\n")


class ProgressBar:
    """A one-line text progress bar on ``stream`` (stderr), updated once per chunk.

    On a terminal the line is redrawn in place; otherwise (a log file, a pipe) a line is
    written each time another tenth of the work is done, so logs stay short.
    """

    def __init__(self, total: int, *, stream: TextIO, label: str = "", width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.stream = stream
        self.label = label
        self.width = width
        self.done = 0
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._open = False

    def render(self, detail: str = "") -> str:
        frac = min(self.done / self.total, 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{self.label} [{bar}] {100 * frac:5.1f}% {self.done}/{self.total}"
        return f"{text} {detail}".rstrip()

    def update(self, done: int, detail: str = "") -> None:
        self.done = done
        line = self.render(detail)
        if self._tty:
            self.stream.write("\r" + line)
            self._open = True
        else:
            tenth = int(10 * min(done / self.total, 1.0))
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
