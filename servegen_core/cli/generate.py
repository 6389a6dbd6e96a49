"""``servegen generate --spec SPEC --format F -o OUT ...``: compose the workload of a spec and export it.

JSONL/CSV formats are streamed chunk by chunk (``--chunk-s``, default one hour of span time)
through :func:`servegen_core.export.writer.write_chunks`, with a progress bar on stderr;
``parquet`` is written whole as one file, or as a folder of part files when ``--chunk-s`` is
given. The spec actually used (after ``--seed``/``--naive``/``--batch``) is written beside the output.
``--engine ray`` draws the chunks as Ray tasks (:mod:`servegen_core.engines.ray`); the bytes
written are the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import TextIO

import polars as pl

from servegen_core.cli.common import DEFAULT_CHUNK_S, EXIT_OK, PROG, CliError
from servegen_core.cli.inputs import read_spec
from servegen_core.cli.output import ProgressBar, fmt_number
from servegen_core.engines import ray as ray_engine
from servegen_core.errors import LimitError
from servegen_core.export.formats import FormatInfo, get_format, replay_commands
from servegen_core.export.writer import ChunkWriter, ExportResult, WriteProgress, check_target, export_trace, write_chunks
from servegen_core.generate.compose import ComposePlan, naive_spec, plan_workload
from servegen_core.generate.plan import check_workload_size
from servegen_core.sources.load import load_source
from servegen_core.limits import max_requests as default_max_requests
from servegen_core.schema import SCHEMA
from servegen_core.spec import BatchJob, WorkloadSpec

__all__ = ["run"]


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


#: How ``generate`` words each reason a client is excluded (keys of ``ComposePlan.exclusions``).
_EXCLUSION_TEXT = {
    "idle": "idle in the span",
    "no_lengths": "with no length data",
    "weight_zero": "with weight 0",
}


def _clients_text(plan: ComposePlan) -> str:
    """``54 composed, 108 excluded (95 idle in the span, 13 with no length data)``, plus ``N not selected``."""
    ex = plan.exclusions
    text = f"{len(plan.clients)} composed"
    parts = [f"{len(ex[r])} {words}" for r, words in _EXCLUSION_TEXT.items() if ex[r]]
    n_excluded = sum(len(ex[r]) for r in _EXCLUSION_TEXT)
    if n_excluded:
        text += f", {n_excluded} excluded ({', '.join(parts)})"
    if ex["not_selected"]:
        text += f", {len(ex['not_selected'])} not selected"
    cw = plan.client_windows
    borrowing = cw.filter(cw["length_source"] == "borrowed")["client_id"].n_unique()
    if borrowing:
        text += f"; {borrowing} borrowing the other clients' lengths (none of their own)"
    return text


def _plan(args: argparse.Namespace, spec: WorkloadSpec, *, streamed: bool) -> tuple[WorkloadSpec, ComposePlan, int]:
    """The spec actually composed (``--naive`` applied), its plan and the request limit it was
    planned under (``--max-requests`` or the default for a streamed or whole write); plan
    warnings go to stderr."""
    pool = load_source(spec)
    if args.naive is not None:
        spec = naive_spec(spec, args.naive, pool=pool)
    limit = args.max_requests if args.max_requests is not None else default_max_requests(streamed=streamed)
    try:
        plan = plan_workload(spec, pool=pool, max_requests=limit)
    except LimitError as exc:
        if streamed or args.max_requests is not None:
            raise
        msg = f"{exc}; or give --chunk-s to stream a folder of Parquet parts (limit {default_max_requests(streamed=True):,})"
        raise CliError(msg) from None
    for w in plan.warnings:
        sys.stderr.write(f"{PROG}: warning: {w}\n")
    return spec, plan, limit


def _write_streamed(
    args: argparse.Namespace, writer: ChunkWriter, plan: ComposePlan, *, limit: int
) -> ExportResult:
    """Compose and write ``plan`` ``--chunk-s`` span seconds at a time, with a progress bar on stderr."""
    chunk_s = float(args.chunk_s) if args.chunk_s is not None else DEFAULT_CHUNK_S
    total = max(1, math.ceil(plan.span_duration_s / chunk_s))
    bar = ProgressBar(total, stream=sys.stderr, label="generating") if total > 1 and not args.quiet else None

    def show(done: WriteProgress) -> None:
        assert bar is not None
        last = float(done.chunk["timestamp_s"][-1])
        bar.update(min(total, int(last // chunk_s) + 1), f"{done.rows:,} requests")

    try:
        if args.engine == "ray":
            chunks = ray_engine.iter_chunks(plan, chunk_s, max_requests=limit)
        else:
            chunks = plan.iter_chunks(chunk_s, max_requests=limit)
        result = write_chunks(writer, chunks, progress=None if bar is None else show)
        if bar is not None:
            bar.update(total, f"{result.rows:,} requests")
    finally:
        if bar is not None:
            bar.close()
    return result


def _whole_trace(args: argparse.Namespace, plan: ComposePlan, limit: int) -> pl.DataFrame:
    """The whole workload in memory: ``plan.compose``, or with ``--engine ray`` its chunks drawn
    as Ray tasks and concatenated (the same frame)."""
    if args.engine != "ray":
        return plan.compose(max_requests=limit).trace
    check_workload_size(plan, max_requests=limit, streamed=False)
    frames = list(ray_engine.iter_chunks(plan, DEFAULT_CHUNK_S, max_requests=default_max_requests(streamed=True)))
    if not frames:
        return pl.DataFrame(schema={c: SCHEMA[c] for c in plan.output_columns})
    return pl.concat(frames, rechunk=True)  # one chunk, as compose builds it: the same row groups


def _report(out: TextIO, info: FormatInfo, result: ExportResult, plan: ComposePlan, spec: WorkloadSpec) -> None:
    """What was written, from which clients and span, and how to replay it."""
    kind = "folder" if result.path.is_dir() else "file"
    out.write(
        f"wrote {result.rows:,} requests to {result.path} ({info.name} {kind}, {_size_text(result.bytes)}; "
        f"expected {plan.expected_requests:,.0f})\n"
    )
    out.write(
        f"clients: {_clients_text(plan)}; span {fmt_number(plan.span_start_s)} s + "
        f"{fmt_number(plan.span_duration_s)} s of {plan.pool.name}; seed {spec.seed}\n"
    )
    if spec.batch is not None:
        rps = spec.batch.submission_rps
        when = "every request at t = 0" if rps is None else f"submitted one after another at {fmt_number(rps)} requests/s"
        out.write(f"batch job: {when}\n")
    if result.spec_path is not None:
        out.write(f"spec: {result.spec_path}\n")
    commands = replay_commands(
        info.name, result.path, result.block_size, rows=result.rows, max_request_tokens=result.max_request_tokens
    )
    for command in commands:
        out.write(f"replay ({command.consumer} {command.version}): {command.text}\n")
        if command.note:
            out.write(f"  {command.consumer}: {command.note}\n")
    if not commands:
        out.write(f"format: {info.description}\n")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Compose ``args.spec`` and write it to ``args.output`` in ``args.format``; report on ``out``."""
    info = get_format(args.format)
    target = Path(args.output)
    spec = read_spec(args.spec, seed=args.seed)
    if args.submission_rps is not None and not args.batch:
        msg = "--submission-rps is the submission rate of a batch job: give it with --batch"
        raise CliError(msg)
    if args.batch:
        spec = dataclasses.replace(spec, batch=BatchJob(submission_rps=args.submission_rps))

    def note(text: str) -> None:
        out.write(f"note: {text}\n")

    streamed = args.chunk_s is not None or info.container != "parquet"
    check_target(target, overwrite=args.overwrite)  # before any work is done
    spec, plan, limit = _plan(args, spec, streamed=streamed)
    if streamed:
        writer = ChunkWriter(
            target, info.name, spec=spec, overwrite=args.overwrite, block_size=args.block_size, note=note, sessions=args.sessions,
        )
        result = _write_streamed(args, writer, plan, limit=limit)
    else:
        trace = _whole_trace(args, plan, limit)
        result = export_trace(
            trace, target, info.name, spec=spec, overwrite=args.overwrite, block_size=args.block_size, note=note, sessions=args.sessions,
        )
    _report(out, info, result, plan, spec)
    return EXIT_OK
