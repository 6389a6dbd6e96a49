"""The Preview page's fidelity scorecard: off until asked, then the core's lines for the spec."""

from __future__ import annotations

from _dash import Dashboard

from servegen_core.generate.fidelity import spec_fidelity


def test_fidelity_scorecard_of_the_demo_trace_shows_the_core_lines(demo_dir):
    d = Dashboard().demo("traces/demo_requests.csv").open("compose")
    spec = d.at.session_state["spec"]
    d.open("preview")
    # off until asked: no scorecard table before the button
    assert not [f for f in d.at.dataframe if f.key == "pv_fidelity"]
    d.at.button(key="pv_fidelity_run").click().run()
    d.check()
    expected = spec_fidelity(spec)
    assert expected.reference == "trace" and expected.report.lines
    card = d.table("name", "verdict", "target")
    assert card["name"].tolist() == [ln.name for ln in expected.report.lines]
    assert card["verdict"].tolist() == [ln.verdict for ln in expected.report.lines]
    assert card["target"].tolist() == [ln.target for ln in expected.report.lines]
    assert card["source_value"].tolist()[0] == expected.report.line("requests").source_value
    captions = d.captions()
    assert any(expected.source_text in c for c in captions), captions
    assert all(any(note in c for c in captions) for note in expected.report.notes)
    verdict = [m.value for m in (*d.at.success, *d.at.warning) if "passed" in m.value or "Failed" in m.value]
    assert verdict, "no verdict message"
    # it stays on across reruns of the same spec
    d.run()
    assert d.table("name", "verdict")["name"].tolist() == card["name"].tolist()


def test_fidelity_scorecard_of_a_demo_pool_is_against_the_model():
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("preview")
    d.at.button(key="pv_fidelity_run").click().run()
    d.check()
    expected = spec_fidelity(spec)
    card = d.table("name", "verdict", "target")
    assert card["name"].tolist() == [ln.name for ln in expected.report.lines]
    assert all(n.endswith("_vs_model") for n in card["name"])
    assert any("second draw" in c for c in d.captions())
