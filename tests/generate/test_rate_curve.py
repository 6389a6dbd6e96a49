"""compose.rate_curve: the rate function as generation draws arrivals from it (the Compose page's preview)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.generate.compose import compose, plan_workload, rate_curve
from servegen_core.sources.pool import load_pool
from servegen_core.spec import ClientSelection, ObservedRate, PiecewiseRate, RampRate, ServeGenSource, Span, WorkloadSpec


def spec(**kw) -> WorkloadSpec:
    return WorkloadSpec(source=ServeGenSource("shared", "language/m-large"), **kw)


def test_a_ramp_is_linear_on_a_fine_grid(m_large):
    plan = plan_workload(spec(span=Span(72000, 3600.0), rate=RampRate(2.0, 20.0)), pool=m_large)
    curve = rate_curve(plan, points=901)
    t = curve["t_s"].to_numpy()
    assert t.min() == 0 and t.max() == 3600 and np.all(np.diff(t) >= 0)
    assert np.diff(t).max() <= 4.0 + 1e-9  # at least the 901 evenly spaced points
    np.testing.assert_allclose(curve["target_rps"].to_numpy(), 2.0 + 18.0 * t / 3600.0, rtol=1e-12)
    # every window of this hour has active clients: the composed rate is the function itself
    np.testing.assert_allclose(curve["composed_rps"].to_numpy(), curve["target_rps"].to_numpy(), rtol=1e-9)


def test_generated_arrivals_follow_the_previewed_ramp(m_large):
    s = spec(span=Span(72000, 3600.0), rate=RampRate(2.0, 20.0), arrivals="poisson", seed=3)
    made = compose(s, pool=m_large)
    curve = rate_curve(made.plan)
    # requests per 5-minute bin against the integral of the previewed rate over the bin
    edges = np.arange(0, 3601, 300.0)
    counts, _ = np.histogram(made.trace["timestamp_s"].to_numpy(), bins=edges)
    t, r = curve["t_s"].to_numpy(), curve["composed_rps"].to_numpy()
    expected = [np.trapezoid(r[(t >= a) & (t <= b)], t[(t >= a) & (t <= b)]) for a, b in zip(edges[:-1], edges[1:])]
    # Poisson counts of 600 to 5,700: within 5 standard deviations of the expectation
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected))
    # the per-window mean (a step of 10 minutes) would put 15 % more into the first 5 minutes
    first_step = 2.0 + 18.0 * 300 / 3600  # the ramp's mean over the first 10-minute window
    assert abs(counts[0] - 300 * first_step) > 5 * np.sqrt(expected[0])


def test_a_step_function_shows_both_sides_of_each_step(m_large):
    rate = PiecewiseRate(points=((0.0, 4.0), (1000.0, 9.0), (2500.0, 1.0)), interpolation="step")
    curve = rate_curve(plan_workload(spec(span=Span(72000, 3600.0), rate=rate), pool=m_large))
    t, y = curve["t_s"].to_numpy(), curve["target_rps"].to_numpy()
    np.testing.assert_array_equal(y, np.select([t < 1000, t < 2500], [4.0, 9.0], 1.0))
    for edge, before, after in ((1000.0, 4.0, 9.0), (2500.0, 9.0, 1.0)):
        left = t[t < edge].max()
        assert edge - left < 1e-9 and y[t == left][0] == before and y[t == edge][0] == after


def test_observed_rate_is_each_window_and_zero_where_no_client_is_active(m_large):
    # one client that is idle in some of the day's windows
    w = m_large.windows.filter(pl.col("start_s") < 86400)
    active = w.group_by("client_id").agg((pl.col("rate_rps") > 0).mean().alias("on")).filter((pl.col("on") > 0.2) & (pl.col("on") < 0.8))
    cid = sorted(set(active["client_id"].to_list()) - set(m_large.clients_without_lengths))[0]
    s = spec(span=Span(0, 86400.0), clients=ClientSelection("ids", ids=(cid,)), rate=ObservedRate(2.0))
    plan = plan_workload(s, pool=m_large)
    curve = rate_curve(plan)
    t = curve["t_s"].to_numpy()
    mine = w.filter(pl.col("client_id") == cid).sort("start_s")
    recorded = dict(zip(mine["start_s"].to_list(), mine["rate_rps"].to_list(), strict=True))
    composed_windows = set(plan.client_windows["start_s"].to_list())  # windows with length data
    window = (t // 600 * 600).astype(int)
    window[t == 86400] = 86400 - 600
    expected = np.array([2.0 * recorded.get(int(s_), 0.0) if int(s_) in composed_windows else 0.0 for s_ in window])
    np.testing.assert_allclose(curve["composed_rps"].to_numpy(), expected, rtol=1e-9, atol=1e-12)
    assert (curve["composed_rps"] == 0).any() and (curve["composed_rps"] > 0).any()
