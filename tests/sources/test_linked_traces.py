"""Bailian traces (sessions from parent links), ServeGen's offline batch traces and BurstGPT's newer columns.

Small fixture files are written here from each format's documented schema (no real data): Bailian
as AIPerf 0.13.0's ``BailianTrace`` documents it (``chat_id``, ``parent_chat_id`` -1 for a root,
``timestamp`` seconds, ``input_length``, ``output_length``, ``type``, ``turn``, 16-token
``hash_ids``); ServeGen's ``data/offline/trace_*.jsonl`` (``request_id``, ``type``,
``input_length``, ``output_length``, ``hash_ids``, ``img_ids``; or ``duration`` instead of the ids);
BurstGPT with ``Session ID`` and ``Elapsed time``. Expected values are the fixtures' own.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import prefix
from servegen_core.errors import DataFormatError, OptionError
from servegen_core.sources.traces import LINKED_BLOCK_SIZE, linked_trace_kind, load_linked_trace, load_trace


def _ids(n_tokens: int, start: int) -> list[int]:
    return list(range(start, start + -(-n_tokens // LINKED_BLOCK_SIZE)))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def bailian(tmp_path):
    """Two conversations (roots 159 and 300; 159 has three turns, the third a child of the second) and a lone request."""
    recs = [
        {"chat_id": 159, "parent_chat_id": -1, "timestamp": 61.114, "input_length": 521, "output_length": 132, "type": "text", "turn": 1, "hash_ids": _ids(521, 0)},
        {"chat_id": 300, "parent_chat_id": -1, "timestamp": 61.5, "input_length": 40, "output_length": 10, "type": "search", "turn": 1, "hash_ids": _ids(40, 100)},
        {"chat_id": 160, "parent_chat_id": 159, "timestamp": 62.5, "input_length": 700, "output_length": 80, "type": "text", "turn": 2, "hash_ids": _ids(521, 0)[:-1] + _ids(700 - 512, 200)},
        {"chat_id": 7, "parent_chat_id": -1, "timestamp": 63.0, "input_length": 16, "output_length": 1, "type": "image", "turn": 1, "hash_ids": [300]},
        {"chat_id": 161, "parent_chat_id": 160, "timestamp": 64.0, "input_length": 900, "output_length": 5, "type": "text", "turn": 3, "hash_ids": _ids(900, 400)},
        {"chat_id": 301, "parent_chat_id": 300, "timestamp": 65.25, "input_length": 60, "output_length": 3, "type": "search", "turn": 2, "hash_ids": _ids(60, 500)},
    ]
    return _write(tmp_path / "bailian.jsonl", recs), recs


def test_bailian_sessions_come_from_the_parent_links(bailian):
    path, recs = bailian
    loaded = load_trace(path)  # detected from the keys
    assert loaded.preset == "bailian" and loaded.detected
    tr = loaded.trace
    assert tr.height == len(recs)
    assert tr["timestamp_s"].to_list() == pytest.approx([r["timestamp"] - 61.114 for r in recs])
    assert tr["session_id"].to_list() == ["159", "300", "159", "7", "159", "300"]
    assert tr["turn_index"].to_list() == [0, 0, 1, 0, 2, 1]
    assert tr["client_id"].to_list() == [r["type"] for r in recs]
    assert tr["input_tokens"].to_list() == [r["input_length"] for r in recs]
    assert tr["hash_ids"].to_list() == [r["hash_ids"] for r in recs]
    # the second turn shares the first turn's whole blocks: prefix reuse is measurable
    assert prefix.block_reuse(tr).reused_blocks == len(_ids(521, 0)) - 1


def test_bailian_parent_outside_the_file_roots_the_chain(tmp_path):
    path = _write(tmp_path / "b.jsonl", [
        {"chat_id": 5, "parent_chat_id": 4, "timestamp": 1.0, "input_length": 3, "output_length": 1, "turn": 2},
        {"chat_id": 6, "parent_chat_id": 5, "timestamp": 2.0, "input_length": 3, "output_length": 1, "turn": 3},
    ])
    assert load_linked_trace(path).trace["session_id"].to_list() == ["5", "5"]


def test_bailian_bad_values_name_record_and_field(tmp_path):
    path = _write(tmp_path / "b.jsonl", [
        {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 3, "output_length": 1},
        {"chat_id": 2, "parent_chat_id": -1, "timestamp": 1.0, "input_length": -3, "output_length": 1},
    ])
    with pytest.raises(DataFormatError, match=r"record 2, field 'input_length'.*negative"):
        load_trace(path)
    half = _write(tmp_path / "h.jsonl", [
        {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 3.5, "output_length": 1},
    ])
    with pytest.raises(DataFormatError, match=r"record 1, field 'input_length'.*whole"):
        load_trace(half)
    neg = _write(tmp_path / "n.jsonl", [
        {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 3, "output_length": 1, "hash_ids": [-4]},
    ])
    with pytest.raises(DataFormatError, match=r"record 1, field 'hash_ids'.*negative"):
        load_trace(neg)
    cyc = _write(tmp_path / "c.jsonl", [
        {"chat_id": 1, "parent_chat_id": 2, "timestamp": 0.0, "input_length": 3, "output_length": 1},
        {"chat_id": 2, "parent_chat_id": 1, "timestamp": 1.0, "input_length": 3, "output_length": 1},
    ])
    with pytest.raises(DataFormatError, match="cycle"):
        load_trace(cyc)


@pytest.fixture
def offline(tmp_path):
    """A batch trace in the trace_a..c layout: a shared 64-token system prompt, images reused."""
    recs = []
    for i in range(40):
        n_in = 64 + 16 * (i % 5) + (i % 3)
        ids = [0, 1, 2, 3] + list(range(1000 + 10 * i, 1000 + 10 * i + -(-(n_in - 64) // 16)))
        recs.append({"request_id": f"r{i}", "type": "image" if i % 4 == 0 else "text", "input_length": n_in,
                     "output_length": 10 + i, "hash_ids": ids, "img_ids": [i % 3] * (i % 4 == 0)})
    for r in recs:
        r["request_id"] = int(r["request_id"][1:])
    return _write(tmp_path / "trace_a.jsonl", recs), recs


def test_offline_trace_is_a_batch_job_at_t0_with_its_blocks(offline):
    path, recs = offline
    assert linked_trace_kind(recs[0]) == "servegen_offline"
    loaded = load_trace(path)
    assert loaded.preset == "servegen_offline"
    tr = loaded.trace
    assert tr.height == 40 and set(tr["timestamp_s"]) == {0.0}
    assert sorted(tr["input_tokens"].to_list()) == sorted(r["input_length"] for r in recs)
    assert set(tr["client_id"]) == {"image", "text"}
    assert int(tr["image_count"].sum()) == sum(len(r["img_ids"]) for r in recs)
    assert any("t = 0" in w for w in loaded.warnings)
    reuse = prefix.block_reuse(tr)  # every request shares the 4-block system prompt
    assert reuse.reused_blocks == 4 * 39


def test_offline_trace_with_a_stated_submission_rate(offline):
    path, _ = offline
    tr = load_linked_trace(path, submission_rps=4.0).trace
    np.testing.assert_allclose(tr["timestamp_s"].to_numpy(), np.arange(40) / 4.0)
    with pytest.raises(OptionError, match="submission_rps"):
        load_linked_trace(path, submission_rps=0)


def test_offline_duration_files_load_without_ids(tmp_path):
    path = _write(tmp_path / "trace_d.jsonl", [
        {"request_id": i, "input_length": 100 + i, "output_length": 5, "duration": 1.5} for i in range(5)
    ])
    loaded = load_trace(path)
    assert loaded.preset == "servegen_offline" and loaded.trace.height == 5
    assert "hash_ids" not in loaded.trace.columns
    assert any("duration" in w for w in loaded.warnings)


def test_burstgpt_newer_columns(tmp_path):
    path = tmp_path / "BurstGPT_2.csv"
    path.write_text(
        "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,11,1.5,ChatGPT,100,20,120,Conversation log\n"
        "7,11,2.0,ChatGPT,150,0,150,Conversation log\n"
        "9,12,0.5,GPT-4,30,5,35,API log\n"
    )
    loaded = load_trace(path)
    assert loaded.preset == "burstgpt"
    tr = loaded.trace
    assert tr["session_id"].to_list() == ["11", "11", "12"]
    assert tr["timestamp_s"].to_list() == [0.0, 2.0, 4.0]
    assert tr["failed"].to_list() == [False, True, False]
    assert "Elapsed time" not in loaded.columns.values()


def test_offline_batch_exports_as_a_batch_job(offline, tmp_path):
    """The batch trace goes to AIPerf as a job submitted at once, its 16-token blocks kept and named."""
    from servegen_core.export.formats import replay_commands
    from servegen_core.export.writer import export_trace

    path, recs = offline
    tr = load_trace(path).trace
    res = export_trace(tr, tmp_path / "batch.jsonl", "mooncake", block_size=LINKED_BLOCK_SIZE, note=None)
    rows = [json.loads(x) for x in res.path.read_text().splitlines()]
    assert {r["timestamp"] for r in rows} == {0}
    assert sorted(map(tuple, (r["hash_ids"] for r in rows))) == sorted(map(tuple, (r["hash_ids"] for r in recs)))
    (aiperf, _sglang) = replay_commands("mooncake", res.path, res.block_size, rows=res.rows)
    assert "--prompt-input-tokens-block-size 16" in aiperf.text and "--request-count 40" in aiperf.text


def test_offline_content_hash_file_as_released(tmp_path):
    """trace_a..c as ServeGen's data/offline/README.md shows them: no output_length, text image ids
    (its two example records: 23 shared blocks, then their own)."""
    recs = [
        {"request_id": 0, "type": "multimodal", "input_length": 446, "hash_ids": list(range(655296, 655324)), "img_ids": ["img_00001"]},
        {"request_id": 1, "type": "multimodal", "input_length": 420,
         "hash_ids": list(range(655296, 655319)) + list(range(655324, 655328)), "img_ids": ["img_00002"]},
        {"request_id": 2, "type": "multimodal", "input_length": 30, "hash_ids": [655296, 655297], "img_ids": ["img_00001", "img_00003"]},
    ]
    path = _write(tmp_path / "trace_c.jsonl", recs)
    assert linked_trace_kind(recs[0]) == "servegen_offline"
    loaded = load_trace(path)
    assert loaded.preset == "servegen_offline"
    tr = loaded.trace
    assert tr["input_tokens"].to_list() == [446, 420, 30]
    assert tr["output_tokens"].to_list() == [0, 0, 0]
    assert any("no output_length" in w for w in loaded.warnings)
    assert tr["image_ids"].to_list() == [[0], [1], [0, 2]]  # img_00001 twice: the same id
    assert tr["image_count"].to_list() == [1, 1, 2]
    assert prefix.image_reuse(tr).reused_blocks == 1
    assert prefix.block_reuse(tr).reused_blocks == 23 + 2
