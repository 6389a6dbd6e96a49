"""Conversations that grow turn by turn: fit_prefix on a synthetic conversation trace (known
structure, session_id) fits the first-turn input and the per-turn new tokens; the composed
workload keeps the input marginal, the per-turn growth, the block reuse and the LRU curve, and
its request total stays within 1 % of the rate function's integral."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from _conversations import conversation_trace
from servegen_core.blocks import hash_ids
from servegen_core.characterize import prefix as characterize_prefix
from servegen_core.generate.compose import compose
from servegen_core.generate.sessions import fit_prefix
from servegen_core.sources.fit import pool_from_trace
from servegen_core.spec import Span, TraceSource, WorkloadSpec

CAPACITIES = [1000, 2000, 3000, 5000, 10_000]


@pytest.fixture(scope="module")
def fitted():
    source = conversation_trace(1)
    prefix = fit_prefix(source, block_size=512)
    spec = WorkloadSpec(TraceSource(path="conversations.jsonl"), Span(0, None), prefix=prefix, seed=0)
    pool = pool_from_trace(source)
    runs = []
    for seed in range(3):
        w = compose(dataclasses.replace(spec, seed=seed), pool=pool).trace
        runs.append(w.with_columns(hash_ids(w["segment_ids"], w["segment_tokens"], block_size=512).alias("hash_ids")))
    return source, prefix, runs


def test_the_growth_model_is_fitted(fitted):
    source, prefix, _runs = fitted
    ss = prefix.default.sessions
    assert ss is not None and ss.new_tokens and ss.first_input
    assert ss.context_tokens == int(source["input_tokens"].max())
    # the builder's later user messages: log-normal, median 150 tokens
    assert 120 <= ss.new_tokens[len(ss.new_tokens) // 2] <= 180
    # a spec with growth round-trips through JSON
    spec = WorkloadSpec(TraceSource(path="c.jsonl"), Span(0, None), prefix=prefix)
    assert WorkloadSpec.from_json(spec.to_json()).prefix == prefix


def test_inputs_growth_totals_and_reuse_match_the_source(fitted):
    source, _prefix, runs = fitted
    x_src = source["input_tokens"].to_numpy()
    pooled = np.concatenate([w["input_tokens"].to_numpy() for w in runs])
    assert stats.ks_2samp(x_src, pooled).statistic < 1.36 / np.sqrt(len(x_src))  # 5 % critical value at the source's size
    growth_src = characterize_prefix.sessions(source, method="session_id").median_growth_tokens
    reuse_src = characterize_prefix.block_reuse(source).reuse_ratio
    lru_src = characterize_prefix.lru_hit_ratio(source, capacities=CAPACITIES).frame["hit_ratio"].to_numpy()
    for w in runs:
        assert abs(w.height / source.height - 1) < 0.01
        growth = characterize_prefix.sessions(w, method="session_id").median_growth_tokens
        assert abs(growth / growth_src - 1) < 0.1, (growth, growth_src)
        assert abs(characterize_prefix.block_reuse(w).reuse_ratio / reuse_src - 1) < 0.1
        lru = characterize_prefix.lru_hit_ratio(w, capacities=CAPACITIES).frame["hit_ratio"].to_numpy()
        assert (np.abs(lru / lru_src - 1) < 0.15).all(), (lru, lru_src)
        assert w["input_tokens"].max() <= source["input_tokens"].max()  # truncated at the context limit


def test_sessions_without_growth_keep_the_old_model(fitted):
    source, prefix, _runs = fitted
    plain = dataclasses.replace(prefix.default.sessions, new_tokens=(), first_input=(), context_tokens=None)
    spec = WorkloadSpec(TraceSource(path="c.jsonl"), Span(0, None), prefix=dataclasses.replace(prefix, default=dataclasses.replace(prefix.default, sessions=plain)))
    w = compose(spec, pool=pool_from_trace(source)).trace
    # the old model sorts each session's independent draws: growth is much larger than the real one
    growth = characterize_prefix.sessions(w, method="session_id").median_growth_tokens
    assert growth > 1.5 * characterize_prefix.sessions(source, method="session_id").median_growth_tokens
