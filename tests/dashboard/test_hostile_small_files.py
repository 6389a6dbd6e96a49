"""Hostile corpus, issue 22 item 2, through the sidebar's upload door: small files that describe huge
tables (a Parquet file of 40 row groups of constant rows, a ``.csv.gz`` of 10-byte rows, a CSV of
400,004 columns) are refused from an estimate with the numbers, nothing is loaded, and the app
still serves afterwards. The row budget is scaled down through ``$SERVEGEN_MAX_ROWS`` so the files
stay small; the upload budget is the tighter of it and ``UPLOAD_MAX_ROWS`` / ``UPLOAD_MAX_COLUMNS``.
The same files on the core's loader: tests/sources/test_load_budget.py.
"""

from __future__ import annotations

import gzip
import io

import polars as pl
from _dash import Dashboard
from test_hardening import sidebar_errors, still_serves, upload

from servegen_core.limits import MAX_ROWS_ENV, UPLOAD_MAX_COLUMNS

ROWS = 100_000


def _refused(d, name: str, body: bytes, *numbers: str) -> None:
    upload(d, name, body)
    errors = sidebar_errors(d)
    assert len(errors) == 1, errors
    assert name in errors[0] and "not loaded" in errors[0], errors[0]
    for number in numbers:
        assert number in errors[0], (number, errors[0])
    assert d.at.session_state["view"] is None
    still_serves(d)


def test_a_parquet_of_constant_row_groups_is_refused_from_its_metadata(monkeypatch):
    monkeypatch.setenv(MAX_ROWS_ENV, str(ROWS))
    frame = pl.DataFrame({"timestamp_s": [0.5] * 10_000, "input_tokens": [10] * 10_000, "output_tokens": [20] * 10_000})
    buf = io.BytesIO()
    pl.concat([frame] * 40).write_parquet(buf, compression="zstd", row_group_size=10_000)
    body = buf.getvalue()
    assert len(body) < 64 * 1024  # 400,000 rows in a few KB
    _refused(Dashboard(), "bomb.parquet", body, "400,000 rows", f"{ROWS:,} rows")


def test_a_csv_gz_of_tiny_rows_is_refused_from_a_bounded_count(monkeypatch):
    monkeypatch.setenv(MAX_ROWS_ENV, str(ROWS))
    body = gzip.compress(b"timestamp_s,input_tokens,output_tokens\n" + b"0.5,10,20\n" * 300_000, compresslevel=9)
    assert len(body) < 64 * 1024
    _refused(Dashboard(), "bomb.csv.gz", body, "rows", f"{ROWS:,} rows")


def test_a_csv_of_400004_columns_is_refused_from_its_header():
    body = b",".join([b"a"] * 400_004) + b"\n" + (b",".join([b"1"] * 400_004) + b"\n") * 3  # one-letter names, as the issue's
    assert len(body) < 4 * 2**20
    _refused(Dashboard(), "wide.csv", body, "400,004 columns", f"{UPLOAD_MAX_COLUMNS:,} columns")
    # long names make a header line above the reader's cap: refused too, before any row is read
    header = ",".join(f"column_{i}" for i in range(400_004)).encode()
    upload(d := Dashboard(), "long.csv", header + b"\n")
    errors = sidebar_errors(d)
    assert len(errors) == 1 and "long.csv" in errors[0] and "header line is longer than" in errors[0], errors
    still_serves(d)

