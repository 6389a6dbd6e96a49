"""Arrival patterns of one client-window: stationary point patterns with an exact count.

:mod:`servegen_core.generate.compose` generates a client-window in *operational time*: the client's
cumulative target rate ``Lambda(t)`` maps real time onto ``[0, L)``, ``L = Lambda(end) -
Lambda(start)`` being the window's target request count. The count is ``n``: ``L`` rounded down
or up at random so that its expectation is ``L`` (the source recorded how many requests each
window held; its rate is that count over the window's duration). The ``n`` requests are laid out
as a *stationary renewal pattern on a circle* of circumference ``L``:

- ``n`` i.i.d. unit-mean gaps of the window's family and shape are drawn: Gamma with shape
  ``k`` (scale ``1/k``), Weibull with shape ``k`` (scale ``1/Gamma(1+1/k)``), exponential, or an
  empirical gap table rescaled to mean 1;
- the points are their running sums (the first at 0), rescaled so the ``n`` gaps go once round
  the circle, and the whole pattern is rotated by a uniform random offset; the window is the
  circle cut open at 0.

The rotation makes the pattern's intensity uniform over the window, edges included, so the
window edges carry neither a burst nor a dead zone. (ServeGen instead places the first and last
of ``n + 1`` rescaled gaps at the window's start and end, which piles every client's first and
last requests onto the window edges; for Gamma ``k = 4`` it leaves a dead zone after them.) The
window's gaps are the ``n`` drawn gaps, the one across the cut split in two, all rescaled by the
same factor: their sample CV is the sample CV of ``n`` i.i.d. gaps of the family, so a window's
CV is what the family's shape gives at its size. Mapping the points back through
``Lambda^-1`` makes the rate follow the target within a window too (ramps, steps).

Shapes from a recorded CV: Gamma ``k = 1 / cv^2``; Weibull solves
``Gamma(1 + 2/k) / Gamma(1 + 1/k)^2 - 1 = cv^2`` by interpolation in a fixed table of
``log k`` against ``log cv`` (monotone), accurate to about 1e-6 relative in ``k``; and, since
a recorded CV is the CV of one window's sample of gaps, :func:`weibull_shape_for_sample_cv`
solves the shape whose *sample* CV at the window's size is the recorded one. The other way,
:func:`family_cv` gives the CV of each (family code, shape) for generation, and
:func:`implied_cv` the CV a fitted shape of a named pattern implies (for characterization
and fitting; computed through ``expm1`` of a log-gamma difference, so it differs from
:func:`family_cv` in the last bits and is ``inf`` where the ratio overflows). This module is
the one home of these shape <-> CV conversions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = [
    "PATTERNS",
    "EXPONENTIAL",
    "GAMMA",
    "WEIBULL",
    "family_cv",
    "gamma_shape_for_cv",
    "implied_cv",
    "circular_points",
    "empirical_tables",
    "weibull_sample_cv_table",
    "weibull_shape_for_cv",
    "weibull_shape_on_grid",
    "weibull_shape_for_sample_cv",
]

#: Family codes of :func:`circular_points`.
GAMMA, WEIBULL, EXPONENTIAL = 0, 1, 2

#: Names of the inter-arrival families (the ``pattern`` of a window), in the order they are reported.
PATTERNS: tuple[str, ...] = ("Gamma", "Weibull", "Exponential")

#: Shape bounds: below them a unit-mean gap under- or overflows float64 too often to be useful.
MIN_GAMMA_SHAPE = 1e-4
MIN_WEIBULL_SHAPE = 0.05
MAX_SHAPE = 1e4

_K_TABLE = np.exp(np.linspace(np.log(MIN_WEIBULL_SHAPE), np.log(MAX_SHAPE), 4001))


def _weibull_cv(k: np.ndarray) -> np.ndarray:
    """CV of a Weibull with shape ``k`` (computed in log space for small ``k``)."""
    k = np.asarray(k, dtype=np.float64)
    ratio = np.exp(gammaln(1.0 + 2.0 / k) - 2.0 * gammaln(1.0 + 1.0 / k))
    return np.sqrt(np.maximum(ratio - 1.0, 0.0))


_LOG_CV_TABLE = np.log(np.maximum(_weibull_cv(_K_TABLE), 1e-300))


def family_cv(family: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """The CV of unit-mean gaps of each (family, shape)."""
    family = np.asarray(family)
    shape = np.asarray(shape, dtype=np.float64)
    out = np.ones(np.broadcast(family, shape).shape, dtype=np.float64)
    g = family == GAMMA
    w = family == WEIBULL
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(g, 1.0 / np.sqrt(np.maximum(shape, 1e-300)), out)
        out = np.where(w, _weibull_cv(np.maximum(shape, MIN_WEIBULL_SHAPE)), out)
    return out


def implied_cv(pattern: str, shape: float | np.ndarray) -> np.ndarray:
    """CV of inter-arrival times implied by a fitted shape.

    Gamma(k): ``1/sqrt(k)``; Weibull(k): ``sqrt(Γ(1+2/k)/Γ(1+1/k)² − 1)`` (evaluated through
    log-gamma; ``inf`` where it overflows); Exponential: 1. ``nan`` where ``k <= 0``.
    """
    k = np.asarray(shape, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if pattern == "Gamma":
            out = 1.0 / np.sqrt(k)
        elif pattern == "Weibull":
            log_ratio = gammaln(1 + 2 / k) - 2 * gammaln(1 + 1 / k)
            out = np.sqrt(np.expm1(log_ratio))
        elif pattern == "Exponential":
            out = np.ones_like(k)
        else:
            msg = f"unknown pattern {pattern!r}; expected one of {PATTERNS}"
            raise ValueError(msg)
    return np.where(k > 0, out, np.nan)


def gamma_shape_for_cv(cv: np.ndarray) -> np.ndarray:
    """Gamma shape whose CV is ``cv``: ``1 / cv^2`` (clipped to the usable range)."""
    cv = np.asarray(cv, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.clip(1.0 / (cv * cv), MIN_GAMMA_SHAPE, MAX_SHAPE)


def weibull_shape_for_cv(cv: np.ndarray) -> np.ndarray:
    """Weibull shape whose CV is ``cv`` (interpolated; clipped to the usable range)."""
    cv = np.asarray(cv, dtype=np.float64)
    logcv = np.log(np.maximum(cv, 1e-300))
    # the table's CV decreases with k: interpolate on the reversed (increasing) arrays
    return np.exp(np.interp(logcv, _LOG_CV_TABLE[::-1], np.log(_K_TABLE)[::-1]))


def weibull_shape_on_grid(cv: np.ndarray, k_grid: np.ndarray, log_cv_grid: np.ndarray) -> np.ndarray:
    """Weibull shape whose CV is ``cv``, by log-log interpolation on a caller's grid: shapes
    ``k_grid`` (increasing) and ``log_cv_grid = log(implied_cv("Weibull", k_grid))``; outside
    the grid the end shapes are returned. The demo data is built on its own grid this way."""
    return np.exp(np.interp(-np.log(cv), -log_cv_grid, np.log(k_grid)))


def _draw(rng: np.random.Generator, family: np.ndarray, shape: np.ndarray, emp: dict | None, table: np.ndarray) -> np.ndarray:
    """Unit-mean gaps, one per entry (family/shape/table per entry)."""
    out = np.empty(len(family), dtype=np.float64)
    g = family == GAMMA
    w = family == WEIBULL
    e = family == EXPONENTIAL
    em = table >= 0
    g &= ~em
    w &= ~em
    e &= ~em
    if g.any():
        k = shape[g]
        out[g] = rng.standard_gamma(k) / k
    if w.any():
        k = shape[w]
        out[w] = rng.weibull(k) * np.exp(-gammaln(1.0 + 1.0 / k))
    if e.any():
        out[e] = rng.standard_exponential(int(e.sum()))
    if em.any():
        t = table[em]
        off, size = emp["offsets"][t], emp["sizes"][t]
        idx = off + np.minimum((rng.random(len(t)) * size).astype(np.int64), size - 1)
        out[em] = emp["gaps"][idx]
    return out


def empirical_tables(gaps: list[np.ndarray]) -> dict:
    """Concatenated unit-mean gap tables (``gaps``, ``offsets``, ``sizes``, ``cum``) for
    :func:`renewal_points`; a table whose gaps are empty or all zero is left empty (size 0)."""
    arrays = []
    for g in gaps:
        g = np.asarray(g, dtype=np.float64)
        g = g[np.isfinite(g) & (g >= 0)]
        m = float(g.mean()) if len(g) else 0.0
        arrays.append(g / m if m > 0 else np.empty(0))
    sizes = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    flat = np.concatenate(arrays) if arrays else np.empty(0)
    return {"gaps": flat, "offsets": offsets, "sizes": sizes, "cum": np.cumsum(flat)}


def circular_points(
    rng: np.random.Generator,
    counts: np.ndarray,
    family: np.ndarray,
    shape: np.ndarray,
    *,
    empirical: dict | None = None,
    table: np.ndarray | None = None,
) -> np.ndarray:
    """Positions (fractions of the window, in ``[0, 1)``) of ``counts[i]`` points per pattern.

    Pattern ``i`` has gaps of family code ``family[i]`` (:data:`GAMMA`, :data:`WEIBULL`,
    :data:`EXPONENTIAL`) with ``shape[i]``, or, where ``table[i] >= 0``, the unit-mean gaps of
    table ``table[i]`` of ``empirical`` (see :func:`empirical_tables`); it is laid round a
    circle and rotated at random (see the module docstring). Positions are concatenated
    pattern by pattern, in drawn order (not sorted). Draws: the gaps of all patterns, then one
    uniform offset per pattern.
    """
    n = np.asarray(counts, dtype=np.int64)
    R = len(n)
    family = np.asarray(family, dtype=np.int8)
    shape = np.asarray(shape, dtype=np.float64)
    table = np.full(R, -1, dtype=np.int64) if table is None else np.asarray(table, dtype=np.int64)
    total_n = int(n.sum())
    row_of = np.repeat(np.arange(R), n)
    gaps = _draw(rng, family[row_of], shape[row_of], empirical, table[row_of])
    offset = rng.random(R)
    if total_n == 0:
        return np.empty(0)
    has = n > 0
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    sums = np.add.reduceat(gaps, starts[has])
    bad = ~(np.isfinite(sums) & (sums > 0))
    if bad.any():
        # all gaps underflowed to 0 (or one overflowed): even spacing in that pattern
        for s0, m in zip(starts[has][bad], n[has][bad]):
            gaps[s0 : s0 + m] = 1.0
        sums = np.add.reduceat(gaps, starts[has])
    total = np.zeros(R)
    total[has] = sums
    # running sums within each pattern, the first point at 0 (exclusive sums), of the gaps
    # rescaled to sum to 1 per pattern (so the running sum over all patterns stays small)
    y = gaps / total[row_of]
    cs = np.cumsum(y)
    before = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
    pos = (cs - y - before[row_of]) + offset[row_of]
    pos -= np.floor(pos)
    return np.minimum(np.maximum(pos, 0.0), np.nextafter(1.0, 0.0))


# --------------------------------------------------------------------------------------------
# Weibull shape from a sample CV
# --------------------------------------------------------------------------------------------

#: Shapes and sample sizes of :data:`WEIBULL_SAMPLE_CV` (see :func:`weibull_sample_cv_table`).
SAMPLE_CV_SHAPES = np.exp(np.linspace(np.log(0.06), np.log(1.5), 29))
SAMPLE_CV_SIZES = np.array([30, 100, 300, 1000, 3000, 10000, 30000, 100000])

#: Median sample CV (``std / mean``) of the gaps observed in a window holding ``n`` requests of a
#: stationary Weibull pattern (``n`` i.i.d. gaps less the one across the window's edge), row
#: ``n`` in :data:`SAMPLE_CV_SIZES`, column ``k`` in :data:`SAMPLE_CV_SHAPES`: the output of
#: ``weibull_sample_cv_table()`` (seed 0), rounded to 5 significant digits.
WEIBULL_SAMPLE_CV = np.array(
    [
        (4.6864, 4.5885, 4.4358, 4.2849, 4.1288, 3.958, 3.7999, 3.642, 3.4604, 3.3087, 3.1376, 2.9572, 2.7713, 2.5961, 2.4155, 2.2663, 2.0861, 1.9202, 1.7564, 1.6069, 1.4649, 1.3257, 1.2025, 1.088, 0.98378, 0.89049, 0.80674, 0.72837, 0.65698),
        (7.8137, 7.5272, 7.1718, 6.8865, 6.6146, 6.2761, 5.9103, 5.5811, 5.2409, 4.8798, 4.5332, 4.1823, 3.8606, 3.5419, 3.2044, 2.8818, 2.5889, 2.3088, 2.0567, 1.8285, 1.6261, 1.4496, 1.2906, 1.1528, 1.0318, 0.92751, 0.83366, 0.74975, 0.67456),
        (12.463, 12.006, 11.47, 10.872, 10.26, 9.6355, 8.8983, 8.2481, 7.6206, 6.8843, 6.2322, 5.6297, 4.9767, 4.3842, 3.8445, 3.3319, 2.9004, 2.5273, 2.2094, 1.931, 1.6963, 1.4967, 1.3234, 1.1744, 1.0453, 0.93444, 0.83793, 0.75306, 0.67741),
        (20.87, 19.739, 18.469, 17.372, 16.063, 14.824, 13.496, 12.26, 10.872, 9.6789, 8.5103, 7.3078, 6.2312, 5.2577, 4.4307, 3.7471, 3.17, 2.6988, 2.3118, 1.9948, 1.7333, 1.5158, 1.3348, 1.1811, 1.0496, 0.93672, 0.83903, 0.75296, 0.67737),
        (32.788, 30.787, 28.857, 26.28, 24.051, 21.688, 19.132, 16.734, 14.503, 12.406, 10.503, 8.6853, 7.1088, 5.8433, 4.8002, 3.9827, 3.3173, 2.7894, 2.3643, 2.0291, 1.7559, 1.5327, 1.3471, 1.1895, 1.0561, 0.94146, 0.84224, 0.75575, 0.67933),
        (54.584, 51.169, 47.143, 42.708, 37.419, 33.724, 28.913, 24.696, 20.627, 16.689, 13.142, 10.335, 8.1774, 6.4503, 5.1546, 4.1567, 3.4176, 2.842, 2.396, 2.0478, 1.7661, 1.5366, 1.3479, 1.1905, 1.0567, 0.94233, 0.84285, 0.75605, 0.67956),
        (87.949, 80.533, 71.742, 63.355, 53.976, 44.966, 36.511, 29.651, 23.896, 18.753, 14.51, 11.07, 8.6438, 6.6735, 5.2452, 4.2201, 3.4337, 2.8541, 2.4022, 2.047, 1.7663, 1.5383, 1.3497, 1.191, 1.0572, 0.9424, 0.84296, 0.75585, 0.67901),
        (128.99, 119.33, 108.53, 92.502, 79.831, 65.701, 50.907, 39.578, 29.609, 21.911, 16.117, 11.826, 8.8792, 6.7988, 5.3397, 4.2516, 3.456, 2.8654, 2.4086, 2.0503, 1.7656, 1.5362, 1.3475, 1.1897, 1.056, 0.94137, 0.84206, 0.75516, 0.67862),
    ]
)


def weibull_sample_cv_table(seed: int = 0, *, total: int = 4_000_000, rows: tuple[int, ...] | None = None) -> np.ndarray:
    """Recompute :data:`WEIBULL_SAMPLE_CV` (or only its ``rows``) by simulation.

    Row ``i`` (size ``n``) uses ``np.random.default_rng([seed, i])``: ``R = clip(total // n,
    31, 1023) | 1`` samples of ``n`` unit exponentials ``e`` and one uniform per sample, common
    to every shape. A sample of Weibull ``k`` is ``x = e ** (1/k)``; as in a window cut from a
    stationary pattern, the gap across the window's edge is not observed, so one gap, chosen
    with probability proportional to its size (by the sample's uniform), is left out; the
    table holds the median of the remaining ``n - 1`` gaps' ``std / mean``.
    """
    idx = range(len(SAMPLE_CV_SIZES)) if rows is None else rows
    out = np.full((len(SAMPLE_CV_SIZES), len(SAMPLE_CV_SHAPES)), np.nan)
    for i in idx:
        n = int(SAMPLE_CV_SIZES[i])
        rng = np.random.default_rng([seed, i])
        r = int(np.clip(total // n, 31, 1023)) | 1
        le = np.log(rng.standard_exponential((r, n)))
        u = rng.random(r)
        for j, k in enumerate(SAMPLE_CV_SHAPES):
            x = np.exp(le / k)
            cs = np.cumsum(x, axis=1)
            tot = cs[:, -1]
            cut = np.minimum((cs < (u * tot)[:, None]).sum(axis=1), n - 1)
            xc = x[np.arange(r), cut]
            mean = (tot - xc) / (n - 1)
            var = np.maximum(((x * x).sum(axis=1) - xc * xc) / (n - 1) - mean * mean, 0.0)
            out[i, j] = np.median(np.sqrt(var) / mean)
    return out


def weibull_shape_for_sample_cv(cv: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Weibull shape whose *sample* CV over ``n`` gaps has median ``cv``.

    A recorded CV is the CV of one window's observed gaps. For heavy-tailed Weibull gaps
    (shape below ~1) the sample CV of a finite window is well below the distribution's CV
    (at shape 0.3, about 0.65x over 1,000 gaps), so solving the shape from the distribution's
    CV would make the generated windows less bursty than the recorded ones. This solves it
    from :data:`WEIBULL_SAMPLE_CV` instead: the table's curve for ``n`` (interpolated in
    ``log n``; sizes outside the table use its first or last row) is inverted in
    ``log cv``/``log k``. CVs below the table's range (shapes above 1.5, where the bias is
    under 1 %) use :func:`weibull_shape_for_cv`; CVs above the largest the table reaches
    at ``n`` get its smallest shape (0.06).
    """
    cv = np.asarray(cv, dtype=np.float64)
    n = np.broadcast_to(np.asarray(n, dtype=np.float64), cv.shape)
    logn = np.log(np.clip(n, SAMPLE_CV_SIZES[0], SAMPLE_CV_SIZES[-1]))
    grid = np.log(SAMPLE_CV_SIZES.astype(np.float64))
    i = np.clip(np.searchsorted(grid, logn, side="right") - 1, 0, len(grid) - 2)
    w = ((logn - grid[i]) / (grid[i + 1] - grid[i]))[..., None]
    logt = np.log(WEIBULL_SAMPLE_CV)
    curve = (1.0 - w) * logt[i] + w * logt[i + 1]  # decreasing in k along the last axis
    curve = np.minimum.accumulate(curve, axis=-1)
    logc = np.log(np.maximum(cv, 1e-300))[..., None]
    # j = number of table shapes whose sample CV exceeds cv: cv lies between columns j-1 and j
    j = (curve > logc).sum(axis=-1)
    logk = np.log(SAMPLE_CV_SHAPES)
    jj = np.clip(j, 1, len(logk) - 1)
    c0 = np.take_along_axis(curve, (jj - 1)[..., None], -1)[..., 0]
    c1 = np.take_along_axis(curve, jj[..., None], -1)[..., 0]
    frac = np.where(c0 > c1, (c0 - logc[..., 0]) / np.where(c0 > c1, c0 - c1, 1.0), 0.0)
    k = np.exp(logk[jj - 1] + np.clip(frac, 0.0, 1.0) * (logk[jj] - logk[jj - 1]))
    k = np.where(j == 0, SAMPLE_CV_SHAPES[0], k)
    return np.where(j >= len(logk), weibull_shape_for_cv(cv), k)
