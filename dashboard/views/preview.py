"""Preview: the composed workload against its targets and its source, and against a naive baseline."""

import streamlit as st

import charts
import core_calls
import fmt
import session
import settings
import specstate
from plaintext import md
from servegen_core.characterize import arrivals, lengths, rates
from servegen_core.generate.compose import naive_spec
from widgets import page
from widgets import prefix as prefix_widgets

view = page.header("Preview")
spec, pool, plan = core_calls.spec_plan_or_stop(view)
if plan.expected_requests > settings.PREVIEW_MAX_REQUESTS:
    st.warning(
        f"This workload has about {plan.expected_requests:,.0f} requests, more than the {settings.PREVIEW_MAX_REQUESTS:,} "
        "previewed in memory: shorten the duration or lower the rate on the Compose page, or save it to a path on "
        "the Export page (written in chunks)."
    )
    st.stop()
made = core_calls.workload(spec, pool)
rep = core_calls.report(spec, pool) if made is not None else None
if made is None or rep is None:
    st.stop()
trace = made.trace
duration = made.plan.span_duration_s


def source_part(spec):
    """The source pool cut to the spec's span and composed clients (what the workload imitates)."""
    end = spec.span.start_s + duration
    return pool.span(spec.span.start_s, end).select_clients(made.clients)


src_view = core_calls.run(source_part, spec, key=(spec, "source"), spinner="Cutting the source to the span…")

m1, m2, m3, m4 = st.columns(4)
m1.metric("Requests", f"{trace.height:,}")
m2.metric("Clients", f"{len(made.clients):,}")
m3.metric("Duration", fmt.fmt_duration(duration))
n_pass = int(rep.checks["passed"].sum()) if rep.ok else 0
m4.metric("Checks passed", f"{n_pass} / {rep.checks.height}" if rep.ok else "n/a")
for warning in made.warnings:
    st.warning(md(warning))

# --- arrivals and rate tracking -------------------------------------------------------------
options = [r for r in (1, 10, 60, 600) if duration / r >= 4] or [1]
default = next((r for r in options if duration / r <= 7200), options[-1])
if st.session_state.get("pv_resolution") not in (None, *options):  # kept from a longer workload: not offered here
    del st.session_state["pv_resolution"]
resolution = st.selectbox(
    "Arrival bins", options, index=options.index(default), format_func=fmt.fmt_resolution, key="pv_resolution", persist_state="session",
)
series = core_calls.run(rates.rate_series, trace, key=(spec, "series", resolution), resolution_s=resolution)
left, right = st.columns(2)
with left:
    if core_calls.usable(series, what="arrivals over time"):
        title = "Arrivals per second" if resolution == 1 else "Arrival rate"
        page.plot(charts.rate_over_time(series.frame, resolution_s=resolution, title=title, origin="workload start"), series.frame, key="pv_arrivals")
        peak = core_calls.run(rates.peak_trough, trace, key=(spec, "peak", resolution), resolution_s=resolution)
        if peak is not None and peak.ok:
            st.caption(
                f"{fmt.fmt_resolution(resolution)} bins: busiest {peak.peak_rps:,.1f} req/s, quietest non-empty "
                f"{peak.trough_rps:,.1f} req/s ({peak.ratio:,.1f}×)."
            )
with right:
    if rep.ok and rep.windows.height:
        page.plot(charts.achieved_vs_target(rep.windows), rep.windows, key="pv_target")
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
    if st.session_state.get("pv_field") not in (None, *fields):
        del st.session_state["pv_field"]
    field = st.radio("Length field", fields, horizontal=True, key="pv_field", persist_state="session", format_func=fmt.field_label)
    generated = core_calls.run(lengths.length_pdf, trace, field, key=(spec, "pdf", field))
    source_pdf = core_calls.run(lengths.length_pdf, src_view, field, key=(spec, "source_pdf", field)) if src_view is not None else None
    if core_calls.usable(generated, what="generated lengths") and core_calls.usable(source_pdf, what="source lengths"):
        fig = charts.cdf_comparison(
            {"source (span, composed clients)": source_pdf.frame, "generated": generated.frame},
            x="value", title=f"{fmt.field_label(field).capitalize()}: generated vs source", x_title=f"{fmt.field_label(field)} (tokens, log scale)",
        )
        page.plot(fig, page.stack_frames({"source": source_pdf.frame, "generated": generated.frame}), key="pv_lengths")
        ks = rep.check("length_ks")
        if ks["value"] is not None:
            st.caption(f"Median KS distance per (client, length window, field): {ks['value']:.4f} ({'pass' if ks['passed'] else 'fail'}: {ks['target']}).")
        if (borrowed := rep.check("borrowed_share"))["value"]:
            st.caption(f"Borrowed lengths: {borrowed['value']:.1%} of the requests come from {borrowed['n']} client(s) without length tables of their own ({md(borrowed['detail'])}).")
with right:
    if rep.ok and rep.cv.height:
        page.plot(charts.cv_scatter(rep.cv), rep.cv, key="pv_cv")
        cv = rep.check("cv_ratio")
        st.caption(f"Median generated / source CV over {cv['n']} client-windows: {cv['value']:.3f} ({'pass' if cv['passed'] else 'fail'}: {cv['target']}).")
    elif rep.ok:
        st.info(f"No client-window has enough generated requests to compare CVs: {md(rep.check('cv_ratio')['detail'])}.")

prefix_widgets.preview_reuse(spec, made, view)  # shared prompts and sessions: block reuse, LRU curve

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

# --- fidelity scorecard: off until asked (pool data need a second compose) ------------------
with st.expander("Fidelity scorecard", expanded=st.session_state.get("pv_fidelity_spec") == spec):
    st.caption(
        "Every line is a two-sample test of the workload against its source: dispersion of counts from 10 ms to "
        "600 s, inter-arrival KS, zero gaps, 10 ms burst runs, request count, length KS, input/output rank "
        "correlation and, where the source has block ids, prefix reuse. Each band comes from the sample sizes "
        "(alpha 0.01 for the whole card). A trace source is compared with the trace over the span and clients; "
        "pool data hold no trace, so they are compared with a second draw of the model (lines named `*_vs_model`)."
    )
    if st.button("Score fidelity", key="pv_fidelity_run"):
        st.session_state["pv_fidelity_spec"] = spec
    if st.session_state.get("pv_fidelity_spec") == spec:
        fid = core_calls.fidelity(spec, pool, view)
        if fid is not None and not fid.report.lines:
            st.info(f"No scorecard: {md(fid.report.reason)}")
        elif fid is not None:
            st.caption(md(f"Generated: {fid.generated_text}. Against: {fid.source_text}."))
            card = fid.report.to_frame().select("name", "verdict", "source_value", "generated_value", "statistic", "target", "detail")
            st.dataframe(
                card, hide_index=True, key="pv_fidelity",
                column_config={c: st.column_config.NumberColumn(c, format="%.4g") for c in ("source_value", "generated_value", "statistic")},
            )
            failed = fid.report.failed()
            (st.success if fid.passed else st.warning)(
                "Every decided line passed." if fid.passed else f"Failed: {md(', '.join(failed)) or 'no line has a verdict'}."
            )
            for note in fid.report.notes:
                st.caption(md(f"Note: {note}"))

# --- side by side: this workload (A) against another (B) ----------------------------------
st.subheader("Compare with another workload")
compare_modes = {
    "none": "Nothing",
    "naive": "A naive baseline of this spec",
    "earlier": "An earlier spec (from this session)",
    "pasted": "A spec file (paste spec.json)",
}
history = [s_ for s_ in st.session_state.get("spec_history", []) if s_ != spec]
if not history:
    compare_modes.pop("earlier")
how = st.radio(
    "Compare with", list(compare_modes), format_func=compare_modes.get, horizontal=True, key="pv_compare",
    index=list(compare_modes).index("naive") if session.naive_kind() else 0,
)
other, label_b = None, ""
if how == "naive":
    kind = st.selectbox(
        "Naive baseline", session.NAIVE_KINDS, index=session.NAIVE_KINDS.index(session.naive_kind() or session.NAIVE_KINDS[0]),
        format_func=session.NAIVE_LABELS.get, key="pv_naive_kind",
    )
    other = core_calls.run(naive_spec, spec, kind, key=(spec, "naive", kind), unhashed={"pool": pool}, spinner="Deriving the naive baseline…")
    label_b = f"naive ({kind})"
elif how == "earlier":
    pick = st.selectbox(
        "Earlier spec", list(range(len(history)))[::-1], format_func=lambda i: f"#{i + 1}: {specstate.describe_change(history[i], spec)}",
        key="pv_earlier",
    )
    other, label_b = history[pick], f"earlier spec #{pick + 1}"
elif how == "pasted":
    text = st.text_area("spec.json", key="pv_other_text", height=120)
    if text.strip():
        try:
            other = specstate.parse_upload(text.encode(), name="the pasted spec")
        except ValueError as exc:
            core_calls.show_error(exc)
        label_b = "pasted spec"

if other is not None:
    pool_b = pool if other.source == spec.source else core_calls.other_spec_pool(other)
    plan_b = core_calls.plan(other, pool_b) if pool_b is not None else None
    if plan_b is not None and plan_b.expected_requests > settings.PREVIEW_MAX_REQUESTS:
        st.warning(f"The other workload has about {plan_b.expected_requests:,.0f} requests, more than the {settings.PREVIEW_MAX_REQUESTS:,} previewed in memory.")
        plan_b = None
    made_b = core_calls.workload(other, pool_b) if plan_b is not None else None
    rep_b = core_calls.report(other, pool_b) if made_b is not None else None
    if made_b is not None and rep_b is not None:
        names = ("this spec (A)", f"{label_b} (B)")
        st.caption(f"B differs from A in: {md(specstate.describe_change(other, spec))}.")
        series_b = core_calls.run(rates.rate_series, made_b.trace, key=(other, "series", resolution), resolution_s=resolution)
        peak_a = core_calls.run(rates.peak_trough, trace, key=(spec, "peak", resolution), resolution_s=resolution)
        peak_b = core_calls.run(rates.peak_trough, made_b.trace, key=(other, "peak", resolution), resolution_s=resolution)
        # one y axis for both charts, so the heights compare at a glance
        tops = [r.frame["rate_rps"].max() for r in (series, series_b) if r is not None and r.ok and r.frame.height]
        shared_top = 1.05 * max(tops) if tops else None
        cols = st.columns(2)
        for col, name, wl, ser, pk, key in (
            (cols[0], names[0], made, series, peak_a, "pv_real_arrivals"),
            (cols[1], names[1], made_b, series_b, peak_b, "pv_naive_arrivals"),
        ):
            with col:
                d = wl.plan.span_duration_s
                c1, c2, c3 = st.columns(3)
                c1.metric("Requests", f"{wl.trace.height:,}")
                c2.metric("Mean rate (req/s)", f"{wl.trace.height / d:,.2f}")
                c3.metric(f"Peak (req/s, {fmt.fmt_resolution(resolution)} bins)", f"{pk.peak_rps:,.1f}" if pk is not None and pk.ok else "n/a")
                if core_calls.usable(ser, what=f"arrivals of {name}"):
                    color = charts.COLORS[0] if key == "pv_real_arrivals" else charts.COLORS[1]
                    fig = charts.rate_over_time(ser.frame, resolution_s=resolution, title=f"Arrivals: {name}", origin="workload start", color=color)
                    if shared_top:
                        fig.update_yaxes(range=[0, shared_top], autorange=False)
                    page.plot(fig, ser.frame, key=key)
        st.caption("Both arrival charts share one y axis (the higher of the two peaks).")
        cdf_a = core_calls.run(arrivals.cv_cdf, trace, key=(spec, "cv_cdf"))
        cdf_b = core_calls.run(arrivals.cv_cdf, made_b.trace, key=(other, "cv_cdf"))
        source_cdf = core_calls.run(arrivals.cv_cdf, src_view, key=(spec, "source_cv_cdf")) if src_view is not None else None
        frames = {n: r.frame for n, r in (("source (recorded)", source_cdf), (names[0], cdf_a), (names[1], cdf_b)) if r is not None and r.ok}
        left, right = st.columns(2)
        with left:
            if frames:
                page.plot(
                    charts.cdf_comparison(frames, x="cv", title="Inter-arrival CV per client-window", x_title="CV of inter-arrival times (log scale)", vline=1.0),
                    page.stack_frames(frames), key="pv_cv_compare",
                )
        with right:
            fields_b = [f for f in fields if f in made_b.trace.columns]
            if fields_b:
                field_b = fields_b[0] if field not in fields_b else field
                pdf_b = core_calls.run(lengths.length_pdf, made_b.trace, field_b, key=(other, "pdf", field_b))
                pdf_a = core_calls.run(lengths.length_pdf, trace, field_b, key=(spec, "pdf", field_b))
                lf = {n: r.frame for n, r in ((names[0], pdf_a), (names[1], pdf_b)) if r is not None and r.ok}
                if lf:
                    page.plot(
                        charts.cdf_comparison(lf, x="value", title=f"{fmt.field_label(field_b).capitalize()}: A vs B", x_title=f"{fmt.field_label(field_b)} (tokens, log scale)"),
                        page.stack_frames(lf), key="pv_lengths_compare",
                    )
        both = rep.checks.select("name", "value", "passed").join(
            rep_b.checks.select("name", "value", "passed"), on="name", how="left", suffix="_b"
        ) if rep.ok and rep_b.ok else None
        if both is not None:
            st.dataframe(
                both, hide_index=True, key="pv_compare_checks",
                column_config={
                    "value": st.column_config.NumberColumn("A", format="%.4g"),
                    "passed": st.column_config.CheckboxColumn("A passed"),
                    "value_b": st.column_config.NumberColumn("B", format="%.4g"),
                    "passed_b": st.column_config.CheckboxColumn("B passed"),
                },
            )
            cv_a, cv_b = rep.check("cv_ratio")["value"], rep_b.check("cv_ratio")["value"]
            ks_a, ks_b = rep.check("length_ks")["value"], rep_b.check("length_ks")["value"]
            parts = []
            if cv_a is not None and cv_b is not None:
                parts.append(f"median generated/source CV {cv_a:.2f} (A) vs {cv_b:.2f} (B)")
            if ks_a is not None and ks_b is not None:
                parts.append(f"median per-client length KS {ks_a:.3f} (A) vs {ks_b:.3f} (B)")
            if parts:
                text = "; ".join(parts)
                st.caption(text[0].upper() + text[1:] + ".")
