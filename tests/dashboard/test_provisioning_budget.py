"""Issue 22 item 3 for the Provisioning page: its simulations run within the server's one memory budget.

The page estimates a comparison's memory (:func:`core_calls.whatif_bytes`: the workloads and their
simulations by request count, the per-replica timelines by the most replicas tried and the span),
refuses a comparison larger than the whole budget with both numbers, and while other sessions hold
the budget shows "Busy: your job ... is queued" and runs the job once they are done.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
from _dash import Dashboard, plain

import core_calls
from servegen_core.limits import SERVER_BUDGET_ENV, BudgetWait, composed_bytes, server_budget, simulated_bytes

MB = 1024 * 1024


@pytest.fixture
def small_trace(tmp_path):
    """500 requests over 600 s (a native RequestTrace CSV): quick to simulate."""
    rng = np.random.default_rng(7)
    n = 500
    path = tmp_path / "small.csv"
    pl.DataFrame({
        "timestamp_s": np.sort(rng.uniform(0, 600, n)).round(3),
        "client_id": "a",
        "input_tokens": rng.integers(50, 800, n),
        "output_tokens": rng.integers(5, 200, n),
    }).write_csv(path)
    return path


def test_whatif_bytes_counts_requests_workloads_replicas_and_span():
    base = core_calls.whatif_bytes(10_000, workloads=2, replicas=1, span_s=0.0, composed=False)
    assert base == simulated_bytes(10_000, workloads=2) + 2 * 1 * 1 * core_calls.BYTES_PER_REPLICA_BIN
    # 600 s is 61 timeline bins; each replica tried adds two simulations' bins
    wide = core_calls.whatif_bytes(10_000, workloads=2, replicas=256, span_s=600.0, composed=False)
    assert wide - simulated_bytes(10_000, workloads=2) == 2 * 256 * 61 * core_calls.BYTES_PER_REPLICA_BIN
    spec = core_calls.whatif_bytes(10_000, workloads=2, replicas=256, span_s=600.0, composed=True)
    assert spec - wide == composed_bytes(10_000)


def _open(path, max_replicas: int = 16) -> Dashboard:
    d = Dashboard().trace(path).open("provisioning")
    d.at.number_input(key="prov_slo_ttft").set_value(5.0).run()
    d.at.number_input(key="prov_slo_tpot").set_value(0.0).run()
    d.at.number_input(key="prov_max").set_value(max_replicas).run()
    return d.check()


def test_a_comparison_larger_than_the_budget_is_refused_with_the_numbers(small_trace, monkeypatch):
    d = _open(small_trace)
    needed = core_calls.whatif_bytes(500, workloads=2, replicas=16, span_s=float(
        pl.read_csv(small_trace)["timestamp_s"].max() - pl.read_csv(small_trace)["timestamp_s"].min()), composed=False)
    monkeypatch.setenv(SERVER_BUDGET_ENV, f"{needed / 4 / MB:.6f}")
    d.at.button(key="prov_run").click().run()
    errors = [plain(e.value).replace("\\", "") for e in d.at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"simulating 500 requests x 2 workloads on up to 16 replicas needs an estimated {needed / MB:,.1f} MB"
    ), errors
    assert f"{needed / 4 / MB:,.1f} MB (${SERVER_BUDGET_ENV})" in errors[0]
    assert not d.at.success and not d.figures()  # nothing simulated
    assert server_budget().running == 0
    # the app still answers, and simulates once the budget allows it
    monkeypatch.delenv(SERVER_BUDGET_ENV)
    d.at.button(key="prov_run").click().run()
    d.check()
    assert d.at.success and "prov_ttft" in d.figures()
    assert server_budget().running == 0


def test_while_another_session_holds_the_budget_the_job_is_queued_then_runs(small_trace, monkeypatch):
    d = _open(small_trace)
    span = float(pl.read_csv(small_trace)["timestamp_s"].max() - pl.read_csv(small_trace)["timestamp_s"].min())
    needed = core_calls.whatif_bytes(500, workloads=2, replicas=16, span_s=span, composed=False)
    monkeypatch.setenv(SERVER_BUDGET_ENV, f"{2 * needed / MB:.6f}")  # room for ours alone, not beside the other
    core_calls.clear_call_caches()
    budget = server_budget()
    shown: list[str] = []
    queued = threading.Event()
    sentence = BudgetWait.sentence

    def recorded(self: BudgetWait) -> str:
        text = sentence(self)
        shown.append(text)
        queued.set()
        return text

    monkeypatch.setattr(BudgetWait, "sentence", recorded)
    holding = threading.Event()

    def other_session() -> None:
        with budget.reserve(int(1.5 * needed), "another session's job"):
            holding.set()
            queued.wait(60)  # held until our job has said it waits

    other = threading.Thread(target=other_session)
    other.start()
    assert holding.wait(30)
    d.at.button(key="prov_run").click().run()
    other.join(60)
    d.check()
    assert shown and shown[0].startswith(
        f"Busy: your job (simulating 500 requests x 2 workloads on up to 16 replicas, {needed / MB:,.0f} MB) is queued"
    ), shown
    assert d.at.success and "prov_ttft" in d.figures()  # it ran once the other job was done
    assert not any(i.startswith("Busy") for i in (plain(x.value) for x in d.at.info))  # the box is gone
    assert budget.running == 0 and budget.waiting == 0
