"""The default roofline against published vLLM measurements (servegen_core.serve.measurements):
every checkable row, simulated at its own setting (a closed loop of its concurrency, its lengths,
vLLM's serve defaults for its GPU), lands within 15 %."""

from __future__ import annotations

import pytest

from servegen_core.serve.calibration import BenchSetting, replay
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.measurements import MEASUREMENTS, Measurement
from servegen_core.serve.simulate import ServerConfig

CHECKABLE = [m for m in MEASUREMENTS if m.checkable]


def simulated(m: Measurement) -> float:
    """The row's metric simulated at the row's setting on the default roofline."""
    cost = roofline(m.model, m.gpu, tensor_parallel=m.tensor_parallel)
    config = ServerConfig(max_num_seqs=m.max_num_seqs, max_batched_tokens=m.max_batched_tokens)
    requests = 20 * (m.concurrency or 1)  # the benchmark's --num-prompts $((C*20))
    setting = BenchSetting(m.source, "published", m.rate, m.concurrency, m.input_tokens, m.output_tokens, requests, 1.0, 1.0)
    return float(getattr(replay(setting, cost, config), m.metric))


@pytest.mark.parametrize("m", CHECKABLE, ids=[f"{m.gpu}-c{m.concurrency}-{m.metric}" for m in CHECKABLE])
def test_default_cost_model_within_15_percent_of_published(m):
    got = simulated(m)
    assert got == pytest.approx(m.value, rel=0.15), f"{m.source}: simulated {got:.4g} vs published {m.value:.4g}"


def test_the_table_has_sources_and_batch_1_and_batched_rows():
    assert all(m.source.startswith("https://") and m.engine.startswith("vLLM") for m in MEASUREMENTS)
    assert {m.concurrency for m in CHECKABLE} >= {1, 8}
    assert all(m.note for m in MEASUREMENTS if not m.checkable)
