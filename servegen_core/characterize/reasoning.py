"""Reasoning characterization: reason ratio, reasoning vs answer tokens, bimodality.

A reasoning model's output splits into reasoning tokens and answer tokens. ServeGen records
the *reason ratio* (reasoning tokens / output tokens) as a PDF per client and 6 h window, on
the grid ``k/501`` (:func:`ratio_grid` checks it); ``reasoning = output × ratio`` and
``answer = output − reasoning``.

Sources
    A RequestTrace gives ``reasoning_tokens`` (or ``reason_ratio`` × ``output_tokens``,
    rounded) per request; ``answer_tokens`` when present, else ``output − reasoning``.
    A ClientPool records ``output_tokens`` and ``reason_ratio`` as separate marginal PDFs, so
    the distribution of reasoning tokens is not identified. It is estimated from
    ``sample_size`` requests drawn with output and ratio independent within each (client,
    length window) cell (:func:`servegen_core.sources.view.sample_pool`); the expected reasoning
    share is exact under that same assumption (``E[out] E[ratio]`` per cell).

Bimodality
    Measured, not eyeballed: a two-component Gaussian mixture fitted by EM (weighted,
    vectorized over groups with ``np.bincount``), on the reason ratio or on log reasoning
    tokens, reports both modes' locations, spreads and weights; Sarle's bimodality coefficient

        BC = (G1² + 1) / (G2 + 3 (n − 1)² / ((n − 2)(n − 3)))

    with the sample skewness ``G1`` and excess kurtosis ``G2`` (bias-adjusted, weighted; ``n``
    the requests) is compared with its threshold 5/9 (the value of a uniform distribution):
    BC > 5/9 suggests bimodality. Ashman's D = √2 |μ1 − μ2| / √(σ1² + σ2²) measures the
    separation of the fitted modes (D > 2: clean separation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.sources.view import (
    EMPTY_TRACE,
    FieldData,
    NoData,
    Source,
    dense_codes,
    field_data,
    grid_denominator,
    group,
    pool_clients,
    pool_fields,
    pool_no_data,
    sample_pool,
    trace_clients,
)
from servegen_core.characterize.lengths import PERCENTILES
from servegen_core.sources.pool import ClientPool
from servegen_core.result import Result

__all__ = [
    "BC_THRESHOLD",
    "Bimodality",
    "MixtureFit",
    "ModeComparison",
    "ReasonRatioDistribution",
    "ReasoningTokens",
    "bimodality",
    "bimodality_coefficient",
    "compare_modes",
    "fit_two_gaussians",
    "ratio_grid",
    "ratio_source",
    "reason_ratio_distribution",
    "reasoning_tokens",
]

#: Sarle's bimodality coefficient of a uniform distribution; larger values suggest bimodality.
BC_THRESHOLD = 5 / 9

#: Default number of requests drawn from a pool where a statistic needs joint draws.
DEFAULT_SAMPLE_SIZE = 100_000

_LOG_2PI = math.log(2 * math.pi)

#: A mixture component's sigma is at least this fraction of its group's standard deviation.
SIGMA_FLOOR = 0.01


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# Reason ratio
# ---------------------------------------------------------------------------------------------


def ratio_grid(values: np.ndarray, *, max_denominator: int = 1000, tol: float = 1e-9) -> int | None:
    """Smallest ``d <= max_denominator`` with every value a multiple of ``1/d``, or None."""
    return grid_denominator(values, max_denominator=max_denominator, tol=tol)


@dataclass(frozen=True)
class ReasonRatioDistribution(Result):
    """``frame``: ``reason_ratio, prob, cdf``; ``summary``: ``requests, mean, p50, p90, p99, max``.

    ``grid_denominator``: the ``d`` of the bins ``k/d`` (501 for ServeGen data), None if the
    values are not on a grid of denominator at most 1000.
    """

    frame: pl.DataFrame
    summary: pl.DataFrame
    grid_denominator: int | None = None


_RATIO_SCHEMA = {"reason_ratio": pl.Float64(), "prob": pl.Float64(), "cdf": pl.Float64()}
_STATS_SCHEMA = {
    "requests": pl.Float64(),
    "mean": pl.Float64(),
    **{f"p{p}": pl.Float64() for p in PERCENTILES},
    "max": pl.Float64(),
}


def ratio_source(source: Source) -> Source | NoData:
    """The source with a ``reason_ratio`` field (a trace may derive it from reasoning tokens)."""
    if isinstance(source, ClientPool):
        return source
    if source.height == 0:
        return EMPTY_TRACE
    if "reason_ratio" in source.columns:
        return source
    if "reasoning_tokens" in source.columns:
        return source.filter(pl.col("output_tokens") > 0).select(
            "timestamp_s",
            "client_id",
            (pl.col("reasoning_tokens") / pl.col("output_tokens")).clip(0.0, 1.0).alias("reason_ratio"),
        )
    return NoData("the trace has no reason_ratio or reasoning_tokens column")


def _ratio_fd(source: Source, *, need_client: bool) -> FieldData | NoData:
    src = ratio_source(source)
    if isinstance(src, NoData):
        return src
    return field_data(src, "reason_ratio", need_client=need_client, need_window=False)


def reason_ratio_distribution(source: Source) -> ReasonRatioDistribution:
    """Weighted distribution of the reason ratio (reasoning tokens / output tokens)."""
    fd = _ratio_fd(source, need_client=False)
    if isinstance(fd, NoData):
        return ReasonRatioDistribution(pl.DataFrame(schema=_RATIO_SCHEMA), pl.DataFrame(schema=_STATS_SCHEMA), reason=str(fd))
    g = group(fd, ())
    frame = pl.DataFrame({"reason_ratio": g.value, "prob": g.prob(), "cdf": g.cdf()})
    summary = pl.DataFrame(
        {
            "requests": g.requests(),
            "mean": g.mean(),
            **{f"p{p}": g.quantile(p / 100) for p in PERCENTILES},
            "max": g.max(),
        }
    )
    return ReasonRatioDistribution(frame, summary, grid_denominator=ratio_grid(fd.values))


# ---------------------------------------------------------------------------------------------
# Reasoning and answer tokens
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasoningTokens(Result):
    """Reasoning vs answer tokens.

    ``summary``: ``quantity, mean, p50, p90, p99, max`` for ``output``, ``reasoning`` and
    ``answer`` tokens. ``histogram``: ``quantity, bin_lo, bin_hi, prob`` on log-spaced bins
    (the first bin is ``[0, 1)``). ``reasoning_share``: reasoning tokens over output tokens,
    summed over requests.
    """

    summary: pl.DataFrame
    histogram: pl.DataFrame
    reasoning_share: float | None = None
    requests: float = 0.0
    method: str = ""


_RT_SUMMARY = {
    "quantity": pl.String(),
    "mean": pl.Float64(),
    **{f"p{p}": pl.Float64() for p in PERCENTILES},
    "max": pl.Float64(),
}
_RT_HIST = {"quantity": pl.String(), "bin_lo": pl.Float64(), "bin_hi": pl.Float64(), "prob": pl.Float64()}


def _token_arrays(
    source: Source, sample_size: int, seed: int | np.random.Generator | None, *, per_client: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray | None, tuple[str, ...], float | None, str] | NoData:
    """output/reasoning/answer per request (trace) or per draw (pool), client codes, exact share."""
    if isinstance(source, ClientPool):
        exact = _pool_reasoning_share(source)
        if isinstance(exact, NoData):
            return exact
        s = sample_pool(source, ("output_tokens", "reason_ratio"), sample_size, _rng(seed), per_client=per_client)
        if isinstance(s, NoData):
            return s
        out = s.values["output_tokens"]
        reasoning = np.round(out * s.values["reason_ratio"])
        n = f"{sample_size:,} requests per client" if per_client else f"{sample_size:,} requests"
        method = (
            f"{n} drawn with output tokens and reason ratio independent within their (client, 6 h window) "
            "cell; reasoning = round(output x ratio); the reasoning share is exact under the same assumption"
        )
        return {"output": out, "reasoning": reasoning, "answer": out - reasoning}, s.client, s.clients, exact, method
    trace = source
    if trace.height == 0:
        return EMPTY_TRACE
    if "reasoning_tokens" in trace.columns:
        reasoning_expr = pl.col("reasoning_tokens").cast(pl.Float64)
    elif "reason_ratio" in trace.columns:
        reasoning_expr = (pl.col("output_tokens") * pl.col("reason_ratio")).round().cast(pl.Float64)
    else:
        return NoData("the trace has no reasoning_tokens or reason_ratio column")
    cols = [pl.col("output_tokens").cast(pl.Float64).alias("output"), reasoning_expr.alias("reasoning")]
    if "answer_tokens" in trace.columns:
        cols.append(pl.col("answer_tokens").cast(pl.Float64).alias("answer"))
    t = trace.select("client_id", *cols).drop_nulls()
    if t.height == 0:
        return NoData("no request has reasoning data")
    out, reasoning = t["output"].to_numpy(), t["reasoning"].to_numpy()
    answer = t["answer"].to_numpy() if "answer" in t.columns else out - reasoning
    codes, clients = None, ()
    if per_client:
        tc = trace_clients(t)
        codes, clients = tc.id_codes, tc.ids
    share = float(reasoning.sum() / out.sum()) if out.sum() > 0 else None
    return {"output": out, "reasoning": reasoning, "answer": answer}, codes, clients, share, f"from {t.height:,} requests"


def _pool_reasoning_share(pool: ClientPool) -> float | NoData:
    """Σ requests E[out] E[ratio] / Σ requests E[out] over (client, length window) cells."""
    missing = [f for f in ("output_tokens", "reason_ratio") if f not in pool_fields(pool)]
    if missing and pool.distributions.height and not pool_no_data(pool):
        return NoData(f"the pool has no '{missing[-1]}' length data (fields: {', '.join(pool_fields(pool))})")
    fds = {}
    for f in ("output_tokens", "reason_ratio"):
        fd = field_data(pool, f)
        if isinstance(fd, NoData):
            return fd
        g = group(fd, ("client", "window"))
        keys = g.client.astype(np.int64) * (1 << 32) + fd.window_starts[g.window]
        fds[f] = (keys, g.requests(), g.mean())
    k_out, req, m_out = fds["output_tokens"]
    k_r, _, m_r = fds["reason_ratio"]
    common, i_out, i_r = np.intersect1d(k_out, k_r, assume_unique=True, return_indices=True)
    if common.size == 0:
        return NoData("no window holds both output_tokens and reason_ratio data")
    out_tokens = req[i_out] * m_out[i_out]
    if not out_tokens.sum() > 0:
        return NoData("every request has 0 output tokens")
    return float((out_tokens * m_r[i_r]).sum() / out_tokens.sum())


def _summary_and_histogram(x: np.ndarray, edges: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Mean, inverse-CDF percentiles, max and histogram counts (``np.histogram`` bins) of ``x``.

    Token counts (whole numbers >= 0) go through one ``bincount``; other values through
    ``np.quantile`` and ``np.histogram``.
    """
    if x.size and x.min() >= 0 and x.max() < 1 << 26 and np.all(x == np.floor(x)):
        counts = np.bincount(x.astype(np.int64)).astype(np.float64)
        values = np.flatnonzero(counts)
        c = counts[values]
        cum = np.cumsum(c)
        n = cum[-1]
        pct = {f"p{p}": float(values[min(np.searchsorted(cum, p / 100 * n * (1 - 1e-12)), values.size - 1)]) for p in PERCENTILES}
        b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
        inside = (values >= edges[0]) & (values <= edges[-1])
        h = np.bincount(b[inside], weights=c[inside], minlength=edges.size - 1)
        stats = {"mean": float(np.dot(values, c) / n), **pct, "max": float(values[-1])}
        return stats, h
    pct = {f"p{p}": float(np.quantile(x, p / 100, method="inverted_cdf")) for p in PERCENTILES}
    h, _ = np.histogram(x, bins=edges)
    return {"mean": float(x.mean()), **pct, "max": float(x.max())}, h.astype(np.float64)


def reasoning_tokens(
    source: Source,
    *,
    bins: int = 40,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int | np.random.Generator | None = 0,
) -> ReasoningTokens:
    """Reasoning tokens (output × reason ratio) and answer tokens: summary and histograms."""
    got = _token_arrays(source, sample_size, seed)
    if isinstance(got, NoData):
        return ReasoningTokens(pl.DataFrame(schema=_RT_SUMMARY), pl.DataFrame(schema=_RT_HIST), reason=str(got))
    arrays, _codes, _clients, share, method = got
    n = arrays["output"].size
    hi = max(float(arrays["output"].max()), 1.0)
    edges = np.unique(np.concatenate(([0.0], np.geomspace(1.0, hi + 1.0, max(bins, 1)))))
    rows, hists = [], []
    for q, x in arrays.items():
        stats, h = _summary_and_histogram(x, edges)
        rows.append({"quantity": q, **stats})
        hists.append(pl.DataFrame({"quantity": q, "bin_lo": edges[:-1], "bin_hi": edges[1:], "prob": h / n}))
    requests = float(n)
    if isinstance(source, ClientPool):
        fd = field_data(source, "output_tokens", need_client=False, need_window=False)
        requests = fd.total if not isinstance(fd, NoData) else 0.0
    return ReasoningTokens(
        pl.DataFrame(rows, schema=_RT_SUMMARY), pl.concat(hists), reasoning_share=share, requests=requests, method=method
    )


# ---------------------------------------------------------------------------------------------
# Two-component Gaussian mixture and the bimodality coefficient
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixtureFit:
    """Per group: two Gaussian components, ``mu1 <= mu2`` (arrays of length n_groups)."""

    mu: np.ndarray  # (G, 2)
    sigma: np.ndarray  # (G, 2)
    weight: np.ndarray  # (G, 2)
    loglik: np.ndarray  # (G,)
    converged: np.ndarray  # (G,) bool
    iterations: int


def _weighted_moments(x: np.ndarray, w: np.ndarray, gid: np.ndarray, G: int) -> tuple[np.ndarray, ...]:
    W = np.bincount(gid, weights=w, minlength=G)
    m = np.bincount(gid, weights=w * x, minlength=G) / W
    d = x - m[gid]
    m2 = np.bincount(gid, weights=w * d * d, minlength=G) / W
    m3 = np.bincount(gid, weights=w * d**3, minlength=G) / W
    m4 = np.bincount(gid, weights=w * d**4, minlength=G) / W
    return W, m, m2, m3, m4


def _unpack(theta: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta (G, 5) = mu1, mu2, log sigma1, log sigma2, logit weight1 -> mu, sigma, pi (G, 2)."""
    mu = theta[:, 0:2]
    sigma = np.maximum(np.exp(np.minimum(theta[:, 2:4], 700.0)), floor[:, None])
    p1 = np.clip(1.0 / (1.0 + np.exp(-np.clip(theta[:, 4], -700.0, 700.0))), 1e-9, 1 - 1e-9)
    return mu, sigma, np.column_stack((p1, 1.0 - p1))


def _pack(mu: np.ndarray, sigma: np.ndarray, pi: np.ndarray) -> np.ndarray:
    return np.column_stack((mu, np.log(sigma), np.log(pi[:, 0]) - np.log(pi[:, 1])))


def _em_step(
    theta: np.ndarray, x: np.ndarray, w: np.ndarray, g: np.ndarray, W: np.ndarray, floor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One EM step for every group of ``theta``: (new theta, log-likelihood at ``theta``)."""
    G = theta.shape[0]
    mu, sigma, pi = _unpack(theta, floor)
    z = (x[:, None] - mu[g]) / sigma[g]
    logp = np.log(pi[g]) - np.log(sigma[g]) - 0.5 * _LOG_2PI - 0.5 * z * z
    mx = logp.max(axis=1)
    lse = mx + np.log(np.exp(logp[:, 0] - mx) + np.exp(logp[:, 1] - mx))
    ll = np.bincount(g, weights=w * lse, minlength=G)
    wr = w[:, None] * np.exp(logp - lse[:, None])
    Wk = np.column_stack([np.bincount(g, weights=wr[:, k], minlength=G) for k in (0, 1)])
    safe = np.maximum(Wk, 1e-300)
    new_mu = np.column_stack([np.bincount(g, weights=wr[:, k] * x, minlength=G) for k in (0, 1)]) / safe
    d = x[:, None] - new_mu[g]
    var = np.column_stack([np.bincount(g, weights=wr[:, k] * d[:, k] ** 2, minlength=G) for k in (0, 1)]) / safe
    alive = Wk > 1e-12 * W[:, None]
    mu = np.where(alive, new_mu, mu)
    sigma = np.where(alive, np.maximum(np.sqrt(var), floor[:, None]), sigma)
    pi = np.clip(Wk / W[:, None], 1e-9, 1.0)
    return _pack(mu, sigma, pi / pi.sum(axis=1, keepdims=True)), ll


def fit_two_gaussians(
    x: np.ndarray,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    min_sigma: float | None = None,
) -> MixtureFit:
    """Two-component Gaussian mixture by EM, per group, all groups at once.

    ``x`` (values), ``weights`` (default 1) and ``groups`` (codes 0..G-1, default one group).
    Starts from the groups' weighted quartiles; each component's sigma is floored at
    ``min_sigma`` (default 1 % of the group's standard deviation) so that a component cannot
    collapse onto one value. EM is accelerated by SQUAREM (Varadhan & Roland 2008): each
    iteration takes two EM steps, extrapolates along them and keeps the extrapolation only when
    it does not lower the likelihood, so the likelihood still never decreases. A group stops
    when its log-likelihood changes by less than ``tol`` (relative) and its parameters by less
    than 1e-7; ``max_iter`` bounds the iterations (3 EM steps each).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    gid = np.zeros(x.size, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    G = int(gid.max()) + 1 if gid.size else 0
    W, m, m2, _, _ = _weighted_moments(x, w, gid, G)
    sd = np.sqrt(np.maximum(m2, 0.0))
    floor = np.maximum(SIGMA_FLOOR * sd, 1e-12) if min_sigma is None else np.full(G, float(min_sigma))
    # Initial means: weighted quartiles per group (entries sorted by group, then value).
    order = np.lexsort((x, gid))
    xs, ws, gs = x[order], w[order], gid[order]
    cum = np.cumsum(ws)
    ends = np.searchsorted(gs, np.arange(G), side="right")
    lo = np.concatenate(([0.0], cum[ends[:-1] - 1])) if G else np.zeros(0)
    q = [xs[np.clip(np.searchsorted(cum, lo + f * W * (1 - 1e-12)), 0, xs.size - 1)] for f in (0.25, 0.75)]
    mu = np.column_stack(q)
    same = mu[:, 1] - mu[:, 0] <= 0.5 * floor
    mu[same, 0] -= 0.5 * sd[same]
    mu[same, 1] += 0.5 * sd[same]
    sigma = np.column_stack([np.maximum(sd / 2, floor)] * 2)
    theta = _pack(mu, sigma, np.full((G, 2), 0.5))
    ll = np.full(G, -np.inf)
    converged = np.zeros(G, dtype=bool)
    active = np.arange(G)
    xa, wa, ga = x, w, gid
    it = 0
    for it in range(1, max_iter + 1):
        th0 = theta[active]
        fl, Wa = floor[active], W[active]
        t1, _ = _em_step(th0, xa, wa, ga, Wa, fl)
        t2, ll1 = _em_step(t1, xa, wa, ga, Wa, fl)
        r = t1 - th0
        v = t2 - t1 - r
        nr = np.sqrt((r * r).sum(axis=1))
        nv = np.sqrt((v * v).sum(axis=1))
        alpha = np.minimum(np.where(nv > 0, -nr / np.where(nv > 0, nv, 1.0), -1.0), -1.0)
        tp = th0 - 2 * alpha[:, None] * r + (alpha * alpha)[:, None] * v
        t3, llp = _em_step(tp, xa, wa, ga, Wa, fl)
        ok = np.isfinite(llp) & (llp >= ll1)
        new = np.where(ok[:, None], t3, t2)
        new_ll = np.where(ok, llp, ll1)
        step = np.abs(new - th0).max(axis=1)
        conv = (np.abs(new_ll - ll[active]) <= tol * np.maximum(np.abs(new_ll), 1.0)) & (step <= 1e-7)
        theta[active] = new
        ll[active] = new_ll
        converged[active[conv]] = True
        if conv.all():
            break
        if conv.any():
            active = active[~conv]
            keep = np.isin(gid, active)
            remap = np.full(G, -1)
            remap[active] = np.arange(active.size)
            xa, wa, ga = x[keep], w[keep], remap[gid[keep]]
    mu, sigma, pi = _unpack(theta, floor)
    mu, sigma, pi = mu.copy(), sigma.copy(), pi.copy()
    swap = mu[:, 0] > mu[:, 1]
    for a_ in (mu, sigma, pi):
        a_[swap] = a_[swap][:, ::-1]
    return MixtureFit(mu=mu, sigma=sigma, weight=pi, loglik=ll, converged=converged, iterations=it)


def bimodality_coefficient(
    x: np.ndarray, weights: np.ndarray | None = None, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sarle's bimodality coefficient per group (NaN where it is undefined: n ≤ 3 or no spread)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    gid = np.zeros(x.size, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    G = int(gid.max()) + 1 if gid.size else 0
    n, _, m2, m3, m4 = _weighted_moments(x, w, gid, G)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = m3 / m2**1.5
        g2 = m4 / m2**2 - 3.0
        G1 = g1 * np.sqrt(n * (n - 1)) / (n - 2)
        G2 = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
        bc = (G1**2 + 1) / (G2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return np.where((n > 3) & (m2 > 0) & np.isfinite(bc), bc, np.nan)


@dataclass(frozen=True)
class Bimodality(Result):
    """Two-mode analysis of the reason ratio or of log reasoning tokens.

    ``components``: ``component, location, mu, sigma, weight`` (component 1 is the lower
    mode; ``location`` is ``mu`` for the ratio and ``exp(mu)`` tokens for reasoning tokens).
    ``bc``: Sarle's coefficient, ``bimodal``: ``bc > threshold`` (5/9); ``ashman_d``: the
    separation of the two fitted modes; ``converged``: EM met its tolerance (a flat
    likelihood, typical of one broad mode, may stop it at its iteration bound first).
    ``per_client`` (with ``per_client=True``): ``client_id, requests, location1, weight1,
    location2, weight2, ashman_d, bc, bimodal, converged`` for clients with at least
    ``min_requests`` requests.
    """

    components: pl.DataFrame
    on: str = "reason_ratio"
    bc: float | None = None
    threshold: float = BC_THRESHOLD
    bimodal: bool | None = None
    ashman_d: float | None = None
    requests: float = 0.0
    converged: bool = True
    per_client: pl.DataFrame | None = None
    per_client_reason: str | None = None
    method: str = ""


_COMP_SCHEMA = {
    "component": pl.Int64(),
    "location": pl.Float64(),
    "mu": pl.Float64(),
    "sigma": pl.Float64(),
    "weight": pl.Float64(),
}
_PER_CLIENT_SCHEMA = {
    "client_id": pl.String(),
    "requests": pl.Float64(),
    "location1": pl.Float64(),
    "weight1": pl.Float64(),
    "location2": pl.Float64(),
    "weight2": pl.Float64(),
    "ashman_d": pl.Float64(),
    "bc": pl.Float64(),
    "bimodal": pl.Boolean(),
    "converged": pl.Boolean(),
}
ON_CHOICES = ("reason_ratio", "reasoning_tokens")


#: Fewest draws per client when a pool's reasoning tokens are analysed per client.
PER_CLIENT_MIN_SAMPLE = 2_000

#: Most distinct values the mixture is fitted on; beyond, values are put in FIT_BINS
#: equal-width bins (each at its weighted mean). The reason ratio's 501 grid values stay exact;
#: log reasoning tokens get bins about 0.02 wide (2 % in tokens).
MAX_POINTS = 1_000
FIT_BINS = 512


def _collapse(x: np.ndarray, w: np.ndarray, codes: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Sum weights of equal (client, x); beyond MAX_POINTS distinct values, bin x into FIT_BINS bins."""
    u, vcode = dense_codes(x)
    if u.size > MAX_POINTS:
        edges = np.linspace(u[0], u[-1], FIT_BINS + 1)
        b = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, FIT_BINS - 1)
        vcode = b[vcode]
        nb = FIT_BINS
    else:
        nb = u.size
    c = np.zeros(x.size, dtype=np.int64) if codes is None else codes.astype(np.int64)
    key = c * nb + vcode
    k, kc = dense_codes(key)
    sw = np.bincount(kc, weights=w)
    sx = np.bincount(kc, weights=w * x)
    return sx / sw, sw, (k // nb) if codes is not None else None


def _points(
    source: Source, on: str, per_client: bool, sample_size: int, seed: int | np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[str, ...], str, float] | NoData:
    """Weighted distinct points (x, w, client code per point) of the variable studied.

    Weights sum to the number of requests behind the points (a pool's expected requests for
    the ratio, the number of draws for sampled reasoning tokens).
    """
    if on == "reason_ratio":
        fd = _ratio_fd(source, need_client=per_client)
        if isinstance(fd, NoData):
            return fd
        g = group(fd, ("client",) if per_client else ())
        codes = g.client[g.gid] if per_client else None
        x, w = g.value, g.weight
        how = "weighted reason-ratio bins" if isinstance(source, ClientPool) else "the reason ratio of every request"
        return x, w, codes, fd.clients, how, fd.total
    got = _token_arrays(source, sample_size, seed, per_client=per_client)
    if isinstance(got, NoData):
        return got
    arrays, codes, clients, _share, method = got
    r = arrays["reasoning"]
    pos = r >= 1
    if not pos.any():
        return NoData("no request has reasoning tokens")
    requests = float(pos.sum())
    if isinstance(source, ClientPool):
        fd = field_data(source, "output_tokens", need_client=False, need_window=False)
        requests = fd.total if not isinstance(fd, NoData) else requests
    rv = r[pos].astype(np.int64)
    cv = None if codes is None or not per_client else codes[pos]
    u, vc = dense_codes(rv)
    counts = np.bincount(vc if cv is None else cv.astype(np.int64) * u.size + vc).astype(np.float64)
    nz = np.flatnonzero(counts)
    x, w, pc = np.log(u[nz % u.size].astype(np.float64)), counts[nz], None if cv is None else nz // u.size
    return x, w, pc, clients, f"log reasoning tokens (>= 1); {method}", requests


def bimodality(
    source: Source,
    *,
    on: str = "reason_ratio",
    per_client: bool = False,
    min_requests: float = 30,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int | np.random.Generator | None = 0,
) -> Bimodality:
    """Is the reason ratio (or log reasoning length) bimodal? Mixture fit + Sarle's coefficient.

    ``on``: ``"reason_ratio"`` (exact for a pool) or ``"reasoning_tokens"`` (log scale; a pool
    is sampled: ``sample_size`` draws overall and, with ``per_client``, a second sample of
    ``max(2000, sample_size / clients)`` draws per client).
    """
    if on not in ON_CHOICES:
        msg = f"on must be one of {ON_CHOICES}, got {on!r}"
        raise ValueError(msg)

    def empty(reason: str) -> Bimodality:
        return Bimodality(pl.DataFrame(schema=_COMP_SCHEMA), on=on, reason=reason)

    got = _points(source, on, False, sample_size, seed)
    if isinstance(got, NoData):
        return empty(str(got))
    x, w, codes, clients, method, requests = got
    n = float(w.sum())
    if n <= 3:
        return empty(f"{n:g} request(s): the bimodality coefficient needs more than 3")
    if x.size < 2 or np.ptp(x) <= 0:
        return empty(f"every request has the same {on.replace('_', ' ')}: no spread")
    bc = float(bimodality_coefficient(x, w)[0])
    fx, fw, _ = _collapse(x, w, None)
    fit = fit_two_gaussians(fx, fw)
    loc = np.exp(fit.mu[0]) if on == "reasoning_tokens" else fit.mu[0]
    comps = pl.DataFrame(
        {"component": [1, 2], "location": loc, "mu": fit.mu[0], "sigma": fit.sigma[0], "weight": fit.weight[0]},
        schema=_COMP_SCHEMA,
    )
    ashman = float(math.sqrt(2) * abs(fit.mu[0, 1] - fit.mu[0, 0]) / math.sqrt((fit.sigma[0] ** 2).sum()))
    per, per_reason = None, None
    if per_client:
        n_clients = len(pool_clients(source)) if isinstance(source, ClientPool) else 1
        per_n = max(PER_CLIENT_MIN_SAMPLE, sample_size // max(n_clients, 1))
        got = _points(source, on, True, per_n, seed)
        if isinstance(got, NoData):
            per, per_reason = pl.DataFrame(schema=_PER_CLIENT_SCHEMA), str(got)
        else:
            px, pw, pcodes, pclients, _m, _r = got
            per, per_reason = _per_client(px, pw, pcodes, pclients, on, min_requests)
    return Bimodality(
        comps,
        on=on,
        bc=bc,
        bimodal=bool(bc > BC_THRESHOLD),
        ashman_d=ashman,
        converged=bool(fit.converged[0]),
        requests=requests,
        per_client=per,
        per_client_reason=per_reason,
        method=f"two-Gaussian EM ({fit.iterations} iterations) on {method}",
    )


def _per_client(
    x: np.ndarray, w: np.ndarray, codes: np.ndarray, clients: tuple[str, ...], on: str, min_requests: float
) -> tuple[pl.DataFrame, str | None]:
    n_by = np.bincount(codes, weights=w, minlength=len(clients))
    lo = np.full(len(clients), np.inf)
    hi = np.full(len(clients), -np.inf)
    np.minimum.at(lo, codes, x)
    np.maximum.at(hi, codes, x)
    ok = (n_by >= max(min_requests, 4)) & (hi > lo)
    if not ok.any():
        return pl.DataFrame(schema=_PER_CLIENT_SCHEMA), f"no client has at least {min_requests:g} requests with varying values"
    keep = ok[codes]
    kept = np.flatnonzero(ok)
    remap = np.full(len(clients), -1)
    remap[kept] = np.arange(kept.size)
    g = remap[codes[keep]]
    xs, ws = x[keep], w[keep]
    bc = bimodality_coefficient(xs, ws, g)
    fx, fw, fg = _collapse(xs, ws, g)
    fit = fit_two_gaussians(fx, fw, fg)
    loc = np.exp(fit.mu) if on == "reasoning_tokens" else fit.mu
    ashman = np.sqrt(2) * np.abs(fit.mu[:, 1] - fit.mu[:, 0]) / np.sqrt((fit.sigma**2).sum(axis=1))
    frame = pl.DataFrame(
        {
            "client_id": [clients[i] for i in kept],
            "requests": n_by[kept],
            "location1": loc[:, 0],
            "weight1": fit.weight[:, 0],
            "location2": loc[:, 1],
            "weight2": fit.weight[:, 1],
            "ashman_d": ashman,
            "bc": bc,
            "bimodal": bc > BC_THRESHOLD,
            "converged": fit.converged,
        },
        schema=_PER_CLIENT_SCHEMA,
    )
    return frame, None


@dataclass(frozen=True)
class ModeComparison(Result):
    """Where a fitted two-Gaussian mixture peaks, against where the histogram it was fitted to peaks.

    ``mixture_modes``: the local maxima of the mixture density (one or two; not the
    components' means when the components overlap); ``histogram_peaks``: the (at most two)
    highest local maxima of the histogram after a centred moving average over
    ``smooth_bins`` bins, at least ``min_separation`` apart, in ascending order; ``max_shift``: the largest distance from a
    histogram peak to the nearest mixture mode; ``differ``: ``max_shift`` above
    ``tolerance`` (or a different number of modes and peaks).
    """

    mixture_modes: tuple[float, ...] = ()
    histogram_peaks: tuple[float, ...] = ()
    max_shift: float | None = None
    differ: bool | None = None
    tolerance: float = 0.0


def compare_modes(
    distribution: pl.DataFrame,
    components: pl.DataFrame,
    *,
    smooth_bins: int = 15,
    min_separation: float = 0.15,
    tolerance: float = 0.05,
    grid_points: int = 2001,
) -> ModeComparison:
    """Modes of the fitted mixture (``components``: ``mu, sigma, weight``) against the peaks of
    ``distribution`` (``reason_ratio, prob``, e.g. :func:`reason_ratio_distribution`'s frame)."""
    if components.height == 0 or distribution.height < 3:
        return ModeComparison(reason="no mixture or too few histogram bins")
    grid = np.linspace(0.0, 1.0, grid_points)
    dens = np.zeros_like(grid)
    for mu, sigma, w in components.select("mu", "sigma", "weight").iter_rows():
        dens += w * np.exp(-0.5 * ((grid - mu) / sigma) ** 2) / sigma
    inner = (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])
    modes = list(grid[1:-1][inner])
    if dens[0] > dens[1]:
        modes.insert(0, float(grid[0]))
    if dens[-1] > dens[-2]:
        modes.append(float(grid[-1]))
    d = distribution.sort("reason_ratio")
    x, p = d["reason_ratio"].to_numpy(), d["prob"].to_numpy()
    k = max(1, int(smooth_bins))
    smooth = np.convolve(p, np.ones(k) / k, mode="same")
    padded = np.concatenate([[-np.inf], smooth, [-np.inf]])
    is_peak = (padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:])
    idx = np.flatnonzero(is_peak)
    chosen: list[float] = []
    for i in idx[np.argsort(smooth[idx])[::-1]]:  # highest first, at least min_separation apart
        if all(abs(x[i] - c) >= min_separation for c in chosen):
            chosen.append(float(x[i]))
        if len(chosen) == 2:
            break
    peaks = tuple(sorted(chosen))
    shift = max(float(np.min(np.abs(np.asarray(modes) - v))) for v in peaks) if modes and peaks else None
    differ = len(peaks) != len(modes) or (shift is not None and shift > tolerance)
    return ModeComparison(
        mixture_modes=tuple(float(m) for m in modes), histogram_peaks=peaks, max_shift=shift, differ=differ, tolerance=tolerance
    )
