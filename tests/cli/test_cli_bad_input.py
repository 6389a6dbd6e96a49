"""The ``servegen`` command on hostile or careless input: exit codes, one-line errors, no traceback,
nothing destroyed. Exit codes: 0 ok, 1 a validation check failed, 2 usage/input error, 3 unexpected."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import polars as pl
import pytest

from _cli import error_line, run

SHARED_SPAN = {"start_s": 72000, "duration_s": 1200}


def shared_spec(servegen_dir: Path, **changes: object) -> dict:
    spec = {
        "schema_version": 1,
        "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
        "span": dict(SHARED_SPAN),
        "seed": 3,
    }
    spec.update(changes)
    return spec


def write_spec(folder: Path, data: dict | str, name: str = "spec.json") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def recorded_requests(servegen_dir: Path, start: int, end: int) -> float:
    """Requests m-large recorded in [start, end): sum of rate x 600 s over its trace CSVs, read directly."""
    total = 0.0
    for p in (servegen_dir / "language" / "m-large").glob("chunk-*-trace.csv"):
        for line in p.read_text().splitlines():
            cells = line.split(",")
            if cells[0] and start <= int(cells[0]) < end:
                total += float(cells[1]) * 600
    return total


# --------------------------------------------------------------------------- #
# Spec values that overflow or are absurd: exit 2 naming the key, nothing written
# --------------------------------------------------------------------------- #

ABSURD = [
    ("rps 1e12", {"rate": {"kind": "constant", "rps": 1e12}}, "rate.rps"),
    ("weights 1e308", {"weights": {"mode": "explicit", "values": {"0": 1e308, "1": 1e308}}}, "weights.values.0"),
    ("factor 1e308", {"rate": {"kind": "observed", "factor": 1e308}}, "rate.factor"),
    ("peak inf as a huge int", {"rate": {"kind": "bounded", "peak_rps": 10**400}}, "rate.peak_rps"),
    ("ramp 1e300", {"rate": {"kind": "ramp", "start_rps": 0, "end_rps": 1e300}}, "rate.end_rps"),
    ("piecewise rps 1e200", {"rate": {"kind": "piecewise", "points": [[0, 1], [60, 1e200]]}}, "rate.points[1]"),
    ("negative weight", {"weights": {"mode": "explicit", "values": {"0": -1}}}, "weights.values.0"),
    ("duration 1e20", {"span": {"start_s": 0, "duration_s": 1e20}}, "span.duration_s"),
]


@pytest.mark.parametrize(("case", "change", "key"), ABSURD, ids=[c[0] for c in ABSURD])
def test_absurd_spec_values_are_spec_errors(capsys, tmp_path, servegen_dir, case, change, key):
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir, **change))
    before = set(tmp_path.iterdir())
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2, (case, err)
    assert f"spec key '{key}'" in error_line(err)
    assert "wrote" not in out
    assert set(tmp_path.iterdir()) == before


def test_nan_and_infinity_literals_are_spec_errors(capsys, tmp_path, servegen_dir):
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(shared_spec(servegen_dir, rate={"kind": "constant", "rps": 1.0})).replace("1.0", literal)
        spec_path = write_spec(tmp_path, text)
        code, _, err = run(capsys, "validate", "--spec", spec_path)
        assert code == 2 and literal in error_line(err), err


def test_deeply_nested_json_spec_is_an_input_error(capsys, tmp_path):
    spec_path = write_spec(tmp_path, "[" * 200_000 + "]" * 200_000)
    code, _, err = run(capsys, "validate", "--spec", spec_path)
    line = error_line(err)
    assert code == 2 and "nested too deeply" in line and str(spec_path) in line
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 2 and "nested too deeply" in error_line(err)


@pytest.mark.parametrize("value", ["1e20", "100000000000000000000", "0", "-5", "1" * 5000, "10000001"])
def test_block_size_out_of_range_is_a_usage_error(capsys, tmp_path, servegen_dir, value):
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir))
    code, _, err = run(
        capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl", "--block-size", value
    )
    assert code == 2 and "--block-size" in error_line(err)
    assert len(error_line(err)) < 200  # the 5000-digit value is not echoed whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_preset_generic_on_summary_and_validate_is_a_usage_error(capsys, tmp_path, traces_dir, servegen_dir):
    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    code, _, err = run(capsys, "summary", trace, "--preset", "generic")
    assert code == 2 and "--preset generic" in error_line(err)
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir))
    code, _, err = run(capsys, "validate", "--spec", spec_path, "--workload", trace, "--preset", "generic")
    assert code == 2 and "--preset generic" in error_line(err)


# --------------------------------------------------------------------------- #
# Workload size: refused up front with the number
# --------------------------------------------------------------------------- #


def test_generate_refuses_above_max_requests_with_the_number(capsys, tmp_path, servegen_dir):
    expected = recorded_requests(servegen_dir, 72000, 73200)
    assert expected > 1000
    # every client composed (pooled lengths for those without), so the estimate is the recorded count
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir, missing_lengths="pooled"))
    limit = int(expected * 0.9)
    code, out, err = run(
        capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl",
        "--max-requests", limit,
    )
    line = error_line(err)
    assert code == 2 and f"{limit:,}" in line and f"{expected:,.0f}" in line and "--max-requests" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]
    code, out, err = run(
        capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl",
        "--max-requests", int(expected * 1.1),
    )
    assert code == 0, err
    assert f"expected {expected:,.0f}" in out


def test_generate_default_limit_refuses_a_huge_rate(capsys, tmp_path, servegen_dir, monkeypatch):
    """1e9 rps (the largest rate a spec accepts) for 20 minutes is 1.2e12 requests: refused, not allocated."""
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir, rate={"kind": "constant", "rps": 1e9}))
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "jsonl", "-o", tmp_path / "w.jsonl")
    assert code == 2 and "1,200,000,000,000" in error_line(err) and "200,000,000" in error_line(err)
    # the in-memory route (parquet written whole) has the lower limit, also from the environment
    monkeypatch.setenv("SERVEGEN_MAX_REQUESTS_MEMORY", "1000")
    code, _, err = run(capsys, "generate", "--spec", write_spec(tmp_path, shared_spec(servegen_dir), "s2.json"),
                       "-f", "parquet", "-o", tmp_path / "w.parquet")
    assert code == 2 and "above the limit of 1,000" in error_line(err) and "--chunk-s" in error_line(err)
    monkeypatch.setenv("SERVEGEN_MAX_REQUESTS_MEMORY", "lots")
    code, _, err = run(capsys, "validate", "--spec", tmp_path / "s2.json")
    assert code == 2 and "SERVEGEN_MAX_REQUESTS_MEMORY" in error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2.json", "spec.json"]


# --------------------------------------------------------------------------- #
# Full disk, unexpected errors, --debug
# --------------------------------------------------------------------------- #


class _FullDisk:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._fh, name)


def test_full_disk_is_one_line_and_leaves_nothing(capsys, tmp_path, servegen_dir, monkeypatch):
    from servegen_core.export import writer as export
    real_fdopen = os.fdopen
    monkeypatch.setattr(export.os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k)))
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir))
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2 and os.strerror(errno.ENOSPC) in error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "parquet", "-o", tmp_path / "w.parquet")
    assert code == 2 and os.strerror(errno.ENOSPC) in error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_unexpected_error_exits_3_with_traceback_only_under_debug(capsys, tmp_path, servegen_dir, monkeypatch):
    from servegen_core.generate import compose as compose_mod
    def broken(self, chunk_s=600.0, **kw):
        raise ZeroDivisionError("a bug")
        yield  # pragma: no cover

    monkeypatch.setattr(compose_mod.ComposePlan, "iter_chunks", broken)
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir))
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 3
    assert "Traceback" not in err and "ZeroDivisionError: a bug" in err and "--debug" in err
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
    for argv in (("--debug", "generate"), ("generate", "--debug")):
        code, _, err = run(capsys, *argv, "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
        assert code == 3 and "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_validation_failure_is_1_and_input_error_is_2(capsys, tmp_path, servegen_dir):
    spec_path = write_spec(tmp_path, shared_spec(servegen_dir))
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 0, err
    # the same workload checked against a spec asking for ten times the rate fails a check
    loud = write_spec(tmp_path, shared_spec(servegen_dir, rate={"kind": "observed", "factor": 10.0}), "loud.json")
    code, out, err = run(capsys, "validate", "--spec", loud, "--workload", tmp_path / "w.csv")
    assert code == 1, (out, err)
    assert "FAIL" in out
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp_s,client_id,input_tokens,output_tokens\n0.5,a,ten,3\n")
    code, _, err = run(capsys, "validate", "--spec", spec_path, "--workload", broken)
    assert code == 2 and "line 2" in error_line(err)


def test_summary_of_a_large_trace_shows_loading_progress(capsys, traces_dir, monkeypatch):
    from servegen_core.cli import inputs as cli_inputs
    from servegen_core.sources import traces
    monkeypatch.setattr(cli_inputs, "LOAD_PROGRESS_MIN_BYTES", 0)
    monkeypatch.setattr(traces, "_BATCH_ROWS", 5000)
    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    rows = pl.read_csv(trace).height
    code, out, err = run(capsys, "summary", trace)
    assert code == 0, err
    progress = [ln for ln in err.splitlines() if ln.startswith("reading AzureLLMInferenceTrace_conv.csv: ")]
    assert progress and "(~" in progress[0]
    assert f"read AzureLLMInferenceTrace_conv.csv: {rows:,} rows" in err


def test_stdout_on_a_full_device_is_one_line_exit_2(tmp_path):
    """Writing the result to /dev/full (a full disk behind stdout) fails cleanly."""
    import subprocess
    import sys

    from servegen_core.paths import PROJECT_DIR

    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "servegen_core", "spec-template", "-o", "-"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"servegen: error: {os.strerror(errno.ENOSPC)}"


def test_huge_spec_file_is_refused_unread(capsys, tmp_path):
    spec = tmp_path / "big.json"
    with spec.open("wb") as fh:
        fh.truncate(64 * 2**20)  # sparse: 64 MB of zero bytes, no disk used
    code, _, err = run(capsys, "validate", "--spec", spec)
    assert code == 2 and "larger than 16 MB" in error_line(err)


WHATIF_BOUNDED = [
    "--workers", "--tensor-parallel", "--window-s", "--max-replicas", "--max-num-seqs", "--max-batched-tokens",
    "--slo-ttft-p99", "--slo-tpot-p99", "--efficiency", "--overhead-ms",
]


@pytest.mark.parametrize("option", WHATIF_BOUNDED)
@pytest.mark.parametrize("value", ["1e300", "0", "-3", "nan", "inf", "9" * 400])
def test_whatif_numeric_options_out_of_range_are_usage_errors(capsys, traces_dir, option, value):
    if option == "--overhead-ms" and value == "0":
        value = "-0.5"  # no fixed iteration time is a valid overhead
    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    argv = ["whatif", "--trace", trace, "--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "1", "-q", option, value]
    code, out, err = run(capsys, *argv)
    line = error_line(err)
    assert code == 2 and option in line and out == ""
    assert len(line) < 250  # a 400-digit value is not echoed whole


def test_whatif_counts_are_capped_at_the_documented_limits(capsys, traces_dir):
    from servegen_core import limits
    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    base = ["whatif", "--trace", trace, "--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "1", "-q"]
    for option, limit in [
        ("--workers", limits.max_workers()),
        ("--tensor-parallel", limits.MAX_TENSOR_PARALLEL),
        ("--max-replicas", limits.MAX_REPLICAS),
        ("--max-num-seqs", limits.MAX_NUM_SEQS),
        ("--max-batched-tokens", limits.MAX_BATCHED_TOKENS),
    ]:
        code, _, err = run(capsys, *base, option, limit + 1)
        line = error_line(err)
        assert code == 2 and option in line and f"[1, {limit:,}]" in line


def test_serving_api_refuses_unbounded_counts_before_any_work(traces_dir, monkeypatch):
    from servegen_core.generate import compose
    from servegen_core import limits
    from servegen_core.serve import costmodel, simulate, whatif
    from servegen_core.errors import SpecError
    from servegen_core.sources.traces import load_trace

    trace = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace.head(200)
    cost = costmodel.roofline("llama-3-8b", "a100")
    slo = whatif.Slo(ttft_p99_s=1.0)
    too_many = limits.max_workers() + 1
    with pytest.raises(SpecError, match="workers"):
        simulate.simulate(trace, cost, replicas=2, workers=too_many)
    with pytest.raises(SpecError, match="workers"):
        simulate.simulate(trace, cost, replicas=2, workers=0)
    with pytest.raises(SpecError, match="replicas"):
        simulate.simulate(trace, cost, replicas=limits.MAX_REPLICAS + 1)
    with pytest.raises(SpecError, match="max_replicas"):
        whatif.min_replicas(trace, slo, cost, max_replicas=10**12)
    with pytest.raises(SpecError, match="workers"):
        whatif.min_replicas(trace, slo, cost, workers=10**9)
    with pytest.raises(SpecError, match="workers"):
        whatif.compare_trace(trace, slo, cost, workers=-1)
    with pytest.raises(SpecError, match="tensor_parallel"):
        costmodel.roofline("llama-3-8b", "a100", tensor_parallel=limits.MAX_TENSOR_PARALLEL + 1)
    with pytest.raises(SpecError, match="tensor_parallel"):
        costmodel.roofline("llama-3-8b", "a100", tensor_parallel=2.5)
    with pytest.raises(SpecError, match="max_num_seqs"):
        simulate.ServerConfig(max_num_seqs=10**12)
    with pytest.raises(SpecError, match="max_batched_tokens"):
        simulate.ServerConfig(max_batched_tokens=limits.MAX_BATCHED_TOKENS + 1)

    def no_compose(*args, **kwargs):
        raise AssertionError("composed before checking workers")

    monkeypatch.setattr(compose, "load_source", no_compose)
    monkeypatch.setattr(whatif, "load_source", no_compose)
    with pytest.raises(SpecError, match="workers"):
        whatif.compare_spec(object(), slo, cost, workers=10**6)
    # within the limits the API still serves: two replicas in two processes
    res = simulate.simulate(trace, cost, replicas=2, workers=2)
    assert res.summary()["completed"] == 200


def test_whatif_calibration_files_that_are_too_big_nested_or_not_utf8_are_input_errors(capsys, tmp_path, traces_dir):
    from servegen_core.limits import MAX_CALIBRATION_BYTES

    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    big = tmp_path / "big.csv"
    big.write_bytes(b"prefill_tokens,decode_seqs,context_tokens,time_ms\n" + b"1,1,1,1\n" * (MAX_CALIBRATION_BYTES // 8 + 1))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"prefill_tokens,decode_seqs,context_tokens,time_ms\n\xff\xfe\x00\x01")
    for path, words in [(big, "calibration file may hold"), (nested, "nested too deeply"), (binary, "not a UTF-8 CSV")]:
        argv = ["whatif", "--trace", trace, "--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "1", "-q", "--calibration", path]
        code, out, err = run(capsys, *argv)
        line = error_line(err)
        assert code == 2 and str(path) in line and words in line and out == ""
