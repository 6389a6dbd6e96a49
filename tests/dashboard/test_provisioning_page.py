"""The "Provisioning" page: realistic vs naive replica needs, against the core's answers."""

from __future__ import annotations

import charts
import numpy as np
import polars as pl
import pytest
from _dash import Dashboard, axis_title, horizontal_lines, plain, title, trace_names, values

from servegen_core import serving
from servegen_core.paths import demo_data_dir
from servegen_core.pool import load_pool
from servegen_core.traces import load_trace


def test_trace_vs_poisson_matches_the_core(traces_dir):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    d = Dashboard().trace(path).open("provisioning")
    assert not d.figures()  # nothing is simulated before Simulate is pressed
    assert any("Press Simulate" in i for i in d.infos())
    d.at.number_input(key="prov_slo_ttft").set_value(1.0).run()
    d.at.button(key="prov_run").click().run()
    d.check()

    trace = load_trace(path).trace
    cost = serving.roofline("llama-3-8b", "a100-80gb")
    core = serving.compare_trace(trace, serving.Slo(ttft_p99_s=1.0), cost)
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
    d.at.button(key="prov_run").click().run()
    d.check()
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    cost = serving.roofline("llama-3-8b", "a100-80gb")
    core = serving.compare_spec(spec, serving.Slo(ttft_p99_s=5.0), cost, baselines=["poisson"], pool=pool)
    assert core.table["replicas"][0] is not None
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    assert d.table("workload", "replicas")["workload"].tolist() == ["realistic", "poisson"]
    # an objective below what the requests need alone: a warning that says why, no answer
    d.at.number_input(key="prov_slo_ttft").set_value(2.0).run()
    d.at.button(key="prov_run").click().run()
    d.check()
    warned = [plain(w.value) for w in d.at.warning]
    assert any("cannot meet p99 TTFT <= 2 s" in w and "prefill times" in w for w in warned), warned
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
