"""The "Provisioning" page: realistic vs naive replica needs, against the core's answers."""

from __future__ import annotations

import charts
import numpy as np
import polars as pl
import pytest
from _dash import Dashboard, axis_title, horizontal_lines, plain, title, trace_names, values

from servegen_core.serve.calibration import calibrate
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.serve.whatif import Slo, answer_range, compare_spec, compare_trace, min_replicas
from servegen_core.paths import demo_data_dir
from servegen_core.generate.compose import compose
from servegen_core.sources.pool import load_pool
from servegen_core.sources.traces import load_trace


def test_trace_vs_poisson_matches_the_core(traces_dir):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    d = Dashboard().trace(path).open("provisioning")
    assert not d.figures()  # nothing is simulated before Simulate is pressed
    assert any("Press Simulate" in i for i in d.infos())
    d.at.number_input(key="prov_slo_ttft").set_value(1.0).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()  # TTFT only (the page defaults to both)
    d.at.button(key="prov_run").click().run()
    d.check()

    trace = load_trace(path).trace
    cost = roofline("llama-3-8b", "a100-80gb")
    core = compare_trace(trace, Slo(ttft_p99_s=1.0), cost)
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    metrics = {m.label: m.value for m in d.at.metric}
    n_real, n_pois = core.table["replicas"].to_list()
    assert metrics["realistic: replicas"] == str(n_real)
    assert metrics["poisson: replicas"] == str(n_pois)

    fig = d.figure("prov_ttft")
    assert title(fig) == "p99 TTFT vs replicas"
    assert axis_title(fig) == "replicas" and "s, log scale" in axis_title(fig, "yaxis")
    assert horizontal_lines(fig) == [pytest.approx(1.0)]
    real = core.curves.filter(pl.col("workload") == "realistic")
    line = fig["data"][trace_names(fig).index("realistic")]
    np.testing.assert_array_equal(values(line, "x"), real["replicas"].to_numpy())
    np.testing.assert_allclose(values(line, "y"), real["ttft_p99_s"].to_numpy())
    assert f"realistic: {n_real} replicas" in trace_names(fig)
    shown = d.table("workload", "replicas")
    assert shown["replicas"].tolist() == [n_real, n_pois]

    # the realistic workload at its answer, replica by replica over time
    fleet = core.realistic.fleet_timeline()
    tl = d.figure("prov_timeline")
    assert title(tl) == f"Replicas over time ({n_real} replicas, 10 s bins)"
    np.testing.assert_allclose(values(tl["data"][0], "y"), fleet["batch_mean"].to_numpy())
    np.testing.assert_allclose(values(tl["data"][3], "y"), fleet["kv_frac_max"].to_numpy() * 100)

    # another SLO: the stored result no longer applies and the page asks for a new simulation
    d.at.number_input(key="prov_slo_ttft").set_value(3.0).run()
    d.check()
    assert not d.figures()


def test_a_pool_without_a_spec_points_to_compose():
    d = Dashboard().open("provisioning")
    assert any("build one on the Compose page" in i for i in d.infos())
    assert not d.figures()


def test_composed_spec_vs_its_poisson_baseline():
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("provisioning")
    d.at.multiselect(key="prov_baselines").set_value(["poisson"]).run()
    d.at.number_input(key="prov_slo_ttft").set_value(5.0).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()  # TTFT only (the page defaults to both)
    d.at.button(key="prov_run").click().run()
    d.check()
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    cost = roofline("llama-3-8b", "a100-80gb")
    core = compare_spec(spec, Slo(ttft_p99_s=5.0), cost, naive=["poisson"], pool=pool)
    assert core.table["replicas"][0] is not None
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    assert d.table("workload", "replicas")["workload"].tolist() == ["realistic", "poisson"]
    # an objective below what the requests need alone: a warning that says why, no answer
    assert np.percentile(cost.prefill_time(compose(spec, pool=pool).trace["input_tokens"].to_numpy()), 99) > 1.5
    d.at.number_input(key="prov_slo_ttft").set_value(1.5).run()
    d.at.button(key="prov_run").click().run()
    d.check()
    warned = [plain(w.value) for w in d.at.warning]
    assert any("cannot meet p99 TTFT <= 1.5 s" in w and "prefill times" in w for w in warned), warned
    assert not d.at.success


def test_a_workload_above_the_simulation_limit_is_refused(traces_dir, monkeypatch):
    monkeypatch.setenv("SERVEGEN_MAX_SIM_REQUESTS", "1000")
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").open("provisioning")
    assert any("19,366 requests" in w.value and "at most 1,000" in w.value for w in d.at.warning)
    assert "prov_run" not in [b.key for b in d.at.button]


def test_provisioning_chart_marks_answers_and_the_slo():
    curves = pl.DataFrame(
        {
            "workload": ["realistic"] * 3 + ["poisson"] * 2,
            "replicas": [2, 4, 8, 2, 4],
            "ttft_p99_s": [30.0, 3.0, 1.0, 5.0, 1.5],
            "tpot_p99_s": [0.2, 0.1, 0.05, 0.1, 0.06],
        }
    )
    fig = charts.provisioning_curves(curves, metric="ttft_p99_s", slo_s=2.0, answers={"realistic": 8, "poisson": 4}).to_plotly_json()
    assert [t["name"] for t in fig["data"]] == ["realistic", "realistic: 8 replicas", "poisson", "poisson: 4 replicas"]
    assert list(fig["data"][1]["x"]) == [8] and list(fig["data"][3]["y"]) == [1.5]
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert [s["y0"] for s in fig["layout"]["shapes"]] == [2.0]


def roofline_iterations(cost: CostModel) -> tuple[np.ndarray, ...]:
    """Iterations (prefill tokens, decoding sequences, context tokens) where ``cost``'s memory line is the
    roofline's maximum, and their times: a single fitted line can reproduce them exactly."""
    grid = np.array([(t, s, c) for t in (0, 4, 16, 48) for s in (1, 8, 24) for c in (0, 3000, 20000, 60000)], dtype=float)
    t, s, c = grid.T
    a = t * (t + 1) / 2 + c
    x = np.stack([np.ones_like(t), t, a, c, s])
    memory_bound = np.asarray(cost.memory) @ x >= np.asarray(cost.compute) @ x
    secs = cost.iteration_time(T=t, A=a, K=c, S=s)
    return t[memory_bound], s[memory_bound], c[memory_bound], secs[memory_bound]


def test_calibrated_cost_model_from_an_upload_matches_the_core(traces_dir, tmp_path):
    # measurements of a server a quarter as efficient as the page's default roofline (compute and memory), from that roofline
    slow = roofline("llama-3-8b", "a100-80gb", efficiency=0.15, bandwidth_efficiency=0.2)
    t, s, c, secs = roofline_iterations(slow)
    assert len(secs) >= 20
    rows = "".join(f"{int(ti)},{int(si)},{int(ci)},{float(sec) * 1e3!r}\n" for ti, si, ci, sec in zip(t, s, c, secs, strict=True))
    calib = (tmp_path / "calib.csv")
    calib.write_text("prefill_tokens,decode_seqs,context_tokens,time_ms\n" + rows)
    default = roofline("llama-3-8b", "a100-80gb")
    cal = calibrate([calib], base=default)
    # the fit reproduces the known iteration times, also at iterations it was not given
    np.testing.assert_allclose(cal.iteration_time(T=t, A=t * (t + 1) / 2 + c, K=c, S=s), secs, rtol=1e-4)
    np.testing.assert_allclose(cal.decode_time(12, 40000), slow.decode_time(12, 40000), rtol=1e-4)
    assert "largest relative error 0.0%" in cal.note

    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    d = Dashboard().trace(path).open("provisioning")
    d.at.radio(key="prov_cost").set_value("Calibrated (your benchmark results)").run()
    d.check()
    assert not d.figures() and "prov_run" not in [b.key for b in d.at.button]  # nothing to simulate without a file
    d.at.radio(key="prov_cal_how").set_value("Upload").run()
    d.at.file_uploader(key="prov_cal_upload").upload("my bench.csv", calib.read_bytes()).run()
    d.check()
    assert any("only as good as the calibration" in c and "my bench.csv" in c for c in d.captions())
    d.at.number_input(key="prov_slo_ttft").set_value(1.0).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()  # TTFT only (the page defaults to both)
    d.at.button(key="prov_run").click().run()
    d.check()

    trace = load_trace(path).trace
    slo = Slo(ttft_p99_s=1.0)
    answer = min_replicas(trace, slo, cal).replicas
    assert answer is not None and answer != min_replicas(trace, slo, default).replicas  # the fitted model is used
    metrics = {m.label: m.value for m in d.at.metric}
    assert metrics["realistic: replicas"] == str(answer)
    # the sidebar's trace upload slot is untouched: the trace came by path, the calibration has its own slot
    uploaded = [p.name for p in d.at.session_state["_upload_dir"].path.rglob("*") if p.is_file()]
    assert uploaded == ["my_bench.csv"]


def test_a_calibration_path_outside_the_data_roots_is_refused(traces_dir, tmp_path, monkeypatch):
    from servegen_core.paths import DATA_ROOTS_ENV

    monkeypatch.setenv(DATA_ROOTS_ENV, str(traces_dir))
    outside = tmp_path / "bench.json"
    outside.write_text("{}")
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").open("provisioning")
    d.at.radio(key="prov_cost").set_value("Calibrated (your benchmark results)").run()
    d.at.text_input(key="prov_cal_path").input(str(outside)).run()
    assert not d.at.exception
    errors = [plain(e.value) for e in d.at.error]
    assert len(errors) == 1
    assert errors[0].startswith(f"refused: {outside} is outside the data folders this dashboard may read ({traces_dir.resolve()}; set by {DATA_ROOTS_ENV}). Accepted: ")
    assert "prov_run" not in [b.key for b in d.at.button]
    # a file under the roots that is not a benchmark result: one error naming the file, the app keeps serving
    d.at.text_input(key="prov_cal_path").input("AzureLLMInferenceTrace_conv.csv").run()
    assert not d.at.exception
    errors = [plain(e.value) for e in d.at.error]
    assert len(errors) == 1 and "AzureLLMInferenceTrace_conv.csv" in errors[0] and "missing column(s)" in errors[0], errors
    assert "prov_run" not in [b.key for b in d.at.button]


def test_the_range_over_seeds_and_sub_window_models_matches_the_core():
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("provisioning")
    d.at.multiselect(key="prov_baselines").set_value(["poisson"]).run()
    d.at.button(key="prov_run").click().run()
    d.check()
    assert "attainment" in d.table("workload", "replicas", "attainment", "goodput_rps", "unstable").columns
    d.at.button(key="prov_range_run").click().run()
    d.check()
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    cost = roofline("llama-3-8b", "a100-80gb")
    slo = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)
    answer = compare_spec(spec, slo, cost, naive=["poisson"], pool=pool).table["replicas"][0]
    core = answer_range(spec, slo, cost, naive=("poisson",), pool=pool, start=answer)
    shown = [plain(s.value) for s in d.at.success] + [plain(i.value) for i in d.at.info]
    assert core.sentence() in shown
    assert ("does not survive" in core.sentence()) is (core.gap_survives is False)
    shown_runs = d.table("workload", "seed", "sub_window", "replicas")["replicas"].tolist()
    assert [None if np.isnan(x) else int(x) for x in shown_runs] == core.runs["replicas"].to_list()


def test_slo_classes_section_shows_the_core_answer():
    import dataclasses

    from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class
    from servegen_core.spec import SloClass, SloClasses

    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("provisioning")
    assert any("slo_classes section" in c.value for c in d.at.caption)  # no classes yet: how to add them
    classes = SloClasses(
        classes=(("interactive", SloClass(0, ttft_p99_s=5.0)), ("batch", SloClass(1, e2e_p99_s=600.0))),
        default="interactive", clients=(("3", "batch"),),
    )
    spec = dataclasses.replace(spec, slo_classes=classes)
    d.at.session_state["spec"] = spec
    d.open("provisioning")
    d.at.button(key="prov_class_run").click().run()
    d.check()
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    cost = roofline("llama-3-8b", "a100-80gb")
    core = min_replicas_by_class(compose(spec, pool=pool).trace, classes_of_spec(spec), cost, max_replicas=256)
    assert core.replicas is not None
    assert core.sentence() in [plain(s.value) for s in d.at.success]
    shown = d.table("slo_class", "replicas")
    assert shown["slo_class"].tolist() == ["interactive", "batch"]
    assert shown["replicas"].tolist() == core.by_class["replicas"].to_list()
