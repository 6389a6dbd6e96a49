"""Benchmark: the dashboard on a real model, timed through Streamlit's AppTest.

Three measurements on ``language/m-large`` (by default):

* **cold start** — a fresh Python process creates the app, runs it (it opens on the demo),
  switches the sidebar to the ServeGen folder and the model, and renders the Overview up to
  its first chart. Run twice: with the columnar cache of the model already written (the usual
  case) and with an empty cache folder (the first time a model is ever opened).
* **first render of each page, warm cache** — the model is loaded (``st.cache_resource``),
  the page's own computations are not: before each page the core-call caches of
  ``dashboard/core_calls.py`` are cleared. Then the same page again (fully cached).
* **widget change** — a rerun after changing one widget on a page (a new computation where
  the widget asks for one).
* **download** — writing the export file when the download button is clicked (one hour of
  the model at its observed rate), per format.
* **selection change** — the rerun after one change of the client selection: a table row
  ticked (11 in a row), the "add top-k" button, a chart point picked, a weight edited on
  Compose (target: under 0.3 s each). ``--ticks-only`` runs just this part.

Every timing is wall time of ``AppTest.run()`` (the script run, core calls and figure
building; not the browser's drawing). The machine may be shared: ``--repeat`` takes the
median.

Usage::

    python bench/dashboard.py [--data DIR] [--model language/m-large] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DASHBOARD = PROJECT / "dashboard"
APP = DASHBOARD / "app.py"
PAGES = ("overview", "burstiness", "rate_shifts", "lengths", "multimodal", "reasoning", "clients", "compose", "preview", "export")


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=600)


def _check(at, what: str) -> None:
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        msg = f"{what}: {problems}"
        raise RuntimeError(msg)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _open_model(at, data_dir: str, model: str) -> None:
    at.sidebar.radio(key="src_kind").set_value("servegen").run()
    folder = at.sidebar.selectbox(key="src_folder")
    if folder.value != data_dir:
        folder.select(data_dir).run()
    at.sidebar.selectbox(key="src_model").select(model).run()
    _check(at, f"open {model}")


def cold_child(data_dir: str, model: str) -> None:
    """Run in a fresh process: prints the seconds from start to the first chart of the Overview."""
    t0 = time.perf_counter()
    at = _app()
    at.run()
    _check(at, "first run")
    t_demo = time.perf_counter() - t0
    _open_model(at, data_dir, model)
    charts = at.get("plotly_chart")
    if not charts:
        msg = "no chart on the Overview"
        raise RuntimeError(msg)
    print(f"{t_demo:.3f} {time.perf_counter() - t0:.3f}")


def cold_start(data_dir: str, model: str, *, cache_dir: str) -> tuple[float, float]:
    env = os.environ | {"SERVEGEN_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, __file__, "--cold-child", "--data", data_dir, "--model", model],
        check=True, capture_output=True, text=True, env=env, cwd=PROJECT,
    )
    demo, chart = (float(v) for v in out.stdout.split()[-2:])
    return demo, chart


WIDGET_CHANGES = (
    ("overview", "bin length 10 min → 1 h", lambda at: next(s for s in at.selectbox if s.label == "Bin length").select(3600)),
    ("burstiness", "aggregate stream", lambda at: at.radio(key="burst_scope").set_value("aggregate stream")),
    ("burstiness", "log scale off", lambda at: at.toggle(key="burst_log").set_value(False)),
    ("rate_shifts", "top-k 5 → 10", lambda at: at.number_input(key="rs_k").set_value(10)),
    ("lengths", "section: over time", lambda at: at.radio(key="len_section").set_value("Over time")),
    ("lengths", "section: per client", lambda at: at.radio(key="len_section").set_value("Per client")),
    ("clients", "top-k 10", lambda at: at.number_input(key="cl_top_k").set_value(10)),
    ("preview", "arrival bins 1 s → 10 s", lambda at: next(s for s in at.selectbox if s.label == "Arrival bins").select(10)),
    ("export", "format: mooncake", lambda at: at.selectbox(key="ex_format").select("mooncake")),
    ("compose", "seed 0 → 1", lambda at: at.number_input(key="cmp_seed").set_value(1)),
    ("preview", "(after the seed change)", lambda at: None),
    ("compose", "rate: constant", lambda at: at.selectbox(key="cmp_rate_kind").select("constant")),
)


def warm_pages(data_dir: str, model: str, repeat: int) -> tuple[dict, dict, dict]:
    sys.path.insert(0, str(DASHBOARD))
    import core_calls

    first: dict[str, list[float]] = {p: [] for p in PAGES}
    again: dict[str, list[float]] = {p: [] for p in PAGES}
    change: dict[tuple[str, str], list[float]] = {(p, n): [] for p, n, _ in WIDGET_CHANGES}
    for _ in range(repeat):
        at = _app()
        at.run()
        _open_model(at, data_dir, model)
        for page in PAGES:
            core_calls.clear_call_caches()  # the page's computations; the loaded pool stays cached
            first[page].append(_timed(lambda page=page: at.switch_page(f"views/{page}.py").run()))
            _check(at, page)
            again[page].append(_timed(at.run))
        # Widget changes, on a session that has visited every page once (as a user would).
        core_calls.clear_call_caches()
        at = _app()
        at.run()
        _open_model(at, data_dir, model)
        for page in PAGES:
            at.switch_page(f"views/{page}.py").run()
        for page, name, action in WIDGET_CHANGES:
            at.switch_page(f"views/{page}.py").run()
            action(at)
            change[(page, name)].append(_timed(at.run))
            _check(at, f"{page}: {name}")
    return first, again, change


def downloads(data_dir: str, model: str, repeat: int) -> tuple[int, dict[str, tuple[float, float]]]:
    """Writing the download file on click: one hour of the model's observed rate, per format (seconds, MB)."""
    sys.path.insert(0, str(DASHBOARD))
    import export_files

    from servegen_core.generate.compose import compose
    from servegen_core.sources.pool import load_pool
    from servegen_core.spec import ServeGenSource, Span, WorkloadSpec

    pool = load_pool(data_dir, model)
    spec = WorkloadSpec(source=ServeGenSource(data_dir, model), span=Span(start_s=0, duration_s=3600))
    rows = compose(spec, pool=pool).trace.height
    out = {}
    for fmt in ("parquet", "csv", "mooncake", "vidur"):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            data, _name, _dropped = export_files.export_bytes(spec, fmt, pool=pool)
            times.append(time.perf_counter() - t)
        out[fmt] = (statistics.median(times), len(data) / 1e6)
    return rows, out


def _table_key(at) -> str:
    return next(f.key for f in at.dataframe if f.key and f.key.startswith("cl_table_"))


def selection_ticks(data_dir: str, model: str, repeat: int, *, n_ticks: int = 11) -> dict[str, list[float]]:
    """Reruns of the Clients and Compose pages after one selection change each (after a first visit).

    ``tick``: one more table row ticked (``n_ticks`` in a row, as a user picking clients one by
    one); ``add top-k``: the "Add the top k" button; ``chart pick``: a point clicked on the
    CV-vs-rate chart; ``weight edit``: one weight changed in the Compose page's client table.
    Each is the wall time of a whole ``AppTest.run()`` (the browser reruns only the Clients
    page's selection fragment, which is less).
    """
    out: dict[str, list[float]] = {"tick": [], "add top-k": [], "chart pick": [], "weight edit": [], "11 ticks (total)": []}
    for _ in range(repeat):
        at = _app()
        at.run()
        _open_model(at, data_dir, model)
        at.switch_page("views/clients.py").run()
        _check(at, "clients")
        total = 0.0
        for i in range(n_ticks):
            at.session_state[_table_key(at)] = {"selection": {"rows": list(range(i + 1)), "columns": [], "cells": []}}
            t = _timed(at.run)
            out["tick"].append(t)
            total += t
        out["11 ticks (total)"].append(total)
        _check(at, "ticks")
        at.button(key="cl_add_top").click()
        out["add top-k"].append(_timed(at.run))
        key = next(c.key for c in at.get("plotly_chart") if c.key.startswith("cl_cv_rate_"))
        at.session_state[key] = {"selection": {"points": [{"point_index": 3, "curve_number": 0}], "point_indices": [3], "box": [], "lasso": []}}
        out["chart pick"].append(_timed(at.run))
        _check(at, "chart pick")
        at.switch_page("views/compose.py").run()
        _check(at, "compose")
        editor = next(e.key for e in at.data_editor if e.key and e.key.startswith("cmp_wtable_"))
        at.session_state[editor] = {"edited_rows": {0: {"weight": 2.0}}, "added_rows": [], "deleted_rows": []}
        out["weight edit"].append(_timed(at.run))
        _check(at, "weight edit")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="ServeGen data folder (default: the shared data)")
    parser.add_argument("--model", default="language/m-large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ticks-only", action="store_true", help="only the selection-change reruns (Clients and Compose)")
    args = parser.parse_args(argv)

    from servegen_core.paths import default_cache_dir, shared_data_dir
    from servegen_core.sources.pool import load_pool

    data_dir = str(Path(args.data).resolve() if args.data else shared_data_dir() / "servegen")
    if args.cold_child:
        cold_child(data_dir, args.model)
        return 0

    med = statistics.median
    print(f"# dashboard benchmark: {args.model}, repeat {args.repeat}; {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    sys.path.insert(0, str(DASHBOARD))
    ticks = selection_ticks(data_dir, args.model, args.repeat)
    if args.markdown:
        print("\n| selection change (whole rerun) | median (s) | max (s) |\n|---|---:|---:|")
        for name, ts in ticks.items():
            print(f"| {name} | {med(ts):.3f} | {max(ts):.3f} |")
    else:
        for name, ts in ticks.items():
            print(f"selection {name:18s} median {med(ts):.3f} s   max {max(ts):.3f} s")
    if args.ticks_only:
        return 0
    load_pool(data_dir, args.model)  # the columnar cache exists for the warm cold start
    warm = [cold_start(data_dir, args.model, cache_dir=str(default_cache_dir())) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as empty:
        fresh = [cold_start(data_dir, args.model, cache_dir=str(Path(empty) / f"c{i}")) for i in range(args.repeat)]
    first, again, change = warm_pages(data_dir, args.model, args.repeat)
    rows, files = downloads(data_dir, args.model, args.repeat)

    rows_cold = [
        ("columnar cache written", med(w[0] for w in warm), med(w[1] for w in warm)),
        ("empty cache (first open of the model)", med(f[0] for f in fresh), med(f[1] for f in fresh)),
    ]
    if args.markdown:
        print("\n| app cold start | demo page ready (s) | first chart on the model (s) |\n|---|---:|---:|")
        for name, a, b in rows_cold:
            print(f"| {name} | {a:.2f} | {b:.2f} |")
        print("\n| page | first render, warm cache (s) | again, cached (s) |\n|---|---:|---:|")
        for p in PAGES:
            print(f"| {p} | {med(first[p]):.2f} | {med(again[p]):.2f} |")
        print("\n| page | widget change | rerun (s) |\n|---|---|---:|")
        for (p, n), ts in change.items():
            print(f"| {p} | {n} | {med(ts):.2f} |")
        print(f"\n| download of 1 h observed ({rows:,} requests) | written on click (s) | size (MB) |\n|---|---:|---:|")
        for fmt, (t, mb) in files.items():
            print(f"| {fmt} | {t:.2f} | {mb:.1f} |")
    else:
        for name, a, b in rows_cold:
            print(f"cold start, {name}: demo {a:.2f} s, first chart on {args.model} {b:.2f} s")
        for p in PAGES:
            print(f"{p:12s} first {med(first[p]):6.2f} s   again {med(again[p]):6.2f} s")
        for (p, n), ts in change.items():
            print(f"{p:12s} {n:28s} {med(ts):6.2f} s")
        for fmt, (t, mb) in files.items():
            print(f"download {fmt:10s} {t:6.2f} s {mb:8.1f} MB ({rows:,} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
