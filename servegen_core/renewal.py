"""Stationary renewal processes in operational time: the arrival model of :mod:`servegen_core.compose`.

A client-window is generated in *operational time*: the client's cumulative target rate
``Lambda(t)`` maps real time to a time axis on which the client sends one request per unit on
average. On that axis the window is the interval ``[0, L)`` with ``L = Lambda(end) -
Lambda(start)`` its expected request count, and the requests are the points of a stationary
renewal process with unit-mean gaps of the window's family and shape:

- Gamma with shape ``k`` (scale ``1/k``), Weibull with shape ``k`` (scale ``1/Gamma(1+1/k)``),
  exponential (Gamma ``k = 1``), or an empirical gap table rescaled to mean 1;
- started *in equilibrium*: the first point is drawn from the forward-recurrence distribution
  (density ``1 - F(x)``), i.e. a length-biased gap times an independent uniform. For Gamma
  ``k`` the length-biased gap is Gamma ``k + 1``; for Weibull ``k`` it is ``lambda * y^(1/k)``
  with ``y ~ Gamma(1 + 1/k)``; for an empirical table it is a gap drawn with probability
  proportional to its size.

Started that way the process is stationary: its intensity is 1 everywhere on ``[0, L)``,
edges included, so a window's edges carry no burst or dead zone, and the expected number of
points is exactly ``L``. (ServeGen instead draws ``n + 1`` ordinary gaps and rescales them to
span the window, which piles the first and last requests of every client onto the window
edges.) Mapping the points back through ``Lambda^-1`` gives arrivals whose rate follows the
target exactly, also within a window (ramps, steps), and whose inter-arrival CV in a window
of constant rate is the family's.

Shapes from a recorded CV: Gamma ``k = 1 / cv^2``; Weibull solves
``Gamma(1 + 2/k) / Gamma(1 + 1/k)^2 - 1 = cv^2`` by interpolation in a fixed table of
``log k`` against ``log cv`` (monotone), accurate to about 1e-6 relative in ``k``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = [
    "EXPONENTIAL",
    "GAMMA",
    "WEIBULL",
    "family_cv",
    "gamma_shape_for_cv",
    "renewal_points",
    "weibull_sample_cv_table",
    "weibull_shape_for_cv",
    "weibull_shape_for_sample_cv",
]

#: Family codes of :func:`renewal_points`.
GAMMA, WEIBULL, EXPONENTIAL = 0, 1, 2

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


def _first(rng: np.random.Generator, family: np.ndarray, shape: np.ndarray, emp: dict | None, table: np.ndarray) -> np.ndarray:
    """Forward-recurrence (equilibrium) draws: length-biased unit-mean gaps times a uniform."""
    out = np.empty(len(family), dtype=np.float64)
    g = (family == GAMMA) & (table < 0)
    w = (family == WEIBULL) & (table < 0)
    e = (family == EXPONENTIAL) & (table < 0)
    em = table >= 0
    if g.any():
        k = shape[g]
        out[g] = rng.standard_gamma(k + 1.0) / k
    if w.any():
        k = shape[w]
        y = rng.standard_gamma(1.0 + 1.0 / k)
        out[w] = np.exp(np.log(y) / k - gammaln(1.0 + 1.0 / k))
    if e.any():
        out[e] = rng.standard_gamma(2.0, int(e.sum()))
    if em.any():
        t = table[em]
        off, size = emp["offsets"][t], emp["sizes"][t]
        # gap chosen with probability proportional to its size: search the table's cumulative sum
        cum = emp["cum"]
        base = np.where(off > 0, cum[np.maximum(off - 1, 0)], 0.0)
        total = cum[off + size - 1] - base
        x = base + rng.random(len(t)) * total
        idx = np.clip(np.searchsorted(cum, x, side="right"), off, off + size - 1)
        out[em] = emp["gaps"][idx]
    return out * rng.random(len(family))


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


def renewal_points(
    rng: np.random.Generator,
    lengths: np.ndarray,
    family: np.ndarray,
    shape: np.ndarray,
    *,
    empirical: dict | None = None,
    table: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points of independent stationary unit-rate renewal processes on ``[0, lengths[i])``.

    One process per entry ``i``: family code ``family[i]`` (:data:`GAMMA`, :data:`WEIBULL`,
    :data:`EXPONENTIAL`) with ``shape[i]``, or, where ``table[i] >= 0``, the unit-mean gaps of
    table ``table[i]`` of ``empirical`` (see :func:`empirical_tables`). Returns the number of
    points of each process and their positions as fractions of ``lengths[i]`` (in ``[0, 1)``),
    concatenated process by process, increasing within a process.

    Draws are vectorized over the processes: one forward-recurrence draw each, then a batch of
    gaps sized to pass the length with high probability, then (rarely) more batches for the
    processes still short. The result depends only on ``rng``'s state and the arguments.
    """
    L = np.asarray(lengths, dtype=np.float64)
    R = len(L)
    family = np.asarray(family, dtype=np.int8)
    shape = np.asarray(shape, dtype=np.float64)
    table = np.full(R, -1, dtype=np.int64) if table is None else np.asarray(table, dtype=np.int64)
    if R == 0:
        return np.zeros(0, dtype=np.int64), np.empty(0)
    cv = np.where(table >= 0, 3.0, np.minimum(family_cv(family, shape), 3.0))
    first = _first(rng, family, shape, empirical, table)
    total = first.copy()
    need = (total < L) & (L > 0)
    parts_row: list[np.ndarray] = []
    parts_gap: list[np.ndarray] = []
    left = np.maximum(L - total, 0.0)
    while need.any():
        rows = np.flatnonzero(need)
        m = np.ceil(left[rows] + 4.0 * cv[rows] * np.sqrt(left[rows]) + 8.0).astype(np.int64)
        row_of = np.repeat(rows, m)
        gaps = _draw(rng, family[row_of], shape[row_of], empirical, table[row_of])
        parts_row.append(row_of)
        parts_gap.append(gaps)
        starts = np.concatenate([[0], np.cumsum(m)[:-1]])
        total[rows] += np.add.reduceat(gaps, starts)
        left = np.maximum(L - total, 0.0)
        need = (total < L) & (L > 0)
    if not parts_row:
        counts = (first < L).astype(np.int64)
        return counts, (first / np.where(L > 0, L, 1.0))[counts > 0]
    if len(parts_row) == 1:
        row_of, gaps = parts_row[0], parts_gap[0]
    else:
        row_of = np.concatenate(parts_row)
        order = np.argsort(row_of, kind="stable")  # keep each process's gaps in drawn order
        row_of, gaps = row_of[order], np.concatenate(parts_gap)[order]
    # points of process i: first[i], first[i] + g1, first[i] + g1 + g2, ... (running sums),
    # laid out process by process with each process's first point ahead of its gap points
    per_row = np.bincount(row_of, minlength=R)
    row_start = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    cs = np.cumsum(gaps)
    base = np.where(row_start > 0, cs[np.maximum(row_start - 1, 0)], 0.0)  # sum before each process
    pts = first[row_of] + (cs - base[row_of])
    all_pts = np.empty(R + len(gaps), dtype=np.float64)
    all_rows = np.empty(R + len(gaps), dtype=np.int64)
    head = row_start + np.arange(R)
    all_pts[head] = first
    all_rows[head] = np.arange(R)
    tail = np.arange(len(gaps)) + row_of + 1
    all_pts[tail] = pts
    all_rows[tail] = row_of
    keep = all_pts < L[all_rows]
    all_rows, all_pts = all_rows[keep], all_pts[keep]
    counts = np.bincount(all_rows, minlength=R).astype(np.int64)
    pos = all_pts / L[all_rows]
    return counts, pos


# --------------------------------------------------------------------------------------------
# Weibull shape from a sample CV
# --------------------------------------------------------------------------------------------

#: Shapes and sample sizes of :data:`WEIBULL_SAMPLE_CV` (see :func:`weibull_sample_cv_table`).
SAMPLE_CV_SHAPES = np.exp(np.linspace(np.log(0.15), np.log(1.5), 19))
SAMPLE_CV_SIZES = np.array([30, 100, 300, 1000, 3000, 10000, 30000, 100000])

#: Median sample CV (``std / mean``) of ``n`` i.i.d. Weibull gaps, row ``n`` in
#: :data:`SAMPLE_CV_SIZES`, column ``k`` in :data:`SAMPLE_CV_SHAPES`: the output of
#: ``weibull_sample_cv_table()`` (seed 0), rounded to 5 significant digits.
WEIBULL_SAMPLE_CV = np.array(
    [
    (3.955, 3.7249, 3.5081, 3.265, 2.9924, 2.7506, 2.5108, 2.2674, 2.0411, 1.8224, 1.6356, 1.456, 1.3006, 1.1597, 1.0394, 0.92624, 0.82578, 0.73672, 0.65798),
        (6.1355, 5.6231, 5.0943, 4.5552, 4.0451, 3.5747, 3.1667, 2.7756, 2.4056, 2.0963, 1.8267, 1.5978, 1.4016, 1.236, 1.0904, 0.96358, 0.85295, 0.75834, 0.67557),
        (8.5781, 7.6227, 6.6754, 5.8008, 4.9757, 4.2835, 3.6359, 3.0869, 2.6287, 2.2506, 1.9338, 1.6659, 1.4454, 1.2619, 1.1057, 0.97478, 0.86155, 0.76332, 0.67827),
        (12.547, 10.572, 8.8234, 7.3138, 6.0026, 4.9352, 4.0429, 3.3505, 2.7752, 2.3301, 1.9805, 1.6957, 1.4618, 1.2694, 1.1101, 0.9762, 0.86232, 0.7641, 0.67825),
        (16.404, 13.346, 10.726, 8.4919, 6.7457, 5.3617, 4.3082, 3.4916, 2.8656, 2.3782, 2.0019, 1.7062, 1.4678, 1.2732, 1.1127, 0.97776, 0.86296, 0.76422, 0.67854),
        (21.007, 16.378, 12.516, 9.5896, 7.4184, 5.7129, 4.4832, 3.5796, 2.9121, 2.4051, 2.0185, 1.7147, 1.4718, 1.2766, 1.1155, 0.98012, 0.86485, 0.76572, 0.67959),
        (23.975, 17.889, 13.243, 9.9341, 7.4782, 5.7495, 4.4792, 3.5678, 2.89, 2.3884, 2.0067, 1.7063, 1.467, 1.2734, 1.1124, 0.97718, 0.86268, 0.76411, 0.67845),
        (34.108, 23.429, 16.092, 11.202, 8.0884, 6.0318, 4.6182, 3.6217, 2.923, 2.3982, 2.0109, 1.7104, 1.4704, 1.2751, 1.114, 0.97827, 0.86331, 0.76444, 0.67852),
    ]
)


def weibull_sample_cv_table(seed: int = 0, *, total: int = 4_000_000) -> np.ndarray:
    """Recompute :data:`WEIBULL_SAMPLE_CV` by simulation.

    For each size ``n``, ``R = clip(total // n, 31, 1023) | 1`` samples of ``n`` unit
    exponentials ``e`` are drawn (common to every shape); a sample of Weibull ``k`` is
    ``e ** (1/k)`` and the table holds the median of its ``std / mean`` over the ``R`` samples.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(SAMPLE_CV_SIZES), len(SAMPLE_CV_SHAPES)))
    for i, n in enumerate(SAMPLE_CV_SIZES):
        r = int(np.clip(total // int(n), 31, 1023)) | 1
        le = np.log(rng.standard_exponential((r, int(n))))
        for j, k in enumerate(SAMPLE_CV_SHAPES):
            x = np.exp(le / k)
            out[i, j] = np.median(x.std(axis=1) / x.mean(axis=1))
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
    at ``n`` get its smallest shape (0.15).
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
