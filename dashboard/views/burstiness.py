"""Burstiness: CV of inter-arrival times per window, CV against rate, arrival patterns, fitted gap distributions."""

import streamlit as st

import charts
import core_calls
import fmt
from plaintext import md
from servegen_core.characterize import arrivals, rates
from servegen_core.characterize import summary as summary_mod
from widgets import page

ALL_CLIENTS = "all clients"
#: client_summary columns plotted against each other.
CLIENT_RATE = "mean_rate_rps"
CLIENT_CV = "cv_rate_weighted"

view = page.header("Burstiness")

options, _ = page.resolutions(view, min_bins=1)
windows = [w for w in options if 60 <= w <= 3600] or options[:1]
c1, c2, c3 = st.columns(3)
window_s = c1.selectbox(
    "CV window", windows, index=windows.index(600) if 600 in windows else 0, format_func=fmt.fmt_resolution,
    key=f"burst_window_{view.source.id}", persist_state="session",
)
min_requests = c2.number_input("Minimum requests per window", min_value=3, value=10, step=1, key="burst_min", persist_state="session")
scope = c3.radio(
    "Arrivals", ["per client", "aggregate stream"], horizontal=True, key="burst_scope", persist_state="session",
    help="Per client: each client's own window CV. Aggregate: the CV of all clients' requests merged.",
)

cv_func = arrivals.window_cv if scope == "per client" else arrivals.aggregate_cv
table = core_calls.compute(cv_func, window_s=window_s, min_requests=int(min_requests))
if core_calls.usable(table, what="the CV distribution"):
    cdf = core_calls.run(arrivals.cv_cdf, table, key=(view.key, scope, window_s, int(min_requests)))
    summary = core_calls.run(arrivals.burstiness_summary, table, key=(view.key, scope, window_s, int(min_requests)))
    if core_calls.usable(cdf, what="the CV distribution"):
        what = "client-window" if scope == "per client" else "window of the aggregate stream"
        page.plot(charts.cv_cdf(cdf.frame, title=f"CDF of the inter-arrival CV per {what}"), cdf.frame, key="burst_cdf")
    if summary is not None and summary.ok:
        st.caption(
            f"{summary.share_windows_cv_gt1:.0%} of {summary.windows:,} windows are burstier than Poisson (CV > 1), "
            f"carrying {summary.share_load_cv_gt1:.0%} of the requests; median CV {summary.median_cv:.2f} "
            f"(rate-weighted {summary.weighted_median_cv:.2f}). {summary.excluded:,} windows with fewer than "
            f"{int(min_requests)} requests left out."
        )

# What the data determine about arrivals (issue 16): one caption, kept apart from the charts.
st.caption(
    "ServeGen pool data determine the rate and CV of each 600 s window and a fitted shape (Gamma or Weibull); they do "
    "not determine the structure below a second (bursts, on/off silences, near-simultaneous requests). How gaps are "
    "drawn inside a window is the spec's `sub_window` option, an assumption the data do not test: by default `mmpp` "
    "(a two-state hidden chain laid to each window's rate and CV), or `gamma` (ServeGen's), `weibull`, `hyperexp`, "
    "`recorded`."
    if view.is_pool else
    "A raw trace records its sub-second structure: the pool fitted to it keeps each client's arrival model fitted "
    "and chosen from the trace (`sub_window` \"source\", the default), besides the rate and CV of each 600 s window."
)

st.subheader("Arrival patterns")
left, right = st.columns(2)
with left:
    per_client = core_calls.compute(summary_mod.client_summary)
    if core_calls.usable(per_client, what="CV against rate"):
        points = per_client.frame.drop_nulls([CLIENT_RATE, CLIENT_CV])
        page.plot(charts.cv_vs_rate(points, rate=CLIENT_RATE, cv=CLIENT_CV), points, key="burst_cv_rate")
        st.caption(
            f"{points.height} clients with a measured CV; {int((points[CLIENT_CV] > 1).sum())} of them are "
            "burstier than Poisson on average (rate-weighted CV > 1)."
        )
with right:
    if view.is_pool:
        patterns = core_calls.compute(arrivals.pattern_shares)
        if core_calls.usable(patterns, what="arrival patterns"):
            page.plot(charts.pattern_shares(patterns.frame), patterns.frame, key="burst_patterns")
            top = patterns.frame.sort("request_share", descending=True).row(0, named=True)
            st.caption(
                f"{top['pattern']} describes {top['window_share']:.0%} of active windows and "
                f"{top['request_share']:.0%} of requests."
            )
    else:
        st.info("A raw trace has no recorded arrival patterns (they are fitted per window below).")

st.subheader("Inter-arrival times of one window")
shares = core_calls.compute(rates.client_shares)
if core_calls.usable(shares, what="the client list"):
    ids = shares.frame["client_id"].to_list()
    choices = ids if view.is_pool else [ALL_CLIENTS, *ids]
    c1, c2, c3 = st.columns([1, 2, 1])
    client = c1.selectbox(
        "Client (busiest first)", choices, key=f"burst_client_{view.source.id}", persist_state="session",
        format_func=lambda c: c if c == ALL_CLIENTS else f"client {c}",
    )
    hist_window = view.data.window_s if view.is_pool else window_s
    client_windows = core_calls.compute(arrivals.window_cv, window_s=hist_window, min_requests=3)
    starts = []
    if client_windows is not None and client_windows.ok:
        frame = client_windows.frame
        if client != ALL_CLIENTS:
            frame = frame.filter(frame["client_id"] == client)
        starts = sorted(set(frame["start_s"].to_list()))
    if not starts:
        st.info(f"{'These clients have' if client == ALL_CLIENTS else f'Client {md(client)} has'} no window with enough requests in this span.")
    else:
        start_s = c2.select_slider(
            "Window start", options=starts, format_func=fmt.fmt_time, key=f"burst_start_{view.source.id}_{client}",
        )
        log_x = c3.toggle("Log scale", value=True, key="burst_log", persist_state="session")
        hist = core_calls.compute(
            arrivals.interarrival_histogram,
            None if client == ALL_CLIENTS else client,
            int(start_s),
            window_s=hist_window,
            log_bins=log_x,
        )
        if core_calls.usable(hist, what="the inter-arrival histogram"):
            who = "all clients" if client == ALL_CLIENTS else f"client {client}"
            title = f"Inter-arrival times of {who}, window {fmt.fmt_time(start_s)} ({fmt.fmt_resolution(hist_window)})"
            fits = hist.fit.table if hist.fit is not None and hist.fit.ok else None
            best_family = hist.fit.best if fits is not None else None
            criterion = hist.fit.criterion if hist.fit is not None else "bic"
            page.plot(
                charts.interarrival_histogram(
                    hist.histogram, hist.densities, fits, title=title, log_x=log_x, sampled=hist.sampled,
                    best=best_family, criterion=criterion,
                ),
                hist.histogram, key="burst_hist",
            )
            if fits is not None:
                best = fits.filter(fits["family"] == hist.fit.best).row(0, named=True)
                source_note = (
                    f"{hist.samples:,} gaps sampled from the window's fitted distribution (seed 0; ServeGen data record only that fit, not the gaps)" if hist.sampled else f"{hist.samples:,} observed gaps"
                )
                st.caption(
                    f"Best fit by {criterion.upper()}: **{best['family']}** (shape {best['shape']:.3g}, CV {best['cv']:.2f}, "
                    f"KS {best['ks']:.3f}) on {source_note}."
                )
                st.dataframe(fits, hide_index=True)
