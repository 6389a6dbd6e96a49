"""Tests for ``servegen validate`` (servegen_core.cli.validate)."""

from __future__ import annotations

import json
import re

import polars as pl

from _cli import demo_spec, error_line, run, write_spec


def test_validate_composed_demo_passes(capsys, tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.spec import WorkloadSpec

    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 36000, "duration_s": 3600}))
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True and report["workload"] is None
    checks = {c["name"]: c for c in report["checks"]}
    assert {"total_requests", "rate_tracking", "client_share", "cv_ratio", "length_ks"} <= set(checks)
    n = compose(WorkloadSpec.from_file(spec_path)).trace.height
    assert f"{n:,} requests generated" in checks["total_requests"]["detail"]
    # the text form: one row per check, all "ok", and the count line
    code, out, err = run(capsys, "validate", "--spec", spec_path)
    assert code == 0, err
    measured = [name for name, c in checks.items() if c["passed"] is not None]
    for name in measured:
        assert re.search(rf"^{name}\s+\S+\s+.*\sok\s", out, re.M), name
    # a check with nothing to measure has no verdict: "not measured", with the reason, not a failure
    for name in set(checks) - set(measured):
        assert checks[name]["detail"].startswith("not measured: "), checks[name]
        assert re.search(rf"^{name}\s.*\snot measured\s", out, re.M), name
    tail = f"{len(measured)} of {len(measured)} checks passed"
    assert tail in out and "failed:" not in out


def test_validate_exported_file_and_a_broken_one(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 36000, "duration_s": 3600}))
    target = tmp_path / "w.csv"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target)[0] == 0
    code, out, err = run(capsys, "validate", "--spec", tmp_path / "w.csv.spec.json", "--workload", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    rows = pl.read_csv(target, schema_overrides={"client_id": pl.String})
    total = next(c for c in report["checks"] if c["name"] == "total_requests")
    assert f"{rows.height:,} requests generated" in total["detail"]

    # every other request removed: the total and the rate tracking fail, exit code 1
    half = tmp_path / "half.csv"
    rows.gather_every(2).write_csv(half)
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", half)
    assert code == 1, err
    # about half the requests (the counts are random around their targets, so not exactly half)
    m = re.search(r"^total_requests\s+(0\.\d+)\s.*\sFAIL\s", out, re.M)
    assert m and abs(float(m.group(1)) - 0.5) < 0.02, out
    assert re.search(r"failed: total_requests, rate_tracking\b", out)


def test_validate_benchmark_format_without_client_ids(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.jsonl"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "vllm", "-o", target)[0] == 0
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", target)
    assert code == 1, err
    assert "carries no client ids of the spec" in out
    assert re.search(r"^client_share\s.*\sFAIL\s", out, re.M)


def test_validate_mooncake_export_keeps_the_client_ids(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.jsonl"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", target)[0] == 0
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", target)
    assert "carries no client ids of the spec" not in out
    assert not re.search(r"^client_share\s.*\sFAIL\s", out, re.M), out


def test_validate_parquet_parts_folder(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.parquet"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "parquet", "-o", target, "--chunk-s", "600")[0] == 0
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", target, "--json")
    assert code == 0, err
    assert json.loads(out)["passed"] is True


def test_validate_shared_m_large(capsys, tmp_path, servegen_dir):
    spec_path = write_spec(
        tmp_path,
        {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
            "span": {"start_s": 50400, "duration_s": 600},
            "seed": 3,
        },
    )
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--json")
    report = json.loads(out)
    assert code == (0 if report["passed"] else 1), err
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["total_requests"]["passed"] and checks["client_share"]["passed"]
    assert checks["cv_ratio"]["n"] > 0 and checks["length_ks"]["n"] > 0
    # m-large's clients without a dataset file borrow the other clients' lengths, and it is said so
    assert any("without length data" in n and "borrow lengths" in n for n in report["notes"])


def test_validate_errors(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 0, "duration_s": -1}))
    code, _, err = run(capsys, "validate", "--spec", spec_path)
    assert code == 2 and "spec key 'span.duration_s'" in error_line(err)
    good = write_spec(tmp_path, demo_spec(), name="good.json")
    code, _, err = run(capsys, "validate", "--spec", good, "--workload", tmp_path / "absent.csv")
    assert code == 2 and "absent.csv" in error_line(err)
