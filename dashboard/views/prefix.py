"""Prefix reuse: block reuse, shared-prefix depth, top prefixes, sessions and the LRU prefix-cache curve."""

import streamlit as st

import charts
import core_calls
from plaintext import md
from servegen_core.serve import hardware
from servegen_core.characterize import prefix
from widgets import page

view = page.header("Prefix reuse")
if view.is_pool or not (view.has("hash_ids") or view.has(*prefix.SEGMENT_COLUMNS)):
    st.info(
        f"{md(view.source.label)} has no block ids (hash_ids), so its prefix reuse is unknown: ServeGen pool data and "
        "traces without hash_ids carry no prefix information. Load a request trace with hash_ids, e.g. a Mooncake "
        "trace (preset 'mooncake')."
    )
    st.stop()

block_tokens = st.number_input(
    "Tokens per block", min_value=1, max_value=1_000_000, value=prefix.DEFAULT_BLOCK_TOKENS, step=1, key="px_block_tokens",
    help="Block size of the hash_ids (Mooncake and AIPerf: 512). Converts cache sizes to tokens and tells "
    "complete blocks from a last partial one when sessions are found from the blocks.",
)

report = core_calls.compute(prefix.prefix_report, block_tokens=int(block_tokens), k=15)
if not core_calls.usable(report, what="prefix reuse"):
    st.stop()
reuse, depth, curve, top, sess = report.reuse, report.depth, report.lru, report.top, report.sessions
if not view.has("hash_ids"):
    st.caption(f"Block ids derived from the workload's prompt segments at {int(block_tokens):,} tokens per block.")

if core_calls.usable(reuse, what="block reuse") and core_calls.usable(depth, what="the shared-prefix depth"):
    cols = st.columns(4)
    cols[0].metric("Block reuse", f"{reuse.reuse_ratio:.1%}", help="Blocks whose id occurred earlier in the trace.")
    cols[1].metric("Requests with a shared prefix", f"{depth.share_with_prefix:.1%}")
    cols[2].metric("Mean shared-prefix depth", f"{depth.mean_depth:,.1f} blocks")
    cols[3].metric("Block accesses", f"{reuse.blocks:,}", help=f"{reuse.unique_blocks:,} distinct block ids")

if core_calls.usable(curve, what="the LRU hit-ratio curve"):
    sizes = ["blocks", *hardware.MODELS]
    size_in = st.selectbox(
        "Cache size in", sizes, key="px_kv_model", format_func=lambda m: m if m == "blocks" else f"GB of {m} KV cache",
        help="A model's KV cache bytes per token (2 x layers x KV heads x head size x 2 bytes; see the Provisioning "
        "page's model table) turn cache sizes into GB.",
    )
    kv = hardware.MODELS[size_in].kv_bytes_per_token if size_in != "blocks" else None
    page.plot(
        charts.lru_hit_ratio_curve(
            curve.frame, max_hit_ratio=curve.max_hit_ratio, block_tokens=curve.block_tokens, kv_bytes_per_token=kv, model=size_in
        ),
        curve.frame, key="px_lru",
    )

    def size(blocks: int) -> str:
        tokens = blocks * curve.block_tokens
        gb = f", {tokens * kv / 1e9:,.3g} GB of {size_in} KV cache" if kv else ""
        return f"{blocks:,} blocks ({tokens:,} tokens{gb})"

    half = curve.frame.filter(curve.frame["hit_ratio"] >= curve.max_hit_ratio / 2)
    text = (
        f"An LRU prefix cache of {size(curve.saturation_blocks)} or more hits {curve.max_hit_ratio:.1%} of "
        f"{curve.accesses:,} block accesses, as an unbounded one would"
    )
    if half.height:
        text += f"; half of that needs {size(half.row(0, named=True)['capacity_blocks'])}"
    st.caption(text + ".")

if depth.ok:
    page.plot(charts.prefix_depth_histogram(depth.histogram), depth.histogram, key="px_depth")
    st.caption(
        f"{depth.share_with_prefix:.1%} of requests start with blocks an earlier request had; "
        f"{depth.prefix_block_share:.1%} of all blocks lie in such a shared prefix."
    )

if core_calls.usable(top, what="the top shared prefixes"):
    page.plot(charts.top_prefixes(top.frame), top.frame, key="px_top")
    st.dataframe(top.frame, hide_index=True)

if reuse.ok and reuse.per_client.height > 1:
    page.plot(charts.client_reuse(reuse.per_client), reuse.per_client, key="px_clients")

st.subheader("Sessions")
if core_calls.usable(sess, what="sessions"):
    how = (
        "from the session_id column"
        if sess.method == "session_id"
        else "from requests that extend an earlier request's complete blocks (same client, longer input)"
    )
    st.caption(
        f"Sessions found {how}: {sess.sessions:,} sessions, {sess.multi_turn_sessions:,} with more than one turn, "
        f"holding {sess.share_requests_multi_turn:.1%} of requests."
    )
    page.plot(charts.session_turns(sess.turn_counts), sess.turn_counts, key="px_turns")
    if sess.turns.height:
        page.plot(charts.inter_turn_gaps(sess.turns), sess.turns, key="px_gaps")
        page.plot(charts.context_growth(sess.turns), sess.turns, key="px_growth")
        st.caption(
            f"Median gap between turns {sess.median_gap_s:,.1f} s; median context growth {sess.median_growth_tokens:,.0f} tokens per turn."
        )
    else:
        st.info("No request continues an earlier one: every session has a single turn.")
