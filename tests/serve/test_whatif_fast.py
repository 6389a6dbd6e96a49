"""The fast search (pilot estimate, bracket, early stop, cache, worker processes) gives the answers
of the serial search without a pilot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servegen_core.generate.compose import compose
from servegen_core.serve import whatif as wi
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import simulate
from servegen_core.sources.load import load_source
from servegen_core.sources.traces import load_trace
from servegen_core.spec import ObservedRate, ServeGenSource, Span, WorkloadSpec

SERIAL = {"pilot": False, "workers": 1}  # the search before the pilot, in one process


@pytest.fixture(scope="module")
def cost():
    return roofline("llama-3-8b", "a100")


@pytest.fixture(scope="module")
def hot(traces_dir) -> pl.DataFrame:
    trace = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace.select("timestamp_s", "input_tokens", "output_tokens")
    return trace.with_columns(pl.col("timestamp_s") / 6)


def evenly_spaced(cost, ratio: float, per_replica: int) -> tuple[pl.DataFrame, float]:
    """Identical one-token prompts of 2,000 tokens every ``s / ratio`` seconds (``s``: one prompt's
    service time alone): ``N`` round-robin replicas keep up exactly when ``N >= ratio``; below,
    every replica's queue grows by ``s - N s / ratio`` a request. Returns the requests and ``s``."""
    alone = simulate(pl.DataFrame({"timestamp_s": [0.0], "input_tokens": [2000], "output_tokens": [1]}), cost)
    s = float(alone.requests["ttft_s"][0])
    n = int(per_replica * np.ceil(ratio))
    df = pl.DataFrame({"timestamp_s": np.arange(n) * (s / ratio), "input_tokens": np.full(n, 2000), "output_tokens": np.ones(n, np.int64)})
    return df, s


def test_a_known_answer_by_every_search(cost):
    """38 replicas keep up with prompts arriving 37.3 per service time, 37 fall behind (the 125th
    request of a replica waits more than one service time more): p99 TTFT <= 2 s at 38 only."""
    df, s = evenly_spaced(cost, 37.3, 400)
    slo = wi.Slo(ttft_p99_s=2 * s)
    fleet = wi.FleetWork.of(df, cost)
    assert wi.pilot_estimate(fleet, slo, cost, guess=5, max_replicas=1024) == 38  # the replicas are alike: the pilot is exact
    fast = wi.min_replicas(df, slo, cost, workers=2)
    serial = wi.min_replicas(df, slo, cost, **SERIAL)
    assert fast.replicas == serial.replicas == 38
    at = fast.curve.filter(pl.col("replicas") == 38).row(0, named=True)
    assert at["ttft_p99_s"] == pytest.approx(s, rel=1e-9)  # no queueing at all
    assert not fast.curve.filter(pl.col("replicas") == 37)["met"].item()
    # the bracket around the pilot's estimate: 37, 38 and 39 only, and the serial search tried more
    assert fast.curve["replicas"].to_list() == [37, 38, 39]
    assert serial.curve.height > fast.curve.height


def test_the_early_stop_in_worker_processes_gives_the_serial_run(hot, cost):
    slo = wi.Slo(ttft_p99_s=1.0, tpot_p99_s=0.1)
    fleet = wi.FleetWork.of(hot, cost)
    with wi.worker_pool(2) as ex:
        for n in (4, 9):  # stopped early at 4, the whole fleet at 9
            one, share1 = wi.simulate_until_missed(wi.FleetWork.of(hot, cost), n, slo, cost)
            two, share2 = wi.simulate_until_missed(fleet, n, slo, cost, executor=ex)
            assert share1 == share2
            assert one.requests.equals(two.requests) and one.replicas.equals(two.replicas) and one.timeline.equals(two.timeline)
            assert (share1 < 1) == (n == 4)
    # the pilot's replicas are cached and a whole run at that count reuses them unchanged
    assert any(key[0] == 9 for key in fleet.replica_sims)
    again, _ = wi.simulate_until_missed(fleet, 9, slo, cost)
    assert again.requests.equals(two.requests)


@pytest.mark.parametrize("slo", [wi.Slo(ttft_p99_s=1.0), wi.DEFAULT_SLO, wi.Slo(tpot_p99_s=0.2)])
def test_the_fast_search_answers_as_the_serial_one_on_a_real_trace(hot, cost, slo):
    fast = wi.min_replicas(hot, slo, cost, workers=2)
    serial = wi.min_replicas(hot, slo, cost, **SERIAL)
    assert fast.replicas == serial.replicas and fast.replicas is not None
    # every count both searches simulated whole has the same row
    both = fast.curve.join(serial.curve, on="replicas", suffix="_serial").filter((pl.col("simulated_share") == 1) & (pl.col("simulated_share_serial") == 1))
    assert both.height >= 2
    for col in ("ttft_p99_s", "tpot_p99_s", "attainment", "met"):
        assert both[col].to_list() == both[f"{col}_serial"].to_list()
    assert fast.simulation.requests.equals(serial.simulation.requests)


def test_the_readme_example_answers_as_the_serial_search(servegen_dir):
    """README: m-large from 20:00, llama-3-8b on an A100, p99 TTFT <= 2 s (here 20 minutes at 2 %
    of the observed rate): every workload's answer as the serial search without a pilot gives it."""
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 1200), rate=ObservedRate(factor=0.02))
    cost = roofline("llama-3-8b", "a100")
    slo = wi.Slo(ttft_p99_s=2.0)
    pool = load_source(spec)
    c = wi.compare_spec(spec, slo, cost, pool=pool, workers=2)
    made = compose(spec, pool=pool)
    workloads = {"realistic": made.trace, **wi.naive_workloads(made, wi.DEFAULT_NAIVE_KINDS, pool=pool)}
    for name, df in workloads.items():
        serial = wi.min_replicas(df.select("timestamp_s", "input_tokens", "output_tokens"), slo, cost, **SERIAL)
        assert c.table.filter(pl.col("workload") == name)["replicas"].item() == serial.replicas, name
    assert c.table["replicas"].null_count() == 0
