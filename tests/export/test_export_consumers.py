"""The azure and BLIS trace v2 exports, Vidur's max_tokens warning, and the printed replay commands.

Expected values are built from the synthetic ``workload`` fixture (tests/export/conftest.py): the
AzurePublicDataset file reloads through the ``azure`` preset with its timestamps (to the
microsecond) and lengths; the BLIS file has trace v2's 27 columns in order, the client as tenant,
integer microsecond arrivals; every benchmark format prints commands that name the file, its row
count and block size, and leave only the documented placeholders.
"""

from __future__ import annotations

import csv
import shlex

import numpy as np
import polars as pl
import pytest

from servegen_core.export.formats import (
    AZURE_EPOCH,
    BLIS_COLUMNS,
    FORMATS,
    MAX_TOKENS_PLACEHOLDER,
    PLACEHOLDERS,
    ROWS_PLACEHOLDER,
    VIDUR_MAX_TOKENS,
    blis_header_path,
    replay_commands,
    usage_hint,
)
from servegen_core.export.writer import export_trace
from servegen_core.errors import ExportError
from servegen_core.sources.traces import load_trace


def test_azure_export_reloads_with_exact_lengths_and_microsecond_times(workload, tmp_path):
    res = export_trace(workload, tmp_path / "a.csv", "azure", note=None)
    lines = res.path.read_text().splitlines()
    assert lines[0] == "TIMESTAMP,ContextTokens,GeneratedTokens"
    first = lines[1].split(",")[0]
    assert first.startswith(AZURE_EPOCH.strftime("%Y-%m-%d")) and len(first.split(".")[1]) == 6
    back = load_trace(res.path)
    assert back.preset == "azure"
    got = back.trace
    assert got["input_tokens"].to_list() == workload["input_tokens"].to_list()
    assert got["output_tokens"].to_list() == workload["output_tokens"].to_list()
    want = workload["timestamp_s"].to_numpy() - workload["timestamp_s"][0]
    np.testing.assert_allclose(got["timestamp_s"].to_numpy(), want, atol=1e-6)


def test_azure_timestamps_are_wall_clock_from_the_epoch(tmp_path):
    tr = pl.DataFrame({"timestamp_s": [72000.0, 72000.1234567], "client_id": ["a", "b"],
                       "input_tokens": [10, 20], "output_tokens": [1, 2]})
    res = export_trace(tr, tmp_path / "a.csv", "azure", note=None)
    rows = res.path.read_text().splitlines()[1:]
    assert rows == ["2024-01-01 20:00:00.000000,10,1", "2024-01-01 20:00:00.123457,20,2"]


def test_blis_export_is_trace_v2(workload, tmp_path):
    res = export_trace(workload, tmp_path / "b.csv", "blis", note=None)
    header = blis_header_path(res.path)
    assert header == tmp_path / "b.yaml"
    assert header.read_text().splitlines() == ["trace_version: 2", "time_unit: us", "mode: generated", "warm_up_requests: 0"]
    with res.path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == BLIS_COLUMNS and len(BLIS_COLUMNS) == 27
    body = pl.DataFrame(rows[1:], schema=list(BLIS_COLUMNS), orient="row")
    assert body.height == workload.height
    assert body["request_id"].to_list() == [str(i) for i in range(workload.height)]
    assert body["tenant_id"].to_list() == workload["client_id"].to_list() == body["client_id"].to_list()
    want_us = np.round(workload["timestamp_s"].to_numpy() * 1e6).astype(np.int64)
    assert body["arrival_time_us"].cast(pl.Int64).to_list() == want_us.tolist()
    assert body["send_time_us"].to_list() == body["arrival_time_us"].to_list()
    assert body["input_tokens"].cast(pl.Int64).to_list() == workload["input_tokens"].to_list()
    assert body["image_tokens"].cast(pl.Int64).to_list() == workload["image_tokens"].to_list()
    assert body["session_id"].to_list() == workload["session_id"].fill_null("").to_list()
    ratio = body["reason_ratio"].cast(pl.Float64).to_numpy()
    assert ((ratio >= 0) & (ratio <= 1)).all()
    np.testing.assert_array_equal(ratio, workload["reason_ratio"].to_numpy())
    assert set(body["streaming"]) == {"true"} and set(body["prefix_length"]) == {"0"}


def test_blis_header_is_not_overwritten_unasked(workload, tmp_path):
    (tmp_path / "b.yaml").write_text("mine")
    with pytest.raises(ExportError, match="b.yaml exists"):
        export_trace(workload, tmp_path / "b.csv", "blis", note=None)
    assert (tmp_path / "b.yaml").read_text() == "mine"
    export_trace(workload, tmp_path / "b.csv", "blis", note=None, overwrite=True)
    assert (tmp_path / "b.yaml").read_text().startswith("trace_version: 2")


def test_vidur_warns_about_decode_at_its_default_max_tokens(tmp_path):
    tr = pl.DataFrame({"timestamp_s": [0.0, 1.0, 2.0], "client_id": "c",
                       "input_tokens": [100, 50, 10], "output_tokens": [VIDUR_MAX_TOKENS, 10, VIDUR_MAX_TOKENS + 5]})
    notes: list[str] = []
    res = export_trace(tr, tmp_path / "v.csv", "vidur", note=notes.append)
    assert res.max_request_tokens == 100 + VIDUR_MAX_TOKENS  # the largest prompt + output
    assert any("2 request(s) with decode tokens >= Vidur's default max_tokens 4096" in n and "prefill of <= 0" in n for n in notes)
    (cmd,) = replay_commands("vidur", res.path, rows=res.rows, max_request_tokens=res.max_request_tokens)
    argv = shlex.split(cmd.text)
    assert argv[argv.index("--trace_request_generator_config_max_tokens") + 1] == str(res.max_request_tokens)
    assert argv[argv.index("--trace_request_generator_config_trace_file") + 1] == str(res.path)


BENCHMARK_FORMATS = [f for f, info in FORMATS.items() if not info.carries_extra]


@pytest.mark.parametrize("fmt", BENCHMARK_FORMATS)
def test_every_benchmark_format_prints_commands_that_name_file_rows_and_blocks(fmt, tmp_path):
    path = tmp_path / f"my file{FORMATS[fmt].extension}"
    commands = replay_commands(fmt, path, 64, rows=1234, max_request_tokens=999)
    assert commands, f"{fmt} prints no replay command"
    for c in commands:
        argv = shlex.split(c.text.split("  # ")[0])
        assert shlex.quote(str(path)) in c.text, c.text  # quoted for the shell (the name has a space)
        left = {tok for tok in ("<MODEL>", "<URL>", "<TOKENIZER>", "<CONFIG>", "<SPLITWISE_SIM>") if tok in c.text}
        assert left <= set(PLACEHOLDERS) | {"<CONFIG>", "<SPLITWISE_SIM>"}
        assert ROWS_PLACEHOLDER not in c.text and MAX_TOKENS_PLACEHOLDER not in c.text
        if "--num-prompts" in argv:
            assert argv[argv.index("--num-prompts") + 1] == "1234"
    if fmt in ("mooncake", "vllm", "guidellm"):
        first = commands[0].text
        assert "64" in first.replace(",", " ").replace("=", " ").split()
    # before the file exists, the count is a placeholder
    assert all(ROWS_PLACEHOLDER in c.text for c in replay_commands(fmt, path) if "ROWS" not in c.text and "--num-prompts" in c.text)


def test_usage_hint_is_the_commands_as_shell_text():
    text = usage_hint("mooncake", "f.jsonl", 64, rows=5)
    lines = text.splitlines()
    assert lines[0].startswith("# AIPerf 0.13.0: ") and lines[1].startswith("aiperf profile --model <MODEL> --url <URL>")
    assert "--prompt-input-tokens-block-size 64" in lines[1]
    assert lines[2].startswith("# SGLang") and "ignores input_length" in lines[2]
    assert "--num-prompts 5" in lines[3]
    assert usage_hint("csv", "f.csv") == ""
    g = usage_hint("guidellm", "f.jsonl", 16)
    assert "--data kind=mooncake,source.kind=json_file,source.path=f.jsonl,hash_id_block_size=16" in g
    assert "target=<URL>,model=<MODEL>" in g
