"""Helpers for tests that call the CLI in-process through ``servegen_core.cli.main``."""

from __future__ import annotations

from servegen_core.cli import main


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """Run ``servegen ARGV`` in this process: the exit code, stdout and stderr."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The single ``servegen: error: ...`` line of stderr (and no traceback)."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("servegen: error: ")]
    assert len(lines) == 1, err
    return lines[0]
