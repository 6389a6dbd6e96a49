"""Build the embedded synthetic demo data in ``data/demo`` (``python -m servegen_core.demo``).

Everything here is generated from the documented parameters below with one seeded
:func:`numpy.random.default_rng`; nothing is read from, copied from or resampled out of
real data. Rebuilding with the same seed gives byte-identical files.

Layout written under ``out_dir``::

    servegen/language/demo-chat/chunk-<client>-trace.csv   (+ -dataset.json, except 2 clients)
    servegen/multimodal/demo-vl/chunk-<client>-{trace.csv,dataset.json}
    servegen/reason/demo-r1/chunk-<client>-{trace.csv,dataset.json}
    traces/demo_requests.csv                                (a raw RequestTrace CSV)
    README.md

The ServeGen files follow ServeGen's on-disk format: the trace CSV has no header, one row
``window_start_s,rate_rps,cv,pattern,shape,scale`` per 600 s window (CRLF line ends; an idle
window is ``<start>,0,0,,0,0``); the dataset JSON maps each 6 h window start to
``{field: "<dict literal {bin: prob}>"}``, with ``"{}"`` for every field of a window without
requests.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy import special
from scipy.signal import lfilter

from servegen_core.paths import demo_data_dir, write_atomic
from servegen_core.renewal import implied_cv, weibull_shape_on_grid

#: Label shown wherever the demo data is displayed.
DEMO_LABEL = "synthetic demo data"
#: Seed of the committed demo data.
DEFAULT_SEED = 2025

WINDOW_S = 600
LENGTH_WINDOW_S = 21600
DAY_S = 86400
#: Windows with fewer requests than this are written idle (ServeGen's data show no
#: fitted window below 10 requests per 600 s).
MIN_FIT_REQUESTS = 10
#: Number of reason-ratio bins; bin k has the value k * (1 / 501), k = 0..500, as in
#: ServeGen's deepseek-r1 data, and covers ratios in [k/501, (k+1)/501).
REASON_BINS = 501
#: Image token sizes from which each multimodal client picks its dominant sizes.
IMAGE_SIZE_CATALOG: tuple[int, ...] = (256, 576, 729, 1024, 1196, 1225, 1369)
#: Token bins of length PDFs: 242 distinct integers, every integer up to 28, then
#: about 3.8 % apart up to 131072. Sampled lengths are snapped to the nearest bin in log space.
TOKEN_GRID: np.ndarray = np.unique(np.rint(np.geomspace(1, 131072, 300)).astype(np.int64))
_GRID_EDGES = np.sqrt(TOKEN_GRID[:-1].astype(np.float64) * TOKEN_GRID[1:])

FIELDS: dict[str, tuple[str, ...]] = {
    "language": ("input_tokens", "output_tokens"),
    "multimodal": (
        "text_tokens",
        "image_tokens",
        "audio_tokens",
        "video_tokens",
        "image_count",
        "audio_count",
        "video_count",
        "output_tokens",
    ),
    "reason": ("input_tokens", "output_tokens", "reason_ratio"),
}


@dataclass(frozen=True)
class ActiveSpan:
    """Hours in which a part-time client sends requests: ``[start_h, end_h)``.

    ``daily=True`` repeats the span every day (hour of day); otherwise hours count from
    the start of the data.
    """

    start_h: float
    end_h: float
    daily: bool

    def describe(self) -> str:
        if self.daily:
            return f"{self.start_h:g}:00-{self.end_h:g}:00 daily"
        return f"hours {self.start_h:g}-{self.end_h:g}"


@dataclass(frozen=True)
class ModelParams:
    """Documented parameters of one synthetic model (a folder of client files)."""

    category: str
    name: str
    n_clients: int
    days: int
    mean_rate_rps: float  # model total, averaged over a day
    zipf_exponent: float  # client volume share of rank r is proportional to (r + 1) ** -s
    diurnal_amplitude: float  # rate multiplier 1 + A cos(2 pi (h - peak) / 24)
    peak_hour: float
    phase_jitter_h: float  # per-client shift of the diurnal peak, uniform +-
    bursty_cv: tuple[float, float]  # base CV of bursty clients, log-uniform
    near_poisson_cv: tuple[float, float]  # base CV of near-Poisson clients, uniform
    near_poisson_clients: int
    weibull_share: tuple[float, float]  # per-client share of windows fitted Weibull
    cv_noise: float  # lognormal sigma of a window's CV around the client's base CV
    rate_noise_top: float  # AR(1) lognormal sigma of the rate, top-3 clients
    rate_noise: float  # same, other clients
    rate_noise_rho: float  # AR(1) coefficient per 600 s window
    day_sigma: float  # lognormal sigma of a client's day-to-day level
    count_dispersion: float  # window counts are Poisson(lambda * Gamma(k, 1/k)), k = this
    part_time: tuple[ActiveSpan, ...]  # given to the smallest clients, smallest first
    no_dataset_ranks: tuple[int, ...]  # volume ranks (0 = largest) written without dataset JSON
    input_median: tuple[float, float]  # log-normal part, log-uniform per client
    input_sigma: tuple[float, float]
    pareto_weight: tuple[float, float]  # share of inputs from the Pareto part
    pareto_alpha: tuple[float, float]
    pareto_xm_ratio: float  # Pareto minimum = ratio * log-normal median
    input_max: int
    output_mean: tuple[float, float]  # Gamma outputs, log-uniform mean per client
    output_shape: tuple[float, float]  # Gamma shape near 1: close to exponential
    output_max: int
    drift_sigma: float  # lognormal sigma of per-6 h-window drift of medians and means
    sample_cap: int  # at most this many sampled requests per 6 h PDF


LANGUAGE = ModelParams(
    category="language",
    name="demo-chat",
    n_clients=20,
    days=2,
    mean_rate_rps=6.0,
    zipf_exponent=1.4,
    diurnal_amplitude=0.55,
    peak_hour=15.0,
    phase_jitter_h=1.5,
    bursty_cv=(1.3, 5.0),
    near_poisson_cv=(0.85, 1.1),
    near_poisson_clients=2,
    weibull_share=(0.1, 0.5),
    cv_noise=0.2,
    rate_noise_top=0.35,
    rate_noise=0.2,
    rate_noise_rho=0.9,
    day_sigma=0.1,
    count_dispersion=6.0,
    part_time=(ActiveSpan(8, 40, False), ActiveSpan(9, 18, True), ActiveSpan(0, 20, False)),
    no_dataset_ranks=(1, 6),
    input_median=(150.0, 2500.0),
    input_sigma=(0.6, 1.1),
    pareto_weight=(0.1, 0.35),
    pareto_alpha=(1.2, 2.0),
    pareto_xm_ratio=1.5,
    input_max=131072,
    output_mean=(120.0, 600.0),
    output_shape=(0.85, 1.25),
    output_max=16384,
    drift_sigma=0.12,
    sample_cap=2000,
)

MULTIMODAL = ModelParams(
    category="multimodal",
    name="demo-vl",
    n_clients=10,
    days=1,
    mean_rate_rps=2.0,
    zipf_exponent=1.2,
    diurnal_amplitude=0.5,
    peak_hour=14.5,
    phase_jitter_h=1.5,
    bursty_cv=(1.2, 4.0),
    near_poisson_cv=(0.85, 1.1),
    near_poisson_clients=2,
    weibull_share=(0.1, 0.4),
    cv_noise=0.2,
    rate_noise_top=0.3,
    rate_noise=0.2,
    rate_noise_rho=0.9,
    day_sigma=0.0,
    count_dispersion=6.0,
    part_time=(ActiveSpan(0, 11, False), ActiveSpan(9, 18, True)),
    no_dataset_ranks=(),
    input_median=(40.0, 600.0),  # text tokens
    input_sigma=(0.5, 1.0),
    pareto_weight=(0.05, 0.25),
    pareto_alpha=(1.3, 2.2),
    pareto_xm_ratio=1.5,
    input_max=32768,
    output_mean=(30.0, 250.0),
    output_shape=(0.9, 1.3),
    output_max=8192,
    drift_sigma=0.12,
    sample_cap=2000,
)

REASON = ModelParams(
    category="reason",
    name="demo-r1",
    n_clients=10,
    days=1,
    mean_rate_rps=1.5,
    zipf_exponent=1.2,
    diurnal_amplitude=0.45,
    peak_hour=15.5,
    phase_jitter_h=1.0,
    bursty_cv=(1.1, 2.5),
    near_poisson_cv=(0.85, 1.1),
    near_poisson_clients=3,
    weibull_share=(0.05, 0.3),
    cv_noise=0.15,
    rate_noise_top=0.3,
    rate_noise=0.2,
    rate_noise_rho=0.9,
    day_sigma=0.0,
    count_dispersion=8.0,
    part_time=(ActiveSpan(9, 18, True), ActiveSpan(0, 11, False)),
    no_dataset_ranks=(),
    input_median=(80.0, 1500.0),
    input_sigma=(0.7, 1.2),
    pareto_weight=(0.1, 0.3),
    pareto_alpha=(1.2, 1.8),
    pareto_xm_ratio=1.5,
    input_max=65536,
    output_mean=(500.0, 2000.0),
    output_shape=(1.1, 1.6),
    output_max=32768,
    drift_sigma=0.12,
    sample_cap=2000,
)

MODELS: tuple[ModelParams, ...] = (LANGUAGE, MULTIMODAL, REASON)


@dataclass(frozen=True)
class RawTraceParams:
    """Documented parameters of the raw request trace ``traces/demo_requests.csv``."""

    n_clients: int = 8
    duration_s: float = 3 * 3600.0
    mean_rate_rps: float = 3.0  # all clients together
    zipf_exponent: float = 1.0
    bursty_cv: tuple[float, float] = (1.3, 4.0)
    weibull_clients: int = 3  # the rest use Gamma inter-arrivals
    modulation_amplitude: float = 0.3  # rate multiplier 1 + a sin(2 pi t / period + phase)
    modulation_period_s: float = 7200.0
    input_median: tuple[float, float] = (200.0, 1500.0)
    input_sigma: tuple[float, float] = (0.6, 1.0)
    pareto_weight: float = 0.2
    pareto_alpha: float = 1.5
    output_mean: tuple[float, float] = (150.0, 450.0)
    output_shape: float = 1.0
    length_coupling: float = 0.3  # output mean scales as exp(c * standardized log input)


RAW_TRACE = RawTraceParams()


@dataclass(frozen=True)
class ClientParams:
    """Parameters drawn for one client of a synthetic model."""

    client_id: str
    rank: int  # by volume, 0 = largest
    share: float
    mean_rate_rps: float
    base_cv: float
    weibull_share: float
    phase_h: float
    span: ActiveSpan | None
    has_dataset: bool
    input_median: float
    input_sigma: float
    pareto_weight: float
    pareto_alpha: float
    output_mean: float
    output_shape: float
    # multimodal
    text_templates: tuple[int, ...] = ()
    image_sizes: tuple[int, ...] = ()
    image_size_weights: tuple[float, ...] = ()
    image_count_probs: tuple[float, ...] = ()  # P(1..5 images)
    dynamic_image_share: float = 0.0
    # reasoning
    high_ratio_weight: float = 0.0
    low_ratio_mean: float = 0.0
    high_ratio_mean: float = 0.0


# ---------------------------------------------------------------------------------------
# Parameter draws


def _log_uniform(
    rng: np.random.Generator, lo_hi: tuple[float, float], size: int | tuple[int, ...] | None = None
) -> np.ndarray:
    """Values whose logarithm is uniform between log(lo) and log(hi)."""
    lo, hi = lo_hi
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _zipf_shares(n: int, exponent: float) -> np.ndarray:
    w = (np.arange(n) + 1.0) ** -exponent
    return w / w.sum()


def draw_clients(params: ModelParams, rng: np.random.Generator) -> list[ClientParams]:
    """Draw the per-client parameters of ``params`` (vectorized over clients)."""
    n = params.n_clients
    shares = _zipf_shares(n, params.zipf_exponent)
    rank_of = rng.permutation(n)  # client i has volume rank rank_of[i]
    bursty = _log_uniform(rng, params.bursty_cv, n)
    poisson = rng.uniform(*params.near_poisson_cv, n)
    near_poisson_ranks = set(range(n - params.near_poisson_clients - len(params.part_time), n - len(params.part_time)))
    w_share = rng.uniform(*params.weibull_share, n)
    phase = rng.uniform(-params.phase_jitter_h, params.phase_jitter_h, n)
    med = _log_uniform(rng, params.input_median, n)
    sig = rng.uniform(*params.input_sigma, n)
    pw = rng.uniform(*params.pareto_weight, n)
    pa = rng.uniform(*params.pareto_alpha, n)
    om = _log_uniform(rng, params.output_mean, n)
    osh = rng.uniform(*params.output_shape, n)
    spans = {n - 1 - j: span for j, span in enumerate(params.part_time)}

    clients = []
    for i in range(n):
        r = int(rank_of[i])
        extra: dict = {}
        if params.category == "multimodal":
            templated = rng.random() < 0.5
            n_tpl = int(rng.integers(1, 4)) if templated else 0
            tpl = tuple(sorted(int(x) for x in TOKEN_GRID[_snap(_log_uniform(rng, (30.0, 600.0), n_tpl))]))
            n_sizes = int(rng.integers(1, 4))
            sizes = tuple(sorted(int(x) for x in rng.choice(IMAGE_SIZE_CATALOG, n_sizes, replace=False)))
            weights = tuple(float(x) for x in rng.dirichlet(np.full(n_sizes, 1.5)))
            if rng.random() < 0.5:  # mostly single-image requests
                p1 = rng.uniform(0.7, 0.95)
                rest = rng.dirichlet(np.ones(4)) * (1 - p1)
                counts = np.concatenate([[p1], rest])
            else:  # truncated geometric over 1..5
                q = rng.uniform(0.35, 0.7)
                counts = q ** np.arange(5)
                counts = counts / counts.sum()
            extra = dict(
                text_templates=tpl,
                image_sizes=sizes,
                image_size_weights=weights,
                image_count_probs=tuple(float(x) for x in counts),
                dynamic_image_share=float(rng.uniform(0.0, 0.15)),
            )
        elif params.category == "reason":
            extra = dict(
                high_ratio_weight=float(rng.uniform(0.05, 0.6)),
                low_ratio_mean=float(rng.uniform(0.45, 0.62)),
                high_ratio_mean=float(rng.uniform(0.9, 0.97)),
            )
        clients.append(
            ClientParams(
                client_id=str(i),
                rank=r,
                share=float(shares[r]),
                mean_rate_rps=float(params.mean_rate_rps * shares[r]),
                base_cv=float(poisson[i] if r in near_poisson_ranks else bursty[i]),
                weibull_share=float(w_share[i]),
                phase_h=float(phase[i]),
                span=spans.get(r),
                has_dataset=r not in params.no_dataset_ranks,
                input_median=float(med[i]),
                input_sigma=float(sig[i]),
                pareto_weight=float(pw[i]),
                pareto_alpha=float(pa[i]),
                output_mean=float(om[i]),
                output_shape=float(osh[i]),
                **extra,
            )
        )
    return clients


# ---------------------------------------------------------------------------------------
# Arrival windows


#: The demo's grid of Weibull shapes and their log CVs, for inverting a CV into a shape
#: (:func:`servegen_core.renewal.weibull_shape_on_grid`).
_WEIBULL_K = np.geomspace(0.15, 30.0, 4000)
_WEIBULL_LOGCV = np.log(implied_cv("Weibull", _WEIBULL_K))  # decreasing in k


def _in_span(span: ActiveSpan | None, t_s: np.ndarray) -> np.ndarray:
    if span is None:
        return np.ones(t_s.shape, dtype=bool)
    h = (t_s % DAY_S) / 3600 if span.daily else t_s / 3600
    return (h >= span.start_h) & (h < span.end_h)


def arrival_windows(params: ModelParams, client: ClientParams, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One client's 600 s windows: request counts and the fitted-pattern columns."""
    n_win = params.days * DAY_S // WINDOW_S
    start = np.arange(n_win, dtype=np.int64) * WINDOW_S
    hour = (start % DAY_S + WINDOW_S / 2) / 3600
    diurnal = 1 + params.diurnal_amplitude * np.cos(2 * np.pi * (hour - params.peak_hour - client.phase_h) / 24)
    sigma = params.rate_noise_top if client.rank < 3 else params.rate_noise
    rho = params.rate_noise_rho
    ar = lfilter([math.sqrt(1 - rho**2) * sigma], [1, -rho], rng.standard_normal(n_win))
    day_level = np.exp(params.day_sigma * rng.standard_normal(params.days))[start // DAY_S]
    lam = client.mean_rate_rps * WINDOW_S * diurnal * day_level * np.exp(ar - sigma**2 / 2)
    lam = lam * rng.gamma(params.count_dispersion, 1 / params.count_dispersion, n_win)
    lam = np.where(_in_span(client.span, start + WINDOW_S / 2), lam, 0.0)
    counts = rng.poisson(lam)
    counts = np.where(counts >= MIN_FIT_REQUESTS, counts, 0)
    active = counts > 0

    rate = counts / WINDOW_S
    cv = client.base_cv * np.exp(params.cv_noise * rng.standard_normal(n_win))
    weibull = rng.random(n_win) < client.weibull_share
    # Gamma: CV = 1/sqrt(k), mean k*theta = 1/rate.
    g_shape = 1 / cv**2
    # Weibull: shape from CV; the written CV is recomputed from that shape.
    w_shape = weibull_shape_on_grid(cv, _WEIBULL_K, _WEIBULL_LOGCV)
    cv = np.where(weibull, implied_cv("Weibull", w_shape), cv)
    shape = np.where(weibull, w_shape, g_shape)
    with np.errstate(divide="ignore"):
        mean_iat = np.where(active, 1 / np.where(active, rate, 1.0), 0.0)
    scale = np.where(weibull, mean_iat / np.exp(special.gammaln(1 + 1 / w_shape)), mean_iat / g_shape)
    return {
        "start": start,
        "counts": counts,
        "rate": np.where(active, rate, 0.0),
        "cv": np.where(active, cv, 0.0),
        "weibull": weibull & active,
        "shape": np.where(active, shape, 0.0),
        "scale": np.where(active, scale, 0.0),
    }


def trace_csv_text(win: dict[str, np.ndarray]) -> str:
    """ServeGen trace CSV text (no header, CRLF) for one client's windows."""
    lines = []
    for start, count, rate, cv, weib, shape, scale in zip(
        win["start"].tolist(),
        win["counts"].tolist(),
        win["rate"].tolist(),
        win["cv"].tolist(),
        win["weibull"].tolist(),
        win["shape"].tolist(),
        win["scale"].tolist(),
        strict=True,
    ):
        if count == 0:
            lines.append(f"{start},0,0,,0,0")
        else:
            pattern = "Weibull" if weib else "Gamma"
            lines.append(f"{start},{rate!r},{cv!r},{pattern},{shape!r},{scale!r}")
    return "\r\n".join(lines) + "\r\n"


# ---------------------------------------------------------------------------------------
# Length distributions


def _snap(values: np.ndarray) -> np.ndarray:
    """Index of the nearest TOKEN_GRID bin (log space) of each value."""
    return np.searchsorted(_GRID_EDGES, np.asarray(values, dtype=np.float64), side="right")


def sample_inputs(
    rng: np.random.Generator,
    n: int,
    *,
    median: float,
    sigma: float,
    pareto_weight: float,
    pareto_alpha: float,
    pareto_xm: float,
    max_tokens: int,
) -> np.ndarray:
    """Input lengths: log-normal mixed with a Pareto tail, as whole tokens in [1, max_tokens]."""
    logn = median * np.exp(sigma * rng.standard_normal(n))
    pareto = pareto_xm * (1 + rng.pareto(pareto_alpha, n))
    x = np.where(rng.random(n) < pareto_weight, pareto, logn)
    return np.clip(np.rint(x), 1, max_tokens).astype(np.int64)


def sample_outputs(rng: np.random.Generator, n: int, *, mean: float, shape: float, max_tokens: int) -> np.ndarray:
    """Output lengths: Gamma with shape near 1 (close to exponential), whole tokens >= 1."""
    x = rng.gamma(shape, mean / shape, n)
    return np.clip(np.ceil(x), 1, max_tokens).astype(np.int64)


def _grid_pdf(values: np.ndarray) -> tuple[list[int], list[float]]:
    idx = _snap(values)
    counts = np.bincount(idx, minlength=TOKEN_GRID.size)
    keep = counts > 0
    return TOKEN_GRID[keep].tolist(), (counts[keep] / values.size).tolist()


def _exact_pdf(values: np.ndarray) -> tuple[list[int], list[float]]:
    uniq, counts = np.unique(values, return_counts=True)
    return uniq.tolist(), (counts / values.size).tolist()


def _dict_literal(keys: Sequence, probs: Sequence[float]) -> str:
    return "{" + ", ".join(f"{k!r}: {p!r}" for k, p in zip(keys, probs, strict=True)) + "}"


_REASON_KEYS = [k * (1 / REASON_BINS) for k in range(REASON_BINS)]
_POINT_ZERO = "{0: 1.0}"


def length_window_fields(
    params: ModelParams,
    client: ClientParams,
    n_requests: int,
    drift: tuple[float, float],
    rng: np.random.Generator,
) -> dict[str, str]:
    """The dataset JSON entry of one (client, 6 h window) with ``n_requests`` requests."""
    fields = FIELDS[params.category]
    if n_requests == 0:
        return dict.fromkeys(fields, "{}")
    n = min(n_requests, params.sample_cap)
    in_drift, out_drift = drift
    median = client.input_median * in_drift
    inputs = sample_inputs(
        rng,
        n,
        median=median,
        sigma=client.input_sigma,
        pareto_weight=client.pareto_weight,
        pareto_alpha=client.pareto_alpha,
        pareto_xm=params.pareto_xm_ratio * median,
        max_tokens=params.input_max,
    )
    outputs = sample_outputs(
        rng, n, mean=client.output_mean * out_drift, shape=client.output_shape, max_tokens=params.output_max
    )
    out: dict[str, str] = {}
    if params.category == "language":
        out["input_tokens"] = _dict_literal(*_grid_pdf(inputs))
        out["output_tokens"] = _dict_literal(*_grid_pdf(outputs))
    elif params.category == "reason":
        out["input_tokens"] = _dict_literal(*_grid_pdf(inputs))
        out["output_tokens"] = _dict_literal(*_grid_pdf(outputs))
        high = rng.random(n) < client.high_ratio_weight
        mean = np.where(high, client.high_ratio_mean, client.low_ratio_mean)
        conc = np.where(high, 40.0, 14.0)
        ratio = rng.beta(mean * conc, (1 - mean) * conc)
        k = np.minimum(np.floor(ratio * REASON_BINS), REASON_BINS - 1).astype(np.int64)
        probs = (np.bincount(k, minlength=REASON_BINS) / n).tolist()
        out["reason_ratio"] = _dict_literal(_REASON_KEYS, probs)
    else:
        if client.text_templates:
            tpl = np.asarray(client.text_templates, dtype=np.int64)
            text = np.where(rng.random(n) < 0.8, tpl[rng.integers(0, tpl.size, n)], inputs)
        else:
            text = inputs
        counts = rng.choice(np.arange(1, 6), n, p=np.asarray(client.image_count_probs))
        sizes = rng.choice(np.asarray(client.image_sizes), (n, 5), p=np.asarray(client.image_size_weights))
        dynamic = rng.random((n, 5)) < client.dynamic_image_share
        dyn_sizes = TOKEN_GRID[_snap(_log_uniform(rng, (200.0, 2500.0), (n, 5)))]
        sizes = np.where(dynamic, dyn_sizes, sizes)
        used = np.arange(5)[None, :] < counts[:, None]
        image_tokens = (sizes * used).sum(axis=1)
        any_dynamic = (dynamic & used).any(axis=1)
        # Requests with a dynamic-resolution image are snapped to the token grid.
        image_tokens = np.where(any_dynamic, TOKEN_GRID[_snap(image_tokens)], image_tokens)
        out["text_tokens"] = _dict_literal(*_grid_pdf(text))
        out["image_tokens"] = _dict_literal(*_exact_pdf(image_tokens))
        out["audio_tokens"] = _POINT_ZERO
        out["video_tokens"] = _POINT_ZERO
        out["image_count"] = _dict_literal(*_exact_pdf(counts))
        out["audio_count"] = _POINT_ZERO
        out["video_count"] = _POINT_ZERO
        out["output_tokens"] = _dict_literal(*_grid_pdf(outputs))
    return {f: out[f] for f in fields}


def dataset_json_text(
    params: ModelParams, client: ClientParams, win: dict[str, np.ndarray], rng: np.random.Generator
) -> str:
    """ServeGen dataset JSON text for one client (6 h windows, indent 2, no final newline)."""
    per = LENGTH_WINDOW_S // WINDOW_S
    n_len = params.days * DAY_S // LENGTH_WINDOW_S
    totals = win["counts"].reshape(n_len, per).sum(axis=1)
    drift = np.exp(params.drift_sigma * rng.standard_normal((n_len, 2)))
    data = {
        str(j * LENGTH_WINDOW_S): length_window_fields(
            params, client, int(totals[j]), (float(drift[j, 0]), float(drift[j, 1])), rng
        )
        for j in range(n_len)
    }
    return json.dumps(data, indent=2)


# ---------------------------------------------------------------------------------------
# Raw request trace


@dataclass(frozen=True)
class RawClient:
    client_id: str
    mean_rate_rps: float
    cv: float
    pattern: str
    phase: float
    input_median: float
    input_sigma: float
    output_mean: float


def draw_raw_clients(params: RawTraceParams, rng: np.random.Generator) -> list[RawClient]:
    """Per-client parameters of the raw trace (client i has volume rank i)."""
    n = params.n_clients
    shares = _zipf_shares(n, params.zipf_exponent)
    cv = _log_uniform(rng, params.bursty_cv, n)
    weibull = set(rng.choice(n, params.weibull_clients, replace=False).tolist())
    phase = rng.uniform(0, 2 * np.pi, n)
    med = _log_uniform(rng, params.input_median, n)
    sig = rng.uniform(*params.input_sigma, n)
    om = _log_uniform(rng, params.output_mean, n)
    return [
        RawClient(
            client_id=str(i),
            mean_rate_rps=float(params.mean_rate_rps * shares[i]),
            cv=float(cv[i]),
            pattern="Weibull" if i in weibull else "Gamma",
            phase=float(phase[i]),
            input_median=float(med[i]),
            input_sigma=float(sig[i]),
            output_mean=float(om[i]),
        )
        for i in range(n)
    ]


def _unit_mean_iats(rng: np.random.Generator, n: int, cv: float, pattern: str) -> np.ndarray:
    if pattern == "Weibull":
        k = float(weibull_shape_on_grid(np.asarray([cv]), _WEIBULL_K, _WEIBULL_LOGCV)[0])
        return rng.weibull(k, n) / math.exp(special.gammaln(1 + 1 / k))
    k = 1 / cv**2
    return rng.gamma(k, 1 / k, n)


def raw_client_requests(params: RawTraceParams, client: RawClient, rng: np.random.Generator) -> pl.DataFrame:
    """One client's requests: renewal arrivals in operational time, mapped through the
    cumulative rate (time change), with log-normal/Pareto inputs and Gamma outputs."""
    t_grid = np.linspace(0.0, params.duration_s, int(params.duration_s) + 1)
    mod = 1 + params.modulation_amplitude * np.sin(2 * np.pi * t_grid / params.modulation_period_s + client.phase)
    cum = np.concatenate([[0.0], np.cumsum((mod[1:] + mod[:-1]) / 2 * np.diff(t_grid))]) * client.mean_rate_rps
    total = cum[-1]
    n_draw = int(total + 8 * client.cv * math.sqrt(total) + 100)
    u = np.cumsum(_unit_mean_iats(rng, n_draw, client.cv, client.pattern))
    while u[-1] < total:  # rare: extend by another chunk
        u = np.concatenate([u, u[-1] + np.cumsum(_unit_mean_iats(rng, n_draw, client.cv, client.pattern))])
    u = u[u < total]
    ts = np.interp(u, cum, t_grid)
    n = ts.size
    inputs = sample_inputs(
        rng,
        n,
        median=client.input_median,
        sigma=client.input_sigma,
        pareto_weight=params.pareto_weight,
        pareto_alpha=params.pareto_alpha,
        pareto_xm=1.5 * client.input_median,
        max_tokens=131072,
    )
    z = np.log(inputs)
    z = (z - z.mean()) / (z.std() or 1.0)
    means = client.output_mean * np.exp(params.length_coupling * z)
    outputs = np.clip(np.ceil(rng.gamma(params.output_shape, means / params.output_shape)), 1, 16384)
    return pl.DataFrame(
        {
            "timestamp_s": np.round(ts, 6),
            "client_id": np.full(n, client.client_id),
            "input_tokens": inputs,
            "output_tokens": outputs.astype(np.int64),
        }
    )


def raw_trace(params: RawTraceParams, rng: np.random.Generator) -> tuple[pl.DataFrame, list[RawClient]]:
    """The raw request trace (sorted by time) and the client parameters it came from."""
    clients = draw_raw_clients(params, rng)
    parts = [raw_client_requests(params, c, rng) for c in clients]
    df = pl.concat(parts).sort(["timestamp_s", "client_id"], maintain_order=True)
    return df, clients


# ---------------------------------------------------------------------------------------
# README


def _range(lo_hi: tuple[float, float]) -> str:
    return f"{lo_hi[0]:g}-{lo_hi[1]:g}"


def readme_text(
    seed: int,
    models: Sequence[tuple[ModelParams, list[ClientParams], dict[str, int]]],
    raw: tuple[RawTraceParams, list[RawClient], int],
) -> str:
    """The README of the demo folder, with the parameter tables of this build."""
    lines = [
        "# Demo data — SYNTHETIC",
        "",
        f"Everything in this folder is **SYNTHETIC** ({DEMO_LABEL}): generated by `servegen_core.demo`",
        f"from the parameters below with `numpy.random.default_rng({seed})`. It is not real traffic and not",
        "a copy or subset of any real data set. Model names start with `demo-`.",
        "",
        "Rebuild (byte-identical for the same seed):",
        "",
        "```",
        "python -m servegen_core.demo            # writes data/demo",
        "python -m servegen_core.demo --out DIR --seed N",
        "```",
        "",
        "## How it is made",
        "",
        "- **Files**: ServeGen's on-disk format. `servegen/<category>/<model>/chunk-<client>-trace.csv`",
        "  (no header, CRLF, one row `window_start_s,rate_rps,cv,pattern,shape,scale` per 600 s window;",
        "  idle windows are `<start>,0,0,,0,0`) and `chunk-<client>-dataset.json`",
        '  (`{"<window_start_s>": {"<field>": "<dict literal {bin: prob}>"}}` per 6 h window, `"{}"` for',
        "  every field of a window without requests).",
        "- **Volume**: client shares follow a Zipf law over volume ranks, `share(r) ∝ (r+1)^-s`; ranks",
        "  are assigned to client ids by a random permutation.",
        "- **Diurnal rate**: `rate(t) = mean_rate · share · (1 + A cos(2π (h − peak − phase)/24))`, times",
        "  a day-to-day level and an AR(1) log-normal noise per 600 s window (larger for the top-3",
        "  clients). The request count of a window is Poisson with a Gamma-mixed mean; windows with",
        f"  fewer than {MIN_FIT_REQUESTS} requests are written idle. `rate_rps = count / 600`.",
        "- **Burstiness**: each window gets a CV around the client's base CV (log-normal noise) and is",
        "  labelled Gamma or Weibull (per-client Weibull share). Gamma: `shape = 1/CV²`,",
        "  `scale = 1/(rate·shape)`. Weibull: shape solves `CV² = Γ(1+2/k)/Γ(1+1/k)² − 1` and the",
        "  written CV is recomputed from that shape; `scale = (1/rate)/Γ(1+1/k)`. Most clients are",
        "  bursty (CV > 1); a few are near-Poisson.",
        "- **Part-time clients**: the smallest clients send requests only in the listed spans, so some",
        '  6 h windows have no requests (`"{}"`). A 6 h window is `"{}"` exactly when all of its',
        "  600 s windows are idle.",
        "- **Lengths** (per 6 h window, from min(requests, sample cap) sampled requests): inputs are a",
        "  log-normal mixed with a Pareto tail (minimum 1.5 × median); outputs are Gamma with shape",
        "  near 1 (close to exponential). Medians and means drift per 6 h window (log-normal).",
        f"  Token values are snapped to {TOKEN_GRID.size} integer bins (every integer up to 28, then",
        "  about 3.8 % apart up to 131072); probabilities are exact sample frequencies.",
        "- **Multimodal**: 1-5 images per request; image sizes come from 1-3 dominant sizes per client",
        f"  (catalog {', '.join(map(str, IMAGE_SIZE_CATALOG))}), plus a share of dynamic-resolution",
        "  images; `image_tokens` is the request's total. Half the clients use 1-3 fixed text templates",
        "  (80 % of requests). Audio and video are always 0.",
        "- **Reasoning**: `reason_ratio` is bimodal (Beta around 0.45-0.62 and around 0.9-0.97); bins",
        "  are `k · (1/501)`, k = 0..500 (all 501 bins listed, as in ServeGen's deepseek-r1 data).",
        "- **Missing lengths**: some language clients have a trace CSV but no dataset JSON, as in the",
        "  real data.",
        "",
        "## Models",
        "",
        "| model | clients | days | mean rate (rps) | Zipf s | diurnal A | peak h | bursty CV | near-Poisson clients (CV) | Weibull share | inputs: median, σ, Pareto w, α | outputs: mean, shape |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p, _, _ in models:
        lines.append(
            f"| {p.category}/{p.name} | {p.n_clients} | {p.days} | {p.mean_rate_rps:g} | {p.zipf_exponent:g} | "
            f"{p.diurnal_amplitude:g} | {p.peak_hour:g} ± {p.phase_jitter_h:g} | {_range(p.bursty_cv)} | "
            f"{p.near_poisson_clients} ({_range(p.near_poisson_cv)}) | {_range(p.weibull_share)} | "
            f"{_range(p.input_median)}, {_range(p.input_sigma)}, {_range(p.pareto_weight)}, {_range(p.pareto_alpha)} | "
            f"{_range(p.output_mean)}, {_range(p.output_shape)} |"
        )
    lines += [
        "",
        "Common: CV noise σ 0.15-0.2, AR(1) rate noise σ 0.2 (top-3 clients 0.3-0.35) with ρ 0.9,",
        f"sample cap {LANGUAGE.sample_cap} requests per 6 h PDF, length drift σ {LANGUAGE.drift_sigma:g}.",
    ]
    for p, clients, requests in models:
        lines += [
            "",
            f"### {p.category}/{p.name} — clients",
            "",
            "| client | rank | share | mean rate (rps) | base CV | Weibull share | active | dataset | input median | input σ | output mean | requests |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in sorted(clients, key=lambda c: int(c.client_id)):
            lines.append(
                f"| {c.client_id} | {c.rank} | {c.share:.3f} | {c.mean_rate_rps:.3f} | {c.base_cv:.2f} | "
                f"{c.weibull_share:.2f} | {c.span.describe() if c.span else 'always'} | "
                f"{'yes' if c.has_dataset else 'no (trace only)'} | {c.input_median:.0f} | {c.input_sigma:.2f} | "
                f"{c.output_mean:.0f} | {requests[c.client_id]} |"
            )
        if p.category == "multimodal":
            lines += ["", "| client | text templates | image sizes (weights) | P(1..5 images) | dynamic share |", "|---|---|---|---|---|"]
            for c in sorted(clients, key=lambda c: int(c.client_id)):
                sizes = ", ".join(f"{s} ({w:.2f})" for s, w in zip(c.image_sizes, c.image_size_weights, strict=True))
                lines.append(
                    f"| {c.client_id} | {', '.join(map(str, c.text_templates)) or '-'} | {sizes} | "
                    f"{', '.join(f'{x:.2f}' for x in c.image_count_probs)} | {c.dynamic_image_share:.2f} |"
                )
        if p.category == "reason":
            lines += ["", "| client | high-ratio weight | low mode mean | high mode mean |", "|---|---|---|---|"]
            for c in sorted(clients, key=lambda c: int(c.client_id)):
                lines.append(
                    f"| {c.client_id} | {c.high_ratio_weight:.2f} | {c.low_ratio_mean:.2f} | {c.high_ratio_mean:.2f} |"
                )
    rp, rclients, n_raw = raw
    lines += [
        "",
        "## Raw request trace `traces/demo_requests.csv`",
        "",
        "A raw trace in this project's RequestTrace CSV columns `timestamp_s,client_id,input_tokens,output_tokens`",
        f"(header, LF, timestamps in seconds with 6 decimals): {n_raw} requests over {rp.duration_s / 3600:g} h from",
        f"{rp.n_clients} clients (Zipf s = {rp.zipf_exponent:g}, {rp.mean_rate_rps:g} rps in total). Each client is a renewal",
        "process with Gamma or Weibull inter-arrival times of the given CV, run in operational time and",
        f"mapped through its cumulative rate `1 + {rp.modulation_amplitude:g} sin(2π t/{rp.modulation_period_s:g} s + phase)`.",
        f"Inputs: log-normal mixed with Pareto (w = {rp.pareto_weight:g}, α = {rp.pareto_alpha:g}); outputs: Gamma",
        f"(shape {rp.output_shape:g}) whose mean scales as exp({rp.length_coupling:g} · standardized log input): a weak",
        "input/output correlation.",
        "",
        "| client | mean rate (rps) | CV | pattern | input median | input σ | output mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rclients:
        lines.append(
            f"| {c.client_id} | {c.mean_rate_rps:.3f} | {c.cv:.2f} | {c.pattern} | {c.input_median:.0f} | "
            f"{c.input_sigma:.2f} | {c.output_mean:.0f} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Build


def _write_atomic(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def build_demo(out_dir: Path, *, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the synthetic demo data into ``out_dir`` and return the files written (sorted).

    Stale ``chunk-*`` files left in the demo model folders by an earlier build are removed, so
    the folders hold exactly this build's clients.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    model_rngs = rng.spawn(len(MODELS) + 1)
    files: dict[Path, str | bytes] = {}
    summaries = []
    for params, mrng in zip(MODELS, model_rngs[:-1], strict=True):
        folder = out_dir / "servegen" / params.category / params.name
        clients = draw_clients(params, mrng)
        requests: dict[str, int] = {}
        for client in clients:
            win = arrival_windows(params, client, mrng)
            requests[client.client_id] = int(win["counts"].sum())
            files[folder / f"chunk-{client.client_id}-trace.csv"] = trace_csv_text(win)
            dataset = dataset_json_text(params, client, win, mrng)  # drawn even if not written
            if client.has_dataset:
                files[folder / f"chunk-{client.client_id}-dataset.json"] = dataset
        summaries.append((params, clients, requests))

    df, rclients = raw_trace(RAW_TRACE, model_rngs[-1])
    raw_path = out_dir / "traces" / "demo_requests.csv"
    files[raw_path] = df.write_csv(float_precision=6).encode("utf-8")
    files[out_dir / "README.md"] = readme_text(seed, summaries, (RAW_TRACE, rclients, df.height))

    for params in MODELS:
        folder = out_dir / "servegen" / params.category / params.name
        if folder.is_dir():
            for old in folder.glob("chunk-*"):
                if old not in files:
                    old.unlink()
    for path, data in files.items():
        _write_atomic(path, data)
    return sorted(files)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m servegen_core.demo [--out DIR] [--seed N]``."""
    parser = argparse.ArgumentParser(prog="python -m servegen_core.demo", description=f"Build the {DEMO_LABEL}.")
    parser.add_argument("--out", type=Path, default=demo_data_dir(), help="output folder (default: data/demo)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    paths = build_demo(args.out, seed=args.seed)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {size / 1e6:.2f} MB of {DEMO_LABEL} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
