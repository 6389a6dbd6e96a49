"""Calibration that round-trips: fitted by replaying each benchmark's own setting, a calibrated
cost model reproduces the benchmark's mean TTFT and TPOT; calibration files are parsed strictly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from _cli import error_line, run
from servegen_core.errors import DataFormatError
from servegen_core.serve.calibration import calibrate, read_bench_setting, replay
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import simulate

LENGTHS = (512, 128)


def _bench_files(tmp_path: Path) -> list[Path]:
    """vLLM-bench and AIPerf result JSON of a known (slow) cost model served at four rates."""
    truth = roofline("llama-3-8b", "a100-80gb", efficiency=0.45, bandwidth_efficiency=0.65, overhead_s=0.003)
    rng = np.random.default_rng(7)
    paths = []
    n = 600
    for k, rate in enumerate((2.0, 4.0, 6.0, 8.0)):
        t = np.cumsum(rng.exponential(1 / rate, n))
        frame = pl.DataFrame({"timestamp_s": t, "input_tokens": np.full(n, LENGTHS[0]), "output_tokens": np.full(n, LENGTHS[1])})
        res = simulate(frame, truth).requests
        ttft, tpot, e2e = (float(res[c].mean()) for c in ("ttft_s", "tpot_s", "e2e_s"))
        if k % 2 == 0:  # vllm bench serve --save-result
            data: dict[str, object] = {
                "request_rate": rate, "max_concurrency": None, "completed": n, "request_throughput": rate,
                "total_input_tokens": n * LENGTHS[0], "total_output_tokens": n * LENGTHS[1], "mean_ttft_ms": ttft * 1e3,
                "mean_tpot_ms": tpot * 1e3, "mean_itl_ms": tpot * 1e3, "mean_e2el_ms": e2e * 1e3,
            }
            path = tmp_path / f"vllm_{rate:g}.json"
        else:  # AIPerf profile_export_aiperf.json
            data = {
                "time_to_first_token": {"unit": "ms", "avg": ttft * 1e3}, "inter_token_latency": {"unit": "ms", "avg": tpot * 1e3},
                "request_latency": {"unit": "ms", "avg": e2e * 1e3}, "request_throughput": {"unit": "requests/sec", "avg": rate},
                "input_sequence_length": {"unit": "tokens", "avg": float(LENGTHS[0])},
                "output_sequence_length": {"unit": "tokens", "avg": float(LENGTHS[1])},
                "request_count": {"avg": n}, "input_config": {"loadgen": {"request_rate": rate}},
            }
            path = tmp_path / f"rate{rate:g}" / "profile_export_aiperf.json"
            path.parent.mkdir()
        path.write_text(json.dumps(data))
        paths.append(path)
    return paths


def test_calibration_replays_its_own_settings_within_10_percent(tmp_path):
    paths = _bench_files(tmp_path)
    base = roofline("llama-3-8b", "a100-80gb")  # the default constants: faster than the truth
    before = [replay(read_bench_setting(p), base) for p in paths]
    cal = calibrate(paths, base=base)
    kinds = set()
    for path, old in zip(paths, before, strict=True):
        setting = read_bench_setting(path)
        kinds.add(setting.kind)
        got = replay(setting, cal)
        assert got.ttft_s == pytest.approx(setting.ttft_s, rel=0.10), path.name
        assert got.tpot_s == pytest.approx(setting.tpot_s, rel=0.10), path.name
        assert abs(old.tpot_s / setting.tpot_s - 1) > 0.10  # the uncalibrated model did not already match
    assert kinds == {"vllm", "aiperf"}
    assert "replayed by simulation" in cal.note and cal.kv_tokens == base.kv_tokens and cal.max_context == 8192


def test_calibration_fits_measured_iterations(tmp_path):
    truth = roofline("llama-3-8b", "a100-80gb", efficiency=0.5, bandwidth_efficiency=0.7, overhead_s=0.002)
    rng = np.random.default_rng(3)
    lines = ["prefill_tokens,decode_seqs,context_tokens,time_ms"]
    shapes = []
    for _ in range(40):
        T, S = int(rng.integers(0, 4000)), int(rng.integers(1, 200))
        C = int(S * rng.integers(100, 3000))
        ms = float(truth.iteration_time(T=T, A=T * (T + 1) / 2 + C, K=C, S=S)) * 1e3
        lines.append(f"{T},{S},{C},{ms!r}")
        shapes.append((T, S, C, ms))
    path = tmp_path / "iters.csv"
    path.write_text("\n".join(lines) + "\n")
    cal = calibrate([path], base=roofline("llama-3-8b", "a100-80gb"))
    for T, S, C, ms in shapes:
        assert float(cal.iteration_time(T=T, A=T * (T + 1) / 2 + C, K=C, S=S)) * 1e3 == pytest.approx(ms, rel=0.02)


def test_excel_csv_with_bom_and_crlf_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    rows = ["prefill_tokens,decode_seqs,context_tokens,time_ms", "0,1,1000,14.5", "0,32,40000,21.0", "2048,0,0,150.0"]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    cal = calibrate([path], base=roofline("llama-3-8b", "a100-80gb"))
    assert "3 measured iteration(s)" in cal.note


# -- the CLI refuses bad calibration files with exit 2 and one clear line --------------------------


def _whatif(capsys, traces_dir, calib: Path):
    trace = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    argv = ["whatif", "--trace", trace, "--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "1", "-q", "--calibration", calib]
    code, out, err = run(capsys, *argv)
    return code, out, error_line(err)


def _vllm_json(**override: object) -> str:
    data = {
        "request_rate": 4.0, "max_concurrency": None, "completed": 100, "request_throughput": 4.0, "total_input_tokens": 51200,
        "total_output_tokens": 12800, "mean_ttft_ms": 80.0, "mean_tpot_ms": 18.0, "mean_e2el_ms": 2400.0,
    }
    return json.dumps({**data, **override})


@pytest.mark.parametrize(
    ("override", "where"),
    [({"mean_ttft_ms": -80.0}, "key mean_ttft_ms"), ({"mean_tpot_ms": -1.0}, "key mean_tpot_ms"),
     ({"mean_ttft_ms": 1e200}, "key mean_ttft_ms"), ({"total_input_tokens": 1e200}, "key total_input_tokens"),
     ({"request_rate": 1e200}, "key request_rate")],
)
def test_cli_refuses_negative_and_absurd_benchmark_values(capsys, traces_dir, tmp_path, override, where):
    path = tmp_path / "bench.json"
    path.write_text(_vllm_json(**override))
    code, out, line = _whatif(capsys, traces_dir, path)
    assert code == 2 and out == "" and where in line and "bench.json" in line


def test_cli_refuses_negative_and_absurd_csv_values(capsys, traces_dir, tmp_path):
    path = tmp_path / "iters.csv"
    path.write_text("prefill_tokens,decode_seqs,context_tokens,time_ms\n0,1,1000,14.5\n0,4,4000,-3\n")
    code, _, line = _whatif(capsys, traces_dir, path)
    assert code == 2 and "row 3, column time_ms" in line
    path.write_text("prefill_tokens,decode_seqs,context_tokens,time_ms\n0,1,1000,14.5\n0,4,4000,1e200\n")
    code, _, line = _whatif(capsys, traces_dir, path)
    assert code == 2 and "row 3, column time_ms" in line


def test_cli_refuses_a_csv_of_millions_of_tiny_rows(capsys, traces_dir, tmp_path):
    import tracemalloc

    path = tmp_path / "many.csv"
    path.write_text("prefill_tokens,decode_seqs,context_tokens,time_ms\n" + "0,1,1,1\n" * 2_090_000)  # 2.1M rows, just under the byte limit
    assert 16e6 < path.stat().st_size < 16 * 2**20
    tracemalloc.start()
    code, _, line = _whatif(capsys, traces_dir, path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 2 and "more than 100,000 rows" in line
    assert peak < 200e6  # refused early, not after holding 2.1M rows (1 GB before)


def test_cli_reads_an_excel_export_and_names_a_missing_column(capsys, traces_dir, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfprefill_tokens,decode_seqs,time_ms\r\n0,1,14.5\r\n")
    code, _, line = _whatif(capsys, traces_dir, path)
    assert code == 2 and "missing column(s) context_tokens" in line and "prefill_tokens" not in line.split("missing")[1].split("(")[0]


def test_read_bench_setting_takes_the_concurrency_of_a_closed_loop(tmp_path):
    path = tmp_path / "c8.json"
    path.write_text(_vllm_json(request_rate="inf", max_concurrency=8))
    s = read_bench_setting(path)
    assert s.concurrency == 8 and s.rate is None and (s.input_tokens, s.output_tokens) == (512, 128)
    path.write_text(_vllm_json(request_rate="inf"))
    with pytest.raises(DataFormatError, match="request_rate inf without max_concurrency"):
        read_bench_setting(path)
