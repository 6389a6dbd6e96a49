"""Hostile corpus, issue 22 item 1: a spec pasted on Preview -> Compare with names a source
outside the data roots. It is refused with the one message (the same for a file that exists
and one that does not), nothing is read or charted, and the app still serves afterwards.
"""

from __future__ import annotations

import shutil

import pytest
from _dash import Dashboard, plain

from servegen_core.paths import DATA_ROOTS_ENV, demo_data_dir
from servegen_core.spec import ServeGenSource, Span, TraceSource, WorkloadSpec

HEADER = "timestamp_s,client_id,input_tokens,output_tokens\n"


def pasted_spec(source: dict) -> str:
    """A valid spec.json with this source (the rest as a template gives it)."""
    kind = source.pop("kind")
    made = TraceSource(**source) if kind == "trace" else ServeGenSource(**source)
    return WorkloadSpec(source=made, span=Span(0, 600), seed=1).to_json()


def compare_with(d: Dashboard, text: str) -> list[str]:
    d.at.radio(key="pv_compare").set_value("pasted").run()
    d.at.text_area(key="pv_other_text").input(text).run()
    assert not d.at.exception, [e.value for e in d.at.exception]
    return [plain(e.value) for e in d.at.error]


def still_answers(d: Dashboard) -> None:
    """After the refusal the page keeps working: comparing with the naive baseline charts both."""
    d.at.radio(key="pv_compare").set_value("naive").run()
    d.check()
    assert {"pv_real_arrivals", "pv_naive_arrivals"} <= set(d.figures())
    d.open("overview")
    assert "ov_rate" in d.figures()


@pytest.fixture
def confined(tmp_path, monkeypatch):
    """Data roots = one folder under tmp_path; an ``outside`` folder beside it with a trace and a ServeGen copy."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text(HEADER + "".join(f"{i},a,{10 + i},5\n" for i in range(200)))
    shutil.copytree(demo_data_dir() / "servegen", outside / "servegen")
    (root / "link.csv").symlink_to(outside / "secret.csv")
    monkeypatch.setenv(DATA_ROOTS_ENV, str(root))
    return root, outside


def test_a_pasted_spec_outside_the_roots_is_refused_with_one_message(confined):
    root, outside = confined
    d = Dashboard().open("compose").open("preview")
    cases = {
        "existing trace": {"kind": "trace", "path": str(outside / "secret.csv"), "preset": "servegen"},
        "missing trace": {"kind": "trace", "path": str(outside / "missing.csv"), "preset": "servegen"},
        "relative ..": {"kind": "trace", "path": "../outside/secret.csv", "preset": "servegen"},
        "link out": {"kind": "trace", "path": str(root / "link.csv"), "preset": "servegen"},
        "system file": {"kind": "trace", "path": "/etc/passwd"},
        "servegen folder": {"kind": "servegen", "data_dir": str(outside / "servegen"), "model": "language/demo-chat"},
        "missing folder": {"kind": "servegen", "data_dir": str(outside / "nothing"), "model": "language/demo-chat"},
        "model climbs out": {"kind": "servegen", "data_dir": "demo", "model": "../.."},
    }
    for name, source in cases.items():
        errors = compare_with(d, pasted_spec(dict(source)))
        assert len(errors) == 1, (name, errors)
        assert errors[0].startswith("refused: ") and "is outside the data folders this dashboard may read" in errors[0], (name, errors)
        assert str(root.resolve()) in errors[0] and DATA_ROOTS_ENV in errors[0], errors[0]
        assert "not found" not in errors[0] and "unknown" not in errors[0], errors[0]
        assert "pv_naive_arrivals" not in d.figures(), name  # nothing composed or charted
    # existence is never revealed: a file that exists and one that does not read the same
    existing = compare_with(d, pasted_spec(dict(cases["existing trace"])))[0]
    missing = compare_with(d, pasted_spec(dict(cases["missing trace"])))[0]
    assert existing.replace("secret.csv", "X") == missing.replace("missing.csv", "X")
    still_answers(d)


def test_a_pasted_spec_inside_the_roots_is_compared(confined):
    root, _ = confined
    (root / "inside.csv").write_text(HEADER + "".join(f"{i * 3},a,{10 + i},5\n" for i in range(300)))
    d = Dashboard().open("compose").open("preview")
    errors = compare_with(d, pasted_spec({"kind": "trace", "path": "inside.csv", "preset": "servegen"}))
    assert not errors, errors
    assert {"pv_real_arrivals", "pv_naive_arrivals"} <= set(d.figures())
    # the demo data are readable whatever the roots
    errors = compare_with(d, pasted_spec({"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"}))
    assert not errors, errors
