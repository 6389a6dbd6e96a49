"""Dashboard state: the data source, time span, client selection and workload spec.

Everything a page needs lives in ``st.session_state`` so it survives page switches:

``source``     the chosen :class:`Source` (demo, ServeGen folder or raw trace);
``view``       the loaded data restricted to the chosen time span (:class:`View`);
``selection``  the clients picked on the Clients page and the filter that picked them (:class:`Selection`);
``spec``       the workload spec built on the Compose page.

The sidebar (:func:`sidebar`, called from ``app.py`` before the page runs) sets ``source``
and ``view``. Loading is cached with ``st.cache_resource`` keyed on small arguments (folder
and model, or the trace path and its parsing options); every core call made by a page goes
through :func:`compute` / :func:`run`, which caches it on the function and the view's key,
shows a spinner while it runs and turns any error into ``st.error`` with its message.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from servegen_core.generate.compose import NAIVE_KINDS as _NAIVE_KINDS
from servegen_core.generate.compose import ComposePlan, Workload, plan_workload
from servegen_core.generate.compose import compose as compose_workload
from servegen_core.generate.compose import load_source as load_spec_source
from servegen_core.sources.demo import DEMO_LABEL
from servegen_core.errors import ServeGenError, SpecError
from servegen_core.export.formats import FORMATS, spec_sidecar_path
from servegen_core.export.writer import export_trace
from servegen_core.limits import MAX_SPAN_ENV, max_span_s
from servegen_core.paths import (
    DATA_ROOTS_ENV,
    EXPORT_DIR_ENV,
    PathNotAllowedError,
    data_roots,
    demo_data_dir,
    export_dir,
    resolve_under,
    resolve_under_any,
    shared_data_dir,
    write_atomic,
)
from servegen_core.sources.pool import ClientPool, client_sort_key, expected_requests, list_models, load_pool
from servegen_core.result import Result
from servegen_core.schema import has_columns
from servegen_core.spec import ClientSelection, ServeGenSource, Span, TraceSource, WorkloadSpec
from servegen_core.sources.traces import PRESETS, TIME_UNITS, load_trace, trace_columns
from servegen_core.generate.validate import ValidationReport, validate

import selection as picks
import specstate
from charts import fmt_time
from plaintext import md

#: Environment variable: a ServeGen data folder to offer besides the shared one.
DATA_DIR_ENV = "SERVEGEN_DATA_DIR"
#: Environment variable: largest accepted upload, in MB (default :data:`DEFAULT_MAX_UPLOAD_MB`).
MAX_UPLOAD_ENV = "SERVEGEN_MAX_UPLOAD_MB"
#: The default upload limit; ``dashboard/.streamlit/config.toml`` sets Streamlit's
#: ``server.maxUploadSize`` to the same number.
DEFAULT_MAX_UPLOAD_MB = 500
#: Upload folders older than this (a session that ended without cleaning up) are removed at start.
UPLOAD_MAX_AGE_H = 24

DEMO_TRACE = "traces/demo_requests.csv"
TRACE_SUFFIXES = ("csv", "parquet", "pq", "jsonl", "ndjson", "gz")
AUTO_PRESET = "auto-detect"

_KIND_LABELS = {
    "demo": f"Demo ({DEMO_LABEL})",
    "servegen": "ServeGen data folder",
    "trace": "Raw request trace",
}


def _env_int(name: str, default: int, *, unit: str) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        msg = f"{name} must be a whole number of {unit}, got {text!r}"
        raise ValueError(msg) from None
    if value <= 0:
        msg = f"{name} must be positive, got {value}"
        raise ValueError(msg)
    return value


def max_upload_mb() -> int:
    """Largest accepted upload in MB: ``$SERVEGEN_MAX_UPLOAD_MB`` (default 500), at most Streamlit's ``server.maxUploadSize``.

    Streamlit's server refuses a larger body whatever the page says, so the page never offers
    more than the server takes; ``scripts/dashboard.sh`` sets both from the same variable.
    """
    own = _env_int(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB, unit="MB")
    server = st.get_option("server.maxUploadSize")
    return min(own, int(server)) if server else own


# --------------------------------------------------------------------------------------------
# Source, view, selection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where the data come from; small and hashable, so it can key caches and widgets.

    ``kind`` is ``"pool"`` (ServeGen client-pool data: ``location`` is the data folder and
    ``model`` the ``<category>/<model>``) or ``"trace"`` (``location`` is the file, read
    with ``preset``/``columns``/``time_unit``/``client_column``).
    """

    kind: str
    location: str
    model: str = ""
    preset: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    time_unit: str | None = None
    client_column: str | None = None
    synthetic: bool = False
    display_name: str = ""

    @property
    def name(self) -> str:
        if self.kind == "pool":
            return self.model
        return self.display_name or Path(self.location).name

    @property
    def label(self) -> str:
        """Display name; the demo is always labelled as synthetic."""
        return f"{self.name} ({DEMO_LABEL})" if self.synthetic else self.name

    @property
    def id(self) -> str:
        """A short stable id, used in widget keys."""
        return hashlib.sha1(repr(self).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Loaded:
    """A loaded source: the data and the notes the loader made."""

    source: Source
    data: ClientPool | pl.DataFrame
    notes: tuple[str, ...] = ()
    preset: str | None = None
    #: Wall-clock time of a trace's time 0 when its file gives wall-clock times (else ``None``).
    start_time: datetime.datetime | None = None

    @property
    def origin_hour(self) -> float:
        """Hour of day at time 0: a trace's real start time where known, else midnight (pools start at 00:00)."""
        t = self.start_time
        return 0.0 if t is None else t.hour + t.minute / 60 + t.second / 3600

    @property
    def is_pool(self) -> bool:
        return isinstance(self.data, ClientPool)

    @property
    def start_s(self) -> float:
        if self.is_pool:
            return float(self.data.start_s)
        return 0.0 if not self.data.height else float(min(0.0, self.data["timestamp_s"].min()))

    @property
    def end_s(self) -> float:
        if self.is_pool:
            return float(self.data.end_s)
        return 1.0 if not self.data.height else float(self.data["timestamp_s"].max())

    @property
    def step_s(self) -> float:
        """Resolution of the span selector: the arrival window for a pool, a round step for a trace."""
        if self.is_pool:
            return float(self.data.window_s)
        span = self.end_s - self.start_s
        for step in (1.0, 10.0, 60.0, 600.0, 3600.0):
            if span / step <= 1500:
                return step
        return 21600.0


@dataclass(frozen=True)
class View:
    """The loaded source restricted to the chosen span ``[start_s, end_s)`` (source seconds)."""

    loaded: Loaded
    data: ClientPool | pl.DataFrame
    start_s: float
    end_s: float

    @property
    def source(self) -> Source:
        return self.loaded.source

    @property
    def is_pool(self) -> bool:
        return self.loaded.is_pool

    @property
    def full_span(self) -> bool:
        return self.start_s <= self.loaded.start_s and self.end_s >= self.loaded.end_s

    @property
    def key(self) -> tuple:
        """Identifies the data a page computes on: the source and the span."""
        return (self.source, self.start_s, self.end_s)

    @property
    def client_ids(self) -> tuple[str, ...]:
        if self.is_pool:
            return self.data.client_ids
        return tuple(sorted(self.data["client_id"].unique().to_list(), key=client_sort_key))

    @property
    def fields(self) -> tuple[str, ...]:
        """Per-request fields this source knows (length fields for a pool, columns for a trace)."""
        if self.is_pool:
            return self.data.fields
        return tuple(c for c in self.data.columns if c not in ("timestamp_s", "client_id") and has_columns(self.data, c))

    def has(self, *fields: str) -> bool:
        return all(f in self.fields for f in fields)


Selection = picks.Selection


# --------------------------------------------------------------------------------------------
# Cached loaders (keyed on small arguments)
# --------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_pool(data_dir: str, model: str) -> ClientPool:
    """:func:`servegen_core.sources.pool.load_pool`, once per (folder, model)."""
    return load_pool(data_dir, model)


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_trace(
    path: str,
    preset: str | None,
    columns: tuple[tuple[str, str], ...],
    time_unit: str | None,
    client_column: str | None,
    mtime_ns: int,
) -> tuple[pl.DataFrame, tuple[str, ...], str, datetime.datetime | None]:
    """:func:`servegen_core.sources.traces.load_trace`, once per (file, options, modification time)."""
    loaded = load_trace(
        path,
        preset=preset,
        columns=dict(columns) or None,
        time_unit=time_unit,
        client_column=client_column,
    )
    return loaded.trace, (loaded.summary, *loaded.warnings), loaded.preset, loaded.start_time


def load_source(source: Source) -> Loaded:
    """Load ``source`` through the caches (raises the core's errors)."""
    if source.kind == "pool":
        return Loaded(source, cached_pool(source.location, source.model))
    mtime = Path(source.location).stat().st_mtime_ns if Path(source.location).exists() else 0
    trace, notes, preset, start_time = cached_trace(
        source.location, source.preset, source.columns, source.time_unit, source.client_column, mtime
    )
    return Loaded(source, trace, notes, preset, start_time)


@st.cache_resource(show_spinner=False, max_entries=12)
def _spanned(key: tuple, _loaded: Loaded) -> View:
    _source, start_s, end_s = key
    if _loaded.is_pool:
        pool = _loaded.data
        data = pool if (start_s <= pool.start_s and end_s >= pool.end_s) else pool.span(start_s, end_s)
    else:
        ts = pl.col("timestamp_s")
        data = _loaded.data.filter((ts >= start_s) & (ts <= end_s))
    return View(_loaded, data, start_s, end_s)


def make_view(loaded: Loaded, start_s: float | None = None, end_s: float | None = None) -> View:
    """The view of ``loaded`` over ``[start_s, end_s)`` (whole span by default), cached."""
    start = loaded.start_s if start_s is None else float(start_s)
    end = loaded.end_s if end_s is None else float(end_s)
    if end <= start:
        msg = f"the time span must end after it starts ({fmt_time(start)} to {fmt_time(end)})"
        raise ValueError(msg)
    return _spanned((loaded.source, start, end), loaded)


# --------------------------------------------------------------------------------------------
# Core calls: cached, with a spinner, errors shown as st.error
# --------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=256)
def _cached_call(key: Hashable, _func: Callable, _args: tuple, _kwargs: dict) -> Any:
    return _func(*_args, **_kwargs)


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_heavy(key: Hashable, _func: Callable, _args: tuple, _kwargs: dict) -> Any:
    """Like :func:`_cached_call` for large results (workloads, export files): few entries."""
    return _func(*_args, **_kwargs)


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        items = [_freeze(v) for v in value]
        return tuple(sorted(items, key=repr)) if isinstance(value, set | frozenset) else tuple(items)
    return value


#: Longest error message shown: a library's message (not the core's) can carry rows of a file.
MAX_ERROR_CHARS = 600


def error_text(exc: BaseException) -> str:
    """The message shown for ``exc``: the core's message as it is, another library's first line
    (with the exception's type); either cut to :data:`MAX_ERROR_CHARS`."""
    if isinstance(exc, ServeGenError):
        text = str(exc) or type(exc).__name__
    else:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        known = isinstance(exc, ValueError | OSError | KeyError)
        text = (first if known else f"{type(exc).__name__}: {first}") if first else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def show_error(exc: BaseException) -> None:
    """Show an error as a message (never a traceback), as plain text (:func:`error_text`)."""
    st.error(md(error_text(exc)))


def run(
    func: Callable,
    *args: Any,
    key: Hashable,
    spinner: str | None = None,
    unhashed: Mapping[str, Any] | None = None,
    heavy: bool = False,
    **kwargs: Any,
) -> Any:
    """``func(*args, **kwargs, **unhashed)``, cached on ``(func, key, kwargs)``; ``None`` after an error (shown).

    ``key`` identifies the positional arguments and ``unhashed`` (large objects such as a
    pool are not hashed); ``kwargs`` must be small and hashable. ``heavy`` results (whole
    workloads) go to a cache of few entries.
    """
    full_key = (func.__module__, func.__qualname__, _freeze(key), _freeze(kwargs))
    text = spinner or f"Computing {func.__name__.replace('_', ' ')}…"
    try:
        with st.spinner(text):
            cache = _cached_heavy if heavy else _cached_call
            return cache(full_key, func, args, {**kwargs, **(unhashed or {})})
    except Exception as exc:  # noqa: BLE001 - every core error becomes a message on the page
        show_error(exc)
        return None


def compute(func: Callable, *args: Any, view: View | None = None, **kwargs: Any) -> Any:
    """``func(view.data, *args, **kwargs)`` on the current view, cached on the view's key."""
    view = view or current()
    return run(func, view.data, *args, key=(view.key, args), **kwargs)


def _sample_requests(trace: pl.DataFrame, *, n: int, seed: int) -> pl.DataFrame:
    return trace if trace.height <= n else trace.sample(n, seed=seed)


def request_sample(view: View, n: int = 20000, *, seed: int = 0) -> pl.DataFrame | None:
    """Up to ``n`` requests of a trace view, drawn without replacement with a fixed seed (for scatter plots)."""
    return run(_sample_requests, view.data, key=view.key, n=n, seed=seed, spinner="Sampling requests…")


def usable(result: Any, *, what: str = "this chart") -> bool:
    """True when ``result`` holds data; otherwise say why (``None`` means an error was shown)."""
    if result is None:
        return False
    if isinstance(result, Result) and not result.ok:
        st.info(f"Not enough data for {what}: {md(result.reason)}")
        return False
    return True


# --------------------------------------------------------------------------------------------
# Session state accessors
# --------------------------------------------------------------------------------------------


def current() -> View:
    """The current view; stops the page with a message when no data is loaded."""
    view = st.session_state.get("view")
    if view is None:
        st.info("Choose a data source in the sidebar.")
        st.stop()
    return view


def selection(view: View | None = None) -> tuple[str, ...]:
    """The selected clients that the current source has (empty when none); see :mod:`selection`."""
    view = view or st.session_state.get("view")
    if view is None:
        return ()
    return picks.present(view)


def set_selection(view: View, client_ids: tuple[str, ...] | list[str], *, rule: ClientSelection | None = None) -> None:
    """Replace the selection (and the filter that made it, if any) for the composer."""
    picks.replace(view, client_ids, rule=rule)


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


def open_compose_with_selection() -> None:
    """Switch to the Compose page with its client subset set to the selection."""
    st.session_state["cmp_mode"] = "selection"
    st.switch_page("views/compose.py")


def plot(fig: Any, data: pl.DataFrame | None, *, key: str, **kwargs: Any) -> Any:
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


def filter_rule(ranges: Mapping[str, tuple[float | None, float | None]], top_k: int | None, by: str) -> ClientSelection | None:
    """The Clients page's filter as a spec client selection (``None`` without ranges or top-k)."""
    if not ranges and top_k is None:
        return None
    try:
        return ClientSelection(
            mode="filter", ranges=tuple((name, lo, hi) for name, (lo, hi) in ranges.items()), top_k=top_k, by=by
        )
    except SpecError:
        return None


def describe_rule(rule: ClientSelection) -> str:
    """A filter selection in words, e.g. ``request_share ≥ 0.01; top 5 by request_share``."""
    parts = []
    for name, lo, hi in rule.ranges:
        if lo is not None and hi is not None:
            parts.append(f"{lo:g} ≤ {name} ≤ {hi:g}")
        elif lo is not None:
            parts.append(f"{name} ≥ {lo:g}")
        elif hi is not None:
            parts.append(f"{name} ≤ {hi:g}")
    if rule.top_k is not None:
        parts.append(f"top {rule.top_k} by {rule.by}")
    return "; ".join(parts) or "no bounds"


def carried_rule(view: View, start_s: float, end_s: float) -> tuple[ClientSelection | None, str]:
    """The Clients page's filter for a workload spanning ``[start_s, end_s)``, or ``None``, and a caption.

    The filter goes into the spec (``clients.mode = "filter"``) only when it was ranked over
    the same span as the workload's, on ServeGen pool data: the spec evaluates it over the
    workload's span, so it then picks exactly the clients the Clients page showed. Otherwise
    the clients stay a fixed id list and the caption says why.
    """
    sel = st.session_state.get("selection")
    if sel is None or sel.source != view.source:
        return None, ""
    if sel.rule is None:
        return None, "Rows picked by hand on the Clients page go into the spec as a list of client ids."
    rule = f"the Clients page's filter ({describe_rule(sel.rule)})"
    if not view.is_pool:
        return None, (
            f"Kept as a list of client ids: {rule} ranks the trace's own requests, while a spec ranks the client "
            "pool fitted to the trace, which can order the clients differently."
        )
    if sel.start_s is None or abs(sel.start_s - start_s) > 1e-6 or abs(sel.end_s - end_s) > 1e-6:
        return None, (
            f"Kept as a list of client ids: {rule} ranked the clients over {fmt_time(sel.start_s)} – "
            f"{fmt_time(sel.end_s)}, the workload spans {fmt_time(start_s)} – {fmt_time(end_s)}, and over another "
            "span the same filter can pick other clients. Set the sidebar's time span to the workload's span and "
            "use the matching clients again to carry the filter itself into the spec."
        )
    return sel.rule, f"The spec carries {rule}, evaluated over the workload's span (the same span the Clients page used)."


def page_header(title: str) -> View:
    """Title, the source's label (synthetic demo flagged) and the current view."""
    st.title(title)
    view = current()
    span = "" if view.full_span else f", span {fmt_time(view.start_s)} – {fmt_time(view.end_s)}"
    src = view.source
    label = md(src.name) + (f" ({DEMO_LABEL})" if src.synthetic else "")
    st.caption(f"Source: **{label}**{span}")
    return view


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_duration(seconds: float) -> str:
    s = float(seconds)
    if s >= 86400 * 2:
        return f"{s / 86400:.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


# --------------------------------------------------------------------------------------------
# Sidebar: the data source
# --------------------------------------------------------------------------------------------


def servegen_folders() -> list[str]:
    """ServeGen data folders to offer: ``$SERVEGEN_DATA_DIR`` and the shared data, where they exist."""
    found = []
    env = os.environ.get(DATA_DIR_ENV)
    for path in ([Path(env).expanduser()] if env else []) + [shared_data_dir() / "servegen"]:
        if path.is_dir() and str(path) not in found:
            found.append(str(path))
    return found


def _demo_options() -> list[str]:
    root = demo_data_dir()
    models = list_models(root / "servegen") if (root / "servegen").is_dir() else []
    extra = [DEMO_TRACE] if (root / DEMO_TRACE).is_file() else []
    return models + extra


def _demo_source(option: str) -> Source:
    root = demo_data_dir()
    if option == DEMO_TRACE:
        return Source("trace", str(root / DEMO_TRACE), preset="servegen", synthetic=True, display_name="demo_requests.csv")
    return Source("pool", str(root / "servegen"), option, synthetic=True)


#: The targets the sidebar maps for the ``generic`` preset.
GENERIC_TARGETS = ("timestamp", "input_tokens", "output_tokens")
#: The client-column choice meaning "no client column" (every request is client ``all``).
NO_CLIENT_COLUMN = "(none)"


@st.cache_data(show_spinner=False, max_entries=32)
def file_columns(path: str, mtime_ns: int) -> list[str]:
    """:func:`servegen_core.sources.traces.trace_columns` (header only), once per file version."""
    return trace_columns(path)


# -- uploads ----------------------------------------------------------------------------------
# Each session keeps its upload in a folder of its own under ``<tmp>/servegen-uploads-<uid>``:
# a new upload replaces the previous file, the folder is removed when the session's state is
# dropped (the session ended), and folders older than UPLOAD_MAX_AGE_H (left by a server that
# stopped abruptly) are removed the first time a server process stores an upload.

_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def uploads_root() -> Path:
    """The folder holding every session's upload folder (created private to this user)."""
    root = Path(tempfile.gettempdir()) / f"servegen-uploads-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        msg = f"{root} is not a private folder of this user; uploads are off"
        raise OSError(msg)
    return root


def sweep_stale_uploads(root: Path, *, max_age_h: float = UPLOAD_MAX_AGE_H, now: float | None = None) -> list[Path]:
    """Remove the upload folders under ``root`` not modified for ``max_age_h`` hours; returns them."""
    limit = (time.time() if now is None else now) - max_age_h * 3600
    removed = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.name.startswith("session-") and folder.stat().st_mtime < limit:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@st.cache_resource(show_spinner=False)
def _swept_once() -> bool:
    """Sweep stale upload folders once per server process."""
    sweep_stale_uploads(uploads_root())
    return True


class UploadFolder:
    """A session's upload folder (``session-*`` under :func:`uploads_root`).

    Kept in the session state; the folder is removed when the object is garbage-collected
    (the session ended and its state was dropped) or when the server process exits.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        weakref.finalize(self, shutil.rmtree, str(self.path), True)


def _session_upload_dir() -> Path:
    """This session's upload folder (created on first use)."""
    holder = st.session_state.get("_upload_dir")
    if holder is None or not holder.path.is_dir():
        _swept_once()
        holder = UploadFolder(uploads_root())
        st.session_state["_upload_dir"] = holder
    return holder.path


def upload_file_name(name: str, *, allowed: Sequence[str] = TRACE_SUFFIXES) -> str:
    """A safe file name for an upload: letters, digits, ``.``, ``_`` and ``-`` only, its suffixes kept.

    The suffix must be one of ``allowed`` (default: those the trace loader reads,
    :data:`TRACE_SUFFIXES`, ``.gz`` after one of them).
    """
    suffixes = [x.lower() for x in Path(name).suffixes[-2:]]
    if not suffixes or suffixes[-1].lstrip(".") not in allowed:
        msg = f"an upload must end in one of {', '.join('.' + x for x in allowed)}"
        raise ValueError(msg)
    keep = suffixes if suffixes[-1] == ".gz" and len(suffixes) == 2 else suffixes[-1:]
    stem = name[: len(name) - len("".join(keep))] if name.lower().endswith("".join(keep)) else Path(name).stem
    stem = _UPLOAD_NAME.sub("_", Path(stem).name).strip("._")[:80] or "upload"
    return stem + "".join(keep)


#: Prefix of the sub-folder of a session's upload folder holding the uploads of one other purpose (a slot).
_SLOT_PREFIX = "slot-"


def _save_upload(upload: Any, *, slot: str = "", allowed: Sequence[str] = TRACE_SUFFIXES) -> Path:
    """Write an upload into this session's folder (atomically), replacing the session's previous upload.

    The sidebar's trace is the default slot; another purpose (e.g. the Provisioning page's
    calibration file) names its ``slot`` and keeps one upload of its own there, with the file
    suffixes it reads (``allowed``).
    """
    folder = _session_upload_dir()
    if slot:
        folder = folder / (_SLOT_PREFIX + _UPLOAD_NAME.sub("_", slot))
        folder.mkdir(exist_ok=True)
    tag = hashlib.sha1(str(upload.file_id).encode()).hexdigest()[:12]
    target = folder / tag / upload_file_name(upload.name, allowed=allowed)
    if target.exists():
        return target
    for old in folder.iterdir():  # one upload per session and slot: the previous one is deleted
        if old.name.startswith(_SLOT_PREFIX):
            continue  # another slot's upload stays
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    target.parent.mkdir()
    write_atomic(target, upload.getbuffer())  # the buffer itself: no second copy of a large upload
    return target


def data_path(text: str) -> Path:
    """A data path typed by the user, confined to the data roots (:func:`servegen_core.paths.data_roots`).

    A relative path is looked up under each root. Raises :class:`PathNotAllowedError` with a
    message naming the roots when the path lies outside all of them.
    """
    roots = data_roots()
    try:
        return resolve_under_any(roots, text)
    except PathNotAllowedError:
        names = ", ".join(str(r) for r in roots) or "none"
        msg = f"refused: {text} is outside the data folders this dashboard may read ({names}; set by {DATA_ROOTS_ENV})"
        raise PathNotAllowedError(msg) from None


def upload_or_path(
    what: str,
    *,
    keys: tuple[str, str, str],
    allowed: Sequence[str],
    slot: str = "",
    path_label: str | None = None,
    upload_label: str | None = None,
    persist: bool = False,
) -> tuple[Path, str] | None:
    """A file given by path under the data roots (:func:`data_path`) or uploaded within
    :func:`max_upload_mb` into this session's upload folder (:func:`_save_upload`).

    ``what`` names the file ("Trace file"); ``keys`` are the widget keys of the Path/Upload
    choice, the path field and the uploader; ``allowed`` the file suffixes; ``slot`` the
    upload's place in the session folder (the sidebar's trace: the default). Returns the local
    path and the name to show (the uploaded name, or "" for a path), or None after saying why
    (nothing chosen yet, a path outside the roots, a missing file, an upload above the limit).
    """
    how_key, path_key, upload_key = keys
    keep = {"persist_state": "session"} if persist else {}
    noun = what.lower().removesuffix(" file")
    how = st.radio(what, ["Path", "Upload"], key=how_key, horizontal=True, **keep)
    if how == "Path":
        text = st.text_input(
            path_label or f"{what} path ({', '.join('.' + x for x in allowed)})", key=path_key,
            help="A file under one of the data folders: " + ", ".join(str(r) for r in data_roots())
            + f" (set by {DATA_ROOTS_ENV}); a relative path is looked up in each.",
            **keep,
        ).strip()
        if not text:
            st.caption(md(f"Enter the path of a {noun} under " + ", ".join(str(r) for r in data_roots()) + "."))
            return None
        try:
            path = data_path(text)
        except PathNotAllowedError as exc:
            show_error(exc)
            return None
        if not path.is_file():
            st.error(md(f"{noun} file not found: {path}"))
            return None
        return path, ""
    try:
        limit = max_upload_mb()
    except ValueError as exc:
        show_error(exc)
        return None
    upload = st.file_uploader(
        f"{upload_label or f'Upload a {noun}'} (up to {limit} MB)", type=list(allowed), key=upload_key, max_upload_size=limit
    )
    if upload is None:
        return None
    if upload.size > limit * 1024 * 1024:
        st.error(md(
            f"{upload.name} is {upload.size / 1024 / 1024:.0f} MB, above the {limit} MB upload limit "
            f"(set {MAX_UPLOAD_ENV} to change it, or give the file's path instead)"
        ))
        return None
    try:
        return _save_upload(upload, slot=slot, allowed=allowed), upload.name
    except (OSError, ValueError) as exc:
        show_error(exc)
        return None


def _trace_source() -> Source | None:
    chosen = upload_or_path(
        "Trace file", keys=("src_trace_how", "src_trace_path", "src_upload"), allowed=TRACE_SUFFIXES,
        path_label="Trace path (.csv, .parquet, .jsonl, optionally .gz)", persist=True,
    )
    if chosen is None:
        return None
    path, display = chosen
    preset = st.selectbox(
        "Preset", [AUTO_PRESET, *PRESETS], key="src_preset", persist_state="session",
        help="\n\n".join(f"**{p.name}**: {p.description}" for p in PRESETS.values()),
    )
    try:
        names = file_columns(str(path), path.stat().st_mtime_ns)
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
        return _demo_source(option)
    if kind == "servegen":
        folder = st.selectbox("Data folder", folders, key="src_folder", persist_state="session")
        try:
            models = list_models(folder)
        except ServeGenError as exc:
            show_error(exc)
            return None
        if not models:
            st.error(md(f"no ServeGen models (folders of chunk-*-trace.csv) under {folder}"))
            return None
        model = st.selectbox("Model", models, key="src_model", persist_state="session")
        return Source("pool", folder, model)
    return _trace_source()


#: Most positions the sidebar's span slider offers (the step grows to stay under it).
MAX_SPAN_OPTIONS = 1500
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


def _span_options(loaded: Loaded) -> list[float]:
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
    options = _span_options(loaded)
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


def fmt_resolution(seconds: int) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def request_count(view: View) -> float:
    """Requests in the view: the trace's rows, or for a pool Σ rate × window length."""
    return float(expected_requests(view.data)) if view.is_pool else float(view.data.height)


def fmt_count(n: float) -> str:
    """A count short enough for a metric tile, never cut: ``987,654``, ``12.35 M``, ``1.23 B``."""
    n = float(n)
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f}"


def headline(view: View) -> dict[str, str]:
    """The source's headline numbers: clients, requests, span, fields."""
    data = view.data
    if view.is_pool:
        requests = expected_requests(data)
        req_text = f"{requests:,.0f} (from rates)"
    else:
        req_text = f"{data.height:,}"
    return {
        "Clients": f"{len(view.client_ids):,}",
        "Requests": req_text,
        "Span": fmt_duration(view.end_s - view.start_s),
        "Fields": md(", ".join(view.fields)) or "none",
    }


def sidebar() -> View | None:
    """Draw the data-source sidebar and store ``source`` and ``view`` in the session state."""
    with st.sidebar:
        st.header("Data")
        source = choose_source()
        if source is None:
            st.session_state["view"] = None
            return None
        st.session_state["source"] = source
        try:
            with st.spinner(f"Loading {md(source.name)}…"):
                loaded = load_source(source)
        except Exception as exc:  # noqa: BLE001 - loader errors are shown, not raised
            show_error(exc)
            st.session_state["view"] = None
            return None
        try:
            check_span(loaded)
            start, end = choose_span(loaded)
            view = make_view(loaded, start, end)
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
            st.session_state["view"] = None
            return None
        st.session_state["view"] = view
        if source.synthetic:
            st.caption(f":orange[**{DEMO_LABEL.capitalize()}**] — generated, not real traffic.")
        lines = [f"**{k}:** {v}" for k, v in headline(view).items()]
        st.markdown("  \n".join(lines))
        for note in loaded.notes:
            st.caption(md(note))
        return view


# --------------------------------------------------------------------------------------------
# Composition: the spec's source, the pool it composes from, cached plan / workload / report
# --------------------------------------------------------------------------------------------


def spec_source(view: View) -> tuple[ServeGenSource | TraceSource | None, str | None]:
    """The WorkloadSpec source for the current data source, or ``None`` and the reason.

    The demo and the shared data are written as ``"demo"`` / ``"shared"`` so a spec runs on
    any machine that has them; other folders and trace files by their absolute path. A
    trace keeps the preset it was read with and the sidebar's column mapping, time unit and
    client column, so the spec reads the file exactly as the dashboard did.
    """
    src = view.source
    if src.kind == "pool":
        location = Path(src.location).resolve()
        if location == (demo_data_dir() / "servegen").resolve():
            data_dir = "demo"
        elif location == (shared_data_dir() / "servegen").resolve():
            data_dir = "shared"
        else:
            data_dir = str(location)
        return ServeGenSource(data_dir, src.model), None
    try:
        source = TraceSource(
            path=str(Path(src.location).resolve()),
            preset=view.loaded.preset,
            columns=src.columns,
            time_unit=src.time_unit,
            client_column=src.client_column,
        )
    except SpecError as exc:
        return None, str(exc)
    return source, None


def spec_pool(view: View, source: ServeGenSource | TraceSource) -> ClientPool | None:
    """The pool a spec composes from: the loaded pool itself, or the trace fitted to a pool (cached)."""
    if view.is_pool:
        return view.loaded.data
    try:
        check_spec_source(source)
    except PathNotAllowedError as exc:
        show_error(exc)
        return None
    probe = WorkloadSpec(source=source, span=Span())
    return run(load_spec_source, probe, key=source, spinner="Fitting the trace to a client pool…")


def check_spec_source(source: ServeGenSource | TraceSource) -> None:
    """Raise :class:`PathNotAllowedError` unless a spec's source is one the sidebar may read.

    A trace must lie under the data roots, in the demo data or in this session's upload folder; a ServeGen
    folder must be ``demo``, ``shared``, an offered folder or under the data roots.
    """
    if isinstance(source, TraceSource):
        path = Path(source.path).resolve()
        holder = st.session_state.get("_upload_dir")
        if holder is not None and holder.path.resolve() in path.parents:
            return
        if demo_data_dir().resolve() in path.parents:
            return
        data_path(str(path))
        return
    if source.data_dir in ("demo", "shared"):
        return
    folder = Path(source.data_dir).resolve()
    if str(folder) in {str(Path(f).resolve()) for f in servegen_folders()}:
        return
    data_path(str(folder))


def _plan(spec: WorkloadSpec, *, pool: ClientPool) -> ComposePlan:
    return plan_workload(spec, pool=pool)


def _compose(spec: WorkloadSpec, *, pool: ClientPool) -> Workload:
    return compose_workload(spec, pool=pool)


def plan(spec: WorkloadSpec, pool: ClientPool) -> ComposePlan | None:
    """:func:`servegen_core.generate.compose.plan_workload`, cached on the spec."""
    return run(_plan, spec, key=spec, unhashed={"pool": pool}, spinner="Planning the workload…")


def workload(spec: WorkloadSpec, pool: ClientPool) -> Workload | None:
    """:func:`servegen_core.generate.compose.compose`, cached on the spec."""
    return run(_compose, spec, key=spec, unhashed={"pool": pool}, heavy=True, spinner="Composing the workload…")


def report(spec: WorkloadSpec, pool: ClientPool) -> ValidationReport | None:
    """:func:`servegen_core.generate.validate.validate` of the spec's workload, cached on the spec."""
    made = workload(spec, pool)
    if made is None:
        return None
    return run(validate, made, key=spec, heavy=True, spinner="Validating the workload…")


def current_spec(view: View) -> WorkloadSpec | None:
    """The spec built on the Compose page for the current source, or ``None``."""
    spec = st.session_state.get("spec")
    if spec is None or st.session_state.get("spec_source") != view.source:
        return None
    return spec


def spec_plan_or_stop(view: View) -> tuple[WorkloadSpec, ClientPool, ComposePlan]:
    """The current spec, its source pool and its plan; otherwise a pointer to Compose and stop the page."""
    spec = current_spec(view)
    if spec is None:
        st.info("No workload spec for this source yet: build one on the Compose page.")
        st.page_link("views/compose.py", label="Go to Compose", icon=":material/tune:")
        st.stop()
    source, _ = spec_source(view)
    pool = spec_pool(view, source)
    made = plan(spec, pool) if pool is not None else None
    if made is None:
        st.stop()
    return spec, pool, made


def set_spec(view: View, spec: WorkloadSpec, *, naive: str | None) -> None:
    """Store the Compose page's spec (and push it on the undo history and into the URL)."""
    specstate.remember(spec)
    st.session_state["spec"] = spec
    st.session_state["spec_source"] = view.source
    st.session_state["naive"] = naive


#: Naive baselines offered (:func:`servegen_core.generate.compose.naive_spec` kinds) and how they read.
NAIVE_KINDS = _NAIVE_KINDS
NAIVE_LABELS = {
    "poisson": "Poisson arrivals only",
    "pooled_lengths": "Pooled lengths only",
    "poisson_pooled": "Poisson arrivals + pooled lengths",
    "constant": "Constant rate, Poisson arrivals",
}


def stack_frames(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Several frames of the same columns as one, with a ``series`` column naming each (a chart's CSV)."""
    return pl.concat([f.with_columns(pl.lit(name).alias("series")) for name, f in frames.items()], how="diagonal_relaxed")


def naive_kind() -> str | None:
    """The naive baseline chosen on the Compose page (``"poisson"``, ``"constant"``) or ``None``."""
    return st.session_state.get("naive")


#: Environment variable: largest workload (requests) offered as a browser download.
MAX_DOWNLOAD_ENV = "SERVEGEN_MAX_DOWNLOAD_REQUESTS"
DEFAULT_MAX_DOWNLOAD_REQUESTS = 2_000_000
#: Largest workload (requests) composed in memory on the Preview page.
PREVIEW_MAX_REQUESTS = 5_000_000


def max_download_requests() -> int:
    """Largest workload offered as a browser download: ``$SERVEGEN_MAX_DOWNLOAD_REQUESTS`` or 2,000,000.

    (About 180 MB as Mooncake JSON Lines, 60 MB as CSV; larger workloads are saved to a path.)
    """
    return _env_int(MAX_DOWNLOAD_ENV, DEFAULT_MAX_DOWNLOAD_REQUESTS, unit="requests")


def export_name(fmt: str) -> str:
    """File name of a download: ``workload.<ext>``, or ``workload-<fmt>.jsonl`` for the JSONL replay formats."""
    info = FORMATS[fmt]
    return f"workload-{fmt}{info.extension}" if fmt in ("mooncake", "vllm", "guidellm") else f"workload{info.extension}"


def export_bytes(spec: WorkloadSpec, fmt: str, *, pool: ClientPool) -> tuple[bytes, str, tuple[str, ...]]:
    """The workload of ``spec`` as a file in format ``fmt``: its bytes, file name and dropped columns.

    Written with :func:`servegen_core.export.writer.export_trace` into a temporary folder (which is
    removed), so the bytes are exactly what the CLI writes. Parquet is one file.
    """
    made = compose_workload(spec, pool=pool)
    name = export_name(fmt)
    with tempfile.TemporaryDirectory(prefix="servegen-export-") as folder:
        result = export_trace(made.trace, Path(folder) / name, fmt, note=None)
        data = result.path.read_bytes()
    return data, name, result.dropped_columns


def deferred_export(spec: WorkloadSpec, fmt: str, pool: ClientPool) -> Callable[[], bytes]:
    """A callable for ``st.download_button``: the file is written when the button is clicked (cached per spec and format)."""
    key = (export_bytes.__module__, export_bytes.__qualname__, _freeze((spec, fmt)), ())

    def make() -> bytes:
        return _cached_heavy(key, export_bytes, (spec, fmt), {"pool": pool})[0]

    return make


def export_target(text: str, *, overwrite: bool = False) -> Path:
    """Where "Save to a path" writes ``text``: a file under the export folder, or an error saying why not.

    The folder is :func:`servegen_core.paths.export_dir` (``$SERVEGEN_EXPORT_DIR``, default
    ``exports/`` in the project; created if missing; empty: saving is off). A relative name is
    relative to it; symbolic links and ``..`` are resolved before the check, so nothing outside
    it is written. An existing folder or other non-regular file is never replaced (nor is a
    file's spec sidecar that is one); an existing file only with ``overwrite``.
    """
    folder = export_dir()
    if folder is None:
        msg = f"saving to a path is off on this server ({EXPORT_DIR_ENV} is empty)"
        raise PathNotAllowedError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target = resolve_under(folder, text.strip())
    except PathNotAllowedError as exc:
        msg = f"refused: {exc}, the export folder (set by {EXPORT_DIR_ENV})"
        raise PathNotAllowedError(msg) from None
    if target == folder:
        msg = "give a file name"
        raise PathNotAllowedError(msg)
    for path in (target, spec_sidecar_path(target)):
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
            msg = f"{path} exists and is not a regular file; it is never replaced (choose another name)"
            raise PathNotAllowedError(msg)
        if os.path.lexists(path) and not overwrite:
            msg = f"{path} exists; tick Overwrite to replace it"
            raise PathNotAllowedError(msg)
    return target


def generate_command(fmt: str, out: str, *, spec_path: str = "spec.json") -> str:
    """The equivalent command line."""
    return f"servegen generate --spec {spec_path} --format {fmt} -o {out}"
