"""Inputs and result pieces of the Provisioning page: the objectives, the scheduler, the span simulated,
the price of a GPU-hour, and the cost columns of an answer. Every input keeps its value for the session."""

from __future__ import annotations

import polars as pl
import streamlit as st

import core_calls
from fmt import fmt_time
from plaintext import md
from servegen_core.characterize import rates
from servegen_core.serve.fleetcost import GPU_PRICES, fleet_cost
from servegen_core.serve.simulate import ServerConfig
from servegen_core.serve.whatif import DEFAULT_SLO, SLO_PERCENTILES, TABLE_LATENCIES, Slo, percentile_columns
from session import View

#: The default objectives: both latencies a chat user feels.
DEFAULT_TTFT_S, DEFAULT_TPOT_S = DEFAULT_SLO.ttft_p99_s, DEFAULT_SLO.tpot_p99_s
#: Spans the page can simulate of a trace: the sidebar's, or its busiest window of this many seconds.
SPAN_CHOICES = {"the sidebar's span": None, "its busiest hour": 3600, "its busiest 10 minutes": 600}
#: Bins in which a trace's busiest window is searched.
BUSIEST_RESOLUTION_S = 60
#: Every latency column an answer's table can carry (at any SLO percentile).
TABLE_LATENCY_COLUMNS = tuple(dict.fromkeys((*TABLE_LATENCIES, *(c for q in SLO_PERCENTILES for c in percentile_columns(q)))))


def latency_columns(percentile: int) -> dict[str, str]:
    """The answer table's TTFT, TPOT and end-to-end columns at ``percentile`` and their headers
    (``{"ttft_p90_s": "p90 TTFT s", ...}``): the core carries them at the objective's percentile."""
    labels = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
    return {f"{k}_p{percentile}_s": f"p{percentile} {v} s" for k, v in labels.items()}


def slo_inputs() -> Slo:
    """TTFT, TPOT and end-to-end objectives (0 = none) and the percentile they hold at: the :class:`Slo`
    (:class:`SpecError` when every objective is off)."""
    c1, c2, c3, c4 = st.columns(4)
    q = c4.selectbox(
        "SLO percentile", list(SLO_PERCENTILES), index=list(SLO_PERCENTILES).index(99), format_func=lambda v: f"p{v}",
        key="prov_slo_q", persist_state="session", help="The percentile of every latency the objectives bound.",
    )
    ttft = c1.number_input(
        "SLO: TTFT (s, 0 = none)", min_value=0.0, max_value=3600.0, value=DEFAULT_TTFT_S, step=0.5, key="prov_slo_ttft",
        persist_state="session", help=f"Time to the first token; default {DEFAULT_TTFT_S:g} s.",
    )
    tpot = c2.number_input(
        "SLO: TPOT (s, 0 = none)", min_value=0.0, max_value=60.0, value=DEFAULT_TPOT_S, step=0.01, key="prov_slo_tpot",
        persist_state="session", help=f"Time per output token after the first; default {DEFAULT_TPOT_S:g} s (10 tokens/s).",
    )
    e2e = c3.number_input(
        "SLO: end-to-end (s, 0 = none)", min_value=0.0, max_value=86400.0, value=0.0, step=1.0, key="prov_slo_e2e",
        persist_state="session", help="Arrival to the last token; default none.",
    )
    return Slo(ttft_p99_s=ttft or None, tpot_p99_s=tpot or None, e2e_s=e2e or None, percentile=int(q))


def server_inputs() -> ServerConfig:
    """vLLM's scheduler settings of one replica (``--max-num-seqs``, ``--max-batched-tokens``, chunked prefill)."""
    defaults = ServerConfig()
    c1, c2, c3 = st.columns([1, 1, 2])
    seqs = c1.number_input(
        "--max-num-seqs", min_value=1, max_value=1_000_000, value=defaults.max_num_seqs, step=16, key="prov_max_num_seqs",
        persist_state="session", help="Running sequences per replica at most (vLLM's --max-num-seqs).",
    )
    tokens = c2.number_input(
        "--max-batched-tokens", min_value=1, max_value=10_000_000, value=defaults.max_batched_tokens, step=1024,
        key="prov_max_batched_tokens", persist_state="session",
        help="Tokens per iteration at most (vLLM's --max-num-batched-tokens): chunked, decodes plus prefill chunks.",
    )
    chunked = c3.toggle(
        "Chunked prefill (current vLLM; off: prefill-first, vLLM V0)", value=True, key="prov_chunked", persist_state="session",
    )
    return ServerConfig(max_num_seqs=int(seqs), max_batched_tokens=int(tokens), chunked_prefill=bool(chunked))


def trace_span(view: View) -> tuple[pl.DataFrame, str]:
    """The part of the sidebar's trace span the page simulates (a radio: the whole span or its busiest
    hour or 10 minutes, from :func:`servegen_core.characterize.rates.busiest_window`) and its description."""
    choice = st.radio("Span simulated", list(SPAN_CHOICES), horizontal=True, key="prov_span", persist_state="session")
    window_s = SPAN_CHOICES[choice]
    if window_s is None:
        return view.data, f"{fmt_time(view.start_s)} – {fmt_time(view.end_s)}"
    busiest = core_calls.run(
        rates.busiest_window, view.data, key=(view.key, "busiest", window_s), window_s=window_s,
        resolution_s=BUSIEST_RESOLUTION_S, spinner="Finding the busiest window…",
    )
    if busiest is None or not busiest.ok:
        reason = "no rate series" if busiest is None else (busiest.reason or "no rate series")
        st.warning(f"No busiest window of {window_s // 60} minutes in this span: {md(reason)}. Simulating the sidebar's span.")
        return view.data, f"{fmt_time(view.start_s)} – {fmt_time(view.end_s)}"
    part = view.data.filter((pl.col("timestamp_s") >= busiest.start_s) & (pl.col("timestamp_s") < busiest.end_s))
    text = f"{fmt_time(busiest.start_s)} – {fmt_time(busiest.end_s)}, {busiest.rate_rps:,.2f} req/s"
    if busiest.mean_rps:
        text += f" ({busiest.rate_rps / busiest.mean_rps:,.2f}x the span's mean)"
    st.caption(f"Busiest {window_s // 60} minutes of the span: {text}; {part.height:,} requests.")
    return part, text


def price_input(gpu: str, *, key: str, label: str = "USD per GPU-hour") -> float:
    """The price of one GPU-hour of ``gpu``: its list price by default (one input per GPU, kept), with its source."""
    listed = GPU_PRICES.get(gpu)
    value = st.number_input(
        f"{label} ({gpu})", min_value=0.0, max_value=1000.0, value=float(listed.usd_per_gpu_hour) if listed else 0.0, step=0.1,
        format="%.3f", key=f"{key}_{gpu}", persist_state="session",
        help="On-demand list price per GPU (instance price over its GPUs): edit it for the price you pay.",
    )
    if listed is not None:
        st.caption(md(f"List price, edit it for yours: {listed.instance}, {listed.source} ({listed.as_of})."))
    return float(value)


def with_cost(table: pl.DataFrame, *, gpu: str, tp: int, span_s: float, usd_per_gpu_hour: float) -> pl.DataFrame:
    """``table`` (one row per workload, ``replicas`` null without an answer) with ``gpu_hours`` and
    ``cost_usd`` of each answer held for ``span_s`` (:func:`servegen_core.serve.fleetcost.fleet_cost`)."""
    hours, cost = [], []
    for n in table["replicas"].to_list():
        fc = fleet_cost(n, gpu, tp, span_s, usd_per_gpu_hour=usd_per_gpu_hour) if n is not None and span_s > 0 else None
        hours.append(fc.gpu_hours if fc else None)
        cost.append(fc.cost_usd if fc else None)
    return table.with_columns(pl.Series("gpu_hours", hours, dtype=pl.Float64), pl.Series("cost_usd", cost, dtype=pl.Float64))
