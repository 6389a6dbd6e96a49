"""Rate shifts: aggregate rate with the top clients stacked, hour × day heatmap, day over day, concentration."""

import streamlit as st

import charts
import core_calls
import fmt
from servegen_core.characterize import rates
from widgets import page

view = page.header("Rate shifts")

c1, c2, c3 = st.columns(3)
k = int(c1.number_input("Top-k clients", min_value=1, max_value=20, value=5, step=1, key="rs_k", persist_state="session"))
options, default = page.resolutions(view)
resolution = c2.selectbox("Bin length", options, index=options.index(default), format_func=fmt.fmt_resolution, key=f"rs_resolution_{view.source.id}")
origin_hour = 0.0
if not view.is_pool:
    start_time = view.loaded.start_time
    origin_hour = float(
        c3.number_input(
            "Hour of day at the trace start", min_value=0.0, max_value=23.99, value=round(view.loaded.origin_hour, 2), step=1.0,
            key=f"rs_origin_{view.source.id}", persist_state="session",
            help="A trace's time 0 is its first request; say which hour of day that was (set from the file's timestamps when they are wall-clock times).",
        )
    )
    if start_time is not None:
        c3.caption(f"The trace starts at {start_time:%Y-%m-%d %H:%M:%S} (from its timestamps).")
day_kw = {} if view.is_pool else {"origin_hour": origin_hour}

series = core_calls.compute(rates.top_k_series, k, resolution_s=resolution)
stability = core_calls.compute(rates.stability_summary, k=k, **day_kw)
if core_calls.usable(series, what="the stacked rate"):
    page.plot(charts.stacked_rate(series.frame, resolution_s=resolution), series.frame, key="rs_stacked")
    top_share = core_calls.compute(rates.top_k_share, k)
    text = []
    if top_share is not None and top_share.ok:
        text.append(f"The top {k} clients send {top_share.share:.0%} of the requests")
    if stability is not None and stability.ok:
        row = stability.frame.filter(stability.frame["group"] == f"top-{k}")
        if row.height and row["variance_share"][0] is not None:
            share = row["variance_share"][0]
            text.append(
                f"and carry {share:.0%} of the day-to-day variance of the total rate"
                + (" (the other clients move slightly against them)" if share > 1 else "")
            )
    elif stability is not None:
        text.append(f"(day-to-day variance: {stability.reason})")
    if text:
        st.caption(" ".join(text) + ".")

left, right = st.columns(2)
with left:
    matrix = core_calls.compute(rates.hour_day_matrix, **day_kw)
    if core_calls.usable(matrix, what="the hour × day heatmap"):
        page.plot(charts.hour_day_heatmap(matrix.frame), matrix.frame, key="rs_heatmap")
        daily = core_calls.compute(rates.daily_peak_trough, resolution_s=3600, **day_kw)
        if daily is not None and daily.ok and daily.frame.height and daily.frame["ratio"].drop_nulls().len():
            f = daily.frame
            lo, hi = f["ratio"].min(), f["ratio"].max()
            swing = f"{lo:,.2f}×" if f"{lo:,.2f}" == f"{hi:,.2f}" else f"{lo:,.1f}× to {hi:,.1f}×"
            partial = matrix.frame.filter(~matrix.frame["complete"]).height
            st.caption(
                f"Within a day the rate swings by {swing} between peak and trough (hourly rates)."
                + (
                    f" {partial} hour(s) are only partly inside the data (marked \"partial\"): their rate is their "
                    "requests over the minutes they cover."
                    if partial else ""
                )
            )
with right:
    dod = core_calls.compute(rates.day_over_day, **day_kw)
    if core_calls.usable(dod, what="the day-over-day change"):
        page.plot(charts.day_over_day(dod.frame), dod.frame, key="rs_dod")
        change = dod.frame["change_pct"].drop_nulls()
        if change.len() == 1:
            st.caption(f"The daily rate changes by {change[0]:+.0f} % from the first day to the second.")
        elif change.len():
            st.caption(f"The daily rate changes from one day to the next by {change.min():+.0f} % to {change.max():+.0f} %.")

left, right = st.columns(2)
with left:
    curve = core_calls.compute(rates.lorenz)
    gini = core_calls.compute(rates.gini)
    if core_calls.usable(curve, what="the Lorenz curve"):
        g = gini.value if gini is not None and gini.ok else None
        page.plot(charts.lorenz_curve(curve.frame, gini=g), curve.frame, key="rs_lorenz")
        if g is not None:
            st.caption(f"Gini coefficient of client volume: {g:.2f} (0 = equal volume, 1 = one client sends everything).")
with right:
    if stability is not None and stability.ok:
        st.markdown("**Who drives the day-to-day change**")
        st.dataframe(stability.frame, hide_index=True)
