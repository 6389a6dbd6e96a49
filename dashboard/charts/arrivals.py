"""Burstiness charts: CDF of the inter-arrival CV, CV against rate, arrival patterns, inter-arrival histograms with fits."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import plotly.graph_objects as go
import polars as pl

from charts.common import COLORS, OTHER_COLOR, finish, marked_colors, ref_line
from plaintext import svg_series


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
    ref_line(fig, x=1.0, text="CV = 1 (Poisson)", log=log)
    if log:
        # The CVs span about a decade around 1: label 0.5, 0.6, … 2, 3 in full, not as bare digits
        # (Plotly's "small digits" shows 0.5 as "5"); exponentformat is set after _finish.
        fig.update_xaxes(type="log", minorloglabels="complete")
        x_title = "coefficient of variation of inter-arrival times (log scale)"
    else:
        x_title = "coefficient of variation of inter-arrival times"
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    finish(fig, title, x_title=x_title, y_title="cumulative share")
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
            marker={"size": 9, "color": marked_colors(frame["client_id"].to_list(), selected), "opacity": 0.8, "line": {"width": 0.5, "color": "white"}},
            customdata=svg_series(frame["client_id"]).to_numpy(),
            hovertemplate="client %{customdata}<br>rate %{x:.3g} req/s<br>CV %{y:.2f}<extra></extra>",
            name="client",
        )
    )
    ref_line(fig, y=1.0, text="CV = 1 (Poisson)", log=True)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return finish(
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
    return finish(fig, "Recorded arrival patterns", x_title="fitted inter-arrival distribution", y_title="share (%)", barmode="group")


#: Legend names of an inter-arrival histogram: a trace's own gaps, or (ServeGen pool data, which
#: record only each window's fitted distribution) gaps drawn from that distribution.
OBSERVED_GAPS = "observed gaps"
SAMPLED_GAPS = "gaps sampled from the fitted window distribution"


#: The log x axis of a gap histogram leaves out this share of the shortest gaps.
GAP_AXIS_LOW_SHARE = 0.001
#: ... and starts at 1 µs at the lowest (the finest timestamps a trace records): a fitted Gamma
#: of small shape puts gaps at 1e-21 s, which would stretch the axis over 20 decades.
GAP_AXIS_MIN_S = 1e-6


def gap_axis_range(left: np.ndarray, right: np.ndarray, counts: np.ndarray) -> tuple[list[float], float] | None:
    """``([log10 low, log10 high], share of gaps left of low)`` for a log gap axis.

    From where the shortest :data:`GAP_AXIS_LOW_SHARE` of the gaps ends (not below
    :data:`GAP_AXIS_MIN_S`) to the longest gap, with a quarter decade each side.
    """
    total = float(counts.sum())
    if total <= 0:
        return None
    cum = np.cumsum(counts) / total
    first = int(np.searchsorted(cum, GAP_AXIS_LOW_SHARE, side="left"))
    last = int(np.flatnonzero(counts > 0)[-1])
    low = max(left[first] if left[first] > 0 else right[first] / 10, GAP_AXIS_MIN_S)
    high = right[last]
    if not (low > 0 and high > low):
        return None
    x0 = 10 ** (math.log10(low) - 0.25)
    hidden = float(counts[right <= x0].sum()) / total
    return [math.log10(low) - 0.25, math.log10(high) + 0.25], hidden


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
        if (axis := gap_axis_range(left, right, counts)) is not None:
            fig.update_xaxes(range=axis[0])
            if axis[1] > 0:
                fig.add_annotation(
                    x=0, y=1, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
                    text=f"{axis[1]:.1%} of the gaps are shorter than the axis shows", font={"size": 11},
                )
    else:
        fig.update_yaxes(range=[0, hist_max * 1.15])
    return finish(
        fig,
        title,
        x_title="inter-arrival time (s" + (", log scale)" if log_x else ")"),
        y_title="probability density (1/s" + (", log scale)" if log_x else ")"),
        bargap=0,
        legend_bottom=True,
    )
