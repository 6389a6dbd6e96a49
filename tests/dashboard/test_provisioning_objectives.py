"""Issue 18, "also wanted", on the Provisioning page: objectives at a chosen percentile and end to end,
the scheduler's limits, the busiest hour as the span, GPU-hours and cost, the latency floor, the same
run as a command, and a second GPU or model compared in one run. Every answer is the core's on the
same inputs, and shown only with the inputs that produced it."""

from __future__ import annotations

import json
import shlex

import numpy as np
import polars as pl
import pytest
from _dash import Dashboard, horizontal_lines, plain, title

from servegen_core.cli.parser import build_parser
from servegen_core.cli.whatif import slo_of
from servegen_core.generate.compose import compose
from servegen_core.paths import demo_data_dir
from servegen_core.serve import fleetcost as fc
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import ServerConfig
from servegen_core.serve.whatif import Slo, compare_spec, compare_trace
from servegen_core.sources.pool import load_pool
from servegen_core.sources.traces import load_trace

AZURE = "AzureLLMInferenceTrace_conv.csv"
A100 = "a100-80gb"


@pytest.fixture(scope="module")
def azure(traces_dir) -> pl.DataFrame:
    return load_trace(traces_dir / AZURE).trace


def _simulate(d: Dashboard) -> Dashboard:
    d.at.button(key="prov_run").click().run()
    return d.check()


def _command_args(d: Dashboard):
    (code,) = [c.value for c in d.at.code if c.value.startswith("servegen whatif")]
    return build_parser().parse_args(shlex.split(code)[1:])


def test_a_p90_end_to_end_objective_matches_the_core_and_hides_on_change(traces_dir, azure):
    d = Dashboard().trace(traces_dir / AZURE).open("provisioning")
    d.at.selectbox(key="prov_slo_q").select(90).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()
    d.at.number_input(key="prov_slo_e2e").set_value(9.0).run()
    _simulate(d)
    slo = Slo(ttft_p99_s=2.0, e2e_s=9.0, percentile=90)
    core = compare_trace(azure, slo, roofline("llama-3-8b", A100))
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    assert "p90 TTFT <= 2 s and p90 E2E <= 9 s" in core.sentence()
    # the charts show the objective's percentile, the end-to-end one with its bound
    assert title(d.figure("prov_ttft")) == "p90 TTFT vs replicas"
    e2e = d.figure("prov_e2e")
    assert title(e2e) == "p90 end-to-end latency vs replicas" and horizontal_lines(e2e) == [pytest.approx(9.0)]
    # the printed command parses into the page's objective
    assert slo_of(_command_args(d)) == slo
    # another percentile: the result belongs to other inputs and is hidden
    d.at.selectbox(key="prov_slo_q").select(95).run()
    d.check()
    assert not d.figures() and not d.at.success
    assert any("inputs changed since the last simulation" in c for c in d.captions())
    d.open("overview").open("provisioning")  # the inputs are kept for the session
    assert (d.at.selectbox(key="prov_slo_q").value, d.at.number_input(key="prov_slo_e2e").value) == (95, 9.0)


def _headers(d: Dashboard, *columns: str) -> dict[str, str]:
    """The column headers (column config labels, by column name) of the dataframe having every one of ``columns``."""
    (frame,) = [f for f in d.at.dataframe if all(c in f.value.columns for c in columns)]
    config = json.loads(frame.proto.columns or "{}")
    return {name: c["label"] for name, c in config.items() if "label" in c}


def test_the_answer_table_shows_the_chosen_percentile(traces_dir, azure):
    d = Dashboard().trace(traces_dir / AZURE).open("provisioning")
    d.at.selectbox(key="prov_slo_q").select(90).run()
    _simulate(d)
    core = compare_trace(azure, Slo(ttft_p99_s=2.0, tpot_p99_s=0.1, percentile=90), roofline("llama-3-8b", A100))
    n_real = core.table["replicas"][0]
    shown = d.table("workload", "replicas", "vs_realistic")
    latencies = ["ttft_p90_s", "tpot_p90_s", "e2e_p90_s"]
    assert [c for c in shown.columns if c.endswith("_s") and "_p" in c] == latencies  # no p99 (or p50) column
    headers = _headers(d, "workload", "replicas", "vs_realistic")
    assert [headers[c] for c in latencies] == ["p90 TTFT s", "p90 TPOT s", "p90 E2E s"]
    # each value is the workload's p90 on its curve at the realistic answer
    at = core.curves.filter(pl.col("replicas") == n_real)
    for name, row in zip(shown["workload"], shown.to_dict("records"), strict=True):
        curve = at.filter(pl.col("workload") == name).row(0, named=True)
        assert [row[c] for c in latencies] == pytest.approx([curve[c] for c in latencies])
    assert at.filter(pl.col("workload") == "realistic")["ttft_p90_s"][0] != at.filter(pl.col("workload") == "realistic")["ttft_p99_s"][0]


def test_scheduler_limits_reach_the_simulation_and_the_command(traces_dir, azure):
    d = Dashboard().trace(traces_dir / AZURE).open("provisioning")
    d.at.number_input(key="prov_max_num_seqs").set_value(8).run()
    d.at.number_input(key="prov_max_batched_tokens").set_value(2048).run()
    _simulate(d)
    config = ServerConfig(max_num_seqs=8, max_batched_tokens=2048)
    cost = roofline("llama-3-8b", A100)
    core = compare_trace(azure, Slo(ttft_p99_s=2.0, tpot_p99_s=0.1), cost, config=config)
    default = compare_trace(azure, Slo(ttft_p99_s=2.0, tpot_p99_s=0.1), cost)
    assert core.table["replicas"][0] > default.table["replicas"][0]  # 8 sequences per replica need more replicas
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    args = _command_args(d)
    assert (args.max_num_seqs, args.max_batched_tokens, args.chunked_prefill) == (8, 2048, True)
    assert (args.model, args.gpu, args.trace) == ("llama-3-8b", A100, str(traces_dir / AZURE))
    # limits vLLM would refuse are said, not simulated
    d.at.number_input(key="prov_max_batched_tokens").set_value(8).run()
    assert any("max_batched_tokens must exceed max_num_seqs" in e for e in d.errors())


@pytest.fixture
def three_hours(tmp_path):
    """Evenly spaced arrivals, 1 req/s, then 3 req/s from 1 h to 2 h, then 1 req/s: the busiest hour is [1 h, 2 h)."""
    t = np.concatenate([np.arange(0, 3600, 1.0), 3600 + np.arange(0, 3600, 1 / 3), 7200 + np.arange(0, 3600, 1.0)])
    n = len(t)
    path = tmp_path / "three_hours.csv"
    pl.DataFrame({
        "timestamp_s": t.round(6), "client_id": "a", "input_tokens": np.full(n, 300), "output_tokens": np.full(n, 40),
    }).write_csv(path)
    return path


def test_the_busiest_hour_of_a_trace_is_the_span_simulated(three_hours):
    d = Dashboard().trace(three_hours).open("provisioning")
    d.at.radio(key="prov_span").set_value("its busiest hour").run()
    d.check()
    assert any("Busiest 60 minutes of the span: " in c and "3.00 req/s" in c and "10,800 requests" in c for c in d.captions()), d.captions()
    _simulate(d)
    trace = load_trace(three_hours).trace
    hour = trace.filter((pl.col("timestamp_s") >= 3600) & (pl.col("timestamp_s") < 7200))
    core = compare_trace(hour, Slo(ttft_p99_s=2.0, tpot_p99_s=0.1), roofline("llama-3-8b", A100))
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    assert d.table("workload", "requests")["requests"].tolist() == [10_800, 10_800]
    assert any("the command line has no busiest-window option" in c for c in d.captions())
    # back to the sidebar's span: the busiest hour's result is hidden
    d.at.radio(key="prov_span").set_value("the sidebar's span").run()
    d.check()
    assert not d.at.success


def test_gpu_hours_cost_and_the_latency_floor(traces_dir, azure):
    d = Dashboard().trace(traces_dir / AZURE).open("provisioning")
    assert d.at.number_input(key=f"prov_price_{A100}").value == pytest.approx(fc.GPU_PRICES[A100].usd_per_gpu_hour)
    assert any("List price, edit it for yours" in c and fc.GPU_PRICES[A100].source in c for c in d.captions())
    _simulate(d)
    slo = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)
    cost = roofline("llama-3-8b", A100)
    core = compare_trace(azure, slo, cost)
    span_s = float(azure["timestamp_s"].max() - azure["timestamp_s"].min())
    n = core.table["replicas"][0]
    bill = fc.fleet_cost(n, A100, 1, span_s, requests=azure.height)
    texts = [plain(m.value) for m in d.at.markdown]
    assert any(bill.sentence() in t for t in texts), texts
    shown = d.table("workload", "gpu_hours", "cost_usd")
    assert shown["cost_usd"].tolist()[0] == pytest.approx(bill.cost_usd)
    # a price of the user's own: the cost follows, the simulation is kept
    d.at.number_input(key=f"prov_price_{A100}").set_value(2.0).run()
    d.check()
    assert d.at.success and d.table("workload", "cost_usd")["cost_usd"].tolist()[0] == pytest.approx(n * span_s / 3600 * 2.0)
    # the latency floor: every request alone, said against each objective
    floor = fc.latency_floor(azure, cost)
    info = next(i for i in d.infos() if i.startswith("Latency floor"))
    for line in floor.headroom(slo):
        assert line in info
    floor_shown = d.table("latency", "p99_s")
    assert floor_shown["p99_s"].tolist() == pytest.approx(floor.table["p99_s"].to_list())


def test_two_gpus_compared_in_one_run(traces_dir, azure):
    d = Dashboard().trace(traces_dir / AZURE).open("provisioning")
    d.at.selectbox(key="prov_b_gpu").select("a10g").run()
    d.at.number_input(key="prov_b_price_a10g").set_value(0.5).run()
    d.at.button(key="prov_cmp_run").click().run()
    d.check()
    slo = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)
    options = [
        fc.ServingOption("A: llama-3-8b@a100-80gb", roofline("llama-3-8b", A100), A100),
        fc.ServingOption("B: llama-3-8b@a10g", roofline("llama-3-8b", "a10g"), "a10g"),
    ]
    span_s = float(azure["timestamp_s"].max() - azure["timestamp_s"].min())
    core = fc.gpu_comparison(azure, options, slo, span_s=span_s, max_replicas=256).priced(
        {options[0].label: fc.GPU_PRICES[A100].usd_per_gpu_hour, options[1].label: 0.5}
    )
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    shown = d.table("option", "replicas", "cost_usd")
    assert shown["replicas"].tolist() == core.table["replicas"].to_list()
    assert shown["cost_usd"].tolist() == pytest.approx(core.table["cost_usd"].to_list())
    assert core.table["replicas"][1] > core.table["replicas"][0]  # the A10G needs more replicas
    # another model B: the comparison belongs to other inputs and is hidden
    d.at.selectbox(key="prov_b_model").select("qwen2.5-7b").run()
    d.check()
    assert not d.at.success
    assert any("since the last comparison" in c for c in d.captions())


def test_a_composed_spec_gets_its_floor_and_its_command():
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    d.open("provisioning")
    assert any("Span simulated: the spec's" in c for c in d.captions())
    d.at.multiselect(key="prov_baselines").set_value(["poisson"]).run()
    d.at.number_input(key="prov_slo_ttft").set_value(5.0).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()
    d.at.number_input(key="prov_slo_e2e").set_value(60.0).run()
    _simulate(d)
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    cost = roofline("llama-3-8b", A100)
    slo = Slo(ttft_p99_s=5.0, e2e_s=60.0)
    core = compare_spec(spec, slo, cost, naive=["poisson"], pool=pool)
    assert [plain(s.value) for s in d.at.success] == [core.sentence()]
    floor = fc.latency_floor(compose(spec, pool=pool).trace, cost)
    info = next(i for i in d.infos() if i.startswith("Latency floor"))
    assert all(line in info for line in floor.headroom(slo))
    args = _command_args(d)
    assert (args.spec, args.baselines, slo_of(args)) == ("spec.json", "poisson", slo)
