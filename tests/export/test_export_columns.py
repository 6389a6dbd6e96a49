"""export.dropped_columns / export_block_size say before writing what an export then reports."""

from __future__ import annotations

import pytest

from servegen_core.generate.compose import compose

from servegen_core.sources.load import load_source
from servegen_core.export.formats import FORMATS, dropped_columns, export_block_size
from servegen_core.export.writer import export_trace
from servegen_core.spec import PrefixProfile, PrefixSpec, Sessions, Span, SystemPrompts, TraceSource, WorkloadSpec
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def mooncake_path(traces_dir):
    return traces_dir / "mooncake_synthetic_trace.jsonl"


@pytest.fixture(scope="module")
def with_sessions(mooncake_path):
    """A workload composed from the Mooncake trace with shared prompts and multi-turn sessions."""
    spec = WorkloadSpec(
        source=TraceSource(path=str(mooncake_path)), span=Span(start_s=0, duration_s=900), seed=3,
        prefix=PrefixSpec(default=PrefixProfile(system_prompts=SystemPrompts(count=5), sessions=Sessions(turns_mean=3.0))),
    )
    trace = compose(spec, pool=load_source(spec)).trace
    assert trace["turn_index"].max() > 0  # later turns exist: the session columns matter
    return trace


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_dropped_columns_and_block_size_match_the_export(fmt, with_sessions, tmp_path):
    result = export_trace(with_sessions, tmp_path / f"w{FORMATS[fmt].extension}", fmt, note=None)
    assert dropped_columns(fmt, with_sessions.columns) == result.dropped_columns
    assert dropped_columns(fmt, with_sessions.schema) == result.dropped_columns
    assert export_block_size(fmt, with_sessions.columns) == result.block_size


def test_mooncake_keeps_the_session_columns(with_sessions):
    dropped = dropped_columns("mooncake", with_sessions.columns)
    assert not {"session_id", "turn_index", "segment_ids", "segment_tokens"} & set(dropped)
    assert {"session_id", "turn_index"} <= set(dropped_columns("vllm", with_sessions.columns))


@pytest.mark.parametrize("fmt", ["mooncake", "vllm", "guidellm"])
def test_a_trace_with_its_own_hash_ids_keeps_512_token_blocks(fmt, mooncake_path, tmp_path):
    trace = load_trace(mooncake_path).trace.head(300)
    result = export_trace(trace, tmp_path / "m.jsonl", fmt, note=None)
    assert export_block_size(fmt, trace.columns) == result.block_size == 512
    assert dropped_columns(fmt, trace.schema) == result.dropped_columns
    assert export_block_size("vllm", trace.columns, block_size=64) == 64
