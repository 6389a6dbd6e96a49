"""Small result types shared by the characterization functions.

Every characterization function returns a frozen result object. When the input holds too
little data (an empty selection, a single request, all-zero rates, a missing column), the
result is *empty*: its data frames have no rows and ``reason`` says why, so a page can show
"not enough data: <reason>" instead of an exception or a chart of NaNs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class Result:
    """Base of every result: ``reason`` is ``None`` when the result holds data."""

    reason: str | None = field(default=None, kw_only=True)

    @property
    def ok(self) -> bool:
        """True when the result holds data."""
        return self.reason is None


@dataclass(frozen=True)
class Table(Result):
    """A single tidy frame, ready to plot, plus the reason when it is empty."""

    frame: pl.DataFrame

    @classmethod
    def empty(cls, schema: dict[str, pl.DataType], reason: str) -> Table:
        return cls(pl.DataFrame(schema=schema), reason=reason)
