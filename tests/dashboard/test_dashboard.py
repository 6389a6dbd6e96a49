"""The Streamlit app through AppTest: every page on demo and real data, the composer, exports, errors.

Figures are read back from the page (``at.get("plotly_chart")``, keyed by widget key) and
compared with the core functions computed here on the same data.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from _dash import PAGES, Dashboard, horizontal_lines, plain, title, trace_names, values, vertical_lines

from servegen_core.characterize import arrivals, rates
from servegen_core.cli import main as cli_main
from servegen_core.generate.compose import compose, plan_workload
from servegen_core.sources.demo import DEMO_LABEL
from servegen_core.paths import demo_data_dir
from servegen_core.sources.pool import client_sort_key, expected_requests, load_pool
from servegen_core.spec import ClientSelection, ConstantRate, ServeGenSource, Span, TraceSource, Weights, WorkloadSpec
from servegen_core.characterize.summary import client_summary, filter_clients
from servegen_core.sources.traces import load_trace
from servegen_core.generate.validate import validate

DEMO_POOLS = ("language/demo-chat", "multimodal/demo-vl", "reason/demo-r1")
SHARED_POOLS = ("language/m-large", "multimodal/mm-image", "reason/deepseek-r1")


def selected(d: Dashboard, label: str):
    """The value of the (main-area) selectbox with this label."""
    boxes = [s for s in d.at.selectbox if s.label == label]
    assert boxes, f"no selectbox {label!r}"
    return boxes[0].value


def check_pages(d: Dashboard, data, *, multimodal: bool, reasoning: bool, days: int, clients: int, trace: bool) -> None:
    """Open every page and check its charts against the core results on ``data``."""
    d.open("overview")
    res = selected(d, "Bin length")
    series = rates.rate_series(data, resolution_s=res).frame
    fig = d.figure("ov_rate")
    assert title(fig).startswith("Aggregate request rate")
    assert fig["layout"]["yaxis"]["title"]["text"] == "rate (requests/s)"
    np.testing.assert_allclose(values(fig["data"][0], "y"), series["rate_rps"].to_numpy())
    shares = rates.client_shares(data).frame
    top = d.figure("ov_top_clients")
    assert list(top["data"][0]["y"]) == [f"client {c}" for c in shares["client_id"].head(15)]

    d.open("burstiness")
    fig = d.figure("burst_cdf")
    assert vertical_lines(fig) == [1.0]
    assert trace_names(fig) == ["share of windows", "share of requests (rate-weighted)"]
    cdf = arrivals.cv_cdf(data).frame
    np.testing.assert_allclose(values(fig["data"][0], "x"), cdf["cv"].to_numpy())
    assert horizontal_lines(d.figure("burst_cv_rate")) == [1.0]
    names = trace_names(d.figure("burst_hist"))
    # pool data record each window's fitted distribution, not its gaps: the histogram says they are sampled
    gaps = "observed gaps" if trace else "gaps sampled from the fitted window distribution"
    assert names[0] == gaps and any(n.startswith("Gamma") for n in names)
    if trace:
        assert "burst_patterns" not in d.figures()
        assert any("no recorded arrival patterns" in i for i in d.infos())
    else:
        patterns = d.figure("burst_patterns")
        assert sum(values(patterns["data"][0], "y")) == pytest.approx(100)

    d.open("rate_shifts")
    stacked = d.figure("rs_stacked")
    assert len(stacked["data"]) == min(5, clients) + (1 if clients > 5 else 0)
    heat = d.figure("rs_heatmap")
    assert values(heat["data"][0], "z").shape[1] == 24
    if days >= 2:
        assert len(d.figure("rs_dod")["data"][0]["x"]) == days
    else:
        assert "rs_dod" not in d.figures()
        assert any("single day" in i for i in d.infos())
    if clients >= 2:
        assert title(d.figure("rs_lorenz")).startswith("Client concentration")

    d.open("lengths")
    figs = d.figures()
    expected = [f for f in ("input_tokens", "output_tokens") if f"len_dist_{f}" in figs]
    assert expected, sorted(figs)
    for f in expected:
        assert figs[f"len_dist_{f}"]["layout"]["xaxis"]["type"] == "log"
    assert any(c.startswith("Best fit for") for c in d.captions())

    d.open("multimodal")
    if multimodal:
        assert {"mm_shares", "mm_counts", "mm_tpi", "mm_time"} <= set(d.figures())
    else:
        assert not d.figures()
        assert any("no multimodal fields" in i for i in d.infos())

    d.open("reasoning")
    if reasoning:
        fig = d.figure("rs_ratio")
        assert len(vertical_lines(fig)) == 2
        assert {"rs_tokens", "rs_bimodality"} <= set(d.figures())
    else:
        assert not d.figures()
        assert any("no reasoning fields" in i for i in d.infos())

    d.open("clients")
    table = d.at.dataframe[0].value
    assert len(table) == clients

    d.open("compose")
    assert {"cmp_rate_chart", "cmp_weights_chart"} <= set(d.figures())
    spec = d.at.session_state["spec"]
    assert isinstance(spec, WorkloadSpec)

    d.open("preview")
    assert {"pv_arrivals", "pv_target", "pv_lengths"} <= set(d.figures())
    checks = d.table("name", "passed", "detail")
    assert {"total_requests", "rate_tracking", "client_share", "cv_ratio", "length_ks"} <= set(checks["name"])

    d.open("export")
    assert d.at.download_button(key="ex_download")
    assert any(c.value.startswith("servegen generate --spec spec.json --format") for c in d.at.code)


@pytest.mark.parametrize("model", DEMO_POOLS)
def test_every_page_on_the_demo_pools(model, demo_dir):
    d = Dashboard().demo(model)
    pool = load_pool(demo_dir / "servegen", model)
    days = pool.duration_s // 86400
    check_pages(
        d, pool, multimodal=model.startswith("multimodal"), reasoning=model.startswith("reason"),
        days=days, clients=len(pool.client_ids), trace=False,
    )


def test_every_page_on_the_demo_trace(demo_dir):
    d = Dashboard().demo("traces/demo_requests.csv")
    trace = load_trace(demo_dir / "traces" / "demo_requests.csv").trace
    check_pages(d, trace, multimodal=False, reasoning=False, days=1, clients=trace["client_id"].n_unique(), trace=True)


@pytest.mark.parametrize("model", SHARED_POOLS)
def test_every_page_on_shared_data(model, servegen_dir):
    d = Dashboard().servegen(model)
    pool = load_pool(servegen_dir, model)
    assert model in d.at.caption[0].value
    check_pages(
        d, pool, multimodal=model.startswith("multimodal"), reasoning=model.startswith("reason"),
        days=pool.duration_s // 86400, clients=len(pool.client_ids), trace=False,
    )
    # The spec names the shared data portably, so the CLI finds it on any machine that has it.
    assert d.at.session_state["spec"].source == ServeGenSource("shared", model)


def test_every_page_on_a_raw_trace(traces_dir):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    d = Dashboard().trace(path)
    trace = load_trace(path).trace
    assert "**Requests:** 19,366" in d.sidebar_text()
    assert any("preset 'azure'" in c.value for c in d.at.sidebar.caption)
    check_pages(d, trace, multimodal=False, reasoning=False, days=1, clients=1, trace=True)
    assert d.at.session_state["spec"].source == TraceSource(path=str(path.resolve()), preset="azure")
    # A trace also shows the per-request input/output correlation.
    d.open("lengths")
    d.at.radio(key="len_section").set_value("Input vs output").run()
    d.check()
    fig = d.figure("len_scatter")
    assert len(values(fig["data"][0], "x")) == trace.height
    assert any("Spearman" in c for c in d.captions())


# -- the shell ---------------------------------------------------------------------------------


def test_opens_on_the_synthetic_demo_labelled_as_such(demo_dir):
    d = Dashboard()
    assert d.at.sidebar.radio(key="src_kind").value == "demo"
    pool = load_pool(demo_dir / "servegen", d.at.sidebar.selectbox(key="src_demo").value)
    text = d.sidebar_text()
    assert f"**Clients:** {len(pool.client_ids)}" in text
    assert f"**Requests:** {expected_requests(pool):,.0f}" in text
    assert any(DEMO_LABEL in c.value.lower() for c in d.at.sidebar.caption)
    for page in PAGES:
        d.open(page)
        assert f"({DEMO_LABEL})" in d.at.caption[0].value, page


def test_shared_data_is_offered_with_a_model_picker(servegen_dir):
    d = Dashboard()
    assert "ServeGen data folder" in d.at.sidebar.radio(key="src_kind").options
    d.at.sidebar.radio(key="src_kind").set_value("servegen").run()
    assert d.at.sidebar.selectbox(key="src_folder").value == str(servegen_dir)
    models = d.at.sidebar.selectbox(key="src_model").options
    assert {"language/m-large", "multimodal/mm-image", "reason/deepseek-r1"} <= set(models)


def test_a_servegen_folder_is_offered_only_where_one_exists(tmp_path, monkeypatch, servegen_dir):
    monkeypatch.setenv("SERVEGEN_SHARED_DATA", str(tmp_path))
    d = Dashboard()
    assert d.at.sidebar.radio(key="src_kind").options == ["Demo (synthetic demo data)", "Raw request trace"]
    monkeypatch.setenv("SERVEGEN_DATA_DIR", str(servegen_dir))
    d.run()
    assert "ServeGen data folder" in d.at.sidebar.radio(key="src_kind").options


def test_time_span_restricts_every_page(demo_dir):
    d = Dashboard()
    slider = d.at.sidebar.select_slider[0]
    slider.set_value((43200.0, 86400.0)).run()
    d.check()
    assert "**Span:** 12.0 h" in d.sidebar_text()
    d.open("overview")
    x = values(d.figure("ov_rate")["data"][0], "x")
    assert x.min() >= 12 and x.max() < 24
    pool = load_pool(demo_dir / "servegen", "language/demo-chat").span(43200, 86400)
    assert f"**Requests:** {expected_requests(pool):,.0f}" in d.sidebar_text()


def test_state_survives_page_switches():
    d = Dashboard().demo("reason/demo-r1")
    d.open("compose")
    d.at.number_input(key="cmp_seed").set_value(7).run()
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.check()
    d.open("overview").open("burstiness").open("compose")
    assert d.at.sidebar.selectbox(key="src_demo").value == "reason/demo-r1"
    assert d.at.number_input(key="cmp_seed").value == 7
    assert d.at.selectbox(key="cmp_rate_kind").value == "constant"
    assert d.at.session_state["spec"].seed == 7


def test_core_errors_are_shown_as_messages(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_s,client_id,input_tokens,output_tokens\n0.5,a,10,5\n1.0,a,ten,5\n")
    d = Dashboard()
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.text_input(key="src_trace_path").input(str(bad)).run()
    assert not d.at.exception
    errors = [e.value for e in d.at.sidebar.error]
    assert len(errors) == 1 and "bad.csv" in errors[0] and "line 3" in errors[0]
    d.at.switch_page("views/overview.py").run()
    assert not d.at.exception
    assert any("Choose a data source" in i for i in d.infos())
    d.at.sidebar.text_input(key="src_trace_path").input(str(tmp_path / "missing.csv")).run()
    assert not d.at.exception
    assert "trace file not found" in d.at.sidebar.error[0].value


def test_generic_preset_with_a_column_mapping(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("when_ms,prompt,completion,user\n0,100,20,u1\n1500,50,10,u2\n3000,70,30,u1\n")
    d = Dashboard()
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.text_input(key="src_trace_path").input(str(path)).run()
    d.at.sidebar.selectbox(key="src_preset").select("generic").run()
    # the mapping offers the file's columns, nothing chosen yet
    for target in ("timestamp", "input_tokens", "output_tokens"):
        box = d.at.sidebar.selectbox(key=f"src_map_{target}")
        assert box.options == ["when_ms", "prompt", "completion", "user"] and box.value is None
    assert d.at.sidebar.selectbox(key="src_client_col").options == ["(none)", "when_ms", "prompt", "completion", "user"]
    assert "**Requests:**" not in d.sidebar_text()
    for target, column in (("timestamp", "when_ms"), ("input_tokens", "prompt"), ("output_tokens", "completion")):
        d.at.sidebar.selectbox(key=f"src_map_{target}").select(column).run()
    d.at.sidebar.selectbox(key="src_time_unit").select("ms").run()
    d.at.sidebar.selectbox(key="src_client_col").select("user").run()
    d.check()
    assert "**Clients:** 2" in d.sidebar_text() and "**Requests:** 3" in d.sidebar_text()
    assert "**Span:** 3.0 s" in d.sidebar_text()


def test_a_custom_mapped_trace_is_composed_with_its_mapping(tmp_path, traces_dir):
    # the Azure trace under other column names, with a client column, read with the generic preset
    raw = pl.read_csv(traces_dir / "AzureLLMInferenceTrace_conv.csv", infer_schema=False)
    users = np.where(np.arange(raw.height) % 4 == 0, "team-a", "team-b")
    mine = raw.rename({"TIMESTAMP": "when", "ContextTokens": "prompt", "GeneratedTokens": "completion"})
    path = tmp_path / "mine.csv"
    mine.with_columns(pl.Series("team", users)).write_csv(path)
    d = Dashboard()
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.text_input(key="src_trace_path").input(str(path)).run()
    d.at.sidebar.selectbox(key="src_preset").select("generic").run()
    for target, column in (("timestamp", "when"), ("input_tokens", "prompt"), ("output_tokens", "completion")):
        d.at.sidebar.selectbox(key=f"src_map_{target}").select(column).run()
    d.at.sidebar.selectbox(key="src_time_unit").select("datetime").run()
    d.at.sidebar.selectbox(key="src_client_col").select("team").run()
    d.check()
    d.open("compose")
    assert not [w.value for w in d.at.warning if "cannot be composed" in w.value]
    spec = d.at.session_state["spec"]
    assert spec.source == TraceSource(
        path=str(path.resolve()),
        preset="generic",
        columns={"timestamp": "when", "input_tokens": "prompt", "output_tokens": "completion"},
        time_unit="datetime",
        client_column="team",
    )
    # the page's plan is the core's plan of the same spec: both clients, the same expected requests
    made = compose(spec)
    assert set(made.clients) == {"team-a", "team-b"}
    assert d.at.metric[0].value == f"about {made.plan.expected_requests:,.0f}"
    assert d.at.metric[1].value == "2"
    # the exported spec JSON carries the mapping and reads back to the same spec
    d.open("export")
    text = next(c.value for c in d.at.code if c.value.lstrip().startswith("{"))
    assert WorkloadSpec.from_json(text) == spec
    assert json.loads(text)["source"]["columns"] == {"timestamp": "when", "input_tokens": "prompt", "output_tokens": "completion"}


def test_a_header_that_does_not_read_is_shown_in_the_sidebar(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n[1, 2, 3]\n")
    d = Dashboard()
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.text_input(key="src_trace_path").input(str(path)).run()
    assert not d.at.exception
    errors = [e.value for e in d.at.sidebar.error]
    assert len(errors) == 1 and "bad.jsonl" in errors[0] and "line 2" in errors[0]


def test_uploads_above_the_limit_are_refused(monkeypatch, traces_dir):
    monkeypatch.setenv("SERVEGEN_MAX_UPLOAD_MB", "1")
    content = (traces_dir / "mooncake_synthetic_trace.jsonl").read_bytes()
    assert len(content) > 1024 * 1024
    d = Dashboard()
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.radio(key="src_trace_how").set_value("Upload").run()
    assert d.at.sidebar.file_uploader(key="src_upload").label == "Upload a trace (up to 1 MB)"
    d.at.sidebar.file_uploader(key="src_upload").upload("mooncake.jsonl", content).run()
    assert not d.at.exception
    assert "above the 1 MB upload limit" in d.at.sidebar.error[0].value
    small = b"".join(content.splitlines(keepends=True)[:2000])
    d.at.sidebar.file_uploader(key="src_upload").set_value(("mooncake_head.jsonl", small, "application/json")).run()
    d.check()
    assert "**Requests:** 2,000" in d.sidebar_text()
    assert any("preset 'mooncake'" in c.value for c in d.at.sidebar.caption)


# -- the composer, preview and export ---------------------------------------------------------


def test_clients_selection_feeds_the_composer(demo_dir):
    d = Dashboard().open("clients")
    d.at.number_input(key="cl_top_k").set_value(3).run()
    d.at.button(key="cl_use_filtered").click().run()
    d.check()
    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    top3 = filter_clients(client_summary(pool), top_k=3)
    assert len(d.at.dataframe[0].value) == 3
    d.open("compose")
    d.at.radio(key="cmp_mode").set_value("selection").run()
    d.check()
    spec = d.at.session_state["spec"]
    # the selection is a set of client ids, kept in numeric id order
    assert spec.clients.mode == "ids" and list(spec.clients.ids) == sorted(top3, key=client_sort_key)


def test_clients_filter_is_carried_into_the_spec_when_the_spans_match(servegen_dir, m_large):
    d = Dashboard().servegen("language/m-large")
    d.at.sidebar.select_slider[0].set_value((72000.0, 75600.0)).run()  # day 0, 20:00-21:00
    d.open("clients")
    d.at.multiselect(key="cl_filter_columns").set_value(["request_share"]).run()
    d.at.number_input(key="cl_lo_request_share").set_value(0.01).run()
    d.at.number_input(key="cl_top_k").set_value(8).run()
    d.check()
    pool = m_large
    expected = filter_clients(client_summary(pool.span(72000, 75600)), ranges={"request_share": (0.01, None)}, top_k=8)
    assert d.at.dataframe[0].value["client_id"].tolist() == expected
    d.at.button(key="cl_use_filtered").click().run()
    d.open("compose")
    d.at.radio(key="cmp_mode").set_value("selection").run()
    d.check()
    spec = d.at.session_state["spec"]
    assert spec.span == Span(72000, 3600.0)
    assert spec.clients == ClientSelection("filter", ranges=(("request_share", 0.01, None),), top_k=8, by="request_share")
    assert spec.to_dict()["clients"] == {"mode": "filter", "ranges": {"request_share": [0.01, None]}, "top_k": 8, "by": "request_share"}
    assert any("The spec carries the Clients page's filter (request_share ≥ 0.01; top 8 by request_share)" in c for c in d.captions())
    # the carried rule picks, over the workload's span, the clients the Clients page showed
    plan = plan_workload(spec, pool=pool)
    # (clients without length data borrow lengths by default, so every one of them is composed)
    assert set(plan.clients) == set(expected)
    assert d.at.metric[1].value == str(len(plan.clients))
    # another workload span: the clients stay the ids the page showed, and a caption says why
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=duration_key).set_value(30.0).run()
    d.check()
    spec = d.at.session_state["spec"]
    assert spec.clients.mode == "ids" and set(spec.clients.ids) == set(expected)
    (note,) = [c for c in d.captions() if c.startswith("Kept as a list of client ids")]
    assert "ranked the clients over day 1 20:00 – day 1 21:00, the workload spans day 1 20:00 – day 1 20:30" in note
    assert "over another span the same filter can pick other clients" in note


EXCLUSION_LABELS = {"not_selected": "not selected", "weight_zero": "with weight 0", "idle": "idle in the span", "no_lengths": "without length data"}


def check_exclusion_caption(d: Dashboard, plan) -> str:
    """The caption under "Clients composed" counts and names the plan's excluded clients by reason."""
    (note,) = [c for c in d.captions() if "clients of the span are composed" in c or "not composed:" in c]
    total = len(plan.clients) + sum(len(v) for v in plan.exclusions.values())
    assert note.startswith(f"Of {total:,} clients in the span, not composed:")
    for reason, label in EXCLUSION_LABELS.items():
        n = len(plan.exclusions[reason])
        assert (f"{n} {label} (" in note) == (n > 0), reason
    assert d.at.metric[1].value == str(len(plan.clients))
    return note


def test_composer_says_why_clients_are_not_composed(servegen_dir, demo_dir, m_large):
    # demo, all clients, first hour: by default the clients without length data borrow lengths
    d = Dashboard().open("compose")
    d.check()
    demo = load_pool(demo_dir / "servegen", "language/demo-chat")
    plan = plan_workload(d.at.session_state["spec"], pool=demo)
    assert d.at.session_state["spec"].missing_lengths == "borrow"
    assert not plan.exclusions["no_lengths"] and set(demo.clients_without_lengths) & set(plan.clients)
    assert any(c.startswith("Clients without length data borrow lengths") for c in d.captions())
    assert any("borrow lengths" in w.value for w in d.at.warning)
    # excluding them instead: they and the idle ones are left out
    d.at.selectbox(key="cmp_missing").set_value("exclude").run()
    d.check()
    plan = plan_workload(d.at.session_state["spec"], pool=demo)
    assert plan.exclusions["no_lengths"] and not plan.exclusions["not_selected"]
    note = check_exclusion_caption(d, plan)
    assert note.startswith(f"Of {len(demo.client_ids)} clients")
    ids = ", ".join(plan.exclusions["no_lengths"])
    assert f"{len(plan.exclusions['no_lengths'])} without length data ({ids})" in note

    # m-large 20:00-21:00, top 10: the rest are "not selected"
    d = Dashboard().servegen("language/m-large")
    d.at.sidebar.select_slider[0].set_value((72000.0, 75600.0)).run()
    d.open("compose")
    d.at.radio(key="cmp_mode").set_value("top_k").run()
    k_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_k_"))
    d.at.number_input(key=k_key).set_value(10).run()
    d.check()
    pool = m_large
    plan = plan_workload(d.at.session_state["spec"], pool=pool)
    assert len(plan.exclusions["not_selected"]) > 6  # more than are named: the rest are counted
    note = check_exclusion_caption(d, plan)
    assert f"not selected ({', '.join(plan.exclusions['not_selected'][:6])} and {len(plan.exclusions['not_selected']) - 6} more)" in note


def test_clients_filter_on_a_trace_stays_ids(demo_dir):
    d = Dashboard().demo("traces/demo_requests.csv").open("clients")
    d.at.number_input(key="cl_top_k").set_value(3).run()
    d.at.button(key="cl_use_filtered").click().run()
    d.open("compose")
    d.at.radio(key="cmp_mode").set_value("selection").run()
    d.check()
    trace = load_trace(demo_dir / "traces" / "demo_requests.csv").trace
    top3 = filter_clients(client_summary(trace), top_k=3)
    spec = d.at.session_state["spec"]
    assert spec.clients == ClientSelection("ids", ids=tuple(sorted(top3, key=client_sort_key)))
    assert any(c.startswith("Kept as a list of client ids") and "fitted" in c for c in d.captions())


def test_composer_widgets_build_the_spec_and_the_rate_plot():
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.at.number_input(key="cmp_rps").set_value(20.0).run()
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=duration_key).set_value(30.0).run()
    d.at.number_input(key="cmp_seed").set_value(5).run()
    d.check()
    spec = d.at.session_state["spec"]
    assert spec.rate == ConstantRate(rps=20.0)
    assert spec.span.duration_s == 1800 and spec.seed == 5
    fig = d.figure("cmp_rate_chart")
    np.testing.assert_allclose(values(fig["data"][0], "y"), 20.0)
    assert fig["layout"]["xaxis"]["title"]["text"] == "time since workload start (min)"
    assert d.at.metric[0].value == f"about {20 * 1800:,}"


def test_editing_weights_renormalizes_them():
    d = Dashboard().open("compose")
    key = next(e.key for e in d.at.data_editor if e.key and e.key.startswith("cmp_wtable_"))
    clients = d.at.data_editor(key=key).value["client_id"].tolist()
    # Client on row 0 gets weight 3, row 1 weight 1, every other client 0: shares 0.75 / 0.25.
    edits = {i: {"weight": 0.0} for i in range(2, len(clients))} | {0: {"weight": 3.0}, 1: {"weight": 1.0}}
    d.at.session_state[key] = {"edited_rows": edits, "added_rows": [], "deleted_rows": []}
    d.run()
    spec = d.at.session_state["spec"]
    assert spec.weights.mode == "explicit"
    fig = d.figure("cmp_weights_chart")
    composed = dict(zip(fig["data"][1]["x"], values(fig["data"][1], "y"), strict=True))
    assert composed[f"client {clients[0]}"] == pytest.approx(75.0)
    assert composed[f"client {clients[1]}"] == pytest.approx(25.0)
    # the clients set to 0 are named as left out "with weight 0"
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    plan = plan_workload(spec, pool=pool)
    # explicit weights list only the clients that can carry load: the core files the others (no
    # length data, idle) under weight 0 as well; the page names them by their own reason
    base = plan_workload(dataclasses.replace(spec, weights=Weights()), pool=pool)
    assert set(plan.exclusions["weight_zero"]) == set(clients[2:]) | set(base.exclusions["no_lengths"]) | set(base.exclusions["idle"])
    shown = SimpleNamespace(
        clients=plan.clients,
        exclusions={
            "not_selected": plan.exclusions["not_selected"],
            "weight_zero": tuple(sorted(set(clients[2:]) & set(base.weights["client_id"].to_list()), key=client_sort_key)),
            "idle": base.exclusions["idle"],
            "no_lengths": base.exclusions["no_lengths"],
        },
    )
    note = check_exclusion_caption(d, shown)
    assert base.exclusions["idle"] and f"idle in the span ({', '.join(base.exclusions['idle'])})" in note


def test_preview_shows_the_validation_report_and_the_naive_baseline(demo_dir):
    d = Dashboard().open("compose")
    d.at.toggle(key="cmp_naive").set_value(True).run()
    d.check()
    spec = d.at.session_state["spec"]
    d.open("preview")
    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    report = validate(compose(spec, pool=pool))
    shown = d.table("name", "passed", "detail")
    assert shown["name"].tolist() == report.checks["name"].to_list()
    assert shown["passed"].tolist() == report.checks["passed"].to_list()
    fig = d.figure("pv_cv_compare")
    assert trace_names(fig) == ["source (recorded)", "this spec (A)", "naive (poisson) (B)"]
    assert vertical_lines(fig) == [1.0]
    assert {"pv_real_arrivals", "pv_naive_arrivals"} <= set(d.figures())
    compared = d.table("passed_b")
    assert list(compared.columns) == ["name", "value", "passed", "value_b", "passed_b"]


@pytest.mark.parametrize("fmt", ["mooncake", "csv"])
def test_export_download_matches_the_cli_and_parses_back(fmt, tmp_path):
    import export_files

    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("export")
    d.at.selectbox(key="ex_format").select(fmt).run()
    d.check()
    label = d.at.download_button(key="ex_download").label
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    data, name, _ = export_files.export_bytes(spec, fmt, pool=pool)
    assert name in label
    made = compose(spec, pool=pool)
    if fmt == "mooncake":
        rows = [json.loads(line) for line in data.decode().splitlines()]
        assert len(rows) == made.trace.height
        assert rows[0].keys() == {"timestamp", "input_length", "output_length", "hash_ids", "client_id"}
        assert [r["input_length"] for r in rows] == made.trace["input_tokens"].to_list()
    else:
        out = tmp_path / "download.csv"
        out.write_bytes(data)
        back = load_trace(out, preset="servegen").trace
        assert back["input_tokens"].to_list() == made.trace["input_tokens"].to_list()
        # The trace loader reads decimal seconds to 9 fractional digits (1 ns).
        np.testing.assert_allclose(back["timestamp_s"].to_numpy(), made.trace["timestamp_s"].to_numpy(), rtol=0, atol=1e-9)
    # The command line from the page writes the same bytes.
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(next(c.value for c in d.at.code if c.value.lstrip().startswith("{")))  # the spec block
    command = next(c.value for c in d.at.code if c.value.startswith("servegen generate"))
    out = tmp_path / f"cli{name[name.index('.'):]}"
    argv = command.split()[1:]
    argv[argv.index("--spec") + 1] = str(spec_file)
    argv[argv.index("-o") + 1] = str(out)
    assert cli_main(argv) == 0
    assert out.read_bytes() == data


def test_export_save_to_path_writes_the_file_and_its_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVEGEN_EXPORT_DIR", str(tmp_path))
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("export")
    d.at.selectbox(key="ex_format").select("jsonl").run()
    target = tmp_path / "saved.jsonl"
    d.at.text_input(key="ex_path_jsonl").input(str(target)).run()
    d.at.button(key="ex_save").click().run()
    d.check()
    assert any(f"to {target}" in plain(s.value) for s in d.at.success)
    back = load_trace(target, preset="servegen").trace
    made = compose(spec, pool=load_pool(demo_data_dir() / "servegen", "language/demo-chat"))
    assert back.height == made.trace.height
    assert WorkloadSpec.from_file(target.with_name(target.name + ".spec.json")) == spec
    # Saving again without "Overwrite" is refused with a message, and the file is kept.
    before = target.read_bytes()
    d.at.button(key="ex_save").click().run()
    assert not d.at.exception
    assert d.at.error and "exists" in plain(d.at.error[0].value)
    assert target.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rate_shift_controls_follow_the_core(servegen_dir, m_large):
    d = Dashboard().servegen("language/m-large").open("rate_shifts")
    d.at.number_input(key="rs_k").set_value(3).run()
    d.check()
    pool = m_large
    res = selected(d, "Bin length")
    series = rates.top_k_series(pool, 3, resolution_s=res).frame
    fig = d.figure("rs_stacked")
    assert trace_names(fig) == [f"client {c}" for c in series["group"].unique(maintain_order=True).to_list()[:3]] + ["other clients"]
    share = rates.top_k_share(pool, 3).share
    assert any(f"top 3 clients send {share:.0%}" in c for c in d.captions())
    heat = values(d.figure("rs_heatmap")["data"][0], "z")
    matrix = rates.hour_day_matrix(pool).frame.sort("day", "hour")
    np.testing.assert_allclose(heat.ravel(), matrix["rate_rps"].to_numpy())


def test_lengths_sections_on_real_data(servegen_dir):
    d = Dashboard().servegen("reason/deepseek-r1").open("lengths")
    d.at.radio(key="len_section").set_value("Over time").run()
    d.check()
    fig = d.figure("len_bands")
    assert trace_names(fig) == ["p99", "p90", "p50", "mean"]
    d.at.radio(key="len_section").set_value("Per client").run()
    d.check()
    fig = d.figure("len_clients")
    pool = load_pool(servegen_dir, "reason/deepseek-r1")
    assert len(values(fig["data"][0], "x")) == len(pool.client_ids) - len(pool.clients_without_lengths)


def test_burstiness_aggregate_stream_and_window_choice(servegen_dir):
    d = Dashboard().servegen("multimodal/mm-image").open("burstiness")
    d.at.radio(key="burst_scope").set_value("aggregate stream").run()
    d.check()
    fig = d.figure("burst_cdf")
    assert "aggregate stream" in title(fig)
    pool = load_pool(servegen_dir, "multimodal/mm-image")
    cdf = arrivals.cv_cdf(arrivals.aggregate_cv(pool)).frame
    np.testing.assert_allclose(values(fig["data"][0], "x"), cdf["cv"].to_numpy())
    summary = arrivals.burstiness_summary(arrivals.aggregate_cv(pool))
    assert any(f"{summary.share_windows_cv_gt1:.0%} of {summary.windows:,} windows" in c for c in d.captions())


def test_large_workloads_are_not_composed_in_memory(servegen_dir):
    import settings

    d = Dashboard().servegen("language/m-large").open("compose")
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=duration_key).set_value(3 * 24 * 60.0).run()  # three of the 14 days
    d.check()
    expected = int(d.at.metric[0].value.removeprefix("about ").replace(",", ""))
    assert expected > settings.PREVIEW_MAX_REQUESTS
    d.open("preview")
    assert any("previewed in memory" in w.value for w in d.at.warning)
    assert not d.figures()
    d.open("export")
    assert any("save it to a path" in i for i in d.infos())
    assert [b.key for b in d.at.download_button] == ["ex_spec"]  # the spec, not the workload
