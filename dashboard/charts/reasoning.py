"""Reasoning charts: the reason ratio and its two modes, reasoning vs answer tokens, bimodality per client."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, OTHER_COLOR, finish
from plaintext import svg


def _normal_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def reason_ratio_histogram(
    frame: pl.DataFrame, components: pl.DataFrame | None = None, *, bin_width: float | None = None, modes: Sequence[float] | None = None
) -> go.Figure:
    """Reason ratio distribution (``reason_ratio, prob``) with the two fitted modes marked.

    ``components``: ``component, mu, sigma, weight`` (:class:`servegen_core.characterize.reasoning.Bimodality`);
    each fitted Gaussian is drawn as probability per bin (density × ``bin_width``). With
    ``modes`` (the mixture's own maxima, :func:`servegen_core.characterize.reasoning.compare_modes`) the
    mixture is drawn too, its modes are marked on it and the dashed lines stand at them
    (otherwise at the components' means).
    """
    x = frame["reason_ratio"].to_numpy()
    prob = frame["prob"].to_numpy()
    width = bin_width or (float(np.median(np.diff(np.sort(x)))) if x.size > 1 else 0.01)
    fig = go.Figure(
        go.Bar(
            x=x,
            y=prob * 100,
            width=width,
            marker={"color": OTHER_COLOR, "line": {"width": 0}},
            name="observed",
            hovertemplate="reason ratio %{x:.3f}<br>%{y:.3f} % of requests<extra></extra>",
        )
    )
    if components is not None and components.height:
        grid = np.linspace(0.0, 1.0, 401)
        for i, row in enumerate(components.sort("component").iter_rows(named=True)):
            color = COLORS[i % len(COLORS)]
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=row["weight"] * _normal_pdf(grid, row["mu"], row["sigma"]) * width * 100,
                    mode="lines",
                    line={"color": color, "width": 2.5},
                    name=f"mode {row['component']}: {row['mu']:.2f} (weight {row['weight']:.0%})",
                    hovertemplate="reason ratio %{x:.3f}<br>fitted %{y:.3f} %<extra>mode " + str(row["component"]) + "</extra>",
                )
            )
            if modes is None:
                fig.add_vline(
                    x=row["mu"],
                    line={"color": color, "dash": "dash", "width": 1.5},
                    annotation_text=f"mode {row['component']} = {row['mu']:.2f}",
                    annotation_position="top left" if i == 0 else "top right",
                )
        if modes is not None:
            total = sum(
                r["weight"] * _normal_pdf(grid, r["mu"], r["sigma"]) for r in components.iter_rows(named=True)
            ) * width * 100
            at = np.asarray(list(modes), dtype=np.float64)
            fig.add_trace(go.Scatter(x=grid, y=total, mode="lines", line={"color": "#333", "width": 1.5, "dash": "dot"}, name="fitted mixture", hoverinfo="skip"))
            fig.add_trace(
                go.Scatter(
                    x=at, y=np.interp(at, grid, total), mode="markers", marker={"size": 11, "color": "#333", "symbol": "diamond"},
                    name="mixture modes",
                    hovertemplate="mixture mode at %{x:.3f}<extra></extra>",
                )
            )
            for j, m in enumerate(at):
                fig.add_vline(
                    x=float(m), line={"color": "#333", "dash": "dash", "width": 1.2},
                    annotation_text=f"mixture mode {m:.2f}", annotation_position="top left" if j == 0 else "top right",
                )
    fig.update_xaxes(range=[0, 1.0])
    return finish(
        fig,
        "Reason ratio (reasoning / output tokens) with the two fitted modes",
        x_title="reason ratio (reasoning tokens / output tokens)",
        y_title="requests (%)",
        bargap=0,
        legend_bottom=True,
    )


def reasoning_vs_answer(histogram: pl.DataFrame) -> go.Figure:
    """Distributions of output, reasoning and answer tokens on log bins: ``quantity, bin_lo, bin_hi, prob``."""
    fig = go.Figure()
    colors = {"output": "#444", "reasoning": COLORS[3], "answer": COLORS[2]}
    for q in histogram["quantity"].unique(maintain_order=True).to_list():
        h = histogram.filter((pl.col("quantity") == q) & (pl.col("bin_lo") >= 1))
        lo = h["bin_lo"].to_numpy()
        hi = h["bin_hi"].to_numpy()
        fig.add_trace(
            go.Scatter(
                x=np.sqrt(lo * hi),
                y=h["prob"].to_numpy() * 100,
                mode="lines",
                line={"shape": "hvh", "color": colors.get(q, OTHER_COLOR), "width": 3 if q == "output" else 2, "dash": "dot" if q == "output" else "solid"},
                name=f"{q} tokens",
                customdata=np.column_stack([lo, hi]),
                hovertemplate="%{customdata[0]:,.0f}–%{customdata[1]:,.0f} tokens<br>%{y:.2f} % of requests<extra>" + q + "</extra>",
            )
        )
    fig.update_xaxes(type="log")
    return finish(fig, "Reasoning vs answer tokens per request", x_title="tokens per request (log scale)", y_title="requests per log bin (%)")


def bimodality_by_client(per_client: pl.DataFrame, *, threshold: float, on: str = "reason_ratio") -> go.Figure:
    """Each client's two fitted modes (dumbbell: lower and upper mode, marker size ∝ weight), bimodal clients coloured.

    ``per_client``: ``client_id, requests, location1, weight1, location2, weight2, bc, bimodal``.
    """
    f = per_client.sort("requests", descending=True)
    labels = [f"client {svg(c)}" for c in f["client_id"].to_list()]
    fig = go.Figure()
    for bimodal, color, name in ((True, COLORS[1], f"bimodal (BC > {threshold:.3f})"), (False, COLORS[0], "not bimodal")):
        g = f.filter(pl.col("bimodal") == bimodal)
        if not g.height:
            continue
        glabels = [f"client {svg(c)}" for c in g["client_id"].to_list()]
        xs, ys = [], []
        for lab, a, b in zip(glabels, g["location1"].to_list(), g["location2"].to_list(), strict=True):
            xs += [a, b, None]
            ys += [lab, lab, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 2}, hoverinfo="skip", showlegend=False, legendgroup=name))
        for loc, wcol, comp in (("location1", "weight1", "lower"), ("location2", "weight2", "upper")):
            fig.add_trace(
                go.Scatter(
                    x=g[loc].to_numpy(),
                    y=glabels,
                    mode="markers",
                    marker={"color": color, "size": 6 + 18 * g[wcol].to_numpy(), "line": {"width": 1, "color": "white"}},
                    name=name,
                    legendgroup=name,
                    showlegend=comp == "lower",
                    customdata=np.column_stack([g[wcol].to_numpy() * 100, g["bc"].to_numpy(), g["requests"].to_numpy()]),
                    hovertemplate="%{y}: " + comp + " mode %{x:.3g} (weight %{customdata[0]:.0f} %)<br>BC %{customdata[1]:.3f}, %{customdata[2]:,.0f} requests<extra></extra>",
                )
            )
    what = "reason ratio" if on == "reason_ratio" else "reasoning tokens"
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1])
    if on != "reason_ratio":
        fig.update_xaxes(type="log")
    return finish(
        fig,
        f"Two modes of the {what} per client (busiest at the top)",
        x_title=what + (" (tokens, log scale)" if on != "reason_ratio" else " (reasoning tokens / output tokens)"),
        y_title="client",
        height=max(360, 18 * len(labels) + 140),
    )
