"""The serving simulator against cases with known answers, on real trace lengths."""

from __future__ import annotations

import dataclasses

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import SpecError
from servegen_core.serve import simulate as sv
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def azure(traces_dir) -> pl.DataFrame:
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace.select("timestamp_s", "input_tokens", "output_tokens")


@pytest.fixture(scope="module")
def cost() -> CostModel:
    # no context limit: these tests exercise the engine on every request (refusals: test_context_limit.py)
    return dataclasses.replace(roofline("llama-3-8b", "a100"), max_context=0)


def frame(t, i, o) -> pl.DataFrame:
    return pl.DataFrame({"timestamp_s": np.asarray(t, float), "input_tokens": np.asarray(i, np.int64), "output_tokens": np.asarray(o, np.int64)})


# -- closed forms -----------------------------------------------------------------------------


def test_closed_form_stretch_sums_match_step_by_step():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a1, a2 = rng.uniform(0.001, 0.05, 2)
        b1, b2 = rng.uniform(0, 1e-4, 2) * rng.integers(0, 2, 2)
        k = int(rng.integers(1, 400))
        steps = np.maximum(a1 + b1 * np.arange(k), a2 + b2 * np.arange(k))
        assert sv._sum_lines(a1, b1, a2, b2, k) == pytest.approx(steps.sum(), rel=1e-9)
        target = float(rng.uniform(0, steps.sum() * 1.2))
        cum = np.cumsum(steps)
        expected = int(np.searchsorted(cum, target)) + 1 if target <= cum[-1] else k
        got = sv._steps_to_reach(a1, b1, a2, b2, target, k)
        assert got == max(expected, 1), (a1, b1, a2, b2, k, target)


# -- known answers ----------------------------------------------------------------------------


def test_one_request_alone_is_the_cost_model(cost):
    n_in, n_out = 1500, 300
    r = sv.simulate(frame([5.0], [n_in], [n_out]), cost).requests.row(0, named=True)
    prefill = float(cost.prefill_time(n_in))
    # decode j holds the prompt, the tokens generated so far and the token being written
    decode = sum(float(cost.decode_time(1, n_in + 1 + j)) for j in range(n_out - 1))
    assert r["queue_s"] == 0
    assert r["ttft_s"] == pytest.approx(prefill, rel=1e-12)
    assert r["e2e_s"] == pytest.approx(prefill + decode, rel=1e-12)
    assert r["tpot_s"] == pytest.approx(decode / (n_out - 1), rel=1e-12)


def test_spaced_arrivals_below_capacity_never_queue(azure, cost):
    # real lengths, each request arriving after the previous one has surely finished
    lens = azure.head(300)
    worst = float(cost.prefill_time(lens["input_tokens"].max())) + lens["output_tokens"].max() * float(
        cost.decode_time(1, lens["input_tokens"].max() + lens["output_tokens"].max())
    )
    t = np.arange(lens.height) * (worst * 1.01)
    res = sv.simulate(frame(t, lens["input_tokens"], lens["output_tokens"]), cost).requests
    assert res["queue_s"].max() == 0
    np.testing.assert_allclose(res["ttft_s"].to_numpy(), cost.prefill_time(lens["input_tokens"].to_numpy()), rtol=1e-9)


def test_overloaded_replica_queue_grows_linearly(cost):
    # identical one-token requests: every iteration prefills max_batched_tokens / 512 = 16 prompts
    n_in = 512
    per_iter = float(cost.iteration_time(T=16 * n_in, A=16 * n_in * (n_in + 1) / 2))
    mu = 16 / per_iter
    lam = 1.5 * mu
    t = np.arange(4000) / lam
    res = sv.simulate(frame(t, np.full(4000, n_in), np.ones(4000)), cost, config=sv.ServerConfig(chunked_prefill=False)).requests
    slope, _ = np.polyfit(res["arrival_s"].to_numpy(), res["queue_s"].to_numpy(), 1)
    # the request arriving at t starts at about t x lambda / mu
    assert slope == pytest.approx(lam / mu - 1, abs=0.01)


def test_conservation_every_request_completes_once_and_tokens_add_up(azure, cost):
    res = sv.simulate(azure, cost, replicas=3)
    req, rep = res.requests, res.replicas
    assert req.height == azure.height and req["completed"].all()
    assert rep["requests"].sum() == azure.height
    assert (req["ttft_s"] >= req["queue_s"]).all() and (req["e2e_s"] >= req["ttft_s"]).all()
    assert np.array_equal(req["arrival_s"].to_numpy(), azure["timestamp_s"].to_numpy())
    # every generated token comes from a prefill (the first, and one per readmission) or a decode step
    assert rep["decode_tokens"].sum() + req.height + rep["preemptions"].sum() == azure["output_tokens"].sum()
    assert rep["prefill_tokens"].sum() == azure["input_tokens"].sum()  # no preemption at this size
    assert rep["preemptions"].sum() == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_preemption_with_a_small_kv_cache_still_completes_everything(azure, cost, chunked):
    small = dataclasses.replace(cost, kv_tokens=24_000)
    part = azure.head(1500)
    res = sv.simulate(part, small, replicas=1, config=sv.ServerConfig(chunked_prefill=chunked, max_batched_tokens=2048))
    req, rep = res.requests, res.replicas
    assert rep["preemptions"][0] > 0 and req["preemptions"].sum() == rep["preemptions"][0]
    assert req["completed"].all()
    assert rep["peak_kv_frac"][0] <= 1.0
    assert rep["decode_tokens"].sum() + req.height + rep["preemptions"].sum() == part["output_tokens"].sum()
    # recompute: the prefills of readmitted requests are counted again
    assert rep["prefill_tokens"][0] > part["input_tokens"].sum()


def test_a_request_larger_than_the_cache_is_rejected(cost):
    tiny = dataclasses.replace(cost, kv_tokens=4096)
    res = sv.simulate(frame([0.0, 1.0], [8000, 100], [10, 10]), tiny)
    assert res.requests["completed"].to_list() == [False, True]
    assert res.replicas["rejected"][0] == 1


def test_monotone_in_replicas_and_in_load(azure, cost):
    # compress the hour ten-fold so that a few replicas are loaded
    hot = azure.with_columns(pl.col("timestamp_s") / 10)
    p99 = [sv.simulate(hot, cost, replicas=n).percentile("ttft_s", 99) for n in (1, 2, 3, 4, 6)]
    assert all(a >= b for a, b in zip(p99, p99[1:], strict=False)), p99
    assert p99[0] > 10 * p99[-1]
    loads = [sv.simulate(azure.with_columns(pl.col("timestamp_s") / f), cost, replicas=2).percentile("ttft_s", 99) for f in (2, 5, 10, 20)]
    assert all(a <= b for a, b in zip(loads, loads[1:], strict=False)), loads


def test_chunked_prefill_splits_a_long_prompt_into_budgeted_iterations(cost):
    cfg = sv.ServerConfig(chunked_prefill=True, max_batched_tokens=2048)
    n_in = 5000
    r = sv.simulate(frame([0.0], [n_in], [4]), cost, config=cfg).requests.row(0, named=True)
    chunks = [(0, 2048), (2048, 2048), (4096, 904)]
    expected = sum(float(cost.iteration_time(T=c, A=c * d + c * (c + 1) / 2, K=d)) for d, c in chunks)
    assert r["ttft_s"] == pytest.approx(expected, rel=1e-12)


def test_chunked_prefill_conserves_and_keeps_decodes_running(azure, cost):
    cfg = sv.ServerConfig(chunked_prefill=True, max_batched_tokens=1024)
    hot = azure.head(4000).with_columns(pl.col("timestamp_s") / 5)
    chunked = sv.simulate(hot, cost, config=cfg)
    plain = sv.simulate(hot, cost)
    assert chunked.requests["completed"].all()
    rep = chunked.replicas
    assert rep["decode_tokens"].sum() + hot.height + rep["preemptions"].sum() == hot["output_tokens"].sum()
    # decodes are not paused by prefills: inter-token latency tails are shorter than prefill-first's
    assert chunked.percentile("tpot_s", 99) < plain.percentile("tpot_s", 99)


def test_least_outstanding_router_balances_work_better_than_round_robin(azure, cost):
    work = (azure["input_tokens"] + azure["output_tokens"]).to_numpy()
    t = azure["timestamp_s"].to_numpy() / 10
    rr = sv.route(t, azure["input_tokens"].to_numpy(), azure["output_tokens"].to_numpy(), 4)
    lot = sv.route(t, azure["input_tokens"].to_numpy(), azure["output_tokens"].to_numpy(), 4, router="least_outstanding", cost=cost)
    spread = lambda r: np.ptp(np.bincount(r, weights=work, minlength=4)) / work.sum()  # noqa: E731
    assert spread(lot) < spread(rr)
    res = sv.simulate(azure.with_columns(pl.col("timestamp_s") / 10), cost, replicas=4, router="least_outstanding")
    assert res.requests["completed"].all()


def test_timeline_and_utilization(azure, cost):
    res = sv.simulate(azure, cost, replicas=2, bin_s=60)
    tl = res.timeline
    assert set(tl["replica"].unique()) == {0, 1}
    busy = res.replicas["busy_s"].to_numpy()
    by = tl.group_by("replica").agg((pl.col("busy_frac") * 60).sum()).sort("replica")["busy_frac"].to_numpy()
    np.testing.assert_allclose(by, busy, rtol=1e-6)
    assert ((tl["kv_frac"] >= 0) & (tl["kv_frac"] <= 1)).all()
    assert 0 < res.replicas["utilization"].max() < 1


def test_bad_inputs_raise_the_projects_errors(cost):
    df = frame([0.0], [10], [10])
    with pytest.raises(SpecError, match="replicas"):
        sv.simulate(df, cost, replicas=0)
    with pytest.raises(SpecError, match="router"):
        sv.simulate(df, cost, router="random")
    with pytest.raises(SpecError, match="max_num_seqs"):
        sv.ServerConfig(max_num_seqs=0)
    with pytest.raises(SpecError, match="cost"):
        CostModel((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), 100)
    assert math.isnan(sv.simulate(df.head(0), cost).percentile("ttft_s", 99))


def test_replicas_in_worker_processes_give_the_same_result(azure, cost):
    part = azure.head(3000).with_columns(pl.col("timestamp_s") / 4)
    one = sv.simulate(part, cost, replicas=3)
    two = sv.simulate(part, cost, replicas=3, workers=2)
    assert one.requests.equals(two.requests)
    assert one.replicas.equals(two.replicas)
