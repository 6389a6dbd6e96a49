"""Reasoning: reason ratio with its two modes, reasoning vs answer tokens, bimodality per client."""

import streamlit as st

import charts
import core_calls
from plaintext import md
from servegen_core.characterize import reasoning
from widgets import page

view = page.header("Reasoning")
FIELDS = ("reason_ratio", "reasoning_tokens")
if not any(view.has(f) for f in FIELDS):
    st.info(
        f"{md(view.source.label)} has no reasoning fields ({', '.join(FIELDS)}): choose a reasoning source "
        "(e.g. reason/deepseek-r1, or the demo's reason/demo-r1)."
    )
    st.stop()

ratio = core_calls.compute(reasoning.reason_ratio_distribution)
modes = core_calls.compute(reasoning.bimodality, per_client=True)
if core_calls.usable(ratio, what="the reason ratio"):
    width = 1 / ratio.grid_denominator if ratio.grid_denominator else None
    comps = modes.components if modes is not None and modes.ok else None
    cmp = core_calls.run(reasoning.compare_modes, ratio.frame, comps, key=(view.key, "compare_modes")) if comps is not None else None
    marked = cmp.mixture_modes if cmp is not None and cmp.ok else None
    page.plot(charts.reason_ratio_histogram(ratio.frame, comps, bin_width=width, modes=marked), ratio.frame, key="rs_ratio")
    if modes is not None and modes.ok:
        c = modes.components.sort("component").to_dicts()
        verdict = "bimodal" if modes.bimodal else "not clearly bimodal"
        st.caption(
            f"The reason ratio is {verdict}: fitted components at {c[0]['mu']:.2f} ({c[0]['weight']:.0%} of requests) and "
            f"{c[1]['mu']:.2f} ({c[1]['weight']:.0%}); bimodality coefficient {modes.bc:.3f} vs threshold "
            f"{modes.threshold:.3f}, Ashman's D {modes.ashman_d:.1f}."
        )
    if cmp is not None and cmp.ok:
        where = " and ".join(f"{m:.2f}" for m in cmp.mixture_modes)
        peaks = " and ".join(f"{p:.2f}" for p in cmp.histogram_peaks)
        if cmp.differ:
            st.info(
                f"The fitted mixture's modes (marked: {where}) differ from the histogram's peaks ({peaks}, after smoothing) "
                f"by up to {cmp.max_shift:.2f}: two Gaussians do not follow the shape of the peaks exactly."
            )
        else:
            st.caption(f"The fitted mixture's modes (marked: {where}) match the histogram's peaks ({peaks}) within {cmp.tolerance:.2f}.")

tokens = core_calls.compute(reasoning.reasoning_tokens)
if core_calls.usable(tokens, what="reasoning vs answer tokens"):
    page.plot(charts.reasoning_vs_answer(tokens.histogram), tokens.histogram, key="rs_tokens")
    s = {r["quantity"]: r for r in tokens.summary.iter_rows(named=True)}
    st.caption(
        f"Reasoning takes {tokens.reasoning_share:.0%} of output tokens: a median of {s['reasoning']['p50']:,.0f} reasoning "
        f"vs {s['answer']['p50']:,.0f} answer tokens per request. {tokens.method.capitalize()}."
    )
    st.dataframe(tokens.summary, hide_index=True)

if modes is not None and modes.ok:
    if modes.per_client is not None and modes.per_client.height:
        page.plot(charts.bimodality_by_client(modes.per_client, threshold=modes.threshold), modes.per_client, key="rs_bimodality")
        n_bi = int(modes.per_client["bimodal"].sum())
        st.caption(f"{n_bi} of {modes.per_client.height} clients have a bimodal reason ratio (BC > {modes.threshold:.3f}). {modes.method}.")
    elif modes.per_client_reason:
        st.info(f"Not enough data per client: {md(modes.per_client_reason)}")
