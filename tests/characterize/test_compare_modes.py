"""reasoning.compare_modes: the fitted mixture's own modes against the histogram's peaks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize.reasoning import bimodality, compare_modes, reason_ratio_distribution

GRID = np.arange(501) / 500


def histogram(*bumps: tuple[float, float, float]) -> pl.DataFrame:
    """A reason-ratio histogram on a k/500 grid made of Gaussian bumps (mu, sigma, weight)."""
    p = sum(w * np.exp(-0.5 * ((GRID - mu) / s) ** 2) / s for mu, s, w in bumps)
    return pl.DataFrame({"reason_ratio": GRID, "prob": p / p.sum()})


def components(*rows: tuple[float, float, float]) -> pl.DataFrame:
    return pl.DataFrame({"component": list(range(1, len(rows) + 1)), "mu": [r[0] for r in rows], "sigma": [r[1] for r in rows], "weight": [r[2] for r in rows]})


def test_separated_components_have_their_means_as_modes():
    res = compare_modes(histogram((0.2, 0.05, 0.4), (0.8, 0.05, 0.6)), components((0.2, 0.05, 0.4), (0.8, 0.05, 0.6)))
    assert res.mixture_modes == pytest.approx((0.2, 0.8), abs=1e-3)
    assert res.histogram_peaks == pytest.approx((0.2, 0.8), abs=1e-9)
    assert res.differ is False and res.max_shift < 1e-3


def test_overlapping_components_make_one_mode_between_the_means():
    # two equal Gaussians 1 sigma apart: the mixture has a single mode at their midpoint
    res = compare_modes(histogram((0.2, 0.05, 0.5), (0.8, 0.05, 0.5)), components((0.45, 0.1, 0.5), (0.55, 0.1, 0.5)))
    assert res.mixture_modes == pytest.approx((0.5,), abs=1e-3)
    assert res.differ is True and res.max_shift == pytest.approx(0.3, abs=1e-3)


def test_deepseek_r1_upper_mode_sits_below_the_histograms_peak(deepseek_r1):
    pool = deepseek_r1
    dist = reason_ratio_distribution(pool).frame
    fit = bimodality(pool)
    res = compare_modes(dist, fit.components)
    # the histogram's highest bin, read directly: requests pile up just below 1
    top = float(dist.sort("prob", descending=True)["reason_ratio"][0])
    assert top > 0.9
    upper = max(res.mixture_modes)
    assert upper == pytest.approx(float(fit.components["mu"].max()), abs=0.01)  # well separated: mode = mean
    assert abs(top - upper) > 0.05 and res.differ is True


def test_no_mixture_gives_a_reason():
    res = compare_modes(histogram((0.5, 0.1, 1.0)), components().clear())
    assert not res.ok and res.reason
