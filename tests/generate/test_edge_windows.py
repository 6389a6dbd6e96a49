"""Two-state windows at the window edges: fit (pool_from_trace) -> compose -> compare, seeds 0-7.

A 600 s window of on/off traffic with long silences holds few bursts, and a burst or a silence
often straddles the window's edge: the fit sees only the gaps between a window's requests, so
the silence cut by the edges is never one of them (a window holding one burst has no slow gap
at all). The sources here are built so: on/off processes with CV 5-15 whose silences are
shorter than, comparable to and longer than a window, and the demo's raw trace (eight clients
of Gamma / Weibull renewals). For each, over composition seeds 0-7: counts exact, the median
inter-arrival KS distance below 0.05 and the median generated / source index of dispersion of
counts within [0.8, 1.25] at every timescale from 100 ms to 600 s.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servegen_core.arrival_models import count_dispersion, select_arrival_models
from servegen_core.generate.compose import compose
from servegen_core.sources.demo import RAW_TRACE, raw_trace
from servegen_core.sources.fit import pool_from_trace
from servegen_core.spec import Span, TraceSource, WorkloadSpec

SCALES_S = (0.1, 1.0, 10.0, 60.0, 600.0)
BAND = (0.8, 1.25)
SEEDS = tuple(range(8))
DURATION_S = 6 * 3600.0


def onoff_times(rng: np.random.Generator, burst_mean: float, gap_s: tuple[float, float], silence_s: tuple[float, float]) -> np.ndarray:
    """Bursts (gaps uniform in ``gap_s``, geometric sizes of mean ``burst_mean``) separated by
    silences uniform in ``silence_s``, over :data:`DURATION_S`."""
    n_bursts = int(DURATION_S / silence_s[0]) + 10
    sizes = rng.geometric(1.0 / burst_mean, n_bursts)
    gaps = rng.uniform(*gap_s, int(sizes.sum()))
    gaps[np.cumsum(sizes) - 1] = rng.uniform(*silence_s, n_bursts)
    t = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    return t[t < DURATION_S]


def _frame(t: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    t = np.sort(t)
    return pl.DataFrame(
        {
            "timestamp_s": t,
            "client_id": ["0"] * t.size,
            "input_tokens": rng.integers(10, 2000, t.size),
            "output_tokens": rng.integers(1, 500, t.size),
        }
    )


def build_sources() -> dict[str, pl.DataFrame]:
    out = {}
    rng = np.random.default_rng(201)
    out["short_silences"] = _frame(onoff_times(rng, 30.0, (0.05, 0.2), (20.0, 120.0)), rng)
    rng = np.random.default_rng(202)
    out["window_silences"] = _frame(onoff_times(rng, 100.0, (0.05, 0.1), (80.0, 220.0)), rng)
    rng = np.random.default_rng(203)
    out["long_silences"] = _frame(onoff_times(rng, 150.0, (0.05, 0.1), (200.0, 900.0)), rng)
    out["demo_raw"], _ = raw_trace(RAW_TRACE, np.random.default_rng(2025))
    return out


def _times(frame: pl.DataFrame) -> np.ndarray:
    return np.sort(frame["timestamp_s"].to_numpy().astype(np.float64))


def round_trip(trace: pl.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Per seed: inter-arrival KS, generated / source dispersion per scale, and counts."""
    pool = pool_from_trace(trace, name=f"trace/{name}")
    src = _times(trace)
    origin = float(np.floor(src.min()))
    src = src - origin
    end = float(src.max())
    ends = [np.floor(end / s) * s for s in SCALES_S]
    d_src = np.array([count_dispersion(src, s, start_s=0.0, end_s=e) for s, e in zip(SCALES_S, ends)])
    ks, ratios, counts = [], [], []
    for seed in SEEDS:
        spec = WorkloadSpec(source=TraceSource(path=f"{name}.csv"), span=Span(0, None), seed=seed)
        gen = _times(compose(spec, pool=pool).trace) - origin
        counts.append(gen.size)
        ks.append(stats.ks_2samp(np.diff(src), np.diff(gen)).statistic)
        ratios.append([count_dispersion(gen, s, start_s=0.0, end_s=e) for s, e in zip(SCALES_S, ends)] / d_src)
    return np.array(ks), np.array(ratios), counts, src.size


@pytest.fixture(scope="module")
def results():
    return {name: round_trip(frame, name) for name, frame in build_sources().items()}


def test_sources_are_onoff_with_cv_5_to_15_and_bursts_cut_by_window_edges():
    sources = build_sources()
    for name in ("short_silences", "window_silences", "long_silences"):
        t = _times(sources[name])
        g = np.diff(t)
        assert 5 <= g.std() / g.mean() <= 15, name
        # a silence (gap over 10 s) straddles a window edge in a good share of the windows
        straddle = np.floor(t[1:] / 600.0) > np.floor(t[:-1] / 600.0)
        assert (straddle & (g > 10.0)).sum() >= 0.2 * DURATION_S / 600.0, name
    # the long silences leave windows holding a single burst: no gap over 10 s inside them
    t = _times(sources["long_silences"])
    w = np.floor(t / 600.0).astype(np.int64)
    inside = w[1:] == w[:-1]
    slow_inside = np.bincount(w[1:][inside & (np.diff(t) > 10.0)], minlength=w.max() + 1)
    busy = np.bincount(w, minlength=w.max() + 1) >= 50
    assert (busy & (slow_inside == 0)).sum() >= 10


@pytest.mark.parametrize("name", ["short_silences", "window_silences", "long_silences", "demo_raw"])
def test_counts_exact(results, name):
    _, _, counts, n_src = results[name]
    assert counts == [n_src] * len(SEEDS)


@pytest.mark.parametrize("name", ["short_silences", "window_silences", "long_silences", "demo_raw"])
def test_interarrival_ks(results, name):
    ks = results[name][0]
    assert np.median(ks) < 0.05, ks


@pytest.mark.parametrize("name", ["short_silences", "window_silences", "long_silences", "demo_raw"])
def test_dispersion_at_every_scale(results, name):
    ratios = np.median(results[name][1], axis=0)
    assert np.all((ratios >= BAND[0]) & (ratios <= BAND[1])), dict(zip(SCALES_S, ratios.round(3)))



def drift_times(rng: np.random.Generator, period_s: float = 600.0, amplitude: float = 0.9, mean_rps: float = 4.0) -> np.ndarray:
    """Poisson arrivals whose rate drifts smoothly inside every window: ``mean_rps * (1 +
    amplitude * sin(2 pi t / period_s + 1))``, by a time change of unit-rate Poisson points."""
    grid = np.linspace(0.0, DURATION_S, int(DURATION_S) * 4 + 1)
    rate = mean_rps * (1.0 + amplitude * np.sin(2.0 * np.pi * grid / period_s + 1.0))
    cum = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2.0 * np.diff(grid))])
    u = np.cumsum(rng.standard_exponential(int(cum[-1] * 1.2) + 100))
    return np.interp(u[u < cum[-1]], cum, grid)


@pytest.mark.xfail(
    strict=True,
    reason="a stationary sub-window model cannot express a rate that drifts inside the window "
    "(60 s dispersion ratio ~0.63 on this source, 10 s ~0.81); see the Azure case in test_roundtrip_corpus",
)
def test_rate_drift_inside_windows():
    rng = np.random.default_rng(204)
    trace = _frame(drift_times(rng), rng)
    ks, ratios, counts, n_src = round_trip(trace, "drift")
    assert counts == [n_src] * len(SEEDS)
    assert np.median(ks) < 0.05
    med = np.median(ratios, axis=0)
    assert np.all((med >= BAND[0]) & (med <= BAND[1])), dict(zip(SCALES_S, med.round(3)))


def test_selection_checks_the_gaps_of_its_regenerated_windows():
    """On short silences (many cycles per window) the empirical gap histogram out-scores the
    two-state model in held-out likelihood, but a window of resampled gaps is rescaled by one
    factor to fill its circle, which moves the burst gaps: the held-out KS check rules it out."""
    t = _times(build_sources()["short_silences"])
    out = select_arrival_models(t)
    row = {m: r for m, r in zip(out["model"], out.iter_rows(named=True))}
    assert row["empirical"]["heldout_loglik"] > row["mmpp"]["heldout_loglik"]
    assert row["empirical"]["heldout_ks"] > 0.15 and not row["empirical"]["ks_ok"]
    assert row["mmpp"]["heldout_ks"] < 0.1 and row["mmpp"]["chosen"]
