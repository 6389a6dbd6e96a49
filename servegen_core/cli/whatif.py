"""``servegen whatif (--spec SPEC | --trace FILE) --model M --gpu G ...``: the replicas a workload
needs for a latency SLO, realistic vs its naive baselines, by simulation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import polars as pl

from servegen_core.cli.common import EXIT_OK, PROG, CliError
from servegen_core.cli.inputs import read_spec
from servegen_core.cli.output import format_table, print_json
from servegen_core.limits import max_requests as default_max_requests
from servegen_core.generate.compose import compose
from servegen_core.serve.by_class import ClassProvisioning, classes_of_spec, min_replicas_by_class
from servegen_core.serve.calibration import calibrate
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.serve.simulate import ServerConfig
from servegen_core.serve.whatif import DEFAULT_NAIVE_KINDS, AnswerRange, Comparison, Slo, answer_range, compare_spec, compare_trace
from servegen_core.sources.traces import load_trace

__all__ = ["run", "slo_of", "whatif_argv"]


def _whatif_cost(args: argparse.Namespace) -> CostModel:
    roof = roofline(
        args.model, args.gpu, efficiency=args.efficiency, bandwidth_efficiency=args.bandwidth_efficiency,
        overhead_s=args.overhead_ms / 1e3, tensor_parallel=args.tensor_parallel,
    )
    if not args.calibration:
        return roof
    return calibrate(args.calibration, base=roof, config=_server_config(args), name=f"calibrated {args.model}@{args.gpu}")


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The scheduler settings the arguments ask for."""
    return ServerConfig(
        max_num_seqs=args.max_num_seqs, max_batched_tokens=args.max_batched_tokens, chunked_prefill=args.chunked_prefill,
    )


def slo_of(args: argparse.Namespace) -> Slo:
    """The objective the arguments ask for: TTFT, TPOT and end-to-end bounds at ``--slo-percentile``."""
    return Slo(ttft_p99_s=args.slo_ttft_p99, tpot_p99_s=args.slo_tpot_p99, e2e_s=args.slo_e2e, percentile=args.slo_percentile)


def whatif_argv(
    workload: tuple[str, str], *, model: str, gpu: str, slo: Slo, config: ServerConfig, tensor_parallel: int = 1,
    efficiency: float = 0.6, router: str = "round_robin", max_replicas: int = 1024, baselines: Sequence[str] | None = None,
) -> list[str]:
    """The ``servegen whatif`` arguments of one run: ``workload`` is ``("--spec", path)`` or
    ``("--trace", path)``; every objective, percentile and scheduler setting is spelled out
    (``none`` for an objective not set), so the command runs the same comparison."""
    def seconds(v: float | None) -> str:
        return "none" if v is None else f"{v:g}"

    argv = [
        "whatif", *workload, "--model", model, "--gpu", gpu, "--tensor-parallel", str(tensor_parallel), "--efficiency", f"{efficiency:g}",
        "--slo-ttft", seconds(slo.ttft_p99_s), "--slo-tpot", seconds(slo.tpot_p99_s), "--slo-e2e", seconds(slo.e2e_s),
        "--slo-percentile", str(slo.percentile), "--router", router, "--max-replicas", str(max_replicas),
        "--max-num-seqs", str(config.max_num_seqs), "--max-batched-tokens", str(config.max_batched_tokens),
        "--chunked-prefill" if config.chunked_prefill else "--no-chunked-prefill",
    ]
    if baselines is not None:
        argv += ["--baselines", ",".join(baselines)]
    return argv


def _compare(args: argparse.Namespace, slo: Slo) -> tuple[Comparison, str, AnswerRange | None]:
    """The comparison the arguments ask for, the name of the workload compared, and the answer's
    range over seeds and sub-window models (a spec with ``--range``; else None)."""
    cost = _whatif_cost(args)
    config = _server_config(args)
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else list(DEFAULT_NAIVE_KINDS)
    progress = None if args.quiet else (lambda text: sys.stderr.write(f"{PROG}: {text}\n"))
    common = {
        "config": config, "router": args.router, "max_replicas": args.max_replicas, "workers": args.workers, "progress": progress,
        "sessions": args.sessions,
    }
    if args.spec is not None:
        spec = read_spec(args.spec, seed=args.seed)
        limit = args.max_requests if args.max_requests is not None else default_max_requests(streamed=False)
        comparison = compare_spec(spec, slo, cost, naive=baselines, max_requests=limit, **common)
        spread = None
        if args.range:
            spread = answer_range(
                spec, slo, cost, naive=[b for b in baselines if b in ("poisson",)] or baselines[:1], max_requests=limit,
                start=comparison.table["replicas"][0], **common,
            )
        return comparison, str(args.spec), spread
    if baselines != ["poisson"] and args.baselines:
        msg = "a raw trace is compared with its Poisson baseline only (--baselines poisson)"
        raise CliError(msg)
    loaded = load_trace(args.trace, preset=args.preset)
    comparison = compare_trace(loaded.trace, slo, cost, window_s=args.window_s, seed=args.seed or 0, **common)
    return comparison, str(args.trace), None


def _by_class(args: argparse.Namespace, start: int | None) -> ClassProvisioning | None:
    """The per-class answer of ``--by-class`` (None without it); the spec needs ``slo_classes``."""
    if not args.by_class:
        return None
    spec = read_spec(args.spec, seed=args.seed)
    limit = args.max_requests if args.max_requests is not None else default_max_requests(streamed=False)
    trace = compose(spec, max_requests=limit).trace
    return min_replicas_by_class(
        trace, classes_of_spec(spec), _whatif_cost(args), config=_server_config(args), router=args.router,
        max_replicas=args.max_replicas, start=start, sessions=args.sessions,
    )


def _print_classes(out: TextIO, res: ClassProvisioning) -> None:
    headers = ("class", "requests", "objective", "replicas alone", "p99 TTFT s", "p99 TPOT s", "p99 E2E s", "met")
    rows = [
        (r["slo_class"], r["requests"], r["objective"], "none" if r["replicas"] is None else r["replicas"],
         r.get("ttft_p99_s"), r.get("tpot_p99_s"), r.get("e2e_p99_s"), None if r.get("met") is None else ("yes" if r["met"] else "no"))
        for r in res.by_class.iter_rows(named=True)
    ]
    out.write("\n" + format_table(headers, rows, numeric=(False, True, False, True, True, True, True, False)) + "\n")
    out.write(res.sentence() + "\n")


def _print_text(out: TextIO, comparison: Comparison, slo: Slo, what: str, spread: AnswerRange | None) -> None:
    out.write(f"Replicas needed for {slo.describe()}: {what}\n{comparison.cost_note}\n\n")
    n_real = comparison.table["replicas"][0]
    at = f" at {n_real}" if n_real is not None else ""
    headers = (
        "workload", "requests", "replicas", "under-provisioned", f"p50 TTFT s{at}", f"p99 TTFT s{at}", f"p99 TPOT s{at}",
        f"attainment{at}", f"goodput req/s{at}", "SLO met",
    )
    rows = [
        (
            r["workload"], r["requests"], "none" if r["replicas"] is None else r["replicas"],
            None if r["under_provisioning"] is None else f"{r['under_provisioning']:.0%}",
            r["ttft_p50_s"], r["ttft_p99_s"], r["tpot_p99_s"], None if r["attainment"] is None else f"{r['attainment']:.2%}",
            r["goodput_rps"], None if r["met"] is None else ("yes" if r["met"] else ("no, unstable" if r["unstable"] else "no")),
        )
        for r in comparison.table.iter_rows(named=True)
    ]
    out.write(format_table(headers, rows, numeric=(False, True, True, True, True, True, True, True, True, False)) + "\n\n")
    if n_real is not None and (slo.percentile != 99 or slo.e2e_s is not None):
        labels = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
        at_real = comparison.curves.filter(pl.col("replicas") == n_real)
        for r in at_real.iter_rows(named=True):
            values = ", ".join(f"p{slo.percentile} {labels[k]} {r[f'{k}_p{slo.percentile}_s']:.4g} s" for k, _ in slo.objectives())
            out.write(f"{r['workload']} at {n_real} replica{'' if n_real == 1 else 's'}: {values}\n")
    for r in comparison.table.iter_rows(named=True):
        if r["note"]:
            out.write(f"note: {r['workload']}: {r['note']}\n")
    out.write(comparison.sentence() + "\n")
    if spread is not None:
        out.write(spread.sentence() + "\n")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Simulate the workload and its baselines and print the replicas each needs on ``out``."""
    if (args.spec is None) == (args.trace is None):
        msg = "give exactly one of --spec (a workload spec) or --trace (a raw trace file)"
        raise CliError(msg)
    if args.preset is not None and args.trace is None:
        msg = "--preset applies to a --trace file"
        raise CliError(msg)
    if args.slo_ttft_p99 is None and args.slo_tpot_p99 is None and args.slo_e2e is None:
        msg = "give a TTFT, TPOT and/or end-to-end objective (--slo-ttft-p99, --slo-tpot-p99, --slo-e2e; none turns one off)"
        raise CliError(msg)
    slo = slo_of(args)
    if args.by_class and (args.spec is None or read_spec(args.spec, seed=args.seed).slo_classes is None):
        raise CliError("--by-class needs a --spec with an slo_classes section")  # before any simulating
    comparison, what, spread = _compare(args, slo)
    classes = _by_class(args, comparison.table["replicas"][0])
    if args.json:
        by_class = {} if classes is None else {  # the key only with --by-class (the JSON without it is unchanged)
            "by_class": {"replicas": classes.replicas, "table": classes.by_class.to_dicts(), "sentence": classes.sentence()},
        }
        print_json(
            {
                "source": what,
                "slo": {"ttft_p99_s": slo.ttft_p99_s, "tpot_p99_s": slo.tpot_p99_s, "e2e_s": slo.e2e_s, "percentile": slo.percentile},
                "cost_model": comparison.cost_name,
                "cost_note": comparison.cost_note,
                "table": comparison.table.to_dicts(),
                "curves": comparison.curves.to_dicts(),
                "answer": comparison.sentence(),
                "range": None if spread is None else {
                    "runs": spread.runs.to_dicts(), "table": spread.table.to_dicts(), "gap_survives": spread.gap_survives,
                    "sentence": spread.sentence(),
                },
                **by_class,
            },
            out,
        )
        return EXIT_OK
    _print_text(out, comparison, slo, what, spread)
    if classes is not None:
        _print_classes(out, classes)
    return EXIT_OK
