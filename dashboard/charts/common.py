"""What every chart shares: the template and palette, time axes, the common layout, reference lines, the empty figure.

Chart functions are pure: a result frame in, a Plotly figure out (no Streamlit, no statistics).
Every figure has a title, axis titles with units and hover values. The inputs are the tables
the characterization functions of :mod:`servegen_core` return; the chart functions only lay
them out (unit conversions for display, e.g. seconds to hours, are the only arithmetic).

Time axes show hours since the start of the source; hover labels show the source time as
``day D HH:MM`` (:func:`fmt.fmt_time`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

from fmt import fmt_time, time_unit
from plaintext import svg

TEMPLATE = "plotly_white"
#: Qualitative colours, in order (Plotly's default sequence).
COLORS = (
    "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
    "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)
OTHER_COLOR = "#b0b0b0"


def time_values(start_s: Sequence[float] | np.ndarray | pl.Series, span_s: float | None = None) -> tuple[np.ndarray, list[str], str, float]:
    """Times for a time axis: values in the display unit, hover labels, unit name, span in that unit."""
    s = np.asarray(start_s, dtype=np.float64)
    span = float(s.max() - s.min()) if span_s is None and s.size else float(span_s or 0.0)
    unit, scale = time_unit(span)
    return s / scale, [fmt_time(v) for v in s], unit, span / scale


def time_axis(fig: go.Figure, unit: str, span: float, *, origin: str = "source start", **where) -> None:
    kw: dict = {"title_text": f"time since {origin} ({unit})"}
    if unit == "h" and span > 72:
        kw["dtick"] = 24
    elif unit == "h" and span > 24:
        kw["dtick"] = 6
    fig.update_xaxes(**kw, **where)


def finish(
    fig: go.Figure,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    *,
    legend_bottom: bool = False,
    **layout,
) -> go.Figure:
    """Common layout: template, left-aligned title, horizontal legend (above, or below the axes).

    Titles are plain text (:func:`plaintext.svg`): a client id in a title shows literally.
    Client ids elsewhere in a figure (tick labels, legend names, hover data) are escaped where
    they enter it.
    """
    if legend_bottom:
        legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
        margin = {"l": 60, "r": 20, "t": 70, "b": 110}
    else:
        legend = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0}
        margin = {"l": 60, "r": 20, "t": 80, "b": 50}
    settings = {
        "template": TEMPLATE,
        "title": {"text": svg(title), "x": 0.0, "xanchor": "left"},
        "margin": margin,
        "hovermode": "closest",
        "legend": legend,
    }
    settings.update(layout)
    fig.update_layout(**settings)
    # Log axes: powers of ten (10⁻⁶) rather than SI prefixes (1µ), which read as units.
    fig.for_each_xaxis(lambda ax: ax.update(exponentformat="power") if ax.type == "log" else None)
    fig.for_each_yaxis(lambda ax: ax.update(exponentformat="power") if ax.type == "log" else None)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def ref_line(fig: go.Figure, *, x: float | None = None, y: float | None = None, text: str, log: bool) -> None:
    """A dashed reference line (vertical at ``x`` or horizontal at ``y``) with its label.

    The label is placed by hand: on a log axis Plotly expects annotation positions in log10
    units, which ``add_vline(annotation_text=...)`` does not do.
    """
    line = {"color": "black", "dash": "dash", "width": 1.5}
    if x is not None:
        fig.add_vline(x=x, line=line)
        fig.add_annotation(x=math.log10(x) if log else x, y=1.0, xref="x", yref="paper", text=text, showarrow=False, xanchor="left", yanchor="top", xshift=4, font={"size": 12})
    else:
        fig.add_hline(y=y, line=line)
        fig.add_annotation(x=1.0, y=math.log10(y) if log else y, xref="paper", yref="y", text=text, showarrow=False, xanchor="right", yanchor="bottom", font={"size": 12})


def empty_figure(title: str, message: str) -> go.Figure:
    """A titled figure that says why it holds no data."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return finish(fig, title)


def marked_colors(ids: Sequence[str], selected: Collection[str] | None) -> str | list[str]:
    """One colour per point: the selected clients in the second palette colour."""
    if not selected:
        return COLORS[0]
    return [COLORS[1] if c in selected else COLORS[0] for c in ids]
