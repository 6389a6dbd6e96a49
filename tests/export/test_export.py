"""Tests for servegen_core.export.formats: every format written, read back independently, and checked."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from _export import BENCH_CSV, BENCH_JSONL, MULTIMODAL_REASONING, Notes, Spec, chunks_of, export_noting, read_csv, read_jsonl
from servegen_core.errors import DataFormatError, ExportError
from servegen_core.export.formats import BURSTGPT_MODEL, FORMATS, assign_hash_ids
from servegen_core.export.writer import export_chunks, export_trace
from servegen_core.schema import validate_trace


# --------------------------------------------------------------------------- #
# Every format: field names, units, counts
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fmt", BENCH_JSONL)
def test_jsonl_benchmark_formats_fields_units_and_blocks(workload, tmp_path, fmt):
    info = FORMATS[fmt]
    res = export_noting(workload, tmp_path / f"w{info.extension}", fmt)
    recs = read_jsonl(res.path)
    assert res.rows == len(recs) == workload.height
    assert all(list(r) == list(info.fields) for r in recs)
    assert [r["input_length"] for r in recs] == workload["input_tokens"].to_list()
    assert [r["output_length"] for r in recs] == workload["output_tokens"].to_list()
    ts = np.array([r["timestamp"] for r in recs])
    expected = workload["timestamp_s"].to_numpy()
    if fmt == "mooncake":
        assert all(isinstance(r["timestamp"], int) for r in recs)
        assert np.array_equal(ts, np.round(expected * 1000).astype(np.int64))
    else:
        assert np.abs(ts - expected).max() <= 5e-7
        assert ts[-1] == pytest.approx(expected[-1]) and expected[-1] > 10  # seconds, not ms
    # one id per block of the consumer's default size (vLLM timed_trace: 16 tokens, the others
    # 512); generated ids are fresh, so no two requests share one
    block = 16 if fmt == "vllm" else 512
    assert [len(r["hash_ids"]) for r in recs] == [math.ceil(r["input_length"] / block) for r in recs]
    flat = [i for r in recs for i in r["hash_ids"]]
    assert flat == list(range(len(flat)))


@pytest.mark.parametrize("fmt", BENCH_CSV)
def test_csv_benchmark_formats_fields_units_and_counts(workload, tmp_path, fmt):
    info = FORMATS[fmt]
    res = export_noting(workload, tmp_path / f"w{info.extension}", fmt)
    header, rows = read_csv(res.path)
    assert header == list(info.fields)
    assert res.rows == len(rows) == workload.height
    seconds = np.array([float(r[info.time_field]) for r in rows])
    assert np.abs(seconds - workload["timestamp_s"].to_numpy()).max() <= 5e-7
    inp = {"vidur": "PromptTokenCount", "splitwise": "prompt_size", "burstgpt": "Request tokens"}[fmt]
    out = {"vidur": "CompletionTokenCount", "splitwise": "token_size", "burstgpt": "Response tokens"}[fmt]
    assert [int(r[inp]) for r in rows] == workload["input_tokens"].to_list()
    assert [int(r[out]) for r in rows] == workload["output_tokens"].to_list()
    if fmt == "splitwise":
        assert [int(r["request_id"]) for r in rows] == list(range(workload.height))
        assert {r["request_type"] for r in rows} == {"2"}  # RequestType.GENERATIVE_LLM
        assert {(r["application_id"], r["batch_size"]) for r in rows} == {("0", "1")}
    if fmt == "burstgpt":
        assert all(int(r["Total tokens"]) == int(r[inp]) + int(r[out]) for r in rows)
        assert {r["Model"] for r in rows} == {BURSTGPT_MODEL}
        assert {r["Log Type"] for r in rows} == {"API log"}


def test_seconds_written_with_six_decimals(tmp_path):
    df = validate_trace(
        pl.DataFrame(
            {
                "timestamp_s": [0.0, 1.0000004, 2.9999996, 86399.123456789],
                "client_id": ["a"] * 4,
                "input_tokens": [1, 2, 3, 4],
                "output_tokens": [1, 1, 1, 1],
            }
        )
    )
    text = export_noting(df, tmp_path / "v.jsonl", "vllm").path.read_text()
    assert re.findall(r'"timestamp": ([0-9.]+),', text) == ["0.000000", "1.000000", "3.000000", "86399.123457"]
    _, rows = read_csv(export_noting(df, tmp_path / "v.csv", "vidur").path)
    assert [r["Time"] for r in rows] == ["0.000000", "1.000000", "3.000000", "86399.123457"]
    moon = read_jsonl(export_noting(df, tmp_path / "m.jsonl", "mooncake").path)
    assert [r["timestamp"] for r in moon] == [0, 1000, 3000, 86399123]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_native_formats_keep_every_column(workload, tmp_path, fmt):
    res = export_noting(workload, tmp_path / f"w{FORMATS[fmt].extension}", fmt)
    if fmt == "parquet":
        back = pl.read_parquet(res.path)
        assert_frame_equal(back, workload)
        return
    if fmt == "jsonl":
        recs = read_jsonl(res.path)
        assert list(recs[0]) == workload.columns
        assert [r["timestamp_s"] for r in recs] == workload["timestamp_s"].to_list()  # exact floats
        assert [r["image_tokens"] for r in recs] == workload["image_tokens"].to_list()
        assert [r["reason_ratio"] for r in recs] == workload["reason_ratio"].to_list()
        assert [r["session_id"] for r in recs] == workload["session_id"].to_list()
    else:
        header, rows = read_csv(res.path)
        assert header == workload.columns
        assert [float(r["timestamp_s"]) for r in rows] == workload["timestamp_s"].to_list()
        assert [int(r["reasoning_tokens"]) for r in rows] == workload["reasoning_tokens"].to_list()
    assert res.dropped_columns == ()


# --------------------------------------------------------------------------- #
# Real Mooncake trace: hash_ids kept, units converted
# --------------------------------------------------------------------------- #


def test_mooncake_source_round_trips_exactly(mooncake_source, tmp_path):
    src_path, trace = mooncake_source
    res = export_noting(trace, tmp_path / "m.jsonl", "mooncake")
    original = read_jsonl(src_path)
    written = read_jsonl(res.path)
    assert len(written) == len(original) == 3993
    assert {r.pop("client_id") for r in written} == {"0"}  # the tenant rides along in every record
    assert written == original  # same timestamps (ms), lengths and the source's own hash_ids
    assert all(len(r["hash_ids"]) == math.ceil(r["input_length"] / 512) for r in written)


@pytest.mark.parametrize("fmt", ["vllm", "guidellm"])
def test_mooncake_source_in_seconds_formats(mooncake_source, tmp_path, fmt):
    src_path, trace = mooncake_source
    original = read_jsonl(src_path)
    written = read_jsonl(export_noting(trace, tmp_path / "t.jsonl", fmt).path)
    assert [r["timestamp"] for r in written] == pytest.approx([r["timestamp"] / 1000 for r in original], abs=5e-7)
    assert [r["hash_ids"] for r in written] == [r["hash_ids"] for r in original]
    assert written[-1]["timestamp"] == pytest.approx(1022.025)


def test_hash_ids_follow_block_size_and_continue_after_kept_ids(mooncake_source):
    _, trace = mooncake_source
    head = trace.head(50)
    ids, nxt = assign_hash_ids(head.drop("hash_ids"), block_size=16, next_id=0)
    assert ids.list.len().to_list() == [math.ceil(x / 16) for x in head["input_tokens"]]
    # a chunk mixing kept and missing ids: new ids start above every id seen so far
    mixed = head.with_columns(
        hash_ids=pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("hash_ids")).otherwise(None)
    )
    got, _ = assign_hash_ids(mixed, block_size=512, next_id=0)
    kept = head["hash_ids"].to_list()
    seen = -1
    for i, row in enumerate(got.to_list()):
        if i % 2 == 0:
            assert row == kept[i]
            seen = max([seen, *row])
        else:
            assert len(row) == math.ceil(head["input_tokens"][i] / 512)
            assert all(x > seen for x in row)
            seen = max([seen, *row])
    with pytest.raises(ExportError, match="block_size"):
        assign_hash_ids(head, block_size=0)


# --------------------------------------------------------------------------- #
# Multimodal / reasoning columns: dropped with a note where there is no field
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fmt", [*BENCH_JSONL, *BENCH_CSV])
def test_multimodal_and_reasoning_dropped_with_note(workload, tmp_path, fmt):
    notes = Notes()
    res = export_trace(workload, tmp_path / f"w{FORMATS[fmt].extension}", fmt, note=notes)
    carries_tenant = "client_id" in FORMATS[fmt].fields  # mooncake writes it in every record
    for col in (*MULTIMODAL_REASONING, "session_id", *(() if carries_tenant else ("client_id",))):
        assert col in res.dropped_columns
    assert ("client_id" in res.dropped_columns) is not carries_tenant
    dropped_note = [n for n in notes if "not written" in n]
    assert len(dropped_note) == 1
    assert all(col in dropped_note[0] for col in MULTIMODAL_REASONING)
    if FORMATS[fmt].container == "jsonl":
        keys = set(read_jsonl(res.path)[0])
    else:
        keys = set(read_csv(res.path)[0])
    assert not keys & set(MULTIMODAL_REASONING)
    if fmt in ("vidur", "splitwise", "burstgpt"):
        zero = int((workload["output_tokens"] == 0).sum())
        assert any(f"{zero} request(s) with 0 output tokens" in n for n in notes)


def test_native_csv_drops_only_hash_ids(mooncake_source, tmp_path):
    _, trace = mooncake_source
    notes = Notes()
    res = export_trace(trace, tmp_path / "m.csv", "csv", note=notes)
    assert res.dropped_columns == ("hash_ids",)
    assert len(notes) == 1 and "hash_ids" in notes[0]
    header, rows = read_csv(res.path)
    assert header == ["timestamp_s", "client_id", "input_tokens", "output_tokens"]
    assert len(rows) == 3993


# --------------------------------------------------------------------------- #
# Determinism and edge cases
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_same_frame_same_bytes(workload, tmp_path, fmt):
    ext = FORMATS[fmt].extension
    a = export_noting(workload, tmp_path / f"a{ext}", fmt, spec=Spec(1))
    b = export_noting(workload.clone(), tmp_path / f"b{ext}", fmt, spec=Spec(1))
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.spec_path.read_bytes() == b.spec_path.read_bytes()
    assert a.bytes == b.bytes == a.path.stat().st_size


def test_empty_trace(workload, tmp_path):
    empty = workload.clear()
    header, rows = read_csv(export_noting(empty, tmp_path / "e.csv", "burstgpt").path)
    assert header == list(FORMATS["burstgpt"].fields) and rows == []
    assert export_noting(empty, tmp_path / "e.jsonl", "mooncake").path.read_bytes() == b""
    assert pl.read_parquet(export_noting(empty, tmp_path / "e.parquet", "parquet").path).height == 0


# --------------------------------------------------------------------------- #
# Prefix workloads: hash_ids from segments, sessions, notes, reload, exact native files
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def prefix_workload(servegen_dir: Path):
    """An hour of the top-5 m-large clients with shared prompts and sessions."""
    from servegen_core.generate.compose import compose
    from servegen_core.spec import ClientSelection, ConstantRate, PrefixProfile, PrefixSpec, ServeGenSource, Sessions, Span, SystemPrompts, WorkloadSpec

    spec = WorkloadSpec(
        source=ServeGenSource(data_dir=str(servegen_dir), model="language/m-large"),
        span=Span(72000, 1800),
        clients=ClientSelection(mode="top_k", k=5),
        rate=ConstantRate(rps=5.0),
        seed=11,
        prefix=PrefixSpec(
            default=PrefixProfile(
                system_prompts=SystemPrompts(count=8, request_share=0.7, tokens=700),
                sessions=Sessions(turns_mean=3.0, think_mean_s=30.0),
            )
        ),
    )
    return spec, compose(spec).trace


def _leading(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@pytest.mark.parametrize(("fmt", "block"), [("mooncake", 512), ("vllm", 16), ("guidellm", 512), ("mooncake", 64)])
def test_prefix_hash_ids_at_the_target_block_size(prefix_workload, tmp_path, fmt, block):
    """Exported ids are the segment keys of sessions.hash_ids renumbered densely: the same
    sharing (which sessions.hash_ids keeps at any block size, tested in test_sessions), ids
    small and non-negative (GuideLLM reads int32), one id per block of the target."""
    from servegen_core.export.formats import format_block_size
    from servegen_core.generate.sessions import hash_ids

    _spec, full = prefix_workload
    # mooncake without turn_index: every request whole (sessions are tested below)
    tr = full.drop("turn_index") if fmt == "mooncake" else full
    size = None if block == format_block_size(fmt) else block
    res = export_noting(tr, tmp_path / "p.jsonl", fmt, block_size=size)
    recs = read_jsonl(res.path)
    got = [r["hash_ids"] for r in recs]
    assert [len(h) for h in got] == [math.ceil(r["input_length"] / block) for r in recs]
    flat = [i for h in got for i in h]
    assert min(flat) >= 0 and max(flat) < 2**31
    assert sorted(set(flat)) == list(range(len(set(flat))))  # dense, in order of first use
    keys = hash_ids(tr["segment_ids"], tr["segment_tokens"], block_size=block).to_list()
    mapping: dict[int, int] = {}
    for k_row, g_row in zip(keys, got):
        for k, g in zip(k_row, g_row):
            assert mapping.setdefault(k, g) == g
    assert len(set(mapping.values())) == len(mapping)  # a bijection
    # real sharing exists: consecutive turns of sessions share leading blocks
    rows = full.with_row_index("i").filter(pl.col("turn_index") > 0).head(200)
    prev = full.with_row_index("i").join(
        rows.select("session_id", (pl.col("turn_index") - 1).alias("turn_index"), pl.col("i").alias("j")),
        on=["session_id", "turn_index"],
    )
    shared = [_leading(got[i], got[j]) for i, j in zip(prev["i"], prev["j"])]
    assert sum(s > 0 for s in shared) > 100


def test_prefix_export_in_chunks_equals_whole(prefix_workload, tmp_path):
    _spec, tr = prefix_workload
    whole = export_noting(tr, tmp_path / "w.jsonl", "guidellm")
    parts = export_chunks(chunks_of(tr, [137, 900, 5]), tmp_path / "c.jsonl", "guidellm", note=None)
    assert parts.path.read_bytes() == whole.path.read_bytes()


def test_notes_for_sessions_vidur_and_replay_commands(prefix_workload, mooncake_source, tmp_path):
    from servegen_core.export.formats import VIDUR_MAX_TOKENS, usage_hint

    _spec, tr = prefix_workload
    notes = Notes()
    export_noting(tr, tmp_path / "v.jsonl", "vllm", note=notes)
    later = int((tr["turn_index"] > 0).sum())
    assert any("sessions not written" in n and f"{later} later turn" in n for n in notes)
    notes = Notes()
    export_noting(tr, tmp_path / "v.csv", "vidur", note=notes)
    assert not any("max_tokens" in n for n in notes)  # m-large requests fit in 4096 tokens
    _src, mc = mooncake_source
    notes = Notes()
    export_noting(mc, tmp_path / "m.csv", "vidur", note=notes)
    over = int((mc["input_tokens"] + mc["output_tokens"] > VIDUR_MAX_TOKENS).sum())
    assert over > 1000
    assert any(f"{over} request(s)" in n and "max_tokens 4096" in n for n in notes)
    decode = int((mc["output_tokens"] >= VIDUR_MAX_TOKENS).sum())
    assert any(f"{decode} request(s) with decode tokens >= Vidur's default" in n for n in notes) == (decode > 0)
    notes = Notes()
    export_noting(tr, tmp_path / "n.jsonl", "jsonl", note=notes)
    assert not any("sessions" in n for n in notes)
    # the printed commands themselves: tests/export/test_export_consumers.py, parsed by the consumers'
    # own parsers in tests/replay/test_replay_commands.py
    assert usage_hint("vllm", "f.jsonl", rows=7).endswith("--num-prompts 7 --no-oversample --self-timed --timed-trace-chunk-hash-size 16")
    assert "--timed-trace-chunk-hash-size 512" in usage_hint("vllm", "f.jsonl", 512)
    g = usage_hint("guidellm", "f.jsonl", 64)
    assert "--data kind=mooncake,source.kind=json_file,source.path=f.jsonl,hash_id_block_size=64" in g
    assert "--fixed-schedule" in usage_hint("burstgpt", "f.csv")
    assert "--prompt-input-tokens-block-size 64" in usage_hint("mooncake", "f.jsonl", 64)
    assert "--prompt-input-tokens-block-size 512" in usage_hint("mooncake", "f.jsonl")


@pytest.mark.parametrize("fmt", ["vllm", "guidellm", "mooncake"])
def test_benchmark_exports_reload_in_their_own_unit(prefix_workload, tmp_path, fmt):
    """A 30-minute workload reloads as 30 minutes from every JSONL benchmark format: seconds
    for vllm/guidellm (told by the decimals and the spec sidecar), ms for mooncake; without
    the sidecar a seconds file is refused as ambiguous."""
    from servegen_core.sources.traces import load_trace

    spec, tr = prefix_workload
    path = tmp_path / f"{fmt}.jsonl"
    export_noting(tr, path, fmt, spec=spec)
    back = load_trace(path)
    span = float(tr["timestamp_s"].max() - tr["timestamp_s"].min())
    assert abs(float(back.trace["timestamp_s"].max()) - span) < 1e-3
    assert back.preset == ("mooncake" if fmt == "mooncake" else "timed_trace")
    assert back.trace["input_tokens"].to_list() == tr["input_tokens"].to_list()
    bare = tmp_path / f"bare-{fmt}.jsonl"
    export_noting(tr, bare, fmt)
    if fmt == "mooncake":
        assert load_trace(bare).preset == "mooncake"
    else:
        with pytest.raises(DataFormatError, match="timed_trace"):
            load_trace(bare)
        assert abs(float(load_trace(bare, preset="timed_trace").trace["timestamp_s"].max()) - span) < 1e-3


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_native_exports_reload_bit_for_bit(prefix_workload, tmp_path, fmt):
    from servegen_core.sources.traces import load_trace

    _spec, tr = prefix_workload
    path = tmp_path / f"n.{fmt}"
    export_noting(tr, path, fmt)
    back = load_trace(path).trace
    cols = [c for c in tr.columns if c in back.columns]
    if fmt == "csv":  # CSV cannot hold the segment lists
        assert set(tr.columns) - set(cols) == {"segment_ids", "segment_tokens"}
    else:
        assert cols == tr.columns
    assert_frame_equal(back.select(cols), tr.select(cols))
    a = tr["timestamp_s"].to_numpy()
    b = back["timestamp_s"].to_numpy()
    assert np.array_equal(a.view(np.int64), b.view(np.int64))


def test_mooncake_sessions_as_aiperf_conversations(prefix_workload, tmp_path):
    """Every record has a session_id; inside one conversation (file order) each later record
    holds only the tokens AIPerf adds to the history it accumulates, so the planned prompt
    is the history plus them: x_j = x_{j-1} + o_{j-1} + input_length_j. Records that are
    whole prompts carry ceil(x / 512) ids. The file reloads into the planned input lengths,
    and chunked writing gives the same bytes."""
    from servegen_core.sources.traces import load_trace

    spec, tr = prefix_workload
    res = export_noting(tr, tmp_path / "s.jsonl", "mooncake", spec=spec)
    recs = read_jsonl(res.path)
    assert all(list(r) == [*FORMATS["mooncake"].fields, "session_id"] for r in recs)
    x = tr["input_tokens"].to_list()
    o = tr["output_tokens"].to_list()
    sessions = tr["session_id"].to_list()
    last: dict[str, int] = {}
    extending = whole = 0
    for i, r in enumerate(recs):
        conv = r["session_id"]
        assert conv.split("~")[0] == sessions[i]
        if conv in last:
            j = last[conv]
            assert x[i] == x[j] + o[j] + r["input_length"]
            assert r["timestamp"] >= recs[j]["timestamp"]
            assert len(r["hash_ids"]) == math.ceil(r["input_length"] / 512)
            extending += 1
        else:
            assert r["input_length"] == x[i]
            assert len(r["hash_ids"]) == math.ceil(x[i] / 512)
            whole += 1
        last[conv] = i
    assert extending > 200 and whole > 200
    back = load_trace(res.path).trace
    assert back["input_tokens"].to_list() == x
    parts = export_chunks(chunks_of(tr, [50, 333, 1000]), tmp_path / "c.jsonl", "mooncake", note=None)
    assert parts.path.read_bytes() == res.path.read_bytes()


def test_kept_hash_ids_keep_their_block_size(mooncake_source, tmp_path):
    """The Mooncake trace's own ids (512-token blocks) go to vLLM with block size 512 and the
    flag that says so, not under vLLM's default of 16; forcing 16 is noted as a mismatch."""
    from servegen_core.export.formats import usage_hint

    src_path, trace = mooncake_source
    res = export_noting(trace, tmp_path / "v.jsonl", "vllm")
    assert res.block_size == 512
    assert usage_hint("vllm", res.path, res.block_size).endswith("--timed-trace-chunk-hash-size 512")  # the trace's own size
    assert [r["hash_ids"] for r in read_jsonl(res.path)] == [r["hash_ids"] for r in read_jsonl(src_path)]
    notes = Notes()
    res = export_noting(trace, tmp_path / "v16.jsonl", "vllm", block_size=16, note=notes)
    assert res.block_size == 16
    off = int((trace["hash_ids"].list.len() != (trace["input_tokens"] + 15) // 16).sum())
    assert off > 3000 and any(f"{off} request(s) keep hash_ids" in n for n in notes)
