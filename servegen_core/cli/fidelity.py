"""``servegen fidelity --spec SPEC | --trace FILE ...``: the fidelity scorecard of a composed workload
against its source, line by line (exit 1 when a target fails).

``--spec`` composes the spec and scores it against its source
(:func:`servegen_core.generate.fidelity.spec_fidelity`: a trace source's trace over the spec's
span and clients; for ServeGen data, which hold no trace, an independent second draw of the
model); ``--trace`` is the round trip fit -> compose -> compare of a trace file
(:func:`servegen_core.generate.fidelity.trace_round_trip`).
"""

from __future__ import annotations

import argparse
from typing import TextIO

from servegen_core.cli.common import EXIT_CHECK_FAILED, EXIT_OK, CliError
from servegen_core.cli.inputs import check_preset, read_spec
from servegen_core.cli.output import fmt_number, format_table, print_json
from servegen_core.generate.fidelity import SpecFidelity, spec_fidelity, trace_round_trip

__all__ = ["run"]


def _score(args: argparse.Namespace) -> SpecFidelity:
    """The scorecard the arguments ask for."""
    if args.spec is not None:
        if args.preset is not None:
            msg = "--preset applies to a --trace file"
            raise CliError(msg)
        spec = read_spec(args.spec, seed=args.seed, hash_block_size=args.hash_block_size)
        return spec_fidelity(spec, naive=args.naive, alpha=args.alpha, max_requests=args.max_requests)
    check_preset(args.preset)
    return trace_round_trip(
        args.trace, preset=args.preset, seed=0 if args.seed is None else args.seed, naive=args.naive,
        alpha=args.alpha, max_requests=args.max_requests, hash_block_size=args.hash_block_size,
    )


def _print_text(out: TextIO, result: SpecFidelity, what: str) -> None:
    report = result.report
    out.write(f"Fidelity scorecard of {what}\n")
    out.write(f"  generated: {result.generated_text}\n")
    out.write(f"  against:   {result.source_text}\n\n")
    # Against the model, every target ends with the same bracketed reminder, said once above.
    model_note = " [reference is a draw of the model"
    rows = [
        (ln.name, ln.source_value, ln.generated_value, ln.statistic, ln.verdict.upper() if ln.passed is False else ln.verdict,
         ln.target.split(model_note, 1)[0])
        for ln in report.lines
    ]
    headers = ("line", "source", "generated", "statistic", "verdict", "target")
    out.write(format_table(headers, rows, numeric=(False, True, True, True, False, False)) + "\n\n")
    decided = [ln for ln in report.lines if ln.passed is not None]
    failed = report.failed()
    out.write(
        f"{len(decided) - len(failed)} of {len(decided)} decided lines passed "
        f"({len(report.lines) - len(decided)} without a verdict; family-wise alpha {fmt_number(report.alpha)}, "
        f"each line at {fmt_number(report.line_alpha)})"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + "\n"
    )
    for note in report.notes:
        out.write(f"note: {note}\n")
    for warning in result.warnings:
        out.write(f"warning: {warning}\n")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Score the workload ``args`` describe against its source; report on ``out``.

    Exit code 0 when every decided line passes, 1 when one fails; a scorecard without lines
    (a workload or source of fewer than two requests) is a data error (:class:`CliError`, 2).
    """
    result = _score(args)
    if not result.report.lines:
        msg = f"no fidelity scorecard: {result.report.reason}"
        raise CliError(msg)
    naive = f"the naive baseline '{args.naive}' of " if args.naive else ""
    what = f"{naive}{args.spec}" if args.spec is not None else f"{naive}the round trip of {args.trace} (fit -> compose -> compare)"
    if args.json:
        print_json({"spec": args.spec, "trace": args.trace, **result.to_dict()}, out)
    else:
        _print_text(out, result, what)
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED
