"""Clients: the per-client summary, filtered and ranked; the selection is built by client id and feeds the composer."""

import polars as pl
import streamlit as st

import charts
import core_calls
import selection
from plaintext import md
from servegen_core.characterize.summary import client_summary, filter_clients
from widgets import page

view = page.header("Clients")
summary = core_calls.compute(client_summary)
if not core_calls.usable(summary, what="the client summary"):
    st.stop()
frame = summary.frame
numeric = [c for c, t in frame.schema.items() if c != "client_id" and (t.is_numeric() or t == pl.Boolean)]
sid = view.source.id

# A filter set on another source can name columns this source's summary lacks: drop them before drawing.
for stale_key, allowed in (("cl_filter_columns", numeric),):
    kept = [c for c in st.session_state.get(stale_key) or [] if c in allowed]
    if stale_key in st.session_state and kept != st.session_state[stale_key]:
        st.session_state[stale_key] = kept
if st.session_state.get("cl_by") not in (None, *numeric):
    st.session_state["cl_by"] = "request_share"

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

ids = core_calls.run(
    filter_clients, summary, key=(view.key, "filter"), ranges=ranges, top_k=top_k or None, by=by,
    spinner="Filtering clients…",
)
if ids is None:
    st.stop()
rule = selection.filter_rule(ranges, top_k or None, by)


def _add_top(k: int) -> None:
    top = filter_clients(summary, top_k=k, by=by)
    selection.add(view, top)


CLICK_CHARTS = ("cl_cv_rate", "cl_top")


def _chart_key(name: str) -> str:
    return f"{name}_{sid}_{selection.version()}"


def _add_clicked() -> None:
    """Add the clients picked on a chart in the last run (charts are keyed by the selection version)."""
    for name in CLICK_CHARTS:
        key = _chart_key(name)
        clicked = charts.selected_clients(st.session_state.get(key), st.session_state.get(f"{key}_ids") or [])
        if clicked:
            selection.add(view, clicked)  # new version: the charts are redrawn without the pick
            return


@st.fragment
def selection_panel() -> None:
    """Set operations, the table (rows ticked by client id) and clickable charts: reruns alone on a tick."""
    _add_clicked()
    st.markdown("**Build the selection** (a set of client ids: it survives filters, sorting and source switches)")
    b1, b2, b3, b4, b5 = st.columns(5)
    if b1.button(f"Use the {len(ids)} matching", key="cl_use_filtered", disabled=not ids, help="Replace the selection by the clients matching the filter (the spec can carry the filter itself)."):
        selection.replace(view, ids, rule=rule)
    if b2.button(f"Add the {len(ids)} matching", key="cl_add_filtered", disabled=not ids, help="Union: change the filter and add again to combine filters."):
        selection.add(view, ids)
    if b3.button("Keep only matching", key="cl_intersect", disabled=not selection.ids(), help="Intersection with the clients matching the filter."):
        selection.intersect(view, ids)
    if b4.button("Remove matching", key="cl_remove_filtered", disabled=not selection.ids(), help="Difference: drop the clients matching the filter."):
        selection.remove(view, ids)
    if b5.button("Clear the selection", key="cl_clear", disabled=not selection.ids()):
        selection.clear()

    s1, s2, s3, s4 = st.columns([2, 1, 1, 1])
    text = s1.text_input("Search by client id (several: separated by spaces or commas)", key=f"cl_search_{sid}", placeholder="e.g. 84 143")
    if s2.button("Add these ids", key="cl_search_add", disabled=not text.strip()):
        found, unknown = selection.search(view.client_ids, text)
        if found:
            selection.add(view, found)
        if unknown:
            st.warning(f"Not in {md(view.source.label)}: " + md(", ".join(unknown)))
    k = int(s3.number_input(f"Top-k by {by}", min_value=1, max_value=frame.height, value=min(5, frame.height), step=1, key="cl_add_k", persist_state="session"))
    if s4.button(f"Add the top {k}", key="cl_add_top", help=f"Union with the {k} clients ranked first by {by} (over all clients, filter aside)."):
        _add_top(k)

    order = pl.DataFrame({"client_id": ids}, schema={"client_id": frame.schema["client_id"]}).with_row_index("rank")
    shown = order.join(frame, on="client_id", how="left").drop("rank")
    shown_ids = shown["client_id"].to_list()
    key = selection.table_key(view, shown_ids)
    if not shown_ids:
        st.info(
            f"No client of {md(view.source.label)} matches the filter"
            + (f" ({md(selection.describe_rule(rule))})" if rule is not None else "")
            + ": widen or remove a bound above."
        )
    st.caption(
        f"{shown.height} of {frame.height} clients match, ordered by {by}. Tick rows to select clients: a tick belongs to "
        "the client id, so it stays with that client when the filter or the sort order changes."
    )
    event = st.dataframe(
        shown,
        key=key,
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        selection_default={"selection": {"rows": selection.default_rows(shown_ids)}},
        column_config={
            "client_id": st.column_config.TextColumn("client"),
            "request_share": st.column_config.NumberColumn("request share", format="percent"),
            "requests": st.column_config.NumberColumn("requests", format="%.0f"),
            "has_lengths": st.column_config.CheckboxColumn("lengths"),
        },
    )
    if event is not None:
        selection.merge_table_rows(view, shown_ids, event.selection.rows)

    # Click (or box/lasso) points to add those clients (read back at the top of the next run).
    left, right = st.columns(2)
    picked_now = set(selection.present(view))
    with left:
        points = frame.drop_nulls(["mean_rate_rps", "cv_rate_weighted"])
        if points.height:
            key = _chart_key("cl_cv_rate")
            st.session_state[f"{key}_ids"] = points["client_id"].to_list()
            fig = charts.cv_vs_rate(points, rate="mean_rate_rps", cv="cv_rate_weighted", selected=picked_now)
            st.plotly_chart(fig, key=key, on_select="rerun", selection_mode=("points", "box", "lasso"))
            page.csv_download(points.select("client_id", "mean_rate_rps", "cv_rate_weighted"), "clients_cv_vs_rate.csv", key="cl_cv_rate_csv")
    with right:
        shares = frame.sort("request_share", descending=True).select(
            "client_id", pl.col("requests"), pl.col("request_share").alias("share"), pl.col("request_share").cum_sum().alias("cum_share")
        )
        k_top = min(20, shares.height)
        key = _chart_key("cl_top")
        st.session_state[f"{key}_ids"] = shares["client_id"].head(k_top).to_list()
        st.plotly_chart(charts.top_clients(shares, k=k_top, selected=picked_now), key=key, on_select="rerun", selection_mode=("points", "box"))
        page.csv_download(shares.head(k_top), "top_clients.csv", key="cl_top_csv")
    st.caption("Click a point or a bar (or draw a box) to add those clients to the selection; selected clients are drawn in orange.")

    chosen = selection.present(view)
    absent = selection.missing(view)
    if absent:
        st.warning(
            f"{len(absent)} selected client(s) are not in {md(view.source.label)} and are left out here: "
            + md(", ".join(absent[:30])) + (" …" if len(absent) > 30 else "")
        )
    if chosen:
        sel = selection.get()
        how = f" (the clients matching {md(selection.describe_rule(sel.rule))})" if sel is not None and sel.rule is not None else ""
        st.success(f"Selection for Compose ({len(chosen)} clients{how}):")
        st.caption(md(", ".join(chosen)))
        if st.button("Open in Compose", key="cl_open_compose", type="primary", icon=":material/tune:"):
            selection.open_compose_with_selection()
    else:
        st.info("No selection yet: the composer uses all clients, top-k or its own pick.")


selection_panel()
