"""The ``servegen`` argument parser: one small function per command adds its arguments, and
:data:`COMMANDS` names each command's help line, that function and the module that runs it
(imported only when the command runs, so ``servegen --help`` stays fast).

Numbers are range-checked while parsing (``_number_arg``): a value out of range is a usage
error, ``servegen: error: argument --seed: expected a whole number in [0, 2**63), got '-1'``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servegen_core.cli.common import DEFAULT_CHUNK_S, EXIT_ERROR, PROG
from servegen_core.engines import ENGINES
from servegen_core.export.formats import DEFAULT_BLOCK_SIZE, FORMATS
from servegen_core.limits import MAX_BATCHED_TOKENS, MAX_BLOCK_SIZE, MAX_NUM_SEQS, MAX_REPLICAS, MAX_TENSOR_PARALLEL, max_workers
from servegen_core.serve.costmodel import DEFAULT_BANDWIDTH_EFFICIENCY, DEFAULT_COMPUTE_EFFICIENCY, DEFAULT_OVERHEAD_S
from servegen_core.serve.hardware import GPU_ALIASES, GPUS, MODELS
from servegen_core.serve.simulate import ROUTERS, SESSION_MODES
from servegen_core.serve.whatif import DEFAULT_NAIVE_KINDS, SLO_PERCENTILES
from servegen_core.sources.traces import PRESETS
from servegen_core.spec import NAIVE_KINDS

__all__ = ["COMMANDS", "Command", "CommandParser", "build_parser"]


class CommandParser(argparse.ArgumentParser):
    """argparse whose usage errors read ``servegen: error: ...`` (also in subcommands) and exit with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{PROG}: error: {message}\n")


def _number_arg(kind: type, test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """An argparse ``type``: the text as a ``kind`` number for which ``test`` holds (finite), else
    the usage error ``expected <what>, got '<text>'``."""
    def parse(text: str) -> Any:
        shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown}") from None
        if not ((isinstance(value, int) or math.isfinite(value)) and test(value)):  # a 400-digit int has no float
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown}")
        return value

    parse.__name__ = what
    return parse


_pos_float = _number_arg(float, lambda v: v > 0, "a positive number")
_nonneg_float = _number_arg(float, lambda v: v >= 0, "a number >= 0")
_seed = _number_arg(int, lambda v: 0 <= v < 2**63, "a whole number in [0, 2**63)")
_chunk_s = _number_arg(float, lambda v: 1 <= v <= 1e9, "a number of seconds in [1, 1e9]")
_max_requests = _number_arg(int, lambda v: 1 <= v <= 10**12, "a whole number in [1, 10**12]")
_submission_rps = _number_arg(float, lambda v: 0 < v <= 1e9, "a rate in (0, 1e9] requests per second")
_alpha = _number_arg(float, lambda v: 0 < v < 1, "a significance level in (0, 1)")


_block_size = _number_arg(int, lambda v: 1 <= v <= MAX_BLOCK_SIZE, f"a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}]")


def _hash_block_size_argument(p: argparse.ArgumentParser, what: str, *aliases: str) -> None:
    """``--hash-block-size TOKENS``: the tokens per ``hash_ids`` entry of the trace ``what`` names,
    for a file whose block size is not its layout's documented one (dest ``hash_block_size``)."""
    p.add_argument(
        "--hash-block-size", *aliases, dest="hash_block_size", type=_block_size, default=None, metavar="TOKENS",
        help=(
            f"tokens per hash_ids entry of {what} (default: the layout's own, 512 for Mooncake, 16 for Bailian "
            "and ServeGen offline traces; give it for other block sizes, e.g. 16 for a vllm export; a ServeGen "
            "conversation file keeps its hashed lists as hash_ids only with it); checked against the file"
        ),
    )


def _count(hi: int, what: str = "a whole number") -> Callable[[str], int]:
    return _number_arg(int, lambda v: 1 <= v <= hi, f"{what} in [1, {hi:,}]")


#: Largest SLO objective and Poisson-baseline window accepted on the command line (seconds).
_WHATIF_MAX_S = 86_400.0
_whatif_seconds = _number_arg(float, lambda v: 0 < v <= _WHATIF_MAX_S, f"a number of seconds in (0, {_WHATIF_MAX_S:,.0f}]")


def _objective_seconds(text: str) -> float | None:
    """An SLO objective: seconds in (0, max], or ``none`` (no objective on that latency)."""
    if text.strip().lower() == "none":
        return None
    return _whatif_seconds(text)


_efficiency = _number_arg(float, lambda v: 0 < v <= 1, "a share in (0, 1]")
_overhead_ms = _number_arg(float, lambda v: 0 <= v <= 60_000, "a number of milliseconds in [0, 60,000]")




def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", metavar="DATA_DIR", help="data folder, or 'demo' / 'shared'")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def _summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="ServeGen data folder ('demo', 'shared', a path) or a trace file")
    p.add_argument("--model", help="model of the data folder, e.g. language/m-large")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of a trace file (default: detected)")
    _hash_block_size_argument(p, "a trace file")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def _engine_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--engine", choices=list(ENGINES), default="local",
        help=f"where {what} runs: this process (local, default) or Ray tasks (ray: the cluster at "
        "$SERVEGEN_RAY_ADDRESS, else a local Ray with 2 CPUs; pip install 'servegen-core[ray]'); same bytes",
    )


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, metavar="SPEC", help="workload spec (JSON), e.g. from spec-template")
    p.add_argument(
        "-f", "--format", required=True, choices=list(FORMATS), metavar="FORMAT",
        help=f"output format: {', '.join(FORMATS)}",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write (its spec goes to OUT.spec.json)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT (and its spec) if they exist")
    p.add_argument(
        "--chunk-s", type=_chunk_s, metavar="N",
        help=(
            f"generate and write N span seconds at a time (default {DEFAULT_CHUNK_S:g}; parquet is written "
            "whole unless given, and as a folder of part files when given)"
        ),
    )
    p.add_argument(
        "--naive",
        choices=list(NAIVE_KINDS),
        help="compose a naive baseline of the spec instead: only Poisson arrivals (poisson), only pooled lengths "
        "(pooled_lengths), both (poisson_pooled), or a constant rate with Poisson arrivals (constant)",
    )
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's)")
    p.add_argument(
        "--batch", action="store_true",
        help="offline batch mode: submit the composed requests as one batch job, all at t = 0 (the spec's batch key)",
    )
    p.add_argument(
        "--submission-rps", type=_submission_rps, metavar="RPS",
        help="with --batch: submit the job's requests one after another at RPS requests per second instead",
    )
    p.add_argument(
        "--block-size", type=_block_size, default=None, metavar="TOKENS",
        help=(
            f"tokens per hash_ids block (default: the target's own, {DEFAULT_BLOCK_SIZE} for mooncake and "
            "guidellm, 16 for vllm timed_trace)"
        ),
    )
    p.add_argument(
        "--sessions", choices=["open", "closed"], default="open",
        help="mooncake conversations: later turns at their timestamps (open, default) or AIPerf's delay after the previous response (closed)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _engine_argument(p, "generation")
    p.add_argument(
        "--max-requests", type=_max_requests, metavar="N",
        help=(
            "refuse a workload expected to hold more than N requests (default: $SERVEGEN_MAX_REQUESTS or "
            "200,000,000 when streamed; $SERVEGEN_MAX_REQUESTS_MEMORY or 20,000,000 for parquet written whole)"
        ),
    )


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, metavar="SPEC", help="workload spec (JSON)")
    p.add_argument("--workload", metavar="FILE", help="workload file to check (default: compose the spec)")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of the workload file (default: detected)")
    _hash_block_size_argument(p, "the spec's trace source (sets source.hash_block_size)")
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument(
        "--max-requests", type=_max_requests, metavar="N",
        help="refuse to compose a workload expected to hold more than N requests (default: the in-memory limit)",
    )


def _spec_template_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="spec file to write ('-' for stdout)")
    p.add_argument("--data-dir", default="demo", help="ServeGen data folder, 'demo' (default) or 'shared'")
    p.add_argument("--model", help="model, e.g. language/m-large (default: the folder's first model)")
    p.add_argument("--trace", metavar="FILE", help="a raw trace file as the source instead of ServeGen data")
    p.add_argument("--preset", help="the trace's preset (default: detected from its columns)")
    p.add_argument(
        "--fit-length-correlation", action="store_true",
        help="set length_correlation to the input/output correlation fitted from --trace",
    )
    p.add_argument(
        "--fit-prefix", action="store_true",
        help="add a prefix section (shared prompts, sessions) fitted to the hash_ids of --trace "
        "(the default when the trace has hash_ids; an error when it has none)",
    )
    p.add_argument(
        "--no-prefix", action="store_true",
        help="leave the prefix section out even when --trace has hash_ids (the export then has no prefix reuse)",
    )
    _hash_block_size_argument(p, "--trace, used by --fit-prefix and written to the spec's source.hash_block_size", "--block-size")
    p.add_argument(
        "--start-s", type=_nonneg_float,
        help="span start in seconds of the data (default: noon of day 1; a trace: its start)",
    )
    p.add_argument("--duration-s", type=_pos_float, help="span length in seconds (default 3600; a trace: all of it)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    _engine_argument(p, "the fit of --trace")


def _fidelity_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--spec", metavar="SPEC",
        help="workload spec (JSON): compose it and score it against its source (a trace source: the trace over the "
        "spec's span and clients; ServeGen data: an independent second draw of the model, lines named *_vs_model)",
    )
    what.add_argument(
        "--trace", metavar="FILE",
        help="raw trace file: the round trip fit -> compose -> compare (the spec spec-template --trace writes)",
    )
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of the --trace file (default: detected)")
    _hash_block_size_argument(p, "--trace, or of the --spec's trace source (sets source.hash_block_size); also the prefix lines' block size")
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's; default 0 with --trace)")
    p.add_argument(
        "--alpha", type=_alpha, default=0.01,
        help="family-wise significance level of the whole scorecard (default 0.01; each line at alpha / lines)",
    )
    p.add_argument(
        "--naive", choices=list(NAIVE_KINDS),
        help="score a naive baseline of the spec instead (e.g. poisson), against the same reference",
    )
    p.add_argument(
        "--max-requests", type=_max_requests, metavar="N",
        help="refuse to compose a workload expected to hold more than N requests (default: the in-memory limit)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


#: ``whatif --workers`` default: two worker processes (the search's answer does not depend on the count).
WHATIF_WORKERS = min(2, max_workers())


def _whatif_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", metavar="SPEC", help="workload spec (JSON): compared with its naive baselines")
    p.add_argument("--trace", metavar="FILE", help="raw trace file: compared with its Poisson baseline")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of the --trace file (default: detected)")
    p.add_argument("--model", required=True, choices=list(MODELS), help="served model (roofline cost model)")
    p.add_argument("--gpu", required=True, choices=[*GPUS, *GPU_ALIASES], help="GPU of one replica")
    p.add_argument("--tensor-parallel", type=_count(MAX_TENSOR_PARALLEL), default=1, metavar="N", help="GPUs per replica (default 1)")
    p.add_argument(
        "--efficiency", type=_efficiency, default=DEFAULT_COMPUTE_EFFICIENCY,
        help=f"share of peak FLOP/s reached (default {DEFAULT_COMPUTE_EFFICIENCY:g})",
    )
    p.add_argument(
        "--bandwidth-efficiency", type=_efficiency, default=DEFAULT_BANDWIDTH_EFFICIENCY,
        help=f"share of peak memory bandwidth reached (default {DEFAULT_BANDWIDTH_EFFICIENCY:g})",
    )
    p.add_argument(
        "--overhead-ms", type=_overhead_ms, default=DEFAULT_OVERHEAD_S * 1e3,
        help=f"fixed time per iteration in ms (default {DEFAULT_OVERHEAD_S * 1e3:g})",
    )
    p.add_argument(
        "--calibration", nargs="+", metavar="FILE",
        help="fit the cost model to your benchmark results (AIPerf profile_export_aiperf.json, vLLM bench JSON, or CSV)",
    )
    p.add_argument(
        "--slo-ttft-p99", "--slo-ttft", type=_objective_seconds, default=2.0, metavar="S",
        help="time to first token objective in seconds, at --slo-percentile (default 2; none: no TTFT objective)",
    )
    p.add_argument(
        "--slo-tpot-p99", "--slo-tpot", type=_objective_seconds, default=0.1, metavar="S",
        help="time per output token objective in seconds, at --slo-percentile (default 0.1; none: no TPOT objective)",
    )
    p.add_argument(
        "--slo-e2e", type=_objective_seconds, default=None, metavar="S",
        help="end-to-end latency objective in seconds, at --slo-percentile (default none)",
    )
    p.add_argument(
        "--slo-percentile", type=int, choices=list(SLO_PERCENTILES), default=99, metavar="Q",
        help=f"percentile every objective bounds, one of {', '.join(map(str, SLO_PERCENTILES))} (default 99)",
    )
    p.add_argument(
        "--range", action=argparse.BooleanOptionalAction, default=True,
        help="a spec's answer over 3 seeds and the sub-window models gamma, weibull, hyperexp, mmpp, beside the "
        "Poisson baseline's over the seeds (default); --no-range: the spec's seed and model only",
    )
    p.add_argument(
        "--baselines", metavar="LIST",
        help=f"comma-separated naive baselines of a spec, from {','.join(NAIVE_KINDS)} (default: {','.join(DEFAULT_NAIVE_KINDS)})",
    )
    p.add_argument("--router", choices=list(ROUTERS), default="round_robin", help="request router (default round_robin)")
    p.add_argument(
        "--sessions", choices=list(SESSION_MODES), default="closed",
        help="closed: a session's next turn is sent its think time after the previous response (default); open: every request at its timestamp",
    )
    p.add_argument(
        "--chunked-prefill", action=argparse.BooleanOptionalAction, default=True,
        help="chunked prefill, as current vLLM serves (default); --no-chunked-prefill: prefill-first (vLLM V0)",
    )
    p.add_argument("--max-num-seqs", type=_count(MAX_NUM_SEQS), default=256, metavar="N", help="running sequences per replica (default 256)")
    p.add_argument("--max-batched-tokens", type=_count(MAX_BATCHED_TOKENS), default=8192, metavar="N", help="tokens per iteration (default 8192)")
    p.add_argument("--max-replicas", type=_count(MAX_REPLICAS), default=1024, metavar="N", help="largest replica count tried (default 1024)")
    p.add_argument("--window-s", type=_whatif_seconds, default=600.0, help="windows keeping a trace's request counts in its Poisson baseline (default 600)")
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's; the trace baseline's draw)")
    p.add_argument(
        "--workers", type=_count(max_workers()), default=WHATIF_WORKERS, metavar="N",
        help=f"processes simulating the replicas of a run (default {WHATIF_WORKERS}: forkserver worker processes, the same "
        f"answer as --workers 1 in one process; at most {max_workers()}: 4 x the CPUs)",
    )
    p.add_argument("--max-requests", type=_max_requests, metavar="N", help="refuse a workload expected to hold more than N requests")
    p.add_argument(
        "--by-class", action="store_true",
        help="with a spec that has slo_classes: also the replicas every SLO class needs (priority scheduling)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


@dataclass(frozen=True)
class Command:
    """One ``servegen`` command: its help line, the function adding its arguments, and the
    module whose ``run(args, out) -> int`` carries it out."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    module: str


#: The commands, in the order ``servegen --help`` lists them.
COMMANDS: dict[str, Command] = {
    "models": Command("list the models of a ServeGen data folder", _models_arguments, "servegen_core.cli.models"),
    "summary": Command(
        "headline characterization of a ServeGen model or a raw trace", _summary_arguments, "servegen_core.cli.summary"
    ),
    "generate": Command("compose the workload of a spec and export it", _generate_arguments, "servegen_core.cli.generate"),
    "validate": Command(
        "check a workload against its spec and source (exit 1 if a check fails)", _validate_arguments,
        "servegen_core.cli.validate",
    ),
    "fidelity": Command(
        "score a composed workload against its source, line by line (exit 1 if a target fails)", _fidelity_arguments,
        "servegen_core.cli.fidelity",
    ),
    "spec-template": Command(
        "write an example workload spec (JSON)", _spec_template_arguments, "servegen_core.cli.spec_template"
    ),
    "whatif": Command(
        "replicas a workload needs for a latency SLO, realistic vs its naive baselines (simulated)", _whatif_arguments,
        "servegen_core.cli.whatif",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``servegen`` argument parser: ``--debug`` anywhere, and one subcommand of :data:`COMMANDS`
    (its name in ``args.command``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="print the traceback of an unexpected error (exit code 3)",
    )
    parser = CommandParser(
        prog=PROG,
        description="Characterize LLM-serving traces and compose per-client workloads from ServeGen data.",
        epilog="exit codes: 0 ok, 1 a validation check or fidelity target failed, 2 usage, spec, data or file error, 3 unexpected error",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    sub.required = True
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, parents=[common]))
    return parser
