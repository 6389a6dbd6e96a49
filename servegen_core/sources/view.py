"""THE pool-or-trace layer: one view of a ClientPool or a RequestTrace for every characterization.

A characterization function accepts a :data:`Source`: a :class:`~servegen_core.sources.pool.ClientPool`
(recorded per-window statistics) or a RequestTrace (a Polars frame, one row per request). This
module turns either into the arrays the statistics need, and turns missing data into a
:class:`NoData` reason (a ``str``) instead of an exception.

No data
    :func:`pool_no_data` and :func:`trace_no_data` say why a source holds nothing to compute
    (:data:`EMPTY_POOL`, :data:`ZERO_RATE_POOL`, :data:`EMPTY_TRACE`, :func:`missing_column`), or
    return None; every characterization words "no data" through them.
Arrivals
    :func:`pool_load` (the pool's windows with ``requests = rate_rps * duration_s``),
    :func:`pool_bins`, :func:`trace_times` (the trace's timestamps sorted, with the sort order)
    and :func:`trace_clients` (a :class:`TraceClients`: each request's client as a small integer
    code, the ids in numeric order and the requests per code).
Weighted values (length statistics)
    Both sources become the same per-row arrays (:class:`FieldData`, :func:`field_data`): a value
    code, a weight, a client code and a window code. A RequestTrace gives one row of weight 1 per
    request; its window is the ``window_s``-long slice (default 6 h) holding the request's
    timestamp. A ClientPool gives one row per PDF bin of each (client, length window); the bin's
    weight is ``prob * requests``, where ``requests`` is the client's load in that length window:
    the sum of ``rate_rps * duration_s`` over its arrival windows starting inside it.
    :func:`group` then sums weights per (group, value) into a :class:`Grouped` — entries sorted by
    group and value with a global cumulative sum — from which means, inverse-CDF percentiles,
    PDFs and inverse-CDF samples of every group come out of a few vectorized numpy calls;
    :func:`sample_pool` draws requests from a pool's per-window marginals.

Caching: the values derived from a source are held by the source object itself, not by a
module-level table. A pool keeps them in its :attr:`~servegen_core.sources.pool.ClientPool.derived`
dict; a pool is frozen, so an entry stays valid, and it is freed with the pool. A trace keeps them
in the attribute :data:`TRACE_CACHE_ATTRIBUTE` of the frame object (a Polars DataFrame is
unhashable, so a ``WeakKeyDictionary`` cannot key it, but it takes attributes), together with a
fingerprint of the frame (shape, schema, numeric data buffers and a strided sample of rows) that
every use checks, in case the frame was changed in place; a frame that refuses the attribute is
simply not cached. Nothing else is cached.

Nothing here loops per request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from servegen_core.sources.pool import ClientPool, client_sort_key

__all__ = [
    "DEFAULT_TRACE_WINDOW_S",
    "EMPTY_POOL",
    "EMPTY_TRACE",
    "SECONDS_PER_DAY",
    "SECONDS_PER_HOUR",
    "TRACE_CACHE_ATTRIBUTE",
    "ZERO_RATE_POOL",
    "FieldData",
    "Grouped",
    "NoData",
    "PoolSample",
    "Source",
    "TraceClients",
    "TraceTimes",
    "cell_keys",
    "check_positive",
    "client_order",
    "dense_codes",
    "field_data",
    "grid_denominator",
    "group",
    "is_pool",
    "missing_column",
    "pool_bins",
    "pool_clients",
    "pool_clients_without_lengths",
    "pool_field_data",
    "pool_fields",
    "pool_load",
    "pool_no_data",
    "pool_window_clients",
    "pool_window_requests",
    "sample_pool",
    "subset",
    "trace_clients",
    "trace_derived",
    "trace_field_data",
    "trace_no_data",
    "trace_times",
]

#: What every characterization accepts: a client pool or a request trace.
Source = ClientPool | pl.DataFrame

SECONDS_PER_DAY = 86400
SECONDS_PER_HOUR = 3600

#: Window of a RequestTrace's per-window statistics unless told otherwise (the pools' 6 h).
DEFAULT_TRACE_WINDOW_S = 21600

#: Largest dense (group x value) table summed with ``np.bincount`` (cells, float64).
_DENSE_LIMIT = 1 << 23
#: Largest value range turned into codes with ``np.bincount`` rather than a sort.
_RANGE_LIMIT = 1 << 26

#: Attribute of a trace frame that holds the values derived from it (see the module docstring).
TRACE_CACHE_ATTRIBUTE = "servegen_derived"
_FINGERPRINT_ROWS = 32

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# Sources and "no data"
# ---------------------------------------------------------------------------------------------


class NoData(str):
    """A reason why there is nothing to compute (returned instead of data)."""


#: The reasons every characterization gives for a source without requests.
EMPTY_POOL = NoData("empty selection: the pool has no arrival windows")
ZERO_RATE_POOL = NoData("all rates are zero: the selection holds no requests")
EMPTY_TRACE = NoData("empty trace: no requests")


def missing_column(column: str) -> NoData:
    """The reason for a trace without ``column``."""
    return NoData(f"the trace has no {column!r} column")


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


def pool_no_data(pool: ClientPool) -> NoData | None:
    """Why a pool holds no requests at all (:data:`EMPTY_POOL`, :data:`ZERO_RATE_POOL`), or None."""
    if pool.windows.height == 0:
        return EMPTY_POOL
    if not (pool.windows["rate_rps"] > 0).any():
        return ZERO_RATE_POOL
    return None


def trace_no_data(df: pl.DataFrame, *columns: str) -> NoData | None:
    """Why a trace cannot give a statistic needing ``columns`` (always ``timestamp_s``), or None."""
    needed = ["timestamp_s", *[c for c in columns if c != "timestamp_s"]]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        return NoData(f"the trace has no {', '.join(repr(c) for c in missing)} column")
    if df.height == 0:
        return EMPTY_TRACE
    for c in needed:
        nulls = df[c].null_count()
        if nulls:
            return NoData(f"the trace's {c!r} column has {nulls} missing value(s)")
    ts = df["timestamp_s"]
    if not ts.dtype.is_numeric():
        return NoData(f"the trace's 'timestamp_s' column is {ts.dtype}, not numeric")
    if ts.dtype.is_float() and not ts.is_finite().all():
        return NoData("the trace's 'timestamp_s' column has non-finite values")
    return None


# ---------------------------------------------------------------------------------------------
# Values derived from a source, held by the source
# ---------------------------------------------------------------------------------------------


def _derived(store: dict[tuple, object], key: tuple, compute: Callable[[], _T]) -> _T:
    """``store[key]``, computed by ``compute`` the first time."""
    if key not in store:
        store[key] = compute()
    return store[key]  # type: ignore[return-value]


def _column_buffer(col: pl.Series) -> int | str:
    """Address of a numeric column's data buffer (a cell set in place gets a new buffer)."""
    if col.dtype.is_numeric() and col.n_chunks() == 1 and not col.null_count():
        try:
            return int(col.to_numpy(allow_copy=False).__array_interface__["data"][0])
        except (RuntimeError, ValueError, TypeError):
            pass
    return "-"


def _trace_fingerprint(trace: pl.DataFrame) -> tuple:
    """What a cached entry must still match: shape, schema, the data buffers of numeric
    columns (Polars writes a changed cell into a new buffer) and a strided sample of rows
    (for the other columns)."""
    idx = np.unique(np.linspace(0, trace.height - 1, _FINGERPRINT_ROWS).astype(np.int64)) if trace.height else []
    return (
        trace.height,
        tuple((k, str(v)) for k, v in trace.schema.items()),
        tuple(_column_buffer(c) for c in trace.get_columns()),
        tuple(map(str, trace[idx].rows())),
    )


def trace_derived(trace: pl.DataFrame) -> dict[tuple, object]:
    """The store of values derived from ``trace``, held by the frame (:data:`TRACE_CACHE_ATTRIBUTE`).

    Polars frames are not changed in place by this project; the fingerprint guards against a
    frame changed in place nevertheless (any numeric cell; for string columns, the sampled
    rows): a frame that no longer matches gets a new, empty store. Code that edits a string
    column of a frame in place should pass a new frame. A frame that takes no attribute gets a
    new store on every call (nothing is cached).
    """
    fp = _trace_fingerprint(trace)
    held = getattr(trace, TRACE_CACHE_ATTRIBUTE, None)
    if isinstance(held, tuple) and len(held) == 2 and held[0] == fp:
        return held[1]
    store: dict[tuple, object] = {}
    try:
        setattr(trace, TRACE_CACHE_ATTRIBUTE, (fp, store))
    except (AttributeError, TypeError):
        pass
    return store


# ---------------------------------------------------------------------------------------------
# Arrivals: pool windows, trace timestamps and client codes
# ---------------------------------------------------------------------------------------------


def pool_load(pool: ClientPool) -> pl.DataFrame:
    """The pool's windows with a ``requests`` column (``rate_rps * duration_s``, float64)."""
    return pool.windows.with_columns((pl.col("rate_rps") * pl.col("duration_s")).alias("requests"))


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


def trace_times(df: pl.DataFrame) -> TraceTimes:
    """The trace's timestamps as sorted float64 (call :func:`trace_no_data` first); kept with the frame."""
    return _derived(trace_derived(df), ("times",), lambda: _sorted_times(df))


def _sorted_times(df: pl.DataFrame) -> TraceTimes:
    ts = df["timestamp_s"].cast(pl.Float64).to_numpy()
    if ts.size > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        return TraceTimes(ts[order], order)
    return TraceTimes(ts, None)


@dataclass(frozen=True)
class TraceClients:
    """Client of each request of a trace as a small integer code, in the frame's row order.

    ``codes`` (unsigned, ``< ncodes``; one or two bytes per request when the ids are few, which
    lets numpy radix-sort them) are the frame's categorical codes; ``ids`` lists the clients in
    numeric order of their ids and ``rank[code]`` is the position of a code's id in ``ids`` (-1
    for codes no request uses); ``counts[code]`` is the code's number of requests.
    :attr:`id_codes` gives each request the position of its id in ``ids`` instead, and
    :meth:`in_time_order` the codes aligned with :attr:`TraceTimes.ts`.
    """

    codes: np.ndarray
    ncodes: int
    ids: tuple[str, ...]
    rank: np.ndarray
    counts: np.ndarray

    @functools.cached_property
    def id_codes(self) -> np.ndarray:
        """Per request (frame order): the index of its client in ``ids`` (int32)."""
        return self.rank[self.codes].astype(np.int32)

    def in_time_order(self, times: TraceTimes) -> np.ndarray:
        """``codes`` aligned with the sorted timestamps ``times.ts`` of the same frame."""
        return self.codes if times.order is None else self.codes[times.order]

    def per_client(self, values_by_code: np.ndarray) -> np.ndarray:
        """Reorder an array indexed by code (first axis) into ``ids`` order."""
        out = np.empty((len(self.ids), *values_by_code.shape[1:]), dtype=values_by_code.dtype)
        used = self.rank >= 0
        out[self.rank[used]] = values_by_code[np.flatnonzero(used)]
        return out


def trace_clients(df: pl.DataFrame) -> TraceClients:
    """Client codes of a trace (call :func:`trace_no_data` with ``"client_id"`` first); kept with the frame."""
    return _derived(trace_derived(df), ("clients",), lambda: _client_codes(df))


def _client_codes(df: pl.DataFrame) -> TraceClients:
    """The ids are hashed once by a cast to Categorical; its physical codes are used directly
    when they are small (one byte or two per request), otherwise remapped densely. The id of
    a code is read back from the Categorical's categories (``Series.cat.to``)."""
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
    return TraceClients(codes, ncodes, tuple(ids), rank, counts)


# ---------------------------------------------------------------------------------------------
# Codes
# ---------------------------------------------------------------------------------------------


def dense_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``x`` and each element's index among them."""
    if x.size and np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if hi - lo < _RANGE_LIMIT:
            shifted = x - lo
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            rank = np.cumsum(present) - 1
            return np.flatnonzero(present) + lo, rank[shifted]
    uniq, inv = np.unique(x, return_inverse=True)
    return uniq, inv.ravel()


def _values_as_codes(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float values to sorted distinct float64 values and codes.

    Whole numbers and values on a grid ``k/d`` (e.g. reason ratios ``k/501``) are coded in one
    pass without sorting; other values by ``np.unique``.
    """
    sample = v[:: max(1, v.size // 1000)]
    if v.size and np.all(sample == np.floor(sample)) and np.all(v == np.floor(v)) and v.min() >= -(2**52) and v.max() < 2**52:
        u, c = dense_codes(v.astype(np.int64))
        return u.astype(np.float64), c
    grid = _grid_codes(v)
    if grid is not None:
        return grid
    u, c = dense_codes(v)
    return u.astype(np.float64), c


def grid_denominator(values: np.ndarray, *, max_denominator: int = 1000, tol: float = 1e-9) -> int | None:
    """Smallest ``d <= max_denominator`` with every value within ``tol`` of a multiple of ``1/d``."""
    v = np.unique(np.asarray(values, dtype=np.float64))
    if v.size == 0 or v.size > 20_000 or not np.all(np.isfinite(v)):
        return None
    d = np.arange(1, max_denominator + 1, dtype=np.float64)
    for chunk in np.array_split(d, max(1, (d.size * v.size) // 2_000_000 + 1)):
        k = np.outer(chunk, v)
        ok = np.all(np.abs(k - np.round(k)) <= tol * np.maximum(chunk[:, None], 1.0), axis=1)
        if ok.any():
            return int(chunk[np.argmax(ok)])
    return None


def _grid_codes(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes of values that all lie on a grid ``k/d`` (d found on a strided sample), or None."""
    if v.size < 10_000 or not np.all(np.isfinite(v[:: max(1, v.size // 1000)])):
        return None
    d = grid_denominator(v[:: max(1, v.size // 4096)])
    if d is None:
        return None
    scaled = v * d
    k = np.rint(scaled)
    if not np.all(np.abs(scaled - k) <= 1e-9 * d):
        return None
    u, codes = dense_codes(k.astype(np.int64))
    vals = np.empty(u.size)
    vals[codes] = v
    if not np.array_equal(vals[codes], v):  # two different floats on one grid point: not a clean grid
        return None
    return vals, codes


def client_order(ids: list[str] | tuple[str, ...]) -> list[str]:
    """Client ids in display order: numeric ids by number, then the others by name."""
    return sorted(ids, key=client_sort_key)


# ---------------------------------------------------------------------------------------------
# Field data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldData:
    """Per-row arrays of one field. ``weight is None`` means one request per row."""

    field: str
    values: np.ndarray  # sorted distinct values (float64)
    vcode: np.ndarray  # per row: index into values
    weight: np.ndarray | None  # per row: requests (> 0)
    client: np.ndarray | None  # per row: index into clients (None: not computed)
    clients: tuple[str, ...]
    window: np.ndarray | None  # per row: index into window_starts (None: not computed)
    window_starts: np.ndarray  # start_s of each window code
    window_s: int
    total: float  # sum of weights
    presorted: bool = False  # rows sorted by (client, window, value), one row per triple
    groups: dict = field(default_factory=dict, compare=False, repr=False)  # group() results by grouping

    @property
    def n_rows(self) -> int:
        return int(self.vcode.size)


@dataclass(frozen=True)
class _PoolIndex:
    """Per-row run structure of a pool's ``distributions`` (computed once per pool)."""

    run_first: np.ndarray  # per run: its first row
    run_len: np.ndarray  # per run: its number of rows
    run_client: np.ndarray  # per run: client code
    run_start: np.ndarray  # per run: length-window start_s
    run_field: np.ndarray  # per run: field code
    run_requests: np.ndarray  # per run: requests in the run's (client, length window)
    fields: tuple[str, ...]
    clients: tuple[str, ...]
    value: np.ndarray  # per row
    prob: np.ndarray  # per row


def pool_clients(pool: ClientPool) -> tuple[str, ...]:
    """``pool.client_ids``, computed once per pool object."""
    return _derived(pool.derived, ("clients",), lambda: pool.client_ids)


def pool_clients_without_lengths(pool: ClientPool) -> tuple[str, ...]:
    """``pool.clients_without_lengths``, computed once per pool object."""
    return _derived(pool.derived, ("without_lengths",), lambda: pool.clients_without_lengths)


def pool_fields(pool: ClientPool) -> tuple[str, ...]:
    """The length fields of the pool (``pool.fields``), from the cached index."""
    if pool.distributions.height == 0:
        return ()
    return _pool_index(pool).fields


def pool_window_requests(pool: ClientPool) -> pl.DataFrame:
    """Requests per (client, length window): ``client_id, start_s, requests``.

    The sum of ``rate_rps * duration_s`` over the client's arrival windows starting inside the
    length window. Arrival windows outside every length window of their client are left out.
    """
    w = pool.windows.select("client_id", "start_s", (pl.col("rate_rps") * pl.col("duration_s")).alias("requests"))
    lw = pool.length_windows
    L = pool.length_window_s
    if _on_grid(pool):
        keys = lw.select("client_id", "start_s")
        return (
            w.group_by("client_id", (pl.col("start_s") // L * L).alias("start_s"))
            .agg(pl.col("requests").sum())
            .join(keys, on=["client_id", "start_s"], how="semi")
        )
    lw = lw.select("client_id", pl.col("start_s").alias("lw_start"), pl.col("duration_s").alias("lw_duration")).sort(
        "client_id", "lw_start"
    )
    joined = w.sort("client_id", "start_s").join_asof(
        lw, left_on="start_s", right_on="lw_start", by="client_id", strategy="backward", check_sortedness=False
    )
    inside = joined.filter(pl.col("start_s") < pl.col("lw_start") + pl.col("lw_duration"))
    return inside.group_by("client_id", "lw_start").agg(pl.col("requests").sum()).rename({"lw_start": "start_s"})


def _on_grid(pool: ClientPool) -> bool:
    """Every length window starts on a multiple of the length window and lasts one."""
    L = pool.length_window_s
    lw = pool.length_windows
    return lw.height == 0 or bool(lw.select(((pl.col("start_s") % L == 0) & (pl.col("duration_s") == L)).all()).item())


def _run_codes(col: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Codes of a column that changes value rarely (runs): per element, and the distinct values."""
    first = (col != col.shift(1)).fill_null(True)
    starts = first.arg_true().to_numpy()
    run_vals = col.gather(starts)
    uniq = run_vals.unique(maintain_order=True).to_list()
    code_of = run_vals.replace_strict(uniq, list(range(len(uniq))), return_dtype=pl.Int64).to_numpy()
    lengths = np.diff(np.append(starts, col.len()))
    return np.repeat(code_of, lengths), uniq


def pool_window_clients(pool: ClientPool) -> np.ndarray:
    """Client code (index into :func:`pool_clients`) of each row of ``pool.windows``, cached."""

    def compute() -> np.ndarray:
        clients = pool_clients(pool)
        code, uniq = _run_codes(pool.windows["client_id"])
        pos = {c: i for i, c in enumerate(clients)}
        return np.array([pos[c] for c in uniq], dtype=np.int64)[code] if code.size else code.astype(np.int64)

    return _derived(pool.derived, ("window_clients",), compute)


def _pool_requests_by_run(pool: ClientPool, clients: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Dense (client code x length-window index) table of requests, on the length-window grid."""
    L = pool.length_window_s
    w = pool.windows
    lw_idx = w["start_s"].to_numpy() // L
    n_lw = int(lw_idx.max()) + 1 if lw_idx.size else 1
    req = w["rate_rps"].to_numpy() * w["duration_s"].to_numpy()
    table = np.bincount(pool_window_clients(pool) * n_lw + lw_idx, weights=req, minlength=len(clients) * n_lw)
    return table, n_lw


def _column_array(col: pl.Series) -> np.ndarray:
    """A numeric column as one numpy array: each chunk viewed without a copy, then joined once
    (quicker than ``Series.to_numpy`` on a column of many chunks)."""
    if col.n_chunks() > 1 and col.dtype.is_numeric() and not col.null_count():
        return np.concatenate([c.to_numpy() for c in col.get_chunks()])
    return col.to_numpy()


def _run_starts(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """First row (int64) of each run of consecutive rows equal on every one of ``columns``.

    A row starts a run where any column changes, so the starts are the union of each column's
    run starts, taken from the run-length encoding of each column (cheaper than comparing
    every row with the previous one). A null never equals its neighbour (each starts a run).
    """
    if frame.height == 0:
        return np.zeros(0, dtype=np.int64)
    if any(frame[c].null_count() for c in columns):
        boundary = pl.any_horizontal(pl.col(c).ne(pl.col(c).shift(1)).fill_null(True) for c in columns)
        return frame.select(boundary.alias("b"))["b"].arg_true().to_numpy().astype(np.int64)
    lens = frame.select(pl.col(c).rle().struct.field("len").implode().alias(c) for c in columns)
    parts = []
    for c in columns:
        n = lens[c][0].to_numpy().astype(np.int64)
        parts.append(np.cumsum(n) - n)
    return np.unique(np.concatenate(parts))


def _pool_index(pool: ClientPool) -> _PoolIndex:
    """The pool's :class:`_PoolIndex`, computed once per pool object."""
    return _derived(pool.derived, ("index",), lambda: _build_pool_index(pool))


def _build_pool_index(pool: ClientPool) -> _PoolIndex:
    D = pool.distributions
    starts = _run_starts(D, ("client_id", "start_s", "field"))
    runs = D[["client_id", "start_s", "field"]].gather(starts)
    clients = pool_clients(pool)
    fields = tuple(runs["field"].unique(maintain_order=True).to_list())
    client_code = {c: i for i, c in enumerate(clients)}
    field_code = {f: i for i, f in enumerate(fields)}
    run_client = runs["client_id"].replace_strict(client_code, return_dtype=pl.Int64).to_numpy()
    run_field = runs["field"].replace_strict(field_code, return_dtype=pl.Int64).to_numpy()
    run_start = runs["start_s"].to_numpy()
    L = pool.length_window_s
    if _on_grid(pool) and pool.windows.height:
        table, n_lw = _pool_requests_by_run(pool, clients)
        lw_idx = run_start // L
        inside = lw_idx < n_lw
        run_requests = np.where(inside, table[run_client * n_lw + np.minimum(lw_idx, n_lw - 1)], 0.0)
    else:
        req = pool_window_requests(pool)
        run_requests = (
            runs.join(req, on=["client_id", "start_s"], how="left", maintain_order="left")["requests"]
            .fill_null(0.0)
            .to_numpy()
        )
    return _PoolIndex(
        run_first=starts,
        run_len=np.diff(np.append(starts, D.height)),
        run_client=run_client,
        run_start=run_start,
        run_field=run_field,
        run_requests=run_requests,
        fields=fields,
        clients=clients,
        value=_column_array(D["value"]),
        prob=_column_array(D["prob"]),
    )


def _window_s(source: Source, window_s: int | None) -> int:
    if isinstance(source, ClientPool):
        if window_s is None:
            return source.length_window_s
        w = int(window_s)
        if w <= 0 or w % source.length_window_s:
            msg = (
                f"a pool's lengths are recorded per {source.length_window_s} s window; "
                f"window_s must be a positive multiple of it, got {window_s}"
            )
            raise ValueError(msg)
        return w
    w = DEFAULT_TRACE_WINDOW_S if window_s is None else int(window_s)
    if w <= 0:
        msg = f"window_s must be positive, got {window_s}"
        raise ValueError(msg)
    return w


def pool_field_data(pool: ClientPool, field: str, *, window_s: int | None = None) -> FieldData | NoData:
    """A pool's field as weighted per-bin rows (see the module docstring), kept with the pool."""
    w = _window_s(pool, window_s)
    if reason := pool_no_data(pool):
        return reason
    if pool.distributions.height == 0:
        n = len(pool_clients_without_lengths(pool))
        return NoData(f"no length data: none of the selected clients has length distributions ({n} without)")
    cache = pool.derived
    key = ("field", field, w)
    if key in cache:
        return cache[key]
    ix = _pool_index(pool)
    if field not in ix.fields:
        return NoData(f"the pool has no '{field}' length data (fields: {', '.join(ix.fields)})")
    fcode = ix.fields.index(field)
    ok = np.flatnonzero((ix.run_field == fcode) & (ix.run_requests > 0))
    if ok.size == 0:
        return NoData(f"no requests fall in windows with '{field}' data")
    # The field's rows, run by run (each run is one PDF: a client, a length window).
    lens = ix.run_len[ok]
    out_first = np.cumsum(lens) - lens
    take = np.zeros(ix.run_len.size, dtype=bool)
    take[ok] = True
    rows = np.repeat(take, ix.run_len)  # per row of the pool: in one of the field's runs
    weight = ix.prob[rows]
    weight *= np.repeat(ix.run_requests[ok], lens)
    raw = ix.value[rows]
    starts, run_wcode = dense_codes(ix.run_start[ok] // w * w)
    client = np.repeat(ix.run_client[ok].astype(np.int32), lens)
    wcode = np.repeat(run_wcode.astype(np.int32), lens)
    presorted = False
    if w == pool.length_window_s:
        # Runs in (client, window) order and strictly increasing values inside each run.
        run_key = ix.run_client[ok] * starts.size + run_wcode
        rising = raw[1:] > raw[:-1]
        rising[out_first[1:] - 1] = True
        presorted = bool(np.all(np.diff(run_key) > 0) and rising.all())
    keep = weight > 0
    if not keep.all():
        weight, raw, client, wcode = weight[keep], raw[keep], client[keep], wcode[keep]
    values, vcode = _values_as_codes(raw)
    fd = FieldData(
        field=field,
        values=values,
        vcode=vcode.astype(np.int32),
        weight=weight,
        client=client,
        clients=ix.clients,
        window=wcode,
        window_starts=starts,
        window_s=w,
        total=float(weight.sum()),
        presorted=presorted,
    )
    cache[key] = fd
    return fd


def _trace_windows(trace: pl.DataFrame, w: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.floor(trace["timestamp_s"].to_numpy() / w).astype(np.int64)
    lo = int(idx.min())
    return (idx - lo).astype(np.int32), (np.arange(int(idx.max()) - lo + 1, dtype=np.int64) + lo) * w


def _trace_values(col: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct values, per-row codes (int32) and the non-null mask (None without nulls)."""
    keep = None
    if col.null_count():
        keep = col.is_not_null().to_numpy()
        col = col.drop_nulls()
    raw = col.to_numpy()
    if np.issubdtype(raw.dtype, np.integer):
        u, vcode = dense_codes(raw.astype(np.int64, copy=False))
        values = u.astype(np.float64)
    else:
        values, vcode = _values_as_codes(raw.astype(np.float64, copy=False))
    return values, vcode.astype(np.int32), keep


def trace_field_data(
    trace: pl.DataFrame, field: str, *, window_s: int | None = None, need_client: bool = True, need_window: bool = True
) -> FieldData | NoData:
    """A trace's field as per-request arrays (requests with a null value left out).

    Codes are kept with the trace (:func:`trace_derived`), so later calls on the same frame reuse
    them, as they reuse a pool's index.
    """
    w = _window_s(trace, window_s)
    if trace.height == 0:
        return EMPTY_TRACE
    if field not in trace.columns:
        return missing_column(field)
    entry = trace_derived(trace)
    key = ("field", field, w, need_client, need_window)
    if key in entry:
        return entry[key]
    values, vcode, keep = _derived(entry, ("values", field), lambda: _trace_values(trace[field]))
    if vcode.size == 0:
        return NoData(f"the trace's '{field}' column holds no values")
    client, ids = None, ()
    if need_client:
        tc = trace_clients(trace)
        client, ids = tc.id_codes, tc.ids
        client = client if keep is None else client[keep]
    window, starts = None, np.zeros(0, dtype=np.int64)
    if need_window:
        window, starts = _derived(entry, ("window", w), lambda: _trace_windows(trace, w))
        window = window if keep is None else window[keep]
    fd = FieldData(
        field=field,
        values=values,
        vcode=vcode,
        weight=None,
        client=client,
        clients=ids,
        window=window,
        window_starts=starts,
        window_s=w,
        total=float(vcode.size),
    )
    entry[key] = fd
    return fd


def field_data(
    source: Source, field: str, *, window_s: int | None = None, need_client: bool = True, need_window: bool = True
) -> FieldData | NoData:
    """Per-row arrays of ``field`` for a pool or a trace, or the reason there are none."""
    if isinstance(source, ClientPool):
        return pool_field_data(source, field, window_s=window_s)
    return trace_field_data(source, field, window_s=window_s, need_client=need_client, need_window=need_window)


# ---------------------------------------------------------------------------------------------
# Grouped weighted distributions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouped:
    """Weighted distributions of one field per group, as sorted (group, value) entries."""

    values: np.ndarray  # distinct values of the field
    gid: np.ndarray  # per entry: group index, ascending
    vcode: np.ndarray  # per entry: value code, ascending within a group
    weight: np.ndarray  # per entry: weight > 0
    bounds: np.ndarray  # group g's entries are [bounds[g], bounds[g + 1])
    cum: np.ndarray  # cumulative weight over all entries
    client: np.ndarray | None  # per group: client code (grouped by client)
    window: np.ndarray | None  # per group: window code (grouped by window)

    @property
    def n_groups(self) -> int:
        return int(self.bounds.size - 1)

    @property
    def value(self) -> np.ndarray:
        return self.values[self.vcode]

    def requests(self) -> np.ndarray:
        return np.diff(np.concatenate(([0.0], self.cum[self.bounds[1:] - 1])))

    def mean(self) -> np.ndarray:
        req = self.requests()
        s = np.bincount(self.gid, weights=self.weight * self.value, minlength=self.n_groups)
        return s / req

    def quantile(self, q: float) -> np.ndarray:
        """Per group: the smallest value whose cumulative weight reaches ``q`` of the group's."""
        lo = np.concatenate(([0.0], self.cum[self.bounds[1:-1] - 1]))
        hi = self.cum[self.bounds[1:] - 1]
        target = lo + q * (hi - lo) * (1 - 1e-12)
        idx = np.searchsorted(self.cum, target, side="left")
        idx = np.clip(idx, self.bounds[:-1], self.bounds[1:] - 1)
        return self.values[self.vcode[idx]]

    def max(self) -> np.ndarray:
        return self.values[self.vcode[self.bounds[1:] - 1]]

    def prob(self) -> np.ndarray:
        """Per entry: the probability of its value within its group."""
        return self.weight / self.requests()[self.gid]

    def cdf(self) -> np.ndarray:
        lo = np.concatenate(([0.0], self.cum[self.bounds[1:-1] - 1]))
        req = self.requests()
        return np.minimum((self.cum - lo[self.gid]) / req[self.gid], 1.0)

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values drawn by inverse CDF: one per element of ``groups``, with uniforms ``u`` in [0, 1)."""
        lo = np.concatenate(([0.0], self.cum[self.bounds[1:-1] - 1]))
        hi = self.cum[self.bounds[1:] - 1]
        target = lo[groups] + u * (hi - lo)[groups]
        idx = np.searchsorted(self.cum, target, side="right")
        idx = np.clip(idx, self.bounds[:-1][groups], self.bounds[1:][groups] - 1)
        return self.values[self.vcode[idx]]


def group(fd: FieldData, by: tuple[str, ...] = ()) -> Grouped:
    """Sum ``fd``'s weights per (group, value); ``by`` is a subset of ``("client", "window")``.

    The result is kept with ``fd`` (a pool's field data lives in the pool's cache, so each
    grouping of a pool is computed once).
    """
    unknown = [b for b in by if b not in ("client", "window")]
    if unknown:
        msg = f"unknown grouping {unknown}"
        raise ValueError(msg)
    by = tuple(b for b in ("client", "window") if b in by)
    hit = fd.groups.get(by)
    if hit is None:
        hit = fd.groups[by] = _group(fd, by)
    return hit


def _group(fd: FieldData, by: tuple[str, ...]) -> Grouped:
    nc = len(fd.clients) if "client" in by else 1
    nw = fd.window_starts.size if "window" in by else 1
    U = fd.values.size
    if "client" in by and fd.client is None or "window" in by and fd.window is None:
        msg = "field data computed without the codes needed for this grouping"
        raise ValueError(msg)
    key = None  # group key per row, built in place: client * nw + window
    if "client" in by:
        key = fd.client.astype(np.int64)
        if nw > 1:
            key *= nw
    if "window" in by:
        if key is None:
            key = fd.window.astype(np.int64)
        else:
            key += fd.window
    if fd.presorted and by == ("client", "window"):
        gkey, vcode, weight = key, fd.vcode, fd.weight
    elif nc * nw * U <= _DENSE_LIMIT:
        if key is None:
            flat = fd.vcode
        else:
            flat = key
            flat *= U
            flat += fd.vcode
        dense = np.bincount(flat, weights=fd.weight, minlength=nc * nw * U)
        nz = np.flatnonzero(dense > 0)
        gkey, vcode, weight = nz // U, nz % U, dense[nz]
    else:
        flat = fd.vcode.astype(np.int64) if key is None else key * U + fd.vcode
        if fd.weight is None:
            agg = pl.DataFrame({"k": flat}).group_by("k").agg(pl.len().cast(pl.Float64).alias("w")).sort("k")
        else:
            agg = pl.DataFrame({"k": flat, "w": fd.weight}).group_by("k").agg(pl.col("w").sum()).sort("k")
        k = agg["k"].to_numpy()
        gkey, vcode, weight = k // U, k % U, agg["w"].to_numpy()
    if weight is None:
        weight = np.ones(vcode.size)
    change = np.concatenate(([True], gkey[1:] != gkey[:-1])) if gkey.size else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(change)
    gid = np.cumsum(change) - 1
    bounds = np.concatenate((starts, [gkey.size])).astype(np.int64)
    ukey = gkey[starts]
    client = ukey // nw if "client" in by else None
    window = ukey % nw if "window" in by else None
    return Grouped(
        values=fd.values,
        gid=gid,
        vcode=vcode,
        weight=weight.astype(np.float64, copy=False),
        bounds=bounds,
        cum=np.cumsum(weight, dtype=np.float64),
        client=client,
        window=window,
    )


# ---------------------------------------------------------------------------------------------
# Sampling a pool's per-window marginals
# ---------------------------------------------------------------------------------------------


def subset(g: Grouped, keep: np.ndarray) -> Grouped | None:
    """The entries where ``keep`` holds (groups left empty are dropped), or None if none is left."""
    if not keep.any():
        return None
    gid_old = g.gid[keep]
    vcode, weight = g.vcode[keep], g.weight[keep]
    change = np.concatenate(([True], gid_old[1:] != gid_old[:-1]))
    starts = np.flatnonzero(change)
    kept_groups = gid_old[starts]
    return Grouped(
        values=g.values,
        gid=np.cumsum(change) - 1,
        vcode=vcode,
        weight=weight,
        bounds=np.concatenate((starts, [vcode.size])).astype(np.int64),
        cum=np.cumsum(weight),
        client=None if g.client is None else g.client[kept_groups],
        window=None if g.window is None else g.window[kept_groups],
    )


def cell_keys(fd: FieldData, g: Grouped) -> np.ndarray:
    """Per group of a (client, window) grouping: ``client code * 2**32 + window start_s``."""
    return g.client.astype(np.int64) * (1 << 32) + fd.window_starts[g.window]


@dataclass(frozen=True)
class PoolSample:
    """Requests drawn from a pool's per-window marginal PDFs, independently per field."""

    values: dict[str, np.ndarray]  # field -> drawn values
    client: np.ndarray  # client code of each draw
    start_s: np.ndarray  # length-window start of each draw
    clients: tuple[str, ...]
    weight_share: float  # share of the pool's requests with length data that the draws stand for


def sample_pool(
    pool: ClientPool,
    fields: tuple[str, ...],
    n: int,
    rng: np.random.Generator,
    *,
    positive: tuple[str, ...] = (),
    per_client: bool = False,
    items: dict[str, str] | None = None,
) -> PoolSample | NoData:
    """Draw ``n`` requests (``n`` per client with ``per_client``) from a pool's marginals.

    A (client, length window) cell is chosen with probability proportional to its requests;
    every field is then drawn from that cell's PDF by inverse CDF, independently of the others
    (the pool records no joint distribution). Fields in ``positive`` are drawn conditional on
    being > 0 and the cell's probability is multiplied by P(field > 0) there (independence).
    ``items`` maps a per-item token field to its count field (``{"image_tokens":
    "image_count"}``, both in ``fields``): the token field's PDF is read per item, so a
    request's value is the sum of one draw per item of its drawn count, as
    :mod:`servegen_core.generate.compose` generates it.
    """
    grouped: dict[str, tuple[Grouped, np.ndarray, np.ndarray | None]] = {}
    fd0: FieldData | None = None
    g0: Grouped | None = None
    for f in fields:
        fd = pool_field_data(pool, f)
        if isinstance(fd, NoData):
            return fd
        g = group(fd, ("client", "window"))
        if fd0 is None:
            fd0, g0 = fd, g
        if f in positive:
            g2 = subset(g, fd.values[g.vcode] > 0)
            if g2 is None:
                return NoData(f"no request of the selection has {f} > 0")
            keys = cell_keys(fd, g2)
            p_pos = g2.requests() / g.requests()[np.searchsorted(cell_keys(fd, g), keys)]
            grouped[f] = (g2, keys, p_pos)
        else:
            grouped[f] = (g, cell_keys(fd, g), None)
    # Cells present for every field.
    common = None
    for _g, keys, _p in grouped.values():
        common = keys if common is None else np.intersect1d(common, keys, assume_unique=True)
    if common is None or common.size == 0:
        return NoData(f"no window holds data for all of {', '.join(fields)}")
    # Requests per cell (the cell's load, the same for every field), times P(> 0) of conditioned fields.
    weight = g0.requests()[np.searchsorted(cell_keys(fd0, g0), common)]
    for f in positive:
        _g, keys, p_pos = grouped[f]
        weight = weight * p_pos[np.searchsorted(keys, common)]
    total_req = fd0.total
    if not weight.sum() > 0:
        return NoData("the selection holds no requests with these fields")
    cell_client = common >> 32
    if per_client:
        order = np.argsort(cell_client, kind="stable")
        common, weight, cell_client = common[order], weight[order], cell_client[order]
        cum = np.cumsum(weight)
        change = np.concatenate(([True], cell_client[1:] != cell_client[:-1]))
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], cell_client.size)
        lo = np.concatenate(([0.0], cum[ends[:-1] - 1]))
        hi = cum[ends - 1]
        which = np.repeat(np.arange(starts.size), n)
        target = lo[which] + rng.random(which.size) * (hi - lo)[which]
        cell = np.clip(np.searchsorted(cum, target, side="right"), starts[which], ends[which] - 1)
    else:
        cum = np.cumsum(weight)
        cell = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), cum.size - 1)
    out: dict[str, np.ndarray] = {}
    items = items or {}
    for f in fields:
        g, keys, _ = grouped[f]
        gidx = np.searchsorted(keys, common[cell])
        out[f] = g.sample(gidx, rng.random(cell.size))
    for tf, cf in items.items():
        # one draw per item of the request's count, summed (after all per-request draws)
        g, keys, _ = grouped[tf]
        gidx = np.searchsorted(keys, common[cell])
        count = np.maximum(np.rint(out[cf]), 0).astype(np.int64)
        owner = np.repeat(np.arange(cell.size), count)
        per_item = g.sample(np.repeat(gidx, count), rng.random(int(count.sum()))) if owner.size else np.empty(0)
        out[tf] = np.bincount(owner, weights=per_item, minlength=cell.size)
    return PoolSample(
        values=out,
        client=cell_client[cell],
        start_s=common[cell] & ((1 << 32) - 1),
        clients=fd0.clients,
        weight_share=float(weight.sum() / total_req) if total_req > 0 else 0.0,
    )
