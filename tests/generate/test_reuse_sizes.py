"""Reuse at every cache size: fit_prefix -> compose -> compare_reuse on synthetic conversation
traces of known structure (tests/generate/_conversations.py: system prompts with Zipf
popularity, documents shared across sessions, multi-turn sessions with Gamma think times) and on
the shared Mooncake trace, and validate's prefix_block_reuse and prefix_lru_curve gates.

Every comparison runs from the smallest meaningful cache (where the source's LRU hit ratio
reaches a tenth of its unbounded value: 7 to 80 blocks here, well below 1k) to where the
source's curve flattens; the tolerances are the gates' (10 % block reuse, 15 % LRU)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from _conversations import conversation_trace
from servegen_core.blocks import hash_ids
from servegen_core.characterize import prefix as characterize_prefix
from servegen_core.generate.compose import ObservedRate, compose
from servegen_core.generate.sessions import fit_prefix
from servegen_core.generate.validate import validate
from servegen_core.sources.fit import pool_from_trace
from servegen_core.sources.traces import load_trace
from servegen_core.spec import Span, TraceSource, WorkloadSpec

SEEDS = range(3)
#: No system prompt, no document, first user messages of at most 500 tokens: every first turn
#: is shorter than one 512-token block.
SHORT_FIRST = dict(prompt_share=0.0, doc_share=0.0, first_tokens=80, first_max=500)


def _round_trip(source: pl.DataFrame, fit_on: pl.DataFrame | None = None) -> tuple[object, list]:
    """The prefix section fitted to ``fit_on`` (default the source), and per seed the
    comparison of the composed workload (hash ids at 512 tokens) with the source."""
    fit_on = source if fit_on is None else fit_on
    prefix = fit_prefix(fit_on, block_size=512)
    spec = WorkloadSpec(TraceSource(path="conversations.jsonl"), Span(0, None), prefix=prefix)
    pool = pool_from_trace(fit_on)
    runs = []
    for seed in SEEDS:
        w = compose(dataclasses.replace(spec, seed=seed), pool=pool).trace
        w = w.with_columns(hash_ids(w["segment_ids"], w["segment_tokens"], block_size=512).alias("hash_ids"))
        runs.append((w, characterize_prefix.compare_reuse(source, w)))
    return prefix, runs


@pytest.fixture(scope="module")
def conversations():
    return conversation_trace(1)


def test_conversation_sessions_on_a_synthetic_trace_match_its_session_ids():
    """On a synthetic conversation trace (system prompts, shared documents, multi-turn sessions
    with Gamma think times, built in tests/generate/_conversations.py) read from its hash_ids
    alone, "conversation" finds the sessions its session_id names: their number, the median think
    time and the median growth per turn within a few per cent."""
    src = conversation_trace(1)
    truth = characterize_prefix.sessions(src, method="session_id")
    found = characterize_prefix.sessions(src.drop("session_id"), method="conversation")
    assert abs(found.sessions / truth.sessions - 1) < 0.05, (found.sessions, truth.sessions)
    assert abs(found.multi_turn_sessions / truth.multi_turn_sessions - 1) < 0.05
    assert abs(found.median_growth_tokens / truth.median_growth_tokens - 1) < 0.1
    assert abs(found.median_gap_s / truth.median_gap_s - 1) < 0.15, (found.median_gap_s, truth.median_gap_s)
    # the plain block rule takes other sessions' first turns (same prompt and document) for next turns
    plain = characterize_prefix.sessions(src.drop("session_id"), method="hash_ids")
    assert abs(plain.median_gap_s / truth.median_gap_s - 1) > 0.3


def test_prompts_documents_and_sessions_keep_reuse_at_every_size(conversations):
    """Eight system prompts (Zipf), documents shared across sessions after them, sessions of
    geometric turns 60 s apart: with the session ids, block reuse within 10 % and the LRU curve
    within 15 % at every size from 15 blocks to where it flattens (1,137), for every seed. Each
    prompt gets its own length (fitted: what its group has in common), not one length for all."""
    prefix, runs = _round_trip(conversations)
    sp = prefix.default.system_prompts
    assert sp.count == 8 and len(sp.lengths) == 8 and sp.tokens != "input"
    for _w, cmp in runs:
        assert cmp.min_capacity < 100 and cmp.flat_capacity > 1000
        assert cmp.reuse_passed, cmp.reuse_ratio
        assert cmp.lru_passed, cmp.frame.filter(~pl.col("passed"))


def test_system_prompts_with_zipf_popularity_keep_reuse():
    """Prompts and sessions, no documents: block reuse within 10 % for every seed, and the LRU
    curve within 15 % from 16 blocks up."""
    source = conversation_trace(2, doc_share=0.0)
    _prefix, runs = _round_trip(source)
    for _w, cmp in runs:
        assert cmp.reuse_passed, cmp.reuse_ratio
        upper = cmp.frame.filter(pl.col("capacity_blocks") >= 16)
        assert upper["passed"].all(), upper.filter(~pl.col("passed"))


def test_sessions_read_from_hash_ids_alone(conversations):
    """Without session ids the sessions are read from the blocks (chains of turns that hold the
    previous output): the think time and the per-turn growth come back, and block reuse stays
    within 10 %."""
    blocks_only = conversations.drop("session_id")
    prefix, runs = _round_trip(conversations, blocks_only)
    ss = prefix.default.sessions
    assert ss is not None and ss.new_tokens
    assert abs(ss.think_mean_s / 60.0 - 1) < 0.1, ss.think_mean_s
    assert 120 <= ss.new_tokens[len(ss.new_tokens) // 2] <= 180  # the builder's later messages: median 150
    for _w, cmp in runs:
        assert cmp.reuse_passed, cmp.reuse_ratio


def test_sessions_read_from_hash_ids_alone_keep_the_lru_curve(conversations):
    """Some turns read from blocks are another session's (the latest holder of a shared prompt
    and document): they add short gaps, and the gaps' sample CV is 1.24 where the builder's is
    0.71. The think time's CV comes from the gaps' quartiles (0.82), and the LRU curve stays
    within 15 % at every size (with the sample CV: 1.20-1.25x at 15-119 blocks)."""
    prefix, runs = _round_trip(conversations, conversations.drop("session_id"))
    assert 0.6 < prefix.default.sessions.think_cv < 0.95
    for _w, cmp in runs:
        assert cmp.lru_passed, cmp.frame.filter(~pl.col("passed"))


def test_first_turns_that_complete_no_block_still_reuse_on_later_turns():
    """Every first turn is shorter than one block (no system prompt, a short first message): it
    has no block to share, and its next turn's blocks are all new. From the third turn on each
    turn starts with every complete block of the turn before it, and the workload's block reuse
    is within 10 % of the source's for every seed (fitted from the session ids)."""
    source = conversation_trace(3, **SHORT_FIRST)
    firsts = characterize_prefix.sessions(source, method="session_id").requests["turn"] == 1
    assert (source.filter(firsts)["input_tokens"] < 512).all()
    _prefix, runs = _round_trip(source)
    for w, cmp in runs:
        assert cmp.reuse_passed, cmp.reuse_ratio
        turns = w.sort("session_id", "turn_index").with_columns(
            pl.col("hash_ids").shift(1).over("session_id").alias("prev"),
            pl.col("input_tokens").shift(1).over("session_id").alias("prev_x"),
        ).filter(pl.col("turn_index") >= 1)
        assert (turns.filter(pl.col("turn_index") == 1)["prev_x"] < 512).mean() > 0.9
        later = turns.filter(pl.col("turn_index") >= 2)
        assert later.height > 500
        complete = (later["prev_x"] // 512).to_list()
        for h, p, k in zip(later["hash_ids"].to_list(), later["prev"].to_list(), complete):
            assert h[:k] == p[:k]
        assert characterize_prefix.block_reuse(later).blocks > 0


@pytest.mark.xfail(strict=True, reason=(
    "first turns shorter than one block, sessions read from hash_ids alone: block reuse 0.87 of the source's "
    "(turn 1 -> 2 cannot be linked: turn 1 has no complete block), so every session loses its first turn"
))
def test_first_turns_that_complete_no_block_from_hash_ids_alone():
    source = conversation_trace(3, **SHORT_FIRST)
    _prefix, runs = _round_trip(source, source.drop("session_id"))
    assert all(cmp.reuse_passed for _w, cmp in runs), [cmp.reuse_ratio for _w, cmp in runs]


# -- the shared Mooncake trace and validate's gates --------------------------------------------------


@pytest.fixture(scope="module")
def mooncake_path(traces_dir):
    return traces_dir / "mooncake_synthetic_trace.jsonl"


def _mooncake_spec(path, prefix, seed=0) -> WorkloadSpec:
    return WorkloadSpec(TraceSource(str(path), "mooncake"), Span(0), rate=ObservedRate(1.0), prefix=prefix, seed=seed)


def test_a_mooncake_spec_without_prefix_fails_the_prefix_gates(mooncake_path):
    """The trace has hash_ids: a spec without a prefix section exports no reuse and fails both
    gates; with the fitted section the block reuse passes."""
    plain = validate(compose(_mooncake_spec(mooncake_path, None)))
    assert {"prefix_block_reuse", "prefix_lru_curve"} <= set(plain.failed())
    assert plain.check("prefix_block_reuse")["value"] == 0.0 and "no prefix section" in plain.check("prefix_block_reuse")["detail"]
    fitted = fit_prefix(load_trace(mooncake_path).trace)
    report = validate(compose(_mooncake_spec(mooncake_path, fitted)))
    row = report.check("prefix_block_reuse")
    assert row["passed"] and abs(row["value"] - 1) < 0.1
    lru = report.check("prefix_lru_curve")
    assert lru["n"] == characterize_prefix.COMPARE_POINTS and "blocks" in lru["detail"]
    # the workload's own count (no sessions): the total's tolerance is 1 %, not inflated by rows
    # without a session id counted as one session
    assert report.check("total_requests")["high"] == pytest.approx(1.01)


@pytest.mark.xfail(strict=True, reason=(
    "Mooncake, fitted prefix (locality 0.19 / lag 65.5 prompted requests, which a refit of the workload gives "
    "back: 0.21-0.22 / 77-78): over seeds 0-9 the LRU ratio farthest from 1 is 0.78-1.23 and 3 of 10 pass the "
    "15 % gate, low at 709-829 blocks (seeds 0, 3, 5: 0.78-0.82) and high at 2,883-3,369 (seeds 2, 9: 1.22-1.23): "
    "a single geometric lag cannot give both the short and the long returns the source has"
))
def test_mooncake_fitted_prefix_keeps_the_lru_curve(mooncake_path):
    fitted = fit_prefix(load_trace(mooncake_path).trace)
    for seed in SEEDS:
        assert validate(compose(_mooncake_spec(mooncake_path, fitted, seed))).check("prefix_lru_curve")["passed"], seed


def test_a_workload_too_large_to_compare_is_not_measured(mooncake_path, monkeypatch):
    """Past the prefix module's size guard the prefix gates have no verdict (and say why)
    instead of failing validate."""
    fitted = fit_prefix(load_trace(mooncake_path).trace)
    workload = compose(_mooncake_spec(mooncake_path, fitted))
    monkeypatch.setattr(characterize_prefix.compare_reuse, "__kwdefaults__", {**characterize_prefix.compare_reuse.__kwdefaults__, "max_accesses": 1000})
    report = validate(workload)
    for name in ("prefix_block_reuse", "prefix_lru_curve"):
        row = report.check(name)
        assert row["passed"] is None and "block accesses" in row["detail"], row
