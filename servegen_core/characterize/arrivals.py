"""Burstiness of arrivals: inter-arrival CV per window, its CDF, and Gamma/Weibull/Exponential fits.

Every function takes a :class:`~servegen_core.sources.pool.ClientPool` or a RequestTrace (unless noted)
and returns a :class:`~servegen_core.result.Result`; empty or degenerate input gives an empty
result whose ``reason`` says why. Invalid options (``window_s <= 0``, ``min_requests < 3``) raise
``ValueError``.

Windows
    A window is ``[start_s, start_s + window_s)`` with ``start_s`` a multiple of ``window_s``.
    For a trace, the inter-arrival times (IATs) of a window are the gaps between consecutive
    requests that both fall in it; its CV is the population standard deviation of those gaps
    over their mean. For a pool, a window's CV is the recorded one; ``window_s`` must be a
    multiple of the pool's window (600 s) and a longer window pools the IATs of its recorded
    windows: with ``n_i`` requests, mean gap ``1/rate_i`` and CV ``c_i`` per recorded window,
    the pooled mean is ``Σ n_i/rate_i / N`` and the pooled second moment
    ``Σ n_i (1 + c_i²)/rate_i² / N`` (gaps across window edges are not represented).

Too few requests
    A window with fewer than ``min_requests`` requests (default 10) has no meaningful CV: it is
    left out of the table and *counted* in the result's ``excluded`` / ``excluded_requests``.
    A trace window whose requests all share one timestamp is excluded the same way.

Load weighting
    "Rate-weighted" statistics weight each window by its requests (``rate_rps * duration_s``
    for a pool), i.e. by its share of the load.

Aggregate stream of a pool
    A pool records each client separately; :func:`aggregate_cv` derives the CV of all clients
    merged from the recorded rates and shapes by an exact formula for independent stationary
    renewal streams (see its docstring), computed without sampling.

Base tables
    :func:`cv_cdf` and :func:`burstiness_summary` accept a source or a table from
    :func:`window_cv` / :func:`aggregate_cv`, so a page computes the CVs once.

Fits
    :func:`fit_interarrivals` fits one array of gaps (on demand, for a chosen window); it is
    never run for every window. :func:`interarrival_histogram` prepares a chosen window's
    gaps — observed in a trace, drawn with a seed from the recorded distribution of a pool.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import optimize, special, stats

from servegen_core.renewal import PATTERNS, implied_cv
from servegen_core.sources.pool import ClientPool
from servegen_core.sources.view import (
    Source,
    check_positive,
    is_pool,
    pool_load,
    pool_no_data,
    trace_clients,
    trace_no_data,
    trace_times,
)
from servegen_core.result import Result, Table

__all__ = [
    "FAMILIES",
    "BurstinessSummary",
    "FitResult",
    "InterarrivalHistogram",
    "WindowCV",
    "aggregate_cv",
    "burstiness_summary",
    "cv_cdf",
    "fit_interarrivals",
    "implied_cv",
    "interarrival_histogram",
    "pattern_shares",
    "recorded_vs_implied_cv",
    "window_cv",
]

#: Distribution families fitted to inter-arrival times, in the order they are reported.
FAMILIES: tuple[str, ...] = PATTERNS

CV_SCHEMA = {
    "client_id": pl.String(),
    "start_s": pl.Int64(),
    "requests": pl.Float64(),
    "rate_rps": pl.Float64(),
    "cv": pl.Float64(),
}
AGG_SCHEMA = {k: v for k, v in CV_SCHEMA.items() if k != "client_id"}

#: Points of the quadrature grid of the aggregate-CV integral (odd, for Simpson's rule), and its
#: start as a multiple of the mean aggregate gap.
PALM_GRID = 17
PALM_T_LO = 1e-2
#: Rows of (client-window x grid) evaluated at once; bounds memory of :func:`aggregate_cv` on pools.
PALM_CHUNK_ROWS = 200_000


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowCV(Table):
    """CV per window (a :class:`Table`), plus the windows left out for having too few requests."""

    excluded: int = field(default=0, kw_only=True)
    excluded_requests: float = field(default=0.0, kw_only=True)
    window_s: int = field(default=600, kw_only=True)
    min_requests: int = field(default=10, kw_only=True)


@dataclass(frozen=True)
class BurstinessSummary(Result):
    """Headline burstiness figures over the windows of a :class:`WindowCV` table."""

    windows: int
    excluded: int
    share_windows_cv_gt1: float | None
    share_load_cv_gt1: float | None
    median_cv: float | None
    weighted_median_cv: float | None


@dataclass(frozen=True)
class FitResult(Result):
    """Maximum-likelihood fits of inter-arrival times.

    ``table`` has one row per fitted family: ``family, shape, scale, mean_s, cv, loglik, aic,
    bic, ks`` (location fixed at 0; the exponential has shape 1). ``best`` is the family with
    the lowest value of ``criterion`` (``"bic"`` by default, ``"aic"`` or ``"ks"``). ``n`` gaps were fitted;
    ``dropped`` non-positive or non-finite gaps were left out (ties give zero gaps, for which
    Gamma/Weibull densities are not finite).
    """

    table: pl.DataFrame
    best: str | None
    n: int
    dropped: int
    criterion: str = "bic"


@dataclass(frozen=True)
class InterarrivalHistogram(Result):
    """Histogram of one window's inter-arrival times with fitted (and recorded) densities.

    ``histogram``: ``left_s, right_s, count, density`` (density integrates to 1).
    ``densities``: ``family, iat_s, pdf`` in long form; families are the fits of
    :func:`fit_interarrivals` and, for a pool, ``"Recorded <pattern>"``.
    ``sampled`` is True when the gaps were drawn from a pool's recorded distribution.
    """

    histogram: pl.DataFrame
    densities: pl.DataFrame
    fit: FitResult | None
    samples: int
    sampled: bool


HIST_SCHEMA = {"left_s": pl.Float64(), "right_s": pl.Float64(), "count": pl.Int64(), "density": pl.Float64()}
DENSITY_SCHEMA = {"family": pl.String(), "iat_s": pl.Float64(), "pdf": pl.Float64()}
FIT_SCHEMA = {
    "family": pl.String(),
    "shape": pl.Float64(),
    "scale": pl.Float64(),
    "mean_s": pl.Float64(),
    "cv": pl.Float64(),
    "loglik": pl.Float64(),
    "aic": pl.Float64(),
    "bic": pl.Float64(),
    "ks": pl.Float64(),
}


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_options(window_s: int, min_requests: int) -> int:
    check_positive("window_s", window_s)
    if int(window_s) != window_s:
        msg = f"window_s must be a whole number of seconds, got {window_s}"
        raise ValueError(msg)
    if min_requests < 3:
        msg = f"min_requests must be at least 3 (a CV needs two gaps), got {min_requests}"
        raise ValueError(msg)
    return int(window_s)


def _check_pool_window(pool: ClientPool, window_s: int) -> None:
    if window_s % pool.window_s:
        msg = (
            f"window_s={window_s} is not a multiple of the pool's {pool.window_s} s arrival windows; "
            "a pool's CV can only be pooled over whole recorded windows"
        )
        raise ValueError(msg)


def _finish_cv(frame: pl.DataFrame, min_requests: int, window_s: int, schema: dict) -> WindowCV:
    """Split off windows with too few requests (or no defined CV), count them, build the result."""
    ok = (pl.col("requests") >= min_requests - 1e-9) & pl.col("cv").is_not_null() & pl.col("cv").is_finite()
    kept = frame.filter(ok).select(list(schema)).cast(schema)
    dropped = frame.filter(~ok)
    excluded, excluded_req = dropped.height, float(dropped["requests"].sum()) if dropped.height else 0.0
    opts = {"excluded": excluded, "excluded_requests": excluded_req, "window_s": window_s, "min_requests": min_requests}
    if kept.height == 0:
        reason = f"no window of {window_s} s has at least {min_requests} requests ({excluded} window(s) excluded)"
        return WindowCV(pl.DataFrame(schema=schema), reason=reason, **opts)
    return WindowCV(kept, **opts)


def _empty_cv(schema: dict, reason: str, window_s: int, min_requests: int) -> WindowCV:
    return WindowCV(pl.DataFrame(schema=schema), reason=reason, window_s=window_s, min_requests=min_requests)


def _pool_mixture(frame: pl.DataFrame, keys: list[str], window_s: int) -> pl.DataFrame:
    """Pool recorded windows into ``window_s`` windows by the moments of their IAT mixture."""
    n = pl.col("requests")
    m = 1.0 / pl.col("rate_rps")
    return (
        frame.with_columns(((pl.col("start_s") // window_s) * window_s).alias("start_s"))
        .group_by([*keys, "start_s"])
        .agg(
            n.sum().alias("requests"),
            ((n * m).sum() / n.sum()).alias("m1"),
            ((n * m * m * (1.0 + pl.col("cv") ** 2)).sum() / n.sum()).alias("m2"),
        )
        .with_columns(
            (pl.col("requests") / window_s).alias("rate_rps"),
            (pl.col("m2") / pl.col("m1") ** 2 - 1.0).clip(lower_bound=0.0).sqrt().alias("cv"),
        )
        .sort([*keys, "start_s"])
    )


def _window_index(ts: np.ndarray, window_s: float) -> np.ndarray:
    """``floor(ts / window_s)`` (exact at window boundaries) as int32 when it fits, else int64."""
    lo, hi = (float(ts.min()), float(ts.max())) if ts.size else (0.0, 0.0)
    small = -(2.0**31) < lo / window_s and hi / window_s < 2.0**31 - 1
    dtype = np.int32 if small else np.int64
    if lo < 0:
        return np.floor(ts / window_s).astype(dtype)
    return (ts / window_s).astype(dtype)  # truncation is floor for ts >= 0


def _group_iat_stats(ts: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Request count and IAT CV (population std / mean) of contiguous, time-ordered groups.

    ``starts`` are the first positions of the groups in ``ts`` (sorted, ``starts[0] == 0``).
    The CV is NaN for a group with fewer than two gaps or a zero mean gap.
    """
    n = ts.size
    counts = np.diff(np.append(starts, n))
    gap = np.empty(n)
    gap[0] = 0.0
    np.subtract(ts[1:], ts[:-1], out=gap[1:])
    gap[starts] = 0.0  # the first request of a group has no gap inside the group
    s1 = np.add.reduceat(gap, starts)
    np.multiply(gap, gap, out=gap)
    s2 = np.add.reduceat(gap, starts)
    ngap = counts - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / ngap
        var = np.clip(s2 / ngap - mean * mean, 0.0, None)
        cv = np.where((mean > 0) & (ngap >= 2), np.sqrt(var) / mean, np.nan)
    return counts.astype(np.float64), cv


# --------------------------------------------------------------------------------------------
# Per-window CV
# --------------------------------------------------------------------------------------------


#: Up to this many clients, :func:`_client_window_starts` finds window edges by binary search
#: per client; beyond, by one vectorized pass over every request.
SEARCH_MAX_CLIENTS = 4096


def _client_window_starts(ts: np.ndarray, seg_start: np.ndarray, window_s: int) -> tuple[np.ndarray, np.ndarray]:
    """First position of every non-empty (client, window) group and its window index.

    ``ts`` holds each client's times, sorted, one client after another from ``seg_start``.
    With few clients the window edges inside each client's run are found by ``searchsorted``
    (a loop over clients, not requests); otherwise every request's window index is computed.
    """
    n = ts.size
    if seg_start.size > SEARCH_MAX_CLIENTS:
        win = _window_index(ts, window_s)
        brk = np.empty(n, dtype=bool)
        brk[0] = True
        np.not_equal(win[1:], win[:-1], out=brk[1:])
        brk[seg_start] = True  # a new client starts a new group even within the same window
        starts = np.flatnonzero(brk)
        return starts, win[starts].astype(np.int64)
    seg_end = np.append(seg_start[1:], n)
    pos, wins = [], []
    for a, b in zip(seg_start.tolist(), seg_end.tolist()):
        w0, w1 = (int(w) for w in _window_index(ts[[a, b - 1]], window_s))
        if w1 - w0 >= b - a:  # more windows than requests (a sparse client): index each request
            win = _window_index(ts[a:b], window_s).astype(np.int64)
            first = np.concatenate(([0], np.flatnonzero(win[1:] != win[:-1]) + 1))
            pos.append(a + first)
            wins.append(win[first])
            continue
        edges = np.arange(w0 + 1, w1 + 1, dtype=np.float64) * window_s
        pos.append(np.concatenate(([a], a + np.searchsorted(ts[a:b], edges, side="left"))))
        wins.append(np.arange(w0, w1 + 1, dtype=np.int64))
    starts, win = np.concatenate(pos), np.concatenate(wins)
    nonempty = np.diff(np.append(starts, n)) > 0
    return starts[nonempty], win[nonempty]


def window_cv(source: Source, *, window_s: int = 600, min_requests: int = 10) -> WindowCV:
    """Inter-arrival CV per (client, window): ``client_id, start_s, requests, rate_rps, cv``.

    For a pool, the recorded CV of each window with requests (pooled over recorded windows
    when ``window_s`` is a multiple of the pool's window; see the module docstring). For a
    trace, computed from the rows. Windows with fewer than ``min_requests`` requests are
    excluded and counted (``excluded``, ``excluded_requests``).
    """
    window_s = _check_options(window_s, min_requests)
    if is_pool(source):
        if reason := pool_no_data(source):
            return _empty_cv(CV_SCHEMA, reason, window_s, min_requests)
        _check_pool_window(source, window_s)
        load = pool_load(source).filter(pl.col("rate_rps") > 0)
        if window_s != source.window_s:
            load = _pool_mixture(load, ["client_id"], window_s)
        return _finish_cv(load, min_requests, window_s, CV_SCHEMA)
    if reason := trace_no_data(source, "client_id"):
        return _empty_cv(CV_SCHEMA, reason, window_s, min_requests)
    times = trace_times(source)
    tc = trace_clients(source)
    # Stable sort by client keeps time order inside each client; codes of one or two bytes
    # let numpy use a radix sort.
    order = np.argsort(tc.in_time_order(times), kind="stable")
    ts = times.ts[order]
    per_code = tc.counts
    present = np.flatnonzero(per_code)
    seg_start = (np.cumsum(per_code) - per_code)[present]
    starts, win_of_start = _client_window_starts(ts, seg_start, window_s)
    counts, cv = _group_iat_stats(ts, starts)
    client_rank = tc.rank[present[np.searchsorted(seg_start, starts, side="right") - 1]]
    by_client = np.lexsort((starts, client_rank))  # clients in id order, windows in time order
    starts, counts, cv, client_rank = starts[by_client], counts[by_client], cv[by_client], client_rank[by_client]
    frame = pl.DataFrame(
        {
            "client_id": pl.Series(tc.ids, dtype=pl.String).gather(client_rank),
            "start_s": win_of_start[by_client] * window_s,
            "requests": counts,
            "rate_rps": counts / window_s,
            "cv": cv,
        }
    ).with_columns(pl.col("cv").fill_nan(None))
    return _finish_cv(frame, min_requests, window_s, CV_SCHEMA)


# --------------------------------------------------------------------------------------------
# Aggregate CV
# --------------------------------------------------------------------------------------------


def _equilibrium_survival(t: np.ndarray, rate: np.ndarray, shape: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``R(t)``: probability that a stationary renewal stream has no arrival in ``(0, t]``.

    ``R(t) = rate * ∫_t^∞ F̄(u) du`` for IAT distribution F with mean ``1/rate``. Rows of ``t``
    are streams (``rate``, ``shape``, ``gamma`` are column vectors); the distribution is the
    stream's Gamma/Weibull shape with its scale set so the mean gap is ``1/rate``:

    - Gamma(k): with ``x = t·rate·k``, ``R = Q(k, x)(1 − x/k) + x^k e^{−x} / Γ(k+1)``;
    - Weibull(k): with ``y = (t·rate·Γ(1+1/k))^k``, ``R = Q(1/k, y)``;

    where Q is the regularized upper incomplete gamma function.
    """
    out = np.empty_like(t)
    g = gamma[:, 0]
    if g.any():
        k = shape[g]
        x = t[g] * rate[g] * k
        with np.errstate(divide="ignore", under="ignore"):
            tail = np.exp(k * np.log(x) - x - special.gammaln(k + 1))
        out[g] = special.gammaincc(k, x) * (1.0 - x / k) + tail
    w = ~g
    if w.any():
        k = shape[w]
        with np.errstate(over="ignore"):
            y = (t[w] * rate[w] * special.gamma(1 + 1 / k)) ** k
        out[w] = special.gammaincc(1 / k, y)
    return np.clip(out, 0.0, 1.0)


#: Grid of the tabulated equilibrium survival: log10 range and points per decade of the shape
#: and of ``u = rate * t``.
_TABLE_LOG10_SHAPE = (-3.0, 5.0, 24)
_TABLE_LOG10_U = (-9.0, 9.0, 40)


@functools.cache
def _survival_table() -> tuple[float, float, int, float, float, int, np.ndarray, np.ndarray]:
    """``R`` of :func:`_equilibrium_survival` tabulated over (ln shape, ln u), built once.

    ``R`` depends on the rate and t only through ``u = rate * t``, so one table per family
    serves every stream. Returns ``ln k0, Δln k, n_k, ln u0, Δln u, n_u``, the flat table (the
    Gamma block, ``n_k x n_u``, then the Weibull block) and its forward differences.
    """
    (k0, k1, kd), (u0, u1, ud) = _TABLE_LOG10_SHAPE, _TABLE_LOG10_U
    lk = np.linspace(k0, k1, int(round((k1 - k0) * kd)) + 1) * np.log(10)
    lu = np.linspace(u0, u1, int(round((u1 - u0) * ud)) + 1) * np.log(10)
    k = np.exp(lk)[:, None]
    u = np.broadcast_to(np.exp(lu), (lk.size, lu.size)).copy()
    blocks = [
        _equilibrium_survival(u, np.ones_like(k), k, np.full((lk.size, 1), family == "Gamma"))
        for family in ("Gamma", "Weibull")
    ]
    flat = np.concatenate([blk.ravel() for blk in blocks] + [np.zeros(1)])
    dflat = np.append(np.diff(flat), 0.0)  # flat[i+1] - flat[i], for interpolation along u
    # float32 halves the memory traffic of the (streams x grid) arrays; R in [0, 1] needs no more
    flat, dflat = flat.astype(np.float32), dflat.astype(np.float32)
    return float(lk[0]), float(lk[1] - lk[0]), lk.size, float(lu[0]), float(lu[1] - lu[0]), lu.size, flat, dflat


def _palm_cv(rate: np.ndarray, shape: np.ndarray, gamma: np.ndarray, group: np.ndarray) -> np.ndarray:
    """CV of the gaps of a superposition of independent stationary renewal streams, per group.

    ``group`` (sorted, contiguous) says which streams are merged. With ``R_j`` each stream's
    equilibrium survival (:func:`_equilibrium_survival`) and ``λ = Σ λ_j``, the merged
    stream's gap ``T`` (Palm distribution) satisfies ``E[T] = 1/λ`` and
    ``E[T²] = (2/λ) ∫_0^∞ Π_j R_j(t) dt``, hence ``CV² = 2λ ∫_0^∞ Π_j R_j(t) dt − 1``.

    Numerics: ``R_j`` is interpolated bilinearly in (ln shape, ln u) from a table built once
    (:func:`_survival_table`; below the table ``R ≈ 1``, beyond it ≈ 0, shapes clipped to
    1e-3..1e5). The integral is taken by Simpson's rule in ln t on ``PALM_GRID`` points from
    ``t0 = PALM_T_LO/λ`` to the first time at which some stream's ``R_j`` has surely dropped
    below ~1e-10 (the product is smaller still beyond it), plus ``∫_0^{t0} ≈ t0`` (relative
    error below 1e-4). On language/m-large this agrees with a dense direct evaluation within
    0.5 % in every window (checked in the tests against direct simulation).
    """
    lk0, dk, nk, lu0, du, nu, flat, dflat = _survival_table()
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    counts = np.diff(np.append(starts, group.size))
    lam = np.add.reduceat(rate, starts)
    # A time beyond which R_j < ~1e-10: upper-tail point a + 10√a + 25 of Gamma(a).
    a = np.where(gamma, shape + 1.0, 1.0 / shape)
    q = a + 10.0 * np.sqrt(a) + 25.0
    with np.errstate(over="ignore"):
        t_star = np.where(gamma, q / (rate * shape), q ** (1.0 / shape) / (rate * special.gamma(1 + 1 / shape)))
    t_lo = PALM_T_LO / lam
    t_hi = np.clip(np.minimum.reduceat(t_star, starts), 10.0 * t_lo, 1e16 * t_lo)
    log_lo, log_span = np.log(t_lo), np.log(t_hi) - np.log(t_lo)
    # Per stream: table row (family block + shape row), interpolation weight along the shape,
    # and the table column as an affine function of the grid position s in [0, 1].
    fk = np.clip((np.log(shape) - lk0) / dk, 0.0, nk - 1.000001)
    ik = fk.astype(np.intp)
    wk = (fk - ik).astype(np.float32)[:, None]
    row_base = (np.where(gamma, 0, nk * nu) + ik * nu)[:, None]
    grp = np.repeat(np.arange(lam.size), counts)
    col0 = ((np.log(rate) + log_lo[grp] - lu0) / du).astype(np.float32)[:, None]
    col_step = (log_span[grp] / du).astype(np.float32)[:, None]
    s = np.linspace(0.0, 1.0, PALM_GRID)[None, :]
    s32 = s.astype(np.float32)
    weights = np.ones(PALM_GRID)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    integral = np.empty(lam.size)
    for g0, g1 in _chunks(counts, PALM_CHUNK_ROWS):
        r0, r1 = starts[g0], starts[g0] + counts[g0:g1].sum()
        fu = col_step[r0:r1] * s32
        fu += col0[r0:r1]
        np.clip(fu, 0.0, nu - 1.001, out=fu)  # float32: keep the index below the last column
        idx = fu.astype(np.intp)
        fu -= idx  # weight along u
        idx += row_base[r0:r1]
        lo = flat[idx]
        lo += fu * dflat[idx]
        idx += nu
        hi = flat[idx]
        hi += fu * dflat[idx]
        hi -= lo
        hi *= wk[r0:r1]
        lo += hi
        prod = np.multiply.reduceat(lo, starts[g0:g1] - r0, axis=0).astype(np.float64)
        prod *= np.exp(log_lo[g0:g1, None] + log_span[g0:g1, None] * s)  # dt = t d(ln t)
        h = log_span[g0:g1] / (PALM_GRID - 1)
        integral[g0:g1] = h / 3.0 * (prod @ weights) + t_lo[g0:g1]
    return np.sqrt(np.clip(2.0 * lam * integral - 1.0, 0.0, None))


def _chunks(counts: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive ranges of groups holding about ``max_rows`` rows each (whole groups)."""
    ends = np.cumsum(counts)
    cuts = np.searchsorted(ends, np.arange(max_rows, ends[-1], max_rows), side="left") + 1
    bounds = np.unique(np.concatenate(([0], cuts, [counts.size])))
    return [(int(x), int(y)) for x, y in zip(bounds[:-1], bounds[1:])]


def aggregate_cv(source: Source, *, window_s: int = 600, min_requests: int = 10) -> WindowCV:
    """Inter-arrival CV of the aggregate stream (all clients merged) per window.

    Columns ``start_s, requests, rate_rps, cv``. For a trace, measured from the merged rows.

    For a pool there are no raw arrivals. Each client's recorded window is taken as a
    stationary renewal stream with its recorded rate and its recorded Gamma/Weibull *shape*
    (the scale set so the mean gap is 1/rate), the streams as independent, and the CV of their
    superposition is computed from the exact Palm-calculus identity
    ``CV² = 2λ ∫_0^∞ Π_j R_j(t) dt − 1`` (``R_j``: stream j's probability of no arrival in a
    time t from an arbitrary instant) by numerical quadrature, without sampling. The
    approximation lies in the model (stationary, independent streams within each 600 s window,
    CV from the fitted shape rather than the recorded CV), not in the computation. Longer
    windows pool these per-window results as :func:`window_cv` does.
    """
    window_s = _check_options(window_s, min_requests)
    if is_pool(source):
        if reason := pool_no_data(source):
            return _empty_cv(AGG_SCHEMA, reason, window_s, min_requests)
        _check_pool_window(source, window_s)
        active = (
            pool_load(source)
            .filter((pl.col("rate_rps") > 0) & (pl.col("shape") > 0) & pl.col("pattern").is_in(["Gamma", "Weibull"]))
            .sort("start_s", maintain_order=True)
        )
        if active.height == 0:
            return _empty_cv(AGG_SCHEMA, "no active window has a recorded Gamma/Weibull shape", window_s, min_requests)
        start = active["start_s"].to_numpy()
        cv = _palm_cv(
            active["rate_rps"].to_numpy(),
            active["shape"].to_numpy(),
            (active["pattern"] == "Gamma").to_numpy(),
            start,
        )
        per = active.group_by("start_s", maintain_order=True).agg(
            pl.col("requests").sum(), pl.col("rate_rps").sum()
        )
        frame = per.with_columns(pl.Series("cv", cv))
        if window_s != source.window_s:
            frame = _pool_mixture(frame, [], window_s)
        return _finish_cv(frame, min_requests, window_s, AGG_SCHEMA)
    if reason := trace_no_data(source):
        return _empty_cv(AGG_SCHEMA, reason, window_s, min_requests)
    ts = trace_times(source).ts
    win = _window_index(ts, window_s)
    starts = np.concatenate(([0], np.flatnonzero(win[1:] != win[:-1]) + 1))
    counts, cv = _group_iat_stats(ts, starts)
    frame = pl.DataFrame(
        {"start_s": win[starts].astype(np.int64) * window_s, "requests": counts, "rate_rps": counts / window_s, "cv": cv}
    ).with_columns(pl.col("cv").fill_nan(None))
    return _finish_cv(frame, min_requests, window_s, AGG_SCHEMA)


# --------------------------------------------------------------------------------------------
# CDF and summary
# --------------------------------------------------------------------------------------------


def _cv_table(data: Source | Table, window_s: int, min_requests: int) -> Table:
    if isinstance(data, Table):
        if data.ok and not {"cv", "requests"} <= set(data.frame.columns):
            msg = f"expected a table with 'cv' and 'requests' columns (from window_cv/aggregate_cv), got {data.frame.columns}"
            raise ValueError(msg)
        return data
    return window_cv(data, window_s=window_s, min_requests=min_requests)


def cv_cdf(
    data: Source | Table,
    *,
    window_s: int = 600,
    min_requests: int = 10,
    max_points: int | None = 2000,
) -> Table:
    """Empirical CDF of the window CV, unweighted and weighted by requests: ``cv, cdf, cdf_weighted``.

    ``data`` is a source (then :func:`window_cv` is computed with ``window_s`` and
    ``min_requests``) or a table from :func:`window_cv` / :func:`aggregate_cv`. ``cdf`` is the
    share of windows with CV ≤ ``cv``; ``cdf_weighted`` the share of their requests. With more
    windows than ``max_points``, evenly spaced ranks are kept (both CDFs stay exact there,
    including the last point).
    """
    schema = {"cv": pl.Float64(), "cdf": pl.Float64(), "cdf_weighted": pl.Float64()}
    table = _cv_table(data, window_s, min_requests)
    if not table.ok:
        return Table.empty(schema, table.reason)
    f = table.frame.sort("cv")
    n = f.height
    req = f["requests"].to_numpy()
    out = pl.DataFrame(
        {
            "cv": f["cv"].to_numpy(),
            "cdf": np.arange(1, n + 1) / n,
            "cdf_weighted": np.cumsum(req) / req.sum(),
        },
        schema=schema,
    )
    if max_points is not None and n > max_points:
        keep = np.unique(np.round(np.linspace(0, n - 1, max(2, max_points))).astype(np.int64))
        out = out[keep]
    return Table(out)


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def burstiness_summary(data: Source | Table, *, window_s: int = 600, min_requests: int = 10) -> BurstinessSummary:
    """Share of windows and of load with CV > 1 (burstier than Poisson), and median CVs.

    ``data`` as in :func:`cv_cdf`. ``share_load_cv_gt1`` weights windows by their requests;
    ``weighted_median_cv`` is the CV below which half of the requests' windows lie.
    """
    table = _cv_table(data, window_s, min_requests)
    excluded = getattr(table, "excluded", 0)
    if not table.ok:
        return BurstinessSummary(0, excluded, None, None, None, None, reason=table.reason)
    cv = table.frame["cv"].to_numpy()
    req = table.frame["requests"].to_numpy()
    gt1 = cv > 1.0
    return BurstinessSummary(
        windows=cv.size,
        excluded=excluded,
        share_windows_cv_gt1=float(gt1.mean()),
        share_load_cv_gt1=float(req[gt1].sum() / req.sum()),
        median_cv=float(np.median(cv)),
        weighted_median_cv=_weighted_median(cv, req),
    )


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------


def _fit_one(family: str, x: np.ndarray) -> tuple[float, float, object] | None:
    """MLE (location 0) on gaps normalized to mean 1; returns shape, scale (normalized), frozen dist."""
    try:
        if family == "Gamma":
            k, _, sc = stats.gamma.fit(x, floc=0)
            dist = stats.gamma(k, scale=sc)
        elif family == "Weibull":
            k, sc = _weibull_mle(x)
            dist = stats.weibull_min(k, scale=sc)
        elif family == "Exponential":
            k, sc = 1.0, float(x.mean())
            dist = stats.expon(scale=sc)
        else:
            msg = f"unknown family {family!r}; expected one of {FAMILIES}"
            raise ValueError(msg)
    except (RuntimeError, stats.FitError, FloatingPointError):
        return None
    if not (np.isfinite(k) and np.isfinite(sc) and k > 0 and sc > 0):
        return None
    return float(k), float(sc), dist


def _ks_statistic(sorted_x: np.ndarray, cdf) -> float:
    """One-sample Kolmogorov–Smirnov statistic ``sup |F_n − F|`` of a sorted sample (no p-value)."""
    n = sorted_x.size
    f = cdf(sorted_x)
    i = np.arange(1, n + 1)
    return float(max((i / n - f).max(), (f - (i - 1) / n).max()))


def _weibull_mle(x: np.ndarray) -> tuple[float, float]:
    """Weibull MLE with location 0: the shape solves the profile-likelihood equation
    ``Σ x^k ln x / Σ x^k − 1/k − mean(ln x) = 0`` (increasing in k; found by ``brentq``), then
    ``scale = mean(x^k)^(1/k)``. Same estimate as ``scipy.stats.weibull_min.fit(x, floc=0)``,
    an order of magnitude faster on large samples."""
    lx = np.log(x)
    mean_lx, top = float(lx.mean()), float(lx.max())
    shifted = lx - top  # x^k = e^{k·top} e^{k·shifted}; the common factor cancels in the ratio

    def g(k: float) -> float:
        w = np.exp(k * shifted)
        return float((w * lx).sum() / w.sum()) - 1.0 / k - mean_lx

    lo, hi = 1e-3, 1.0
    while g(hi) < 0 and hi < 1e4:
        hi *= 10.0
    if g(lo) > 0 or g(hi) < 0:
        raise RuntimeError("Weibull shape outside [1e-3, 1e4]")
    k = optimize.brentq(g, lo, hi, xtol=1e-10, rtol=1e-12)
    scale = math.exp(top + math.log(float(np.exp(k * shifted).mean())) / k)
    return k, scale


def fit_interarrivals(iat: np.ndarray, *, families: tuple[str, ...] = FAMILIES, criterion: str = "bic") -> FitResult:
    """Fit Gamma, Weibull and Exponential distributions to inter-arrival times by maximum likelihood.

    Location is fixed at 0 (``scipy.stats.<dist>.fit(x, floc=0)``; for the Weibull the same
    estimate by a root search of its profile-likelihood equation, which is much faster). Fitting runs on the gaps
    divided by their mean (scale-free, numerically safer) and the results are scaled back; the
    log-likelihood is that of the original gaps. Goodness of fit: ``loglik``, ``aic = 2p −
    2·loglik``, ``bic = p·ln n − 2·loglik`` (p = 2, or 1 for the exponential) and the
    Kolmogorov–Smirnov statistic ``ks``. ``best`` minimizes ``criterion`` (``"bic"`` by
    default: Gamma and Weibull both contain the exponential, so by AIC they beat it on truly
    exponential gaps about a third of the time; BIC's ``ln n`` penalty picks the exponential
    unless the extra shape parameter really pays). Non-positive or non-finite gaps are dropped
    and counted. Needs three positive gaps that are not all equal.
    """
    if criterion not in ("aic", "bic", "ks"):
        msg = f"criterion must be 'aic', 'bic' or 'ks', got {criterion!r}"
        raise ValueError(msg)
    x = np.asarray(iat, dtype=np.float64).ravel()
    good = np.isfinite(x) & (x > 0)
    dropped = int(x.size - good.sum())
    x = x[good]
    empty = pl.DataFrame(schema=FIT_SCHEMA)
    if x.size < 3:
        return FitResult(empty, None, int(x.size), dropped, criterion, reason=f"{x.size} positive gap(s); a fit needs at least 3")
    if np.ptp(x) <= 1e-12 * x.mean():
        return FitResult(empty, None, int(x.size), dropped, criterion, reason="all gaps are equal (deterministic arrivals); nothing to fit")
    mean = float(x.mean())
    z = x / mean
    z_sorted = np.sort(z)
    rows = []
    for fam in families:
        got = _fit_one(fam, z)
        if got is None:
            continue
        k, sc, dist = got
        ll = float(dist.logpdf(z).sum()) - x.size * math.log(mean)
        if not np.isfinite(ll):
            continue
        p = 1 if fam == "Exponential" else 2
        cv = float(implied_cv(fam, k))
        rows.append(
            {
                "family": fam,
                "shape": k,
                "scale": sc * mean,
                "mean_s": float(dist.mean()) * mean,
                "cv": cv if np.isfinite(cv) else None,
                "loglik": ll,
                "aic": 2 * p - 2 * ll,
                "bic": p * math.log(x.size) - 2 * ll,
                "ks": _ks_statistic(z_sorted, dist.cdf),
            }
        )
    if not rows:
        return FitResult(empty, None, int(x.size), dropped, criterion, reason="no family could be fitted to these gaps")
    table = pl.DataFrame(rows, schema=FIT_SCHEMA)
    best = table.sort(criterion, maintain_order=True)["family"][0]
    return FitResult(table, best, int(x.size), dropped, criterion)


def _recorded_dist(pattern: str, shape: float, scale: float):
    if pattern == "Gamma":
        return stats.gamma(shape, scale=scale)
    return stats.weibull_min(shape, scale=scale)


def interarrival_histogram(
    source: Source,
    client_id: str | None,
    start_s: int,
    *,
    window_s: int = 600,
    bins: int = 50,
    seed: int | np.random.Generator | None = 0,
    log_bins: bool = False,
    max_samples: int = 20_000,
) -> InterarrivalHistogram:
    """Inter-arrival histogram of one window with the densities of the fitted families.

    For a trace: the gaps between the requests of ``client_id`` (``None``: all clients merged)
    in ``[start_s, start_s + window_s)``. For a pool: the recorded window of ``client_id``
    starting at ``start_s`` (``window_s`` must be the pool's window length); as a pool holds no
    raw arrivals, the window's request count (at most ``max_samples``) of gaps is drawn from
    its recorded Gamma/Weibull distribution with ``seed``, and the densities show the recorded
    distribution (``"Recorded Gamma"``/``"Recorded Weibull"``) beside the refits.

    ``log_bins`` uses geometric bin edges from the smallest to the largest gap (useful for
    bursty windows); densities are evaluated on 200 points over the same range.
    """
    if bins < 1:
        msg = f"bins must be at least 1, got {bins}"
        raise ValueError(msg)
    check_positive("window_s", window_s)

    def empty(reason: str) -> InterarrivalHistogram:
        return InterarrivalHistogram(
            pl.DataFrame(schema=HIST_SCHEMA), pl.DataFrame(schema=DENSITY_SCHEMA), None, 0, is_pool(source), reason=reason
        )

    recorded = None
    if is_pool(source):
        if window_s != source.window_s:
            msg = f"window_s must be the pool's window length ({source.window_s} s), got {window_s}"
            raise ValueError(msg)
        if client_id is None:
            return empty("a pool records each client separately; choose a client")
        row = source.windows.filter((pl.col("client_id") == str(client_id)) & (pl.col("start_s") == start_s))
        if row.height == 0:
            return empty(f"client {client_id} has no arrival window starting at {start_s} s")
        r = row.row(0, named=True)
        if not (r["rate_rps"] > 0 and r["shape"] > 0 and r["scale"] > 0 and r["pattern"] in ("Gamma", "Weibull")):
            return empty(f"client {client_id} has no requests in the window starting at {start_s} s")
        n = min(max_samples, round(r["rate_rps"] * r["duration_s"]))
        rng = np.random.default_rng(seed)
        recorded = (r["pattern"], _recorded_dist(r["pattern"], r["shape"], r["scale"]))
        iat = recorded[1].rvs(size=max(n, 1), random_state=rng)
    else:
        need = ("client_id",) if client_id is not None else ()
        if reason := trace_no_data(source, *need):
            return empty(reason)
        cond = (pl.col("timestamp_s") >= start_s) & (pl.col("timestamp_s") < start_s + window_s)
        if client_id is not None:
            cond = cond & (pl.col("client_id") == str(client_id))
        ts = np.sort(source.filter(cond)["timestamp_s"].cast(pl.Float64).to_numpy())
        who = "all clients" if client_id is None else f"client {client_id}"
        if ts.size < 2:
            return empty(f"{who} sent {ts.size} request(s) in [{start_s}, {start_s + window_s}) s; a gap needs two")
        iat = np.diff(ts)
    fit = fit_interarrivals(iat)
    pos = iat[iat > 0]
    if pos.size == 0:
        return empty("every gap in this window is zero (simultaneous requests)")
    lo, hi = float(pos.min()), float(pos.max())
    if hi <= lo:
        hi = lo * 1.5
    if log_bins:
        edges = np.geomspace(lo, hi, bins + 1)
        grid = np.geomspace(lo, hi, 200)
    else:
        edges = np.linspace(0.0, hi, bins + 1)
        grid = np.linspace(0.0, hi, 201)[1:]
    counts, _ = np.histogram(pos if log_bins else iat, bins=edges)
    width = np.diff(edges)
    total = counts.sum()
    hist = pl.DataFrame(
        {
            "left_s": edges[:-1],
            "right_s": edges[1:],
            "count": counts.astype(np.int64),
            "density": counts / (total * width) if total else np.zeros(bins),
        },
        schema=HIST_SCHEMA,
    )
    curves = []
    dists = []
    if recorded is not None:
        dists.append((f"Recorded {recorded[0]}", recorded[1]))
    if fit.ok:
        for rowfit in fit.table.iter_rows(named=True):
            fam, k, sc = rowfit["family"], rowfit["shape"], rowfit["scale"]
            d = stats.gamma(k, scale=sc) if fam == "Gamma" else stats.weibull_min(k, scale=sc) if fam == "Weibull" else stats.expon(scale=sc)
            dists.append((fam, d))
    for name, d in dists:
        pdf = d.pdf(grid)
        ok = np.isfinite(pdf)
        curves.append(pl.DataFrame({"family": name, "iat_s": grid[ok], "pdf": pdf[ok]}, schema=DENSITY_SCHEMA))
    dens = pl.concat(curves) if curves else pl.DataFrame(schema=DENSITY_SCHEMA)
    return InterarrivalHistogram(hist, dens, fit, int(iat.size), recorded is not None)


# --------------------------------------------------------------------------------------------
# Recorded patterns (pools)
# --------------------------------------------------------------------------------------------


def _pool_only(source: Source) -> str | None:
    if not is_pool(source):
        return "arrival patterns are recorded only in a ClientPool; fit a chosen window of a trace with fit_interarrivals"
    return pool_no_data(source)


def pattern_shares(source: Source) -> Table:
    """Share of a pool's active windows (and of their requests) recorded as Gamma or Weibull.

    Columns ``pattern, windows, window_share, requests, request_share``. A trace has no
    recorded patterns (empty result with the reason).
    """
    schema = {
        "pattern": pl.String(),
        "windows": pl.Int64(),
        "window_share": pl.Float64(),
        "requests": pl.Float64(),
        "request_share": pl.Float64(),
    }
    if reason := _pool_only(source):
        return Table.empty(schema, reason)
    act = pool_load(source).filter(pl.col("rate_rps") > 0)
    out = (
        act.group_by("pattern")
        .agg(pl.len().alias("windows"), pl.col("requests").sum())
        .with_columns(
            (pl.col("windows") / pl.col("windows").sum()).alias("window_share"),
            (pl.col("requests") / pl.col("requests").sum()).alias("request_share"),
        )
        .sort("pattern")
        .select(list(schema))
        .cast(schema)
    )
    return Table(out)


def recorded_vs_implied_cv(source: Source) -> Table:
    """Each active window's recorded CV beside the CV implied by its fitted shape.

    Columns ``client_id, start_s, pattern, shape, requests, cv_recorded, cv_implied``;
    ``cv_implied`` is ``1/sqrt(k)`` for Gamma and ``sqrt(Γ(1+2/k)/Γ(1+1/k)² − 1)`` for Weibull
    (null where it overflows). Pools only.
    """
    schema = {
        "client_id": pl.String(),
        "start_s": pl.Int64(),
        "pattern": pl.String(),
        "shape": pl.Float64(),
        "requests": pl.Float64(),
        "cv_recorded": pl.Float64(),
        "cv_implied": pl.Float64(),
    }
    if reason := _pool_only(source):
        return Table.empty(schema, reason)
    act = pool_load(source).filter((pl.col("rate_rps") > 0) & (pl.col("shape") > 0))
    if act.height == 0:
        return Table.empty(schema, "no active window has a recorded shape")
    k = act["shape"].to_numpy()
    is_gamma = (act["pattern"] == "Gamma").to_numpy()
    implied = np.where(is_gamma, implied_cv("Gamma", k), implied_cv("Weibull", k))
    out = act.select(
        "client_id",
        "start_s",
        "pattern",
        "shape",
        "requests",
        pl.col("cv").alias("cv_recorded"),
        pl.Series("cv_implied", implied).fill_nan(None),
    ).with_columns(pl.when(pl.col("cv_implied").is_finite()).then(pl.col("cv_implied")).alias("cv_implied"))
    return Table(out.cast(schema))
