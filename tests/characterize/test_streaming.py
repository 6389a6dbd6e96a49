"""The streaming characterization equals the in-memory one on the loaded trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servegen_core.characterize import arrivals, lengths, rates, streaming, summary
from servegen_core.schema import validate_trace
from servegen_core.sources.lazy import scan_trace
from servegen_core.sources.traces import load_trace


def _synthetic(n_clients: int = 7, seed: int = 3) -> pl.DataFrame:
    """Bursty, diurnal multi-client trace over ~2 days with ids that sort numerically."""
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(n_clients):
        n = int(rng.integers(200, 6000))
        # Bursts: gamma gaps with shape < 1, scaled by a diurnal factor.
        gaps = rng.gamma(0.3 + 0.2 * c, 1.0, size=n)
        t = np.cumsum(gaps) * (170_000 / gaps.sum()) * rng.uniform(0.5, 1.0)
        t += 900 * c
        hour = (t / 3600) % 24
        keep = rng.uniform(size=n) < 0.4 + 0.6 * np.sin(np.pi * hour / 24) ** 2
        t = t[keep]
        m = t.size
        parts.append(
            pl.DataFrame(
                {
                    "timestamp_s": t,
                    "client_id": [str(c * 5) if c != 3 else "chat-b"] * m,
                    "input_tokens": rng.lognormal(6, 1.2, size=m).astype(np.int64),
                    "output_tokens": rng.integers(0, 900, size=m),
                }
            )
        )
    df = pl.concat(parts)
    # Ties: a run of equal timestamps, and a request exactly on a window boundary.
    extra = pl.DataFrame({"timestamp_s": [6000.0] * 5 + [1200.0], "client_id": ["0"] * 6, "input_tokens": [5] * 6, "output_tokens": [1] * 6})
    return pl.concat([df, extra]).sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    df = _synthetic()
    folder = tmp_path_factory.mktemp("parts")
    # Several files, rows out of time order, so the scan is a set of files as the issue describes.
    for i, part in enumerate(df.iter_slices(df.height // 3 + 1)):
        part.write_parquet(folder / f"part-{i}.parquet", row_group_size=1000)
    return folder, validate_trace(df, sort=True)


def _pairs(traces_dir: Path, synthetic_files):
    folder, trace = synthetic_files
    azure = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    mooncake = traces_dir / "mooncake_synthetic_trace.jsonl"
    return [
        (scan_trace(azure), load_trace(azure).trace),
        (scan_trace(mooncake), load_trace(mooncake).trace),
        (scan_trace(folder, preset="servegen"), trace),
    ]


@pytest.fixture(scope="module")
def pairs(traces_dir: Path, synthetic_files):
    return _pairs(traces_dir, synthetic_files)


def test_check_counts_requests(pairs) -> None:
    for lazy, trace in pairs:
        assert lazy.check() == trace.height


@pytest.mark.parametrize("resolution_s", [60, 600, 3600])
def test_rate_series_exact(pairs, resolution_s: int) -> None:
    for lazy, trace in pairs:
        assert_frame_equal(streaming.rate_series(lazy, resolution_s=resolution_s).frame, rates.rate_series(trace, resolution_s=resolution_s).frame)


@pytest.mark.parametrize("origin_hour", [0.0, 18.25])
def test_hour_day_matrix_exact(pairs, origin_hour: float) -> None:
    for lazy, trace in pairs:
        assert_frame_equal(
            streaming.hour_day_matrix(lazy, origin_hour=origin_hour).frame, rates.hour_day_matrix(trace, origin_hour=origin_hour).frame
        )


def test_shares_exact(pairs) -> None:
    for lazy, trace in pairs:
        assert_frame_equal(streaming.client_shares(lazy).frame, rates.client_shares(trace).frame)
        for k in (1, 3, 50):
            assert streaming.top_k_share(lazy, k) == rates.top_k_share(trace, k)


def test_synthetic_has_several_clients(pairs) -> None:
    lazy, trace = pairs[2]
    shares = streaming.client_shares(lazy).frame
    assert shares.height == 7
    assert "chat-b" in shares["client_id"].to_list()
    assert 0.0 < float(streaming.top_k_share(lazy, 1)) < 1.0


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
@pytest.mark.parametrize("per_window", [False, True])
def test_lengths_exact(pairs, field: str, per_window: bool) -> None:
    for lazy, trace in pairs:
        for fn in ("length_percentiles", "length_pdf"):
            got = getattr(streaming, fn)(lazy, field, per_window=per_window, window_s=3600 if per_window else None).frame
            want = getattr(lengths, fn)(trace, field, per_window=per_window, window_s=3600 if per_window else None).frame
            assert_frame_equal(got, want, check_exact=True)


#: Relative tolerance of the streamed CV: the sums of the gaps run in another order.
CV_RTOL = 1e-9


@pytest.mark.parametrize("slice_rows", [streaming.DEFAULT_SLICE_ROWS, 700])
def test_window_cv(pairs, slice_rows: int) -> None:
    for lazy, trace in pairs:
        got = streaming.window_cv(lazy, slice_rows=slice_rows)
        want = arrivals.window_cv(trace)
        assert (got.excluded, got.excluded_requests, got.window_s, got.ok) == (want.excluded, want.excluded_requests, want.window_s, want.ok)
        assert_frame_equal(got.frame.drop("cv"), want.frame.drop("cv"), check_exact=True)
        np.testing.assert_allclose(got.frame["cv"].to_numpy(), want.frame["cv"].to_numpy(), rtol=CV_RTOL, atol=0)


def test_window_cv_slices_are_bounded(pairs) -> None:
    """With tiny slices the window list is cut into many queries and still gives the same table."""
    lazy, trace = pairs[2]
    counts = streaming.client_window_counts(lazy).group_by("window").agg(pl.col("requests").sum()).sort("window")
    assert len(streaming._slices(counts["window"].to_numpy(), counts["requests"].to_numpy(), 700)) > 20  # noqa: SLF001
    assert streaming.window_cv(lazy, slice_rows=700).frame.height == arrivals.window_cv(trace).frame.height > 20


def test_client_summary(pairs) -> None:
    for lazy, trace in pairs:
        got = streaming.client_summary(lazy).frame
        want = summary.client_summary(trace).frame.select(list(summary.BASE_COLUMNS))
        cv_cols = ["cv_mean", "cv_rate_weighted"]
        assert_frame_equal(got.drop(cv_cols), want.drop(cv_cols), check_exact=True)
        for c in cv_cols:
            assert got[c].is_null().to_list() == want[c].is_null().to_list()
            np.testing.assert_allclose(got[c].drop_nulls().to_numpy(), want[c].drop_nulls().to_numpy(), rtol=CV_RTOL, atol=0)
