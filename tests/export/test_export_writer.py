"""Tests for servegen_core.export.writer: streaming, atomic writes, overwrite refusal, spec sidecars, write_chunks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from _export import STREAMED, Notes, Spec, chunks_of, export_noting, read_csv
from servegen_core.errors import DataFormatError, ExportError
from servegen_core.export.formats import FORMATS, spec_sidecar_path
from servegen_core.export.writer import ChunkWriter, WriteProgress, export_chunks, export_trace, write_chunks
from servegen_core.schema import validate_trace


@pytest.mark.parametrize("fmt", STREAMED)
def test_chunked_equals_one_shot_byte_for_byte(workload, tmp_path, fmt):
    ext = FORMATS[fmt].extension
    one = export_noting(workload, tmp_path / f"one{ext}", fmt)
    chunked = export_chunks(
        chunks_of(workload, [1, 0, 57, 130, 2]), tmp_path / f"chunked{ext}", fmt, note=Notes()
    )
    assert chunked.rows == one.rows == workload.height
    assert chunked.path.read_bytes() == one.path.read_bytes()
    assert chunked.dropped_columns == one.dropped_columns


def test_chunked_mooncake_source_keeps_ids_and_matches_one_shot(mooncake_source, tmp_path):
    _, trace = mooncake_source
    one = export_noting(trace, tmp_path / "one.jsonl", "mooncake")
    chunked = export_chunks(chunks_of(trace, [1000, 1000]), tmp_path / "c.jsonl", "mooncake", note=Notes())
    assert chunked.path.read_bytes() == one.path.read_bytes()


def test_chunked_parquet_is_a_partitioned_folder(workload, tmp_path):
    res = export_chunks(chunks_of(workload, [100, 0, 150]), tmp_path / "w.parquet", "parquet", note=Notes())
    parts = sorted(p.name for p in res.path.iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert_frame_equal(pl.read_parquet(res.path / "*.parquet"), workload)
    assert res.rows == workload.height
    assert res.bytes == sum(p.stat().st_size for p in res.path.iterdir())


def test_chunk_writer_context_manager(workload, tmp_path):
    with ChunkWriter(tmp_path / "w.csv", "vidur", note=Notes()) as w:
        for chunk in workload.iter_slices(64):
            w.write(chunk)
    assert w.result.rows == workload.height
    assert len(read_csv(w.result.path)[1]) == workload.height


def test_chunks_must_come_in_time_order(workload, tmp_path):
    late, early = workload.slice(200), workload.slice(0, 200)
    with pytest.raises(DataFormatError, match="chunk 1"):
        export_chunks([late, early], tmp_path / "w.jsonl", "vllm", note=Notes())
    assert list(tmp_path.iterdir()) == []
    unsorted = workload.reverse()
    with pytest.raises(DataFormatError, match="not sorted"):
        export_trace(unsorted, tmp_path / "w.jsonl", "vllm", note=Notes())
    assert list(tmp_path.iterdir()) == []


def _failing(df: pl.DataFrame, after: int):
    for i, chunk in enumerate(df.iter_slices(50)):
        if i == after:
            msg = "generator failed mid-way"
            raise RuntimeError(msg)
        yield chunk


@pytest.mark.parametrize("fmt", ["mooncake", "burstgpt", "parquet", "jsonl"])
def test_failure_mid_write_leaves_nothing(workload, tmp_path, fmt):
    target = tmp_path / f"w{FORMATS[fmt].extension}"
    with pytest.raises(RuntimeError, match="mid-way"):
        export_chunks(_failing(workload, 3), target, fmt, spec=Spec(1), note=Notes())
    assert list(tmp_path.iterdir()) == []


def test_failure_with_overwrite_keeps_old_file(workload, tmp_path):
    target = tmp_path / "w.jsonl"
    old = export_noting(workload.head(5), target, "vllm", spec=Spec(1))
    before = target.read_bytes(), spec_sidecar_path(target).read_text()
    with pytest.raises(RuntimeError):
        export_chunks(_failing(workload, 2), target, "vllm", overwrite=True, spec=Spec(2), note=Notes())
    assert (target.read_bytes(), spec_sidecar_path(target).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.path.name, old.spec_path.name]


def test_refuses_to_overwrite_unless_asked(workload, tmp_path):
    target = tmp_path / "w.csv"
    export_noting(workload.head(3), target, "vidur")
    before = target.read_bytes()
    with pytest.raises(ExportError, match=re.escape(str(target))):
        export_noting(workload, target, "vidur")
    assert target.read_bytes() == before
    res = export_noting(workload, target, "vidur", overwrite=True)
    assert len(read_csv(res.path)[1]) == workload.height
    # a partitioned folder replaces a file too
    res = export_chunks(chunks_of(workload, [10]), target, "parquet", overwrite=True, note=Notes())
    assert target.is_dir() and pl.read_parquet(target / "*.parquet").height == workload.height
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv"]


def test_refuses_existing_spec_sidecar(workload, tmp_path):
    target = tmp_path / "w.jsonl"
    sidecar = spec_sidecar_path(target)
    sidecar.write_text("{}\n")
    with pytest.raises(ExportError, match=re.escape(str(sidecar))):
        export_noting(workload, target, "mooncake", spec=Spec(3))
    assert not target.exists()
    notes = Notes()
    res = export_trace(workload, target, "mooncake", overwrite=True, note=notes)
    assert res.spec_path is None and not sidecar.exists()  # stale spec of the replaced export removed
    assert any("removed the spec" in n for n in notes)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (Spec(7), {"source": "language/m-large", "seed": 7}),
        ({"seed": 8, "source": "reason/deepseek-r1"}, {"seed": 8, "source": "reason/deepseek-r1"}),
        ('{"seed": 9}', {"seed": 9}),
    ],
)
def test_spec_sidecar_written_next_to_file(workload, tmp_path, spec, expected):
    for fmt in ("parquet", "guidellm"):
        target = tmp_path / f"w{FORMATS[fmt].extension}"
        res = export_noting(workload, target, fmt, spec=spec)
        assert res.spec_path == target.parent / f"{target.name}.spec.json"
        assert json.loads(res.spec_path.read_text()) == expected


def test_invalid_spec_writes_nothing(workload, tmp_path):
    with pytest.raises(ExportError, match="not valid JSON"):
        export_noting(workload, tmp_path / "w.jsonl", "vllm", spec="seed=1")
    with pytest.raises(ExportError, match="to_json"):
        export_noting(workload, tmp_path / "w.jsonl", "vllm", spec=42)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_lists_known_ones(workload, tmp_path):
    with pytest.raises(ExportError) as err:
        export_noting(workload, tmp_path / "w.x", "sharegpt")
    for name in FORMATS:
        assert name in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_an_error(workload, tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_noting(workload, tmp_path / "nope" / "w.jsonl", "vllm")


def _trace(n: int) -> pl.DataFrame:
    return validate_trace(
        pl.DataFrame(
            {
                "timestamp_s": [0.5 * i for i in range(n)],
                "client_id": ["a" if i % 3 else "b" for i in range(n)],
                "input_tokens": [10 + i for i in range(n)],
                "output_tokens": [1 + i % 7 for i in range(n)],
            }
        )
    )


def test_write_chunks_reports_each_chunk_and_equals_a_whole_export(tmp_path: Path) -> None:
    trace = _trace(25)
    sizes = [10, 7, 8]
    starts = [0, 10, 17]
    chunks = [trace.slice(s, n) for s, n in zip(starts, sizes, strict=True)]
    seen: list[WriteProgress] = []
    result = write_chunks(ChunkWriter(tmp_path / "c.jsonl", "mooncake", note=None), chunks, progress=seen.append)
    assert [p.chunks for p in seen] == [1, 2, 3]
    assert [p.rows for p in seen] == [10, 17, 25]
    assert [p.chunk.height for p in seen] == sizes
    assert result.rows == 25 and result.path == tmp_path / "c.jsonl"
    whole = export_trace(trace, tmp_path / "w.jsonl", "mooncake", note=None)
    assert (tmp_path / "c.jsonl").read_bytes() == whole.path.read_bytes()


def test_a_failing_progress_callback_leaves_nothing(tmp_path: Path) -> None:
    trace = _trace(20)

    def stop(done: WriteProgress) -> None:
        if done.chunks == 2:
            raise KeyboardInterrupt

    writer = ChunkWriter(tmp_path / "c.csv", "csv", spec={"seed": 1}, note=None)
    with pytest.raises(KeyboardInterrupt):
        write_chunks(writer, [trace.slice(0, 10), trace.slice(10, 10)], progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_replacing_an_export_rewrites_or_removes_its_spec(tmp_path: Path, fmt: str) -> None:
    """Whole Parquet (one file) and a streamed format install the output and its sidecar alike."""
    trace = _trace(12)
    target = tmp_path / f"w.{fmt}"
    sidecar = tmp_path / f"w.{fmt}.spec.json"
    first = export_trace(trace, target, fmt, spec={"seed": 1}, note=None)
    assert first.spec_path == sidecar and sidecar.read_text() == '{\n  "seed": 1\n}\n'
    again = export_trace(trace, target, fmt, spec='{"seed": 2}', overwrite=True, note=None)
    assert again.spec_path == sidecar and sidecar.read_text() == '{"seed": 2}\n'
    notes: list[str] = []
    last = export_trace(trace.head(5), target, fmt, overwrite=True, note=notes.append)
    assert last.spec_path is None and not sidecar.exists() and last.rows == 5
    assert notes == [f"{sidecar}: removed the spec of the replaced export (no spec given)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
