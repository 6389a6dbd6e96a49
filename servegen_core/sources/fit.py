"""Fit a raw request trace to a ClientPool: the "raw request trace -> fit -> ClientPool" arrow.

:func:`pool_from_trace` summarizes a RequestTrace the way the ServeGen data summarize the
production traces, so that a raw trace can be composed, scaled and validated like ServeGen
data, and keeps what a summary would lose (each window's observed gaps).

Timestamp resolution
    The trace's timestamp grid is measured with
    :func:`servegen_core.sources.traces.timestamp_resolution`. When the timestamps are quantized
    (every gap a multiple of a grid of 1 ms or coarser, or within a small jitter of one: a
    3 s grid stamped a few ms late), they are **de-quantized** before
    anything is fitted: a recorded time ``t`` stands for the grid cell ``[t, t + grid)`` and
    is replaced by ``t + u * grid`` with ``u`` uniform on ``[0, 1)``, drawn for each client from
    its own stream (:func:`client_rng`: ``default_rng([seed, sha256(client_id)[:8], 0])``, in
    the client's trace order; so the same trace and seed give the same pool, whatever the
    partitioning of the clients); each client's requests are then re-ordered by their new times, and the windows and the kept gaps
    (``ClientPool.gaps``) come from these times. (A grid found in fewer than
    :data:`MIN_GRID_GAPS` positive gaps, or in gaps that are all one multiple of it with no
    ties between them, is a coincidence, not a resolution, and is left alone; all one multiple
    with ties is a grid whose every tick is occupied.) Timing finer than the grid is not
    recoverable, so the *fit* does not use the spread values: gaps shorter than the grid
    enter it as censored observations, known only to be shorter than the grid (see
    :func:`fit_gap_groups`), and the fitted family is extrapolated below the grid. (Fitting
    the spread gaps instead would make a bursty source look nearly Poisson below the grid:
    on a Gamma CV 15 source recorded in whole milliseconds, the composed trace's 1 s count
    dispersion fell to half the source's; censored, it is within 5 %.) When at least
    :data:`COARSE_ZERO_SHARE` (1 %) of the recorded gaps are zero (ties on the grid), the
    pool's ``warnings`` say so: the sub-grid timing is then an extrapolation, not a
    measurement. A grid that is not quantized (finer than 1 ms) is kept, and gaps below it
    (recorded as 0) are censored the same way, never fitted as gaps of exactly 0.

Arrival windows (``window_s``, default 600 s), per client (or one client ``"all"``)
    The windows tile the trace from time 0 (its first request); every client gets every
    window. The last window ends at the last request (rounded up to a whole second, at
    least 1 s after the window start; for de-quantized timestamps, at the end of the last
    request's grid cell, so the grid is known before any client is fitted), so a partial last window has its true
    ``duration_s``. ``rate_rps`` = requests in the window / ``duration_s``; ``cv`` = the
    empirical coefficient of variation (population standard deviation / mean) of the gaps
    between consecutive requests inside the window, or, in a window with censored gaps
    (shorter than the timestamp resolution, whose values are unknown), the CV of the fitted
    family (Gamma ``1/sqrt(k)``, Weibull ``sqrt(Γ(1+2/k)/Γ(1+1/k)² − 1)``). The pattern is chosen per client-window
    by maximum likelihood among Gamma, Weibull and exponential (location 0) with the lowest
    BIC (:func:`fit_gap_groups`); an exponential is recorded as ``"Gamma"`` with shape 1,
    Weibull windows as ``"Weibull"``. ``shape`` and ``scale`` are the chosen family's
    maximum-likelihood estimates. A window with fewer than :data:`MIN_FIT_REQUESTS`
    requests, or without two different gaps above the timestamp resolution, has no usable
    inter-arrival statistics: it gets the Poisson pattern (Gamma, shape 1, cv 1, scale
    ``1 / rate``) — unless some of its gaps are below the resolution (a window of clusters):
    then its gaps, those below the resolution counted as 0, give a moment Gamma
    (``shape = 1/cv²``, ``scale = mean gap / shape``). A window without requests has rate 0 and pattern ``""``.
Gaps
    ``ClientPool.gaps`` keeps every observed gap (after de-quantization) per client-window,
    in arrival order: the empirical inter-arrival distribution of each window, an
    alternative to its fitted pattern.
Sub-window arrival models
    ``ClientPool.arrival_models`` (and ``arrival_tables``) hold, per client-window with
    requests, the arrival model each client's trace chooses: every candidate (exponential,
    Gamma, Weibull, hyper-exponential, two-state MMPP, empirical) fitted on half of the
    client's windows and scored on the other half by likelihood and a multi-scale count
    dispersion check (:func:`servegen_core.arrival_models.fit_client_arrivals` with
    ``model="auto"``, on the windows above), each client fitted on its own with a seed from its
    stream ``client_rng(seed, client_id, 1)``. On a clock finer than 1 ms the
    timestamps' resolution (``grid_s``; the shortest positive gap when the grid reads as the
    100 ns tick, i.e. the clock is finer) decides whether exact ties
    are a batch (several requests at one instant) or only the clock's rounding
    (:func:`servegen_core.arrival_models.batch_probability`). A quantized trace (de-quantized
    above) gets no such models (``None``): its spread times below the grid are uniform by
    construction, and a model fitted to them would put a made-up structure below the grid
    (on a Gamma CV 2 source on a 1 s grid, the round trip's gap KS distance to the true times
    was 0.30 against 0.07 for the censored family fit), so the censored per-window family
    (``sub_window="source"`` then means ``recorded``) stays the model. Nor does a client with
    fewer than :data:`MIN_MODEL_GAPS` positive gaps inside its windows (per client: such a
    client has no model rows, and generation takes the ``mmpp`` option from its windows' CV).
Partitions
    :func:`fit_input` computes what is trace-wide (the client ids, the timestamp resolution,
    the window grids, the length fields); :func:`fit_partition` fits the clients of one
    partition (whole clients, :func:`client_partitions`) against it; :func:`merge_parts`
    concatenates the partitions in client order. Every statistic is per client, so any
    partitioning gives the same pool byte for byte (the Ray engine runs the partitions as
    tasks, :mod:`servegen_core.engines.ray`).
Length windows (``length_window_s``, default 6 h), per client
    the empirical PDF (value -> share of the window's requests) of ``input_tokens``,
    ``output_tokens`` and, where the trace has it, ``reason_ratio``. A length window without
    requests is inactive and has no rows.

:func:`length_correlation` estimates the Gaussian-copula correlation of input and output
lengths, the spec's ``length_correlation``.

Everything that scales with the requests is vectorized (NumPy sorts and segment sums over a
dense client x window grid, all windows solved together); only a window with censored gaps whose Gamma fit puts the
resolution outside the deep lower tail is refitted on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import polars as pl
from scipy import optimize, special, stats

from servegen_core.arrival_models import fit_client_arrivals
from servegen_core.renewal import implied_cv
from servegen_core.sources.pool import (
    ARRIVAL_MODEL_SCHEMA,
    ARRIVAL_TABLE_SCHEMA,
    DISTRIBUTION_SCHEMA,
    GAP_SCHEMA,
    LENGTH_WINDOW_SCHEMA,
    WINDOW_SCHEMA,
    ClientPool,
    client_sort_key,
)
from servegen_core.schema import validate_trace
from servegen_core.sources.traces import GRID_TICK_S, QUANTIZED_GRID_S, timestamp_resolution

__all__ = [
    "COARSE_ZERO_SHARE",
    "FITTED_FIELDS",
    "GAP_FAMILIES",
    "MAX_FIT_CELLS",
    "MIN_FIT_REQUESTS",
    "MIN_MODEL_GAPS",
    "dequantize",
    "fit_gap_groups",
    "length_correlation",
    "FitInput",
    "FitPart",
    "client_key",
    "client_partitions",
    "client_rng",
    "fit_input",
    "fit_partition",
    "merge_parts",
    "pool_from_trace",
]

#: Length fields taken from a trace when present, in this order.
FITTED_FIELDS: tuple[str, ...] = ("input_tokens", "output_tokens", "reason_ratio")
#: Fewer requests than this in a window: Poisson pattern instead of a fit.
MIN_FIT_REQUESTS = 3
#: Families compared by BIC, in this order (ties go to the earlier one).
GAP_FAMILIES: tuple[str, ...] = ("Exponential", "Gamma", "Weibull")
#: Most client-windows (clients x arrival windows) a fit builds; beyond, it refuses with the number.
MAX_FIT_CELLS = 20_000_000
#: Fewest positive gaps inside windows of a client for :func:`pool_from_trace` to fit its sub-window arrival models.
MIN_MODEL_GAPS = 20
#: Share of zero gaps on a quantized grid from which the pool warns that sub-grid timing is lost.
COARSE_ZERO_SHARE = 0.01

_SHAPE_MIN, _SHAPE_MAX = 1e-4, 1e4

FIT_SCHEMA: dict[str, pl.DataType] = {
    "group": pl.Int64(),
    "n": pl.Int64(),
    "censored": pl.Int64(),
    "family": pl.String(),
    "shape": pl.Float64(),
    "scale": pl.Float64(),
    "bic_exponential": pl.Float64(),
    "bic_gamma": pl.Float64(),
    "bic_weibull": pl.Float64(),
}


# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------


def dequantize(ts: np.ndarray, grid_s: float, *, rng: np.random.Generator) -> np.ndarray:
    """Spread timestamps recorded on a grid uniformly within their grid cells.

    A recorded time ``t`` stands for the cell ``[t, t + grid_s)``; it becomes ``t + u *
    grid_s`` with ``u ~ U[0, 1)`` from ``rng``. The result is in the input's order (not
    sorted). ``grid_s`` must be positive and finite.
    """
    if not (math.isfinite(grid_s) and grid_s > 0):
        msg = f"grid_s must be a positive number of seconds, got {grid_s!r}"
        raise ValueError(msg)
    t = np.asarray(ts, dtype=np.float64)
    return t + rng.random(t.size) * grid_s


# --------------------------------------------------------------------------------------------
# Maximum-likelihood fits of gap groups
# --------------------------------------------------------------------------------------------


def _gamma_shape(s: np.ndarray) -> np.ndarray:
    """Gamma MLE shape from ``s = ln(mean x) − mean(ln x)`` (> 0): Minka's generalized Newton
    iteration on ``ln k − ψ(k) = s`` from his closed-form start; converges in a few steps."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
        k = np.clip(k, _SHAPE_MIN, _SHAPE_MAX)
        for _ in range(8):
            step = (np.log(k) - special.digamma(k) - s) / (k * k * (1.0 / k - special.polygamma(1, k)))
            inv = 1.0 / k + step
            k = np.clip(np.where(np.isfinite(inv) & (inv > 0), 1.0 / inv, k), _SHAPE_MIN, _SHAPE_MAX)
    return k


def _weibull_shape(
    lx: np.ndarray,
    group: np.ndarray,
    n: np.ndarray,
    mlog: np.ndarray,
    c1: np.ndarray | None = None,
    c0: np.ndarray | None = None,
) -> np.ndarray:
    """Weibull MLE shape per group: the root of the profile-likelihood equation
    ``Σ x^k ln x / Σ x^k − c1/k − c0 = 0`` (increasing in k; ``c1 = 1`` and ``c0 = mean(ln x)``
    without censoring), by Newton steps kept inside a shrinking bracket (bisection in ln k when
    a step leaves it), all groups at once; a converged group drops out of the iteration at
    once, so its shape does not depend on the other groups (nor on a partitioning of them)."""
    g_count = n.size
    c1 = np.ones(g_count) if c1 is None else c1
    c0 = mlog if c0 is None else c0
    top = np.full(g_count, -np.inf)
    np.maximum.at(top, group, lx)
    var_l = np.bincount(group, weights=(lx - mlog[group]) ** 2, minlength=g_count) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.clip(np.pi / np.sqrt(6.0 * var_l), 1e-3, 1e3)  # sd(ln X) = π / (k √6)
    lo = np.full(g_count, _SHAPE_MIN)
    hi = np.full(g_count, _SHAPE_MAX)
    # the active groups' gaps, compacted: local group ids, ln x, and ln x − max ln x of the group
    # (x^k = e^{k·top} e^{k·shifted}; the common factor cancels in the ratios)
    ids = np.arange(g_count)
    loc, clx = group, lx
    csh = lx - top[group]
    for _ in range(80):
        m = ids.size
        kk = k[ids]
        w = np.exp(kk[loc] * csh)
        sw = np.bincount(loc, weights=w, minlength=m)
        a = np.bincount(loc, weights=w * clx, minlength=m) / sw
        b = np.bincount(loc, weights=w * clx * clx, minlength=m) / sw
        g = a - c1[ids] / kk - c0[ids]
        lo[ids] = np.where(g < 0, kk, lo[ids])
        hi[ids] = np.where(g > 0, kk, hi[ids])
        deriv = (b - a * a) + c1[ids] / (kk * kk)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = kk - g / deriv
        ok = np.isfinite(newton) & (newton > lo[ids]) & (newton < hi[ids])
        new = np.where(ok, newton, np.sqrt(lo[ids] * hi[ids]))
        done = (np.abs(new - kk) <= 1e-10 * kk) | (g == 0)
        k[ids] = new
        if done.all():
            break
        if done.any():  # converged groups drop out: each group's iterations depend on it alone
            keep = ~done
            remap = np.full(m, -1, dtype=np.int64)
            remap[keep] = np.arange(int(keep.sum()))
            sel = keep[loc]
            ids, loc, clx, csh = ids[keep], remap[loc[sel]], clx[sel], csh[sel]
    return k


def _uncensored(x: np.ndarray, group: np.ndarray, n: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per family: (shape, scale, loglik) per group, all gaps positive."""
    g_count = n.size
    lx = np.log(x)
    mean = np.bincount(group, weights=x, minlength=g_count) / n
    mlog = np.bincount(group, weights=lx, minlength=g_count) / n
    out = {}
    theta = mean
    out["Exponential"] = (np.ones(g_count), theta, -n * np.log(theta) - n)
    s = np.maximum(np.log(mean) - mlog, 1e-300)
    k = _gamma_shape(s)
    theta = mean / k
    ll = (k - 1.0) * n * mlog - n * k - n * k * np.log(theta) - n * special.gammaln(k)
    out["Gamma"] = (k, theta, ll)
    k = _weibull_shape(lx, group, n, mlog)
    top = np.full(g_count, -np.inf)
    np.maximum.at(top, group, lx)
    w = np.exp(k[group] * (lx - top[group]))
    lam = np.exp(top + np.log(np.bincount(group, weights=w, minlength=g_count) / n) / k)
    ll = n * np.log(k) - n * k * np.log(lam) + (k - 1.0) * n * mlog - n
    out["Weibull"] = (k, lam, ll)
    return out


#: A censored group's fast fit is kept when the censoring point is this far into the lower
#: tail (``δ/θ`` for the Gamma, ``(δ/λ)^k`` for the Weibull); otherwise it is refitted exactly.
_SMALL_TAIL = 1e-3


def _censored(
    x: np.ndarray, group: np.ndarray, n1: np.ndarray, n0: np.ndarray, delta: float
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Per family: (shape, scale, loglik) per group whose ``n0`` censored gaps lie below
    ``delta`` (``x`` holds the ``n1`` observed gaps of each group), and a mask of the groups
    to refit exactly.

    Deep in the lower tail the censored probability is a power law, ``ln P(k, δ/θ) ≈
    k ln(δ/θ) − ln Γ(k+1)`` (Gamma) and ``ln(1 − e^{−(δ/λ)^k}) ≈ k ln(δ/λ)`` (Weibull), with
    relative errors of order ``δ/θ`` and ``(δ/λ)^k``. With it, the scale has a closed form for
    a given shape (``θ = Σx / (n k)``; ``λ^k = Σx^k / n``), the Gamma shape maximizes the
    profile likelihood (golden-section search in ln k) and the Weibull shape solves the same
    kind of equation as without censoring. The log-likelihoods are evaluated exactly at the
    estimates. Groups where the Gamma's tail is not deep enough (``> _SMALL_TAIL``) are flagged
    for an exact refit. The Weibull is fitted exactly (:func:`_weibull_censored`), from the
    power-law estimate."""
    g_count = n1.size
    n = n1 + n0
    lx = np.log(x)
    sx = np.bincount(group, weights=x, minlength=g_count)
    sl = np.bincount(group, weights=lx, minlength=g_count)
    ld = math.log(delta)
    out = {}
    beta = n / sx
    out["Exponential"] = (np.ones(g_count), 1.0 / beta, n1 * np.log(beta) - beta * sx + n0 * np.log(-np.expm1(-beta * delta)))

    def profile(u: np.ndarray) -> np.ndarray:
        k = np.exp(u)
        return (k - 1) * sl - n * k + n * k * np.log(n * k / sx) - n1 * special.gammaln(k) + n0 * (k * ld - special.gammaln(k + 1))

    a, b = np.full(g_count, math.log(_SHAPE_MIN)), np.full(g_count, math.log(_SHAPE_MAX))
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = profile(c), profile(d)
    for _ in range(70):
        left = fc > fd  # the maximum lies in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        c_new, d_new = b - r * (b - a), a + r * (b - a)
        fc, fd = np.where(left, profile(c_new), fd), np.where(left, fc, profile(d_new))
        c, d = np.where(left, c_new, d), np.where(left, c, d_new)
    k = np.exp((a + b) / 2)
    theta = sx / (n * k)
    with np.errstate(divide="ignore"):
        ln_p = np.log(special.gammainc(k, delta / theta))
    out["Gamma"] = (k, theta, (k - 1) * sl - sx / theta - n1 * (k * np.log(theta) + special.gammaln(k)) + n0 * ln_p)
    refit = delta / theta > _SMALL_TAIL

    k_approx = _weibull_shape(lx, group, n1.astype(np.float64), sl / n1, c1=n1 / n, c0=(sl + n0 * ld) / n)
    out["Weibull"] = _weibull_censored(lx, group, n1, n0, sl, ld, k_approx)
    return out, refit


def _phi(q: np.ndarray) -> np.ndarray:
    """``q / (e^q − 1)``, 1 at 0 and 0 at infinity."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.where(q < 1e-8, 1.0 - q / 2, q / np.expm1(q))


def _weibull_censored(
    lx: np.ndarray, group: np.ndarray, n1: np.ndarray, n0: np.ndarray, sl: np.ndarray, ld: float, k_start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Weibull MLE of groups with ``n0`` gaps censored below ``δ = e^ld``, all at once.

    With ``μ = λ^{−k}``, ``T(k) = Σ x^k`` and ``q = μ δ^k``, the log-likelihood is
    ``n1 ln k + n1 ln μ + (k−1) Σ ln x − μ T + n0 ln(1 − e^{−q})``. For a given k it is
    concave in μ, maximal where ``μ T = n1 + n0 φ(q)``, ``φ(q) = q / (e^q − 1)`` (solved by
    bisection in ln q); the profile's derivative in k is then ``n1/k + Σ ln x − (n1 + n0 φ)
    A(k) + n0 ln δ φ`` with ``A(k) = Σ x^k ln x / T``, positive at small k and negative at
    large k; its root is found by bisection in ln k, first within a factor 4 of ``k_start``.
    Returns (shape, scale λ, loglik) per group."""
    g_count = n1.size
    top = np.full(g_count, -np.inf)
    np.maximum.at(top, group, lx)
    shifted = lx - top[group]
    n = n1 + n0

    def inner(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ln q, φ(q), ln μ and A(k) at the optimal μ for shape k."""
        w = np.exp(k[group] * shifted)
        sw = np.bincount(group, weights=w, minlength=g_count)
        a = np.bincount(group, weights=w * lx, minlength=g_count) / sw
        ln_r = k * (top - ld) + np.log(sw)  # ln(T / δ^k)
        lo, hi = np.log(n1) - ln_r, np.log(n) - ln_r  # ln q lies between (φ in (0, 1])
        s = hi
        done = np.zeros(s.shape, dtype=bool)
        for _ in range(30):  # safeguarded Newton on F(s) = s + ln R − ln(n1 + n0 φ(e^s)), increasing
            q = np.exp(s)
            phi = _phi(q)
            f = s + ln_r - np.log(n1 + n0 * phi)
            lo, hi = np.where(f < 0, s, lo), np.where(f > 0, s, hi)
            deriv = 1.0 - n0 * phi * (1.0 - phi - q) / (n1 + n0 * phi)  # q φ'(q) = φ (1 − φ − q)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = s - f / deriv
            new = np.where(np.isfinite(step) & (step > lo) & (step < hi), step, (lo + hi) / 2)
            # a converged group keeps its root: each group's iterations depend on it alone
            converged = np.abs(new - s) <= 1e-12 * np.maximum(1.0, np.abs(s))
            s = np.where(done, s, new)
            done |= converged
            if done.all():
                break
        ln_q = s
        return ln_q, _phi(np.exp(ln_q)), ln_q - k * ld, a

    def slope(k: np.ndarray) -> np.ndarray:
        _, phi, _, a = inner(k)
        return n1 / k + sl - (n1 + n0 * phi) * a + n0 * ld * phi

    lo = np.log(np.clip(k_start / 4, _SHAPE_MIN, _SHAPE_MAX))
    hi = np.log(np.clip(k_start * 4, _SHAPE_MIN, _SHAPE_MAX))
    outside = (slope(np.exp(lo)) < 0) | (slope(np.exp(hi)) > 0)
    lo = np.where(outside, math.log(_SHAPE_MIN), lo)
    hi = np.where(outside, math.log(_SHAPE_MAX), hi)
    for _ in range(45):
        mid = (lo + hi) / 2
        up = slope(np.exp(mid)) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    k = np.exp((lo + hi) / 2)
    ln_q, phi, ln_mu, _ = inner(k)
    with np.errstate(divide="ignore"):
        ll = n1 * (np.log(k) + ln_mu) + (k - 1) * sl - (n1 + n0 * phi) + n0 * np.log(-np.expm1(-np.exp(ln_q)))
    return k, np.exp(-ln_mu / k), ll


def _censored_one(x: np.ndarray, n0: int, delta: float) -> dict[str, tuple[float, float, float]]:
    """Per family: (shape, scale, loglik) of one group with ``n0`` more gaps known to be < ``delta``."""
    n1 = x.size
    sx, slx, mean = float(x.sum()), float(np.log(x).sum()), float(x.mean())
    out: dict[str, tuple[float, float, float]] = {}

    def nll_exp(p: np.ndarray) -> float:
        if not abs(p[0]) < 700:
            return math.inf
        th = math.exp(p[0])
        return -(-n1 * p[0] - sx / th + n0 * math.log(-math.expm1(-delta / th)))

    r = optimize.minimize(nll_exp, [math.log(mean)], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-10})
    out["Exponential"] = (1.0, math.exp(r.x[0]), -float(r.fun))

    def nll_gamma(p: np.ndarray) -> float:
        if not (abs(p[0]) < 50 and abs(p[1]) < 700):
            return math.inf
        k, th = math.exp(p[0]), math.exp(p[1])
        if not (_SHAPE_MIN <= k <= _SHAPE_MAX):
            return math.inf
        cdf = special.gammainc(k, delta / th)
        if cdf <= 0:
            return math.inf
        ll = (k - 1.0) * slx - sx / th - n1 * (k * p[1] + special.gammaln(k)) + n0 * math.log(cdf)
        return -ll

    def nll_weibull(p: np.ndarray) -> float:
        if not (abs(p[0]) < 50 and abs(p[1]) < 700):
            return math.inf
        k, lam = math.exp(p[0]), math.exp(p[1])
        if not (_SHAPE_MIN <= k <= _SHAPE_MAX):
            return math.inf
        z = (x / lam) ** k
        cdf = -math.expm1(-((delta / lam) ** k))
        if cdf <= 0 or not np.isfinite(z).all():
            return math.inf
        ll = n1 * (p[0] - k * p[1]) + (k - 1.0) * slx - float(z.sum()) + n0 * math.log(cdf)
        return -ll

    share0 = n0 / (n0 + n1)
    for fam, nll in (("Gamma", nll_gamma), ("Weibull", nll_weibull)):
        # starting points: shapes from Poisson-like to very bursty, the scale matching either
        # the observed mean or the censored share (F(delta) ~ (delta/scale)^k for small k);
        # Nelder-Mead runs from the two best
        starts = []
        for k0 in (1.0, 0.3, 0.05, 0.01, 0.002):
            th0 = mean / k0 if fam == "Gamma" else mean
            for ls in (math.log(th0), math.log(max(delta, 1e-300)) - math.log(share0) / k0):
                start = (math.log(k0), ls)
                if all(np.isfinite(start)):
                    starts.append((nll(np.array(start)), start))
        starts = sorted((v, st) for v, st in starts if np.isfinite(v))[:2]
        best = None
        for _, start in starts:
            r = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
            if np.isfinite(r.fun) and (best is None or r.fun < best.fun):
                best = r
        if best is not None:
            out[fam] = (math.exp(best.x[0]), math.exp(best.x[1]), -float(best.fun))
    return out


def fit_gap_groups(gaps: np.ndarray, group: np.ndarray, n_groups: int, *, censor_below: float = 0.0) -> pl.DataFrame:
    """Maximum-likelihood Gamma, Weibull and exponential fits (location 0) of many groups of gaps,
    the family of each group chosen by BIC.

    ``gaps[i]`` belongs to group ``group[i]`` (``0 <= group < n_groups``). Gaps shorter than
    ``censor_below`` (e.g. recorded as 0 below the timestamp resolution) are *censored*: they
    add ``ln F(censor_below)`` to the log-likelihood instead of a density, so ties never pull
    a shape towards 0. Uncensored groups are solved all at once: the Gamma shape by Minka's
    Newton iteration on ``ln k − ψ(k) = ln mean(x) − mean(ln x)``, the Weibull shape by a
    bracketed Newton search of its profile-likelihood equation (the estimates of
    ``scipy.stats.<dist>.fit(x, floc=0)``). Groups with censored gaps are solved together too
    (see :func:`_censored`): the Weibull exactly, the Gamma through the power-law form of its
    lower tail, refitted one group at a time (Nelder–Mead on the log-parameters) when the
    censoring point is not deep in that tail. ``bic = p ln n − 2 loglik`` with ``p = 1`` for the
    exponential and 2 otherwise, ``n`` all gaps of the group; the lowest wins, ties going to
    the family earlier in :data:`GAP_FAMILIES`.

    Returns one row per group that could be fitted (at least two different uncensored
    gaps): ``group, n, censored, family, shape, scale, bic_exponential, bic_gamma,
    bic_weibull``. ``scale`` is the Gamma's ``θ`` (mean ``kθ``), the Weibull's ``λ`` or the
    exponential's mean.
    """
    x = np.asarray(gaps, dtype=np.float64)
    grp = np.asarray(group, dtype=np.int64)
    if x.shape != grp.shape:
        msg = f"gaps and group must have the same length, got {x.size} and {grp.size}"
        raise ValueError(msg)
    if x.size and (not np.isfinite(x).all() or x.min() < 0):
        msg = "gaps must be finite and non-negative"
        raise ValueError(msg)
    if x.size and (grp.min() < 0 or grp.max() >= n_groups):
        msg = f"group must lie in [0, {n_groups})"
        raise ValueError(msg)
    cens = (x < censor_below) | (x <= 0)
    n_all = np.bincount(grp, minlength=n_groups)
    n0 = np.bincount(grp, weights=cens, minlength=n_groups).astype(np.int64)
    obs = ~cens
    xo, go = x[obs], grp[obs]
    n1 = np.bincount(go, minlength=n_groups)
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, go, xo)
    np.maximum.at(hi, go, xo)
    fittable = (n1 >= 2) & (hi > lo * (1 + 1e-12))
    shape = {f: np.full(n_groups, np.nan) for f in GAP_FAMILIES}
    scale = {f: np.full(n_groups, np.nan) for f in GAP_FAMILIES}
    ll = {f: np.full(n_groups, -np.inf) for f in GAP_FAMILIES}

    plain = fittable & (n0 == 0)
    if plain.any():
        ids = np.flatnonzero(plain)
        remap = np.full(n_groups, -1, dtype=np.int64)
        remap[ids] = np.arange(ids.size)
        sel = remap[go] >= 0
        got = _uncensored(xo[sel], remap[go[sel]], n1[ids].astype(np.float64))
        for f, (k, sc, lk) in got.items():
            shape[f][ids], scale[f][ids], ll[f][ids] = k, sc, lk
    mixed = np.flatnonzero(fittable & (n0 > 0))
    refit = np.empty(0, dtype=np.int64)
    if mixed.size:
        remap = np.full(n_groups, -1, dtype=np.int64)
        remap[mixed] = np.arange(mixed.size)
        sel = remap[go] >= 0
        got, slow = _censored(xo[sel], remap[go[sel]], n1[mixed].astype(np.float64), n0[mixed].astype(np.float64), float(censor_below))
        for f, (k, sc, lk) in got.items():
            shape[f][mixed], scale[f][mixed], ll[f][mixed] = k, sc, lk
        refit = mixed[slow]
    if refit.size:
        order = np.argsort(go, kind="stable")
        bounds = np.searchsorted(go[order], np.arange(n_groups + 1))
        for j in refit:
            got = _censored_one(xo[order[bounds[j] : bounds[j + 1]]], int(n0[j]), float(censor_below))
            for f, (k, sc, lk) in got.items():
                shape[f][j], scale[f][j], ll[f][j] = k, sc, lk

    ids = np.flatnonzero(fittable)
    with np.errstate(divide="ignore"):
        logn = np.log(n_all[ids].astype(np.float64))
    bic = {}
    for f in GAP_FAMILIES:
        p = 1.0 if f == "Exponential" else 2.0
        lk = ll[f][ids]
        bic[f] = np.where(np.isfinite(lk) & np.isfinite(shape[f][ids]) & (scale[f][ids] > 0), p * logn - 2.0 * lk, np.inf)
    stack = np.vstack([bic[f] for f in GAP_FAMILIES])
    best = np.argmin(stack, axis=0)
    any_ok = np.isfinite(stack).any(axis=0)
    fams = np.array(GAP_FAMILIES)[best]
    pick = lambda d: np.choose(best, [d[f][ids] for f in GAP_FAMILIES])  # noqa: E731
    table = pl.DataFrame(
        {
            "group": ids,
            "n": n_all[ids],
            "censored": n0[ids],
            "family": fams,
            "shape": pick(shape),
            "scale": pick(scale),
            "bic_exponential": bic["Exponential"],
            "bic_gamma": bic["Gamma"],
            "bic_weibull": bic["Weibull"],
        },
        schema=FIT_SCHEMA,
    )
    return table.filter(pl.Series(any_ok))


# --------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------


def length_correlation(trace: pl.DataFrame, *, input_field: str = "input_tokens", output_field: str = "output_tokens") -> float:
    """The Gaussian-copula correlation of input and output lengths in ``trace``.

    Computed from the Spearman rank correlation ``r_s`` (average ranks for ties) of the two
    columns as ``2 sin(π r_s / 6)``, the inverse of the copula's ``r_s = 6/π asin(ρ/2)``: the
    value to put in a spec's ``length_correlation`` so that composed input and output
    lengths keep the source's rank correlation. Rows where either column is null are left
    out; fewer than 3 rows, or a constant column, is an error.
    """
    for c in (input_field, output_field):
        if c not in trace.columns:
            msg = f"the trace has no column {c!r}"
            raise ValueError(msg)
    pair = trace.select(pl.col(input_field).cast(pl.Float64), pl.col(output_field).cast(pl.Float64)).drop_nulls()
    if pair.height < 3:
        msg = f"need at least 3 requests with both {input_field} and {output_field}, got {pair.height}"
        raise ValueError(msg)
    a, b = pair[input_field].to_numpy(), pair[output_field].to_numpy()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        msg = f"{input_field} or {output_field} is constant: no correlation to fit"
        raise ValueError(msg)
    r_s = float(stats.spearmanr(a, b).statistic)
    return float(np.clip(2.0 * math.sin(math.pi * r_s / 6.0), -1.0, 1.0))


# --------------------------------------------------------------------------------------------
# The pool
# --------------------------------------------------------------------------------------------


#: A timestamp grid at least this many mean gaps wide (cells holding half a request or more)
#: leaves too little sub-grid timing for a censored likelihood: the window's Gamma shape comes
#: from the dispersion of its counts instead (:func:`grid_count_shapes`).
COUNT_FIT_LOAD = 0.5
#: Expected requests per count bin of :func:`grid_count_shapes` (bins are whole grid steps).
COUNT_FIT_EVENTS = 20
#: Fewest full count bins in a window for :func:`grid_count_shapes`.
COUNT_FIT_BINS = 8


def grid_count_shapes(
    ts: np.ndarray, cell: np.ndarray, n: np.ndarray, duration: np.ndarray, window_s: int, n_windows: int, grid_s: float
) -> np.ndarray:
    """Gamma shapes of client-windows (cells ``0 .. len(n) - 1``) from the dispersion of their
    request counts, for timestamps recorded on a grid of ``grid_s`` seconds (NaN where not used).

    ``ts`` are the (de-quantized) times sorted by ``cell`` (arrival order inside a cell),
    ``n`` the requests and ``duration`` the length of every cell. A cell is used when its
    grid holds at least :data:`COUNT_FIT_LOAD` requests per step on average and it has
    :data:`COUNT_FIT_BINS` full bins of ``S`` = whole grid steps holding about
    :data:`COUNT_FIT_EVENTS` requests (bins are aligned to the grid, so their counts are the
    recorded ones, exact whatever the timing inside a step). The index of dispersion ``D`` of
    the bin counts (sample variance / mean) is matched to a Gamma renewal process's, ``D = x +
    (1 - x²) / (12 L)`` with ``x = 1 / shape`` (``x`` the squared CV) and ``L`` the expected
    count per bin (Cox's second-order expansion of the count variance), solved for ``x``.
    """
    C = len(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = n / duration
        steps = np.ceil(COUNT_FIT_EVENTS / (rate * grid_s))
    width = np.where(np.isfinite(steps) & (steps >= 1), steps, 1.0) * grid_s
    bins = np.floor(duration / width).astype(np.int64)
    use = (rate * grid_s >= COUNT_FIT_LOAD) & (bins >= COUNT_FIT_BINS) & (n > 0)
    out = np.full(C, np.nan)
    if not use.any():
        return out
    start = (np.arange(C) % n_windows) * float(window_s)
    b = np.floor((ts - start[cell]) / width[cell] + 1e-9).astype(np.int64)
    keep = use[cell] & (b >= 0) & (b < bins[cell])
    offsets = np.concatenate([[0], np.cumsum(np.where(use, bins, 0))])
    counts = np.bincount(offsets[cell[keep]] + b[keep], minlength=int(offsets[-1])).astype(np.float64)
    owner = np.repeat(np.arange(C), np.where(use, bins, 0))
    m = np.where(use, bins, 1).astype(np.float64)
    mean = np.bincount(owner, weights=counts, minlength=C) / m
    var = np.bincount(owner, weights=(counts - mean[owner]) ** 2, minlength=C) / np.maximum(m - 1, 1)
    L = mean
    with np.errstate(divide="ignore", invalid="ignore"):
        D = var / mean
        disc = 1.0 - (D - 1.0 / (12.0 * L)) / (3.0 * L)
        x = np.where(disc > 0, 6.0 * L * (1.0 - np.sqrt(np.maximum(disc, 0.0))), 6.0 * L)
    ok = use & (mean > 0) & np.isfinite(x) & (x > 0)
    out[ok] = 1.0 / np.clip(x[ok], 1.0 / _SHAPE_MAX, 1.0 / _SHAPE_MIN)
    return out


#: A grid is taken as the timestamps' resolution only with at least this many positive gaps
#: (a few gaps share large common divisors by chance: two requests 10 s apart have a 10 s "grid").
MIN_GRID_GAPS = 10


def _credible_grid(ts: np.ndarray, grid_s: float) -> bool:
    """True when the detected grid is a recording resolution, not a coincidence of few gaps:
    at least :data:`MIN_GRID_GAPS` gaps of a grid step or more, of at least two different grid
    multiples, or all one multiple with ties (gaps under half a step) between them: a grid
    whose every tick is occupied."""
    gaps = np.diff(np.sort(ts))
    steps = np.rint(gaps[gaps >= grid_s / 2] / grid_s)
    ties = int((gaps < grid_s / 2).sum())
    return steps.size >= MIN_GRID_GAPS and (np.unique(steps).size >= 2 or ties > 0)


@dataclasses.dataclass(frozen=True)
class FitInput:
    """The trace-wide part of a fit (:func:`fit_input`): options, the pool's client ids in
    order, the timestamps' resolution and the arrival and length window grids. Every
    per-client partition (:func:`fit_partition`) is fitted against it; it is small (no rows)."""

    window_s: int
    length_window_s: int
    name: str
    source: str
    seed: int
    ids: tuple[str, ...]
    grid_s: float  # the grid de-quantized (0.0: timestamps kept as recorded)
    censor_below: float
    tie_resolution: float
    warnings: tuple[str, ...]
    t_end: float
    n_windows: int
    last_duration: int
    n_length: int
    fields: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FitPart:
    """The fit of the clients ``ids`` of one partition (:func:`fit_partition`): the pool's
    frames restricted to them, their positive gaps, and their sub-window arrival models with
    ``n_tables`` gap tables (ids local to the part; :func:`merge_parts` renumbers them), or
    None when the timestamps were de-quantized or no client has :data:`MIN_MODEL_GAPS`
    positive gaps."""

    ids: tuple[str, ...]
    windows: pl.DataFrame
    gaps: pl.DataFrame
    distributions: pl.DataFrame
    length_windows: pl.DataFrame
    arrival_models: pl.DataFrame | None
    arrival_tables: pl.DataFrame | None
    n_tables: int


def client_key(client_id: str) -> int:
    """The 64-bit key of a client's random streams: the first 8 bytes of the SHA-256 of its id
    (UTF-8), so a client's draws do not depend on the other clients or on the partitioning."""
    return int.from_bytes(hashlib.sha256(client_id.encode("utf-8")).digest()[:8], "big")


def client_rng(seed: int, client_id: str, stream: int) -> np.random.Generator:
    """Client ``client_id``'s generator ``stream`` (0: de-quantization, 1: arrival models)."""
    return np.random.default_rng([int(seed), client_key(client_id), int(stream)])


def pool_from_trace(
    trace: pl.DataFrame,
    *,
    window_s: int = 600,
    length_window_s: int = 21600,
    name: str = "trace",
    per_client: bool = True,
    source: str = "",
    seed: int = 0,
) -> ClientPool:
    """Fit ``trace`` (a RequestTrace) to a :class:`~servegen_core.sources.pool.ClientPool`.

    Parameters
    ----------
    trace:
        A RequestTrace (validated here; timestamps are seconds from the trace start).
    window_s, length_window_s:
        Arrival and length window lengths in seconds; ``length_window_s`` must be a
        multiple of ``window_s``.
    name:
        The pool's name (shown by pages and reports), e.g. ``"trace/azure-conv"``.
    per_client:
        One client per ``client_id`` value (default), or a single client ``"all"``.
    source:
        Where the trace came from (a path), kept as :attr:`ClientPool.source`.
    seed:
        Seed of the random numbers (de-quantization, arrival model selection), drawn per
        client from :func:`client_rng`; the same trace and seed give the same pool.

    The fit is :func:`fit_input` (trace-wide), :func:`fit_partition` of the whole trace (one
    partition) and :func:`merge_parts`; any partitioning of the clients gives the same pool.
    """
    inp, df = fit_input(
        trace, window_s=window_s, length_window_s=length_window_s, name=name, per_client=per_client,
        source=source, seed=seed,
    )
    return merge_parts(inp, [fit_partition(inp, df)])


def fit_input(
    trace: pl.DataFrame,
    *,
    window_s: int = 600,
    length_window_s: int = 21600,
    name: str = "trace",
    per_client: bool = True,
    source: str = "",
    seed: int = 0,
) -> tuple[FitInput, pl.DataFrame]:
    """The trace-wide part of :func:`pool_from_trace` (same parameters): the :class:`FitInput`
    and the validated trace (client ``"all"`` when not ``per_client``), to be cut into client
    partitions (:func:`client_partitions`)."""
    if not (isinstance(window_s, int) and window_s > 0):
        msg = f"window_s must be a positive whole number of seconds, got {window_s!r}"
        raise ValueError(msg)
    if not (isinstance(length_window_s, int) and length_window_s > 0 and length_window_s % window_s == 0):
        msg = f"length_window_s must be a positive multiple of window_s ({window_s}), got {length_window_s!r}"
        raise ValueError(msg)
    if not (isinstance(seed, int) and seed >= 0):
        msg = f"seed must be a non-negative whole number, got {seed!r}"
        raise ValueError(msg)
    df = validate_trace(trace, source=source or name)
    if df.height == 0:
        msg = "cannot fit an empty trace"
        raise ValueError(msg)
    if not per_client:
        df = df.with_columns(pl.lit("all").alias("client_id"))
    grid_s, censor_below, tie_resolution, warnings = _resolve_timestamps(df)
    ids = sorted(df["client_id"].unique().to_list(), key=client_sort_key)
    t_max = float(df["timestamp_s"].max())  # type: ignore[arg-type]
    if grid_s > 0:
        # de-quantized times lie in [t, t + grid): the trace ends with its last grid cell
        t_end = t_max + grid_s
        n_windows = max(1, int(math.ceil(t_end / window_s)))
    else:
        t_end = t_max
        n_windows = int(math.floor(t_max / window_s)) + 1
    last_start = (n_windows - 1) * window_s
    last_duration = int(min(window_s, max(1, math.ceil(t_end - last_start))))
    n_cells = len(ids) * n_windows
    if n_cells > MAX_FIT_CELLS:
        msg = (
            f"the trace spans {n_windows:,} windows of {window_s} s for {len(ids):,} clients = {n_cells:,} "
            f"client-windows, more than {MAX_FIT_CELLS:,}; fit a shorter span, fewer clients "
            "(per_client=False) or longer windows (are the timestamps seconds from the trace start?)"
        )
        raise ValueError(msg)
    fields = tuple(f for f in FITTED_FIELDS if f in df.columns and df[f].null_count() < df.height)
    inp = FitInput(
        window_s=window_s, length_window_s=length_window_s, name=name, source=source, seed=seed, ids=tuple(ids),
        grid_s=grid_s, censor_below=censor_below, tie_resolution=tie_resolution, warnings=tuple(warnings),
        t_end=t_end, n_windows=n_windows, last_duration=last_duration,
        n_length=int(math.ceil(n_windows * window_s / length_window_s)), fields=fields,
    )
    return inp, df


def client_partitions(inp: FitInput, df: pl.DataFrame, n_parts: int) -> list[pl.DataFrame]:
    """``df`` (from :func:`fit_input`) cut into at most ``n_parts`` frames of whole clients
    (contiguous runs of ``inp.ids``, about equal in requests), rows in trace order."""
    if n_parts < 1:
        msg = f"n_parts must be at least 1, got {n_parts}"
        raise ValueError(msg)
    rank = df["client_id"].cast(pl.Enum(list(inp.ids))).to_physical().to_numpy().astype(np.int64)
    counts = np.bincount(rank, minlength=len(inp.ids))
    cum = np.cumsum(counts)
    # a client goes to the partition holding the middle of its requests
    part_of_client = np.minimum((2 * cum - counts) * n_parts // max(2 * int(cum[-1]), 1), n_parts - 1)
    part = part_of_client[rank]
    return [df.filter(pl.Series(part == p)) for p in np.unique(part_of_client)]


def fit_partition(inp: FitInput, part: pl.DataFrame) -> FitPart:
    """The fit of the clients in ``part`` (every request of each, in trace order) against the
    trace-wide ``inp``: windows, gaps, length tables and arrival models, each client's random
    draws from its own streams (:func:`client_rng`)."""
    ids = sorted(part["client_id"].unique().to_list(), key=client_sort_key)
    unknown = set(ids) - set(inp.ids)
    if unknown:
        msg = f"the partition has clients not in the fit input: {sorted(unknown)[:5]}"
        raise ValueError(msg)
    rank = part["client_id"].cast(pl.Enum(ids)).to_physical().to_numpy().astype(np.int64)
    t = part["timestamp_s"].to_numpy().astype(np.float64)
    if inp.grid_s > 0:
        # per client, in trace order: its own de-quantization draws; then client, time order
        by_client = np.argsort(rank, kind="stable")
        sizes = np.bincount(rank, minlength=len(ids))
        u = np.concatenate([client_rng(inp.seed, c, 0).random(int(k)) for c, k in zip(ids, sizes)])
        t_new = np.empty_like(t)
        t_new[by_client] = t[by_client] + u * inp.grid_s  # dequantize() with the per-client draws
        order = np.lexsort((t_new, rank))
    else:
        t_new = t
        order = np.argsort(rank, kind="stable")
    part = part[order]
    t, rank = t_new[order], rank[order]
    windows, gap_frame = _window_frames(inp, ids, rank, t)
    distributions, length_windows = _length_tables(part, ids, rank, t, inp.n_length, inp.length_window_s, inp.fields)
    models = tables = None
    n_tables = 0
    if inp.grid_s == 0.0:
        models, tables, n_tables = _arrival_models(t, rank, ids, inp)
    return FitPart(
        ids=tuple(ids), windows=windows, gaps=gap_frame, distributions=distributions, length_windows=length_windows,
        arrival_models=models, arrival_tables=tables, n_tables=n_tables,
    )


def merge_parts(inp: FitInput, parts: list[FitPart]) -> ClientPool:
    """The :class:`ClientPool` of the partitions ``parts`` (in any order; together every client
    of ``inp`` exactly once): frames concatenated in the pool's client order, arrival gap
    tables renumbered, each frame in one chunk (its Parquet bytes do not depend on the parts);
    the same pool whichever partitioning produced them."""
    position = {c: i for i, c in enumerate(inp.ids)}
    parts = sorted(parts, key=lambda p: position[p.ids[0]] if p.ids else -1)
    seen = [c for p in parts for c in p.ids]
    if seen != list(inp.ids):
        msg = f"the partitions hold {len(seen)} clients, expected each of the {len(inp.ids)} exactly once, in runs"
        raise ValueError(msg)
    arrival_models = arrival_tables = None
    if any(p.arrival_models is not None for p in parts):
        model_frames, table_frames, shift = [], [], 0
        for p in parts:
            if p.arrival_models is None or p.arrival_tables is None:
                continue
            ids_cols = [pl.when(pl.col(c) >= 0).then(pl.col(c) + shift).otherwise(pl.col(c)).alias(c)
                        for c in ("table", "state_table0", "state_table1")]
            model_frames.append(p.arrival_models.with_columns(ids_cols))
            table_frames.append(p.arrival_tables.with_columns(pl.col("table") + shift))
            shift += p.n_tables
        arrival_models = pl.concat(model_frames).rechunk()
        arrival_tables = pl.concat(table_frames).rechunk()
    return ClientPool(
        name=inp.name,
        source=inp.source,
        windows=pl.concat([p.windows for p in parts]).rechunk(),
        distributions=pl.concat([p.distributions for p in parts]).rechunk(),
        length_windows=pl.concat([p.length_windows for p in parts]).rechunk(),
        window_s=inp.window_s,
        length_window_s=inp.length_window_s,
        gaps=pl.concat([p.gaps for p in parts]).rechunk(),
        warnings=inp.warnings,
        arrival_models=arrival_models,
        arrival_tables=arrival_tables,
    )


def _window_frames(inp: FitInput, ids: list[str], rank: np.ndarray, t: np.ndarray) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The arrival windows and kept gaps of clients ``ids`` (requests at times ``t``, sorted by
    client ``rank`` then time)."""
    window_s, n_windows = inp.window_s, inp.n_windows
    n_cells = len(ids) * n_windows
    # Every (client, window) is one cell of a dense grid, numbered rank * n_windows + window in
    # the pool's order. The requests are in client, time order, so a stable sort by cell keeps
    # each cell's requests in arrival order; gaps are the differences inside a cell.
    w = np.minimum((t // window_s).astype(np.int64), n_windows - 1)
    cell = rank * n_windows + w
    order_ = np.argsort(cell, kind="stable")
    cs, ts_ = cell[order_], t[order_]
    same = cs[1:] == cs[:-1]
    gap = np.maximum(ts_[1:] - ts_[:-1], 0.0)[same]
    gcell = cs[1:][same]
    n = np.bincount(cell, minlength=n_cells)
    m = np.bincount(gcell, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_iat = np.bincount(gcell, weights=gap, minlength=n_cells) / m
        var_iat = np.bincount(gcell, weights=(gap - mean_iat[gcell]) ** 2, minlength=n_cells) / m
        cv_emp = np.sqrt(var_iat) / mean_iat

    censor_below = inp.censor_below
    has_fit, weibull, fit_shape, fit_scale, cv_emp = _fit_windows(gap, gcell, n, m, cv_emp, censor_below)

    duration = np.full(n_windows, window_s, dtype=np.int64)
    duration[-1] = inp.last_duration
    duration = np.tile(duration, len(ids))
    if censor_below >= QUANTIZED_GRID_S:
        # a coarse grid (cells holding half a request or more): the shape from count dispersion
        k_counts = grid_count_shapes(ts_, cs, n, duration, window_s, n_windows, censor_below)
        by_counts = np.isfinite(k_counts)
        fit_shape = np.where(by_counts, k_counts, fit_shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            fit_scale = np.where(by_counts, duration / np.maximum(n, 1) / k_counts, fit_scale)
            cv_emp = np.where(by_counts, 1.0 / np.sqrt(k_counts), cv_emp)
        weibull &= ~by_counts
        has_fit |= by_counts
    empty = n == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        poisson_scale = duration / n
    windows = pl.DataFrame(
        {
            "client_id": pl.Series(ids, dtype=pl.String()).gather(np.repeat(np.arange(len(ids)), n_windows)),
            "start_s": np.tile(np.arange(n_windows, dtype=np.int64) * window_s, len(ids)),
            "duration_s": duration,
            "rate_rps": n / duration,
            "cv": np.where(empty, 0.0, np.where(has_fit, cv_emp, 1.0)),
            "pattern": np.where(empty, "", np.where(has_fit & weibull, "Weibull", "Gamma")),
            "shape": np.where(empty, 0.0, np.where(has_fit, fit_shape, 1.0)),
            "scale": np.where(empty, 0.0, np.where(has_fit, fit_scale, poisson_scale)),
        },
        schema=WINDOW_SCHEMA,
    )
    gap_frame = pl.DataFrame(
        {
            "client_id": pl.Series(ids, dtype=pl.String()).gather(gcell // n_windows),
            "start_s": (gcell % n_windows) * window_s,
            "gap_s": gap,
        },
        schema=GAP_SCHEMA,
    )
    return windows, gap_frame


def _resolve_timestamps(df: pl.DataFrame) -> tuple[float, float, float, list[str]]:
    """The grid to de-quantize (0.0: none), the resolution below which gaps are censored, the
    clock resolution that decides whether exact ties are batches (0 when the grid is
    de-quantized: no tie is left), and the warnings to keep (see the module docstring)."""
    warnings: list[str] = []
    res = timestamp_resolution(df["timestamp_s"])
    censor_below = 0.0
    grid = 0.0
    tie_resolution = res.grid_s if math.isfinite(res.grid_s) else GRID_TICK_S
    if tie_resolution <= GRID_TICK_S:
        # a clock finer than the tick: its resolution is the shortest positive gap
        all_gaps = np.diff(np.sort(df["timestamp_s"].to_numpy()))
        positive = all_gaps[all_gaps > 0]
        tie_resolution = float(positive.min()) if positive.size else GRID_TICK_S
    if res.quantized and math.isfinite(res.grid_s) and _credible_grid(df["timestamp_s"].to_numpy(), res.grid_s):
        tie_resolution = 0.0
        grid = censor_below = float(res.grid_s)
        if res.share_zero_gaps >= COARSE_ZERO_SHARE:
            warnings.append(
                f"timestamps are quantized to {res.grid_s:g} s and {res.share_zero_gaps:.1%} of the gaps are 0 "
                "(requests sharing a grid cell): timing finer than the grid cannot be recovered. The fit treats "
                "gaps shorter than the grid as censored (the fitted family is extrapolated below the grid) and "
                "the kept gaps spread each request uniformly within its grid cell"
            )
    elif res.share_zero_gaps > 0:
        # ties: censored below the resolution (the tick, when the grid is a coincidence)
        censor_below = res.grid_s if math.isfinite(res.grid_s) and not res.quantized else GRID_TICK_S
    return grid, censor_below, tie_resolution, warnings


def _fit_windows(
    gap: np.ndarray, gcell: np.ndarray, n: np.ndarray, m: np.ndarray, cv_emp: np.ndarray, censor_below: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per client-window cell: whether it has a fit, whether it is Weibull, the fitted shape and
    scale, and its CV (the empirical one, or the fitted family's where gaps were censored).

    ``gap``/``gcell`` are the gaps and their cells, ``n``/``m`` the requests and gaps per cell.
    """
    n_cells = n.size
    # maximum-likelihood fit of every client-window with enough requests
    fit_cells = np.flatnonzero(n >= MIN_FIT_REQUESTS)
    remap = np.full(n_cells, -1, dtype=np.int64)
    remap[fit_cells] = np.arange(fit_cells.size)
    sel = remap[gcell] >= 0
    fitted = fit_gap_groups(gap[sel], remap[gcell[sel]], fit_cells.size, censor_below=censor_below)
    has_fit = np.zeros(n_cells, dtype=bool)
    weibull = np.zeros(n_cells, dtype=bool)
    fit_shape = np.ones(n_cells)
    fit_scale = np.ones(n_cells)
    where = fit_cells[fitted["group"].to_numpy()]
    has_fit[where] = True
    weibull[where] = (fitted["family"] == "Weibull").to_numpy()
    fit_shape[where] = fitted["shape"].to_numpy()
    fit_scale[where] = fitted["scale"].to_numpy()
    # a window with gaps below the resolution has no measurable empirical CV: its cv is the
    # fitted family's
    censored = np.zeros(n_cells, dtype=bool)
    censored[where] = (fitted["censored"] > 0).to_numpy()
    family_cv = np.where(weibull, implied_cv("Weibull", fit_shape), implied_cv("Gamma", fit_shape))
    cv_emp = np.where(censored, family_cv, cv_emp)
    # A window of clusters: enough requests, but nearly all its gaps below the resolution and
    # fewer than two different ones above it, has no likelihood fit. Its gaps, the censored
    # ones counted as 0, give a moment Gamma (shape 1/cv^2 of the mean gap) instead of Poisson.
    short = gap < censor_below
    m_short = np.bincount(gcell, weights=short, minlength=n_cells)
    clustered = (n >= MIN_FIT_REQUESTS) & ~has_fit & (m_short > 0) & (m_short < m)
    if clustered.any():
        g0 = np.where(short, 0.0, gap)
        mean0 = np.bincount(gcell, weights=g0, minlength=n_cells) / np.maximum(m, 1)
        var0 = np.bincount(gcell, weights=(g0 - mean0[gcell]) ** 2, minlength=n_cells) / np.maximum(m, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cv0 = np.sqrt(var0) / mean0
        clustered &= np.isfinite(cv0) & (cv0 > 0)
        k0 = 1.0 / cv0**2
        fit_shape = np.where(clustered, k0, fit_shape)
        fit_scale = np.where(clustered, mean0 / k0, fit_scale)
        cv_emp = np.where(clustered, cv0, cv_emp)
        has_fit |= clustered

    return has_fit, weibull, fit_shape, fit_scale, cv_emp


def _length_tables(
    df: pl.DataFrame, ids: list[str], rank: np.ndarray, t: np.ndarray, n_length: int, length_window_s: int,
    fields: tuple[str, ...],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The empirical PDFs (value -> share) per (client, length window, field), and the length
    windows with whether each holds requests."""
    # counts of each value, by sorting
    lw = np.minimum((t // length_window_s).astype(np.int64), n_length - 1)
    lcell = rank * n_length + lw  # numbered in the pool's order
    cells, franks, values, probs = [], [], [], []
    for fi, f in enumerate(fields):
        col = df[f].cast(pl.Float64)
        ok = col.is_not_null().to_numpy()
        uv, inv = np.unique(col.to_numpy()[ok], return_inverse=True)
        key, count = np.unique(lcell[ok] * uv.size + inv.ravel(), return_counts=True)
        c = key // uv.size
        total = np.bincount(c, weights=count, minlength=len(ids) * n_length)
        cells.append(c)
        franks.append(np.full(c.size, fi))
        values.append(uv[key % uv.size])
        probs.append(count / total[c])
    cell_d, frank_d, value_d, prob_d = (np.concatenate(x) for x in (cells, franks, values, probs))
    by = np.lexsort((value_d, frank_d, cell_d))  # client, window start, field, value
    cell_d = cell_d[by]
    distributions = pl.DataFrame(
        {
            "client_id": pl.Series(ids, dtype=pl.String()).gather(cell_d // n_length),
            "start_s": (cell_d % n_length) * length_window_s,
            "field": pl.Series(fields, dtype=pl.String()).gather(frank_d[by]),
            "value": value_d[by],
            "prob": prob_d[by],
        },
        schema=DISTRIBUTION_SCHEMA,
    )
    length_windows = pl.DataFrame(
        {
            "client_id": pl.Series(ids, dtype=pl.String()).gather(np.repeat(np.arange(len(ids)), n_length)),
            "start_s": np.tile(np.arange(n_length, dtype=np.int64) * length_window_s, len(ids)),
            "duration_s": np.full(len(ids) * n_length, length_window_s, dtype=np.int64),
            "active": np.bincount(lcell, minlength=len(ids) * n_length) > 0,
        },
        schema=LENGTH_WINDOW_SCHEMA,
    )
    return distributions, length_windows


def _arrival_models(
    t: np.ndarray, rank: np.ndarray, ids: list[str], inp: FitInput
) -> tuple[pl.DataFrame | None, pl.DataFrame | None, int]:
    """``ClientPool.arrival_models`` and ``arrival_tables`` (and the number of gap tables) of
    the requests at times ``t`` (client, time order) of clients ``ids[rank]``, on the pool's
    arrival windows (see the module docstring). Each client is fitted on
    its own, seeded from its arrival-model stream (:func:`client_rng`); a client with fewer than
    :data:`MIN_MODEL_GAPS` positive gaps inside its windows has none (generation then takes
    the ``mmpp`` option from its windows' CV)."""
    bounds = np.searchsorted(rank, np.arange(len(ids) + 1))
    models, table_frames, n_tables = [], [], 0
    for c, client in enumerate(ids):
        tc = t[bounds[c] : bounds[c + 1]]
        same_window = (tc[1:] // inp.window_s) == (tc[:-1] // inp.window_s)
        if int(((np.diff(tc) > 0) & same_window).sum()) < MIN_MODEL_GAPS:
            continue
        seed = int(client_rng(inp.seed, client, 1).integers(2**63))
        fit = fit_client_arrivals(
            tc, np.full(tc.size, client, dtype=object).astype(str), window_s=float(inp.window_s), model="auto",
            resolution_s=inp.tie_resolution, origin_s=0.0, end_s=inp.t_end, seed=seed,
        )
        frame = fit.windows.filter(pl.col("requests") > 0).with_columns(pl.col("start_s").round().cast(pl.Int64))
        frame = frame.select(list(ARRIVAL_MODEL_SCHEMA)).cast(ARRIVAL_MODEL_SCHEMA)
        shift = n_tables
        models.append(frame.with_columns(
            pl.when(pl.col(k) >= 0).then(pl.col(k) + shift).otherwise(pl.col(k)).alias(k)
            for k in ("table", "state_table0", "state_table1")
        ))
        tables = fit.table.tables
        if tables is not None:
            sizes = np.asarray(tables["sizes"], dtype=np.int64)
            table_of = np.repeat(np.arange(sizes.size, dtype=np.int64) + shift, sizes)
            table_frames.append(pl.DataFrame({"table": table_of, "gap": tables["gaps"]}, schema=ARRIVAL_TABLE_SCHEMA))
            n_tables += sizes.size
    if not models:
        return None, None, 0
    table_frame = pl.concat(table_frames) if table_frames else pl.DataFrame(schema=ARRIVAL_TABLE_SCHEMA)
    return pl.concat(models), table_frame, n_tables
