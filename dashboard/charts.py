"""Pure chart functions: a result frame in, a Plotly figure out (no Streamlit, no statistics).

Every figure has a title, axis titles with units and hover values. The inputs are the tables
the characterization functions of :mod:`servegen_core` return; the functions here only lay
them out (unit conversions for display, e.g. seconds to hours, are the only arithmetic).

Time axes show hours since the start of the source; hover labels show the source time as
``day D HH:MM`` (:func:`fmt_time`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
#: Qualitative colours, in order (Plotly's default sequence).
COLORS = (
    "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
    "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)
OTHER_COLOR = "#b0b0b0"
HOUR = 3600.0
DAY = 86400.0

FIELD_LABELS = {
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "text_tokens": "text tokens",
    "image_tokens": "image tokens",
    "audio_tokens": "audio tokens",
    "video_tokens": "video tokens",
    "image_count": "images per request",
    "audio_count": "audio clips per request",
    "video_count": "videos per request",
    "reason_ratio": "reason ratio",
    "reasoning_tokens": "reasoning tokens",
    "answer_tokens": "answer tokens",
}


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field, field.replace("_", " "))


def field_unit(field: str) -> str:
    """The unit shown on an axis for ``field``."""
    if field.endswith("_tokens"):
        return "tokens"
    if field.endswith("_count"):
        return "items"
    return "share"


def fmt_time(t_s: float) -> str:
    """Source time as ``day D HH:MM`` (day 1 is the first day), with seconds when not whole minutes."""
    t = round(float(t_s))
    day, rem = divmod(t, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
    return f"day {day + 1} {clock}"


def _times(start_s: Sequence[float] | np.ndarray | pl.Series) -> tuple[np.ndarray, list[str]]:
    s = np.asarray(start_s, dtype=np.float64)
    return s / HOUR, [fmt_time(v) for v in s]


def _time_axis(fig: go.Figure, span_h: float, *, row: int | None = None, col: int | None = None) -> None:
    kw = {"title_text": "time since source start (h)"}
    if span_h > 72:
        kw["dtick"] = 24
    elif span_h > 24:
        kw["dtick"] = 6
    if row is None:
        fig.update_xaxes(**kw)
    else:
        fig.update_xaxes(row=row, col=col, **kw)


def _finish(
    fig: go.Figure,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    *,
    legend_bottom: bool = False,
    **layout,
) -> go.Figure:
    """Common layout: template, left-aligned title, horizontal legend (above, or below the axes)."""
    if legend_bottom:
        legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
        margin = {"l": 60, "r": 20, "t": 70, "b": 110}
    else:
        legend = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0}
        margin = {"l": 60, "r": 20, "t": 80, "b": 50}
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.0, "xanchor": "left"},
        margin=margin,
        hovermode="closest",
        legend=legend,
        **layout,
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def empty_figure(title: str, message: str) -> go.Figure:
    """A titled figure that says why it holds no data."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _finish(fig, title)


# ---------------------------------------------------------------------------------------------
# Lengths
# ---------------------------------------------------------------------------------------------

def length_distribution(
    pdf: pl.DataFrame,
    *,
    field: str,
    curves: pl.DataFrame | None = None,
    fits: pl.DataFrame | None = None,
) -> go.Figure:
    """Length distribution with fitted curves: CDF on a log x axis (left), tail on log-log axes (right).

    ``pdf``: ``value, prob, cdf`` (:func:`servegen_core.lengths.length_pdf`); ``curves``:
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
    return _finish(fig, f"Distribution of {label} with fitted curves", legend_bottom=True)


def percentile_bands(windows: pl.DataFrame, *, field: str) -> go.Figure:
    """Mean and p50/p90/p99 of a length field per window over time (log y).

    ``windows``: ``start_s, mean, p50, p90, p99`` (:class:`servegen_core.lengths.LengthShift`).
    """
    label = field_label(field)
    x, when = _times(windows["start_s"])
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
    _time_axis(fig, float(x.max() - x.min()) if x.size else 0.0)
    return _finish(fig, f"Percentiles of {label} per window over time", y_title=f"{label} ({field_unit(field)}, log scale)")


def client_means(frame: pl.DataFrame, *, field: str) -> go.Figure:
    """Per-client mean length against the client's request volume (log-log).

    ``frame``: ``client_id, requests, mean, p50, p90`` (:func:`servegen_core.lengths.client_length_means`).
    """
    label = field_label(field)
    fig = go.Figure(
        go.Scatter(
            x=frame["requests"].to_numpy(),
            y=frame["mean"].to_numpy(),
            mode="markers",
            marker={"size": 9, "color": COLORS[0], "line": {"width": 0.5, "color": "white"}},
            customdata=np.column_stack([frame["client_id"].to_numpy(), frame["p50"].to_numpy(), frame["p90"].to_numpy()]),
            hovertemplate=(
                "client %{customdata[0]}<br>requests %{x:,.0f}<br>mean %{y:,.0f}<br>"
                "p50 %{customdata[1]:,.0f}, p90 %{customdata[2]:,.0f}<extra></extra>"
            ),
            name="client",
        )
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return _finish(
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
            customdata=sample["client_id"].to_numpy() if "client_id" in sample.columns else None,
            hovertemplate=f"{field_label(x)} %{{x:,}}<br>{field_label(y)} %{{y:,}}<br>client %{{customdata}}<extra></extra>",
            name="request",
        )
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    title = f"{field_label(y).capitalize()} vs {field_label(x)} per request"
    if note:
        title += f" ({note})"
    return _finish(
        fig,
        title,
        x_title=f"{field_label(x)} ({field_unit(x)}, log scale)",
        y_title=f"{field_label(y)} ({field_unit(y)}, log scale)",
    )
