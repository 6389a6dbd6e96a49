"""Prefix reuse, shared-prefix depth, top prefixes, sessions and the LRU hit-ratio curve.

Hand-built traces have expected values worked out by hand; random streams and the Mooncake
trace are checked against independent brute-force implementations (a prefix trie of Python
dicts, an OrderedDict LRU cache), written here without the module's hashing or wavelet code.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import prefix
from servegen_core.schema import validate_trace
from servegen_core.sources.traces import load_trace


def make_trace(rows: list[tuple], *, session: bool = False) -> pl.DataFrame:
    """rows: (timestamp_s, client_id, input_tokens, hash_ids[, session_id])."""
    data = {
        "timestamp_s": [float(r[0]) for r in rows],
        "client_id": [r[1] for r in rows],
        "input_tokens": [r[2] for r in rows],
        "output_tokens": [1] * len(rows),
        "hash_ids": [r[3] for r in rows],
    }
    if session:
        data["session_id"] = [r[4] for r in rows]
    return validate_trace(pl.DataFrame(data, schema_overrides={"hash_ids": pl.List(pl.Int64)}))


# r2 reuses blocks 2 and 3 but not as a prefix ([5, 2, 3] starts with a new block).
HAND = [
    (0, "a", 1536, [1, 2, 3]),
    (1, "b", 1536, [1, 2, 4]),
    (2, "a", 1536, [5, 2, 3]),
    (3, "a", 2048, [1, 2, 3, 6]),
]


@pytest.fixture(scope="module")
def mooncake(traces_dir) -> pl.DataFrame:
    return load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace


# -- independent reference implementations ----------------------------------------------------


def trie_walk(lists: list[list[int]]) -> tuple[list[int], list[list[int]], dict[int, int]]:
    """Per request: shared-prefix depth and the trie node of each prefix; node -> requests using it."""
    root: dict = {}
    ids = {}
    depths, nodes_per_req, uses = [], [], {}
    for ids_of_req in lists:
        node, depth, shared, nodes = root, 0, True, []
        for b in ids_of_req:
            if b in node:
                node = node[b]
                depth += shared
            else:
                shared = False
                node[b] = {}
                node = node[b]
            key = ids.setdefault(id(node), len(ids))
            nodes.append(key)
            uses[key] = uses.get(key, 0) + 1
        depths.append(depth)
        nodes_per_req.append(nodes)
    return depths, nodes_per_req, uses


def lru_hits(keys: list, capacity: int) -> int:
    cache: OrderedDict = OrderedDict()
    hits = 0
    for k in keys:
        if k in cache:
            hits += 1
            cache.move_to_end(k)
        else:
            cache[k] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def brute_distances(keys: list) -> list[int]:
    stack: list = []
    out = []
    for k in keys:
        if k in stack:
            out.append(len(stack) - 1 - stack.index(k))
            stack.remove(k)
        else:
            out.append(-1)
        stack.append(k)
    return out


# -- block reuse ---------------------------------------------------------------------------------


def test_block_reuse_by_hand():
    r = prefix.block_reuse(make_trace(HAND))
    assert r.ok and r.blocks == 13 and r.unique_blocks == 6 and r.requests == 4
    assert r.reused_blocks == 7 and r.reuse_ratio == pytest.approx(7 / 13)
    per = {row["client_id"]: row for row in r.per_client.iter_rows(named=True)}
    assert per["a"]["blocks"] == 10 and per["a"]["reused_blocks"] == 5 and per["a"]["self_reused_blocks"] == 5
    # b's blocks 1 and 2 were sent earlier, but by a.
    assert per["b"]["reused_blocks"] == 2 and per["b"]["self_reused_blocks"] == 0
    assert per["b"]["reuse_ratio"] == pytest.approx(2 / 3) and per["b"]["self_reuse_ratio"] == 0


def test_time_order_not_row_order():
    rows = [(5, "a", 512, [7]), (1, "a", 512, [7, 8])]
    shuffled = pl.DataFrame(
        {"timestamp_s": [5.0, 1.0], "client_id": ["a", "a"], "input_tokens": [512, 1024], "output_tokens": [1, 1],
         "hash_ids": [r[3] for r in rows]}
    )
    d = prefix.prefix_depth(shuffled)
    assert d.per_request["depth_blocks"].to_list() == [0, 1]  # the 1 s request came first


def test_degenerate_inputs_give_reasons():
    no_ids = make_trace(HAND).drop("hash_ids")
    for func in (prefix.block_reuse, prefix.prefix_depth, prefix.top_prefixes, prefix.lru_hit_ratio):
        res = func(no_ids)
        assert not res.ok and "hash_ids" in res.reason
        assert not func(make_trace(HAND).head(0)).ok
        empty_lists = make_trace([(0, "a", 0, []), (1, "a", 0, [])])
        assert "no request has block ids" in func(empty_lists).reason
    assert prefix.sessions(no_ids).reason and "hash_ids" in prefix.sessions(no_ids).reason
    single = prefix.top_prefixes(make_trace([(0, "a", 512, [1]), (1, "a", 512, [2])]))
    assert single.reason == "no block prefix is shared by two requests"


def test_size_guard_counts_before_flattening():
    with pytest.raises(ValueError, match="13 block accesses"):
        prefix.block_reuse(make_trace(HAND), max_accesses=12)
    assert prefix.lru_hit_ratio(make_trace(HAND), max_accesses=13).ok


# -- prefix depth and top prefixes ---------------------------------------------------------------


def test_prefix_depth_by_hand():
    d = prefix.prefix_depth(make_trace(HAND))
    assert d.per_request["depth_blocks"].to_list() == [0, 2, 0, 3]
    assert dict(d.histogram.select("depth_blocks", "requests").iter_rows()) == {0: 2, 2: 1, 3: 1}
    assert d.share_with_prefix == 0.5 and d.prefix_block_share == pytest.approx(5 / 13)


def test_top_prefixes_are_the_maximal_shared_ones():
    top = prefix.top_prefixes(make_trace(HAND)).frame
    # [1] is always followed by 2, so only [1, 2] (3 requests) and [1, 2, 3] (2 requests) are maximal.
    assert top.select("depth_blocks", "requests", "first_block", "last_block").rows() == [(2, 3, 1, 2), (3, 2, 1, 3)]
    assert top["request_share"].to_list() == [0.75, 0.5]
    assert top["rank"].to_list() == [1, 2]
    with pytest.raises(ValueError, match="k must be"):
        prefix.top_prefixes(make_trace(HAND), k=0)


def test_a_system_prompt_shows_once_with_its_share():
    rng = np.random.default_rng(3)
    system = [900, 901, 902, 903]
    rows = []
    for i in range(200):
        own = [int(x) for x in rng.integers(10_000, 10**9, size=int(rng.integers(1, 5)))]
        rows.append((i, "c", 512 * 8, (system + own) if i % 4 == 0 else own))
    top = prefix.top_prefixes(make_trace(rows), k=3).frame
    assert top.row(0, named=True)["depth_blocks"] == 4 and top.row(0, named=True)["requests"] == 50
    assert top["request_share"][0] == 0.25


def test_depth_and_top_prefixes_match_a_trie_on_mooncake(mooncake):
    lists = mooncake["hash_ids"].to_list()
    depths, _, uses = trie_walk(lists)
    d = prefix.prefix_depth(mooncake)
    assert d.per_request["depth_blocks"].to_list() == depths
    assert d.prefix_block_share == pytest.approx(sum(depths) / sum(map(len, lists)))
    top = prefix.top_prefixes(mooncake, k=5).frame
    assert top["requests"].to_list() == sorted(top["requests"].to_list(), reverse=True)
    # The most used prefix of depth >= 1 that is maximal: its request count is the trie's.
    assert top["requests"][0] <= max(uses.values())
    for row in top.iter_rows(named=True):
        users = [ids for ids in lists if len(ids) >= row["depth_blocks"] and ids[row["depth_blocks"] - 1] == row["last_block"]
                 and ids[0] == row["first_block"]]
        assert len(users) == row["requests"]


def test_reuse_on_mooncake_matches_an_independent_count(mooncake):
    r = prefix.block_reuse(mooncake)
    flat = mooncake["hash_ids"].explode()
    assert r.blocks == flat.len() and r.unique_blocks == flat.n_unique()
    assert r.reuse_ratio == pytest.approx(1 - flat.n_unique() / flat.len())
    assert 0.5 < r.reuse_ratio < 0.8  # the trace reuses heavily


# -- sessions -----------------------------------------------------------------------------------

# block_tokens=4. r0 -> r1 -> r3 is a conversation; r2 (client b) repeats r1's context;
# r4 is shorter than r0 (no new turn); r5 -> r6 is a second conversation.
CHAIN = [
    (0, "a", 10, [1, 2, 3]),
    (5, "a", 14, [1, 2, 4, 5]),
    (6, "b", 13, [1, 2, 4, 6]),
    (9, "a", 22, [1, 2, 4, 5, 7, 8]),
    (10, "a", 8, [1, 2]),
    (12, "a", 4, [9]),
    (20, "a", 9, [9, 10, 11]),
]


def test_sessions_from_blocks_by_hand():
    s = prefix.sessions(make_trace(CHAIN), block_tokens=4)
    assert s.method == "hash_ids" and s.ok
    req = s.requests
    assert req["turn"].to_list() == [1, 2, 1, 3, 1, 1, 2]
    sess = req["session"].to_list()
    assert sess[0] == sess[1] == sess[3] and sess[5] == sess[6] and len(set(sess)) == 4
    assert s.sessions == 4 and s.multi_turn_sessions == 2
    assert s.share_requests_multi_turn == pytest.approx(5 / 7)
    assert s.turns.select("turn", "gap_s", "growth_tokens").rows() == [(2, 5.0, 4), (3, 4.0, 8), (2, 8.0, 5)]
    assert dict(s.turn_counts.select("turns", "sessions").iter_rows()) == {1: 2, 2: 1, 3: 1}
    assert s.median_gap_s == 5.0 and s.median_growth_tokens == 5.0


def test_a_repeated_system_prompt_is_not_a_session():
    rows = [(0, "a", 8, [1, 2]), (1, "a", 12, [1, 2, 3]), (2, "a", 8, [1, 2]), (3, "a", 13, [1, 2, 4, 5])]
    s = prefix.sessions(make_trace(rows), block_tokens=4)
    # r1 and r3 both extend r0 (whose context [1, 2] was new); r2 repeats r0 and is its own request.
    assert s.requests["turn"].to_list() == [1, 2, 1, 2]


def test_sessions_from_session_ids():
    rows = [(0, "a", 10, [1], "x"), (1, "a", 30, [2], "y"), (4, "a", 25, [3], "x"), (6, "a", 20, [4], None),
            (7, "a", 50, [5], "x")]
    s = prefix.sessions(make_trace(rows, session=True))
    assert s.method == "session_id"
    assert s.requests["turn"].to_list() == [1, 1, 2, 1, 3]
    assert s.turns.select("session", "turn", "gap_s", "growth_tokens").rows() == [("x", 2, 4.0, 15), ("x", 3, 3.0, 25)]
    assert s.sessions == 3 and s.multi_turn_sessions == 1
    assert prefix.sessions(make_trace(rows, session=True), method="hash_ids").multi_turn_sessions == 0
    with pytest.raises(ValueError, match="method"):
        prefix.sessions(make_trace(rows, session=True), method="guess")


def brute_sessions(trace: pl.DataFrame, block_tokens: int) -> list[int]:
    """The module's session rule, written per request with dicts of prefix tuples."""
    lists = trace["hash_ids"].to_list()
    inp = trace["input_tokens"].to_list()
    client = trace["client_id"].to_list()
    depths, _, _ = trie_walk(lists)
    owner: dict[tuple, int] = {}
    parent = []
    for r, ids in enumerate(lists):
        found = -1
        for k in range(len(ids), 0, -1):
            q = owner.get(tuple(ids[:k]))
            if q is not None and client[q] == client[r] and inp[r] > inp[q]:
                found = q
                break
        parent.append(found)
        complete = min(len(ids), inp[r] // block_tokens)
        if complete >= 1 and complete > depths[r]:
            owner[tuple(ids[:complete])] = r
    return parent


def test_sessions_on_mooncake_match_the_rule_written_per_request(mooncake):
    parent = brute_sessions(mooncake, 512)
    turn = []
    for p in parent:
        turn.append(1 if p < 0 else turn[p] + 1)
    s = prefix.sessions(mooncake)
    assert s.method == "hash_ids"
    assert s.requests["turn"].to_list() == turn
    follow = [r for r, p in enumerate(parent) if p >= 0]
    ts = mooncake["timestamp_s"].to_list()
    assert s.turns["gap_s"].to_list() == pytest.approx([ts[r] - ts[parent[r]] for r in follow])
    assert s.multi_turn_sessions > 100  # the trace holds many multi-turn conversations
    assert s.turn_counts["sessions"].sum() == s.sessions
    assert (s.turn_counts["turns"] * s.turn_counts["sessions"]).sum() == mooncake.height


# -- LRU stack distances and the hit-ratio curve ------------------------------------------------


def test_stack_distances_match_brute_force_on_random_streams():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(0, 200))
        keys = rng.integers(0, int(rng.integers(1, 50)), size=n)
        assert prefix.stack_distances(keys).tolist() == brute_distances(keys.tolist())


def test_lru_curve_by_hand():
    c = prefix.lru_hit_ratio(make_trace(HAND), capacities=[0, 1, 2, 3, 5, 6, 7, 100])
    # Prefix keys: A1 A12 A123 | A1 A12 B124 | C5 C52 C523 | A1 A12 A123 A1236;
    # distances of the hits: 2, 2 (second request), 5, 5, 6 (fourth).
    assert c.frame["hit_ratio"].to_list() == pytest.approx([0, 0, 0, 2 / 13, 2 / 13, 4 / 13, 5 / 13, 5 / 13])
    assert c.saturation_blocks == 7 and c.unique_keys == 8 and c.accesses == 13
    assert c.frame["capacity_tokens"][3] == 3 * 512


def test_lru_curve_matches_an_lru_cache_on_random_traces():
    rng = np.random.default_rng(11)
    for _ in range(25):
        rows = []
        for i in range(int(rng.integers(5, 60))):
            head = [int(x) for x in rng.integers(0, 3, size=int(rng.integers(0, 3)))]
            tail = [int(x) for x in rng.integers(0, 6, size=int(rng.integers(1, 4)))]
            rows.append((i, "a", 512, head + tail))
        trace = make_trace(rows)
        prefixes = [tuple(ids[: k + 1]) for ids in trace["hash_ids"].to_list() for k in range(len(ids))]
        curve = prefix.lru_hit_ratio(trace)
        for cap in (1, 2, 3, 5, 8, 13, 40):
            assert curve.at(cap) == pytest.approx(lru_hits(prefixes, cap) / len(prefixes))


def test_lru_curve_on_mooncake_matches_an_lru_cache(mooncake):
    lists = mooncake["hash_ids"].to_list()
    _, nodes, _ = trie_walk(lists)
    stream = [k for req in nodes for k in req]
    curve = prefix.lru_hit_ratio(mooncake)
    for cap in (100, 2_000, 20_000):
        assert curve.at(cap) == pytest.approx(lru_hits(stream, cap) / len(stream))
    # Unbounded, the cache hits every block of a shared prefix; Mooncake ids name their prefix.
    assert curve.max_hit_ratio == pytest.approx(prefix.prefix_depth(mooncake).prefix_block_share)
    assert curve.max_hit_ratio == pytest.approx(prefix.block_reuse(mooncake).reuse_ratio)
    hr = curve.frame["hit_ratio"].to_numpy()
    assert (np.diff(hr) >= 0).all() and hr[-1] == pytest.approx(curve.max_hit_ratio)


# -- everything at once ---------------------------------------------------------------------------


def test_prefix_report_equals_the_single_functions(mooncake):
    rep = prefix.prefix_report(mooncake, k=7, block_tokens=256)
    assert rep.ok
    reuse = prefix.block_reuse(mooncake)
    assert (rep.reuse.blocks, rep.reuse.reused_blocks, rep.reuse.unique_blocks) == (reuse.blocks, reuse.reused_blocks, reuse.unique_blocks)
    assert rep.reuse.per_client.equals(reuse.per_client)
    assert rep.depth.histogram.equals(prefix.prefix_depth(mooncake).histogram)
    assert rep.top.frame.equals(prefix.top_prefixes(mooncake, k=7).frame)
    single = prefix.sessions(mooncake, block_tokens=256)
    assert rep.sessions.requests.equals(single.requests) and rep.sessions.turns.equals(single.turns)
    curve = prefix.lru_hit_ratio(mooncake, block_tokens=256)
    assert rep.lru.frame.equals(curve.frame)
    np.testing.assert_array_equal(rep.lru.hit_counts, curve.hit_counts)


def test_prefix_report_without_block_ids_still_finds_session_ids():
    rows = [(0, "a", 10, [1], "x"), (1, "a", 30, [2], "x")]
    rep = prefix.prefix_report(make_trace(rows, session=True).drop("hash_ids"))
    assert not rep.ok and "hash_ids" in rep.reason
    assert not rep.reuse.ok and not rep.lru.ok and not rep.top.ok
    assert rep.sessions.ok and rep.sessions.multi_turn_sessions == 1


# -- block ids from a composed workload's prompt segments -----------------------------------------


def token_depths(segment_ids: list[list[int]], segment_tokens: list[list[int]]) -> list[int]:
    """Per request, the most leading tokens it shares with an earlier request, from its segments:
    two prompts share a segment's tokens up to the shorter length and continue only past a
    segment both hold whole (a trie keyed by (segment, length))."""
    root: dict = {}
    out = []
    for ids, toks in zip(segment_ids, segment_tokens):
        node, shared = root, 0
        for s, n in zip(ids, toks):
            child = node.get(("whole", s, n))
            if child is not None:
                shared, node = shared + n, child
                continue
            shared += min(n, node.get(("longest", s), 0))
            break
        out.append(shared)
        node = root
        for s, n in zip(ids, toks):
            node[("longest", s)] = max(node.get(("longest", s), 0), n)
            node = node.setdefault(("whole", s, n), {})
    return out


def test_prefix_report_derives_block_ids_from_segments(servegen_dir):
    from servegen_core.generate.compose import compose
    from servegen_core.spec import (
        ClientSelection, ConstantRate, PrefixProfile, PrefixSpec, ServeGenSource, Sessions, Span, SystemPrompts,
        WorkloadSpec,
    )

    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"), span=Span(72000, 300),
        rate=ConstantRate(rps=1.0), clients=ClientSelection(mode="top_k", k=5), seed=3,
        prefix=PrefixSpec(default=PrefixProfile(
            system_prompts=SystemPrompts(count=3, request_share=0.6, zipf_s=1.0, tokens=200, unique_tokens=1),
            sessions=Sessions(turns_kind="geometric", turns_mean=3.0, max_turns=10, think_mean_s=20.0, think_cv=1.0),
        )),
    )
    trace = compose(spec).trace
    assert "hash_ids" not in trace.columns
    block = 32
    rep = prefix.prefix_report(trace, block_tokens=block)
    assert rep.ok and rep.reuse.blocks == int(((trace["input_tokens"] + block - 1) // block).sum())
    lcp = token_depths(trace["segment_ids"].to_list(), trace["segment_tokens"].to_list())
    x = trace["input_tokens"].to_list()
    expected = [-(-n // block) if t == n else t // block for t, n in zip(lcp, x)]  # a whole equal prompt shares its last block
    assert rep.depth.per_request["depth_blocks"].to_list() == expected
    assert rep.depth.share_with_prefix > 0.3
    assert rep.sessions.method == "session_id" and rep.sessions.multi_turn_sessions >= 10
    assert prefix.with_block_ids(trace.with_columns(hash_ids=pl.lit([1], pl.List(pl.Int64))))["hash_ids"][0].to_list() == [1]


# -- conversations from blocks alone ---------------------------------------------------------------


def test_conversation_sessions_by_hand():
    """Block size 4, outputs of 2 tokens. r1 extends r0 (11 >= 8 + 2) and r2 extends r1: r1's
    complete blocks [1, 2] were seen before (r0), and r1 is their latest holder before r2.
    r3 starts a session: the latest holder of [1, 2] before it is r1, and r3 (12 tokens) does
    not hold r1's input and output (11 + 2). r4 (8 tokens, no new block) is a first turn and r5
    (30 >= 8 + 2) its next turn."""
    rows = [
        (0, "a", 8, [1, 2]),
        (1, "a", 11, [1, 2, 3]),
        (2, "a", 15, [1, 2, 4, 5]),
        (3, "a", 12, [1, 2, 6]),
        (4, "a", 8, [1, 2]),
        (5, "a", 30, [1, 2, 7, 8, 9, 10, 11, 12]),
    ]
    tr = make_trace(rows).with_columns(pl.Series("output_tokens", [2, 2, 2, 2, 2, 2]))
    conv = prefix.sessions(tr, method="conversation", block_tokens=4)
    assert conv.method == "conversation"
    assert conv.requests["turn"].to_list() == [1, 2, 3, 1, 1, 2]
    assert conv.sessions == 3
    # the plain block rule needs a context that was new at its holder: r1's was not
    assert prefix.sessions(tr, method="hash_ids", block_tokens=4).requests["turn"].to_list() != [1, 2, 3, 1, 1, 2]


# -- reuse at every cache size ----------------------------------------------------------------------


def _segment_trace(seed: int, block: int) -> pl.DataFrame:
    """Requests made of a shared prompt (one of 5) and their own tokens, hash_ids at ``block``."""
    from servegen_core.blocks import hash_ids

    rng = np.random.default_rng(seed)
    n = 400
    prompt = rng.integers(0, 5, n)
    own = rng.integers(1, 3 * block, n)
    plen = np.array([3, 5, 8, 2, 6]) * block
    frame = pl.DataFrame({
        "timestamp_s": np.arange(n, dtype=float),
        "client_id": ["a"] * n,
        "input_tokens": plen[prompt] + own,
        "output_tokens": [1] * n,
        "segment_ids": [[int(p) + 1, 100 + i] for i, p in enumerate(prompt)],
        "segment_tokens": [[int(plen[p]), int(o)] for p, o in zip(prompt, own)],
    })
    return frame.with_columns(hash_ids(frame["segment_ids"], frame["segment_tokens"], block_size=block).alias("hash_ids"))


@pytest.mark.parametrize("block", [16, 512])
def test_block_tokens_of_reads_the_block_size(block):
    tr = _segment_trace(0, block)
    assert prefix.block_tokens_of(tr.drop("segment_ids", "segment_tokens")) == block
    # lists that fit no single block size (one request with 10 ids for 20 tokens) give the default
    bad = tr.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(list(range(10)))).otherwise(pl.col("hash_ids")).alias("hash_ids"))
    bad = bad.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(20).otherwise(pl.col("input_tokens")).alias("input_tokens"))
    assert prefix.block_tokens_of(bad, default=77) == 77
    assert prefix.block_tokens_of(tr.drop("hash_ids")) == prefix.DEFAULT_BLOCK_TOKENS


def test_compare_reuse_of_a_trace_with_itself(mooncake):
    """A trace against itself: every ratio is 1 and it passes; the compared sizes run from the
    first where the hit ratio reaches a tenth of its unbounded value to the first where it reaches
    95 % of it, checked against an OrderedDict LRU at both ends."""
    cmp = prefix.compare_reuse(mooncake, mooncake)
    assert cmp.ok and cmp.passed and cmp.block_tokens == 512
    assert cmp.frame["ratio"].to_list() == [1.0] * cmp.frame.height and cmp.frame.height >= 10
    lists = mooncake["hash_ids"].to_list()
    _, nodes, _ = trie_walk(lists)
    stream = [k for req in nodes for k in req]
    top = prefix.block_reuse(mooncake).reuse_ratio * len(stream)  # unbounded: every reused block
    for cap, share in ((cmp.min_capacity, prefix.MEANINGFUL_SHARE), (cmp.flat_capacity, prefix.FLAT_SHARE)):
        assert lru_hits(stream, cap) >= share * top > lru_hits(stream, cap - 1)
    assert cmp.frame["capacity_blocks"][0] == cmp.min_capacity and cmp.frame["capacity_blocks"][-1] == cmp.flat_capacity


def test_compare_reuse_fails_a_workload_that_shares_less(mooncake):
    """The same requests keeping only their first two block ids share far fewer blocks: both the
    reuse and the curve fail; a workload with no block ids gives an empty comparison naming it."""
    cmp = prefix.compare_reuse(mooncake, mooncake.with_columns(pl.col("hash_ids").list.head(2)))
    assert cmp.ok and not cmp.reuse_passed and not cmp.lru_passed
    # fewer accesses: small caches hit a larger share of them, the unbounded cache a smaller one
    assert abs(cmp.worst_ratio - 1) > 0.15 and not cmp.frame.filter(pl.col("capacity_blocks") == cmp.worst_capacity)["passed"][0]
    empty = prefix.compare_reuse(mooncake, mooncake.drop("hash_ids"))
    assert not empty.ok and "generated workload" in empty.reason and not empty.passed


def test_compare_reuse_cuts_segments_at_the_source_block_size():
    """A generated workload with prompt segments only gets its block ids at the source's block
    size: the same requests as segments compare equal to their hash_ids."""
    tr = _segment_trace(3, 16)
    cmp = prefix.compare_reuse(tr.drop("segment_ids", "segment_tokens"), tr.drop("hash_ids"))
    assert cmp.block_tokens == 16 and cmp.passed
    assert cmp.reuse_ratio == 1.0
