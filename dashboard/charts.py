"""Pure chart functions: a result frame in, a Plotly figure out (no Streamlit, no statistics).

Every figure has a title, axis titles with units and hover values. The inputs are the tables
the characterization functions of :mod:`servegen_core` return; the functions here only lay
them out (unit conversions for display, e.g. seconds to hours, are the only arithmetic).

Time axes show hours since the start of the source; hover labels show the source time as
``day D HH:MM`` (:func:`fmt_time`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from plaintext import svg, svg_series

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


def time_unit(span_s: float) -> tuple[str, float]:
    """Display unit of a time axis for a span: hours from 3 h up, minutes from 3 min, else seconds."""
    if span_s >= 3 * HOUR:
        return "h", HOUR
    if span_s >= 180:
        return "min", 60.0
    return "s", 1.0


def _times(start_s: Sequence[float] | np.ndarray | pl.Series, span_s: float | None = None) -> tuple[np.ndarray, list[str], str, float]:
    """Times for a time axis: values in the display unit, hover labels, unit name, span in that unit."""
    s = np.asarray(start_s, dtype=np.float64)
    span = float(s.max() - s.min()) if span_s is None and s.size else float(span_s or 0.0)
    unit, scale = time_unit(span)
    return s / scale, [fmt_time(v) for v in s], unit, span / scale


def _time_axis(fig: go.Figure, unit: str, span: float, *, origin: str = "source start", **where) -> None:
    kw: dict = {"title_text": f"time since {origin} ({unit})"}
    if unit == "h" and span > 72:
        kw["dtick"] = 24
    elif unit == "h" and span > 24:
        kw["dtick"] = 6
    fig.update_xaxes(**kw, **where)


def _finish(
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


def _ref_line(fig: go.Figure, *, x: float | None = None, y: float | None = None, text: str, log: bool) -> None:
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
    return _finish(fig, f"Distribution of {label} with fitted curves", legend_bottom=True)


def percentile_bands(windows: pl.DataFrame, *, field: str) -> go.Figure:
    """Mean and p50/p90/p99 of a length field per window over time (log y).

    ``windows``: ``start_s, mean, p50, p90, p99`` (:class:`servegen_core.characterize.lengths.LengthShift`).
    """
    label = field_label(field)
    x, when, unit, span = _times(windows["start_s"])
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
    _time_axis(fig, unit, span)
    return _finish(fig, f"Percentiles of {label} per window over time", y_title=f"{label} ({field_unit(field)}, log scale)")


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
    return _finish(
        fig,
        title,
        x_title=f"{field_label(x)} ({field_unit(x)}, log scale)",
        y_title=f"{field_label(y)} ({field_unit(y)}, log scale)",
    )


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------


def rate_over_time(
    series: pl.DataFrame,
    *,
    resolution_s: float,
    title: str = "Aggregate request rate",
    origin: str = "source start",
    color: str = COLORS[0],
) -> go.Figure:
    """Aggregate rate per bin over time: ``start_s, requests, rate_rps`` (:func:`servegen_core.characterize.rates.rate_series`)."""
    x, when, unit, span = _times(series["start_s"])
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=series["rate_rps"].to_numpy(),
            mode="lines",
            line={"color": color, "width": 1.5},
            fill="tozeroy",
            customdata=np.column_stack([when, series["requests"].to_numpy()]),
            hovertemplate="%{customdata[0]}<br>%{y:,.2f} req/s<br>%{customdata[1]:,.0f} requests<extra></extra>",
            name="rate",
        )
    )
    _time_axis(fig, unit, span, origin=origin)
    return _finish(fig, f"{title} ({_fmt_res(resolution_s)} bins)", y_title="rate (requests/s)", showlegend=False)


def _fmt_res(seconds: float) -> str:
    s = float(seconds)
    if s >= HOUR and s % HOUR == 0:
        return f"{s / HOUR:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def _marked(ids: Sequence[str], selected: Collection[str] | None) -> str | list[str]:
    """One colour per point: the selected clients in the second palette colour."""
    if not selected:
        return COLORS[0]
    return [COLORS[1] if c in selected else COLORS[0] for c in ids]


def selected_clients(event: Mapping | None, ids: Sequence[str]) -> list[str]:
    """Client ids of the points picked on a chart (``st.plotly_chart(on_select=...)`` state).

    A point's ``customdata`` names its client where the chart puts it there; otherwise its
    ``point_index`` indexes ``ids`` (the clients in the chart's point order).
    """
    if not event:
        return []
    sel = event.get("selection") or {}
    out: list[str] = []
    for p in sel.get("points", []) or []:
        cd = p.get("customdata")
        if isinstance(cd, list | tuple) and cd:
            cd = cd[0]
        if isinstance(cd, str) and cd in ids:
            out.append(cd)
            continue
        i = p.get("point_index", p.get("point_number"))
        if isinstance(i, int) and 0 <= i < len(ids):
            out.append(ids[i])
    return list(dict.fromkeys(out))


def top_clients(shares: pl.DataFrame, *, k: int = 15, selected: Collection[str] | None = None) -> go.Figure:
    """The ``k`` busiest clients' shares of all requests: ``client_id, requests, share, cum_share``.

    ``selected`` clients are drawn in the second palette colour.
    """
    top = shares.head(k)
    labels = [f"client {svg(c)}" for c in top["client_id"].to_list()]
    fig = go.Figure(
        go.Bar(
            x=top["share"].to_numpy() * 100,
            y=labels,
            orientation="h",
            marker_color=_marked(top["client_id"].to_list(), selected),
            customdata=np.column_stack([top["requests"].to_numpy(), top["cum_share"].to_numpy() * 100]),
            hovertemplate="%{y}<br>%{x:.2f} % of requests (%{customdata[0]:,.0f})<br>cumulative %{customdata[1]:.1f} %<extra></extra>",
            name="share",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _finish(
        fig, f"Top {top.height} clients by requests", x_title="share of requests (%)", y_title="client (busiest at the top)",
        showlegend=False, height=max(300, 26 * top.height + 120),
    )


def stacked_rate(series: pl.DataFrame, *, resolution_s: float) -> go.Figure:
    """Rate of the top-k clients and the rest, stacked: ``start_s, group, rate_rps, share`` (:func:`top_k_series`)."""
    groups = series["group"].unique(maintain_order=True).to_list()
    fig = go.Figure()
    unit = "h"
    span = 0.0
    for i, group in enumerate(groups):
        g = series.filter(pl.col("group") == group)
        x, when, unit, span = _times(g["start_s"], float(series["start_s"].max() - series["start_s"].min()))
        name = "other clients" if group == "rest" else f"client {svg(group)}"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["rate_rps"].to_numpy(),
                mode="lines",
                stackgroup="rate",
                line={"width": 0.5, "color": OTHER_COLOR if group == "rest" else COLORS[i % len(COLORS)]},
                name=name,
                customdata=np.column_stack([when, g["share"].to_numpy() * 100]),
                hovertemplate="%{customdata[0]}<br>%{fullData.name}: %{y:,.2f} req/s (%{customdata[1]:.1f} %)<extra></extra>",
            )
        )
    _time_axis(fig, unit, span)
    top = sum(g != "rest" for g in groups)
    return _finish(fig, f"Aggregate rate by client, top {top} stacked ({_fmt_res(resolution_s)} bins)", y_title="rate (requests/s)", hovermode="x unified", legend_traceorder="normal")


def client_activity(series: pl.DataFrame, *, resolution_s: float, span: tuple[float, float] | None = None) -> go.Figure:
    """Rate of each chosen client over the whole source, one line each, the workload span shaded.

    ``series``: :func:`servegen_core.characterize.rates.top_k_series` of the chosen clients
    (``start_s, group, rate_rps``; group ``"rest"`` sums the clients not drawn one by one).
    """
    groups = series["group"].unique(maintain_order=True).to_list()
    total = float(series["start_s"].max() - series["start_s"].min()) if series.height else 0.0
    fig = go.Figure()
    unit, scale = time_unit(total)
    for i, group in enumerate(groups):
        g = series.filter(pl.col("group") == group)
        x, when, unit, _ = _times(g["start_s"], total)
        name = "other chosen clients" if group == "rest" else f"client {svg(group)}"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["rate_rps"].to_numpy(),
                mode="lines",
                line={"width": 1.2, "color": OTHER_COLOR if group == "rest" else COLORS[i % len(COLORS)]},
                name=name,
                customdata=when,
                hovertemplate="%{customdata}<br>" + name + ": %{y:,.3f} req/s<extra></extra>",
            )
        )
    if span is not None:
        fig.add_vrect(x0=span[0] / scale, x1=span[1] / scale, fillcolor=COLORS[1], opacity=0.15, line_width=0, annotation_text="span", annotation_position="top left")
    _time_axis(fig, unit, total / scale)
    return _finish(
        fig, f"Activity of the chosen clients over the source ({_fmt_res(resolution_s)} bins)", y_title="rate (requests/s)",
        legend_bottom=True, dragmode="select",
    )


def hour_day_heatmap(matrix: pl.DataFrame) -> go.Figure:
    """Mean rate per hour of day (x) and day (y): ``day, hour, rate_rps`` (:func:`hour_day_matrix`)."""
    days = sorted(matrix["day"].unique().to_list())
    grid = np.full((len(days), 24), np.nan)
    index = {d: i for i, d in enumerate(days)}
    for day, hour, rate in matrix.select("day", "hour", "rate_rps").iter_rows():
        grid[index[day], int(hour)] = rate
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(24)),
            y=[f"day {d + 1}" for d in days],
            colorscale="Viridis",
            colorbar={"title": {"text": "req/s"}},
            hovertemplate="%{y}, %{x}:00–%{x}:59<br>%{z:,.2f} req/s<extra></extra>",
        )
    )
    fig.update_xaxes(dtick=2)
    fig.update_yaxes(autorange="reversed")
    return _finish(fig, "Request rate by hour of day and day", x_title="hour of day (source time, h)", y_title="day", height=max(320, 22 * len(days) + 160))


def _signed_pct(value: float | None) -> str:
    """A change in percent as a bar label: ``+3 %``, ``−16 %`` (typographic minus); empty when null."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.0f} %".replace("-", "\u2212")


def day_over_day(frame: pl.DataFrame) -> go.Figure:
    """Daily mean rate (bars) labelled with its change from the day before: ``day, rate_rps, change_pct``.

    The change is written on each bar (none on the first day, or after a day without
    requests) rather than drawn on a second axis, whose ticks would follow the few values.
    """
    days = [f"day {d + 1}" for d in frame["day"].to_list()]
    change = frame["change_pct"].to_list()
    labels = [_signed_pct(c) for c in change]
    hover_change = [f"{label} vs previous day" if label else "first day (no previous day)" if i == 0 else "no change: the previous day has no requests" for i, label in enumerate(labels)]
    fig = go.Figure(
        go.Bar(
            x=days,
            y=frame["rate_rps"].to_numpy(),
            name="mean rate",
            marker_color=COLORS[0],
            text=labels,
            textposition="outside",
            textfont={"size": 13},
            cliponaxis=False,
            customdata=np.column_stack([frame["requests"].to_numpy(), np.array(hover_change, dtype=object)]),
            hovertemplate="%{x}<br>mean %{y:,.2f} req/s<br>%{customdata[0]:,.0f} requests<br>%{customdata[1]}<extra></extra>",
        )
    )
    fig.update_yaxes(rangemode="tozero")
    return _finish(
        fig,
        "Day-over-day change of the daily rate",
        x_title="day (bar labels: change from the previous day, %)",
        y_title="mean rate (requests/s)",
        showlegend=False,
    )


def lorenz_curve(frame: pl.DataFrame, *, gini: float | None = None) -> go.Figure:
    """Lorenz curve of request volume over clients: ``client_share, load_share``."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line={"color": OTHER_COLOR, "dash": "dot"}, name="equal volume", hoverinfo="skip")
    )
    fig.add_trace(
        go.Scatter(
            x=frame["client_share"].to_numpy() * 100,
            y=frame["load_share"].to_numpy() * 100,
            mode="lines",
            line={"color": COLORS[0], "width": 2.5},
            fill="tonexty",
            fillcolor="rgba(99,110,250,0.12)",
            name="observed",
            hovertemplate="lightest %{x:.1f} % of clients carry %{y:.2f} % of requests<extra></extra>",
        )
    )
    title = "Client concentration (Lorenz curve)"
    if gini is not None:
        title += f", Gini {gini:.2f}"
    fig.update_xaxes(range=[0, 100])
    fig.update_yaxes(range=[0, 100])
    return _finish(fig, title, x_title="share of clients, lightest first (%)", y_title="share of requests (%)")


# ---------------------------------------------------------------------------------------------
# Burstiness
# ---------------------------------------------------------------------------------------------


def cv_cdf(frame: pl.DataFrame, *, title: str = "CDF of the inter-arrival CV per window") -> go.Figure:
    """Unweighted and rate-weighted CDF of the window CV with the CV = 1 (Poisson) line.

    ``frame``: ``cv, cdf, cdf_weighted`` (:func:`servegen_core.characterize.arrivals.cv_cdf`).
    """
    fig = go.Figure()
    cv = frame["cv"].to_numpy()
    for col, name, color in (("cdf", "share of windows", COLORS[0]), ("cdf_weighted", "share of requests (rate-weighted)", COLORS[1])):
        fig.add_trace(
            go.Scatter(
                x=cv,
                y=frame[col].to_numpy(),
                mode="lines",
                line_shape="hv",
                line={"color": color, "width": 2},
                name=name,
                hovertemplate="CV ≤ %{x:.2f}: %{y:.1%} of " + ("windows" if col == "cdf" else "requests") + "<extra></extra>",
            )
        )
    positive = cv[cv > 0]
    log = bool(positive.size and positive.max() / positive.min() > 20)
    _ref_line(fig, x=1.0, text="CV = 1 (Poisson)", log=log)
    if log:
        # The CVs span about a decade around 1: label 0.5, 0.6, … 2, 3 in full, not as bare digits
        # (Plotly's "small digits" shows 0.5 as "5"); exponentformat is set after _finish.
        fig.update_xaxes(type="log", minorloglabels="complete")
        x_title = "coefficient of variation of inter-arrival times (log scale)"
    else:
        x_title = "coefficient of variation of inter-arrival times"
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    _finish(fig, title, x_title=x_title, y_title="cumulative share")
    if log:  # plain decimals (0.5), not powers of ten (5×10⁻¹), on this narrow log axis
        fig.update_xaxes(exponentformat="none")
    return fig


def cv_vs_rate(
    frame: pl.DataFrame,
    *,
    rate: str,
    cv: str,
    rate_label: str = "mean rate",
    cv_label: str = "rate-weighted mean CV",
    selected: Collection[str] | None = None,
) -> go.Figure:
    """One point per client: its burstiness (``cv`` column) against its rate (``rate`` column), log-log, CV = 1 line.

    ``selected`` clients are drawn in the second palette colour.
    """
    fig = go.Figure(
        go.Scatter(
            x=frame[rate].to_numpy(),
            y=frame[cv].to_numpy(),
            mode="markers",
            marker={"size": 9, "color": _marked(frame["client_id"].to_list(), selected), "opacity": 0.8, "line": {"width": 0.5, "color": "white"}},
            customdata=svg_series(frame["client_id"]).to_numpy(),
            hovertemplate="client %{customdata}<br>rate %{x:.3g} req/s<br>CV %{y:.2f}<extra></extra>",
            name="client",
        )
    )
    _ref_line(fig, y=1.0, text="CV = 1 (Poisson)", log=True)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return _finish(
        fig,
        "Burstiness against rate, per client",
        x_title=f"{rate_label} (requests/s, log scale)",
        y_title=f"{cv_label} of inter-arrival times (log scale)",
        showlegend=False,
    )


def pattern_shares(frame: pl.DataFrame) -> go.Figure:
    """Share of windows and of requests per recorded arrival pattern: ``pattern, window_share, request_share``."""
    patterns = [p or "none" for p in frame["pattern"].to_list()]
    fig = go.Figure()
    for col, name, color in (("window_share", "share of active windows", COLORS[0]), ("request_share", "share of requests", COLORS[1])):
        fig.add_trace(
            go.Bar(
                x=patterns,
                y=frame[col].to_numpy() * 100,
                name=name,
                marker_color=color,
                text=[f"{v * 100:.1f} %" for v in frame[col].to_list()],
                textposition="outside",
                hovertemplate="%{x}: %{y:.1f} % of " + ("windows" if col == "window_share" else "requests") + "<extra></extra>",
            )
        )
    fig.update_yaxes(range=[0, 110])
    return _finish(fig, "Recorded arrival patterns", x_title="fitted inter-arrival distribution", y_title="share (%)", barmode="group")


#: Legend names of an inter-arrival histogram: a trace's own gaps, or (ServeGen pool data, which
#: record only each window's fitted distribution) gaps drawn from that distribution.
OBSERVED_GAPS = "observed gaps"
SAMPLED_GAPS = "gaps sampled from the fitted window distribution"


def interarrival_histogram(
    histogram: pl.DataFrame,
    densities: pl.DataFrame,
    fits: pl.DataFrame | None = None,
    *,
    title: str,
    log_x: bool = False,
    sampled: bool = False,
    best: str | None = None,
    criterion: str = "bic",
) -> go.Figure:
    """Histogram of inter-arrival times (density) with fitted densities.

    ``histogram``: ``left_s, right_s, count, density``; ``densities``: ``family, iat_s, pdf``;
    ``fits``: ``family, ks`` and the ``criterion`` column (``bic``, ``aic`` or ``ks``) for the
    legend, which marks ``best`` (by default the family with the lowest ``criterion``) as
    "best BIC" (or AIC, KS). ``sampled``: the gaps were drawn from a window's fitted
    distribution (pool data), not observed; the legend says so.
    """
    gaps_name = SAMPLED_GAPS if sampled else OBSERVED_GAPS
    left = histogram["left_s"].to_numpy()
    right = histogram["right_s"].to_numpy()
    dens = histogram["density"].to_numpy()
    counts = histogram["count"].to_numpy()
    fig = go.Figure()
    if log_x:
        # Bars have no width on a log axis: draw the histogram as a filled step line over the edges.
        keep = dens > 0
        fig.add_trace(
            go.Scatter(
                x=np.sqrt(left[keep] * right[keep]),
                y=dens[keep],
                mode="lines+markers",
                line={"color": "#555", "width": 2.5, "shape": "hvh"},
                marker={"size": 5, "color": "#333"},
                name=gaps_name,
                customdata=np.column_stack([left[keep], right[keep], counts[keep]]),
                hovertemplate="%{customdata[0]:.3g}–%{customdata[1]:.3g} s<br>%{customdata[2]} gaps, density %{y:.3g} /s<extra></extra>",
            )
        )
    else:
        fig.add_trace(
            go.Bar(
                x=(left + right) / 2,
                y=dens,
                width=right - left,
                marker={"color": OTHER_COLOR, "line": {"width": 0}},
                name=gaps_name,
                customdata=np.column_stack([left, right, counts]),
                hovertemplate="%{customdata[0]:.3g}–%{customdata[1]:.3g} s<br>%{customdata[2]} gaps, density %{y:.3g} /s<extra></extra>",
            )
        )
    ks = {}
    if fits is not None and fits.height:
        ks = dict(zip(fits["family"].to_list(), fits["ks"].to_list(), strict=True))
        if best is None:
            best = fits.sort(criterion)["family"][0]
    for i, family in enumerate(densities["family"].unique(maintain_order=True).to_list()):
        d = densities.filter(pl.col("family") == family)
        name = family
        if family in ks:
            name += f" (KS {ks[family]:.3f})"
        if family == best:
            name += f" ★ best {criterion.upper()}"
        recorded = family.startswith("Recorded")
        fig.add_trace(
            go.Scatter(
                x=d["iat_s"].to_numpy(),
                y=d["pdf"].to_numpy(),
                mode="lines",
                line={"color": "black" if recorded else COLORS[(i + 1) % len(COLORS)], "dash": "dot" if recorded else ("solid" if family == best else "dash"), "width": 2},
                name=name,
                hovertemplate="gap %{x:.3g} s<br>density %{y:.3g} /s<extra>" + family + "</extra>",
            )
        )
    hist_max = float(dens.max()) if dens.size and dens.max() > 0 else 1.0
    if log_x:
        lowest = float(dens[dens > 0].min()) if (dens > 0).any() else hist_max / 1e3
        fig.update_yaxes(type="log", range=[math.log10(lowest) - 0.5, math.log10(hist_max) + 0.5])
        fig.update_xaxes(type="log")
    else:
        fig.update_yaxes(range=[0, hist_max * 1.15])
    return _finish(
        fig,
        title,
        x_title="inter-arrival time (s" + (", log scale)" if log_x else ")"),
        y_title="probability density (1/s" + (", log scale)" if log_x else ")"),
        bargap=0,
        legend_bottom=True,
    )


# ---------------------------------------------------------------------------------------------
# Multimodal
# ---------------------------------------------------------------------------------------------

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
    return _finish(
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
    return _finish(
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
    return _finish(fig, f"Tokens per {modality}", x_title=f"tokens per {modality} (tokens, log scale)", y_title=f"{modality}s (%)", showlegend=False)


def modality_over_time(frame: pl.DataFrame, *, modalities: Sequence[str] | None = None) -> go.Figure:
    """Token share of each modality per window: ``start_s, modality, token_share, tokens_per_request``."""
    shown = modalities or frame["modality"].unique(maintain_order=True).to_list()
    fig = go.Figure()
    unit, span = "h", 0.0
    for m in shown:
        d = frame.filter(pl.col("modality") == m)
        x, when, unit, span = _times(d["start_s"], float(frame["start_s"].max() - frame["start_s"].min()))
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
    _time_axis(fig, unit, span)
    fig.update_yaxes(range=[0, 100])
    return _finish(fig, "Modality mix of input tokens per window", y_title="share of input tokens (%)", legend_traceorder="normal")


# ---------------------------------------------------------------------------------------------
# Reasoning
# ---------------------------------------------------------------------------------------------


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
    return _finish(
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
    return _finish(fig, "Reasoning vs answer tokens per request", x_title="tokens per request (log scale)", y_title="requests per log bin (%)")


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
    return _finish(
        fig,
        f"Two modes of the {what} per client (busiest at the top)",
        x_title=what + (" (tokens, log scale)" if on != "reason_ratio" else " (reasoning tokens / output tokens)"),
        y_title="client",
        height=max(360, 18 * len(labels) + 140),
    )


# ---------------------------------------------------------------------------------------------
# Compose and preview
# ---------------------------------------------------------------------------------------------


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
    _time_axis(fig, unit, span / scale, origin="workload start")
    fig.update_yaxes(rangemode="tozero")
    return _finish(fig, "Request rate of the workload (as generated)", y_title="rate (requests/s)")


def weight_shares(weights: pl.DataFrame, *, limit: int = 30) -> go.Figure:
    """Observed vs composed request share per client: ``client_id, observed_share, weight_share``."""
    w = weights.sort("weight_share", descending=True).head(limit)
    labels = [f"client {svg(c)}" for c in w["client_id"].to_list()]
    fig = go.Figure()
    for col, name, color in (("observed_share", "observed share", OTHER_COLOR), ("weight_share", "composed share (normalized)", COLORS[0])):
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
    return _finish(fig, title, x_title="client", y_title="share of requests (%)", barmode="group")


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
    _time_axis(fig, unit, span / scale, origin="workload start")
    return _finish(fig, "Achieved vs target requests per arrival window", y_title="requests per window")


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
    _ref_line(fig, y=1.0, text="CV = 1 (Poisson)", log=True)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return _finish(fig, "Inter-arrival CV per client-window: generated vs source", x_title="source CV (recorded, log scale)", y_title="generated CV (log scale)")


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
        _ref_line(fig, x=vline, text=f"CV = {vline:g} (Poisson)", log=log_x)
    if log_x:
        fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return _finish(fig, title, x_title=x_title, y_title="cumulative share")


# ---------------------------------------------------------------------------------------------
# Prefix reuse
# ---------------------------------------------------------------------------------------------


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
    _ref_line(fig, y=max_hit_ratio * 100, text=f"unbounded cache: {max_hit_ratio:.1%}", log=False)
    return _finish(
        fig, "Prefix-cache hit ratio vs cache size (LRU)", x_title=x_title, y_title="hit ratio (% of blocks)", showlegend=False,
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
    return _finish(
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
    return _finish(
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
    return _finish(
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
    return _finish(fig, "Turns per session", x_title="turns (requests)", y_title="sessions (%, log scale)", showlegend=False)


def inter_turn_gaps(turns: pl.DataFrame) -> go.Figure:
    """Time between a turn's arrival and the previous turn's: ``gap_s`` of each follow-up turn."""
    gaps = turns["gap_s"].to_numpy()
    fig = go.Figure(
        go.Histogram(
            x=gaps, nbinsx=60, marker_color=COLORS[5], name="follow-up turns",
            hovertemplate="%{x} s<br>%{y:,} turns<extra></extra>",
        )
    )
    return _finish(fig, "Inter-turn gaps", x_title="gap since the previous turn (s)", y_title="follow-up turns", showlegend=False, bargap=0.05)


def context_growth(turns: pl.DataFrame) -> go.Figure:
    """Input tokens added per turn (``growth_tokens``) by turn number (``turn``), as box plots."""
    fig = go.Figure(
        go.Box(
            x=turns["turn"].to_numpy(), y=turns["growth_tokens"].to_numpy(), marker_color=COLORS[6],
            name="growth", boxpoints=False,
        )
    )
    return _finish(fig, "Context growth per turn", x_title="turn", y_title="input tokens added since the previous turn (tokens)", showlegend=False)


# ---------------------------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------------------------

#: Latency columns of a provisioning curve and how they are named on the axes.
LATENCY_LABELS = {
    "ttft_p99_s": "p99 TTFT",
    "ttft_p50_s": "median TTFT",
    "tpot_p99_s": "p99 TPOT",
    "e2e_p99_s": "p99 end-to-end latency",
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
        _ref_line(fig, y=slo_s, text=f"SLO {slo_s:g} s", log=True)
    return _finish(fig, f"{label} vs replicas", x_title="replicas", y_title=f"{label} (s, log scale)", legend_bottom=True)


def fleet_timeline(frame: pl.DataFrame, *, replicas: int, bin_s: float) -> go.Figure:
    """Batch size and KV-cache use over time across replicas (:meth:`servegen_core.serve.simulate.SimResult.fleet_timeline`):
    mean and busiest replica per bin."""
    x, when, unit, span = _times(frame["t_s"])
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
    _time_axis(fig, unit, span, origin="workload start")
    fig.update_yaxes(title_text="running sequences", row=1, col=1)
    fig.update_yaxes(title_text="KV cache used (%)", row=2, col=1)
    return _finish(fig, f"Replicas over time ({replicas} replicas, {_fmt_res(bin_s)} bins)", legend_bottom=True, height=520)
