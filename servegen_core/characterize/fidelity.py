"""Fidelity scorecard: how closely a generated workload reproduces a source trace, with sampling noise.

:func:`fidelity` compares two RequestTraces (the *source*, usually a real trace, and the
*generated* workload) line by line. Every line is a two-sample statistical test: its
threshold comes from the sample sizes (or from the spread of the statistic over the trace's
own time segments), never from a constant. A line passes when the difference between the
two traces is within what sampling noise explains at the line's significance level.

Significance
    ``alpha`` (default 0.01) is the family-wise error rate of the whole report: each decided
    line is tested at ``alpha / m`` (Bonferroni, ``m`` decided lines), so that a generated
    workload drawn from the same process as the source fails the report (any line) with
    probability at most ``alpha``.

Effective sample sizes
    Successive requests are not independent (bursts, sessions, diurnal drift), so a KS or
    proportion test with the raw counts would be overconfident. For every series a test uses
    (gaps, lengths, run lengths, the rank products of the correlation; in time order), the variance
    inflation ``f = b · var(batch means) / var(series)`` of the indicators ``x <= q`` at the
    series' 10/25/50/75/90 % quantiles (batches of ``b = floor(sqrt(n))`` consecutive values)
    is measured, its maximum taken (at least 1), and the test uses ``n_eff = n / f``.

Lines
    ``requests``
        Request count. Noise: a count over the span has variance ``D·N``, with ``D`` the
        trace's index of dispersion at the longest timescale with a verdict (1 if none); the
        difference is tested against ``z·sqrt(D_s·N_s + D_g·N_g)``.
    ``dispersion_<scale>`` (``10ms``, ``100ms``, ``1s``, ``10s``, ``60s``, ``600s``)
        Index of dispersion of the whole trace's per-bin request counts (what a server sees;
        sample variance / mean over the trace's span
        ``[first, last]`` request, full bins only), generated / source. Noise: the standard
        error of ``log D`` of each trace by a delete-one-group jackknife over
        ``min(bins, 20)`` contiguous groups of bins (it captures the heavy tails and the
        short-range correlation of bursty counts, which the chi-square law of a sample
        variance assumes away); the band is ``exp(±t·sqrt(se_s² + se_g²))`` with Student
        ``t`` at ``2·(groups - 1)`` degrees of freedom. A scale with fewer than
        :data:`MIN_BINS` bins in either trace has no verdict. On a source whose timestamps
        are on a grid of ``g >= 1 ms`` (:func:`servegen_core.sources.traces.timestamp_resolution`),
        a scale below ``g`` only measures the grid and has no verdict; other scales use bins
        of a whole number of grid steps (``round(scale / g) · g``, the width is in the line).
    ``interarrival_ks``
        Two-sample KS distance of the gaps between successive requests of the same client,
        pooled over clients, against the asymptotic critical value
        ``c(α)·sqrt((n+m)/(n·m))`` at the effective sizes (``c(α) = sqrt(-ln(α/2)/2)``).
        Discrete values (ties, grids) make the test conservative, never anti-conservative.
    ``zero_gaps``
        Share of those gaps that are exactly zero: two-proportion z test, effective sizes.
    ``burst_runs_ks``
        Runs of requests (whole trace, time order) each within :data:`BURST_GAP_S` (10 ms) of
        the previous: KS of the run lengths, effective sizes (values are mean run lengths; the
        detail gives the 99th percentiles).
    ``input_ks``, ``output_ks``
        KS of ``input_tokens`` / ``output_tokens`` over all requests.
    ``input_output_spearman``
        Within-client rank correlation of input and output lengths: the correlation of the
        ranks within each client (scaled to (0, 1), centred), pooled. Test on Fisher's
        ``atanh`` with variance ``1.06 / (n_eff - 3)`` per trace (Fieller et al. for Spearman).
    ``block_reuse``, ``lru_hit_ratio_<C>_blocks`` (source with ``hash_ids``)
        Block reuse (block accesses whose id occurred earlier / all accesses, as
        :func:`~servegen_core.characterize.prefix.block_reuse`) and the hit ratio of an LRU
        prefix cache of C blocks (as :func:`~servegen_core.characterize.prefix.lru_hit_ratio`,
        from its public :func:`~servegen_core.characterize.prefix.stack_distances`) at four
        capacities: the smallest where the source's curve reaches 25/50/75/90 % of its largest
        hit ratio (or ``cache_blocks``). Reuse depends on the whole history, so there is no
        per-request variance formula: every access is scored once on the whole trace, each
        trace's requests are cut into :data:`PREFIX_SEGMENTS` contiguous segments of equal
        count, and the whole-trace difference is tested against the spread of the
        segment-by-segment differences (paired t, ``segments - 1`` degrees of freedom): a
        trend both share, such as a cache warming up, cancels and only noise is left. Block
        reuse does not depend on the order of the requests (it is 1 - distinct / all blocks);
        the small-cache LRU lines are the ones that see temporal locality. A generated workload
        without ``hash_ids`` gets block ids from its prompt segments
        (:func:`~servegen_core.characterize.prefix.with_block_ids` at ``block_tokens``); with
        neither, these lines fail (it has no reuse).

Reference
    ``reference="model"`` says the source is itself a draw of the model (e.g. pool data
    regenerated from the spec): every line's name ends in ``_vs_model`` and its target says
    the check compares the model with itself.

Timestamp grids apply to every arrival line: when the source is on a grid and the generated
workload is not, the generated timestamps are floored to the grid first (what the source's
clock would have recorded), and the report's ``notes`` say so.

Everything is vectorized (one sort per series, NumPy/Polars passes, a Python step per prompt
depth for the prefix keys); a pair of 1M-request traces without ``hash_ids`` takes about 2 s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl
from scipy import stats

from servegen_core.characterize.prefix import (
    DEFAULT_BLOCK_TOKENS,
    MAX_ACCESSES,
    stack_distances,
    with_block_ids,
)
from servegen_core.result import Result
from servegen_core.schema import validate_trace
from servegen_core.sources.traces import timestamp_resolution

__all__ = [
    "BURST_GAP_S",
    "FIDELITY_SCHEMA",
    "MIN_BINS",
    "PREFIX_SEGMENTS",
    "TIMESCALES_S",
    "FidelityLine",
    "FidelityReport",
    "fidelity",
]

#: Bin widths (seconds) of the dispersion lines.
TIMESCALES_S: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0)
#: Fewest full bins (in each trace) for a dispersion verdict.
MIN_BINS = 10
#: Most contiguous groups of bins in the dispersion jackknife.
DISPERSION_GROUPS = 20
#: Requests within this gap of the previous one belong to the same burst run.
BURST_GAP_S = 0.01
#: Contiguous segments whose spread gives the noise of the prefix-reuse lines.
PREFIX_SEGMENTS = 20
#: Shares of the source's largest LRU hit ratio at which the four cache sizes are chosen.
LRU_LEVELS: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
#: Fewest values (in each trace) for a KS, proportion or correlation verdict.
MIN_SAMPLES = 20

FIDELITY_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "source_value": pl.Float64(),
    "generated_value": pl.Float64(),
    "statistic": pl.Float64(),
    "low": pl.Float64(),
    "high": pl.Float64(),
    "target": pl.String(),
    "passed": pl.Boolean(),
    "verdict": pl.String(),
    "n_source": pl.Int64(),
    "n_generated": pl.Int64(),
    "detail": pl.String(),
}

Reference = Literal["trace", "model"]


@dataclass(frozen=True)
class FidelityLine:
    """One line of the scorecard.

    ``statistic`` is what the verdict tests (a KS distance, a ratio, a difference) and
    ``low``/``high`` its acceptance band (``None`` for an open side); ``passed`` is ``None``
    when the line has no verdict (too little data, or a timescale that only measures the
    source's timestamp grid) and ``detail`` says why. ``n_source``/``n_generated`` are the
    sample sizes behind the line (gaps, requests, bins, segments).
    """

    name: str
    source_value: float | None
    generated_value: float | None
    statistic: float | None
    low: float | None
    high: float | None
    target: str
    passed: bool | None
    n_source: int
    n_generated: int
    detail: str

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"fail"`` or ``"n/a"``."""
        return "n/a" if self.passed is None else ("pass" if self.passed else "fail")


@dataclass(frozen=True)
class FidelityReport(Result):
    """The scorecard: its lines, the family-wise ``alpha`` and the per-line level used.

    ``passed`` is true when no decided line failed and at least one was decided.
    ``notes`` say what was adjusted (timestamps put on the source's grid, block ids derived).
    """

    lines: tuple[FidelityLine, ...]
    alpha: float
    line_alpha: float
    reference: str = "trace"
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every decided line passed (and there is one)."""
        decided = [ln.passed for ln in self.lines if ln.passed is not None]
        return bool(decided) and all(decided)

    def failed(self) -> list[str]:
        """Names of the lines that failed."""
        return [ln.name for ln in self.lines if ln.passed is False]

    def line(self, name: str) -> FidelityLine:
        """The line called ``name`` (KeyError naming the lines when there is none)."""
        for ln in self.lines:
            if ln.name == name:
                return ln
        msg = f"no line {name!r}; lines: {[ln.name for ln in self.lines]}"
        raise KeyError(msg)

    def to_frame(self) -> pl.DataFrame:
        """One row per line, columns :data:`FIDELITY_SCHEMA`."""
        rows = [{**asdict(ln), "verdict": ln.verdict} for ln in self.lines]
        return pl.DataFrame(rows, schema=FIDELITY_SCHEMA)

    def to_json(self) -> str:
        """The report as a JSON document (non-finite numbers as ``null``)."""

        def clean(x: object) -> object:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        doc = {
            "passed": self.passed,
            "reason": self.reason,
            "alpha": self.alpha,
            "line_alpha": self.line_alpha,
            "reference": self.reference,
            "notes": list(self.notes),
            "failed": self.failed(),
            "lines": [{k: clean(v) for k, v in {**asdict(ln), "verdict": ln.verdict}.items()} for ln in self.lines],
        }
        return json.dumps(doc, indent=2)


# --------------------------------------------------------------------------------------------
# Pending lines: statistic and noise now, threshold once the number of decided lines is known
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """A line before its threshold: ``kind`` is ``ks`` (statistic ``est`` = D, effective sizes
    ``ns``/``ng``), ``ratio`` (statistic ``exp(est)``, ``se`` of ``est`` = log ratio, ``dof``),
    ``diff`` (statistic ``est`` = generated - source, ``se``, ``dof``; with ``fisher`` the
    difference is of ``atanh`` correlations and the band is shown on the correlation) or
    ``na`` (no verdict; ``detail`` says why)."""

    name: str
    kind: Literal["ks", "ratio", "diff", "na"]
    source_value: float | None
    generated_value: float | None
    n_source: int
    n_generated: int
    what: str
    detail: str = ""
    est: float = math.nan
    se: float = math.nan
    dof: float = math.inf
    ns: float = 0.0
    ng: float = 0.0
    fisher: bool = False


def _quantile(alpha: float, dof: float) -> float:
    """Two-sided critical value of a normal (dof infinite) or Student t."""
    if not math.isfinite(dof):
        return float(stats.norm.isf(alpha / 2))
    return float(stats.t.isf(alpha / 2, max(dof, 1.0)))


def _decide(p: _Pending, alpha: float, suffix: str, model_note: str) -> FidelityLine:
    name = p.name + suffix
    if p.kind == "na":
        return FidelityLine(name, p.source_value, p.generated_value, None, None, None,
                            f"{p.what}: no verdict{model_note}", None, p.n_source, p.n_generated, p.detail)
    if p.kind == "ks":
        c = math.sqrt(-math.log(alpha / 2) / 2)
        crit = c * math.sqrt((p.ns + p.ng) / (p.ns * p.ng))
        target = f"{p.what}: KS <= {crit:.4g} (critical at alpha {alpha:.2g}, n_eff {p.ns:,.0f} / {p.ng:,.0f}){model_note}"
        return FidelityLine(name, p.source_value, p.generated_value, p.est, None, crit, target,
                            bool(p.est <= crit), p.n_source, p.n_generated, p.detail)
    q = _quantile(alpha, p.dof)
    half = q * p.se
    if p.kind == "ratio":
        low, high, stat = math.exp(-half), math.exp(half), math.exp(p.est) if math.isfinite(p.est) else p.est
        ok = bool(abs(p.est) <= half) if math.isfinite(p.est) else False
        target = f"{p.what}: generated / source in [{low:.3g}, {high:.3g}] (alpha {alpha:.2g}){model_note}"
        return FidelityLine(name, p.source_value, p.generated_value, stat, low, high, target, ok,
                            p.n_source, p.n_generated, p.detail)
    ok = bool(abs(p.est) <= half) if math.isfinite(p.est) and math.isfinite(half) else False
    if p.fisher:
        # The band on the generated correlation, given the source's.
        centre = math.atanh(max(min(p.source_value or 0.0, 1 - 1e-12), -1 + 1e-12))
        low, high = math.tanh(centre - half), math.tanh(centre + half)
        stat = p.generated_value
        target = f"{p.what}: generated in [{low:.3g}, {high:.3g}] (Fisher z, alpha {alpha:.2g}){model_note}"
    else:
        low, high, stat = -half, half, p.est
        target = f"{p.what}: generated - source in [{low:.4g}, {high:.4g}] (alpha {alpha:.2g}){model_note}"
    return FidelityLine(name, p.source_value, p.generated_value, stat, low, high, target, ok,
                        p.n_source, p.n_generated, p.detail)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _indicator_inflation(y: np.ndarray) -> float:
    """Batch-means variance inflation of a 0/1 series: ``b · var(batch means) / (p (1 - p))``
    with batches of ``b = floor(sqrt(n))`` consecutive values; at least 1."""
    n = y.size
    b = int(math.isqrt(n))
    p = float(y.mean()) if n else 0.0
    if b < 2 or p <= 0 or p >= 1:
        return 1.0
    k = n // b
    means = y[: k * b].reshape(k, b).mean(axis=1)
    return max(1.0, b * float(means.var()) / (p * (1 - p)))


def _inflation(series: np.ndarray) -> float:
    """Largest variance inflation of the indicators ``x <= q`` at the series' 10..90 % quantiles."""
    if series.size < 4:
        return 1.0
    qs = np.unique(np.quantile(series, (0.1, 0.25, 0.5, 0.75, 0.9)))
    return max(_indicator_inflation((series <= q).astype(np.float64)) for q in qs)


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS distance (exact with ties)."""
    sa, sb = np.sort(a), np.sort(b)
    grid = np.concatenate((sa, sb))
    fa = np.searchsorted(sa, grid, side="right") / sa.size
    fb = np.searchsorted(sb, grid, side="right") / sb.size
    return float(np.abs(fa - fb).max())


def _ks_line(name: str, what: str, a: np.ndarray, b: np.ndarray, value_of: Callable[[np.ndarray], float],
             detail: str = "") -> _Pending:
    """A KS line of two series (time order kept for the effective sizes)."""
    if a.size < MIN_SAMPLES or b.size < MIN_SAMPLES:
        return _Pending(name, "na", None, None, a.size, b.size, what,
                        f"fewer than {MIN_SAMPLES} values ({a.size:,} source, {b.size:,} generated)")
    fa, fb = _inflation(a), _inflation(b)
    d = _ks_distance(a, b)
    note = f"variance inflation {fa:.2f} / {fb:.2f}"
    return _Pending(name, "ks", value_of(a), value_of(b), a.size, b.size, what,
                    f"{detail}; {note}" if detail else note, est=d, ns=a.size / fa, ng=b.size / fb)


def _client_gaps(ts: np.ndarray, client: pl.Series) -> np.ndarray:
    """Gaps between successive requests of the same client, in the time order of the later one."""
    frame = pl.DataFrame({"c": client, "t": ts})
    return frame.select(pl.col("t").diff().over("c"))["t"].drop_nulls().to_numpy()


def _runs(ts: np.ndarray, gap_s: float) -> np.ndarray:
    """Lengths of the runs of requests each within ``gap_s`` of the previous (time order)."""
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], np.diff(ts) > gap_s)))
    return np.diff(np.append(starts, ts.size)).astype(np.int64)


@dataclass(frozen=True)
class _Dispersion:
    value: float
    log_se: float
    bins: int
    groups: int


def _dispersion(ts: np.ndarray, width: float) -> _Dispersion | None:
    """Index of dispersion of full-bin counts over ``[ts[0], ts[-1]]`` and the jackknife SE of its log."""
    if ts.size < 2:
        return None
    rel = ts - ts[0]
    bins = int(math.floor(rel[-1] / width + 1e-9))
    if bins < 2:
        return _Dispersion(math.nan, math.nan, bins, 0)
    idx = np.floor(rel / width + 1e-9).astype(np.int64)
    idx = idx[idx < bins]
    # idx is sorted: counts of the occupied bins by run lengths.
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    occupied = idx[starts]
    counts = np.diff(np.append(starts, idx.size)).astype(np.float64)
    groups = min(bins, DISPERSION_GROUPS)
    gid = occupied * groups // bins
    s1 = np.bincount(gid, weights=counts, minlength=groups)
    s2 = np.bincount(gid, weights=counts * counts, minlength=groups)
    # Bins per group: bins b with floor(b·groups/bins) == g.
    edges = -(-np.arange(groups + 1, dtype=np.int64) * bins // groups)
    nb = np.diff(edges).astype(np.float64)

    def index(t1: np.ndarray, t2: np.ndarray, n: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            m1 = t1 / n
            var = (t2 / n - m1 * m1) * n / (n - 1)
            return np.where((m1 > 0) & (n > 1), var / m1, np.nan)

    full = float(index(np.array([s1.sum()]), np.array([s2.sum()]), np.array([float(bins)]))[0])
    if groups < 2 or not full > 0:
        return _Dispersion(full, math.nan, bins, groups)
    loo = index(s1.sum() - s1, s2.sum() - s2, bins - nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.maximum(loo, 1e-300))
    logs = logs[np.isfinite(logs)]
    if logs.size < 2:
        return _Dispersion(full, math.nan, bins, groups)
    se = math.sqrt((logs.size - 1) / logs.size * float(((logs - logs.mean()) ** 2).sum()))
    return _Dispersion(full, se, bins, groups)


def _scale_name(width: float) -> str:
    if width < 1:
        return f"{width * 1000:g}ms"
    return f"{width:g}s"


def _centred_ranks(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Within-client ranks of input and output lengths scaled to (0, 1) and centred, time order."""
    r = frame.select(
        ((pl.col(c).rank("average").over("client_id") - 0.5) / pl.len().over("client_id") - 0.5).alias(c)
        for c in ("input_tokens", "output_tokens")
    )
    return r["input_tokens"].to_numpy(), r["output_tokens"].to_numpy()


def _spearman(u: np.ndarray, v: np.ndarray) -> float:
    den = math.sqrt(float((u * u).sum()) * float((v * v).sum()))
    return float((u * v).sum()) / den if den > 0 else math.nan


# --------------------------------------------------------------------------------------------
# Line groups
# --------------------------------------------------------------------------------------------


def _dispersion_lines(ts_s: np.ndarray, ts_g: np.ndarray, grid: float) -> tuple[list[_Pending], tuple[float, float] | None]:
    """The dispersion lines, and the (source, generated) dispersion at the longest scale with a verdict."""
    lines: list[_Pending] = []
    longest: tuple[float, float] | None = None
    for scale in TIMESCALES_S:
        name = f"dispersion_{_scale_name(scale)}"
        what = f"index of dispersion of {_scale_name(scale)} counts"
        if grid > 0 and scale < grid * (1 - 1e-9):
            lines.append(_Pending(name, "na", None, None, 0, 0, what,
                                  f"measures the source's {_scale_name(grid)} timestamp grid, not its traffic"))
            continue
        width = round(scale / grid) * grid if grid > 0 else scale
        ds, dg = _dispersion(ts_s, width), _dispersion(ts_g, width)
        bins_s = ds.bins if ds else 0
        bins_g = dg.bins if dg else 0
        vs = ds.value if ds else None
        vg = dg.value if dg else None
        width_note = f"bins of {_scale_name(width)} (whole steps of the source's grid); " if width != scale else ""
        if bins_s < MIN_BINS or bins_g < MIN_BINS:
            lines.append(_Pending(name, "na", vs, vg, bins_s, bins_g, what,
                                  f"{width_note}fewer than {MIN_BINS} full bins ({bins_s} source, {bins_g} generated)"))
            continue
        if not (math.isfinite(ds.log_se) and math.isfinite(dg.log_se)):
            # A trace with a constant count in every bin (D = 0): equal only if both are.
            same = bool(vs == vg)
            lines.append(_Pending(name, "ratio", vs, vg, bins_s, bins_g, what,
                                  f"{width_note}degenerate counts (no spread to estimate noise from)",
                                  est=0.0 if same else math.inf, se=0.0, dof=math.inf))
            continue
        longest = (ds.value, dg.value)
        dof = float(ds.groups - 1 + dg.groups - 1)
        lines.append(_Pending(
            name, "ratio", vs, vg, bins_s, bins_g, what,
            f"{width_note}jackknife over {ds.groups} / {dg.groups} groups of bins; se(log D) "
            f"{ds.log_se:.3g} / {dg.log_se:.3g}",
            est=math.log(max(dg.value, 1e-300) / max(ds.value, 1e-300)),
            se=math.hypot(ds.log_se, dg.log_se), dof=dof,
        ))
    return lines, longest


def _count_line(n_s: int, n_g: int, longest: tuple[float, float] | None) -> _Pending:
    """Count over the span: variance ``D·N`` per trace (``D`` at least 1, Poisson without a verdict)."""
    d_s, d_g = (max(d, 1.0) for d in longest) if longest else (1.0, 1.0)
    se = math.sqrt(d_s * n_s + d_g * n_g)
    basis = "the dispersion at the longest decided timescale" if longest else "Poisson (no decided timescale)"
    return _Pending("requests", "diff", float(n_s), float(n_g), n_s, n_g, "request count",
                    f"noise from {basis}: D {d_s:.3g} / {d_g:.3g}", est=float(n_g - n_s), se=se)


def _zero_gap_line(gs: np.ndarray, gg: np.ndarray) -> _Pending:
    what = "share of zero gaps (within client)"
    if gs.size < MIN_SAMPLES or gg.size < MIN_SAMPLES:
        return _Pending("zero_gaps", "na", None, None, gs.size, gg.size, what,
                        f"fewer than {MIN_SAMPLES} gaps ({gs.size:,} source, {gg.size:,} generated)")
    zs, zg = (gs == 0).astype(np.float64), (gg == 0).astype(np.float64)
    ps, pg = float(zs.mean()), float(zg.mean())
    fs = _indicator_inflation(zs)
    fg = _indicator_inflation(zg)
    ns, ng = gs.size / fs, gg.size / fg
    pooled = (ps * ns + pg * ng) / (ns + ng)
    se = math.sqrt(pooled * (1 - pooled) * (1 / ns + 1 / ng))  # 0 when neither has a zero gap
    return _Pending("zero_gaps", "diff", ps, pg, gs.size, gg.size, what,
                    f"two-proportion z test, variance inflation {fs:.2f} / {fg:.2f}", est=pg - ps, se=se)


def _spearman_line(src: pl.DataFrame, gen: pl.DataFrame) -> _Pending:
    what = "within-client input/output rank correlation"
    if src.height < MIN_SAMPLES or gen.height < MIN_SAMPLES:
        return _Pending("input_output_spearman", "na", None, None, src.height, gen.height, what, "too few requests")
    us, vs = _centred_ranks(src)
    ug, vg = _centred_ranks(gen)
    rs, rg = _spearman(us, vs), _spearman(ug, vg)
    if not (math.isfinite(rs) and math.isfinite(rg)):
        return _Pending("input_output_spearman", "na", rs, rg, src.height, gen.height, what,
                        "a trace has constant input or output lengths within every client")
    fs, fg = _inflation(us * vs), _inflation(ug * vg)
    ns, ng = src.height / fs, gen.height / fg
    se = math.sqrt(1.06 / max(ns - 3, 1) + 1.06 / max(ng - 3, 1))
    clip = 1 - 1e-12
    est = math.atanh(max(min(rg, clip), -clip)) - math.atanh(max(min(rs, clip), -clip))
    return _Pending("input_output_spearman", "diff", rs, rg, src.height, gen.height, what,
                    f"variance inflation {fs:.2f} / {fg:.2f}", est=est, se=se, fisher=True)


@dataclass(frozen=True)
class _Accesses:
    """A trace's block accesses (request after request in time order, each request's blocks in
    prompt order): whether each block id occurred earlier (``reused``), the LRU stack distance
    of each access's prefix (``distance``, -1 for a first access), and the request of each."""

    reused: np.ndarray
    distance: np.ndarray
    request: np.ndarray
    requests: int

    @property
    def size(self) -> int:
        return int(self.reused.size)

    def hit_counts(self) -> np.ndarray:
        """``hit_counts[C]``: accesses an LRU prefix cache of C blocks hits (C = 0 .. saturation)."""
        again = self.distance[self.distance >= 0]
        top = int(again.max()) + 1 if again.size else 1
        return np.concatenate(([0], np.cumsum(np.bincount(again, minlength=top))))


def _accesses(trace: pl.DataFrame) -> _Accesses | str:
    """The block-access stream of a time-sorted trace, or why there is none.

    Prefix keys are exact dense ids built depth by depth (the prefix ending at position k of a
    request is the pair (prefix ending at k - 1, block id at k)); one Python step per prompt
    depth, not per request. The keys are those of :mod:`servegen_core.characterize.prefix`'s
    LRU curve (a prefix cache stores a block under the prefix that ends with it), whose
    flattening is private, so it is rebuilt here; the stack distances are its public
    :func:`~servegen_core.characterize.prefix.stack_distances`.
    """
    if "hash_ids" not in trace.columns:
        return "no 'hash_ids' column"
    lists = trace["hash_ids"]
    if not isinstance(lists.dtype, pl.List) or not lists.dtype.inner.is_integer():
        return f"'hash_ids' is {lists.dtype}, not a list of integers"
    lens = lists.list.len().fill_null(0).cast(pl.Int64).to_numpy()
    total = int(lens.sum())
    if total > MAX_ACCESSES:
        msg = (f"the trace has {total:,} block accesses (sum of its hash_ids lengths), more than the limit of "
               f"{MAX_ACCESSES:,}; select fewer requests or a shorter span")
        raise ValueError(msg)
    if total == 0:
        return "every hash_ids list is empty"
    flat = lists.filter(pl.Series(lens > 0)).explode()
    if flat.null_count():
        return f"'hash_ids' holds {flat.null_count():,} null block id(s)"
    blocks = flat.cast(pl.Int64).to_numpy()
    _, first, block = np.unique(blocks, return_index=True, return_inverse=True)
    reused = np.ones(total, dtype=bool)
    reused[first] = False
    starts = np.cumsum(lens) - lens
    request = np.repeat(np.arange(trace.height, dtype=np.int64), lens)
    depth = np.arange(total, dtype=np.int64) - starts[request]
    order = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
    local = np.empty(total, dtype=np.int64)  # dense id of the prefix among those of its depth
    key = np.empty(total, dtype=np.int64)  # dense id among all prefixes
    distinct_blocks = int(block.max()) + 1
    offset = 0
    for d in range(bounds.size - 1):
        at = order[bounds[d] : bounds[d + 1]]
        # The parent prefix ends at the previous access of the same request (ids < total, so
        # the pair code stays below total * distinct_blocks <= MAX_ACCESSES**2 < 2**63).
        pair = block[at] if d == 0 else local[at - 1] * distinct_blocks + block[at]
        _, dense = np.unique(pair, return_inverse=True)
        local[at] = dense
        key[at] = offset + dense
        offset += int(dense.max()) + 1
    return _Accesses(reused, stack_distances(key), request, trace.height)


def _segment_ratios(hits: np.ndarray, request: np.ndarray, requests: int) -> tuple[float, np.ndarray]:
    """Ratio of hits over all accesses, and per segment (NaN for a segment without accesses).

    The requests are cut into :data:`PREFIX_SEGMENTS` runs of equal count, in time order.
    """
    segment = request * PREFIX_SEGMENTS // max(requests, 1)
    h = np.bincount(segment, weights=hits.astype(np.float64), minlength=PREFIX_SEGMENTS)
    a = np.bincount(segment, minlength=PREFIX_SEGMENTS).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(a > 0, h / a, np.nan)
    return float(h.sum() / a.sum()), per


def _paired(name: str, what: str, src: tuple[float, np.ndarray], gen: tuple[float, np.ndarray],
            n_s: int, n_g: int, detail: str) -> _Pending:
    """Whole-trace difference against the spread of the segment-by-segment differences.

    Segment k of each trace is its k-th run of requests, so a trend both traces share (a
    cache warming up, a diurnal mix) cancels in the differences and only noise is left:
    ``se = sd(d_k) / sqrt(K)`` with ``K - 1`` degrees of freedom.
    """
    (vs, per_s), (vg, per_g) = src, gen
    diff = per_g - per_s
    diff = diff[np.isfinite(diff)]
    if diff.size < 3:
        return _Pending(name, "na", vs, vg, n_s, n_g, what, "fewer than 3 segments with block accesses in both")
    se = float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return _Pending(name, "diff", vs, vg, n_s, n_g, what,
                    f"{detail}; paired t over {diff.size} segments", est=vg - vs, se=se, dof=float(diff.size - 1))


def _capacities(hits: np.ndarray) -> list[int]:
    """Smallest capacities at which the hit count reaches each of :data:`LRU_LEVELS` of its largest."""
    if hits[-1] <= 0:
        return []
    return sorted({max(1, int(np.searchsorted(hits, q * hits[-1]))) for q in LRU_LEVELS})


def _prefix_lines(src: pl.DataFrame, gen: pl.DataFrame, block_tokens: int,
                  cache_blocks: tuple[int, ...] | None, notes: list[str]) -> list[_Pending]:
    stream_s = _accesses(src)
    if isinstance(stream_s, str):
        notes.append(f"no prefix lines: the source has no block ids ({stream_s})")
        return []
    if "hash_ids" not in gen.columns:
        derived = with_block_ids(gen, block_tokens=block_tokens)
        if "hash_ids" in derived.columns:
            gen = derived
            notes.append(f"the generated workload's block ids are derived from its prompt segments at {block_tokens} tokens")
    stream_g = _accesses(gen)
    hits_s = stream_s.hit_counts()
    caps = _capacities(hits_s) if cache_blocks is None else sorted({int(c) for c in cache_blocks})
    what_reuse = "block reuse (blocks seen before / all blocks)"
    names = ["block_reuse", *(f"lru_hit_ratio_{c}_blocks" for c in caps)]
    whats = [what_reuse, *(f"LRU prefix-cache hit ratio at {c:,} blocks ({c * block_tokens:,} tokens)" for c in caps)]
    flags_s = [stream_s.reused, *((stream_s.distance >= 0) & (stream_s.distance < c) for c in caps)]
    if isinstance(stream_g, str):
        # No block ids: the generated workload has no reuse at all, against a source that has some.
        detail = f"the generated workload has no block ids ({stream_g})"
        out = []
        for name, what, flags in zip(names, whats, flags_s):
            value = float(flags.mean())
            out.append(_Pending(name, "diff", value, 0.0, stream_s.size, 0, what, detail, est=-value, se=0.0))
        return out
    flags_g = [stream_g.reused, *((stream_g.distance >= 0) & (stream_g.distance < c) for c in caps)]
    detail = f"{stream_s.size:,} / {stream_g.size:,} block accesses"
    return [
        _paired(name, what, _segment_ratios(fs, stream_s.request, stream_s.requests),
                _segment_ratios(fg, stream_g.request, stream_g.requests), stream_s.size, stream_g.size, detail)
        for name, what, fs, fg in zip(names, whats, flags_s, flags_g)
    ]


# --------------------------------------------------------------------------------------------
# The scorecard
# --------------------------------------------------------------------------------------------


def _request_trace(frame: pl.DataFrame, role: str) -> pl.DataFrame:
    """``frame`` checked and time-sorted as a RequestTrace; errors name the role (``source`` ...)."""
    if not isinstance(frame, pl.DataFrame):
        msg = f"the {role} must be a RequestTrace (polars DataFrame), got {type(frame).__name__}"
        raise TypeError(msg)
    return validate_trace(frame, source=f"the {role}")


def _source_grid(src: pl.DataFrame, grid_s: float | None) -> float:
    """The source's timestamp grid in seconds (0 for none): given, or measured (>= 1 ms counts)."""
    if grid_s is None:
        res = timestamp_resolution(src["timestamp_s"])
        return res.grid_s if res.quantized and math.isfinite(res.grid_s) else 0.0
    if not (math.isfinite(grid_s) and grid_s >= 0):
        msg = f"grid_s must be a finite number of seconds >= 0, got {grid_s}"
        raise ValueError(msg)
    return float(grid_s)


def _on_grid(gen: pl.DataFrame, grid: float, notes: list[str]) -> np.ndarray:
    """The generated timestamps as the source's clock would have recorded them (floored to its grid)."""
    ts = gen["timestamp_s"].to_numpy()
    if grid <= 0:
        return ts
    res = timestamp_resolution(gen["timestamp_s"])
    if res.quantized and math.isfinite(res.grid_s) and res.grid_s >= grid * (1 - 1e-9):
        return ts
    notes.append(
        f"the source's timestamps are on a {_scale_name(grid)} grid: the generated timestamps are put on "
        "the same grid for the arrival lines (what the source's clock would have recorded)"
    )
    return ts[0] + np.floor((ts - ts[0]) / grid + 1e-9) * grid


def fidelity(
    source: pl.DataFrame,
    generated: pl.DataFrame,
    *,
    alpha: float = 0.01,
    reference: Reference = "trace",
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    cache_blocks: tuple[int, ...] | None = None,
    prefix: bool = True,
    grid_s: float | None = None,
) -> FidelityReport:
    """Score ``generated`` against ``source`` (both RequestTraces); see the module docstring.

    ``alpha`` is the family-wise level (each decided line at ``alpha / lines``);
    ``reference="model"`` marks a source that is itself a draw of the model; ``block_tokens``
    is the block size for deriving the generated workload's block ids from prompt segments;
    ``cache_blocks`` overrides the four LRU capacities; ``prefix=False`` skips the prefix lines;
    ``grid_s`` is the source's timestamp grid in seconds (``None``: measured by
    :func:`~servegen_core.sources.traces.timestamp_resolution`, a grid of 1 ms or more counts;
    ``0``: none). A trace with fewer than two requests gives an empty report whose ``reason`` says why.
    """
    if not 0 < alpha < 1:
        msg = f"alpha must be in (0, 1), got {alpha}"
        raise ValueError(msg)
    if reference not in ("trace", "model"):
        msg = f"reference must be 'trace' or 'model', got {reference!r}"
        raise ValueError(msg)
    if block_tokens < 1:
        msg = f"block_tokens must be at least 1, got {block_tokens}"
        raise ValueError(msg)
    if cache_blocks is not None and (not cache_blocks or min(cache_blocks) < 1):
        msg = f"cache_blocks must be capacities of at least 1 block, got {cache_blocks}"
        raise ValueError(msg)
    src = _request_trace(source, "source")
    gen = _request_trace(generated, "generated workload")
    if src.height < 2 or gen.height < 2:
        which = "source" if src.height < 2 else "generated workload"
        return FidelityReport((), alpha, alpha, reference, reason=f"the {which} has fewer than two requests")
    notes: list[str] = []
    grid = _source_grid(src, grid_s)
    ts_s = src["timestamp_s"].to_numpy()
    ts_g = _on_grid(gen, grid, notes)

    pending: list[_Pending] = []
    disp, longest = _dispersion_lines(ts_s, ts_g, grid)
    pending.append(_count_line(src.height, gen.height, longest))
    pending += disp

    gaps_s = _client_gaps(ts_s, src["client_id"])
    gaps_g = _client_gaps(ts_g, gen["client_id"])
    pending.append(_ks_line("interarrival_ks", "inter-arrival gaps within client (pooled)", gaps_s, gaps_g,
                            lambda x: float(np.median(x)), "values are median gaps (s)"))
    pending.append(_zero_gap_line(gaps_s, gaps_g))
    runs_s, runs_g = _runs(ts_s, BURST_GAP_S), _runs(ts_g, BURST_GAP_S)
    p99 = f"p99 run length {np.percentile(runs_s, 99):.3g} / {np.percentile(runs_g, 99):.3g}"
    pending.append(_ks_line("burst_runs_ks", f"lengths of runs of requests within {BURST_GAP_S * 1000:g} ms",
                            runs_s, runs_g, lambda x: float(x.mean()), f"values are mean run lengths; {p99}"))
    for field in ("input_tokens", "output_tokens"):
        a = src[field].to_numpy().astype(np.float64)
        b = gen[field].to_numpy().astype(np.float64)
        pending.append(_ks_line(f"{field.split('_')[0]}_ks", f"{field} distribution", a, b,
                                lambda x: float(np.median(x)), "values are medians"))
    pending.append(_spearman_line(src, gen))
    if prefix:
        pending += _prefix_lines(src, gen, block_tokens, cache_blocks, notes)

    decided = sum(p.kind != "na" for p in pending)
    line_alpha = alpha / max(decided, 1)
    suffix = "_vs_model" if reference == "model" else ""
    model_note = (" [reference is a draw of the model itself: checks the generator's consistency, "
                  "not fidelity to traffic]") if reference == "model" else ""
    lines = tuple(_decide(p, line_alpha, suffix, model_note) for p in pending)
    return FidelityReport(lines, alpha, line_alpha, reference, tuple(notes))
