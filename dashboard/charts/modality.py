"""Multimodal charts: modality shares, items per request, tokens per item, modality mix over time."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, OTHER_COLOR, finish, time_axis, time_values
from fmt import field_label


MODALITY_COLORS = {"text": COLORS[0], "image": COLORS[1], "audio": COLORS[2], "video": COLORS[3]}


def modality_share_histogram(distribution: pl.DataFrame, *, modalities: Sequence[str] | None = None) -> go.Figure:
    """Distribution of each modality's share of a request's input tokens.

    ``distribution``: ``modality, share_lo, share_hi, prob`` (:class:`ModalityShares.distribution`).
    """
    shown = modalities or distribution["modality"].unique(maintain_order=True).to_list()
    fig = go.Figure()
    for m in shown:
        d = distribution.filter(pl.col("modality") == m)
        lo = d["share_lo"].to_numpy() * 100
        hi = d["share_hi"].to_numpy() * 100
        fig.add_trace(
            go.Bar(
                x=(lo + hi) / 2,
                y=d["prob"].to_numpy() * 100,
                width=(hi - lo) * 0.9 / max(len(shown), 1),
                name=f"{m} tokens",
                marker_color=MODALITY_COLORS.get(m, OTHER_COLOR),
                customdata=np.column_stack([lo, hi]),
                hovertemplate="%{customdata[0]:.0f}–%{customdata[1]:.0f} % " + m + "<br>%{y:.1f} % of requests<extra></extra>",
            )
        )
    return finish(
        fig,
        "Share of each request's input tokens by modality",
        x_title="share of the request's input tokens (%)",
        y_title="requests (%)",
        barmode="group",
    )


def count_distribution(frame: pl.DataFrame, *, field: str = "image_count") -> go.Figure:
    """Items per request: ``count, prob, cdf`` (:func:`image_count_distribution`)."""
    label = field_label(field)
    fig = go.Figure(
        go.Bar(
            x=frame["count"].to_numpy(),
            y=frame["prob"].to_numpy() * 100,
            marker_color=COLORS[1],
            customdata=frame["cdf"].to_numpy() * 100,
            hovertemplate="%{x} per request<br>%{y:.2f} % of requests (≤ %{x}: %{customdata:.1f} %)<extra></extra>",
            name=label,
        )
    )
    fig.update_xaxes(dtick=1 if frame.height <= 20 else None)
    long_tail = frame.height > 10
    if long_tail:  # a few counts carry almost all requests: a log axis keeps the tail visible
        fig.update_yaxes(type="log")
    return finish(
        fig, f"Distribution of {label}", x_title=f"{label} (items)",
        y_title="requests (%" + (", log scale)" if long_tail else ")"), showlegend=False,
    )


def tokens_per_item(distribution: pl.DataFrame, dominant: pl.DataFrame | None = None, *, modality: str = "image") -> go.Figure:
    """Tokens per image (each image counted once) as stems on a log x axis: ``tokens_per_item, prob``.

    The ``dominant`` sizes (``rank, tokens_per_item, share``) are labelled.
    """
    d = distribution.filter(pl.col("tokens_per_item") > 0)
    x = d["tokens_per_item"].to_numpy()
    y = d["prob"].to_numpy() * 100
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            marker={"color": COLORS[1], "size": 4},
            error_y={"type": "data", "symmetric": False, "array": np.zeros_like(y), "arrayminus": y, "width": 0, "color": COLORS[1], "thickness": 1.2},
            name=f"tokens per {modality}",
            hovertemplate="%{x:,.0f} tokens per " + modality + "<br>%{y:.2f} % of " + modality + "s<extra></extra>",
        )
    )
    if dominant is not None:
        for i, row in enumerate(dominant.filter(pl.col("tokens_per_item") > 0).iter_rows(named=True)):
            fig.add_annotation(
                x=math.log10(row["tokens_per_item"]),
                y=row["share"] * 100,
                text=f"#{row['rank']}: {row['tokens_per_item']:,.0f}",
                showarrow=True,
                arrowhead=2,
                ax=30 if i % 2 else -30,
                ay=-25 - 14 * (i % 3),
                font={"size": 11},
            )
    top = float(y.max()) if y.size else 1.0
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, top * 1.35])
    return finish(fig, f"Tokens per {modality}", x_title=f"tokens per {modality} (tokens, log scale)", y_title=f"{modality}s (%)", showlegend=False)


def modality_over_time(frame: pl.DataFrame, *, modalities: Sequence[str] | None = None) -> go.Figure:
    """Token share of each modality per window: ``start_s, modality, token_share, tokens_per_request``."""
    shown = modalities or frame["modality"].unique(maintain_order=True).to_list()
    fig = go.Figure()
    unit, span = "h", 0.0
    for m in shown:
        d = frame.filter(pl.col("modality") == m)
        x, when, unit, span = time_values(d["start_s"], float(frame["start_s"].max() - frame["start_s"].min()))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=d["token_share"].to_numpy() * 100,
                mode="lines+markers",
                stackgroup="share",
                name=m,
                line={"color": MODALITY_COLORS.get(m, OTHER_COLOR)},
                customdata=np.column_stack([when, d["tokens_per_request"].to_numpy()]),
                hovertemplate="%{customdata[0]}<br>" + m + ": %{y:.1f} % of tokens, %{customdata[1]:,.0f} per request<extra></extra>",
            )
        )
    time_axis(fig, unit, span)
    fig.update_yaxes(range=[0, 100])
    return finish(fig, "Modality mix of input tokens per window", y_title="share of input tokens (%)", legend_traceorder="normal")
