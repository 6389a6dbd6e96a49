"""The compose plan: a spec resolved against its source, as frozen stage records.

:func:`servegen_core.generate.compose.plan_workload` runs the stages of
:mod:`servegen_core.generate.stages` in order; each returns one frozen record defined here:

- ``cut_span`` -> :class:`SpanCut`: the source cut to the span (window-aligned);
- ``select_clients`` -> :class:`ClientChoice`: the chosen and the weighted clients;
- ``resolve_targets`` -> :class:`Targets`: client-window targets, window targets, weights;
- ``arrival_model`` -> :class:`ArrivalModel`: every client-window's gap model;
- ``length_tables`` -> :class:`~servegen_core.generate.tables.LengthTables`: inverse-CDF tables;
- ``cut_units`` -> :class:`GenerationUnits`: the generation units and their rows;
- ``plan_prefix`` (:mod:`~servegen_core.generate.sessions`) ->
  :class:`~servegen_core.generate.sessions.PrefixPlan`: the prefix model;

and :class:`ComposePlan` gathers them. Nothing here draws a random number; generation
(:mod:`servegen_core.generate.draw`, :mod:`servegen_core.generate.sessions`) reads only
the plan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from servegen_core.arrival_models import ArrivalModelTable
from servegen_core.errors import LimitError
from servegen_core.generate import draw, sessions
from servegen_core.generate.batch import submit_batch, submit_batch_chunks
from servegen_core.generate.classes import CLASS_COLUMNS, class_chunks, with_classes
from servegen_core.generate.sessions import PrefixPlan
from servegen_core.generate.tables import LengthTables
from servegen_core.limits import max_requests as default_max_requests
from servegen_core.schema import PREFIX_COLUMNS, SCHEMA
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import ConstantRate, PiecewiseRate, RampRate, RateSpec, WorkloadSpec

__all__ = [
    "EXCLUSION_REASONS",
    "UNIT_REQUESTS",
    "ArrivalModel",
    "ClientChoice",
    "ComposePlan",
    "GenerationUnits",
    "RateSegments",
    "SpanCut",
    "Targets",
    "Workload",
    "check_workload_size",
    "rate_segments",
]

#: Why a client of the source's span is not composed, in the order they are decided
#: (:attr:`ComposePlan.exclusions`): not chosen by ``clients``; chosen but given weight 0
#: (explicit weights that omit it or set 0); no recorded requests in the span; requests in
#: the span only in windows without length data (``missing_lengths="exclude"``).
EXCLUSION_REASONS: tuple[str, ...] = ("not_selected", "weight_zero", "idle", "no_lengths")

#: Largest expected number of requests in one generation unit. An arrival window whose composed
#: clients expect more is cut into equal time pieces, each generated on its own (see
#: :func:`servegen_core.generate.stages.cut_units`), so memory stays bounded at any rate.
UNIT_REQUESTS = 1_000_000

#: ``rows(plan, k0, k1)``: the rows of generation units ``k0..k1`` (:func:`servegen_core.generate.draw.generate_rows`,
#: or the same drawn elsewhere, e.g. by Ray tasks).
RowsFunction = Callable[["ComposePlan", int, int], pl.DataFrame]


# --------------------------------------------------------------------------------------------
# Rate functions (aggregate target over span time t, 0 <= t <= duration)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateSegments:
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


def rate_segments(rate: RateSpec, duration: float) -> RateSegments | None:
    """The aggregate rate function of a spec over ``[0, duration]``; None for observed-based kinds."""
    if isinstance(rate, ConstantRate):
        return RateSegments(np.array([0.0]), np.array([duration]), np.array([float(rate.rps)]), np.array([float(rate.rps)]))
    if isinstance(rate, RampRate):
        return RateSegments(
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
        return RateSegments(ts, t1, rs, r1)
    return None


# --------------------------------------------------------------------------------------------
# Stage records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpanCut:
    """``cut_span``: the source and its part that the span covers.

    ``pool`` holds the source's arrival windows from ``aligned_start_s`` (the span start
    moved back to the arrival-window grid) to ``end_s``; ``start_s``/``duration_s``/``end_s``
    are the span in source seconds; ``data_start_s`` is the source's first window start and
    ``window_s`` its arrival-window length.
    """

    source: ClientPool
    pool: ClientPool
    start_s: float
    duration_s: float
    end_s: float
    aligned_start_s: float
    data_start_s: float
    window_s: int


@dataclass(frozen=True, eq=False)
class ClientChoice:
    """``select_clients``: ``chosen`` are the clients the ``clients`` selection picks (numeric
    order), ``weighted`` those of them with a positive weight (all of them with observed
    weights), and ``pool`` the span's pool restricted to ``weighted``."""

    chosen: tuple[str, ...]
    weighted: tuple[str, ...]
    pool: ClientPool


@dataclass(frozen=True, eq=False)
class Targets:
    """``resolve_targets``: what every client-window and window is to carry.

    ``client_windows``: one row per composed client-window with a positive target, in
    generation order (window, then client), with the source columns and ``window_index``,
    ``t0_s``, ``span_duration_s``, ``client_rank`` (index into ``ClientChoice.weighted``),
    ``target_rps``, ``expected_requests``, ``length_start_s``, ``has_lengths`` and
    ``length_source``. ``windows``, ``weights``, ``clients`` and ``exclusions`` are
    :attr:`ComposePlan.targets`, ``weights``, ``clients`` and ``exclusions``;
    ``fields`` the source's length fields; ``warnings`` those raised so far.
    """

    client_windows: pl.DataFrame
    windows: pl.DataFrame
    weights: pl.DataFrame
    clients: tuple[str, ...]
    excluded_clients: tuple[str, ...]
    exclusions: Mapping[str, tuple[str, ...]]
    fields: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ArrivalModel:
    """``arrival_model``: the gap model of every client-window (rows as
    ``Targets.client_windows``).

    ``client_windows`` is that frame with ``model_pattern``, ``model_shape`` and ``model_cv``
    added; ``table`` the :class:`~servegen_core.arrival_models.ArrivalModelTable` with one row
    per client-window (same order), read by
    :func:`~servegen_core.arrival_models.sample_positions`; ``time_map`` the rate function
    that times inside a window are mapped through (``piecewise``/``ramp``), else None.
    """

    client_windows: pl.DataFrame
    table: ArrivalModelTable
    time_map: RateSegments | None


@dataclass(frozen=True, eq=False)
class GenerationUnits:
    """``cut_units``: the generation units (one per arrival window holding a client-window,
    or one per equal time piece of a window whose clients expect more than
    :data:`UNIT_REQUESTS` requests) and their rows (one per client-window and unit, in unit
    order, then client order).

    Per unit: ``window_index`` (the arrival window's index in the source), ``piece`` (its
    part, 0 for an uncut window), ``t0_s``, ``duration_s``, ``expected`` (expected requests)
    and ``row_offsets`` (its rows are ``row_offsets[u]:row_offsets[u + 1]``). Per row:
    ``row_client`` (index into ``client_ids``), ``row_t0_s``, ``row_duration_s``,
    ``row_expected`` (requests, or session starts once the prefix stage ran),
    ``row_model`` (the row of :attr:`ArrivalModel.table`, i.e. the client-window) and
    ``row_tables`` (one length table id per field of :attr:`ComposePlan.request_fields` then
    per item modality).
    """

    window_index: np.ndarray
    piece: np.ndarray
    t0_s: np.ndarray
    duration_s: np.ndarray
    expected: np.ndarray
    row_offsets: np.ndarray
    client_ids: tuple[str, ...]
    row_client: np.ndarray
    row_t0_s: np.ndarray
    row_duration_s: np.ndarray
    row_expected: np.ndarray
    row_model: np.ndarray
    row_tables: np.ndarray

    def __len__(self) -> int:
        return len(self.window_index)


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ComposePlan:
    """A spec resolved against its source: the client-window targets and the length tables.

    ``client_windows`` has one row per composed (client, arrival window) with a positive
    target, in generation order (window, then client): ``client_id, start_s`` (source
    seconds), ``t0_s`` (seconds from the span start), ``duration_s`` (the part inside the
    span), ``source_rate_rps``, ``source_cv``, ``pattern``, ``shape``, ``model_pattern``,
    ``model_shape``, ``model_cv``, ``target_rps``, ``expected_requests``, ``length_start_s``
    (the length window) and ``length_source`` (``"client"``, ``"borrowed"`` or ``"pooled"``).

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

    What generation reads: ``arrivals`` (:class:`ArrivalModel`), ``tables``
    (:class:`~servegen_core.generate.tables.LengthTables`), ``units``
    (:class:`GenerationUnits`) and ``prefix_plan`` (the prefix model, None without a
    ``prefix`` section).
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
    arrivals: ArrivalModel
    tables: LengthTables
    units: GenerationUnits
    prefix_plan: PrefixPlan | None = None
    exclusions: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({r: () for r in EXCLUSION_REASONS})
    )

    @property
    def expected_requests(self) -> float:
        """Expected number of requests (the integral of the composed targets)."""
        return float(self.client_windows["expected_requests"].sum())

    @property
    def composed_shares(self) -> pl.DataFrame:
        """Per composed client, the share of the workload generation draws for it.

        Columns ``client_id, observed_share, weight_share, expected_requests, composed_share``
        (the :attr:`weights` rows, in their order); ``composed_share`` is the client's expected
        requests over the plan's expected total: the share of the generated requests it
        carries, up to sampling error, whatever the weights and the rate function (a client
        that cannot carry its weight where it is idle gets less than its ``weight_share``).
        """
        total = self.weights["expected_requests"].sum()
        share = pl.col("expected_requests") / total if total > 0 else pl.lit(0.0)
        return self.weights.with_columns(share.cast(pl.Float64).alias("composed_share"))

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
        if self.spec.slo_classes is not None:
            cols |= set(CLASS_COLUMNS)
        return tuple(c for c in SCHEMA if c in cols)

    def compose(self, *, max_requests: int | None = None) -> Workload:
        """Generate the whole workload in memory.

        Refuses (:class:`~servegen_core.errors.LimitError`) when :attr:`expected_requests` is
        above ``max_requests`` (default: the in-memory limit of :mod:`servegen_core.limits`).
        """
        check_workload_size(self, max_requests=max_requests, streamed=False)
        n_units = len(self.units)
        if self.spec.prefix is not None:  # prefix stage: sessions and shared prompts
            frames = list(sessions.session_chunks(self, [(0, n_units)], draw.generate_rows))
            cols = self.output_columns
            trace = frames[0] if frames else pl.DataFrame(schema={c: SCHEMA[c] for c in cols})
        else:
            trace = draw.generate_rows(self, 0, n_units)
        if self.spec.batch is not None:  # batch stage: submission times instead of arrivals
            trace = submit_batch(trace, self.spec.batch)
        if self.spec.slo_classes is not None:  # class stage: each client's SLO class
            trace = with_classes(trace, self.spec.slo_classes)
        return Workload(trace=trace, spec=self.spec, warnings=self.warnings, plan=self)

    def chunk_bounds(self, chunk_s: float = 600.0, chunk_requests: int = UNIT_REQUESTS) -> list[tuple[int, int]]:
        """The unit ranges ``(k0, k1)`` :meth:`iter_chunks` draws, in order: the units whose
        start falls in one ``chunk_s`` bucket, cut so that each range's expected requests stay
        within ``chunk_requests`` (a range holds at least one unit)."""
        if not (isinstance(chunk_s, (int, float)) and math.isfinite(chunk_s) and chunk_s > 0):
            msg = f"chunk_s must be a positive number of seconds, got {chunk_s!r}"
            raise ValueError(msg)
        if isinstance(chunk_requests, bool) or not isinstance(chunk_requests, int) or chunk_requests < 1:
            msg = f"chunk_requests must be a positive integer, got {chunk_requests!r}"
            raise ValueError(msg)
        t0 = self.units.t0_s
        if len(t0) == 0:
            return []
        return _chunk_bounds(t0, self.units.expected, chunk_s, chunk_requests)

    def iter_chunks(
        self,
        chunk_s: float = 600.0,
        *,
        max_requests: int | None = None,
        chunk_requests: int = UNIT_REQUESTS,
        rows: RowsFunction | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Yield the workload in time order, in chunks of at most ``chunk_s`` seconds of span
        time and (about) ``chunk_requests`` requests.

        Generation runs in the plan's units (:class:`GenerationUnits`, fixed by the plan, so
        the rows never depend on the chunking). A chunk holds the units whose start falls in
        ``[i*chunk_s, (i+1)*chunk_s)``, cut further so that its expected requests stay within
        ``chunk_requests`` (a chunk holds at least one unit). Empty chunks are skipped.
        ``rows`` draws a unit range (default :func:`servegen_core.generate.draw.generate_rows`);
        the prefix and batch stages run on its frames here, whatever drew them.
        Memory is bounded by the largest chunk. Refuses
        (:class:`~servegen_core.errors.LimitError`, on the first ``next``) when
        :attr:`expected_requests` is above ``max_requests`` (default: the streamed limit).
        """
        check_workload_size(self, max_requests=max_requests, streamed=True)
        bounds = self.chunk_bounds(chunk_s, chunk_requests)
        if not bounds:
            return
        draw_rows = draw.generate_rows if rows is None else rows
        if self.spec.prefix is not None:  # prefix stage: sessions and shared prompts
            chunks = sessions.session_chunks(self, bounds, draw_rows)
        else:
            chunks = (frame for k0, k1 in bounds if (frame := draw_rows(self, k0, k1)).height)
        if self.spec.batch is not None:  # batch stage: submission times instead of arrivals
            chunks = submit_batch_chunks(chunks, self.spec.batch)
        if self.spec.slo_classes is not None:  # class stage: each client's SLO class
            chunks = class_chunks(chunks, self.spec.slo_classes)
        yield from chunks


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
