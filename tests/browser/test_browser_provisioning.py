"""Provisioning in a real browser: the Azure conversation trace sized for a p90 end-to-end objective on
one GPU, its GPU-hours and cost, the latency floor, then a second GPU compared in one run, as the user
sees them (``streamlit run`` in a subprocess, Playwright and Debian's Chromium)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_browser import assert_clean, browser_page, charts_drawn, choose, go, settle, shot, streamlit_server

from servegen_core.serve import fleetcost as fc
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.whatif import Slo, compare_trace
from servegen_core.sources.traces import load_trace

pytestmark = pytest.mark.browser

AZURE = "AzureLLMInferenceTrace_conv.csv"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator:
    with streamlit_server(tmp_path_factory) as url, browser_page(url) as pg:
        yield pg


def number(pg, label: str, value: str) -> None:
    box = pg.get_by_role("spinbutton", name=label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(pg)


def press_until(pg, button: str, success_start: str) -> None:
    """Click ``button`` until a success alert starting with ``success_start`` shows (a click that lands
    while the page redraws starts nothing: retried, at most three times)."""
    for attempt in range(3):
        settle(pg)
        pg.get_by_role("button", name=button, exact=True).click()
        try:
            pg.wait_for_function(
                f"""() => [...document.querySelectorAll('[data-testid="stAlertContentSuccess"]')].some(a => a.innerText.startsWith({success_start!r}))""",
                timeout=60_000,
            )
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried
            if attempt == 2:
                raise
    settle(pg)


def alerts(pg, kind: str) -> list[str]:
    """The texts of the page's alerts of one kind, as read (word joiners, which keep addresses from becoming links, removed)."""
    return [t.replace("\u2060", "") for t in pg.locator(f'[data-testid="stMain"] [data-testid="stAlertContent{kind}"]').all_inner_texts()]


def test_provisioning_objectives_cost_and_two_gpus(page, traces_dir):
    pg = page
    sidebar = pg.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Raw request trace", exact=True).click()
    settle(pg)
    box = sidebar.locator('[data-testid="stTextInput"] input').first
    box.fill(str(traces_dir / AZURE))
    box.press("Enter")
    settle(pg)
    assert "Requests: 19,366" in sidebar.inner_text()
    # point 11: the time-span slider's label is shown whole, not cut off
    label = sidebar.locator('[data-testid="stSlider"] [data-testid="stWidgetLabel"]').first
    assert label.inner_text().strip() == "Time span (source time)"
    assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1")

    go(pg, "Provisioning")
    assert_clean(pg, "Provisioning")
    choose(pg, "SLO percentile", "p90", sidebar=False)
    number(pg, "SLO: TPOT (s, 0 = none)", "0")
    number(pg, "SLO: end-to-end (s, 0 = none)", "9")
    press_until(pg, "Simulate", "To meet p90")
    assert_clean(pg, "Provisioning")
    trace = load_trace(traces_dir / AZURE).trace
    slo = Slo(ttft_p99_s=2.0, e2e_s=9.0, percentile=90)
    core = compare_trace(trace, slo, roofline("llama-3-8b", "a100-80gb"))
    success = alerts(pg, "Success")
    assert success and success[0].replace("≤", "<=") == core.sentence(), success
    n = core.table["replicas"][0]
    main = pg.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")
    span_s = float(trace["timestamp_s"].max() - trace["timestamp_s"].min())
    assert fc.fleet_cost(n, "a100-80gb", 1, span_s, requests=trace.height).sentence() in main
    floor = [i.replace("≤", "<=") for i in alerts(pg, "Info") if i.startswith("Latency floor")]
    assert floor and "p90 E2E <= 9 s leaves" in floor[0], floor
    assert charts_drawn(pg) == 4  # p90 TTFT, p90 TPOT, p90 end-to-end, the fleet over time
    assert re.search(r"servegen whatif --trace \S+ --model llama-3-8b --gpu a100-80gb .*--slo-e2e 9 --slo-percentile 90", main)

    # a second GPU, compared in one run
    choose(pg, "GPU B", "h100-sxm", sidebar=False)
    press_until(pg, "Compare the two", "For p90")
    assert_clean(pg, "Provisioning")
    compared = [s for s in alerts(pg, "Success") if s.startswith("For p90 TTFT")]
    assert compared and "A: llama-3-8b@a100-80gb needs" in compared[0] and "B: llama-3-8b@h100-sxm needs" in compared[0], compared
    assert "is the cheaper" in compared[0]
    shot(pg, "provisioning_compare")
