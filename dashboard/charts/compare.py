"""Compose and Preview charts: the planned rate, mixing weights, achieved vs target, generated vs source (CV, CDFs)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, OTHER_COLOR, finish, ref_line, time_axis
from fmt import fmt_time, time_unit
from plaintext import svg, svg_series


def rate_plan(curve: pl.DataFrame) -> go.Figure:
    """The workload's rate function as generation uses it: ``t_s, target_rps, composed_rps``.

    ``curve``: :func:`servegen_core.generate.compose.rate_curve` (a fine grid with both sides of every
    step), drawn as lines through its points, so a ramp is a ramp and a step is a step. The
    composed rate is below the target only where no composed client was active.
    """
    t = curve["t_s"].to_numpy()
    span = float(t.max() - t.min()) if t.size else 0.0
    unit, scale = time_unit(span)
    fig = go.Figure()
    for col, name, color, dash in (("target_rps", "target (rate function)", COLORS[0], "solid"), ("composed_rps", "composed (active clients)", COLORS[1], "dash")):
        fig.add_trace(
            go.Scatter(
                x=t / scale,
                y=curve[col].to_numpy(),
                mode="lines",
                line={"color": color, "dash": dash, "width": 2},
                name=name,
                hovertemplate="t = %{x:.2f} " + unit + "<br>%{y:,.3f} req/s<extra>" + name + "</extra>",
            )
        )
    time_axis(fig, unit, span / scale, origin="workload start")
    fig.update_yaxes(rangemode="tozero")
    return finish(fig, "Request rate of the workload (as generated)", y_title="rate (requests/s)")


def weight_shares(weights: pl.DataFrame, *, limit: int = 30) -> go.Figure:
    """Observed vs composed request share per client: ``client_id, observed_share, composed_share``
    (:attr:`ComposePlan.composed_shares`: the share generation draws; ``weight_share`` stands in without it)."""
    share = "composed_share" if "composed_share" in weights.columns else "weight_share"
    w = weights.sort(share, descending=True).head(limit)
    labels = [f"client {svg(c)}" for c in w["client_id"].to_list()]
    fig = go.Figure()
    for col, name, color in (("observed_share", "observed share", OTHER_COLOR), (share, "composed share (generated)", COLORS[0])):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=w[col].to_numpy() * 100,
                name=name,
                marker_color=color,
                hovertemplate="%{x}: %{y:.2f} % of requests<extra>" + name + "</extra>",
            )
        )
    title = "Client shares: observed vs composed"
    if weights.height > limit:
        title += f" (top {limit} of {weights.height})"
    # a narrow chart: the legend wraps to two lines, so the top margin holds the title above it
    return finish(
        fig, title, x_title="client", y_title="share of requests (%)", barmode="group",
        margin={"l": 60, "r": 20, "t": 120, "b": 50},
    )


def achieved_vs_target(windows: pl.DataFrame) -> go.Figure:
    """Generated vs target requests per arrival window: ``t0_s, duration_s, target_requests, requests``."""
    t0 = windows["t0_s"].to_numpy()
    span = float((t0 + windows["duration_s"].to_numpy()).max() - t0.min()) if t0.size else 0.0
    unit, scale = time_unit(span)
    mid = (t0 + windows["duration_s"].to_numpy() / 2) / scale
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=mid,
            y=windows["requests"].to_numpy(),
            name="generated",
            marker_color=COLORS[0],
            hovertemplate="window centred at %{x:.2f} " + unit + "<br>%{y:,.0f} requests generated<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=mid,
            y=windows["target_requests"].to_numpy(),
            mode="markers+lines",
            name="target",
            line={"color": "black", "dash": "dot"},
            marker={"size": 6, "color": "black"},
            hovertemplate="window centred at %{x:.2f} " + unit + "<br>%{y:,.1f} requests targeted<extra></extra>",
        )
    )
    time_axis(fig, unit, span / scale, origin="workload start")
    return finish(fig, "Achieved vs target requests per arrival window", y_title="requests per window")


def cv_scatter(cv: pl.DataFrame) -> go.Figure:
    """Generated against source inter-arrival CV per client-window, with the y = x line.

    ``cv``: ``client_id, start_s, requests, cv, source_cv`` (:attr:`ValidationReport.cv`).
    """
    lo = float(min(cv["cv"].min(), cv["source_cv"].min())) if cv.height else 0.1
    hi = float(max(cv["cv"].max(), cv["source_cv"].max())) if cv.height else 10.0
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"color": OTHER_COLOR, "dash": "dot"}, name="generated = source", hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=cv["source_cv"].to_numpy(),
            y=cv["cv"].to_numpy(),
            mode="markers",
            marker={"size": 7, "color": COLORS[0], "opacity": 0.7},
            customdata=np.column_stack([svg_series(cv["client_id"]).to_numpy(), [fmt_time(v) for v in cv["start_s"].to_list()], cv["requests"].to_numpy()]),
            hovertemplate="client %{customdata[0]}, window %{customdata[1]}<br>source CV %{x:.2f}, generated %{y:.2f}<br>%{customdata[2]:,.0f} requests<extra></extra>",
            name="client-window",
        )
    )
    ref_line(fig, y=1.0, text="CV = 1 (Poisson)", log=True)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return finish(fig, "Inter-arrival CV per client-window: generated vs source", x_title="source CV (recorded, log scale)", y_title="generated CV (log scale)")


def cdf_comparison(frames: Mapping[str, pl.DataFrame], *, x: str, y: str = "cdf", title: str, x_title: str, log_x: bool = True, vline: float | None = None) -> go.Figure:
    """Several CDFs on one chart (e.g. generated vs source lengths, realistic vs naive CV).

    ``frames`` maps a legend name to a frame with columns ``x`` and ``y``; names starting with
    ``source`` or ``naive`` get fixed styles. ``x_title`` is used as given (say "log scale" in it).
    """
    fig = go.Figure()
    styles = {"source": ("#333", "solid", 3), "naive": (COLORS[1], "dash", 2)}
    for i, (name, frame) in enumerate(frames.items()):
        color, dash, width = styles.get(name.split(" ")[0], (COLORS[i % len(COLORS)], "solid", 2))
        fig.add_trace(
            go.Scatter(
                x=frame[x].to_numpy(),
                y=frame[y].to_numpy(),
                mode="lines",
                line_shape="hv",
                line={"color": color, "dash": dash, "width": width},
                name=name,
                hovertemplate="%{x:,.3g}: %{y:.1%}<extra>" + name + "</extra>",
            )
        )
    if vline is not None:
        ref_line(fig, x=vline, text=f"CV = {vline:g} (Poisson)", log=log_x)
    if log_x:
        fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return finish(fig, title, x_title=x_title, y_title="cumulative share")
