"""A trace is parsed once: the composer fits the sidebar's parsed trace, and gets the pool the spec's own loader makes."""

from __future__ import annotations

import dataclasses
import shutil

import core_calls
import polars as pl
import pytest
import session
import sidebar
from _dash import Dashboard

import servegen_core.sources.traces as traces_module
from servegen_core.sources.load import load_source as load_spec_source
from servegen_core.paths import demo_data_dir
from servegen_core.spec import Span, WorkloadSpec


def assert_same_pool(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, pl.DataFrame):
            assert isinstance(y, pl.DataFrame) and x.equals(y), field.name
        else:
            assert x == y, field.name


@pytest.mark.parametrize(
    ("name", "preset"),
    [("mooncake_synthetic_trace.jsonl", None), ("AzureLLMInferenceTrace_conv.csv", None), ("demo", "servegen")],
)
def test_the_composer_pool_from_the_sidebar_trace_is_the_spec_loader_pool(name, preset, traces_dir):
    path = demo_data_dir() / sidebar.DEMO_TRACE if name == "demo" else traces_dir / name
    loaded = core_calls.load_source(session.Source("trace", str(path), preset=preset))
    view = core_calls.make_view(loaded)
    source, why = session.spec_source(view)
    assert source is not None, why
    fitted = core_calls.trace_pool(loaded.data, source)
    from_spec = load_spec_source(WorkloadSpec(source=source, span=Span()))
    # The spec loader adds one spec-level note (a trace with hash_ids, a spec without a prefix
    # section); the dashboard's pool is the source's alone and its Compose page decides on prefix.
    spec_notes = tuple(w for w in from_spec.warnings if "but the spec has no prefix section" in w)
    assert bool(spec_notes) == ("hash_ids" in loaded.data.columns)
    assert_same_pool(fitted, dataclasses.replace(from_spec, warnings=tuple(w for w in from_spec.warnings if w not in spec_notes)))
    assert fitted.windows.height > 0


def test_opening_compose_on_a_trace_parses_it_once(tmp_path, traces_dir, monkeypatch):
    """The sidebar parses the file; Compose and Export fit and compose from that parse (a new file: no earlier cache).

    (Preview's validation reads the source trace again inside the core, ``validate``'s dispersion check.)"""
    path = shutil.copy(traces_dir / "mooncake_synthetic_trace.jsonl", tmp_path / "fresh.jsonl")
    parsed = []
    real = traces_module.load_trace

    def counted(*args, **kwargs):
        parsed.append(args[0] if args else kwargs.get("path"))
        return real(*args, **kwargs)

    monkeypatch.setattr(traces_module, "load_trace", counted)  # what the core's spec loader calls
    monkeypatch.setattr(core_calls, "load_trace", counted)  # what the sidebar calls
    d = Dashboard().trace(path)
    assert len(parsed) == 1
    d.open("compose")
    assert d.at.session_state["spec"] is not None
    d.open("export")
    assert d.at.download_button(key="ex_download").label.startswith("Download")
    assert [str(p) for p in parsed] == [str(path)]
