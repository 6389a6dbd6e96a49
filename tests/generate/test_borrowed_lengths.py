"""validate(): borrowed lengths reported as their own line, and the length check covering every
exported request (m-large 18:00-19:00, where clients without length tables carry a large share)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from servegen_core.generate.compose import ServeGenSource, Span, WorkloadSpec, compose
from servegen_core.generate.validate import validate
from servegen_core.sources.pool import load_pool


@pytest.fixture(scope="module")
def workload_and_report(servegen_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    pool = load_pool(servegen_dir, "language/m-large", cache_dir=tmp_path_factory.getbasetemp() / "cache")
    spec = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(18 * 3600, 3600), seed=3)
    workload = compose(spec, pool=pool)
    return workload, validate(workload, pool=pool)


def test_borrowed_share_is_reported_not_gated(workload_and_report):
    _workload, report = workload_and_report
    row = report.check("borrowed_share")
    assert row["passed"] and row["low"] is None and row["high"] is None  # reported, not gated
    assert row["value"] > 0.2, row  # m-large 18:00-19:00: a large share from clients without tables
    assert row["n"] >= 5
    assert "borrowed" in row["detail"]


def test_borrowed_share_matches_a_direct_count(servegen_dir: Path, workload_and_report, tmp_path_factory):
    workload, report = workload_and_report
    pool = load_pool(servegen_dir, "language/m-large", cache_dir=tmp_path_factory.getbasetemp() / "cache")
    with_tables = set(pool.distributions.filter((pl.col("start_s") == 18 * 3600))["client_id"].unique().to_list())
    trace = workload.trace
    direct = float((~trace["client_id"].is_in(sorted(with_tables))).mean())
    assert report.check("borrowed_share")["value"] == pytest.approx(direct, abs=1e-9)


def test_length_ks_covers_the_borrowing_clients(workload_and_report, servegen_dir: Path, tmp_path_factory):
    workload, report = workload_and_report
    pool = load_pool(servegen_dir, "language/m-large", cache_dir=tmp_path_factory.getbasetemp() / "cache")
    with_tables = set(pool.distributions.filter((pl.col("start_s") == 18 * 3600))["client_id"].unique().to_list())
    checked = set(report.ks["client_id"].to_list())
    borrowing_checked = checked - with_tables
    assert borrowing_checked, "no borrowing client is in the length check"
    # borrowed clients match the mixture they drew from
    rows = report.ks.filter(pl.col("client_id").is_in(sorted(borrowing_checked)))
    assert float(rows["ks"].median()) < 0.02
    # every one under the 0.1 % KS critical value at its size: drawn from the tables compared with
    assert (rows["ks"] < 1.95 / rows["requests"].cast(pl.Float64).sqrt()).all(), rows
    assert report.check("length_ks")["passed"]
