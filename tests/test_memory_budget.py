"""The server-wide memory budget (issue 22 item 3): a semaphore over estimated bytes, and the
estimates it is fed (composed requests, a trace file's load)."""

from __future__ import annotations

import threading
import time

import polars as pl
import pytest

from servegen_core.limits import (
    SERVER_BUDGET_ENV,
    LimitConfigError,
    MemoryBudget,
    ServerBudgetError,
    loaded_bytes,
    server_budget_bytes,
)
from servegen_core.sources.footprint import trace_load_bytes

MB = 1024 * 1024


def test_jobs_wait_until_their_bytes_fit_and_run_first_come_first_served():
    budget = MemoryBudget(100, poll_s=0.01)
    order: list[str] = []
    waits: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def job(name: str, nbytes: int, hold: threading.Event | None = None) -> None:
        with budget.reserve(nbytes, name, on_wait=lambda w: waits.append(w.what)):
            order.append(name)
            if hold is not None:
                first_in.set()
                hold.wait(5)

    a = threading.Thread(target=job, args=("a", 70, release_first))
    a.start()
    first_in.wait(5)
    b = threading.Thread(target=job, args=("b", 60))  # does not fit beside a: waits
    b.start()
    time.sleep(0.1)
    c = threading.Thread(target=job, args=("c", 10))  # would fit, but b came first
    c.start()
    time.sleep(0.1)
    assert order == ["a"] and budget.waiting == 2 and budget.in_use == 70
    release_first.set()
    for t in (a, b, c):
        t.join(5)
    assert order == ["a", "b", "c"]
    assert {"b", "c"} <= set(waits) and "a" not in waits
    assert budget.in_use == 0 and budget.waiting == 0 and budget.peak <= 100


def test_a_job_larger_than_the_budget_is_refused_with_the_numbers_and_nothing_is_held():
    budget = MemoryBudget(1000 * MB)
    with pytest.raises(ServerBudgetError) as info:
        with budget.reserve(2500 * MB, "composing about 6,000,000 requests"):
            pytest.fail("must not run")
    text = str(info.value)
    assert text.startswith("composing about 6,000,000 requests needs an estimated 2,500.0 MB")
    assert "1,000.0 MB" in text
    assert SERVER_BUDGET_ENV in text
    assert budget.in_use == 0 and budget.waiting == 0


def test_the_bytes_are_given_back_when_the_job_raises_or_its_wait_is_abandoned():
    budget = MemoryBudget(100, poll_s=0.01)
    with pytest.raises(RuntimeError), budget.reserve(80, "x"):
        raise RuntimeError("boom")
    assert budget.in_use == 0

    class Stop(Exception):
        pass

    def stop(_wait) -> None:
        raise Stop  # as Streamlit's StopException when the visitor reruns the page

    with budget.reserve(80, "holder"):
        with pytest.raises(Stop), budget.reserve(50, "abandoned", on_wait=stop):
            pytest.fail("must not run")
        assert budget.waiting == 0 and budget.in_use == 80
    with budget.reserve(100, "whole"):  # nothing left over from the abandoned wait
        assert budget.in_use == 100


def test_the_capacity_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(SERVER_BUDGET_ENV, "1536")
    assert server_budget_bytes() == 1536 * MB
    monkeypatch.setenv(SERVER_BUDGET_ENV, "lots")
    with pytest.raises(LimitConfigError, match=SERVER_BUDGET_ENV):
        server_budget_bytes()
    monkeypatch.delenv(SERVER_BUDGET_ENV)
    assert 256 * MB <= server_budget_bytes()


def test_trace_load_estimates_follow_the_rows_and_columns_and_stay_within_the_load_budget(tmp_path):
    rows = 20_000
    frame = pl.DataFrame({"timestamp": range(rows), "input_length": [100] * rows, "output_length": [10] * rows})
    frame.write_parquet(tmp_path / "t.parquet")
    frame.write_csv(tmp_path / "t.csv")
    assert trace_load_bytes(tmp_path / "t.parquet", max_rows=10**6, max_columns=64) == loaded_bytes(rows, 3)
    csv_estimate = trace_load_bytes(tmp_path / "t.csv", max_rows=10**6, max_columns=64)
    assert loaded_bytes(rows * 0.9, 3) <= csv_estimate <= loaded_bytes(rows * 1.1, 3)
    # capped by the load budget (the loader refuses a larger file itself)
    assert trace_load_bytes(tmp_path / "t.parquet", max_rows=1000, max_columns=64) == loaded_bytes(1000, 3)
    # a file whose long first lines hide millions of short ones: the tail's lines count
    sneaky = tmp_path / "sneaky.csv"
    sneaky.write_bytes(b"timestamp,note\n" + b"1," + b"x" * 200_000 + b"\n" + b"1,a\n" * 500_000)
    assert trace_load_bytes(sneaky, max_rows=10**7, max_columns=64) >= loaded_bytes(500_000, 2)


def test_kept_results_count_and_a_job_that_needs_their_room_drops_them_instead_of_waiting():
    budget = MemoryBudget(100, poll_s=0.01)
    budget.hold(60)  # a cached workload
    assert budget.in_use == 60 and budget.held == 60
    dropped: list[int] = []

    def make_room() -> None:  # as clearing the cache of kept results
        dropped.append(budget.held)
        budget.release_held(60)

    with budget.reserve(50, "job", make_room=make_room):
        assert budget.in_use == 50 and budget.held == 0
    assert dropped == [60]
    # a job that does not fit beside the running jobs waits for them; the kept results stay
    budget.hold(10)
    waits = []
    holder_in = threading.Event()
    holder_out = threading.Event()

    def holder() -> None:
        with budget.reserve(80, "holder"):
            holder_in.set()
            holder_out.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    holder_in.wait(5)
    threading.Timer(0.1, holder_out.set).start()
    with budget.reserve(30, "second", on_wait=waits.append, make_room=make_room):
        assert budget.running == 30
    t.join(5)
    assert waits and waits[0].in_use == 90 and "second" in waits[0].sentence()
