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


#: The composed workload may fall this far short of the rate function's target before the spec is "not ready".
MAX_TARGET_SHORTFALL = 0.05


def spec_problems(plan_) -> list[str]:
    """Why a planned spec is not ready: the share of the target it cannot place, settings kept from another source."""
    out = []
    if plan_.target_requests > 0 and plan_.expected_requests < (1 - MAX_TARGET_SHORTFALL) * plan_.target_requests:
        out.append(f"{1 - plan_.expected_requests / plan_.target_requests:.1%} of the target cannot be placed on the composed clients")
    if carried_settings(sid):
        out.append("settings kept from another source (see Rate function)")
    return out


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


#: The spec settings not keyed by source (rate, arrivals, lengths, seed, baseline) and their defaults.
SPEC_SETTING_DEFAULTS = {
    "cmp_rate_kind": "observed", "cmp_factor": 1.0, "cmp_peak": 10.0, "cmp_rps": 5.0, "cmp_ramp_start": 1.0,
    "cmp_ramp_end": 10.0, "cmp_points_value": None, "cmp_interp": "step", "cmp_arrivals": ARRIVALS[0],
    "cmp_lengths": LENGTHS[0], "cmp_rho": 0.0, "cmp_missing": WorkloadSpec.__dataclass_fields__["missing_lengths"].default,
    "cmp_seed": 0, "cmp_naive": False,
}
#: Which of them each rate kind uses (the others are not shown as kept).
RATE_KEYS = {
    "observed": ("cmp_factor",), "bounded": ("cmp_peak",), "constant": ("cmp_rps",),
    "ramp": ("cmp_ramp_start", "cmp_ramp_end"), "piecewise": ("cmp_points_value", "cmp_interp"),
}
SETTING_LABELS = {
    "cmp_rate_kind": "rate kind", "cmp_factor": "factor", "cmp_peak": "peak rate (req/s)", "cmp_rps": "rate (req/s)",
    "cmp_ramp_start": "ramp start (req/s)", "cmp_ramp_end": "ramp end (req/s)", "cmp_points_value": "rate points",
    "cmp_interp": "between points", "cmp_arrivals": "arrivals", "cmp_lengths": "lengths", "cmp_rho": "input/output correlation",
    "cmp_missing": "clients without length data", "cmp_seed": "seed", "cmp_naive": "naive baseline",
}
SETTINGS_SOURCE_KEY, SETTINGS_SOURCE_LABEL_KEY = "cmp_settings_source", "cmp_settings_source_label"


def carried_settings(source_id: str) -> list[str]:
    """The spec settings set on another source that differ from their defaults, as ``"rate (req/s) 100"``."""
    owner = st.session_state.get(SETTINGS_SOURCE_KEY)
    if owner is None or owner == source_id:
        return []
    kind = st.session_state.get("cmp_rate_kind", "observed")
    relevant = [n for n in SPEC_SETTING_DEFAULTS if n in RATE_KEYS.get(kind, ()) or not any(n in ks for ks in RATE_KEYS.values())]
    out = []
    for name in relevant:
        value = st.session_state.get(name, SPEC_SETTING_DEFAULTS[name])
        if value != SPEC_SETTING_DEFAULTS[name]:
            shown = specstate.readable_value(list(value) if isinstance(value, tuple) else value)
            out.append(f"{SETTING_LABELS[name]} {shown}")
    return out


def adopt_settings(source_id: str, label: str) -> None:
    """The spec settings now belong to this source (no "kept from another source" notice)."""
    st.session_state[SETTINGS_SOURCE_KEY] = source_id
    st.session_state[SETTINGS_SOURCE_LABEL_KEY] = label


def reset_settings(source_id: str, label: str) -> None:
    """Every spec setting back to its default, now owned by this source."""
    for name in SPEC_SETTING_DEFAULTS:
        st.session_state.pop(name, None)
    adopt_settings(source_id, label)


def observed_rate_note(span_: Span) -> str:
    """`` (this source records 5.5 req/s on average over the span)`` from a plan with the observed rate."""
    observed = core_calls.plan(WorkloadSpec(source=source, span=span_), pool)
    if observed is None or observed.span_duration_s <= 0:
        return ""
    return f" (this source records {observed.expected_requests / observed.span_duration_s:,.2f} req/s on average over the span)"


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
        busiest = core_calls.run(rates.client_shares, pool, key=(view.key, source, "client_shares"), spinner="Ranking the clients…")
        top = busiest.frame["client_id"].head(3).to_list() if busiest is not None and busiest.ok else list(pool.client_ids[:3])
        st.session_state[f"cmp_ids_{sid}"] = top  # the busiest clients of this source, not its first ids
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


def set_span(start: int, minutes: float) -> None:
    """Callback: the span widgets to ``start`` (seconds) for ``minutes``, before the next run draws them."""
    d, c = divmod(int(start), 86400)
    st.session_state[f"cmp_day_{sid}"] = d + 1
    st.session_state[f"cmp_clock_{sid}"] = fmt.fmt_clock(c)
    st.session_state[duration_key] = float(minutes)


# The busiest hour of the whole source (its aggregate rate series, from the core): one click sets the span to it.
busiest_hour = None if 3600 % int(pool.window_s) else core_calls.run(
    rates.busiest_window, pool, key=(view.key, source, "busiest_hour"), window_s=3600, resolution_s=int(pool.window_s),
    spinner="Finding the busiest hour…",
)
if busiest_hour is not None:
    b1, b2 = st.columns([1, 3])
    if busiest_hour.ok:
        at_busiest = start_s == busiest_hour.start_s and abs(float(duration_min) - 60.0) < 1e-9
        b1.button(
            "Busiest hour", key="cmp_busiest_hour", disabled=at_busiest, on_click=set_span, args=(busiest_hour.start_s, 60.0),
            help="set the span to the hour of this source with the most requests (all clients, whole windows of the source)",
        )
        ratio = busiest_hour.rate_rps / busiest_hour.mean_rps if busiest_hour.mean_rps else None
        b2.caption(
            f"Busiest hour of the source (all clients): {fmt.fmt_time(busiest_hour.start_s)} – {fmt.fmt_time(busiest_hour.end_s)}, "
            f"{busiest_hour.rate_rps:,.2f} req/s"
            + (f", {ratio:,.2f}x the source's mean of {busiest_hour.mean_rps:,.2f} req/s" if ratio else "")
            + (" (the span now)." if at_busiest else ".")
        )
    else:
        b2.caption(f"No busiest hour to pick: {md(busiest_hour.reason or 'no rate series')}.")
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
carried = carried_settings(sid)
if carried:
    st.warning(
        f"Kept from another source ({md(st.session_state.get(SETTINGS_SOURCE_LABEL_KEY) or 'the previous source')}): "
        + md("; ".join(carried))
        + ". Absolute rates and factors chosen for another source rarely fit this one"
        + (observed_rate_note(span) if st.session_state.get("cmp_rate_kind", "observed") != "observed" else "")
        + "."
    )
    k1, k2 = st.columns(2)
    # callbacks: they run before the next run's widgets exist, so the settings can be reset
    k1.button("Reset to this source's defaults", key="cmp_reset_carried", type="primary", on_click=reset_settings, args=(sid, view.source.label))
    k2.button("Keep them for this source", key="cmp_keep_carried", on_click=adopt_settings, args=(sid, view.source.label))
elif st.session_state.get(SETTINGS_SOURCE_KEY) != sid:
    adopt_settings(sid, view.source.label)
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
    # What the arrival data determine (issue 16): one caption, kept apart from the options above.
    st.caption(
        "Pool data determine each client's rate and inter-arrival CV per 600 s window and a fitted shape; they do "
        "not determine the structure below a second (bursts, on/off silences). How gaps are drawn inside a window "
        "is the spec's `sub_window` option, an assumption: by default `mmpp` for pool data (laid to each window's "
        "rate and CV) and each client's fitted model for a trace; `gamma` is ServeGen's. The Preview page's fidelity "
        "scorecard measures it against a trace."
    )
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
# A weight left untouched is the share the client carries with observed weights (what the
# workload gives it now), so editing one client leaves the others' shares where they were.
default_weight = dict(zip(candidates, base_plan.composed_shares["composed_share"].to_list(), strict=True))
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
                stored_weights.pop(rows_of[i], None)  # a cleared cell goes back to the share with observed weights
            else:
                stored_weights[rows_of[i]] = float(value)
    st.session_state.pop(key, None)
    st.session_state.pop(f"{key}_rows", None)
st.session_state[weights_key] = stored_weights
explicit = {c: stored_weights.get(c, default_weight[c]) for c in candidates} if any(c in stored_weights for c in candidates) else None
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
    shares = spec_plan.composed_shares  # what generation draws: the table's last column and the chart
    composed_share = dict(zip(shares["client_id"].to_list(), shares["composed_share"].to_list(), strict=True))
    table = pl.DataFrame(
        {
            "client_id": rows_ids,
            "status": [status.get(c, "left out") for c in rows_ids],
            "observed_share": [observed_share.get(c) for c in rows_ids],
            "weight": [stored_weights.get(c, default_weight.get(c)) for c in rows_ids],
            "composed_share": [composed_share.get(c, 0.0) for c in rows_ids],
        },
        schema={"client_id": pl.String, "status": pl.String, "observed_share": pl.Float64, "weight": pl.Float64, "composed_share": pl.Float64},
    )
    editor_key = f"{editor_prefix}{sid}_{abs(hash((tuple(rows_ids), tuple(sorted(stored_weights.items()))))) % 10**10}"
    st.session_state[f"{editor_key}_rows"] = rows_ids
    # the table at full width (every column in view), the notes and the chart beside each other under it
    st.data_editor(
        table, key=editor_key, hide_index=True, disabled=["client_id", "status", "observed_share", "composed_share"],
        column_config={
            "client_id": st.column_config.TextColumn("client", width="small"),
            "status": st.column_config.TextColumn("status"),
            "observed_share": st.column_config.NumberColumn("observed share", format="%.4g", help="share of the span's recorded requests"),
            "weight": st.column_config.NumberColumn(
                "weight", min_value=0.0, format="%.6g",
                help="the one column you edit: any non-negative number (normalized over the composed clients); 0 leaves the "
                "client out; clear a cell to go back to its share with observed weights",
            ),
            "composed_share": st.column_config.NumberColumn(
                "composed share", format="%.4g",
                help="the share of the generated requests this client gets (its expected requests over the total): the chart draws this",
            ),
        },
    )
    w1, w2 = st.columns([3, 2])
    with w1:
        zero = [c for c in candidates if c in stored_weights and stored_weights[c] <= 0]
        ignored = [c for c in stored_weights if c not in observed_share and c in status]
        notes = [
            "Composed vs chosen, before the spec is ready: the status says which clients will be composed and why the others will not. "
            "Edit the weight column (it starts at each client's share with observed weights); the composed share is exactly the share "
            "of the generated requests each client gets, as the chart draws it. Weights are kept by client id and take effect at once."
        ]
        if zero:
            notes.append(f"Weight 0 leaves out: {md(', '.join(zero))}.")
        if ignored:
            notes.append(f"Weights of clients left out for another reason are ignored: {md(', '.join(ignored))}.")
        st.caption(" ".join(notes))
        if stored_weights and st.button("Reset the weights (observed weights)", key="cmp_weights_reset"):
            st.session_state[weights_key] = {}
            st.rerun()
    with w2:
        page.plot(charts.weight_shares(shares), shares, key="cmp_weights_chart")
        st.caption("The composed share of each client (the table's last column) beside its recorded share" + (" (weights edited)." if explicit else " (observed weights)."))

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
problems = spec_problems(spec_plan)
checked = core_calls.checks_passed(spec)
if checked is not None and checked[0] < checked[1]:
    problems.append(f"it passes {checked[0]} of its {checked[1]} checks on Preview")
if problems:
    st.warning("Spec built, not ready: " + md("; ".join(problems)) + ". See **Preview** for its checks, or change the settings above.")
else:
    st.success("Spec ready: see **Preview** and **Export**." + (f" It passes all {checked[1]} checks." if checked else ""))
