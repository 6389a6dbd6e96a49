"""The sidebar: the data source (demo, ServeGen folder or raw trace), its time span and headline numbers.

:func:`sidebar` (called from ``app.py`` before the page runs) draws the widgets, loads the
source through :func:`core_calls.load_source` and stores the source and its view in the
session (:func:`session.set_view`). Widget keys start with ``src_`` (and ``span_``).
"""

from __future__ import annotations

import math

import streamlit as st

from core_calls import load_source, make_view, show_error
from fmt import fmt_time
from plaintext import md
from servegen_core.errors import ServeGenError
from servegen_core.limits import MAX_SPAN_ENV, max_columns, max_span_s
from servegen_core.paths import PathNotAllowedError, demo_data_dir
from servegen_core.sources.demo import DEMO_LABEL
from servegen_core.sources.pool import list_models
from servegen_core.sources.traces import PRESETS, TIME_UNITS, trace_columns
from session import Loaded, Source, View, headline, set_view
from settings import servegen_folders
from uploads import TRACE_SUFFIXES, ReadablePath, is_upload, readable_path
from widgets.files import upload_or_path

#: The demo request trace, relative to the demo data folder.
DEMO_TRACE = "traces/demo_requests.csv"
#: The preset choice meaning "detect the format from the file".
AUTO_PRESET = "auto-detect"

_KIND_LABELS = {
    "demo": f"Demo ({DEMO_LABEL})",
    "servegen": "ServeGen data folder",
    "trace": "Raw request trace",
}

#: The targets the sidebar maps for the ``generic`` preset.
GENERIC_TARGETS = ("timestamp", "input_tokens", "output_tokens")
#: The client-column choice meaning "no client column" (every request is client ``all``).
NO_CLIENT_COLUMN = "(none)"

#: Most positions the sidebar's span slider offers (the step grows to stay under it).
MAX_SPAN_OPTIONS = 1500


@st.cache_data(show_spinner=False, max_entries=32)
def file_columns(path: ReadablePath, mtime_ns: int) -> list[str]:
    """:func:`servegen_core.sources.traces.trace_columns` (header only), once per file version."""
    return trace_columns(path, max_columns=max_columns(upload=is_upload(path)))


def _demo_options() -> list[str]:
    root = demo_data_dir()
    models = list_models(root / "servegen") if (root / "servegen").is_dir() else []
    extra = [DEMO_TRACE] if (root / DEMO_TRACE).is_file() else []
    return models + extra


def demo_source(option: str) -> Source:
    """The sidebar's source for a demo choice: a demo model (a pool) or the demo request trace."""
    root = demo_data_dir()
    if option == DEMO_TRACE:
        return Source("trace", str(root / DEMO_TRACE), preset="servegen", synthetic=True, display_name="demo_requests.csv")
    return Source("pool", str(root / "servegen"), option, synthetic=True)


def _trace_source() -> Source | None:
    chosen = upload_or_path(
        "Trace file", keys=("src_trace_how", "src_trace_path", "src_upload"), allowed=TRACE_SUFFIXES,
        path_label="Trace path (.csv, .parquet, .jsonl, optionally .gz; .json: a ServeGen conversation file)", persist=True,
    )
    if chosen is None:
        return None
    path, display = chosen
    if path.suffix.lower() == ".json":  # ServeGen's conversation file: one layout, no columns to map
        st.caption("ServeGen conversation file: turns read as sessions (load_conversations)")
        return Source("trace", str(path), display_name=display)
    preset = st.selectbox(
        "Preset", [AUTO_PRESET, *PRESETS], key="src_preset", persist_state="session",
        help="\n\n".join(f"**{p.name}**: {p.description}" for p in PRESETS.values()),
    )
    try:
        names = file_columns(path, path.stat().st_mtime_ns)
    except Exception as exc:  # noqa: BLE001 - a header that does not read is shown, not raised
        show_error(exc)
        return None
    columns: tuple[tuple[str, str], ...] = ()
    time_unit = None
    if preset == "generic":
        st.caption("Column mapping (columns of the file)")
        mapped = []
        for target in GENERIC_TARGETS:
            name = st.selectbox(
                target, names, index=None, placeholder="choose a column", key=f"src_map_{target}", persist_state="session"
            )
            if name is not None:
                mapped.append((target, name))
        columns = tuple(mapped)
        time_unit = st.selectbox("Time unit", [*TIME_UNITS, "datetime"], key="src_time_unit", persist_state="session")
    client = st.selectbox(
        "Client column (optional)", [NO_CLIENT_COLUMN, *names], key="src_client_col", persist_state="session"
    )
    client = None if client == NO_CLIENT_COLUMN else client
    if preset == "generic" and len(columns) < len(GENERIC_TARGETS):
        st.caption("Map timestamp, input_tokens and output_tokens to read the file.")
        return None
    return Source(
        "trace",
        str(path),
        preset=None if preset == AUTO_PRESET else preset,
        columns=columns,
        time_unit=time_unit,
        client_column=client,
        display_name=display,
    )


def choose_source() -> Source | None:
    """The source widgets; returns the chosen source (``None`` while incomplete)."""
    folders = servegen_folders()
    kinds = ["demo", *(["servegen"] if folders else []), "trace"]
    kind = st.radio("Data source", kinds, format_func=_KIND_LABELS.get, key="src_kind", persist_state="session")
    if kind == "demo":
        options = _demo_options()
        if not options:
            st.error(md(f"the {DEMO_LABEL} is missing from {demo_data_dir()} (rebuild it: python -m servegen_core.sources.demo)"))
            return None
        option = st.selectbox("Demo model", options, key="src_demo", persist_state="session")
        return demo_source(option)
    if kind == "servegen":
        folder = st.selectbox("Data folder", folders, key="src_folder", persist_state="session")
        try:
            models = list_models(readable_path(folder))
        except (ServeGenError, PathNotAllowedError) as exc:
            show_error(exc)
            return None
        if not models:
            st.error(md(f"no ServeGen models (folders of chunk-*-trace.csv) under {folder}"))
            return None
        model = st.selectbox("Model", models, key="src_model", persist_state="session")
        return Source("pool", folder, model)
    return _trace_source()


def check_span(loaded: Loaded) -> None:
    """Refuse a source whose time span is not finite or longer than :func:`servegen_core.limits.max_span_s`.

    Every page bins the span (rates per bin, windows), so an absurd span (timestamps in
    nanoseconds read as seconds, a stray 1e20) would size arrays by it.
    """
    start, end = loaded.start_s, loaded.end_s
    if not loaded.is_pool and loaded.data.height:  # the requests' own extent (epoch-second timestamps are fine)
        start, end = float(loaded.data["timestamp_s"].min()), float(loaded.data["timestamp_s"].max())
    if not (math.isfinite(start) and math.isfinite(end)):
        msg = "the timestamps are not finite numbers; check the timestamp column"
        raise ValueError(msg)
    limit = max_span_s()
    if end - start > limit:
        msg = (
            f"the timestamps span {end - start:.3g} s ({(end - start) / 86400:.3g} days), more than the limit of "
            f"{limit:,.0f} s ({MAX_SPAN_ENV}): they are probably in another unit (ms, us, ns); choose the generic "
            "preset and set the time unit"
        )
        raise ValueError(msg)


def span_options(loaded: Loaded) -> list[float]:
    """Positions of the span slider: from start to end in round steps, at most :data:`MAX_SPAN_OPTIONS` + 1."""
    start, end = loaded.start_s, loaded.end_s
    span = end - start
    if not (math.isfinite(span) and span > 0):
        return [start]
    step = loaded.step_s
    if span / step > MAX_SPAN_OPTIONS:
        step *= math.ceil(span / step / MAX_SPAN_OPTIONS)
    n = max(1, math.ceil(span / step))
    options = sorted({start + k * step for k in range(min(n, MAX_SPAN_OPTIONS) + 1)})
    return options if len(options) >= 2 else [start]


def choose_span(loaded: Loaded) -> tuple[float, float]:
    """The time-span selector in source time (days, hours)."""
    options = span_options(loaded)
    if len(options) < 2:
        return loaded.start_s, loaded.end_s
    key = f"span_{loaded.source.id}"
    lo, hi = st.select_slider(
        "Time span (source time)",
        options=options,
        value=(options[0], options[-1]),
        format_func=fmt_time,
        key=key,
        persist_state="session",
    )
    if hi <= lo:
        st.warning("The span is empty; showing the whole source.")
        return options[0], options[-1]
    return lo, hi


def distinct_notes(notes: tuple[str, ...]) -> list[str]:
    """The loader's notes, each said once: a warning the summary (the first note) repeats is cut from the summary."""
    if not notes:
        return []
    summary, warnings = notes[0], [n for n in dict.fromkeys(notes[1:]) if n]
    for warning in warnings:
        for joint in ("; ", ". ", ", "):
            summary = summary.replace(joint + warning, "")
    return [summary, *warnings]


def sidebar() -> View | None:
    """Draw the data-source sidebar and store ``source`` and ``view`` in the session state."""
    with st.sidebar:
        st.header("Data")
        source = choose_source()
        if source is None:
            set_view(None, None)
            return None
        set_view(source, None)
        try:
            with st.spinner(f"Loading {md(source.name)}…"):
                loaded = load_source(source)
        except Exception as exc:  # noqa: BLE001 - loader errors are shown, not raised
            show_error(exc)
            return None
        try:
            check_span(loaded)
            start, end = choose_span(loaded)
            view = make_view(loaded, start, end)
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
            return None
        set_view(source, view)
        if source.synthetic:
            st.caption(f":orange[**{DEMO_LABEL.capitalize()}**] — generated, not real traffic.")
        lines = [f"**{k}:** {v}" for k, v in headline(view).items()]
        st.markdown("  \n".join(lines))
        for note in distinct_notes(loaded.notes):
            st.caption(md(note))
        return view
