"""``--hash-block-size``: the tokens per ``hash_ids`` entry of a trace whose block size is not its
layout's documented one (issue 20), on every command that loads a trace (summary, spec-template,
validate, fidelity) and as the spec's ``source.hash_block_size``.

The fixture is a Mooncake-shaped file whose ids are 16-token blocks (as a ``vllm`` export's): every
request starts with the same 320-token system prompt (20 blocks), then 1-399 tokens of its own.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _cli import error_line, run

from servegen_core.cli.parser import build_parser
from servegen_core.errors import DataFormatError, OptionError, SpecError
from servegen_core.sources.traces import load_trace
from servegen_core.spec import Span, TraceSource, WorkloadSpec

PROMPT_BLOCKS = 20
BLOCK = 16


@pytest.fixture
def b16(tmp_path):
    """800 requests in Mooncake's layout (ms timestamps) with 16-token hash ids; the own tokens' median."""
    rng = np.random.default_rng(3)
    t, nid, own_tokens = 0, 1000, []
    path = tmp_path / "b16.jsonl"
    with path.open("w") as f:
        for _ in range(800):
            t += int(rng.exponential(200)) + 1
            own = int(rng.integers(1, 400))
            own_tokens.append(own)
            n = PROMPT_BLOCKS * BLOCK + own
            k = -(-n // BLOCK)
            ids = list(range(PROMPT_BLOCKS)) + list(range(nid, nid + k - PROMPT_BLOCKS))
            nid += k - PROMPT_BLOCKS
            f.write(json.dumps({"timestamp": t, "input_length": n, "output_length": int(rng.integers(1, 300)), "hash_ids": ids}) + "\n")
    return path, float(np.median(own_tokens))


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["summary", "F"], "--hash-block-size"),
        (["spec-template", "--trace", "F", "-o", "-"], "--hash-block-size"),
        (["spec-template", "--trace", "F", "-o", "-"], "--block-size"),  # the older name, kept as an alias
        (["validate", "--spec", "S"], "--hash-block-size"),
        (["fidelity", "--trace", "F"], "--hash-block-size"),
        (["fidelity", "--spec", "S"], "--hash-block-size"),
    ],
)
def test_the_parser_takes_the_option_on_every_command_that_loads_a_trace(argv, flag):
    parser = build_parser()
    assert parser.parse_args([*argv, flag, "16"]).hash_block_size == 16
    assert parser.parse_args(argv).hash_block_size is None
    for bad in ("0", "-3", "1.5", "x", "10000001"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([*argv, flag, bad])
        assert exc.value.code == 2


def test_load_trace_records_the_stated_block_size_and_checks_it_against_the_file(b16):
    path, _ = b16
    assert load_trace(path).hash_block_size == 512  # Mooncake's documented size when none is stated
    assert load_trace(path, hash_block_size=BLOCK).hash_block_size == BLOCK
    with pytest.raises(DataFormatError) as exc:
        load_trace(path, hash_block_size=512)  # 20+ ids for < 720 tokens cannot be 512-token blocks
    assert str(path) in str(exc.value) and "hash_ids" in str(exc.value) and "512-token blocks" in str(exc.value)
    for bad in (0, -1, 1.5, True, "16"):
        with pytest.raises(OptionError):
            load_trace(path, hash_block_size=bad)


def test_the_spec_field_is_strict_and_written_only_when_set(tmp_path):
    src = TraceSource(path="t.jsonl", hash_block_size=16)
    assert src.to_dict()["hash_block_size"] == 16
    assert "hash_block_size" not in TraceSource(path="t.jsonl").to_dict()
    spec = WorkloadSpec.from_json(WorkloadSpec(source=src, span=Span(0)).to_json())
    assert spec.source.hash_block_size == 16
    for bad in (0, 2.5, "16", 10**9):
        with pytest.raises(SpecError, match="source.hash_block_size"):
            TraceSource(path="t.jsonl", hash_block_size=bad)


def test_spec_template_fits_the_prefix_at_the_stated_block_size_and_writes_it(capsys, b16):
    path, own_median = b16
    code, out, err = run(capsys, "spec-template", "--trace", path, "--hash-block-size", BLOCK, "-o", "-")
    assert code == 0, err
    spec = json.loads(out)
    assert spec["source"]["hash_block_size"] == BLOCK
    prompts = spec["prefix"]["default"]["system_prompts"]
    # at 16 tokens per id the shared prompt is the 20 shared ids' 320 tokens (a system prompt: the
    # requests' own tokens, median own_median, are not part of it)
    assert prompts["tokens"] == PROMPT_BLOCKS * BLOCK and prompts["unique_tokens"] < own_median, prompts
    code, out, _ = run(capsys, "spec-template", "--trace", path, "-o", "-")
    wrong = json.loads(out)
    assert "hash_block_size" not in wrong["source"]
    assert wrong["prefix"]["default"]["system_prompts"]["unique_tokens"] == 0  # read as 512-token ids: all shared


def test_summary_reports_the_block_size_and_refuses_a_wrong_one(capsys, b16):
    path, _ = b16
    code, out, err = run(capsys, "summary", path, "--hash-block-size", BLOCK, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"]["hash_block_size"] == BLOCK and data["prefix"]["hash_block_size"] == BLOCK
    assert data["prefix"]["unique_blocks"] == data["prefix"]["blocks"] - PROMPT_BLOCKS * 799
    code, out, err = run(capsys, "summary", path, "--hash-block-size", 512)
    assert code == 2 and "hash_ids do not hold 512-token blocks" in error_line(err)
    code, _, err = run(capsys, "summary", "demo", "--model", "language/demo-chat", "--hash-block-size", BLOCK)
    assert code == 2 and "--hash-block-size applies to a raw trace file" in error_line(err)


def test_validate_and_fidelity_load_the_spec_source_with_the_option(capsys, tmp_path, b16):
    path, _ = b16
    spec = tmp_path / "spec.json"
    spec.write_text(WorkloadSpec(source=TraceSource(path=str(path)), span=Span(0)).to_json())
    for command in ("validate", "fidelity"):
        code, _, err = run(capsys, command, "--spec", spec, "--hash-block-size", 512)
        assert code == 2 and "hash_ids do not hold 512-token blocks" in error_line(err), (command, err)
    code, out, err = run(capsys, "fidelity", "--spec", spec, "--hash-block-size", BLOCK, "--json")
    assert code in (0, 1), err
    targets = [ln["target"] for ln in json.loads(out)["lines"] if ln["name"].startswith("lru_hit")]
    sizes = [re.search(r"at ([\d,]+) blocks \(([\d,]+) tokens\)", t) for t in targets]
    assert targets and all(sizes), targets
    assert all(int(m[2].replace(",", "")) == BLOCK * int(m[1].replace(",", "")) for m in sizes), targets  # 16-token blocks
    pool_spec = tmp_path / "pool.json"
    pool_spec.write_text(json.dumps({"schema_version": 1, "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
                                     "span": {"start_s": 0, "duration_s": 600}}))
    code, _, err = run(capsys, "validate", "--spec", pool_spec, "--hash-block-size", BLOCK)
    assert code == 2 and "--hash-block-size applies to a trace source" in error_line(err)


def test_fidelity_trace_round_trip_takes_the_option(capsys, b16):
    path, _ = b16
    code, _, err = run(capsys, "fidelity", "--trace", path, "--hash-block-size", 512)
    assert code == 2 and "512-token blocks" in error_line(err)


def test_a_conversation_file_keeps_its_hashed_lists_only_with_the_option(capsys, tmp_path):
    turns = [[{"turn": 1, "timestamp": 10.0 * i, "input_token_count": 40, "output_token_count": 3,
               "input_tokens": ["a", "b", f"c{i}"], "output_tokens": [1, 2, 3]}] for i in range(30)]
    path = tmp_path / "conversations_hashed.json"
    path.write_text(json.dumps(turns))
    code, out, err = run(capsys, "summary", path, "--json")
    assert code == 0, err
    assert "prefix" not in json.loads(out)
    code, out, err = run(capsys, "summary", path, "--json", "--hash-block-size", BLOCK)
    assert code == 0, err
    pre = json.loads(out)["prefix"]
    # ids a, b shared by all 30 turns, c_i each its own: 90 ids, 32 distinct
    assert pre == {"hash_block_size": BLOCK, "blocks": 90, "unique_blocks": 32, "reuse_ratio": pytest.approx(58 / 90)}
