"""Cost models: the roofline from the hardware table, calibration from benchmark files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from servegen_core.errors import DataFormatError, SpecError
from servegen_core.serve.costmodel import CostModel, calibrate, roofline
from servegen_core.serve.hardware import GPUS, MODELS


@pytest.fixture(scope="module")
def cost() -> CostModel:
    return roofline("llama-3-8b", "a100")


def test_roofline_from_table_rows(cost):
    m, g = MODELS["llama-3-8b"], GPUS["a100-80gb"]
    # KV per token: 2 (K, V) x 32 layers x 8 KV heads x 128 dims x 2 bytes = 128 KiB
    assert m.kv_bytes_per_token == 131072
    assert cost.kv_tokens == int((80e9 * 0.9 - 8.03e9 * 2) // 131072)
    # a decode step of one short sequence is bandwidth-bound: the weights read at 60 % of 2,039 GB/s + 2 ms
    assert float(cost.decode_time(1, 10)) == pytest.approx(0.002 + 16.06e9 / (0.6 * 2039e9), rel=1e-3)
    # a long prefill is compute-bound: 2 x params FLOPs per token at 60 % of 312 TFLOPS
    n = 8000
    flops = 2 * 8.03e9 * n + 4 * 32 * 32 * 128 * n * (n + 1) / 2
    assert float(cost.prefill_time(n)) == pytest.approx(0.002 + flops / (0.6 * 312e12), rel=1e-9)
    for row in [*GPUS.values(), *MODELS.values()]:
        assert row.source


def test_roofline_refuses_a_model_that_does_not_fit():
    with pytest.raises(SpecError, match="tensor_parallel"):
        roofline("llama-3-70b", "a100")
    assert roofline("llama-3-70b", "a100", tensor_parallel=2).kv_tokens > 0
    with pytest.raises(SpecError, match="unknown GPU"):
        roofline("llama-3-8b", "tpu")


# -- calibration ------------------------------------------------------------------------------


def test_calibration_recovers_a_known_linear_model(tmp_path, cost):
    rng = np.random.default_rng(3)
    truth = np.array([0.012, 6e-5, 1e-9, 2e-7, 3e-5])
    rows = []
    for _ in range(40):
        T = int(rng.integers(0, 4000))
        S = int(rng.integers(0, 200))
        C = int(S * rng.integers(100, 3000))
        x = np.array([1, T, T * (T + 1) / 2 + C, C, S])
        rows.append(f"{T},{S},{C},{float(x @ truth) * 1e3!r}")
    path = tmp_path / "iters.csv"
    path.write_text("prefill_tokens,decode_seqs,context_tokens,time_ms\n" + "\n".join(rows) + "\n")
    cal = calibrate([path], kv_tokens=cost.kv_tokens)
    assert cal.compute == cal.memory
    np.testing.assert_allclose(cal.compute, truth, rtol=1e-5, atol=1e-12)
    assert "RMS relative error" in cal.note


def test_calibration_reads_vllm_and_aiperf_results(tmp_path, cost):
    def vllm(rps, ttft, itl, e2e):
        return {"request_throughput": rps, "mean_ttft_ms": ttft, "mean_itl_ms": itl, "mean_e2el_ms": e2e, "completed": 100, "total_input_tokens": 100_000, "total_output_tokens": 20_000}

    files = []
    for i, (rps, ttft, itl, e2e) in enumerate([(1, 90, 16, 3300), (4, 120, 19, 3900), (8, 200, 24, 5000)]):
        files.append(tmp_path / f"v{i}.json")
        files[-1].write_text(json.dumps(vllm(rps, ttft, itl, e2e)))
    aiperf = {
        "request_throughput": {"unit": "requests/sec", "avg": 6.0},
        "time_to_first_token": {"unit": "ms", "avg": 150.0},
        "inter_token_latency": {"unit": "ms", "avg": 21.0},
        "request_latency": {"unit": "ms", "avg": 4400.0},
        "input_sequence_length": {"unit": "tokens", "avg": 1000.0},
        "output_sequence_length": {"unit": "tokens", "avg": 200.0},
    }
    files.append(tmp_path / "profile_export_aiperf.json")
    files[-1].write_text(json.dumps(aiperf))
    cal = calibrate(files, kv_tokens=cost.kv_tokens)
    # the fitted decode time grows with the batch, and a lone decode is near the lowest measured ITL
    assert float(cal.decode_time(1, 1100)) < 0.020
    assert float(cal.decode_time(40, 40 * 1100)) > float(cal.decode_time(4, 4 * 1100))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mean_ttft_ms": 1}))
    with pytest.raises(DataFormatError, match="bad.json: key request_throughput"):
        calibrate([bad], kv_tokens=1000)
    bad.write_text(json.dumps({**aiperf, "time_to_first_token": {"unit": "fortnights", "avg": 1.0}}))
    with pytest.raises(DataFormatError, match="bad.json: key time_to_first_token.unit: expected a time unit"):
        calibrate([bad], kv_tokens=1000)
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="not JSON"):
        calibrate([bad], kv_tokens=1000)
