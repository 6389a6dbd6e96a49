"""Cost models: the roofline from the hardware table, calibration from benchmark files."""

from __future__ import annotations

import pytest

from servegen_core.errors import SpecError
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.serve.hardware import GPUS, MODELS


@pytest.fixture(scope="module")
def cost() -> CostModel:
    return roofline("llama-3-8b", "a100")


def test_roofline_from_table_rows(cost):
    m, g = MODELS["llama-3-8b"], GPUS["a100-80gb"]
    # KV per token: 2 (K, V) x 32 layers x 8 KV heads x 128 dims x 2 bytes = 128 KiB
    assert m.kv_bytes_per_token == 131072
    # 80 GiB x 0.9 minus all the weights (the embedding table is held, if only looked up)
    assert g.mem_bytes == 80 * 2**30
    assert cost.kv_tokens == int((80 * 2**30 * 0.9 - 8.03e9 * 2) // 131072)
    # a decode step of one short sequence is bandwidth-bound: the weights but the 128,256 x 4,096
    # input embedding read at 80 % of 2,039 GB/s, plus 1 ms
    streamed = (8.03e9 - 128256 * 4096) * 2
    assert m.embedding_params == 128256 * 4096
    assert float(cost.decode_time(1, 10)) == pytest.approx(0.001 + (streamed + 10 * 131072) / (0.8 * 2039e9), rel=1e-3)
    # a long prefill is compute-bound: 2 x matmul params FLOPs per token at 60 % of 312 TFLOPS
    n = 8000
    flops = 2 * (8.03e9 - 128256 * 4096) * n + 4 * 32 * 32 * 128 * n * (n + 1) / 2
    assert float(cost.prefill_time(n)) == pytest.approx(0.001 + flops / (0.6 * 312e12), rel=1e-9)
    assert cost.max_context == 8192 and roofline("llama-3.1-8b", "a100").max_context == 131072
    for row in [*GPUS.values(), *MODELS.values()]:
        assert row.source


def test_roofline_refuses_a_model_that_does_not_fit():
    with pytest.raises(SpecError, match="tensor_parallel"):
        roofline("llama-3-70b", "a100")
    assert roofline("llama-3-70b", "a100", tensor_parallel=2).kv_tokens > 0
    with pytest.raises(SpecError, match="unknown GPU"):
        roofline("llama-3-8b", "tpu")
