"""Lengths: distributions with fitted curves, percentiles over time, per-client means, input/output correlation."""

import re

import polars as pl
import streamlit as st

import charts
import core_calls
import fmt
from plaintext import md
from servegen_core.characterize import lengths
from servegen_core.characterize.lengths import MAX_TAIL_INDEX
from widgets import page

#: A KS distance above this is a poor fit (the CDFs differ by more than a fifth somewhere).
POOR_KS = 0.2


def family_name(family: str) -> str:
    return family.replace("_", " + ")


def tail_index(params: str) -> float | None:
    """The Pareto tail index in a fit's ``name=value`` parameter text, or None."""
    found = re.search(r"alpha=([0-9.eE+-]+)", params)
    return float(found.group(1)) if found else None


def fit_warnings(family: str, params, ks: float | None) -> list[str]:
    """Why a best fit should not be trusted: a parameter at its bound, a large KS distance."""
    out = []
    alpha = params.get("alpha") if params else None
    if alpha is not None and alpha >= MAX_TAIL_INDEX - 1e-9:
        out.append(
            f"the {family_name(family)} fit's tail index sits at its bound ({MAX_TAIL_INDEX:g}): the fit is held by the "
            "bound, not by the data."
        )
    if ks is not None and ks > POOR_KS:
        out.append(f"the best fit's KS distance is {ks:.3f} (above {POOR_KS:g}): no family here describes these lengths well.")
    return out


view = page.header("Lengths")
fields = [f for f in view.fields if f.endswith(("_tokens", "_count"))]
if not fields:
    st.info("This source has no length fields.")
    st.stop()

sections = ["Distributions", "Over time", "Per client"] + ([] if view.is_pool else ["Input vs output"])
section = st.radio("Show", sections, horizontal=True, key="len_section", persist_state="session")

if section == "Distributions":
    pair = [f for f in ("input_tokens", "output_tokens") if f in fields] or fields[:1]
    page.keep_valid("len_fields", fields)
    chosen = st.multiselect("Fields", fields, default=pair, key="len_fields", persist_state="session")
    for field in chosen:
        pdf = core_calls.compute(lengths.length_pdf, field)
        fitter = lengths.fit_output_lengths if field == "output_tokens" else lengths.fit_input_lengths
        fit = core_calls.compute(fitter, field=field)
        if not core_calls.usable(pdf, what=f"the {fmt.field_label(field)} distribution"):
            continue
        fit_ok = fit is not None and fit.ok
        fig = charts.length_distribution(
            pdf.frame, field=field, curves=fit.curves if fit_ok else None, fits=fit.table if fit_ok else None
        )
        page.plot(fig, pdf.frame, key=f"len_dist_{field}")
        if fit_ok:
            best = fit.table.filter(fit.table["best"]).row(0, named=True)
            closest = fit.table.drop_nulls("ks").sort("ks").row(0, named=True)
            st.caption(
                f"Best fit for {fmt.field_label(field)} by AIC: **{family_name(best['family'])}** "
                f"({best['params']}; KS distance {best['ks']:.3f}) over {fit.n:,.0f} requests."
                + (
                    f" By KS distance {family_name(closest['family'])} is closer ({closest['ks']:.3f}): AIC weighs the "
                    "likelihood of every request, KS only the largest gap between the CDFs."
                    if closest["family"] != best["family"] else ""
                )
            )
            for line in fit_warnings(best["family"], fit.params.get(best["family"], {}), best["ks"]):
                st.warning(md(f"{fmt.field_label(field).capitalize()}: {line}"))
        elif fit is not None:
            st.caption(f"No fit: {md(fit.reason)}")
        per_client = core_calls.compute(lengths.client_length_fits, field, k=10, spinner=f"Fitting {fmt.field_label(field)} per client…")
        if per_client is not None and per_client.ok and per_client.frame.height:
            frame = per_client.frame
            families = frame["best"].drop_nulls().value_counts().sort(["count", "best"], descending=[True, False])
            st.caption(
                f"Per-client fits of {fmt.field_label(field)}, the {frame.height} busiest clients with length data (the aggregate "
                "above mixes clients of different shapes): best family "
                + ", ".join(f"{b.replace('_', ' + ')} for {c}" for b, c in families.iter_rows()) + "."
            )
            if frame["ks_exponential"].null_count() == frame.height:  # input fields: no exponential fit
                frame = frame.drop("ks_exponential")
            at_bound = [c for c, p in frame.select("client_id", "params").iter_rows() if p and tail_index(p) is not None and tail_index(p) >= MAX_TAIL_INDEX - 1e-9]
            poor = frame.filter(pl.col("ks") > POOR_KS)
            if at_bound or poor.height:
                parts = []
                if at_bound:
                    parts.append(f"the Pareto tail index sits at its bound ({MAX_TAIL_INDEX:g}) for client(s) {md(', '.join(at_bound))}")
                if poor.height:
                    parts.append(f"{poor.height} fit(s) have a KS distance above {POOR_KS:g} (up to {poor['ks'].max():.3f})")
                st.warning("Per-client fits to read with care: " + "; ".join(parts) + ".")
            st.dataframe(
                frame, hide_index=True, key=f"len_client_fits_{field}",
                column_config={
                    "client_id": st.column_config.TextColumn("client"),
                    "requests": st.column_config.NumberColumn("requests", format="%.0f"),
                    "best": st.column_config.TextColumn("best (lowest AIC)"),
                    "ks": st.column_config.NumberColumn("KS of the best", format="%.3f"),
                    "ks_exponential": st.column_config.NumberColumn("KS of the exponential fit", format="%.3f"),
                },
            )

elif section == "Over time":
    page.keep_valid("len_time_field", fields)
    field = st.selectbox("Field", fields, key="len_time_field", persist_state="session")
    shift = core_calls.compute(lengths.length_shift, field)
    if core_calls.usable(shift, what="percentiles over time"):
        page.plot(charts.percentile_bands(shift.windows, field=field), shift.windows, key="len_bands")
        w = shift.windows
        st.caption(
            f"Across {w.height} windows the median {fmt.field_label(field)} ranges from "
            f"{w['p50'].min():,.0f} to {w['p50'].max():,.0f} and the p99 from {w['p99'].min():,.0f} to {w['p99'].max():,.0f}."
        )

elif section == "Per client":
    page.keep_valid("len_client_field", fields)
    field = st.selectbox("Field", fields, key="len_client_field", persist_state="session")
    means = core_calls.compute(lengths.client_length_means, field)
    if core_calls.usable(means, what="per-client means"):
        page.plot(charts.client_means(means.frame, field=field), means.frame, key="len_clients")
        parts = [f"{means.frame.height} clients"]
        if means.cv_of_means is not None:
            parts.append(f"their mean {fmt.field_label(field)} varies with CV {means.cv_of_means:.2f}")
        if means.mean_ratio_p90_p10 is not None:
            parts.append(f"p90/p10 of the client means is {means.mean_ratio_p90_p10:.1f}×")
        if means.clients_without_lengths:
            parts.append(f"{len(means.clients_without_lengths)} clients have no length data")
        st.caption("; ".join(parts) + ".")

else:
    corr = core_calls.compute(lengths.length_correlation)
    sample = core_calls.request_sample(view)
    if core_calls.usable(corr, what="the input/output correlation") and sample is not None:
        note = f"{sample.height:,} of {view.data.height:,} requests" if sample.height < view.data.height else ""
        page.plot(charts.length_scatter(sample, note=note), sample, key="len_scatter")
        overall = corr.overall.filter(corr.overall["scope"] == "overall").row(0, named=True)
        st.caption(
            f"Input and output lengths are {'weakly' if abs(overall['spearman']) < 0.3 else 'clearly'} correlated: "
            f"Spearman {overall['spearman']:.2f}, Pearson {overall['pearson']:.2f} over {overall['requests']:,} requests."
        )
        st.dataframe(corr.overall, hide_index=True)
