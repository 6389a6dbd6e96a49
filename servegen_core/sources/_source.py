"""Shared plumbing of the characterization modules: one view of a ClientPool or a RequestTrace.

A characterization function accepts either a :class:`~servegen_core.sources.pool.ClientPool` (recorded
per-window statistics) or a RequestTrace (a Polars frame, one row per request). The helpers
here turn either into the arrays the statistics need, and turn missing data into a *reason*
string instead of an exception:

- :func:`pool_load` — the pool's arrival windows with ``requests = rate_rps * duration_s``;
- :func:`trace_times` — the trace's timestamps as a sorted float64 array (plus the sort order
  when the frame was not sorted);
- :func:`trace_clients` — small integer client codes aligned with :func:`trace_times`, with
  the ids in numeric order and the requests per code.

Nothing here loops per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.sources.pool import ClientPool, client_sort_key

SECONDS_PER_DAY = 86400
SECONDS_PER_HOUR = 3600

Source = ClientPool | pl.DataFrame


def is_pool(source: object) -> bool:
    """True for a ClientPool, False for a RequestTrace frame; any other type is a TypeError."""
    if isinstance(source, ClientPool):
        return True
    if isinstance(source, pl.DataFrame):
        return False
    msg = f"expected a ClientPool or a RequestTrace (polars DataFrame), got {type(source).__name__}"
    raise TypeError(msg)


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        msg = f"{name} must be positive, got {value}"
        raise ValueError(msg)


def pool_load(pool: ClientPool) -> pl.DataFrame:
    """The pool's windows with a ``requests`` column (``rate_rps * duration_s``, float64)."""
    return pool.windows.with_columns((pl.col("rate_rps") * pl.col("duration_s")).alias("requests"))


def pool_problem(pool: ClientPool) -> str | None:
    """Why a pool holds no arrivals to characterize, or None."""
    if pool.windows.height == 0:
        return "the pool has no arrival windows (empty selection)"
    if not (pool.windows["rate_rps"] > 0).any():
        return "every arrival window of the pool has rate 0 (no requests)"
    return None


def pool_bins(pool: ClientPool, resolution_s: int) -> pl.Expr:
    """Expression: start of the ``resolution_s`` bin holding each window; checks the grid fits."""
    check_positive("resolution_s", resolution_s)
    if resolution_s % pool.window_s:
        msg = (
            f"resolution_s={resolution_s} is not a multiple of the pool's {pool.window_s} s arrival "
            "windows; a pool can only be summed over whole windows"
        )
        raise ValueError(msg)
    return (pl.col("start_s") // resolution_s) * resolution_s


@dataclass(frozen=True)
class TraceTimes:
    """Sorted timestamps of a trace; ``order`` is the sorting permutation (None if already sorted)."""

    ts: np.ndarray
    order: np.ndarray | None

    @property
    def end_s(self) -> float:
        """Time of the last request: the trace spans ``[0, end_s]`` (timestamp_s counts from its start)."""
        return float(self.ts[-1])


def trace_problem(df: pl.DataFrame, *columns: str) -> str | None:
    """Why a trace cannot give a statistic needing ``columns`` (always ``timestamp_s``), or None."""
    needed = ["timestamp_s", *[c for c in columns if c != "timestamp_s"]]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        return f"the trace has no {', '.join(repr(c) for c in missing)} column"
    if df.height == 0:
        return "the trace has no requests (empty selection)"
    for c in needed:
        nulls = df[c].null_count()
        if nulls:
            return f"the trace's {c!r} column has {nulls} missing value(s)"
    ts = df["timestamp_s"]
    if not ts.dtype.is_numeric():
        return f"the trace's 'timestamp_s' column is {ts.dtype}, not numeric"
    if ts.dtype.is_float() and not ts.is_finite().all():
        return "the trace's 'timestamp_s' column has non-finite values"
    return None


def trace_times(df: pl.DataFrame) -> TraceTimes:
    """The trace's timestamps as sorted float64 (call :func:`trace_problem` first)."""
    ts = df["timestamp_s"].cast(pl.Float64).to_numpy()
    if ts.size > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        return TraceTimes(ts[order], order)
    return TraceTimes(ts, None)


@dataclass(frozen=True)
class TraceClients:
    """Client of each request of a trace as a small integer code.

    ``codes`` is aligned with :attr:`TraceTimes.ts` (unsigned, ``< ncodes``); ``ids`` lists the
    clients in numeric order of their ids and ``rank[code]`` is the position of a code's id in
    ``ids`` (-1 for codes no request uses); ``counts[code]`` is the code's number of requests.
    """

    codes: np.ndarray
    ncodes: int
    ids: list[str]
    rank: np.ndarray
    counts: np.ndarray

    def per_client(self, values_by_code: np.ndarray) -> np.ndarray:
        """Reorder an array indexed by code (first axis) into ``ids`` order."""
        out = np.empty((len(self.ids), *values_by_code.shape[1:]), dtype=values_by_code.dtype)
        used = self.rank >= 0
        out[self.rank[used]] = values_by_code[np.flatnonzero(used)]
        return out


def trace_clients(df: pl.DataFrame, times: TraceTimes) -> TraceClients:
    """Client codes of a trace (call :func:`trace_problem` with ``"client_id"`` first).

    The ids are hashed once by a cast to Categorical; its physical codes are used directly
    when they are small (one byte or two per request), otherwise remapped densely. The id of
    a code is read back from the Categorical's categories (``Series.cat.to``).
    """
    col = df["client_id"]
    if col.dtype not in (pl.String, pl.Categorical):
        col = col.cast(pl.String)
    cat = col.cast(pl.Categorical)
    phys = cat.to_physical().to_numpy()
    maxc = int(phys.max())
    small = maxc < 1 << 16
    codes = phys.astype(np.uint8 if maxc < 1 << 8 else np.uint16) if small else phys
    counts = np.bincount(codes, minlength=maxc + 1)
    present = np.flatnonzero(counts)
    names = pl.Series(present, dtype=pl.UInt32).cat.to(cat.dtype).cast(pl.String).to_list()
    by_id = sorted(range(len(names)), key=lambda i: client_sort_key(names[i]))
    ids = [names[i] for i in by_id]
    if small:
        rank = np.full(maxc + 1, -1, dtype=np.int64)
        rank[present[by_id]] = np.arange(len(ids))
        ncodes = maxc + 1
    else:
        lut = np.zeros(maxc + 1, dtype=np.uint32)
        lut[present[by_id]] = np.arange(len(ids), dtype=np.uint32)
        codes = lut[phys]
        counts = counts[present[by_id]]
        ncodes = len(ids)
        rank = np.arange(len(ids), dtype=np.int64)
    if times.order is not None:
        codes = codes[times.order]
    return TraceClients(codes, ncodes, ids, rank, counts)
