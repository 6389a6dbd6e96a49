"""WorkloadSpec: JSON round trips, path resolution, strict parsing (SpecError naming the key)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest

from servegen_core.errors import SpecError
from servegen_core.paths import demo_data_dir, shared_data_dir
from servegen_core.spec import (
    BoundedRate,
    ClientSelection,
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    ServeGenSource,
    Span,
    TraceSource,
    Weights,
    WorkloadSpec,
)

BASE = {
    "schema_version": 1,
    "source": {"kind": "servegen", "data_dir": "shared", "model": "language/m-large"},
    "span": {"start_s": 72000, "duration_s": 3600},
}


def full_spec() -> dict:
    return {
        **copy.deepcopy(BASE),
        "clients": {"mode": "ids", "ids": ["0", "17", "3"]},
        "weights": {"mode": "explicit", "values": {"0": 2.0, "17": 1.0, "3": 0}},
        "rate": {"kind": "piecewise", "points": [[0, 50.0], [1800, 120.0]], "interpolation": "linear"},
        "arrivals": "poisson",
        "lengths": "pooled",
        "missing_lengths": "pooled",
        "arrival_shape": "fitted_shape",
        "min_load_kept": 0.5,
        "length_correlation": 0.25,
        "seed": 42,
    }


def test_minimal_spec_gets_documented_defaults():
    spec = WorkloadSpec.from_dict(BASE)
    assert spec.source == ServeGenSource("shared", "language/m-large")
    assert spec.span == Span(72000, 3600)
    assert spec.clients == ClientSelection("all")
    assert spec.weights == Weights("observed")
    assert spec.rate == ObservedRate(1.0)
    assert (spec.arrivals, spec.lengths, spec.missing_lengths) == ("fitted", "client", "borrow")
    assert (spec.arrival_shape, spec.min_load_kept) == ("recorded_cv", 0.9)
    assert spec.length_correlation == 0.0 and spec.seed == 0


@pytest.mark.parametrize(
    "rate",
    [
        {"kind": "observed", "factor": 2.5},
        {"kind": "constant", "rps": 100.0},
        {"kind": "bounded", "peak_rps": 500},
        {"kind": "piecewise", "points": [[0, 1.0], [10, 0.0], [20, 3.5]], "interpolation": "step"},
        {"kind": "ramp", "start_rps": 0, "end_rps": 200.0},
    ],
)
def test_every_rate_kind_round_trips_through_json(rate):
    d = {**copy.deepcopy(BASE), "rate": rate}
    spec = WorkloadSpec.from_dict(d)
    again = WorkloadSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert spec.to_dict()["rate"]["kind"] == rate["kind"]
    for key, value in rate.items():
        if key == "points":
            assert spec.to_dict()["rate"]["points"] == value
        else:
            assert spec.to_dict()["rate"][key] == value


def test_full_spec_round_trips_and_keeps_every_option():
    spec = WorkloadSpec.from_dict(full_spec())
    d = spec.to_dict()
    assert d == {
        **full_spec(),
        "clients": {"mode": "ids", "ids": ["0", "17", "3"]},
    }
    assert WorkloadSpec.from_json(spec.to_json()) == spec
    assert spec.weights.as_dict() == {"0": 2.0, "17": 1.0, "3": 0}
    assert isinstance(spec.rate, PiecewiseRate) and spec.rate.interpolation == "linear"


@pytest.mark.parametrize(
    "clients",
    [
        {"mode": "all"},
        {"mode": "top_k", "k": 5, "by": "request_share"},
        {"mode": "filter", "ranges": {"request_share": [0.01, None], "mean_input_tokens": [None, 2000]}, "top_k": 3, "by": "request_share"},
    ],
)
def test_client_modes_round_trip(clients):
    spec = WorkloadSpec.from_dict({**copy.deepcopy(BASE), "clients": clients})
    assert WorkloadSpec.from_json(spec.to_json()) == spec
    assert spec.to_dict()["clients"]["mode"] == clients["mode"]


def test_trace_source_round_trips():
    d = {**copy.deepcopy(BASE), "source": {"kind": "trace", "path": "traces/x.csv", "preset": "azure", "per_client": False}}
    spec = WorkloadSpec.from_dict(d)
    assert spec.source == TraceSource("traces/x.csv", "azure", False)
    assert WorkloadSpec.from_json(spec.to_json()).to_dict()["source"] == d["source"]


def test_trace_source_without_mapping_keys_writes_the_same_json_text():
    # a spec written before columns/time_unit/client_column existed reads and writes byte for byte
    text = json.dumps(
        {
            **copy.deepcopy(BASE),
            "source": {"kind": "trace", "path": "t.csv", "preset": None, "per_client": True},
            "clients": {"mode": "all"},
            "weights": {"mode": "observed"},
            "rate": {"kind": "observed", "factor": 1.0},
            "arrivals": "fitted",
            "lengths": "client",
            "missing_lengths": "exclude",
            "length_correlation": 0.0,
            "seed": 0,
        },
        indent=2,
    ) + "\n"
    spec = WorkloadSpec.from_json(text)
    assert spec.to_json() == text
    assert set(spec.to_dict()["source"]) == {"kind", "path", "preset", "per_client"}


def test_trace_source_column_mapping_round_trips():
    source = {
        "kind": "trace",
        "path": "mine.csv",
        "preset": "generic",
        "per_client": True,
        # given out of target order: written back in TARGETS order
        "columns": {"output_tokens": "completion", "timestamp": "when_ms", "input_tokens": "prompt"},
        "time_unit": "ms",
        "client_column": "user",
    }
    spec = WorkloadSpec.from_dict({**copy.deepcopy(BASE), "source": source})
    assert spec.source.columns == (("timestamp", "when_ms"), ("input_tokens", "prompt"), ("output_tokens", "completion"))
    assert spec.source.time_unit == "ms" and spec.source.client_column == "user"
    again = WorkloadSpec.from_json(spec.to_json())
    assert again == spec and hash(again) == hash(spec)
    written = json.loads(spec.to_json())["source"]
    assert written == source
    assert list(written["columns"]) == ["timestamp", "input_tokens", "output_tokens"]
    # built in code from a mapping: the same value
    built = TraceSource("mine.csv", "generic", columns=dict(source["columns"]), time_unit="ms", client_column="user")
    assert built == spec.source
    # a preset with an extra mapped column and a time unit override only
    azure = TraceSource("a.csv", "azure", columns={"client_id": "Region"}, time_unit="datetime")
    assert azure.to_dict() == {
        "kind": "trace", "path": "a.csv", "preset": "azure", "per_client": True,
        "columns": {"client_id": "Region"}, "time_unit": "datetime",
    }


def _trace(**extra) -> dict:
    source = {"kind": "trace", "path": "t.csv", "preset": "generic", "time_unit": "s",
              "columns": {"timestamp": "ts", "input_tokens": "in", "output_tokens": "out"}}
    source.update(extra)
    return {**copy.deepcopy(BASE), "source": {k: v for k, v in source.items() if v is not ...}}


TRACE_BAD = [
    ("unknown target", _trace(columns={"timestamp": "ts", "input_tokens": "in", "output_tokens": "out", "prompt": "p"}), "source.columns.prompt"),
    ("column not a string", _trace(columns={"timestamp": "ts", "input_tokens": 3, "output_tokens": "out"}), "source.columns.input_tokens"),
    ("empty column name", _trace(columns={"timestamp": "ts", "input_tokens": " ", "output_tokens": "out"}), "source.columns.input_tokens"),
    ("column used twice", _trace(columns={"timestamp": "ts", "input_tokens": "n", "output_tokens": "n"}), "source.columns.output_tokens"),
    ("columns not an object", _trace(columns=["ts", "in", "out"]), "source.columns"),
    ("generic without input_tokens", _trace(columns={"timestamp": "ts", "output_tokens": "out"}), "source.columns.input_tokens"),
    ("columns without preset need all three", _trace(preset=None, columns={"timestamp": "ts"}), "source.columns.input_tokens"),
    ("generic without time unit", _trace(time_unit=...), "source.time_unit"),
    ("unknown time unit", _trace(time_unit="minutes"), "source.time_unit"),
    ("time unit not a string", _trace(time_unit=1000), "source.time_unit"),
    ("empty client column", _trace(client_column=""), "source.client_column"),
    ("client column not a string", _trace(client_column=["user"]), "source.client_column"),
    ("client column contradicts the mapping", _trace(client_column="user", columns={"timestamp": "ts", "input_tokens": "in", "output_tokens": "out", "client_id": "tenant"}), "source.client_column"),
    ("mapping keys on a servegen source", {**BASE, "source": {**BASE["source"], "columns": {"timestamp": "ts"}}}, "source.columns"),
]


@pytest.mark.parametrize(("case", "data", "key"), TRACE_BAD, ids=[b[0] for b in TRACE_BAD])
def test_bad_trace_source_mapping_names_the_key(case, data, key):
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_dict(data)
    assert info.value.key == key, f"{case}: {info.value}"
    with pytest.raises(SpecError) as info2:
        WorkloadSpec.from_json(json.dumps(data))
    assert info2.value.key == key


def test_trace_source_mapping_is_checked_in_code_too():
    with pytest.raises(SpecError) as info:
        TraceSource("t.csv", columns={"timestamp": "ts", "input_tokens": "in", "output_tokens": "out"})
    assert info.value.key == "source.time_unit"
    with pytest.raises(SpecError) as info:
        TraceSource("t.csv", "azure", columns=(("client_id", "a", "b"),))
    assert info.value.key == "source.columns[0]"
    with pytest.raises(SpecError) as info:
        TraceSource("t.csv", "azure", columns=(("client_id", "a"), ("client_id", "b")))
    assert info.value.key == "source.columns.client_id"


def test_spec_file_relative_paths_resolve_against_the_file_folder(tmp_path: Path):
    folder = tmp_path / "specs" / "deep"
    folder.mkdir(parents=True)
    data = tmp_path / "mydata"
    data.mkdir()
    d = {**copy.deepcopy(BASE), "source": {"kind": "servegen", "data_dir": "../../mydata", "model": "language/m-large"}}
    path = folder / "w.json"
    path.write_text(json.dumps(d))
    spec = WorkloadSpec.from_file(path)
    assert spec.resolve_path(spec.source.data_dir) == data.resolve()
    # from_json with a Path reads the file the same way
    assert WorkloadSpec.from_json(path).resolve_path("../../mydata") == data.resolve()
    # the path is written back as given
    assert json.loads(spec.to_json())["source"]["data_dir"] == "../../mydata"
    # written and read again from elsewhere: same spec
    out = spec.to_file(tmp_path / "copy.json")
    assert WorkloadSpec.from_file(out) == spec


def test_special_data_dirs_and_cwd_for_specs_built_in_code(tmp_path: Path, monkeypatch):
    demo = WorkloadSpec(ServeGenSource("demo", "language/demo-chat"), Span(0))
    shared = WorkloadSpec(ServeGenSource("shared", "language/m-large"), Span(0))
    assert demo.resolve_path("demo") == demo_data_dir() / "servegen"
    assert shared.resolve_path("shared") == shared_data_dir() / "servegen"
    monkeypatch.chdir(tmp_path)
    rel = WorkloadSpec(ServeGenSource("somewhere", "language/m-large"), Span(0))
    assert rel.resolve_path("somewhere") == (tmp_path / "somewhere").resolve()


def test_to_file_refuses_to_overwrite_and_leaves_no_temp(tmp_path: Path):
    spec = WorkloadSpec.from_dict(BASE)
    p = spec.to_file(tmp_path / "s.json")
    with pytest.raises(FileExistsError):
        spec.to_file(p)
    spec2 = dataclasses.replace(spec, seed=7)
    spec2.to_file(p, overwrite=True)
    assert WorkloadSpec.from_file(p).seed == 7
    assert sorted(os.listdir(tmp_path)) == ["s.json"]


def test_spec_is_frozen():
    spec = WorkloadSpec.from_dict(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 3  # type: ignore[misc]
    assert dataclasses.replace(spec, seed=3).seed == 3 and spec.seed == 0


def _with(path: str, value, *, drop: bool = False) -> dict:
    d = copy.deepcopy(BASE)
    d.setdefault("rate", {"kind": "observed", "factor": 1.0})
    parts = path.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    if drop:
        del cur[parts[-1]]
    else:
        cur[parts[-1]] = value
    return d


BAD = [
    ("unknown top-level key", {**BASE, "sede": 1}, "sede"),
    ("missing source", {k: v for k, v in BASE.items() if k != "source"}, "source"),
    ("missing schema version", {k: v for k, v in BASE.items() if k != "schema_version"}, "schema_version"),
    ("future schema version", {**BASE, "schema_version": 2}, "schema_version"),
    ("unknown source kind", _with("source.kind", "csv"), "source.kind"),
    ("unknown source key", _with("source.folder", "x"), "source.folder"),
    ("model without category", _with("source.model", "m-large"), "source.model"),
    ("data_dir not a string", _with("source.data_dir", 3), "source.data_dir"),
    ("negative duration", _with("span.duration_s", -3600), "span.duration_s"),
    ("zero duration", _with("span.duration_s", 0), "span.duration_s"),
    ("negative start", _with("span.start_s", -1), "span.start_s"),
    ("start as a string", _with("span.start_s", "72000"), "span.start_s"),
    ("unknown span key", _with("span.end_s", 5), "span.end_s"),
    ("negative constant rate", _with("rate", {"kind": "constant", "rps": -5}), "rate.rps"),
    ("rate as a string", _with("rate", {"kind": "constant", "rps": "100"}), "rate.rps"),
    ("rate as a bool", _with("rate", {"kind": "constant", "rps": True}), "rate.rps"),
    ("zero peak", _with("rate", {"kind": "bounded", "peak_rps": 0}), "rate.peak_rps"),
    ("missing peak", _with("rate", {"kind": "bounded"}), "rate.peak_rps"),
    ("negative factor", _with("rate", {"kind": "observed", "factor": -1}), "rate.factor"),
    ("negative ramp start", _with("rate", {"kind": "ramp", "start_rps": -1, "end_rps": 5}), "rate.start_rps"),
    ("ramp of zeros", _with("rate", {"kind": "ramp", "start_rps": 0, "end_rps": 0}), "rate.end_rps"),
    ("unknown rate kind", _with("rate", {"kind": "diurnal"}), "rate.kind"),
    ("key of another rate kind", _with("rate", {"kind": "constant", "rps": 5, "peak_rps": 9}), "rate.peak_rps"),
    ("piecewise not from 0", _with("rate", {"kind": "piecewise", "points": [[10, 5.0]]}), "rate.points[0]"),
    ("piecewise not increasing", _with("rate", {"kind": "piecewise", "points": [[0, 5.0], [60, 2.0], [60, 1.0]]}), "rate.points[2]"),
    ("piecewise negative rate", _with("rate", {"kind": "piecewise", "points": [[0, 5.0], [60, -2.0]]}), "rate.points[1]"),
    ("piecewise bad pair", _with("rate", {"kind": "piecewise", "points": [[0, 5.0, 1]]}), "rate.points[0]"),
    ("piecewise bad interpolation", _with("rate", {"kind": "piecewise", "points": [[0, 5.0]], "interpolation": "cubic"}), "rate.interpolation"),
    ("weights summing to 0", _with("weights", {"mode": "explicit", "values": {"0": 0, "1": 0.0}}), "weights.values"),
    ("negative weight", _with("weights", {"mode": "explicit", "values": {"0": -1}}), "weights.values.0"),
    ("weight as a string", _with("weights", {"mode": "explicit", "values": {"0": "1"}}), "weights.values.0"),
    ("explicit weights without values", _with("weights", {"mode": "explicit"}), "weights.values"),
    ("observed weights with values", _with("weights", {"mode": "observed", "values": {"0": 1}}), "weights.values"),
    ("unknown weights mode", _with("weights", {"mode": "uniform"}), "weights.mode"),
    ("empty id list", _with("clients", {"mode": "ids", "ids": []}), "clients.ids"),
    ("id as a number", _with("clients", {"mode": "ids", "ids": [17]}), "clients.ids[0]"),
    ("duplicate id", _with("clients", {"mode": "ids", "ids": ["1", "1"]}), "clients.ids"),
    ("top_k without k", _with("clients", {"mode": "top_k"}), "clients.k"),
    ("top_k of 0", _with("clients", {"mode": "top_k", "k": 0}), "clients.k"),
    ("ids key in top_k mode", _with("clients", {"mode": "top_k", "k": 2, "ids": ["1"]}), "clients.ids"),
    ("filter range reversed", _with("clients", {"mode": "filter", "ranges": {"request_share": [0.5, 0.1]}}), "clients.ranges.request_share"),
    ("filter range not a pair", _with("clients", {"mode": "filter", "ranges": {"request_share": 0.5}}), "clients.ranges.request_share"),
    ("unknown arrivals", {**BASE, "arrivals": "gamma"}, "arrivals"),
    ("unknown lengths", {**BASE, "lengths": "global"}, "lengths"),
    ("unknown missing_lengths", {**BASE, "missing_lengths": "drop"}, "missing_lengths"),
    ("unknown arrival_shape", {**BASE, "arrival_shape": "fitted"}, "arrival_shape"),
    ("min_load_kept above 1", {**BASE, "min_load_kept": 1.5}, "min_load_kept"),
    ("min_load_kept not a number", {**BASE, "min_load_kept": "0.9"}, "min_load_kept"),
    ("correlation above 1", {**BASE, "length_correlation": 1.5}, "length_correlation"),
    ("negative seed", {**BASE, "seed": -1}, "seed"),
    ("fractional seed", {**BASE, "seed": 1.5}, "seed"),
    ("bool seed", {**BASE, "seed": True}, "seed"),
    ("per_client not a bool", _with("source", {"kind": "trace", "path": "t.csv", "per_client": "yes"}), "source.per_client"),
]


@pytest.mark.parametrize(("case", "data", "key"), BAD, ids=[b[0] for b in BAD])
def test_bad_spec_raises_spec_error_naming_the_key(case, data, key):
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_dict(data)
    assert info.value.key == key, f"{case}: {info.value}"
    assert f"'{key}'" in str(info.value)
    # the JSON text path gives the same error
    with pytest.raises(SpecError) as info2:
        WorkloadSpec.from_json(json.dumps(data))
    assert info2.value.key == key


def test_non_json_and_non_finite_numbers_are_spec_errors(tmp_path: Path):
    with pytest.raises(SpecError, match="invalid JSON at line 1"):
        WorkloadSpec.from_json("{not json")
    with pytest.raises(SpecError, match="NaN"):
        WorkloadSpec.from_json(json.dumps(BASE).replace("3600", "NaN"))
    with pytest.raises(SpecError, match="must be a JSON object"):
        WorkloadSpec.from_json("[1, 2]")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**BASE, "span": {"start_s": 0, "duration_s": -1}}))
    with pytest.raises(SpecError, match="bad.json") as info:
        WorkloadSpec.from_file(bad)
    assert info.value.key == "span.duration_s"
    with pytest.raises(SpecError, match="cannot read spec file"):
        WorkloadSpec.from_file(tmp_path / "missing.json")


def test_specs_built_in_code_are_checked_too():
    with pytest.raises(SpecError) as info:
        ConstantRate(rps=-1)
    assert info.value.key == "rate.rps"
    with pytest.raises(SpecError) as info:
        BoundedRate(peak_rps=float("inf"))
    assert info.value.key == "rate.peak_rps"
    with pytest.raises(SpecError) as info:
        RampRate(start_rps=1, end_rps=-1)
    assert info.value.key == "rate.end_rps"
    with pytest.raises(SpecError) as info:
        WorkloadSpec(ServeGenSource("shared", "language/m-large"), Span(0, 10), seed=-4)
    assert info.value.key == "seed"
    with pytest.raises(SpecError) as info:
        WorkloadSpec(ServeGenSource("shared", "language/m-large"), Span(0, 10), rate={"kind": "constant"})  # type: ignore[arg-type]
    assert info.value.key == "rate"
    with pytest.raises(SpecError) as info:
        Weights("explicit", {"a": 0.0})
    assert info.value.key == "weights.values"


def test_specs_are_hashable_and_equal_by_value(tmp_path: Path):
    # callers cache plans and workloads keyed on the spec
    a = WorkloadSpec.from_dict(full_spec())
    b = WorkloadSpec.from_dict(full_spec(), base_dir=tmp_path)  # base_dir is not part of the value
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert dataclasses.replace(a, seed=1) != a
