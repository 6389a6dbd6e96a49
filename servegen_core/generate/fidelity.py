"""The fidelity scorecard of a spec: compose it, and score the workload against what it imitates.

:func:`spec_fidelity` composes a :class:`~servegen_core.spec.WorkloadSpec` (or one of its naive
baselines) and scores the workload with :func:`servegen_core.characterize.fidelity.fidelity`
against the spec's source:

- a **trace source**: the trace itself, cut to what the spec composes: its requests in the
  span ``[start_s, start_s + duration)`` (the last request of the data included when the span
  reaches the end), timestamps moved to start at 0 like the workload's, and only the composed
  clients (every client named ``"all"`` when the source is not ``per_client``);
- a **ServeGen (pool) source**: there is no trace behind pool data (only per-window rates, CVs
  and length distributions), so the workload is compared with an independent second draw of
  the same spec at another seed (``reference_seed``, by default the spec's seed + 1, or - 1 at
  the largest seed) with ``reference="model"``: the line names end in ``_vs_model`` and the
  scorecard checks the generator against itself, not its fidelity to real traffic.

:func:`trace_round_trip` is the round trip fit -> compose -> compare of a trace file in one
call: the spec ``servegen spec-template --trace FILE`` writes (a trace source over the whole
trace, the preset detected when not given), scored against the trace.

With ``naive`` the scored workload is that naive baseline of the spec
(:func:`~servegen_core.generate.compose.naive_spec`); the reference stays the spec's (its
trace, or its model's second draw), so the scorecard shows what the baseline gets wrong.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from servegen_core.characterize.fidelity import FidelityReport, Reference, fidelity
from servegen_core.characterize.prefix import DEFAULT_BLOCK_TOKENS
from servegen_core.generate.compose import compose, naive_spec
from servegen_core.generate.plan import Workload
from servegen_core.sources.load import load_source, read_source_trace, trace_source_pool
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import MAX_SEED, NAIVE_KINDS, ObservedRate, Span, TraceSource, WorkloadSpec

__all__ = ["SpecFidelity", "reference_seed_of", "source_window", "spec_fidelity", "trace_round_trip"]


@dataclass(frozen=True)
class SpecFidelity:
    """A spec's scorecard and what it compared.

    ``report`` is the :class:`~servegen_core.characterize.fidelity.FidelityReport`;
    ``spec`` the spec asked for and ``scored_spec`` the one composed and scored (its naive
    baseline ``naive`` when given); ``reference`` is ``"trace"`` or ``"model"``;
    ``reference_seed`` the seed of the model's second draw (``None`` against a trace);
    ``source_text`` and ``generated_text`` say in words what was compared; ``warnings`` are
    the composer's (clients or windows it could not compose as asked).
    """

    report: FidelityReport
    spec: WorkloadSpec
    scored_spec: WorkloadSpec
    naive: str | None
    reference: Reference
    reference_seed: int | None
    source_text: str
    generated_text: str
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every decided line of the report passed (and there is one)."""
        return self.report.passed

    def to_dict(self) -> dict[str, object]:
        """The report's JSON document plus what was compared (``source``, ``generated``,
        ``naive``, ``reference_seed``, ``warnings``)."""
        doc: dict[str, object] = {
            "source": self.source_text,
            "generated": self.generated_text,
            "naive": self.naive,
            "reference_seed": self.reference_seed,
            "warnings": list(self.warnings),
        }
        doc.update(json.loads(self.report.to_json()))
        return doc


def reference_seed_of(seed: int) -> int:
    """The seed of the model's second draw: ``seed + 1`` (``seed - 1`` at the largest seed)."""
    return seed + 1 if seed < MAX_SEED else seed - 1


def source_window(trace: pl.DataFrame, workload: Workload) -> pl.DataFrame:
    """The part of a trace-source spec's ``trace`` its ``workload`` imitates.

    Requests in the workload's span ``[start, start + duration)`` of the trace's clock (the
    end included when the span reaches the trace's last request: the data's last arrival
    window ends there), timestamps moved so the span starts at 0 (as the workload's), and only
    the composed clients; a source that is not ``per_client`` is one client ``"all"``.
    """
    spec = workload.spec
    plan = workload.plan
    start = float(plan.span_start_s)
    end = start + float(plan.span_duration_s)
    ts = pl.col("timestamp_s")
    reaches_end = trace.height > 0 and end >= float(trace["timestamp_s"].max())
    inside = (ts >= start) & ((ts <= end) if reaches_end else (ts < end))
    part = trace.filter(inside).with_columns(timestamp_s=ts - start)
    if isinstance(spec.source, TraceSource) and not spec.source.per_client:
        part = part.with_columns(client_id=pl.lit("all"))
    return part.filter(pl.col("client_id").is_in(list(workload.clients))).sort("timestamp_s", maintain_order=True)


def _rate_note(spec: WorkloadSpec) -> list[str]:
    rate = spec.rate
    if isinstance(rate, ObservedRate) and rate.factor == 1.0:
        return []
    what = f"observed x {rate.factor:g}" if isinstance(rate, ObservedRate) else rate.kind
    return [
        f"the spec's rate is {what}, not the rate the trace was recorded at: the request-count and dispersion "
        "lines measure that change too"
    ]


def spec_fidelity(
    spec: WorkloadSpec,
    *,
    pool: ClientPool | None = None,
    trace: pl.DataFrame | None = None,
    workload: Workload | None = None,
    naive: str | None = None,
    alpha: float = 0.01,
    max_requests: int | None = None,
    reference_seed: int | None = None,
    prefix: bool = True,
    block_tokens: int | None = None,
) -> SpecFidelity:
    """Compose ``spec`` (or its ``naive`` baseline) and score it against its source (see the module docstring).

    ``pool`` is the loaded source (loaded from the spec, or fitted to ``trace``, when not
    given); ``trace`` is a trace source's file already read as :func:`load_source_trace` reads
    it (read when not given); ``workload`` is the scored spec's workload already composed
    (composed here when not given; it must be ``compose`` of the scored spec). ``alpha``,
    ``prefix`` and ``block_tokens`` are :func:`~servegen_core.characterize.fidelity.fidelity`'s
    (``block_tokens=None``: the trace source's tokens per ``hash_ids`` entry, its
    ``hash_block_size`` or its layout's documented one, else
    :data:`~servegen_core.characterize.prefix.DEFAULT_BLOCK_TOKENS`);
    ``max_requests`` bounds each composed workload as :func:`~servegen_core.generate.compose.compose`
    does; ``reference_seed`` is the seed of the model's second draw for a pool source
    (default :func:`reference_seed_of` the spec's seed).
    """
    if not isinstance(spec, WorkloadSpec):
        msg = f"expected a WorkloadSpec, got {type(spec).__name__}"
        raise TypeError(msg)
    if naive is not None and naive not in NAIVE_KINDS:
        msg = f"naive must be one of {', '.join(repr(k) for k in NAIVE_KINDS)}; got {naive!r}"
        raise ValueError(msg)
    on_trace = isinstance(spec.source, TraceSource)
    if trace is not None and not on_trace:
        msg = "a trace is the source only of a spec with a trace source; this spec's source is ServeGen data"
        raise ValueError(msg)
    if on_trace and trace is None:
        loaded = read_source_trace(spec)
        trace = loaded.trace
        if block_tokens is None:
            block_tokens = loaded.hash_block_size
    if block_tokens is None:
        block_tokens = (spec.source.hash_block_size if on_trace else None) or DEFAULT_BLOCK_TOKENS
    if pool is None:
        pool = trace_source_pool(spec, trace) if trace is not None else load_source(spec)
    scored = naive_spec(spec, naive, pool=pool) if naive is not None else spec
    if workload is None:
        workload = compose(scored, pool=pool, max_requests=max_requests)
    elif workload.spec != scored:
        msg = "the workload given was not composed from the scored spec (the spec, or its naive baseline)"
        raise ValueError(msg)
    label = f"naive baseline '{naive}' of the spec" if naive is not None else "spec"
    generated_text = f"the workload of the {label} (seed {scored.seed}, {workload.trace.height:,} requests)"
    notes: list[str] = []
    if trace is not None:
        source = source_window(trace, workload)
        plan = workload.plan
        start, duration = float(plan.span_start_s), float(plan.span_duration_s)
        source_text = (
            f"the source trace over the spec's span [{start:g}, {start + duration:g}) s and its "
            f"{len(workload.clients):,} composed client(s) ({source.height:,} requests)"
        )
        notes += _rate_note(spec)
        reference: Reference = "trace"
        ref_seed = None
    else:
        ref_seed = reference_seed_of(spec.seed) if reference_seed is None else int(reference_seed)
        second = compose(dataclasses.replace(spec, seed=ref_seed), pool=pool, max_requests=max_requests)
        source = second.trace
        source_text = (
            f"an independent second draw of the spec's model (seed {ref_seed}, {source.height:,} requests): "
            "pool data hold no trace, only per-window rates, CVs and length distributions, so this checks the "
            "generator against itself, not fidelity to real traffic"
        )
        reference = "model"
    report = fidelity(source, workload.trace, alpha=alpha, reference=reference, prefix=prefix, block_tokens=block_tokens)
    if notes:
        report = dataclasses.replace(report, notes=(*notes, *report.notes))
    return SpecFidelity(
        report=report,
        spec=spec,
        scored_spec=scored,
        naive=naive,
        reference=reference,
        reference_seed=ref_seed,
        source_text=source_text,
        generated_text=generated_text,
        warnings=tuple(workload.warnings),
    )


def trace_round_trip(
    path: str | Path,
    *,
    preset: str | None = None,
    seed: int = 0,
    naive: str | None = None,
    alpha: float = 0.01,
    max_requests: int | None = None,
    prefix: bool = True,
    hash_block_size: int | None = None,
) -> SpecFidelity:
    """Fit the trace file at ``path``, compose it back and score the workload against the trace.

    The spec is the one ``servegen spec-template --trace`` writes: a trace source (the path
    made absolute, ``preset`` detected from the columns when ``None``) over the whole trace
    with ``seed`` and ``hash_block_size`` (the file's tokens per ``hash_ids`` entry when not its
    layout's own, also the block size of the prefix lines); the trace is read once and fitted
    once. The other arguments are :func:`spec_fidelity`'s.
    """
    source = TraceSource(path=str(Path(path).expanduser().resolve()), preset=preset, hash_block_size=hash_block_size)
    spec = WorkloadSpec(source=source, span=Span(start_s=0), seed=seed)
    loaded = read_source_trace(spec)
    return spec_fidelity(
        spec, trace=loaded.trace, naive=naive, alpha=alpha, max_requests=max_requests, prefix=prefix,
        block_tokens=loaded.hash_block_size,
    )
