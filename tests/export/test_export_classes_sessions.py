"""Exports of SLO classes and closed-loop conversation timing (AIPerf's ``delay``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.errors import DataFormatError, ExportError
from servegen_core.export.writer import export_trace
from servegen_core.generate.compose import compose
from servegen_core.sources.traces import load_trace
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


def test_closed_export_reads_back(trace: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "closed.jsonl"
    export_trace(trace, path, "mooncake", note=None, sessions="closed")
    recs = _records(path)
    loaded = load_trace(path)
    got = loaded.trace
    assert loaded.preset == "mooncake" and got.height == trace.height == len(recs)
    # lengths exact row by row: the whole prompts rebuilt from the new tokens, in time order
    assert got["input_tokens"].to_list() == trace["input_tokens"].to_list()
    assert got["output_tokens"].to_list() == trace["output_tokens"].to_list()
    # every turn of a session kept: an AIPerf conversation is <session_id>[~k]
    base = got["session_id"].str.replace(r"~\d+$", "")
    assert base.to_list() == trace["session_id"].to_list()
    counts = dict(trace.group_by("session_id").len().iter_rows())
    assert dict(pl.DataFrame({"s": base}).group_by("s").len().iter_rows()) == counts
    assert max(counts.values()) > 2
    turns = got.with_row_index("i").with_columns(pl.int_range(pl.len()).over("session_id").alias("want"))
    assert turns["turn_index"].to_list() == turns["want"].to_list()
    # first turns at their timestamps; a later turn at its previous turn + its delay
    got_ms = np.round(got["timestamp_s"].to_numpy() * 1000.0).astype(np.int64)
    origin = min(r["timestamp"] for r in recs if "timestamp" in r)
    last: dict[str, int] = {}
    n_delay = 0
    for k, r in enumerate(recs):
        if "delay" in r:
            n_delay += 1
            assert got_ms[k] == last[r["session_id"]] + r["delay"]
        else:
            assert got["timestamp_s"][k] == (r["timestamp"] - origin) / 1000.0
        last[r["session_id"]] = int(got_ms[k])
    assert n_delay > 100
    ms = np.round(trace["timestamp_s"].to_numpy() * 1000.0).astype(np.int64)
    assert got["timestamp_s"].to_list() == ((ms - ms.min()) / 1000.0).tolist()  # think time was the whole gap here
    said = [w for w in loaded.warnings if "delay" in w]
    assert len(said) == 1 and f"{n_delay:,} later" in said[0] and "lower bounds" in said[0]
    assert "no response times" in said[0]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    base = {"input_length": 10, "output_length": 5, "hash_ids": [0]}
    # an infinite number as valid JSON spells it (json.dumps would write the non-JSON Infinity)
    path.write_text("".join(json.dumps({**base, **r}).replace("Infinity", "1e999") + "\n" for r in rows))
    return path


def test_delay_turns_known_answer(tmp_path: Path) -> None:
    rows = [
        {"session_id": "a", "timestamp": 1000},
        {"session_id": "b", "timestamp": 1001},
        {"session_id": "a", "delay": 5},
        {"session_id": "a", "delay": 2.5},
        {"session_id": "b", "delay": 0},
        {"session_id": "a", "timestamp": 1100},  # a timestamp again: the next delay counts from it
        {"session_id": "a", "delay": 7},
    ]
    got = load_trace(_write_jsonl(tmp_path / "k.jsonl", rows)).trace
    assert got["timestamp_s"].to_list() == [0.0, 0.001, 0.001, 0.005, 0.0075, 0.1, 0.107]
    assert got["session_id"].to_list() == ["a", "b", "b", "a", "a", "a", "a"]
    assert got["turn_index"].to_list() == [0, 0, 1, 1, 2, 3, 4]
    assert got["input_tokens"].to_list() == [10, 10, 25, 25, 40, 55, 70]  # history + new tokens
    # a Parquet file: whole-number delays beside integer timestamps stay integers
    pq = tmp_path / "k.parquet"
    pl.DataFrame({"timestamp": [3, None], "delay": [None, 4.0], "input_length": [1, 1], "output_length": [1, 1],
                  "session_id": ["a", "a"]}).write_parquet(pq)
    assert load_trace(pq, preset="mooncake").trace["timestamp_s"].to_list() == [0.0, 0.004]


@pytest.mark.parametrize(
    ("rows", "where", "problem"),
    [
        ([{"session_id": "a", "timestamp": 0}, {"session_id": "b", "delay": 5}], "line 2, field 'delay'", "its session_id has no earlier turn"),
        ([{"session_id": "a", "delay": 5}, {"session_id": "a", "timestamp": 9}], "line 1, field 'delay'", "its session_id has no earlier turn"),
        ([{"session_id": "a", "timestamp": 0}, {"delay": 5}], "line 2, field 'delay'", "the record has no session_id"),
        ([{"session_id": "a", "timestamp": 0}, {"session_id": "a", "delay": -1}], "line 2, field 'delay'", "a negative delay"),
        ([{"session_id": "a", "timestamp": 0}, {"session_id": "a", "delay": 1e999}], "line 2", "field 'delay' is not a finite number"),
        ([{"session_id": "a", "timestamp": 0}, {"session_id": "a", "delay": "soon"}], "line 2, field 'delay'", "text that is not a number"),
        ([{"session_id": "a", "timestamp": 0}, {"session_id": "a", "timestamp": 7, "delay": 5}], "line 2, field 'delay'",
         "both a delay and a timestamp"),
    ],
)
def test_bad_delay_records_name_the_line(tmp_path: Path, rows: list[dict], where: str, problem: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataFormatError, match=problem) as err:
        load_trace(path)
    assert err.value.path == str(path)
    assert err.value.where == where
