"""Rate charts: the rate over time, top clients, stacked and per-client activity, hour-by-day, day over day, concentration."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, OTHER_COLOR, finish, marked_colors, time_axis, time_values
from fmt import fmt_resolution, fmt_signed_pct, time_unit
from plaintext import svg


def rate_over_time(
    series: pl.DataFrame,
    *,
    resolution_s: float,
    title: str = "Aggregate request rate",
    origin: str = "source start",
    color: str = COLORS[0],
) -> go.Figure:
    """Aggregate rate per bin over time: ``start_s, requests, rate_rps`` (:func:`servegen_core.characterize.rates.rate_series`)."""
    x, when, unit, span = time_values(series["start_s"])
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
    time_axis(fig, unit, span, origin=origin)
    return finish(fig, f"{title} ({fmt_resolution(resolution_s)} bins)", y_title="rate (requests/s)", showlegend=False)


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
            marker_color=marked_colors(top["client_id"].to_list(), selected),
            customdata=np.column_stack([top["requests"].to_numpy(), top["cum_share"].to_numpy() * 100]),
            hovertemplate="%{y}<br>%{x:.2f} % of requests (%{customdata[0]:,.0f})<br>cumulative %{customdata[1]:.1f} %<extra></extra>",
            name="share",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return finish(
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
        x, when, unit, span = time_values(g["start_s"], float(series["start_s"].max() - series["start_s"].min()))
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
    time_axis(fig, unit, span)
    top = sum(g != "rest" for g in groups)
    return finish(fig, f"Aggregate rate by client, top {top} stacked ({fmt_resolution(resolution_s)} bins)", y_title="rate (requests/s)", hovermode="x unified", legend_traceorder="normal")


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
        x, when, unit, _ = time_values(g["start_s"], total)
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
    time_axis(fig, unit, total / scale)
    return finish(
        fig, f"Activity of the chosen clients over the source ({fmt_resolution(resolution_s)} bins)", y_title="rate (requests/s)",
        legend_bottom=True, dragmode="select",
    )


def hour_day_heatmap(matrix: pl.DataFrame) -> go.Figure:
    """Mean rate per hour of day (x) and day (y): ``day, hour, rate_rps`` (:func:`hour_day_matrix`).

    An hour only partly inside the data (``complete`` False) is labelled "partial" and its
    hover says how many minutes it covers: its rate is over those minutes, not over 60.
    """
    days = sorted(matrix["day"].unique().to_list())
    grid = np.full((len(days), 24), np.nan)
    label = np.full((len(days), 24), "", dtype=object)
    covered = np.full((len(days), 24), 60.0)
    index = {d: i for i, d in enumerate(days)}
    has_cover = "covered_s" in matrix.columns and "complete" in matrix.columns
    cols = ["day", "hour", "rate_rps", *(("complete", "covered_s") if has_cover else ())]
    for row in matrix.select(cols).iter_rows():
        i, h = index[row[0]], int(row[1])
        grid[i, h] = row[2]
        if has_cover and not row[3]:
            label[i, h] = "partial"
            covered[i, h] = row[4] / 60
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(24)),
            y=[f"day {d + 1}" for d in days],
            text=label,
            texttemplate="%{text}",
            customdata=covered,
            colorscale="Viridis",
            colorbar={"title": {"text": "req/s"}},
            hovertemplate="%{y}, %{x}:00–%{x}:59<br>%{z:,.2f} req/s over %{customdata:.0f} min %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(dtick=2)
    fig.update_yaxes(autorange="reversed")
    return finish(fig, "Request rate by hour of day and day", x_title="hour of day (source time, h)", y_title="day", height=max(320, 22 * len(days) + 160))


def day_over_day(frame: pl.DataFrame) -> go.Figure:
    """Daily mean rate (bars) labelled with its change from the day before: ``day, rate_rps, change_pct``.

    The change is written on each bar (none on the first day, or after a day without
    requests) rather than drawn on a second axis, whose ticks would follow the few values.
    """
    days = [f"day {d + 1}" for d in frame["day"].to_list()]
    change = frame["change_pct"].to_list()
    labels = [fmt_signed_pct(c) for c in change]
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
    return finish(
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
    return finish(fig, title, x_title="share of clients, lightest first (%)", y_title="share of requests (%)")
