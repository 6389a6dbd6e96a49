"""scan_trace: the lazy RequestTrace equals load_trace's rows (up to row order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servegen_core.errors import DataFormatError, OptionError
from servegen_core.sources.lazy import divide, scan_trace
from servegen_core.sources.traces import load_trace


def _same(lazy_frame: pl.DataFrame, trace: pl.DataFrame) -> None:
    got = lazy_frame.sort("timestamp_s", maintain_order=True)
    assert got.columns == trace.columns
    assert_frame_equal(got, trace, check_exact=True)


@pytest.mark.parametrize("name", ["AzureLLMInferenceTrace_conv.csv", "mooncake_synthetic_trace.jsonl"])
def test_shared_traces_equal_load_trace(traces_dir: Path, name: str) -> None:
    lazy = scan_trace(traces_dir / name)
    loaded = load_trace(traces_dir / name)
    assert (lazy.preset, lazy.detected) == (loaded.preset, loaded.detected)
    assert dict(lazy.columns) == dict(loaded.columns)
    assert lazy.check() == loaded.trace.height
    _same(lazy.collect(), loaded.trace)


def _raw(n: int = 5000, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "ts_ms": np.sort(rng.integers(1_700_000_000_000, 1_700_000_900_000, size=n)),
            "user": rng.choice(["a", "b", "17", "3"], size=n),
            "prompt": rng.integers(0, 4000, size=n),
            "completion": rng.integers(0, 900, size=n),
        }
    )


COLUMNS = {"timestamp": "ts_ms", "input_tokens": "prompt", "output_tokens": "completion", "client_id": "user"}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_generic_mapping_in_milliseconds(tmp_path: Path, fmt: str) -> None:
    raw = _raw()
    path = tmp_path / f"t.{fmt}"
    {"parquet": raw.write_parquet, "csv": raw.write_csv, "jsonl": raw.write_ndjson}[fmt](path)
    lazy = scan_trace(path, columns=COLUMNS, time_unit="ms")
    assert lazy.time_origin == raw["ts_ms"].min()
    _same(lazy.collect(), load_trace(path, columns=COLUMNS, time_unit="ms").trace)


def test_folder_and_glob_of_parquet(tmp_path: Path) -> None:
    raw = _raw(9000).with_columns((pl.col("ts_ms") - pl.col("ts_ms").min()).cast(pl.Float64) / 1000.0).rename({"ts_ms": "timestamp_s"})
    trace = raw.rename({"user": "client_id", "prompt": "input_tokens", "completion": "output_tokens"})
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for i, part in enumerate(trace.iter_slices(2500)):
        part.write_parquet(tmp_path / "d" / ("sub" if i % 2 else ".") / f"p{i}.parquet")
    whole = tmp_path / "whole.parquet"
    trace.write_parquet(whole)
    want = load_trace(whole).trace
    for source in (tmp_path / "d", str(tmp_path / "d" / "**" / "*.parquet")):
        lazy = scan_trace(source)
        assert lazy.preset == "servegen" and len(lazy.paths) == 4
        _same(lazy.collect(), want)


def test_divide_is_true_division() -> None:
    x = np.random.default_rng(0).uniform(0, 1e6, 100_000)
    got = pl.DataFrame({"x": x}).select(divide(pl.col("x"), 600)).to_series().to_numpy()
    assert (got == x / 600).all()
    # Polars' own scalar division is not (which is why divide exists).
    assert (pl.DataFrame({"x": x}).select(pl.col("x") / 600.0).to_series().to_numpy() != x / 600).any()


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_trace(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        scan_trace(str(tmp_path / "*.parquet"))
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(DataFormatError, match="unknown file type"):
        scan_trace(tmp_path / "t.txt")
    raw = _raw(100)
    raw.write_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataFormatError, match="no preset matches"):
        scan_trace(tmp_path / "r.parquet")
    with pytest.raises(OptionError, match="unknown preset"):
        scan_trace(tmp_path / "r.parquet", preset="nope")
    with pytest.raises(DataFormatError, match="not found"):
        scan_trace(tmp_path / "r.parquet", columns={**COLUMNS, "client_id": "who"}, time_unit="ms")
    bad = raw.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(-1).otherwise(pl.col("prompt")).alias("prompt"))
    bad.write_parquet(tmp_path / "neg.parquet")
    lazy = scan_trace(tmp_path / "neg.parquet", columns=COLUMNS, time_unit="ms")
    with pytest.raises(DataFormatError, match=r"neg\.parquet.*'prompt'.*1 row"):
        lazy.check()
    (tmp_path / "bad.csv").write_text("ts_ms,user,prompt,completion\n1,a,3,4\n2,a,x,4\n")
    lazy = scan_trace(tmp_path / "bad.csv", columns=COLUMNS, time_unit="ms")
    with pytest.raises(DataFormatError, match=r"bad\.csv: cannot be read as csv"):
        lazy.check()


def test_span_limit(tmp_path: Path) -> None:
    raw = _raw(100)
    raw.write_parquet(tmp_path / "r.parquet")
    # Milliseconds read as seconds span ~900,000 s: above a 1-day limit.
    lazy = scan_trace(tmp_path / "r.parquet", columns=COLUMNS, time_unit="s", max_span_s=86400)
    with pytest.raises(DataFormatError, match="span"):
        lazy.check()
    assert scan_trace(tmp_path / "r.parquet", columns=COLUMNS, time_unit="ms", max_span_s=86400).check() == 100
