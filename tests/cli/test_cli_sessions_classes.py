"""``servegen whatif --sessions`` and ``--by-class``, ``servegen generate --sessions``: against the core."""

from __future__ import annotations

import json
from pathlib import Path

from _cli import error_line, run

from servegen_core.generate.compose import compose
from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.whatif import Slo, compare_spec
from servegen_core.spec import WorkloadSpec

SPEC = {
    "schema_version": 1,
    "source": {"kind": "servegen", "data_dir": "demo", "model": "reason/demo-r1"},
    "span": {"start_s": 0, "duration_s": 1200},
    "prefix": {"version": 1, "default": {"system_prompts": None, "sessions": {
        "turns": {"kind": "geometric", "mean": 3.0, "max": 10}, "think_time_s": {"mean": 20.0, "cv": 1.0}}}},
    "slo_classes": {
        "classes": {"interactive": {"priority": 0, "ttft_p99_s": 2.0}, "batch": {"priority": 1, "e2e_p99_s": 600}},
        "clients": {"1": "batch"}, "default": "interactive",
    },
}
BASE = ["--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "2", "--slo-tpot-p99", "none", "--baselines", "poisson",
        "--no-range", "-q", "--json"]


def test_whatif_sessions_and_by_class_match_the_core(capsys, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    spec = WorkloadSpec.from_file(path)
    cost = roofline("llama-3-8b", "a100")
    for mode in ("closed", "open"):
        code, out, err = run(capsys, "whatif", "--spec", path, *BASE, "--sessions", mode, *(["--by-class"] if mode == "closed" else []))
        assert code == 0, err
        got = json.loads(out)
        core = compare_spec(spec, Slo(ttft_p99_s=2.0), cost, naive=["poisson"], sessions=mode)
        assert [r["replicas"] for r in got["table"]] == core.table["replicas"].to_list()
        if mode == "closed":
            by = min_replicas_by_class(compose(spec).trace, classes_of_spec(spec), cost, start=core.table["replicas"][0])
            assert got["by_class"]["replicas"] == by.replicas
            assert got["by_class"]["sentence"] == by.sentence()
        else:
            assert "by_class" not in got
    code, out, err = run(capsys, "whatif", "--spec", path, *BASE, "--sessions", "half")
    assert code == 2 and "--sessions" in error_line(err)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({k: v for k, v in SPEC.items() if k != "slo_classes"}))
    code, out, err = run(capsys, "whatif", "--spec", plain, *BASE, "--by-class")
    assert code == 2 and "slo_classes" in error_line(err) and out == ""


def test_generate_sessions_closed_writes_delays(capsys, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    for mode in ("open", "closed"):
        code, out, err = run(capsys, "generate", "--spec", path, "--format", "mooncake", "-o", tmp_path / f"{mode}.jsonl", "-q", "--sessions", mode)
        assert code == 0, err
    op = [json.loads(x) for x in (tmp_path / "open.jsonl").read_text().splitlines()]
    cl = [json.loads(x) for x in (tmp_path / "closed.jsonl").read_text().splitlines()]
    assert len(op) == len(cl) and not any("delay" in r for r in op)
    delayed = [r for r in cl if "delay" in r]
    assert delayed and all("timestamp" not in r and r["delay"] >= 0 for r in delayed)
    assert all(r["extra"] == {"priority": 1 if r["client_id"] == "1" else 0} for r in cl)
