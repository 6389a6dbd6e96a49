"""SLO classes: the spec section, the class columns, priority scheduling and the per-class
what-if, with known answers built in the tests."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import SpecError
from servegen_core.generate.classes import with_classes
from servegen_core.generate.compose import compose, iter_compose
from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class
from servegen_core.serve.classes import ClassSlo, PriorityWaiting, class_met
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import ServerConfig, simulate
from servegen_core.spec import SloClass, SloClasses, WorkloadSpec

COST = roofline("llama-3-8b", "a100")

SECTION = {
    "classes": {
        "interactive": {"priority": 0, "ttft_p99_s": 1.0, "tpot_p99_s": 0.05},
        "batch": {"priority": 1, "e2e_p99_s": 3600},
    },
    "clients": {"3": "batch"},
    "default": "interactive",
}
SPEC = {
    "schema_version": 1,
    "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
    "span": {"start_s": 0, "duration_s": 600},
    "slo_classes": SECTION,
}


def test_spec_section_round_trips() -> None:
    spec = WorkloadSpec.from_dict(SPEC)
    assert spec.slo_classes == SloClasses(
        classes=(("interactive", SloClass(0, 1.0, 0.05, None)), ("batch", SloClass(1, None, None, 3600))),
        default="interactive",
        clients=(("3", "batch"),),
    )
    assert WorkloadSpec.from_json(spec.to_json()) == spec
    assert spec.to_dict()["slo_classes"] == SECTION
    plain = {k: v for k, v in SPEC.items() if k != "slo_classes"}
    assert "slo_classes" not in WorkloadSpec.from_dict(plain).to_dict()  # absent: not written


@pytest.mark.parametrize(
    ("edit", "key", "text"),
    [
        (lambda d: d["classes"]["batch"].update(priority=1.5), "slo_classes.classes.batch.priority", "expected a whole number"),
        (lambda d: d["classes"]["batch"].pop("priority"), "slo_classes.classes.batch.priority", "required key is missing"),
        (lambda d: d["classes"]["batch"].update(e2e_p99_s=-1), "slo_classes.classes.batch.e2e_p99_s", "must be positive"),
        (lambda d: d["classes"]["batch"].update(ttft=1), "slo_classes.classes.batch.ttft", "unknown key"),
        (lambda d: d["classes"]["batch"].pop("e2e_p99_s"), "slo_classes.classes.batch", "at least one objective"),
        (lambda d: d.update(default="gold"), "slo_classes.default", "expected one of the classes"),
        (lambda d: d["clients"].update({"7": "gold"}), "slo_classes.clients.7", "expected one of the classes"),
        (lambda d: d.update(classes={}), "slo_classes.classes", "at least one class"),
        (lambda d: d.pop("default"), "slo_classes.default", "required key is missing"),
        (lambda d: d.update(extra=1), "slo_classes.extra", "unknown key"),
    ],
)
def test_spec_section_errors_name_the_place(edit, key, text) -> None:  # noqa: ANN001
    d = copy.deepcopy(SPEC)
    edit(d["slo_classes"])
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_dict(d)
    assert info.value.key == key
    assert text in str(info.value)


def test_composed_workload_carries_the_class_of_its_client() -> None:
    spec = WorkloadSpec.from_dict(SPEC)
    trace = compose(spec).trace
    expect = np.where(trace["client_id"].to_numpy() == "3", "batch", "interactive")
    assert trace["slo_class"].to_list() == expect.tolist()
    assert trace["slo_priority"].to_list() == np.where(expect == "batch", 1, 0).tolist()
    assert 0 < int((trace["slo_class"] == "batch").sum()) < trace.height
    # the other columns are those composed without the section, byte for byte
    plain = compose(WorkloadSpec.from_dict({k: v for k, v in SPEC.items() if k != "slo_classes"})).trace
    assert trace.drop("slo_class", "slo_priority").equals(plain)
    longer = WorkloadSpec.from_dict({**SPEC, "span": {"start_s": 0, "duration_s": 1800}})
    chunks = list(iter_compose(longer, chunk_s=600.0))  # the chunked path adds the same columns
    assert len(chunks) > 1
    assert pl.concat(chunks).equals(compose(longer).trace)
    assert set(pl.concat(chunks)["slo_class"].unique()) == {"batch", "interactive"}


def test_priority_waiting_queue_order() -> None:
    q = PriorityWaiting([1, 0, 1, 0, 2])
    for rid in range(5):
        q.append(rid)
    q.appendleft(2)  # a preempted request: first of its own priority
    order = [q.popleft() for _ in range(len(q))]
    assert order == [1, 3, 2, 0, 2, 4]


def _burst(prio: list[int] | None) -> pl.DataFrame:
    df = pl.DataFrame({"timestamp_s": [0.0] * 6, "input_tokens": [1000] * 6, "output_tokens": [50] * 6})
    if prio is not None:
        df = df.with_columns(pl.Series("slo_priority", prio), pl.Series("slo_class", ["a" if p == prio[0] else "b" for p in prio]))
    return df


def test_priority_reverses_who_waits() -> None:
    serial = ServerConfig(max_num_seqs=1)  # one request at a time: the k-th served ends at k x its lone time
    lone = float(simulate(_burst(None)[:1], COST, config=serial).requests["e2e_s"][0])
    fifo = simulate(_burst(None), COST, config=serial).requests["e2e_s"].to_numpy()
    np.testing.assert_allclose(fifo, lone * np.arange(1, 7), rtol=1e-9)
    a_first = simulate(_burst([0, 1, 0, 1, 0, 1]), COST, config=serial).requests["e2e_s"].to_numpy()
    np.testing.assert_allclose(a_first, lone * np.array([1, 4, 2, 5, 3, 6]), rtol=1e-9)
    b_first = simulate(_burst([1, 0, 1, 0, 1, 0]), COST, config=serial).requests["e2e_s"].to_numpy()
    np.testing.assert_allclose(b_first, lone * np.array([4, 1, 5, 2, 6, 3]), rtol=1e-9)


def _two_class_load(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_i, n_b = 300, 300
    t = np.concatenate([np.sort(rng.random(n_i)) * 60.0, np.sort(rng.random(n_b)) * 60.0])
    df = pl.DataFrame(
        {
            "timestamp_s": t,
            "input_tokens": np.concatenate([rng.integers(200, 800, n_i), rng.integers(3000, 7000, n_b)]),
            "output_tokens": np.concatenate([rng.integers(20, 80, n_i), rng.integers(200, 600, n_b)]),
            "slo_class": ["interactive"] * n_i + ["batch"] * n_b,
        }
    )
    return df.sort("timestamp_s")


OBJ = {"interactive": ClassSlo(ttft_p99_s=0.5), "batch": ClassSlo(e2e_p99_s=120.0)}


def test_min_replicas_by_class_known_answers() -> None:
    df = _two_class_load().with_columns(
        pl.when(pl.col("slo_class") == "interactive").then(0).otherwise(1).alias("slo_priority")
    )
    res = min_replicas_by_class(df, OBJ, COST, max_replicas=64)
    assert res.replicas is not None
    # the answer is the largest of the classes' own answers (the same counts were tried)
    assert res.replicas == max(res.by_class["replicas"].to_list())
    # brute force around it: every class met at the answer and the count above, one missed below
    for n, ok in ((res.replicas, True), (res.replicas + 1, True)):
        per = class_met(simulate(df, COST, replicas=n).requests, OBJ)
        assert all(r["met"] for r in per.values()) == ok
    if res.replicas > 1:
        per = class_met(simulate(df, COST, replicas=res.replicas - 1).requests, OBJ)
        assert not all(r["met"] for r in per.values())
    # the interactive class served first needs no more replicas than when it is served last
    flipped = df.with_columns((1 - pl.col("slo_priority")).alias("slo_priority"))
    res_flipped = min_replicas_by_class(flipped, OBJ, COST, max_replicas=64)
    own = dict(zip(res.by_class["slo_class"], res.by_class["replicas"], strict=True))
    own_flipped = dict(zip(res_flipped.by_class["slo_class"], res_flipped.by_class["replicas"], strict=True))
    assert own["interactive"] <= own_flipped["interactive"]
    # on one replica of 8 sequences the requests wait: the class served first waits less, and less than the other
    few = ServerConfig(max_num_seqs=8)
    wait = lambda s, c: float(s.requests.filter(pl.col("slo_class") == c)["queue_s"].mean())  # noqa: E731
    sim, sim_flipped = simulate(df, COST, config=few), simulate(flipped, COST, config=few)
    assert wait(sim, "interactive") < wait(sim, "batch")
    assert wait(sim_flipped, "batch") < wait(sim_flipped, "interactive")
    assert wait(sim, "interactive") < wait(sim_flipped, "interactive")


def test_classes_of_spec() -> None:
    spec = WorkloadSpec.from_dict(SPEC)
    assert classes_of_spec(spec) == {"interactive": ClassSlo(1.0, 0.05, None), "batch": ClassSlo(None, None, 3600)}
    with pytest.raises(SpecError, match="no slo_classes section"):
        classes_of_spec(WorkloadSpec.from_dict({k: v for k, v in SPEC.items() if k != "slo_classes"}))
    classes = SloClasses(classes=(("x", SloClass(2, 1.0)),), default="x")
    frame = with_classes(pl.DataFrame({"client_id": ["a", "b"]}), classes)
    assert frame["slo_class"].to_list() == ["x", "x"] and frame["slo_priority"].to_list() == [2, 2]


def test_cache_overflow_preempts_the_lowest_priority() -> None:
    import dataclasses

    small = dataclasses.replace(COST, kv_tokens=5000)  # three requests of 3,000 tokens cannot all stay
    df = pl.DataFrame({"timestamp_s": [0.0, 0.5, 0.5], "input_tokens": [1000] * 3, "output_tokens": [2000] * 3})
    fcfs = simulate(df, small).requests
    assert fcfs["completed"].all()
    assert fcfs["preemptions"][0] == 0 and fcfs["preemptions"][2] >= 1  # the newest admitted goes first
    prio = simulate(df.with_columns(pl.Series("slo_priority", [1, 0, 0])), small).requests
    assert prio["completed"].all()
    assert prio["preemptions"][0] >= 1  # the largest priority number goes first, though admitted first
    assert prio["e2e_s"][0] > fcfs["e2e_s"][0]
