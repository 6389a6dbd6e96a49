"""User data in a real browser: a trace whose client ids are Markdown links, images and HTML,
read from a configured data root, renders them as literal text (no link, no image), and a path
outside the roots is refused. ``streamlit run`` in a subprocess, Playwright and Debian's Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_browser import browser_page, go, settle, streamlit_server

pytestmark = pytest.mark.browser

EVIL_IDS = ["[x](http://evil.example/a)", "![](http://evil.example/x.png)", '<a href="http://evil.example/h">y</a>', "plain"]
EVIL_COLUMNS = {"timestamp": "[t](http://evil.example/t)", "input_tokens": "![in](http://evil.example/i.png)", "output_tokens": "<b>out</b>"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data root holding ``evil.csv``: 800 requests over two hours from the crafted clients."""
    folder = tmp_path_factory.mktemp("roots")
    rng = np.random.default_rng(5)
    n = 800
    pl.DataFrame(
        {
            "timestamp_s": np.sort(rng.uniform(0, 7200, n)).round(3),
            "client_id": rng.choice(np.array(EVIL_IDS, dtype=object), n),
            "input_tokens": rng.integers(10, 4000, n),
            "output_tokens": rng.integers(1, 500, n),
        }
    ).write_csv(folder / "evil.csv")
    pl.DataFrame(
        {
            EVIL_COLUMNS["timestamp"]: np.arange(50, dtype=float) * 10,
            EVIL_COLUMNS["input_tokens"]: rng.integers(10, 4000, 50),
            EVIL_COLUMNS["output_tokens"]: rng.integers(1, 500, 50),
        }
    ).write_csv(folder / "columns.csv")
    return folder


@pytest.fixture(scope="module")
def page(root, tmp_path_factory) -> Iterator:
    """The dashboard (data root: ``root`` only; saving to a path off) in Chromium; the server is always stopped."""
    env = {"SERVEGEN_DATA_ROOTS": str(root), "SERVEGEN_EXPORT_DIR": ""}
    with streamlit_server(tmp_path_factory, env) as url, browser_page(url) as pg:
        yield pg


def type_trace_path(pg, text: str) -> None:
    sidebar = pg.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Raw request trace", exact=True).click()
    settle(pg)
    box = sidebar.locator('[data-testid="stTextInput"] input').first
    box.fill(text)
    box.press("Enter")
    settle(pg)


def pick(pg, label: str, option: str) -> None:
    """Choose ``option`` in the sidebar selectbox labelled ``label`` by typing it into the box's search."""
    box = pg.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    pg.keyboard.type(option)
    pg.keyboard.press("Enter")
    settle(pg)


def no_evil_links_or_images(pg) -> None:
    """No element of the page links to or loads anything from evil.example (found: their HTML and container)."""
    found = pg.evaluate(
        """() => [...document.querySelectorAll('a[href], img[src], image')]
                .filter(e => (e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('xlink:href') || '').includes('evil.example'))
                .map(e => e.outerHTML.slice(0, 300) + ' IN ' + (e.closest('[data-testid]') || {}).getAttribute?.('data-testid'))"""
    )
    assert found == []


def chart_text(pg) -> str:
    return pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] svg text')].map(t => t.textContent).join('\\n')""")


def test_crafted_client_ids_render_literally_and_paths_stay_in_the_roots(page, root):
    pg = page
    # a path outside the roots is refused, naming the roots
    type_trace_path(pg, "/etc/passwd")
    error = pg.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]').first.inner_text()
    assert error.startswith("refused: /etc/passwd is outside the data folders") and str(root.resolve()) in error

    type_trace_path(pg, "evil.csv")
    assert "Requests: 800" in pg.locator('[data-testid="stSidebar"]').inner_text()

    go(pg, "Overview")
    no_evil_links_or_images(pg)
    text = chart_text(pg)
    for client in EVIL_IDS:
        assert f"client {client}" in text  # the top-clients tick labels show the ids as written

    go(pg, "Clients")
    pg.locator('[data-testid="stButton"] button').filter(has_text="Use the").filter(has_text="matching").first.click()
    settle(pg)
    main = pg.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")
    assert "Selection for Compose (4 clients" in main
    for client in EVIL_IDS:
        assert client in main
    no_evil_links_or_images(pg)

    for title in ("Burstiness", "Rate shifts", "Lengths", "Compose", "Preview", "Provisioning"):
        go(pg, title)
        no_evil_links_or_images(pg)
    go(pg, "Export")
    assert "Saving to a path is off on this server" in pg.locator('[data-testid="stMain"]').inner_text()
    no_evil_links_or_images(pg)


def test_crafted_column_names_render_literally_in_the_mapping_and_the_notes(page):
    pg = page
    type_trace_path(pg, "columns.csv")
    pick(pg, "Preset", "generic")
    for target, column in EVIL_COLUMNS.items():
        pick(pg, target, column)
        no_evil_links_or_images(pg)
    pick(pg, "Time unit", "s")
    sidebar = pg.locator('[data-testid="stSidebar"]').inner_text().replace("\u2060", "")
    assert "Requests: 50" in sidebar
    for column in EVIL_COLUMNS.values():
        assert column in sidebar  # in the mapping boxes and the loader's note, as written
    no_evil_links_or_images(pg)
