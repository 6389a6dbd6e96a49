"""The dashboard in a real browser: ``streamlit run`` in a subprocess, driven by Playwright and Debian's Chromium.

Visits every page (on the demo's three models), composes a workload, downloads an export and
parses it, and saves a screenshot of each page under ``test-artifacts/screenshots/``. The
workflow test goes through the whole flow as a user: select clients (top-k button, search by
id, a ticked table row), open them in Compose, edit a weight, set a ramp, undo and redo a
change, preview against a naive baseline, export, and reopen the page from its address.
The server is always stopped, also when a step fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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


@contextlib.contextmanager
def streamlit_server(tmp_path_factory, env: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free port with ``env`` added (and a fresh cache
    folder); yields its URL; the process group is always stopped."""
    port = _free_port()
    full_env = os.environ | {"SERVEGEN_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))} | (env or {})
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT / "dashboard" / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path_factory.mktemp("cwd"), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
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


@contextlib.contextmanager
def browser_page(url: str) -> Iterator:
    """A headless Debian Chromium page (downloads accepted) opened on ``url`` and settled."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            pg = context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(url)
            settle(pg)
            yield pg
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with streamlit_server(tmp_path_factory) as url, browser_page(url) as pg:
        yield pg


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


def download_workload(pg, folder):
    """Click "Download workload" and save the file; retried when the click lands during a redraw.

    The button is rebuilt on every rerun, so a click that arrives while the page redraws starts
    no download: the page is settled first, and the click is repeated if no download starts.
    """
    button = pg.locator('[data-testid="stDownloadButton"] button').filter(has_text="Download workload")
    for attempt in range(3):
        settle(pg)
        try:
            with pg.expect_download(timeout=30_000) as info:
                button.click()
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried
            if attempt == 2:
                raise
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def choose(pg, label: str, option: str, *, sidebar: bool = True) -> None:
    scope = pg.locator('[data-testid="stSidebar"]') if sidebar else pg.locator('[data-testid="stMain"]')
    box = scope.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    target = pg.get_by_role("option", name=option, exact=False).first
    for _ in range(3):  # a click that lands while the page is redrawn does not open the list: retry
        box.click()
        try:
            target.wait_for(state="visible", timeout=5000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried
            pg.keyboard.press("Escape")
            settle(pg)
    target.click()
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
        "Clients": 2, "Compose": 3, "Preview": 4, "Export": 0,
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
    assert metric(pg, "Expected requests") == "about 7,200"  # the plan's estimate, said as one
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
    target = download_workload(pg, tmp_path)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == generated
    assert set(rows[0]) == {"timestamp", "input_length", "output_length", "hash_ids", "client_id"}
    times = [r["timestamp"] for r in rows]
    assert times == sorted(times) and times[-1] <= 1800 * 1000
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // 512) for r in rows)
    spec = shown_spec(pg)
    assert spec["rate"] == {"kind": "constant", "rps": 4.0} and spec["seed"] == 3
    assert spec["source"] == {"kind": "servegen", "data_dir": "demo", "model": "reason/demo-r1"}
    shot(pg, "export")


def table_cell(pg, testid: str, row: int, column: int, *, row_h: float = 35.0, col_w: float | None = None) -> tuple[float, float]:
    """Screen position of a cell of the first Glide data grid with this test id (rows from 0 under the header)."""
    grid = pg.locator(f'[data-testid="{testid}"]').first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    x = box["x"] + (18 if column < 0 else 40 + (col_w or 120) * (column + 0.5))
    y = box["y"] + row_h * (row + 1.5)
    return x, y


def caption_texts(pg) -> str:
    return "\n".join(pg.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').all_inner_texts())


def shown_spec(pg) -> dict:
    """The spec JSON shown on the Export page: the code block that parses as a JSON object (others hold replay commands).
    Polled for up to 60 s: on a loaded machine the page may still be drawing its code blocks."""
    texts: list[str] = []
    for _ in range(120):
        texts = pg.locator('[data-testid="stCode"]').all_inner_texts()
        for text in texts:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "source" in value:
                return value
        pg.wait_for_timeout(500)
    pytest.fail(f"no spec JSON among the {len(texts)} code blocks of the page after 60 s", pytrace=False)


def edit_first_weight(pg, value: str) -> None:
    """Type ``value`` into the weight cell of the first row of the Compose weight table, Enter.

    Glide's grid maps the first click after the page scrolled it into view to a stale position
    (no cell is selected, the keys go nowhere): the gesture is repeated until the page shows
    the edit ("weights edited"), at most three times.
    """
    for attempt in range(3):
        editor = pg.locator('[data-testid="stDataFrame"]').first
        editor.scroll_into_view_if_needed()
        box = editor.bounding_box()
        pg.mouse.click(box["x"] + 30, box["y"] + 35 * 1.5)
        pg.wait_for_timeout(300)
        for _ in range(3):  # client -> status -> observed share -> weight
            pg.keyboard.press("ArrowRight")
        pg.wait_for_timeout(300)
        pg.keyboard.type(value)
        pg.wait_for_timeout(300)
        pg.keyboard.press("Enter")
        try:
            pg.wait_for_function(
                """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')].some(c => c.innerText.includes('weights edited'))""",
                timeout=20_000,
            )
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; the gesture is repeated
            if attempt == 2:
                raise
            pg.keyboard.press("Escape")
            settle(pg)


def test_select_weights_ramp_preview_export_flow(page, tmp_path):
    pg = page
    choose(pg, "Demo model", "language/demo-chat")
    go(pg, "Clients")
    assert_clean(pg, "Clients")
    # add the top 3 by request share, then client 15 by id
    pg.get_by_role("button", name="Add the top 5").click()
    settle(pg)
    k = pg.get_by_role("spinbutton", name="Top-k by request_share", exact=True)
    k.fill("3")
    k.press("Enter")
    settle(pg)
    pg.get_by_role("button", name="Clear the selection").click()
    settle(pg)
    pg.get_by_role("button", name="Add the top 3").click()
    settle(pg)
    search = pg.get_by_label("Search by client id (several: separated by spaces or commas)")
    search.fill("15")
    search.press("Enter")
    settle(pg)
    pg.get_by_role("button", name="Add these ids").click()
    settle(pg)
    selected = pg.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
    assert selected.startswith("Selection for Compose (4 clients")
    # tick the row of another client in the table (row 5 of the ranked list): it joins the selection
    x, y = table_cell(pg, "stDataFrame", 5, -1)
    pg.mouse.click(x, y)
    settle(pg)
    selected = pg.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
    assert selected.startswith("Selection for Compose (5 clients"), selected
    ids_line = [t for t in caption_texts(pg).splitlines() if t.count(",") == 4][0]
    ids = [c.strip() for c in ids_line.split(",")]
    assert "15" in ids
    assert_clean(pg, "Clients")
    shot(pg, "flow_1_clients_selected")

    # Open in Compose: the client subset is the selection
    pg.get_by_role("button", name="Open in Compose").click()
    pg.wait_for_function("""() => document.querySelector('h1') && document.querySelector('h1').innerText.startsWith('Compose')""")
    settle(pg)
    assert_clean(pg, "Compose")
    radio = pg.locator('[data-testid="stRadio"]').filter(has_text="Client subset")
    assert radio.locator("input:checked").count() == 1
    assert "Clients page selection (5)" in radio.locator("label:has(input:checked)").inner_text()
    # the source changed since the last Compose (reason/demo-r1's constant 4 req/s, seed 3): named as kept,
    # the spec is not "ready", and one click resets every setting to this source's defaults
    kept = pg.locator('[data-testid="stAlertContentWarning"]').filter(has_text=re.compile("^Kept from another source"))
    assert kept.count() == 1 and "rate (req/s) 4" in kept.inner_text() and "seed 3" in kept.inner_text(), kept.all_inner_texts()
    assert "Spec built, not ready" in pg.locator('[data-testid="stAlertContentWarning"]').last.inner_text()
    shot(pg, "flow_1b_compose_kept_from_another_source")
    pg.get_by_role("button", name="Reset to this source's defaults").click()
    settle(pg)
    assert pg.locator('[data-testid="stAlertContentWarning"]').filter(has_text=re.compile("^Kept from another source")).count() == 0
    assert pg.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="Spec ready").count() == 1
    assert pg.get_by_role("spinbutton", name="Seed", exact=True).input_value() == "0"
    assert_clean(pg, "Compose")
    # edit the first client's weight: click its client cell, move right to the weight column, type, Enter
    edit_first_weight(pg, "5")
    settle(pg)
    assert_clean(pg, "Compose")
    # a ramp from 2 to 12 req/s over 30 minutes
    choose(pg, "Kind", "Linear ramp", sidebar=False)
    for name, value in (("Start rate (req/s)", "2"), ("End rate (req/s)", "12"), ("Duration (minutes)", "30")):
        box_ = pg.get_by_role("spinbutton", name=name, exact=True)
        box_.fill(value)
        box_.press("Enter")
        settle(pg)
    assert_clean(pg, "Compose")
    assert metric(pg, "Expected requests") == f"about {(2 + 12) / 2 * 1800:,.0f}"
    shot(pg, "flow_2_compose_ramp")
    # undo the last change (the duration), then set it again
    pg.get_by_role("button", name="Undo the last change").click()
    settle(pg)
    # (the button reruns twice: once to queue the restore, once to apply it)
    pg.wait_for_function(
        """() => [...document.querySelectorAll('input[aria-label="Duration (minutes)"]')].some(i => i.value === '60.00')""",
        timeout=30_000,
    )
    settle(pg)
    box_ = pg.get_by_role("spinbutton", name="Duration (minutes)", exact=True)
    box_.fill("30")
    box_.press("Enter")
    settle(pg)
    pg.get_by_text("Compare with a naive baseline on the Preview page").click()
    settle(pg)
    address = pg.url
    assert "spec=" in address

    go(pg, "Preview")
    assert_clean(pg, "Preview")
    assert charts_drawn(pg) == 4 + 4  # A and B arrivals, CV and length comparisons
    generated = int(metric(pg, "Requests").replace(",", ""))
    assert abs(generated - 12600) < 600
    shot(pg, "flow_3_preview_vs_naive")

    go(pg, "Export")
    choose(pg, "Format", "mooncake", sidebar=False)
    target = download_workload(pg, tmp_path)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == generated
    spec = shown_spec(pg)
    assert spec["rate"] == {"kind": "ramp", "start_rps": 2.0, "end_rps": 12.0}
    assert spec["clients"]["mode"] == "ids" and sorted(spec["clients"]["ids"], key=int) == sorted(ids, key=int)
    assert spec["weights"]["mode"] == "explicit" and 5.0 in spec["weights"]["values"].values()
    assert spec["span"]["duration_s"] == 1800.0
    shot(pg, "flow_4_export")

    # the address restores the spec in a new session (a reload or a shared link)
    other = pg.context.new_page()
    try:
        other.set_default_timeout(TIMEOUT_MS)
        other.goto(address)
        settle(other)
        go(other, "Export")
        again = shown_spec(other)
        assert again == spec
        shot(other, "flow_5_reloaded_export")
    finally:
        other.close()
