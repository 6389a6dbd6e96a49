"""Every printed replay command goes through its consumer's own argument parser, as printed.

For each consumer installable here, an export of a synthetic trace (known timestamps and lengths)
is written, its printed command (:func:`servegen_core.export.formats.replay_commands`) is split as
a shell would, the placeholders are filled (``<MODEL>``, ``<URL>``, ``<TOKENIZER>``) and the words
after the program name go to the tool's parser, in the tool's own virtualenv:

- AIPerf 0.13.0 (``.venv-aiperf``, or ``$SERVEGEN_AIPERF``): ``tests/replay/parse_aiperf_command.py``
  runs cyclopts, ``resolve_config`` and ``build_benchmark_plan`` (what ``aiperf profile`` does before
  sending); the plan must name the model, URL, file, format and block size, run a fixed schedule of
  exactly the file's requests, and AIPerf's loader must read every record with our timestamps
  (ms) and lengths.
- GuideLLM 0.8.1 (``.venv-guidellm``, or ``$SERVEGEN_GUIDELLM_PYTHON``): ``parse_guidellm_command.py``
  runs ``guidellm run``'s click command and pydantic validation; the scenario must name the backend,
  model, tokenizer, ``kind=mooncake`` over a ``json_file`` source at the file's block size and the
  replay profile, with no request limit. Where GuideLLM's data package imports (it needs torch, which
  ``scripts/test.sh`` leaves out: about 6 GB), every row also passes ``MooncakeTraceFormat.validate_row``.

- Vidur 0.0.26 (``.venv-vidur``, or ``$SERVEGEN_VIDUR_PYTHON``): ``parse_vidur_command.py`` runs
  ``SimulationConfig.create_from_cli_args`` (what ``python -m vidur.main`` does) and Vidur's
  ``TraceReplayRequestGenerator`` on the file: every row must become a request at our time (s)
  with our lengths (a 0-token answer becomes 1, as Vidur clips), none cut by ``max_tokens``.

vLLM 0.34, SGLang, inference-perf (Python >= 3.12), splitwise-sim and BLIS are not installable here
(GPU builds, Go binary, or no package); their commands are checked against their published sources only
(tests/export/test_export_consumers.py checks what the commands carry).

With ``SERVEGEN_RECORD_CONSUMERS=1`` the observations are written to ``consumer_results.json`` beside
this file; ``consumer_table.py`` renders the README's consumer table from it.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.export.formats import replay_commands
from servegen_core.export.writer import export_trace
from servegen_core.schema import validate_trace

pytestmark = pytest.mark.replay

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "consumer_results.json"
FILL = {"<MODEL>": "fake-model", "<URL>": "http://127.0.0.1:9", "<TOKENIZER>": "builtin"}
GUIDELLM_FILL = {**FILL, "<TOKENIZER>": "gpt2"}


def _python(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default)
    if not path.is_file():
        pytest.fail(f"{path} not found: scripts/test.sh builds it (or set {env})", pytrace=False)
    return path


def aiperf_python() -> Path:
    exe = os.environ.get("SERVEGEN_AIPERF")
    return Path(exe).parent / "python" if exe else _python("SERVEGEN_AIPERF_PYTHON", ROOT / ".venv-aiperf" / "bin" / "python")


def guidellm_python() -> Path:
    return _python("SERVEGEN_GUIDELLM_PYTHON", ROOT / ".venv-guidellm" / "bin" / "python")


def vidur_python() -> Path:
    return _python("SERVEGEN_VIDUR_PYTHON", ROOT / ".venv-vidur" / "bin" / "python")


@pytest.fixture(scope="module")
def trace() -> pl.DataFrame:
    """300 requests, bursty gaps, prompts of 1 to 6,000 tokens, a few empty answers."""
    rng = np.random.default_rng(42)
    n = 300
    ts = np.cumsum(rng.gamma(0.5, 0.3, n))
    ts -= ts[0]
    return validate_trace(pl.DataFrame({
        "timestamp_s": ts,
        "client_id": rng.choice(["a", "b", "c"], n),
        "input_tokens": rng.integers(1, 6000, n),
        "output_tokens": np.where(np.arange(n) % 50 == 7, 0, rng.integers(1, 900, n)),
    }))


def _filled(text: str, fill: dict[str, str]) -> list[str]:
    for k, v in fill.items():
        text = text.replace(k, v)
    assert "<" not in text, f"a placeholder is left: {text}"
    return shlex.split(text)


def _run(python: Path, script: str, argv: list[str]) -> dict:
    done = subprocess.run([str(python), str(HERE / script), *argv], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"})
    assert done.returncode == 0, f"{script} {shlex.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


_observed: dict[str, dict] = {}


def _record(key: str, **facts) -> None:
    """Keep what a consumer was seen to do; with ``$SERVEGEN_RECORD_CONSUMERS=1`` also in :data:`RESULTS`."""
    _observed[key] = facts
    if os.environ.get("SERVEGEN_RECORD_CONSUMERS") != "1":
        return
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    old[key] = facts
    RESULTS.write_text(json.dumps(dict(sorted(old.items())), indent=1) + "\n")


@pytest.mark.parametrize(("fmt", "block"), [("mooncake", None), ("mooncake", 64), ("burstgpt", None)])
def test_aiperf_parses_the_printed_command_and_reads_every_row(trace, tmp_path, fmt, block):
    ext = ".jsonl" if fmt == "mooncake" else ".csv"
    res = export_trace(trace, tmp_path / f"w {fmt}{ext}", fmt, block_size=block, note=None)
    (cmd,) = [c for c in replay_commands(fmt, res.path, res.block_size, rows=res.rows) if c.consumer == "AIPerf"]
    argv = _filled(cmd.text, FILL)
    assert argv[0] == "aiperf"
    got = _run(aiperf_python(), "parse_aiperf_command.py", argv[1:])
    assert got["models"] == ["fake-model"] and got["urls"] == [FILL["<URL>"]] and got["tokenizer"] == "builtin"
    assert got["path"] == str(res.path) and got["phase"] == "fixed_schedule"
    assert got["requests"] == res.rows == trace.height  # every row, no more
    recs = got["records"]
    assert len(recs) == trace.height and all(r is not None for r in recs)
    inputs = [r[1] for r in recs]
    assert inputs == trace["input_tokens"].to_list()
    assert [r[2] for r in recs] == trace["output_tokens"].to_list()
    t = np.array([r[0] for r in recs], dtype=float)
    if fmt == "mooncake":
        assert got["format"] == "mooncake_trace" and got["block_size"] == res.block_size
        np.testing.assert_array_equal(t, np.round(trace["timestamp_s"].to_numpy() * 1000))
        assert [r[3] for r in recs] == [math.ceil(x / res.block_size) for x in inputs]
    else:
        assert got["format"] == "burst_gpt_trace"
        np.testing.assert_allclose(t, trace["timestamp_s"].to_numpy(), atol=5e-7)
    _record(f"AIPerf/{fmt}" + ("" if block is None else f"/block{block}"), consumer="AIPerf", version="0.13.0",
            format=fmt, parsed=True, rows=f"{got['requests']}/{trace.height}", timing="exact (ms)" if fmt == "mooncake" else "exact (µs)",
            lengths="exact", block_size=got["block_size"])


@pytest.mark.parametrize("block", [None, 16])
def test_guidellm_parses_the_printed_command_at_the_files_block_size(trace, tmp_path, block):
    res = export_trace(trace, tmp_path / "w g.jsonl", "guidellm", block_size=block, note=None)
    (cmd,) = replay_commands("guidellm", res.path, res.block_size, rows=res.rows)
    argv = _filled(cmd.text, GUIDELLM_FILL)
    assert argv[0] == "guidellm"
    got = _run(guidellm_python(), "parse_guidellm_command.py", argv[1:])
    assert (got["backend"], got["target"], got["model"], got["tokenizer"]) == ("openai_http", FILL["<URL>"], "fake-model", "gpt2")
    assert (got["data_kind"], got["source_kind"], got["path"]) == ("mooncake", "json_file", str(res.path))
    assert got["block_size"] == res.block_size
    assert (got["profile"], got["schedule_turn"], got["time_scale"]) == ("replay", "timestamp", 1.0)
    assert got["constraints"] == []  # no request limit: every row is replayed
    rows = got["rows"]
    assert [r[1] for r in rows] == trace["input_tokens"].to_list()
    assert [r[2] for r in rows] == trace["output_tokens"].to_list()
    np.testing.assert_allclose([r[0] for r in rows], trace["timestamp_s"].to_numpy(), atol=5e-7)
    assert got["invalid"] == []
    checked = not got["row_check_missing"]
    _record(f"GuideLLM/guidellm/block{res.block_size}", consumer="GuideLLM", version="0.8.1", format="guidellm",
            parsed=True, rows=f"{len(rows)}/{trace.height}", timing="exact (µs)", lengths="exact",
            block_size=got["block_size"], rows_validated=checked,
            row_check=("validate_row passed on every row" if checked else f"not run here: {got['row_check_missing']}"))


def test_vidur_parses_the_printed_command_and_simulates_every_row_as_written(trace, tmp_path):
    res = export_trace(trace, tmp_path / "w v.csv", "vidur", note=None)
    (cmd,) = replay_commands("vidur", res.path, rows=res.rows, max_request_tokens=res.max_request_tokens)
    argv = _filled(cmd.text, {**FILL, "<MODEL>": "meta-llama/Llama-2-7b-hf"})
    assert argv[:3] == ["python", "-m", "vidur.main"]
    got = _run(vidur_python(), "parse_vidur_command.py", argv[3:])
    assert got["type"] == "TraceRequestGeneratorConfig" and got["path"] == str(res.path)
    assert got["model"] == "meta-llama/Llama-2-7b-hf" and got["scale"] == [1.0, 1.0, 1.0]
    assert got["max_tokens"] == res.max_request_tokens == int((trace["input_tokens"] + trace["output_tokens"]).max())
    rows = got["rows"]
    assert len(rows) == trace.height  # every row (the date filter keeps them all)
    np.testing.assert_allclose([r[0] for r in rows], trace["timestamp_s"].to_numpy(), atol=5e-7)
    assert [r[1] for r in rows] == trace["input_tokens"].to_list()  # no prefill scaling, none cut by max_tokens
    assert [r[2] for r in rows] == trace["output_tokens"].clip(lower_bound=1).to_list()  # Vidur's clip to >= 1
    _record("Vidur/vidur", consumer="Vidur", version="0.0.26", format="vidur", parsed=True,
            rows=f"{len(rows)}/{trace.height}", timing="exact (µs)", lengths="exact (0 -> 1)", block_size=None)
