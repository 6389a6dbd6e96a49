"""Preview: the composed workload against its targets and its source, and against a naive baseline."""

import streamlit as st

import charts
import state
from plaintext import md
from servegen_core import arrivals, lengths, rates
from servegen_core.compose import naive_spec

view = state.page_header("Preview")
spec, pool, plan = state.spec_plan_or_stop(view)
if plan.expected_requests > state.PREVIEW_MAX_REQUESTS:
    st.warning(
        f"This workload has about {plan.expected_requests:,.0f} requests, more than the {state.PREVIEW_MAX_REQUESTS:,} "
        "previewed in memory: shorten the duration or lower the rate on the Compose page, or save it to a path on "
        "the Export page (written in chunks)."
    )
    st.stop()
made = state.workload(spec, pool)
rep = state.report(spec, pool) if made is not None else None
if made is None or rep is None:
    st.stop()
trace = made.trace
duration = made.plan.span_duration_s


def source_part(spec):
    """The source pool cut to the spec's span and composed clients (what the workload imitates)."""
    end = spec.span.start_s + duration
    return pool.span(spec.span.start_s, end).select_clients(made.clients)


src_view = state.run(source_part, spec, key=(spec, "source"), spinner="Cutting the source to the span…")

m1, m2, m3, m4 = st.columns(4)
m1.metric("Requests", f"{trace.height:,}")
m2.metric("Clients", f"{len(made.clients):,}")
m3.metric("Duration", state.fmt_duration(duration))
n_pass = int(rep.checks["passed"].sum()) if rep.ok else 0
m4.metric("Checks passed", f"{n_pass} / {rep.checks.height}" if rep.ok else "n/a")
for warning in made.warnings:
    st.warning(md(warning))

# --- arrivals and rate tracking -------------------------------------------------------------
options = [r for r in (1, 10, 60, 600) if duration / r >= 4] or [1]
default = next((r for r in options if duration / r <= 7200), options[-1])
resolution = st.selectbox("Arrival bins", options, index=options.index(default), format_func=state.fmt_resolution, key="pv_resolution")
series = state.run(rates.rate_series, trace, key=(spec, "series", resolution), resolution_s=resolution)
left, right = st.columns(2)
with left:
    if state.usable(series, what="arrivals over time"):
        title = "Arrivals per second" if resolution == 1 else "Arrival rate"
        st.plotly_chart(charts.rate_over_time(series.frame, resolution_s=resolution, title=title, origin="workload start"), key="pv_arrivals")
        peak = state.run(rates.peak_trough, trace, key=(spec, "peak", resolution), resolution_s=resolution)
        if peak is not None and peak.ok:
            st.caption(
                f"{state.fmt_resolution(resolution)} bins: busiest {peak.peak_rps:,.1f} req/s, quietest non-empty "
                f"{peak.trough_rps:,.1f} req/s ({peak.ratio:,.1f}×)."
            )
with right:
    if rep.ok and rep.windows.height:
        st.plotly_chart(charts.achieved_vs_target(rep.windows), key="pv_target")
        total = rep.check("total_requests")
        tracking = rep.check("rate_tracking")
        st.caption(
            f"Generated / target requests: {total['value']:.4f}; window-by-window tracking error "
            f"{tracking['value']:.2%} ({'pass' if tracking['passed'] else 'fail'}: {tracking['target']})."
        )

# --- lengths and burstiness against the source ----------------------------------------------
left, right = st.columns(2)
with left:
    # Fields recorded per request in both: a multimodal pool has no input_tokens PDF, and its
    # image_tokens PDF is per image while the workload's image_tokens is per request.
    known = src_view.fields if src_view is not None else ()
    fields = [f for f in ("input_tokens", "text_tokens", "output_tokens") if f in trace.columns and f in known]
    field = st.radio("Length field", fields, horizontal=True, key="pv_field", format_func=charts.field_label)
    generated = state.run(lengths.length_pdf, trace, field, key=(spec, "pdf", field))
    source_pdf = state.run(lengths.length_pdf, src_view, field, key=(spec, "source_pdf", field)) if src_view is not None else None
    if state.usable(generated, what="generated lengths") and state.usable(source_pdf, what="source lengths"):
        fig = charts.cdf_comparison(
            {"source (span, composed clients)": source_pdf.frame, "generated": generated.frame},
            x="value", title=f"{charts.field_label(field).capitalize()}: generated vs source", x_title=f"{charts.field_label(field)} (tokens, log scale)",
        )
        st.plotly_chart(fig, key="pv_lengths")
        ks = rep.check("length_ks")
        if ks["value"] is not None:
            st.caption(f"Median KS distance per (client, length window, field): {ks['value']:.4f} ({'pass' if ks['passed'] else 'fail'}: {ks['target']}).")
with right:
    if rep.ok and rep.cv.height:
        st.plotly_chart(charts.cv_scatter(rep.cv), key="pv_cv")
        cv = rep.check("cv_ratio")
        st.caption(f"Median generated / source CV over {cv['n']} client-windows: {cv['value']:.3f} ({'pass' if cv['passed'] else 'fail'}: {cv['target']}).")
    elif rep.ok:
        st.info(f"No client-window has enough generated requests to compare CVs: {md(rep.check('cv_ratio')['detail'])}.")

# --- validation -----------------------------------------------------------------------------
st.subheader("Validation report")
if rep.ok:
    st.dataframe(
        rep.checks, hide_index=True, key="pv_checks",
        column_config={"passed": st.column_config.CheckboxColumn("passed"), "value": st.column_config.NumberColumn("value", format="%.4g")},
    )
    failed = rep.failed()
    (st.success if not failed else st.warning)(
        "Every check passed." if not failed else f"Failed: {', '.join(failed)}."
    )
else:
    st.info(f"No validation: {md(rep.reason)}")

# --- realistic vs naive ---------------------------------------------------------------------
kind = state.naive_kind()
if kind:
    st.subheader(f"Realistic vs naive ({kind})")
    nspec = state.run(naive_spec, spec, kind, key=(spec, "naive", kind), unhashed={"pool": pool}, spinner="Deriving the naive baseline…")
    nmade = state.workload(nspec, pool) if nspec is not None else None
    nrep = state.report(nspec, pool) if nmade is not None else None
    if nmade is not None and nrep is not None:
        nseries = state.run(rates.rate_series, nmade.trace, key=(nspec, "series", resolution), resolution_s=resolution)
        left, right = st.columns(2)
        with left:
            if state.usable(series, what="realistic arrivals"):
                st.plotly_chart(
                    charts.rate_over_time(series.frame, resolution_s=resolution, title="Realistic arrivals", origin="workload start"),
                    key="pv_real_arrivals",
                )
        with right:
            if state.usable(nseries, what="naive arrivals"):
                st.plotly_chart(
                    charts.rate_over_time(nseries.frame, resolution_s=resolution, title=f"Naive arrivals ({kind})", origin="workload start", color=charts.COLORS[1]),
                    key="pv_naive_arrivals",
                )
        real_cdf = state.run(arrivals.cv_cdf, trace, key=(spec, "cv_cdf"))
        naive_cdf = state.run(arrivals.cv_cdf, nmade.trace, key=(nspec, "cv_cdf"))
        source_cdf = state.run(arrivals.cv_cdf, src_view, key=(spec, "source_cv_cdf")) if src_view is not None else None
        frames = {}
        for name, r in (("source (recorded)", source_cdf), ("realistic", real_cdf), ("naive", naive_cdf)):
            if r is not None and r.ok:
                frames[name] = r.frame
        if frames:
            st.plotly_chart(
                charts.cdf_comparison(frames, x="cv", title="Inter-arrival CV per client-window: source, realistic, naive", x_title="CV of inter-arrival times (log scale)", vline=1.0),
                key="pv_cv_compare",
            )
        both = rep.checks.select("name", "value", "passed").join(
            nrep.checks.select("name", "value", "passed"), on="name", how="left", suffix="_naive"
        ) if rep.ok and nrep.ok else None
        if both is not None:
            st.dataframe(
                both, hide_index=True, key="pv_compare_checks",
                column_config={
                    "value": st.column_config.NumberColumn("realistic", format="%.4g"),
                    "passed": st.column_config.CheckboxColumn("realistic passed"),
                    "value_naive": st.column_config.NumberColumn("naive", format="%.4g"),
                    "passed_naive": st.column_config.CheckboxColumn("naive passed"),
                },
            )
            real_cv, naive_cv = rep.check("cv_ratio")["value"], nrep.check("cv_ratio")["value"]
            real_ks, naive_ks = rep.check("length_ks")["value"], nrep.check("length_ks")["value"]
            parts = []
            if real_cv is not None and naive_cv is not None:
                parts.append(f"median generated/source CV {real_cv:.2f} realistic vs {naive_cv:.2f} naive")
            if real_ks is not None and naive_ks is not None:
                parts.append(f"median per-client length KS {real_ks:.3f} realistic vs {naive_ks:.3f} naive")
            if parts:
                st.caption("Same rate function and clients; " + "; ".join(parts) + ".")
