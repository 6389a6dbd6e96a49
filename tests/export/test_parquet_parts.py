"""write_parquet_parts: a generated workload as a folder of part-NNNNN.parquet files, one per
time chunk, bounded by one chunk, and never a partial folder."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from servegen_core.export.writer import write_parquet_parts
from servegen_core.generate.compose import plan_workload
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import ServeGenSource, Span, WorkloadSpec


def _plan(pool: ClientPool, seed: int = 7):
    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(start_s=12 * 3600, duration_s=3600),
        seed=seed,
    )
    return spec, plan_workload(spec, pool=pool)


def test_one_part_per_chunk_reads_back_as_the_workload(m_large: ClientPool, tmp_path: Path) -> None:
    spec, plan = _plan(m_large)
    out = tmp_path / "parts"
    result = write_parquet_parts(plan.iter_chunks(600.0), out, spec=spec, note=None)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(6)]  # 3600 s in chunks of 600 s (one arrival window each)
    back = pl.scan_parquet(out / "part-*.parquet").collect()
    whole = plan.compose().trace
    assert back.height == whole.height == result.rows > 50_000
    assert back.select(whole.columns).equals(whole)
    # each part is one time chunk
    for i, name in enumerate(names):
        ts = pl.read_parquet(out / name)["timestamp_s"]
        assert ts.min() >= i * 600.0 and ts.max() < (i + 1) * 600.0
    # the same chunks again: the same bytes
    again = tmp_path / "again"
    write_parquet_parts(_plan(m_large)[1].iter_chunks(600.0), again, note=None)
    assert [(again / n).read_bytes() for n in names] == [(out / n).read_bytes() for n in names]


def test_a_failing_chunk_leaves_nothing(m_large: ClientPool, tmp_path: Path) -> None:
    _, plan = _plan(m_large)

    def chunks():
        for i, chunk in enumerate(plan.iter_chunks(600.0)):
            if i == 3:
                raise RuntimeError("disk gone")
            yield chunk

    out = tmp_path / "parts"
    with pytest.raises(RuntimeError, match="disk gone"):
        write_parquet_parts(chunks(), out, note=None)
    assert list(tmp_path.iterdir()) == []  # no target, no temporary folder


def test_an_existing_folder_is_kept_without_overwrite(m_large: ClientPool, tmp_path: Path) -> None:
    _, plan = _plan(m_large)
    out = tmp_path / "parts"
    write_parquet_parts(plan.iter_chunks(600.0), out, note=None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(Exception, match="exists"):
        write_parquet_parts(_plan(m_large, seed=8)[1].iter_chunks(600.0), out, note=None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    write_parquet_parts(_plan(m_large, seed=8)[1].iter_chunks(600.0), out, note=None, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before
