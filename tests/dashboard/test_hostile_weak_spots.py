"""Hostile corpus, issue 22 item 5, through the dashboard's doors: each case is one clear, short error
on the page, nothing is taken from the hostile input, and the app still answers afterwards.

Doors: the Compose page's spec import (pasted spec.json: duplicate keys, a NUL byte in
``source.path``, a 900,000-character model name, control and bidi characters), and the
Provisioning page's calibration upload (negative TTFT, 1e200, an Excel export with a UTF-8 BOM and
CRLF line ends, 2.1M tiny rows). The same files on the command line: tests/test_spec_strict.py and
tests/serve/test_calibration_roundtrip.py.
"""

from __future__ import annotations

import json

import pytest
from _dash import Dashboard, plain

from servegen_core.spec import ServeGenSource, Span, WorkloadSpec

GOOD_CSV = b"prefill_tokens,decode_seqs,context_tokens,time_ms\n0,1,1000,14.5\n0,32,40000,21.0\n2048,0,0,150.0\n"


def _spec_text() -> str:
    return WorkloadSpec(source=ServeGenSource("demo", "language/demo-chat"), span=Span(36000, 600), seed=3).to_json()


def import_spec(d: Dashboard, text: str) -> list[str]:
    d.at.text_area(key="cmp_import_text").input(text).run()
    d.at.button(key="cmp_import").click().run()
    assert not d.at.exception, [e.value for e in d.at.exception]
    return [plain(e.value) for e in d.at.error]


def compose_still_answers(d: Dashboard, before: WorkloadSpec) -> None:
    """The refused import left the spec as it was, and a good import is taken at once."""
    assert d.at.session_state["spec"] == before
    good = json.loads(_spec_text())
    good["seed"] = 17
    assert not import_spec(d, json.dumps(good))
    assert d.at.session_state["spec"].seed == 17
    d.open("preview")
    d.check()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("duplicate", "appears more than once"),
        ("nul", "NUL"),
        ("long_model", "..."),
    ],
)
def test_a_hostile_pasted_spec_is_one_short_error_and_the_page_still_answers(case, expected):
    text = _spec_text()
    if case == "duplicate":
        text = text.replace('"seed": 3', '"seed": 3, "seed": 4')
    elif case == "nul":
        data = json.loads(text)
        data["source"] = {"kind": "trace", "path": "a\u0000b.csv"}
        text = json.dumps(data)
    else:
        data = json.loads(text)
        data["source"]["model"] = "m" * 900_000
        text = json.dumps(data)
    d = Dashboard().open("compose")
    before = d.at.session_state["spec"]
    errors = import_spec(d, text)
    assert len(errors) == 1, errors
    assert expected in errors[0], errors[0]
    assert len(errors[0]) < 1_000, len(errors[0])  # quoted input is capped
    assert not any(ch in errors[0] for ch in ("\u202e", "\u2028", "\x1b", "\x00")), repr(errors[0])
    compose_still_answers(d, before)


RAW = ("\u202e", "\u2028", "\x1b", "\x00")


def test_control_and_bidi_characters_in_an_imported_spec_are_shown_escaped():
    data = json.loads(_spec_text())
    data["clients"] = {"mode": "ids", "ids": ["evil\u202eid\u2028x\x1b[31m"]}
    data["source"]["model"] = "language/\u202edemo\x1b[2J"
    d = Dashboard().open("compose")
    before = d.at.session_state["spec"]
    import_spec(d, json.dumps(data))
    shown = [plain(e.value) for kind in ("error", "warning", "success", "info", "caption", "markdown") for e in getattr(d.at, kind)]
    assert any("\\u202e" in t for t in shown), shown  # the bidi override is named, escaped
    assert not any(ch in t for t in shown for ch in RAW), [t for t in shown if any(ch in t for ch in RAW)]
    d.open("preview")
    assert not d.at.exception
    shown = [plain(e.value) for kind in ("error", "warning", "info", "caption", "markdown") for e in getattr(d.at, kind)]
    assert not any(ch in t for t in shown for ch in RAW)
    d.open("compose")
    compose_still_answers(d, d.at.session_state["spec"]) if d.at.session_state["spec"] != before else None


def calibration_upload(d: Dashboard, name: str, body: bytes) -> list[str]:
    d.at.radio(key="prov_cal_how").set_value("Upload").run()
    d.at.file_uploader(key="prov_cal_upload").upload(name, body).run()
    assert not d.at.exception, [e.value for e in d.at.exception]
    return [plain(e.value) for e in d.at.error]


def _vllm(**override: float) -> bytes:
    data = {
        "request_rate": 4.0, "max_concurrency": None, "completed": 100, "request_throughput": 4.0, "total_input_tokens": 51200,
        "total_output_tokens": 12800, "mean_ttft_ms": 80.0, "mean_tpot_ms": 18.0, "mean_e2el_ms": 2400.0,
    }
    return json.dumps({**data, **override}).encode()


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("negative.json", _vllm(mean_ttft_ms=-80.0), "mean_ttft_ms"),
        ("negative_itl.json", _vllm(mean_tpot_ms=-1.0), "mean_tpot_ms"),
        ("huge.json", _vllm(mean_ttft_ms=1e200), "mean_ttft_ms"),
        ("huge.csv", b"prefill_tokens,decode_seqs,context_tokens,time_ms\n0,1,1000,14.5\n0,4,4000,1e200\n", "row 3, column time_ms"),
        ("neg.csv", b"prefill_tokens,decode_seqs,context_tokens,time_ms\n0,1,1000,14.5\n0,4,4000,-3\n", "row 3, column time_ms"),
        ("excel.csv", b"\xef\xbb\xbfprefill_tokens,decode_seqs,time_ms\r\n0,1,14.5\r\n", "missing column(s) context_tokens"),
        ("many.csv", b"prefill_tokens,decode_seqs,context_tokens,time_ms\n" + b"0,1,1,1\n" * 2_090_000, "more than 100,000 rows"),
    ],
)
def test_a_hostile_calibration_upload_is_one_error_and_the_page_still_answers(traces_dir, name, body, expected):
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").open("provisioning")
    d.at.radio(key="prov_cost").set_value("Calibrated (your benchmark results)").run()
    errors = calibration_upload(d, name, body)
    assert len(errors) == 1, errors
    assert expected in errors[0] and name in errors[0], errors[0]
    assert "internal error" not in errors[0] and "Traceback" not in errors[0] and len(errors[0]) < 1_000, errors[0]
    assert "prov_run" not in [b.key for b in d.at.button]  # nothing is simulated with it
    # the page still answers: an Excel export (BOM + CRLF) of a good file is read and can be simulated
    errors = calibration_upload(d, "good excel.csv", b"\xef\xbb\xbf" + GOOD_CSV.replace(b"\n", b"\r\n"))
    assert not errors, errors
    assert any("good excel.csv" in c for c in d.captions())
    assert "prov_run" in [b.key for b in d.at.button]
