"""Tests for ``servegen models`` (servegen_core.cli.models), called through ``main(argv)``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _cli import DEMO_MODELS, error_line, run


def folder_facts(model_dir: Path) -> dict:
    """Clients, clients without a dataset JSON, span and window count, read from the files directly."""
    traces = sorted(model_dir.glob("chunk-*-trace.csv"))
    ids = [re.fullmatch(r"chunk-(\d+)-trace\.csv", p.name).group(1) for p in traces]
    without = [c for c in ids if not (model_dir / f"chunk-{c}-dataset.json").exists()]
    starts = [int(line.split(",", 1)[0]) for p in traces for line in p.read_text().splitlines() if line.strip()]
    return {
        "clients": len(ids),
        "without": len(without),
        "windows": len(starts),
        "span_days": (max(starts) + 600 - min(starts)) / 86400,
    }


def test_models_demo_shortcut_table(capsys, demo_dir):
    code, out, err = run(capsys, "models", "demo")
    assert code == 0, err
    root = demo_dir / "servegen"
    for model in DEMO_MODELS:
        facts = folder_facts(root / model)
        row = next(ln for ln in out.splitlines() if ln.startswith(model + " "))
        cells = row.split()
        assert int(cells[1]) == facts["clients"]
        assert int(cells[2]) == facts["without"]
        assert float(cells[3]) == pytest.approx(facts["span_days"])
        assert int(cells[4].replace(",", "")) == facts["windows"]
    # the demo chat model has trace-only clients; the reasoning model's fields include reason_ratio
    assert "reason_ratio" in next(ln for ln in out.splitlines() if ln.startswith("reason/demo-r1"))


def test_models_shared_json_matches_files(capsys, servegen_dir, shared_data):
    # the parent folder of servegen/ is accepted too
    code, out, err = run(capsys, "models", shared_data, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert Path(data["data_dir"]).resolve() == servegen_dir.resolve()
    names = [m["model"] for m in data["models"]]
    assert names == sorted(f"{p.parent.name}/{p.name}" for p in servegen_dir.glob("*/*") if p.is_dir())
    missing = (servegen_dir / "MISSING.txt").read_text().split()
    for m in data["models"]:
        facts = folder_facts(servegen_dir / m["model"])
        assert m["clients"] == facts["clients"]
        assert m["clients_without_lengths"] == facts["without"]
        assert m["clients_without_lengths"] == sum(x.startswith(m["model"] + "/") for x in missing)
        assert m["windows"] == facts["windows"]
        assert m["span_days"] == pytest.approx(facts["span_days"])
        assert "output_tokens" in m["fields"]
    large = next(m for m in data["models"] if m["model"] == "language/m-large")
    assert large["fields"] == ["input_tokens", "output_tokens"]


def test_models_shared_shortcut(capsys, servegen_dir):
    code, out, err = run(capsys, "models", "shared")
    assert code == 0, err
    assert str(servegen_dir.resolve()) in out
    assert "multimodal/mm-image" in out and "reason/deepseek-r1" in out


def test_models_missing_folder(capsys, tmp_path):
    code, out, err = run(capsys, "models", tmp_path / "nowhere")
    assert code == 2
    assert str(tmp_path / "nowhere") in error_line(err)
    assert out == ""


def test_models_empty_folder(capsys, tmp_path):
    code, _, err = run(capsys, "models", tmp_path)
    assert code == 2
    assert "no models" in error_line(err)
