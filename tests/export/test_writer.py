"""Tests for servegen_core.export.writer.write_chunks: the one chunked write loop."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from servegen_core.export.writer import ChunkWriter, WriteProgress, export_trace, write_chunks
from servegen_core.schema import validate_trace


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
