"""Tests for ``servegen spec-template`` (servegen_core.cli.spec_template)."""

from __future__ import annotations

import json

import pytest

from _cli import error_line, python_export, run


def test_spec_template_demo_default(capsys, tmp_path):
    from servegen_core.spec import WorkloadSpec

    target = tmp_path / "spec.json"
    code, out, err = run(capsys, "spec-template", "-o", target)
    assert code == 0, err
    spec = WorkloadSpec.from_file(target)
    assert spec.source.data_dir == "demo" and spec.source.model == "language/demo-chat"
    assert (spec.span.start_s, spec.span.duration_s) == (12 * 3600, 3600)
    assert f"generate --spec {target}" in out
    # an existing file is not replaced without --overwrite
    before = target.read_bytes()
    code, _, err = run(capsys, "spec-template", "-o", target, "--model", "reason/demo-r1")
    assert code == 2 and str(target) in error_line(err)
    assert target.read_bytes() == before
    code, _, err = run(capsys, "spec-template", "-o", target, "--model", "reason/demo-r1", "--overwrite", "--seed", "7")
    assert code == 0, err
    spec = WorkloadSpec.from_file(target)
    assert (spec.source.model, spec.seed) == ("reason/demo-r1", 7)


def test_spec_template_shared_and_bounds(capsys, servegen_dir):
    code, out, err = run(capsys, "spec-template", "--data-dir", "shared", "--model", "language/m-large", "--start-s", "86400", "--duration-s", "600", "-o", "-")
    assert code == 0, err
    d = json.loads(out)
    assert d["source"] == {"kind": "servegen", "data_dir": "shared", "model": "language/m-large"}
    assert d["span"] == {"start_s": 86400, "duration_s": 600}
    # a path is written absolute, so the spec works from any folder
    code, out, err = run(capsys, "spec-template", "--data-dir", servegen_dir, "--model", "reason/deepseek-r1", "-o", "-")
    assert code == 0, err
    assert json.loads(out)["source"]["data_dir"] == str(servegen_dir.resolve())
    # deepseek-r1 spans one day: a span past its end is refused
    code, _, err = run(capsys, "spec-template", "--data-dir", "shared", "--model", "reason/deepseek-r1", "--start-s", "86000", "-o", "-")
    assert code == 2 and "outside the data" in error_line(err)


def test_spec_template_fits_a_prefix_section_and_generate_uses_it(capsys, tmp_path, traces_dir):
    """spec-template --fit-prefix writes the section fit_prefix gives for the trace; generate
    composes it into a mooncake file whose records share blocks (the trace's reuse), as the
    Python route does; a trace without hash_ids is refused with exit 2."""
    from servegen_core.generate.sessions import fit_prefix
    from servegen_core.spec import WorkloadSpec
    from servegen_core.sources.traces import load_trace

    trace = traces_dir / "mooncake_synthetic_trace.jsonl"
    spec_path = tmp_path / "spec.json"
    code, out, err = run(capsys, "spec-template", "--trace", trace, "--fit-prefix", "-o", spec_path)
    assert code == 0, err
    assert "prefix section (fitted from hash_ids)" in out
    spec = WorkloadSpec.from_file(spec_path)
    assert spec.prefix == fit_prefix(load_trace(trace).trace, block_size=512)
    target = tmp_path / "w.jsonl"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "--format", "mooncake", "-o", target)
    assert code == 0, err
    assert target.read_bytes() == python_export(spec_path, tmp_path / "api.jsonl", "mooncake")
    recs = [json.loads(line) for line in target.read_text().splitlines()]
    seen: set[int] = set()
    reused = total = 0
    for r in recs:
        total += len(r["hash_ids"])
        reused += sum(1 for h in r["hash_ids"] if h in seen)
        seen.update(r["hash_ids"])
    assert reused / total > 0.5
    azure = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    code, _, err = run(capsys, "spec-template", "--trace", azure, "--fit-prefix", "-o", tmp_path / "a.json")
    assert code == 2 and "hash_ids" in err


def test_a_trace_with_hash_ids_keeps_its_reuse_by_default(capsys, tmp_path, traces_dir):
    """spec-template --trace on a trace with hash_ids writes the fitted prefix section (and the
    fitted length correlation) unless --no-prefix, and says which; composing the trace source
    without a prefix section warns that the export will have no prefix reuse."""
    from servegen_core.generate.compose import plan_workload
    from servegen_core.generate.sessions import fit_prefix
    from servegen_core.sources.fit import length_correlation
    from servegen_core.sources.traces import load_trace
    from servegen_core.spec import WorkloadSpec

    trace = traces_dir / "mooncake_synthetic_trace.jsonl"
    source = load_trace(trace).trace
    auto = tmp_path / "auto.json"
    code, out, err = run(capsys, "spec-template", "--trace", trace, "-o", auto)
    assert code == 0, err
    assert "prefix section (fitted from hash_ids" in out and "--no-prefix" in out
    spec = WorkloadSpec.from_file(auto)
    assert spec.prefix == fit_prefix(source, block_size=512)
    assert spec.length_correlation == pytest.approx(length_correlation(source), abs=1e-4) and spec.length_correlation != 0
    assert not any("no prefix reuse" in w for w in plan_workload(spec).warnings)

    bare = tmp_path / "bare.json"
    code, out, err = run(capsys, "spec-template", "--trace", trace, "--no-prefix", "-o", bare)
    assert code == 0, err
    assert "no prefix section (--no-prefix)" in out
    plain = WorkloadSpec.from_file(bare)
    assert plain.prefix is None and plain.length_correlation == 0.0
    warned = [w for w in plan_workload(plain).warnings if "no prefix reuse" in w]
    assert len(warned) == 1 and "hash_ids" in warned[0]

    code, _, err = run(capsys, "spec-template", "--trace", trace, "--no-prefix", "--fit-prefix", "-o", "-")
    assert code == 2 and "contradict" in err
    # a trace without hash_ids: no section, no warning about reuse
    azure = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    code, out, err = run(capsys, "spec-template", "--trace", azure, "-o", tmp_path / "a.json")
    assert code == 0 and "prefix" not in out
    assert WorkloadSpec.from_file(tmp_path / "a.json").prefix is None
