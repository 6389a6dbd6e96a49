"""WorkloadSpec: everything needed to regenerate a workload, as a frozen dataclass and as JSON.

A spec names a source (ServeGen client-pool data, or a raw request trace that is fitted to a
client pool first), a span of that source, the clients to compose and their weights, an
aggregate rate function, arrival and length options, and a seed. The same spec and seed give
the same workload, row for row (see :func:`servegen_core.generate.compose.compose`).

JSON layout (schema version 1; every key is explicit, unknown keys are errors)::

    {
      "schema_version": 1,
      "source": {"kind": "servegen", "data_dir": "shared", "model": "language/m-large"},
             |  {"kind": "trace", "path": "trace.csv", "preset": "azure", "per_client": true},
             |  {"kind": "trace", "path": "mine.csv", "preset": "generic", "per_client": true,
                 "columns": {"timestamp": "ts", "input_tokens": "prompt", "output_tokens": "completion"},
                 "time_unit": "ms", "client_column": "user"},
      "span": {"start_s": 72000, "duration_s": 3600},
      "clients": {"mode": "all"}
              |  {"mode": "ids", "ids": ["0", "17"]}
              |  {"mode": "top_k", "k": 10, "by": "request_share"}
              |  {"mode": "filter", "ranges": {"request_share": [0.01, null]}, "top_k": null,
                  "by": "request_share"},
      "weights": {"mode": "observed"} | {"mode": "explicit", "values": {"0": 2.0, "17": 1.0}},
      "rate": {"kind": "observed", "factor": 1.0}
           |  {"kind": "constant", "rps": 100.0}
           |  {"kind": "bounded", "peak_rps": 500.0}
           |  {"kind": "piecewise", "points": [[0, 50.0], [1800, 120.0]], "interpolation": "step"}
           |  {"kind": "ramp", "start_rps": 10.0, "end_rps": 200.0},
      "arrivals": "fitted" | "poisson" | "empirical",
      "arrival_shape": "recorded_cv" | "fitted_shape",
      "sub_window": "source" | "recorded" | "gamma" | "weibull" | "hyperexp" | "mmpp",
      "lengths": "client" | "pooled",
      "missing_lengths": "borrow" | "exclude" | "pooled",
      "min_load_kept": 0.9,
      "length_correlation": 0.0,
      "seed": 0,
      "batch": null | {"submission_rps": null | 20.0},
      "prefix": null
             | {"version": 1,
                "default": {"system_prompts": {"count": 10, "request_share": 0.5, "zipf_s": 1.0,
                                               "tokens": 1000 | "input", "unique_tokens": 1,
                                               "min_quantile": 0.0, "repeat_share": 0.0,
                                               "repeat_lag": 10.0},
                            "sessions": {"turns": {"kind": "geometric", "mean": 1.106, "max": 50}
                                                | {"kind": "pmf", "pmf": [[1, 0.9], [3, 0.1]]},
                                         "think_time_s": {"mean": 100.0, "cv": 1.0}}},
                "clients": {"17": {"system_prompts": null, "sessions": {...}}}}
    }

``schema_version``, ``source`` and ``span`` are required; every other key has the default
shown first. ``arrival_shape``, ``sub_window`` and ``min_load_kept`` are written only when
not at their defaults. ``span.duration_s`` may be ``null`` (to the end of the source data).

Trace sources
    ``path`` is read with :func:`servegen_core.sources.traces.load_trace`; ``preset`` (``null``:
    detected from the column names) and the optional ``columns``, ``time_unit`` and
    ``client_column`` are passed to it unchanged. ``columns`` maps a target (a key of
    :data:`servegen_core.sources.traces.TARGETS`: ``timestamp``, ``input_tokens``,
    ``output_tokens``, ``client_id``, ...) to a column name in the file; ``time_unit`` is one
    of ``s``, ``ms``, ``us``, ``ns`` or ``datetime``; ``client_column`` names the column used
    as ``client_id``. With preset ``generic`` (or ``columns`` and no preset) ``columns`` must
    map ``timestamp``, ``input_tokens`` and ``output_tokens`` and ``time_unit`` is required.
    The three keys are written only when set, so a spec without them reads and writes as
    before; ``columns`` is written in :data:`~servegen_core.sources.traces.TARGETS` order.
    ``per_client`` (default ``true``) fits one client per ``client_id``, else one client
    ``"all"``. ``hash_block_size`` (optional, written only when set) is the file's tokens per
    ``hash_ids`` entry when it is not its layout's documented one (512 for Mooncake, 16 for the
    Bailian and ServeGen offline releases): ``load_trace``'s ``hash_block_size``, checked against
    the file, and the block size prefix fits and fidelity lines of this source use.

Paths
    ``source.data_dir`` (the folder holding ``<category>/<model>/``) and ``source.path``
    may be relative: they are resolved against the folder of the spec file when the spec was
    read with :meth:`WorkloadSpec.from_file` (or ``from_json`` with ``base_dir``), otherwise
    against the current directory. ``data_dir`` also takes two special values: ``"demo"``
    (the embedded demo data, :func:`servegen_core.paths.demo_data_dir` ``/ "servegen"``) and
    ``"shared"`` (the shared reference data, :func:`servegen_core.paths.shared_data_dir`
    ``/ "servegen"``). Paths are written back exactly as given.

Meaning of the options (details in :mod:`servegen_core.generate.compose`)
    clients
        ``all`` clients of the source; explicit ``ids``; the ``top_k`` clients by a column of
        :func:`servegen_core.characterize.summary.client_summary` over the span; or ``filter``: clients whose
        summary columns fall in the given ``[low, high]`` ranges (``null`` = open), optionally
        then the top ``top_k`` of those by ``by``. Clients are ranked over the span; clients
        without length data count in the ranking and are then handled by
        ``missing_lengths`` (filter ``"has_lengths": [1, 1]`` to rank only clients with
        length data).
    weights
        ``observed``: each client keeps its observed share of the span's requests.
        ``explicit``: client id -> weight, renormalized over the composed clients to request
        shares; a client not named, or named with weight 0, is left out.
    rate (the aggregate target request rate over time; ``t`` counts from the span start)
        ``observed``: every client's own recorded rate in each window times ``factor`` (and
        times its weight adjustment). ``constant``: ``rps`` at all times. ``bounded``: the
        observed aggregate, scaled down so that its busiest window does not exceed
        ``peak_rps`` (as ServeGen's ``get_bounded_rate_fn``; never scaled up).
        ``piecewise``: ``[[t, rps], ...]`` with ``t`` strictly increasing from 0, held
        (``"step"``) or linearly interpolated (``"linear"``) between points, the last value
        held to the end. ``ramp``: linear from ``start_rps`` at 0 to ``end_rps`` at the end.
    arrivals
        ``fitted``: each client's recorded Gamma/Weibull pattern per window, as a stationary
        renewal process in the client's operational time; ``poisson``: exponential
        inter-arrivals (the naive baseline); ``empirical``: each client-window's observed
        inter-arrival gaps resampled (a fitted trace source keeps them as
        ``ClientPool.gaps``; client-windows without gaps fall back to ``fitted``).
    arrival_shape
        how ``fitted`` arrivals get their shape: ``recorded_cv`` (default) solves the
        family's shape from the window's recorded ``cv`` (Gamma ``k = 1/cv^2``; Weibull
        ``Gamma(1+2/k)/Gamma(1+1/k)^2 - 1 = cv^2``), so the generated CV is the recorded
        one; ``fitted_shape`` keeps the fitted ``shape`` column (whose implied CV can differ
        from the recorded ``cv``).
    sub_window
        the model of the arrivals inside a window for ``arrivals="fitted"`` (what a window's
        rate and CV leave open: the sub-second structure). ``source`` (default): what the
        source determines. For a trace source, each client's model fitted and chosen from the
        trace (:func:`servegen_core.arrival_models.fit_client_arrivals` with ``model="auto"``,
        kept as ``ClientPool.arrival_models``); for pool data, which give only rate and CV per
        window, ``mmpp`` with persistence
        :data:`servegen_core.arrival_models.DEFAULT_MMPP_PERSISTENCE`, the option that
        reproduced the 0.1-60 s count dispersion of the two shared traces best from their
        windows' rate and CV alone (``bench/arrival_models.py``, 10 seeds: mean worst
        ``|log ratio|`` 0.163 at persistence 0.7, against gamma 0.187, hyperexp 0.188,
        weibull 0.211; BENCHMARKS.md "Sub-window options"), each window laid to its CV.
        ``recorded``: each window's recorded family (ServeGen's Gamma/Weibull, shaped by
        ``arrival_shape``; the behaviour before this option). ``gamma``, ``weibull``,
        ``hyperexp``, ``mmpp``: that family with the window's CV
        (:func:`servegen_core.arrival_models.rows_from_rate_cv`; a CV at most 1 has no
        two-state model and gets ``gamma``). ``arrivals="poisson"`` and ``"empirical"`` ignore it.
    lengths
        ``client``: each client's own length PDFs per length window; ``pooled``: one
        distribution per field, pooled over the composed clients (the naive baseline).
    missing_lengths
        clients (or client-windows) without length data: ``borrow`` (default) gives them the
        request-weighted mixture of the other composed clients' tables in the same length
        window (the plan's warnings say which clients borrow and their share of the load);
        ``exclude`` drops them (the warnings say which and how many requests); ``pooled``
        gives them the mixture over the whole span.
    min_load_kept
        the least share of the source's recorded load (of the selected clients, in the span)
        that the composed workload may keep; :func:`servegen_core.generate.validate.validate` fails
        its ``load_kept`` check below it (default 0.9).
    length_correlation
        correlation parameter of a Gaussian copula between the input-length field and
        ``output_tokens`` (0 = independent fields, the default). Its Spearman rank
        correlation is ``6/pi * asin(rho/2)``.
    seed
        non-negative integer; with the spec it fixes every random draw.
    batch
        offline batch mode (absent or ``null``: an online workload, and the key is not written).
        The workload is composed as without the key (the same requests, clients and lengths:
        its size is the rate function's integral over the span, so ``observed`` composes as
        many requests as the source recorded there), then submitted as one batch job instead
        of at its arrival times: every request at ``t = 0`` (``submission_rps`` ``null``, the
        default), or one after another at ``submission_rps`` requests per second in the order
        composed (request ``i`` at ``i / submission_rps``). Sessions keep their turn order
        but not their think times. Meant for batch traces without timestamps (ServeGen's
        ``data/offline`` files), whose own timestamps carry no arrival process.
    prefix
        prefix-cache reuse and multi-turn sessions (generated by :mod:`servegen_core.generate.sessions`).
        Absent or ``null``: no prefix model; requests share nothing and the workload is
        byte for byte the one composed without the key (and the key is not written back).
        The section has its own ``"version": 1`` (required). ``default`` applies to every
        composed client; an entry of ``clients`` (client id -> profile) replaces it for that
        client. A profile has ``system_prompts`` and ``sessions``, each ``null`` (not
        modeled, the default) or an object whose missing keys take the values shown above.
        Those values are assumptions, not measurements: ServeGen's client-pool data carry no
        prefix information; the session defaults follow the paper's DeepSeek-R1 finding
        (9.6 % of requests multi-turn, turns about 100 s apart). Fit them from a trace with
        ``hash_ids`` with :func:`servegen_core.generate.sessions.fit_prefix`.

        ``system_prompts``: ``count`` distinct prompts per client; a session uses one with
        probability ``request_share``, prompt ``i`` (1-based) with probability proportional
        to ``i ** -zipf_s``; a prompt is ``tokens`` long, or with ``"input"`` as long as the
        request using it less ``unique_tokens`` (a document-style prefix). A first turn of
        ``x`` input tokens starts with ``min(tokens, max(0, x - unique_tokens))`` tokens of
        its prompt; the rest of its input is its own. Sessions that use a prompt take their
        first-turn input lengths from above the ``min_quantile`` quantile of the client's
        input distribution (requests of one prompt get lengths near each other). With
        probability ``repeat_share`` a session reuses the prompt of a recent prompted session
        of its client (``repeat_lag``: mean distance back, in prompted sessions), which gives
        prompt reuse the temporal locality that small caches see. ``lengths`` (optional, a
        list of ``count`` whole numbers in popularity order) gives each prompt its own length.

        ``sessions``: the turn count of a session (``geometric`` with ``mean`` turns,
        truncated at ``max``; or an explicit ``pmf`` of ``[turns, probability]``) and the
        think time from one turn's arrival to the next (Gamma, ``mean`` seconds and
        ``cv``). Session starts follow the client's arrival process (at the client's rate
        divided by the expected turns per session); each later turn's input is the previous
        turn's input and output plus new tokens. ``growth`` (optional; ``null`` or absent:
        later turns draw their inputs from the client's table and a session's inputs are
        sorted) models conversations: ``first_input`` and ``new_tokens`` are quantile
        tables (``[q_0, ..., q_M]`` at probabilities ``i / M``, non-decreasing whole
        numbers, 2 to 1001 entries) of the first turn's input and of the tokens a later turn
        adds beyond the previous turn's input and output (negative: the client dropped part
        of its history); ``context_tokens`` (whole number or ``null``) is the model's
        context limit: a turn that would exceed it is truncated to it (it keeps the head of
        the conversation and its own new tokens; the session goes on), as a chat front end
        that trims history does.
    slo_classes
        latency classes of the clients (absent or ``null``: none, and the key is not written)::

            "slo_classes": {
              "classes": {"interactive": {"priority": 0, "ttft_p99_s": 1.0, "tpot_p99_s": 0.05},
                          "batch": {"priority": 1, "e2e_p99_s": 3600}},
              "clients": {"17": "batch"},
              "default": "interactive"
            }

        ``classes`` (at least one) names each class's objective (p99 seconds of TTFT, TPOT
        and/or end-to-end; at least one) and its ``priority`` (a whole number; lower is served
        first, as vLLM's ``--scheduling-policy priority``); ``clients`` assigns client ids to
        classes, every other client is in ``default`` (required, a class of ``classes``). The
        composed workload then has ``slo_class`` and ``slo_priority`` columns
        (:mod:`servegen_core.generate.classes`), the simulator schedules by priority and the
        what-if answers per class (:mod:`servegen_core.serve.by_class`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from servegen_core.errors import SpecError, quoted
from servegen_core.limits import MAX_BLOCK_SIZE
from servegen_core.paths import demo_data_dir, shared_data_dir, write_atomic
from servegen_core.schema import DATETIME, TARGETS, TIME_UNITS

__all__ = [
    "ARRIVALS",
    "ARRIVAL_SHAPES",
    "LENGTHS",
    "MISSING_LENGTHS",
    "NAIVE_KINDS",
    "PREFIX_VERSION",
    "SCHEMA_VERSION",
    "SUB_WINDOW_MODELS",
    "BatchJob",
    "BoundedRate",
    "ClientSelection",
    "ConstantRate",
    "ObservedRate",
    "PiecewiseRate",
    "PrefixProfile",
    "PrefixSpec",
    "RampRate",
    "RateSpec",
    "ServeGenSource",
    "Sessions",
    "SloClass",
    "SloClasses",
    "Span",
    "SystemPrompts",
    "TraceSource",
    "Weights",
    "WorkloadSpec",
]

SCHEMA_VERSION = 1
ARRIVALS = ("fitted", "poisson", "empirical")
ARRIVAL_SHAPES = ("recorded_cv", "fitted_shape")
#: Sub-window arrival models (``WorkloadSpec.sub_window``); the first is the default.
SUB_WINDOW_MODELS = ("source", "recorded", "gamma", "weibull", "hyperexp", "mmpp")
LENGTHS = ("client", "pooled")
MISSING_LENGTHS = ("borrow", "exclude", "pooled")
#: Kinds of naive baseline (:func:`servegen_core.generate.compose.naive_spec`).
NAIVE_KINDS = ("poisson", "pooled_lengths", "poisson_pooled", "constant")
CLIENT_MODES = ("all", "ids", "top_k", "filter")
WEIGHT_MODES = ("observed", "explicit")
INTERPOLATIONS = ("step", "linear")
MAX_SEED = 2**63 - 1

# Numeric sanity bounds: values above them describe no real workload and would overflow the
# request-count and time arithmetic (e.g. 1e308 rps times a duration is inf).
#: Largest rate (requests per second) any rate key accepts.
MAX_RPS = 1e9
#: Largest ``rate.factor``.
MAX_FACTOR = 1e9
#: Largest explicit client weight (weights are relative; only their ratios matter).
MAX_WEIGHT = 1e12
#: Largest spec file read (bytes).
MAX_SPEC_BYTES = 16 * 2**20
#: Longest path a spec may name (bytes; Linux's PATH_MAX), and longest file or folder name in it
#: (NAME_MAX): a longer one cannot be opened.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
#: Largest ``span.start_s``, ``span.duration_s`` and piecewise time (seconds; about 3,000 years).
MAX_SPAN_VALUE_S = 1e11

# --------------------------------------------------------------------------------------------
# Value checks (shared by dict parsing and by construction in code)
# --------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _number(
    key: str,
    value: Any,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
) -> float | int:
    """A finite int/float (not a bool); ``minimum`` and ``maximum`` inclusive, ``positive`` means > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"expected a number, got {_type_name(value)} {_short(value)}"
        raise SpecError(key, msg)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise SpecError(key, f"expected a finite number, got {_short(value)}")
    if maximum is not None and value > maximum:
        raise SpecError(key, f"must be <= {maximum:g}, got {_short(value)}")
    if positive and not value > 0:
        raise SpecError(key, f"must be positive, got {quoted(value)}")
    if minimum is not None and value < minimum:
        raise SpecError(key, f"must be >= {minimum}, got {quoted(value)}")
    return value


def _short(value: Any) -> str:
    """``repr(value)`` cut to 40 characters (a huge number or string stays one short line)."""
    text = quoted(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SpecError(key, f"expected a whole number, got {_type_name(value)} {quoted(value)}")
    if minimum is not None and value < minimum:
        raise SpecError(key, f"must be >= {minimum}, got {quoted(value)}")
    if maximum is not None and value > maximum:
        raise SpecError(key, f"must be <= {maximum}, got {quoted(value)}")
    return value


def _string(key: str, value: Any, *, choices: tuple[str, ...] | None = None, nonempty: bool = True) -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, got {_type_name(value)} {quoted(value)}")
    if nonempty and not value.strip():
        raise SpecError(key, "must not be empty")
    if choices is not None and value not in choices:
        raise SpecError(key, f"expected one of {list(choices)}, got {quoted(value)}")
    return value


def _byte_length(text: str) -> int:
    """Bytes of ``text`` as a file name (UTF-8; a lone surrogate counts as its 3 bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _path_text(key: str, value: Any) -> str:
    """A non-empty string naming a file or folder: a NUL character (which no path can hold) is
    an error naming ``key``."""
    text = _string(key, value)
    if "\x00" in text:
        raise SpecError(key, f"a path cannot contain a NUL character, got {quoted(text)}")
    if _byte_length(text) > MAX_PATH_BYTES:
        raise SpecError(key, f"a path is at most {MAX_PATH_BYTES:,} bytes, got {quoted(text)}")
    for part in text.split("/"):
        if _byte_length(part) > MAX_NAME_BYTES:
            raise SpecError(key, f"a file or folder name is at most {MAX_NAME_BYTES} bytes, got {quoted(part)}")
    return text


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, got {_type_name(value)} {quoted(value)}")
    return value


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(key, f"expected an object, got {_type_name(value)} {quoted(value)}")
    for k in value:
        if not isinstance(k, str):
            raise SpecError(key, f"object keys must be strings, got {quoted(k)}")
    return value


def _keys(prefix: str, d: Mapping[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    for k in d:
        if k not in allowed:
            where = f"{prefix}.{k}" if prefix else k
            msg = f"unknown key (allowed here: {list(allowed)})"
            raise SpecError(where, msg)
    for k in required:
        if k not in d:
            where = f"{prefix}.{k}" if prefix else k
            raise SpecError(where, "required key is missing")


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(key, f"expected a list, got {_type_name(value)} {quoted(value)}")
    return list(value)


# --------------------------------------------------------------------------------------------
# Parts of a spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeGenSource:
    """ServeGen client-pool data: ``data_dir`` holds ``<category>/<model>/`` (or "demo"/"shared")."""

    data_dir: str
    model: str
    kind: ClassVar[str] = "servegen"

    def __post_init__(self) -> None:
        _path_text("source.data_dir", self.data_dir)
        _string("source.model", self.model)
        parts = self.model.split("/")
        if len(parts) != 2 or not all(parts):
            raise SpecError("source.model", f"expected '<category>/<model>', got {quoted(self.model)}")
        if "\x00" in self.model or any(_byte_length(part) > MAX_NAME_BYTES for part in parts):
            msg = f"<category> and <model> are folder names (at most {MAX_NAME_BYTES} bytes, no NUL), got {quoted(self.model)}"
            raise SpecError("source.model", msg)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "data_dir": self.data_dir, "model": self.model}


@dataclass(frozen=True)
class TraceSource:
    """A raw request trace file, read with :func:`servegen_core.sources.traces.load_trace` and fitted
    to a client pool with :func:`servegen_core.sources.fit.pool_from_trace` (one client per
    ``client_id`` when ``per_client``, else one client ``"all"``).

    ``columns`` (target -> column name in the file; a mapping or ``(target, column)`` pairs,
    kept as pairs in :data:`~servegen_core.sources.traces.TARGETS` order), ``time_unit`` and
    ``client_column`` are passed to ``load_trace`` as they are; see "Trace sources" in the
    module docstring.
    """

    path: str
    preset: str | None = None
    per_client: bool = True
    columns: tuple[tuple[str, str], ...] = ()
    time_unit: str | None = None
    client_column: str | None = None
    hash_block_size: int | None = None
    kind: ClassVar[str] = "trace"

    def __post_init__(self) -> None:
        _path_text("source.path", self.path)
        if self.hash_block_size is not None:
            block = _integer("source.hash_block_size", self.hash_block_size, minimum=1, maximum=MAX_BLOCK_SIZE)
            object.__setattr__(self, "hash_block_size", block)
        if self.preset is not None:
            _string("source.preset", self.preset)
        _boolean("source.per_client", self.per_client)
        object.__setattr__(self, "columns", _trace_columns(self.columns))
        if self.time_unit is not None:
            _string("source.time_unit", self.time_unit, choices=(*TIME_UNITS, DATETIME))
        mapped = dict(self.columns)
        if self.client_column is not None:
            _string("source.client_column", self.client_column)
            if mapped.get("client_id", self.client_column) != self.client_column:
                msg = f"{quoted(self.client_column)} contradicts source.columns.client_id = {quoted(mapped['client_id'])}"
                raise SpecError("source.client_column", msg)
        if self.preset == "generic" or (self.preset is None and self.columns):
            for target in ("timestamp", "input_tokens", "output_tokens"):
                if target not in mapped:
                    msg = "required with preset 'generic': the column holding " + target.replace("_", " ")
                    raise SpecError(f"source.columns.{target}", msg)
            if self.time_unit is None:
                msg = f"required with preset 'generic', one of {[*TIME_UNITS, DATETIME]}"
                raise SpecError("source.time_unit", msg)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "path": self.path, "preset": self.preset, "per_client": self.per_client}
        if self.columns:
            d["columns"] = dict(self.columns)
        if self.time_unit is not None:
            d["time_unit"] = self.time_unit
        if self.client_column is not None:
            d["client_column"] = self.client_column
        if self.hash_block_size is not None:
            d["hash_block_size"] = self.hash_block_size
        return d


def _trace_columns(value: Any) -> tuple[tuple[str, str], ...]:
    """``source.columns`` as (target, column) pairs in TARGETS order; every name checked."""
    if isinstance(value, Mapping):
        pairs = list(_mapping("source.columns", value).items())
    else:
        pairs = []
        for i, pair in enumerate(_list("source.columns", value)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str):
                raise SpecError(f"source.columns[{i}]", f"expected a (target, column) pair, got {quoted(pair)}")
            pairs.append((pair[0], pair[1]))
    seen_targets: set[str] = set()
    used: dict[str, str] = {}
    for target, column in pairs:
        key = f"source.columns.{target}"
        if target not in TARGETS:
            raise SpecError(key, f"unknown target {quoted(target)}; targets: {list(TARGETS)}")
        if target in seen_targets:
            raise SpecError(key, "the target is mapped twice")
        seen_targets.add(target)
        _string(key, column)
        if column in used:
            raise SpecError(key, f"column {quoted(column)} is already mapped to {used[column]}")
        used[column] = target
    order = {t: i for i, t in enumerate(TARGETS)}
    return tuple(sorted(((t, c) for t, c in pairs), key=lambda p: order[p[0]]))


Source = ServeGenSource | TraceSource


@dataclass(frozen=True)
class Span:
    """Seconds into the source where the workload starts, and its length (None: to the end)."""

    start_s: float = 0
    duration_s: float | None = None

    def __post_init__(self) -> None:
        _number("span.start_s", self.start_s, minimum=0, maximum=MAX_SPAN_VALUE_S)
        if self.duration_s is not None:
            _number("span.duration_s", self.duration_s, positive=True, maximum=MAX_SPAN_VALUE_S)

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "duration_s": self.duration_s}


@dataclass(frozen=True)
class ClientSelection:
    """Which clients to compose (see the module docstring for the modes)."""

    mode: str = "all"
    ids: tuple[str, ...] = ()
    k: int | None = None
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    top_k: int | None = None
    by: str = "request_share"

    def __post_init__(self) -> None:
        _string("clients.mode", self.mode, choices=CLIENT_MODES)
        ids = tuple(self.ids)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "ranges", tuple(tuple(r) for r in self.ranges))
        if self.mode == "ids":
            if not ids:
                raise SpecError("clients.ids", "give at least one client id")
            for i, c in enumerate(ids):
                _string(f"clients.ids[{i}]", c)
            if len(set(ids)) != len(ids):
                dup = next(c for c in ids if ids.count(c) > 1)
                raise SpecError("clients.ids", f"client id {quoted(dup)} is listed twice")
        elif ids:
            raise SpecError("clients.ids", f"only used with mode 'ids', not {quoted(self.mode)}")
        if self.mode == "top_k":
            if self.k is None:
                raise SpecError("clients.k", "required with mode 'top_k'")
            _integer("clients.k", self.k, minimum=1)
        elif self.k is not None:
            raise SpecError("clients.k", f"only used with mode 'top_k', not {quoted(self.mode)}")
        if self.mode == "filter":
            if not self.ranges and self.top_k is None:
                raise SpecError("clients.ranges", "give at least one range (or top_k) with mode 'filter'")
            for name, lo, hi in self.ranges:
                key = f"clients.ranges.{name}"
                _string(key, name)
                if lo is not None:
                    _number(key, lo)
                if hi is not None:
                    _number(key, hi)
                if lo is not None and hi is not None and lo > hi:
                    raise SpecError(key, f"low {lo} is above high {hi}")
            if self.top_k is not None:
                _integer("clients.top_k", self.top_k, minimum=1)
        else:
            if self.ranges:
                raise SpecError("clients.ranges", f"only used with mode 'filter', not {quoted(self.mode)}")
            if self.top_k is not None:
                raise SpecError("clients.top_k", f"only used with mode 'filter' (use mode 'top_k' and k), not {quoted(self.mode)}")
        _string("clients.by", self.by)

    def to_dict(self) -> dict[str, Any]:
        if self.mode == "all":
            return {"mode": "all"}
        if self.mode == "ids":
            return {"mode": "ids", "ids": list(self.ids)}
        if self.mode == "top_k":
            return {"mode": "top_k", "k": self.k, "by": self.by}
        return {
            "mode": "filter",
            "ranges": {name: [lo, hi] for name, lo, hi in self.ranges},
            "top_k": self.top_k,
            "by": self.by,
        }


@dataclass(frozen=True)
class Weights:
    """``observed`` shares, or ``explicit`` client id -> weight (renormalized; 0 leaves a client out)."""

    mode: str = "observed"
    values: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        _string("weights.mode", self.mode, choices=WEIGHT_MODES)
        values = self.values
        if isinstance(values, Mapping):
            values = tuple(values.items())
        values = tuple((k, v) for k, v in values)
        object.__setattr__(self, "values", values)
        if self.mode == "observed":
            if values:
                raise SpecError("weights.values", "only used with mode 'explicit'")
            return
        if not values:
            raise SpecError("weights.values", "give at least one client weight with mode 'explicit'")
        seen: set[str] = set()
        total = 0.0
        for cid, w in values:
            key = f"weights.values.{cid}"
            _string("weights.values", cid)
            if cid in seen:
                raise SpecError(key, "client listed twice")
            seen.add(cid)
            total += _number(key, w, minimum=0, maximum=MAX_WEIGHT)
        if not total > 0:
            raise SpecError("weights.values", "weights sum to 0 (at least one must be positive)")

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    def to_dict(self) -> dict[str, Any]:
        if self.mode == "observed":
            return {"mode": "observed"}
        return {"mode": "explicit", "values": dict(self.values)}


@dataclass(frozen=True)
class ObservedRate:
    """Every client's recorded rate per window, times ``factor``."""

    factor: float = 1.0
    kind: ClassVar[str] = "observed"

    def __post_init__(self) -> None:
        _number("rate.factor", self.factor, positive=True, maximum=MAX_FACTOR)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor}


@dataclass(frozen=True)
class ConstantRate:
    """``rps`` requests per second at all times."""

    rps: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        _number("rate.rps", self.rps, positive=True, maximum=MAX_RPS)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rps": self.rps}


@dataclass(frozen=True)
class BoundedRate:
    """The observed aggregate, scaled down so that its busiest window is at most ``peak_rps``."""

    peak_rps: float
    kind: ClassVar[str] = "bounded"

    def __post_init__(self) -> None:
        _number("rate.peak_rps", self.peak_rps, positive=True, maximum=MAX_RPS)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "peak_rps": self.peak_rps}


@dataclass(frozen=True)
class PiecewiseRate:
    """``(t, rps)`` points from ``t = 0``, held (``step``) or interpolated (``linear``)."""

    points: tuple[tuple[float, float], ...]
    interpolation: str = "step"
    kind: ClassVar[str] = "piecewise"

    def __post_init__(self) -> None:
        pts = tuple(tuple(p) for p in _list("rate.points", self.points))
        object.__setattr__(self, "points", pts)
        if not pts:
            raise SpecError("rate.points", "give at least one [t, rps] point")
        prev = None
        for i, p in enumerate(pts):
            key = f"rate.points[{i}]"
            if len(p) != 2:
                raise SpecError(key, f"expected [t, rps], got {quoted(list(p))}")
            t = _number(key, p[0], minimum=0, maximum=MAX_SPAN_VALUE_S)
            _number(key, p[1], minimum=0, maximum=MAX_RPS)
            if i == 0 and t != 0:
                raise SpecError(key, f"the first point must be at t = 0, got {t}")
            if prev is not None and not t > prev:
                raise SpecError(key, f"times must increase strictly ({t} after {prev})")
            prev = t
        if not any(p[1] > 0 for p in pts):
            raise SpecError("rate.points", "every rate is 0")
        _string("rate.interpolation", self.interpolation, choices=INTERPOLATIONS)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "points": [list(p) for p in self.points], "interpolation": self.interpolation}


@dataclass(frozen=True)
class RampRate:
    """Linear from ``start_rps`` at the span start to ``end_rps`` at its end."""

    start_rps: float
    end_rps: float
    kind: ClassVar[str] = "ramp"

    def __post_init__(self) -> None:
        _number("rate.start_rps", self.start_rps, minimum=0, maximum=MAX_RPS)
        _number("rate.end_rps", self.end_rps, minimum=0, maximum=MAX_RPS)
        if not (self.start_rps > 0 or self.end_rps > 0):
            raise SpecError("rate.end_rps", "start_rps and end_rps are both 0")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start_rps": self.start_rps, "end_rps": self.end_rps}


@dataclass(frozen=True)
class BatchJob:
    """Offline batch mode: the composed requests submitted at ``t = 0`` (``submission_rps=None``)
    or at ``submission_rps`` requests per second in the order composed."""

    submission_rps: float | None = None

    def __post_init__(self) -> None:
        if self.submission_rps is not None:
            _number("batch.submission_rps", self.submission_rps, positive=True, maximum=MAX_RPS)

    def to_dict(self) -> dict[str, Any]:
        return {"submission_rps": self.submission_rps}


def _parse_batch(value: Any) -> BatchJob:
    d = _mapping("batch", value)
    _keys("batch", d, ("submission_rps",))
    rps = d.get("submission_rps")
    return BatchJob(submission_rps=None if rps is None else _number("batch.submission_rps", rps, positive=True, maximum=MAX_RPS))


RateSpec = ObservedRate | ConstantRate | BoundedRate | PiecewiseRate | RampRate
_RATE_KINDS: dict[str, type] = {c.kind: c for c in (ObservedRate, ConstantRate, BoundedRate, PiecewiseRate, RampRate)}
_SOURCE_KINDS: dict[str, type] = {c.kind: c for c in (ServeGenSource, TraceSource)}

# --------------------------------------------------------------------------------------------
# Prefix section: shared system prompts and multi-turn sessions (its own "version": 1)
# --------------------------------------------------------------------------------------------

PREFIX_VERSION = 1
TURN_KINDS = ("geometric", "pmf")
#: Longest session a spec may ask for (turn counts above it are refused).
MAX_TURNS = 1000
#: Most distinct system prompts per client.
MAX_PROMPTS = 1_000_000


@dataclass(frozen=True)
class SystemPrompts:
    """Shared system prompts of one client (see "prefix" in the module docstring).

    ``count`` distinct prompts; a request uses one with probability ``request_share``, prompt
    ``i`` (1-based) with probability proportional to ``i ** -zipf_s``. ``tokens`` is the
    prompt length (a whole number), or ``"input"``: a prompt as long as the request that uses
    it, less ``unique_tokens``. A request of ``x`` input tokens shares
    ``min(tokens, max(0, x - unique_tokens))`` tokens of its prompt. ``min_quantile``: the
    requests that use a prompt take their input lengths from above this quantile of the
    client's input distribution (0: from anywhere; requests of one prompt always get
    lengths near each other). Temporal locality: a prompted request reuses, with
    probability ``repeat_share``, the prompt of a recent prompted request of its client,
    ``l`` prompted requests back with ``l`` geometric of mean ``repeat_lag`` (0: prompts are
    drawn independently of time). ``lengths`` (optional, one per prompt in popularity order)
    gives every prompt its own length in place of ``tokens``; longer prompts then go to the
    sessions with longer first-turn inputs.
    """

    count: int = 10
    request_share: float = 0.5
    zipf_s: float = 1.0
    tokens: int | str = 1000
    unique_tokens: int = 1
    min_quantile: float = 0.0
    repeat_share: float = 0.0
    repeat_lag: float = 10.0
    lengths: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _integer("system_prompts.count", self.count, minimum=1, maximum=MAX_PROMPTS)
        lengths = tuple(_integer(f"system_prompts.lengths[{i}]", v, minimum=1) for i, v in enumerate(_list("system_prompts.lengths", self.lengths)))
        object.__setattr__(self, "lengths", lengths)
        if lengths and len(lengths) != self.count:
            raise SpecError("system_prompts.lengths", f"give one length per prompt ({self.count}), got {len(lengths)}")
        if lengths and isinstance(self.tokens, str):
            raise SpecError("system_prompts.lengths", 'per-prompt lengths need tokens of a fixed length, not "input"')
        share = _number("system_prompts.request_share", self.request_share, minimum=0)
        if share > 1:
            raise SpecError("system_prompts.request_share", f"must lie in [0, 1], got {share}")
        _number("system_prompts.zipf_s", self.zipf_s, minimum=0)
        if isinstance(self.tokens, str):
            _string("system_prompts.tokens", self.tokens, choices=("input",))
        else:
            _integer("system_prompts.tokens", self.tokens, minimum=1)
        _integer("system_prompts.unique_tokens", self.unique_tokens, minimum=0)
        mq = _number("system_prompts.min_quantile", self.min_quantile, minimum=0)
        if mq > 1 - share:
            msg = f"must be at most 1 - request_share = {1 - share:g} (the prompted requests must fit above it), got {mq}"
            raise SpecError("system_prompts.min_quantile", msg)
        rs = _number("system_prompts.repeat_share", self.repeat_share, minimum=0)
        if rs > 1:
            raise SpecError("system_prompts.repeat_share", f"must lie in [0, 1], got {rs}")
        _number("system_prompts.repeat_lag", self.repeat_lag, minimum=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "request_share": self.request_share,
            "zipf_s": self.zipf_s,
            "tokens": self.tokens,
            "unique_tokens": self.unique_tokens,
            "min_quantile": self.min_quantile,
            "repeat_share": self.repeat_share,
            "repeat_lag": self.repeat_lag,
            **({"lengths": list(self.lengths)} if self.lengths else {}),
        }


@dataclass(frozen=True)
class Sessions:
    """Multi-turn sessions of one client (see "prefix" in the module docstring).

    Turns per session: ``turns_kind="geometric"`` with mean ``turns_mean`` (``P(T = k) =
    p (1 - p) ** (k - 1)``, ``p = 1 / turns_mean``) truncated at ``max_turns``; or
    ``"pmf"`` with ``turns_pmf`` ``((turns, probability), ...)``. Think time (from one
    turn's arrival to the next turn's arrival): Gamma with mean ``think_mean_s`` and
    coefficient of variation ``think_cv`` (1 = exponential).

    Conversation growth (``new_tokens`` non-empty; see ``growth`` in the module docstring):
    ``first_input`` and ``new_tokens`` are quantile tables (``M + 1`` values at
    probabilities ``i / M``) of the first turn's input and of a later turn's new tokens;
    ``context_tokens`` caps every turn's input (None: no cap).
    """

    turns_kind: str = "geometric"
    turns_mean: float = 1.106
    max_turns: int = 50
    turns_pmf: tuple[tuple[int, float], ...] = ()
    think_mean_s: float = 100.0
    think_cv: float = 1.0
    new_tokens: tuple[int, ...] = ()
    first_input: tuple[int, ...] = ()
    context_tokens: int | None = None

    def __post_init__(self) -> None:
        _string("sessions.turns.kind", self.turns_kind, choices=TURN_KINDS)
        _integer("sessions.turns.max", self.max_turns, minimum=1, maximum=MAX_TURNS)
        if self.turns_kind == "geometric":
            _number("sessions.turns.mean", self.turns_mean, minimum=1)
            if self.turns_pmf:
                raise SpecError("sessions.turns.pmf", "only used with kind 'pmf'")
        else:
            pmf = tuple((p[0], p[1]) for p in self.turns_pmf)
            object.__setattr__(self, "turns_pmf", pmf)
            if pmf:
                object.__setattr__(self, "max_turns", max(int(k) for k, _p in pmf))
            if not pmf:
                raise SpecError("sessions.turns.pmf", "give at least one [turns, probability] pair")
            seen: set[int] = set()
            for i, (k, p) in enumerate(pmf):
                key = f"sessions.turns.pmf[{i}]"
                _integer(key, k, minimum=1, maximum=MAX_TURNS)
                _number(key, p, minimum=0)
                if k in seen:
                    raise SpecError(key, f"turn count {k} is listed twice")
                seen.add(k)
            if not sum(p for _k, p in pmf) > 0:
                raise SpecError("sessions.turns.pmf", "the probabilities sum to 0")
        _number("sessions.think_time_s.mean", self.think_mean_s, positive=True)
        _number("sessions.think_time_s.cv", self.think_cv, positive=True)
        object.__setattr__(self, "new_tokens", _quantile_table("sessions.growth.new_tokens", self.new_tokens, minimum=None))
        object.__setattr__(self, "first_input", _quantile_table("sessions.growth.first_input", self.first_input, minimum=1))
        if bool(self.new_tokens) != bool(self.first_input):
            raise SpecError("sessions.growth", "give both new_tokens and first_input (or neither)")
        if self.context_tokens is not None:
            _integer("sessions.growth.context_tokens", self.context_tokens, minimum=1)
            if not self.new_tokens:
                raise SpecError("sessions.growth.context_tokens", "only used with new_tokens and first_input")

    def turn_probabilities(self) -> tuple[float, ...]:
        """``P(T = k)`` for ``k = 1 .. K`` (normalized; K = ``max_turns`` or the pmf's largest)."""
        if self.turns_kind == "pmf":
            top = max(k for k, _p in self.turns_pmf)
            probs = [0.0] * top
            for k, p in self.turns_pmf:
                probs[k - 1] = float(p)
        else:
            q = 1.0 - 1.0 / float(self.turns_mean)
            probs = [(1.0 - q) * q ** (k - 1) for k in range(1, self.max_turns + 1)]
        total = sum(probs)
        return tuple(p / total for p in probs)

    def to_dict(self) -> dict[str, Any]:
        if self.turns_kind == "pmf":
            turns: dict[str, Any] = {"kind": "pmf", "pmf": [[k, p] for k, p in self.turns_pmf]}
        else:
            turns = {"kind": "geometric", "mean": self.turns_mean, "max": self.max_turns}
        out: dict[str, Any] = {"turns": turns, "think_time_s": {"mean": self.think_mean_s, "cv": self.think_cv}}
        if self.new_tokens:
            out["growth"] = {
                "first_input": list(self.first_input),
                "new_tokens": list(self.new_tokens),
                "context_tokens": self.context_tokens,
            }
        return out


#: Most entries of a quantile table (``sessions.growth``).
MAX_QUANTILES = 1001


def _quantile_table(key: str, value: Any, *, minimum: int | None) -> tuple[int, ...]:
    """A non-decreasing tuple of whole numbers (2 to :data:`MAX_QUANTILES`), or () for none."""
    items = _list(key, value)
    if not items:
        return ()
    if not 2 <= len(items) <= MAX_QUANTILES:
        raise SpecError(key, f"expected 2 to {MAX_QUANTILES} quantiles, got {len(items)}")
    table = tuple(_integer(f"{key}[{i}]", v, minimum=minimum) for i, v in enumerate(items))
    for i in range(1, len(table)):
        if table[i] < table[i - 1]:
            raise SpecError(f"{key}[{i}]", f"quantiles must not decrease ({table[i - 1]} then {table[i]})")
    return table


@dataclass(frozen=True)
class PrefixProfile:
    """One client's prefix model: shared system prompts and/or sessions (None: not modeled)."""

    system_prompts: SystemPrompts | None = None
    sessions: Sessions | None = None

    def __post_init__(self) -> None:
        if self.system_prompts is not None and not isinstance(self.system_prompts, SystemPrompts):
            raise SpecError("system_prompts", f"expected a SystemPrompts, got {_type_name(self.system_prompts)}")
        if self.sessions is not None and not isinstance(self.sessions, Sessions):
            raise SpecError("sessions", f"expected a Sessions, got {_type_name(self.sessions)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "system_prompts": None if self.system_prompts is None else self.system_prompts.to_dict(),
            "sessions": None if self.sessions is None else self.sessions.to_dict(),
        }


@dataclass(frozen=True)
class PrefixSpec:
    """The ``prefix`` section: a ``default`` profile for every composed client and per-client
    profiles (``clients``: ``(client id, profile)`` pairs) that replace it for those clients."""

    default: PrefixProfile = field(default_factory=PrefixProfile)
    clients: tuple[tuple[str, PrefixProfile], ...] = ()
    version: int = PREFIX_VERSION

    def __post_init__(self) -> None:
        if self.version != PREFIX_VERSION:
            raise SpecError("prefix.version", f"unsupported version {quoted(self.version)} (this software reads {PREFIX_VERSION})")
        if not isinstance(self.default, PrefixProfile):
            raise SpecError("prefix.default", f"expected a PrefixProfile, got {_type_name(self.default)}")
        pairs = tuple(self.clients.items()) if isinstance(self.clients, Mapping) else tuple(self.clients)
        seen: set[str] = set()
        for cid, prof in pairs:
            _string("prefix.clients", cid)
            if cid in seen:
                raise SpecError(f"prefix.clients.{cid}", "client listed twice")
            seen.add(cid)
            if not isinstance(prof, PrefixProfile):
                raise SpecError(f"prefix.clients.{cid}", f"expected a PrefixProfile, got {_type_name(prof)}")
        object.__setattr__(self, "clients", pairs)

    def profile(self, client_id: str) -> PrefixProfile:
        """The profile that applies to ``client_id``."""
        for cid, prof in self.clients:
            if cid == client_id:
                return prof
        return self.default

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "default": self.default.to_dict(),
            "clients": {cid: prof.to_dict() for cid, prof in self.clients},
        }


def _parse_prefix(value: Any) -> PrefixSpec:
    d = _mapping("prefix", value)
    _keys("prefix", d, ("version", "default", "clients"), required=("version",))
    version = _integer("prefix.version", d["version"])
    if version != PREFIX_VERSION:
        raise SpecError("prefix.version", f"unsupported version {version} (this software reads {PREFIX_VERSION})")
    default = _parse_profile("prefix.default", d["default"]) if "default" in d else PrefixProfile()
    clients = []
    for cid, prof in _mapping("prefix.clients", d.get("clients", {})).items():
        clients.append((cid, _parse_profile(f"prefix.clients.{cid}", prof)))
    return PrefixSpec(default=default, clients=tuple(clients), version=version)


def _reprefix(where: str, exc: SpecError) -> SpecError:
    return SpecError(f"{where}.{exc.key}" if exc.key else where, exc.problem)


def _parse_profile(where: str, value: Any) -> PrefixProfile:
    d = _mapping(where, value)
    _keys(where, d, ("system_prompts", "sessions"))
    sp = d.get("system_prompts")
    ss = d.get("sessions")
    return PrefixProfile(
        system_prompts=None if sp is None else _parse_system_prompts(f"{where}.system_prompts", sp),
        sessions=None if ss is None else _parse_sessions(f"{where}.sessions", ss),
    )


def _parse_system_prompts(where: str, value: Any) -> SystemPrompts:
    d = _mapping(where, value)
    allowed = ("count", "request_share", "zipf_s", "tokens", "unique_tokens", "min_quantile", "repeat_share", "repeat_lag", "lengths")
    _keys(where, d, allowed)
    kw: dict[str, Any] = {}
    if "lengths" in d:
        kw["lengths"] = tuple(_integer(f"{where}.lengths[{i}]", v, minimum=1) for i, v in enumerate(_list(f"{where}.lengths", d["lengths"])))
    for k in ("count", "unique_tokens"):
        if k in d:
            kw[k] = _integer(f"{where}.{k}", d[k], minimum=0)
    for k in ("request_share", "zipf_s", "min_quantile", "repeat_share", "repeat_lag"):
        if k in d:
            kw[k] = _number(f"{where}.{k}", d[k], minimum=0)
    if "tokens" in d:
        tok = d["tokens"]
        kw["tokens"] = _string(f"{where}.tokens", tok, choices=("input",)) if isinstance(tok, str) else _integer(f"{where}.tokens", tok, minimum=1)
    try:
        return SystemPrompts(**kw)
    except SpecError as exc:
        raise _reprefix(where.rsplit(".system_prompts", 1)[0], exc) from None


def _parse_sessions(where: str, value: Any) -> Sessions:
    d = _mapping(where, value)
    _keys(where, d, ("turns", "think_time_s", "growth"))
    kw: dict[str, Any] = {}
    if d.get("growth") is not None:
        g = _mapping(f"{where}.growth", d["growth"])
        _keys(f"{where}.growth", g, ("first_input", "new_tokens", "context_tokens"), required=("first_input", "new_tokens"))
        kw["first_input"] = _quantile_table(f"{where}.growth.first_input", g["first_input"], minimum=1)
        kw["new_tokens"] = _quantile_table(f"{where}.growth.new_tokens", g["new_tokens"], minimum=None)
        if g.get("context_tokens") is not None:
            kw["context_tokens"] = _integer(f"{where}.growth.context_tokens", g["context_tokens"], minimum=1)
    if "turns" in d:
        t = _mapping(f"{where}.turns", d["turns"])
        _keys(f"{where}.turns", t, ("kind", "mean", "max", "pmf"), required=("kind",))
        kind = _string(f"{where}.turns.kind", t["kind"], choices=TURN_KINDS)
        kw["turns_kind"] = kind
        if kind == "geometric":
            _keys(f"{where}.turns", t, ("kind", "mean", "max"), required=("mean",))
            kw["turns_mean"] = _number(f"{where}.turns.mean", t["mean"], minimum=1)
            if "max" in t:
                kw["max_turns"] = _integer(f"{where}.turns.max", t["max"], minimum=1, maximum=MAX_TURNS)
        else:
            _keys(f"{where}.turns", t, ("kind", "pmf"), required=("pmf",))
            pairs = []
            for i, p in enumerate(_list(f"{where}.turns.pmf", t["pmf"])):
                pair = _list(f"{where}.turns.pmf[{i}]", p)
                if len(pair) != 2:
                    raise SpecError(f"{where}.turns.pmf[{i}]", f"expected [turns, probability], got {quoted(p)}")
                pairs.append(
                    (
                        _integer(f"{where}.turns.pmf[{i}]", pair[0], minimum=1, maximum=MAX_TURNS),
                        _number(f"{where}.turns.pmf[{i}]", pair[1], minimum=0),
                    )
                )
            kw["turns_pmf"] = tuple(pairs)
            kw["max_turns"] = max(k for k, _p in pairs) if pairs else 1
    if "think_time_s" in d:
        t = _mapping(f"{where}.think_time_s", d["think_time_s"])
        _keys(f"{where}.think_time_s", t, ("mean", "cv"))
        if "mean" in t:
            kw["think_mean_s"] = _number(f"{where}.think_time_s.mean", t["mean"], positive=True)
        if "cv" in t:
            kw["think_cv"] = _number(f"{where}.think_time_s.cv", t["cv"], positive=True)
    try:
        return Sessions(**kw)
    except SpecError as exc:
        raise _reprefix(where.rsplit(".sessions", 1)[0], exc) from None


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------

#: Largest absolute SLO-class priority.
MAX_PRIORITY = 1_000_000
#: Most SLO classes in a spec.
MAX_SLO_CLASSES = 64
#: Objective keys of an SLO class (p99 seconds).
SLO_CLASS_BOUNDS = ("ttft_p99_s", "tpot_p99_s", "e2e_p99_s")


@dataclass(frozen=True)
class SloClass:
    """One SLO class: ``priority`` (lower is served first) and p99 bounds in seconds (None: no
    bound; at least one)."""

    priority: int = 0
    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None
    e2e_p99_s: float | None = None

    def check(self, where: str) -> None:
        """:class:`SpecError` naming ``where`` for a bad priority or bound."""
        _integer(f"{where}.priority", self.priority, minimum=-MAX_PRIORITY, maximum=MAX_PRIORITY)
        bounds = [getattr(self, k) for k in SLO_CLASS_BOUNDS]
        for key, v in zip(SLO_CLASS_BOUNDS, bounds, strict=True):
            if v is not None:
                _number(f"{where}.{key}", v, positive=True, maximum=MAX_SPAN_VALUE_S)
        if all(v is None for v in bounds):
            raise SpecError(where, f"give at least one objective of {list(SLO_CLASS_BOUNDS)}")

    def to_dict(self) -> dict[str, Any]:
        """``{"priority": p, <the bounds set>}``."""
        out: dict[str, Any] = {"priority": self.priority}
        out.update({k: getattr(self, k) for k in SLO_CLASS_BOUNDS if getattr(self, k) is not None})
        return out


@dataclass(frozen=True)
class SloClasses:
    """The spec's ``slo_classes`` section: ``classes`` (name -> :class:`SloClass`, in order),
    ``clients`` (client id -> class name) and the ``default`` class of every other client."""

    classes: tuple[tuple[str, SloClass], ...]
    default: str
    clients: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.classes:
            raise SpecError("slo_classes.classes", "give at least one class")
        if len(self.classes) > MAX_SLO_CLASSES:
            raise SpecError("slo_classes.classes", f"at most {MAX_SLO_CLASSES} classes, got {len(self.classes)}")
        names = [name for name, _ in self.classes]
        if len(set(names)) != len(names):
            raise SpecError("slo_classes.classes", "class names must be unique")
        for name, cls in self.classes:
            _string("slo_classes.classes", name)
            if not isinstance(cls, SloClass):
                raise SpecError(f"slo_classes.classes.{name}", f"expected an SloClass, got {_type_name(cls)}")
            cls.check(f"slo_classes.classes.{name}")
        if self.default not in names:
            raise SpecError("slo_classes.default", f"expected one of the classes {names}, got {quoted(self.default)}")
        for client, name in self.clients:
            _string("slo_classes.clients", client)
            if name not in names:
                raise SpecError(f"slo_classes.clients.{client}", f"expected one of the classes {names}, got {quoted(name)}")

    def of(self, name: str) -> SloClass:
        """The class called ``name``."""
        return dict(self.classes)[name]

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready dicts (classes and clients in their order)."""
        return {
            "classes": {name: cls.to_dict() for name, cls in self.classes},
            "clients": dict(self.clients),
            "default": self.default,
        }


def _parse_slo_classes(value: Any) -> SloClasses:
    """Parse the ``slo_classes`` section strictly (errors name the key, e.g.
    ``slo_classes.classes.batch.priority``)."""
    d = _mapping("slo_classes", value)
    _keys("slo_classes", d, ("classes", "clients", "default"), required=("classes", "default"))
    raw = _mapping("slo_classes.classes", d["classes"])
    classes = []
    for name, entry in raw.items():
        where = f"slo_classes.classes.{name}"
        e = _mapping(where, entry)
        _keys(where, e, ("priority", *SLO_CLASS_BOUNDS), required=("priority",))
        cls = SloClass(
            priority=_integer(f"{where}.priority", e["priority"], minimum=-MAX_PRIORITY, maximum=MAX_PRIORITY),
            **{k: e[k] for k in SLO_CLASS_BOUNDS if e.get(k) is not None},
        )
        cls.check(where)
        classes.append((name, cls))
    clients = _mapping("slo_classes.clients", d.get("clients") or {})
    pairs = tuple((k, _string(f"slo_classes.clients.{k}", v)) for k, v in clients.items())
    return SloClasses(tuple(classes), _string("slo_classes.default", d["default"]), pairs)


_TOP_KEYS = (
    "schema_version",
    "source",
    "span",
    "clients",
    "weights",
    "rate",
    "arrivals",
    "arrival_shape",
    "sub_window",
    "lengths",
    "missing_lengths",
    "min_load_kept",
    "length_correlation",
    "seed",
    "batch",
    "prefix",
    "slo_classes",
)


@dataclass(frozen=True)
class WorkloadSpec:
    """A reproducible workload recipe (see the module docstring for every option).

    Frozen: change it with :func:`dataclasses.replace`. Constructing one checks every value
    and raises :class:`~servegen_core.errors.SpecError` naming the key (``"rate.peak_rps"``).
    Checks that need the source data (unknown client ids, a span outside the data) happen in
    :func:`servegen_core.generate.compose.compose`.

    ``base_dir`` is the folder that relative paths are resolved against; it is not part of
    the JSON and not compared.
    """

    source: Source
    span: Span
    clients: ClientSelection = field(default_factory=ClientSelection)
    weights: Weights = field(default_factory=Weights)
    rate: RateSpec = field(default_factory=ObservedRate)
    arrivals: str = "fitted"
    lengths: str = "client"
    missing_lengths: str = "borrow"
    length_correlation: float = 0.0
    seed: int = 0
    # -- arrival model options (keys "arrival_shape", "sub_window", "min_load_kept") ---------
    arrival_shape: str = "recorded_cv"
    sub_window: str = "source"
    min_load_kept: float = 0.9
    base_dir: str | None = field(default=None, compare=False, repr=False)
    prefix: PrefixSpec | None = None
    batch: BatchJob | None = None
    slo_classes: SloClasses | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, (ServeGenSource, TraceSource)):
            raise SpecError("source", f"expected a ServeGenSource or TraceSource, got {_type_name(self.source)}")
        if not isinstance(self.span, Span):
            raise SpecError("span", f"expected a Span, got {_type_name(self.span)}")
        if not isinstance(self.clients, ClientSelection):
            raise SpecError("clients", f"expected a ClientSelection, got {_type_name(self.clients)}")
        if not isinstance(self.weights, Weights):
            raise SpecError("weights", f"expected a Weights, got {_type_name(self.weights)}")
        if not isinstance(self.rate, tuple(_RATE_KINDS.values())):
            raise SpecError("rate", f"expected a rate spec, got {_type_name(self.rate)}")
        _string("arrivals", self.arrivals, choices=ARRIVALS)
        _string("lengths", self.lengths, choices=LENGTHS)
        _string("missing_lengths", self.missing_lengths, choices=MISSING_LENGTHS)
        _string("arrival_shape", self.arrival_shape, choices=ARRIVAL_SHAPES)
        _string("sub_window", self.sub_window, choices=SUB_WINDOW_MODELS)
        kept = _number("min_load_kept", self.min_load_kept)
        if not 0 <= kept <= 1:
            raise SpecError("min_load_kept", f"must lie in [0, 1], got {kept}")
        rho = _number("length_correlation", self.length_correlation)
        if not -1 <= rho <= 1:
            raise SpecError("length_correlation", f"must lie in [-1, 1], got {rho}")
        _integer("seed", self.seed, minimum=0, maximum=MAX_SEED)
        if self.base_dir is not None and not isinstance(self.base_dir, (str, os.PathLike)):
            raise SpecError("base_dir", f"expected a path, got {_type_name(self.base_dir)}")
        if self.base_dir is not None:
            object.__setattr__(self, "base_dir", _path_text("base_dir", os.fspath(self.base_dir)))
        if self.prefix is not None and not isinstance(self.prefix, PrefixSpec):
            raise SpecError("prefix", f"expected a PrefixSpec, got {_type_name(self.prefix)}")
        if self.batch is not None and not isinstance(self.batch, BatchJob):
            raise SpecError("batch", f"expected a BatchJob, got {_type_name(self.batch)}")
        if self.slo_classes is not None and not isinstance(self.slo_classes, SloClasses):
            raise SpecError("slo_classes", f"expected SloClasses, got {_type_name(self.slo_classes)}")

    # -- dict / JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The spec as nested plain dicts, every key explicit (JSON-ready); a trace source's
        ``columns``/``time_unit``/``client_column`` appear only when set, ``prefix`` and
        ``batch`` only when the spec has them, ``arrival_shape``, ``sub_window`` and ``min_load_kept`` only when not at their
        defaults (so a spec without them writes the same bytes as before they existed)."""
        d = {
            "schema_version": SCHEMA_VERSION,
            "source": self.source.to_dict(),
            "span": self.span.to_dict(),
            "clients": self.clients.to_dict(),
            "weights": self.weights.to_dict(),
            "rate": self.rate.to_dict(),
            "arrivals": self.arrivals,
            "arrival_shape": self.arrival_shape,
            "sub_window": self.sub_window,
            "lengths": self.lengths,
            "missing_lengths": self.missing_lengths,
            "min_load_kept": self.min_load_kept,
            "length_correlation": self.length_correlation,
            "seed": self.seed,
        }
        if self.arrival_shape == "recorded_cv":
            del d["arrival_shape"]
        if self.sub_window == "source":
            del d["sub_window"]
        if self.min_load_kept == 0.9:
            del d["min_load_kept"]
        if self.batch is not None:
            d["batch"] = self.batch.to_dict()
        if self.prefix is not None:
            d["prefix"] = self.prefix.to_dict()
        if self.slo_classes is not None:
            d["slo_classes"] = self.slo_classes.to_dict()
        return d

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (keys in a fixed order)."""
        return json.dumps(self.to_dict(), indent=indent) + ("\n" if indent is not None else "")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> WorkloadSpec:
        """Parse nested dicts strictly; errors are :class:`SpecError` naming the key."""
        d = _mapping("", data) if isinstance(data, Mapping) else None
        if d is None:
            raise SpecError(None, f"a spec must be a JSON object, got {_type_name(data)}")
        _keys("", d, _TOP_KEYS, required=("schema_version", "source", "span"))
        version = _integer("schema_version", d["schema_version"])
        if version != SCHEMA_VERSION:
            raise SpecError("schema_version", f"unsupported version {version} (this software reads {SCHEMA_VERSION})")
        kw: dict[str, Any] = {
            "source": _parse_source(d["source"]),
            "span": _parse_span(d["span"]),
            "base_dir": None if base_dir is None else str(base_dir),
        }
        if "clients" in d:
            kw["clients"] = _parse_clients(d["clients"])
        if "weights" in d:
            kw["weights"] = _parse_weights(d["weights"])
        if "rate" in d:
            kw["rate"] = _parse_rate(d["rate"])
        for key in ("arrivals", "lengths", "missing_lengths", "arrival_shape", "sub_window"):
            if key in d:
                kw[key] = _string(key, d[key])
        if "min_load_kept" in d:
            kw["min_load_kept"] = _number("min_load_kept", d["min_load_kept"])
        if "length_correlation" in d:
            kw["length_correlation"] = _number("length_correlation", d["length_correlation"])
        if "seed" in d:
            kw["seed"] = _integer("seed", d["seed"], minimum=0, maximum=MAX_SEED)
        if d.get("prefix") is not None:
            kw["prefix"] = _parse_prefix(d["prefix"])
        if d.get("batch") is not None:
            kw["batch"] = _parse_batch(d["batch"])
        if d.get("slo_classes") is not None:
            kw["slo_classes"] = _parse_slo_classes(d["slo_classes"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str | Path, *, base_dir: str | Path | None = None) -> WorkloadSpec:
        """Parse JSON text; a :class:`~pathlib.Path` is read as a file (see :meth:`from_file`)."""
        if isinstance(text, Path):
            return cls.from_file(text)
        if not isinstance(text, str):
            raise SpecError(None, f"expected JSON text, got {_type_name(text)}")
        pairs_hook = _PairsHook()
        try:
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=pairs_hook)
        except json.JSONDecodeError as exc:
            raise SpecError(None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except ValueError as exc:
            raise SpecError(None, str(exc)) from None
        except RecursionError:
            raise SpecError(None, "invalid spec: the JSON is nested too deeply") from None
        if pairs_hook.found:
            raise _duplicate_error(data)
        return cls.from_dict(data, base_dir=base_dir)

    @classmethod
    def from_file(cls, path: str | Path) -> WorkloadSpec:
        """Read a spec file; relative paths in it resolve against the file's folder."""
        p = Path(path)
        try:
            if p.stat().st_size > MAX_SPEC_BYTES:
                msg = f"spec file {p} is larger than {MAX_SPEC_BYTES // 2**20} MB (a spec is a few hundred bytes)"
                raise SpecError(None, msg)
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(None, f"cannot read spec file {p}: {exc}") from None
        try:
            return cls.from_json(text, base_dir=p.resolve().parent)
        except SpecError as exc:
            raise SpecError(exc.key, f"{exc.problem} (in {p})") from None

    def to_file(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (temp file + rename)."""
        p = Path(path)
        if p.exists() and not overwrite:
            msg = f"{p} exists (pass overwrite=True to replace it)"
            raise FileExistsError(msg)
        return write_atomic(p, self.to_json())

    # -- paths ------------------------------------------------------------------------------

    def resolve_path(self, text: str) -> Path:
        """A source path of this spec as an absolute path (see "Paths" in the module docstring).

        Raises :class:`SpecError` (key ``source.path`` or ``source.data_dir``) for text no path can hold (a NUL
        character) or that cannot be resolved (a symbolic-link loop).
        """
        key = "source.data_dir" if isinstance(self.source, ServeGenSource) and text == self.source.data_dir else "source.path"
        if not isinstance(text, str) or "\x00" in text:
            raise SpecError(key, f"a path cannot contain a NUL character, got {quoted(text)}")
        if isinstance(self.source, ServeGenSource) and text == self.source.data_dir:
            if text == "demo":
                return demo_data_dir() / "servegen"
            if text == "shared":
                return shared_data_dir() / "servegen"
        p = Path(text).expanduser()
        if not p.is_absolute():
            p = Path(self.base_dir) / p if self.base_dir else Path.cwd() / p
        try:
            return p.resolve()
        except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name too long
            raise SpecError(key, f"{quoted(text)} cannot be resolved ({type(exc).__name__})") from None


class _DuplicateKeys(dict):
    """A JSON object that names a key more than once (the first value of each key kept);
    ``repeated`` lists the repeated keys in the order they appear."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: list[str]) -> None:
        super().__init__()
        for k, v in pairs:
            self.setdefault(k, v)
        self.repeated = repeated


class _PairsHook:
    """A ``json.loads`` ``object_pairs_hook`` that builds a dict, or a :class:`_DuplicateKeys`
    (kept in ``found``) for an object that repeats a key."""

    def __init__(self) -> None:
        self.found: list[_DuplicateKeys] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        repeated = [k for k, _ in pairs if k in seen or seen.add(k)]
        dup = _DuplicateKeys(pairs, list(dict.fromkeys(repeated)))
        self.found.append(dup)
        return dup


def _duplicate_error(data: Any) -> SpecError:
    """The error for the first object (in document order) of ``data`` that repeats a key,
    naming the key by its path (``source.path``, ``rate.points[0]``)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, _DuplicateKeys):
            key = node.repeated[0]
            msg = "the key appears more than once in its object; a spec names each key once (remove the extra ones)"
            return SpecError(f"{where}.{key}" if where else key, msg)
        if isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else k, v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return SpecError(None, "a key appears more than once in one object; a spec names each key once")


def _reject_constant(name: str) -> float:
    msg = f"{name} is not a number JSON allows"
    raise ValueError(msg)


def _parse_source(value: Any) -> Source:
    d = _mapping("source", value)
    trace_keys = ("kind", "path", "preset", "per_client", "columns", "time_unit", "client_column", "hash_block_size")
    _keys("source", d, ("kind", "data_dir", "model", *trace_keys[1:]), required=("kind",))
    kind = _string("source.kind", d["kind"], choices=tuple(_SOURCE_KINDS))
    if kind == "servegen":
        _keys("source", d, ("kind", "data_dir", "model"), required=("data_dir", "model"))
        return ServeGenSource(data_dir=_string("source.data_dir", d["data_dir"]), model=_string("source.model", d["model"]))
    _keys("source", d, trace_keys, required=("path",))
    preset = d.get("preset")
    columns = d.get("columns")
    time_unit = d.get("time_unit")
    client_column = d.get("client_column")
    return TraceSource(
        path=_string("source.path", d["path"]),
        preset=None if preset is None else _string("source.preset", preset),
        per_client=_boolean("source.per_client", d.get("per_client", True)),
        columns=() if columns is None else _trace_columns(_mapping("source.columns", columns)),
        time_unit=None if time_unit is None else _string("source.time_unit", time_unit, choices=(*TIME_UNITS, DATETIME)),
        client_column=None if client_column is None else _string("source.client_column", client_column),
        hash_block_size=d.get("hash_block_size"),
    )


def _parse_span(value: Any) -> Span:
    d = _mapping("span", value)
    _keys("span", d, ("start_s", "duration_s"), required=("start_s",))
    dur = d.get("duration_s")
    return Span(
        start_s=_number("span.start_s", d["start_s"], minimum=0, maximum=MAX_SPAN_VALUE_S),
        duration_s=None if dur is None else _number("span.duration_s", dur, positive=True, maximum=MAX_SPAN_VALUE_S),
    )


def _parse_clients(value: Any) -> ClientSelection:
    d = _mapping("clients", value)
    _keys("clients", d, ("mode", "ids", "k", "ranges", "top_k", "by"), required=("mode",))
    mode = _string("clients.mode", d["mode"], choices=CLIENT_MODES)
    allowed = {
        "all": ("mode",),
        "ids": ("mode", "ids"),
        "top_k": ("mode", "k", "by"),
        "filter": ("mode", "ranges", "top_k", "by"),
    }[mode]
    _keys("clients", d, allowed)
    kw: dict[str, Any] = {"mode": mode}
    if "ids" in d:
        ids = _list("clients.ids", d["ids"])
        kw["ids"] = tuple(_string(f"clients.ids[{i}]", c) for i, c in enumerate(ids))
    if "k" in d:
        kw["k"] = _integer("clients.k", d["k"], minimum=1)
    if "ranges" in d:
        ranges = _mapping("clients.ranges", d["ranges"])
        parsed = []
        for name, r in ranges.items():
            key = f"clients.ranges.{name}"
            pair = _list(key, r)
            if len(pair) != 2:
                raise SpecError(key, f"expected [low, high] (null for open), got {quoted(r)}")
            lo, hi = (None if x is None else _number(key, x) for x in pair)
            parsed.append((name, lo, hi))
        kw["ranges"] = tuple(parsed)
    if d.get("top_k") is not None:
        kw["top_k"] = _integer("clients.top_k", d["top_k"], minimum=1)
    if "by" in d:
        kw["by"] = _string("clients.by", d["by"])
    return ClientSelection(**kw)


def _parse_weights(value: Any) -> Weights:
    d = _mapping("weights", value)
    _keys("weights", d, ("mode", "values"), required=("mode",))
    mode = _string("weights.mode", d["mode"], choices=WEIGHT_MODES)
    if mode == "observed":
        _keys("weights", d, ("mode",))
        return Weights()
    if "values" not in d:
        raise SpecError("weights.values", "required with mode 'explicit'")
    vals = _mapping("weights.values", d["values"])
    return Weights(mode="explicit", values=tuple((k, _number(f"weights.values.{k}", v, minimum=0, maximum=MAX_WEIGHT)) for k, v in vals.items()))


def _parse_rate(value: Any) -> RateSpec:
    d = _mapping("rate", value)
    if "kind" not in d:
        raise SpecError("rate.kind", "required key is missing")
    kind = _string("rate.kind", d["kind"], choices=tuple(_RATE_KINDS))
    if kind == "observed":
        _keys("rate", d, ("kind", "factor"))
        return ObservedRate(factor=_number("rate.factor", d.get("factor", 1.0), positive=True, maximum=MAX_FACTOR))
    if kind == "constant":
        _keys("rate", d, ("kind", "rps"), required=("rps",))
        return ConstantRate(rps=_number("rate.rps", d["rps"], positive=True, maximum=MAX_RPS))
    if kind == "bounded":
        _keys("rate", d, ("kind", "peak_rps"), required=("peak_rps",))
        return BoundedRate(peak_rps=_number("rate.peak_rps", d["peak_rps"], positive=True, maximum=MAX_RPS))
    if kind == "piecewise":
        _keys("rate", d, ("kind", "points", "interpolation"), required=("points",))
        pts = _list("rate.points", d["points"])
        parsed = []
        for i, p in enumerate(pts):
            pair = _list(f"rate.points[{i}]", p)
            if len(pair) != 2:
                raise SpecError(f"rate.points[{i}]", f"expected [t, rps], got {quoted(p)}")
            parsed.append((_number(f"rate.points[{i}]", pair[0]), _number(f"rate.points[{i}]", pair[1])))
        return PiecewiseRate(points=tuple(parsed), interpolation=_string("rate.interpolation", d.get("interpolation", "step")))
    _keys("rate", d, ("kind", "start_rps", "end_rps"), required=("start_rps", "end_rps"))
    return RampRate(
        start_rps=_number("rate.start_rps", d["start_rps"], minimum=0, maximum=MAX_RPS),
        end_rps=_number("rate.end_rps", d["end_rps"], minimum=0, maximum=MAX_RPS),
    )
