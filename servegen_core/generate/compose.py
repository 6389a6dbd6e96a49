"""Compose a workload per client from a ClientPool: rate functions, fast generation, baselines.

``compose(spec)`` turns a :class:`~servegen_core.spec.WorkloadSpec` into a
:class:`Workload`: a RequestTrace (``timestamp_s`` from 0 at the span start, ``client_id``,
``input_tokens``, ``output_tokens`` and, where the source has them, the multimodal and
reasoning columns) plus the warnings raised while composing it and the per-client-window
targets it was built from. :func:`iter_compose` yields the same rows in time chunks for
workloads larger than memory; :func:`naive_spec` derives the naive baselines.

How a workload is composed
--------------------------
1. The source is loaded (:func:`~servegen_core.sources.load.load_source`) and cut to the span. Arrival windows
   (600 s in ServeGen data) that the span cuts are clipped to it.
2. Clients are selected (all, ids, the top k by request share, or summary filters). Clients, or client-windows,
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
   ``n`` inter-arrival times from the client-window's arrival model (``sub_window``, see
   :func:`~servegen_core.generate.stages.arrival_model`: a trace's fitted model, the
   two-state ``mmpp`` from the window's CV for pool data, or the recorded Gamma/Weibull),
   laying them round a circle the length of the window and rotating it at random
   (:func:`servegen_core.arrival_models.sample_positions`), so each window's rate is the
   target and its count exact, without an edge effect at window starts.
   ``arrivals="poisson"`` draws exponential gaps instead (a Poisson process given the
   count), ``"empirical"`` the window's observed gaps. For ``piecewise`` and ``ramp`` rates
   the times inside a window are then mapped through the rate function's cumulative
   integral, so the aggregate rate follows the function within windows too, not only window
   by window.
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
9. Batch jobs (``batch``, :mod:`servegen_core.generate.batch`): the composed rows keep their
   order and get the job's submission times, all ``t = 0`` or ``i / submission_rps``.

Randomness and chunking
-----------------------
The plan (:func:`plan_workload`, stages in :mod:`servegen_core.generate.stages`) draws no
random number. Generation runs per unit: an arrival window, or an equal time piece of one
whose clients expect more than :data:`~servegen_core.generate.plan.UNIT_REQUESTS` requests.
Every unit has its own generators, ``np.random.default_rng([seed, w, 0, piece])`` (counts,
arrival positions, length uniforms) and ``default_rng([seed, w, 1, piece])`` (per-item
tokens), ``w`` the window's index in the source and ``piece`` 0 for an uncut window (the
prefix stage uses ``[seed, w, 2, piece]``). The rows of a unit therefore do not depend on
which other units are generated with it, and :func:`iter_compose` concatenates to exactly
:func:`compose`'s frame for any ``chunk_s``. Within a unit the draws are vectorized over all
of its clients and requests; across units everything but the draw calls is vectorized over
the whole chunk. Rows are sorted by ``timestamp_s`` (stable: ties keep unit, then client,
order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import polars as pl

from servegen_core.generate.plan import (
    EXCLUSION_REASONS,
    UNIT_REQUESTS,
    ComposePlan,
    Workload,
    check_workload_size,
    rate_segments,
)
from servegen_core.generate.sessions import plan_prefix
from servegen_core.generate.stages import (
    ITEM_MODALITIES,
    arrival_model,
    cut_span,
    cut_units,
    length_tables,
    resolve_targets,
    select_clients,
    split_fields,
)
from servegen_core.generate.tables import INPUT_FIELDS
from servegen_core.limits import max_requests as default_max_requests
from servegen_core.sources.load import load_source
from servegen_core.sources.pool import ClientPool
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
    "INPUT_FIELDS",
    "ITEM_MODALITIES",
    "LENGTHS",
    "MISSING_LENGTHS",
    "NAIVE_KINDS",
    "SCHEMA_VERSION",
    "UNIT_REQUESTS",
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
    "check_workload_size",
    "compose",
    "iter_compose",
    "load_source",
    "naive_spec",
    "plan_workload",
    "rate_curve",
]


def plan_workload(
    spec: WorkloadSpec, *, pool: ClientPool | None = None, max_requests: int | None = None
) -> ComposePlan:
    """Resolve ``spec`` against its source (loaded with :func:`load_source` unless ``pool``
    is given) without drawing random numbers: the stages of
    :mod:`servegen_core.generate.stages`, then the prefix stage.

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
    span = cut_span(spec, pool)
    choice = select_clients(spec, span)
    targets = resolve_targets(spec, span, choice)
    arrivals = arrival_model(spec, span, choice, targets.client_windows)
    request_fields, item_modalities = split_fields(targets.fields)
    fields = request_fields + tuple(f"{m}_tokens" for m in item_modalities)
    tables, pooled_lengths = length_tables(span, choice, targets.client_windows, fields)
    plan = ComposePlan(
        spec=spec,
        pool=choice.pool,
        span_start_s=span.start_s,
        span_duration_s=span.duration_s,
        clients=targets.clients,
        excluded_clients=targets.excluded_clients,
        warnings=targets.warnings,
        client_windows=_client_window_columns(arrivals.client_windows),
        targets=targets.windows,
        weights=targets.weights,
        request_fields=request_fields,
        item_modalities=item_modalities,
        pooled_lengths=pooled_lengths,
        arrivals=arrivals,
        tables=tables,
        units=cut_units(arrivals, tables, fields, choice.weighted),
        exclusions=targets.exclusions,
    )
    plan = plan_prefix(plan)
    check_workload_size(plan, max_requests=max_requests, streamed=True)
    return plan


def _client_window_columns(client_windows: pl.DataFrame) -> pl.DataFrame:
    """The public columns of :attr:`ComposePlan.client_windows`."""
    return client_windows.select(
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
    segs = rate_segments(plan.spec.rate, duration)
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
        carried = plan.weights.filter(pl.col("expected_requests") > 0)
        values = {str(c): float(x) for c, x in zip(carried["client_id"].to_list(), carried["expected_requests"].to_list())}
        naive = dataclasses.replace(naive, rate=ConstantRate(rps=float(mean_rps)), weights=Weights("explicit", values))
    return naive
