"""Provisioning: how many serving replicas a workload needs for a latency SLO, realistic vs naive."""

import os

import polars as pl
import streamlit as st

import charts
import core_calls
import navigation
import session
from plaintext import md
from servegen_core.errors import SpecError
from servegen_core.serve.calibration import calibrate
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.hardware import GPUS, MODELS
from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class
from servegen_core.serve.simulate import ROUTERS, SESSION_MODES, ServerConfig
from servegen_core.serve.whatif import (
    DEFAULT_NAIVE_KINDS,
    DEFAULT_SLO,
    RANGE_SUB_WINDOWS,
    AnswerRange,
    Comparison,
    Slo,
    answer_range,
    compare_spec,
    compare_trace,
)
from servegen_core.spec import NAIVE_KINDS
from uploads import readable_path
from widgets import files, page

#: Environment variable: the largest workload (requests) simulated on this page.
MAX_SIM_ENV = "SERVEGEN_MAX_SIM_REQUESTS"
DEFAULT_MAX_SIM = 1_000_000
#: The default objectives: both latencies a chat user feels.
DEFAULT_TTFT_S, DEFAULT_TPOT_S = DEFAULT_SLO.ttft_p99_s, DEFAULT_SLO.tpot_p99_s
#: Latencies past which any user is hurt (a warning when the answer's own table shows one, objective or not).
CARE_TTFT_S, CARE_TPOT_S = 10.0, 0.2



def provisioning_words(under: float | None) -> str:
    """``1 - naive/realistic`` in words: ``"44 % under-provisioned"``, ``"6 % over-provisioned"``, ``"same as realistic"``."""
    if under is None:
        return ""
    if round(abs(under) * 100) == 0:
        return "same as realistic"
    return f"{under:.0%} under-provisioned" if under > 0 else f"{-under:.0%} over-provisioned"


def latency_warnings(table: pl.DataFrame, slo: Slo) -> list[str]:
    """Warnings for the answer's own latencies (realistic row, at its replica count) past what any user would accept."""
    real = table.filter(pl.col("workload") == "realistic")
    if real.height == 0 or real["replicas"][0] is None:
        return []
    row = real.row(0, named=True)
    out = []
    for name, value, care, objective in (
        ("p99 TTFT", row["ttft_p99_s"], CARE_TTFT_S, slo.ttft_p99_s),
        ("p99 TPOT", row["tpot_p99_s"], CARE_TPOT_S, slo.tpot_p99_s),
    ):
        if value is None or not value > care:
            continue
        why = "no objective is set on it" if objective is None else f"the objective allows {objective:g} s"
        out.append(
            f"At the answer ({row['replicas']} replicas) the realistic workload's {name} is {value:,.2f} s, above the "
            f"{care:g} s any user notices: {why}. Set a {name} objective to size the fleet for it."
        )
    return out


def slo_headroom(curves: pl.DataFrame, slo: Slo) -> str | None:
    """A note when an objective sits within 20 % above the lowest p99 any replica count reached (little headroom)."""
    real = curves.filter(pl.col("workload") == "realistic")
    notes = []
    for name, column, objective in (("p99 TTFT", "ttft_p99_s", slo.ttft_p99_s), ("p99 TPOT", "tpot_p99_s", slo.tpot_p99_s)):
        lowest = real[column].drop_nulls().min() if column in real.columns else None
        if objective is None or lowest is None or lowest <= 0:
            continue
        if objective <= 1.2 * lowest:
            notes.append(f"{name} ≤ {objective:g} s is within 20 % of the lowest {name} any simulated replica count reached ({lowest:,.3g} s)")
    if not notes:
        return None
    return "; ".join(notes) + ": the answer has little headroom, and a slightly tighter objective cannot be met by adding replicas."


view = page.header("Provisioning")
spec = session.current_spec(view)
if spec is None and view.is_pool:
    st.info(
        "Provisioning simulates a workload: build one on the Compose page (it is compared with its naive baselines), "
        "or load a raw request trace in the sidebar (it is compared with its Poisson baseline)."
    )
    st.page_link(navigation.page("compose").link, label="Go to Compose", icon=":material/tune:")
    st.stop()

choices = []
if spec is not None:
    choices.append("composed workload vs its naive baselines")
if not view.is_pool:
    choices.append("trace vs its Poisson baseline")
what = st.radio("Workload", choices, horizontal=True, key="prov_what", persist_state="session") if len(choices) > 1 else choices[0]
use_spec = what.startswith("composed")

c1, c2, c3, c4 = st.columns(4)
model = c1.selectbox("Model", list(MODELS), key="prov_model", persist_state="session")
gpu = c2.selectbox("GPU", list(GPUS), key="prov_gpu", persist_state="session")
tp = c3.number_input("GPUs per replica (tensor parallel)", min_value=1, max_value=16, value=1, step=1, key="prov_tp", persist_state="session")
eff = c4.slider("Efficiency (share of peak reached)", min_value=0.1, max_value=1.0, value=0.6, step=0.05, key="prov_eff", persist_state="session")
c1, c2, c3, c4 = st.columns(4)
slo_ttft = c1.number_input(
    "SLO: p99 TTFT (s, 0 = none)", min_value=0.0, max_value=3600.0, value=DEFAULT_TTFT_S, step=0.5, key="prov_slo_ttft",
    persist_state="session", help=f"Time to the first token; default {DEFAULT_TTFT_S:g} s.",
)
slo_tpot = c2.number_input(
    "SLO: p99 TPOT (s, 0 = none)", min_value=0.0, max_value=60.0, value=DEFAULT_TPOT_S, step=0.01, key="prov_slo_tpot",
    persist_state="session", help=f"Time per output token after the first; default {DEFAULT_TPOT_S:g} s (10 tokens/s).",
)
router = c3.selectbox("Router", list(ROUTERS), key="prov_router", persist_state="session")
max_replicas = c4.number_input("Most replicas tried", min_value=1, max_value=4096, value=256, step=1, key="prov_max", persist_state="session")
chunked = st.toggle(
    "Chunked prefill (current vLLM; off: prefill-first, vLLM V0)", value=True, key="prov_chunked", persist_state="session",
)
sessions = st.radio(
    "Sessions", list(SESSION_MODES), horizontal=True, key="prov_sessions", persist_state="session",
    help="closed: a session's next turn is sent its think time after the previous response (as AIPerf replays "
    "conversations; the default); open: every request at its timestamp. Only workloads with sessions differ.",
)
st.caption(
    f"The answer is the fewest replicas meeting every objective set above (defaults: p99 TTFT ≤ {DEFAULT_TTFT_S:g} s and "
    f"p99 TPOT ≤ {DEFAULT_TPOT_S:g} s); 0 turns an objective off."
)
naive_kinds = list(DEFAULT_NAIVE_KINDS)
if use_spec:
    naive_kinds = st.multiselect(
        "Naive baselines", list(NAIVE_KINDS), default=list(DEFAULT_NAIVE_KINDS), key="prov_baselines", persist_state="session",
        help="poisson: only the arrivals become Poisson (same rates per window); pooled_lengths: only the lengths are "
        "pooled over clients; poisson_pooled: both; constant: Poisson at the mean rate of the span (no rate shifts either).",
    )

ROOFLINE, CALIBRATED = "Roofline (datasheet peaks)", "Calibrated (your benchmark results)"
cost_kind = st.radio("Cost model", [ROOFLINE, CALIBRATED], horizontal=True, key="prov_cost", persist_state="session")
try:
    cost = roofline(model, gpu, efficiency=float(eff), tensor_parallel=int(tp))
    slo = Slo(ttft_p99_s=slo_ttft or None, tpot_p99_s=slo_tpot or None)
except SpecError as exc:
    core_calls.show_error(exc)
    st.stop()
if cost_kind == CALIBRATED:
    st.caption(
        "Fit the iteration time to your own measurements: an AIPerf profile_export_aiperf.json or a vLLM bench serve "
        "result JSON (one load level), or a CSV with columns prefill_tokens, decode_seqs, context_tokens, time_ms (one "
        "measured iteration per row). The KV-cache capacity stays the one of the model and GPUs chosen above."
    )
    chosen = files.upload_or_path(
        "Calibration file", keys=("prov_cal_how", "prov_cal_path", "prov_cal_upload"), allowed=("json", "csv"), slot="calibration",
    )
    if chosen is None:
        st.stop()
    cal_path, cal_name = chosen
    try:
        cost = calibrate([readable_path(cal_path)], base=cost, name=f"calibrated {model}@{gpu}")
    except Exception as exc:  # noqa: BLE001 - a bad file becomes a message on the page
        core_calls.show_error(exc)
        st.stop()
    st.caption(
        md(f"{cal_name or cal_path}: {cost.note}")
        + " Absolute numbers (latencies, replica counts) are only as good as the calibration: measure the server "
        "you will run, at several loads, with prompts like the workload's."
    )
else:
    st.caption(
        md(cost.note)
        + ". Absolute latencies are only as good as this cost model (datasheet peaks times the efficiency factor); "
        "calibrate it with your own benchmark results for real numbers (Cost model: Calibrated, or servegen whatif "
        "--calibration). What the page compares, realistic vs naive on the same model, does not depend on the absolute scale."
    )

with st.expander("Reference measurement: bursty m-large vs its naive baselines"):
    st.markdown(
        "ServeGen's language/m-large from 18:00 to 24:00 of day 0 at 3 % of its observed rates (204,482 requests), "
        "llama-3-8b on an A10G (roofline, efficiency 0.6), p99 TTFT <= 2 s: the realistic workload needs **9** "
        "replicas; Poisson arrivals with the same rates per window need **5** (44 % under-provisioned), pooled "
        "lengths 7 (22 %), both 5 (44 %), Poisson at the mean rate 4 (56 %). At 9 replicas the Poisson baseline's "
        "p99 TTFT is 0.77 s against 1.75 s for the realistic workload. The ServeGen paper reports 50 % in its "
        "production case. Measured with bench/serving.py (BENCHMARKS.md)."
    )

# size guard: every simulation replays every request
try:
    limit = int(os.environ.get(MAX_SIM_ENV) or DEFAULT_MAX_SIM)
except ValueError:
    limit = DEFAULT_MAX_SIM
if use_spec:
    source, _ = session.spec_source(view)
    pool = core_calls.spec_pool(view, source) if source is not None else None
    made_plan = core_calls.plan(spec, pool) if pool is not None else None
    if made_plan is None:
        st.stop()
    n_requests = int(made_plan.expected_requests)
    count_text = core_calls.request_count(spec, made_plan.expected_requests)
    span_s = float(made_plan.span_duration_s)
else:
    pool = None
    n_requests = view.data.height
    count_text = f"{n_requests:,} requests"
    span_s = float(view.data["timestamp_s"].max() - view.data["timestamp_s"].min()) if n_requests else 0.0
if n_requests > limit:
    st.warning(
        f"This workload has {count_text}; this page simulates at most {limit:,} "
        f"(${MAX_SIM_ENV}). Shorten the span or lower the rate, or run servegen whatif on the command line."
    )
    st.stop()

params = (view.key, spec if use_spec else None, cost, slo, router, int(max_replicas), bool(chunked), tuple(naive_kinds), sessions)
if st.button("Simulate", type="primary", key="prov_run"):
    names = ["realistic", *(naive_kinds if use_spec else ["poisson"])]
    bar = st.progress(0.0, text="Starting…")

    def progress(text: str) -> None:
        name = text.split(":", 1)[0]
        done = names.index(name) / len(names) if name in names else 0.0
        bar.progress(min(done, 1.0), text=md(text))

    config = ServerConfig(chunked_prefill=bool(chunked))
    common = {"config": config, "router": router, "max_replicas": int(max_replicas), "progress": progress, "sessions": sessions}
    # the realistic workload and its baselines, each simulated, within the server's one budget
    nbytes = core_calls.whatif_bytes(
        n_requests, workloads=len(names), replicas=int(max_replicas), span_s=span_s, composed=use_spec
    )
    what = f"simulating {count_text} x {len(names)} workloads on up to {int(max_replicas):,} replicas"
    try:
        with core_calls.within_budget(nbytes, what):
            if use_spec:
                result = compare_spec(spec, slo, cost, naive=naive_kinds, pool=pool, **common)
            else:
                result = compare_trace(view.data, slo, cost, **common)
    except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
        bar.empty()
        core_calls.show_error(exc)
        st.stop()
    bar.progress(1.0, text="Done.")
    st.session_state["prov_result"] = (params, result)

if use_spec:
    st.subheader("SLO classes")
    if spec.slo_classes is None:
        st.caption(
            "A spec with an slo_classes section gives its clients latency classes and priorities (e.g. interactive: "
            "p99 TTFT 1 s and TPOT 50 ms, priority 0; batch: p99 end-to-end 1 h, priority 1); the simulator then serves "
            "waiting requests by priority and this section answers per class. Add the section to the spec JSON."
        )
    else:
        objectives = classes_of_spec(spec)
        st.caption(
            "Replicas at which every class meets its own objective (and so does every larger count tried), waiting "
            "requests served lowest priority first: "
            + "; ".join(f"{name} (priority {spec.slo_classes.of(name).priority}): {o.describe()}" for name, o in objectives.items())
        )
        class_params = (*params, "classes")
        if st.button("Simulate by class", key="prov_class_run"):
            class_bytes = core_calls.whatif_bytes(n_requests, workloads=1, replicas=int(max_replicas), span_s=span_s, composed=True)
            made = core_calls.workload(spec, pool)  # composed (and cached) within its own budget
            if made is None:
                st.stop()
            with st.spinner("Searching the replicas every class needs…"):
                try:
                    with core_calls.within_budget(class_bytes, f"simulating {count_text} by class"):
                        by_class = min_replicas_by_class(
                            made.trace, objectives, cost, config=ServerConfig(chunked_prefill=bool(chunked)), router=router,
                            max_replicas=int(max_replicas), sessions=sessions,
                        )
                except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
                    core_calls.show_error(exc)
                    st.stop()
            st.session_state["prov_classes"] = (class_params, by_class)
        stored_classes = st.session_state.get("prov_classes")
        if stored_classes is not None and stored_classes[0] == class_params:
            by_class = stored_classes[1]
            (st.success if by_class.replicas is not None else st.warning)(md(by_class.sentence()))
            st.dataframe(by_class.by_class, hide_index=True, key="prov_class_table")

stored = st.session_state.get("prov_result")
if stored is None or stored[0] != params:
    if stored is not None:
        st.caption("The inputs changed since the last simulation: its result is hidden until you simulate these inputs.")
    st.info(f"Press Simulate to replay the workload ({count_text}) on growing numbers of replicas.")
    st.stop()
result: Comparison = stored[1]
table = result.table
(st.success if table["replicas"][0] is not None else st.warning)(md(result.sentence()))
answers = dict(zip(table["workload"].to_list(), table["replicas"].to_list(), strict=True))
cols = st.columns(len(answers))
for col, row in zip(cols, table.iter_rows(named=True), strict=True):
    value = "none" if row["replicas"] is None else f"{row['replicas']}"
    col.metric(f"{row['workload']}: replicas", value)
    if row["workload"] != "realistic" and row["under_provisioning"] is not None:
        col.caption(provisioning_words(row["under_provisioning"]))
for line in latency_warnings(table, slo):
    st.warning(md(line))
if (headroom := slo_headroom(result.curves, slo)) is not None:
    st.info(md(headroom))

left, right = st.columns(2)
with left:
    fig = charts.provisioning_curves(result.curves, metric="ttft_p99_s", slo_s=slo.ttft_p99_s, answers=answers)
    page.plot(fig, result.curves, key="prov_ttft")
with right:
    fig = charts.provisioning_curves(result.curves, metric="tpot_p99_s", slo_s=slo.tpot_p99_s, answers=answers)
    page.plot(fig, result.curves, key="prov_tpot")
n_real = answers.get("realistic")
st.caption(
    "Each point is one simulation of the workload; a run stops as soon as the objective is missed for sure, and its "
    "point then shows the replicas simulated before it stopped (simulated_share below 1 in the curves). The stars mark "
    "each workload's answer: the fewest replicas meeting the objective with every larger count tried meeting it too. "
    + (f"Latencies in the table are at the realistic count ({n_real} replicas)." if n_real is not None else "")
)
sim = result.realistic
if sim is not None:
    timeline = sim.fleet_timeline()
    page.plot(charts.fleet_timeline(timeline, replicas=sim.n_replicas, bin_s=sim.bin_s), timeline, key="prov_timeline")
    util = sim.replicas["utilization"].mean()
    st.caption(
        f"The realistic workload on {sim.n_replicas} replicas: {sim.replicas['preemptions'].sum():,} preemptions, "
        f"replicas busy {util:.0%} of the time on average (a replica is busy while any sequence runs)."
    )
unstable = table.filter(pl.col("unstable").fill_null(False))["workload"].to_list()
if unstable:
    st.warning(
        f"At the realistic count the queue of {', '.join(unstable)} is still growing at the end of the span (unstable): "
        "a count whose queue grows is never an answer, whatever its percentiles."
    )
shown = table.with_columns(
    pl.col("under_provisioning").map_elements(provisioning_words, return_dtype=pl.String).alias("vs_realistic")
).drop("under_provisioning")
st.dataframe(
    shown, hide_index=True, key="prov_table",
    column_config={
        "vs_realistic": st.column_config.TextColumn("vs realistic", help="What sizing the fleet by this baseline would do: under- or over-provision it, relative to the realistic need."),
        "met": st.column_config.CheckboxColumn("SLO met"),
        "attainment": st.column_config.NumberColumn("attainment", help="Share of the requests within every objective (each request against it, not the p99).", format="percent"),
        "goodput_rps": st.column_config.NumberColumn("goodput req/s", help="Requests within every objective per second of the span."),
        "unstable": st.column_config.CheckboxColumn("unstable", help="The queue is still growing at the end of the span."),
    },
)

if use_spec:
    st.subheader("The answer's uncertainty")
    st.caption(
        "The pool data fix each window's rate and CV, not the arrivals inside it: the realistic answer is searched again "
        f"under each plausible sub-window model ({', '.join(RANGE_SUB_WINDOWS)}) and over three seeds, the Poisson baseline "
        "over the seeds; the gap to the naive baseline is real only if it survives that range."
    )
    range_params = (*params, "range")
    if st.button("Simulate the range", key="prov_range_run"):
        # one seed and sub-window model at a time: its workload and Poisson baseline, composed and simulated
        range_bytes = core_calls.whatif_bytes(n_requests, workloads=2, replicas=int(max_replicas), span_s=span_s, composed=True)
        with st.spinner("Searching every seed and sub-window model…"):
            try:
                with core_calls.within_budget(range_bytes, f"simulating the range of {count_text}"):
                    spread = answer_range(
                        spec, slo, cost, naive=("poisson",), pool=pool, config=ServerConfig(chunked_prefill=bool(chunked)),
                        router=router, max_replicas=int(max_replicas), start=n_real, sessions=sessions,
                    )
            except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
                core_calls.show_error(exc)
                st.stop()
        st.session_state["prov_range"] = (range_params, spread)
    stored_range = st.session_state.get("prov_range")
    if stored_range is not None and stored_range[0] == range_params:
        spread: AnswerRange = stored_range[1]
        (st.success if spread.gap_survives else st.info)(md(spread.sentence()))
        st.dataframe(spread.runs, hide_index=True, key="prov_range_runs")
