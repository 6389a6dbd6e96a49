"""What a session holds in ``st.session_state``, so it survives page switches: the source and its view, and the spec.

``source``     the chosen :class:`Source` (demo, ServeGen folder or raw trace), set by the sidebar;
``view``       the loaded data restricted to the chosen time span (:class:`View`), set by the sidebar;
``spec``       the workload spec built on the Compose page (:func:`set_spec`), with ``spec_source``
               the source it was built for and ``naive`` the naive baseline chosen with it.

The client selection, kept by client id, is :mod:`selection`; the spec's URL, import and undo
history are :mod:`specstate`.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from fmt import fmt_duration
from plaintext import md
from servegen_core.errors import SpecError
from servegen_core.generate.compose import NAIVE_KINDS as CORE_NAIVE_KINDS
from servegen_core.paths import demo_data_dir, shared_data_dir
from servegen_core.schema import has_columns
from servegen_core.sources.demo import DEMO_LABEL
from servegen_core.sources.pool import ClientPool, client_sort_key, expected_requests
from servegen_core.spec import ServeGenSource, TraceSource, WorkloadSpec

# --------------------------------------------------------------------------------------------
# Source, loaded data, view
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


def current() -> View:
    """The current view; stops the page with a message when no data is loaded."""
    view = st.session_state.get("view")
    if view is None:
        st.info("Choose a data source in the sidebar.")
        st.stop()
    return view


def set_view(source: Source | None, view: View | None) -> None:
    """Store the sidebar's source (when one is chosen) and view (``None``: no data)."""
    if source is not None:
        st.session_state["source"] = source
    st.session_state["view"] = view


def request_count(view: View) -> float:
    """Requests in the view: the trace's rows, or for a pool Σ rate × window length."""
    return float(expected_requests(view.data)) if view.is_pool else float(view.data.height)


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


# --------------------------------------------------------------------------------------------
# The spec
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


def held_spec() -> WorkloadSpec | None:
    """The spec the session holds, for whichever source (``None`` before one is built or restored)."""
    return st.session_state.get("spec")


def current_spec(view: View) -> WorkloadSpec | None:
    """The spec built on the Compose page for the current source, or ``None``."""
    spec = held_spec()
    if spec is None or st.session_state.get("spec_source") != view.source:
        return None
    return spec


def set_spec(spec: WorkloadSpec, source: Source) -> None:
    """Hold ``spec`` as the spec of ``source`` (Preview, Export and Provisioning read it)."""
    st.session_state["spec"] = spec
    st.session_state["spec_source"] = source


def set_naive(kind: str | None) -> None:
    """Hold the naive baseline chosen on the Compose page (``None``: no comparison)."""
    st.session_state["naive"] = kind


def naive_kind() -> str | None:
    """The naive baseline chosen on the Compose page (``"poisson"``, ``"constant"``) or ``None``."""
    return st.session_state.get("naive")


#: Naive baselines offered (:func:`servegen_core.generate.compose.naive_spec` kinds) and how they read.
NAIVE_KINDS = CORE_NAIVE_KINDS
NAIVE_LABELS = {
    "poisson": "Poisson arrivals only",
    "pooled_lengths": "Pooled lengths only",
    "poisson_pooled": "Poisson arrivals + pooled lengths",
    "constant": "Constant rate, Poisson arrivals",
}
