"""What every page draws: its header, charts with their data as CSV, bin lengths to choose from, choices kept valid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from fmt import fmt_time
from plaintext import md
from servegen_core.sources.demo import DEMO_LABEL
from session import View, current


def header(title: str) -> View:
    """Title, the source's label (synthetic demo flagged) and the current view (the page stops without one)."""
    st.title(title)
    view = current()
    span = "" if view.full_span else f", span {fmt_time(view.start_s)} – {fmt_time(view.end_s)}"
    src = view.source
    label = md(src.name) + (f" ({DEMO_LABEL})" if src.synthetic else "")
    st.caption(f"Source: **{label}**{span}")
    return view


def plot(fig: go.Figure, data: pl.DataFrame | None, *, key: str, **kwargs: Any) -> Any:
    """``st.plotly_chart`` and, under it, the chart's data as a CSV download (``<key>.csv``)."""
    event = st.plotly_chart(fig, key=key, **kwargs)
    if data is not None:
        csv_download(data, f"{key}.csv", key=f"{key}_csv")
    return event


def csv_download(frame: pl.DataFrame, file_name: str, *, key: str, label: str = "Chart data (CSV)") -> None:
    """A small download button with a chart's data as CSV (written when clicked)."""
    st.download_button(
        label, lambda: csv_bytes(frame), file_name=file_name, mime="text/csv", key=key,
        icon=":material/download:", type="tertiary",
    )


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """``frame`` as CSV; list columns as space-separated values, struct columns as JSON (CSV has no nesting)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List | pl.Array):
            exprs.append(pl.col(name).cast(pl.List(pl.String)).list.join(" ").alias(name))
        elif isinstance(dtype, pl.Struct):
            exprs.append(pl.col(name).struct.json_encode().alias(name))
    return (frame.with_columns(exprs) if exprs else frame).write_csv().encode()


def stack_frames(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Several frames of the same columns as one, with a ``series`` column naming each (a chart's CSV)."""
    return pl.concat([f.with_columns(pl.lit(name).alias("series")) for name, f in frames.items()], how="diagonal_relaxed")


def keep_valid(key: str, options: Sequence[Any]) -> None:
    """Drop a widget's stored choice that the current source does not offer (call before the widget).

    A multiselect keeps the choices still offered (its default when none is left); a
    single choice not offered goes back to the widget's default.
    """
    if key not in st.session_state:
        return
    value = st.session_state[key]
    allowed = set(options)
    if isinstance(value, list | tuple):
        kept = [v for v in value if v in allowed]
        if kept:
            if len(kept) < len(value):
                st.session_state[key] = kept
            return
        del st.session_state[key]
    elif value not in allowed:
        del st.session_state[key]


#: Bin lengths offered for rate series and CV windows (seconds).
RESOLUTIONS_S = (1, 10, 60, 300, 600, 1800, 3600, 21600, 86400)


#: Most bins a page may ask the core for (a rate series over the span is an array of this size).
MAX_BINS = 200_000


def resolutions(view: View, *, min_bins: int = 4, target_bins: int = 600) -> tuple[list[int], int]:
    """Bin lengths that suit the view (whole pool windows; at least ``min_bins`` bins) and a default.

    Bins that would cut the span into more than :data:`MAX_BINS` are never offered. The
    default is the finest bin giving at most ``target_bins`` bins.
    """
    base = view.data.window_s if view.is_pool else 1
    span = max(view.end_s - view.start_s, 1.0)
    fits = [r for r in RESOLUTIONS_S if r % base == 0 and span / r <= MAX_BINS] or [RESOLUTIONS_S[-1]]
    options = [r for r in fits if span / r >= min_bins] or fits[:1]
    default = next((r for r in options if span / r <= target_bins), options[-1])
    return options, default
