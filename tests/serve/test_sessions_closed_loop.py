"""Closed-loop sessions in the simulator: known answers built in the tests."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import SpecError
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.fleetcost import ServingOption, gpu_comparison
from servegen_core.serve.sessions import SESSION_MODES, session_roots, turn_predecessors
from servegen_core.serve.simulate import simulate
from servegen_core.serve.whatif import Slo, min_replicas

COST = roofline("llama-3-8b", "a100")


def _alone(i: int, o: int) -> float:
    """End-to-end seconds of one request served alone."""
    df = pl.DataFrame({"timestamp_s": [0.0], "input_tokens": [i], "output_tokens": [o]})
    return float(simulate(df, COST).requests["e2e_s"][0])


def test_modes() -> None:
    assert SESSION_MODES == ("closed", "open")
    with pytest.raises(SpecError, match="sessions"):
        simulate(pl.DataFrame({"timestamp_s": [0.0], "input_tokens": [1], "output_tokens": [1]}), COST, sessions="half")


def test_turn_predecessors_known_answer() -> None:
    # rows shuffled; session b has a gap in turn numbers; a null session and a lone session
    df = pl.DataFrame(
        {
            "timestamp_s": [5.0, 0.0, 2.0, 1.0, 9.0, 3.0, 4.0],
            "session_id": ["a", "a", None, "b", "b", "a", "c"],
            "turn_index": [2, 0, 0, 0, 3, 1, 0],
        }
    )
    assert turn_predecessors(df).tolist() == [5, -1, -1, -1, 3, 1, -1]
    assert session_roots(turn_predecessors(df)).tolist() == [1, 1, 2, 3, 3, 1, 6]
    assert turn_predecessors(df.drop("session_id")).tolist() == [-1] * 7
    bad = df.with_columns(pl.Series("timestamp_s", [5.0, 0.0, 2.0, 1.0, 9.0, 6.0, 4.0]))  # turn 2 before turn 1
    with pytest.raises(SpecError, match="row 1: turn 2 of session 'a' is earlier than its previous turn"):
        turn_predecessors(bad)


def test_one_session_alone_is_the_closed_form() -> None:
    lengths = [(300, 20), (900, 45), (1500, 8), (2200, 60), (3100, 33)]
    times = np.cumsum([0.0, 4.0, 0.5, 7.25, 2.0])  # think times 4, 0.5, 7.25, 2 (the timestamp gaps)
    df = pl.DataFrame(
        {"timestamp_s": times, "input_tokens": [i for i, _ in lengths], "output_tokens": [o for _, o in lengths],
         "session_id": ["s"] * 5, "turn_index": list(range(5))}
    )
    req = simulate(df, COST).requests
    service = [_alone(i, o) for i, o in lengths]
    expect_release = [0.0]
    for k in range(1, 5):
        expect_release.append(expect_release[-1] + service[k - 1] + (times[k] - times[k - 1]))
    np.testing.assert_allclose(req["arrival_s"].to_numpy(), expect_release, rtol=0, atol=1e-9)
    np.testing.assert_allclose(req["e2e_s"].to_numpy(), service, rtol=0, atol=1e-9)
    end = float(req["arrival_s"][-1] + req["e2e_s"][-1])
    assert end == pytest.approx(sum(service) + float(times[-1] - times[0]), abs=1e-9)
    # open loop: every turn at its timestamp
    assert simulate(df, COST, sessions="open").requests["arrival_s"].to_list() == times.tolist()


def _overloaded(n_sessions: int = 60, turns: int = 4, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.random(n_sessions) * 20.0)
    think = rng.exponential(2.0, (n_sessions, turns - 1))
    t = np.concatenate([starts[:, None], starts[:, None] + np.cumsum(think, axis=1)], axis=1)
    return pl.DataFrame(
        {
            "timestamp_s": t.ravel(),
            "input_tokens": rng.integers(2000, 6000, n_sessions * turns),
            "output_tokens": rng.integers(100, 400, n_sessions * turns),
            "session_id": np.repeat([f"s{k}" for k in range(n_sessions)], turns),
            "turn_index": np.tile(np.arange(turns), n_sessions),
        }
    )


def test_closed_loop_under_overload_releases_later_turns_later() -> None:
    df = _overloaded()
    closed = simulate(df, COST, sessions="closed").requests
    opened = simulate(df, COST, sessions="open").requests
    later = (df["turn_index"] > 0).to_numpy()
    rel = closed["arrival_s"].to_numpy()
    ts = df["timestamp_s"].to_numpy()
    assert (rel[~later] == ts[~later]).all()  # first turns at their timestamps
    assert (rel[later] > ts[later]).all()  # every later turn waits for its previous response
    assert np.median(rel[later] - ts[later]) > 10.0  # under overload: by far more than a lone service time
    # each later turn is released exactly its think time after its previous turn finished
    pred = turn_predecessors(df)
    prev_end = rel[pred[later]] + closed["e2e_s"].to_numpy()[pred[later]]
    np.testing.assert_allclose(rel[later], prev_end + (ts[later] - ts[pred[later]]), rtol=0, atol=1e-9)
    # open loop queues the same requests longer: the offered load does not back off
    assert float(opened["queue_s"].mean()) > float(closed["queue_s"].mean())


def test_open_mode_is_byte_identical_to_no_sessions() -> None:
    df = _overloaded(30, 3, seed=4)
    plain = df.select("timestamp_s", "input_tokens", "output_tokens")
    a = simulate(df, COST, sessions="open", replicas=3)
    b = simulate(plain, COST, replicas=3)
    assert a.requests.equals(b.requests)
    assert a.replicas.equals(b.replicas)
    assert a.timeline.equals(b.timeline)
    # and closed mode without sessions is the same simulation
    assert simulate(plain, COST, sessions="closed", replicas=3).requests.equals(b.requests)


def test_closed_sessions_are_routed_whole() -> None:
    df = _overloaded(40, 5, seed=2)
    for router in ("round_robin", "least_outstanding"):
        req = simulate(df, COST, replicas=4, router=router).requests
        per = pl.DataFrame({"s": df["session_id"], "r": req["replica"]}).group_by("s").agg(pl.col("r").n_unique())
        assert per["r"].max() == 1
        assert req["replica"].n_unique() == 4


def test_search_simulates_closed_loop() -> None:
    df = _overloaded(40, 4, seed=3)
    slo = Slo(ttft_p99_s=2.0)
    closed = min_replicas(df, slo, COST, sessions="closed", max_replicas=64)
    opened = min_replicas(df, slo, COST, sessions="open", max_replicas=64)
    assert closed.replicas is not None and opened.replicas is not None
    # the closed loop's answer is its own simulation: turns released after their previous responses
    sim = closed.simulation
    assert sim is not None
    assert (sim.requests.sort("arrival_s")["arrival_s"].to_numpy() >= 0).all()
    plain = min_replicas(df.select("timestamp_s", "input_tokens", "output_tokens"), slo, COST, max_replicas=64)
    assert opened.replicas == plain.replicas
    assert opened.curve.equals(plain.curve)


def test_gpu_comparison_simulates_the_sessions_like_the_search() -> None:
    # the comparison of serving options keeps the workload's sessions: each option's answer and
    # curve are the search's in the same session mode (and closed differs from open here)
    df = _overloaded(40, 4, seed=3)
    slo = Slo(ttft_p99_s=2.0)
    option = ServingOption("A", COST, "a100-80gb", 1)
    curves = {}
    for mode in SESSION_MODES:
        got = gpu_comparison(df, [option], slo, max_replicas=64, sessions=mode).results["A"]
        want = min_replicas(df, slo, COST, max_replicas=64, sessions=mode)
        assert got.replicas == want.replicas
        assert got.curve.equals(want.curve)
        curves[mode] = got.curve
    assert not curves["closed"].equals(curves["open"])
