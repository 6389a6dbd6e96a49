"""Length charts: distributions, percentile bands over time, per-client means, input vs output."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from charts.common import COLORS, finish, time_axis, time_values
from fmt import field_label, field_unit
from plaintext import svg_series


def length_distribution(
    pdf: pl.DataFrame,
    *,
    field: str,
    curves: pl.DataFrame | None = None,
    fits: pl.DataFrame | None = None,
) -> go.Figure:
    """Length distribution with fitted curves: CDF on a log x axis (left), tail on log-log axes (right).

    ``pdf``: ``value, prob, cdf`` (:func:`servegen_core.characterize.lengths.length_pdf`); ``curves``:
    ``family, x, pdf, cdf`` and ``fits``: ``family, ks, best`` (a :class:`LengthFit`). The
    tail panel shows the share of requests longer than x (``1 - CDF``), where a Pareto tail
    is a straight line.
    """
    label = field_label(field)
    unit = field_unit(field)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("share of requests ≤ x", "tail: share of requests > x"),
        horizontal_spacing=0.1,
    )
    values = pdf["value"].to_numpy()
    cdf = pdf["cdf"].to_numpy()
    tail = np.clip(1.0 - cdf, 0.0, None)
    keep = tail > 0
    observed = {"color": "#333", "width": 2.5}
    fig.add_trace(
        go.Scatter(
            x=values,
            y=cdf,
            mode="lines",
            line_shape="hv",
            line=observed,
            name="observed",
            legendgroup="observed",
            hovertemplate=label + " %{x:,.0f}<br>share ≤ x %{y:.3f}<extra>observed</extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=values[keep],
            y=tail[keep],
            mode="lines",
            line_shape="hv",
            line=observed,
            name="observed",
            legendgroup="observed",
            showlegend=False,
            hovertemplate=label + " %{x:,.0f}<br>share > x %{y:.2e}<extra>observed</extra>",
        ),
        row=1,
        col=2,
    )
    if curves is not None and curves.height:
        ks: dict[str, float] = {}
        best = None
        if fits is not None and fits.height:
            ks = dict(zip(fits["family"].to_list(), fits["ks"].to_list(), strict=True))
            best_rows = fits.filter(pl.col("best"))
            best = best_rows["family"][0] if best_rows.height else None
        for i, family in enumerate(curves["family"].unique(maintain_order=True).to_list()):
            c = curves.filter(pl.col("family") == family)
            x = c["x"].to_numpy()
            fc = c["cdf"].to_numpy()
            ft = 1.0 - fc
            name = family.replace("_", " + ")
            if family in ks:
                name += f" (KS {ks[family]:.3f})"
            if family == best:
                name += " ★ best"
            line = {"color": COLORS[(i + 1) % len(COLORS)], "dash": "solid" if family == best else "dash", "width": 2}
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=fc,
                    mode="lines",
                    line=line,
                    name=name,
                    legendgroup=family,
                    hovertemplate=label + " %{x:,.0f}<br>fitted share ≤ x %{y:.3f}<extra>" + family + "</extra>",
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=x[ft > 0],
                    y=ft[ft > 0],
                    mode="lines",
                    line=line,
                    name=name,
                    legendgroup=family,
                    showlegend=False,
                    hovertemplate=label + " %{x:,.0f}<br>fitted share > x %{y:.2e}<extra>" + family + "</extra>",
                ),
                row=1,
                col=2,
            )
    axis = f"{label} ({unit}, log scale)"
    fig.update_xaxes(title_text=axis, type="log", row=1, col=1)
    fig.update_xaxes(title_text=axis, type="log", row=1, col=2)
    fig.update_yaxes(title_text="share of requests", range=[0, 1.02], row=1, col=1)
    lowest = float(tail[keep].min()) if keep.any() else 1e-6
    fig.update_yaxes(
        title_text="share of requests (log scale)", type="log", range=[math.log10(lowest) - 0.3, 0.05], row=1, col=2
    )
    return finish(fig, f"Distribution of {label} with fitted curves", legend_bottom=True)


def percentile_bands(windows: pl.DataFrame, *, field: str) -> go.Figure:
    """Mean and p50/p90/p99 of a length field per window over time (log y).

    ``windows``: ``start_s, mean, p50, p90, p99`` (:class:`servegen_core.characterize.lengths.LengthShift`).
    """
    label = field_label(field)
    x, when, unit, span = time_values(windows["start_s"])
    fig = go.Figure()
    styles = {"p99": ("#c6dbef", None), "p90": ("#6baed6", None), "p50": ("#08519c", None), "mean": ("#EF553B", "dash")}
    for stat in ("p99", "p90", "p50", "mean"):
        color, dash = styles[stat]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=windows[stat].to_numpy(),
                mode="lines+markers" if windows.height <= 60 else "lines",
                line={"color": color, "dash": dash, "width": 2},
                name=stat,
                customdata=when,
                hovertemplate="%{customdata}<br>" + stat + " %{y:,.0f} " + field_unit(field) + "<extra></extra>",
            )
        )
    fig.update_yaxes(type="log")
    time_axis(fig, unit, span)
    return finish(fig, f"Percentiles of {label} per window over time", y_title=f"{label} ({field_unit(field)}, log scale)")


def client_means(frame: pl.DataFrame, *, field: str) -> go.Figure:
    """Per-client mean length against the client's request volume (log-log).

    ``frame``: ``client_id, requests, mean, p50, p90`` (:func:`servegen_core.characterize.lengths.client_length_means`).
    """
    label = field_label(field)
    fig = go.Figure(
        go.Scatter(
            x=frame["requests"].to_numpy(),
            y=frame["mean"].to_numpy(),
            mode="markers",
            marker={"size": 9, "color": COLORS[0], "line": {"width": 0.5, "color": "white"}},
            customdata=np.column_stack([svg_series(frame["client_id"]).to_numpy(), frame["p50"].to_numpy(), frame["p90"].to_numpy()]),
            hovertemplate=(
                "client %{customdata[0]}<br>requests %{x:,.0f}<br>mean %{y:,.0f}<br>"
                "p50 %{customdata[1]:,.0f}, p90 %{customdata[2]:,.0f}<extra></extra>"
            ),
            name="client",
        )
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return finish(
        fig,
        f"Mean {label} per client",
        x_title="requests of the client (log scale)",
        y_title=f"mean {label} ({field_unit(field)}, log scale)",
    )


def length_scatter(sample: pl.DataFrame, *, x: str = "input_tokens", y: str = "output_tokens", note: str = "") -> go.Figure:
    """Input against output length of individual requests (a sample; log-log)."""
    fig = go.Figure(
        go.Scattergl(
            x=sample[x].to_numpy(),
            y=sample[y].to_numpy(),
            mode="markers",
            marker={"size": 4, "opacity": 0.35, "color": COLORS[0]},
            customdata=svg_series(sample["client_id"]).to_numpy() if "client_id" in sample.columns else None,
            hovertemplate=f"{field_label(x)} %{{x:,}}<br>{field_label(y)} %{{y:,}}<br>client %{{customdata}}<extra></extra>",
            name="request",
        )
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    title = f"{field_label(y).capitalize()} vs {field_label(x)} per request"
    if note:
        title += f" ({note})"
    return finish(
        fig,
        title,
        x_title=f"{field_label(x)} ({field_unit(x)}, log scale)",
        y_title=f"{field_label(y)} ({field_unit(y)}, log scale)",
    )
