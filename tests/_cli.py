"""Helpers for tests that call the CLI in-process through ``servegen_core.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from servegen_core.cli import main
from servegen_core.export.writer import export_trace
from servegen_core.generate.compose import compose
from servegen_core.spec import WorkloadSpec


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


#: The models of the embedded demo data.
DEMO_MODELS = ("language/demo-chat", "multimodal/demo-vl", "reason/demo-r1")


def check_lengths(stats: dict, values: np.ndarray) -> None:
    """A length summary of ``servegen summary`` equals the statistics of ``values``."""
    assert stats["requests"] == values.size
    assert stats["mean"] == pytest.approx(values.mean())
    for q in (50, 90, 99):
        assert stats[f"p{q}"] == np.quantile(values, q / 100, method="inverted_cdf")
    assert stats["max"] == values.max()


def write_spec(folder: Path, data: dict, name: str = "spec.json") -> Path:
    """``data`` written as the spec file ``folder/name``."""
    path = folder / name
    path.write_text(json.dumps(data, indent=2))
    return path


def demo_spec(**changes) -> dict:
    """A half-hour spec of the demo chat model, with top-level keys replaced by ``changes``."""
    spec = {
        "schema_version": 1,
        "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
        "span": {"start_s": 36000, "duration_s": 1800},
        "seed": 11,
    }
    spec.update(changes)
    return spec


def python_export(spec_path: Path, out: Path, fmt: str, **kw) -> bytes:
    """The Python API route: read the spec, compose, export_trace; the bytes written."""
    spec = WorkloadSpec.from_file(spec_path)
    export_trace(compose(spec).trace, out, fmt, spec=spec, note=None, **kw)
    return out.read_bytes()
