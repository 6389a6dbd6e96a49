"""The per-window KS gate of renewal arrivals, on synthetic windows with known answers: windows
drawn the generator's way (n gaps round a circle, count exact, the gap across the edge unseen)
pass at about the nominal rate whatever the shape; the wrong family or shape fails."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import optimize
from scipy.stats import binom

from servegen_core.generate.validate import (
    censored_exponential_mean,
    renewal_window_critical,
    renewal_window_ks,
    stephens_exponential_critical,
)
from servegen_core.renewal import GAMMA, WEIBULL, circular_points

ALPHA = 0.01


def windows(rng: np.random.Generator, family: int, shape: float, n: int, count: int) -> pl.DataFrame:
    """``count`` windows of ``n`` requests placed as the generator does; their ``n - 1`` gaps in
    units of the window's mean spacing."""
    pos = np.sort(circular_points(rng, np.full(count, n), np.full(count, family), np.full(count, shape)).reshape(count, n), axis=1)
    gaps = np.diff(pos, axis=1) * n
    return pl.DataFrame({
        "client_id": np.repeat([f"c{i}" for i in range(count)], n - 1),
        "start_s": np.zeros(count * (n - 1)),
        "gap": gaps.ravel(),
    })


def exceedances(gen: pl.DataFrame, pattern: str, shape: float) -> tuple[int, int]:
    cw = gen.select("client_id", "start_s").unique().with_columns(pl.lit(pattern).alias("pattern"), pl.lit(shape).alias("shape"))
    ks = renewal_window_ks(gen, cw).join(gen.group_by("client_id", "start_s").agg(pl.len().alias("n")), on=["client_id", "start_s"])
    crit = renewal_window_critical(ks["n"].to_numpy(), np.full(ks.height, pattern), ALPHA)
    return int((ks["ks"].to_numpy() > crit).sum()), ks.height


@pytest.mark.parametrize(("family", "pattern", "shape", "n"), [
    (WEIBULL, "Weibull", 0.06, 400),  # most gaps below a millionth of the mean spacing
    (WEIBULL, "Weibull", 0.1, 135),
    (WEIBULL, "Weibull", 0.25, 1200),
    (WEIBULL, "Weibull", 0.7, 60),
    (GAMMA, "Gamma", 0.3, 300),
    (GAMMA, "Gamma", 2.0, 80),
])
def test_windows_drawn_from_the_family_pass_at_the_nominal_rate(family, pattern, shape, n):
    rng = np.random.default_rng(int(shape * 1000) + n)
    over, m = exceedances(windows(rng, family, shape, n, 600), pattern, shape)
    assert m == 600
    assert over <= binom.isf(0.001, m, ALPHA), (over, m)


@pytest.mark.parametrize(("shape", "wrong"), [(0.1, 0.2), (0.25, 0.12), (0.4, 1.0)])
def test_a_wrong_weibull_shape_fails(shape, wrong):
    rng = np.random.default_rng(3)
    over, m = exceedances(windows(rng, WEIBULL, shape, 400, 200), "Weibull", wrong)
    assert over > 0.5 * m, (over, m)


def test_poisson_windows_fail_a_bursty_weibull_and_gamma():
    rng = np.random.default_rng(4)
    gen = windows(rng, GAMMA, 1.0, 300, 200)
    for pattern, shape in (("Weibull", 0.15), ("Gamma", 0.3)):
        over, m = exceedances(gen, pattern, shape)
        assert over == m, (pattern, over, m)


def test_stephens_critical_value_holds_for_exponential_samples_of_estimated_mean():
    rng = np.random.default_rng(5)
    for n in (8, 40, 300):
        x = np.sort(rng.exponential(3.0, size=(20_000, n)), axis=1)
        f = -np.expm1(-x / x.mean(axis=1, keepdims=True))
        i = np.arange(n)
        d = np.maximum(((i + 1) / n - f).max(axis=1), (f - i / n).max(axis=1))
        rate = float((d > stephens_exponential_critical(np.array([n]), ALPHA)[0]).mean())
        # 20,000 draws: the binomial sd of a 1 % rate is 0.07 %
        assert 0.007 < rate < 0.013, (n, rate)
    with pytest.raises(ValueError, match="alpha"):
        stephens_exponential_critical(np.array([10]), 0.02)


def test_censored_exponential_mean_is_the_likelihood_maximum():
    rng = np.random.default_rng(6)
    x = rng.exponential(2.0, size=(5, 400))
    limit = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    seen = x >= limit[:, None]
    total = np.where(seen, x, 0.0).sum(axis=1)
    r, m = seen.sum(axis=1), (~seen).sum(axis=1)
    got = censored_exponential_mean(total, r, m, limit)
    assert got[0] == pytest.approx(x[0].mean(), rel=1e-12)  # nothing censored: the sample mean
    for i in range(1, 5):
        def nll(mu, i=i):
            return r[i] * np.log(mu) + total[i] / mu - m[i] * np.log(-np.expm1(-limit[i] / mu))
        best = optimize.minimize_scalar(nll, bounds=(1e-3, 100.0), method="bounded", options={"xatol": 1e-10}).x
        assert got[i] == pytest.approx(best, rel=1e-6)
        assert got[i] == pytest.approx(2.0, rel=0.2)
