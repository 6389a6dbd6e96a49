"""The "Prefix reuse" page on the Mooncake trace: every figure against the core results; sources without hash_ids."""

from __future__ import annotations

import json

import charts
import numpy as np
import pytest
from _dash import Dashboard, axis_title, horizontal_lines, title, values

from servegen_core.serve import hardware

from servegen_core.characterize import prefix
from servegen_core.sources.traces import load_trace


@pytest.fixture(scope="module")
def mooncake_path(traces_dir):
    return traces_dir / "mooncake_synthetic_trace.jsonl"


@pytest.fixture(scope="module")
def mooncake(mooncake_path):
    return load_trace(mooncake_path).trace


def test_prefix_page_on_mooncake_shows_the_core_results(mooncake_path, mooncake):
    d = Dashboard().trace(mooncake_path).open("prefix")
    reuse = prefix.block_reuse(mooncake)
    depth = prefix.prefix_depth(mooncake)
    curve = prefix.lru_hit_ratio(mooncake)
    sess = prefix.sessions(mooncake)
    top = prefix.top_prefixes(mooncake, k=15).frame

    metrics = {m.label: m.value for m in d.at.metric}
    assert metrics["Block reuse"] == f"{reuse.reuse_ratio:.1%}"
    assert metrics["Requests with a shared prefix"] == f"{depth.share_with_prefix:.1%}"
    assert metrics["Block accesses"] == f"{reuse.blocks:,}"

    lru = d.figure("px_lru")
    assert title(lru) == "Prefix-cache hit ratio vs cache size (LRU)"
    assert lru["layout"]["xaxis"]["type"] == "log" and "blocks of 512 tokens" in axis_title(lru)
    np.testing.assert_array_equal(values(lru["data"][0], "x"), curve.frame["capacity_blocks"].to_numpy())
    np.testing.assert_allclose(values(lru["data"][0], "y"), curve.frame["hit_ratio"].to_numpy() * 100)
    assert horizontal_lines(lru) == [pytest.approx(curve.max_hit_ratio * 100)]

    dep = d.figure("px_depth")
    np.testing.assert_array_equal(values(dep["data"][0], "x"), depth.histogram["depth_blocks"].to_numpy())
    np.testing.assert_allclose(values(dep["data"][0], "y"), depth.histogram["share"].to_numpy() * 100)

    tp = d.figure("px_top")
    np.testing.assert_allclose(values(tp["data"][0], "x"), top["request_share"].to_numpy() * 100)
    assert list(tp["data"][0]["y"])[0] == f"#1 ({top['depth_blocks'][0]:,} blocks)"
    assert d.table("rank", "depth_blocks", "requests")["requests"].tolist() == top["requests"].to_list()
    assert "px_clients" not in d.figures()  # a single client

    turns = d.figure("px_turns")
    np.testing.assert_array_equal(values(turns["data"][0], "x"), sess.turn_counts["turns"].to_numpy())
    np.testing.assert_allclose(values(turns["data"][0], "y"), sess.turn_counts["share"].to_numpy() * 100)
    np.testing.assert_allclose(values(d.figure("px_gaps")["data"][0], "x"), sess.turns["gap_s"].to_numpy())
    np.testing.assert_array_equal(values(d.figure("px_growth")["data"][0], "y"), sess.turns["growth_tokens"].to_numpy())
    assert any(f"{sess.multi_turn_sessions:,} with more than one turn" in c for c in d.captions())

    # Cache sizes in GB of a model's KV cache.
    d.at.selectbox(key="px_kv_model").select("llama-3-8b").run()
    d.check()
    lru = d.figure("px_lru")
    kv = hardware.MODELS["llama-3-8b"].kv_bytes_per_token
    assert kv == 2 * 32 * 8 * 128 * 2  # layers x KV heads x head size, K and V, 2 bytes
    np.testing.assert_allclose(values(lru["data"][0], "x"), curve.frame["capacity_tokens"].to_numpy() * kv / 1e9)
    assert "GB of llama-3-8b KV cache" in axis_title(lru)
    assert any(f"{curve.saturation_blocks * 512 * kv / 1e9:,.3g} GB of llama-3-8b KV cache" in c for c in d.captions())
    d.at.selectbox(key="px_kv_model").select("blocks").run()

    # Another block size: cache sizes in tokens and the session rule follow it.
    d.at.number_input(key="px_block_tokens").set_value(256).run()
    d.check()
    lru = d.figure("px_lru")
    np.testing.assert_array_equal(values(lru["data"][0], "customdata"), curve.frame["capacity_blocks"].to_numpy() * 256)
    sess256 = prefix.sessions(mooncake, block_tokens=256)
    np.testing.assert_array_equal(values(d.figure("px_turns")["data"][0], "x"), sess256.turn_counts["turns"].to_numpy())


def test_sources_without_hash_ids_say_so(traces_dir):
    d = Dashboard().open("prefix")  # the synthetic demo pool
    assert not d.figures()
    assert any("has no block ids (hash_ids)" in i for i in d.infos())
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").open("prefix")
    assert not d.figures()
    assert any("AzureLLMInferenceTrace_conv.csv has no block ids" in i for i in d.infos())


def test_prefix_charts_have_titles_and_units(mooncake):
    reuse = prefix.block_reuse(mooncake.with_columns(client_id=(mooncake["input_tokens"] % 3).cast(str)))
    fig = json.loads(charts.client_reuse(reuse.per_client).to_json())
    assert fig["layout"]["title"]["text"].startswith("Block reuse per client")
    assert [t["name"] for t in fig["data"]] == ["seen earlier (any client)", "seen earlier (same client)"]
    np.testing.assert_allclose(values(fig["data"][0], "x"), reuse.per_client.sort("blocks", descending=True)["reuse_ratio"].to_numpy() * 100)
    sess = prefix.sessions(mooncake)
    for fig in (charts.session_turns(sess.turn_counts), charts.inter_turn_gaps(sess.turns), charts.context_growth(sess.turns)):
        layout = json.loads(fig.to_json())["layout"]
        assert layout["title"]["text"] and "(" in layout["xaxis"]["title"]["text"] + layout["yaxis"]["title"]["text"]


def test_a_composed_workload_is_characterized_from_its_prompt_segments(tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.export.writer import export_trace
    from servegen_core.spec import (
        ClientSelection, ConstantRate, PrefixProfile, PrefixSpec, ServeGenSource, Sessions, Span, SystemPrompts,
        WorkloadSpec,
    )

    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"), span=Span(72000, 300),
        rate=ConstantRate(rps=1.0), clients=ClientSelection(mode="top_k", k=5), seed=3,
        prefix=PrefixSpec(default=PrefixProfile(
            system_prompts=SystemPrompts(count=3, request_share=0.6, zipf_s=1.0, tokens=200, unique_tokens=1),
            sessions=Sessions(turns_kind="geometric", turns_mean=3.0, max_turns=10, think_mean_s=20.0, think_cv=1.0),
        )),
    )
    path = tmp_path / "workload.parquet"
    export_trace(compose(spec).trace, path, "parquet", note=None)
    trace = load_trace(path).trace
    assert "hash_ids" not in trace.columns and {"segment_ids", "segment_tokens"} <= set(trace.columns)
    d = Dashboard().trace(path).open("prefix")
    d.at.number_input(key="px_block_tokens").set_value(32).run()
    d.check()
    assert any("derived from the workload's prompt segments at 32 tokens per block" in c for c in d.captions())
    rep = prefix.prefix_report(trace, block_tokens=32, k=15)
    lru = d.figure("px_lru")
    np.testing.assert_allclose(values(lru["data"][0], "y"), rep.lru.frame["hit_ratio"].to_numpy() * 100)
    assert rep.depth.share_with_prefix > 0.3
    np.testing.assert_array_equal(values(d.figure("px_turns")["data"][0], "x"), rep.sessions.turn_counts["turns"].to_numpy())
    assert any("from the session_id column" in c for c in d.captions())
