"""Sub-window arrival models beyond one renewal family: fit, select, sample.

A client-window is generated, as in :func:`servegen_core.renewal.circular_points`, in
*operational time*: it holds an exact count ``n`` and its ``n`` positions are fractions of the
window in ``[0, 1)``, laid as a stationary pattern round a circle of circumference ``n`` (the
window's mean gap is the unit) and rotated by a uniform random offset. This module adds models
whose successive gaps are *correlated* and a batch extension, with the same contract
(:func:`sample_positions`).

Models (one row of an :class:`ArrivalModelTable` per client-window; gap means in units of the
window's mean gap)
    ``gamma``, ``weibull``, ``exponential``
        i.i.d. unit-mean gaps of that family and ``shape`` (as :mod:`servegen_core.renewal`).
    ``empirical``
        i.i.d. gaps drawn from a gap table (see :func:`servegen_core.renewal.empirical_tables`).
    ``hyperexp`` and ``mmpp``: the two-state model
        A hidden two-state Markov chain over the gaps: a gap in state ``s`` is Gamma with mean
        ``mean_s`` and shape ``shape_s`` (shape 1: exponential, the Markov-modulated Poisson
        case), or drawn from the emission table ``state_table_s`` (unit mean, times
        ``mean_s``); the next gap stays in state ``s`` with probability ``stay_s``. State 0 is
        the fast state (``mean0 <= mean1``). ``hyperexp`` is the case ``stay0 + stay1 = 1``
        (states i.i.d., a two-phase hyper-exponential when both shapes are 1); ``mmpp`` has
        persistent states, so successive gaps are correlated (on/off traffic: runs of short
        gaps within bursts, long gaps between them). A path is drawn as alternating runs of
        geometric lengths, the first state from the chain's stationary distribution.
    Batch extension (any model): ``batch`` is the probability that a request arrives at the same
        instant as the previous one (a zero gap); the other gaps follow the model among
        themselves (a batch does not advance the hidden chain). Batch sizes are geometric.

Circle layout of a two-state window
    The ``n`` drawn gaps must go once round the circle (the count is exact). A renewal window
    rescales all its gaps by one factor (as ``circular_points``). A two-state window with a CV
    target (``cv``, set by :func:`rows_from_rate_cv`) is laid so that the ``n - 1`` gaps between
    its requests inside the window have exactly that CV (see :func:`sample_positions`). A
    two-state window without one (a trace fit) keeps its
    fast-state gaps as drawn and lets the slow-state gaps absorb the difference (so bursts keep
    their inner timing and the silences stretch or shrink). The draw is conditioned on the
    window's length: a window whose slow gaps would need stretching or shrinking by more than
    ``exp(MAX_SLOW_STRETCH)`` (1.25x, loosened with each redraw), that drew no slow gap, or
    whose fast gaps alone exceed the circle is redrawn (path and gaps) up to :data:`MAX_REDRAWS` times, keeping its
    best-fitting draw. The window's edge gap: a fit sees only the gaps between a window's
    requests, so the silence cut by the window's edges is never one of them (a window of
    on/off traffic holding one burst has no slow gap). A draw whose slow gaps cannot absorb
    the circle within the limit instead takes its last gap as the edge gap: the rest of the
    circle after its other gaps (kept as drawn), judged by ``|log(rest / g)|`` against a fresh
    slow gap ``g`` (a draw with no other slow gap only when no redraw fits), and the window's
    edge falls at a uniform fraction of it. If no draw fits either way, all its gaps are
    rescaled by one factor.

Fitting (:func:`fit_client_arrivals`)
    Per client, gaps are the differences of consecutive requests inside one window (as
    :func:`servegen_core.sources.fit.pool_from_trace`); each window is one sequence. The
    two-state model is fitted by EM (Baum-Welch) on all of a client's windows together
    (shared, client-level parameters), then every window with at least ``min_window_gaps``
    gaps is refitted by EM started from the shared parameters, with the shared parameters as a
    prior worth ``prior_gaps`` gaps (a window holds few silences, so its transition
    probabilities are shrunk toward the client's); other windows use the shared parameters.
    The forward-backward recursion is a log-depth (Hillis-Steele) parallel scan of normalized
    2x2 matrix products over every gap of every sequence at once (a sequence start is a
    rank-one reset matrix), never a Python loop per gap. After the fit, each gap is assigned
    its most probable state and, per client and state with at least
    :data:`MIN_STATE_TABLE_GAPS` gaps, the assigned gaps
    (each divided by its window's fitted mean of that state) become that state's emission
    table, so the shape of the gaps inside bursts is kept, not only their mean. Exact ties (zero gaps) are a batch
    only when the timestamps' resolution does not explain them (see
    :func:`batch_probability`); otherwise a zero gap is taken as half the resolution.

Selection (:func:`select_arrival_models`)
    Per client, every candidate (exponential, gamma, weibull, hyperexp, mmpp, empirical) is
    fitted on the even-numbered of its windows with gaps and scored by its log-likelihood on
    the odd-numbered ones; the held-out windows are then regenerated from each candidate with
    their exact counts and the index of dispersion of counts (:func:`count_dispersion`) at
    :data:`DISPERSION_SCALES_S` is compared with the held-out data. The chosen model is the
    simplest whose held-out log-likelihood is within a margin of the best among the models
    that pass the dispersion check and a KS check of the regenerated windows' gaps against the
    held-out ones; never the sample CV. ``fit_client_arrivals(...,
    model="auto")`` fits each client with its chosen model.

Pool data (:func:`rows_from_rate_cv`)
    A pool window gives only rate and CV. Each named sub-window option gets its parameters
    from the CV alone: ``gamma`` shape ``1/cv^2`` (today's and ServeGen's), ``weibull`` the
    shape with that CV, ``hyperexp`` a two-phase hyper-exponential with balanced means
    (``p * mean0 = (1 - p) * mean1``), ``mmpp`` the same marginal with persistent states (the
    lag-one correlation of the state, ``persistence``, is not determined by pool data; the
    default :data:`DEFAULT_MMPP_PERSISTENCE` comes from ``bench/arrival_models.py``). Two-state
    rows carry the window's CV as their target. A CV at most 1 has no hyper-exponential: those
    options fall back to ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl
from scipy import special, stats

from servegen_core.renewal import (
    MAX_SHAPE,
    MIN_GAMMA_SHAPE,
    MIN_WEIBULL_SHAPE,
    empirical_tables,
    gamma_shape_for_cv,
    weibull_shape_for_cv,
)

__all__ = [
    "DEFAULT_MMPP_PERSISTENCE",
    "DISPERSION_BAND",
    "DISPERSION_SCALES_S",
    "KINDS",
    "KS_CRIT",
    "KS_LIMIT",
    "MODEL_NAMES",
    "POOL_OPTIONS",
    "ArrivalFit",
    "ArrivalModelTable",
    "batch_probability",
    "count_dispersion",
    "fit_client_arrivals",
    "forward_loglik",
    "rows_from_rate_cv",
    "sample_positions",
    "select_arrival_models",
]

#: Model kind codes of :class:`ArrivalModelTable` (``gamma``/``weibull``/``exponential`` equal
#: :data:`servegen_core.renewal.GAMMA`/``WEIBULL``/``EXPONENTIAL``).
KINDS: dict[str, int] = {"gamma": 0, "weibull": 1, "exponential": 2, "hyperexp": 3, "mmpp": 4, "empirical": 5}
#: Candidate models of :func:`select_arrival_models`, simplest first.
MODEL_NAMES: tuple[str, ...] = ("exponential", "gamma", "weibull", "hyperexp", "mmpp", "empirical")
#: Named sub-window options for pool data (:func:`rows_from_rate_cv`).
POOL_OPTIONS: tuple[str, ...] = ("gamma", "weibull", "hyperexp", "mmpp")
#: Lag-one correlation of the hidden state of the ``mmpp`` pool option (see the module docstring).
DEFAULT_MMPP_PERSISTENCE = 0.7
#: Bin widths (s) of the multi-scale dispersion check.
DISPERSION_SCALES_S: tuple[float, ...] = (0.1, 1.0, 10.0, 60.0)
#: Accepted range of generated / source index of dispersion.
DISPERSION_BAND: tuple[float, float] = (0.8, 1.25)

#: A candidate's held-out gaps pass the selection's KS check below this KS distance, or when
#: not farther above the best candidate's than the two-sample KS test's 5 % critical distance
#: ``KS_CRIT * sqrt(1/m + 1/n)`` (see :func:`select_arrival_models`).
KS_LIMIT = 0.05
KS_CRIT = 1.358

#: Fewest bins of a scale for the dispersion check to use it.
MIN_DISPERSION_BINS = 30

_STAY_MIN, _STAY_MAX = 1e-9, 1.0 - 1e-9
_SHAPE_LO, _SHAPE_HI = 0.05, 200.0
MIN_STATE_TABLE_GAPS = 20


# --------------------------------------------------------------------------------------------
# The model table and the sampler
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrivalModelTable:
    """Per-row (client-window) arrival model parameters; every field an array of one length.

    ``kind`` codes are :data:`KINDS`. ``shape`` is the renewal shape (gamma/weibull);
    ``table`` the empirical gap table of an ``empirical`` row. Two-state rows use ``mean0``,
    ``mean1`` (gap means, unit = the window's mean gap), ``shape0``, ``shape1`` (Gamma shapes of
    the gaps per state), ``stay0``, ``stay1`` (probability that the next gap stays in the state)
    and ``state_table0``, ``state_table1`` (emission tables, -1 = Gamma), and ``cv`` (NaN = none:
    the CV the gaps between the window's requests are laid to, see :func:`sample_positions`).
    ``batch`` is the probability of a zero gap (any kind). ``tables`` holds the gap tables in the format of
    :func:`servegen_core.renewal.empirical_tables` (unit mean each), or ``None``.
    """

    kind: np.ndarray
    shape: np.ndarray
    mean0: np.ndarray
    mean1: np.ndarray
    shape0: np.ndarray
    shape1: np.ndarray
    stay0: np.ndarray
    stay1: np.ndarray
    batch: np.ndarray
    table: np.ndarray
    state_table0: np.ndarray
    state_table1: np.ndarray
    cv: np.ndarray
    tables: dict | None = None

    def __len__(self) -> int:
        return len(self.kind)

    @staticmethod
    def make(n_rows: int, kind: str | np.ndarray, **columns: np.ndarray | float) -> ArrivalModelTable:
        """A table of ``n_rows`` rows of ``kind`` (a name or codes); unnamed columns get neutral
        values (shape 1, means 1, stays 0.5, batch 0, no CV target, no tables)."""
        code = np.full(n_rows, KINDS[kind], dtype=np.int8) if isinstance(kind, str) else np.asarray(kind, dtype=np.int8)
        tables = columns.pop("tables", None)
        base: dict[str, np.ndarray] = {}
        for f in fields(ArrivalModelTable):
            if f.name in ("kind", "tables"):
                continue
            integer = f.name in ("table", "state_table0", "state_table1")
            default = -1 if integer else {"batch": 0.0, "cv": np.nan}.get(f.name, 0.5 if f.name.startswith("stay") else 1.0)
            value = columns.pop(f.name, default)
            base[f.name] = np.broadcast_to(np.asarray(value, dtype=np.int64 if integer else np.float64), (n_rows,)).copy()
        if columns:
            msg = f"unknown ArrivalModelTable columns: {sorted(columns)}"
            raise ValueError(msg)
        return ArrivalModelTable(kind=code, tables=tables, **base)

    @staticmethod
    def concat(parts: list[ArrivalModelTable]) -> ArrivalModelTable:
        """The rows of ``parts`` one after the other; their gap tables are merged (table ids
        renumbered)."""
        if not parts:
            msg = "concat needs at least one table"
            raise ValueError(msg)
        gaps, sizes, shift = [], [], []
        n_tables = 0
        for part in parts:
            shift.append(n_tables)
            if part.tables is not None:
                gaps.append(np.asarray(part.tables["gaps"], dtype=np.float64))
                sizes.append(np.asarray(part.tables["sizes"], dtype=np.int64))
                n_tables += len(part.tables["sizes"])
        values: dict[str, np.ndarray] = {}
        for f in fields(ArrivalModelTable):
            if f.name == "tables":
                continue
            cols = []
            for part, k in zip(parts, shift):
                col = getattr(part, f.name)
                if f.name in ("table", "state_table0", "state_table1"):
                    col = np.where(col >= 0, col + k, -1)
                cols.append(col)
            values[f.name] = np.concatenate(cols)
        tables = None
        if sizes:
            flat = np.concatenate(gaps)
            size = np.concatenate(sizes)
            tables = {
                "gaps": flat,
                "offsets": np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64),
                "sizes": size,
                "cum": np.cumsum(flat),
            }
        return ArrivalModelTable(tables=tables, **values)

    def take(self, rows: np.ndarray) -> ArrivalModelTable:
        """The rows ``rows`` (indices or mask), sharing the gap tables."""
        values = {f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name != "tables"}
        return ArrivalModelTable(tables=self.tables, **values)


def _stationary0(stay0: np.ndarray, stay1: np.ndarray) -> np.ndarray:
    """Stationary probability of state 0 of the two-state chain."""
    leave0, leave1 = 1.0 - stay0, 1.0 - stay1
    return leave1 / np.maximum(leave0 + leave1, 1e-300)


def _draw_table(rng: np.random.Generator, tables: dict, table: np.ndarray) -> np.ndarray:
    """One unit-mean gap from table ``table[i]`` for each entry."""
    off, size = tables["offsets"][table], tables["sizes"][table]
    idx = off + np.minimum((rng.random(len(table)) * size).astype(np.int64), np.maximum(size - 1, 0))
    return tables["gaps"][idx]


def _two_state_path(rng: np.random.Generator, m: np.ndarray, stay0: np.ndarray, stay1: np.ndarray) -> np.ndarray:
    """States (0/1) of ``m[r]`` successive gaps per row, as alternating geometric runs."""
    total = int(m.sum())
    rows = len(m)
    start = (rng.random(rows) >= _stationary0(stay0, stay1)).astype(np.int64)
    mean_cycle = 1.0 / (1.0 - stay0) + 1.0 / (1.0 - stay1)
    k = np.where(m > 0, np.ceil(2.0 * m / mean_cycle * 1.5 + 8.0), 0).astype(np.int64)
    k = np.minimum(k, m + 2)
    # draw runs; rows whose runs do not cover their gaps draw more (rare), appended per row
    run_row = np.repeat(np.arange(rows), k)
    first = np.concatenate([[0], np.cumsum(k)[:-1]])
    run_k = np.arange(int(k.sum())) - first[run_row]
    run_state = (start[run_row] + run_k) % 2
    leave = np.where(run_state == 0, 1.0 - stay0[run_row], 1.0 - stay1[run_row])
    lengths = rng.geometric(np.clip(leave, 1e-12, 1.0)).astype(np.int64)
    covered = np.bincount(run_row, weights=lengths, minlength=rows)
    short = covered < m
    while short.any():
        # extra runs for the uncovered rows continue the alternation
        extra_k = np.where(short, k, 0)
        e_row = np.repeat(np.arange(rows), extra_k)
        e_first = np.concatenate([[0], np.cumsum(extra_k)[:-1]])
        done_k = np.bincount(run_row, minlength=rows)
        e_k = np.arange(int(extra_k.sum())) - e_first[e_row] + done_k[e_row]
        e_state = (start[e_row] + e_k) % 2
        e_leave = np.where(e_state == 0, 1.0 - stay0[e_row], 1.0 - stay1[e_row])
        e_len = rng.geometric(np.clip(e_leave, 1e-12, 1.0)).astype(np.int64)
        order = np.argsort(np.concatenate([run_row, e_row]), kind="stable")
        run_row = np.concatenate([run_row, e_row])[order]
        run_state = np.concatenate([run_state, e_state])[order]
        lengths = np.concatenate([lengths, e_len])[order]
        covered = np.bincount(run_row, weights=lengths, minlength=rows)
        short = covered < m
    if total == 0:
        return np.empty(0, dtype=np.int64)
    # each run cut to the gaps its row has left, then expanded (runs are in row order)
    row_first_run = np.concatenate([[0], np.cumsum(np.bincount(run_row, minlength=rows))[:-1]])
    csum = np.cumsum(lengths)
    before = np.where(row_first_run > 0, csum[np.maximum(row_first_run - 1, 0)], 0)
    within = csum - before[run_row]
    cap = m[run_row]
    used = np.minimum(within, cap) - np.minimum(within - lengths, cap)
    return np.repeat(run_state, used)


#: Most redraws of a two-state window (see :func:`sample_positions`).
MAX_REDRAWS = 6
#: A two-state draw without a CV target is kept when its slow gaps need stretching or
#: shrinking by at most this factor (as ``|log factor|``) to fill the window; redraw ``i``
#: (from 0) accepts ``(1 + i / 4)`` times as much, so a window of a persistent chain, whose slow
#: share varies widely between draws, is settled after a few draws.
MAX_SLOW_STRETCH = float(np.log(1.25))
#: A two-state draw with a CV target is kept when the ratio of its slow to its fast scale
#: factor (:func:`_cv_ratio`) is within this factor of 1 (as ``|log ratio|``); loosened like
#: :data:`MAX_SLOW_STRETCH`.
MAX_CV_RATIO = float(np.log(2.0))
#: Bound on the slow / fast scale ratio of a two-state window laid to a CV target.
CV_RATIO_LIMIT = 1e3


def _cv_ratio(
    fast_sum: np.ndarray, slow_sum: np.ndarray, fast_sq: np.ndarray, slow_sq: np.ndarray, count: np.ndarray, cv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ratio ``r`` of the slow gaps' scale factor to the fast gaps' that gives ``count``
    gaps (fast gaps with sum ``fast_sum`` and sum of squares ``fast_sq``, slow ones likewise,
    any others zero) the population CV ``cv``, and whether one exists.

    The CV of the scaled gaps depends only on ``r``: ``count * (fast_sq + r^2 slow_sq) =
    (1 + cv^2) (fast_sum + r slow_sum)^2``, a quadratic in ``r``; of its positive roots the one
    nearest 1 (in ``|log r|``) is taken. Without one, ``r`` is the ratio whose CV is nearest the
    target: the quadratic's vertex when the target is below every reachable CV, else the bound
    :data:`CV_RATIO_LIMIT` (or its inverse) on the side of the larger CV."""
    k = (1.0 + cv * cv) / np.maximum(count, 1.0)
    a = slow_sq - k * slow_sum * slow_sum
    b = -2.0 * k * fast_sum * slow_sum
    c = fast_sq - k * fast_sum * fast_sum
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    q = 0.5 * (root - b)  # b <= 0: the stable form of the quadratic formula
    with np.errstate(divide="ignore", invalid="ignore"):
        r1, r2 = q / a, c / q
        cand = np.stack([r1, r2])
        good = np.isfinite(cand) & (cand > 0) & (disc >= 0)
        dist = np.where(good, np.abs(np.log(np.where(good, cand, 1.0))), np.inf)
        pick = np.take_along_axis(cand, np.argmin(dist, axis=0)[None, :], axis=0)[0]
        vertex = slow_sum * fast_sq / (fast_sum * slow_sq)
        high_end = np.where(slow_sq * fast_sum**2 > fast_sq * slow_sum**2, CV_RATIO_LIMIT, 1.0 / CV_RATIO_LIMIT)
        low = disc < 0
    ok = good.any(axis=0) & (fast_sum > 0) & (slow_sum > 0)
    r = np.where(ok, pick, np.where(low, vertex, high_end))
    r = np.where(np.isfinite(r) & (r > 0), r, 1.0)
    return np.clip(r, 1.0 / CV_RATIO_LIMIT, CV_RATIO_LIMIT), ok


def _both_states(
    rng: np.random.Generator,
    state: np.ndarray,
    local: np.ndarray,
    m: np.ndarray,
    aim: np.ndarray,
    stay0: np.ndarray,
    stay1: np.ndarray,
) -> np.ndarray:
    """``state`` (paths of ``m[r]`` gaps, row ``local``) with a run of the missing state put in
    every ``aim`` row of at least two gaps whose path has only one state: a window with a CV
    target above 1 holds gaps of both states, and a persistent chain whose rare state's runs
    are far apart would seldom draw one. The run starts at a uniform gap of the row and has
    the missing state's geometric length (cut at the row's end), as the first visit of a chain
    conditioned on visiting does when visits are rare."""
    rows = len(m)
    slow_n = np.bincount(local, weights=state, minlength=rows)
    missing = np.where(slow_n == 0, 1, np.where(slow_n == m, 0, -1))
    fix = aim & (missing >= 0) & (m >= 2)
    begin = np.minimum((rng.random(rows) * m).astype(np.int64), np.maximum(m - 1, 0))
    leave = np.where(missing == 1, 1.0 - stay1, 1.0 - stay0)
    length = rng.geometric(np.clip(leave, 1e-12, 1.0))
    # keep one gap of the present state
    length = np.minimum(length, np.maximum(m - 1, 1))
    begin = np.minimum(begin, m - length)
    if not fix.any():
        return state
    within = np.arange(len(local)) - np.concatenate([[0], np.cumsum(m)[:-1]])[local]
    put = fix[local] & (within >= begin[local]) & (within < begin[local] + length[local])
    out = state.copy()
    out[put] = missing[local[put]]
    return out


def _state_gaps(rng: np.random.Generator, state: np.ndarray, row: np.ndarray, table: ArrivalModelTable) -> np.ndarray:
    """One gap (unit: the window's mean gap) of state ``state[i]`` of row ``row[i]`` each: from
    the state's emission table where it has one, else Gamma (exponential at shape 1)."""
    mean = np.where(state == 0, table.mean0[row], table.mean1[row])
    shp = np.clip(np.where(state == 0, table.shape0[row], table.shape1[row]), MIN_GAMMA_SHAPE, MAX_SHAPE)
    tab = np.where(state == 0, table.state_table0[row], table.state_table1[row])
    x = np.empty(len(row))
    use = tab >= 0
    expo = ~use & (shp == 1.0)
    gam = ~use & ~expo
    if expo.any():
        x[expo] = rng.standard_exponential(int(expo.sum()))
    if gam.any():
        x[gam] = rng.standard_gamma(shp[gam]) / shp[gam]
    if use.any():
        x[use] = _draw_table(rng, table.tables, tab[use])
    return x * mean


def _edge_gap(
    rng: np.random.Generator,
    x: np.ndarray,
    state: np.ndarray,
    misfit: np.ndarray,
    local: np.ndarray,
    mm: np.ndarray,
    nt: np.ndarray,
    aim: np.ndarray,
    todo: np.ndarray,
    table: ArrivalModelTable,
    limit: np.ndarray,
    attempt: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One draw of :func:`_two_state_gaps` (gaps ``x``, states, per-row ``misfit``) with the
    edge gap put in the rows without a CV target whose slow gaps do not fit (see the module
    docstring): their last gap becomes the rest of the circle after the others, judged by
    ``|log(rest / g)|`` against a fresh slow gap ``g`` (a draw with no other slow gap scores
    just above the loosest limit, so that only the last redraw keeps it). Returns the gaps,
    states, misfits and which rows took the edge gap."""
    slow = state == 1
    last = np.zeros(len(local), dtype=bool)
    last[np.cumsum(mm) - 1] = True
    inner = np.bincount(local, weights=np.where(last, 0.0, x), minlength=todo.size)
    inner_slow = np.bincount(local, weights=slow & ~last, minlength=todo.size)
    rest = nt - inner
    slow_gap = np.ones(todo.size)
    if (~aim).any():
        slow_gap[~aim] = _state_gaps(rng, np.ones(int((~aim).sum()), dtype=np.int64), todo[~aim], table)
    loosest = limit[todo] * (1.0 + MAX_REDRAWS / 4.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        edge_fit = np.where(rest > 0, np.where(inner_slow == 0, loosest * 1.001, np.abs(np.log(rest / slow_gap))), np.inf)
    use_edge = ~aim & (misfit > limit[todo] * (1.0 + attempt / 4.0)) & (edge_fit < misfit)
    misfit = np.where(use_edge, edge_fit, misfit)
    put = last & use_edge[local]
    x = np.where(put, rest[local], x)
    state = np.where(put, 1, state)
    return x, state, misfit, use_edge


def _two_state_gaps(
    rng: np.random.Generator, m: np.ndarray, n: np.ndarray, table: ArrivalModelTable
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaps (unit: the window's mean gap) and states of ``m[r]`` positive gaps per row.

    The draw is conditioned on the window. A row without a CV target: the slow gaps absorb
    the difference between the circle (``n[r]``) and the fast gaps, so a row whose slow gaps
    would need a factor beyond ``exp(MAX_SLOW_STRETCH)``, that drew no slow gap, or whose fast
    gaps alone exceed the circle, is redrawn. A row with a CV target (``table.cv``): a row that
    drew no gap of one state or cannot reach the CV with a slow / fast scale ratio within
    ``exp(MAX_CV_RATIO)`` (:func:`_cv_ratio`) is redrawn. Both limits grow by a quarter with
    each redraw; at most :data:`MAX_REDRAWS` redraws (path and gaps, of the rows still open
    only), keeping a row's best-fitting draw. A row without a CV target whose slow gaps do not
    fit may take its last gap as the edge gap (the module docstring); the third array flags
    the rows kept so (their last gap is the edge gap, state 1)."""
    rows = len(m)
    stay0 = np.clip(table.stay0, _STAY_MIN, _STAY_MAX)
    stay1 = np.clip(table.stay1, _STAY_MIN, _STAY_MAX)
    offsets = np.concatenate([[0], np.cumsum(m)[:-1]])
    gaps = np.empty(int(m.sum()))
    states = np.empty(int(m.sum()), dtype=np.int64)
    target = np.isfinite(table.cv) & (n >= 3)
    limit = np.where(target, MAX_CV_RATIO, MAX_SLOW_STRETCH)
    todo = np.flatnonzero(m > 0)
    best = np.full(rows, np.inf)
    edged = np.zeros(rows, dtype=bool)
    for attempt in range(MAX_REDRAWS + 1):
        if todo.size == 0:
            break
        mm = m[todo]
        state = _two_state_path(rng, mm, stay0[todo], stay1[todo])
        local = np.repeat(np.arange(todo.size), mm)
        aim = target[todo]
        if aim.any():
            state = _both_states(rng, state, local, mm, aim, stay0[todo], stay1[todo])
        r2 = todo[local]
        x = _state_gaps(rng, state, r2, table)
        slow = state == 1
        slow_sum = np.bincount(local, weights=np.where(slow, x, 0.0), minlength=todo.size)
        fast_sum = np.bincount(local, weights=np.where(slow, 0.0, x), minlength=todo.size)
        nt = n[todo].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            misfit = np.where((slow_sum > 0) & (fast_sum < nt), np.abs(np.log((nt - fast_sum) / slow_sum)), np.inf)
        # a row without a CV target whose slow gaps cannot absorb the circle: its last gap
        # becomes the edge gap, the rest of the circle, judged against a fresh slow gap
        use_edge = np.zeros(todo.size, dtype=bool)
        if not aim.all():
            x, state, misfit, use_edge = _edge_gap(rng, x, state, misfit, local, mm, nt, aim, todo, table, limit, attempt)
        if aim.any():
            x2 = x * x
            slow_sq = np.bincount(local, weights=np.where(slow, x2, 0.0), minlength=todo.size)
            fast_sq = np.bincount(local, weights=np.where(slow, 0.0, x2), minlength=todo.size)
            ratio, ok = _cv_ratio(fast_sum, slow_sum, fast_sq, slow_sq, nt, table.cv[todo])
            misfit = np.where(aim, np.where(ok, np.abs(np.log(ratio)), np.inf), misfit)
        # keep a row's draw when it fits better than its previous ones
        better = (misfit < best[todo]) | ~np.isfinite(best[todo])
        take = better[local]
        within = np.arange(len(r2)) - np.concatenate([[0], np.cumsum(mm)[:-1]])[local]
        dst = (offsets[r2] + within)[take]
        gaps[dst] = x[take]
        states[dst] = state[take]
        best[todo] = np.where(better, misfit, best[todo])
        edged[todo] = np.where(better, use_edge, edged[todo])
        todo = todo[best[todo] > limit[todo] * (1.0 + attempt / 4.0)]
    return gaps, states, edged


def _cut_gap(cum: np.ndarray, before_row: np.ndarray, within: np.ndarray, starts: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row, the index of the gap where the row's cumulative gap length ``cum`` (global,
    ``before_row`` before the row) passes ``within``; a gap of zero length is never chosen."""
    cut = np.clip(np.searchsorted(cum, before_row + within, side="right"), starts, np.maximum(starts + n - 1, 0))
    return np.where(n > 0, cut, 0)


def sample_positions(rng: np.random.Generator, counts: np.ndarray, table: ArrivalModelTable) -> np.ndarray:
    """Positions (fractions of the window, in ``[0, 1)``) of ``counts[i]`` points for row ``i``.

    Positions are concatenated row by row, in drawn (circular, not sorted) order, exactly
    ``counts[i]`` per row. Draws, in this order: the zero-gap (batch) flags of all gaps, the
    renewal gaps, the two-state paths and their gaps, the empirical draws, one uniform offset
    per row, then, for two-state rows with a CV target, one uniform per row choosing where the
    window's edge cuts the circle. Every step is vectorized over all rows and gaps.

    Circle layout: renewal and empirical rows rescale all gaps by one factor; two-state rows
    without a CV target keep their fast gaps and scale the slow ones to fill the circle (or, when
    they cannot, close it with an edge gap holding the window's edge, see the module docstring). A
    two-state row with a CV target ``table.cv`` (and at least 3 points) is laid so that the
    ``counts[i] - 1`` gaps between its points inside the window have exactly that population
    CV: the window's edge falls in a gap chosen with probability proportional to its length
    (as a uniform rotation would), at the offset's fraction of it; the other gaps' CV fixes the
    slow / fast scale ratio (:func:`_cv_ratio`) and the circle's length the common factor.
    """
    n = np.asarray(counts, dtype=np.int64)
    rows = len(n)
    if len(table) != rows:
        msg = f"counts has {rows} rows but the model table has {len(table)}"
        raise ValueError(msg)
    if (n < 0).any():
        msg = "counts must be >= 0"
        raise ValueError(msg)
    total = int(n.sum())
    row_of = np.repeat(np.arange(rows), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    first = np.zeros(total, dtype=bool)
    first[starts[n > 0]] = True
    zero = (rng.random(total) < table.batch[row_of]) & ~first
    m = n - np.bincount(row_of[zero], minlength=rows)
    prow = np.repeat(np.arange(rows), m)
    kind = table.kind[prow]
    pos_gaps = np.empty(len(prow), dtype=np.float64)
    slow = np.ones(len(prow), dtype=bool)
    g = kind == KINDS["gamma"]
    if g.any():
        k = np.clip(table.shape[prow[g]], MIN_GAMMA_SHAPE, MAX_SHAPE)
        pos_gaps[g] = rng.standard_gamma(k) / k
    w = kind == KINDS["weibull"]
    if w.any():
        k = np.clip(table.shape[prow[w]], MIN_WEIBULL_SHAPE, MAX_SHAPE)
        pos_gaps[w] = rng.weibull(k) * np.exp(-special.gammaln(1.0 + 1.0 / k))
    e = kind == KINDS["exponential"]
    if e.any():
        pos_gaps[e] = rng.standard_exponential(int(e.sum()))
    two_rows = (table.kind == KINDS["hyperexp"]) | (table.kind == KINDS["mmpp"])
    two = two_rows[prow]
    if two.any():
        x, state, edged = _two_state_gaps(rng, np.where(two_rows, m, 0), n, table)
        pos_gaps[two] = x
        slow[two] = state == 1
    em = kind == KINDS["empirical"]
    if em.any():
        pos_gaps[em] = _draw_table(rng, table.tables, table.table[prow[em]])
    offset = rng.random(rows)
    if total == 0:
        return np.empty(0)
    if not two.any():
        edged = np.zeros(rows, dtype=bool)
    gaps = np.zeros(total)
    gaps[~zero] = pos_gaps
    is_slow = np.zeros(total, dtype=bool)
    is_slow[~zero] = slow
    s_slow = np.bincount(row_of, weights=np.where(is_slow, gaps, 0.0), minlength=rows)
    s_all = np.bincount(row_of, weights=gaps, minlength=rows)
    s_fast = s_all - s_slow
    target = n.astype(np.float64)
    aimed = two_rows & np.isfinite(table.cv) & (n >= 3)
    # two-state rows without a CV target: fast gaps kept, slow gaps absorb the difference
    absorb = (s_slow > 0) & (s_fast < target) & two_rows & ~aimed
    with np.errstate(divide="ignore", invalid="ignore"):
        f_slow = np.where(absorb, (target - s_fast) / s_slow, target / s_all)
        f_fast = np.where(absorb, 1.0, target / s_all)
    cut = np.zeros(rows, dtype=np.int64)
    if aimed.any():
        # the gap the window's edge cuts, then the ratio from the other gaps. The edge falls in a
        # gap with probability proportional to its length as laid out (a stationary process
        # seen from a fixed instant), not as drawn: weights are the gaps scaled by the ratio of
        # the whole circle, so a cut does not land in a burst more often than time spent in one
        sq = gaps * gaps
        q_slow = np.bincount(row_of, weights=np.where(is_slow, sq, 0.0), minlength=rows)
        q_fast = np.bincount(row_of, weights=sq, minlength=rows) - q_slow
        ratio_all, _ = _cv_ratio(s_fast, s_slow, q_fast, q_slow, target, table.cv)
        laid = gaps * np.where(is_slow, ratio_all[row_of], 1.0)
        cum = np.cumsum(laid)
        before_row = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
        u_cut = rng.random(rows)
        s_laid = np.bincount(row_of, weights=laid, minlength=rows)
        cut = _cut_gap(cum, before_row, u_cut * s_laid, starts, n)
        cut_slow = is_slow[cut]
        # a row whose only gap of one state would be cut: its edge falls in the other state
        positive = gaps > 0
        n_slow = np.bincount(row_of, weights=is_slow & positive, minlength=rows)
        n_fast = np.bincount(row_of, weights=~is_slow & positive, minlength=rows)
        for state_slow, alone in ((False, aimed & cut_slow & (n_slow <= 1)), (True, aimed & ~cut_slow & (n_fast <= 1))):
            if alone.any():
                w_state = np.where(is_slow == state_slow, gaps, 0.0)
                c_state = np.cumsum(w_state)
                b_state = np.where(starts > 0, c_state[np.maximum(starts - 1, 0)], 0.0)
                s_state = s_slow if state_slow else s_fast
                other = _cut_gap(c_state, b_state, u_cut * s_state, starts, n)
                cut = np.where(alone & (s_state > 0), other, cut)
        cut_gap = gaps[cut]
        cut_slow = is_slow[cut]
        ratio, _ = _cv_ratio(
            s_fast - np.where(cut_slow, 0.0, cut_gap), s_slow - np.where(cut_slow, cut_gap, 0.0),
            q_fast - np.where(cut_slow, 0.0, cut_gap * cut_gap), q_slow - np.where(cut_slow, cut_gap * cut_gap, 0.0),
            target - 1.0, table.cv,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            common = target / (s_fast + ratio * s_slow)
        f_fast = np.where(aimed, common, f_fast)
        f_slow = np.where(aimed, common * ratio, f_slow)
    bad = ~(np.isfinite(f_slow) & np.isfinite(f_fast) & (f_slow > 0) & (f_fast > 0)) & (n > 0)
    y = gaps * np.where(is_slow, f_slow[row_of], f_fast[row_of]) / np.maximum(target[row_of], 1.0)
    if bad.any():
        even = bad[row_of]
        y[even] = 1.0 / target[row_of[even]]
    cs = np.cumsum(y)
    before = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
    lead = cs - y - before[row_of]  # each point's distance round the circle from the row's first
    if edged.any():
        # a two-state row without a CV target: the window's edge is in its edge gap (its last)
        last_positive = np.flatnonzero(~zero)[np.maximum(np.cumsum(m) - 1, 0)]
        cut = np.where(edged, last_positive, cut)
    if aimed.any() or edged.any():
        # the window's edge at the offset's fraction of the cut gap
        edge = lead[cut] + offset * y[cut]
        offset = np.where((aimed | edged) & ~bad, -edge, offset)
    pos = lead + offset[row_of]
    pos -= np.floor(pos)
    return np.minimum(np.maximum(pos, 0.0), np.nextafter(1.0, 0.0))


# --------------------------------------------------------------------------------------------
# Pool data: parameters from (rate, CV)
# --------------------------------------------------------------------------------------------


def rows_from_rate_cv(
    option: str, rate_rps: np.ndarray, cv: np.ndarray, *, persistence: float = DEFAULT_MMPP_PERSISTENCE
) -> ArrivalModelTable:
    """Model rows of the sub-window ``option`` (:data:`POOL_OPTIONS`) for windows with
    ``rate_rps`` and ``cv``. Only the CV shapes a row (the rate is the window's count, kept
    exact by the sampler); a zero rate gives a neutral row. ``persistence`` is the lag-one
    correlation of the ``mmpp`` state (0 = ``hyperexp``). Two-state rows carry ``cv`` as their
    target: :func:`sample_positions` lays each window so that the gaps between its requests
    have exactly that CV (a window holds few slow gaps, so a free draw's CV scatters widely
    below the marginal's; the renewal options reach it on average by their shape)."""
    if option not in POOL_OPTIONS:
        msg = f"unknown sub-window option {option!r}; expected one of {', '.join(POOL_OPTIONS)}"
        raise ValueError(msg)
    if not 0.0 <= persistence < 1.0:
        msg = f"persistence must be in [0, 1), got {persistence!r}"
        raise ValueError(msg)
    cv = np.asarray(cv, dtype=np.float64)
    rate = np.broadcast_to(np.asarray(rate_rps, dtype=np.float64), cv.shape)
    cv = np.where(np.isfinite(cv) & (cv > 0) & (rate > 0), cv, 1.0)
    rows = len(cv)
    if option == "gamma":
        return ArrivalModelTable.make(rows, "gamma", shape=gamma_shape_for_cv(cv))
    if option == "weibull":
        return ArrivalModelTable.make(rows, "weibull", shape=weibull_shape_for_cv(cv))
    c2 = cv * cv
    hyper = c2 > 1.0 + 1e-9
    p = 0.5 * (1.0 + np.sqrt(np.maximum(c2 - 1.0, 0.0) / (c2 + 1.0)))  # share of fast gaps
    rho = 0.0 if option == "hyperexp" else persistence
    stay0 = p + rho * (1.0 - p)
    stay1 = (1.0 - p) + rho * p
    kind = np.where(hyper, KINDS[option], KINDS["gamma"])
    return ArrivalModelTable.make(
        rows,
        kind,
        shape=gamma_shape_for_cv(cv),
        mean0=np.where(hyper, 0.5 / p, 1.0),
        mean1=np.where(hyper, 0.5 / (1.0 - p), 1.0),
        stay0=np.where(hyper, stay0, 0.5),
        stay1=np.where(hyper, stay1, 0.5),
        cv=np.where(hyper, cv, np.nan),
    )


# --------------------------------------------------------------------------------------------
# Count dispersion
# --------------------------------------------------------------------------------------------


def count_dispersion(times_s: np.ndarray, bin_s: float, *, start_s: float | None = None, end_s: float | None = None) -> float:
    """Index of dispersion (population variance / mean) of request counts in bins of ``bin_s``.

    Bins tile ``[start_s, end_s)`` (default: first to last time) from ``start_s``; only whole
    bins count. NaN with fewer than two whole bins or no request in them.
    """
    if not bin_s > 0:
        msg = f"bin_s must be > 0, got {bin_s!r}"
        raise ValueError(msg)
    t = np.asarray(times_s, dtype=np.float64)
    if t.size == 0:
        return float("nan")
    lo = float(t.min()) if start_s is None else float(start_s)
    hi = float(t.max()) if end_s is None else float(end_s)
    n_bins = int(np.floor((hi - lo) / bin_s + 1e-9))
    if n_bins < 2:
        return float("nan")
    b = np.floor((t - lo) / bin_s).astype(np.int64)
    b = b[(b >= 0) & (b < n_bins)]
    c = np.bincount(b, minlength=n_bins).astype(np.float64)
    mean = c.mean()
    return float(c.var() / mean) if mean > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Forward-backward by parallel scan
# --------------------------------------------------------------------------------------------


def _scan(m: list[np.ndarray], *, reverse: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Inclusive prefix (or, ``reverse``, suffix) products of 2x2 matrices ``m = [m00, m01,
    m10, m11]`` (arrays over the gaps), each normalized to sum 1, and the log of the
    normalizers. Hillis-Steele: ``log2(N)`` vectorized steps."""
    a, b, c, d = (x.copy() for x in m)
    ls = np.zeros(len(a))
    size = len(a)
    step = 1
    while step < size:
        if reverse:
            # Q[t] <- Q[t] @ Q[t + step]
            l0, l1, l2, l3 = a[:-step], b[:-step], c[:-step], d[:-step]
            r0, r1, r2, r3 = a[step:], b[step:], c[step:], d[step:]
            dst = slice(0, size - step)
            lsn = ls[:-step] + ls[step:]
        else:
            # P[t] <- P[t - step] @ P[t]
            l0, l1, l2, l3 = a[:-step], b[:-step], c[:-step], d[:-step]
            r0, r1, r2, r3 = a[step:], b[step:], c[step:], d[step:]
            dst = slice(step, size)
            lsn = ls[:-step] + ls[step:]
        n0 = l0 * r0 + l1 * r2
        n1 = l0 * r1 + l1 * r3
        n2 = l2 * r0 + l3 * r2
        n3 = l2 * r1 + l3 * r3
        s = np.maximum(n0 + n1 + n2 + n3, 1e-300)
        a[dst], b[dst], c[dst], d[dst] = n0 / s, n1 / s, n2 / s, n3 / s
        ls[dst] = lsn + np.log(s)
        step *= 2
    return [a, b, c, d], ls


def _gamma_logpdf(x: np.ndarray, logx: np.ndarray, mean: np.ndarray, shape: np.ndarray) -> np.ndarray:
    rate = shape / mean
    return shape * np.log(rate) - special.gammaln(shape) + (shape - 1.0) * logx - rate * x


def _forward_backward(
    x: np.ndarray, logx: np.ndarray, start: np.ndarray, p: dict[str, np.ndarray], *, posteriors: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """E-step of the two-state model over all sequences at once (per-gap parameters ``p``).

    Returns the cumulative log-likelihood at every gap (differences at sequence ends give
    each sequence's log-likelihood), the per-gap log emission normalizer (included), the
    state-0 posterior per gap and the expected transitions ``xi`` (shape (4, N); zero at
    sequence starts)."""
    lb0 = _gamma_logpdf(x, logx, p["mean0"], p["shape0"])
    lb1 = _gamma_logpdf(x, logx, p["mean1"], p["shape1"])
    cmax = np.maximum(lb0, lb1)
    b0, b1 = np.exp(lb0 - cmax), np.exp(lb1 - cmax)
    s0, s1 = p["stay0"], p["stay1"]
    pi0 = _stationary0(s0, s1)
    a00 = np.where(start, pi0, s0)
    a01 = np.where(start, 1.0 - pi0, 1.0 - s0)
    a10 = np.where(start, pi0, 1.0 - s1)
    a11 = np.where(start, 1.0 - pi0, s1)
    m = [a00 * b0, a01 * b1, a10 * b0, a11 * b1]
    fwd, lsf = _scan(m, reverse=False)
    alpha0, alpha1 = fwd[0] + fwd[2], fwd[1] + fwd[3]
    cum_ll = np.log(0.5 * (alpha0 + alpha1)) + lsf + np.cumsum(cmax)
    if not posteriors:
        return cum_ll, cmax, None, None
    tot = alpha0 + alpha1
    alpha0, alpha1 = alpha0 / tot, alpha1 / tot
    bwd, _ = _scan(m, reverse=True)
    beta0 = np.ones(len(x))
    beta1 = np.ones(len(x))
    beta0[:-1] = bwd[0][1:] + bwd[1][1:]
    beta1[:-1] = bwd[2][1:] + bwd[3][1:]
    bt = beta0 + beta1
    beta0, beta1 = beta0 / bt, beta1 / bt
    g0 = alpha0 * beta0
    g0 = g0 / np.maximum(g0 + alpha1 * beta1, 1e-300)
    prev0 = np.concatenate([[0.5], alpha0[:-1]])
    prev1 = np.concatenate([[0.5], alpha1[:-1]])
    x00 = prev0 * a00 * b0 * beta0
    x01 = prev0 * a01 * b1 * beta1
    x10 = prev1 * a10 * b0 * beta0
    x11 = prev1 * a11 * b1 * beta1
    xs = np.maximum(x00 + x01 + x10 + x11, 1e-300)
    keep = ~start
    xi = np.stack([x00 / xs, x01 / xs, x10 / xs, x11 / xs]) * keep
    return cum_ll, cmax, g0, xi


def _sequence_loglik(cum_ll: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Log-likelihood per group from cumulative log-likelihoods (groups are contiguous runs)."""
    inc = np.diff(np.concatenate([[0.0], cum_ll]))
    return np.bincount(group, weights=inc, minlength=n_groups)


def _gamma_shape_from_s(s: np.ndarray) -> np.ndarray:
    """Gamma shape ``k`` solving ``log k - digamma(k) = s`` (Minka's start, Newton steps)."""
    s = np.maximum(s, 1e-9)
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(6):
        f = np.log(k) - special.digamma(k) - s
        fp = 1.0 / k - special.polygamma(1, k)
        k = np.maximum(k - f / fp, k * 0.1)
    return np.clip(k, _SHAPE_LO, _SHAPE_HI)


def _init_split(logx: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-gap initial state (1 = slow): Otsu's threshold of each group's log gaps (64 bins)."""
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, group, logx)
    np.maximum.at(hi, group, logx)
    width = np.maximum(hi - lo, 1e-9)
    nb = 64
    b = np.minimum(((logx - lo[group]) / width[group] * nb).astype(np.int64), nb - 1)
    hist = np.bincount(group * nb + b, minlength=n_groups * nb).reshape(n_groups, nb).astype(np.float64)
    centers = lo[:, None] + (np.arange(nb) + 0.5)[None, :] * (width / nb)[:, None]
    w0 = np.cumsum(hist, axis=1)
    mu0 = np.cumsum(hist * centers, axis=1)
    tot_w, tot_mu = w0[:, -1:], mu0[:, -1:]
    w1 = tot_w - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (mu0 / w0 - (tot_mu - mu0) / w1) ** 2
    between = np.where(np.isfinite(between), between, -1.0)
    cut = np.argmax(between, axis=1)
    return (b > cut[group]).astype(np.int64)


def _m_step(
    x: np.ndarray,
    logx: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    g0: np.ndarray,
    xi: np.ndarray,
    prior: dict[str, np.ndarray] | None,
    prior_gaps: float,
    iid: bool,
) -> dict[str, np.ndarray]:
    """Two-state parameters per group from posteriors (optionally with a conjugate-style prior
    of ``prior_gaps`` gaps from ``prior``)."""
    g1 = 1.0 - g0
    stats = {}
    for s, gs in ((0, g0), (1, g1)):
        stats[s] = [np.bincount(group, weights=gs * v, minlength=n_groups) for v in (np.ones_like(x), x, logx)]
    t = [np.bincount(group, weights=xi[i], minlength=n_groups) for i in range(4)]
    if prior is not None:
        pi0 = _stationary0(prior["stay0"], prior["stay1"])
        for s, ps in ((0, pi0), (1, 1.0 - pi0)):
            mean, shape = prior[f"mean{s}"], prior[f"shape{s}"]
            w = prior_gaps * ps
            stats[s][0] = stats[s][0] + w
            stats[s][1] = stats[s][1] + w * mean
            stats[s][2] = stats[s][2] + w * (special.digamma(shape) + np.log(mean / shape))
        t[0] = t[0] + prior_gaps * pi0 * prior["stay0"]
        t[1] = t[1] + prior_gaps * pi0 * (1.0 - prior["stay0"])
        t[2] = t[2] + prior_gaps * (1.0 - pi0) * (1.0 - prior["stay1"])
        t[3] = t[3] + prior_gaps * (1.0 - pi0) * prior["stay1"]
    out = {}
    for s in (0, 1):
        w, sx, sl = stats[s]
        w = np.maximum(w, 1e-12)
        mean = np.maximum(sx / w, 1e-12)
        out[f"mean{s}"] = mean
        out[f"shape{s}"] = _gamma_shape_from_s(np.log(mean) - sl / w)
    if iid:
        w0, w1 = stats[0][0], stats[1][0]
        pi0 = w0 / np.maximum(w0 + w1, 1e-300)
        out["stay0"] = np.clip(pi0, _STAY_MIN, _STAY_MAX)
        out["stay1"] = np.clip(1.0 - pi0, _STAY_MIN, _STAY_MAX)
    else:
        out["stay0"] = np.clip(t[0] / np.maximum(t[0] + t[1], 1e-300), _STAY_MIN, _STAY_MAX)
        out["stay1"] = np.clip(t[3] / np.maximum(t[2] + t[3], 1e-300), _STAY_MIN, _STAY_MAX)
    # state 0 is the fast state
    swap = out["mean0"] > out["mean1"]
    if swap.any():
        for a, b in (("mean0", "mean1"), ("shape0", "shape1"), ("stay0", "stay1")):
            out[a], out[b] = np.where(swap, out[b], out[a]), np.where(swap, out[a], out[b])
    return out


def _em(
    x: np.ndarray,
    start: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    init: dict[str, np.ndarray],
    *,
    iid: bool,
    max_iter: int,
    tol: float = 1e-6,
    prior: dict[str, np.ndarray] | None = None,
    prior_gaps: float = 0.0,
    exponential: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Baum-Welch for the two-state model per group; returns parameters, per-group
    log-likelihood and the final state-0 posteriors."""
    logx = np.log(x)
    p = {k: v.copy() for k, v in init.items()}
    last = -np.inf
    ll = np.zeros(n_groups)
    g0 = np.ones(len(x))
    for _ in range(max_iter):
        per_gap = {k: v[group] for k, v in p.items()}
        cum, _, g0, xi = _forward_backward(x, logx, start, per_gap)
        ll = _sequence_loglik(cum, group, n_groups)
        p = _m_step(x, logx, group, n_groups, g0, xi, prior, prior_gaps, iid)
        if exponential:
            p["shape0"] = np.ones(n_groups)
            p["shape1"] = np.ones(n_groups)
        total = float(ll.sum())
        if total - last < tol * max(len(x), 1):
            break
        last = total
    return p, ll, g0


def _init_params(x: np.ndarray, group: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """Initial two-state parameters per group from Otsu's split of the log gaps."""
    state = _init_split(np.log(x), group, n_groups)
    out = {}
    for s in (0, 1):
        sel = state == s
        cnt = np.bincount(group[sel], minlength=n_groups)
        mean = np.bincount(group[sel], weights=x[sel], minlength=n_groups) / np.maximum(cnt, 1)
        out[f"count{s}"] = cnt
        out[f"mean{s}"] = mean
    allmean = np.bincount(group, weights=x, minlength=n_groups) / np.maximum(np.bincount(group, minlength=n_groups), 1)
    m0 = np.where(out["count0"] > 0, out["mean0"], 0.5 * allmean)
    m1 = np.where(out["count1"] > 0, out["mean1"], 2.0 * allmean)
    m1 = np.maximum(m1, 1.5 * m0)
    share0 = out["count0"] / np.maximum(out["count0"] + out["count1"], 1)
    share0 = np.clip(share0, 0.05, 0.95)
    return {
        "mean0": np.maximum(m0, 1e-12),
        "mean1": np.maximum(m1, 1e-12),
        "shape0": np.ones(n_groups),
        "shape1": np.ones(n_groups),
        "stay0": np.clip(share0 + 0.5 * (1.0 - share0), _STAY_MIN, _STAY_MAX),
        "stay1": np.clip((1.0 - share0) + 0.5 * share0, _STAY_MIN, _STAY_MAX),
    }


def forward_loglik(gaps_s: np.ndarray, sequence: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Log-likelihood of each sequence of positive gaps under the two-state model.

    ``sequence[i]`` numbers the sequence of gap ``i`` (sequences contiguous, numbered from 0);
    ``params`` holds per-gap arrays or scalars ``mean0, mean1, shape0, shape1, stay0, stay1``
    (means in the gaps' unit)."""
    x = np.asarray(gaps_s, dtype=np.float64)
    seq = np.asarray(sequence, dtype=np.int64)
    if x.size == 0:
        return np.zeros(int(seq.max()) + 1 if seq.size else 0)
    start = np.concatenate([[True], seq[1:] != seq[:-1]])
    per_gap = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), x.shape) for k, v in params.items()}
    cum, _, _, _ = _forward_backward(x, np.log(x), start, per_gap, posteriors=False)
    return _sequence_loglik(cum, seq, int(seq.max()) + 1)


# --------------------------------------------------------------------------------------------
# Renewal fits (per group, vectorized)
# --------------------------------------------------------------------------------------------


def _gamma_fit(x: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood Gamma (mean, shape) per group."""
    cnt = np.maximum(np.bincount(group, minlength=n_groups), 1)
    mean = np.bincount(group, weights=x, minlength=n_groups) / cnt
    mlog = np.bincount(group, weights=np.log(x), minlength=n_groups) / cnt
    return np.maximum(mean, 1e-300), _gamma_shape_from_s(np.log(np.maximum(mean, 1e-300)) - mlog)


def _weibull_fit(x: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood Weibull (scale, shape) per group (Newton in ``log k``)."""
    cnt = np.maximum(np.bincount(group, minlength=n_groups), 1)
    logx = np.log(x)
    gm = np.bincount(group, weights=logx, minlength=n_groups) / cnt
    ly = logx - gm[group]
    mean = np.bincount(group, weights=x, minlength=n_groups) / cnt
    var = np.bincount(group, weights=(x - mean[group]) ** 2, minlength=n_groups) / cnt
    k = np.clip(weibull_shape_for_cv(np.sqrt(var) / np.maximum(mean, 1e-300)), 0.06, 50.0)
    for _ in range(40):
        yk = np.exp(np.clip(k[group] * ly, -700, 700))
        s0 = np.bincount(group, weights=yk, minlength=n_groups)
        s1 = np.bincount(group, weights=yk * ly, minlength=n_groups)
        s2 = np.bincount(group, weights=yk * ly * ly, minlength=n_groups)
        f = s1 / s0 - 1.0 / k
        fp = (s2 * s0 - s1 * s1) / (s0 * s0) + 1.0 / (k * k)
        step = np.clip(f / fp / k, -0.5, 0.5)  # Newton step in log k, damped
        k = np.clip(k * np.exp(-step), 0.02, 500.0)
    yk = np.exp(np.clip(k[group] * ly, -700, 700))
    scale = np.exp(gm) * (np.bincount(group, weights=yk, minlength=n_groups) / cnt) ** (1.0 / k)
    return scale, k


def _renewal_loglik(name: str, x: np.ndarray, group: np.ndarray, n_groups: int, par: dict[str, np.ndarray]) -> np.ndarray:
    """Log-likelihood per group of gaps ``x`` under a renewal family's per-group parameters."""
    logx = np.log(x)
    if name == "exponential":
        mu = par["mean"][group]
        ll = -np.log(mu) - x / mu
    elif name == "gamma":
        ll = _gamma_logpdf(x, logx, par["mean"][group], par["shape"][group])
    elif name == "weibull":
        lam, k = par["scale"][group], par["shape"][group]
        z = x / lam
        ll = np.log(k / lam) + (k - 1.0) * np.log(z) - z**k
    else:  # empirical: a smoothed histogram of log gaps
        edges, dens = par["edges"], par["density"]
        nb = dens.shape[1]
        b = np.clip(np.searchsorted(edges, logx, side="right") - 1, 0, nb - 1)
        ll = np.log(dens[group, b]) - logx
    return np.bincount(group, weights=ll, minlength=n_groups)


def _empirical_density(logx: np.ndarray, group: np.ndarray, n_groups: int, edges: np.ndarray) -> np.ndarray:
    """Per-group density of log gaps on ``edges`` (half a count added per bin, smoothed over
    three bins); gaps beyond the edges fall in the end bins."""
    nb = len(edges) - 1
    b = np.clip(np.searchsorted(edges, logx, side="right") - 1, 0, nb - 1)
    h = np.bincount(group * nb + b, minlength=n_groups * nb).reshape(n_groups, nb).astype(np.float64)
    h = 0.25 * np.roll(h, 1, axis=1) + 0.5 * h + 0.25 * np.roll(h, -1, axis=1) + 0.5
    return h / (h.sum(axis=1, keepdims=True) * np.diff(edges)[None, :])


# --------------------------------------------------------------------------------------------
# Trace gaps per client-window
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """A trace cut into client-windows (cells numbered ``client * n_windows + window``)."""

    clients: list[str]
    origin_s: float
    n_windows: int
    window_s: float
    duration: np.ndarray  # per cell
    n: np.ndarray  # requests per cell
    times: np.ndarray  # request times sorted by (cell, time)
    cell_of_time: np.ndarray
    gap: np.ndarray  # gaps inside a cell, in order
    gap_cell: np.ndarray


def _cells(
    times_s: np.ndarray,
    client_ids: np.ndarray | None,
    window_s: float,
    *,
    origin_s: float | None = None,
    end_s: float | None = None,
) -> _Cells:
    """Cut a trace into client-windows of ``window_s`` tiling ``[origin_s, end_s]`` (default:
    first to last request)."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        msg = "times_s must be a non-empty 1-D array of finite seconds"
        raise ValueError(msg)
    if not window_s > 0:
        msg = f"window_s must be > 0, got {window_s!r}"
        raise ValueError(msg)
    if client_ids is None:
        names, rank = ["all"], np.zeros(t.size, dtype=np.int64)
    else:
        ids = np.asarray(client_ids).astype(str)
        if ids.shape != t.shape:
            msg = f"client_ids has {ids.size} entries but times_s has {t.size}"
            raise ValueError(msg)
        uniq, rank = np.unique(ids, return_inverse=True)
        names = [str(u) for u in uniq]
    t0 = float(t.min()) if origin_s is None else float(origin_s)
    if t.min() < t0 or (end_s is not None and t.max() > end_s):
        msg = "times_s fall outside [origin_s, end_s]"
        raise ValueError(msg)
    rel = t - t0
    span = float(rel.max()) if end_s is None else float(end_s) - t0
    n_windows = int(np.floor(span / window_s)) + 1
    w = np.minimum((rel // window_s).astype(np.int64), n_windows - 1)
    cell = rank * n_windows + w
    order = np.lexsort((rel, cell))
    cs, ts = cell[order], rel[order]
    same = cs[1:] == cs[:-1]
    last = span - (n_windows - 1) * window_s
    dur = np.full(n_windows, float(window_s))
    dur[-1] = float(min(window_s, max(1.0, np.ceil(last))))
    n_cells = len(names) * n_windows
    return _Cells(
        clients=names,
        origin_s=t0,
        n_windows=n_windows,
        window_s=float(window_s),
        duration=np.tile(dur, len(names)),
        n=np.bincount(cell, minlength=n_cells),
        times=ts,
        cell_of_time=cs,
        gap=np.maximum(ts[1:] - ts[:-1], 0.0)[same],
        gap_cell=cs[1:][same],
    )


def batch_probability(gaps_s: np.ndarray, resolution_s: float = 0.0) -> float:
    """Probability of a zero gap not explained by the timestamps' resolution (0 when none).

    With an exact clock (``resolution_s`` 0) every exact tie is a batch. On a grid of
    ``resolution_s``, a smooth gap density records about half as many gaps as 0 as it records
    gaps of one grid step (``(0, 1.5 * resolution_s]``); ties count as batches only beyond twice
    that (plus three binomial standard deviations and 5), and the batch probability is the
    excess over the explained half."""
    g = np.asarray(gaps_s, dtype=np.float64)
    if g.size == 0:
        return 0.0
    zeros = int((g <= 0).sum())
    if zeros == 0:
        return 0.0
    if resolution_s <= 0:
        return zeros / g.size
    one_step = int(((g > 0) & (g <= 1.5 * resolution_s)).sum())
    explained = 0.5 * one_step
    if zeros <= 2.0 * explained + 3.0 * np.sqrt(max(explained, 1.0)) + 5.0:
        return 0.0
    return float(np.clip((zeros - explained) / g.size, 0.0, 0.999))


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrivalFit:
    """A fit of per-client-window arrival models.

    ``windows`` has one row per client-window (``client_id``, ``window``, ``start_s``
    (from the first request), ``duration_s``, ``requests``, ``gaps``, ``model``, ``own``
    (fitted on the window's own gaps, else the client's shared parameters) and the model
    columns of :class:`ArrivalModelTable`); ``table`` holds the same rows ready for
    :func:`sample_positions` (unit: the window's mean gap, ``duration_s / requests``);
    ``clients`` the shared parameters per client in seconds, its batch probability and
    (two-state models) its log-likelihood; with ``model="auto"`` also ``fitted_model``."""

    windows: pl.DataFrame
    table: ArrivalModelTable
    clients: pl.DataFrame


def _positive_gaps(gap: np.ndarray, cell: np.ndarray, client: np.ndarray, n_clients: int, resolution_s: float):
    """Batch probability per client, and the gaps the models see: zero gaps dropped for a
    batch client, else taken as half the resolution (or 1 ns)."""
    batch = np.zeros(n_clients)
    zero = gap <= 0
    keep = np.ones(gap.size, dtype=bool)
    if zero.any():
        for c in np.unique(client[zero]):
            sel = client == c
            batch[c] = batch_probability(gap[sel], resolution_s)
        drop = zero & (batch[client] > 0)
        keep = ~drop
    x = np.where(zero, max(0.5 * resolution_s, 1e-9), gap)
    return batch, x[keep], cell[keep]


def fit_client_arrivals(
    times_s: np.ndarray,
    client_ids: np.ndarray | None = None,
    *,
    window_s: float = 600.0,
    model: str = "mmpp",
    resolution_s: float = 0.0,
    origin_s: float | None = None,
    end_s: float | None = None,
    min_window_gaps: int = 200,
    prior_gaps: float = 200.0,
    max_iter: int = 30,
    state_tables: bool = True,
    seed: int = 0,
) -> ArrivalFit:
    """Fit the arrival model ``model`` (:data:`MODEL_NAMES`, or ``"auto"``) per client-window.

    ``times_s`` are request times (seconds) and ``client_ids`` their clients (``None``: one
    client ``"all"``); windows of ``window_s`` tile ``[origin_s, end_s]`` (default: first to
    last request; the last window ends at ``end_s`` rounded up to a whole second, as
    :func:`servegen_core.sources.fit.pool_from_trace`). Two-state
    models (``hyperexp`` with exponential phases, ``mmpp`` with Gamma gaps per state) are
    fitted by EM per client (shared) and per window with
    at least ``min_window_gaps`` gaps (shrunk toward the shared fit by ``prior_gaps`` gaps);
    ``state_tables`` keeps each state's observed gaps as its emission table. Renewal families
    are maximum-likelihood fits per window with at least ``min_window_gaps`` gaps, shared
    otherwise; ``empirical`` keeps each client's gaps (unit: their window's mean gap).
    ``resolution_s`` is the timestamps' resolution (see :func:`batch_probability`).
    ``"auto"`` chooses each client's model with :func:`select_arrival_models` (``seed``) and
    fits each client with its own; the rows stay in client, window order.
    """
    if model == "auto":
        t = np.asarray(times_s, dtype=np.float64)
        ids = np.full(t.size, "all") if client_ids is None else np.asarray(client_ids).astype(str)
        if t.size == 0 or ids.shape != t.shape:
            msg = "times_s must be non-empty and client_ids (when given) as long as times_s"
            raise ValueError(msg)
        origin = float(t.min()) if origin_s is None else float(origin_s)
        end = float(t.max()) if end_s is None else float(end_s)
        chosen_frame = select_arrival_models(
            t, ids, window_s=window_s, resolution_s=resolution_s, seed=seed, max_iter=max_iter
        ).filter(pl.col("chosen"))
        chosen = dict(zip(chosen_frame["client_id"].to_list(), chosen_frame["model"].to_list()))
        per_client_model = np.array([chosen[c] for c in ids])
        fits: list[ArrivalFit] = []
        names: list[str] = []
        for name in MODEL_NAMES:
            mine = per_client_model == name
            if mine.any():
                names.append(name)
                fits.append(
                    _fit_one(
                        t[mine], ids[mine], window_s=window_s, model=name, resolution_s=resolution_s, origin_s=origin,
                        end_s=end, min_window_gaps=min_window_gaps, prior_gaps=prior_gaps, max_iter=max_iter,
                        state_tables=state_tables,
                    )
                )
        windows = pl.concat([f.windows for f in fits])
        order = np.lexsort((windows["window"].to_numpy(), windows["client_id"].to_numpy()))
        clients = pl.concat(
            [f.clients.with_columns(pl.lit(name).alias("fitted_model")) for f, name in zip(fits, names)], how="diagonal"
        )
        return ArrivalFit(
            windows=windows[order],
            table=ArrivalModelTable.concat([f.table for f in fits]).take(order),
            clients=clients.sort("client_id"),
        )
    return _fit_one(
        times_s, client_ids, window_s=window_s, model=model, resolution_s=resolution_s, origin_s=origin_s, end_s=end_s,
        min_window_gaps=min_window_gaps, prior_gaps=prior_gaps, max_iter=max_iter, state_tables=state_tables,
    )


def _fit_one(
    times_s: np.ndarray,
    client_ids: np.ndarray | None,
    *,
    window_s: float,
    model: str,
    resolution_s: float,
    origin_s: float | None,
    end_s: float | None,
    min_window_gaps: int,
    prior_gaps: float,
    max_iter: int,
    state_tables: bool,
) -> ArrivalFit:
    """:func:`fit_client_arrivals` for one model."""
    if model not in MODEL_NAMES:
        msg = f"unknown arrival model {model!r}; expected auto or one of {', '.join(MODEL_NAMES)}"
        raise ValueError(msg)
    cells = _cells(times_s, client_ids, window_s, origin_s=origin_s, end_s=end_s)
    n_clients, n_cells = len(cells.clients), len(cells.n)
    unit = np.where(cells.n > 0, cells.duration / np.maximum(cells.n, 1), 1.0)  # s per unit
    gap_client = cells.gap_cell // cells.n_windows
    batch, x, xcell = _positive_gaps(cells.gap, cells.gap_cell, gap_client, n_clients, resolution_s)
    xclient = xcell // cells.n_windows
    has_gaps = np.bincount(xclient, minlength=n_clients) > 0
    gaps_per_cell = np.bincount(xcell, minlength=n_cells)
    own = gaps_per_cell >= max(min_window_gaps, 2)
    cell_client = np.arange(n_cells) // cells.n_windows
    kind = np.full(n_cells, KINDS[model], dtype=np.int8)
    cols: dict[str, np.ndarray] = {"batch": batch[cell_client]}
    client_cols: dict[str, np.ndarray] = {"batch": batch}
    tables = None
    if not has_gaps.all():
        kind[~has_gaps[cell_client]] = KINDS["exponential"]
    if model in ("hyperexp", "mmpp"):
        start = np.concatenate([[True], xcell[1:] != xcell[:-1]])
        iid = model == "hyperexp"
        shared, ll_client, _ = _em(
            x, start, xclient, n_clients, _init_params(x, xclient, n_clients), iid=iid, max_iter=max_iter, exponential=iid
        )
        client_cols.update(shared)
        client_cols["loglik"] = ll_client
        per = {k: v[cell_client].copy() for k, v in shared.items()}
        sel = own[xcell]
        if sel.any():
            own_cells = np.flatnonzero(own)
            remap = np.full(n_cells, -1, dtype=np.int64)
            remap[own_cells] = np.arange(own_cells.size)
            grp = remap[xcell[sel]]
            prior = {k: v[own_cells] for k, v in per.items()}
            fitted, _, _ = _em(
                x[sel], start[sel], grp, own_cells.size, prior, iid=iid, max_iter=max(5, max_iter // 3),
                prior=prior, prior_gaps=prior_gaps, exponential=iid,
            )
            for k, v in fitted.items():
                per[k][own_cells] = v
        # most probable state per gap under the final per-window parameters; emission tables
        cols.update({k: per[k] for k in ("shape0", "shape1", "stay0", "stay1")})
        cols["mean0"] = per["mean0"] / unit
        cols["mean1"] = per["mean1"] / unit
        st0 = np.full(n_cells, -1, dtype=np.int64)
        st1 = np.full(n_cells, -1, dtype=np.int64)
        if state_tables and x.size:
            per_gap = {k: v[xcell] for k, v in per.items()}
            _, _, g0, _ = _forward_backward(x, np.log(x), start, per_gap)
            state = (g0 < 0.5).astype(np.int64)
            # each gap in units of its window's fitted mean of its state (the table keeps shape)
            xu = x / np.where(state == 0, per["mean0"][xcell], per["mean1"][xcell])
            key = xclient * 2 + state
            order = np.argsort(key, kind="stable")
            sizes = np.bincount(key, minlength=2 * n_clients)
            splits = np.split(xu[order], np.cumsum(sizes)[:-1])
            tables = empirical_tables(splits)
            ok = sizes >= MIN_STATE_TABLE_GAPS
            t_id = np.arange(2 * n_clients)
            st0 = np.where(ok[2 * cell_client], t_id[2 * cell_client], -1)
            st1 = np.where(ok[2 * cell_client + 1], t_id[2 * cell_client + 1], -1)
        cols["state_table0"] = st0
        cols["state_table1"] = st1
    elif model == "empirical":
        xu = x / unit[xcell]
        order = np.argsort(xclient, kind="stable")
        sizes = np.bincount(xclient, minlength=n_clients)
        tables = empirical_tables(np.split(xu[order], np.cumsum(sizes)[:-1]))
        cols["table"] = np.where(sizes[cell_client] > 0, cell_client, -1)
        kind[cols["table"] < 0] = KINDS["exponential"]
        client_cols["loglik"] = np.full(n_clients, np.nan)
    else:
        shape_c = np.ones(n_clients)
        shape_w = np.ones(n_cells)
        if model == "gamma":
            _, shape_c = _gamma_fit(x, xclient, n_clients)
            _, shape_w = _gamma_fit(x, xcell, n_cells)
        elif model == "weibull":
            _, shape_c = _weibull_fit(x, xclient, n_clients)
            _, shape_w = _weibull_fit(x, xcell, n_cells)
        cols["shape"] = np.where(own, shape_w, shape_c[cell_client])
        client_cols["shape"] = shape_c
    table = ArrivalModelTable.make(n_cells, kind, tables=tables, **cols)
    win = np.arange(n_cells) % cells.n_windows
    frame = {
        "client_id": pl.Series([cells.clients[c] for c in cell_client], dtype=pl.String()),
        "window": win,
        "start_s": cells.origin_s + win * cells.window_s,
        "duration_s": cells.duration,
        "requests": cells.n,
        "gaps": gaps_per_cell,
        "model": [next(k for k, v in KINDS.items() if v == c) for c in table.kind],
        "own": own & (table.kind != KINDS["exponential"]),
    }
    for f in fields(ArrivalModelTable):
        if f.name not in ("kind", "tables"):
            frame[f.name] = getattr(table, f.name)
    clients = pl.DataFrame({"client_id": cells.clients, **{k: np.asarray(v) for k, v in client_cols.items()}})
    return ArrivalFit(windows=pl.DataFrame(frame), table=table, clients=clients)


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _held_out_times(times: np.ndarray, cell: np.ndarray, cells_kept: np.ndarray, window_s: float) -> np.ndarray:
    """Times of the requests in ``cells_kept`` re-based so the kept windows lie end to end."""
    pos = np.full(int(cell.max()) + 1 if cell.size else 0, -1, dtype=np.int64)
    pos[cells_kept] = np.arange(cells_kept.size)
    k = pos[cell]
    sel = k >= 0
    within = np.mod(times[sel], window_s)
    return within + k[sel] * window_s


def select_arrival_models(
    times_s: np.ndarray,
    client_ids: np.ndarray | None = None,
    *,
    window_s: float = 600.0,
    resolution_s: float = 0.0,
    seed: int = 0,
    candidates: tuple[str, ...] = MODEL_NAMES,
    scales_s: tuple[float, ...] = DISPERSION_SCALES_S,
    max_iter: int = 30,
    replicates: int = 3,
) -> pl.DataFrame:
    """Choose each client's arrival model by held-out log-likelihood and a dispersion check.

    One row per client and candidate: ``client_id``, ``model``, ``batch`` (the client's batch
    probability, :func:`batch_probability`, common to every candidate), ``heldout_loglik``
    (total over the held-out positive gaps), ``heldout_gaps``, ``heldout_ks`` (KS distance
    between the positive gaps inside the regenerated held-out windows, first draw, and the
    held-out gaps) and ``heldout_ks_crit`` (the two-sample test's 5 % critical distance at
    those sample sizes), ``disp_ratio_<scale>``
    (generated / held-out index of dispersion at each of ``scales_s``, the generated one the
    mean over ``replicates`` draws; NaN where the held-out span holds fewer than
    :data:`MIN_DISPERSION_BINS` bins), ``dispersion_ok``, ``ks_ok`` and ``chosen``. Windows
    with gaps are split by their order (even: fit, odd: held out); a client with fewer than
    two such windows splits its single window's gaps in halves instead. The chosen model is
    the simplest (order of ``candidates``) whose held-out log-likelihood is within
    ``5 + 0.0005 * heldout_gaps`` of the best among those passing the dispersion check:
    ``worst_log_ratio`` (the largest ``|log ratio|`` over the scales) at most
    ``log(DISPERSION_BAND[1])``, or, when no candidate reaches that (the circle layout of a
    window lowers the long-scale dispersion of heavy-tailed renewals for every family alike),
    at most that much above the smallest one; and, among those, ``heldout_ks`` at most
    :data:`KS_LIMIT` or within ``heldout_ks_crit`` of the smallest (a model whose regenerated
    windows move the gaps, such as resampled gaps rescaled to fill a window, is not chosen
    for its likelihood alone; when no candidate passes both, the dispersion check alone
    decides). Generation uses ``np.random.default_rng(seed)``.
    """
    unknown = [c for c in candidates if c not in MODEL_NAMES]
    if unknown or not candidates:
        msg = f"unknown candidate models {unknown}; expected some of {', '.join(MODEL_NAMES)}"
        raise ValueError(msg)
    cells = _cells(times_s, client_ids, window_s)
    n_clients = len(cells.clients)
    gap_client = cells.gap_cell // cells.n_windows
    batch, x, xcell = _positive_gaps(cells.gap, cells.gap_cell, gap_client, n_clients, resolution_s)
    xclient = xcell // cells.n_windows
    # the split: rank of each cell among its client's cells with gaps
    n_cells = len(cells.n)
    has = np.bincount(xcell, minlength=n_cells) > 0
    rank = np.cumsum(has) - 1
    first_of_client = np.concatenate([[0], np.cumsum(has.reshape(n_clients, -1).sum(axis=1))[:-1]])
    cell_client = np.arange(n_cells) // cells.n_windows
    order_in_client = rank - first_of_client[cell_client]
    held_cell = has & (order_in_client % 2 == 1)
    windows_with_gaps = has.reshape(n_clients, -1).sum(axis=1)
    held_gap = held_cell[xcell]
    # a client with a single window with gaps: its later half of gaps is held out
    single = windows_with_gaps[xclient] < 2
    if single.any():
        idx_in = np.arange(x.size) - np.concatenate([[0], np.cumsum(np.bincount(xclient, minlength=n_clients))[:-1]])[xclient]
        half = np.bincount(xclient, minlength=n_clients)[xclient] // 2
        held_gap = np.where(single, idx_in >= half, held_gap)
    fit_gap = ~held_gap
    xf, cf, gf = x[fit_gap], xcell[fit_gap], xclient[fit_gap]
    xh, ch, gh = x[held_gap], xcell[held_gap], xclient[held_gap]
    start_f = np.concatenate([[True], cf[1:] != cf[:-1]])
    seq_h = np.concatenate([[0], np.cumsum(ch[1:] != ch[:-1])]) if ch.size else np.zeros(0, dtype=np.int64)
    n_held = np.bincount(gh, minlength=n_clients)
    log_all = np.log(x)
    edges = np.linspace(log_all.min() - 0.5, log_all.max() + 0.5, 61)
    rng = np.random.default_rng(seed)
    held_cells_list = np.flatnonzero(held_cell)
    rows = []
    for name in candidates:
        if name in ("hyperexp", "mmpp"):
            iid = name == "hyperexp"
            par, _, _ = _em(xf, start_f, gf, n_clients, _init_params(xf, gf, n_clients), iid=iid, max_iter=max_iter, exponential=iid)
            ll_seq = forward_loglik(xh, seq_h, {k: v[gh] for k, v in par.items()}) if xh.size else np.zeros(0)
            seq_client = np.zeros(ll_seq.size, dtype=np.int64)
            if xh.size:
                seq_client[seq_h] = gh
            ll = np.bincount(seq_client, weights=ll_seq, minlength=n_clients)
        else:
            if name == "exponential":
                cnt = np.maximum(np.bincount(gf, minlength=n_clients), 1)
                par = {"mean": np.bincount(gf, weights=xf, minlength=n_clients) / cnt}
            elif name == "gamma":
                mean, shape = _gamma_fit(xf, gf, n_clients)
                par = {"mean": mean, "shape": shape}
            elif name == "weibull":
                scale, shape = _weibull_fit(xf, gf, n_clients)
                par = {"scale": scale, "shape": shape}
            else:
                par = {"edges": edges, "density": _empirical_density(np.log(xf), gf, n_clients, edges)}
            ll = _renewal_loglik(name, xh, gh, n_clients, par)
        # regenerate the held-out windows (client-level parameters, exact counts)
        hc = held_cells_list
        unit = cells.duration[hc] / np.maximum(cells.n[hc], 1)
        c_of = hc // cells.n_windows
        tab = _held_out_table(name, par, hc, c_of, unit, batch, cells, xf, gf, cf, n_clients)
        sims = [sample_positions(rng, cells.n[hc], tab) for _ in range(replicates)]
        k_of = np.repeat(np.arange(hc.size), cells.n[hc])
        for c in range(n_clients):
            mine = c_of == c
            row = {
                "client_id": cells.clients[c],
                "model": name,
                "batch": float(batch[c]),
                "heldout_loglik": float(ll[c]),
                "heldout_gaps": int(n_held[c]),
            }
            ks = np.flatnonzero(mine)
            real = _held_out_times(cells.times, cells.cell_of_time, hc[mine], cells.window_s) if ks.size else None
            end = (ks.size - 1) * cells.window_s + cells.duration[hc[ks[-1]]] if ks.size else 0.0
            sel = np.isin(k_of, ks)
            local = np.searchsorted(ks, k_of[sel])
            row["heldout_ks"], row["heldout_ks_crit"] = _gap_ks(
                sims[0][sel] * cells.duration[hc][k_of[sel]] + local * cells.window_s, local, xh[gh == c]
            ) if ks.size else (float("nan"), float("nan"))
            for s in scales_s:
                ratio = float("nan")
                if real is not None and end >= MIN_DISPERSION_BINS * s:
                    d_real = count_dispersion(real, s, start_s=0.0, end_s=end)
                    d_sim = np.mean(
                        [
                            count_dispersion(p[sel] * cells.duration[hc][k_of[sel]] + local * cells.window_s, s, start_s=0.0, end_s=end)
                            for p in sims
                        ]
                    )
                    ratio = d_sim / d_real if d_real > 0 else float("nan")
                row[f"disp_ratio_{s:g}"] = ratio
            rows.append(row)
    return _choose_models(pl.DataFrame(rows), scales_s, cells.clients)


def _gap_ks(sim_t: np.ndarray, cell: np.ndarray, real_gaps: np.ndarray) -> tuple[float, float]:
    """KS distance between the positive gaps inside each cell of the generated times
    ``sim_t`` (cells ``cell``, each laid in its own stretch of time) and ``real_gaps``, and the
    two-sample test's 5 % critical distance at those sample sizes (NaN, NaN without gaps)."""
    order = np.argsort(sim_t, kind="stable")
    t, c = sim_t[order], cell[order]
    g = np.diff(t)[c[1:] == c[:-1]]
    g = g[g > 0]
    if g.size == 0 or real_gaps.size == 0:
        return float("nan"), float("nan")
    return float(stats.ks_2samp(g, real_gaps).statistic), float(KS_CRIT * np.sqrt(1.0 / g.size + 1.0 / real_gaps.size))


def _held_out_table(
    name: str,
    par: dict[str, np.ndarray],
    hc: np.ndarray,
    c_of: np.ndarray,
    unit: np.ndarray,
    batch: np.ndarray,
    cells: _Cells,
    xf: np.ndarray,
    gf: np.ndarray,
    cf: np.ndarray,
    n_clients: int,
) -> ArrivalModelTable:
    """The model table regenerating held-out cells ``hc`` (clients ``c_of``, mean gaps ``unit``)
    with each client's parameters ``par`` of candidate ``name`` fitted on gaps ``xf``."""
    if name in ("hyperexp", "mmpp"):
        return ArrivalModelTable.make(
            hc.size, name, mean0=par["mean0"][c_of] / unit, mean1=par["mean1"][c_of] / unit,
            shape0=par["shape0"][c_of], shape1=par["shape1"][c_of], stay0=par["stay0"][c_of],
            stay1=par["stay1"][c_of], batch=batch[c_of],
        )
    if name == "empirical":
        sizes = np.bincount(gf, minlength=n_clients)
        order = np.argsort(gf, kind="stable")
        xu = xf / (cells.duration[cf] / np.maximum(cells.n[cf], 1))
        tabs = empirical_tables(np.split(xu[order], np.cumsum(sizes)[:-1]))
        return ArrivalModelTable.make(hc.size, "empirical", table=c_of, batch=batch[c_of], tables=tabs)
    if name in ("weibull", "gamma"):
        return ArrivalModelTable.make(hc.size, name, shape=par["shape"][c_of], batch=batch[c_of])
    return ArrivalModelTable.make(hc.size, name, batch=batch[c_of])


def _choose_models(out: pl.DataFrame, scales_s: tuple[float, ...], clients: list[str]) -> pl.DataFrame:
    """``out`` with ``worst_log_ratio``, ``dispersion_ok`` and ``chosen`` (the rule of
    :func:`select_arrival_models`)."""
    ratio_cols = [f"disp_ratio_{s:g}" for s in scales_s]
    lo, hi = DISPERSION_BAND
    ratios = out.select(ratio_cols).to_numpy()
    finite = np.isfinite(ratios)
    worst = np.where(finite, np.abs(np.log(np.where(finite, ratios, 1.0))), 0.0).max(axis=1)
    client_col = out["client_id"].to_numpy()
    best_worst = {c: worst[client_col == c].min() for c in clients}
    slack = float(np.log(hi))
    ok = np.array([w <= max(slack, best_worst[c] + slack) for w, c in zip(worst, client_col)])
    # the gaps' distribution: below KS_LIMIT, or not farther above the best candidate's held-out
    # KS than the two-sample test's critical distance
    ks = out["heldout_ks"].to_numpy().astype(np.float64)
    crit = out["heldout_ks_crit"].to_numpy().astype(np.float64)
    best_ks = {c: np.nanmin(np.append(ks[client_col == c], np.inf)) for c in clients}
    ks_ok = np.array([bool(np.isnan(k) or k <= max(KS_LIMIT, best_ks[c] + d)) for k, d, c in zip(ks, crit, client_col)])
    out = out.with_columns(pl.Series("worst_log_ratio", worst), pl.Series("dispersion_ok", ok), pl.Series("ks_ok", ks_ok))
    chosen = np.zeros(out.height, dtype=bool)
    llv = out["heldout_loglik"].to_numpy()
    gaps_h = out["heldout_gaps"].to_numpy()
    for c in clients:
        idx = np.flatnonzero(client_col == c)  # in candidate order
        passing = idx[ok[idx] & ks_ok[idx]]
        if passing.size == 0:
            passing = idx[ok[idx]]
        if passing.size == 0:
            chosen[idx[np.argmin(worst[idx])]] = True
            continue
        best = llv[passing].max()
        margin = 5.0 + 0.0005 * gaps_h[passing[0]]
        chosen[passing[np.flatnonzero(llv[passing] >= best - margin)[0]]] = True
    return out.with_columns(pl.Series("chosen", chosen))
