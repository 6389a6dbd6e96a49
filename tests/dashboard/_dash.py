"""AppTest driver and figure helpers for the dashboard tests (imported by the test modules)."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np

from streamlit.testing.v1 import AppTest

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"
# ``streamlit run dashboard/app.py`` puts ``dashboard/`` on ``sys.path``; the tests do the same
# to import its modules (the page table below, the charts, the sidebar's helpers).
if str(DASHBOARD) not in sys.path:
    sys.path.insert(0, str(DASHBOARD))

import navigation  # noqa: E402 - needs dashboard/ on sys.path

#: Every page of the app's navigation (script stems, in menu order): the app's own table.
PAGES = tuple(entry.name for entry in navigation.PAGES)


class Dashboard:
    """Drives the app through AppTest: choose a source in the sidebar, open pages, read figures."""

    def __init__(self, timeout: float = 180) -> None:
        self.at = AppTest.from_file(str(APP), default_timeout=timeout)
        self.at.run()
        self.check()

    # -- sources ---------------------------------------------------------------------------
    def demo(self, option: str) -> Dashboard:
        self.at.sidebar.radio(key="src_kind").set_value("demo").run()
        self.at.sidebar.selectbox(key="src_demo").select(option).run()
        return self.check()

    def servegen(self, model: str) -> Dashboard:
        self.at.sidebar.radio(key="src_kind").set_value("servegen").run()
        self.at.sidebar.selectbox(key="src_model").select(model).run()
        return self.check()

    def trace(self, path: Path, preset: str | None = None) -> Dashboard:
        self.at.sidebar.radio(key="src_kind").set_value("trace").run()
        self.at.sidebar.radio(key="src_trace_how").set_value("Path").run()
        if preset is not None:
            self.at.sidebar.selectbox(key="src_preset").select(preset).run()
        self.at.sidebar.text_input(key="src_trace_path").input(str(path)).run()
        return self.check()

    # -- pages -----------------------------------------------------------------------------
    def open(self, page: str) -> Dashboard:
        self.at.switch_page(navigation.page(page).link).run()
        return self.check()

    def check(self) -> Dashboard:
        """No exception and no error message on the page or in the sidebar."""
        assert not self.at.exception, [e.value for e in self.at.exception]
        errors = [e.value for e in self.at.error]  # page and sidebar
        assert not errors, errors
        return self

    def run(self) -> Dashboard:
        self.at.run()
        return self.check()

    def figures(self) -> dict[str, dict]:
        """Plotly figures on the page by widget key, as their JSON (data + layout)."""
        return {c.key: json.loads(c.proto.spec) for c in self.at.get("plotly_chart")}

    def figure(self, key: str) -> dict:
        figs = self.figures()
        assert key in figs, f"chart {key!r} not on the page; charts: {sorted(figs)}"
        return figs[key]

    def table(self, *columns: str):
        """The first dataframe on the page having every one of ``columns`` (pandas, as AppTest gives it)."""
        for frame in self.at.dataframe:
            value = frame.value
            if all(c in value.columns for c in columns):
                return value
        msg = f"no dataframe with columns {columns}"
        raise AssertionError(msg)

    def captions(self) -> list[str]:
        return [plain(c.value) for c in self.at.caption]

    def infos(self) -> list[str]:
        return [plain(i.value) for i in self.at.info]

    def errors(self) -> list[str]:
        """Error messages (page and sidebar) as the text they show."""
        return [plain(e.value) for e in self.at.error]

    def sidebar_text(self) -> str:
        return "\n".join(m.value for m in self.at.sidebar.markdown)




def plain(body: str) -> str:
    """The text a Markdown body shows, as read: CommonMark backslash escapes and invisible word
    joiners removed (``bad\\.csv`` -> ``bad.csv``)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", body).replace("\u2060", "")


# -- figure helpers (shared by the chart and app tests) -------------------------------------


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def axis_title(fig: dict, axis: str = "xaxis") -> str:
    return fig["layout"][axis]["title"]["text"]


def vertical_lines(fig: dict) -> list[float]:
    """x of every vertical line shape."""
    return [s["x0"] for s in fig["layout"].get("shapes", []) if s.get("type") == "line" and s["x0"] == s["x1"]]


def horizontal_lines(fig: dict) -> list[float]:
    """y of every horizontal line shape."""
    return [s["y0"] for s in fig["layout"].get("shapes", []) if s.get("type") == "line" and s["y0"] == s["y1"]]


def trace_names(fig: dict) -> list[str]:
    return [t.get("name", "") for t in fig["data"]]


def values(data: dict, name: str) -> np.ndarray:
    """A trace attribute as an array: Plotly's JSON writes numeric arrays as base64 ``bdata``."""
    v = data[name]
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            arr = arr.reshape([int(n) for n in str(v["shape"]).split(",")])
        return arr
    return np.asarray(v)
