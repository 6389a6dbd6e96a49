"""A ServeGen conversation file (``.json``) uploaded in the sidebar (issue 20): read as sessions, its
memory estimated before it is parsed like the other suffixes, and the hostile cases (huge, deeply
nested, duplicate keys) refused with one clear error while the app keeps serving.
"""

from __future__ import annotations

import json

import pytest
import uploads
from _dash import Dashboard, plain
from test_hardening import sidebar_errors, still_serves, upload

from servegen_core.limits import SERVER_BUDGET_ENV
from servegen_core.sources.footprint import trace_load_bytes

T0 = 1_738_368_000.0


def conversations(n: int, *, turns: int = 3) -> bytes:
    """``n`` conversations of ``turns`` turns, 60 s apart, conversation i starting at 7 i s."""
    doc = [
        [{"turn": j + 1, "timestamp": T0 + 7 * i + 60 * j, "input_token_count": 100 * (j + 1) + i,
          "output_token_count": 20 + j, "input_tokens": [f"h{i}-{k}" for k in range(j + 1)], "output_tokens": [1]}
         for j in range(turns)]
        for i in range(n)
    ]
    return json.dumps(doc).encode()


def test_json_is_an_upload_suffix():
    assert "json" in uploads.TRACE_SUFFIXES
    assert uploads.upload_file_name("conversations_hashed.JSON") == "conversations_hashed.json"


def test_a_conversation_file_upload_loads_as_sessions():
    d = Dashboard()
    upload(d, "conversations_hashed.json", conversations(40))
    assert not sidebar_errors(d), sidebar_errors(d)
    view = d.at.session_state["view"]
    assert view is not None
    trace = view.data
    assert trace.height == 120 and trace["session_id"].n_unique() == 40
    assert sorted(set(trace["turn_index"].to_list())) == [0, 1, 2]
    d.open("overview")
    assert "ov_rate" in d.figures()


def test_the_estimate_is_made_before_parsing_and_a_file_above_the_budget_is_refused(tmp_path, monkeypatch):
    body = conversations(2000)
    path = tmp_path / "c.json"
    path.write_bytes(body)
    estimate = trace_load_bytes(path, max_rows=10**6, max_columns=256)
    assert estimate > 2 * len(body)  # the parsed objects, not only the bytes
    monkeypatch.setenv(SERVER_BUDGET_ENV, str(estimate / 2 / 2**20))  # half the estimate: never fits
    d = Dashboard()
    upload(d, "big.json", body)
    errors = sidebar_errors(d)
    assert len(errors) == 1, errors
    assert SERVER_BUDGET_ENV in errors[0] and "MB" in errors[0], errors[0]
    assert d.at.session_state["view"] is None
    monkeypatch.delenv(SERVER_BUDGET_ENV)
    d.at.run()  # the refusal held nothing: with the budget back the same upload loads
    assert not sidebar_errors(d) and d.at.session_state["view"].data.height == 6000
    d.open("overview")
    assert "ov_rate" in d.figures()


def test_a_file_of_more_turns_than_the_upload_budget_is_refused_unparsed(monkeypatch):
    monkeypatch.setenv("SERVEGEN_MAX_ROWS", "100")
    d = Dashboard()
    upload(d, "many.json", conversations(50))  # 150 turns
    errors = sidebar_errors(d)
    assert len(errors) == 1, errors
    assert "150 turns (counted before parsing)" in errors[0] and "100 turns" in errors[0], errors[0]
    assert d.at.session_state["view"] is None
    still_serves(d)  # the limit still in force: every page asks for a source, the demo loads


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("nested.json", b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        ("dup.json", b'[[{"turn": 1, "timestamp": 0, "timestamp": 5, "input_token_count": 3, "output_token_count": 1}]]',
         "names the key 'timestamp' twice"),
        ("notjson.json", b"[[{\"turn\": 1,", "not a JSON document"),
        ("constant.json", b'[[{"turn": 1, "timestamp": NaN, "input_token_count": 3, "output_token_count": 1}]]', "NaN"),
    ],
)
def test_hostile_json_uploads_are_refused_with_one_error_and_the_app_still_serves(name, body, expected):
    d = Dashboard()
    upload(d, name, body)
    errors = sidebar_errors(d)
    assert len(errors) == 1, errors
    assert expected in errors[0] and name in errors[0], errors[0]
    assert "Traceback" not in errors[0] and len(errors[0]) < 600, errors[0]
    assert d.at.session_state["view"] is None
    still_serves(d)


def test_the_upload_folder_holds_the_json_file_under_its_safe_name():
    d = Dashboard()
    upload(d, "../../conv x.json", conversations(5))
    assert not sidebar_errors(d)
    assert [plain(c.value) for c in d.at.sidebar.caption if "conversation file" in c.value]
