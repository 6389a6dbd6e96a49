"""Offline batch mode: a composed workload submitted as one batch job (``WorkloadSpec.batch``).

The composition is the online one (same requests, clients and lengths, in the same order);
this stage replaces the arrival times by the job's submission times: every request at
``t = 0``, or request ``i`` (0-based, in the order composed) at ``i / submission_rps``. It
runs on each generated chunk with the number of rows before it, so streamed and in-memory
workloads get the same times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl

from servegen_core.spec import BatchJob

__all__ = ["submit_batch", "submit_batch_chunks"]


def submit_batch(frame: pl.DataFrame, batch: BatchJob, *, first_row: int = 0) -> pl.DataFrame:
    """``frame`` (rows ``first_row ...`` of a composed workload, in order) with ``timestamp_s``
    set to the batch job's submission times."""
    if batch.submission_rps is None:
        times = pl.lit(0.0, dtype=pl.Float64)
    else:
        rows = pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64, eager=False)
        times = rows.cast(pl.Float64) / float(batch.submission_rps)
    return frame.with_columns(times.alias("timestamp_s"))


def submit_batch_chunks(chunks: Iterable[pl.DataFrame], batch: BatchJob) -> Iterator[pl.DataFrame]:
    """:func:`submit_batch` over consecutive chunks of one workload."""
    done = 0
    for frame in chunks:
        yield submit_batch(frame, batch, first_row=done)
        done += frame.height
