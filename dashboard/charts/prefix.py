"""Prefix-reuse charts: the LRU hit-ratio curve, prefix depths, top prefixes, reuse per client, sessions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, finish, ref_line
from plaintext import svg


def lru_hit_ratio_curve(
    frame: pl.DataFrame, *, max_hit_ratio: float, block_tokens: int, kv_bytes_per_token: float | None = None, model: str = ""
) -> go.Figure:
    """Hit ratio of an LRU prefix cache vs its capacity: ``capacity_blocks, capacity_tokens, hit_ratio``
    (:func:`servegen_core.characterize.prefix.lru_hit_ratio`), with the unbounded cache's ratio as a reference line.

    With ``kv_bytes_per_token`` (a ``model``'s KV cache bytes per token) the x axis is the cache
    size in GB of KV cache (10^9 bytes), blocks and tokens in the hover; otherwise in blocks.
    """
    blocks = frame["capacity_blocks"].to_numpy()
    tokens = frame["capacity_tokens"].to_numpy()
    if kv_bytes_per_token:
        x = tokens * kv_bytes_per_token / 1e9
        custom = np.column_stack([blocks, tokens])
        hover = "%{x:.3g} GB: %{customdata[0]:,} blocks (%{customdata[1]:,} tokens)<br>hit ratio %{y:.2f} %<extra></extra>"
        x_title = f"cache size (GB of {model} KV cache, {kv_bytes_per_token / 1024:,.0f} KiB per token, log scale)"
    else:
        x, custom = blocks, tokens
        hover = "%{x:,} blocks (%{customdata:,} tokens)<br>hit ratio %{y:.2f} %<extra></extra>"
        x_title = f"cache size (blocks of {block_tokens:,} tokens, log scale)"
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=frame["hit_ratio"].to_numpy() * 100,
            mode="lines",
            line={"color": COLORS[0], "width": 2.5},
            customdata=custom,
            hovertemplate=hover,
            name="LRU prefix cache",
        )
    )
    fig.update_xaxes(type="log")
    ref_line(fig, y=max_hit_ratio * 100, text=f"unbounded cache: {max_hit_ratio:.1%}", log=False)
    return finish(
        fig, "Prefix-cache hit ratio vs cache size (LRU)", x_title=x_title, y_title="hit ratio (% of blocks)", showlegend=False,
    )


def lru_comparison(frame: pl.DataFrame, *, block_tokens: int, tolerance: float) -> go.Figure:
    """The LRU hit ratio of the source and the generated workload at each compared cache size:
    ``capacity_blocks, source, generated, ratio, passed``
    (:func:`servegen_core.characterize.prefix.compare_reuse`), the band of ``tolerance``
    (relative) around the source shaded, failing sizes marked."""
    x = frame["capacity_blocks"].to_numpy()
    src = frame["source"].to_numpy() * 100
    gen = frame["generated"].to_numpy() * 100
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=src * (1 + tolerance), mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=x, y=src * (1 - tolerance), mode="lines", line={"width": 0}, fill="tonexty", fillcolor="rgba(120,120,120,0.18)",
        name=f"source ±{tolerance:.0%}", hoverinfo="skip",
    ))
    fig.add_trace(go.Scatter(
        x=x, y=src, mode="lines+markers", line={"color": COLORS[0], "width": 2.5}, name="source trace",
        hovertemplate="%{x:,} blocks<br>source hit ratio %{y:.2f} %<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=x, y=gen, mode="lines+markers", line={"color": COLORS[1], "width": 2.5}, name="generated workload",
        customdata=frame["ratio"].to_numpy(),
        hovertemplate="%{x:,} blocks<br>generated hit ratio %{y:.2f} % (%{customdata:.2f}x the source)<extra></extra>",
    ))
    bad = ~frame["passed"].to_numpy()
    if bad.any():
        fig.add_trace(go.Scatter(
            x=x[bad], y=gen[bad], mode="markers", marker={"symbol": "x", "size": 11, "color": "#c0392b"},
            name=f"outside ±{tolerance:.0%}", hoverinfo="skip",
        ))
    fig.update_xaxes(type="log")
    return finish(
        fig, "LRU prefix-cache hit ratio: source vs generated", x_title=f"cache size (blocks of {block_tokens:,} tokens, log scale)",
        y_title="hit ratio (% of blocks)",
    )


def prefix_depth_histogram(histogram: pl.DataFrame) -> go.Figure:
    """Requests by shared-prefix depth: ``depth_blocks, requests, share`` (:func:`servegen_core.characterize.prefix.prefix_depth`)."""
    fig = go.Figure(
        go.Bar(
            x=histogram["depth_blocks"].to_numpy(),
            y=histogram["share"].to_numpy() * 100,
            marker_color=COLORS[2],
            customdata=histogram["requests"].to_numpy(),
            hovertemplate="depth %{x} blocks<br>%{y:.2f} % of requests (%{customdata:,})<extra></extra>",
            name="requests",
        )
    )
    fig.update_yaxes(type="log")
    return finish(
        fig, "Shared-prefix depth (leading blocks an earlier request had)", x_title="shared-prefix depth (blocks)",
        y_title="requests (%, log scale)", showlegend=False, bargap=0.1,
    )


def top_prefixes(frame: pl.DataFrame) -> go.Figure:
    """The most used maximal shared prefixes: ``rank, depth_blocks, requests, request_share, ...``."""
    labels = [f"#{r} ({d:,} blocks)" for r, d in zip(frame["rank"].to_list(), frame["depth_blocks"].to_list())]
    fig = go.Figure(
        go.Bar(
            x=frame["request_share"].to_numpy() * 100,
            y=labels,
            orientation="h",
            marker_color=COLORS[3],
            customdata=np.column_stack([frame["requests"].to_numpy(), frame["first_block"].to_numpy(), frame["last_block"].to_numpy()]),
            hovertemplate="prefix %{y}<br>%{x:.2f} % of requests (%{customdata[0]:,})<br>blocks %{customdata[1]} … %{customdata[2]}<extra></extra>",
            name="share",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return finish(
        fig, f"Top {frame.height} shared prefixes by requests", x_title="share of requests (%)",
        y_title="prefix (rank, depth)", showlegend=False, height=max(300, 26 * frame.height + 120),
    )


def client_reuse(per_client: pl.DataFrame, *, limit: int = 30) -> go.Figure:
    """Block reuse ratio of the ``limit`` clients with most blocks: ``client_id, blocks, reuse_ratio, self_reuse_ratio``."""
    top = per_client.sort("blocks", descending=True, maintain_order=True).head(limit)
    labels = [f"client {svg(c)}" for c in top["client_id"].to_list()]
    fig = go.Figure()
    for col, name, color in (("reuse_ratio", "seen earlier (any client)", COLORS[0]), ("self_reuse_ratio", "seen earlier (same client)", COLORS[1])):
        fig.add_trace(
            go.Bar(
                x=top[col].fill_null(0).to_numpy() * 100, y=labels, orientation="h", marker_color=color, name=name,
                customdata=top["blocks"].to_numpy(),
                hovertemplate="%{y}<br>%{x:.1f} % of %{customdata:,} blocks<extra>" + name + "</extra>",
            )
        )
    fig.update_yaxes(autorange="reversed")
    return finish(
        fig, f"Block reuse per client (top {top.height} by blocks)", x_title="reused blocks (% of the client's blocks)",
        y_title="client", barmode="group", height=max(300, 40 * top.height + 120),
    )


def session_turns(turn_counts: pl.DataFrame) -> go.Figure:
    """Sessions by number of turns: ``turns, sessions, share`` (:func:`servegen_core.characterize.prefix.sessions`)."""
    fig = go.Figure(
        go.Bar(
            x=turn_counts["turns"].to_numpy(),
            y=turn_counts["share"].to_numpy() * 100,
            marker_color=COLORS[4],
            customdata=turn_counts["sessions"].to_numpy(),
            hovertemplate="%{x} turns<br>%{y:.2f} % of sessions (%{customdata:,})<extra></extra>",
            name="sessions",
        )
    )
    fig.update_yaxes(type="log")
    return finish(fig, "Turns per session", x_title="turns (requests)", y_title="sessions (%, log scale)", showlegend=False)


def inter_turn_gaps(turns: pl.DataFrame) -> go.Figure:
    """Time between a turn's arrival and the previous turn's: ``gap_s`` of each follow-up turn."""
    gaps = turns["gap_s"].to_numpy()
    fig = go.Figure(
        go.Histogram(
            x=gaps, nbinsx=60, marker_color=COLORS[5], name="follow-up turns",
            hovertemplate="%{x} s<br>%{y:,} turns<extra></extra>",
        )
    )
    return finish(fig, "Inter-turn gaps", x_title="gap since the previous turn (s)", y_title="follow-up turns", showlegend=False, bargap=0.05)


def context_growth(turns: pl.DataFrame) -> go.Figure:
    """Input tokens added per turn (``growth_tokens``) by turn number (``turn``), as box plots."""
    fig = go.Figure(
        go.Box(
            x=turns["turn"].to_numpy(), y=turns["growth_tokens"].to_numpy(), marker_color=COLORS[6],
            name="growth", boxpoints=False,
        )
    )
    return finish(fig, "Context growth per turn", x_title="turn", y_title="input tokens added since the previous turn (tokens)", showlegend=False)
