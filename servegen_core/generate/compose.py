"""Compose a workload per client from a ClientPool: rate functions, fast generation, baselines.

``compose(spec)`` turns a :class:`~servegen_core.spec.WorkloadSpec` into a
:class:`Workload`: a RequestTrace (``timestamp_s`` from 0 at the span start, ``client_id``,
``input_tokens``, ``output_tokens`` and, where the source has them, the multimodal and
reasoning columns) plus the warnings raised while composing it and the per-client-window
targets it was built from. :func:`iter_compose` yields the same rows in time chunks for
workloads larger than memory; :func:`naive_spec` derives the naive baselines.

How a workload is composed
--------------------------
1. The source is loaded (:func:`load_source`) and cut to the span. Arrival windows
   (600 s in ServeGen data) that the span cuts are clipped to it.
2. Clients are selected (all, ids, top-k or summary filters). Clients, or client-windows,
   without length data are excluded (``missing_lengths="exclude"``, with a warning naming
   them and the requests they would have sent) or given the pooled lengths.
3. Weights: each client's weight adjustment is ``weight share / observed share`` (1 with
   ``observed`` weights), where the observed share is the client's part of the span's
   recorded requests among the composed clients.
4. Targets per client-window (rps):

   - ``observed``: the client's recorded rate x ``factor`` x its weight adjustment;
   - ``bounded``: the same with ``factor = min(1, peak_rps / busiest window)``;
   - ``constant``, ``piecewise``, ``ramp``: the aggregate rate function's mean over the
     window, split among the clients in proportion to ``recorded rate x adjustment`` in
     that window. With observed weights this is ServeGen's split: every window keeps its
     recorded client mix. With explicit weights the adjustments are refitted by iterative
     proportional scaling so that each client's total over the span is its weight share
     (a warning says so when the span makes that impossible). A window in which no
     composed client was active cannot carry load; its target requests are reported in
     the warnings.

5. Arrivals per client-window: the request count is ``target x duration``, rounded down
   or up at random so that its expectation is exact. ``n`` requests are placed by drawing
   ``n + 1`` inter-arrival times from the client's recorded pattern for that window
   (Gamma or Weibull with the recorded shape; the scale is rescaled so that the ``n + 1``
   gaps span the window exactly, i.e. the mean gap is ``1 / target rate``), as ServeGen
   does. So each window's rate is the target and its inter-arrival shape (CV) is the
   fitted one. ``arrivals="poisson"`` draws exponential gaps instead (a Poisson process
   given the count). For ``piecewise`` and ``ramp`` rates the times inside a window are
   then mapped through the rate function's cumulative integral, so the aggregate rate
   follows the function within windows too, not only window by window.
6. Lengths: every field is drawn from its own uniform random numbers by inverse CDF
   (``searchsorted`` on the per-(client, length window, field) cumulative tables, all
   tables concatenated with offsets), so input and output lengths are independent given
   the client and window (ServeGen's code drives every field of a request with one random
   number, which makes them perfectly rank-correlated; this module does not).
   ``length_correlation`` couples the input-length field and ``output_tokens`` through a
   Gaussian copula when asked. ``lengths="pooled"`` uses one table per field: the mixture
   of the composed clients' tables weighted by their target requests.
7. Multimodal data (fields ``image_count``/``image_tokens`` etc.): the ``<m>_tokens`` PDF
   of the ServeGen data is per item, not per request: in every length window where some
   requests carry no image, the ``image_tokens`` PDF has no mass at 0 while
   ``image_count`` does, and clients sending up to 49 images per request have
   ``image_tokens`` bins capped at 1280 (a per-image limit). So a request draws its
   ``image_count`` and then one ``image_tokens`` value per image, summed:
   ``image_tokens`` and ``image_count`` in the trace are per-request totals and counts,
   and ``input_tokens = text_tokens + image_tokens + audio_tokens + video_tokens``.
8. Reasoning data: ``reason_ratio`` is drawn from its exact bins (the data's k/501
   values, not re-indexed), ``reasoning_tokens = round(output_tokens x reason_ratio)``
   (half to even) and ``answer_tokens = output_tokens - reasoning_tokens``.

Randomness and chunking
-----------------------
Every arrival window has its own generators, ``np.random.default_rng([seed, w])`` and
``default_rng([seed, w, 1])`` (``w`` = the window's index in the source), drawn in a fixed
order (count rounding, gaps, lengths; then per-item tokens). The rows of a window therefore
do not depend on which other windows are generated with it, and :func:`iter_compose`
concatenates to exactly :func:`compose`'s frame for any ``chunk_s``. Within a window the
draws are vectorized over all of its clients and requests; across windows everything but
the draw calls is vectorized over the whole chunk. Rows are sorted by ``timestamp_s``
(stable: ties keep window, then client, order).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from types import MappingProxyType

import numpy as np
import polars as pl
from scipy.special import ndtr

from servegen_core.errors import DataFormatError, LimitError, SpecError
from servegen_core.limits import max_requests as default_max_requests
from servegen_core.sources.pool import ClientPool, client_sort_key, load_pool
from servegen_core.generate import sessions
from servegen_core.renewal import (
    EXPONENTIAL,
    GAMMA,
    MAX_SHAPE,
    MIN_GAMMA_SHAPE,
    MIN_WEIBULL_SHAPE,
    WEIBULL,
    empirical_tables,
    family_cv,
    gamma_shape_for_cv,
    circular_points,
    weibull_shape_for_sample_cv,
)
from servegen_core.schema import PREFIX_COLUMNS, SCHEMA
from servegen_core.spec import (
    ARRIVALS,
    LENGTHS,
    MISSING_LENGTHS,
    NAIVE_KINDS,
    SCHEMA_VERSION,
    BoundedRate,
    ClientSelection,
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    RateSpec,
    ServeGenSource,
    Span,
    TraceSource,
    Weights,
    WorkloadSpec,
)

__all__ = [
    "ARRIVALS",
    "EXCLUSION_REASONS",
    "LENGTHS",
    "MISSING_LENGTHS",
    "NAIVE_KINDS",
    "SCHEMA_VERSION",
    "BoundedRate",
    "ClientSelection",
    "ComposePlan",
    "ConstantRate",
    "ObservedRate",
    "PiecewiseRate",
    "RampRate",
    "RateSpec",
    "ServeGenSource",
    "Span",
    "TraceSource",
    "Weights",
    "Workload",
    "WorkloadSpec",
    "compose",
    "rate_curve",
    "iter_compose",
    "load_source",
    "naive_spec",
    "plan_workload",
]

#: Why a client of the source's span is not composed, in the order they are decided
#: (:attr:`ComposePlan.exclusions`): not chosen by ``clients``; chosen but given weight 0
#: (explicit weights that omit it or set 0); no recorded requests in the span; requests in
#: the span only in windows without length data (``missing_lengths="exclude"``).
EXCLUSION_REASONS: tuple[str, ...] = ("not_selected", "weight_zero", "idle", "no_lengths")

#: Modalities whose ``<m>_tokens`` PDF is per item, drawn ``<m>_count`` times per request.
ITEM_MODALITIES: tuple[str, ...] = ("image", "audio", "video")
#: Fields that may hold the input length, in order of preference (the copula's first field).
INPUT_FIELDS: tuple[str, ...] = ("input_tokens", "text_tokens")

#: Largest expected number of requests in one generation unit. An arrival window whose composed
#: clients expect more is cut into equal time pieces, each generated on its own (see
#: :func:`_units`), so memory stays bounded at any rate.
UNIT_REQUESTS = 1_000_000



# --------------------------------------------------------------------------------------------
# Source loading
# --------------------------------------------------------------------------------------------


def load_source(spec: WorkloadSpec, *, cache_dir: str | Path | None = None) -> ClientPool:
    """The ClientPool a spec composes from: ServeGen data, or a raw trace fitted to a pool.

    A trace source is read with its ``preset``, ``columns``, ``time_unit`` and
    ``client_column`` passed to :func:`servegen_core.sources.traces.load_trace`.

    Raises :class:`SpecError` naming ``source.data_dir``/``source.model``/``source.path``/
    ``source.preset`` when they point nowhere (``source.columns`` when the mapping clashes
    with the preset's own); malformed files, and mapped columns the file lacks, raise
    :class:`~servegen_core.errors.DataFormatError`.
    """
    src = spec.source
    if isinstance(src, ServeGenSource):
        root = spec.resolve_path(src.data_dir)
        if not root.is_dir():
            raise SpecError("source.data_dir", f"not a folder: {root}")
        if not (root / src.model).is_dir():
            from servegen_core.sources.pool import list_models

            try:
                models = list_models(root)
            except DataFormatError:
                models = []
            raise SpecError("source.model", f"no model {src.model!r} in {root}; models there: {models}")
        return load_pool(root, src.model, cache_dir=cache_dir)
    from servegen_core.sources.fit import pool_from_trace
    from servegen_core.sources.traces import PRESETS, load_trace

    path = spec.resolve_path(src.path)
    if not path.is_file():
        raise SpecError("source.path", f"trace file not found: {path}")
    if src.preset is not None and src.preset not in PRESETS:
        raise SpecError("source.preset", f"unknown preset {src.preset!r}; choose from {list(PRESETS)}")
    try:
        loaded = load_trace(
            path,
            preset=src.preset,
            columns=dict(src.columns) or None,
            time_unit=src.time_unit,
            client_column=src.client_column,
        )
    except DataFormatError:
        raise
    except ValueError as exc:  # arguments the file contradicts (e.g. a column mapped twice with the preset's)
        raise SpecError("source.columns", str(exc)) from None
    trace = loaded.trace
    if "failed" in trace.columns:
        trace = trace.filter(~pl.col("failed").fill_null(False))
    return pool_from_trace(trace, name=f"trace/{path.name}", per_client=src.per_client, source=str(path))


# --------------------------------------------------------------------------------------------
# Rate functions (aggregate target over span time t, 0 <= t <= duration)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    """A piecewise-linear rate function: on ``[t0[j], t1[j]]`` it goes linearly from r0 to r1."""

    t0: np.ndarray
    t1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray

    @property
    def slope(self) -> np.ndarray:
        width = self.t1 - self.t0
        return np.divide(self.r1 - self.r0, width, out=np.zeros_like(width), where=width > 0)

    @property
    def lam0(self) -> np.ndarray:
        """Cumulative integral at each segment start."""
        areas = (self.r0 + self.r1) * 0.5 * (self.t1 - self.t0)
        return np.concatenate([[0.0], np.cumsum(areas)[:-1]])

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """The integral of the rate from 0 to ``t``."""
        t = np.asarray(t, dtype=np.float64)
        j = np.clip(np.searchsorted(self.t0, t, side="right") - 1, 0, len(self.t0) - 1)
        tau = np.clip(t - self.t0[j], 0.0, self.t1[j] - self.t0[j])
        return self.lam0[j] + self.r0[j] * tau + 0.5 * self.slope[j] * tau * tau

    def rate(self, t: np.ndarray) -> np.ndarray:
        """The rate at ``t`` (the value on the segment that starts at or before ``t``)."""
        t = np.asarray(t, dtype=np.float64)
        j = np.clip(np.searchsorted(self.t0, t, side="right") - 1, 0, len(self.t0) - 1)
        tau = np.clip(t - self.t0[j], 0.0, self.t1[j] - self.t0[j])
        return self.r0[j] + self.slope[j] * tau

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """The time at which the cumulative integral reaches ``x`` (first such time)."""
        lam0 = self.lam0
        lam1 = lam0 + (self.r0 + self.r1) * 0.5 * (self.t1 - self.t0)
        j = np.clip(np.searchsorted(lam1, x, side="right"), 0, len(lam0) - 1)
        delta = np.maximum(x - lam0[j], 0.0)
        r0, b = self.r0[j], self.slope[j]
        root = np.sqrt(np.maximum(r0 * r0 + 2.0 * b * delta, 0.0))
        denom = r0 + root
        tau = np.divide(2.0 * delta, denom, out=np.zeros_like(delta), where=denom > 0)
        return self.t0[j] + np.minimum(tau, self.t1[j] - self.t0[j])


def _segments(rate: RateSpec, duration: float) -> _Segments | None:
    """The aggregate rate function of a spec over ``[0, duration]``; None for observed-based kinds."""
    if isinstance(rate, ConstantRate):
        return _Segments(np.array([0.0]), np.array([duration]), np.array([float(rate.rps)]), np.array([float(rate.rps)]))
    if isinstance(rate, RampRate):
        return _Segments(
            np.array([0.0]), np.array([duration]), np.array([float(rate.start_rps)]), np.array([float(rate.end_rps)])
        )
    if isinstance(rate, PiecewiseRate):
        ts = np.array([p[0] for p in rate.points], dtype=np.float64)
        rs = np.array([p[1] for p in rate.points], dtype=np.float64)
        keep = ts < duration
        ts, rs = ts[keep], rs[keep]
        t1 = np.append(ts[1:], duration)
        if rate.interpolation == "linear":
            full_t = np.array([p[0] for p in rate.points], dtype=np.float64)
            full_r = np.array([p[1] for p in rate.points], dtype=np.float64)
            r1 = np.interp(t1, full_t, full_r)
        else:
            r1 = rs.copy()
        return _Segments(ts, t1, rs, r1)
    return None


def rate_curve(plan: ComposePlan, *, points: int = 1200) -> pl.DataFrame:
    """The plan's aggregate request rate over the span, as generation draws arrivals from it.

    Returns ``t_s`` (seconds from the span start), ``target_rps`` (the spec's rate function:
    the analytic function for ``constant``/``ramp``/``piecewise``, the per-window recorded
    rate × factor for ``observed``/``bounded``, which is constant inside a window) and
    ``composed_rps`` (the expected rate of the generated requests: inside each arrival
    window the rate function scaled by that window's composed / target ratio, so 0 where no
    composed client is active). ``t_s`` holds ``points`` evenly spaced times plus, at every
    window edge and breakpoint, the left limit and the value, so a step shows as a step.
    """
    duration = float(plan.span_duration_s)
    tg = plan.targets
    segs = _segments(plan.spec.rate, duration)
    t0 = tg["t0_s"].to_numpy().astype(np.float64)
    edges = np.concatenate([t0, t0 + tg["duration_s"].to_numpy()])
    if segs is not None:
        edges = np.concatenate([edges, segs.t0, segs.t1])
    edges = np.unique(np.clip(edges, 0.0, duration))
    inner = edges[(edges > 0) & (edges < duration)]
    left = np.nextafter(inner, -np.inf)
    t = np.unique(np.concatenate([np.linspace(0.0, duration, max(int(points), 2)), edges, left]))
    if not len(t0):
        zeros = np.zeros_like(t)
        return pl.DataFrame({"t_s": t, "target_rps": zeros, "composed_rps": zeros})
    j = np.clip(np.searchsorted(t0, t, side="right") - 1, 0, len(t0) - 1)
    win_target = tg["target_rps"].to_numpy()[j]
    win_composed = tg["composed_rps"].to_numpy()[j]
    if segs is None:
        target, composed = win_target, win_composed
    else:
        target = segs.rate(t)
        ratio = np.divide(win_composed, win_target, out=np.zeros_like(win_target), where=win_target > 0)
        composed = target * ratio
    return pl.DataFrame({"t_s": t, "target_rps": target, "composed_rps": composed})


# --------------------------------------------------------------------------------------------
# Plan: everything decided before drawing random numbers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ComposePlan:
    """A spec resolved against its source: the client-window targets and the length tables.

    ``client_windows`` has one row per composed (client, arrival window) with a positive
    target, in generation order (window, then client): ``client_id, start_s`` (source
    seconds), ``t0_s`` (seconds from the span start), ``duration_s`` (the part inside the
    span), ``source_rate_rps``, ``source_cv``, ``pattern``, ``shape``, ``target_rps``,
    ``expected_requests``, ``length_start_s`` (the length window) and ``length_source``
    (``"client"`` or ``"pooled"``).

    ``targets`` has one row per arrival window of the span: ``start_s``, ``t0_s``,
    ``duration_s``, ``target_rps`` (the aggregate rate function's mean over the window) and
    ``composed_rps`` (the sum of the client targets; below ``target_rps`` only where no
    composed client was active).

    ``weights`` has one row per composed client: ``client_id``, ``observed_share`` (its
    share of the span's recorded requests among the composed clients), ``weight_share``
    (the share it is composed to carry: its normalized explicit weight, or with observed
    weights its expected share under the rate function) and ``expected_requests``.

    ``request_fields`` are the length fields drawn once per request, ``item_modalities`` the
    modalities whose tokens are drawn per item (``image`` for mm-image), and
    ``pooled_lengths`` (``field, value, prob``) the pooled distribution, empty when no
    client-window uses it.

    ``clients`` are the composed clients. ``exclusions`` says why every other client of the
    source's span is not composed: one key per :data:`EXCLUSION_REASONS` entry (always all
    four, in that order), each a tuple of client ids in numeric order; a client is listed
    under the first reason that applies, so ``clients`` and the four tuples partition the
    span's clients. ``excluded_clients`` are the clients the ``clients`` selection chose but
    that are not composed (``weight_zero``, ``idle`` and ``no_lengths`` together).
    """

    spec: WorkloadSpec
    pool: ClientPool
    span_start_s: float
    span_duration_s: float
    clients: tuple[str, ...]
    excluded_clients: tuple[str, ...]
    warnings: tuple[str, ...]
    client_windows: pl.DataFrame
    targets: pl.DataFrame
    weights: pl.DataFrame
    request_fields: tuple[str, ...]
    item_modalities: tuple[str, ...]
    pooled_lengths: pl.DataFrame
    _arrays: dict
    exclusions: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({r: () for r in EXCLUSION_REASONS})
    )

    @property
    def expected_requests(self) -> float:
        """Expected number of requests (the integral of the composed targets)."""
        return float(self.client_windows["expected_requests"].sum())

    @property
    def target_requests(self) -> float:
        """The integral of the aggregate rate function over the span."""
        return float((self.targets["target_rps"] * self.targets["duration_s"]).sum())

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The RequestTrace columns the workload will have, in schema order."""
        cols = {"timestamp_s", "client_id", "input_tokens", "output_tokens"}
        fields = set(self.request_fields)
        if "text_tokens" in fields:
            cols.add("text_tokens")
        for m in self.item_modalities:
            cols |= {f"{m}_tokens", f"{m}_count"}
        for f in fields:
            if f in SCHEMA and f != "reason_ratio":
                cols.add(f)
        if "reason_ratio" in fields:
            cols |= {"reason_ratio", "reasoning_tokens", "answer_tokens"}
        if self.spec.prefix is not None:
            cols |= set(PREFIX_COLUMNS)
        return tuple(c for c in SCHEMA if c in cols)

    def compose(self, *, max_requests: int | None = None) -> Workload:
        """Generate the whole workload in memory.

        Refuses (:class:`~servegen_core.errors.LimitError`) when :attr:`expected_requests` is
        above ``max_requests`` (default: the in-memory limit of :mod:`servegen_core.limits`).
        """
        check_workload_size(self, max_requests=max_requests, streamed=False)
        n_win = len(self._arrays["win_index"])
        if self.spec.prefix is not None:  # prefix stage: sessions and shared prompts
            frames = list(sessions.session_chunks(self, [(0, n_win)], _generate))
            cols = self.output_columns
            trace = frames[0] if frames else pl.DataFrame(schema={c: SCHEMA[c] for c in cols})
        else:
            trace = _generate(self, 0, n_win)
        return Workload(trace=trace, spec=self.spec, warnings=self.warnings, plan=self)

    def iter_chunks(
        self, chunk_s: float = 600.0, *, max_requests: int | None = None, chunk_requests: int = UNIT_REQUESTS
    ) -> Iterator[pl.DataFrame]:
        """Yield the workload in time order, in chunks of at most ``chunk_s`` seconds of span
        time and (about) ``chunk_requests`` requests.

        Generation runs in units: one per arrival window, or, for a window whose clients
        expect more than :data:`UNIT_REQUESTS` requests, one per equal time piece of it (the
        plan fixes the units, so the rows never depend on the chunking). A chunk holds the
        units whose start falls in ``[i*chunk_s, (i+1)*chunk_s)``, cut further so that its
        expected requests stay within ``chunk_requests`` (a chunk holds at least one unit).
        Empty chunks are skipped. Memory is bounded by the largest chunk. Refuses
        (:class:`~servegen_core.errors.LimitError`, on the first ``next``) when
        :attr:`expected_requests` is above ``max_requests`` (default: the streamed limit).
        """
        check_workload_size(self, max_requests=max_requests, streamed=True)
        if not (isinstance(chunk_s, (int, float)) and math.isfinite(chunk_s) and chunk_s > 0):
            msg = f"chunk_s must be a positive number of seconds, got {chunk_s!r}"
            raise ValueError(msg)
        if isinstance(chunk_requests, bool) or not isinstance(chunk_requests, int) or chunk_requests < 1:
            msg = f"chunk_requests must be a positive integer, got {chunk_requests!r}"
            raise ValueError(msg)
        t0 = self._arrays["win_t0"]
        if len(t0) == 0:
            return
        bounds = _chunk_bounds(t0, self._arrays["win_expected"], chunk_s, chunk_requests)
        if self.spec.prefix is not None:  # prefix stage: sessions and shared prompts
            yield from sessions.session_chunks(self, bounds, _generate)
            return
        for k0, k1 in bounds:
            frame = _generate(self, k0, k1)
            if frame.height:
                yield frame


def _chunk_bounds(t0: np.ndarray, expected: np.ndarray, chunk_s: float, max_requests: int) -> list[tuple[int, int]]:
    """Consecutive unit ranges: same ``chunk_s`` bucket, expected requests within ``max_requests``."""
    bucket = np.floor(t0 / chunk_s).astype(np.int64)
    out: list[tuple[int, int]] = []
    cuts = np.flatnonzero(np.diff(bucket)) + 1
    bounds = np.concatenate([[0], cuts, [len(t0)]])
    for b0, b1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        cum = np.cumsum(expected[b0:b1])
        k, done = 0, 0.0
        while k < b1 - b0:
            # the longest run from k whose expected requests stay within the budget (>= 1 unit)
            j = max(k + 1, int(np.searchsorted(cum, done + max_requests, side="right")))
            out.append((b0 + k, b0 + j))
            done = float(cum[j - 1])
            k = j
    return out


@dataclass(frozen=True, eq=False)
class Workload:
    """A composed workload: the RequestTrace, the spec it came from, warnings and the plan.

    ``trace`` is a RequestTrace sorted by ``timestamp_s``. ``warnings`` name clients or
    windows that could not be composed as asked (excluded for missing lengths, no active
    client in a window, ...). ``plan`` holds the per-client-window targets that
    :func:`servegen_core.generate.validate.validate` compares the trace against.
    """

    trace: pl.DataFrame
    spec: WorkloadSpec
    warnings: tuple[str, ...]
    plan: ComposePlan

    @property
    def clients(self) -> tuple[str, ...]:
        return self.plan.clients

    @property
    def excluded_clients(self) -> tuple[str, ...]:
        return self.plan.excluded_clients

    @property
    def exclusions(self) -> Mapping[str, tuple[str, ...]]:
        """Why each client of the span is not composed (see :attr:`ComposePlan.exclusions`)."""
        return self.plan.exclusions

    @property
    def pool(self) -> ClientPool:
        return self.plan.pool


def plan_workload(
    spec: WorkloadSpec, *, pool: ClientPool | None = None, max_requests: int | None = None
) -> ComposePlan:
    """Resolve ``spec`` against its source (loaded with :func:`load_source` unless ``pool``
    is given) without drawing random numbers.

    The plan's :attr:`~ComposePlan.expected_requests` is checked against ``max_requests``
    (default: the streamed limit of :mod:`servegen_core.limits`); above it a
    :class:`~servegen_core.errors.LimitError` gives the number.

    Raises :class:`SpecError` for anything that needs the data to be judged: a span outside
    the data (``span.start_s``/``span.duration_s``), unknown client ids (``clients.ids``,
    ``weights.values.<id>``), unknown summary columns (``clients.ranges.<name>``,
    ``clients.by``), weights that sum to 0 over the composed clients, or nothing to compose.
    """
    if not isinstance(spec, WorkloadSpec):
        msg = f"expected a WorkloadSpec, got {type(spec).__name__}"
        raise TypeError(msg)
    if pool is None:
        pool = load_source(spec)
    warnings: list[str] = list(pool.warnings)  # what fitting a trace source could not recover
    W = int(pool.window_s)

    # -- span ------------------------------------------------------------------------------
    if pool.windows.height == 0:
        raise SpecError("source", f"the source {pool.name} has no arrival windows")
    start = float(spec.span.start_s)
    data_start, data_end = pool.start_s, pool.end_s
    if not (data_start <= start < data_end):
        raise SpecError("span.start_s", f"{start:g} s is outside the data of {pool.name}, which covers [{data_start}, {data_end}) s")
    duration = float(spec.span.duration_s) if spec.span.duration_s is not None else float(data_end - start)
    end = start + duration
    if end > data_end + 1e-9:
        raise SpecError(
            "span.duration_s",
            f"the span ends at {end:g} s, after the end of the data of {pool.name} ({data_end} s); "
            f"the longest duration from {start:g} s is {data_end - start:g} s",
        )
    aligned = start - ((start - data_start) % W)
    sp = _span(pool, aligned, end)
    span_clients = sp.client_ids

    # -- clients ---------------------------------------------------------------------------
    selected = _select_clients(spec.clients, pool, sp)
    chosen_ids = list(selected)
    if spec.weights.mode == "explicit":
        known = set(pool.client_ids)
        chosen = set(selected)
        for cid, _w in spec.weights.values:
            if cid not in known:
                raise SpecError(f"weights.values.{cid}", f"unknown client id {cid!r} in {pool.name}")
            if cid not in chosen:
                raise SpecError(f"weights.values.{cid}", f"client {cid!r} is not among the selected clients")
        wmap = spec.weights.as_dict()
        selected = [c for c in selected if wmap.get(c, 0.0) > 0]
    if len(selected) < len(sp.client_ids):
        sp = sp.select_clients(selected)

    # -- client windows --------------------------------------------------------------------
    lw_origin = int(pool.length_windows["start_s"].min()) if pool.length_windows.height else 0
    LW = int(pool.length_window_s)
    order = pl.DataFrame(
        {"client_id": selected, "client_rank": list(range(len(selected)))},
        schema={"client_id": pl.String(), "client_rank": pl.Int64()},
    )
    cw = (
        sp.windows.filter(pl.col("rate_rps") > 0)
        .with_columns(
            pl.max_horizontal(pl.col("start_s").cast(pl.Float64), pl.lit(start)).alias("_a"),
            pl.min_horizontal((pl.col("start_s") + pl.col("duration_s")).cast(pl.Float64), pl.lit(end)).alias("_b"),
        )
        .with_columns((pl.col("_b") - pl.col("_a")).alias("span_duration_s"))
        .filter(pl.col("span_duration_s") > 0)
        .with_columns(
            ((pl.col("start_s") - data_start) // W).alias("window_index"),
            (pl.col("_a") - start).alias("t0_s"),
            (((pl.col("start_s") - lw_origin) // LW) * LW + lw_origin).alias("length_start_s"),
            (pl.col("rate_rps") * pl.col("span_duration_s")).alias("source_requests"),
        )
        .join(order, on="client_id", how="inner")
    )
    active_ids = set(cw["client_id"].unique().to_list())  # recorded requests in the span
    fields = _pool_fields(pool, sp)
    if not fields:
        raise SpecError("source", f"{pool.name} has no length distributions")
    complete = (
        sp.distributions.filter(pl.col("field").is_in(fields))
        .group_by("client_id", "start_s")
        .agg(pl.col("field").n_unique().alias("_nf"))
        .filter(pl.col("_nf") == len(fields))
        .select("client_id", pl.col("start_s").alias("length_start_s"), pl.lit(True).alias("has_lengths"))
    )
    cw = cw.join(complete, on=["client_id", "length_start_s"], how="left").with_columns(pl.col("has_lengths").fill_null(False))

    missing = cw.filter(~pl.col("has_lengths"))
    if missing.height:
        by_client = missing.group_by("client_id").agg(pl.col("source_requests").sum().alias("req"), pl.len().alias("nw"))
        total_windows = cw.group_by("client_id").agg(pl.len().alias("all_nw"))
        by_client = by_client.join(total_windows, on="client_id").join(order, on="client_id").sort("client_rank")
        whole = by_client.filter(pl.col("nw") == pl.col("all_nw"))["client_id"].to_list()
        partial = by_client.filter(pl.col("nw") < pl.col("all_nw"))["client_id"].to_list()
        share = float(missing["source_requests"].sum()) / max(float(cw["source_requests"].sum()), 1e-300)
        if spec.missing_lengths == "exclude":
            if whole:
                warnings.append(
                    f"{len(whole)} client(s) without length data excluded: {_ids_text(whole)} "
                    f"({share:.1%} of the selected clients' recorded requests in the span)"
                )
            if partial:
                warnings.append(
                    f"{len(partial)} client(s) lack length data in some windows; those windows are excluded: {_ids_text(partial)}"
                )
            cw = cw.filter(pl.col("has_lengths"))
        elif spec.missing_lengths == "borrow":
            warnings.append(
                f"{by_client.height} client(s) without length data in some or all windows borrow lengths "
                "(the request-weighted mixture of the other composed clients' tables in the same length window): "
                f"{_ids_text(by_client['client_id'].to_list())} ({share:.1%} of the recorded requests in the span)"
            )
        else:
            warnings.append(
                f"{by_client.height} client(s) without length data in some or all windows get the pooled lengths: "
                f"{_ids_text(by_client['client_id'].to_list())} ({share:.1%} of the recorded requests in the span)"
            )

    # -- weights ---------------------------------------------------------------------------
    per_client = cw.group_by("client_id").agg(pl.col("source_requests").sum().alias("n_obs"))
    per_client = order.join(per_client, on="client_id", how="left").with_columns(pl.col("n_obs").fill_null(0.0))
    if spec.weights.mode == "explicit":
        wmap = spec.weights.as_dict()
        silent = per_client.filter(pl.col("n_obs") <= 0)["client_id"].to_list()
        silent = [c for c in silent if wmap.get(c, 0) > 0]
        if silent:
            warnings.append(
                f"{len(silent)} weighted client(s) send no requests in the span (or only without length data) "
                f"and cannot carry load: {_ids_text(silent)}"
            )
        per_client = per_client.with_columns(
            pl.col("client_id").replace_strict(wmap, default=0.0, return_dtype=pl.Float64).alias("w")
        ).with_columns(pl.when(pl.col("n_obs") > 0).then(pl.col("w")).otherwise(0.0).alias("w"))
        if not float(per_client["w"].sum()) > 0:
            raise SpecError("weights.values", "the weights of the clients that send requests in the span sum to 0")
    else:
        per_client = per_client.with_columns(pl.col("n_obs").alias("w"))
    per_client = per_client.filter((pl.col("w") > 0) & (pl.col("n_obs") > 0))
    if per_client.height == 0:
        raise SpecError("clients", f"the selected clients send no requests (with length data) in the span of {pool.name}")
    per_client = per_client.with_columns(
        (pl.col("n_obs") / pl.col("n_obs").sum()).alias("observed_share"),
        (pl.col("w") / pl.col("w").sum()).alias("weight_share"),
    ).with_columns((pl.col("weight_share") / pl.col("observed_share")).alias("adjust"))
    cw = cw.join(per_client.select("client_id", "adjust"), on="client_id", how="inner").with_columns(
        (pl.col("rate_rps") * pl.col("adjust")).alias("_base")
    )
    composed = [c for c in selected if c in set(per_client["client_id"].to_list())]
    chosen, weighted, done = set(chosen_ids), set(selected), set(composed)
    reasons = {
        "not_selected": [c for c in span_clients if c not in chosen],
        "weight_zero": [c for c in chosen_ids if c not in weighted],
        "idle": [c for c in selected if c not in done and c not in active_ids],
        "no_lengths": [c for c in selected if c not in done and c in active_ids],
    }
    exclusions = MappingProxyType({r: tuple(sorted(reasons[r], key=client_sort_key)) for r in EXCLUSION_REASONS})
    excluded = tuple(sorted(chain(reasons["weight_zero"], reasons["idle"], reasons["no_lengths"]), key=client_sort_key))

    # -- window grid and targets -----------------------------------------------------------
    first = int((aligned - data_start) // W)
    n_grid = int(math.ceil((end - aligned) / W - 1e-12))
    grid_start = aligned + W * np.arange(n_grid, dtype=np.float64)
    ga = np.maximum(grid_start, start) - start
    gb = np.minimum(grid_start + W, end) - start
    grid = pl.DataFrame(
        {
            "window_index": np.arange(first, first + n_grid, dtype=np.int64),
            "start_s": grid_start.astype(np.int64) if float(aligned).is_integer() else grid_start,
            "t0_s": ga,
            "duration_s": gb - ga,
        }
    ).filter(pl.col("duration_s") > 0)
    obs = cw.group_by("window_index").agg(pl.col("_base").sum().alias("_obs"))
    grid = grid.join(obs, on="window_index", how="left").with_columns(pl.col("_obs").fill_null(0.0))
    segs = _segments(spec.rate, duration)
    rate = spec.rate
    if isinstance(rate, (ObservedRate, BoundedRate)):
        if isinstance(rate, ObservedRate):
            factor = float(rate.factor)
        else:
            peak = float(grid["_obs"].max())
            factor = min(1.0, float(rate.peak_rps) / peak) if peak > 0 else 1.0
        grid = grid.with_columns((pl.col("_obs") * factor).alias("target_rps"))
        cw = cw.with_columns((pl.col("_base") * factor).alias("target_rps"))
    else:
        ta = grid["t0_s"].to_numpy()
        tb = ta + grid["duration_s"].to_numpy()
        mean_rate = (segs.cumulative(tb) - segs.cumulative(ta)) / (tb - ta)
        grid = grid.with_columns(pl.Series("target_rps", mean_rate, dtype=pl.Float64))
        if spec.weights.mode == "explicit" and per_client.height > 1:
            cw, grid, gap = _balance_weights(cw, grid, per_client)
            if gap > 1e-3:
                warnings.append(
                    "the explicit weights can be met only approximately with this rate function and span "
                    f"(largest relative gap of a client's requests from its weight: {gap:.1%})"
                )
        cw = cw.join(grid.select("window_index", "target_rps", "_obs"), on="window_index", how="left").with_columns(
            (pl.col("target_rps") * pl.col("_base") / pl.col("_obs")).alias("target_rps")
        ).drop("_obs")
        idle = grid.filter((pl.col("_obs") <= 0) & (pl.col("target_rps") > 0))
        if idle.height:
            lost = float((idle["target_rps"] * idle["duration_s"]).sum())
            total = float((grid["target_rps"] * grid["duration_s"]).sum())
            warnings.append(
                f"{idle.height} window(s) of the span have no active composed client, so their target of "
                f"{lost:,.0f} requests ({lost / total:.1%} of the rate function's integral) cannot be placed"
            )
    comp = cw.group_by("window_index").agg(pl.col("target_rps").sum().alias("composed_rps"))
    targets = (
        grid.join(comp, on="window_index", how="left")
        .with_columns(pl.col("composed_rps").fill_null(0.0))
        .select("window_index", "start_s", "t0_s", "duration_s", "target_rps", "composed_rps")
        .sort("window_index")
    )

    cw = (
        cw.filter(pl.col("target_rps") > 0)
        .with_columns((pl.col("target_rps") * pl.col("span_duration_s")).alias("expected_requests"))
        .sort("window_index", "client_rank")
    )
    use_pooled = spec.lengths == "pooled"
    # a length window can lend lengths when a composed client has its own tables there
    lenders = cw.filter(pl.col("has_lengths")).select("length_start_s").unique()
    lenders = lenders.with_columns(pl.lit(True).alias("_lender"))
    cw = (
        cw.join(lenders, on="length_start_s", how="left")
        .with_columns(
            pl.when(pl.lit(use_pooled))
            .then(pl.lit("pooled"))
            .when(pl.col("has_lengths"))
            .then(pl.lit("client"))
            .when(pl.lit(spec.missing_lengths == "borrow") & pl.col("_lender").fill_null(False))
            .then(pl.lit("borrowed"))
            .otherwise(pl.lit("pooled"))
            .alias("length_source")
        )
        .drop("_lender")
        .sort("window_index", "client_rank")
    )
    cw = _arrival_model(cw, spec, sp)

    # -- length tables ---------------------------------------------------------------------
    item_modalities = tuple(m for m in ITEM_MODALITIES if f"{m}_count" in fields and f"{m}_tokens" in fields)
    item_fields = tuple(f"{m}_tokens" for m in item_modalities)
    request_fields = tuple(f for f in fields if f not in item_fields)
    all_fields = request_fields + item_fields
    tables, pooled = _length_tables(sp, cw, all_fields, pool)

    # -- arrays for generation -------------------------------------------------------------
    arrays = _arrays(cw, tables["keys"], all_fields)
    arrays.update(
        values=tables["values"],
        cum=tables["cum"],
        ends=tables["ends"],
        segs=segs if isinstance(rate, (PiecewiseRate, RampRate)) else None,
        seed=int(spec.seed),
        empirical=_gap_tables(cw, sp),
        rho=float(spec.length_correlation),
        request_fields=request_fields,
        item_modalities=item_modalities,
        client_names=np.array(selected, dtype=object),
    )
    # window-level arrays (only windows that hold at least one client-window)
    win = cw.group_by("window_index", maintain_order=True).agg(
        pl.col("t0_s").first(), pl.col("span_duration_s").first(), pl.len().alias("rows")
    )
    _units(arrays, win, arrays["segs"])

    weights = (
        per_client.join(cw.group_by("client_id").agg(pl.col("expected_requests").sum()), on="client_id", how="left")
        .with_columns(pl.col("expected_requests").fill_null(0.0))
        .join(order, on="client_id", how="inner")
        .sort("client_rank")
    )
    if spec.weights.mode == "observed":
        # observed weights: each window keeps its recorded client mix, so a client's share of the
        # workload is what the rate function makes of its per-window shares
        weights = weights.with_columns((pl.col("expected_requests") / pl.col("expected_requests").sum()).alias("weight_share"))
    weights = weights.select("client_id", "observed_share", "weight_share", "expected_requests")
    client_windows = cw.select(
        "client_id",
        "start_s",
        "t0_s",
        pl.col("span_duration_s").alias("duration_s"),
        pl.col("rate_rps").alias("source_rate_rps"),
        pl.col("cv").alias("source_cv"),
        "pattern",
        "shape",
        "model_pattern",
        "model_shape",
        "model_cv",
        "target_rps",
        "expected_requests",
        "length_start_s",
        "length_source",
    )
    plan = ComposePlan(
        spec=spec,
        pool=sp,
        span_start_s=start,
        span_duration_s=duration,
        clients=tuple(composed),
        excluded_clients=excluded,
        warnings=tuple(warnings),
        client_windows=client_windows,
        targets=targets,
        weights=weights,
        request_fields=request_fields,
        item_modalities=item_modalities,
        pooled_lengths=pooled,
        _arrays=arrays,
        exclusions=exclusions,
    )
    plan = sessions.prepare(plan)
    check_workload_size(plan, max_requests=max_requests, streamed=True)
    return plan


def _arrival_model(cw: pl.DataFrame, spec: WorkloadSpec, sp: ClientPool) -> pl.DataFrame:
    """Add the arrival model of every client-window: ``model_pattern`` (``Gamma``,
    ``Weibull``, ``Exponential`` or ``empirical``), ``model_shape`` (the shape of unit-mean
    gaps; NaN for ``empirical``), ``model_cv`` (the CV the model targets) and the internal
    ``_family`` code and ``_gap_table`` (index into the empirical tables, -1 if none).

    ``arrivals="poisson"``: exponential everywhere. ``fitted`` with ``arrival_shape=
    "recorded_cv"``: the family's shape solved from the recorded ``cv`` (Gamma ``1/cv^2``,
    Weibull by :func:`~servegen_core.renewal.weibull_shape_for_sample_cv` at the source
    window's request count); with ``"fitted_shape"``
    the recorded ``shape``. A window whose chosen quantity is missing (not positive) falls
    back to the other, then to exponential. ``empirical``: the window's observed gaps
    (``ClientPool.gaps``) where it has at least two, else as ``fitted``.
    """
    pattern = cw["pattern"].to_numpy()
    cv = np.nan_to_num(cw["cv"].to_numpy().astype(np.float64), nan=0.0)
    fitted = np.nan_to_num(cw["shape"].to_numpy().astype(np.float64), nan=0.0)
    is_w = pattern == "Weibull"
    fam = np.where(is_w, WEIBULL, GAMMA).astype(np.int8)
    # the recorded cv is the CV of the source window's gaps: a Weibull shape is solved from it at
    # the source's sample size (servegen_core.renewal.weibull_shape_for_sample_cv)
    n_src = (cw["rate_rps"] * cw["duration_s"]).to_numpy().astype(np.float64)
    safe_cv = np.where(cv > 0, cv, 1.0)
    from_cv = np.where(is_w, weibull_shape_for_sample_cv(safe_cv, n_src), gamma_shape_for_cv(safe_cv))
    if spec.arrival_shape == "recorded_cv":
        k = np.where(cv > 0, from_cv, fitted)
    else:
        k = np.where(fitted > 0, fitted, np.where(cv > 0, from_cv, 0.0))
    exp_ = ~(k > 0) | (spec.arrivals == "poisson") | ((pattern == "Exponential") & (spec.arrival_shape == "fitted_shape"))
    fam = np.where(exp_, EXPONENTIAL, fam).astype(np.int8)
    k = np.where(exp_, 1.0, k)
    lo = np.where(fam == WEIBULL, MIN_WEIBULL_SHAPE, MIN_GAMMA_SHAPE)
    k = np.clip(k, lo, MAX_SHAPE)
    model_cv = family_cv(fam, k)
    names = np.array(["Gamma", "Weibull", "Exponential"], dtype=object)[fam]
    table = np.full(cw.height, -1, dtype=np.int64)
    gaps = getattr(sp, "gaps", None)
    if spec.arrivals == "empirical" and gaps is not None and gaps.height:
        per = (
            gaps.group_by("client_id", "start_s")
            .agg(pl.len().alias("_ng"), pl.col("gap_s").mean().alias("_mg"), pl.col("gap_s").std().alias("_sg"))
            .filter((pl.col("_ng") >= 2) & (pl.col("_mg") > 0))
        )
        j = (
            cw.select("client_id", pl.col("start_s").cast(pl.Float64)).with_row_index("_r")
            .join(per.with_columns(pl.col("start_s").cast(pl.Float64)), on=["client_id", "start_s"], how="left")
            .sort("_r")
        )
        has = j["_ng"].is_not_null().to_numpy()
        table = np.where(has, np.cumsum(has) - 1, -1).astype(np.int64)
        names = np.where(has, "empirical", names)
        k = np.where(has, np.nan, k)
        model_cv = np.where(has, (j["_sg"] / j["_mg"]).fill_null(0.0).to_numpy(), model_cv)
    return cw.with_columns(
        pl.Series("model_pattern", names.astype(str), dtype=pl.String),
        pl.Series("model_shape", k, dtype=pl.Float64),
        pl.Series("model_cv", model_cv, dtype=pl.Float64),
        pl.Series("_family", fam, dtype=pl.Int8),
        pl.Series("_gap_table", table, dtype=pl.Int64),
    )


def _gap_tables(cw: pl.DataFrame, sp: ClientPool) -> dict | None:
    """The empirical gap tables of the client-windows with ``_gap_table >= 0``, in table order."""
    gaps = getattr(sp, "gaps", None)
    used = cw.filter(pl.col("_gap_table") >= 0).select("client_id", pl.col("start_s").cast(pl.Float64), "_gap_table")
    if gaps is None or used.height == 0:
        return None
    g = gaps.with_columns(pl.col("start_s").cast(pl.Float64)).with_row_index("_i")
    joined = g.join(used, on=["client_id", "start_s"], how="inner").sort("_gap_table", "_i")
    tab = joined["_gap_table"].to_numpy()
    vals = joined["gap_s"].to_numpy().astype(np.float64)
    bounds = np.searchsorted(tab, np.arange(used.height + 1))
    return empirical_tables([vals[bounds[i] : bounds[i + 1]] for i in range(used.height)])


def _span(pool: ClientPool, start: float, end: float) -> ClientPool:
    """``pool.span(start, end)``, restricting the distributions by a range filter on their
    window start instead of a join (the same rows: distributions exist only for length
    windows, and a length window overlaps the span exactly when its start is in range)."""
    lws = pool.length_window_s
    if start <= pool.start_s and end >= pool.end_s:
        return pool  # the whole pool: no copy
    w = pool.windows.filter((pl.col("start_s") >= start) & (pl.col("start_s") < end))
    overlap = (pl.col("start_s") < end) & (pl.col("start_s") + lws > start)
    lw = pool.length_windows.filter((pl.col("start_s") < end) & (pl.col("start_s") + pl.col("duration_s") > start))
    d = pool.distributions.filter(overlap)
    gaps = getattr(pool, "gaps", None)
    if gaps is not None:
        gaps = gaps.filter((pl.col("start_s") >= start) & (pl.col("start_s") < end))
        return dataclasses.replace(pool, windows=w, distributions=d, length_windows=lw, gaps=gaps)
    return dataclasses.replace(pool, windows=w, distributions=d, length_windows=lw)


def _balance_weights(cw: pl.DataFrame, grid: pl.DataFrame, per_client: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """Client multipliers for explicit weights under a given aggregate rate function.

    Each window's target requests are split among its clients in proportion to
    ``multiplier x recorded rate``; the multipliers are fitted by iterative proportional
    scaling (Sinkhorn) so that every client's total over the span is its weight share of the
    placeable total. Returns ``cw`` with the new ``_base``, ``grid`` with the new ``_obs``,
    and the largest relative gap left (0 when the weights are met).
    """
    k_of = {w: i for i, w in enumerate(grid["window_index"].to_list())}
    win = cw["window_index"].replace_strict(k_of, return_dtype=pl.Int64).to_numpy()
    ids = per_client["client_id"].to_list()
    c_of = {c: i for i, c in enumerate(ids)}
    cli = cw["client_id"].replace_strict(c_of, return_dtype=pl.Int64).to_numpy()
    rate = cw["rate_rps"].to_numpy()
    cap = (grid["target_rps"] * grid["duration_s"]).to_numpy()
    active = np.bincount(win, rate, minlength=len(cap)) > 0
    goal = per_client["weight_share"].to_numpy() * cap[active].sum()
    m = per_client["adjust"].to_numpy().astype(np.float64)
    gap = math.inf
    for _ in range(2000):
        base = m[cli] * rate
        obs = np.bincount(win, base, minlength=len(cap))
        got = np.bincount(cli, cap[win] * base / obs[win], minlength=len(goal))
        ratio = np.divide(goal, got, out=np.ones_like(goal), where=got > 0)
        gap = float(np.max(np.abs(ratio - 1.0)))
        if gap < 1e-9:
            break
        m = m * ratio
        m = m / m.max()
    base = m[cli] * rate
    cw = cw.with_columns(pl.Series("_base", base, dtype=pl.Float64))
    obs = cw.group_by("window_index").agg(pl.col("_base").sum().alias("_obs2"))
    grid = grid.join(obs, on="window_index", how="left").with_columns(pl.col("_obs2").fill_null(0.0).alias("_obs")).drop("_obs2")
    return cw, grid, gap


def _ids_text(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _pool_fields(pool: ClientPool, sp: ClientPool) -> tuple[str, ...]:
    """Length fields of the source, in the data's order (from the span, else the whole pool)."""
    fields = sp.fields if sp.distributions.height else pool.fields
    return tuple(fields)


def _select_clients(sel: ClientSelection, pool: ClientPool, sp: ClientPool) -> list[str]:
    """Client ids chosen by ``sel``, in numeric order."""
    if sel.mode == "all":
        return list(sp.client_ids)
    if sel.mode == "ids":
        known = set(pool.client_ids)
        for i, c in enumerate(sel.ids):
            if c not in known:
                shown = ", ".join(pool.client_ids[:10])
                raise SpecError(f"clients.ids[{i}]", f"unknown client id {c!r} in {pool.name} (ids look like: {shown}, ...)")
        return sorted(sel.ids, key=client_sort_key)
    from servegen_core.characterize.summary import client_summary, filter_clients

    summary = client_summary(sp)
    frame = summary.frame if hasattr(summary, "frame") else summary
    if sel.by not in frame.columns:
        raise SpecError("clients.by", f"unknown summary column {sel.by!r}; columns: {frame.columns}")
    if sel.mode == "top_k":
        ids = filter_clients(summary, top_k=sel.k, by=sel.by)
    else:
        for name, _lo, _hi in sel.ranges:
            if name not in frame.columns:
                raise SpecError(f"clients.ranges.{name}", f"unknown summary column {name!r}; columns: {frame.columns}")
        ranges = {name: (lo, hi) for name, lo, hi in sel.ranges}
        ids = filter_clients(summary, ranges=ranges or None, top_k=sel.top_k, by=sel.by)
    ids = [str(c) for c in ids]
    if not ids:
        raise SpecError("clients", "the client filter selects no client")
    return sorted(ids, key=client_sort_key)


def _length_tables(sp: ClientPool, cw: pl.DataFrame, fields: tuple[str, ...], pool: ClientPool) -> tuple[dict, pl.DataFrame]:
    """Concatenated inverse-CDF tables for every (client, length window, field) in use plus
    one pooled table per field.

    Returns ``keys`` (client_id, length_start_s, field, table), ``values`` (bin values),
    ``cum`` (cumulative probability within each table plus the table number, so one
    ``searchsorted`` serves all tables) and ``ends`` (one past each table's last bin), and
    the pooled distribution frame (field, value, prob).
    """
    dist = sp.distributions.filter(pl.col("field").is_in(fields))
    own = cw.filter(pl.col("length_source") == "client").select("client_id", "length_start_s").unique()
    needs_pooled = cw.filter(pl.col("length_source") == "pooled").height > 0
    # pooled: mixture of the composed clients' own tables weighted by their target requests
    mix = (
        cw.filter(pl.col("has_lengths") & pl.lit(needs_pooled))
        .group_by("client_id", "length_start_s")
        .agg(pl.col("expected_requests").sum().alias("_w"))
    )
    if needs_pooled and not (mix.height and float(mix["_w"].sum()) > 0):
        mix = (
            sp.windows.filter(pl.col("rate_rps") > 0)
            .with_columns((pl.col("start_s") // sp.length_window_s * sp.length_window_s).alias("length_start_s"))
            .group_by("client_id", "length_start_s")
            .agg((pl.col("rate_rps") * pl.col("duration_s")).sum().alias("_w"))
            .join(dist.select("client_id", pl.col("start_s").alias("length_start_s")).unique(), on=["client_id", "length_start_s"])
        )
    pooled = (
        dist.join(mix, left_on=["client_id", "start_s"], right_on=["client_id", "length_start_s"], how="inner")
        .group_by("field", "value")
        .agg((pl.col("prob") * pl.col("_w")).sum().alias("prob"))
        .with_columns((pl.col("prob") / pl.col("prob").sum().over("field")).alias("prob"))
        .filter(pl.col("prob") > 0)
    )
    if needs_pooled and pooled.select(pl.col("field").n_unique()).item() < len(fields):
        raise SpecError("source", f"{pool.name} has no length distributions in the span to pool")
    fr = pl.DataFrame({"field": list(fields), "_frank": list(range(len(fields)))}, schema={"field": pl.String(), "_frank": pl.Int64()})
    pooled = pooled.join(fr, on="field").sort("_frank", "value").drop("_frank")

    keys = (
        own.join(fr, how="cross")
        .sort("length_start_s", "client_id", "_frank")
        .with_row_index("table")
        .with_columns(pl.col("table").cast(pl.Int64))
    )
    n_own = keys.height
    own_rows = (
        dist.join(keys, left_on=["client_id", "start_s", "field"], right_on=["client_id", "length_start_s", "field"], how="inner")
        .select("table", "value", "prob")
    )
    pooled_rows = pooled.join(fr, on="field").select((pl.col("_frank") + n_own).alias("table"), "value", "prob")
    # borrowed: per length window, the mixture of the composed clients' own tables there,
    # weighted by their expected requests in that length window
    borrow_lw = cw.filter(pl.col("length_source") == "borrowed").select("length_start_s").unique().sort("length_start_s")
    donors = (
        cw.filter(pl.col("has_lengths"))
        .join(borrow_lw, on="length_start_s", how="semi")
        .group_by("client_id", "length_start_s")
        .agg(pl.col("expected_requests").sum().alias("_w"))
    )
    bkeys = (
        borrow_lw.join(fr, how="cross")
        .sort("length_start_s", "_frank")
        .with_row_index("table", offset=n_own + len(fields))
        .with_columns(pl.col("table").cast(pl.Int64))
    )
    borrowed_rows = (
        dist.join(donors, left_on=["client_id", "start_s"], right_on=["client_id", "length_start_s"], how="inner")
        .group_by("start_s", "field", "value")
        .agg((pl.col("prob") * pl.col("_w")).sum().alias("prob"))
        .join(bkeys, left_on=["start_s", "field"], right_on=["length_start_s", "field"], how="inner")
        .with_columns((pl.col("prob") / pl.col("prob").sum().over("table")).alias("prob"))
        .filter(pl.col("prob") > 0)
        .select("table", "value", "prob")
    )
    rows = pl.concat([own_rows, pooled_rows, borrowed_rows]).sort("table", "value")
    rows = rows.with_columns(
        (pl.col("prob").cum_sum().over("table") / pl.col("prob").sum().over("table")).alias("_c"),
        (pl.int_range(pl.len()).over("table") == pl.len().over("table") - 1).alias("_last"),
    )
    table = rows["table"].to_numpy()
    cum = rows["_c"].to_numpy() + table
    last = rows["_last"].to_numpy()
    cum[last] = table[last] + 1.0
    n_tables = n_own + len(fields) + bkeys.height
    ends = np.searchsorted(table, np.arange(n_tables), side="right").astype(np.int64)
    pooled_keys = pl.DataFrame(
        {
            "client_id": [None] * len(fields),
            "length_start_s": [None] * len(fields),
            "field": list(fields),
            "table": list(range(n_own, n_own + len(fields))),
        },
        schema={"client_id": pl.String(), "length_start_s": pl.Int64(), "field": pl.String(), "table": pl.Int64()},
    )
    borrowed_keys = bkeys.select(pl.lit(None, dtype=pl.String).alias("client_id"), "length_start_s", "field", "table")
    all_keys = pl.concat(
        [keys.select("client_id", "length_start_s", "field", "table"), pooled_keys, borrowed_keys], how="vertical_relaxed"
    )
    return {"keys": all_keys, "values": rows["value"].to_numpy(), "cum": cum, "ends": ends}, pooled


def _arrays(cw: pl.DataFrame, keys: pl.DataFrame, fields: tuple[str, ...]) -> dict:
    """Row-level numpy arrays of the client-windows (generation order) and their table ids."""
    tids = np.empty((cw.height, len(fields)), dtype=np.int64)
    pooled = keys.filter(pl.col("client_id").is_null())
    own = keys.filter(pl.col("client_id").is_not_null())
    base = cw.select("client_id", "length_start_s", "length_source").with_row_index("_r")
    for j, f in enumerate(fields):
        pooled_tid = int(pooled.filter(pl.col("field") == f)["table"][0])
        joined = base.join(
            own.filter(pl.col("field") == f).select("client_id", "length_start_s", "table"),
            on=["client_id", "length_start_s"],
            how="left",
        ).sort("_r")
        src = joined["length_source"].to_numpy()
        tid = np.where(src == "client", joined["table"].fill_null(pooled_tid).to_numpy(), pooled_tid)
        if "borrowed" in set(src.tolist()):
            # borrowed tables are numbered after the client tables: key (None client, length window)
            bor = keys.filter(pl.col("client_id").is_null() & pl.col("length_start_s").is_not_null() & (pl.col("field") == f))
            bj = base.join(bor.select("length_start_s", "table"), on="length_start_s", how="left").sort("_r")
            tid = np.where(src == "borrowed", bj["table"].fill_null(pooled_tid).to_numpy(), tid)
        tids[:, j] = tid
    return {
        "row_client": cw["client_rank"].to_numpy().astype(np.int64),
        "row_t0": cw["t0_s"].to_numpy().astype(np.float64),
        "row_d": cw["span_duration_s"].to_numpy().astype(np.float64),
        "row_expected": cw["expected_requests"].to_numpy().astype(np.float64),
        "row_family": cw["_family"].to_numpy().astype(np.int8),
        "row_shape": cw["model_shape"].to_numpy().astype(np.float64),
        "row_table": cw["_gap_table"].to_numpy().astype(np.int64),
        "row_tables": tids,
    }


def _units(a: dict, win: pl.DataFrame, segs: _Segments | None) -> None:
    """Cut windows into generation units of at most :data:`UNIT_REQUESTS` expected requests.

    A window ``w`` with ``E`` expected requests becomes ``P = ceil(E / UNIT_REQUESTS)`` units
    of equal duration; every client-window row is repeated per unit with its share of the
    rate integral. Rows stay in unit order, then client order. Adds the unit arrays
    (``win_index``, ``win_piece``, ``win_t0``, ``win_d``, ``win_row_offsets``,
    ``win_expected``) to ``a`` and replaces the row arrays.
    """
    rows = win["rows"].to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    expected = np.add.reduceat(a["row_expected"], offsets[:-1]) if len(rows) else np.empty(0)
    pieces = np.maximum(1, np.ceil(expected / UNIT_REQUESTS)).astype(np.int64)
    w_t0 = win["t0_s"].to_numpy().astype(np.float64)
    w_d = win["span_duration_s"].to_numpy().astype(np.float64)
    if (pieces == 1).all():
        a["win_index"] = win["window_index"].to_numpy()
        a["win_piece"] = np.zeros(len(rows), dtype=np.int64)
        a["win_t0"], a["win_d"] = w_t0, w_d
        a["win_row_offsets"] = offsets
        a["win_expected"] = expected
        return
    # unit u = (window k, piece p); row of unit u = the window's rows, in order
    unit_win = np.repeat(np.arange(len(rows)), pieces)
    unit_piece = np.arange(int(pieces.sum())) - np.repeat(np.concatenate([[0], np.cumsum(pieces)[:-1]]), pieces)
    unit_P = pieces[unit_win]
    u_t0 = w_t0[unit_win] + w_d[unit_win] * unit_piece / unit_P
    u_t1 = np.where(unit_piece + 1 == unit_P, w_t0[unit_win] + w_d[unit_win], w_t0[unit_win] + w_d[unit_win] * (unit_piece + 1) / unit_P)
    u_d = u_t1 - u_t0
    if segs is not None:
        frac = (segs.cumulative(u_t1) - segs.cumulative(u_t0)) / np.maximum(
            segs.cumulative(w_t0 + w_d) - segs.cumulative(w_t0), 1e-300
        )[unit_win]
    else:
        frac = u_d / w_d[unit_win]
    unit_rows = rows[unit_win]
    row_idx = np.repeat(offsets[:-1][unit_win], unit_rows) + (
        np.arange(int(unit_rows.sum())) - np.repeat(np.concatenate([[0], np.cumsum(unit_rows)[:-1]]), unit_rows)
    )
    unit_of_row = np.repeat(np.arange(len(unit_win)), unit_rows)
    for key in ("row_client", "row_family", "row_shape", "row_table", "row_tables"):
        a[key] = a[key][row_idx]
    a["row_expected"] = a["row_expected"][row_idx] * frac[unit_of_row]
    a["row_t0"] = u_t0[unit_of_row]
    a["row_d"] = u_d[unit_of_row]
    a["win_index"] = win["window_index"].to_numpy()[unit_win]
    a["win_piece"] = unit_piece
    a["win_t0"], a["win_d"] = u_t0, u_d
    a["win_row_offsets"] = np.concatenate([[0], np.cumsum(unit_rows)]).astype(np.int64)
    a["win_expected"] = expected[unit_win] * frac


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _sample(arrays: dict, tids: np.ndarray, u: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
    """Inverse-CDF draws: table ``tids[i]`` at uniform ``u[i]`` (all tables at once).

    The answer is ``searchsorted(cum, tids + u, side="right")``. To avoid a full binary
    search per draw, each table in use gets a guide of ``K`` equal cells of ``[0, 1)`` (``K``
    a power of two, 2 to 4 cells per bin): a draw whose cell holds no bin boundary is
    answered by the guide alone; only the others are searched. ``K`` depends only on the
    table, so the result does not depend on which draws are sampled together. ``used``
    (sorted, unique) lists the tables that ``tids`` may hold, if known.
    """
    cum, ends = arrays["cum"], arrays["ends"]
    if len(tids) == 0:
        return arrays["values"][:0]
    if used is None:
        used = np.unique(tids)
    starts = np.concatenate([[0], ends[:-1]])[used]
    bins = ends[used] - starts
    k = np.left_shift(1, np.clip(np.ceil(np.log2(np.maximum(2 * bins, 16))), 4, 16).astype(np.int64))
    goff = np.concatenate([[0], np.cumsum(k + 1)])
    local = np.repeat(np.arange(len(used)), k + 1)
    within = np.arange(int(goff[-1])) - np.repeat(goff[:-1], k + 1)
    # the tables in use are searched as one contiguous block of ``cum`` (tables are numbered
    # length window first, so a chunk's tables are close together)
    lo, hi = int(starts[0]), int(ends[used[-1]])
    block = cum[lo:hi]
    guide = lo + np.searchsorted(block, used[local] + within / k[local], side="right")
    # per-table cell count and guide offset, indexed by table id (0 for tables not in use)
    k_of = np.zeros(len(ends), dtype=np.float64)
    k_of[used] = k
    off_of = np.zeros(len(ends), dtype=np.int64)
    off_of[used] = goff[:-1]
    cell = off_of[tids] + (u * k_of[tids]).astype(np.int64)
    idx = guide[cell]
    amb = np.flatnonzero(guide[1:][cell] != idx)
    if len(amb):
        t_amb = tids[amb]
        idx[amb] = np.minimum(lo + np.searchsorted(block, t_amb + u[amb], side="right"), ends[t_amb] - 1)
    return arrays["values"][idx]


def _generate(plan: ComposePlan, k0: int, k1: int) -> pl.DataFrame:
    """Rows of windows ``k0 <= k < k1`` (plan window order), sorted by timestamp."""
    a = plan._arrays
    cols = [c for c in plan.output_columns if c not in PREFIX_COLUMNS]
    r0, r1 = int(a["win_row_offsets"][k0]), int(a["win_row_offsets"][k1])
    if r1 <= r0:
        return pl.DataFrame(schema={c: SCHEMA[c] for c in cols})
    seed = a["seed"]
    win_idx = a["win_index"][k0:k1]
    win_piece = a["win_piece"][k0:k1]
    row_off = a["win_row_offsets"][k0 : k1 + 1] - r0
    gens = [np.random.default_rng([seed, int(w), 0, int(p)]) for w, p in zip(win_idx, win_piece)]

    # 1) arrivals: per unit, the request counts (target rounded at random to an unbiased
    #    integer), the clients' circular stationary patterns (servegen_core.renewal), then the
    #    lengths' uniforms, all from the unit's own generator
    expected = a["row_expected"][r0:r1]
    family = a["row_family"][r0:r1]
    shape = a["row_shape"][r0:r1]
    table = a["row_table"][r0:r1]
    F = len(a["request_fields"])
    rho = a["rho"]
    corr = _copula_columns(a["request_fields"]) if rho != 0.0 else None
    n_parts: list[np.ndarray] = []
    pos_parts: list[np.ndarray] = []
    u_parts: list[np.ndarray] = []
    for i, g in enumerate(gens):
        s0, s1 = int(row_off[i]), int(row_off[i + 1])
        e = expected[s0:s1]
        base = np.floor(e)
        n_i = (base + (g.random(s1 - s0) < e - base)).astype(np.int64)
        pos_i = circular_points(g, n_i, family[s0:s1], shape[s0:s1], empirical=a["empirical"], table=table[s0:s1])
        n_parts.append(n_i)
        pos_parts.append(pos_i)
        q = int(n_i.sum())
        if corr is None:
            u_parts.append(g.random((q, F)))
        else:
            z = g.standard_normal((q, F))
            ci, co = corr
            z[:, co] = rho * z[:, ci] + math.sqrt(1.0 - rho * rho) * z[:, co]
            u_parts.append(ndtr(z))
    n = np.concatenate(n_parts) if n_parts else np.zeros(0, dtype=np.int64)
    pos = np.concatenate(pos_parts) if pos_parts else np.empty(0)
    u_len = np.concatenate(u_parts) if u_parts else np.empty((0, F))
    req_off = np.concatenate([[0], np.cumsum(n)])
    win_req = req_off[row_off]
    n_req = int(req_off[-1])

    # 2) times: operational fractions mapped back through the cumulative rate of the unit
    row_t0 = np.repeat(a["row_t0"][r0:r1], n)
    row_d = np.repeat(a["row_d"][r0:r1], n)
    segs = a["segs"]
    if segs is not None:
        lam_a = segs.cumulative(a["row_t0"][r0:r1])
        lam_b = segs.cumulative(a["row_t0"][r0:r1] + a["row_d"][r0:r1])
        x = np.repeat(lam_a, n) + pos * np.repeat(lam_b - lam_a, n)
        t = segs.inverse(x)
        t = np.clip(t, row_t0, None)
    else:
        t = row_t0 + pos * row_d
    t = np.minimum(t, np.nextafter(row_t0 + row_d, -np.inf))

    # 4) lengths: inverse CDF per field, every field from its own uniforms
    tids = a["row_tables"][r0:r1]
    req_tids = np.repeat(tids[:, :F], n, axis=0)
    vals = _sample(a, req_tids.ravel(), u_len.ravel(), np.unique(tids[:, :F])).reshape(n_req, F)
    out: dict[str, np.ndarray] = {}
    for j, f in enumerate(a["request_fields"]):
        out[f] = vals[:, j]

    # 5) per-item tokens (images, audio, video), from each window's second generator
    for m_i, m in enumerate(a["item_modalities"]):
        counts = out[f"{m}_count"].astype(np.int64)
        item_off = np.concatenate([[0], np.cumsum(counts)])
        win_items = item_off[win_req]
        u_items = np.empty(int(item_off[-1]), dtype=np.float64)
        if m_i == 0:
            gens2 = [np.random.default_rng([seed, int(w), 1, int(p)]) for w, p in zip(win_idx, win_piece)]
        for i, g in enumerate(gens2):
            s, e = int(win_items[i]), int(win_items[i + 1])
            u_items[s:e] = g.random(e - s)
        item_req = np.repeat(np.arange(n_req), counts)
        item_tids = np.repeat(np.repeat(tids[:, F + m_i], n), counts)
        tokens = _sample(a, item_tids, u_items, np.unique(tids[:, F + m_i])) if len(item_req) else np.empty(0)
        out[f"{m}_tokens"] = np.bincount(item_req, weights=tokens, minlength=n_req)

    # 6) assemble, derive totals, sort
    order = np.argsort(t, kind="stable")
    data: dict[str, pl.Series] = {"timestamp_s": pl.Series("timestamp_s", t[order], dtype=pl.Float64)}
    names = pl.Series("client_id", a["client_names"], dtype=pl.String)
    data["client_id"] = names.gather(np.repeat(a["row_client"][r0:r1], n)[order])

    def ints(x: np.ndarray) -> np.ndarray:
        # table values and their sums are whole numbers stored in float64: the cast is exact
        return x.astype(np.int64)

    if "input_tokens" in out:
        input_tokens = ints(out["input_tokens"])
    else:
        input_tokens = ints(out.get("text_tokens", np.zeros(n_req)))
        for m in a["item_modalities"]:
            input_tokens = input_tokens + ints(out[f"{m}_tokens"])
        for f in ("audio_tokens", "video_tokens", "image_tokens"):
            if f in out and f.split("_")[0] not in a["item_modalities"]:
                input_tokens = input_tokens + ints(out[f])
    output_tokens = ints(out["output_tokens"])
    data["input_tokens"] = pl.Series("input_tokens", input_tokens[order], dtype=pl.Int64)
    data["output_tokens"] = pl.Series("output_tokens", output_tokens[order], dtype=pl.Int64)
    for f in ("text_tokens", "image_tokens", "image_count", "audio_tokens", "audio_count", "video_tokens", "video_count"):
        if f in out:
            data[f] = pl.Series(f, ints(out[f])[order], dtype=pl.Int64)
    if "reason_ratio" in out:
        ratio = out["reason_ratio"]
        reasoning = np.rint(output_tokens * ratio).astype(np.int64)
        data["reasoning_tokens"] = pl.Series("reasoning_tokens", reasoning[order], dtype=pl.Int64)
        data["answer_tokens"] = pl.Series("answer_tokens", (output_tokens - reasoning)[order], dtype=pl.Int64)
        data["reason_ratio"] = pl.Series("reason_ratio", ratio[order], dtype=pl.Float64)
    return pl.DataFrame([data[c] for c in cols])


def _copula_columns(fields: tuple[str, ...]) -> tuple[int, int] | None:
    """Indices of (input-length field, output_tokens) in ``fields``, or None."""
    ins = [f for f in INPUT_FIELDS if f in fields]
    if not ins or "output_tokens" not in fields:
        return None
    return fields.index(ins[0]), fields.index("output_tokens")


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def compose(spec: WorkloadSpec, *, pool: ClientPool | None = None, max_requests: int | None = None) -> Workload:
    """Compose the workload ``spec`` describes (see the module docstring).

    ``pool`` is the already-loaded source (e.g. held by a dashboard); by default it is loaded
    with :func:`load_source`. The same spec (and seed) always gives the same frame. A workload
    expected to hold more than ``max_requests`` requests (default: the in-memory limit of
    :mod:`servegen_core.limits`) is refused with a :class:`~servegen_core.errors.LimitError`
    before anything is generated.
    """
    limit = max_requests if max_requests is not None else default_max_requests(streamed=False)
    plan = plan_workload(spec, pool=pool, max_requests=max(limit, default_max_requests(streamed=True)))
    return plan.compose(max_requests=limit)


def iter_compose(
    spec: WorkloadSpec,
    *,
    chunk_s: float = 600.0,
    pool: ClientPool | None = None,
    max_requests: int | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the workload of ``spec`` in time chunks of ``chunk_s`` span seconds.

    Timestamps are absolute (seconds from the span start) and the concatenation of the
    chunks equals ``compose(spec).trace`` exactly. Write them with
    :func:`servegen_core.export.writer.export_chunks` to stream a workload larger than memory.
    Warnings are available from :func:`plan_workload` (``plan.warnings``) and
    ``plan.iter_chunks(chunk_s)`` is the same iterator. A workload expected to hold more than
    ``max_requests`` requests (default: the streamed limit) is refused here, before the first chunk.
    """
    plan = plan_workload(spec, pool=pool, max_requests=max_requests)
    return plan.iter_chunks(chunk_s, max_requests=max_requests)


# --------------------------------------------------------------------------------------------
# Workload size limit
# --------------------------------------------------------------------------------------------


def check_workload_size(plan: ComposePlan, *, max_requests: int | None = None, streamed: bool = False) -> None:
    """Raise :class:`~servegen_core.errors.LimitError` when ``plan`` expects more than ``max_requests``.

    The default limit is :func:`servegen_core.limits.max_requests` (``streamed`` selects the
    limit of chunked generation, else the lower one of a workload held in memory). The
    estimate is :attr:`ComposePlan.expected_requests`; a non-finite estimate (an overflow)
    is always refused.
    """
    if max_requests is None:
        max_requests = default_max_requests(streamed=streamed)
    expected = plan.expected_requests
    if math.isfinite(expected) and expected <= max_requests:
        return
    how = "streamed to a file" if streamed else "composed in memory"
    env = "SERVEGEN_MAX_REQUESTS" if streamed else "SERVEGEN_MAX_REQUESTS_MEMORY"
    hint = (
        f"lower the rate or the span, or raise the limit of a workload {how} "
        f"(max_requests=, servegen generate --max-requests, ${env})"
    )
    raise LimitError("expected requests", expected, max_requests, hint)


def naive_spec(spec: WorkloadSpec, kind: str = "poisson", *, pool: ClientPool | None = None) -> WorkloadSpec:
    """A naive baseline of ``spec``: the same source, span, clients, client mix and seed, with
    one aspect made naive.

    - ``"poisson"``: only the arrivals become Poisson (same rate function, client mix and
      per-client lengths);
    - ``"pooled_lengths"``: only the lengths are pooled over the composed clients;
    - ``"poisson_pooled"``: both;
    - ``"constant"``: a constant rate equal to the mean aggregate target of ``spec`` over the
      span, with Poisson arrivals; the clients keep ``spec``'s request shares (explicit
      weights equal to its expected requests per client, so flattening the rate does not
      reweight them) and their own lengths. Needs the source (``pool`` or loaded from the
      spec).
    """
    if kind not in NAIVE_KINDS:
        msg = f"kind must be one of {', '.join(repr(k) for k in NAIVE_KINDS)}; got {kind!r}"
        raise ValueError(msg)
    if kind == "pooled_lengths":
        return dataclasses.replace(spec, lengths="pooled")
    if kind == "poisson_pooled":
        return dataclasses.replace(spec, arrivals="poisson", lengths="pooled")
    naive = dataclasses.replace(spec, arrivals="poisson")
    if kind == "constant":
        plan = plan_workload(spec, pool=pool)
        mean_rps = plan.expected_requests / plan.span_duration_s
        w = plan.weights.filter(pl.col("expected_requests") > 0)
        values = {str(c): float(x) for c, x in zip(w["client_id"].to_list(), w["expected_requests"].to_list())}
        naive = dataclasses.replace(naive, rate=ConstantRate(rps=float(mean_rps)), weights=Weights("explicit", values))
    return naive
