"""``servegen``'s entry point: parse the arguments, run the command's module, turn errors into
one line on stderr and an exit code."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence

from servegen_core.cli.common import EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_OK, EXIT_UNEXPECTED, PROG
from servegen_core.cli.parser import COMMANDS, build_parser
from servegen_core.errors import ServeGenError, printable
from servegen_core.paths import Terminated, raise_on_sigterm

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_OK", "EXIT_UNEXPECTED", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``servegen`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: :data:`EXIT_OK` (0), :data:`EXIT_CHECK_FAILED` (1, ``validate`` found a failing
    check), :data:`EXIT_ERROR` (2, a usage, spec, data or file-system error: one line
    ``servegen: error: ...`` on stderr), :data:`EXIT_UNEXPECTED` (3, anything else: a short
    message, and the traceback only with ``--debug``), 130 on Ctrl-C, 143 on SIGTERM (both
    remove the temp file of a write in progress).
    """
    raise_on_sigterm()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    debug = bool(getattr(args, "debug", False))
    try:
        command = importlib.import_module(COMMANDS[args.command].module)
        return command.run(args, sys.stdout)
    except (ServeGenError, OSError) as exc:
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except Terminated as exc:
        sys.stderr.write(f"\n{PROG}: terminated\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return 130
    except MemoryError:
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(
            f"{PROG}: internal error: out of memory (a smaller span, rate or --chunk-s may help; "
            "rerun with --debug for the traceback)\n"
        )
        return EXIT_UNEXPECTED
    except Exception as exc:  # noqa: BLE001  (the last resort: one line, not a traceback)
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.write(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]}\n")
        else:
            sys.stderr.write(
                f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
                "(rerun with --debug for the traceback)\n"
            )
        return EXIT_UNEXPECTED


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe or a full disk behind stdout
        pass


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{printable(exc.filename)}: {exc.strerror}"
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
