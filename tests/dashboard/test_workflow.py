"""The selection → compose → preview workflow through AppTest: selection by client id, set
operations, the Compose page's client status, the rate preview, spec import, the URL and undo,
and what happens to per-source settings when the source changes.

Expected values come from the core functions called here on the same data (or, for the rate
preview, from the rate function's own formula), never from the page.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _dash import Dashboard, values

from servegen_core.generate.compose import plan_workload
from servegen_core.paths import demo_data_dir
from servegen_core.sources.pool import client_sort_key, load_pool
from servegen_core.spec import (
    ClientSelection,
    PiecewiseRate,
    RampRate,
    ServeGenSource,
    Span,
    Weights,
    WorkloadSpec,
)
from servegen_core.characterize.summary import client_summary, filter_clients


def table_key(d: Dashboard) -> str:
    (key,) = [f.key for f in d.at.dataframe if f.key and f.key.startswith("cl_table_")]
    return key


def table_ids(d: Dashboard) -> list[str]:
    frame = next(f for f in d.at.dataframe if f.key and f.key.startswith("cl_table_"))
    return frame.value["client_id"].tolist()


def tick(d: Dashboard, rows: list[int]) -> Dashboard:
    """Tick these rows of the Clients table (as the browser would report them)."""
    d.at.session_state[table_key(d)] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return d.run()


def ticked(d: Dashboard) -> list[str]:
    """The ids of the rows the Clients table shows ticked."""
    state = d.at.session_state[table_key(d)]
    ids = table_ids(d)
    return [ids[i] for i in state["selection"]["rows"]]


def chosen(d: Dashboard) -> tuple[str, ...]:
    sel = d.at.session_state["selection"] if "selection" in d.at.session_state else None
    return sel.client_ids if sel is not None else ()


# -- 1. selection by client id ------------------------------------------------------------------


def test_a_ticked_client_stays_ticked_when_the_filter_changes(servegen_dir, m_large):
    d = Dashboard().servegen("language/m-large").open("clients")
    pool = m_large
    summary = client_summary(pool)
    # filter: the clients burstier than Poisson on average (rate-weighted CV above 1), by request share
    d.at.multiselect(key="cl_filter_columns").set_value(["cv_rate_weighted"]).run()
    d.at.number_input(key="cl_lo_cv_rate_weighted").set_value(1.0).run()
    d.check()
    filtered = filter_clients(summary, ranges={"cv_rate_weighted": (1.0, None)})
    everyone = filter_clients(summary)
    assert table_ids(d) == filtered
    # a row that holds another client once the filter is cleared (the bug: the tick moved to it)
    row = next(i for i, c in enumerate(filtered) if everyone[i] != c)
    target = filtered[row]
    tick(d, [row])
    assert chosen(d) == (target,)
    # clear the filter: every client is listed and the row at the old position is another client
    d.at.multiselect(key="cl_filter_columns").set_value([]).run()
    d.check()
    assert table_ids(d) == everyone and everyone[row] != target
    assert chosen(d) == (target,)
    assert ticked(d) == [target]
    # rank by another column: the tick follows the client again
    d.at.selectbox(key="cl_by").select("requests").run()
    d.check()
    assert ticked(d) == [target]
    assert any(c == ", ".join(chosen(d)) for c in d.captions())


def test_ticking_and_unticking_rows_changes_only_those_clients():
    d = Dashboard().open("clients")
    ids = table_ids(d)
    tick(d, [0, 2])
    assert set(chosen(d)) == {ids[0], ids[2]}
    d.at.number_input(key="cl_top_k").set_value(2).run()  # rows 0 and 1 only: ids[2] is hidden
    d.check()
    assert ticked(d) == [ids[0]]
    tick(d, [1])  # untick ids[0], tick ids[1]; the hidden ids[2] stays selected
    assert set(chosen(d)) == {ids[1], ids[2]}


# -- 2. set operations ---------------------------------------------------------------------------


def test_set_operations_on_the_selection(demo_dir):
    d = Dashboard().open("clients")
    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    summary = client_summary(pool)
    # add the top 3 by request share
    d.at.number_input(key="cl_add_k").set_value(3).run()
    d.at.button(key="cl_add_top").click().run()
    d.check()
    top3 = filter_clients(summary, top_k=3)
    assert set(chosen(d)) == set(top3)
    assert list(chosen(d)) == sorted(top3, key=client_sort_key)
    # union with a filter: the clients without length data
    d.at.multiselect(key="cl_filter_columns").set_value(["has_lengths"]).run()
    d.at.number_input(key="cl_hi_has_lengths").set_value(0.0).run()
    d.check()
    no_lengths = filter_clients(summary, ranges={"has_lengths": (None, 0.0)})
    assert no_lengths and set(no_lengths) == set(pool.clients_without_lengths)
    d.at.button(key="cl_add_filtered").click().run()
    assert set(chosen(d)) == set(top3) | set(no_lengths)
    # difference, then intersection
    d.at.button(key="cl_remove_filtered").click().run()
    assert set(chosen(d)) == set(top3) - set(no_lengths)
    d.at.button(key="cl_add_filtered").click().run()
    d.at.button(key="cl_intersect").click().run()
    assert set(chosen(d)) == set(no_lengths)
    # search by id: known ids are added, unknown ones named
    unknown = "no-such-client"
    other = next(c for c in pool.client_ids if c not in no_lengths)
    search_key = next(t.key for t in d.at.text_input if t.key.startswith("cl_search_"))
    d.at.text_input(key=search_key).input(f"{other}, {unknown}").run()
    d.at.button(key="cl_search_add").click().run()
    assert not d.at.exception
    assert set(chosen(d)) == set(no_lengths) | {other}
    assert any(unknown in w.value for w in d.at.warning)
    d.at.button(key="cl_clear").click().run()
    assert chosen(d) == ()


def test_a_clicked_chart_point_is_added():
    d = Dashboard().open("clients")
    (key,) = [c.key for c in d.at.get("plotly_chart") if c.key.startswith("cl_cv_rate_")]
    fig = d.figure(key)
    ids = [str(c) for c in fig["data"][0]["customdata"]]
    d.at.session_state[key] = {
        "selection": {"points": [{"point_index": 1, "customdata": ids[1], "curve_number": 0}], "point_indices": [1], "box": [], "lasso": []}
    }
    d.run()
    assert chosen(d) == (ids[1],)
    # the point is drawn in the selection colour on the redrawn chart
    (key,) = [c.key for c in d.at.get("plotly_chart") if c.key.startswith("cl_cv_rate_")]
    colors = d.figure(key)["data"][0]["marker"]["color"]
    assert colors[1] != colors[0] and len(set(colors)) == 2


# -- 3. Open in Compose ------------------------------------------------------------------------


def test_open_in_compose_carries_the_selection():
    d = Dashboard().open("clients")
    ids = table_ids(d)
    tick(d, [1, 3])
    d.at.button(key="cl_open_compose").click().run()
    d.check()
    assert d.at.radio(key="cmp_mode").value == "selection"
    spec = d.at.session_state["spec"]
    assert spec.clients == ClientSelection("ids", ids=tuple(sorted((ids[1], ids[3]), key=client_sort_key)))


# -- 4. composed vs chosen, with reasons ----------------------------------------------------


def status_table(d: Dashboard) -> dict[str, str]:
    editor = next(e for e in d.at.data_editor if e.key and e.key.startswith("cmp_wtable_"))
    frame = editor.value
    return dict(zip(frame["client_id"], frame["status"], strict=True))


def test_the_status_column_gives_each_left_out_client_its_reason(demo_dir):
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    plan = plan_workload(spec, pool=pool)
    status = status_table(d)
    # by default the clients without length data borrow the other clients' lengths
    assert spec.missing_lengths == "borrow" and not plan.exclusions["no_lengths"]
    missing = [c for c in pool.clients_without_lengths if c in plan.clients]
    assert missing
    for c in missing:
        assert status[c] == "composed, borrowed lengths (same window's mix)"
    d.at.selectbox(key="cmp_missing").select("exclude").run()
    d.check()
    plan = plan_workload(d.at.session_state["spec"], pool=pool)
    status = status_table(d)
    assert plan.exclusions["no_lengths"] and plan.exclusions["idle"]
    for c in plan.exclusions["no_lengths"]:
        assert status[c] == "left out: no length data"
    for c in plan.exclusions["idle"]:
        assert status[c] == "left out: idle in the span"
    for c in plan.clients:
        assert status[c] == "composed"
    # borrowing the pooled lengths composes the clients without length data, and says so
    d.at.selectbox(key="cmp_missing").select("pooled").run()
    d.check()
    status = status_table(d)
    for c in plan.exclusions["no_lengths"]:
        assert status[c] == "composed, borrowed (pooled) lengths"


def test_weights_are_kept_by_id_and_zero_is_never_silent(demo_dir):
    d = Dashboard().open("compose")
    editor = next(e for e in d.at.data_editor if e.key and e.key.startswith("cmp_wtable_"))
    frame = editor.value
    composed = [c for c, s in zip(frame["client_id"], frame["status"], strict=True) if s == "composed"]
    rows = {c: i for i, c in enumerate(frame["client_id"])}
    small, zero = composed[0], composed[1]
    d.at.session_state[editor.key] = {
        "edited_rows": {rows[small]: {"weight": 1e-5}, rows[zero]: {"weight": 0.0}}, "added_rows": [], "deleted_rows": [],
    }
    d.run()
    spec = d.at.session_state["spec"]
    w = spec.weights.as_dict()
    assert spec.weights.mode == "explicit" and w[small] == 1e-5 and w[zero] == 0.0
    status = status_table(d)
    assert status[zero] == "left out: weight 0" and status[small] == "composed"
    assert any(f"Weight 0 leaves out: {zero}." in c for c in d.captions())
    # the weights belong to the client ids: another span (other rows) keeps them
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=duration_key).set_value(120.0).run()
    d.check()
    w = d.at.session_state["spec"].weights.as_dict()
    assert w[small] == 1e-5 and w[zero] == 0.0


# -- 6. the rate preview is the rate function ------------------------------------------------


def rate_chart(d: Dashboard) -> tuple[np.ndarray, np.ndarray]:
    fig = d.figure("cmp_rate_chart")
    assert fig["layout"]["xaxis"]["title"]["text"] == "time since workload start (min)"
    return values(fig["data"][0], "x"), values(fig["data"][0], "y")


def test_a_ramp_is_previewed_as_a_ramp():
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("ramp").run()
    d.at.number_input(key="cmp_ramp_start").set_value(2.0).run()
    d.at.number_input(key="cmp_ramp_end").set_value(12.0).run()
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=duration_key).set_value(30.0).run()
    d.check()
    assert d.at.session_state["spec"].rate == RampRate(2.0, 12.0)
    x, y = rate_chart(d)
    assert len(x) > 500  # a fine grid, not one value per 10-minute window
    np.testing.assert_allclose(y, 2.0 + 10.0 * x / 30.0, rtol=1e-9, atol=1e-9)
    assert x.min() == 0 and x.max() == pytest.approx(30.0)


def test_a_step_piecewise_rate_is_previewed_with_its_steps():
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("piecewise").run()
    d.check()
    # default points: 5 req/s from 0, 10 req/s from half the hour (step)
    assert d.at.session_state["spec"].rate == PiecewiseRate(points=((0.0, 5.0), (1800.0, 10.0)), interpolation="step")
    x, y = rate_chart(d)
    expected = np.where(x * 60 < 1800, 5.0, 10.0)
    np.testing.assert_array_equal(y, expected)
    assert ((x * 60 > 1799.9) & (x * 60 < 1800)).any()  # the left side of the step is drawn


# -- 7. work is kept: import, URL, undo --------------------------------------------------------


def made_spec() -> WorkloadSpec:
    return WorkloadSpec(
        source=ServeGenSource("demo", "reason/demo-r1"),
        span=Span(start_s=2 * 3600 + 30 * 60, duration_s=1800.0),
        clients=ClientSelection("top_k", k=4),
        rate=RampRate(1.0, 6.0),
        arrivals="poisson",
        length_correlation=0.2,
        seed=11,
        arrival_shape="fitted_shape",  # a key the Compose page has no widget for: kept from the import
    )


def test_pasted_spec_is_imported_with_its_source():
    spec = made_spec()
    d = Dashboard().open("compose")  # the demo chat model
    d.at.text_area(key="cmp_import_text").input(spec.to_json()).run()
    d.at.button(key="cmp_import").click().run()
    d.check()
    assert d.at.sidebar.selectbox(key="src_demo").value == "reason/demo-r1"
    assert d.at.session_state["spec"] == spec
    assert any("Restored the spec from the imported spec" in s.value for s in d.at.success)
    assert "Kept from the restored spec (not edited on this page): arrival_shape." in d.captions()
    d.open("overview").open("compose")
    assert d.at.session_state["spec"] == spec


def test_a_bad_spec_is_refused_with_its_reason():
    d = Dashboard().open("compose")
    before = d.at.session_state["spec"]
    bad = json.loads(made_spec().to_json())
    bad["rate"]["end_rps"] = -3
    d.at.text_area(key="cmp_import_text").input(json.dumps(bad)).run()
    d.at.button(key="cmp_import").click().run()
    assert not d.at.exception
    assert any("rate.end\\_rps" in e.value for e in d.at.error)  # shown as plain text: the underscore escaped
    assert d.at.session_state["spec"] == before


def test_the_spec_in_the_url_restores_it_in_a_new_session():
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.at.number_input(key="cmp_rps").set_value(3.5).run()
    d.at.number_input(key="cmp_seed").set_value(9).run()
    d.at.radio(key="cmp_mode").set_value("top_k").run()
    d.check()
    spec = d.at.session_state["spec"]
    link = d.at.query_params["spec"]
    assert WorkloadSpec.from_json(json.dumps(spec.to_dict())) == spec
    # a new session opened on that link (a reload): Preview has the spec at once, Compose rebuilds it
    from streamlit.testing.v1 import AppTest

    from _dash import APP

    fresh = Dashboard.__new__(Dashboard)
    fresh.at = AppTest.from_file(str(APP), default_timeout=180)
    fresh.at.query_params["spec"] = link
    fresh.at.run()
    fresh.check()
    assert fresh.at.session_state["spec"] == spec
    fresh.open("preview")
    assert "pv_arrivals" in fresh.figures()
    fresh.open("compose")
    assert fresh.at.session_state["spec"] == spec
    assert fresh.at.selectbox(key="cmp_rate_kind").value == "constant"


def test_a_broken_link_is_reported_not_raised():
    from streamlit.testing.v1 import AppTest

    from _dash import APP

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params["spec"] = "not-a-spec"
    at.run()
    assert not at.exception
    d = Dashboard.__new__(Dashboard)
    d.at = at
    d.at.switch_page("views/compose.py").run()
    assert not d.at.exception
    assert any("The spec in the link could not be read" in e.value for e in d.at.error)


def test_undo_restores_the_previous_spec():
    d = Dashboard().open("compose")
    first = d.at.session_state["spec"]
    d.at.number_input(key="cmp_seed").set_value(5).run()
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.check()
    assert d.at.session_state["spec"].seed == 5
    d.at.button(key="cmp_undo").click().run()
    d.check()
    spec = d.at.session_state["spec"]
    assert spec.seed == 5 and spec.rate == first.rate  # the rate change is undone, the seed change kept
    d.at.button(key="cmp_undo").click().run()
    d.check()
    assert d.at.session_state["spec"] == first


def test_explicit_weights_survive_the_url_round_trip():
    d = Dashboard().open("compose")
    editor = next(e for e in d.at.data_editor if e.key and e.key.startswith("cmp_wtable_"))
    d.at.session_state[editor.key] = {"edited_rows": {0: {"weight": 4.0}}, "added_rows": [], "deleted_rows": []}
    d.run()
    spec = d.at.session_state["spec"]
    assert spec.weights.mode == "explicit"
    from streamlit.testing.v1 import AppTest

    from _dash import APP

    fresh = Dashboard.__new__(Dashboard)
    fresh.at = AppTest.from_file(str(APP), default_timeout=180)
    fresh.at.query_params["spec"] = d.at.query_params["spec"]
    fresh.at.run()
    fresh.open("compose")
    assert fresh.at.session_state["spec"] == spec
    assert isinstance(fresh.at.session_state["spec"].weights, Weights)


# -- 8. settings that belong to one source ---------------------------------------------------


def test_source_switch_validates_the_selection_and_the_field_choice():
    d = Dashboard().demo("multimodal/demo-vl").open("lengths")
    d.at.multiselect(key="len_fields").set_value(["image_tokens"]).run()
    d.check()
    # another source: the field it does not have is dropped from the choice (back to the default), not an error
    d.demo("language/demo-chat").open("lengths")
    assert d.at.multiselect(key="len_fields").value == ["input_tokens", "output_tokens"]
    assert {"len_dist_input_tokens", "len_dist_output_tokens"} <= set(d.figures())
    # select clients 4 and 15 on demo-chat (20 clients); demo-vl has clients 0-9
    d.open("clients")
    search_key = next(t.key for t in d.at.text_input if t.key.startswith("cl_search_"))
    d.at.text_input(key=search_key).input("4 15").run()
    d.at.button(key="cl_search_add").click().run()
    d.check()
    assert chosen(d) == ("4", "15")
    vl = load_pool(demo_data_dir() / "servegen", "multimodal/demo-vl")
    assert "4" in vl.client_ids and "15" not in vl.client_ids
    d.demo("multimodal/demo-vl").open("clients")
    (warning,) = [w.value for w in d.at.warning if "not in" in w.value]
    assert warning.startswith("1 selected client(s) are not in multimodal/demo-vl") and warning.endswith(": 15")
    assert ticked(d) == ["4"]
    d.open("compose")
    assert d.at.session_state["spec"].clients == ClientSelection("ids", ids=("4",))
    # back on demo-chat the whole selection is in use again
    d.demo("language/demo-chat").open("clients")
    assert sorted(ticked(d), key=client_sort_key) == ["4", "15"]
    assert not [w for w in d.at.warning if "not in" in w.value]


# -- 9. numbers agree with the charts; a trace's real start time -------------------------------


def test_overview_peak_is_the_peak_of_the_chart_beside_it(servegen_dir, m_large):
    from servegen_core.characterize import rates
    d = Dashboard().servegen("language/m-large").open("overview")
    res = next(s for s in d.at.selectbox if s.label == "Bin length").value
    pool = m_large
    peak = rates.peak_trough(pool, resolution_s=res)
    (tile,) = [m for m in d.at.metric if m.label.startswith("Peak rate")]
    assert tile.label == f"Peak rate (req/s, {res // 3600} h bins)" if res >= 3600 else tile.label.endswith("min bins)")
    assert tile.value == f"{peak.peak_rps:,.1f}"
    y = values(d.figure("ov_rate")["data"][0], "y")
    assert f"{y.max():,.1f}" == tile.value
    # the request count is not cut: a short form in the tile, every digit in its help
    from servegen_core.sources.pool import expected_requests

    (req,) = [m for m in d.at.metric if m.label == "Requests"]
    n = expected_requests(pool)
    assert n > 1e8 and req.value == f"{n / 1e6:,.2f} M" and req.help.startswith(f"{n:,.0f}")
    d.at.selectbox(key=next(s.key for s in d.at.selectbox if s.label == "Bin length")).select(86400).run()
    (tile,) = [m for m in d.at.metric if m.label.startswith("Peak rate")]
    assert tile.label == "Peak rate (req/s, 24 h bins)"
    assert tile.value == f"{rates.peak_trough(pool, resolution_s=86400).peak_rps:,.1f}"


def test_a_wall_clock_trace_sets_the_hour_of_day_origin(traces_dir):
    from servegen_core.characterize import rates
    from servegen_core.sources.traces import load_trace

    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    d = Dashboard().trace(path).open("rate_shifts")
    origin = next(n for n in d.at.number_input if n.key.startswith("rs_origin_"))
    # the file's first timestamp is 2023-11-16 18:15:46.68
    assert origin.value == pytest.approx(18 + 15 / 60 + 46.68 / 3600, abs=0.005)
    assert any("starts at 2023-11-16 18:15:46" in c for c in d.captions())
    trace = load_trace(path).trace
    matrix = rates.hour_day_matrix(trace, origin_hour=origin.value).frame.sort("day", "hour")
    heat = values(d.figure("rs_heatmap")["data"][0], "z").ravel()  # one day of 24 hours, NaN where no data
    # the hour of trace (18:15 to 19:15) falls in the 18:00 and 19:00 columns, as the core places it
    assert matrix["hour"].to_list() == [18, 19]
    assert np.flatnonzero(~np.isnan(heat)).tolist() == [18, 19]
    np.testing.assert_allclose(heat[[18, 19]], matrix["rate_rps"].to_numpy())


# -- 10. labels say what is shown ---------------------------------------------------------------


def test_per_client_length_fits_beside_the_aggregate(servegen_dir, m_large):
    from servegen_core.characterize.lengths import client_length_fits

    d = Dashboard().servegen("language/m-large").open("lengths")
    pool = m_large
    expected = client_length_fits(pool, "output_tokens", k=10).frame
    tables = [f.value for f in d.at.dataframe if "best" in f.value.columns]
    assert len(tables) == 2  # one per field shown (input and output tokens)
    (table,) = [t for t in tables if "ks_exponential" in t.columns]  # only output lengths have an exponential fit
    assert table["client_id"].tolist() == expected["client_id"].to_list()
    assert table["best"].tolist() == expected["best"].to_list()
    counts = expected["best"].value_counts()
    n_lognormal = int(counts.filter(counts["best"] == "lognormal")["count"].sum())
    assert any(f"lognormal for {n_lognormal}" in c for c in d.captions() if c.startswith("Per-client fits of output"))


# -- 11. chart data as CSV; two workloads side by side ----------------------------------------


@pytest.mark.parametrize("page", ["overview", "burstiness", "rate_shifts", "lengths", "compose", "preview"])
def test_every_chart_offers_its_data_as_csv(page):
    d = Dashboard().open("compose").open(page)
    figures = [k for k in d.figures() if not k.startswith(("cl_", "cmp_activity_"))]
    assert figures
    buttons = {b.key for b in d.at.download_button}
    for key in figures:
        assert f"{key}_csv" in buttons, key


def test_the_csv_of_a_chart_is_its_data():
    import io

    import polars as pl

    from widgets import page

    from servegen_core.generate.compose import rate_curve

    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    curve = rate_curve(plan_workload(spec, pool=load_pool(demo_data_dir() / "servegen", "language/demo-chat")))
    # the page's CSV button writes the frame it was given; the rate chart was given the core's curve
    fig = d.figure("cmp_rate_chart")
    np.testing.assert_allclose(values(fig["data"][0], "y"), curve["target_rps"].to_numpy())
    back = pl.read_csv(io.BytesIO(curve.write_csv().encode()))
    assert back.columns == ["t_s", "target_rps", "composed_rps"] and back.height == curve.height
    frames = {"a": curve.head(3), "b": curve.tail(2)}
    both = page.stack_frames(frames)
    assert both["series"].to_list() == ["a"] * 3 + ["b"] * 2


def test_preview_compares_this_spec_with_an_earlier_one(demo_dir):
    from servegen_core.characterize import rates
    from servegen_core.generate.compose import compose

    d = Dashboard().open("compose")
    earlier = d.at.session_state["spec"]
    d.at.number_input(key="cmp_seed").set_value(4).run()
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.check()
    current = d.at.session_state["spec"]
    d.open("preview")
    d.at.radio(key="pv_compare").set_value("earlier").run()
    d.check()
    box = d.at.selectbox(key="pv_earlier")
    assert "#1: rate observed (factor 1) (A: constant (rps 5)); seed 0 (A: 4)" in box.options  # readable, not JSON
    box.set_value(0).run()  # #1: the first spec of the session
    d.check()
    (note,) = [c for c in d.captions() if c.startswith("B differs from A in: ")]
    assert note == "B differs from A in: rate observed (factor 1) (A: constant (rps 5)); seed 0 (A: 4)."
    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    res = next(s for s in d.at.selectbox if s.label == "Arrival bins").value
    for key, spec in (("pv_real_arrivals", current), ("pv_naive_arrivals", earlier)):
        series = rates.rate_series(compose(spec, pool=pool).trace, resolution_s=res).frame
        np.testing.assert_allclose(values(d.figure(key)["data"][0], "y"), series["rate_rps"].to_numpy())
    checks = d.table("passed_b")
    assert list(checks.columns) == ["name", "value", "passed", "value_b", "passed_b"]


def test_the_mixture_modes_are_marked_and_a_mismatch_with_the_histogram_is_said(servegen_dir):
    from servegen_core.characterize.reasoning import bimodality, compare_modes, reason_ratio_distribution

    d = Dashboard().servegen("reason/deepseek-r1").open("reasoning")
    pool = load_pool(servegen_dir, "reason/deepseek-r1")
    res = compare_modes(reason_ratio_distribution(pool).frame, bimodality(pool, per_client=True).components)
    fig = d.figure("rs_ratio")
    marks = next(t for t in fig["data"] if t.get("name") == "mixture modes")
    np.testing.assert_allclose(values(marks, "x"), res.mixture_modes)
    assert res.differ
    (note,) = [i for i in d.infos() if i.startswith("The fitted mixture's modes")]
    assert f"({' and '.join(f'{p:.2f}' for p in res.histogram_peaks)}, after smoothing)" in note


def test_prefix_and_provisioning_charts_offer_their_data_as_csv(traces_dir):
    d = Dashboard().trace(traces_dir / "mooncake_synthetic_trace.jsonl").open("prefix")
    figures = set(d.figures())
    assert {"px_lru", "px_depth", "px_top"} <= figures
    assert {f"{k}_csv" for k in figures} <= {b.key for b in d.at.download_button}
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").open("provisioning")
    d.at.number_input(key="prov_slo_ttft").set_value(1.0).run()
    d.at.button(key="prov_run").click().run()
    d.check()
    figures = set(d.figures())
    assert {"prov_ttft", "prov_tpot"} <= figures
    assert {f"{k}_csv" for k in figures} <= {b.key for b in d.at.download_button}


def test_nested_columns_are_written_flat_in_a_chart_csv():
    import polars as pl

    from widgets import page

    frame = pl.DataFrame({"hash_ids": [[1, 2, 3], [4]], "fit": [{"k": 1.5}, {"k": 2.0}], "n": [3, 1]})
    back = pl.read_csv(page.csv_bytes(frame))
    assert back["hash_ids"].to_list() == ["1 2 3", "4"]
    assert back["fit"].to_list() == ['{"k":1.5}', '{"k":2.0}']
    assert back["n"].to_list() == [3, 1]


# -- 5. the span picked on the activity timeline ------------------------------------------------


def test_a_box_on_the_activity_timeline_sets_the_span():
    d = Dashboard().open("compose")
    (key,) = [c.key for c in d.at.get("plotly_chart") if c.key.startswith("cmp_activity_")]
    fig = d.figure(key)
    assert fig["layout"]["xaxis"]["title"]["text"] == "time since source start (h)"  # the demo spans 2 days
    # drag from 26.5 h to 29 h: day 2, 02:30, for 150 minutes
    d.at.session_state[key] = {"selection": {"points": [], "point_indices": [], "box": [{"x": [26.5, 29.0], "y": [0, 5]}], "lasso": []}}
    d.run()
    spec = d.at.session_state["spec"]
    assert spec.span == Span(start_s=26 * 3600 + 30 * 60, duration_s=150 * 60.0)
    day_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_day_"))
    clock_key = next(t.key for t in d.at.text_input if t.key.startswith("cmp_clock_"))
    assert d.at.number_input(key=day_key).value == 2 and d.at.text_input(key=clock_key).value == "02:30"
    # the shaded band on the redrawn chart is the new span
    (key,) = [c.key for c in d.at.get("plotly_chart") if c.key.startswith("cmp_activity_")]
    band = next(s for s in d.figure(key)["layout"]["shapes"] if s.get("type") == "rect")
    assert (band["x0"], band["x1"]) == pytest.approx((26.5, 29.0))


def test_typed_start_and_duration_and_a_clock_that_does_not_parse():
    d = Dashboard().open("compose")
    day_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_day_"))
    clock_key = next(t.key for t in d.at.text_input if t.key.startswith("cmp_clock_"))
    duration_key = next(n.key for n in d.at.number_input if n.key.startswith("cmp_duration_"))
    d.at.number_input(key=day_key).set_value(2).run()
    d.at.text_input(key=clock_key).input("18:15").run()
    d.at.number_input(key=duration_key).set_value(45.0).run()
    d.check()
    assert d.at.session_state["spec"].span == Span(start_s=86400 + 18 * 3600 + 15 * 60, duration_s=2700.0)
    d.at.text_input(key=clock_key).input("25:00").run()
    assert not d.at.exception
    assert any("hours 0-23" in e.value for e in d.at.error)
