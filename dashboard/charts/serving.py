"""Provisioning charts: p99 latency against replicas (realistic vs naive) and the fleet over time."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from charts.common import COLORS, finish, ref_line, time_axis, time_values
from fmt import fmt_resolution
from plaintext import svg


#: Latency columns of a provisioning curve and how they are named on the axes.
LATENCY_LABELS = {
    **{f"{key}_p{q}_s": f"p{q} {name}" for key, name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "end-to-end latency")) for q in (50, 90, 95, 99)},
    "ttft_p50_s": "median TTFT",
}


def provisioning_curves(
    curves: pl.DataFrame,
    *,
    metric: str = "ttft_p99_s",
    slo_s: float | None = None,
    answers: Mapping[str, int | None] | None = None,
) -> go.Figure:
    """Latency vs replica count, one line per workload: ``workload, replicas, <metric>``
    (:attr:`servegen_core.serve.simulate.Comparison.curves`), the SLO as a dashed line and each
    workload's answer (the smallest count meeting the SLO) as a larger marker."""
    label = LATENCY_LABELS.get(metric, metric)
    fig = go.Figure()
    answers = answers or {}
    names = list(dict.fromkeys(curves["workload"].to_list()))
    for i, name in enumerate(names):
        part = curves.filter(pl.col("workload") == name).sort("replicas")
        color = COLORS[i % len(COLORS)]
        fig.add_trace(
            go.Scatter(
                x=part["replicas"].to_numpy(), y=part[metric].to_numpy(), mode="lines+markers", name=svg(name),
                line={"color": color, "width": 2, "dash": "solid" if i == 0 else "dot"},
                hovertemplate=f"{svg(name)}<br>%{{x}} replicas<br>{label} %{{y:.3g}} s<extra></extra>",
            )
        )
        n = answers.get(name)
        if n is not None and n in part["replicas"].to_list():
            y = part.filter(pl.col("replicas") == n)[metric].item()
            fig.add_trace(
                go.Scatter(
                    x=[n], y=[y], mode="markers", marker={"color": color, "size": 14, "symbol": "star"},
                    name=f"{svg(name)}: {n} replicas", hovertemplate=f"{svg(name)} needs {n} replicas<extra></extra>",
                )
            )
    fig.update_yaxes(type="log")
    if slo_s is not None:
        ref_line(fig, y=slo_s, text=f"SLO {slo_s:g} s", log=True)
    return finish(fig, f"{label} vs replicas", x_title="replicas", y_title=f"{label} (s, log scale)", legend_bottom=True)


def fleet_timeline(frame: pl.DataFrame, *, replicas: int, bin_s: float) -> go.Figure:
    """Batch size and KV-cache use over time across replicas (:meth:`servegen_core.serve.simulate.SimResult.fleet_timeline`):
    mean and busiest replica per bin."""
    x, when, unit, span = time_values(frame["t_s"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for col, name, color, dash in (("batch_mean", "batch: mean replica", COLORS[0], "solid"), ("batch_max", "batch: busiest replica", COLORS[0], "dot")):
        fig.add_trace(
            go.Scatter(
                x=x, y=frame[col].to_numpy(), mode="lines", name=name, line={"color": color, "dash": dash, "width": 1.5},
                customdata=when, hovertemplate=f"%{{customdata}}<br>{name} %{{y:.1f}} sequences<extra></extra>",
            ),
            row=1, col=1,
        )
    for col, name, color, dash in (("kv_frac_mean", "KV cache: mean replica", COLORS[1], "solid"), ("kv_frac_max", "KV cache: fullest replica", COLORS[1], "dot")):
        fig.add_trace(
            go.Scatter(
                x=x, y=frame[col].to_numpy() * 100, mode="lines", name=name, line={"color": color, "dash": dash, "width": 1.5},
                customdata=when, hovertemplate=f"%{{customdata}}<br>{name} %{{y:.1f}} %<extra></extra>",
            ),
            row=2, col=1,
        )
    time_axis(fig, unit, span, origin="workload start")
    fig.update_yaxes(title_text="running sequences", row=1, col=1)
    fig.update_yaxes(title_text="KV cache used (%)", row=2, col=1)
    return finish(fig, f"Replicas over time ({replicas} replicas, {fmt_resolution(bin_s)} bins)", legend_bottom=True, height=520)
