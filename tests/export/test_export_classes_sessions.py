"""Exports of SLO classes and closed-loop conversation timing (AIPerf's ``delay``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import ExportError
from servegen_core.export.writer import export_trace
from servegen_core.generate.compose import compose
from servegen_core.spec import WorkloadSpec

SPEC = {
    "schema_version": 1,
    "source": {"kind": "servegen", "data_dir": "demo", "model": "reason/demo-r1"},
    "span": {"start_s": 0, "duration_s": 1800},
    "prefix": {"version": 1, "default": {"system_prompts": None, "sessions": {
        "turns": {"kind": "geometric", "mean": 3.0, "max": 10}, "think_time_s": {"mean": 30.0, "cv": 1.0}}}},
    "slo_classes": {
        "classes": {"interactive": {"priority": 0, "ttft_p99_s": 1.0}, "batch": {"priority": 2, "e2e_p99_s": 3600}},
        "clients": {"1": "batch", "4": "batch"},
        "default": "interactive",
    },
}


@pytest.fixture(scope="module")
def trace() -> pl.DataFrame:
    return compose(WorkloadSpec.from_dict(SPEC)).trace


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mooncake_closed_sessions_write_delay(trace: pl.DataFrame, tmp_path: Path) -> None:
    opened = export_trace(trace, tmp_path / "open.jsonl", "mooncake", note=None)
    default_bytes = (tmp_path / "open.jsonl").read_bytes()
    export_trace(trace, tmp_path / "open2.jsonl", "mooncake", note=None, sessions="open")
    assert (tmp_path / "open2.jsonl").read_bytes() == default_bytes  # open is the default
    export_trace(trace, tmp_path / "closed.jsonl", "mooncake", note=None, sessions="closed")
    op, cl = _records(tmp_path / "open.jsonl"), _records(tmp_path / "closed.jsonl")
    assert opened.rows == len(cl) == trace.height
    assert all("delay" not in r and "timestamp" in r for r in op)
    ms = np.round(trace["timestamp_s"].to_numpy() * 1000.0).astype(np.int64)
    last_ms: dict[str, int] = {}
    n_delay = 0
    for k, (o, c) in enumerate(zip(op, cl, strict=True)):
        base = trace["session_id"][k]
        # the same record but for its timing: an extending turn (same AIPerf conversation id as its session) gets a delay
        assert {key: v for key, v in c.items() if key not in ("timestamp", "delay")} == {key: v for key, v in o.items() if key != "timestamp"}
        if "delay" in c:
            n_delay += 1
            assert "timestamp" not in c
            assert c["delay"] == ms[k] - last_ms[base]  # the think time: the gap to the previous turn, in ms
        else:
            assert c["timestamp"] == ms[k] == o["timestamp"]
        if base is not None:
            last_ms[base] = int(ms[k])
    assert n_delay > 100
    assert n_delay <= int((trace["turn_index"] > 0).sum())
    with pytest.raises(ExportError, match="sessions must be one of"):
        export_trace(trace, tmp_path / "bad.jsonl", "mooncake", note=None, sessions="half")


def test_classes_in_the_formats_that_have_a_field(trace: pl.DataFrame, tmp_path: Path) -> None:
    assert set(trace["slo_class"].unique()) == {"batch", "interactive"}
    res = export_trace(trace, tmp_path / "m.jsonl", "mooncake", note=None)
    assert "slo_class" not in res.dropped_columns and "slo_priority" not in res.dropped_columns
    recs = _records(tmp_path / "m.jsonl")
    assert [r["slo_class"] for r in recs] == trace["slo_class"].to_list()
    assert [r["extra"] for r in recs] == [{"priority": p} for p in trace["slo_priority"].to_list()]
    export_trace(trace, tmp_path / "b.csv", "blis", note=None)
    blis = pl.read_csv(tmp_path / "b.csv", infer_schema_length=0)
    assert blis["slo_class"].to_list() == trace["slo_class"].to_list()
    export_trace(trace, tmp_path / "n.jsonl", "jsonl", note=None)
    native = pl.read_ndjson(tmp_path / "n.jsonl")
    assert native["slo_class"].to_list() == trace["slo_class"].to_list()
    assert native["slo_priority"].to_list() == trace["slo_priority"].to_list()


def test_formats_without_a_class_field_say_so(trace: pl.DataFrame, tmp_path: Path) -> None:
    notes: list[str] = []
    res = export_trace(trace, tmp_path / "v.jsonl", "vllm", note=notes.append)
    assert "slo_class" in res.dropped_columns
    said = [n for n in notes if "SLO classes not written" in n]
    assert said and f"{trace.height} request(s)" in said[0]
    notes.clear()
    export_trace(trace, tmp_path / "m2.jsonl", "mooncake", note=notes.append)
    assert not [n for n in notes if "SLO classes" in n]
