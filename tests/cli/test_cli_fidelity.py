"""Tests for ``servegen fidelity`` (servegen_core.cli.fidelity, servegen_core.generate.fidelity)."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from _cli import demo_spec, error_line, run, write_spec
from servegen_core.generate.fidelity import trace_round_trip
from servegen_core.sources.traces import load_trace


def on_off_trace(path, *, seed: int = 0, span_s: float = 3600.0) -> pl.DataFrame:
    """One client sending bursts of 30-80 requests 50-100 ms apart, separated by silences of
    80-220 s, written to ``path`` as a servegen-preset CSV (continuous timestamps)."""
    rng = np.random.default_rng(seed)
    times: list[np.ndarray] = []
    t = float(rng.uniform(0, 60))
    while t < span_s:
        n = int(rng.integers(30, 81))
        burst = t + np.concatenate(([0.0], np.cumsum(rng.uniform(0.05, 0.1, n - 1))))
        times.append(burst[burst < span_s])
        t = float(burst[-1] + rng.uniform(80, 220))
    ts = np.concatenate(times)
    ts -= ts[0]
    frame = pl.DataFrame({
        "timestamp_s": ts,
        "client_id": ["a"] * ts.size,
        "input_tokens": rng.lognormal(6, 0.8, ts.size).astype(np.int64) + 1,
        "output_tokens": rng.geometric(1 / 200, ts.size).astype(np.int64),
    })
    frame.write_csv(path)
    return frame


def table_rows(out: str) -> dict[str, str]:
    """The scorecard's rows of the text output: line name -> its verdict."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+.*?\s(pass|FAIL|n/a)\s", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


@pytest.mark.parametrize("name", ["mooncake_synthetic_trace.jsonl", "AzureLLMInferenceTrace_conv.csv"])
def test_round_trip_of_the_shared_traces_prints_every_line(capsys, traces_dir, name):
    path = traces_dir / name
    expected = trace_round_trip(path).report
    assert expected.lines and expected.reference == "trace"
    code, out, err = run(capsys, "fidelity", "--trace", path)
    assert code == (0 if expected.passed else 1), err
    rows = table_rows(out)
    verdicts = {ln.name: ("FAIL" if ln.passed is False else ln.verdict) for ln in expected.lines}
    assert rows == verdicts
    assert {"requests", "dispersion_10ms", "dispersion_600s", "interarrival_ks", "zero_gaps", "burst_runs_ks",
            "input_ks", "output_ks", "input_output_spearman"} <= set(rows)
    # counts are exact in the round trip; the trace is compared over its whole span
    assert expected.line("requests").source_value == expected.line("requests").generated_value
    assert expected.line("requests").source_value == load_trace(path).trace.height
    assert "the source trace over the spec's span" in out
    decided = [ln for ln in expected.lines if ln.passed is not None]
    assert f"{len(decided) - len(expected.failed())} of {len(decided)} decided lines passed" in out
    if name.startswith("mooncake"):
        # hash_ids in the source, none composed (no prefix section in the template): reuse lines fail
        assert rows["block_reuse"] == "FAIL"
        assert len([n for n in rows if n.startswith("lru_hit_ratio_")]) == 4


def test_poisson_baseline_of_a_bursty_source_fails(capsys, tmp_path):
    path = tmp_path / "onoff.csv"
    frame = on_off_trace(path)
    code, out, err = run(capsys, "fidelity", "--trace", path, "--naive", "poisson", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["passed"] is False and doc["naive"] == "poisson" and doc["reference"] == "trace"
    lines = {ln["name"]: ln for ln in doc["lines"]}
    assert lines["requests"]["source_value"] == frame.height
    # Poisson keeps each 600 s window's count but not the bursts (50-100 ms gaps, so no 10 ms runs
    # in either): the dispersion below the window and the gaps fail
    assert {"dispersion_1s", "dispersion_10s", "dispersion_60s", "interarrival_ks"} <= set(doc["failed"])
    assert lines["dispersion_10s"]["source_value"] > 10 * lines["dispersion_10s"]["generated_value"]
    # the text form says which baseline it scored
    code, out, _ = run(capsys, "fidelity", "--trace", path, "--naive", "poisson")
    assert code == 1
    assert "the naive baseline 'poisson' of the round trip" in out
    assert "naive baseline 'poisson' of the spec" in out
    assert table_rows(out)["interarrival_ks"] == "FAIL"


def test_pool_spec_is_compared_with_a_second_draw_of_the_model(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    code, out, err = run(capsys, "fidelity", "--spec", spec_path, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"] is True and doc["failed"] == []
    assert doc["reference"] == "model" and doc["reference_seed"] == 12  # the spec's seed 11, + 1
    assert doc["lines"] and all(ln["name"].endswith("_vs_model") for ln in doc["lines"])
    assert "second draw" in doc["source"]
    code, out, err = run(capsys, "fidelity", "--spec", spec_path, "--seed", "5")
    assert code == 0, err
    assert "seed 5," in out and "(seed 6," in out
    assert "not fidelity to real traffic" in out
    assert "requests_vs_model" in table_rows(out)


def test_trace_source_spec_is_compared_over_its_span(capsys, tmp_path, traces_dir):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    spec = {
        "schema_version": 1,
        "source": {"kind": "trace", "path": str(path)},
        "span": {"start_s": 600, "duration_s": 1200},
        "seed": 3,
    }
    spec_path = write_spec(tmp_path, spec)
    code, out, err = run(capsys, "fidelity", "--spec", spec_path, "--json")
    assert code in (0, 1), err
    doc = json.loads(out)
    ts = load_trace(path).trace["timestamp_s"]
    inside = int(((ts >= 600) & (ts < 1800)).sum())
    requests = next(ln for ln in doc["lines"] if ln["name"] == "requests")
    assert requests["source_value"] == inside
    assert "[600, 1800) s" in doc["source"] and doc["reference"] == "trace"
    # a changed rate is said in the notes
    spec["rate"] = {"kind": "observed", "factor": 2}
    code, out, err = run(capsys, "fidelity", "--spec", write_spec(tmp_path, spec, "x2.json"), "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert "requests" in doc["failed"]
    assert any("observed x 2" in n for n in doc["notes"])


def test_usage_and_data_errors_exit_2(capsys, tmp_path, traces_dir):
    spec_path = write_spec(tmp_path, demo_spec())
    trace = traces_dir / "mooncake_synthetic_trace.jsonl"
    for argv in (
        ["fidelity"],
        ["fidelity", "--spec", spec_path, "--trace", trace],
        ["fidelity", "--spec", spec_path, "--alpha", "1.5"],
        ["fidelity", "--spec", spec_path, "--naive", "nonsense"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert "servegen: error: " in err
    code, _, err = run(capsys, "fidelity", "--spec", spec_path, "--preset", "azure")
    assert code == 2 and "--preset applies to a --trace file" in error_line(err)
    code, _, err = run(capsys, "fidelity", "--trace", tmp_path / "missing.csv")
    assert code == 2 and "trace file not found" in error_line(err)
    code, _, err = run(capsys, "fidelity", "--spec", tmp_path / "missing.json")
    assert code == 2 and "spec file not found" in error_line(err)
    code, _, err = run(capsys, "fidelity", "--spec", spec_path, "--max-requests", "10")
    assert code == 2 and "above the limit of 10" in error_line(err)


def test_alpha_sets_the_line_level(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    docs = {}
    for alpha in ("0.01", "0.1"):
        code, out, err = run(capsys, "fidelity", "--spec", spec_path, "--alpha", alpha, "--json")
        assert code in (0, 1), err
        docs[alpha] = json.loads(out)
    decided = sum(ln["passed"] is not None for ln in docs["0.1"]["lines"])
    assert docs["0.1"]["alpha"] == 0.1
    assert docs["0.1"]["line_alpha"] == pytest.approx(0.1 / decided)
    # a larger alpha narrows every band
    for a, b in zip(docs["0.01"]["lines"], docs["0.1"]["lines"]):
        if a["high"] is not None and a["passed"] is not None:
            assert b["high"] <= a["high"]
