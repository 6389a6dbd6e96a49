"""The fidelity scorecard on sources with known answers.

Synthetic sources are built here: an on/off process (bursts of gaps 50-100 ms separated by
80-220 s silences, inter-arrival CV about 10), Gamma renewals, a Poisson baseline with the
source's per-window counts, traces on a 1 s timestamp grid, and prompts with Zipf-popular
system prompts as ``hash_ids``. An independent draw of the same process must pass every
line (seeds fixed; the report's family-wise level is 1 %), a draw of a different process
must fail exactly the lines that measure the difference. The shared Azure trace split into
alternating windows must pass against itself.
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servegen_core.characterize import prefix
from servegen_core.characterize.fidelity import (
    FIDELITY_SCHEMA,
    FidelityReport,
    fidelity,
)
from servegen_core.sources.traces import load_trace

DISPERSION = ["dispersion_10ms", "dispersion_100ms", "dispersion_1s", "dispersion_10s", "dispersion_60s", "dispersion_600s"]
ARRIVAL_LINES = ["requests", *DISPERSION, "interarrival_ks", "zero_gaps", "burst_runs_ks"]
LENGTH_LINES = ["input_ks", "output_ks", "input_output_spearman"]


# --------------------------------------------------------------------------------------------
# Synthetic sources
# --------------------------------------------------------------------------------------------


def lengths_trace(ts: np.ndarray, rng: np.random.Generator, *, input_mu: float = 6.0, output_mean: float = 200.0,
                  client: str | np.ndarray = "c0") -> pl.DataFrame:
    n = ts.size
    clients = np.full(n, client) if isinstance(client, str) else client
    return pl.DataFrame({
        "timestamp_s": ts.astype(np.float64),
        "client_id": clients.astype(str),
        "input_tokens": rng.lognormal(input_mu, 1.0, n).astype(np.int64) + 1,
        "output_tokens": rng.exponential(output_mean, n).astype(np.int64) + 1,
    })


def on_off(rng: np.random.Generator, span_s: float) -> np.ndarray:
    """Bursts of 50-150 requests 50-100 ms apart, separated by silences of 80-220 s."""
    parts, t = [], 0.0
    while t < span_s:
        gaps = rng.uniform(0.05, 0.1, int(rng.integers(50, 150)))
        parts.append(t + np.concatenate(([0.0], np.cumsum(gaps))))
        t = parts[-1][-1] + rng.uniform(80.0, 220.0)
    ts = np.concatenate(parts)
    return ts[ts < span_s]


def gamma_renewal(rng: np.random.Generator, n: int, *, rate: float = 3.0, shape: float = 0.5) -> np.ndarray:
    return np.cumsum(rng.gamma(shape, 1.0 / (shape * rate), n))


def poisson_same_counts(ts: np.ndarray, rng: np.random.Generator, window_s: float = 600.0) -> np.ndarray:
    """Uniform (Poisson given the count) arrivals with the source's count in every window."""
    counts = np.bincount(np.floor(ts / window_s).astype(np.int64))
    return np.concatenate([k * window_s + np.sort(rng.uniform(0, window_s, c)) for k, c in enumerate(counts)])


def with_prompts(df: pl.DataFrame, rng: np.random.Generator, *, prompts: int = 5, zipf: float = 1.2) -> pl.DataFrame:
    """hash_ids: one of ``prompts`` 3-block system prompts (Zipf popularity), then 1-8 blocks of its own."""
    n = df.height
    pop = 1.0 / np.arange(1, prompts + 1) ** zipf
    which = rng.choice(prompts, n, p=pop / pop.sum())
    lens = 3 + rng.integers(1, 9, n)
    starts = np.cumsum(lens) - lens
    pos = np.arange(lens.sum()) - np.repeat(starts, lens)
    req = np.repeat(np.arange(n), lens)
    ids = np.where(pos < 3, which[req] * 3 + pos, 10**6 + np.arange(lens.sum()))
    lists = pl.Series("hash_ids", np.split(ids.astype(np.int64), starts[1:]), dtype=pl.List(pl.Int64))
    return df.with_columns(lists, input_tokens=pl.Series(lens * 512 - 100))


def failed(report: FidelityReport) -> set[str]:
    return set(report.failed())


# --------------------------------------------------------------------------------------------
# Statistics with known values
# --------------------------------------------------------------------------------------------


def test_values_match_direct_computation():
    rng = np.random.default_rng(5)
    a = lengths_trace(gamma_renewal(rng, 3000), rng, client=rng.choice(["x", "y", "z"], 3000))
    b = lengths_trace(gamma_renewal(rng, 2500), rng, client=rng.choice(["x", "y"], 2500))
    r = fidelity(a, b)
    # Dispersion at 1 s: sample variance / mean of full 1 s bins from the first request.
    for df, value in ((a, r.line("dispersion_1s").source_value), (b, r.line("dispersion_1s").generated_value)):
        ts = df["timestamp_s"].to_numpy()
        bins = int((ts[-1] - ts[0]) // 1.0)
        counts = np.bincount(((ts - ts[0]) // 1.0).astype(np.int64), minlength=bins + 1)[:bins]
        assert value == pytest.approx(counts.var(ddof=1) / counts.mean(), rel=1e-9)
    # KS distances are scipy's.
    for field, name in (("input_tokens", "input_ks"), ("output_tokens", "output_ks")):
        assert r.line(name).statistic == pytest.approx(stats.ks_2samp(a[field], b[field]).statistic, abs=1e-12)
    gaps = [df.sort("client_id", maintain_order=True).select(pl.col("timestamp_s").diff().over("client_id")).drop_nulls()
            ["timestamp_s"].to_numpy() for df in (a, b)]
    assert r.line("interarrival_ks").statistic == pytest.approx(stats.ks_2samp(*gaps).statistic, abs=1e-12)
    # Within-client Spearman: the size-weighted pooled correlation of within-client ranks.
    rho = r.line("input_output_spearman").source_value
    ranks = a.with_columns(
        ((pl.col(c).rank().over("client_id") - 0.5) / pl.len().over("client_id") - 0.5).alias(c)
        for c in ("input_tokens", "output_tokens"))
    assert rho == pytest.approx(np.corrcoef(ranks["input_tokens"], ranks["output_tokens"])[0, 1], abs=0.01)
    assert r.line("requests").source_value == 3000 and r.line("requests").generated_value == 2500


def test_bursts_and_zero_gaps_have_known_values():
    # Source: one request per second. Generated: the same, plus a twin at the same instant
    # for every 10th request (runs of 2, zero gaps 1/11 of the gaps).
    base = np.arange(2000, dtype=np.float64)
    twins = np.sort(np.concatenate((base, base[::10])))
    rng = np.random.default_rng(0)
    r = fidelity(lengths_trace(base, rng), lengths_trace(twins, rng))
    zero = r.line("zero_gaps")
    assert zero.source_value == 0.0 and zero.generated_value == pytest.approx(200 / 2199)
    runs = r.line("burst_runs_ks")
    assert runs.source_value == 1.0 and runs.generated_value == pytest.approx(2200 / 2000)
    assert {"zero_gaps", "burst_runs_ks", "interarrival_ks"} <= failed(r)


# --------------------------------------------------------------------------------------------
# Same process passes, a different one fails
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_on_off_source_against_an_independent_draw_passes_every_line(seed):
    rng = np.random.default_rng(seed)
    src_ts = on_off(rng, 4 * 3600)
    gaps = np.diff(src_ts)
    assert 7 < gaps.std() / gaps.mean() < 14  # the process the test means: CV about 10
    r = fidelity(lengths_trace(src_ts, rng), lengths_trace(on_off(rng, 4 * 3600), rng))
    assert r.passed, r.failed()
    names = [ln.name for ln in r.lines]
    assert names == ARRIVAL_LINES + LENGTH_LINES
    assert all(ln.passed is True for ln in r.lines)  # four hours: every timescale has a verdict
    assert r.line_alpha == pytest.approx(0.01 / len(r.lines))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_baseline_with_the_same_window_counts_fails_dispersion_and_interarrival(seed):
    rng = np.random.default_rng(seed)
    src_ts = on_off(rng, 4 * 3600)
    src = lengths_trace(src_ts, rng)
    poisson = lengths_trace(poisson_same_counts(src_ts, rng), rng)
    r = fidelity(src, poisson)
    assert not r.passed
    # Every timescale below the 600 s window fails; at 600 s the counts are the source's by construction.
    assert set(DISPERSION[:-1]) | {"interarrival_ks"} <= failed(r)
    assert r.line("dispersion_600s").passed is True
    assert r.line("dispersion_600s").statistic == pytest.approx(1.0, abs=0.05)
    assert r.line("requests").passed is True
    assert r.line("dispersion_1s").statistic < 0.2  # on/off: ~12 at 1 s, Poisson ~1


def moment_matched_gamma(ts: np.ndarray, rng: np.random.Generator, window_s: float = 600.0) -> np.ndarray:
    """Issue 16's sub-window model: per 600 s window, the window's count of Gamma gaps with the
    window's sample CV (shape 1/CV²), scaled to fill the window."""
    w = np.floor(ts / window_s).astype(np.int64)
    out = []
    for k in np.unique(w):
        inside = ts[w == k]
        gaps = np.diff(inside)
        cv = gaps.std() / gaps.mean() if gaps.size > 1 and gaps.mean() > 0 else 1.0
        draw = np.cumsum(rng.gamma(1.0 / cv**2, 1.0, inside.size))
        out.append(k * window_s + draw / draw[-1] * window_s * (1 - 1e-9))
    return np.sort(np.concatenate(out))


def test_moment_matched_gamma_fails_the_on_off_source():
    # The reason for issue 16: one Gamma per window at the window's CV (9-17) makes storms of
    # near-simultaneous requests the on/off source never has.
    rng = np.random.default_rng(6)
    src_ts = on_off(rng, 4 * 3600)
    gamma = moment_matched_gamma(src_ts, rng)
    assert gamma.size == src_ts.size
    r = fidelity(lengths_trace(src_ts, rng), lengths_trace(gamma, rng))
    assert {"interarrival_ks", "burst_runs_ks", "dispersion_10ms", "dispersion_100ms"} <= failed(r)
    assert r.line("burst_runs_ks").generated_value > 2 * r.line("burst_runs_ks").source_value


def test_gamma_renewal_against_itself_and_an_independent_draw():
    rng = np.random.default_rng(7)
    src = lengths_trace(gamma_renewal(rng, 10_000), rng)
    same = fidelity(src, src)
    assert same.passed
    for ln in same.lines:
        if ln.name.endswith("_ks"):
            assert ln.statistic == 0.0
        if ln.name.startswith("dispersion") and ln.passed is not None:
            assert ln.statistic == pytest.approx(1.0)
    assert same.line("dispersion_600s").passed is None  # 5 full bins in 3,300 s
    for seed in (8, 9, 10):
        rng = np.random.default_rng(seed)
        r = fidelity(src, lengths_trace(gamma_renewal(rng, 10_000), rng))
        assert r.passed, (seed, r.failed())


def test_gamma_renewal_against_a_smoother_renewal_fails_arrivals_only():
    rng = np.random.default_rng(11)
    src = lengths_trace(gamma_renewal(rng, 10_000, shape=0.25), rng)  # CV 2
    smooth = lengths_trace(gamma_renewal(rng, 10_000, shape=1.0), rng)  # Poisson, same rate
    bad = failed(fidelity(src, smooth))
    assert "interarrival_ks" in bad and "dispersion_1s" in bad and "dispersion_10s" in bad
    assert not bad & set(LENGTH_LINES)


def test_sources_differing_only_in_lengths_fail_only_the_length_lines():
    rng = np.random.default_rng(3)
    ts = on_off(rng, 3 * 3600)
    src = lengths_trace(ts, rng)
    other = lengths_trace(ts, rng, input_mu=6.3, output_mean=260.0)
    r = fidelity(src, other)
    assert failed(r) == {"input_ks", "output_ks"}
    assert r.line("input_output_spearman").passed is True


def test_multiple_clients_gaps_are_within_client():
    # Two clients each on a 2 s clock, offset by 1 s: pooled within-client gaps are all 2 s.
    # The merged stream of a single client with 1 s gaps has the same counts but not the same gaps.
    t = np.arange(0, 4000, 2.0)
    two = pl.concat([lengths_trace(t, np.random.default_rng(0), client="a"),
                     lengths_trace(t + 1, np.random.default_rng(1), client="b")]).sort("timestamp_s")
    one = two.with_columns(client_id=pl.lit("a"))
    r = fidelity(two, one)
    assert r.line("interarrival_ks").source_value == 2.0 and r.line("interarrival_ks").generated_value == 1.0
    assert "interarrival_ks" in failed(r)
    assert r.line("dispersion_10s").statistic == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Timestamp grids
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_source_on_a_1s_grid_short_scales_measure_the_grid(seed):
    rng = np.random.default_rng(seed)
    src_ts = np.floor(gamma_renewal(rng, 12_000, rate=2.0))  # a clock with 1 s ticks: many ties
    gen_ts = gamma_renewal(rng, 12_000, rate=2.0)  # the same process, continuous time
    r = fidelity(lengths_trace(src_ts, rng), lengths_trace(gen_ts, rng))
    for name in ("dispersion_10ms", "dispersion_100ms"):
        ln = r.line(name)
        assert ln.passed is None and ln.verdict == "n/a"
        assert "measures the source's 1s timestamp grid" in ln.detail
    assert r.line("zero_gaps").source_value > 0.2  # the ties the grid makes...
    assert r.passed, r.failed()  # ...are what the generated timestamps show on the same grid
    assert any("1s grid" in note for note in r.notes)
    assert r.line_alpha == pytest.approx(0.01 / sum(ln.passed is not None for ln in r.lines))


def test_without_the_grid_the_same_continuous_draw_fails_the_gap_lines():
    # The reason for the grid rule: the raw continuous timestamps have no ties at all.
    rng = np.random.default_rng(0)
    src_ts = np.floor(gamma_renewal(rng, 12_000, rate=2.0))
    gen_ts = gamma_renewal(rng, 12_000, rate=2.0)
    gen = lengths_trace(gen_ts, rng)
    r = fidelity(lengths_trace(src_ts, rng), gen)
    # A generated trace already on the grid is left as it is, and passes the same way.
    on_grid = fidelity(lengths_trace(src_ts, rng), gen.with_columns(pl.col("timestamp_s").floor()))
    assert on_grid.passed and not any("grid" in n for n in on_grid.notes) and r.passed
    raw_zero = float(np.mean(np.diff(gen_ts) == 0))
    assert raw_zero == 0.0 and r.line("zero_gaps").generated_value > 0.2


def test_grid_given_by_the_caller():
    # A grid found elsewhere (e.g. a jitter-tolerant detector) is used as given; 0 turns it off.
    rng = np.random.default_rng(2)
    src_ts = np.floor(gamma_renewal(rng, 12_000, rate=2.0)) + rng.uniform(-0.002, 0.002, 12_000)
    src = lengths_trace(np.sort(src_ts - src_ts.min()), rng)
    gen = lengths_trace(gamma_renewal(rng, 12_000, rate=2.0), rng)
    assert fidelity(src, gen, grid_s=1.0).line("dispersion_100ms").passed is None
    assert fidelity(src, gen, grid_s=0).line("dispersion_100ms").passed is False


def test_grid_of_3s_uses_bins_of_whole_grid_steps():
    rng = np.random.default_rng(4)
    src_ts = 3.0 * np.floor(gamma_renewal(rng, 20_000, rate=1.0) / 3.0)
    gen_ts = gamma_renewal(rng, 20_000, rate=1.0)
    r = fidelity(lengths_trace(src_ts, rng), lengths_trace(gen_ts, rng))
    assert [r.line(n).passed for n in ("dispersion_10ms", "dispersion_100ms", "dispersion_1s")] == [None] * 3
    assert "bins of 9s" in r.line("dispersion_10s").detail and "bins of 60s" not in r.line("dispersion_60s").detail
    assert r.passed, r.failed()


# --------------------------------------------------------------------------------------------
# Prefix reuse
# --------------------------------------------------------------------------------------------


def prompt_pair(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    src = with_prompts(lengths_trace(gamma_renewal(rng, 8000), rng), rng)
    gen = with_prompts(lengths_trace(gamma_renewal(rng, 8000), rng), rng)
    return src, gen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hash_ids_same_process_passes_the_prefix_lines(seed):
    src, gen = prompt_pair(seed)
    r = fidelity(src, gen)
    assert r.passed, r.failed()
    reuse = r.line("block_reuse")
    assert reuse.source_value == pytest.approx(prefix.block_reuse(src).reuse_ratio)
    lru = [ln for ln in r.lines if ln.name.startswith("lru_hit_ratio_")]
    assert len(lru) == 4
    curve = prefix.lru_hit_ratio(src)
    for ln, level in zip(lru, (0.25, 0.5, 0.75, 0.9)):
        capacity = int(ln.name.split("_")[3])
        assert ln.source_value == pytest.approx(float(curve.at(capacity)))
        # The capacity is the smallest where the source reaches that share of its largest hit ratio.
        assert curve.at(capacity) >= level * curve.max_hit_ratio > curve.at(capacity - 1)


def test_hash_ids_absent_from_the_generated_workload_fail_the_prefix_lines():
    src, gen = prompt_pair(0)
    r = fidelity(src, gen.drop("hash_ids"))
    assert failed(r) == {ln.name for ln in r.lines if ln.name.startswith(("block_reuse", "lru_hit_ratio_"))}
    assert r.line("block_reuse").generated_value == 0.0
    assert "no block ids" in r.line("block_reuse").detail


def test_prompts_without_zipf_popularity_fail_the_lru_lines():
    src, _ = prompt_pair(1)
    rng = np.random.default_rng(99)
    flat = with_prompts(lengths_trace(gamma_renewal(rng, 8000), rng), rng, prompts=200, zipf=0.0)
    bad = failed(fidelity(src, flat))
    assert {ln for ln in bad if ln.startswith("lru_hit_ratio_")} and not bad & set(ARRIVAL_LINES)


def test_source_without_hash_ids_has_no_prefix_lines():
    src, gen = prompt_pair(2)
    r = fidelity(src.drop("hash_ids"), gen)
    assert not any(ln.name.startswith(("block_reuse", "lru")) for ln in r.lines)
    assert any("no prefix lines" in n for n in r.notes)
    assert r.passed


def test_cache_blocks_override():
    src, gen = prompt_pair(0)
    r = fidelity(src, gen, cache_blocks=(1000, 8))
    assert [ln.name for ln in r.lines if ln.name.startswith("lru")] == ["lru_hit_ratio_8_blocks", "lru_hit_ratio_1000_blocks"]


def random_block_trace(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Prompts from a small alphabet (many shared prefixes at every depth, ids reused out of
    prefix order), some empty, several clients."""
    lens = rng.integers(0, 7, n)
    ids = rng.integers(0, 4, int(lens.sum())) * (1 + rng.integers(0, 2, int(lens.sum())) * 10**15)
    starts = np.cumsum(lens) - lens
    lists = pl.Series("hash_ids", np.split(ids.astype(np.int64), starts[1:]), dtype=pl.List(pl.Int64))
    df = lengths_trace(np.sort(rng.uniform(0, 500, n)), rng, client=rng.choice(["a", "b", "c"], n))
    return df.with_columns(lists)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_values_are_the_prefix_module_ones(seed):
    rng = np.random.default_rng(seed)
    src, gen = random_block_trace(rng, 3000), random_block_trace(rng, 2000)
    r = fidelity(src, gen, cache_blocks=(1, 3, 10, 50, 100000))
    assert r.line("block_reuse").source_value == pytest.approx(prefix.block_reuse(src).reuse_ratio, abs=1e-15)
    assert r.line("block_reuse").generated_value == pytest.approx(prefix.block_reuse(gen).reuse_ratio, abs=1e-15)
    curve_s, curve_g = prefix.lru_hit_ratio(src), prefix.lru_hit_ratio(gen)
    for c in (1, 3, 10, 50, 100000):
        ln = r.line(f"lru_hit_ratio_{c}_blocks")
        assert (ln.source_value, ln.generated_value) == pytest.approx((float(curve_s.at(c)), float(curve_g.at(c))), abs=1e-15)


def test_prefix_lines_from_prompt_segments():
    # A composed workload carries prompt segments, not block ids: they are derived at block_tokens.
    src = pl.DataFrame({
        "timestamp_s": np.arange(40, dtype=np.float64), "client_id": ["a"] * 40,
        "input_tokens": [1024] * 40, "output_tokens": [10] * 40,
        "hash_ids": [[1, 2]] * 40,
    }, schema_overrides={"hash_ids": pl.List(pl.Int64)})
    gen = src.drop("hash_ids").with_columns(
        segment_ids=pl.lit([7], dtype=pl.List(pl.Int64)), segment_tokens=pl.lit([1024], dtype=pl.List(pl.Int64)))
    r = fidelity(src, gen, cache_blocks=(2,))
    assert any("derived from its prompt segments at 512 tokens" in n for n in r.notes)
    assert r.line("block_reuse").source_value == r.line("block_reuse").generated_value == pytest.approx(78 / 80)
    assert r.line("block_reuse").passed and r.line("lru_hit_ratio_2_blocks").passed


# --------------------------------------------------------------------------------------------
# The shared Azure trace against itself, resampled
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azure(traces_dir) -> pl.DataFrame:
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace


def alternate(trace: pl.DataFrame, window_s: float, parity: int) -> pl.DataFrame:
    """Every other window of ``window_s``, the other half's windows cut out of the clock."""
    k = (pl.col("timestamp_s") // window_s).cast(pl.Int64)
    half = trace.filter(k % 2 == parity)
    shifted = half.with_columns(timestamp_s=pl.col("timestamp_s") - ((k + 1 - parity) // 2) * window_s)
    return shifted.with_columns(timestamp_s=pl.col("timestamp_s") - shifted["timestamp_s"].min())


@pytest.mark.parametrize("window_s", [60.0, 300.0])
def test_azure_alternating_windows_pass_against_each_other(azure, window_s):
    a, b = alternate(azure, window_s, 0), alternate(azure, window_s, 1)
    assert a.height + b.height == azure.height
    r = fidelity(a, b)
    assert r.passed, r.failed()
    assert r.line("dispersion_600s").passed is None  # under 10 full bins in half an hour: no verdict
    assert all(r.line(n).passed for n in DISPERSION[:-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_azure_against_poisson_baselines_fails(azure, seed):
    rng = np.random.default_rng(seed)
    ts = azure["timestamp_s"].to_numpy()
    # Constant-rate Poisson with the same total: too smooth from 10 ms to 60 s.
    constant = azure.with_columns(timestamp_s=pl.Series(np.sort(rng.uniform(0, ts[-1], ts.size))))
    assert {"dispersion_10ms", "dispersion_1s", "dispersion_10s", "dispersion_60s"} <= failed(fidelity(azure, constant))
    # Poisson with the source's count in every 600 s window: the window rates carry the 60 s
    # dispersion (both ~16), but the trace's sub-second clustering is lost.
    windowed = fidelity(azure, azure.with_columns(timestamp_s=pl.Series(poisson_same_counts(ts, rng))))
    assert "dispersion_10ms" in failed(windowed)
    assert windowed.line("dispersion_60s").passed is True


@pytest.fixture(scope="module")
def mooncake(traces_dir) -> pl.DataFrame:
    return load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace


@pytest.mark.parametrize("window_s", [10.0, 60.0])
def test_mooncake_alternating_windows_pass_including_prefix_lines(mooncake, window_s):
    a, b = alternate(mooncake, window_s, 0), alternate(mooncake, window_s, 1)
    r = fidelity(a, b)
    assert r.passed, r.failed()
    assert len([ln for ln in r.lines if ln.name.startswith("lru_hit_ratio_")]) == 4
    assert r.line("dispersion_10ms").passed is True  # 1 ms grid: 10 ms bins are whole grid steps


def test_mooncake_without_shared_blocks_fails_reuse(mooncake):
    # Every request's blocks made its own (what a workload without a prefix model exports).
    lens = mooncake["hash_ids"].list.len().to_numpy()
    own = np.split(np.arange(lens.sum(), dtype=np.int64), (np.cumsum(lens) - lens)[1:])
    r = fidelity(mooncake, mooncake.with_columns(hash_ids=pl.Series(own, dtype=pl.List(pl.Int64))))
    assert failed(r) == {ln.name for ln in r.lines if ln.name.startswith(("block_reuse", "lru_hit_ratio_"))}


# --------------------------------------------------------------------------------------------
# Report shape and options
# --------------------------------------------------------------------------------------------


def test_report_frame_json_and_model_reference():
    rng = np.random.default_rng(1)
    src = lengths_trace(gamma_renewal(rng, 3000), rng)
    gen = lengths_trace(gamma_renewal(rng, 3000, shape=1.0), rng)
    r = fidelity(src, gen, reference="model")
    assert all(ln.name.endswith("_vs_model") for ln in r.lines)
    assert all("draw of the model itself" in ln.target for ln in r.lines)
    frame = r.to_frame()
    assert frame.schema == FIDELITY_SCHEMA and frame.height == len(r.lines)
    assert frame["verdict"].to_list() == [ln.verdict for ln in r.lines]
    doc = json.loads(r.to_json())
    assert doc["passed"] is r.passed is False and doc["failed"] == r.failed() and doc["reference"] == "model"
    assert [ln["name"] for ln in doc["lines"]] == frame["name"].to_list()
    assert all(v is None or math.isfinite(v) for ln in doc["lines"] for v in ln.values() if isinstance(v, float))
    with pytest.raises(KeyError, match="no line"):
        r.line("nope")


def test_empty_and_invalid_input():
    rng = np.random.default_rng(0)
    src = lengths_trace(gamma_renewal(rng, 100), rng)
    empty = fidelity(src, src.head(1))
    assert not empty.ok and "fewer than two requests" in empty.reason and not empty.passed
    with pytest.raises(ValueError, match="alpha"):
        fidelity(src, src, alpha=1.5)
    with pytest.raises(ValueError, match="generated workload: missing required column"):
        fidelity(src, src.drop("input_tokens"))
    with pytest.raises(TypeError):
        fidelity(src, src.to_pandas())
    with pytest.raises(ValueError, match="grid_s"):
        fidelity(src, src, grid_s=-1.0)
    with pytest.raises(ValueError, match="cache_blocks"):
        fidelity(src, src, cache_blocks=(0,))


def test_short_trace_lines_without_enough_data_have_no_verdict():
    rng = np.random.default_rng(0)
    src = lengths_trace(gamma_renewal(rng, 200, rate=1.0), rng)  # about 200 s
    r = fidelity(src, src)
    assert r.line("dispersion_60s").passed is None and r.line("dispersion_600s").passed is None
    assert "fewer than 10 full bins" in r.line("dispersion_600s").detail
    assert r.passed
