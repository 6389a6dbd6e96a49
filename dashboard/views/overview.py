"""Overview: the source's key numbers, its aggregate rate over the span and its top clients."""

import streamlit as st

import charts
import core_calls
import fmt
import session
from servegen_core.characterize import rates
from widgets import page

view = page.header("Overview")

numbers = session.headline(view)
top5 = core_calls.compute(rates.top_k_share, 5)
gini = core_calls.compute(rates.gini)

cols = st.columns(6)
options, default = page.resolutions(view)
resolution = st.selectbox(
    "Bin length", options, index=options.index(default), format_func=fmt.fmt_resolution, key=f"ov_resolution_{view.source.id}"
)
# the peak at the chart's bin length, so the number and the chart agree
peak = core_calls.compute(rates.peak_trough, resolution_s=resolution)
requests = session.request_count(view)
cols[0].metric("Clients", numbers["Clients"])
cols[1].metric("Requests", fmt.fmt_count(requests), help=f"{requests:,.0f}" + (" (for ServeGen data: Σ rate × window length)" if view.is_pool else ""))
cols[2].metric("Span", numbers["Span"])
cols[3].metric(
    f"Peak rate (req/s, {fmt.fmt_resolution(resolution)} bins)", f"{peak.peak_rps:,.1f}" if peak is not None and peak.ok else "n/a",
    help="The busiest bin of the chart below.",
)
cols[4].metric("Top-5 client share", f"{top5.share:.1%}" if top5 is not None and top5.ok else "n/a")
cols[5].metric("Gini (client volume)", f"{gini.value:.2f}" if gini is not None and gini.ok else "n/a")
st.caption(f"Fields: {numbers['Fields']}")

series = core_calls.compute(rates.rate_series, resolution_s=resolution)
if core_calls.usable(series, what="the rate over time"):
    page.plot(charts.rate_over_time(series.frame, resolution_s=resolution), series.frame, key="ov_rate")
    if peak is not None and peak.ok:
        st.caption(
            f"The aggregate rate peaks at {peak.peak_rps:,.2f} req/s ({fmt.fmt_time(peak.peak_start_s)}) and falls to "
            f"{peak.trough_rps:,.2f} req/s ({fmt.fmt_time(peak.trough_start_s)}): a peak/trough ratio of {peak.ratio:,.1f}× "
            f"at {fmt.fmt_resolution(peak.resolution_s)} bins."
        )

shares = core_calls.compute(rates.client_shares)
if core_calls.usable(shares, what="client shares"):
    k = min(15, shares.frame.height)
    page.plot(charts.top_clients(shares.frame, k=k), shares.frame, key="ov_top_clients")
    if top5 is not None and top5.ok:
        st.caption(
            (
                f"The {min(5, top5.clients)} busiest of {top5.clients} clients send {top5.share:.1%} of all requests"
                if top5.clients > 5 else
                f"{'The one client sends' if top5.clients == 1 else f'All {top5.clients} clients send'} {top5.share:.1%} of all requests"
            )
            + (f"; Gini coefficient {gini.value:.2f}." if gini is not None and gini.ok else ".")
        )
