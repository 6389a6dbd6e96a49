"""sources.view: the one pool-or-trace layer — caches held by the source, client codes, "no data".

Known answers: a synthetic trace whose clients, times and counts are built here; the shared
``language/m-large`` pool for the pool-side cache.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import arrivals, lengths, prefix, rates
from servegen_core.schema import empty_trace
from servegen_core.sources.pool import ClientPool
from servegen_core.sources.view import (
    EMPTY_POOL,
    EMPTY_TRACE,
    TRACE_CACHE_ATTRIBUTE,
    ZERO_RATE_POOL,
    NoData,
    field_data,
    missing_column,
    pool_clients,
    pool_no_data,
    trace_clients,
    trace_no_data,
    trace_times,
)


def unsorted_trace() -> pl.DataFrame:
    """12 requests of clients 10, 2, 'b' (5, 4, 3 requests) with timestamps out of order."""
    clients = ["10", "2", "b", "10", "2", "10", "b", "2", "10", "2", "10", "b"]
    ts = [5.0, 1.0, 9.0, 0.5, 7.0, 3.0, 2.0, 11.0, 4.0, 6.0, 8.0, 10.0]
    return pl.DataFrame(
        {"timestamp_s": ts, "client_id": clients, "input_tokens": np.arange(12) * 10, "output_tokens": np.ones(12, dtype=np.int64)}
    )


def test_trace_clients_codes_ids_counts_and_time_order():
    trace = unsorted_trace()
    tc = trace_clients(trace)
    assert tc.ids == ("2", "10", "b")  # numeric ids in numeric order, then names
    ids = np.asarray(tc.ids, dtype=object)
    assert ids[tc.id_codes].tolist() == trace["client_id"].to_list()
    assert tc.id_codes.dtype == np.int32
    assert tc.per_client(tc.counts).tolist() == [4, 5, 3]
    times = trace_times(trace)
    assert times.ts.tolist() == sorted(trace["timestamp_s"].to_list())
    in_time = ids[tc.rank[tc.in_time_order(times)]]
    assert in_time.tolist() == trace.sort("timestamp_s")["client_id"].to_list()


def test_trace_values_are_kept_with_the_frame_and_dropped_when_it_changes():
    trace = unsorted_trace()
    first = trace_clients(trace)
    assert trace_clients(trace) is first
    assert hasattr(trace, TRACE_CACHE_ATTRIBUTE)
    fd = field_data(trace, "input_tokens")
    assert field_data(trace, "input_tokens") is fd
    # another frame with the same rows has its own store
    assert trace_clients(trace.clone()) is not first
    # a numeric cell changed in place: the frame's store is replaced, the statistics follow
    trace[0, "input_tokens"] = 10_000
    fresh = field_data(trace, "input_tokens")
    assert fresh is not fd and fresh.values.max() == 10_000


def test_pool_values_are_kept_with_the_pool_and_a_new_pool_starts_empty(m_large: ClientPool):
    clients = pool_clients(m_large)
    assert pool_clients(m_large) is clients
    assert m_large.derived[("clients",)] is clients
    fd = field_data(m_large, "output_tokens")
    assert field_data(m_large, "output_tokens") is fd
    part = m_large.span(0, 3600)
    assert part.derived == {} and part == part  # the cache is no part of the pool's value
    assert "derived" not in repr(part)[:2000]
    assert field_data(part, "output_tokens").total < fd.total


def test_one_no_data_wording_for_every_characterization():
    empty = empty_trace()
    assert trace_no_data(empty) == EMPTY_TRACE == "empty trace: no requests"
    assert trace_no_data(empty.drop("client_id"), "client_id") == missing_column("client_id") == "the trace has no 'client_id' column"
    assert isinstance(trace_no_data(empty), NoData)
    for result in (
        arrivals.window_cv(empty),
        rates.rate_series(empty),
        lengths.length_percentiles(empty, "input_tokens"),
        lengths.length_correlation(empty),
    ):
        assert result.reason == EMPTY_TRACE, result.reason
    assert prefix.block_reuse(empty_trace(("hash_ids",))).reason == EMPTY_TRACE


def test_pool_no_data_reasons(m_large: ClientPool):
    assert pool_no_data(m_large) is None
    quiet = m_large.span(10**9, 10**9 + 600)
    assert pool_no_data(quiet) == EMPTY_POOL
    zero = ClientPool(
        name=m_large.name,
        source=m_large.source,
        windows=m_large.windows.head(3).with_columns(pl.lit(0.0).alias("rate_rps")),
        distributions=m_large.distributions.head(0),
        length_windows=m_large.length_windows.head(0),
    )
    assert pool_no_data(zero) == ZERO_RATE_POOL
    assert arrivals.window_cv(zero).reason == ZERO_RATE_POOL
    assert rates.rate_series(quiet).reason == EMPTY_POOL


def test_view_rejects_other_types():
    with pytest.raises(TypeError, match="expected a ClientPool or a RequestTrace"):
        arrivals.window_cv({"timestamp_s": [1.0]})
