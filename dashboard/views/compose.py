"""Compose: clients, mixing weights, rate function, span, duration and seed of a workload spec."""

import dataclasses

import polars as pl
import streamlit as st

import charts
import state
from plaintext import md
from servegen_core.spec import (
    ARRIVALS,
    LENGTHS,
    MISSING_LENGTHS,
    BoundedRate,
    ClientSelection,
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    Span,
    Weights,
    WorkloadSpec,
)

view = state.page_header("Compose")
source, why = state.spec_source(view)
if source is None:
    st.warning(f"This source cannot be composed from: {md(why)}.")
    st.stop()
pool = state.spec_pool(view, source)
if pool is None:
    st.stop()
sid = view.source.id


def build(make):
    """Run a spec constructor; a SpecError is shown with its key, and the page stops."""
    try:
        return make()
    except ValueError as exc:
        state.show_error(exc)
        st.stop()


#: How :attr:`ComposePlan.exclusions` reasons read on the page.
EXCLUSION_LABELS = {
    "not_selected": "not selected",
    "weight_zero": "with weight 0",
    "idle": "idle in the span",
    "no_lengths": "without length data",
}


def exclusion_note(composed, exclusions, *, max_ids: int = 6) -> str:
    """One line: how many of the span's clients are composed, and why the others are not."""
    total = len(composed) + sum(len(ids) for ids in exclusions.values())
    parts = []
    for reason, ids in exclusions.items():
        if ids:
            shown = md(", ".join(ids[:max_ids])) + (f" and {len(ids) - max_ids} more" if len(ids) > max_ids else "")
            parts.append(f"{len(ids)} {EXCLUSION_LABELS.get(reason, reason)} ({shown})")
    if not parts:
        return f"All {total:,} clients of the span are composed."
    return f"Of {total:,} clients in the span, not composed: " + "; ".join(parts) + "."


# --- 1. clients ---------------------------------------------------------------------------
st.subheader("Clients")
picked = state.selection(view)
modes = {
    "all": "All clients",
    "top_k": "Top-k by request share",
    "selection": f"Clients page selection ({len(picked)})",
    "ids": "Pick clients",
}
if not picked:
    modes.pop("selection")
mode = st.radio("Client subset", list(modes), format_func=modes.get, horizontal=True, key="cmp_mode", persist_state="session")
if mode == "top_k":
    k = st.number_input("k", min_value=1, max_value=len(pool.client_ids), value=min(10, len(pool.client_ids)), step=1, key=f"cmp_k_{sid}", persist_state="session")
    clients = build(lambda: ClientSelection(mode="top_k", k=int(k)))
elif mode == "selection":
    clients = build(lambda: ClientSelection(mode="ids", ids=picked))  # or the Clients page's filter, once the span is known
    st.caption("From the Clients page: " + md(", ".join(picked[:40])) + (" …" if len(picked) > 40 else ""))
    rule_note = st.empty()
elif mode == "ids":
    ids = st.multiselect("Clients", pool.client_ids, default=list(pool.client_ids[:3]), key=f"cmp_ids_{sid}", persist_state="session")
    if not ids:
        st.info("Pick at least one client.")
        st.stop()
    clients = build(lambda: ClientSelection(mode="ids", ids=tuple(ids)))
else:
    clients = ClientSelection()

# --- 2. span, duration, seed --------------------------------------------------------------
st.subheader("Span, duration and seed")
window = pool.window_s
starts = list(range(int(pool.start_s), int(pool.end_s), int(window)))
lo = max(int(view.start_s // window * window), starts[0])
default_start = lo if lo in starts else starts[0]
c1, c2, c3 = st.columns([2, 1, 1])
start_s = c1.select_slider(
    "Start in the source (source time)", options=starts, value=default_start, format_func=charts.fmt_time,
    key=f"cmp_start_{sid}", persist_state="session",
)
remaining_min = (pool.end_s - start_s) / 60
duration_min = c2.number_input(
    "Duration (minutes)", min_value=1.0, max_value=float(remaining_min), value=float(min(60.0, remaining_min)), step=10.0,
    key=f"cmp_duration_{sid}", persist_state="session",
)
seed = int(c3.number_input("Seed", min_value=0, value=0, step=1, key="cmp_seed", persist_state="session"))
span = build(lambda: Span(start_s=int(start_s), duration_s=float(duration_min) * 60))
if mode == "selection":
    rule, note = state.carried_rule(view, span.start_s, span.start_s + span.duration_s)
    if rule is not None:
        clients = rule
    if note:
        rule_note.caption(note)

# --- 3. rate function ---------------------------------------------------------------------
st.subheader("Rate function")
kinds = {
    "observed": "Observed (each client's recorded rate × factor)",
    "bounded": "Bounded (observed, scaled so the peak ≤ a limit)",
    "constant": "Constant",
    "ramp": "Linear ramp",
    "piecewise": "Piecewise (points)",
}
kind = st.selectbox("Kind", list(kinds), format_func=kinds.get, key="cmp_rate_kind", persist_state="session")
r1, r2 = st.columns(2)
if kind == "observed":
    factor = r1.number_input("Factor", min_value=0.01, value=1.0, step=0.1, key="cmp_factor", persist_state="session")
    rate = build(lambda: ObservedRate(factor=float(factor)))
elif kind == "bounded":
    peak = r1.number_input("Peak rate (req/s)", min_value=0.01, value=10.0, step=1.0, key="cmp_peak", persist_state="session")
    rate = build(lambda: BoundedRate(peak_rps=float(peak)))
elif kind == "constant":
    rps = r1.number_input("Rate (req/s)", min_value=0.01, value=5.0, step=1.0, key="cmp_rps", persist_state="session")
    rate = build(lambda: ConstantRate(rps=float(rps)))
elif kind == "ramp":
    a = r1.number_input("Start rate (req/s)", min_value=0.0, value=1.0, step=1.0, key="cmp_ramp_start", persist_state="session")
    b = r2.number_input("End rate (req/s)", min_value=0.0, value=10.0, step=1.0, key="cmp_ramp_end", persist_state="session")
    rate = build(lambda: RampRate(start_rps=float(a), end_rps=float(b)))
else:
    duration_s = float(duration_min) * 60
    default_points = pl.DataFrame({"t_s": [0.0, round(duration_s / 2)], "rps": [5.0, 10.0]})
    points = r1.data_editor(
        default_points, num_rows="dynamic", key=f"cmp_points_{sid}", hide_index=True,
        column_config={
            "t_s": st.column_config.NumberColumn("t (s from the start)", min_value=0.0),
            "rps": st.column_config.NumberColumn("rate (req/s)", min_value=0.0),
        },
    )
    interpolation = r2.radio("Between points", ["step", "linear"], horizontal=True, key="cmp_interp", persist_state="session")
    rows = [(float(t), float(r)) for t, r in points.drop_nulls().sort("t_s").iter_rows()]
    rate = build(lambda: PiecewiseRate(points=tuple(rows), interpolation=interpolation))

with st.expander("Arrivals and lengths"):
    a1, a2, a3, a4 = st.columns(4)
    arrivals = a1.selectbox("Arrivals", ARRIVALS, key="cmp_arrivals", persist_state="session", help="fitted: each window's recorded Gamma/Weibull pattern; poisson: exponential gaps")
    lengths = a2.selectbox("Lengths", LENGTHS, key="cmp_lengths", persist_state="session", help="client: each client's own length tables; pooled: one mixed table")
    missing = a3.selectbox(
        "Clients without lengths", MISSING_LENGTHS, key="cmp_missing", persist_state="session",
        help="exclude them (a warning names them) or give them the pooled lengths",
    )
    rho = a4.number_input("Input/output correlation", min_value=-1.0, max_value=1.0, value=0.0, step=0.1, key="cmp_rho", persist_state="session")

base = build(
    lambda: WorkloadSpec(
        source=source, span=span, clients=clients, rate=rate, arrivals=arrivals, lengths=lengths,
        missing_lengths=missing, length_correlation=float(rho), seed=seed,
    )
)
base_plan = state.plan(base, pool)
if base_plan is None:
    st.stop()

# --- 4. mixing weights --------------------------------------------------------------------
st.subheader("Mixing weights")
observed = base_plan.weights.select("client_id", "observed_share").with_columns(pl.col("observed_share").alias("weight"))
editor_key = f"cmp_weights_{sid}_{abs(hash(tuple(observed['client_id'].to_list()))) % 10**8}"
w1, w2 = st.columns([1, 2])
edited = w1.data_editor(
    observed, key=editor_key, hide_index=True, disabled=["client_id", "observed_share"],
    column_config={
        "client_id": st.column_config.TextColumn("client"),
        "observed_share": st.column_config.NumberColumn("observed share", format="%.4f"),
        "weight": st.column_config.NumberColumn("weight", min_value=0.0, format="%.4f", help="any non-negative number; 0 leaves the client out"),
    },
)
changed = not edited["weight"].equals(observed["weight"])
weights = build(lambda: Weights(mode="explicit", values=tuple(zip(edited["client_id"].to_list(), map(float, edited["weight"].to_list()), strict=True)))) if changed else Weights()
spec = dataclasses.replace(base, weights=weights) if changed else base
spec_plan = state.plan(spec, pool) if changed else base_plan
if spec_plan is None:
    st.stop()
with w2:
    st.plotly_chart(charts.weight_shares(spec_plan.weights), key="cmp_weights_chart")
    st.caption("Weights are normalized to request shares over the composed clients" + (" (edited)." if changed else " (observed shares)."))

# --- 5. the plan --------------------------------------------------------------------------
st.plotly_chart(charts.rate_plan(spec_plan.targets), key="cmp_rate_chart")
m1, m2, m3 = st.columns(3)
m1.metric("Expected requests", f"{spec_plan.expected_requests:,.0f}")
m2.metric("Clients composed", f"{len(spec_plan.clients):,}")
m2.caption(exclusion_note(spec_plan.clients, spec_plan.exclusions))
m3.metric("Mean rate (req/s)", f"{spec_plan.expected_requests / spec_plan.span_duration_s:,.2f}")
st.caption(
    f"{kinds[kind]} over {state.fmt_duration(spec_plan.span_duration_s)} from {charts.fmt_time(start_s)}; "
    f"target {spec_plan.target_requests:,.0f} requests, composed {spec_plan.expected_requests:,.0f}."
)
for warning in spec_plan.warnings:
    st.warning(md(warning))

naive_on = st.toggle("Compare with a naive baseline on the Preview page", key="cmp_naive", persist_state="session")
naive = None
if naive_on:
    naive = st.radio(
        "Naive baseline", ["poisson", "constant"], horizontal=True, key="cmp_naive_kind", persist_state="session",
        format_func={"poisson": "Poisson arrivals + pooled lengths", "constant": "… and a constant rate"}.get,
    )
state.set_spec(view, spec, naive=naive)
st.success("Spec ready: see **Preview** and **Export**.")
