"""Multimodal: how input tokens divide between text and images (or audio/video), images per request, tokens per image."""

import streamlit as st

import charts
import core_calls
from plaintext import md
from servegen_core.characterize import multimodal
from widgets import page

view = page.header("Multimodal")
MEDIA_FIELDS = [f"{m}_{kind}" for m in multimodal.MODALITIES[1:] for kind in ("tokens", "count")]
present = [f for f in MEDIA_FIELDS if f in view.fields]
if not present:
    st.info(
        f"{md(view.source.label)} has no multimodal fields ({', '.join(MEDIA_FIELDS)}): "
        "choose a multimodal source (e.g. multimodal/mm-image, or the demo's multimodal/demo-vl)."
    )
    st.stop()

shares = core_calls.compute(multimodal.modality_shares)
modalities = None
if core_calls.usable(shares, what="modality shares"):
    summary = shares.summary
    modalities = summary.filter(summary["token_share"] > 0)["modality"].to_list()
    page.plot(charts.modality_share_histogram(shares.distribution, modalities=modalities), shares.distribution, key="mm_shares")
    parts = [
        f"{row['modality']} carries {row['token_share']:.0%} of input tokens and appears in {row['request_share']:.0%} of requests"
        for row in summary.iter_rows(named=True)
        if row["token_share"] > 0
    ]
    st.caption("; ".join(parts) + f". {shares.method.capitalize()}.")

left, right = st.columns(2)
with left:
    counts = core_calls.compute(multimodal.image_count_distribution)
    if core_calls.usable(counts, what="the image count"):
        page.plot(charts.count_distribution(counts.frame, field=counts.field), counts.frame, key="mm_counts")
        st.caption(f"{counts.share_nonzero:.0%} of requests carry images; {counts.mean:.2f} images per request on average.")
with right:
    tpi = core_calls.compute(multimodal.tokens_per_image)
    if core_calls.usable(tpi, what="tokens per image"):
        page.plot(charts.tokens_per_item(tpi.distribution, tpi.dominant, modality=tpi.modality), tpi.distribution, key="mm_tpi")
        sizes = ", ".join(f"{r['tokens_per_item']:,.0f} ({r['share']:.0%})" for r in tpi.dominant.head(3).iter_rows(named=True))
        st.caption(f"Most frequent sizes: {sizes}; mean {tpi.mean_tokens_per_item:,.0f} tokens per image. {tpi.method.capitalize()}.")

over_time = core_calls.compute(multimodal.modality_over_time)
if core_calls.usable(over_time, what="the modality mix over time"):
    page.plot(charts.modality_over_time(over_time.frame, modalities=modalities), over_time.frame, key="mm_time")
    image = over_time.frame.filter(over_time.frame["modality"] == "image")["token_share"]
    if image.len():
        st.caption(f"Across {image.len()} windows, images carry {image.min():.0%} to {image.max():.0%} of the input tokens.")
