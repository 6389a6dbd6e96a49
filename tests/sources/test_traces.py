"""Tests for servegen_core.sources.traces: the shared real traces, crafted small files, and bad input."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servegen_core.errors import DataFormatError
from servegen_core.schema import validate_trace
from servegen_core.sources.traces import (
    PRESETS,
    QUANTIZED_GRID_S,
    TARGETS,
    detect_preset,
    load_trace,
    timestamp_resolution,
    trace_columns,
)

AZURE = "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = "mooncake_synthetic_trace.jsonl"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
GOOD = "2023-11-16 18:15:46.6805900,374,44\n"
MAP_TIO = {"timestamp": "t", "input_tokens": "i", "output_tokens": "o"}


# --------------------------------------------------------------------------- independent readers


def _azure_ns(text: str) -> int:
    """Wall clock 'YYYY-MM-DD HH:MM:SS.fffffff' -> integer nanoseconds (UTC), without Polars."""
    whole, _, frac = text.partition(".")
    base = dt.datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    return int(base.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


def _read_azure(path: Path) -> list[tuple[int, int, int]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return [(_azure_ns(r["TIMESTAMP"]), int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in reader]


def _read_jsonl(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _gcd_grid(ints: list[int]) -> tuple[int, float]:
    gaps = np.diff(np.array(sorted(ints), dtype=np.int64))
    positive = gaps[gaps > 0]
    return int(np.gcd.reduce(positive)), float(np.mean(gaps == 0))


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


# --------------------------------------------------------------------------- real data: Azure


@pytest.fixture(scope="module")
def azure(traces_dir: Path):
    return load_trace(traces_dir / AZURE), _read_azure(traces_dir / AZURE)


def test_azure_rows_preset_and_columns(azure) -> None:
    loaded, rows = azure
    assert loaded.trace.height == len(rows) == 19_366
    assert loaded.preset == "azure"
    assert loaded.detected
    assert loaded.file_format == "csv"
    assert dict(loaded.columns) == {
        "timestamp": "TIMESTAMP",
        "input_tokens": "ContextTokens",
        "output_tokens": "GeneratedTokens",
    }
    assert loaded.trace.columns == ["timestamp_s", "client_id", "input_tokens", "output_tokens"]
    assert loaded.trace["client_id"].unique().to_list() == ["all"]
    assert "azure" in loaded.summary and "detected" in loaded.summary


def test_azure_values_match_an_independent_read(azure) -> None:
    loaded, rows = azure
    t0 = min(r[0] for r in rows)
    expected_ts = np.array([(r[0] - t0) / 1e9 for r in rows])
    order = np.argsort(np.array([r[0] for r in rows]), kind="stable")
    tr = loaded.trace
    np.testing.assert_array_equal(tr["timestamp_s"].to_numpy(), expected_ts[order])
    np.testing.assert_array_equal(tr["input_tokens"].to_numpy(), np.array([r[1] for r in rows])[order])
    np.testing.assert_array_equal(tr["output_tokens"].to_numpy(), np.array([r[2] for r in rows])[order])
    assert tr["timestamp_s"][0] == 0.0
    assert tr.row(0)[2:] == rows[order[0]][1:]
    assert tr.row(-1)[2:] == rows[order[-1]][1:]
    assert tr["timestamp_s"][-1] == (rows[order[-1]][0] - t0) / 1e9
    assert tr["timestamp_s"].is_sorted()


def test_azure_resolution_is_sub_millisecond(azure) -> None:
    loaded, rows = azure
    grid_ns, share_zero = _gcd_grid([r[0] for r in rows])
    res = loaded.resolution
    assert res.n_gaps == len(rows) - 1
    assert res.grid_s == pytest.approx(grid_ns / 1e9, rel=1e-12)
    assert res.grid_s < QUANTIZED_GRID_S
    assert not res.quantized
    assert res.share_zero_gaps == pytest.approx(share_zero)
    gaps = np.diff(np.array(sorted(r[0] for r in rows)))
    assert res.min_gap_s == pytest.approx(gaps[gaps > 0].min() / 1e9, abs=1e-9)
    assert "not quantized" in res.message
    assert not any("quantized" in w for w in loaded.warnings)


# --------------------------------------------------------------------------- real data: Mooncake


@pytest.fixture(scope="module")
def mooncake(traces_dir: Path):
    return load_trace(traces_dir / MOONCAKE), _read_jsonl(traces_dir / MOONCAKE)


def test_mooncake_rows_preset_values(mooncake) -> None:
    loaded, rows = mooncake
    tr = loaded.trace
    assert tr.height == len(rows) == 3_993
    assert loaded.preset == "mooncake" and loaded.detected
    assert tr.schema["hash_ids"] == pl.List(pl.Int64)
    ts = [r["timestamp"] for r in rows]
    order = np.argsort(np.array(ts), kind="stable")
    t0 = min(ts)
    np.testing.assert_array_equal(tr["timestamp_s"].to_numpy(), np.array([(t - t0) / 1000 for t in ts])[order])
    first, last = rows[order[0]], rows[order[-1]]
    assert (tr["input_tokens"][0], tr["output_tokens"][0], tr["hash_ids"][0].to_list()) == (
        first["input_length"],
        first["output_length"],
        first["hash_ids"],
    )
    assert (tr["input_tokens"][-1], tr["output_tokens"][-1], tr["hash_ids"][-1].to_list()) == (
        last["input_length"],
        last["output_length"],
        last["hash_ids"],
    )
    assert tr["timestamp_s"][-1] == (last["timestamp"] - t0) / 1000
    assert tr["timestamp_s"].is_sorted()


def test_mooncake_hash_ids_cover_512_token_blocks(mooncake) -> None:
    loaded, rows = mooncake
    # The property holds for every row of the file (checked on the raw JSON) ...
    assert all(len(r["hash_ids"]) == math.ceil(r["input_length"] / 512) for r in rows)
    # ... and survives loading.
    tr = loaded.trace
    lengths = tr["hash_ids"].list.len().to_numpy()
    np.testing.assert_array_equal(lengths, np.ceil(tr["input_tokens"].to_numpy() / 512).astype(int))


def test_mooncake_resolution_is_the_millisecond_grid(mooncake) -> None:
    loaded, rows = mooncake
    grid_ms, share_zero = _gcd_grid([r["timestamp"] for r in rows])
    res = loaded.resolution
    assert res.grid_s == pytest.approx(grid_ms / 1000, rel=1e-12)
    assert res.share_zero_gaps == pytest.approx(share_zero)
    assert share_zero > 0  # simultaneous arrivals exist in this file
    assert res.quantized == (grid_ms / 1000 >= QUANTIZED_GRID_S)
    assert any("quantized" in w for w in loaded.warnings) == res.quantized


# --------------------------------------------------------------------------- presets and detection


def test_presets_describe_their_columns() -> None:
    assert set(PRESETS) == {"servegen", "azure", "mooncake", "timed_trace", "burstgpt", "generic"}
    for name, preset in PRESETS.items():
        assert set(preset.required) == {"timestamp", "input_tokens", "output_tokens"}
        assert all(t in TARGETS for t in (*preset.required, *preset.optional))
        assert preset.needs()
        if name == "timed_trace":  # Mooncake's fields in seconds: told apart by the values (load_trace)
            assert detect_preset([s[0] for s in preset.required.values()]) == "mooncake"
        elif name != "generic":
            assert detect_preset([s[0] for s in preset.required.values()]) == name
    assert PRESETS["generic"].time_unit is None
    assert PRESETS["mooncake"].time_unit == "ms"


def test_detect_preset_failure_lists_every_preset() -> None:
    with pytest.raises(DataFormatError) as info:
        detect_preset(["when", "prompt", "completion"], source="x.csv")
    text = str(info.value)
    assert "x.csv" in text and "'when'" in text
    for name, preset in PRESETS.items():
        assert f"{name} needs" in text
    assert "ContextTokens" in text and "input_length" in text and "Request tokens" in text


# --------------------------------------------------------------------------- crafted files


def test_azure_keeps_100ns_gaps(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "a.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,10,1\n"
        "2023-11-16 18:15:46.6805901,20,2\n"
        "2023-11-16 18:15:47.6805901,30,3\n",
    )
    loaded = load_trace(f)
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 1e-7, 1.0000001]
    assert loaded.resolution.grid_s == pytest.approx(1e-7)
    assert not loaded.resolution.quantized


def test_azure_multimodal_and_general_wall_clock(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "mm.csv",
        "TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n"
        "2024-10-15T00:00:00.5Z,2,1000,30\n"
        "2024-10-15 02:00:01.25+02:00,0,200,40\n",
    )
    loaded = load_trace(f)
    assert loaded.preset == "azure"
    # 02:00:01.25+02:00 is 00:00:01.25 UTC: 0.75 s after the first request.
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 0.75]
    assert loaded.trace["image_count"].to_list() == [2, 0]


def test_burstgpt_flags_failures(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,Session ID\n"
        "5,ChatGPT,472,18,490,Conversation log,s1\n"
        "45,GPT-4,1087,0,1087,API log,\n"
        "118,ChatGPT,417,217,634,Conversation log,s1\n",
    )
    loaded = load_trace(f)
    tr = loaded.trace
    assert loaded.preset == "burstgpt" and loaded.detected
    assert tr["timestamp_s"].to_list() == [0.0, 40.0, 113.0]
    assert tr["failed"].to_list() == [False, True, False]
    assert loaded.n_failed == 1
    assert tr["model"].to_list() == ["ChatGPT", "GPT-4", "ChatGPT"]
    assert tr["log_type"].to_list() == ["Conversation log", "API log", "Conversation log"]
    assert tr["session_id"].to_list() == ["s1", None, "s1"]
    assert tr["client_id"].unique().to_list() == ["all"]
    assert any("failed" in w for w in loaded.warnings)
    # Whole-second timestamps: a 1 s grid (gcd of 40 and 73) is quantized and said so.
    assert loaded.resolution.grid_s == pytest.approx(1.0)
    assert loaded.resolution.quantized
    assert any("quantized" in w for w in loaded.warnings)
    assert tr.filter(~pl.col("failed")).height == 2


def test_burstgpt_without_session_column(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "1.5,GPT-4,10,5,15,API log\n"
        "3,GPT-4,20,6,26,API log\n",
    )
    loaded = load_trace(f)
    assert "session_id" not in loaded.trace.columns
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 1.5]
    assert loaded.n_failed == 0


def test_generic_mapping_time_units_and_client(tmp_path: Path) -> None:
    f = _write(tmp_path / "g.csv", "when_us,user,prompt,completion\n2000000,7,10,1\n1000500,3,20,2\n3000000,7,30.0,3\n")
    loaded = load_trace(
        f,
        columns={"timestamp": "when_us", "input_tokens": "prompt", "output_tokens": "completion"},
        time_unit="us",
        client_column="user",
    )
    tr = loaded.trace
    assert loaded.preset == "generic" and not loaded.detected
    assert tr["timestamp_s"].to_list() == [0.0, 0.9995, 1.9995]
    assert tr["client_id"].to_list() == ["3", "7", "7"]
    assert tr["input_tokens"].to_list() == [20, 10, 30]
    assert any("sorted" in w for w in loaded.warnings)


def test_generic_datetime_unit(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "g.jsonl",
        '{"t": "2024-01-01T00:00:00", "i": 1, "o": 2}\n{"t": "2024-01-01T00:01:00.001", "i": 3, "o": 4}\n',
    )
    loaded = load_trace(f, preset="generic", columns=MAP_TIO, time_unit="datetime")
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 60.001]


def test_generic_needs_mapping_and_unit(tmp_path: Path) -> None:
    f = _write(tmp_path / "g.csv", "t,i,o\n1,2,3\n")
    with pytest.raises(ValueError, match="columns"):
        load_trace(f, preset="generic", time_unit="s")
    with pytest.raises(ValueError, match="time_unit"):
        load_trace(f, columns={"timestamp": "t", "input_tokens": "i", "output_tokens": "o"})
    with pytest.raises(ValueError, match="unknown time_unit"):
        load_trace(f, columns={"timestamp": "t", "input_tokens": "i", "output_tokens": "o"}, time_unit="hours")
    with pytest.raises(ValueError, match="unknown target"):
        load_trace(f, columns={**MAP_TIO, "prompt": "i"}, time_unit="s")
    with pytest.raises(DataFormatError, match=r"column 'nope'"):
        load_trace(f, columns={"timestamp": "nope", "input_tokens": "i", "output_tokens": "o"}, time_unit="s")


def test_generic_wall_clock_hint(tmp_path: Path) -> None:
    f = _write(tmp_path / "g.csv", "t,i,o\n2024-01-01 00:00:00,2,3\n")
    with pytest.raises(DataFormatError, match="time_unit='datetime'"):
        load_trace(f, columns={"timestamp": "t", "input_tokens": "i", "output_tokens": "o"}, time_unit="s")


def test_gzip_matches_uncompressed(tmp_path: Path, traces_dir: Path) -> None:
    lines = (traces_dir / AZURE).read_text().splitlines(keepends=True)[:200]
    plain = _write(tmp_path / "az.csv", "".join(lines))
    packed = _write(tmp_path / "az.csv.gz", gzip.compress("".join(lines).encode()))
    a, b = load_trace(plain), load_trace(packed)
    assert b.file_format == "csv.gz" and b.preset == "azure"
    assert_frame_equal(a.trace, b.trace)
    assert a.trace.height == 199

    jl = (traces_dir / MOONCAKE).read_text().splitlines(keepends=True)[:50]
    c = load_trace(_write(tmp_path / "m.jsonl.gz", gzip.compress("".join(jl).encode())))
    d = load_trace(_write(tmp_path / "m.jsonl", "".join(jl)))
    assert_frame_equal(c.trace, d.trace)
    assert c.trace.height == 50



@pytest.mark.parametrize("name", ["x[1]", "run*", "a?b", "[ab]"])
def test_file_names_with_glob_characters_are_read_as_they_are(tmp_path: Path, traces_dir: Path, name: str) -> None:
    """A path is a file name, never a glob pattern: brackets, stars and question marks are literal."""
    folder = tmp_path / f"dir{name}"
    folder.mkdir()
    az = "".join((traces_dir / AZURE).read_text().splitlines(keepends=True)[:200])
    jl = "".join((traces_dir / MOONCAKE).read_text().splitlines(keepends=True)[:50])
    ref_csv = load_trace(_write(tmp_path / "az.csv", az))
    ref_jl = load_trace(_write(tmp_path / "m.jsonl", jl))
    ref_csv.trace.write_parquet(folder / f"{name}.parquet")
    pairs = [
        (_write(folder / f"{name}.csv", az), tmp_path / "az.csv", ref_csv.trace),
        (_write(folder / f"{name}.csv.gz", gzip.compress(az.encode())), tmp_path / "az.csv", ref_csv.trace),
        (_write(folder / f"{name}.jsonl", jl), tmp_path / "m.jsonl", ref_jl.trace),
        (folder / f"{name}.parquet", None, ref_csv.trace),
    ]
    for path, plain, ref in pairs:
        loaded = load_trace(path)
        assert loaded.trace.height == ref.height > 0, path
        assert_frame_equal(loaded.trace, ref)
        assert trace_columns(path) == (trace_columns(plain) if plain else ref.columns)
    # a sibling the pattern would match is not read instead (nor as well)
    if name == "[ab]":
        _write(folder / "a.csv", HEADER + GOOD)
        assert load_trace(folder / "[ab].csv").trace.height == 199


def _export_frame() -> pl.DataFrame:
    return validate_trace(
        pl.DataFrame(
            {
                "timestamp_s": [0.5, 1.25, 1.25, 7.0],
                "client_id": ["0", "17", "0", "3"],
                "input_tokens": [100, 2000, 5, 42],
                "output_tokens": [10, 0, 7, 1],
                "reasoning_tokens": [3, 0, 2, 1],
                "reason_ratio": [0.3, 0.0, 2 / 7, 1.0],
                "session_id": ["a", None, "a", "b"],
                "hash_ids": [[1], [2, 3, 4, 5], [6], [7]],
            }
        )
    )


def test_servegen_parquet_roundtrip(tmp_path: Path) -> None:
    df = _export_frame()
    df.write_parquet(tmp_path / "w.parquet")
    loaded = load_trace(tmp_path / "w.parquet")
    assert loaded.preset == "servegen" and loaded.detected and loaded.file_format == "parquet"
    # timestamp_s is kept as written (the export's origin), not re-based to the first request.
    assert_frame_equal(loaded.trace, df)


def test_servegen_jsonl_and_csv_roundtrip(tmp_path: Path) -> None:
    df = _export_frame()
    df.write_ndjson(tmp_path / "w.jsonl")
    assert_frame_equal(load_trace(tmp_path / "w.jsonl").trace, df)
    flat = df.drop("hash_ids")
    flat.write_csv(tmp_path / "w.csv")
    assert_frame_equal(load_trace(tmp_path / "w.csv").trace, flat)


def test_parquet_generic_native_types(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "arrival": [dt.datetime(2024, 1, 1, 0, 0, 1), dt.datetime(2024, 1, 1, 0, 0, 0, 250_000)],
            "p": [10, 20],
            "c": [1.0, 2.0],
        }
    ).write_parquet(tmp_path / "n.parquet")
    mapping = {"timestamp": "arrival", "input_tokens": "p", "output_tokens": "c"}
    loaded = load_trace(tmp_path / "n.parquet", columns=mapping, time_unit="datetime")
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 0.75]
    assert loaded.trace["output_tokens"].to_list() == [2, 1]


def test_blank_csv_lines_are_skipped(tmp_path: Path) -> None:
    f = _write(tmp_path / "a.csv", HEADER + "2023-11-16 18:15:46.0,1,2\n\n2023-11-16 18:15:47.0,3,4\n\n")
    loaded = load_trace(f)
    assert loaded.trace.height == 2
    assert any("blank" in w for w in loaded.warnings)


def test_unsorted_rows_sorted_stably_with_warning(tmp_path: Path) -> None:
    f = _write(tmp_path / "m.jsonl", "".join(
        json.dumps({"timestamp": t, "input_length": i, "output_length": 1}) + "\n"
        for t, i in [(10, 1), (5, 2), (10, 3), (5, 4), (20, 5)]
    ))
    loaded = load_trace(f)
    assert loaded.trace["input_tokens"].to_list() == [2, 4, 1, 3, 5]
    assert loaded.trace["timestamp_s"].to_list() == [0.0, 0.0, 0.005, 0.005, 0.015]
    assert any("2 row(s)" in w and "data row 2" in w for w in loaded.warnings)


def test_unsorted_rows_refused_without_sort(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "a.csv",
        HEADER + "2023-11-16 18:15:46.0,1,2\n2023-11-16 18:15:47.0,3,4\n2023-11-16 18:15:45.0,3,4\n",
    )
    with pytest.raises(DataFormatError) as info:
        load_trace(f, sort=False)
    assert info.value.path == str(f)
    assert info.value.where == "line 4, column 'TIMESTAMP'"
    assert "not sorted" in str(info.value)


def test_timestamp_resolution_rules() -> None:
    three = timestamp_resolution(pl.Series([0.0, 3.0, 3.0, 9.0, 12.0, 30.0]))
    assert three.grid_s == pytest.approx(3.0)
    assert three.share_zero_gaps == pytest.approx(1 / 5)
    assert three.min_gap_s == pytest.approx(3.0)
    assert three.quantized and "quantized" in three.message
    rng = np.random.default_rng(7)
    fine = timestamp_resolution(pl.Series(np.cumsum(rng.exponential(0.2, 500))))
    assert fine.grid_s == pytest.approx(1e-7)
    assert not fine.quantized and fine.share_zero_gaps == 0.0
    # Unsorted input is measured on the sorted values.
    assert timestamp_resolution(pl.Series([0.004, 0.0, 0.002])).grid_s == pytest.approx(0.002)
    one = timestamp_resolution(pl.Series([1.0]))
    assert math.isnan(one.grid_s) and not one.quantized
    same = timestamp_resolution(pl.Series([2.0, 2.0]))
    assert same.share_zero_gaps == 1.0 and math.isnan(same.grid_s)


# --------------------------------------------------------------------------- bad input




def _bad(path: Path, where: str | None, *fragments: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_trace(path)
    err = info.value
    assert err.path == str(path)
    assert err.where == where
    text = str(err)
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text
    return err


def test_empty_file(tmp_path: Path) -> None:
    _bad(_write(tmp_path / "e.csv", b""), None, "empty")
    _bad(_write(tmp_path / "e.jsonl", b""), None, "empty")
    _bad(_write(tmp_path / "e.csv.gz", gzip.compress(b"")), None, "empty")


def test_header_only(tmp_path: Path) -> None:
    _bad(_write(tmp_path / "h.csv", HEADER), None, "no data rows")


def test_truncated_csv_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.csv", HEADER + GOOD + GOOD + "2023-11-16 18:15:47.1")
    _bad(f, "line 4", "1 field(s)", "header has 3")


def test_truncated_csv_quote(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.csv", HEADER + GOOD + '"2023-11-16 18:15:47.1,3,4\n')
    _bad(f, "line 3")


def test_wrong_column_count(tmp_path: Path) -> None:
    f = _write(tmp_path / "w.csv", HEADER + GOOD + GOOD + GOOD.strip() + ",99\n" + GOOD)
    _bad(f, "line 4", "4 field(s)", "header has 3")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    f = _write(tmp_path / "u.csv", HEADER.encode() + GOOD.encode() + b"2023-11-16 18:15:47.0,3\xff4,5\n")
    _bad(f, "line 3", "0xff", "UTF-8")
    g = _write(
        tmp_path / "u.jsonl",
        b'{"timestamp": 1, "input_length": 2, "output_length": 3}\n'
        b'{"timestamp": 2, "input_length": 2, "output_length": "\xfe"}\n',
    )
    _bad(g, "line 2", "0xfe", "UTF-8")


def test_missing_required_column(tmp_path: Path) -> None:
    f = _write(tmp_path / "m.csv", "Timestamp,Model,Request tokens,Total tokens\n5,GPT-4,10,15\n")
    with pytest.raises(DataFormatError) as info:
        load_trace(f, preset="burstgpt")
    assert info.value.path == str(f)
    assert info.value.where == "column 'Response tokens'"
    assert "needs 'Timestamp', 'Request tokens', 'Response tokens'" in str(info.value)
    g = _write(tmp_path / "m.jsonl", '{"timestamp": 1, "input_length": 2}\n')
    err = _bad(g, None, "no preset matches", "output_length")
    assert "mooncake needs" in str(err)


def test_nan_token_counts(tmp_path: Path) -> None:
    f = _write(tmp_path / "n.csv", HEADER + GOOD + "2023-11-16 18:15:47.0,NaN,5\n")
    err = _bad(f, "line 3, column 'ContextTokens'", "not a finite number", "whole non-negative number")
    assert "NaN" not in str(err)  # the place is named, the cell is not quoted
    g = _write(
        tmp_path / "n.jsonl",
        '{"timestamp": 1, "input_length": 2, "output_length": 3}\n\n'
        '{"timestamp": 2, "input_length": NaN, "output_length": 3}\n',
    )
    _bad(g, "line 3", "NaN is not valid JSON")
    h = _write(tmp_path / "n.csv.gz", gzip.compress((HEADER + GOOD + GOOD + "2023-11-16 18:15:47.0,5,2.5\n").encode()))
    err = _bad(h, "line 4, column 'GeneratedTokens'", "a fraction")
    assert "2.5" not in f"{err.where}: {err.problem}"  # the path is the test's own folder
    nan_tokens = pl.DataFrame({"timestamp_s": [0.0, 1.0], "input_tokens": [1.0, float("nan")], "output_tokens": [1, 2]})
    nan_tokens.write_parquet(tmp_path / "n.parquet")
    _bad(tmp_path / "n.parquet", "row 2, column 'input_tokens'", "not a finite number")


def test_negative_token_counts(tmp_path: Path) -> None:
    f = _write(tmp_path / "neg.csv", HEADER + GOOD + GOOD + "2023-11-16 18:15:47.0,5,-3\n")
    err = _bad(f, "line 4, column 'GeneratedTokens'", "negative")
    assert "-3" not in f"{err.where}: {err.problem}"  # the path (pytest-3..) is the test's own folder
    g = _write(tmp_path / "neg.jsonl", '{"timestamp": 1, "input_length": -2, "output_length": 3}\n')
    _bad(g, "line 1, field 'input_length'", "negative")


def test_empty_cells_and_bad_timestamps(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", HEADER + GOOD + "2023-11-16 18:15:47.0,,5\n")
    _bad(a, "line 3, column 'ContextTokens'", "empty value")
    _bad(_write(tmp_path / "b.csv", HEADER + "2023-11-16 25:15:47.0,1,5\n"), "line 2, column 'TIMESTAMP'", "date-time")
    _bad(
        _write(tmp_path / "c.jsonl", '{"timestamp": "soon", "input_length": 1, "output_length": 1}\n'),
        "line 1, field 'timestamp'",
        "text that is not a number",
        "time unit ms",
    )
    _bad(
        _write(tmp_path / "d.jsonl", '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": [1, "x"]}\n'),
        "line 1",
        "hash_ids",
    )
    e = _write(tmp_path / "e.jsonl", '{"timestamp": 1, "input_length": 1, "output_length": 1}\n{"timestamp": 2,\n')
    _bad(e, "line 2", "not valid JSON")


def test_text_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    f = _write(tmp_path / "x.jsonl", json.dumps({"timestamp": 0, "input_length": payload, "output_length": 1}) + "\n")
    err = _bad(f, "line 1, field 'input_length'", "text that is not a number")
    assert "__import__" not in str(err)  # never echoed back either
    assert not marker.exists()


def test_unreadable_containers(tmp_path: Path) -> None:
    _bad(_write(tmp_path / "z.csv.gz", b"not gzip at all"), None, "gzip")
    _bad(_write(tmp_path / "p.parquet", b"PAR1 garbage"), None, "parquet")
    _bad(_write(tmp_path / "t.txt", "a,b\n"), None, "unknown file type")
    with pytest.raises(FileNotFoundError):
        load_trace(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="unknown preset"):
        load_trace(_write(tmp_path / "ok.csv", HEADER + GOOD), preset="sharegpt")


def test_decimal_timestamps_parse_exactly(tmp_path: Path) -> None:
    # Epoch seconds with 7 decimals lose digits in float64; the loader subtracts exactly first.
    raw = ("1700000000.1234567", "1700000000.1234568", "1700000001.1234568")
    f = _write(tmp_path / "e.csv", "t,i,o\n" + "".join(f"{x},1,1\n" for x in raw))
    loaded = load_trace(f, columns=MAP_TIO, time_unit="s")
    expected = [float(Decimal(x) - Decimal(raw[0])) for x in raw]
    assert loaded.trace["timestamp_s"].to_list() == expected
    assert loaded.resolution.grid_s == pytest.approx(1e-7)


def test_servegen_values_out_of_range(tmp_path: Path) -> None:
    header = "timestamp_s,client_id,input_tokens,output_tokens,reason_ratio\n"
    f = _write(tmp_path / "s.csv", header + "0.5,0,1,1,0.5\n1,0,1,1,1.5\n")
    _bad(f, "line 3, column 'reason_ratio'", "[0, 1]")
    g = _write(tmp_path / "t.csv", "timestamp_s,client_id,input_tokens,output_tokens\n0.5,0,1,1\n-1,0,1,1\n")
    _bad(g, "line 3, column 'timestamp_s'", "negative")
    h = _write(tmp_path / "c.csv", "timestamp_s,client_id,input_tokens,output_tokens\n0.5,,1,1\n")
    _bad(h, "line 2, column 'client_id'", "empty value")


def test_client_column_must_agree_with_mapping(tmp_path: Path) -> None:
    f = _write(tmp_path / "g.csv", "t,i,o,u,v\n1,2,3,a,b\n")
    with pytest.raises(ValueError, match="contradicts"):
        load_trace(f, columns={**MAP_TIO, "client_id": "u"}, time_unit="s", client_column="v")
    loaded = load_trace(f, columns={**MAP_TIO, "client_id": "u"}, time_unit="s", client_column="u")
    assert loaded.trace["client_id"].to_list() == ["a"]


# --------------------------------------------------------------------------- trace_columns


def test_trace_columns_of_the_real_traces(traces_dir: Path) -> None:
    azure, mooncake = traces_dir / AZURE, traces_dir / MOONCAKE
    with azure.open(newline="") as fh:
        assert trace_columns(azure) == next(csv.reader(fh))
    with mooncake.open() as fh:
        assert trace_columns(mooncake) == list(json.loads(fh.readline()))
    for path in (azure, mooncake):
        # every column load_trace maps comes from the names trace_columns offers
        assert set(load_trace(path).columns.values()) <= set(trace_columns(path))


def test_trace_columns_gzip_and_parquet_match_the_plain_file(tmp_path: Path, traces_dir: Path) -> None:
    azure = traces_dir / AZURE
    names = trace_columns(azure)
    packed = _write(tmp_path / "az.csv.gz", gzip.compress(azure.read_bytes()))
    assert trace_columns(packed) == names
    jl = (traces_dir / MOONCAKE).read_bytes()
    assert trace_columns(_write(tmp_path / "m.ndjson.gz", gzip.compress(b"\n\n" + jl))) == trace_columns(traces_dir / MOONCAKE)
    frame = pl.read_csv(azure, infer_schema=False).with_columns(pl.col("ContextTokens").cast(pl.Int64), pl.lit("u").alias("user"))
    frame.write_parquet(tmp_path / "az.parquet")
    assert trace_columns(tmp_path / "az.parquet") == [*names, "user"]
    _write(tmp_path / "az.pq.gz", gzip.compress((tmp_path / "az.parquet").read_bytes()))
    assert trace_columns(tmp_path / "az.pq.gz") == [*names, "user"]


def test_trace_columns_reads_only_the_header(tmp_path: Path, traces_dir: Path) -> None:
    # data rows that load_trace rejects do not matter: only the header is read
    ragged = _write(tmp_path / "r.csv", HEADER + GOOD + "1,2\n\xff\xfe broken\n")
    with pytest.raises(DataFormatError):
        load_trace(ragged)
    assert trace_columns(ragged) == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
    # a gzip stream cut short after the header: the header still reads, the full load fails
    cut = _write(tmp_path / "cut.csv.gz", gzip.compress((traces_dir / AZURE).read_bytes())[:4000])
    with pytest.raises(DataFormatError, match="gzip"):
        load_trace(cut)
    assert trace_columns(cut) == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
    jl = _write(tmp_path / "j.jsonl", '{"t": 1, "i": 5, "o": 2}\nnot json\n')
    assert trace_columns(jl) == ["t", "i", "o"]


def test_trace_columns_names_as_load_trace_sees_them(tmp_path: Path) -> None:
    # a repeated name and a quoted name spanning two lines, with a BOM
    text = '\ufefft,i,i,"o\nx"\n1,2,3,4\n'
    f = _write(tmp_path / "q.csv", text)
    assert trace_columns(f) == pl.read_csv(f, infer_schema=False).columns == ["t", "i", "i_duplicated_0", "o\nx"]
    loaded = load_trace(f, columns={"timestamp": "t", "input_tokens": "i", "output_tokens": "i_duplicated_0"}, time_unit="s")
    assert loaded.trace["output_tokens"].to_list() == [3]


@pytest.mark.parametrize(
    ("name", "content", "where", "fragment"),
    [
        ("x.txt", b"a,b\n", None, "unknown file type"),
        ("e.csv", b"", None, "empty"),
        ("e.csv.gz", gzip.compress(b""), None, "empty"),
        ("blank.csv", b"\n1,2\n", "line 1", "blank"),
        ("u.csv", b"t,\xffi,o\n1,2,3\n", "line 1", "UTF-8"),
        ("z.csv.gz", b"not gzip at all", None, "gzip"),
        ("j.jsonl", b"\n\n[1, 2]\n", "line 3", "JSON object"),
        ("k.jsonl", b'{"t": 1,\n', "line 1", "not valid JSON"),
        ("n.jsonl", b"\n  \n", None, "no JSON lines"),
        ("p.parquet", b"PAR1 not really", None, "parquet"),
    ],
)
def test_trace_columns_errors_name_the_file(tmp_path: Path, name: str, content: bytes, where: str | None, fragment: str) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(DataFormatError) as info:
        trace_columns(path)
    assert info.value.path == str(path)
    assert info.value.where == where
    assert fragment in str(info.value) and str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        trace_columns(tmp_path / "missing.csv")
