"""The load budget (issue 22, item 2): small files that describe huge tables are refused from an
estimate, before their body is read, with an error naming the file, the estimate and the limit.

The three hostile files of the issue are built here at a small scale, and the budget is scaled
down through ``$SERVEGEN_MAX_ROWS`` / ``$SERVEGEN_MAX_COLUMNS`` (or the ``max_rows`` /
``max_columns`` arguments an upload door passes): a Parquet file of 40 row groups of constant
rows, a ``.csv.gz`` whose 10-byte rows inflate far beyond its size, and a CSV of 400,004
columns. A subprocess measures its peak RSS to show the refusal spends no memory on the rows.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from servegen_core.errors import DataFormatError, InputTooLargeError, LimitError
from servegen_core.limits import (
    CELLS_PER_ROW,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_ROWS,
    MAX_COLUMNS_ENV,
    MAX_ROWS_ENV,
    UPLOAD_MAX_COLUMNS,
    UPLOAD_MAX_ROWS,
    LimitConfigError,
    max_columns,
    max_rows,
)
from servegen_core.paths import PROJECT_DIR
from servegen_core.sources.traces import load_trace, trace_columns

HEADER = b"timestamp_s,input_tokens,output_tokens\n"
ROW = b"0.5,10,20\n"  # 10 bytes: the bomb row


def hostile_parquet(path: Path, *, row_groups: int = 40, rows_per_group: int = 250_000) -> Path:
    """Row groups of one constant row repeated: a few dozen kB on disk for millions of rows."""
    block = pl.DataFrame(
        {"timestamp_s": [0.5] * rows_per_group, "input_tokens": [10] * rows_per_group, "output_tokens": [20] * rows_per_group}
    )
    pl.concat([block] * row_groups, rechunk=False).write_parquet(path, row_group_size=rows_per_group, compression="zstd")
    return path


def gzip_bomb_csv(path: Path, rows: int) -> Path:
    """A ``.csv.gz`` of ``rows`` 10-byte rows, compressed as a stream (never held whole)."""
    chunk = ROW * 100_000
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(HEADER)
        for _ in range(rows // 100_000):
            fh.write(chunk)
    return path


def wide_csv(path: Path, columns: int = 400_004, rows: int = 3) -> Path:
    """A CSV of ``columns`` one-letter columns (names repeat: Polars renames them)."""
    with path.open("wb") as fh:
        fh.write(b",".join([b"a"] * columns) + b"\n")
        line = b",".join([b"1"] * columns) + b"\n"
        for _ in range(rows):
            fh.write(line)
    return path


def _peak_rss_of_load(path: Path, env: dict[str, str], **kwargs: int) -> tuple[dict, int]:
    """Load ``path`` in a fresh interpreter; return the error it raised and its RSS growth (bytes)."""
    script = f"""
import json, resource, sys
from servegen_core.sources.traces import load_trace
from servegen_core.errors import InputTooLargeError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_trace(sys.argv[1], **{kwargs!r})
    out = {{"error": None}}
except InputTooLargeError as exc:
    out = {{"error": str(exc), "quantity": exc.quantity, "value": exc.value, "limit": exc.limit}}
out["growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps(out))
"""
    run_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_DIR)}
    proc = subprocess.run([sys.executable, "-c", script, str(path)], env=run_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    return out, out["growth"]


# --------------------------------------------------------------------------- limits


def test_row_and_column_limits_follow_the_environment_and_uploads_are_tighter(monkeypatch):
    monkeypatch.delenv(MAX_ROWS_ENV, raising=False)
    monkeypatch.delenv(MAX_COLUMNS_ENV, raising=False)
    assert max_rows() == DEFAULT_MAX_ROWS == 40_000_000 and max_columns() == DEFAULT_MAX_COLUMNS == 1024
    assert max_rows(upload=True) == UPLOAD_MAX_ROWS < DEFAULT_MAX_ROWS
    assert max_columns(upload=True) == UPLOAD_MAX_COLUMNS < DEFAULT_MAX_COLUMNS
    monkeypatch.setenv(MAX_ROWS_ENV, "1000")
    assert max_rows() == 1000 and max_rows(upload=True) == 1000  # the tighter of the two
    monkeypatch.setenv(MAX_ROWS_ENV, "2e9")
    assert max_rows() == 2_000_000_000 and max_rows(upload=True) == UPLOAD_MAX_ROWS
    monkeypatch.setenv(MAX_COLUMNS_ENV, "-5")
    with pytest.raises(LimitConfigError, match=f"{MAX_COLUMNS_ENV} must be a positive number, got '-5'"):
        max_columns()


# --------------------------------------------------------------------------- Parquet


def test_parquet_of_constant_row_groups_is_refused_from_its_metadata(tmp_path, monkeypatch):
    path = hostile_parquet(tmp_path / "groups.parquet")
    assert path.stat().st_size < 200_000  # 10M rows in a small file
    monkeypatch.setenv(MAX_ROWS_ENV, "1000000")
    with pytest.raises(InputTooLargeError) as info:
        load_trace(path)
    exc = info.value
    assert isinstance(exc, DataFormatError) and isinstance(exc, LimitError)
    assert exc.path == str(path) and exc.quantity == "rows" and exc.value == 10_000_000 and exc.limit == 1_000_000
    text = str(exc)
    assert text.startswith(f"{path}: about 10,000,000 rows (from the Parquet metadata), above the limit of 1,000,000 rows")
    assert f"${MAX_ROWS_ENV}" in text


def test_parquet_refusal_spends_no_memory_on_rows(tmp_path):
    path = hostile_parquet(tmp_path / "groups.parquet")
    out, growth = _peak_rss_of_load(path, {MAX_ROWS_ENV: "1000000"})
    assert out["quantity"] == "rows" and out["value"] == 10_000_000 and out["limit"] == 1_000_000
    # Loaded, 10M rows would take ~1.5 GB at their peak; refused from the footer, nearly nothing.
    assert growth < 60 * 2**20, growth


def test_parquet_within_budget_loads_and_the_limit_is_exact(tmp_path, monkeypatch):
    path = hostile_parquet(tmp_path / "small.parquet", row_groups=4, rows_per_group=1000)
    monkeypatch.setenv(MAX_ROWS_ENV, "4000")
    assert load_trace(path).trace.height == 4000
    monkeypatch.setenv(MAX_ROWS_ENV, "3999")
    with pytest.raises(InputTooLargeError, match="about 4,000 rows .* above the limit of 3,999 rows"):
        load_trace(path)


def test_parquet_gz_is_checked_from_its_metadata_after_decompression(tmp_path, monkeypatch):
    plain = hostile_parquet(tmp_path / "groups.parquet", row_groups=10, rows_per_group=100_000)
    gz = tmp_path / "groups.parquet.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setenv(MAX_ROWS_ENV, "100000")
    with pytest.raises(InputTooLargeError, match=r"groups\.parquet\.gz: about 1,000,000 rows \(from the Parquet metadata\)"):
        load_trace(gz)


def test_upload_budget_is_a_parameter(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_ROWS_ENV, raising=False)
    path = hostile_parquet(tmp_path / "groups.parquet", row_groups=4, rows_per_group=10_000)
    assert load_trace(path).trace.height == 40_000  # the command-line budget takes it
    with pytest.raises(InputTooLargeError) as info:
        load_trace(path, max_rows=30_000, max_columns=max_columns(upload=True))
    assert info.value.limit == 30_000 and "this door takes fewer rows" in str(info.value)
    assert f"${MAX_ROWS_ENV}" not in str(info.value)  # raising the variable would not help a visitor


# --------------------------------------------------------------------------- CSV / JSON Lines


def test_csv_gz_bomb_of_tiny_rows_is_refused_from_a_bounded_count(tmp_path, monkeypatch):
    path = gzip_bomb_csv(tmp_path / "bomb.csv.gz", rows=10_000_000)  # 100 MB of text
    assert path.stat().st_size < 1_000_000
    monkeypatch.setenv(MAX_ROWS_ENV, "500000")
    with pytest.raises(InputTooLargeError) as info:
        load_trace(path)
    exc = info.value
    assert exc.quantity == "rows" and exc.limit == 500_000 and exc.path == str(path)
    # The count stopped just past the limit and extrapolated to the whole file (10M rows).
    assert 5_000_000 <= exc.value <= 20_000_000, exc.value
    text = str(exc)
    assert "counted in the first" in text and "MB of the decompressed text, extrapolated to the whole file" in text
    assert "above the limit of 500,000 rows" in text


def test_csv_gz_bomb_refusal_reads_little_and_spends_no_memory(tmp_path):
    path = gzip_bomb_csv(tmp_path / "bomb.csv.gz", rows=20_000_000)  # 200 MB of text, ~4 GB loaded
    out, growth = _peak_rss_of_load(path, {MAX_ROWS_ENV: "1000000"})
    assert out["quantity"] == "rows" and out["limit"] == 1_000_000
    assert "counted in the first 1" in out["error"]  # stopped after ~10 MB of the 200 MB
    assert growth < 60 * 2**20, growth


def test_plain_csv_rows_are_counted_exactly_when_the_file_is_read_whole(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_bytes(HEADER + ROW * 3000)
    monkeypatch.setenv(MAX_ROWS_ENV, "3000")
    assert load_trace(path).trace.height == 3000
    path.write_bytes(HEADER + ROW * 3000 + b"0.5,10,20")  # a last line without a newline counts
    with pytest.raises(InputTooLargeError, match=r"t\.csv: about 3,001 rows \(lines counted in the file\), above the limit of 3,000"):
        load_trace(path)


def test_jsonl_rows_are_counted(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    line = json.dumps({"timestamp": 1, "input_length": 10, "output_length": 5}).encode() + b"\n"
    path.write_bytes(line * 5000)
    monkeypatch.setenv(MAX_ROWS_ENV, "100")
    with pytest.raises(InputTooLargeError, match=r"t\.jsonl: about 5,000 rows \(lines counted in the file\)"):
        load_trace(path)
    monkeypatch.setenv(MAX_ROWS_ENV, "5000")
    assert load_trace(path).trace.height == 5000


def test_csv_of_400004_columns_is_refused_from_its_header(tmp_path):
    path = wide_csv(tmp_path / "wide.csv")
    out, growth = _peak_rss_of_load(path, {})
    assert out["quantity"] == "columns" and out["value"] == 400_004 and out["limit"] == DEFAULT_MAX_COLUMNS
    assert out["error"].startswith(f"{path}: about 400,004 columns (fields of the header line), above the limit of 1,024")
    assert growth < 60 * 2**20, growth  # loaded, the file took 4.2 GB
    with pytest.raises(InputTooLargeError, match="about 400,004 columns"):
        trace_columns(path)
    with pytest.raises(InputTooLargeError, match=f"above the limit of {UPLOAD_MAX_COLUMNS} columns"):
        trace_columns(wide_csv(tmp_path / "w300.csv", columns=300, rows=1), max_columns=max_columns(upload=True))


def test_wide_csv_is_held_to_fewer_rows_by_the_cell_budget(tmp_path, monkeypatch):
    columns = 64
    path = tmp_path / "wide.csv"
    path.write_bytes(b",".join(b"c%d" % i for i in range(columns)) + b"\n" + (b",".join([b"1"] * columns) + b"\n") * 2000)
    monkeypatch.setenv(MAX_ROWS_ENV, "5000")  # 2,000 rows of 64 columns: 128,000 cells > 40,000
    with pytest.raises(InputTooLargeError) as info:
        load_trace(path, preset="generic", columns={"timestamp": "c0", "input_tokens": "c1", "output_tokens": "c2"}, time_unit="s")
    assert info.value.quantity == "cells" and info.value.limit == 5000 * CELLS_PER_ROW
    assert "2,000 rows x 64 columns read" in str(info.value)


def test_parquet_cells_count_only_the_columns_read(tmp_path, monkeypatch):
    frame = pl.DataFrame({f"c{i}": [1] * 2000 for i in range(64)}).with_columns(
        timestamp_s=pl.lit(0.5), input_tokens=pl.lit(10), output_tokens=pl.lit(20)
    )
    path = tmp_path / "wide.parquet"
    frame.write_parquet(path)
    monkeypatch.setenv(MAX_ROWS_ENV, "2000")  # 2,000 rows x 3 columns read: within 16,000 cells
    assert load_trace(path).trace.height == 2000
