"""``servegen spec-template ... -o FILE``: write an example workload spec (JSON) for a model of a
ServeGen data folder or for a raw trace file (optionally with fitted length correlation and
prefix section)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import polars as pl

from servegen_core.cli.common import EXIT_OK, PROG, CliError
from servegen_core.cli.inputs import DATA_SHORTCUTS, check_preset, is_model_dir, load_trace_file, pool_source, resolve_data_dir
from servegen_core.cli.output import fmt_number
from servegen_core.engines import ray as ray_engine
from servegen_core.generate.sessions import fit_prefix as fit_prefix_section
from servegen_core.sources.fit import length_correlation, pool_from_trace
from servegen_core.sources.pool import list_models, load_pool
from servegen_core.sources.traces import PRESETS
from servegen_core.spec import ServeGenSource, Span, TraceSource, WorkloadSpec

__all__ = ["TEMPLATE_DURATION_S", "TEMPLATE_START_S", "run", "spec_template"]


#: Default span of a template: one hour from noon of the first day (clipped to the data).
TEMPLATE_START_S = 12 * 3600
TEMPLATE_DURATION_S = 3600


def spec_template(
    data_dir: str = "demo",
    model: str | None = None,
    *,
    start_s: float | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    trace: str | None = None,
    preset: str | None = None,
    fit_length_correlation: bool = False,
    fit_prefix: bool | None = None,
    block_size: int | None = None,
    engine: str = "local",
) -> WorkloadSpec:
    """An example :class:`~servegen_core.spec.WorkloadSpec` for one model of ``data_dir``,
    or for a raw trace file (``trace``).

    The model defaults to the first one of the folder. The span defaults to an hour from
    noon of the data's first day, moved earlier when the data end sooner. A ``data_dir``
    that is not a shortcut is written as an absolute path, so the spec works from any folder.

    With ``trace``, the source is that file (written as an absolute path, with its
    ``preset``, detected from the columns when not given) and the span defaults to the
    whole trace. ``fit_length_correlation`` sets the spec's ``length_correlation`` to the
    Gaussian-copula correlation of the trace's input and output lengths
    (:func:`servegen_core.sources.fit.length_correlation`, rounded to 4 decimals), so that composed
    lengths keep the source's rank correlation. ``fit_prefix`` adds a ``prefix`` section
    fitted to the trace's ``hash_ids`` (:func:`servegen_core.generate.sessions.fit_prefix`,
    ``block_size`` tokens per id: the file's ``hash_block_size``, written into the spec's source and
    checked against the file; by default its layout's own, 512 for Mooncake, 16 for the Bailian and
    ServeGen offline traces; one profile per client when the trace has
    several clients) and fits ``length_correlation`` too (the prefix model keeps the copula
    between a turn's input and output). ``fit_prefix=None`` (the default) fits the section
    whenever the trace has ``hash_ids``, so a trace keeps its reuse unless asked not to
    (``fit_prefix=False``, the CLI's ``--no-prefix``). ``engine="ray"`` fits the trace's pool
    as a Ray task (:func:`servegen_core.engines.ray.fit_pool`, the same pool).
    """
    if trace is not None:
        return _trace_template(
            trace, preset, start_s=start_s, duration_s=duration_s, seed=seed, fit=fit_length_correlation,
            fit_prefix=fit_prefix, block_size=block_size, engine=engine,
        )
    if engine != "local":
        msg = "--engine applies to the fit of a raw trace (--trace FILE)"
        raise CliError(msg)
    if fit_length_correlation or fit_prefix is True:
        flag = "--fit-length-correlation" if fit_length_correlation else "--fit-prefix"
        msg = f"{flag} needs a raw trace (--trace FILE) to fit"
        raise CliError(msg)
    if preset is not None:
        msg = "--preset applies to a raw trace file (--trace FILE)"
        raise CliError(msg)
    return _pool_template(data_dir, model, start_s=start_s, duration_s=duration_s, seed=seed)


def _pool_template(
    data_dir: str, model: str | None, *, start_s: float | None, duration_s: float | None, seed: int
) -> WorkloadSpec:
    """The spec template of one model of a ServeGen data folder (see :func:`spec_template`)."""
    if model is None and not is_model_dir(Path(data_dir)):
        models = list_models(resolve_data_dir(data_dir))
        if not models:
            msg = f"no models in {resolve_data_dir(data_dir)}"
            raise CliError(msg)
        model = models[0]
    folder, name = pool_source(data_dir, model)
    pool = load_pool(folder, name)
    if duration_s is None:
        duration_s = min(TEMPLATE_DURATION_S, pool.duration_s)
    if start_s is None:
        start_s = max(pool.start_s, min(pool.start_s + TEMPLATE_START_S, pool.end_s - duration_s))
    if start_s < pool.start_s or start_s + duration_s > pool.end_s:
        msg = (
            f"span [{start_s}, {start_s + duration_s}) s is outside the data of {name} "
            f"([{pool.start_s}, {pool.end_s}) s)"
        )
        raise CliError(msg)
    start_s, duration_s = _whole(start_s), _whole(duration_s)
    text = data_dir if data_dir in DATA_SHORTCUTS else str(folder.resolve())
    return WorkloadSpec(
        source=ServeGenSource(data_dir=text, model=name),
        span=Span(start_s=start_s, duration_s=duration_s),
        seed=seed,
    )


def _trace_template(
    trace: str,
    preset: str | None,
    *,
    start_s: float | None,
    duration_s: float | None,
    seed: int,
    fit: bool,
    fit_prefix: bool | None = None,
    block_size: int | None = None,
    engine: str = "local",
) -> WorkloadSpec:
    """The spec template of a raw trace file (see :func:`spec_template`)."""
    path = Path(trace).expanduser()
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise CliError(msg)
    check_preset(preset)
    loaded = load_trace_file(path, preset=preset, hash_block_size=block_size)
    trace_df = loaded.trace.filter(~pl.col("failed").fill_null(False)) if "failed" in loaded.trace.columns else loaded.trace
    fit_trace = ray_engine.fit_pool if engine == "ray" else pool_from_trace
    pool = fit_trace(trace_df, name=f"trace/{path.name}")  # the pool a spec composes from
    start = 0.0 if start_s is None else float(start_s)
    if start >= pool.end_s or (duration_s is not None and start + duration_s > pool.end_s):
        msg = f"span [{start:g}, {start + (duration_s or 0):g}) s is outside the trace's windows ([{pool.start_s}, {pool.end_s}) s)"
        raise CliError(msg)
    has_blocks = "hash_ids" in trace_df.columns and trace_df["hash_ids"].drop_nulls().len() > 0
    if fit_prefix is None:
        fit_prefix = has_blocks
    rho = round(length_correlation(trace_df), 4) if fit or fit_prefix else 0.0
    prefix = None
    if fit_prefix:
        if not has_blocks:
            msg = f"--fit-prefix needs a trace with hash_ids (block ids); {path} has none"
            raise CliError(msg)
        try:
            several = trace_df["client_id"].n_unique() > 1  # a profile per client, as the pool fits them
            prefix = fit_prefix_section(trace_df, block_size=loaded.hash_block_size or 512, per_client=several)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    return WorkloadSpec(
        # a layout detected outside the presets (Bailian, ServeGen offline, conversations) is detected again
        source=TraceSource(
            path=str(path.resolve()), preset=loaded.preset if loaded.preset in PRESETS else None, hash_block_size=block_size,
        ),
        span=Span(start_s=_whole(start), duration_s=None if duration_s is None else _whole(duration_s)),
        length_correlation=rho,
        seed=seed,
        prefix=prefix,
    )


def _whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Write the spec template the arguments ask for to ``args.output`` (or ``out`` for ``-``)."""
    if args.no_prefix and args.fit_prefix:
        msg = "--fit-prefix and --no-prefix contradict each other; give one"
        raise CliError(msg)
    spec = spec_template(
        args.data_dir,
        args.model,
        start_s=args.start_s,
        duration_s=args.duration_s,
        seed=args.seed,
        trace=args.trace,
        preset=args.preset,
        fit_length_correlation=args.fit_length_correlation,
        fit_prefix=False if args.no_prefix else (True if args.fit_prefix else None),
        block_size=args.hash_block_size,
        engine=args.engine,
    )
    if args.output == "-":
        out.write(spec.to_json())
        return EXIT_OK
    path = Path(args.output)
    spec.to_file(path, overwrite=args.overwrite)
    what = spec.source.path if args.trace is not None else spec.source.model
    duration = "whole trace" if spec.span.duration_s is None else f"{fmt_number(spec.span.duration_s)} s"
    fitted = f", length_correlation {spec.length_correlation:g} (fitted)" if args.fit_length_correlation or spec.prefix is not None else ""
    if spec.prefix is not None:
        how = "" if args.fit_prefix else "; the trace has hash_ids, --no-prefix leaves it out"
        fitted += f", prefix section (fitted from hash_ids{how})"
    elif args.no_prefix and args.trace is not None:
        fitted += ", no prefix section (--no-prefix): the export will have no prefix reuse"
    out.write(
        f"wrote {path} ({what}, {duration} from "
        f"{fmt_number(spec.span.start_s)} s, seed {spec.seed}{fitted})\n"
        f"edit it, then: {PROG} generate --spec {path} --format mooncake -o workload.jsonl\n"
    )
    return EXIT_OK
