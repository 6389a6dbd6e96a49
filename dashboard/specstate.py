"""The workload spec kept across reloads and mistakes: the URL, import, undo.

* **URL.** The current spec rides in the query parameter ``spec`` as compact JSON,
  compressed (zlib) and base64url-encoded (:func:`encode` / :func:`decode`), so a reload or a
  shared link restores it. Decoding is strict: a size limit on the parameter and on the
  decompressed text, then :meth:`WorkloadSpec.from_json` (plain JSON, never evaluated).
* **Import.** A ``spec.json`` uploaded or pasted on the Compose page.
* **Undo.** Every spec the Compose page builds is pushed on a short history; undo restores
  the one before the current.

Restoring a spec means setting the sidebar's and the Compose page's widgets to the spec's
values (:func:`widget_values`): it is queued (:func:`request`) and applied by
:func:`apply_pending` at the very start of the next script run, before any widget exists,
so the Compose page then builds the same spec from its widgets.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import zlib
from typing import Any

import streamlit as st

import selection as picks
from fmt import fmt_clock
from servegen_core.errors import SpecError
from servegen_core.paths import demo_data_dir, shared_data_dir
from servegen_core.spec import (
    BoundedRate,
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    ServeGenSource,
    TraceSource,
    WorkloadSpec,
)
from session import Source, set_spec
from sidebar import AUTO_PRESET, DEMO_TRACE, NO_CLIENT_COLUMN, demo_source

#: Query parameter holding the encoded spec.
PARAM = "spec"
#: Largest accepted encoded parameter (characters) and decompressed spec (bytes).
MAX_PARAM_CHARS = 64_000
MAX_SPEC_BYTES = 1_000_000
#: Specs kept for undo.
HISTORY = 20

_PENDING = "spec_pending"
_HISTORY = "spec_history"
_URL_DONE = "spec_url_checked"
_NOTICE = "spec_restore_notice"
_TEMPLATE = "spec_template"
#: Spec keys the Compose page sets from its widgets; the others come from a restored spec.
PAGE_KEYS = ("source", "span", "clients", "weights", "rate", "arrivals", "lengths", "missing_lengths", "length_correlation", "seed", "prefix")


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode(spec: WorkloadSpec) -> str:
    """The spec as a short URL-safe text: compact JSON, zlib, base64url without padding."""
    raw = spec.to_json(indent=None).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode(text: str) -> WorkloadSpec:
    """The spec of :func:`encode`'s text; ``ValueError`` (or ``SpecError``) saying what is wrong."""
    if not isinstance(text, str) or not text:
        msg = "the spec parameter is empty"
        raise ValueError(msg)
    if len(text) > MAX_PARAM_CHARS:
        msg = f"the spec parameter has {len(text):,} characters, more than the {MAX_PARAM_CHARS:,} accepted"
        raise ValueError(msg)
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        msg = "the spec parameter is not base64url text"
        raise ValueError(msg) from None
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, MAX_SPEC_BYTES + 1)
    except zlib.error:
        msg = "the spec parameter is not zlib-compressed data"
        raise ValueError(msg) from None
    if len(raw) > MAX_SPEC_BYTES or inflater.unconsumed_tail:
        msg = f"the spec parameter expands to more than {MAX_SPEC_BYTES:,} bytes"
        raise ValueError(msg)
    try:
        text_json = raw.decode("utf-8")
    except UnicodeDecodeError:
        msg = "the spec parameter is not UTF-8 text"
        raise ValueError(msg) from None
    return WorkloadSpec.from_json(text_json)


def parse_upload(data: bytes, *, name: str) -> WorkloadSpec:
    """A spec from an uploaded or pasted ``spec.json`` (size-checked, strict JSON)."""
    if len(data) > MAX_SPEC_BYTES:
        msg = f"{name} is {len(data):,} bytes, more than the {MAX_SPEC_BYTES:,} accepted for a spec"
        raise ValueError(msg)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        msg = f"{name} is not UTF-8 text"
        raise ValueError(msg) from None
    try:
        return WorkloadSpec.from_json(text)
    except SpecError as exc:
        msg = f"{name}: {exc}"
        raise ValueError(msg) from None


# --------------------------------------------------------------------------------------------
# Spec -> widget values
# --------------------------------------------------------------------------------------------


def source_widgets(spec: WorkloadSpec, folders: list[str]) -> tuple[dict[str, Any], Source]:
    """Sidebar widget values that choose the spec's source, and the dashboard ``Source`` they make.

    ``folders`` are the ServeGen data folders the sidebar offers. Raises ``ValueError`` when
    the sidebar cannot offer the source.
    """
    src = spec.source
    if isinstance(src, ServeGenSource):
        if src.data_dir == "demo":
            source = demo_source(src.model)
            return {"src_kind": "demo", "src_demo": src.model}, source
        folder = str(shared_data_dir() / "servegen") if src.data_dir == "shared" else str(src.data_dir)
        if folder not in folders:
            where = "the shared data" if src.data_dir == "shared" else folder
            msg = f"the spec's data folder ({where}) is not offered here (folders: {', '.join(folders) or 'none'})"
            raise ValueError(msg)
        return {"src_kind": "servegen", "src_folder": folder, "src_model": src.model}, Source("pool", folder, src.model)
    assert isinstance(src, TraceSource)
    demo_trace = (demo_data_dir() / DEMO_TRACE).resolve()
    if str(demo_trace) == str(src.path) and not src.columns and src.client_column is None:
        return {"src_kind": "demo", "src_demo": DEMO_TRACE}, demo_source(DEMO_TRACE)
    values: dict[str, Any] = {
        "src_kind": "trace",
        "src_trace_how": "Path",
        "src_trace_path": str(src.path),
        "src_preset": src.preset or AUTO_PRESET,
        "src_client_col": src.client_column or NO_CLIENT_COLUMN,
    }
    for target, column in src.columns:
        values[f"src_map_{target}"] = column
    if src.time_unit is not None:
        values["src_time_unit"] = src.time_unit
    source = Source(
        "trace", str(src.path), preset=src.preset, columns=tuple(src.columns), time_unit=src.time_unit,
        client_column=src.client_column,
    )
    return values, source


def compose_widgets(spec: WorkloadSpec, sid: str) -> dict[str, Any]:
    """Compose-page widget values that build ``spec`` (for the source with widget id ``sid``)."""
    v: dict[str, Any] = {}
    c = spec.clients
    if c.mode == "all":
        v["cmp_mode"] = "all"
    elif c.mode == "top_k":
        v["cmp_mode"] = "top_k"
        v[f"cmp_k_{sid}"] = int(c.k)
    elif c.mode == "ids" and set(c.ids) == set(picks.ids()):
        v["cmp_mode"] = "selection"  # the Clients page's selection: keep showing it as such
    elif c.mode == "ids":
        v["cmp_mode"] = "ids"
        v[f"cmp_ids_{sid}"] = list(c.ids)
    else:
        v["cmp_mode"] = "imported"
        v["cmp_imported_clients"] = c
    start = int(spec.span.start_s)
    day, clock = divmod(start, 86400)
    v[f"cmp_day_{sid}"] = day + 1
    v[f"cmp_clock_{sid}"] = fmt_clock(clock)
    if spec.span.duration_s is not None:
        v[f"cmp_duration_{sid}"] = float(spec.span.duration_s) / 60
    v["cmp_seed"] = int(spec.seed)
    r = spec.rate
    if isinstance(r, ObservedRate):
        v["cmp_rate_kind"] = "observed"
        v["cmp_factor"] = float(r.factor)
    elif isinstance(r, BoundedRate):
        v["cmp_rate_kind"] = "bounded"
        v["cmp_peak"] = float(r.peak_rps)
    elif isinstance(r, ConstantRate):
        v["cmp_rate_kind"] = "constant"
        v["cmp_rps"] = float(r.rps)
    elif isinstance(r, RampRate):
        v["cmp_rate_kind"] = "ramp"
        v["cmp_ramp_start"] = float(r.start_rps)
        v["cmp_ramp_end"] = float(r.end_rps)
    elif isinstance(r, PiecewiseRate):
        v["cmp_rate_kind"] = "piecewise"
        v["cmp_points_value"] = tuple(r.points)
        v["cmp_interp"] = r.interpolation
    v["cmp_arrivals"] = spec.arrivals
    v["cmp_lengths"] = spec.lengths
    v["cmp_missing"] = spec.missing_lengths
    v["cmp_rho"] = float(spec.length_correlation)
    v[f"cmp_wt_{sid}"] = dict(spec.weights.values) if spec.weights.mode == "explicit" else {}
    v["cmp_settings_source"] = sid  # the settings are this spec's, for its source (not "kept from another source")
    return v


# --------------------------------------------------------------------------------------------
# Restoring, history, URL
# --------------------------------------------------------------------------------------------


def request(spec: WorkloadSpec, *, why: str) -> None:
    """Queue ``spec`` to be restored at the start of the next run (then ``st.rerun()``)."""
    st.session_state[_PENDING] = (spec, why)


def apply_pending(folders: list[str]) -> None:
    """Set the widgets of a queued spec (call first thing in a run, before any widget)."""
    if not st.session_state.get(_URL_DONE):
        st.session_state[_URL_DONE] = True
        text = st.query_params.get(PARAM)
        if text and _PENDING not in st.session_state:
            try:
                request(decode(text), why="the link")
            except (ValueError, SpecError) as exc:
                st.session_state[_NOTICE] = ("error", f"The spec in the link could not be read: {exc}")
    pending = st.session_state.pop(_PENDING, None)
    if pending is None:
        return
    spec, why = pending
    try:
        values, source = source_widgets(spec, folders)
    except ValueError as exc:
        st.session_state[_NOTICE] = ("error", f"The spec from {why} could not be restored: {exc}")
        return
    for key, value in {**values, **compose_widgets(spec, source.id)}.items():
        st.session_state[key] = value
    st.session_state["cmp_settings_source_label"] = source.label
    st.session_state["cmp_points_version"] = int(st.session_state.get("cmp_points_version", 0)) + 1
    st.session_state["cmp_expected_spec"] = spec
    st.session_state[_TEMPLATE] = spec
    set_spec(spec, source)  # Preview and Export have it before the Compose page runs again
    st.session_state[_NOTICE] = ("success", f"Restored the spec from {why}.")


def notice() -> tuple[str, str] | None:
    """The message of the last restore (shown once)."""
    return st.session_state.pop(_NOTICE, None)


def remember(spec: WorkloadSpec) -> None:
    """Push ``spec`` on the undo history (unless it is the current one) and put it in the URL."""
    history: list[WorkloadSpec] = st.session_state.setdefault(_HISTORY, [])
    if not history or history[-1] != spec:
        history.append(spec)
        del history[:-HISTORY]
    to_url(spec)


def can_undo() -> bool:
    return len(st.session_state.get(_HISTORY, [])) >= 2


def undo() -> None:
    """Restore the spec before the current one (the current one is dropped from the history)."""
    history: list[WorkloadSpec] = st.session_state.get(_HISTORY, [])
    if len(history) < 2:
        return
    history.pop()
    request(history[-1], why="undo")


def to_url(spec: WorkloadSpec | None) -> None:
    """Put ``spec`` in the URL's ``spec`` parameter (only when it changed)."""
    if spec is None:
        return
    text = encode(spec)
    if st.query_params.get(PARAM) != text:
        st.query_params[PARAM] = text


class _Kinded(dict):
    """A spec section with a ``kind`` (rate, clients, weights), compared and shown whole when its kind differs."""


def _kinded(value: dict) -> str:
    """``constant (rps 5)``: a section's kind and its other settings."""
    rest = ", ".join(f"{k} {readable_value(v)}" for k, v in value.items() if k not in ("kind", "mode"))
    head = value.get("kind", value.get("mode"))
    return f"{head} ({rest})" if rest else str(head)


def _flat(value: object, prefix: str = "", other: object = None) -> dict[str, object]:
    """A spec dictionary as ``{"rate.rps": 27.5, "weights.values.104": 0.5, ...}`` (lists of scalars stay whole).

    A section whose ``kind`` (or ``mode``) differs from the one in ``other`` stays whole: its
    settings of another kind are not compared one by one.
    """
    if isinstance(value, dict) and isinstance(other, dict):
        for tag in ("kind", "mode"):
            if tag in value and value.get(tag) != other.get(tag):
                return {prefix: _Kinded(value)}
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key), other.get(key) if isinstance(other, dict) else None))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flat(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def readable_value(value: object, *, width: int = 40) -> str:
    """A spec value for people: numbers to 4 significant digits, ``none`` for null, lists shortened."""
    if isinstance(value, _Kinded):
        return _kinded(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        text = ", ".join(readable_value(v) for v in value)
        return "[" + (text if len(text) <= width else text[: width - 1] + "…") + "]"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_change(spec: WorkloadSpec, base: WorkloadSpec, *, most: int = 8) -> str:
    """What ``spec`` sets differently from ``base``, setting by setting: ``rate.rps 27.5 (A: 50); arrivals poisson (A: fitted)``.

    Settings are the spec's dotted keys; numbers are rounded to 4 significant digits (a
    difference hidden by the rounding is still listed); at most ``most`` settings are named.
    """
    da, db = spec.to_dict(), base.to_dict()
    a, b = _flat(da, other=db), _flat(db, other=da)
    parts = []
    for key in dict.fromkeys([*a, *b]):
        if a.get(key) != b.get(key):
            parts.append(f"{key} {readable_value(a.get(key))} (A: {readable_value(b.get(key))})")
    if not parts:
        return "nothing (the same spec)"
    more = len(parts) - most
    return "; ".join(parts[:most]) + (f"; and {more} more setting(s)" if more > 0 else "")


def template(source: ServeGenSource | TraceSource) -> WorkloadSpec | None:
    """The last restored spec when it is for ``source`` (the Compose page keeps its other keys)."""
    spec = st.session_state.get(_TEMPLATE)
    return spec if spec is not None and spec.source == source else None


def kept_keys(spec: WorkloadSpec) -> list[str]:
    """Keys of ``spec`` outside :data:`PAGE_KEYS` that differ from their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(WorkloadSpec) if f.default is not dataclasses.MISSING}
    return [
        name for name, value in defaults.items()
        if name not in PAGE_KEYS and name != "base_dir" and getattr(spec, name) != value
    ]
