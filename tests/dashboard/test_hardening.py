"""The dashboard served to strangers: file access confined to the configured folders, user data
shown as plain text, uploads bounded and cleaned up, hostile files refused while the app keeps serving.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import core_calls
import session
import settings
import sidebar
import uploads
from _dash import APP, PAGES, Dashboard, plain
from plaintext import md, svg
from widgets.page import MAX_BINS

from servegen_core.paths import DATA_ROOTS_ENV, EXPORT_DIR_ENV, PROJECT_DIR

HEADER = "timestamp_s,client_id,input_tokens,output_tokens\n"


def servegen_csv(path: Path, clients: list[str], *, n: int = 400, seed: int = 0) -> Path:
    """A small trace in this project's own column layout: ``n`` requests over an hour from ``clients``."""
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "timestamp_s": np.sort(rng.uniform(0, 3600, n)).round(3),
            "client_id": rng.choice(np.array(clients, dtype=object), n),
            "input_tokens": rng.integers(10, 4000, n),
            "output_tokens": rng.integers(1, 500, n),
        }
    )
    frame.write_csv(path)
    return path


def sidebar_errors(d: Dashboard) -> list[str]:
    return [plain(e.value) for e in d.at.sidebar.error]


def type_path(d: Dashboard, text: str) -> None:
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.radio(key="src_trace_how").set_value("Path").run()
    d.at.sidebar.text_input(key="src_trace_path").input(text).run()
    assert not d.at.exception, [e.value for e in d.at.exception]


def upload(d: Dashboard, name: str, content: bytes) -> None:
    d.at.sidebar.radio(key="src_kind").set_value("trace").run()
    d.at.sidebar.radio(key="src_trace_how").set_value("Upload").run()
    d.at.sidebar.file_uploader(key="src_upload").upload(name, content).run()
    assert not d.at.exception, [e.value for e in d.at.exception]


def still_serves(d: Dashboard) -> None:
    """After a refused source: every page opens without an exception, then the demo loads again."""
    for page in ("overview", "clients", "export"):
        d.at.switch_page(f"views/{page}.py").run()
        assert not d.at.exception, [e.value for e in d.at.exception]
        assert any("Choose a data source" in i for i in d.infos()), page
    d.at.sidebar.radio(key="src_kind").set_value("demo").run()
    d.check()
    d.open("overview")
    assert "ov_rate" in d.figures()


# -- 1. reading: only under the data roots ---------------------------------------------------


def test_a_trace_path_outside_the_data_roots_is_refused(tmp_path, monkeypatch, traces_dir):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = servegen_csv(outside / "secret.csv", ["a", "b"])
    inside = servegen_csv(root / "inside.csv", ["a", "b"])
    (root / "link.csv").symlink_to(secret)
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv(DATA_ROOTS_ENV, str(root))
    d = Dashboard()
    for text in (str(secret), "../outside/secret.csv", "link.csv", "linked_dir/secret.csv", "/etc/passwd", "/nonexistent/x.csv",
                 str(traces_dir / "AzureLLMInferenceTrace_conv.csv")):
        type_path(d, text)
        errors = sidebar_errors(d)
        assert len(errors) == 1, (text, errors)
        assert errors[0].startswith(f"refused: {text} is outside the data folders"), errors[0]
        assert str(root.resolve()) in errors[0] and DATA_ROOTS_ENV in errors[0]
        assert d.at.session_state["view"] is None
        assert "**Requests:**" not in d.sidebar_text()
    # a file inside is read, by absolute or root-relative path
    for text in (str(inside), "inside.csv"):
        type_path(d, text)
        d.check()
        assert "**Requests:** 400" in d.sidebar_text()
    # a missing file inside a root is "not found"; outside, existence is never revealed
    type_path(d, "missing.csv")
    assert sidebar_errors(d) == [f"trace file not found: {root.resolve() / 'missing.csv'}"]
    still_serves(d)


def test_several_data_roots_and_the_shared_data_by_default(tmp_path, monkeypatch, traces_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    servegen_csv(b / "t.csv", ["x"], n=50)
    monkeypatch.setenv(DATA_ROOTS_ENV, os.pathsep.join([str(a), str(b)]))
    d = Dashboard()
    type_path(d, "t.csv")  # looked up in each root
    d.check()
    assert "**Requests:** 50" in d.sidebar_text()
    type_path(d, str(tmp_path / "c.csv"))
    assert f"({a.resolve()}, {b.resolve()};" in sidebar_errors(d)[0]
    # default roots: the project's data/ and the shared data, so shared traces load by relative path
    monkeypatch.delenv(DATA_ROOTS_ENV)
    d = Dashboard()
    type_path(d, "traces/AzureLLMInferenceTrace_conv.csv")
    d.check()
    assert "**Requests:** 19,366" in d.sidebar_text()
    type_path(d, str(tmp_path / "a"))
    assert "outside the data folders" in sidebar_errors(d)[0]


def test_a_spec_source_outside_the_roots_is_not_composed(tmp_path, monkeypatch):
    """The composer's pool comes only from a source the sidebar may read."""
    from servegen_core.paths import PathNotAllowedError
    from servegen_core.spec import ServeGenSource, TraceSource

    inside = servegen_csv(tmp_path / "in.csv", ["a"], n=20)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    outside.write_text(HEADER + "0,a,1,1\n")
    try:
        uploads.check_spec_source(TraceSource(path=str(inside)))
        uploads.check_spec_source(ServeGenSource("demo", "language/demo-chat"))
        with pytest.raises(PathNotAllowedError, match="outside the data folders"):
            uploads.check_spec_source(TraceSource(path=str(outside)))
        with pytest.raises(PathNotAllowedError, match="outside the data folders"):
            uploads.check_spec_source(ServeGenSource("/etc", "language/x"))
    finally:
        outside.unlink()


# -- 1. writing: only under the export folder ------------------------------------------------


def open_export(d: Dashboard) -> Dashboard:
    d.open("compose").open("export")
    d.at.selectbox(key="ex_format").select("jsonl").run()
    return d.check()


def save(d: Dashboard, name: str, *, overwrite: bool = False) -> list[str]:
    d.at.text_input(key="ex_path_jsonl").input(name).run()
    d.at.checkbox(key="ex_overwrite").set_value(overwrite).run()
    d.at.button(key="ex_save").click().run()
    assert not d.at.exception, [e.value for e in d.at.exception]
    return d.errors()


def test_save_to_path_writes_only_under_the_export_folder(tmp_path, monkeypatch):
    exports = tmp_path / "exports"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv(EXPORT_DIR_ENV, str(exports))
    d = open_export(Dashboard())
    assert any(f"Files are saved under {exports.resolve()}" in c for c in d.captions())
    # the default name is relative to the export folder, which is created on the first save
    assert d.at.text_input(key="ex_path_jsonl").value == "workload.jsonl"
    assert save(d, "workload.jsonl") == []
    assert (exports / "workload.jsonl").is_file() and (exports / "workload.jsonl.spec.json").is_file()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    (exports / "out").symlink_to(elsewhere, target_is_directory=True)
    for name in ("../escaped.jsonl", str(elsewhere / "x.jsonl"), "out/x.jsonl", "/etc/x.jsonl", "a/../../x.jsonl"):
        errors = save(d, name)
        assert len(errors) == 1 and errors[0].startswith(f"refused: {name} is outside {exports.resolve()}"), errors
        assert EXPORT_DIR_ENV in errors[0]
    assert not list(elsewhere.iterdir())
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name != "out") == before
    # a missing subfolder is an error, not created; an existing subfolder is fine
    assert "does not exist" in save(d, "sub/x.jsonl")[0]
    (exports / "sub").mkdir()
    assert save(d, "sub/x.jsonl") == []
    assert (exports / "sub" / "x.jsonl").is_file()


def test_save_to_path_never_replaces_or_deletes_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path))
    folder = tmp_path / "results.jsonl"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious\n")
    sidecar_dir = tmp_path / "w.jsonl.spec.json"
    sidecar_dir.mkdir()
    d = open_export(Dashboard())
    for name, overwrite in (("results.jsonl", True), ("results.jsonl", False), (".", True), ("w.jsonl", True)):
        errors = save(d, name, overwrite=overwrite)
        assert len(errors) == 1, errors
        assert "never replaced" in errors[0] or "give a file name" in errors[0], errors
    assert (folder / "keep.txt").read_text() == "precious\n"
    assert sidecar_dir.is_dir() and not (tmp_path / "w.jsonl").exists()
    # a regular file is replaced only with Overwrite
    assert save(d, "plain.jsonl") == []
    first = (tmp_path / "plain.jsonl").read_bytes()
    assert "exists" in save(d, "plain.jsonl")[0]
    assert save(d, "plain.jsonl", overwrite=True) == []
    assert (tmp_path / "plain.jsonl").read_bytes() == first


def test_save_to_path_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(EXPORT_DIR_ENV, "")
    d = open_export(Dashboard())
    assert any(f"Saving to a path is off on this server ({EXPORT_DIR_ENV} is empty)" in i for i in d.infos())
    assert not [b for b in d.at.button if b.key == "ex_save"]
    assert not [t for t in d.at.text_input if (t.key or "").startswith("ex_path")]
    assert d.at.download_button(key="ex_download")  # downloads still work


# -- 1. plain text -----------------------------------------------------------------------------

EVIL_IDS = [
    "[x](http://evil.example/a)",
    "![](http://evil.example/x.png)",
    '<a href="http://evil.example">y</a>',
    "www.evil.example",
    ":red[red]",
]
EVIL_COLUMNS = {"timestamp": "[t](http://evil.example/t)", "input_tokens": "![in](http://evil.example/i.png)", "output_tokens": "<b>out</b>"}
EVIL_CLIENT_COLUMN = "*who*"
EVIL_FILE = "[f](http:evil.example).csv"
PAYLOADS = [*EVIL_IDS, *EVIL_COLUMNS.values(), EVIL_CLIENT_COLUMN, EVIL_FILE]
LINK_OR_IMAGE = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")
HTML_TAG = re.compile(r"(?<!\\)<[A-Za-z/]")


def markdown_bodies(d: Dashboard) -> list[str]:
    """Every Markdown body on the page and in the sidebar, and every Markdown-rendered widget text."""
    at = d.at
    bodies = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader"):
        bodies += [e.value for e in at.get(kind)]
    for kind in ("radio", "selectbox", "multiselect", "select_slider", "text_input", "number_input", "checkbox", "toggle", "button", "file_uploader"):
        for w in at.get(kind):
            bodies.append(getattr(w, "label", "") or "")
            if kind in ("radio", "select_slider"):
                bodies += [str(o) for o in w.options]
    return bodies


def assert_plain(bodies: list[str], where: str) -> None:
    for body in bodies:
        for payload in PAYLOADS:
            assert payload not in body, (where, payload, body)
        assert not LINK_OR_IMAGE.search(body), (where, body)
        assert not HTML_TAG.search(body), (where, body)
        assert not re.search(r"(?<!\\):red(?<!\\)\[", body), (where, body)


def test_client_ids_column_and_file_names_render_as_plain_text():
    rng = np.random.default_rng(1)
    n = 600
    ids = rng.choice(np.array([*EVIL_IDS, "plain"], dtype=object), n)
    frame = pl.DataFrame(
        {
            EVIL_COLUMNS["timestamp"]: np.sort(rng.uniform(0, 7200, n)).round(3),
            EVIL_COLUMNS["input_tokens"]: rng.integers(10, 4000, n),
            EVIL_COLUMNS["output_tokens"]: rng.integers(1, 500, n),
            EVIL_CLIENT_COLUMN: ids,
        }
    )
    d = Dashboard()
    upload(d, EVIL_FILE, frame.write_csv().encode())
    d.at.sidebar.selectbox(key="src_preset").select("generic").run()
    for target, column in EVIL_COLUMNS.items():
        d.at.sidebar.selectbox(key=f"src_map_{target}").select(column).run()
    d.at.sidebar.selectbox(key="src_time_unit").select("s").run()
    d.at.sidebar.selectbox(key="src_client_col").select(EVIL_CLIENT_COLUMN).run()
    d.check()
    assert "**Requests:** 600" in d.sidebar_text()
    seen_text = []
    figures = []
    for page in PAGES:
        d.open(page)
        if page == "clients":
            d.at.button(key="cl_use_filtered").click().run()
            d.check()
        bodies = markdown_bodies(d)
        assert_plain(bodies, page)
        seen_text += [plain(b) for b in bodies]
        figures += [json.dumps(f) for f in d.figures().values()]
    everything = "\n".join(seen_text)
    # every payload is on screen, literally: the file name in the page header, the column names in
    # the loader's note, the client ids in the Clients page's selection and the composer's caption
    for payload in PAYLOADS:
        assert payload in everything, payload
    assert any(md(EVIL_FILE) in c.value for c in d.at.caption)
    # Plotly text: no tag survives, the ids are shown through entities
    charts_json = "\n".join(figures)
    assert charts_json
    for tag in ("<a ", "<b>", "<img"):
        assert tag not in charts_json
    assert json.dumps(svg(EVIL_IDS[2]))[1:-1] in charts_json


def test_plain_text_helpers():
    for payload in [*PAYLOADS, "- list item", "12. item", "a@b.example", "$x$", "# h", "`code`", "a|b", "~~s~~", "&amp;"]:
        out = md(payload)
        assert plain(out) == payload
        assert not LINK_OR_IMAGE.search(out) and not HTML_TAG.search(out)
    assert md("bad.csv line 3, column 'input_tokens'") == r"bad.csv line 3, column 'input\_tokens'"
    assert md("a\nb\tc") == "a b c"
    # bare URLs, www. names and e-mail addresses get a word joiner, so Streamlit's autolinking finds none
    for text in ("http://evil.example", "HTTPS://evil.example", "www.evil.example", "x@evil.example"):
        out = md(text).replace("\\", "").replace("\u2060", "|")
        assert out in ("http:|//evil.example", "HTTPS:|//evil.example", "www|.evil.example", "x@|evil.example"), out
    assert svg('<a href="x">&</a>') == '&lt;a href="x"&gt;&amp;&lt;/a&gt;'


def test_error_messages_are_short_and_carry_no_library_dump():
    from servegen_core.errors import DataFormatError

    row = "secret,values," * 200
    assert core_calls.error_text(RuntimeError(f"could not parse\n{row}")) == "RuntimeError: could not parse"
    assert core_calls.error_text(ValueError(f"\nbad value\n{row}")) == "bad value"
    long = core_calls.error_text(DataFormatError("t.csv", "line 2", "x" * 5000))
    assert long.startswith("t.csv: line 2: xxx") and len(long) == core_calls.MAX_ERROR_CHARS and long.endswith("…")
    assert core_calls.error_text(KeyError()) == "KeyError"


# -- 1. uploads --------------------------------------------------------------------------------


def test_the_upload_limit_is_one_number(monkeypatch):
    config = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == settings.DEFAULT_MAX_UPLOAD_MB
    assert config["server"]["address"] == "127.0.0.1"
    from streamlit import config as st_config

    previous = st_config.get_option("server.maxUploadSize")
    try:
        st_config.set_option("server.maxUploadSize", 3)
        monkeypatch.setenv(settings.MAX_UPLOAD_ENV, "10")
        d = Dashboard()
        d.at.sidebar.radio(key="src_kind").set_value("trace").run()
        d.at.sidebar.radio(key="src_trace_how").set_value("Upload").run()
        # the page never offers more than the server accepts
        assert d.at.sidebar.file_uploader(key="src_upload").label == "Upload a trace (up to 3 MB)"
        monkeypatch.setenv(settings.MAX_UPLOAD_ENV, "2")
        d.run()
        assert d.at.sidebar.file_uploader(key="src_upload").label == "Upload a trace (up to 2 MB)"
    finally:
        st_config.set_option("server.maxUploadSize", previous)


def fake_project(tmp_path: Path) -> Path:
    """A copy of scripts/dashboard.sh in a project whose setup is a no-op and whose streamlit prints its arguments."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "scripts" / "dashboard.sh", root / "scripts" / "dashboard.sh")
    (root / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    fake = root / ".venv" / "bin" / "streamlit"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    return root


def test_dashboard_script_binds_localhost_and_passes_the_upload_limit(tmp_path):
    root = fake_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("SERVEGEN_ADDRESS", settings.MAX_UPLOAD_ENV)}

    def args(*extra: str, **more: str) -> list[str]:
        out = subprocess.run(["bash", str(root / "scripts" / "dashboard.sh"), *extra], env=env | more, capture_output=True, text=True, check=True)
        return out.stdout.split("\n")[:-1]

    def option(argv: list[str], name: str) -> str:
        """The value Streamlit uses: the last occurrence of the flag."""
        return argv[len(argv) - 1 - argv[::-1].index(name) + 1]

    plain_run = args()
    assert plain_run[:2] == ["run", "dashboard/app.py"]
    assert option(plain_run, "--server.address") == "127.0.0.1"
    assert option(plain_run, "--server.maxUploadSize") == str(settings.DEFAULT_MAX_UPLOAD_MB)
    tuned = args(SERVEGEN_ADDRESS="0.0.0.0", SERVEGEN_MAX_UPLOAD_MB="64")
    assert option(tuned, "--server.address") == "0.0.0.0"
    assert option(tuned, "--server.maxUploadSize") == "64"
    # the user's own flags come last, so they win
    assert option(args("--server.address", "10.0.0.5"), "--server.address") == "10.0.0.5"


def session_folder(d: Dashboard) -> Path:
    return d.at.session_state["_upload_dir"].path


def test_uploads_live_in_a_session_folder_replaced_and_removed(tmp_path):
    first = servegen_csv(tmp_path / "first.csv", ["a", "b"], n=100).read_bytes()
    second = servegen_csv(tmp_path / "second.csv", ["a"], n=50, seed=1).read_bytes()
    d = Dashboard()
    upload(d, "../../etc/first trace.csv", first)
    d.check()
    assert "**Requests:** 100" in d.sidebar_text()
    folder = session_folder(d)
    assert folder.parent == uploads.uploads_root() and folder.name.startswith("session-")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["first_trace.csv"]  # a safe name inside the session folder
    assert any("first trace.csv" in c for c in d.captions())  # shown under the name it was uploaded as
    upload(d, "second.csv", second)
    d.check()
    assert "**Requests:** 50" in d.sidebar_text()
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["second.csv"]  # the first upload is gone
    # another session has its own folder
    other = Dashboard()
    upload(other, "first.csv", first)
    assert session_folder(other) != folder and folder.is_dir()
    # the session ends: its state is dropped and the folder with it
    del d
    gc.collect()
    assert not folder.exists()
    assert session_folder(other).is_dir()


def test_stale_upload_folders_are_swept(tmp_path):
    root = tmp_path / "uploads"
    root.mkdir()
    old, new, other = root / "session-old", root / "session-new", root / "not-ours"
    for f in (old, new, other):
        f.mkdir()
        (f / "t.csv").write_text(HEADER)
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    os.utime(other, (day_ago, day_ago))
    assert uploads.sweep_stale_uploads(root) == [old]
    assert not old.exists() and new.is_dir() and other.is_dir()


def test_upload_names_are_checked():
    assert uploads.upload_file_name("trace.CSV.GZ") == "trace.csv.gz"
    assert uploads.upload_file_name("../../x y.jsonl") == "x_y.jsonl"
    assert uploads.upload_file_name(".hidden.parquet") == "hidden.parquet"
    assert uploads.upload_file_name("[f](http:evil.example).csv") == "f_http_evil.example.csv"
    for bad in ("trace.exe", "noext", "x.gz.exe", "...csv"):
        with pytest.raises(ValueError, match="must end in one of"):
            uploads.upload_file_name(bad)


# -- 2. hostile files: a clear error, and the app keeps serving ------------------------------


def test_an_absurd_timestamp_upload_is_refused_and_the_app_still_serves():
    d = Dashboard()
    upload(d, "far.csv", (HEADER + "0,a,10,5\n1e20,a,12,6\n").encode())
    errors = sidebar_errors(d)
    assert len(errors) == 1, errors
    assert "timestamp" in errors[0] and "unit" in errors[0], errors[0]
    assert "1e20" not in errors[0]  # the cell is not quoted
    assert d.at.session_state["view"] is None
    still_serves(d)


def test_a_gzip_bomb_upload_is_refused_and_the_app_still_serves(monkeypatch):
    monkeypatch.setenv("SERVEGEN_MAX_DECOMPRESSED_MB", "8")
    blanks = b" " * (64 * 1024 * 1024)  # 64 MB of blanks, 64 KB compressed
    csv_bomb = gzip.compress(HEADER.encode() + b"0,a,10,5\n" + blanks, compresslevel=9)
    # one endless JSON line: the header reader (the first line's keys) must not inflate it either
    jsonl_bomb = gzip.compress(b'{"timestamp": 0, "input_length": 1, "output_length": 1, "pad": "' + blanks, compresslevel=9)
    assert max(len(csv_bomb), len(jsonl_bomb)) < 128 * 1024
    d = Dashboard()
    for name, bomb in (("bomb.csv.gz", csv_bomb), ("bomb.jsonl.gz", jsonl_bomb)):
        upload(d, name, bomb)
        errors = sidebar_errors(d)
        assert len(errors) == 1, errors
        # refused by the decompressed-size limit, or for JSON Lines by the header reader's line-length cap
        assert "SERVEGEN_MAX_DECOMPRESSED_MB" in errors[0] or "the line is longer than" in errors[0], errors[0]
        assert d.at.session_state["view"] is None
        still_serves(d)


def test_the_span_picker_stays_small_for_a_long_span(tmp_path, monkeypatch):
    # 200 days of timestamps: within the span limit, but 2,880 slider steps at 6 h
    path = tmp_path / "long.csv"
    path.write_text(HEADER + "".join(f"{t},a,10,5\n" for t in np.linspace(0, 200 * 86400, 50)))
    d = Dashboard()
    type_path(d, str(path))
    d.check()
    slider = d.at.sidebar.select_slider[0]
    assert 2 <= len(slider.options) <= sidebar.MAX_SPAN_OPTIONS + 1
    assert slider.value == (0.0, 200 * 86400.0)
    assert slider.options[0] == "day 1 00:00" and slider.options[-1] == "day 201 00:00"
    # no page offers bins that would cut the 200 days into more than MAX_BINS
    d.open("overview")
    bins = next(s for s in d.at.selectbox if s.label == "Bin length")
    values_s = [int(o.split()[0]) * {"s": 1, "min": 60, "h": 3600}[o.split()[1]] for o in bins.options]
    assert min(values_s) == 300 and all(200 * 86400 / v <= MAX_BINS for v in values_s)


def test_span_options_are_bounded_whatever_the_span():
    """The slider's positions never grow with the span, even for a span the loader would refuse."""
    for end in (1.0, 3000.0, 86400.0 * 3, 1e12, 1e20, 1e300):
        trace = pl.DataFrame({"timestamp_s": [0.0, end], "client_id": ["a", "a"], "input_tokens": [1, 1], "output_tokens": [1, 1]})
        loaded = session.Loaded(session.Source("trace", "x.csv"), trace)
        options = sidebar.span_options(loaded)
        assert 2 <= len(options) <= sidebar.MAX_SPAN_OPTIONS + 1, end
        assert options[0] == 0.0 and options[-1] >= end and options == sorted(set(options))
    with pytest.raises(ValueError, match="unit"):
        sidebar.check_span(session.Loaded(session.Source("trace", "x.csv"), pl.DataFrame({"timestamp_s": [0.0, 1e20]})))
    # epoch-second timestamps over a day are a short span, not an absurd one
    sidebar.check_span(session.Loaded(session.Source("trace", "x.csv"), pl.DataFrame({"timestamp_s": [1.7e9, 1.7e9 + 86400]})))
