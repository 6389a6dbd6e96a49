"""Trace and pool loaders on files crafted to exhaust memory: gzip bombs, absurd time spans,
token counts and hash_ids lists. Each is refused with an error naming the file and the place
(never quoting a cell), before anything sized by the bad value is built."""

from __future__ import annotations

import gzip
import json
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.sources import traces
from servegen_core.errors import DataFormatError
from servegen_core.limits import DEFAULT_MAX_SPAN_S, DEFAULT_MAX_TOKENS
from servegen_core.sources.pool import load_pool
from servegen_core.sources.traces import load_trace, trace_columns


def write_gzip_zeros(path: Path, megabytes: int, head: bytes = b"") -> Path:
    """A real gzip bomb: ``head`` then ``megabytes`` MB of zero bytes, compressed as a stream."""
    block = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(head)
        for _ in range(megabytes):
            fh.write(block)
    return path


@pytest.fixture
def azure_rows(traces_dir: Path) -> pl.DataFrame:
    """The first 3,000 requests of the shared Azure conversation trace, as read from the CSV."""
    return pl.read_csv(traces_dir / "AzureLLMInferenceTrace_conv.csv", n_rows=3000)


# --------------------------------------------------------------------------- gzip


def test_gzip_bomb_is_refused_without_inflating(tmp_path, monkeypatch):
    bomb = write_gzip_zeros(tmp_path / "bomb.csv.gz", 64, head=b"TIMESTAMP,ContextTokens,GeneratedTokens\n")
    assert bomb.stat().st_size < 200_000  # 64 MB of content in well under 1 MB
    monkeypatch.setenv("SERVEGEN_MAX_DECOMPRESSED_MB", "16")
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as info:
            load_trace(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.path == str(bomb) and "more than 16 MB" in str(info.value)
    assert "SERVEGEN_MAX_DECOMPRESSED_MB" in str(info.value)
    assert peak < 8 * 2**20, f"peak Python allocation {peak / 2**20:.1f} MB while refusing a 64 MB bomb"
    pq_bomb = write_gzip_zeros(tmp_path / "bomb.parquet.gz", 64)
    with pytest.raises(DataFormatError, match="more than 16 MB"):
        trace_columns(pq_bomb)


@pytest.mark.parametrize(("fill", "limit_mb"), [(b"\0", 4), (b"\n", 1)])
def test_json_lines_header_of_a_gzip_bomb_stops_at_the_limit(tmp_path, monkeypatch, traces_dir, fill, limit_mb):
    """trace_columns reads a .jsonl.gz no further than $SERVEGEN_MAX_DECOMPRESSED_MB: one huge
    first line, or a flood of blank lines before it, is refused without being inflated."""
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(48):
            fh.write(fill * (1 << 20))
        fh.write(b'{"timestamp": 1, "input_length": 2, "output_length": 3}\n')
    monkeypatch.setenv("SERVEGEN_MAX_DECOMPRESSED_MB", str(limit_mb))
    if fill == b"\n":  # a million blank lines: too slow to trace allocations line by line
        with pytest.raises(DataFormatError) as info:
            trace_columns(bomb)
    else:
        tracemalloc.start()
        try:
            with pytest.raises(DataFormatError) as info:
                trace_columns(bomb)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, f"peak Python allocation {peak / 2**20:.1f} MB for a 4 MB limit"
    assert info.value.path == str(bomb) and f"more than {limit_mb} MB" in str(info.value)
    assert "SERVEGEN_MAX_DECOMPRESSED_MB" in str(info.value)
    # a real header under the limit still reads
    head = (traces_dir / "mooncake_synthetic_trace.jsonl").read_bytes()[: 1 << 20]
    (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress(b"\n" * 1000 + head))
    first = json.loads(head.split(b"\n", 1)[0])
    assert trace_columns(tmp_path / "m.jsonl.gz") == list(first)


def test_gzip_under_the_limit_loads_like_the_plain_file(tmp_path, azure_rows, monkeypatch):
    plain = tmp_path / "azure.csv"
    azure_rows.write_csv(plain)
    packed = tmp_path / "azure.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = load_trace(plain).trace
    assert load_trace(packed).trace.equals(expected)
    # a file too large for memory goes through a temporary file, deleted afterwards
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setattr(traces, "_GZIP_IN_MEMORY_BYTES", 1000)
    assert load_trace(packed).trace.equals(expected)
    assert list(temp_dir.iterdir()) == []
    with pytest.raises(DataFormatError, match="line 3, column 'ContextTokens'"):
        bad = azure_rows.with_columns(pl.col("ContextTokens").cast(pl.String))
        bad[1, "ContextTokens"] = "many"
        (tmp_path / "bad.csv.gz").write_bytes(gzip.compress(bad.write_csv().encode()))
        load_trace(tmp_path / "bad.csv.gz")
    assert list(temp_dir.iterdir()) == []


# --------------------------------------------------------------------------- time span


def test_nanoseconds_read_as_seconds_name_the_column_and_suggest_ns(tmp_path, azure_rows):
    ns = azure_rows.select(
        pl.col("TIMESTAMP").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns").dt.epoch("ns").alias("ts"),
        pl.col("ContextTokens").alias("prompt"),
        pl.col("GeneratedTokens").alias("completion"),
    )
    path = tmp_path / "ns.csv"
    ns.write_csv(path)
    columns = {"timestamp": "ts", "input_tokens": "prompt", "output_tokens": "completion"}
    with pytest.raises(DataFormatError) as info:
        load_trace(path, columns=columns, time_unit="s")
    assert info.value.where == "column 'ts'"
    assert "time_unit='ns'" in str(info.value) and "nanoseconds" in str(info.value)
    with pytest.raises(DataFormatError, match="time_unit='ns'"):
        load_trace(path, columns=columns, time_unit="ms")
    good = load_trace(path, columns=columns, time_unit="ns").trace
    reference = load_trace(_azure_file(tmp_path, azure_rows), preset="azure").trace
    assert good["timestamp_s"].max() == pytest.approx(reference["timestamp_s"].max(), abs=1e-6)


def _azure_file(tmp_path: Path, rows: pl.DataFrame) -> Path:
    path = tmp_path / "azure_ref.csv"
    rows.write_csv(path)
    return path


def test_absurd_timestamps_are_refused(tmp_path):
    f = tmp_path / "far.jsonl"
    f.write_text(
        '{"timestamp": 0, "input_length": 10, "output_length": 1}\n'
        '{"timestamp": 1e20, "input_length": 10, "output_length": 1}\n'
    )
    with pytest.raises(DataFormatError) as info:
        load_trace(f)
    assert info.value.where == "column 'timestamp'" and "span" in str(info.value)
    assert "1e+20" not in str(info.value) and "1e20" not in str(info.value)  # no cell is quoted
    # the servegen preset keeps its origin: one request at 1e20 s is refused too
    g = tmp_path / "one.csv"
    g.write_text("timestamp_s,client_id,input_tokens,output_tokens\n100000000000000000000,a,1,1\n")
    with pytest.raises(DataFormatError, match="reach") as info:
        load_trace(g)
    assert info.value.where == "column 'timestamp_s'"


def test_absurd_timestamps_raise_no_numpy_warning(tmp_path):
    """A 1e20 s timestamp ends in a clean error (or a measured resolution), never a numpy warning first."""
    import warnings

    from servegen_core.sources.fit import pool_from_trace
    from servegen_core.sources.traces import timestamp_resolution

    f = tmp_path / "far.jsonl"
    f.write_text(
        '{"timestamp": 0, "input_length": 10, "output_length": 1}\n'
        '{"timestamp": 500, "input_length": 10, "output_length": 1}\n'
        '{"timestamp": 1e20, "input_length": 10, "output_length": 1}\n'
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataFormatError, match="span"):
            load_trace(f)
        # with the span limit lifted the file loads, and its resolution is measured on the short gap
        loaded = load_trace(f, max_span_s=1e30)
        assert loaded.resolution.grid_s == pytest.approx(0.5) and loaded.resolution.min_gap_s == pytest.approx(0.5)
        assert loaded.resolution.share_zero_gaps == 0.0
        # a gap too long for the 100 ns tick grid counts as a positive gap, not a zero one
        res = timestamp_resolution(pl.Series([0.0, 1e20]))
        assert res.share_zero_gaps == 0.0 and res.min_gap_s == pytest.approx(1e20)
        trace = pl.DataFrame(
            {"timestamp_s": [0.0, 1.0, 1e20], "client_id": ["a"] * 3, "input_tokens": [1, 2, 3], "output_tokens": [1, 2, 3]}
        )
        with pytest.raises(ValueError, match="more than"):
            pool_from_trace(trace, name="far")


def test_span_limit_is_configurable(tmp_path, azure_rows, monkeypatch):
    path = _azure_file(tmp_path, azure_rows)
    span = load_trace(path).trace["timestamp_s"].max()
    assert 60 < span < DEFAULT_MAX_SPAN_S
    with pytest.raises(DataFormatError, match="SERVEGEN_MAX_SPAN_S"):
        load_trace(path, max_span_s=span / 2)
    monkeypatch.setenv("SERVEGEN_MAX_SPAN_S", str(span / 2))
    with pytest.raises(DataFormatError, match="column 'TIMESTAMP'"):
        load_trace(path)
    assert load_trace(path, max_span_s=span * 2).trace.height == azure_rows.height


# --------------------------------------------------------------------------- tokens and hash_ids


def test_token_counts_above_the_limit_name_the_line(tmp_path, azure_rows, monkeypatch):
    at_limit = azure_rows.with_columns(pl.col("ContextTokens").cast(pl.Int64))
    at_limit[4, "ContextTokens"] = DEFAULT_MAX_TOKENS
    ok = tmp_path / "ok.csv"
    at_limit.write_csv(ok)
    assert load_trace(ok).trace["input_tokens"].max() == DEFAULT_MAX_TOKENS
    over = at_limit.clone()
    over[7, "GeneratedTokens"] = DEFAULT_MAX_TOKENS + 1
    bad = tmp_path / "over.csv"
    over.write_csv(bad)
    with pytest.raises(DataFormatError) as info:
        load_trace(bad)
    assert info.value.where == "line 9, column 'GeneratedTokens'"
    assert "above the limit of 10,000,000" in str(info.value) and "10000001" not in str(info.value)
    monkeypatch.setenv("SERVEGEN_MAX_TOKENS", "1000")
    with pytest.raises(DataFormatError, match="above the limit of 1,000") as info:
        load_trace(ok)
    first_big = int(np.flatnonzero(at_limit["ContextTokens"].to_numpy() > 1000)[0])
    assert info.value.where == f"line {first_big + 2}, column 'ContextTokens'"


def test_hash_ids_must_fit_the_input_length(tmp_path, traces_dir):
    real = load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace
    lengths = real["hash_ids"].list.len()
    assert (lengths == (real["input_tokens"] + 511) // 512).all()  # the shared trace is consistent
    good = '{"timestamp": 0, "input_length": 1000, "output_length": 1, "hash_ids": [0, 1]}\n'
    cases = [
        ('{"timestamp": 5, "input_length": 3, "output_length": 1, "hash_ids": [4, 5, 6, 7]}\n', "more hash ids"),
        # blocks hold at most MAX_BLOCK_SIZE tokens (the token limit): input needs at least one block
        ('{"timestamp": 5, "input_length": 100, "output_length": 1, "hash_ids": []}\n', "too few hash ids"),
        ('{"timestamp": 5, "input_length": 100, "output_length": 1, "hash_ids": [-1]}\n', "outside"),
        (f'{{"timestamp": 5, "input_length": 100, "output_length": 1, "hash_ids": [{2**62}]}}\n', "outside"),
    ]
    for i, (line, words) in enumerate(cases):
        f = tmp_path / f"h{i}.jsonl"
        f.write_text(good + good.replace('"timestamp": 0', '"timestamp": 1') + line)
        with pytest.raises(DataFormatError) as info:
            load_trace(f)
        assert info.value.where == "line 3, field 'hash_ids'" and words in str(info.value), str(info.value)


def test_export_refuses_a_chunk_needing_too_many_hash_ids(azure_rows, tmp_path, monkeypatch):
    from servegen_core.export import formats as export
    from servegen_core.errors import ExportError

    trace = load_trace(_azure_file(tmp_path, azure_rows)).trace
    total = int(trace["input_tokens"].sum())
    monkeypatch.setattr(export, "MAX_HASH_IDS_PER_CHUNK", total - 1)
    with pytest.raises(ExportError, match=f"{total:,} hash_ids blocks of 1 tokens"):
        export.assign_hash_ids(trace, block_size=1)
    ids, nxt = export.assign_hash_ids(trace, block_size=2)
    assert nxt == int(((trace["input_tokens"] + 1) // 2).sum())


# --------------------------------------------------------------------------- pool files


def _pool(root: Path, trace: str, dataset: dict) -> Path:
    folder = root / "language" / "m-test"
    folder.mkdir(parents=True)
    (folder / "chunk-0-trace.csv").write_text(trace)
    (folder / "chunk-0-dataset.json").write_text(json.dumps(dataset))
    return root


def test_pool_token_bins_and_window_starts_are_bounded(tmp_path, servegen_dir):
    real = (servegen_dir / "language" / "m-large" / "chunk-1-trace.csv").read_text().splitlines()[:3]
    trace = "\n".join(real) + "\n"
    ok = {"0": {"input_tokens": f"{{{DEFAULT_MAX_TOKENS}: 1.0}}", "output_tokens": "{5: 1.0}"}}
    assert load_pool(_pool(tmp_path / "a", trace, ok), "language/m-test").distributions["value"].max() == DEFAULT_MAX_TOKENS
    big = {"0": {"input_tokens": "{10: 0.5, 10000001: 0.5}", "output_tokens": "{5: 1.0}"}}
    with pytest.raises(DataFormatError) as info:
        load_pool(_pool(tmp_path / "b", trace, big), "language/m-test")
    assert info.value.where == "window 0, field input_tokens" and "above the limit" in str(info.value)
    far = trace + f"{10**15},1.0,1.0,Gamma,1.0,1.0\n"
    with pytest.raises(DataFormatError) as info:
        load_pool(_pool(tmp_path / "c", far, ok), "language/m-test")
    assert info.value.where == "line 4, column start_s" and "span limit" in str(info.value)


def test_pool_dataset_nested_too_deeply(tmp_path, servegen_dir):
    root = _pool(tmp_path, (servegen_dir / "language" / "m-large" / "chunk-1-trace.csv").read_text(), {})
    (root / "language" / "m-test" / "chunk-0-dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match="nested too deeply"):
        load_pool(root, "language/m-test")


# --------------------------------------------------------------------------- large files


def test_streamed_read_reports_progress_and_equals_one_batch(tmp_path, azure_rows, monkeypatch):
    path = _azure_file(tmp_path, azure_rows)
    whole = load_trace(path)
    seen: list[int] = []
    monkeypatch.setattr(traces, "_BATCH_ROWS", 700)
    batched = load_trace(path, progress=seen.append)
    assert batched.trace.equals(whole.trace) and batched.resolution == whole.resolution
    assert seen == sorted(seen) and seen[-1] == azure_rows.height and len(seen) >= azure_rows.height // 700


def test_resolution_in_blocks_equals_one_block(traces_dir, monkeypatch):
    ts = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace["timestamp_s"]
    whole = traces.timestamp_resolution(ts)
    monkeypatch.setattr(traces, "_RESOLUTION_BLOCK", 1000)
    assert traces.timestamp_resolution(ts) == whole


def test_conversation_rebuild_is_bounded(tmp_path, monkeypatch):
    """AIPerf conversations (mooncake rows sharing a session_id) are rebuilt into whole prompts;
    a conversation whose history grows past the token limit, or whose rebuilt hash_ids would
    be too many (they grow quadratically with the turns), is refused before rebuilding."""
    turns = [
        {"timestamp": 1000 * i, "session_id": "s1", "input_length": 600_000, "output_length": 10,
         "hash_ids": list(range(2 * i, 2 * i + 2))}
        for i in range(20)
    ]
    f = tmp_path / "conv.jsonl"
    f.write_text("".join(json.dumps(t) + "\n" for t in turns))
    with pytest.raises(DataFormatError) as info:
        load_trace(f)
    # turn 17 (line 17) is the first whose history + new tokens pass 10,000,000: 17 * 600,000 + 16 * 10
    assert info.value.where == "line 17, field 'session_id'" and "above the limit" in str(info.value)
    small = [dict(t, input_length=1000) for t in turns]
    f.write_text("".join(json.dumps(t) + "\n" for t in small))
    rebuilt = load_trace(f).trace
    assert rebuilt["input_tokens"].to_list() == [1000 * (j + 1) + 10 * j for j in range(20)]
    assert rebuilt["hash_ids"].list.len().to_list() == [2 * (j + 1) for j in range(20)]
    monkeypatch.setattr(traces, "MAX_REBUILT_HASH_IDS", 2 * sum(range(1, 21)) - 1)
    with pytest.raises(DataFormatError, match="hash ids"):
        load_trace(f)


# --------------------------------------------------------------------------- arrays sized by the span


def _sparse_trace(azure: pl.DataFrame, far_s: float) -> pl.DataFrame:
    """The Azure requests (client "a") plus client "b": three requests at the start, three ``far_s`` s later."""
    from servegen_core.schema import validate_trace

    base = azure.select("timestamp_s", "input_tokens", "output_tokens").with_columns(client_id=pl.lit("a"))
    far = pl.DataFrame(
        {
            "timestamp_s": [1.0, 2.0, 4.0, far_s, far_s + 1.0, far_s + 3.0],
            "input_tokens": [5, 6, 7, 8, 9, 10],
            "output_tokens": [1, 2, 3, 4, 5, 6],
            "client_id": ["b"] * 6,
        }
    )
    return validate_trace(pl.concat([base, far], how="diagonal"))


def test_window_cv_of_a_sparse_client_is_sized_by_requests(tmp_path, azure_rows, monkeypatch):
    """A client with requests 1e15 s apart has two windows, found without a window per 600 s."""
    from servegen_core.characterize import arrivals
    azure = load_trace(_azure_file(tmp_path, azure_rows)).trace
    trace = _sparse_trace(azure, 1e15)
    tracemalloc.start()
    try:
        got = arrivals.window_cv(trace, min_requests=3).frame
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
    assert got.filter(pl.col("client_id") == "b")["start_s"].to_list() == [0, int(1e15 // 600 * 600)]
    # the same as the other code path (every request's window index, used for many clients)
    monkeypatch.setattr(arrivals, "SEARCH_MAX_CLIENTS", 0)
    assert arrivals.window_cv(trace, min_requests=3).frame.equals(got)
    near = _sparse_trace(azure, 5000.0)  # both paths agree on a dense client too
    dense = arrivals.window_cv(near, min_requests=3).frame
    monkeypatch.setattr(arrivals, "SEARCH_MAX_CLIENTS", 4096)
    assert arrivals.window_cv(near, min_requests=3).frame.equals(dense)


def test_rate_series_over_an_absurd_span_is_refused_before_allocating(tmp_path, azure_rows):
    from servegen_core.characterize import rates
    from servegen_core.errors import LimitError
    from servegen_core.limits import MAX_TIME_BINS

    azure = load_trace(_azure_file(tmp_path, azure_rows)).trace
    with pytest.raises(LimitError, match="time bins of 60 s") as info:
        rates.rate_series(_sparse_trace(azure, 1e15), resolution_s=60)
    assert info.value.limit == MAX_TIME_BINS and info.value.value > 1e12
    ok = rates.rate_series(_sparse_trace(azure, 86400.0), resolution_s=60)
    assert ok.ok and ok.frame.height > 0
