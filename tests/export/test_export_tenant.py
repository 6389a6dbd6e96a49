"""The tenant (``client_id``) in every export that has a field for it, row for row; the others say so.

Fields checked in each consumer's own code: AIPerf 0.13.0 ``MooncakeTrace`` (no tenant field; its
models take extra keys, so ``client_id`` rides along unsent), BLIS trace v2 ``traceV2Columns``
(``client_id``, ``tenant_id``), the native RequestTrace (``client_id``). vLLM ``timed_trace``,
GuideLLM trace rows, BurstGPT, AzurePublicDataset, Vidur and splitwise-sim have none: their printed
commands' notes say "no client".
"""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest

from servegen_core.export.formats import FORMATS, replay_commands
from servegen_core.export.writer import ChunkWriter, export_trace, write_chunks
from servegen_core.generate.compose import compose
from servegen_core.sources.load import load_source
from servegen_core.sources.traces import load_trace
from servegen_core.spec import PrefixProfile, PrefixSpec, Sessions, Span, SystemPrompts, TraceSource, WorkloadSpec

#: Formats and the field(s) their rows carry the tenant in.
TENANT_FIELDS = {
    "parquet": ("client_id",),
    "csv": ("client_id",),
    "jsonl": ("client_id",),
    "mooncake": ("client_id",),
    "blis": ("client_id", "tenant_id"),
}
WITHOUT = [f for f in FORMATS if f not in TENANT_FIELDS]


def _exported_column(path, fmt: str, field: str) -> list[str]:
    info = FORMATS[fmt]
    if info.container == "parquet":
        return pl.read_parquet(path)[field].to_list()
    if info.container == "csv":
        with path.open(newline="") as fh:
            return [row[field] for row in csv.DictReader(fh)]
    return [json.loads(line)[field] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fmt", list(TENANT_FIELDS))
def test_the_client_column_is_the_workloads_row_for_row(fmt, workload, tmp_path):
    assert workload["client_id"].n_unique() == 3
    # four chunks: the column follows the rows across chunk boundaries
    writer = ChunkWriter(tmp_path / f"w{FORMATS[fmt].extension}", fmt, note=None)
    res = write_chunks(writer, (workload.slice(i, 100) for i in range(0, workload.height, 100)))
    assert "client_id" not in res.dropped_columns
    paths = sorted(res.path.glob("*.parquet")) if res.path.is_dir() else [res.path]
    for field in TENANT_FIELDS[fmt]:
        got = [v for p in paths for v in _exported_column(p, fmt, field)]
        assert got == workload["client_id"].to_list(), (fmt, field)
    assert set(FORMATS[fmt].fields or FORMATS[fmt].columns) >= {"client_id"}


def test_mooncake_conversations_carry_the_client_and_read_back(traces_dir, tmp_path):
    """A workload with sessions is written as AIPerf conversations; each record keeps its client."""
    spec = WorkloadSpec(
        source=TraceSource(path=str(traces_dir / "mooncake_synthetic_trace.jsonl")), span=Span(start_s=0, duration_s=600),
        seed=5, prefix=PrefixSpec(default=PrefixProfile(system_prompts=SystemPrompts(count=3), sessions=Sessions(turns_mean=3.0))),
    )
    trace = compose(spec, pool=load_source(spec)).trace
    clients = pl.Series([str(i % 4) for i in range(trace.height)])  # several tenants, mixed within the file
    trace = trace.with_columns(client_id=clients)
    res = export_trace(trace, tmp_path / "s.jsonl", "mooncake", note=None)
    rows = [json.loads(x) for x in res.path.read_text().splitlines()]
    assert any("session_id" in r for r in rows) and trace["turn_index"].max() > 0
    assert [r["client_id"] for r in rows] == clients.to_list()
    back = load_trace(res.path)
    assert back.columns["client_id"] == "client_id"
    assert sorted(back.trace["client_id"].to_list()) == sorted(clients.to_list())


def test_aiperf_accepts_the_client_key(workload, tmp_path):
    """AIPerf 0.13.0's model of a mooncake record takes the extra key (checked in its own environment
    by tests/replay; here: the record has only MooncakeTrace's fields plus client_id)."""
    res = export_trace(workload.head(20), tmp_path / "m.jsonl", "mooncake", note=None)
    keys = {k for line in res.path.read_text().splitlines() for k in json.loads(line)}
    assert keys == {"timestamp", "input_length", "output_length", "hash_ids", "client_id"}


@pytest.mark.parametrize("fmt", WITHOUT)
def test_formats_without_a_tenant_field_say_so(fmt, workload, tmp_path):
    res = export_trace(workload, tmp_path / f"w{FORMATS[fmt].extension}", fmt, note=None)
    assert "client_id" in res.dropped_columns
    assert "client_id" not in FORMATS[fmt].fields
    commands = replay_commands(fmt, res.path, res.block_size, rows=res.rows, max_request_tokens=res.max_request_tokens)
    assert commands
    for c in commands:
        assert "no client" in c.note, (fmt, c.consumer, c.note)


def test_formats_with_a_tenant_field_say_where(tmp_path):
    notes = {c.consumer: c.note for c in replay_commands("mooncake", tmp_path / "m.jsonl", rows=3)}
    assert "client_id is in every record" in notes["AIPerf"] and "no client field" in notes["SGLang"]
    (blis,) = replay_commands("blis", tmp_path / "b.csv", rows=3)
    assert "tenant_id = client_id" in blis.note
