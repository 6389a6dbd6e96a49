"""The validation corpus: fit (pool_from_trace) -> compose -> compare, on sources with known answers.

Synthetic sources are built here (on/off bursts with CV 5-15, batch arrivals with exact ties,
Gamma and Weibull renewals, a diurnal ramp, timestamps on a 1 s and a 3 s grid, several clients
with different patterns) plus the two shared traces. For each: the composed workload (the
trace source's default ``sub_window="source"``: each client's fitted and chosen model) has
exactly the source's request count, an inter-arrival KS distance (aggregate stream) below
0.05 and a generated / source index of dispersion of counts within [0.8, 1.25] at every
timescale from 100 ms to 600 s (the median over three composition seeds: one draw's variance
over a few hundred bins of bursty traffic varies by +-10-15 %, so one draw judges the luck, not
the model). Bins start at the trace's origin, so the 600 s bins are the fit's windows.

Scales a source's structure makes unmeasurable are left out, each with its reason
(:data:`UNMEASURABLE`); no bound is loosened. Cases the model does not meet yet are marked
``xfail(strict=True)`` with what fails, so that a fix shows up as an unexpected pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.special import gamma as gamma_fn

from servegen_core.arrival_models import count_dispersion
from servegen_core.generate.compose import compose
from servegen_core.sources.fit import pool_from_trace
from servegen_core.sources.traces import load_trace
from servegen_core.spec import Span, TraceSource, WorkloadSpec

SCALES_S = (0.1, 1.0, 10.0, 60.0, 600.0)
BAND = (0.8, 1.25)
SEEDS = (3, 4, 5)
HOURS = 3.0


def _frame(t: np.ndarray, clients: np.ndarray | None, rng: np.random.Generator) -> pl.DataFrame:
    order = np.argsort(t, kind="stable")
    t = t[order]
    ids = np.zeros(t.size, dtype=np.int64) if clients is None else clients[order]
    return pl.DataFrame(
        {
            "timestamp_s": t,
            "client_id": [str(c) for c in ids],
            "input_tokens": rng.integers(10, 2000, t.size),
            "output_tokens": rng.integers(1, 500, t.size),
        }
    )


def onoff_times(rng: np.random.Generator, duration_s: float, burst_mean: float = 100.0) -> np.ndarray:
    """Bursts (gaps uniform 50-100 ms, geometric sizes) separated by silences uniform 80-220 s."""
    n_bursts = int(duration_s / 80) + 10
    sizes = rng.geometric(1.0 / burst_mean, n_bursts)
    gaps = rng.uniform(0.05, 0.1, int(sizes.sum()))
    gaps[np.cumsum(sizes) - 1] = rng.uniform(80.0, 220.0, n_bursts)
    t = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    return t[t < duration_s]


def renewal_times(rng: np.random.Generator, duration_s: float, rate: float, gaps_of) -> np.ndarray:
    n = int(rate * duration_s * 1.5) + 100
    t = np.cumsum(gaps_of(n)) / rate
    return t[t < duration_s]


def gamma_times(rng, duration_s, rate=4.0, cv=3.0):
    k = 1.0 / cv**2
    return renewal_times(rng, duration_s, rate, lambda n: rng.gamma(k, 1.0 / k, n))


def weibull_times(rng, duration_s, rate=4.0, shape=0.5):
    return renewal_times(rng, duration_s, rate, lambda n: rng.weibull(shape, n) / gamma_fn(1.0 + 1.0 / shape))


def batch_times(rng, duration_s, rate=1.5, mean_size=3.0):
    """Poisson instants, each with a geometric number of requests at exactly the same time
    (ties the microsecond clock cannot explain)."""
    starts = np.cumsum(rng.exponential(1.0 / rate, int(rate * duration_s * 1.3) + 50))
    starts = np.round(starts[starts < duration_s], 6)
    return np.repeat(starts, rng.geometric(1.0 / mean_size, starts.size))


def ramp_times(rng, duration_s, lo=1.0, hi=10.0):
    """A diurnal ramp: Poisson with a rate rising linearly from ``lo`` to ``hi`` (thinning)."""
    t = np.cumsum(rng.exponential(1.0 / hi, int(hi * duration_s * 1.2) + 100))
    t = t[t < duration_s]
    keep = rng.random(t.size) < (lo + (hi - lo) * t / duration_s) / hi
    return t[keep]


def build_sources() -> dict[str, pl.DataFrame]:
    d = HOURS * 3600.0
    out = {}
    rng = np.random.default_rng(101)
    out["onoff"] = _frame(onoff_times(rng, d), None, rng)
    rng = np.random.default_rng(102)
    out["batch"] = _frame(batch_times(rng, d), None, rng)
    rng = np.random.default_rng(103)
    out["gamma"] = _frame(gamma_times(rng, d), None, rng)
    rng = np.random.default_rng(104)
    out["weibull"] = _frame(weibull_times(rng, d), None, rng)
    rng = np.random.default_rng(105)
    out["ramp"] = _frame(ramp_times(rng, d), None, rng)
    rng = np.random.default_rng(106)
    out["grid1s"] = _frame(np.floor(gamma_times(rng, d, rate=2.0, cv=2.0)), None, rng)
    rng = np.random.default_rng(107)
    out["grid3s"] = _frame(np.floor(gamma_times(rng, d, rate=2.0, cv=2.0) / 3.0) * 3.0, None, rng)
    rng = np.random.default_rng(108)
    parts = [onoff_times(rng, d, 50.0), gamma_times(rng, d, rate=2.0, cv=2.0), renewal_times(rng, d, 1.0, rng.standard_exponential)]
    clients = np.concatenate([np.full(p.size, i) for i, p in enumerate(parts)])
    out["clients"] = _frame(np.concatenate(parts), clients, rng)
    return out


#: Timescales a source's structure makes unmeasurable, and why.
UNMEASURABLE: dict[str, dict[float, str]] = {
    # counts per bin below the grid measure where the grid puts its ticks, not the traffic
    "grid1s": {0.1: "bins below the 1 s grid count grid ticks"},
    "grid3s": {0.1: "bins below the 3 s grid count grid ticks", 1.0: "bins below the 3 s grid count grid ticks"},
    # Mooncake spans 1,022 s: one 600 s window and a partial one, not two whole 600 s bins
    "mooncake": {600.0: "the trace spans under two whole 600 s bins"},
}

#: Sources recorded on a clock grid (s): the generated times are compared as that clock would
#: record them (floored to the grid), since a continuous gap against a gap of whole grid steps
#: measures the clock, not the traffic.
GRIDS: dict[str, float] = {"grid1s": 1.0, "grid3s": 3.0}

#: Cases the model does not meet yet (see the module docstring): name -> reason.
KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "dispersion": {
        "azure": "the rate drifts inside the 600 s windows; a per-window rate flattens it (10 s and 60 s ratios ~0.75)",
    },
}


@pytest.fixture(scope="module")
def sources(traces_dir: Path) -> dict[str, pl.DataFrame]:
    out = build_sources()
    out["azure"] = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv", preset="azure").trace
    out["mooncake"] = load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace
    return out


def _times(frame: pl.DataFrame) -> np.ndarray:
    return np.sort(frame["timestamp_s"].to_numpy().astype(np.float64))


def figures(source: np.ndarray, generated: np.ndarray, origin: float, end: float) -> dict[str, float]:
    out = {"ks": float(stats.ks_2samp(np.diff(source), np.diff(generated)).statistic)}
    for s in SCALES_S:
        whole = origin + np.floor((end - origin) / s) * s
        d_src = count_dispersion(source, s, start_s=origin, end_s=whole)
        d_gen = count_dispersion(generated, s, start_s=origin, end_s=whole)
        out[f"disp_{s:g}"] = d_gen / d_src if d_src > 0 else float("nan")
    return out


def round_trip(trace: pl.DataFrame, name: str, **spec_options) -> tuple[dict[str, float], int, list[int]]:
    pool = pool_from_trace(trace, name=f"trace/{name}")
    src = _times(trace)
    origin = float(np.floor(src.min()))
    end = float(src.max())
    runs, counts = [], []
    for seed in SEEDS:
        spec = WorkloadSpec(source=TraceSource(path=f"{name}.csv"), span=Span(0, None), seed=seed)
        spec = dataclasses.replace(spec, **spec_options)
        gen = _times(compose(spec, pool=pool).trace)
        if name in GRIDS:
            gen = np.floor(gen / GRIDS[name]) * GRIDS[name]
        counts.append(gen.size)
        runs.append(figures(src - origin, gen - origin, 0.0, end - origin))
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return med, src.size, counts


@pytest.fixture(scope="module")
def results(sources) -> dict[str, tuple[dict[str, float], int, list[int]]]:
    return {name: round_trip(frame, name) for name, frame in sources.items()}


CASES = ("onoff", "batch", "gamma", "weibull", "ramp", "grid1s", "grid3s", "clients", "azure", "mooncake")


def _mark(name: str, check: str):
    reason = KNOWN_FAILURES.get(check, {}).get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else name


def test_synthetic_sources_have_the_structure_they_claim(sources):
    g = np.diff(_times(sources["onoff"]))
    assert 5 <= g.std() / g.mean() <= 15
    b = np.diff(_times(sources["batch"]))
    assert (b == 0).mean() > 0.5  # exact ties beyond the microsecond clock
    assert set(np.unique(np.mod(_times(sources["grid3s"]), 3.0))) == {0.0}
    assert sources["clients"]["client_id"].n_unique() == 3


@pytest.mark.parametrize("name", CASES)
def test_counts_are_exact(results, name):
    _, n_src, counts = results[name]
    assert counts == [n_src] * len(SEEDS)


@pytest.mark.parametrize("name", [_mark(c, "ks") for c in CASES])
def test_interarrival_ks(results, name):
    assert results[name][0]["ks"] < 0.05, results[name][0]


@pytest.mark.parametrize("name", [_mark(c, "dispersion") for c in CASES])
def test_count_dispersion_at_every_scale(results, name):
    fig = results[name][0]
    skip = UNMEASURABLE.get(name, {})
    ratios = {s: fig[f"disp_{s:g}"] for s in SCALES_S if s not in skip}
    assert all(BAND[0] <= r <= BAND[1] for r in ratios.values()), ratios


def test_moment_matched_gamma_fails_the_onoff_source(sources):
    """The reason for the change: one Gamma per window at the window's CV (shape 1/cv^2,
    ServeGen's sub-window model) puts most gaps far below the source's shortest (50 ms), and
    its sub-second dispersion is far from the source's."""
    fig, _, _ = round_trip(sources["onoff"], "onoff", sub_window="gamma")
    assert fig["ks"] > 0.05
    assert not BAND[0] <= fig["disp_0.1"] <= BAND[1], fig
