"""``servegen validate --spec SPEC [--workload FILE] ...``: check a workload against its spec and
source (exit 1 when a check fails)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import polars as pl

from servegen_core.cli.common import EXIT_CHECK_FAILED, EXIT_OK, CliError
from servegen_core.cli.inputs import check_preset, load_trace_file, read_spec
from servegen_core.cli.output import format_table, print_json
from servegen_core.generate.compose import compose, plan_workload
from servegen_core.sources.load import load_source
from servegen_core.generate.validate import ValidationReport, validate
from servegen_core.schema import validate_trace
from servegen_core.sources.traces import load_trace
from servegen_core.spec import WorkloadSpec

__all__ = ["run"]


def _read_workload(path: Path, preset: str | None) -> tuple[pl.DataFrame, list[str]]:
    """A workload file (or a folder of Parquet parts written by ``generate --chunk-s``) as a RequestTrace."""
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            msg = f"{path} is a folder without part-*.parquet files"
            raise CliError(msg)
        loaded = [load_trace(p, preset=preset) for p in parts]
        trace = validate_trace(pl.concat([lt.trace for lt in loaded], how="diagonal_relaxed"), source=path)
        return trace, [w for lt in loaded for w in lt.warnings]
    if not path.is_file():
        msg = f"workload file not found: {path}"
        raise CliError(msg)
    check_preset(preset)
    loaded = load_trace_file(path, preset=preset)
    return loaded.trace, list(loaded.warnings)



def _check_composed(args: argparse.Namespace, spec: WorkloadSpec) -> tuple[ValidationReport, str, list[str]]:
    """The report on the workload the spec composes, what was checked, and notes."""
    if args.preset is not None:
        msg = "--preset applies to a --workload file"
        raise CliError(msg)
    workload = compose(spec, max_requests=args.max_requests)
    report = validate(workload)
    return report, f"workload composed from {args.spec} (seed {spec.seed})", list(workload.warnings)


def _check_file(args: argparse.Namespace, spec: WorkloadSpec) -> tuple[ValidationReport, str, list[str]]:
    """The report on the ``--workload`` file against the spec, what was checked, and notes."""
    path = Path(args.workload)
    trace, notes = _read_workload(path, args.preset)
    pool = load_source(spec)
    plan = plan_workload(spec, pool=pool)
    ids = set(trace["client_id"].unique().to_list())
    if len(plan.clients) > 1 and not ids & set(plan.clients):
        notes.append(
            f"{path} carries no client ids of the spec (its format may not store them); the per-client "
            "checks cannot pass: validate a native export (csv, jsonl or parquet) instead"
        )
    report = validate(trace, spec, pool=pool)
    return report, f"{path} against {args.spec}", notes


def _verdict(passed: bool | None) -> str:
    """``ok``, ``FAIL`` or ``not measured`` (a check with nothing to measure has no verdict)."""
    if passed is None:
        return "not measured"
    return "ok" if passed else "FAIL"


def _print_text(out: TextIO, report: ValidationReport, what: str, notes: list[str]) -> None:
    out.write(f"Validation of the {what}\n\n")
    if report.ok:
        rows = [
            (r["name"], r["value"], r["target"], _verdict(r["passed"]), r["n"], r["detail"])
            for r in report.checks.iter_rows(named=True)
        ]
        headers = ("check", "value", "target", "result", "n", "detail")
        out.write(format_table(headers, rows, numeric=(False, True, False, False, True, False)) + "\n\n")
        failed = report.failed()
        unmeasured = report.not_measured()
        measured = len(rows) - len(unmeasured)
        out.write(
            f"{measured - len(failed)} of {measured} checks passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else "")
            + "\n"
        )
    else:
        out.write(f"no checks: {report.reason}\n")
    for n in notes:
        out.write(f"note: {n}\n")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Validate ``args.workload`` (or the workload ``args.spec`` composes); report on ``out``."""
    spec = read_spec(args.spec, seed=args.seed, hash_block_size=args.hash_block_size)
    check = _check_composed if args.workload is None else _check_file
    report, what, notes = check(args, spec)
    if args.json:
        print_json(
            {
                "spec": str(args.spec),
                "workload": None if args.workload is None else str(args.workload),
                "passed": report.passed,
                "reason": report.reason,
                "checks": report.checks.to_dicts(),
                "notes": notes,
            },
            out,
        )
    else:
        _print_text(out, report, what, notes)
    return EXIT_OK if report.passed else EXIT_CHECK_FAILED
