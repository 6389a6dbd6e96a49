"""Tests for servegen_core.cli.main: usage errors, exit codes, ``python -m servegen_core``."""

from __future__ import annotations

import subprocess
import sys

from _cli import DEMO_MODELS, run


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "servegen: error:" in err
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and "invalid choice" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("models", "summary", "generate", "validate", "spec-template"):
        assert command in out


def test_python_dash_m_runs_the_cli(demo_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "servegen_core", "models", str(demo_dir / "servegen")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(m in proc.stdout for m in DEMO_MODELS)
