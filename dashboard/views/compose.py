"""Compose: clients, mixing weights, rate function, span, duration and seed of a workload spec."""

import dataclasses

import polars as pl
import streamlit as st

import charts
import core_calls
import fmt
import selection as picks
import session
import specstate
from plaintext import md
from servegen_core.characterize import rates
from servegen_core.generate.compose import rate_curve
from servegen_core.sources.pool import client_sort_key
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
from widgets import page
from widgets import prefix as prefix_widgets

# Values set from a chart (the span picked on the activity timeline) before the widgets exist.
for _key, _value in st.session_state.pop("cmp_pending_widgets", {}).items():
    st.session_state[_key] = _value


view = page.header("Compose")
source, why = session.spec_source(view)
if source is None:
    st.warning(f"This source cannot be composed from: {md(why)}.")
    st.stop()
pool = core_calls.spec_pool(view, source)
if pool is None:
    st.stop()
sid = view.source.id


def seeded(key: str, default):
    """``key``, its session value set to ``default`` first if it has none (so a restored value never clashes with a widget default)."""
    if key not in st.session_state:
        st.session_state[key] = default
    return key


def build(make):
    """Run a spec constructor; a SpecError is shown with its key, and the page stops."""
    try:
        return make()
    except ValueError as exc:
        core_calls.show_error(exc)
        st.stop()


#: How :attr:`ComposePlan.exclusions` reasons read on the page.
EXCLUSION_LABELS = {
    "not_selected": "not selected",
    "weight_zero": "with weight 0",
    "idle": "idle in the span",
    "no_lengths": "without length data",
}
#: The status of a chosen client in the selection table.
STATUS_LABELS = {
    "weight_zero": "left out: weight 0",
    "idle": "left out: idle in the span",
    "no_lengths": "left out: no length data",
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


# --- 0. keep work: import, undo -------------------------------------------------------------
shown = specstate.notice()
if shown is not None:
    (st.success if shown[0] == "success" else st.error)(shown[1])
t1, t2 = st.columns([1, 4])
if t1.button("Undo the last change", key="cmp_undo", disabled=not specstate.can_undo(), icon=":material/undo:"):
    specstate.undo()
    st.rerun()
with t2.expander("Import a spec (upload or paste spec.json)"):
    i1, i2 = st.columns(2)
    upload = i1.file_uploader("spec.json", type=["json"], key="cmp_import_file")
    pasted = i2.text_area("or paste its JSON", key="cmp_import_text", height=120)
    if st.button("Import", key="cmp_import", disabled=upload is None and not pasted.strip()):
        try:
            if upload is not None:
                spec_in = specstate.parse_upload(upload.getvalue(), name=upload.name)
            else:
                spec_in = specstate.parse_upload(pasted.encode(), name="the pasted spec")
        except ValueError as exc:
            core_calls.show_error(exc)
        else:
            specstate.request(spec_in, why="the imported spec")
            st.rerun()
    st.caption("The spec's source is opened in the sidebar and every setting below is set from it. The current spec is also kept in the page's address: reload it or share the link to restore this spec.")

# --- 1. clients ---------------------------------------------------------------------------
st.subheader("Clients")
picked = picks.present(view)
absent = picks.missing(view)
imported_clients = st.session_state.get("cmp_imported_clients")
modes = {
    "all": "All clients",
    "top_k": "Top-k by request share",
    "selection": f"Clients page selection ({len(picked)})",
    "ids": "Pick clients",
    "imported": "The imported spec's filter",
}
if not picked:
    modes.pop("selection")
if imported_clients is None:
    modes.pop("imported")
if st.session_state.get("cmp_mode") not in modes:
    st.session_state.pop("cmp_mode", None)
if "cmp_mode" not in st.session_state:
    st.session_state["cmp_mode"] = "selection" if picked else "all"  # a selection, once made, is the default
mode = st.radio("Client subset", list(modes), format_func=modes.get, horizontal=True, key="cmp_mode", persist_state="session")
rule_note = st.empty()
if mode == "top_k":
    k = st.number_input("k", min_value=1, max_value=len(pool.client_ids), step=1, key=seeded(f"cmp_k_{sid}", min(10, len(pool.client_ids))), persist_state="session")
    clients = build(lambda: ClientSelection(mode="top_k", k=int(k)))
elif mode == "selection":
    clients = build(lambda: ClientSelection(mode="ids", ids=picked))  # or the Clients page's filter, once the span is known
    st.caption("From the Clients page: " + md(", ".join(picked[:40])) + (" …" if len(picked) > 40 else ""))
    if absent:
        st.warning(
            f"{len(absent)} selected client(s) are not in {md(view.source.label)} and are left out: "
            + md(", ".join(absent[:20]) + (" …" if len(absent) > 20 else ""))
        )
elif mode == "ids":
    if f"cmp_ids_{sid}" not in st.session_state:
        st.session_state[f"cmp_ids_{sid}"] = list(pool.client_ids[:3])
    ids = st.multiselect("Clients", pool.client_ids, key=f"cmp_ids_{sid}", persist_state="session")
    if not ids:
        st.info("Pick at least one client.")
        st.stop()
    clients = build(lambda: ClientSelection(mode="ids", ids=tuple(ids)))
elif mode == "imported":
    clients = imported_clients
    st.caption(f"Filter from the imported spec: {md(picks.describe_rule(clients))}.")
else:
    clients = ClientSelection()
status_box = st.container()

# --- 2. span, duration, seed --------------------------------------------------------------
st.subheader("Span, duration and seed")
n_days = max(1, int(-(-(pool.end_s - pool.start_s) // 86400)))
first_day, first_clock = divmod(int(max(view.start_s, pool.start_s)), 86400)
c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
day = int(c1.number_input("Start day", min_value=1, max_value=n_days, step=1, key=seeded(f"cmp_day_{sid}", first_day + 1), persist_state="session"))
clock_text = c2.text_input("Start time (hh:mm)", key=seeded(f"cmp_clock_{sid}", fmt.fmt_clock(first_clock)), persist_state="session")
try:
    clock = fmt.parse_clock(clock_text)
except ValueError as exc:
    core_calls.show_error(exc)
    st.stop()
start_s = (day - 1) * 86400 + clock
if not pool.start_s <= start_s < pool.end_s:
    st.error(f"The start {fmt.fmt_time(start_s)} is outside the source, which covers {fmt.fmt_time(pool.start_s)} – {fmt.fmt_time(pool.end_s)}.")
    st.stop()
remaining_min = (pool.end_s - start_s) / 60
duration_key = f"cmp_duration_{sid}"
if duration_key in st.session_state and st.session_state[duration_key] > remaining_min:
    st.session_state[duration_key] = float(remaining_min)
    st.warning(f"The duration was shortened to the {remaining_min:,.0f} minutes left in the source after the new start.")
duration_min = c3.number_input(
    "Duration (minutes)", min_value=1.0, max_value=float(remaining_min), step=10.0,
    key=seeded(duration_key, float(min(60.0, remaining_min))), persist_state="session",
)
seed = int(c4.number_input("Seed", min_value=0, step=1, key=seeded("cmp_seed", 0), persist_state="session"))
duration_s = round(float(duration_min) * 60, 6)
span = build(lambda: Span(start_s=int(start_s), duration_s=duration_s))
end_s = start_s + duration_s
if mode == "selection":
    rule, note = picks.carried_rule(view, span.start_s, span.start_s + span.duration_s)
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
    factor = r1.number_input("Factor", min_value=0.01, step=0.1, key=seeded("cmp_factor", 1.0), persist_state="session")
    rate = build(lambda: ObservedRate(factor=float(factor)))
elif kind == "bounded":
    peak = r1.number_input("Peak rate (req/s)", min_value=0.01, step=1.0, key=seeded("cmp_peak", 10.0), persist_state="session")
    rate = build(lambda: BoundedRate(peak_rps=float(peak)))
elif kind == "constant":
    rps = r1.number_input("Rate (req/s)", min_value=0.01, step=1.0, key=seeded("cmp_rps", 5.0), persist_state="session")
    rate = build(lambda: ConstantRate(rps=float(rps)))
elif kind == "ramp":
    a = r1.number_input("Start rate (req/s)", min_value=0.0, step=1.0, key=seeded("cmp_ramp_start", 1.0), persist_state="session")
    b = r2.number_input("End rate (req/s)", min_value=0.0, step=1.0, key=seeded("cmp_ramp_end", 10.0), persist_state="session")
    rate = build(lambda: RampRate(start_rps=float(a), end_rps=float(b)))
else:
    stored = st.session_state.get("cmp_points_value")
    rows0 = list(stored) if stored else [(0.0, 5.0), (float(round(duration_s / 2)), 10.0)]
    default_points = pl.DataFrame({"t_s": [float(t) for t, _ in rows0], "rps": [float(r) for _, r in rows0]})
    points = r1.data_editor(
        default_points, num_rows="dynamic", key=f"cmp_points_{sid}_{st.session_state.get('cmp_points_version', 0)}", hide_index=True,
        column_config={
            "t_s": st.column_config.NumberColumn("t (s from the start)", min_value=0.0),
            "rps": st.column_config.NumberColumn("rate (req/s)", min_value=0.0),
        },
    )
    interpolation = r2.radio("Between points", ["step", "linear"], horizontal=True, key="cmp_interp", persist_state="session")
    rows = [(float(t), float(r)) for t, r in points.drop_nulls().sort("t_s").iter_rows()]
    rate = build(lambda: PiecewiseRate(points=tuple(rows), interpolation=interpolation))

default_missing = WorkloadSpec.__dataclass_fields__["missing_lengths"].default
with st.expander("Arrivals and lengths"):
    a1, a2, a3 = st.columns(3)
    arrivals = a1.selectbox("Arrivals", ARRIVALS, key="cmp_arrivals", persist_state="session", help="fitted: each window's recorded Gamma/Weibull pattern with its recorded CV; poisson: exponential gaps; empirical: a fitted trace's observed gaps")
    lengths = a2.selectbox("Lengths", LENGTHS, key="cmp_lengths", persist_state="session", help="client: each client's own length tables; pooled: one mixed table")
    rho = a3.number_input("Input/output correlation", min_value=-1.0, max_value=1.0, step=0.1, key=seeded("cmp_rho", 0.0), persist_state="session")
with status_box:
    missing = st.selectbox(
        "Clients without length data", MISSING_LENGTHS, key=seeded("cmp_missing", default_missing),
        persist_state="session", help="what the workload does for a client (or window) without length tables: see the status column below",
    )
    if missing == "borrow":
        st.caption("Clients without length data borrow lengths: the request-weighted mixture of the other composed clients' tables in the same length window, so their load is kept.")

prefix_section = prefix_widgets.prefix_section(view, specstate.template(source))
page_fields = {
    "source": source, "span": span, "clients": clients, "rate": rate, "arrivals": arrivals, "lengths": lengths,
    "missing_lengths": missing, "length_correlation": float(rho), "seed": seed, "prefix": prefix_section,
}
# Keys this page does not edit (e.g. arrival_shape) are kept from a restored spec.
template = specstate.template(source)
base = build(lambda: dataclasses.replace(template, **page_fields, weights=Weights()) if template is not None else WorkloadSpec(**page_fields))
kept = specstate.kept_keys(base)
if kept:
    st.caption(f"Kept from the restored spec (not edited on this page): {', '.join(kept)}.")
base_plan = core_calls.plan(base, pool)
if base_plan is None:
    st.stop()

# --- 4. mixing weights, by client id ------------------------------------------------------
weights_key = f"cmp_wt_{sid}"
stored_weights: dict[str, float] = dict(st.session_state.get(weights_key, {}))
candidates = base_plan.weights["client_id"].to_list()
observed_share = dict(zip(candidates, base_plan.weights["observed_share"].to_list(), strict=True))
# Fold the last edit of the table into the weights (the table is keyed by its rows and the weights).
editor_prefix = "cmp_wtable_"
for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(editor_prefix) and not k.endswith("_rows")]:
    edits = st.session_state.get(key)
    rows_of = st.session_state.get(f"{key}_rows")
    if not isinstance(edits, dict) or rows_of is None:
        continue
    for i, change in (edits.get("edited_rows") or {}).items():
        i = int(i)
        if "weight" in change and 0 <= i < len(rows_of):
            value = change["weight"]
            if value is None:
                stored_weights.pop(rows_of[i], None)  # a cleared cell goes back to the observed share
            else:
                stored_weights[rows_of[i]] = float(value)
    st.session_state.pop(key, None)
    st.session_state.pop(f"{key}_rows", None)
st.session_state[weights_key] = stored_weights
explicit = {c: stored_weights.get(c, observed_share[c]) for c in candidates} if any(c in stored_weights for c in candidates) else None
weights = build(lambda: Weights(mode="explicit", values=tuple(explicit.items()))) if explicit else Weights()
spec = dataclasses.replace(base, weights=weights) if explicit else base
spec_plan = core_calls.plan(spec, pool) if explicit else base_plan
if spec_plan is None:
    st.stop()

# Explicit weights list only the clients that can carry load, so the core files a client left
# out for lack of length data (or idle) under "weight 0" too: show it under its own reason.
exclusions = {r: list(ids_) for r, ids_ in spec_plan.exclusions.items()}
if explicit:
    for c in [c for c in exclusions["weight_zero"] if c not in observed_share]:
        reason = next((r for r in ("idle", "no_lengths") if c in base_plan.exclusions[r]), None)
        if reason is not None:
            exclusions["weight_zero"].remove(c)
            exclusions[reason].append(c)
    exclusions = {r: sorted(v, key=client_sort_key) for r, v in exclusions.items()}

with status_box:
    cwl = spec_plan.client_windows
    borrowing = set(cwl.filter(pl.col("length_source") == "borrowed")["client_id"].unique().to_list())
    pooled_clients = set(cwl.filter(pl.col("length_source") == "pooled")["client_id"].unique().to_list())
    status = {
        c: (
            "composed, borrowed lengths (same window's mix)" if c in borrowing and lengths == "client"
            else "composed, borrowed (pooled) lengths" if c in pooled_clients and lengths == "client"
            else "composed"
        )
        for c in spec_plan.clients
    }
    for reason, label in STATUS_LABELS.items():
        for c in exclusions[reason]:
            status[c] = label
    rows_ids = [c for c in candidates] + [c for c in status if c not in observed_share]
    composed_share = dict(zip(spec_plan.weights["client_id"].to_list(), spec_plan.weights["weight_share"].to_list(), strict=True))
    table = pl.DataFrame(
        {
            "client_id": rows_ids,
            "status": [status.get(c, "left out") for c in rows_ids],
            "observed_share": [observed_share.get(c) for c in rows_ids],
            "weight": [stored_weights.get(c, observed_share.get(c)) for c in rows_ids],
            "composed_share": [composed_share.get(c, 0.0) for c in rows_ids],
        },
        schema={"client_id": pl.String, "status": pl.String, "observed_share": pl.Float64, "weight": pl.Float64, "composed_share": pl.Float64},
    )
    editor_key = f"{editor_prefix}{sid}_{abs(hash((tuple(rows_ids), tuple(sorted(stored_weights.items()))))) % 10**10}"
    st.session_state[f"{editor_key}_rows"] = rows_ids
    w1, w2 = st.columns([3, 2])
    with w1:
        st.data_editor(
            table, key=editor_key, hide_index=True, disabled=["client_id", "status", "observed_share", "composed_share"],
            column_config={
                "client_id": st.column_config.TextColumn("client"),
                "status": st.column_config.TextColumn("status"),
                "observed_share": st.column_config.NumberColumn("observed share", format="%.4g", help="share of the span's recorded requests"),
                "weight": st.column_config.NumberColumn(
                    "weight", min_value=0.0, format="%.6g",
                    help="any non-negative number (normalized over the composed clients); 0 leaves the client out; clear a cell to go back to the observed share",
                ),
                "composed_share": st.column_config.NumberColumn("composed share", format="%.4g"),
            },
        )
        zero = [c for c in candidates if c in stored_weights and stored_weights[c] <= 0]
        ignored = [c for c in stored_weights if c not in observed_share and c in status]
        notes = [
            "Composed vs chosen, before the spec is ready: the status says which clients will be composed and why the others will not. "
            "Weights are kept by client id and take effect at once."
        ]
        if zero:
            notes.append(f"Weight 0 leaves out: {md(', '.join(zero))}.")
        if ignored:
            notes.append(f"Weights of clients left out for another reason are ignored: {md(', '.join(ignored))}.")
        st.caption(" ".join(notes))
        if stored_weights and st.button("Reset weights to the observed shares", key="cmp_weights_reset"):
            st.session_state[weights_key] = {}
            st.rerun()
    with w2:
        page.plot(charts.weight_shares(spec_plan.weights), spec_plan.weights, key="cmp_weights_chart")
        st.caption("Weights are normalized to request shares over the composed clients" + (" (edited)." if explicit else " (observed shares)."))

    # Activity of the chosen clients over the whole source, with the span on it.
    chosen_ids = list(status)
    if chosen_ids:
        n_show = min(len(chosen_ids), 12)
        res = 3600 if pool.end_s - pool.start_s > 2 * 86400 else int(pool.window_s)

        def activity(pool_, ids_, k_, resolution_s):
            return rates.top_k_series(pool_.select_clients(list(ids_)), k_, resolution_s=resolution_s)

        series = core_calls.run(
            activity, pool, tuple(chosen_ids), n_show, res, key=(view.key, source, tuple(chosen_ids), n_show, res),
            spinner="Client activity…",
        )
        if core_calls.usable(series, what="the client activity"):
            pick_version = int(st.session_state.get("cmp_span_pick", 0))
            fig = charts.client_activity(series.frame, resolution_s=res, span=(start_s, end_s))
            ev = st.plotly_chart(fig, key=f"cmp_activity_{sid}_{pick_version}", on_select="rerun", selection_mode="box")
            page.csv_download(series.frame, "client_activity.csv", key="cmp_activity_csv")
            box = (ev or {}).get("selection", {}).get("box") or []
            if box and box[0].get("x"):
                x0, x1 = sorted(float(v) for v in box[0]["x"][:2])
                scale = fmt.time_unit(float(series.frame["start_s"].max() - series.frame["start_s"].min()))[1]
                new_start = int(max(pool.start_s, round(x0 * scale / 60) * 60))
                new_end = min(float(pool.end_s), round(x1 * scale / 60) * 60)
                if new_end > new_start:
                    d, c = divmod(new_start, 86400)
                    st.session_state["cmp_pending_widgets"] = {
                        f"cmp_day_{sid}": d + 1, f"cmp_clock_{sid}": fmt.fmt_clock(c),
                        duration_key: (new_end - new_start) / 60,
                    }
                    st.session_state["cmp_span_pick"] = pick_version + 1
                    st.rerun()
            st.caption(
                f"Request rate of the {'first ' + str(n_show) + ' of the ' if n_show < len(chosen_ids) else ''}{len(chosen_ids)} chosen clients over the "
                f"whole source ({fmt.fmt_resolution(res)} bins); the shaded band is the span. Drag a box on the chart to set the span."
            )
            dropped = exclusions["idle"] if mode != "all" else ()
            if dropped:
                st.warning(f"The span drops all the activity of {len(dropped)} chosen client(s): {md(', '.join(dropped[:20]))}" + (" …" if len(dropped) > 20 else "") + ".")

# --- 5. the plan --------------------------------------------------------------------------
st.subheader("Rate of the workload")
curve = core_calls.run(rate_curve, spec_plan, key=(spec, "rate_curve"), spinner="Rate function…")
if curve is not None:
    page.plot(charts.rate_plan(curve), curve, key="cmp_rate_chart")
m1, m2, m3 = st.columns(3)
m1.metric("Expected requests", f"about {spec_plan.expected_requests:,.0f}", help="The plan's estimate; the generated file has a number close to it (Preview shows the exact count).")
m2.metric("Clients composed", f"{len(spec_plan.clients):,}")
m2.caption(exclusion_note(spec_plan.clients, exclusions))
m3.metric("Mean rate (req/s)", f"{spec_plan.expected_requests / spec_plan.span_duration_s:,.2f}")
st.caption(
    f"{kinds[kind]} over {fmt.fmt_duration(spec_plan.span_duration_s)} from {fmt.fmt_time(start_s)}; "
    f"target {spec_plan.target_requests:,.0f} requests, composed {spec_plan.expected_requests:,.0f}. The chart draws the rate "
    "function exactly as generation uses it (evaluated on a fine grid, both sides of every step)."
)
for warning in spec_plan.warnings:
    st.warning(md(warning))

naive_on = st.toggle("Compare with a naive baseline on the Preview page", key="cmp_naive", persist_state="session")
naive = None
if naive_on:
    naive = st.radio(
        "Naive baseline", session.NAIVE_KINDS, horizontal=True, key="cmp_naive_kind", persist_state="session",
        format_func=session.NAIVE_LABELS.get,
    )
specstate.remember(spec)  # the undo history and the URL
session.set_spec(spec, view.source)
session.set_naive(naive)
expected = st.session_state.pop("cmp_expected_spec", None)
if expected is not None and expected != spec:
    st.info("The restored spec is not exactly representable on this page; the spec below differs from it (see Export for the JSON).")
st.success("Spec ready: see **Preview** and **Export**.")
