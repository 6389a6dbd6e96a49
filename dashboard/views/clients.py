"""Clients: the per-client summary table, sortable and filterable; the selection feeds the composer."""

import polars as pl
import streamlit as st

import state
from plaintext import md
from servegen_core.summary import client_summary, filter_clients

view = state.page_header("Clients")
summary = state.compute(client_summary)
if not state.usable(summary, what="the client summary"):
    st.stop()
frame = summary.frame
numeric = [c for c, t in frame.schema.items() if c != "client_id" and (t.is_numeric() or t == pl.Boolean)]

c1, c2, c3 = st.columns([1, 1, 2])
by = c1.selectbox("Rank by", numeric, index=numeric.index("request_share"), key="cl_by", persist_state="session")
top_k = int(c2.number_input("Top-k (0 = all)", min_value=0, max_value=frame.height, value=0, step=1, key="cl_top_k", persist_state="session"))
columns = c3.multiselect("Filter on columns", numeric, key="cl_filter_columns", persist_state="session")
ranges = {}
if columns:
    cols = st.columns(min(len(columns), 4))
    for i, col in enumerate(columns):
        with cols[i % len(cols)]:
            lo = st.number_input(f"{col} ≥", value=None, key=f"cl_lo_{col}", persist_state="session", placeholder="no minimum")
            hi = st.number_input(f"{col} ≤", value=None, key=f"cl_hi_{col}", persist_state="session", placeholder="no maximum")
            ranges[col] = (lo, hi)

ids = state.run(
    filter_clients, summary, key=(view.key, "filter"), ranges=ranges, top_k=top_k or None, by=by,
    spinner="Filtering clients…",
)
if ids is None:
    st.stop()
order = pl.DataFrame({"client_id": ids}).with_row_index("rank")
shown = order.join(frame, on="client_id", how="left").drop("rank")
st.caption(f"{shown.height} of {frame.height} clients match, ordered by {by} (click a header to sort; select rows to pick clients).")
event = st.dataframe(
    shown,
    key="cl_table",
    hide_index=True,
    on_select="rerun",
    selection_mode="multi-row",
    column_config={
        "request_share": st.column_config.NumberColumn("request share", format="percent"),
        "requests": st.column_config.NumberColumn("requests", format="%.0f"),
        "has_lengths": st.column_config.CheckboxColumn("lengths"),
    },
)
rows = list(event.selection.rows) if event is not None else []
picked = [shown["client_id"][i] for i in rows]

b1, b2, b3 = st.columns(3)
if b1.button(f"Use the {len(ids)} matching clients", key="cl_use_filtered", disabled=not ids):
    state.set_selection(view, ids, rule=state.filter_rule(ranges, top_k or None, by))
if b2.button(f"Use the {len(picked)} selected rows", key="cl_use_rows", disabled=not picked):
    state.set_selection(view, picked)
if b3.button("Clear the selection", key="cl_clear"):
    st.session_state.pop("selection", None)

current = state.selection(view)
if current:
    st.success(f"Selection for Compose ({len(current)} clients): {md(', '.join(current[:30]))}{' …' if len(current) > 30 else ''}")
    st.page_link("views/compose.py", label="Compose a workload from them", icon=":material/tune:")
else:
    st.info("No selection yet: the composer uses all clients, top-k or its own pick.")
