"""Hostile corpus, issue 22 item 3: one memory budget for the heavy work of every session.

Several sessions compose at once through the dashboard's own cached call
(:func:`core_calls.workload`, from threads as the server runs sessions); the process's peak RSS
stays under the budget, the jobs that do not fit wait, then finish. A job larger than the whole
budget is refused on the page with both numbers and the app still answers afterwards.
"""

from __future__ import annotations

import threading
import time

from _dash import Dashboard

import core_calls
import navigation
from servegen_core.generate.compose import plan_workload
from servegen_core.limits import SERVER_BUDGET_ENV, composed_bytes, server_budget
from servegen_core.sources.load import load_source as load_spec_source
from servegen_core.sources.pool import load_pool
from servegen_core.spec import ConstantRate, ServeGenSource, Span, WorkloadSpec

MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    msg = "no VmRSS in /proc/self/status"
    raise RuntimeError(msg)


def test_concurrent_sessions_stay_within_the_budget_and_the_queued_jobs_finish(servegen_dir, monkeypatch):
    pool = load_pool(servegen_dir, "language/m-large")
    specs = [
        WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 1000), rate=ConstantRate(800.0), seed=s)
        for s in range(4)
    ]
    expected = plan_workload(specs[0], pool=pool).expected_requests  # 800,000 requests each
    warm = WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 1000), rate=ConstantRate(5.0))
    assert core_calls.workload(warm, pool) is not None  # the pool's derived tables, built once for every later spec
    one_job = composed_bytes(expected)
    # room for one job at a time: four at once would hold 4 x ~120 MB of rows beyond the budget's
    monkeypatch.setenv(SERVER_BUDGET_ENV, str((one_job * 1.5) / MB))
    core_calls.clear_call_caches()
    budget = server_budget()
    assert budget.in_use == 0

    base = rss_bytes()
    peak = {"rss": base, "waiting": 0, "running": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], rss_bytes())
            peak["waiting"] = max(peak["waiting"], budget.waiting)
            peak["running"] = max(peak["running"], budget.running)
            time.sleep(0.005)

    results: dict[int, int | None] = {}

    def session(i: int) -> None:
        made = core_calls.workload(specs[i], pool)
        results[i] = None if made is None else made.trace.height

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sessions = [threading.Thread(target=session, args=(i,)) for i in range(4)]
    for t in sessions:
        t.start()
    for t in sessions:
        t.join(600)
    done.set()
    sampler.join(5)
    kept = budget.held  # the composed workloads the cache keeps count in the budget ...
    core_calls.clear_call_caches()
    assert kept > 0 and budget.held == 0  # ... until the cache drops them

    assert sorted(results) == [0, 1, 2, 3] and all(rows and rows > 0.9 * expected for rows in results.values()), results
    assert peak["waiting"] >= 1  # some jobs were queued ...
    assert peak["running"] == one_job  # ... and never two ran at once
    assert budget.running == 0 and budget.waiting == 0
    assert peak["rss"] - base < budget.capacity, (peak["rss"] - base) / MB


def test_a_job_larger_than_the_whole_budget_is_refused_with_the_numbers_and_the_app_still_answers(monkeypatch):
    d = Dashboard().open("compose")
    spec = d.at.session_state["spec"]
    made_plan = plan_workload(spec, pool=load_spec_source(spec))
    needed_mb = composed_bytes(made_plan.expected_requests) / MB
    monkeypatch.setenv(SERVER_BUDGET_ENV, f"{needed_mb / 4:.4f}")
    core_calls.clear_call_caches()
    d.at.switch_page(navigation.page("preview").link).run()
    errors = [e.value.replace("\\", "") for e in d.at.error]  # the page shows it as plain text (escaped)
    assert len(errors) == 1, errors
    expected = made_plan.expected_requests
    assert errors[0].startswith(f"composing about {expected:,.0f} requests needs an estimated {needed_mb:,.1f} MB"), errors
    assert f"budget for heavy work of all sessions, {needed_mb / 4:,.1f} MB (${SERVER_BUDGET_ENV})" in errors[0]
    assert server_budget().running == 0  # the refused job holds nothing
    # the app still answers: another page, then the same Preview once the budget allows it
    d.open("overview")
    monkeypatch.delenv(SERVER_BUDGET_ENV)
    d.open("preview")
    assert "pv_arrivals" in d.figures()
    assert server_budget().running == 0 and server_budget().held > 0



def test_the_cached_workloads_count_and_are_dropped_when_a_new_job_needs_their_room(servegen_dir, monkeypatch):
    pool = load_pool(servegen_dir, "language/m-large")
    specs = [
        WorkloadSpec(ServeGenSource(str(servegen_dir), "language/m-large"), Span(72000, 1000), rate=ConstantRate(200.0), seed=s)
        for s in range(3)
    ]
    one_job = composed_bytes(plan_workload(specs[0], pool=pool).expected_requests)
    monkeypatch.setenv(SERVER_BUDGET_ENV, str(one_job * 1.05 / MB))  # one job, not one job beside a kept workload
    core_calls.clear_call_caches()
    budget = server_budget()
    kept = []
    for spec in specs:
        assert core_calls.workload(spec, pool) is not None
        kept.append(budget.held)
    assert kept[0] > 0 and all(abs(k - kept[0]) < 0.01 * kept[0] for k in kept), kept  # never two kept at once
    assert budget.running == 0
    core_calls.clear_call_caches()
    assert budget.held == 0
