"""Provisioning: how many serving replicas a workload needs for a latency SLO, realistic vs naive."""

import os
import shlex

import polars as pl
import streamlit as st

import charts
import core_calls
import navigation
import session
from plaintext import md
from servegen_core.cli.whatif import whatif_argv
from servegen_core.errors import SpecError
from servegen_core.serve.calibration import calibrate
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.hardware import GPUS, MODELS
from servegen_core.serve.fleetcost import LatencyFloor, ServingOption, fleet_cost, gpu_comparison, latency_floor
from servegen_core.serve.simulate import ROUTERS, SESSION_MODES
from servegen_core.serve.whatif import (
    DEFAULT_NAIVE_KINDS,
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
from widgets import provisioning as inputs
from widgets.slo_classes import slo_class_section

#: Environment variable: the largest workload (requests) simulated on this page.
MAX_SIM_ENV = "SERVEGEN_MAX_SIM_REQUESTS"
DEFAULT_MAX_SIM = 1_000_000
DEFAULT_TTFT_S, DEFAULT_TPOT_S = inputs.DEFAULT_TTFT_S, inputs.DEFAULT_TPOT_S
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
        if objective is None:
            why = "no objective is set on it"
        elif slo.percentile == 99:
            why = f"the objective allows {objective:g} s"
        else:
            why = f"the objective bounds only its p{slo.percentile} ({objective:g} s)"
        out.append(
            f"At the answer ({row['replicas']} replicas) the realistic workload's {name} is {value:,.2f} s, above the "
            f"{care:g} s any user notices: {why}. Set a {name} objective to size the fleet for it."
        )
    return out


def slo_headroom(curves: pl.DataFrame, slo: Slo) -> str | None:
    """A note when an objective sits within 20 % above the lowest percentile any simulated replica count reached (little headroom)."""
    real = curves.filter(pl.col("workload") == "realistic")
    notes = []
    q = slo.percentile
    labels = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
    for key, objective in slo.objectives():
        name, column = f"p{q} {labels[key]}", f"{key}_p{q}_s"
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
try:
    slo = inputs.slo_inputs()
except SpecError as exc:
    core_calls.show_error(exc)
    st.stop()
c1, c2 = st.columns(2)
router = c1.selectbox("Router", list(ROUTERS), key="prov_router", persist_state="session")
max_replicas = c2.number_input("Most replicas tried", min_value=1, max_value=4096, value=256, step=1, key="prov_max", persist_state="session")
try:
    config = inputs.server_inputs()
except SpecError as exc:
    core_calls.show_error(exc)
    st.stop()
chunked = config.chunked_prefill
sessions = st.radio(
    "Sessions", list(SESSION_MODES), horizontal=True, key="prov_sessions", persist_state="session",
    help="closed: a session's next turn is sent its think time after the previous response (as AIPerf replays "
    "conversations; the default); open: every request at its timestamp. Only workloads with sessions differ.",
)
st.caption(
    f"The answer is the fewest replicas meeting every objective set above at the chosen percentile (defaults: p99 TTFT ≤ "
    f"{DEFAULT_TTFT_S:g} s and p99 TPOT ≤ {DEFAULT_TPOT_S:g} s, no end-to-end objective); 0 turns an objective off. "
    f"Now: {md(slo.describe()).replace('<=', '≤')}."
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
        cost = calibrate([readable_path(cal_path)], base=cost, config=config, name=f"calibrated {model}@{gpu}")
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

# the span simulated and the price of a GPU-hour
if use_spec:
    st.caption("Span simulated: the spec's. Set it on Compose, where **Busiest hour** picks the hour of the source with the most requests.")
    requests, span_text = None, "the spec's span"
else:
    requests, span_text = inputs.trace_span(view)
cost_gpu = gpu  # a GPUS name: the price and the command line name it
price = inputs.price_input(cost_gpu, key="prov_price")

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
    n_requests = requests.height
    count_text = f"{n_requests:,} requests"
    span_s = float(requests["timestamp_s"].max() - requests["timestamp_s"].min()) if n_requests else 0.0
if n_requests > limit:
    st.warning(
        f"This workload has {count_text}; this page simulates at most {limit:,} "
        f"(${MAX_SIM_ENV}). Shorten the span or lower the rate, or run servegen whatif on the command line."
    )
    st.stop()


def realistic_requests(result: Comparison) -> pl.DataFrame | None:
    """The realistic workload's requests (the trace's span, else the simulation at the answer, else the composed spec)."""
    if requests is not None:
        return requests
    if result.realistic is not None:
        return result.realistic.requests.select(pl.col("arrival_s").alias("timestamp_s"), "input_tokens", "output_tokens")
    made = core_calls.workload(spec, pool)
    return None if made is None else made.trace


params = (view.key, spec if use_spec else None, span_text, cost, slo, router, int(max_replicas), config, tuple(naive_kinds), sessions)
simulated, compared, classes = st.container(), st.container(), st.container()  # the comparison is drawn first: the result part may stop the page
with compared:
    # another GPU or model, compared on the realistic workload in one run
    st.subheader("Compare with another GPU or model")
    st.caption(
        "The realistic workload on the serving option above and on a second one (roofline at the same efficiency): the fewest "
        "replicas each needs for the same objective, their GPU-hours and cost over the workload's span."
    )
    b1, b2, b3 = st.columns(3)
    model_b = b1.selectbox("Model B", list(MODELS), key="prov_b_model", persist_state="session")
    gpu_b = b2.selectbox("GPU B", list(GPUS), index=list(GPUS).index("h100-sxm"), key="prov_b_gpu", persist_state="session")
    tp_b = b3.number_input("GPUs per replica B", min_value=1, max_value=16, value=1, step=1, key="prov_b_tp", persist_state="session")
    price_b = inputs.price_input(gpu_b, key="prov_b_price", label="B: USD per GPU-hour")
    try:
        cost_b = roofline(model_b, gpu_b, efficiency=float(eff), tensor_parallel=int(tp_b))
    except SpecError as exc:
        core_calls.show_error(exc)
        cost_b = None
    option_a = ServingOption(f"A: {cost.name}", cost, cost_gpu, int(tp))
    option_b = ServingOption(f"B: {cost_b.name}", cost_b, gpu_b, int(tp_b)) if cost_b is not None else None
    cmp_params = (params, None if option_b is None else option_b.label, float(eff))
    if option_b is not None and option_b.label == option_a.label:
        st.info("Option B is the option above: pick another GPU, model or GPUs per replica.")
    elif option_b is not None and st.button("Compare the two", key="prov_cmp_run"):
        with st.spinner("Searching both serving options…"):
            try:
                nbytes = core_calls.whatif_bytes(n_requests, workloads=3, replicas=int(max_replicas), span_s=span_s, composed=use_spec)
                with core_calls.within_budget(nbytes, f"comparing two serving options on {count_text}"):
                    made = requests if requests is not None else getattr(core_calls.workload(spec, pool), "trace", None)
                    both = None if made is None else gpu_comparison(
                        made, [option_a, option_b], slo, span_s=span_s, config=config, router=router, max_replicas=int(max_replicas),
                        sessions=sessions,
                    )
            except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
                core_calls.show_error(exc)
                both = None
        if both is not None:
            st.session_state["prov_cmp"] = (cmp_params, both)
    stored_cmp = st.session_state.get("prov_cmp")
    if option_b is not None and stored_cmp is not None and stored_cmp[0] == cmp_params:
        both = stored_cmp[1]
        priced = both.priced({option_a.label: price, option_b.label: price_b})  # the prices now entered
        st.success(md(priced.sentence()))
        pq = f"p{slo.percentile}"
        st.dataframe(
            priced.table, hide_index=True, key="prov_cmp_table",
            column_config={
                "tensor_parallel": st.column_config.NumberColumn("GPUs per replica"),
                "gpu_hours": st.column_config.NumberColumn("GPU-hours", format="%.2f"),
                "usd_per_gpu_hour": st.column_config.NumberColumn("USD per GPU-hour", format="$%.3f"),
                "cost_usd": st.column_config.NumberColumn("cost (USD)", format="$%.2f"),
                "usd_per_million_requests": st.column_config.NumberColumn("USD per million requests", format="$%.2f"),
                "ttft_s": st.column_config.NumberColumn(f"{pq} TTFT s", format="%.3g"),
                "tpot_s": st.column_config.NumberColumn(f"{pq} TPOT s", format="%.3g"),
                "e2e_s": st.column_config.NumberColumn(f"{pq} E2E s", format="%.3g"),
            },
        )
    elif stored_cmp is not None:
        st.caption("The inputs changed since the last comparison: its result is hidden until you compare these inputs.")

if use_spec:
    with classes:
        slo_class_section(
            spec, pool, cost, config=config, router=router, max_replicas=int(max_replicas), sessions=sessions,
            params=params, n_requests=n_requests, span_s=span_s, count_text=count_text,
        )

with simulated:
    if st.button("Simulate", type="primary", key="prov_run"):
        names = ["realistic", *(naive_kinds if use_spec else ["poisson"])]
        bar = st.progress(0.0, text="Starting…")

        def progress(text: str) -> None:
            name = text.split(":", 1)[0]
            done = names.index(name) / len(names) if name in names else 0.0
            bar.progress(min(done, 1.0), text=md(text))

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
                    result = compare_trace(requests, slo, cost, **common)
                bar.progress(1.0, text="The latency floor: every request alone…")
                lone = realistic_requests(result)
                floor = latency_floor(lone, cost, config=config) if lone is not None else None
        except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
            bar.empty()
            core_calls.show_error(exc)
            st.stop()
        bar.progress(1.0, text="Done.")
        st.session_state["prov_result"] = (params, result, floor)

    stored = st.session_state.get("prov_result")
    if stored is None or stored[0] != params:
        if stored is not None:
            st.caption("The inputs changed since the last simulation: its result is hidden until you simulate these inputs.")
        st.info(f"Press Simulate to replay the workload ({count_text}) on growing numbers of replicas.")
        st.stop()
    result: Comparison = stored[1]
    floor: LatencyFloor | None = stored[2]
    table = result.table
    (st.success if table["replicas"][0] is not None else st.warning)(md(result.sentence()))
    answers = dict(zip(table["workload"].to_list(), table["replicas"].to_list(), strict=True))
    cols = st.columns(len(answers))
    for col, row in zip(cols, table.iter_rows(named=True), strict=True):
        value = "none" if row["replicas"] is None else f"{row['replicas']}"
        col.metric(f"{row['workload']}: replicas", value)
        if row["workload"] != "realistic" and row["under_provisioning"] is not None:
            col.caption(provisioning_words(row["under_provisioning"]))
    n_real = answers.get("realistic")
    if n_real is not None and span_s > 0:
        bill = fleet_cost(n_real, cost_gpu, int(tp), span_s, requests=int(table["requests"][0]), usd_per_gpu_hour=price)
        st.markdown("**Cost of the realistic answer:** " + md(f"{bill.sentence()}."))
    for line in latency_warnings(table, slo):
        st.warning(md(line))
    if (headroom := slo_headroom(result.curves, slo)) is not None:
        st.info(md(headroom))
    if floor is not None and floor.requests:
        notes = [f"a sample of {floor.requests:,} of {floor.of_requests:,} requests"] if floor.sampled else []
        if floor.left_out:
            notes.append(f"{floor.left_out:,} request{'' if floor.left_out == 1 else 's'} longer than the context or the KV cache left out")
        head = "Latency floor (every request alone on an idle replica, which no replica count beats" + "".join(f"; {n}" for n in notes) + "): "
        st.info(md(head + " ".join(floor.headroom(slo))))

    q = slo.percentile
    metrics = [(f"ttft_p{q}_s", slo.ttft_p99_s, "prov_ttft"), (f"tpot_p{q}_s", slo.tpot_p99_s, "prov_tpot")]
    if slo.e2e_s is not None:
        metrics.append((f"e2e_p{q}_s", slo.e2e_s, "prov_e2e"))
    for col, (metric, bound, key) in zip(st.columns(len(metrics)), metrics, strict=True):
        with col:
            page.plot(charts.provisioning_curves(result.curves, metric=metric, slo_s=bound, answers=answers), result.curves, key=key)
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
    latencies = inputs.latency_columns(q)
    shown = inputs.with_cost(table, gpu=cost_gpu, tp=int(tp), span_s=span_s, usd_per_gpu_hour=price).with_columns(
        pl.col("under_provisioning").map_elements(provisioning_words, return_dtype=pl.String).alias("vs_realistic")
    ).drop("under_provisioning", *(c for c in inputs.TABLE_LATENCY_COLUMNS if c not in latencies and c in table.columns))
    st.dataframe(
        shown, hide_index=True, key="prov_table",
        column_config={
            **{c: st.column_config.NumberColumn(label, help=f"{label[:-2]} (seconds) of the workload at the realistic count.", format="%.4g")
               for c, label in latencies.items()},
            "vs_realistic": st.column_config.TextColumn("vs realistic", help="What sizing the fleet by this baseline would do: under- or over-provision it, relative to the realistic need."),
            "met": st.column_config.CheckboxColumn("SLO met"),
            "attainment": st.column_config.NumberColumn("attainment", help="Share of the requests within every objective (each request against it, not the p99).", format="percent"),
            "goodput_rps": st.column_config.NumberColumn("goodput req/s", help="Requests within every objective per second of the span."),
            "unstable": st.column_config.CheckboxColumn("unstable", help="The queue is still growing at the end of the span."),
            "gpu_hours": st.column_config.NumberColumn("GPU-hours", help="Each answer's GPUs (replicas x GPUs per replica) held for the workload's span.", format="%.2f"),
            "cost_usd": st.column_config.NumberColumn("cost (USD)", help="GPU-hours at the price per GPU-hour above.", format="$%.2f"),
        },
    )
    if floor is not None and floor.requests:
        with st.expander("Latency floor: every request alone (seconds)"):
            st.dataframe(floor.table, hide_index=True, key="prov_floor")

    # the same run on the command line
    if use_spec:
        where = ("--spec", "spec.json")
    else:
        where = ("--trace", view.source.location if not view.source.display_name else "trace.csv")
    argv = whatif_argv(
        where, model=model, gpu=cost_gpu, slo=slo, config=config, tensor_parallel=int(tp), efficiency=float(eff), router=router,
        max_replicas=int(max_replicas), baselines=naive_kinds if use_spec else None,
    )
    if cost_kind == CALIBRATED:
        argv += ["--calibration", cal_name or "calibration.json"]
    st.caption(
        "The same comparison on the command line"
        + (" (spec.json: this spec, from the Export page)" if use_spec else "")
        + (" (the sidebar's whole span: the command line has no busiest-window option)" if not use_spec and requests is not view.data else "")
        + ":"
    )
    st.code(shlex.join(["servegen", *argv]), language="bash")

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
                            spec, slo, cost, naive=("poisson",), pool=pool, config=config,
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

