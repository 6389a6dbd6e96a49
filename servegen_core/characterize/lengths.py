"""Length characterization: distributions, percentiles, shifts over time, fits, correlation.

Every function takes a :class:`~servegen_core.sources.pool.ClientPool` or a RequestTrace
(:mod:`servegen_core.schema`) and returns a frozen :class:`~servegen_core.result.Result`.

Weighting
---------
Both sources are reduced to the same *weighted values*: rows ``client_id, start_s, value,
weight`` where ``weight`` is a number of requests.

- A **RequestTrace** gives one unit of weight per request; ``start_s`` is the start of the
  ``window_s``-long window (default 6 h, the pools' length window) holding its timestamp.
- A **ClientPool** records one length PDF per (client, 6 h length window). The requests in a
  length window are the client's load there: the sum of ``rate_rps * duration_s`` over its
  600 s arrival windows starting inside it. A bin's weight is ``prob * requests``, so every
  statistic over several windows or clients is weighted by request volume. Requests that fall
  in windows without length data (clients without a dataset file, empty PDFs) carry no length
  and are left out; :func:`length_coverage` says how many.

Percentiles use the inverse of the weighted CDF: the ``q`` percentile is the smallest value
whose cumulative weight reaches ``q`` of the total (``numpy.quantile(method="inverted_cdf")``
for a trace).

Fits
----
Fits are weighted maximum-likelihood fits over the distinct values (for a trace, the
distinct values with their counts; for a pool, the bins with their weights): no sample is
drawn, and the exponential, log-normal and Pareto MLEs are exact (closed form). Only positive
values are fitted
(every family has positive support, so all are compared on the same data); the share of
zero-length requests is reported. The Pareto + log-normal mixture is fitted by EM for each
candidate Pareto threshold ``x_m`` (weighted quantiles of the data) and the best likelihood
wins; its tail index is bounded by :data:`MAX_TAIL_INDEX` so that the Pareto part models a tail
rather than a spike at ``x_m``; when there are more than ``max_points`` (500) distinct values it runs on log-spaced bins
(each at its weighted mean, about 2 % wide for lengths up to 30,000 tokens; bins never straddle
a candidate threshold); the likelihood, AIC and KS of every family, the mixture included, are
then evaluated on the exact values. AIC = 2k − 2 log L and BIC = k log n − 2 log L with n the fitted requests.
The KS distance compares the weighted empirical CDF with the model CDF; integer data are
treated as the intervals ``(x − ½, x + ½]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import polars as pl
from scipy import special

from servegen_core.sources.view import (
    EMPTY_TRACE,
    FieldData,
    Grouped,
    NoData,
    Source,
    dense_codes,
    field_data,
    group,
    missing_column,
    pool_clients_without_lengths,
    trace_clients,
)
from servegen_core.sources.pool import ClientPool, hour_of_day
from servegen_core.result import Result, Table

__all__ = [
    "PERCENTILES",
    "ClientLengthMeans",
    "LengthCorrelation",
    "LengthFit",
    "LengthShift",
    "client_length_fits",
    "client_length_means",
    "fit_input_lengths",
    "fit_lengths",
    "fit_output_lengths",
    "length_correlation",
    "length_coverage",
    "length_pdf",
    "length_percentiles",
    "length_shift",
    "stats_frame",
]

#: Percentiles reported by the percentile tables (as ``p50``, ``p90``, ``p99``).
PERCENTILES: tuple[int, ...] = (50, 90, 99)

DAY_S = 86400

def _fd(source: Source, field: str, window_s: int | None, by: tuple[str, ...]) -> FieldData | NoData:
    return field_data(source, field, window_s=window_s, need_client="client" in by, need_window="window" in by)


def _key_columns(fd: FieldData, g: Grouped) -> dict[str, pl.Series]:
    cols: dict[str, pl.Series] = {}
    if g.client is not None:
        cols["client_id"] = pl.Series("client_id", np.asarray(fd.clients, dtype=object)[g.client], dtype=pl.String)
    if g.window is not None:
        cols["start_s"] = pl.Series("start_s", fd.window_starts[g.window], dtype=pl.Int64)
    return cols


def stats_frame(fd: FieldData, g: Grouped) -> pl.DataFrame:
    """``[client_id,] [start_s,] requests, mean, p50, p90, p99, max`` of each group of ``g``."""
    return pl.DataFrame(
        {
            **_key_columns(fd, g),
            "requests": g.requests(),
            "mean": g.mean(),
            **{f"p{p}": g.quantile(p / 100) for p in PERCENTILES},
            "max": g.max(),
        }
    )


def length_coverage(source: Source, field: str = "input_tokens") -> float:
    """Share of the selection's requests that carry ``field`` data (for a trace: non-null rows)."""
    if isinstance(source, pl.DataFrame):
        if source.height == 0 or field not in source.columns:
            return 0.0
        return 1.0 - source[field].null_count() / source.height
    total = float(source.windows.select((pl.col("rate_rps") * pl.col("duration_s")).sum()).item() or 0.0)
    if total <= 0:
        return 0.0
    fd = field_data(source, field)
    return 0.0 if isinstance(fd, NoData) else min(fd.total / total, 1.0)


_STATS_SCHEMA = {
    "requests": pl.Float64(),
    "mean": pl.Float64(),
    **{f"p{p}": pl.Float64() for p in PERCENTILES},
    "max": pl.Float64(),
}


def length_pdf(source: Source, field: str, *, per_window: bool = False, window_s: int | None = None) -> Table:
    """Weighted PDF and CDF of one length field: ``[start_s,] value, prob, cdf``.

    Over the whole span by default; ``per_window=True`` gives one PDF per window (a pool's
    6 h length windows, or ``window_s`` windows of a trace). Values are float64.
    """
    by = ("window",) if per_window else ()
    schema = {**({"start_s": pl.Int64()} if per_window else {}), "value": pl.Float64(), "prob": pl.Float64(), "cdf": pl.Float64()}
    fd = _fd(source, field, window_s, by)
    if isinstance(fd, NoData):
        return Table.empty(schema, str(fd))
    g = group(fd, by)
    keys = {k: v.gather(g.gid) for k, v in _key_columns(fd, g).items()}
    return Table(pl.DataFrame({**keys, "value": g.value, "prob": g.prob(), "cdf": g.cdf()}))


def length_percentiles(source: Source, field: str, *, per_window: bool = False, window_s: int | None = None) -> Table:
    """Weighted ``requests, mean, p50, p90, p99, max`` of one length field.

    One row over the span, or one row per window (``start_s``) with ``per_window=True``.
    ``requests`` is the weight behind the row (a pool's expected requests with length data).
    """
    by = ("window",) if per_window else ()
    schema = {**({"start_s": pl.Int64()} if per_window else {}), **_STATS_SCHEMA}
    fd = _fd(source, field, window_s, by)
    if isinstance(fd, NoData):
        return Table.empty(schema, str(fd))
    return Table(stats_frame(fd, group(fd, by)))


# ---------------------------------------------------------------------------------------------
# Shift over time
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthShift(Result):
    """Per-window statistics and their day-over-day relative change.

    ``windows``: ``start_s, day, hour, requests, mean, p50, p90, p99, max``.
    ``day_over_day`` (tidy): ``start_s, day, hour, stat, value, previous, rel_change`` where
    ``previous`` is the same statistic 24 h earlier and ``rel_change = value / previous - 1``;
    only windows with a positive previous value appear. ``day_over_day_reason`` says why it is
    empty (e.g. a one-day span) while ``windows`` holds data.
    """

    windows: pl.DataFrame
    day_over_day: pl.DataFrame
    field: str = ""
    day_over_day_reason: str | None = None


_DOD_SCHEMA = {
    "start_s": pl.Int64(),
    "day": pl.Int64(),
    "hour": pl.Float64(),
    "stat": pl.String(),
    "value": pl.Float64(),
    "previous": pl.Float64(),
    "rel_change": pl.Float64(),
}
_SHIFT_SCHEMA = {"start_s": pl.Int64(), "day": pl.Int64(), "hour": pl.Float64(), **_STATS_SCHEMA}


def length_shift(source: Source, field: str, *, window_s: int | None = None) -> LengthShift:
    """How a length field moves over time: per-window mean and percentiles, day over day.

    ``window_s`` must divide a day for the day-over-day comparison (6 h by default).
    """
    per = length_percentiles(source, field, per_window=True, window_s=window_s)
    if not per.ok:
        return LengthShift(
            pl.DataFrame(schema=_SHIFT_SCHEMA), pl.DataFrame(schema=_DOD_SCHEMA), field=field, reason=per.reason
        )
    w = per.frame.with_columns(
        (pl.col("start_s") // DAY_S).alias("day"),
        hour_of_day(pl.col("start_s").cast(pl.Float64)).alias("hour"),
    ).select(list(_SHIFT_SCHEMA))
    stats = ["mean", *(f"p{p}" for p in PERCENTILES)]
    long = w.unpivot(index=["start_s", "day", "hour"], on=stats, variable_name="stat", value_name="value")
    prev = long.select(
        (pl.col("start_s") + DAY_S).alias("start_s"), "stat", pl.col("value").alias("previous")
    )
    dod = (
        long.join(prev, on=["start_s", "stat"], how="inner")
        .filter(pl.col("previous") > 0)
        .with_columns((pl.col("value") / pl.col("previous") - 1).alias("rel_change"))
        .sort("stat", "start_s")
        .select(list(_DOD_SCHEMA))
    )
    dod_reason = None
    if dod.height == 0:
        dod_reason = "no window has data at the same time of day on the previous day"
    return LengthShift(w, dod, field=field, day_over_day_reason=dod_reason)


# ---------------------------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------------------------

INPUT_FAMILIES: tuple[str, ...] = ("lognormal", "pareto", "pareto_lognormal")
OUTPUT_FAMILIES: tuple[str, ...] = ("exponential", "lognormal")
_N_PARAMS = {"exponential": 1, "lognormal": 2, "pareto": 2, "pareto_lognormal": 5}
_LOG_2PI = math.log(2 * math.pi)
#: Upper bound of the mixture's Pareto tail index: without it the Pareto component can
#: collapse onto a spike at ``x_m`` (unbounded likelihood) instead of modelling a tail.
MAX_TAIL_INDEX = 10.0


@dataclass(frozen=True)
class LengthFit(Result):
    """Maximum-likelihood fits of length families, ranked by AIC.

    ``table``: ``family, params, n_params, loglik, aic, bic, delta_aic, ks, best`` (one row per
    family that could be fitted; ``params`` is a readable ``name=value`` string).
    ``params``: family -> {parameter: value}. ``best``: the lowest-AIC family.
    ``curves``: ``family, x, pdf, cdf`` on a log-spaced grid over the data's range, for plots.
    ``n``: the fitted weight (requests); ``excluded_share``: share of requests with length 0.
    """

    table: pl.DataFrame
    params: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    best: str | None = None
    curves: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_CURVE_SCHEMA))
    n: float = 0.0
    excluded_share: float = 0.0
    field: str = ""
    method: str = ""


_FIT_SCHEMA = {
    "family": pl.String(),
    "params": pl.String(),
    "n_params": pl.Int64(),
    "loglik": pl.Float64(),
    "aic": pl.Float64(),
    "bic": pl.Float64(),
    "delta_aic": pl.Float64(),
    "ks": pl.Float64(),
    "best": pl.Boolean(),
}
_CURVE_SCHEMA = {"family": pl.String(), "x": pl.Float64(), "pdf": pl.Float64(), "cdf": pl.Float64()}


def _empty_fit(reason: str, field: str = "") -> LengthFit:
    return LengthFit(pl.DataFrame(schema=_FIT_SCHEMA), field=field, reason=reason)


def _ln_logpdf(x: np.ndarray, logx: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    z = (logx - mu) / sigma
    return -logx - math.log(sigma) - 0.5 * _LOG_2PI - 0.5 * z * z


def _ln_cdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return special.ndtr((np.log(x) - mu) / sigma)


def _pareto_cdf(x: np.ndarray, alpha: float, xm: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x >= xm, 1.0 - np.power(xm / np.maximum(x, xm), alpha), 0.0)


def _model_cdf(family: str, p: Mapping[str, float], x: np.ndarray) -> np.ndarray:
    if family == "exponential":
        return 1.0 - np.exp(-np.maximum(x, 0.0) * p["rate"])
    if family == "lognormal":
        return _ln_cdf(x, p["mu"], p["sigma"])
    if family == "pareto":
        return _pareto_cdf(x, p["alpha"], p["xm"])
    if family == "pareto_lognormal":
        return p["pareto_weight"] * _pareto_cdf(x, p["alpha"], p["xm"]) + (1 - p["pareto_weight"]) * _ln_cdf(
            x, p["mu"], p["sigma"]
        )
    msg = f"unknown family {family!r}"
    raise ValueError(msg)


def _model_pdf(family: str, p: Mapping[str, float], x: np.ndarray) -> np.ndarray:
    logx = np.log(x)
    if family == "exponential":
        return p["rate"] * np.exp(-p["rate"] * x)
    ln = lambda: np.exp(_ln_logpdf(x, logx, p["mu"], p["sigma"]))  # noqa: E731
    par = lambda: np.where(x >= p["xm"], p["alpha"] * np.exp(p["alpha"] * math.log(p["xm"]) - (p["alpha"] + 1) * logx), 0.0)  # noqa: E731
    if family == "lognormal":
        return ln()
    if family == "pareto":
        return par()
    return p["pareto_weight"] * par() + (1 - p["pareto_weight"]) * ln()


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Inverse weighted CDF of sorted ``x`` at ``qs``."""
    cum = np.cumsum(w)
    idx = np.searchsorted(cum, np.asarray(qs) * cum[-1] * (1 - 1e-12), side="left")
    return x[np.minimum(idx, x.size - 1)]


def _coarsen(x: np.ndarray, w: np.ndarray, max_points: int, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``max_points`` log-spaced bins, each at its weighted mean value.

    ``cuts`` are added as bin edges, so a bin never straddles one of them.
    """
    if x.size <= max_points:
        return x, w
    edges = np.union1d(np.geomspace(x[0], x[-1] * (1 + 1e-12), max_points + 1), cuts)
    b = np.searchsorted(edges, x, side="right") - 1
    sw = np.bincount(b, weights=w, minlength=edges.size)
    sx = np.bincount(b, weights=w * x, minlength=edges.size)
    keep = sw > 0
    return sx[keep] / sw[keep], sw[keep]


#: Weighted quantiles of the data tried as the mixture's Pareto threshold ``x_m``.
MIXTURE_THRESHOLD_QUANTILES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _fit_mixture(
    x: np.ndarray, w: np.ndarray, *, max_points: int, max_iter: int = 100, tol: float = 1e-9
) -> tuple[dict[str, float], float] | None:
    """Pareto + log-normal mixture by EM, profiled over candidate thresholds ``x_m``.

    ``x`` sorted, distinct, positive. The candidates (weighted quantiles of ``x``) run together
    as rows of one 2-D array, on the exact values or on log-spaced bins cut at the candidates.
    Returns (params, log-likelihood on the fitted points) of the best candidate, or None.
    """
    xm = np.unique(_weighted_quantiles(x, w, MIXTURE_THRESHOLD_QUANTILES))
    xm = xm[xm < x[-1]]
    if xm.size == 0:
        return None
    x, w = _coarsen(x, w, max_points, xm)
    logx = np.log(x)
    W = w.sum()
    log_xm = np.log(xm)[:, None]
    above = x[None, :] >= xm[:, None]  # (C, N)
    # Initial state: Pareto on the mass above the threshold, log-normal on everything.
    wa = (w * above).sum(axis=1)
    pi = np.clip(0.5 * wa / W, 1e-3, 0.5)
    d = np.where(above, logx[None, :] - log_xm, 0.0)
    alpha = np.minimum(wa / np.maximum((w * d).sum(axis=1), 1e-300), MAX_TAIL_INDEX)
    mu = np.full(xm.size, (w * logx).sum() / W)
    sigma = np.full(xm.size, math.sqrt(max((w * (logx - mu[0]) ** 2).sum() / W, 1e-12)))
    prev = np.full(xm.size, -np.inf)
    ll = prev
    for _ in range(max_iter):
        log_par = np.where(
            above, np.log(alpha)[:, None] + alpha[:, None] * log_xm - (alpha[:, None] + 1) * logx[None, :], -np.inf
        )
        z = (logx[None, :] - mu[:, None]) / sigma[:, None]
        log_ln = -logx[None, :] - np.log(sigma)[:, None] - 0.5 * _LOG_2PI - 0.5 * z * z
        a = np.log(pi)[:, None] + log_par
        b = np.log1p(-pi)[:, None] + log_ln
        m = np.maximum(a, b)
        lse = m + np.log(np.exp(a - m) + np.exp(b - m))
        ll = (w[None, :] * lse).sum(axis=1)
        r = np.exp(a - lse)  # responsibility of the Pareto component
        wr = w[None, :] * r
        wq = w[None, :] - wr
        s_r = wr.sum(axis=1)
        s_q = np.maximum(wq.sum(axis=1), 1e-300)
        pi = np.clip(s_r / W, 1e-9, 1 - 1e-9)
        alpha = np.minimum(np.maximum(s_r, 1e-300) / np.maximum((wr * d).sum(axis=1), 1e-300), MAX_TAIL_INDEX)
        mu = (wq * logx[None, :]).sum(axis=1) / s_q
        var = (wq * (logx[None, :] - mu[:, None]) ** 2).sum(axis=1) / s_q
        sigma = np.sqrt(np.maximum(var, 1e-8))
        if np.all(np.abs(ll - prev) <= tol * np.abs(ll)):
            break
        prev = ll
    ok = np.isfinite(ll) & (pi > 1e-6) & (pi < 1 - 1e-6)
    if not ok.any():
        return None
    i = int(np.argmax(np.where(ok, ll, -np.inf)))
    params = {
        "pareto_weight": float(pi[i]),
        "alpha": float(alpha[i]),
        "xm": float(xm[i]),
        "mu": float(mu[i]),
        "sigma": float(sigma[i]),
    }
    return params, float(ll[i])


def _loglik(family: str, p: Mapping[str, float], x: np.ndarray, w: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        return float((w * np.log(_model_pdf(family, p, x))).sum())


def _ks(family: str, p: Mapping[str, float], x: np.ndarray, w: np.ndarray, integer: bool) -> float:
    ecdf = np.cumsum(w) / w.sum()
    before = np.concatenate(([0.0], ecdf[:-1]))
    half = 0.5 if integer else 0.0
    return float(max(np.abs(ecdf - _model_cdf(family, p, x + half)).max(), np.abs(before - _model_cdf(family, p, x - half)).max()))


def _fmt_params(p: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in p.items())


def fit_lengths(
    values: np.ndarray | Sequence[float],
    weights: np.ndarray | Sequence[float] | None = None,
    *,
    families: Sequence[str] = INPUT_FAMILIES,
    max_points: int = 500,
    field: str = "",
) -> LengthFit:
    """Fit length ``families`` to ``values`` (optionally weighted) by maximum likelihood.

    Families: ``exponential`` (rate), ``lognormal`` (mu, sigma of log x), ``pareto``
    (alpha, xm = smallest value), ``pareto_lognormal`` (pareto_weight, alpha, xm, mu, sigma).
    Values ≤ 0 are left out (``excluded_share``). See the module docstring for the method.
    """
    unknown = [f for f in families if f not in _N_PARAMS]
    if unknown:
        msg = f"unknown length families {unknown}; known: {sorted(_N_PARAMS)}"
        raise ValueError(msg)
    x = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if x.shape != w.shape:
        msg = f"values and weights differ in length ({x.size} vs {w.size})"
        raise ValueError(msg)
    good = np.isfinite(x) & np.isfinite(w) & (w > 0)
    x, w = x[good], w[good]
    total = w.sum()
    if x.size == 0 or total <= 0:
        return _empty_fit("no lengths to fit", field)
    pos = x > 0
    excluded = float(w[~pos].sum() / total)
    x, w = x[pos], w[pos]
    if x.size == 0:
        return _empty_fit("every length is 0: nothing to fit", field)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    # Collapse duplicates.
    ux, inv = np.unique(x, return_inverse=True)
    uw = np.bincount(inv, weights=w)
    x, w = ux, uw
    n = float(w.sum())
    if x.size < 2:
        return _empty_fit(f"a single distinct length ({x[0]:g}): no distribution to fit", field)
    integer = bool(np.all(x == np.round(x)))
    logx = np.log(x)
    params: dict[str, dict[str, float]] = {}
    for fam in families:
        if fam == "exponential":
            params[fam] = {"rate": n / float((w * x).sum())}
        elif fam == "lognormal":
            mu = float((w * logx).sum() / n)
            sigma = math.sqrt(float((w * (logx - mu) ** 2).sum() / n))
            params[fam] = {"mu": mu, "sigma": sigma}
        elif fam == "pareto":
            xm = float(x[0])
            params[fam] = {"alpha": n / float((w * (logx - math.log(xm))).sum()), "xm": xm}
        elif fam == "pareto_lognormal":
            res = _fit_mixture(x, w, max_points=max_points)
            if res is not None:
                params[fam] = res[0]
    rows = []
    for fam, p in params.items():
        ll = _loglik(fam, p, x, w)
        if not math.isfinite(ll):
            continue
        k = _N_PARAMS[fam]
        rows.append(
            {
                "family": fam,
                "params": _fmt_params(p),
                "n_params": k,
                "loglik": ll,
                "aic": 2 * k - 2 * ll,
                "bic": k * math.log(n) - 2 * ll,
                "ks": _ks(fam, p, x, w, integer),
            }
        )
    if not rows:
        return _empty_fit("no family could be fitted", field)
    table = pl.DataFrame(rows).with_columns(
        (pl.col("aic") - pl.col("aic").min()).alias("delta_aic")
    ).sort("aic")
    best = table["family"][0]
    table = table.with_columns((pl.col("family") == best).alias("best")).select(list(_FIT_SCHEMA))
    kept = {r: MappingProxyType(params[r]) for r in table["family"].to_list()}
    grid = np.geomspace(max(x[0], 1e-9), x[-1], 200) if x[-1] > x[0] else np.array([x[0]])
    curves = pl.concat(
        [
            pl.DataFrame(
                {"family": fam, "x": grid, "pdf": _model_pdf(fam, p, grid), "cdf": _model_cdf(fam, p, grid)},
                schema=_CURVE_SCHEMA,
            )
            for fam, p in kept.items()
        ]
    )
    method = (
        f"weighted MLE over {x.size} distinct values ({n:,.0f} requests); "
        + ("mixture by EM on log-spaced bins" if x.size > max_points and "pareto_lognormal" in kept else "exact values")
    )
    return LengthFit(
        table,
        params=MappingProxyType(kept),
        best=best,
        curves=curves,
        n=n,
        excluded_share=excluded,
        field=field,
        method=method,
    )


def _fit_source(source: Source, field: str, families: Sequence[str], max_points: int) -> LengthFit:
    fd = _fd(source, field, None, ())
    if isinstance(fd, NoData):
        return _empty_fit(str(fd), field)
    g = group(fd, ())
    return fit_lengths(g.value, g.weight, families=families, max_points=max_points, field=field)


def fit_input_lengths(source: Source, *, field: str = "input_tokens", max_points: int = 500) -> LengthFit:
    """Log-normal, Pareto and Pareto + log-normal mixture fits of input lengths; the best by AIC."""
    return _fit_source(source, field, INPUT_FAMILIES, max_points)


def fit_output_lengths(source: Source, *, field: str = "output_tokens", max_points: int = 500) -> LengthFit:
    """Exponential and log-normal fits of output lengths; the best by AIC."""
    return _fit_source(source, field, OUTPUT_FAMILIES, max_points)


# ---------------------------------------------------------------------------------------------
# Per-client heterogeneity
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientLengthMeans(Table):
    """One row per client with length data: ``client_id, requests, mean, p50, p90, p99, max``.

    ``cv_of_means``: standard deviation / mean of the client means (unweighted, across
    clients); ``mean_ratio_p90_p10``: the 90th over the 10th percentile of the client means.
    ``clients_without_lengths``: clients of a pool left out for lack of length data.
    """

    field: str = ""
    cv_of_means: float | None = None
    mean_ratio_p90_p10: float | None = None
    clients_without_lengths: tuple[str, ...] = ()


def client_length_means(source: Source, field: str = "input_tokens") -> ClientLengthMeans:
    """The distribution of per-client length statistics (how different clients are)."""
    schema = {"client_id": pl.String(), **_STATS_SCHEMA}
    missing = pool_clients_without_lengths(source) if isinstance(source, ClientPool) else ()
    fd = _fd(source, field, None, ("client",))
    if isinstance(fd, NoData):
        return ClientLengthMeans(pl.DataFrame(schema=schema), field=field, clients_without_lengths=missing, reason=str(fd))
    frame = stats_frame(fd, group(fd, ("client",)))
    means = frame["mean"].to_numpy()
    cv = p9010 = None
    if means.size >= 2 and means.mean() > 0:
        cv = float(means.std() / means.mean())
        lo, hi = np.quantile(means, [0.1, 0.9], method="inverted_cdf")
        p9010 = float(hi / lo) if lo > 0 else None
    return ClientLengthMeans(frame, field=field, cv_of_means=cv, mean_ratio_p90_p10=p9010, clients_without_lengths=missing)


# ---------------------------------------------------------------------------------------------
# Input/output correlation (traces only)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthCorrelation(Result):
    """Correlation of input and output lengths of individual requests.

    ``overall``: ``scope, requests, pearson, spearman`` with scope ``overall`` (all requests
    pooled) and ``within_client`` (the request-weighted mean of the per-client coefficients).
    ``per_client``: ``client_id, requests, pearson, spearman`` for clients with at least
    ``min_requests`` requests and non-constant lengths. ``requests`` counts the requests used:
    a trace longer than ``max_requests`` is represented by a seeded uniform sample of
    ``max_requests`` of its requests (``sampled_from`` is then its length, else None).
    """

    overall: pl.DataFrame
    per_client: pl.DataFrame
    x: str = "input_tokens"
    y: str = "output_tokens"
    sampled_from: int | None = None


_CORR_OVERALL = {"scope": pl.String(), "requests": pl.Int64(), "pearson": pl.Float64(), "spearman": pl.Float64()}
_CORR_CLIENT = {"client_id": pl.String(), "requests": pl.Int64(), "pearson": pl.Float64(), "spearman": pl.Float64()}

#: Requests used for a correlation; a longer trace is sampled (standard error about 1/sqrt(n)).
MAX_CORRELATION_REQUESTS = 1_000_000


def _average_ranks(v: np.ndarray, g: np.ndarray | None, n_groups: int) -> np.ndarray:
    """Ranks of ``v`` (1-based, ties averaged) within each group ``g`` (all together if None)."""
    u, code = dense_codes(v)
    U = u.size
    key = code if g is None else g.astype(np.int64) * U + code
    size = U * (1 if g is None else n_groups)
    if size <= 1 << 24:
        counts = np.bincount(key, minlength=size).astype(np.float64)
        cum = np.cumsum(counts)
        if g is not None:
            cum -= np.repeat(np.concatenate(([0.0], cum[U - 1 :: U][:-1])), U)
        return (cum - (counts - 1) / 2)[key]
    uk, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    cnt = cnt.astype(np.float64)
    cum = np.cumsum(cnt)
    grp = uk // U
    first = np.concatenate(([True], grp[1:] != grp[:-1]))
    before = (cum - cnt)[first][np.cumsum(first) - 1]
    return (cum - before - (cnt - 1) / 2)[inv.ravel()]


def _pearson(a: np.ndarray, b: np.ndarray, g: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: Pearson coefficient, and the sums of squared deviations of a and b."""
    n = np.bincount(g, minlength=n_groups).astype(np.float64)
    safe = np.maximum(n, 1.0)
    da = a - (np.bincount(g, weights=a, minlength=n_groups) / safe)[g]
    db = b - (np.bincount(g, weights=b, minlength=n_groups) / safe)[g]
    saa = np.bincount(g, weights=da * da, minlength=n_groups)
    sbb = np.bincount(g, weights=db * db, minlength=n_groups)
    sab = np.bincount(g, weights=da * db, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sab / np.sqrt(saa * sbb)
    return np.clip(r, -1.0, 1.0), saa, sbb


def length_correlation(
    trace: Source,
    *,
    x: str = "input_tokens",
    y: str = "output_tokens",
    min_requests: int = 10,
    max_requests: int = MAX_CORRELATION_REQUESTS,
    seed: int | np.random.Generator | None = 0,
) -> LengthCorrelation:
    """Pearson and Spearman correlation of ``x`` and ``y`` per request, overall and within client.

    Spearman's coefficient is Pearson's on the ranks (ties get their average rank), ranked
    over all requests for ``overall`` and within each client for ``per_client``. Needs a
    RequestTrace: a pool records each field as a separate marginal PDF, so the joint
    distribution, and with it the correlation, is not identified (empty result with the reason).
    """

    def empty(reason: str) -> LengthCorrelation:
        return LengthCorrelation(
            pl.DataFrame(schema=_CORR_OVERALL), pl.DataFrame(schema=_CORR_CLIENT), x=x, y=y, reason=reason
        )

    if isinstance(trace, ClientPool):
        return empty("a client pool records input and output lengths as separate marginal PDFs: their correlation is not identified; use a request trace")
    if trace.height == 0:
        return empty(EMPTY_TRACE)
    for c in (x, y):
        if c not in trace.columns:
            return empty(missing_column(c))
    if trace[x].null_count() or trace[y].null_count():
        trace = trace.select("timestamp_s", "client_id", x, y).drop_nulls()
    n_all = trace.height
    tc = trace_clients(trace)
    codes, ids = tc.id_codes, tc.ids
    xv = trace[x].to_numpy()
    yv = trace[y].to_numpy()
    sampled_from = None
    if n_all > max_requests:
        sampled_from = n_all
        idx = np.sort(np.random.default_rng(seed).choice(n_all, size=max_requests, replace=False, shuffle=False))
        xv, yv, codes = xv[idx], yv[idx], codes[idx]
    if xv.size < 3:
        return empty(f"{xv.size} request(s): correlation needs at least 3")
    if np.ptp(xv) == 0 or np.ptp(yv) == 0:
        return empty(f"'{x}' or '{y}' is constant: correlation undefined")
    G = len(ids)
    zero = np.zeros(xv.size, dtype=np.int64)
    xf, yf = xv.astype(np.float64), yv.astype(np.float64)
    pearson_all = float(_pearson(xf, yf, zero, 1)[0][0])
    spearman_all = float(_pearson(_average_ranks(xv, None, 1), _average_ranks(yv, None, 1), zero, 1)[0][0])
    n = np.bincount(codes, minlength=G)
    pr, sxx, syy = _pearson(xf, yf, codes, G)
    sr = _pearson(_average_ranks(xv, codes, G), _average_ranks(yv, codes, G), codes, G)[0]
    ok = (n >= min_requests) & (sxx > 0) & (syy > 0) & np.isfinite(pr) & np.isfinite(sr)
    per = (
        pl.DataFrame(
            {
                "client_id": pl.Series(ids, dtype=pl.String).filter(pl.Series(ok)),
                "requests": n[ok].astype(np.int64),
                "pearson": pr[ok],
                "spearman": sr[ok],
            },
            schema=_CORR_CLIENT,
        ).sort("requests", "client_id", descending=[True, False])
    )
    rows = [{"scope": "overall", "requests": int(xv.size), "pearson": pearson_all, "spearman": spearman_all}]
    if per.height:
        w = per["requests"].cast(pl.Float64)
        rows.append(
            {
                "scope": "within_client",
                "requests": int(per["requests"].sum()),
                "pearson": float((per["pearson"] * w).sum() / w.sum()),
                "spearman": float((per["spearman"] * w).sum() / w.sum()),
            }
        )
    return LengthCorrelation(pl.DataFrame(rows, schema=_CORR_OVERALL), per, x=x, y=y, sampled_from=sampled_from)


def client_length_fits(source: Source, field: str = "output_tokens", *, k: int = 10, max_points: int = 300) -> Table:
    """The best length fit of each of the ``k`` busiest clients with length data, beside the aggregate's.

    One row per client (busiest first): ``client_id, requests, best, params, ks`` (the family
    with the lowest AIC among the input families for an input field, exponential and
    log-normal for ``output_tokens``; its parameters and KS distance), and ``ks_exponential``
    (the KS distance of the exponential fit, for output lengths; null otherwise), so the
    per-client shapes (the paper: outputs per client close to exponential) can be read next
    to the aggregate fit. A client whose fit fails is listed with a null family.
    """
    if not isinstance(k, int) or k < 1:
        msg = f"k must be a positive whole number, got {k!r}"
        raise ValueError(msg)
    schema = {"client_id": pl.String(), "requests": pl.Float64(), "best": pl.String(), "params": pl.String(), "ks": pl.Float64(), "ks_exponential": pl.Float64()}
    means = client_length_means(source, field)
    if not means.ok:
        return Table.empty(schema, means.reason)
    top = means.frame.sort("requests", descending=True).head(k)
    fitter = fit_output_lengths if field == "output_tokens" else fit_input_lengths
    rows = []
    for cid, req in top.select("client_id", "requests").iter_rows():
        part = source.select_clients([cid]) if isinstance(source, ClientPool) else source.filter(pl.col("client_id") == cid)
        fit = fitter(part, field=field, max_points=max_points)
        if not fit.ok or fit.best is None:
            rows.append((cid, float(req), None, None, None, None))
            continue
        best = fit.table.filter(pl.col("best")).row(0, named=True)
        expo = fit.table.filter(pl.col("family") == "exponential")
        rows.append((cid, float(req), best["family"], best["params"], best["ks"], expo["ks"][0] if expo.height else None))
    return Table(pl.DataFrame(rows, schema=schema, orient="row"))
