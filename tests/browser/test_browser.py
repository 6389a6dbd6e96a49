"""The dashboard in a real browser: ``streamlit run`` in a subprocess, driven by Playwright and Debian's Chromium.

Visits every page (on the demo's three models), composes a workload, downloads an export and
parses it, and saves a screenshot of each page under ``test-artifacts/screenshots/``.
The server is always stopped, also when a step fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROJECT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer at {url} within {timeout_s} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free port; stopped (process group) on teardown."""
    port = _free_port()
    env = os.environ | {"SERVEGEN_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT / "dashboard" / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path_factory.mktemp("cwd"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            pg = context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(server)
            settle(pg)
            yield pg
        finally:
            browser.close()


def settle(pg) -> None:
    """Wait until the script run is over and every Plotly chart on the page has drawn its SVG."""
    pg.wait_for_selector("h1")
    pg.wait_for_timeout(300)
    pg.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')""", timeout=TIMEOUT_MS
    )
    pg.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                .every(c => c.querySelector('svg.main-svg'))""",
        timeout=TIMEOUT_MS,
    )
    pg.wait_for_timeout(500)


def assert_clean(pg, name: str) -> None:
    """No exception and no error box on the page."""
    assert pg.locator('[data-testid="stException"]').count() == 0, f"{name}: exception on the page"
    errors = pg.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: {errors.all_inner_texts()}"


def charts_drawn(pg) -> int:
    """How many Plotly charts are on the page; each must have drawn a sized plot with data."""
    charts = pg.locator('[data-testid="stPlotlyChart"]')
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box and box["height"] > 150 and box["width"] > 200, f"chart {i} is not visible: {box}"
        drawn = chart.locator(".cartesianlayer .trace, .cartesianlayer image").count()
        assert drawn > 0, f"chart {i} has no drawn data"
        assert chart.locator(".gtitle").count() == 1, f"chart {i} has no title"
    return charts.count()


def go(pg, title: str) -> None:
    pg.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    pg.wait_for_function(f"""() => document.querySelector('h1') && document.querySelector('h1').innerText.startsWith({json.dumps(title)})""")
    settle(pg)


def choose(pg, label: str, option: str, *, sidebar: bool = True) -> None:
    scope = pg.locator('[data-testid="stSidebar"]') if sidebar else pg.locator('[data-testid="stMain"]')
    box = scope.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    pg.get_by_role("option", name=option, exact=False).first.click()
    settle(pg)


def metric(pg, label: str) -> str:
    return pg.locator('[data-testid="stMetric"]').filter(has_text=label).first.locator('[data-testid="stMetricValue"]').inner_text()


def shot(pg, name: str) -> None:
    """A screenshot of the whole page: the main area scrolls inside the viewport, so grow the viewport to it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = pg.viewport_size
    height = pg.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]'); return m ? m.scrollHeight : document.body.scrollHeight; }""")
    pg.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    try:
        settle(pg)
        pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        pg.set_viewport_size(size)


def test_every_page_compose_and_download(page, tmp_path):
    pg = page
    assert "synthetic demo data" in pg.locator('[data-testid="stSidebar"]').inner_text().lower()

    expected_charts = {
        "Overview": 2, "Burstiness": 4, "Rate shifts": 4, "Lengths": 2,
        "Clients": 0, "Compose": 2, "Preview": 4, "Export": 0,
    }
    for title, n in expected_charts.items():
        go(pg, title)
        assert_clean(pg, title)
        assert charts_drawn(pg) == n, title
        assert "synthetic demo data" in pg.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
        shot(pg, title.lower().replace(" ", "_"))

    # Multimodal and reasoning pages on the demo models that have those fields.
    for model, title, n in (("multimodal/demo-vl", "Multimodal", 4), ("reason/demo-r1", "Reasoning", 3)):
        choose(pg, "Demo model", model)
        go(pg, title)
        assert_clean(pg, title)
        assert charts_drawn(pg) == n, title
        shot(pg, title.lower())

    # Compose on the reasoning demo: a constant rate of 4 req/s for 30 minutes, seed 3.
    go(pg, "Compose")
    choose(pg, "Kind", "Constant", sidebar=False)
    rate = pg.get_by_role("spinbutton", name="Rate (req/s)", exact=True)
    rate.fill("4")
    rate.press("Enter")
    settle(pg)
    duration = pg.get_by_role("spinbutton", name="Duration (minutes)", exact=True)
    duration.fill("30")
    duration.press("Enter")
    settle(pg)
    seed = pg.get_by_role("spinbutton", name="Seed", exact=True)
    seed.fill("3")
    seed.press("Enter")
    settle(pg)
    assert_clean(pg, "Compose")
    assert metric(pg, "Expected requests") == "7,200"
    shot(pg, "compose_constant")

    go(pg, "Preview")
    assert_clean(pg, "Preview")
    assert charts_drawn(pg) == 4
    generated = int(metric(pg, "Requests").replace(",", ""))
    assert abs(generated - 7200) < 200  # counts are rounded at random per client-window, expectation exact
    shot(pg, "preview_constant")

    go(pg, "Export")
    choose(pg, "Format", "mooncake", sidebar=False)
    assert_clean(pg, "Export")
    with pg.expect_download() as info:
        pg.locator('[data-testid="stDownloadButton"] button').filter(has_text="Download workload").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == generated
    assert set(rows[0]) == {"timestamp", "input_length", "output_length", "hash_ids"}
    times = [r["timestamp"] for r in rows]
    assert times == sorted(times) and times[-1] <= 1800 * 1000
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // 512) for r in rows)
    spec = json.loads(pg.locator('[data-testid="stCode"]').first.inner_text())
    assert spec["rate"] == {"kind": "constant", "rps": 4.0} and spec["seed"] == 3
    assert spec["source"] == {"kind": "servegen", "data_dir": "demo", "model": "reason/demo-r1"}
    shot(pg, "export")
