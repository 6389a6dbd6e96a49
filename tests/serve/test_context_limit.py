"""Requests longer than the model's context are refused by the simulator and counted as refusals."""

from __future__ import annotations

import numpy as np
import polars as pl

from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import ServerConfig, simulate
from servegen_core.serve.whatif import Slo


def test_requests_longer_than_the_context_are_refused():
    cost = roofline("llama-3-8b", "a100-80gb")
    assert cost.max_context == 8192
    frame = pl.DataFrame({"timestamp_s": [0.0, 1.0, 2.0, 3.0], "input_tokens": [1000, 8000, 8100, 100], "output_tokens": [100, 192, 93, 9000]})
    res = simulate(frame, cost)
    req = res.requests
    assert req["refused"].to_list() == [False, False, True, True]  # 8000 + 192 = 8192 fits; 8193 and 9100 do not
    assert req["completed"].to_list() == [True, True, False, False]
    assert req["replica"].null_count() == 2 and req["ttft_s"].null_count() == 2
    s = res.summary()
    assert (s["requests"], s["completed"], s["refused"]) == (4, 2, 2)
    assert Slo(ttft_p99_s=10.0).met(s)  # refusals are reported, not a latency miss
    # the same request on a 128k-context model is served
    long = simulate(frame, roofline("llama-3.1-8b", "a100-80gb"))
    assert not long.requests["refused"].any() and long.requests["completed"].all()


def test_chunked_prefill_is_the_default_and_prefill_first_an_option():
    assert ServerConfig().chunked_prefill
    cost = roofline("llama-3.1-8b", "h100-sxm")
    rng = np.random.default_rng(0)
    n = 400
    frame = pl.DataFrame({"timestamp_s": np.cumsum(rng.exponential(1 / 8, n)), "input_tokens": np.full(n, 2000), "output_tokens": np.full(n, 200)})
    chunked = simulate(frame, cost).summary()
    first = simulate(frame, cost, config=ServerConfig(chunked_prefill=False)).summary()
    # prefill-first stalls every decode for whole prompts: its p99 TPOT is worse
    assert first["tpot_p99_s"] > chunked["tpot_p99_s"]
