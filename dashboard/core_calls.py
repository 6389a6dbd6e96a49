"""Every core call a page makes, cached, with a spinner, its errors shown as messages on the page.

Loading is cached with ``st.cache_resource`` keyed on small arguments (folder and model, or
the trace path, its parsing options and modification time: :func:`load_source`); a view of the
loaded data over a span is cached too (:func:`make_view`). Every other core call goes through
:func:`compute` (on the current view) or :func:`run`, which caches it on the function and a
key, shows a spinner while it runs and turns any error into ``st.error`` with its message
(:func:`error_text`, never a traceback). :func:`usable` says why a result holds no data.

Heavy work (loading a trace, composing, validating and scoring a workload, the provisioning
simulations: :func:`whatif_bytes`) runs within the one memory budget of the whole server (:func:`servegen_core.limits.server_budget`): the call
reserves its estimated bytes first, and while other sessions hold the budget the page says
"Busy: your job is queued" (:func:`within_budget`); a job larger than the whole budget is
refused with both numbers.

The pool a spec composes from (:func:`spec_pool`) is the sidebar's pool itself, or the
sidebar's already-parsed trace fitted to a pool: a trace is parsed once per file version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import math
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

import navigation
from fmt import fmt_time
from plaintext import md
from servegen_core.errors import ServeGenError
from servegen_core.generate.compose import ComposePlan, Workload, plan_workload
from servegen_core.generate.compose import compose as compose_workload
from servegen_core.generate.fidelity import SpecFidelity, spec_fidelity
from servegen_core.generate.validate import ValidationReport, validate
from servegen_core.limits import BudgetWait, composed_bytes, max_columns, max_rows, server_budget, simulated_bytes
from servegen_core.paths import PathNotAllowedError
from servegen_core.result import Result
from servegen_core.sources.fit import pool_from_trace
from servegen_core.sources.footprint import trace_load_bytes
from servegen_core.sources.load import load_source as load_spec_source
from servegen_core.sources.pool import ClientPool, load_pool
from servegen_core.sources.traces import load_trace
from servegen_core.spec import ServeGenSource, TraceSource, WorkloadSpec
from session import Loaded, Source, View, current, current_spec, spec_source
from uploads import ReadablePath, check_spec_source, is_upload, readable_path, readable_roots

# --------------------------------------------------------------------------------------------
# The server-wide budget of heavy work
# --------------------------------------------------------------------------------------------


def _glibc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _glibc_trim()


def return_freed_memory() -> None:
    """Give the memory a finished job freed back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Each session runs in its own thread, and glibc keeps what a thread freed in that
    thread's arena: without this, every session's largest job stays in the server's RSS."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@contextmanager
def within_budget(nbytes: int, what: str) -> Iterator[None]:
    """Hold ``nbytes`` of the server's budget (:func:`servegen_core.limits.server_budget`) while the
    block runs; while the job waits for other sessions' jobs, an info box on the page says so
    (:meth:`servegen_core.limits.BudgetWait.sentence`), removed when the job starts. A job larger
    than the whole budget raises :class:`servegen_core.limits.ServerBudgetError`."""
    box: list = []
    shown: list[str] = []

    def on_wait(wait: BudgetWait) -> None:
        text = wait.sentence()
        if shown and shown[-1] == text:
            return  # unchanged: draw nothing new (a cached call records what it draws)
        if not box:
            box.append(st.empty())
        box[0].info(text, icon=":material/hourglass_top:")
        shown.append(text)

    try:
        with server_budget().reserve(nbytes, what, on_wait=on_wait, make_room=_cached_heavy.clear):
            if box:
                box[0].empty()
            yield
    finally:
        return_freed_memory()


def budgeted(func: Callable, nbytes: int, what: str) -> Callable:
    """``func`` run :func:`within_budget` ``(nbytes, what)``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with within_budget(nbytes, what):
            return func(*args, **kwargs)

    return call


#: Bytes per replica and timeline bin of one serving simulation: the per-bin sums a replica keeps
#: while it runs and its rows of the timeline frame (about 110 measured: 20,000 requests over 10 h
#: on 1, 64 and 256 replicas, tracemalloc plus the frame's size), rounded up.
BYTES_PER_REPLICA_BIN = 128
#: The timeline bin of a simulation (seconds; :func:`servegen_core.serve.simulate.simulate`'s default).
SIMULATION_BIN_S = 10.0


def whatif_bytes(requests: float, *, workloads: int, replicas: int, span_s: float, composed: bool) -> int:
    """Estimated peak bytes of a provisioning comparison (``compare_spec``/``compare_trace``/
    ``answer_range``): ``workloads`` workloads of ``requests`` requests held at once, each with a
    simulation (:func:`servegen_core.limits.simulated_bytes`); two simulations' per-replica
    timelines on up to ``replicas`` replicas (the most the search may try) over ``span_s`` seconds
    (the running one and the smallest count met so far); and, when the realistic workload is
    ``composed`` from a spec first, that composition's peak (:func:`servegen_core.limits.composed_bytes`)."""
    bins = math.ceil(max(0.0, span_s) / SIMULATION_BIN_S) + 1
    timelines = 2 * max(1, int(replicas)) * bins * BYTES_PER_REPLICA_BIN
    return simulated_bytes(requests, workloads=workloads) + timelines + (composed_bytes(requests) if composed else 0)


# --------------------------------------------------------------------------------------------
# Cached loaders (keyed on small arguments)
# --------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_pool(data_dir: ReadablePath, model: str) -> ClientPool:
    """:func:`servegen_core.sources.pool.load_pool`, once per (folder, model)."""
    return load_pool(data_dir, model)


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_trace(
    path: ReadablePath,
    preset: str | None,
    columns: tuple[tuple[str, str], ...],
    time_unit: str | None,
    client_column: str | None,
    mtime_ns: int,
) -> tuple[pl.DataFrame, tuple[str, ...], str, datetime.datetime | None]:
    """:func:`servegen_core.sources.traces.load_trace`, once per (file, options, modification time).

    An uploaded file is loaded under the tighter upload budget of rows and columns; the load runs
    :func:`within_budget` its estimate (:func:`servegen_core.sources.footprint.trace_load_bytes`)."""
    upload = is_upload(path)
    rows, cols = max_rows(upload=upload), max_columns(upload=upload)
    with within_budget(trace_load_bytes(path, max_rows=rows, max_columns=cols), f"loading {path.name}"):
        loaded = load_trace(
            path,
            preset=preset,
            columns=dict(columns) or None,
            time_unit=time_unit,
            client_column=client_column,
            max_rows=rows,
            max_columns=cols,
        )
    return loaded.trace, (loaded.summary, *loaded.warnings), loaded.preset, loaded.start_time


def trace_mtime_ns(path: ReadablePath) -> int:
    """A trace file's modification time (0 when it is missing): part of every key of a parsed trace."""
    return path.stat().st_mtime_ns if path.exists() else 0


def load_source(source: Source) -> Loaded:
    """Load ``source`` through the caches, its location confined first (:func:`uploads.readable_path`;
    raises the core's errors)."""
    location = readable_path(source.location)
    if source.kind == "pool":
        return Loaded(source, cached_pool(location, source.model))
    trace, notes, preset, start_time = cached_trace(
        location, source.preset, source.columns, source.time_unit, source.client_column, trace_mtime_ns(location)
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


#: Bytes a composed workload keeps per byte of its trace's ``estimated_size`` (its plan and
#: buffers besides: 800,000 requests of ``language/m-large`` keep about 2 x 21 MB).
KEPT_BYTES_PER_TRACE_BYTE = 2


def kept_bytes(value: Any) -> int:
    """The memory a cached heavy result keeps: a workload (:data:`KEPT_BYTES_PER_TRACE_BYTE` x its
    trace's estimated size), a table, or file bytes; 0 for small results."""
    if isinstance(value, Workload):
        return KEPT_BYTES_PER_TRACE_BYTE * int(value.trace.estimated_size())
    if isinstance(value, pl.DataFrame):
        return int(value.estimated_size())
    if isinstance(value, bytes | bytearray):
        return len(value)
    return 0


class Kept:
    """A cached heavy result and the bytes it holds of the server budget until the cache drops it."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.nbytes = kept_bytes(value)
        server_budget().hold(self.nbytes)


def _release_kept(kept: Kept) -> None:
    server_budget().release_held(kept.nbytes)


@st.cache_resource(show_spinner=False, max_entries=8, on_release=_release_kept)
def _cached_heavy(key: Hashable, _func: Callable, _args: tuple, _kwargs: dict) -> Kept:
    """Like :func:`_cached_call` for large results (workloads, export files): few entries, each
    counted in the server budget while it is cached (:class:`Kept`): a job that needs room drops them."""
    return Kept(_func(*_args, **_kwargs))


def clear_call_caches() -> None:
    """Forget every cached core call (:func:`run`, :func:`compute`, :func:`deferred`); loaded sources stay cached."""
    _cached_call.clear()
    _cached_heavy.clear()


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
    budget: tuple[int, str] | None = None,
    **kwargs: Any,
) -> Any:
    """``func(*args, **kwargs, **unhashed)``, cached on ``(func, key, kwargs)``; ``None`` after an error (shown).

    ``key`` identifies the positional arguments and ``unhashed`` (large objects such as a
    pool are not hashed); ``kwargs`` must be small and hashable. ``heavy`` results (whole
    workloads) go to a cache of few entries. With ``budget=(bytes, what)`` a call that is not
    cached yet runs :func:`within_budget` those estimated bytes.
    """
    full_key = (func.__module__, func.__qualname__, _freeze(key), _freeze(kwargs))
    text = spinner or f"Computing {func.__name__.replace('_', ' ')}…"
    call = func if budget is None else budgeted(func, *budget)
    try:
        with st.spinner(text):
            if heavy:
                return _cached_heavy(full_key, call, args, {**kwargs, **(unhashed or {})}).value
            return _cached_call(full_key, call, args, {**kwargs, **(unhashed or {})})
    except Exception as exc:  # noqa: BLE001 - every core error becomes a message on the page
        show_error(exc)
        return None


def deferred(func: Callable, *args: Any, key: Hashable, unhashed: Mapping[str, Any] | None = None) -> Callable[[], Any]:
    """A callable computing ``func(*args, **unhashed)`` when called (e.g. by a download button),
    cached on ``(func, key)`` among the few large results of :func:`run` ``(heavy=True)``."""
    full_key = (func.__module__, func.__qualname__, _freeze(key), ())

    def call() -> Any:
        return _cached_heavy(full_key, func, args, dict(unhashed or {})).value

    return call


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
# Composition: the pool a spec composes from, cached plan / workload / report
# --------------------------------------------------------------------------------------------


def trace_pool(trace: pl.DataFrame, source: TraceSource) -> ClientPool:
    """The client pool a spec with trace ``source`` composes from, fitted to ``trace``, that file
    already parsed with the source's options: the pool
    :func:`servegen_core.generate.compose.load_source` makes when it reads the file itself
    (failed requests left out, the same name and ``per_client``)."""
    if "failed" in trace.columns:
        trace = trace.filter(~pl.col("failed").fill_null(False))
    path = Path(source.path)
    return pool_from_trace(trace, name=f"trace/{path.name}", per_client=source.per_client, source=str(path))


def spec_pool(view: View, source: ServeGenSource | TraceSource) -> ClientPool | None:
    """The pool a spec composes from, ``source`` being the view's :func:`session.spec_source`: the
    loaded pool itself, or the loaded trace fitted to a pool (:func:`trace_pool`, cached)."""
    if view.is_pool:
        return view.loaded.data
    try:
        check_spec_source(source)
        path = readable_path(source.path)
    except PathNotAllowedError as exc:
        show_error(exc)
        return None
    # the sidebar parsed this file with these options already (spec_source): fit that trace
    return run(
        trace_pool, view.loaded.data, source, key=(source, trace_mtime_ns(path)),
        spinner="Fitting the trace to a client pool…",
    )


def other_spec_pool(spec: WorkloadSpec) -> ClientPool | None:
    """The pool another spec (one pasted on the Preview page) composes from, loaded by
    :func:`servegen_core.sources.load.load_source` confined to :func:`uploads.readable_roots`:
    a source outside them is refused with the one message that never says whether it exists.
    A trace source inside them loads :func:`within_budget` its estimate (nothing is measured
    outside the roots)."""
    budget = None
    if isinstance(spec.source, TraceSource):
        try:
            path = readable_path(spec.source.path)
        except PathNotAllowedError:
            path = None  # load_spec_source refuses it with its own message
        if path is not None:
            budget = (trace_load_bytes(path, max_rows=max_rows(), max_columns=max_columns()), f"loading {path.name}")
    return run(
        load_spec_source, spec, key=spec.source, roots=readable_roots(), budget=budget,
        spinner="Loading the other spec's source…",
    )


def _plan(spec: WorkloadSpec, *, pool: ClientPool) -> ComposePlan:
    return plan_workload(spec, pool=pool)


def _compose(spec: WorkloadSpec, *, pool: ClientPool) -> Workload:
    return compose_workload(spec, pool=pool)


def plan(spec: WorkloadSpec, pool: ClientPool) -> ComposePlan | None:
    """:func:`servegen_core.generate.compose.plan_workload`, cached on the spec."""
    return run(_plan, spec, key=spec, unhashed={"pool": pool}, spinner="Planning the workload…")


#: ``st.session_state`` key: the exact request count of every spec generated in this session.
_GENERATED_COUNTS = "generated_counts"


def workload(spec: WorkloadSpec, pool: ClientPool) -> Workload | None:
    """:func:`servegen_core.generate.compose.compose`, cached on the spec, run :func:`within_budget`
    the plan's expected requests (:func:`servegen_core.limits.composed_bytes`); its exact request
    count is remembered."""
    made_plan = plan(spec, pool)
    if made_plan is None:
        return None
    expected = made_plan.expected_requests
    budget = (composed_bytes(expected), f"composing about {expected:,.0f} requests")
    made = run(
        _compose, spec, key=spec, unhashed={"pool": pool}, heavy=True, budget=budget, spinner="Composing the workload…"
    )
    if made is not None:
        remember_count(spec, made.trace.height)
    return made


def remember_count(spec: WorkloadSpec, rows: int) -> None:
    """Note that ``spec`` generated exactly ``rows`` requests (read back by :func:`request_count`)."""
    st.session_state.setdefault(_GENERATED_COUNTS, {})[spec] = int(rows)


def request_count(spec: WorkloadSpec, estimate: float) -> str:
    """``"359,998 requests"`` once the spec was generated in this session, else ``"about 360,000 requests"``."""
    exact = st.session_state.get(_GENERATED_COUNTS, {}).get(spec)
    return f"{exact:,} requests" if exact is not None else f"about {estimate:,.0f} requests"


#: ``st.session_state`` key: (checks passed, checks) of every spec validated in this session.
_CHECKS = "spec_checks"


def report(spec: WorkloadSpec, pool: ClientPool) -> ValidationReport | None:
    """:func:`servegen_core.generate.validate.validate` of the spec's workload, cached on the spec; its check count is remembered."""
    made = workload(spec, pool)
    if made is None:
        return None
    rows = made.trace.height
    budget = (composed_bytes(rows), f"validating {rows:,} requests")
    rep = run(validate, made, key=spec, heavy=True, budget=budget, spinner="Validating the workload…")
    if rep is not None and rep.ok:
        st.session_state.setdefault(_CHECKS, {})[spec] = (int(rep.checks["passed"].sum()), rep.checks.height)
    return rep


def checks_passed(spec: WorkloadSpec) -> tuple[int, int] | None:
    """``(passed, checks)`` of the spec's validation when Preview ran it in this session, else None."""
    return st.session_state.get(_CHECKS, {}).get(spec)


def spec_plan_or_stop(view: View) -> tuple[WorkloadSpec, ClientPool, ComposePlan]:
    """The current spec, its source pool and its plan; otherwise a pointer to Compose and stop the page."""
    spec = current_spec(view)
    if spec is None:
        st.info("No workload spec for this source yet: build one on the Compose page.")
        st.page_link(navigation.page("compose").link, label="Go to Compose", icon=":material/tune:")
        st.stop()
    source, _ = spec_source(view)
    pool = spec_pool(view, source)
    made = plan(spec, pool) if pool is not None else None
    if made is None:
        st.stop()
    return spec, pool, made


# --------------------------------------------------------------------------------------------
# Fidelity scorecard of the spec's workload (Preview page)
# --------------------------------------------------------------------------------------------


def _fidelity(spec: WorkloadSpec, *, pool: ClientPool, trace: pl.DataFrame | None, made: Workload) -> SpecFidelity:
    return spec_fidelity(spec, pool=pool, trace=trace, workload=made)


def fidelity(spec: WorkloadSpec, pool: ClientPool, view: View) -> SpecFidelity | None:
    """:func:`servegen_core.generate.fidelity.spec_fidelity` of the spec's (cached) workload, cached
    on the spec: against the view's already-parsed trace (failed requests left out, as the pool
    was fitted) for a trace source, against a second draw of the model for pool data."""
    made = workload(spec, pool)
    if made is None:
        return None
    trace = None
    if not view.is_pool:
        trace = view.loaded.data
        if "failed" in trace.columns:
            trace = trace.filter(~pl.col("failed").fill_null(False))
    spinner = "Scoring the workload against its source…" if trace is not None else "Drawing the model a second time and scoring…"
    rows = made.trace.height + (made.trace.height if trace is None else trace.height)  # and the second draw
    budget = (composed_bytes(rows), f"scoring {made.trace.height:,} requests")
    return run(
        _fidelity, spec, key=spec, unhashed={"pool": pool, "trace": trace, "made": made}, budget=budget, spinner=spinner
    )
