"""Fleet cost, two serving options compared in one run, and the latency floor no replica count beats."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import SpecError
from servegen_core.serve import fleetcost as fc
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.serve.hardware import GPUS
from servegen_core.serve.simulate import ServerConfig, simulate
from servegen_core.serve.whatif import Slo, min_replicas
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def hot(traces_dir) -> pl.DataFrame:
    azure = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace.select("timestamp_s", "input_tokens", "output_tokens")
    return azure.with_columns(pl.col("timestamp_s") / 6)


def test_every_gpu_has_a_list_price_with_its_source_and_date():
    assert set(fc.GPU_PRICES) == set(GPUS)
    for name, price in fc.GPU_PRICES.items():
        assert price.gpu == name and price.usd_per_gpu_hour > 0
        assert price.source.startswith("https://") and re.fullmatch(r"\d{4}-\d{2}", price.as_of)
    assert fc.gpu_price("a100") is fc.GPU_PRICES["a100-80gb"]  # aliases resolve
    with pytest.raises(SpecError, match="no list price for l40s"):
        fc.gpu_price("l40s", prices={"a10g": fc.GPU_PRICES["a10g"]})


def test_fleet_cost_is_gpus_times_hours_times_price():
    c = fc.fleet_cost(4, "h100", 2, 1800.0, requests=1000, usd_per_gpu_hour=3.0)
    assert (c.gpus, c.gpu, c.gpu_hours, c.cost_usd) == (8, "h100-sxm", 4.0, 12.0)
    assert c.usd_per_million_requests == pytest.approx(12_000.0)
    assert c.sentence() == (
        "4 replicas x 2 x h100-sxm = 8 GPUs for 0.50 h: 4.0 GPU-hours, $12.00 at $3.000 per GPU-hour ($12,000.00 per million requests)"
    )
    listed = fc.fleet_cost(1, "a10g", 1, 7200.0)
    assert listed.cost_usd == pytest.approx(2 * fc.GPU_PRICES["a10g"].usd_per_gpu_hour)
    assert listed.usd_per_million_requests is None and listed.sentence().startswith("1 replica x 1 x a10g = 1 GPU for 2.00 h")
    with pytest.raises(SpecError, match="span_s"):
        fc.fleet_cost(1, "a10g", 1, -1.0)
    with pytest.raises(SpecError, match="usd_per_gpu_hour"):
        fc.fleet_cost(1, "a10g", 1, 60.0, usd_per_gpu_hour=float("nan"))


def test_two_gpus_compared_in_one_run_match_their_own_searches(hot):
    slo = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)
    options = [fc.serving_option("llama-3-8b", "a10g"), fc.serving_option("llama-3-8b", "h100")]
    span = 3600.0
    cmp_ = fc.gpu_comparison(hot, options, slo, span_s=span)
    t = cmp_.table
    assert t["option"].to_list() == ["llama-3-8b@a10g", "llama-3-8b@h100-sxm"]
    for opt, row in zip(options, t.iter_rows(named=True), strict=True):
        alone = min_replicas(hot, slo, opt.cost).replicas
        assert row["replicas"] == alone and alone is not None
        price = fc.GPU_PRICES[opt.gpu].usd_per_gpu_hour
        assert row["gpu_hours"] == pytest.approx(alone * span / 3600)
        assert row["cost_usd"] == pytest.approx(alone * price)
        assert row["usd_per_million_requests"] == pytest.approx(alone * price / hot.height * 1e6)
        sim = simulate(hot, opt.cost, replicas=alone)
        assert row["ttft_s"] == pytest.approx(sim.percentile("ttft_s", 99), rel=1e-9)
    assert t["replicas"][0] > t["replicas"][1]  # the A10G needs more replicas than the H100
    cheaper = t.sort("cost_usd")["option"][0]
    assert f"{cheaper} is the cheaper" in cmp_.sentence()
    # prices given per option override the list
    given = fc.gpu_comparison(hot, options, slo, span_s=span, usd_per_gpu_hour={"llama-3-8b@h100-sxm": 0.01})
    assert given.table["cost_usd"][1] == pytest.approx(t["replicas"][1] * 0.01)
    assert given.table["cost_usd"][0] == pytest.approx(t["cost_usd"][0])
    with pytest.raises(SpecError, match="labels must differ"):
        fc.gpu_comparison(hot, [options[0], options[0]], slo)


def test_two_models_on_one_gpu_and_an_option_that_cannot_meet(hot):
    """llama-3-8b on one A100 against llama-3-70b on two, 6x Azure, at most 16 replicas: the 70B
    model needs more (55 measured), so it has no answer and no cost."""
    slo = Slo(ttft_p99_s=2.0)
    small, large = fc.serving_option("llama-3-8b", "a100"), fc.serving_option("llama-3-70b", "a100", tensor_parallel=2)
    c = fc.gpu_comparison(hot, [small, large], slo, span_s=600.0, max_replicas=16)
    row_small, row_large = c.table.row(0, named=True), c.table.row(1, named=True)
    assert row_small["replicas"] == min_replicas(hot, slo, small.cost, max_replicas=16).replicas
    assert row_small["gpus"] == row_small["replicas"] and row_small["gpu_hours"] == pytest.approx(row_small["replicas"] / 6)
    assert row_large["replicas"] is None and row_large["cost_usd"] is None and row_large["note"] == "not met with 16 replicas, the most tried"
    assert c.sentence().endswith("llama-3-70b@a100-80gbx2 cannot (not met with 16 replicas, the most tried).")


def test_latency_floor_known_answer_with_a_constant_iteration_time():
    """Every iteration takes 10 ms: alone, a prompt takes one iteration per 8,192-token chunk to its
    first token, then one per further output token."""
    cost = CostModel((0.01, 0, 0, 0, 0), (0.01, 0, 0, 0, 0), kv_tokens=10**6)
    rng = np.random.default_rng(1)
    inp, out = rng.integers(1, 20_000, 500), rng.integers(1, 300, 500)
    df = pl.DataFrame({"timestamp_s": np.zeros(500), "input_tokens": inp, "output_tokens": out})  # all at once: the floor ignores arrivals
    floor = fc.latency_floor(df, cost)
    chunks = np.ceil(inp / 8192)
    for q in (50, 90, 95, 99):
        assert floor.value("ttft", q) == pytest.approx(np.percentile(chunks * 0.01, q))
        assert floor.value("e2e", q) == pytest.approx(np.percentile((chunks + out - 1) * 0.01, q))
        assert floor.value("tpot", q) == pytest.approx(0.01)
    assert (floor.requests, floor.of_requests) == (500, 500)
    # prefill-first: a prompt is one iteration whatever its length
    pf = fc.latency_floor(df, cost, config=ServerConfig(chunked_prefill=False))
    assert pf.value("ttft", 99) == pytest.approx(0.01)
    sample = fc.latency_floor(df, cost, max_requests=100, seed=3)
    assert (sample.requests, sample.of_requests, sample.left_out, sample.sampled) == (100, 500, 0, True)
    assert not floor.sampled


def test_no_replica_count_beats_the_latency_floor(hot):
    cost = roofline("llama-3-8b", "a100")
    floor = fc.latency_floor(hot, cost)
    for n in (2, 8, 64):
        s = simulate(hot, cost, replicas=n).summary()
        for name in ("ttft", "tpot", "e2e"):
            for q in (50, 90, 95, 99):
                assert s[f"{name}_p{q}_s"] >= floor.value(name, q) * (1 - 1e-9), (n, name, q)
    lines = floor.headroom(Slo(ttft_p99_s=2.0, e2e_s=floor.value("e2e", 90) / 2, percentile=90))
    assert lines[0].startswith("p90 TTFT <= 2 s leaves ") and f"({floor.value('ttft', 90):,.3g} s" in lines[0]
    assert "cannot be met by any replica count" in lines[1]
    # requests longer than the context are refused at every count: left out of the floor
    long = fc.latency_floor(hot.with_columns(pl.lit(9000).alias("input_tokens")), cost)
    assert (long.requests, long.left_out, long.sampled) == (0, hot.height, False)
    assert np.isnan(long.value("ttft", 99))
