"""The prefix section on the Compose page (widgets and the fit), Export's columns and replay command, Preview's reuse."""

from __future__ import annotations

import json

import pytest
from _dash import Dashboard

from servegen_core.generate.sessions import fit_prefix
from servegen_core.spec import PrefixProfile, PrefixSpec, Sessions, SystemPrompts, WorkloadSpec
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def mooncake_path(traces_dir):
    return traces_dir / "mooncake_synthetic_trace.jsonl"


def spec_json_on_export(d: Dashboard) -> WorkloadSpec:
    """The spec as the Export page shows its JSON (what the CLI takes), parsed back."""
    d.open("export")
    texts = [c.value for c in d.at.code if c.language == "json"]
    assert texts, "no spec JSON on the Export page"
    return WorkloadSpec.from_json(texts[0])


def test_prefix_widgets_set_the_spec_section_the_cli_reads():
    d = Dashboard().open("compose")
    assert d.at.session_state["spec"].prefix is None  # off by default
    d.at.toggle(key="cmp_px_on").set_value(True).run()
    d.check()
    d.at.number_input(key="cmp_px_sp_count").set_value(25).run()
    d.at.number_input(key="cmp_px_sp_share").set_value(0.7).run()
    d.at.number_input(key="cmp_px_sp_tokens").set_value(1500).run()
    d.at.radio(key="cmp_px_ss_kind").set_value("pmf").run()
    d.at.text_input(key="cmp_px_ss_pmf").input("1: 0.6, 2: 0.3, 4: 0.1").run()
    d.at.number_input(key="cmp_px_ss_think").set_value(42.5).run()
    d.at.number_input(key="cmp_px_ss_cv").set_value(1.5).run()
    d.check()
    want = PrefixSpec(
        default=PrefixProfile(
            system_prompts=SystemPrompts(count=25, request_share=0.7, tokens=1500),
            sessions=Sessions(turns_kind="pmf", turns_pmf=((1, 0.6), (2, 0.3), (4, 0.1)), think_mean_s=42.5, think_cv=1.5),
        )
    )
    assert d.at.session_state["spec"].prefix == want
    shown = spec_json_on_export(d)
    assert shown.prefix == want
    raw = json.loads(shown.to_json())["prefix"]["default"]
    assert raw["system_prompts"]["count"] == 25 and raw["sessions"]["turns"] == {"kind": "pmf", "pmf": [[1, 0.6], [2, 0.3], [4, 0.1]]}


def test_prefix_sessions_off_and_a_bad_pmf_is_refused_with_its_place():
    d = Dashboard().open("compose")
    d.at.toggle(key="cmp_px_on").set_value(True).run()
    d.at.checkbox(key="cmp_px_ss_on").set_value(False).run()
    d.check()
    assert d.at.session_state["spec"].prefix.default == PrefixProfile(system_prompts=SystemPrompts(), sessions=None)
    d.at.checkbox(key="cmp_px_ss_on").set_value(True).run()
    d.at.radio(key="cmp_px_ss_kind").set_value("pmf").run()
    d.at.text_input(key="cmp_px_ss_pmf").input("1: 0.5, two: 0.5").run()
    assert not d.at.exception
    assert any("item 2" in e for e in d.errors()), d.errors()


def test_fit_from_the_mooncake_trace_fills_the_fitted_values(mooncake_path):
    d = Dashboard().trace(mooncake_path).open("compose")
    assert d.at.session_state["spec"].prefix is None
    d.at.button(key="cmp_px_fit").click().run()
    d.check()
    fitted = fit_prefix(load_trace(mooncake_path).trace, block_size=512)
    assert fitted.default.system_prompts is not None  # the trace shares prompts: the check below means something
    assert d.at.toggle(key="cmp_px_on").value is True
    assert d.at.session_state["spec"].prefix == fitted
    assert spec_json_on_export(d).prefix == fitted


def test_an_imported_prefix_section_sets_the_widgets_and_survives_edits():
    d = Dashboard().open("compose")
    base = d.at.session_state["spec"]
    prefix = PrefixSpec(
        default=PrefixProfile(
            system_prompts=SystemPrompts(count=7, request_share=0.4, tokens="input", unique_tokens=30, min_quantile=0.2),
            sessions=Sessions(turns_mean=2.5, max_turns=9, think_mean_s=30.0, think_cv=0.5),
        ),
        clients=(("7", PrefixProfile(sessions=Sessions(turns_mean=4.0))),),
    )
    spec = WorkloadSpec.from_json(json.dumps({**json.loads(base.to_json()), "prefix": prefix.to_dict()}))
    d.at.text_area(key="cmp_import_text").input(spec.to_json()).run()
    d.at.button(key="cmp_import").click().run()
    d.check()
    assert d.at.session_state["spec"].prefix == prefix
    assert d.at.number_input(key="cmp_px_sp_count").value == 7
    assert d.at.radio(key="cmp_px_sp_tokens_kind").value == "input"
    assert not any("Kept from the restored spec" in c for c in d.captions())  # the page edits it
    d.at.number_input(key="cmp_px_ss_think").set_value(60.0).run()
    d.check()
    got = d.at.session_state["spec"].prefix
    assert got.default.sessions.think_mean_s == 60.0 and got.default.system_prompts == prefix.default.system_prompts
    assert got.clients == prefix.clients  # per-client profiles kept
    # importing the same spec again restores its values over the edit
    d.at.text_area(key="cmp_import_text").input(spec.to_json() + " ").run()
    d.at.button(key="cmp_import").click().run()
    d.check()
    assert d.at.session_state["spec"].prefix == prefix
    d.at.number_input(key="cmp_px_ss_think").set_value(60.0).run()
    # importing a spec without a prefix section turns the section off
    d.at.text_area(key="cmp_import_text").input(base.to_json()).run()
    d.at.button(key="cmp_import").click().run()
    d.check()
    assert d.at.session_state["spec"] == base
    assert d.at.toggle(key="cmp_px_on").value is False
    # undo brings the prefix section back, as it was imported
    d.at.button(key="cmp_undo").click().run()
    d.check()
    assert d.at.session_state["spec"].prefix.default.sessions.think_mean_s == 60.0


def test_export_page_names_only_the_columns_the_mooncake_export_drops(mooncake_path, tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.sources.load import load_source
    from servegen_core.export.formats import usage_hint
    from servegen_core.export.writer import export_trace

    d = Dashboard().trace(mooncake_path).open("compose")
    d.at.toggle(key="cmp_px_on").set_value(True).run()
    d.at.number_input(key="cmp_px_ss_mean").set_value(3.0).run()
    d.check().open("export")
    spec = d.at.session_state["spec"]
    assert spec.prefix.default.sessions is not None
    trace = compose(spec, pool=load_source(spec)).trace
    assert {"session_id", "turn_index", "segment_ids"} <= set(trace.columns)
    written = {}
    for fmt in ("mooncake", "vllm"):
        d.at.selectbox(key="ex_format").select(fmt).run()
        d.check()
        result = export_trace(trace, tmp_path / f"{fmt}.jsonl", fmt, note=None)
        written[fmt] = result
        note = next(c for c in d.captions() if c.startswith("The file is written when you click"))
        shown = note.split("are left out: ")[1].rstrip(".").split(", ") if "are left out: " in note else []
        assert shown == list(result.dropped_columns), (fmt, note)
        assert any(c.startswith("Replay (fill <MODEL>, <URL>, <TOKENIZER>") for c in d.captions())
        assert usage_hint(fmt, "workload.jsonl", result.block_size) in [c.value for c in d.at.code]
    assert not {"session_id", "turn_index", "segment_ids", "segment_tokens"} & set(written["mooncake"].dropped_columns)
    assert {"session_id", "turn_index"} <= set(written["vllm"].dropped_columns)


def test_preview_shows_the_generated_workloads_reuse_and_lru_curve(mooncake_path):
    import numpy as np
    from _dash import horizontal_lines, title, values

    from servegen_core.characterize import prefix
    from servegen_core.generate.compose import compose
    from servegen_core.sources.load import load_source

    d = Dashboard().trace(mooncake_path).open("compose")
    d.at.button(key="cmp_px_fit").click().run()  # prompts fitted to the trace: the workload reuses blocks
    d.check().open("preview")
    spec = d.at.session_state["spec"]
    assert spec.prefix is not None
    trace = compose(spec, pool=load_source(spec)).trace
    reuse = prefix.block_reuse(prefix.with_block_ids(trace, block_tokens=512))
    curve = prefix.lru_hit_ratio(prefix.with_block_ids(trace, block_tokens=512), block_tokens=512)
    assert reuse.reuse_ratio > 0.1  # a real reuse figure, not an empty one
    metrics = {m.label: m.value for m in d.at.metric}
    assert metrics["Block reuse"] == f"{reuse.reuse_ratio:.1%}"
    assert metrics["Block accesses"] == f"{reuse.blocks:,}"
    lru = d.figure("pv_lru")
    assert title(lru) == "Prefix-cache hit ratio vs cache size (LRU)"
    np.testing.assert_array_equal(values(lru["data"][0], "x"), curve.frame["capacity_blocks"].to_numpy())
    np.testing.assert_allclose(values(lru["data"][0], "y"), curve.frame["hit_ratio"].to_numpy() * 100)
    assert horizontal_lines(lru) == [pytest.approx(curve.max_hit_ratio * 100)]
    # beside it, the source's own reuse over the spec's span (the whole 1023 s trace here, one client)
    source = load_trace(mooncake_path).trace
    assert trace["timestamp_s"].max() > 900 and source["client_id"].n_unique() == 1
    span_end = spec.span.start_s + spec.span.duration_s
    cut = source.filter((source["timestamp_s"] >= spec.span.start_s) & (source["timestamp_s"] < span_end))
    assert metrics["Source block reuse (same span and clients)"] == f"{prefix.block_reuse(cut).reuse_ratio:.1%}"
    # the source's and the workload's LRU curves at every compared cache size (compare_reuse)
    cmp = prefix.compare_reuse(cut, trace)
    both = d.figure("pv_lru_compare")
    assert title(both) == "LRU prefix-cache hit ratio: source vs generated"
    assert both["layout"]["xaxis"]["type"] == "log" and "blocks of 512 tokens" in both["layout"]["xaxis"]["title"]["text"]
    named = {t["name"]: t for t in both["data"] if t.get("name") in ("source trace", "generated workload")}
    np.testing.assert_array_equal(values(named["source trace"], "x"), cmp.frame["capacity_blocks"].to_numpy())
    np.testing.assert_allclose(values(named["source trace"], "y"), cmp.frame["source"].to_numpy() * 100)
    np.testing.assert_allclose(values(named["generated workload"], "y"), cmp.frame["generated"].to_numpy() * 100)
    assert any(f"{cmp.frame.height} sizes within" in c for c in d.captions())


def test_preview_without_a_prefix_section_has_no_reuse_figure():
    d = Dashboard().open("compose").open("preview")
    assert d.at.session_state["spec"].prefix is None
    assert "pv_lru" not in d.figures()
    assert "Block reuse" not in {m.label for m in d.at.metric}


def test_the_prefix_settings_survive_a_visit_to_another_page():
    d = Dashboard().open("compose")
    d.at.toggle(key="cmp_px_on").set_value(True).run()
    d.at.number_input(key="cmp_px_sp_count").set_value(33).run()
    d.at.number_input(key="cmp_px_ss_think").set_value(12.0).run()
    d.check()
    before = d.at.session_state["spec"]
    assert before.prefix.default.system_prompts.count == 33
    d.open("overview").open("compose")
    assert d.at.session_state["spec"] == before
