"""ServeGen's multi-turn conversation file (``data/conversations/conversations_hashed.json``) read by
``load_conversations``.

The release documents no schema; the fixtures are written from the field names reported for the
file (conversations of turns with ``turn``, ``timestamp``, ``input_token_count``,
``output_token_count`` and hashed ``input_tokens``/``output_tokens`` lists). Expected values are the
fixtures' own. The shared data holds no conversation file today; the real-data test runs when one is
put at ``servegen/conversations/conversations_hashed.json``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from servegen_core.characterize import prefix
from servegen_core.errors import DataFormatError, OptionError
from servegen_core.sources.traces import load_conversations, load_trace

T0 = 1_738_368_000.0  # 2025-02-01 00:00:00 UTC


def _turn(turn, t, n_in, n_out, ids=None):
    return {"turn": turn, "timestamp": T0 + t, "input_token_count": n_in, "output_token_count": n_out,
            "input_tokens": ids if ids is not None else [f"h{turn}"], "output_tokens": [7] * n_out}


@pytest.fixture
def conversations(tmp_path):
    """Three conversations: A (3 turns, think times 300 s and 60 s, turns written out of order),
    B (2 turns, 1,200 s apart), C (one turn)."""
    doc = [
        [_turn(1, 0.0, 100, 20), _turn(3, 360.0, 400, 5), _turn(2, 300.0, 180, 30)],
        [_turn(1, 10.25, 50, 4), _turn(2, 1210.25, 70, 9)],
        [_turn(1, 5.0, 9, 1)],
    ]
    path = tmp_path / "conversations_hashed.json"
    path.write_text(json.dumps(doc))
    return path


def test_turns_become_sessions_with_their_think_times(conversations):
    loaded = load_trace(conversations)  # a .json file: the conversation loader
    assert loaded.preset == "servegen_conversations"
    tr = loaded.trace
    assert tr["timestamp_s"].to_list() == [0.0, 5.0, 10.25, 300.0, 360.0, 1210.25]
    assert tr["session_id"].to_list() == ["0", "2", "1", "0", "0", "1"]
    assert tr["turn_index"].to_list() == [0, 0, 0, 1, 2, 1]
    assert tr["input_tokens"].to_list() == [100, 9, 50, 180, 400, 70]
    assert tr["output_tokens"].to_list() == [20, 1, 4, 30, 5, 9]
    assert set(tr["client_id"]) == {"all"}
    assert "hash_ids" not in tr.columns
    # 6 turns of one entry each over 809 input tokens
    assert any("left out" in w and "about 135 input tokens per input_tokens entry" in w for w in loaded.warnings)
    assert any("3 conversations (2 of more than one turn), 6 turns" in w for w in loaded.warnings)
    sess = prefix.sessions(tr)  # think times: arrival to the next turn's arrival
    assert sess.sessions == 3 and sess.multi_turn_sessions == 2
    assert sorted(sess.turns["gap_s"].to_list()) == [60.0, 300.0, 1200.0]
    assert sess.median_gap_s == 300.0
    assert sorted(sess.turns["growth_tokens"].to_list()) == [20, 80, 220]


def test_object_layouts_and_wall_clock_text(tmp_path):
    doc = {"conversations": [
        {"conversation_id": "c-9", "turns": [
            {"turn": 0, "timestamp": "2025-02-01 00:00:00.5", "input_token_count": 3, "output_token_count": 1},
            {"turn": 1, "timestamp": "2025-02-01T00:01:00.75Z", "input_token_count": 8, "output_token_count": 2},
        ]},
    ]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    loaded = load_conversations(path)
    assert loaded.trace["session_id"].to_list() == ["c-9", "c-9"]
    assert loaded.trace["turn_index"].to_list() == [0, 1]
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 60.25]
    assert str(loaded.start_time) == "2025-02-01 00:00:00.500000"
    keyed = tmp_path / "k.json"
    keyed.write_text(json.dumps({"u1": doc["conversations"][0]["turns"]}))
    assert load_conversations(keyed).trace["session_id"].to_list() == ["u1", "u1"]


def test_hash_lists_kept_with_a_stated_block_size(tmp_path):
    doc = [[_turn(1, 0.0, 20, 1, ["x", "y"]), _turn(2, 30.0, 40, 1, ["x", "y", "z"])],
           [_turn(1, 1.0, 16, 1, ["y"])]]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    tr = load_conversations(path, hash_block_size=16).trace
    # strings mapped by sorted order: x -> 0, y -> 1, z -> 2
    assert tr["hash_ids"].to_list() == [[0, 1], [1], [0, 1, 2]]
    # by id: y again at t = 1 (conversation 1), then x and y at t = 30; z is new
    assert prefix.block_reuse(tr).reused_blocks == 1 + 2
    with pytest.raises(DataFormatError, match=r"conversation '0', turn 2, field 'input_tokens'.*ceil\(input_token_count / 10\)"):
        load_conversations(path, hash_block_size=10)
    with pytest.raises(OptionError, match="hash_block_size"):
        load_conversations(path, hash_block_size=0)
    doc[1][0]["input_tokens"] = ["y", 5]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"conversation '1', turn 1, field 'input_tokens': not a list of strings"):
        load_conversations(path, hash_block_size=16)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5.5, "output_token_count": 1}]],
         r"conversation '0', turn 1, field 'input_token_count': not a whole number"),
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": 1}],
          [{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": -2}]],
         r"conversation '1', turn 1, field 'output_token_count': negative"),
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": 1},
           {"turn": 2, "timestamp": T0, "input_token_count": "5", "output_token_count": 1}]],
         r"conversation '0', turn 2, field 'input_token_count': not a number"),
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": 1},
           {"turn": 2, "input_token_count": 5, "output_token_count": 1}]],
         r"conversation '0', turn 2, field 'timestamp': missing"),
        ([[{"turn": 1, "timestamp": T0 + 9, "input_token_count": 5, "output_token_count": 1},
           {"turn": 2, "timestamp": T0, "input_token_count": 5, "output_token_count": 1}]],
         r"conversation '0', turn 2, field 'timestamp': earlier than the conversation's previous turn"),
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": 1},
           {"turn": 1, "timestamp": T0 + 1, "input_token_count": 5, "output_token_count": 1}]],
         r"field 'turn': the same turn number twice"),
        ([[{"turn": 1, "timestamp": T0, "input_token_count": 5, "output_token_count": 1}], []],
         r"conversation '1': not a non-empty list of turns"),
        ([[7]], r"conversation '0', turn 1: a JSON int, not an object"),
        ([[{"turn": True, "timestamp": T0, "input_token_count": 5, "output_token_count": 1}]],
         r"conversation '0', turn 1, field 'turn': not a number"),
        ([[{"turn": 1, "timestamp": "2025-02-01 00:00:00", "input_token_count": 5, "output_token_count": 1},
           {"turn": 2, "timestamp": "yesterday", "input_token_count": 5, "output_token_count": 1}]],
         r"conversation '0', turn 2, field 'timestamp': not date-time text"),
        ([], "no conversations"),
        ({"a": {"nope": 1}}, r"conversation 'a': an object without a turn list"),
        ("text", "not a list or object of conversations"),
    ],
)
def test_bad_files_name_conversation_turn_and_field(tmp_path, doc, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=match) as info:
        load_trace(path)
    assert str(path) in str(info.value)


def test_broken_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[[{"turn": 1,\n  "timestamp": NaN}]]')
    with pytest.raises(DataFormatError, match=r"broken\.json: not a JSON document: NaN is not valid JSON"):
        load_conversations(path)
    path.write_text('[[{"turn": 1,\n  "timestamp": }]]')
    with pytest.raises(DataFormatError, match=r"line 2, column 16: not a JSON document"):
        load_conversations(path)


def test_turn_budget_refuses_before_building_the_table(conversations, monkeypatch):
    monkeypatch.setenv("SERVEGEN_MAX_ROWS", "5")
    with pytest.raises(DataFormatError, match=r"about 6 turns.*above the limit of 5 turns"):
        load_conversations(conversations)
    monkeypatch.delenv("SERVEGEN_MAX_ROWS")
    with pytest.raises(DataFormatError, match=r"above the limit of 4 turns.*fewer turns"):
        load_trace(conversations, max_rows=4)  # a door's tighter budget (an upload's) reaches the loader
