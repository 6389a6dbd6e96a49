"""Prefix reuse and sessions of a RequestTrace with ``hash_ids``: what a KV prefix cache would see.

A request's ``hash_ids`` are the ids of its prompt's token blocks, in prompt order (Mooncake /
AIPerf ``mooncake_trace``: one id per 512-token block; the same id means the same block of
tokens). Every function takes a RequestTrace with a ``hash_ids`` column (``list[int]``) and
returns a frozen :class:`~servegen_core.result.Result`; a trace without block ids, or without
any block, gives an empty result whose ``reason`` says why. Requests are taken in time order
(ties in row order): "earlier" means an earlier row of the time-sorted trace.

Block accesses
    The trace flattened into one stream: request after request, each request's blocks in
    prompt order. ``N`` accesses in all.

Block reuse (:func:`block_reuse`)
    An access is *reused* when its block id occurred at an earlier position of the stream.
    The reuse ratio is reused accesses / all accesses, overall and per client (per client
    also "self reuse": the block occurred earlier in the same client's requests).

Prefixes (:func:`prefix_depth`, :func:`top_prefixes`)
    The *prefix* of request r at depth k is its first k block ids. Every prefix is identified
    by a 64-bit polynomial hash of its id sequence (``h_k = h_{k-1}·P + mix(id_k) mod 2^64``),
    computed for all positions at once from one cumulative sum — equivalent to a prefix trie
    (two prefixes get the same hash only by a collision, probability below ``N²/2^65``).
    A request's *shared-prefix depth* is the longest k whose prefix occurred in an earlier
    request: the blocks an unbounded prefix cache (vLLM automatic prefix caching, SGLang's
    radix cache) would serve. *Top prefixes* are the maximal shared prefixes: a prefix used by
    at least two requests that no longer prefix is used by as many (a system prompt shows as
    one row, not as each of its leading parts).

Sessions (:func:`sessions`)
    From a ``session_id`` column where the trace has one; otherwise from the blocks: request
    r *extends* an earlier request q of the same client when r's prompt starts with all of
    q's complete blocks (q's blocks except a last, partial one: ``input_tokens`` not a multiple
    of ``block_tokens``), that context was new at q (q's complete blocks were not all seen
    before, so a bare system prompt is not a session), and r's input is longer. The deepest
    such q is r's previous turn; chains of previous turns are sessions.

LRU prefix cache (:func:`lru_hit_ratio`, :func:`stack_distances`)
    The stack distance of an access is the number of distinct other keys accessed since the
    previous access of the same key (``-1`` for a first access). An LRU cache of C entries
    holds a key exactly when fewer than C distinct other keys were accessed since its last
    use, so it hits exactly the accesses with ``0 <= distance < C``: one pass gives the hit
    ratio for every C. The keys are the prefixes (a prefix cache stores a block under the
    hash of the prefix that ends with it). A prefix is accessed whenever any extension of it
    is, just before it, so its stack distance never exceeds its extension's: the cache never
    holds an extension without its prefix, every hit lies in the leading run of its request,
    and the hit ratio is the share of blocks a prefix cache would serve. The distances come
    from an offline dominance count,
    ``distance_t = (t - p - 1) - #{s : p < s, next(s) < t}`` with ``p`` the previous access
    of the same key, answered for all t at once with a wavelet matrix over ``next`` built
    level by level in NumPy: O(N log N), no loop per access.

Conversations from blocks (``sessions(method="conversation")``)
    As above, but a turn must also hold the previous turn's output (input at least the
    previous input plus output), the previous turn is the latest earlier request whose
    complete blocks the turn starts with (also when those blocks were seen before: a first
    turn that ends inside a shared document still has its next turn), and a request has at
    most one next turn, the earliest: chains, as conversations are.

Reuse of a workload against its source (:func:`compare_reuse`)
    Block reuse (generated / source, within :data:`REUSE_TOLERANCE`) and the LRU hit ratio at
    :data:`COMPARE_POINTS` cache sizes, geometric from the smallest meaningful one (where the
    source's ratio reaches :data:`MEANINGFUL_SHARE` of its unbounded value) to where the
    source's curve flattens (:func:`flat_capacity`, :data:`FLAT_SHARE` of it), each within
    :data:`LRU_TOLERANCE`; the block size is the source's (:func:`block_tokens_of`).

Everything at once
    :func:`prefix_report` gives every statistic above from one flattening of the trace (what
    the dashboard's "Prefix reuse" page shows). A composed workload carries prompt segments
    instead of ``hash_ids``; :func:`with_block_ids` (and :func:`prefix_report`) derive its
    block ids at a chosen block size from them.

Size guard
    Every function refuses (``ValueError`` naming the numbers) a trace with more than
    ``max_accesses`` block accesses (default :data:`MAX_ACCESSES`), counted from the list
    lengths before anything is flattened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.blocks import hash_ids
from servegen_core.sources.pool import client_sort_key
from servegen_core.sources.view import EMPTY_TRACE
from servegen_core.result import Result, Table

__all__ = [
    "MAX_ACCESSES",
    "BlockReuse",
    "LRUCurve",
    "PrefixDepth",
    "PrefixReport",
    "ReuseComparison",
    "Sessions",
    "block_reuse",
    "block_tokens_of",
    "compare_reuse",
    "flat_capacity",
    "image_reuse",
    "lru_hit_ratio",
    "prefix_depth",
    "prefix_report",
    "sessions",
    "stack_distances",
    "top_prefixes",
    "with_block_ids",
]

#: Most block accesses (sum of the ``hash_ids`` lengths) a function accepts: about 40 bytes
#: each are held at once, so 20 million take under 1 GB.
MAX_ACCESSES = 20_000_000

#: Mooncake's (and AIPerf's ``mooncake_trace``) tokens per block.
DEFAULT_BLOCK_TOKENS = 512

_P = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2^64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockReuse(Result):
    """Share of block accesses whose block id occurred earlier in the trace.

    ``per_client``: ``client_id, requests, blocks, reused_blocks, reuse_ratio,
    self_reused_blocks, self_reuse_ratio`` (``reused`` counts blocks seen earlier from any
    client, ``self_reused`` from the same client), clients in id order.
    """

    requests: int
    blocks: int
    unique_blocks: int
    reused_blocks: int
    reuse_ratio: float
    per_client: pl.DataFrame


@dataclass(frozen=True)
class PrefixDepth(Result):
    """Distribution of the shared-prefix depth (leading blocks shared with an earlier request).

    ``histogram``: ``depth_blocks, requests, share`` for every depth that occurs.
    ``per_request``: ``timestamp_s, client_id, blocks, depth_blocks`` in time order.
    ``share_with_prefix`` is the share of requests with depth >= 1 and ``prefix_block_share``
    the share of all blocks inside a shared prefix (the hit ratio of an unbounded prefix cache).
    """

    histogram: pl.DataFrame
    per_request: pl.DataFrame
    mean_depth: float
    share_with_prefix: float
    prefix_block_share: float


@dataclass(frozen=True)
class Sessions(Result):
    """Multi-turn sessions, found from ``session_id`` or from requests that extend earlier ones.

    ``method`` is ``"session_id"``, ``"hash_ids"`` or ``"conversation"``. ``requests``: ``timestamp_s, client_id,
    session, turn`` per request (time order; a request outside any multi-turn session is a
    session of one turn). ``turns``: one row per follow-up turn (turn >= 2): ``session, turn,
    timestamp_s, gap_s`` (since the previous turn's arrival), ``input_tokens``,
    ``growth_tokens`` (input minus the previous turn's input). ``turn_counts``: ``turns,
    sessions, share`` over every session. The medians are over ``turns`` (None without
    follow-up turns).
    """

    method: str
    requests: pl.DataFrame
    turns: pl.DataFrame
    turn_counts: pl.DataFrame
    sessions: int
    multi_turn_sessions: int
    share_requests_multi_turn: float
    median_gap_s: float | None
    median_growth_tokens: float | None


@dataclass(frozen=True)
class LRUCurve(Result):
    """Hit ratio of an LRU prefix cache as a function of its capacity in blocks.

    ``frame``: ``capacity_blocks, capacity_tokens, hit_ratio`` on a grid of capacities (every
    capacity up to 64, then geometric, ending at ``saturation_blocks``). From
    ``saturation_blocks`` (the largest stack distance + 1) on, the cache never evicts a block
    that is used again and the ratio is ``max_hit_ratio`` (the share of blocks inside a
    shared prefix). ``accesses`` counts block accesses, ``unique_keys`` distinct prefixes.
    :meth:`at` gives the exact ratio at any capacity.
    """

    frame: pl.DataFrame
    accesses: int
    unique_keys: int
    saturation_blocks: int
    max_hit_ratio: float
    block_tokens: int
    hit_counts: np.ndarray | None = None

    def at(self, capacity_blocks: int | np.ndarray) -> np.ndarray:
        """The hit ratio at the given capacities in blocks (exact; any integer >= 0)."""
        c = np.asarray(capacity_blocks, dtype=np.int64)
        if self.hit_counts is None or self.accesses == 0:
            return np.full(c.shape, np.nan)
        return self.hit_counts[np.clip(c, 0, self.hit_counts.size - 1)] / self.accesses


# --------------------------------------------------------------------------------------------
# The flattened access stream
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flat:
    """A trace's block accesses: ``blocks`` (ids), ``req`` (row of the time-sorted trace),
    ``pos`` (0-based position in the request), ``starts``/``lens`` per request, the sorted
    trace itself, and ``key`` (prefix hash) per access."""

    trace: pl.DataFrame
    blocks: np.ndarray
    req: np.ndarray
    pos: np.ndarray
    starts: np.ndarray
    lens: np.ndarray
    key: np.ndarray

    @functools.cached_property
    def nodes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense prefix ids, first access of each, and whether each access's prefix occurred in an earlier request."""
        node, first = _dense(self.key)
        shared = self.req[first][node] < self.req
        return node, first, shared

    @functools.cached_property
    def depth(self) -> np.ndarray:
        """Shared-prefix depth of each request: a prefix seen earlier implies all its leading
        prefixes were too, so the depth is the number of shared positions."""
        return np.bincount(self.req, weights=self.nodes[2], minlength=self.trace.height).astype(np.int64)


def _problem(trace: pl.DataFrame) -> str | None:
    if not isinstance(trace, pl.DataFrame):
        msg = f"expected a RequestTrace (polars DataFrame), got {type(trace).__name__}"
        raise TypeError(msg)
    if "hash_ids" not in trace.columns:
        return "the trace has no 'hash_ids' column (block ids of each prompt, as in Mooncake traces)"
    if trace.height == 0:
        return EMPTY_TRACE
    if not isinstance(trace["hash_ids"].dtype, pl.List) or not trace["hash_ids"].dtype.inner.is_integer():
        return f"the trace's 'hash_ids' column is {trace['hash_ids'].dtype}, not a list of integers"
    return None


def _check_size(total: int, max_accesses: int) -> None:
    if total > max_accesses:
        msg = (
            f"the trace has {total:,} block accesses (sum of its hash_ids lengths), more than the limit of "
            f"{max_accesses:,}; select fewer requests or a shorter span"
        )
        raise ValueError(msg)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads block ids over 64 bits (wrapping uint64 arithmetic)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _prefix_keys(blocks: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Polynomial hash of every prefix: ``key[g] = Σ_{i<=g in its request} mix(id_i)·P^(g-i) mod 2^64``.

    With ``c[g] = Σ_{j<=g} mix(id_j)·P^-j`` (global index j) the hash is ``P^g·(c[g] - c[s-1])``
    for a request starting at ``s``: one cumulative sum and products, all wrapping mod 2^64.
    """
    n = blocks.size
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    pw = np.full(n, _P, dtype=np.uint64)
    pw[0] = 1
    pw = np.multiply.accumulate(pw)  # P^g
    pinv = np.full(n, _P_INV, dtype=np.uint64)
    pinv[0] = 1
    pinv = np.multiply.accumulate(pinv)  # P^-g
    c = np.cumsum(_mix(blocks) * pinv, dtype=np.uint64)
    before = np.zeros(n, dtype=np.uint64)  # c[s-1] of each access's request
    nz = lens > 0
    s = starts[nz]
    base = np.where(s > 0, c[np.maximum(s - 1, 0)], np.uint64(0))
    before[:] = np.repeat(base, lens[nz])
    return pw * (c - before)


def _flatten(trace: pl.DataFrame, max_accesses: int) -> _Flat | str:
    """The access stream of a trace (time-sorted first), or the reason there is none."""
    if reason := _problem(trace):
        return reason
    if trace.height > 1 and not trace["timestamp_s"].is_sorted():
        trace = trace.sort("timestamp_s", maintain_order=True)
    lists = trace["hash_ids"]
    lens = lists.list.len().fill_null(0).cast(pl.Int64).to_numpy()
    total = int(lens.sum())
    _check_size(total, max_accesses)
    if total == 0:
        return "no request has block ids (every hash_ids list is empty)"
    flat = lists.filter(pl.Series(lens > 0)).explode()
    if flat.null_count():
        return f"the trace's 'hash_ids' lists hold {flat.null_count():,} null block id(s)"
    blocks = flat.cast(pl.Int64).to_numpy()
    starts = np.cumsum(lens) - lens
    req = np.repeat(np.arange(trace.height, dtype=np.int64), lens)
    pos = np.arange(total, dtype=np.int64) - starts[req]
    return _Flat(trace, blocks, req, pos, starts, lens, _prefix_keys(blocks, starts, lens))


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids (0..u-1, by value) of ``keys`` and the first index of each id."""
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    del uniq
    return inverse.astype(np.int64), first.astype(np.int64)


def _client_codes(trace: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Client of each row as a code into the id list (ids in numeric order)."""
    ids = sorted(trace["client_id"].cast(pl.String).unique().to_list(), key=client_sort_key)
    lut = pl.DataFrame({"client_id": ids, "code": np.arange(len(ids), dtype=np.int64)})
    codes = trace.select(pl.col("client_id").cast(pl.String)).join(lut, on="client_id", how="left", maintain_order="left")
    return codes["code"].to_numpy(), ids


# --------------------------------------------------------------------------------------------
# Block reuse
# --------------------------------------------------------------------------------------------

REUSE_SCHEMA = {
    "client_id": pl.String(),
    "requests": pl.Int64(),
    "blocks": pl.Int64(),
    "reused_blocks": pl.Int64(),
    "reuse_ratio": pl.Float64(),
    "self_reused_blocks": pl.Int64(),
    "self_reuse_ratio": pl.Float64(),
}


def block_reuse(trace: pl.DataFrame, *, max_accesses: int = MAX_ACCESSES) -> BlockReuse:
    """Block reuse ratio overall and per client: accesses whose block id occurred earlier / all accesses."""
    flat = _flatten(trace, max_accesses)
    return _empty_reuse(flat) if isinstance(flat, str) else _block_reuse(flat)


def image_reuse(trace: pl.DataFrame, *, max_accesses: int = MAX_ACCESSES) -> BlockReuse:
    """Image reuse: :func:`block_reuse` over the ``image_ids`` lists (one id per image, the same
    id for the same image, as ServeGen's offline ``img_ids``) in place of the block ids: the
    share of image uses whose image was sent earlier, overall and per client (``blocks``
    counts image uses). Without an ``image_ids`` column the result is empty with the reason."""
    if not isinstance(trace, pl.DataFrame):
        msg = f"expected a RequestTrace (polars DataFrame), got {type(trace).__name__}"
        raise TypeError(msg)
    if "image_ids" not in trace.columns:
        return _empty_reuse("the trace has no 'image_ids' column (ids of each request's images, as ServeGen's offline img_ids)")
    images = trace.select("timestamp_s", "client_id", pl.col("image_ids").alias("hash_ids"))
    flat = _flatten(images, max_accesses)
    if isinstance(flat, str):
        return _empty_reuse(flat.replace("block ids", "image ids").replace("'hash_ids'", "'image_ids'"))
    return _block_reuse(flat)


def _empty_reuse(reason: str) -> BlockReuse:
    return BlockReuse(0, 0, 0, 0, float("nan"), pl.DataFrame(schema=REUSE_SCHEMA), reason=reason)


def _block_reuse(flat: _Flat) -> BlockReuse:
    ids, first = _dense(flat.blocks)
    reused = np.ones(flat.blocks.size, dtype=bool)
    reused[first] = False
    codes, names = _client_codes(flat.trace)
    acc_client = codes[flat.req]
    # First occurrence of each (client, block) pair.
    pair = acc_client * (int(ids.max()) + 1) + ids
    _, pair_first = _dense(pair)
    self_reused = np.ones(flat.blocks.size, dtype=bool)
    self_reused[pair_first] = False
    k = len(names)
    blocks = np.bincount(acc_client, minlength=k)
    re = np.bincount(acc_client, weights=reused, minlength=k).astype(np.int64)
    self_re = np.bincount(acc_client, weights=self_reused, minlength=k).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = pl.DataFrame(
            {
                "client_id": names,
                "requests": np.bincount(codes, minlength=k),
                "blocks": blocks,
                "reused_blocks": re,
                "reuse_ratio": np.where(blocks > 0, re / np.maximum(blocks, 1), np.nan),
                "self_reused_blocks": self_re,
                "self_reuse_ratio": np.where(blocks > 0, self_re / np.maximum(blocks, 1), np.nan),
            },
            schema=REUSE_SCHEMA,
        ).with_columns(pl.col("reuse_ratio", "self_reuse_ratio").fill_nan(None))
    n_re = int(reused.sum())
    return BlockReuse(
        requests=flat.trace.height,
        blocks=int(flat.blocks.size),
        unique_blocks=int(first.size),
        reused_blocks=n_re,
        reuse_ratio=n_re / flat.blocks.size,
        per_client=per,
    )


# --------------------------------------------------------------------------------------------
# Shared-prefix depth and top prefixes
# --------------------------------------------------------------------------------------------

DEPTH_SCHEMA = {"depth_blocks": pl.Int64(), "requests": pl.Int64(), "share": pl.Float64()}
PER_REQUEST_SCHEMA = {
    "timestamp_s": pl.Float64(),
    "client_id": pl.String(),
    "blocks": pl.Int64(),
    "depth_blocks": pl.Int64(),
}


def prefix_depth(trace: pl.DataFrame, *, max_accesses: int = MAX_ACCESSES) -> PrefixDepth:
    """Distribution of each request's shared-prefix depth: its longest block prefix that an earlier request had."""
    flat = _flatten(trace, max_accesses)
    return _empty_depth(flat) if isinstance(flat, str) else _prefix_depth(flat)


def _empty_depth(reason: str) -> PrefixDepth:
    nan = float("nan")
    return PrefixDepth(pl.DataFrame(schema=DEPTH_SCHEMA), pl.DataFrame(schema=PER_REQUEST_SCHEMA), nan, nan, nan, reason=reason)


def _prefix_depth(flat: _Flat) -> PrefixDepth:
    depth = flat.depth
    n = depth.size
    counts = np.bincount(depth)
    present = np.flatnonzero(counts)
    hist = pl.DataFrame(
        {"depth_blocks": present, "requests": counts[present], "share": counts[present] / n}, schema=DEPTH_SCHEMA
    )
    per = pl.DataFrame(
        {
            "timestamp_s": flat.trace["timestamp_s"].cast(pl.Float64),
            "client_id": flat.trace["client_id"].cast(pl.String),
            "blocks": flat.lens,
            "depth_blocks": depth,
        },
        schema=PER_REQUEST_SCHEMA,
    )
    return PrefixDepth(
        histogram=hist,
        per_request=per,
        mean_depth=float(depth.mean()),
        share_with_prefix=float((depth > 0).mean()),
        prefix_block_share=float(depth.sum() / flat.blocks.size),
    )


TOP_SCHEMA = {
    "rank": pl.Int64(),
    "depth_blocks": pl.Int64(),
    "requests": pl.Int64(),
    "request_share": pl.Float64(),
    "first_s": pl.Float64(),
    "first_block": pl.Int64(),
    "last_block": pl.Int64(),
}


def top_prefixes(trace: pl.DataFrame, *, k: int = 10, max_accesses: int = MAX_ACCESSES) -> Table:
    """The ``k`` maximal shared prefixes used by most requests (see the module docstring).

    Columns ``rank, depth_blocks, requests, request_share, first_s`` (arrival of the first
    request using it), ``first_block, last_block`` (its first and last block ids); ordered by
    requests, then depth (deepest first), then first use.
    """
    _check_k(k)
    flat = _flatten(trace, max_accesses)
    return Table.empty(TOP_SCHEMA, flat) if isinstance(flat, str) else _top_prefixes(flat, k)


def _check_k(k: int) -> None:
    if k < 1:
        msg = f"k must be at least 1, got {k}"
        raise ValueError(msg)


def _top_prefixes(flat: _Flat, k: int) -> Table:
    node, first, _ = flat.nodes
    count = np.bincount(node)  # requests using each prefix (a request holds a prefix once)
    parent = np.full(flat.blocks.size, -1, dtype=np.int64)
    inner = flat.pos > 0
    parent[inner] = node[np.flatnonzero(inner) - 1]
    # Most requests any one-block extension of each prefix has.
    child_max = np.zeros(count.size, dtype=np.int64)
    p_first = parent[first]
    has_parent = p_first >= 0
    np.maximum.at(child_max, p_first[has_parent], count[has_parent])
    keep = np.flatnonzero((count >= 2) & (child_max < count))
    if keep.size == 0:
        return Table.empty(TOP_SCHEMA, "no block prefix is shared by two requests")
    g = first[keep]  # first access holding each kept prefix
    req = flat.req[g]
    out = (
        pl.DataFrame(
            {
                "depth_blocks": flat.pos[g] + 1,
                "requests": count[keep],
                "request_share": count[keep] / flat.trace.height,
                "first_s": flat.trace["timestamp_s"].cast(pl.Float64).to_numpy()[req],
                "first_block": flat.blocks[flat.starts[req]],
                "last_block": flat.blocks[g],
            }
        )
        .sort(["requests", "depth_blocks", "first_s"], descending=[True, True, False], maintain_order=True)
        .head(k)
        .with_row_index("rank", offset=1)
        .select(list(TOP_SCHEMA))
        .cast(TOP_SCHEMA)
    )
    return Table(out)


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------

SESSION_REQ_SCHEMA = {
    "timestamp_s": pl.Float64(),
    "client_id": pl.String(),
    "session": pl.String(),
    "turn": pl.Int64(),
}
TURN_SCHEMA = {
    "session": pl.String(),
    "turn": pl.Int64(),
    "timestamp_s": pl.Float64(),
    "gap_s": pl.Float64(),
    "input_tokens": pl.Int64(),
    "growth_tokens": pl.Int64(),
}
COUNT_SCHEMA = {"turns": pl.Int64(), "sessions": pl.Int64(), "share": pl.Float64()}
SESSION_METHODS = ("auto", "session_id", "hash_ids", "conversation")
#: Session methods that read the block ids.
BLOCK_METHODS = ("hash_ids", "conversation")


def _empty_sessions(method: str, reason: str) -> Sessions:
    return Sessions(
        method,
        pl.DataFrame(schema=SESSION_REQ_SCHEMA),
        pl.DataFrame(schema=TURN_SCHEMA),
        pl.DataFrame(schema=COUNT_SCHEMA),
        0,
        0,
        float("nan"),
        None,
        None,
        reason=reason,
    )


def _roots_and_turns(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root and depth (0 at the root) of every node of a forest given by parents (-1 at roots).

    Pointer doubling: log2(longest chain) vectorized rounds.
    """
    n = parent.size
    up = np.where(parent >= 0, parent, np.arange(n))
    dist = (parent >= 0).astype(np.int64)
    while True:
        nxt = up[up]
        if np.array_equal(nxt, up):
            return up, dist
        dist = dist + dist[up]
        up = nxt


def _previous_turns_from_blocks(flat: _Flat, block_tokens: int, *, conversation: bool = False) -> np.ndarray:
    """Previous turn of each request (row), -1 where it extends no earlier request.

    ``conversation``: a turn must also hold the previous turn's output (input at least the
    previous input plus output), and a request is the previous turn of at most one request
    (the earliest): a conversation is a chain, and later requests that merely share its
    context (a document another session also sent) start sessions of their own."""
    n = flat.trace.height
    node, first, _ = flat.nodes
    depth = flat.depth
    inp = flat.trace["input_tokens"].to_numpy()
    complete = np.minimum(flat.lens, inp // block_tokens)  # blocks holding block_tokens tokens
    r = flat.req
    if conversation:
        cand = _latest_context(flat, complete)
    else:
        # A request's context key: the prefix of its complete blocks, if that prefix was new at it.
        has_key = (complete >= 1) & (complete > depth)
        q = np.flatnonzero(has_key)
        owner = np.full(first.size, -1, dtype=np.int64)
        owner[node[flat.starts[q] + complete[q] - 1]] = q  # new at q: q owns that prefix
        cand = owner[node]
    codes, _ = _client_codes(flat.trace)
    ok = (cand >= 0) & (cand < r)
    idx = np.flatnonzero(ok)
    c, rr = cand[idx], r[idx]
    good = (codes[c] == codes[rr]) & (inp[rr] > inp[c])
    if conversation:
        out = flat.trace["output_tokens"].to_numpy() if "output_tokens" in flat.trace.columns else np.zeros(n, dtype=np.int64)
        good &= inp[rr] >= inp[c] + out[c]
    idx, c, rr = idx[good], c[good], rr[good]
    parent = np.full(n, -1, dtype=np.int64)
    if idx.size:
        last = np.append(rr[1:] != rr[:-1], True)  # deepest match of each request (positions ascend)
        parent[rr[last]] = c[last]
    if conversation:
        child = np.flatnonzero(parent >= 0)  # ascending: the earliest child of each parent first
        _, keep = np.unique(parent[child], return_index=True)
        chained = np.full(n, -1, dtype=np.int64)
        chained[child[keep]] = parent[child[keep]]
        parent = chained
    return parent


def _latest_context(flat: _Flat, complete: np.ndarray) -> np.ndarray:
    """Per access: the latest earlier request whose complete blocks are exactly the prefix
    this access ends (-1 where none): a context seen before (a shared document) still names
    its most recent holder, so a conversation whose first turn ends inside shared blocks
    keeps its next turn."""
    node = flat.nodes[0]
    n = flat.trace.height
    q = np.flatnonzero(complete >= 1)
    ctx = node[flat.starts[q] + complete[q] - 1]  # each request's context prefix
    stride = np.int64(n + 1)
    keys = np.sort(ctx.astype(np.int64) * stride + q)
    probe = node.astype(np.int64) * stride + flat.req
    at = np.searchsorted(keys, probe, side="left") - 1  # the last (node, q) with q < r
    hit = (at >= 0) & (keys[np.maximum(at, 0)] // stride == node)
    return np.where(hit, keys[np.maximum(at, 0)] % stride, -1)


def sessions(
    trace: pl.DataFrame,
    *,
    method: str = "auto",
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    max_accesses: int = MAX_ACCESSES,
) -> Sessions:
    """Sessions, turns per session, inter-turn gaps and context growth per turn.

    ``method``: ``"session_id"`` (the column; rows without an id are sessions of one turn),
    ``"hash_ids"`` (requests extending an earlier request's complete blocks, see the module
    docstring; ``block_tokens`` tokens per block), ``"conversation"`` (as ``"hash_ids"``, but a
    turn also holds the previous turn's output and each request has at most one next turn, the
    earliest: chains of conversation turns) or ``"auto"`` (``session_id`` when the trace has a
    non-empty one, else ``hash_ids``).
    """
    method = _session_method(trace, method, block_tokens)
    if method in BLOCK_METHODS:
        flat = _flatten(trace, max_accesses)
        return _empty_sessions(method, flat) if isinstance(flat, str) else _sessions(flat.trace, method, flat, block_tokens)
    return _sessions(trace, method, None, block_tokens)


def _session_method(trace: pl.DataFrame, method: str, block_tokens: int) -> str:
    """Check the options; ``"auto"`` becomes ``"session_id"`` when the trace has ids, else ``"hash_ids"``."""
    if method not in SESSION_METHODS:
        msg = f"method must be one of {SESSION_METHODS}, got {method!r}"
        raise ValueError(msg)
    if block_tokens < 1:
        msg = f"block_tokens must be at least 1, got {block_tokens}"
        raise ValueError(msg)
    if not isinstance(trace, pl.DataFrame):
        msg = f"expected a RequestTrace (polars DataFrame), got {type(trace).__name__}"
        raise TypeError(msg)
    if method == "auto":
        return "session_id" if _has_session_ids(trace) else "hash_ids"
    return method


def _has_session_ids(trace: pl.DataFrame) -> bool:
    return "session_id" in trace.columns and trace["session_id"].null_count() < trace.height


def _sessions(trace: pl.DataFrame, method: str, flat: _Flat | None, block_tokens: int) -> Sessions:
    """Sessions by ``method``; ``flat`` is the trace's access stream (``"hash_ids"`` only)."""
    if trace.height == 0:
        return _empty_sessions(method, EMPTY_TRACE)
    if trace.height > 1 and not trace["timestamp_s"].is_sorted():
        trace = trace.sort("timestamp_s", maintain_order=True)
    n = trace.height
    if method == "session_id":
        if not _has_session_ids(trace):
            return _empty_sessions(method, "the trace has no 'session_id' values")
        sid = pl.col("session_id").cast(pl.String)
        alone = pl.concat_str(pl.lit("request "), (pl.int_range(pl.len()) + 1).cast(pl.String))
        keys = trace.select(pl.when(sid.is_null()).then(alone).otherwise(sid).alias("s"))["s"]
        code = keys.cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()
        order = np.argsort(code, kind="stable")  # by session, time order inside
        sc = code[order]
        new = np.append(True, sc[1:] != sc[:-1])
        parent = np.full(n, -1, dtype=np.int64)
        parent[order[~new]] = order[np.flatnonzero(~new) - 1]
        session = keys.alias("session")
    else:
        parent = _previous_turns_from_blocks(flat, block_tokens, conversation=method == "conversation")
        session = None
    root, dist = _roots_and_turns(parent)
    turn = dist + 1
    if session is None:  # named after the row (1-based, time order) of its first turn
        session = pl.select(pl.concat_str(pl.lit("request "), pl.Series(root + 1).cast(pl.String)).alias("session"))
        session = session.to_series()
    ts = trace["timestamp_s"].cast(pl.Float64).to_numpy()
    inp = trace["input_tokens"].to_numpy()
    reqs = pl.DataFrame(
        {"timestamp_s": ts, "client_id": trace["client_id"].cast(pl.String), "session": session, "turn": turn},
        schema=SESSION_REQ_SCHEMA,
    )
    f = np.flatnonzero(parent >= 0)
    p = parent[f]
    turns = pl.DataFrame(
        {
            "session": session.gather(f),
            "turn": turn[f],
            "timestamp_s": ts[f],
            "gap_s": ts[f] - ts[p],
            "input_tokens": inp[f],
            "growth_tokens": inp[f] - inp[p],
        },
        schema=TURN_SCHEMA,
    )
    size = np.bincount(root, minlength=n)[np.unique(root)]  # requests per session
    n_sessions = size.size
    tc = np.bincount(size)
    present = np.flatnonzero(tc)
    counts = pl.DataFrame(
        {"turns": present, "sessions": tc[present], "share": tc[present] / n_sessions}, schema=COUNT_SCHEMA
    )
    return Sessions(
        method=method,
        requests=reqs,
        turns=turns,
        turn_counts=counts,
        sessions=int(n_sessions),
        multi_turn_sessions=int((size > 1).sum()),
        share_requests_multi_turn=float(size[size > 1].sum() / n),
        median_gap_s=float(np.median(ts[f] - ts[p])) if f.size else None,
        median_growth_tokens=float(np.median(inp[f] - inp[p])) if f.size else None,
    )


# --------------------------------------------------------------------------------------------
# LRU stack distances and the hit-ratio curve
# --------------------------------------------------------------------------------------------


def _count_nested(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """For each t with ``prev[t] >= 0``: ``#{s in (prev[t], t) : nxt[s] < t}`` (0 elsewhere).

    A wavelet matrix over ``nxt`` (values in ``[0, n]``), built from the top bit down; the
    range-count queries "values < t in positions [l, r)" of every t descend with it, one
    vectorized step per bit.
    """
    n = nxt.size
    q = np.flatnonzero(prev >= 0)
    out = np.zeros(n, dtype=np.int64)
    if q.size == 0:
        return out
    idx = np.int64 if n >= 1 << 31 else np.int32
    vals = nxt.astype(idx)
    lo = (prev[q] + 1).astype(idx)
    hi = q.astype(idx)
    thr = q.astype(idx)  # count values < t
    cnt = np.zeros(q.size, dtype=np.int64)
    zeros = np.empty(n + 1, dtype=idx)
    zeros[0] = 0
    for level in range(int(n).bit_length() - 1, -1, -1):
        bit = (vals >> level) & 1
        np.cumsum(bit == 0, out=zeros[1:])
        nz = zeros[n]
        z_lo, z_hi = zeros[lo], zeros[hi]
        tbit = ((thr >> level) & 1).astype(bool)
        # Where t's bit is 1, every value with a 0 here (and equal higher bits) is smaller.
        cnt += np.where(tbit, z_hi - z_lo, 0)
        lo = np.where(tbit, nz + (lo - z_lo), z_lo).astype(idx)
        hi = np.where(tbit, nz + (hi - z_hi), z_hi).astype(idx)
        ones = bit.astype(bool)
        vals = np.concatenate((vals[~ones], vals[ones]))
    out[q] = cnt
    return out


def stack_distances(keys: np.ndarray) -> np.ndarray:
    """LRU stack distance of every access of a key stream (``-1`` for a key's first access).

    The distance is the number of distinct other keys accessed since the previous access of
    the same key; an LRU cache of C entries hits exactly the accesses with ``0 <= d < C``.
    Computed offline in O(N log N) (see the module docstring).
    """
    keys = np.asarray(keys)
    n = keys.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    same = keys[order[1:]] == keys[order[:-1]]
    prev = np.full(n, -1, dtype=np.int64)
    nxt = np.full(n, n, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    nxt[order[:-1][same]] = order[1:][same]
    t = np.arange(n, dtype=np.int64)
    d = np.where(prev >= 0, t - prev - 1, -1)
    return d - _count_nested(prev, nxt)


def _capacity_grid(saturation: int) -> np.ndarray:
    top = max(saturation, 1)
    grid = np.unique(np.concatenate((np.arange(1, min(top, 64) + 1), np.geomspace(1, top, 200).round())))
    return grid[(grid >= 1) & (grid <= top)].astype(np.int64)


LRU_SCHEMA = {
    "capacity_blocks": pl.Int64(),
    "capacity_tokens": pl.Int64(),
    "hit_ratio": pl.Float64(),
}


def lru_hit_ratio(
    trace: pl.DataFrame,
    *,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    capacities: np.ndarray | list[int] | None = None,
    max_accesses: int = MAX_ACCESSES,
) -> LRUCurve:
    """Hit ratio of an LRU prefix cache of C blocks, for every C at once (see the module docstring).

    ``capacities`` are the grid of the result's frame (default: 1..64 then geometric up to
    saturation); ``block_tokens`` only converts capacities to tokens (``capacity_tokens``).
    """
    _check_lru(block_tokens, capacities)
    flat = _flatten(trace, max_accesses)
    if isinstance(flat, str):
        return _empty_lru(flat, block_tokens)
    return _lru_hit_ratio(flat, block_tokens, capacities)


def _check_lru(block_tokens: int, capacities: np.ndarray | list[int] | None) -> None:
    if block_tokens < 1:
        msg = f"block_tokens must be at least 1, got {block_tokens}"
        raise ValueError(msg)
    if capacities is not None and np.asarray(capacities).size and np.min(capacities) < 0:
        msg = "capacities must be non-negative"
        raise ValueError(msg)


def _empty_lru(reason: str, block_tokens: int) -> LRUCurve:
    return LRUCurve(pl.DataFrame(schema=LRU_SCHEMA), 0, 0, 0, float("nan"), block_tokens, reason=reason)


def _lru_hit_ratio(flat: _Flat, block_tokens: int, capacities: np.ndarray | list[int] | None) -> LRUCurve:
    d = stack_distances(flat.nodes[0])  # dense prefix ids: the keys of a prefix cache
    n = d.size
    again = d[d >= 0]
    sat = int(again.max()) + 1 if again.size else 1
    hits = np.concatenate(([0], np.cumsum(np.bincount(again, minlength=sat))))  # hits[C] = #(0 <= d < C)
    caps = _capacity_grid(sat) if capacities is None else np.asarray(capacities, dtype=np.int64)
    idx = np.minimum(caps, sat)
    frame = pl.DataFrame(
        {
            "capacity_blocks": caps,
            "capacity_tokens": caps * block_tokens,
            "hit_ratio": hits[idx] / n,
        },
        schema=LRU_SCHEMA,
    )
    return LRUCurve(
        frame=frame,
        accesses=n,
        unique_keys=int(np.count_nonzero(d < 0)),
        saturation_blocks=sat,
        max_hit_ratio=float(hits[-1] / n),
        block_tokens=block_tokens,
        hit_counts=hits,
    )


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixReport(Result):
    """Every statistic of this module for one trace, from one pass over its block accesses.

    ``reason`` is set when the trace has no block ids (then each part is empty with the same
    reason); ``sessions`` may still hold sessions found from ``session_id``.
    """

    reuse: BlockReuse
    depth: PrefixDepth
    top: Table
    sessions: Sessions
    lru: LRUCurve


def prefix_report(
    trace: pl.DataFrame,
    *,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    k: int = 10,
    session_method: str = "auto",
    max_accesses: int = MAX_ACCESSES,
) -> PrefixReport:
    """:func:`block_reuse`, :func:`prefix_depth`, :func:`top_prefixes` (``k``), :func:`sessions`
    (``session_method``, ``block_tokens``) and :func:`lru_hit_ratio` (``block_tokens``), with the
    access stream and its prefix ids computed once.

    A trace without ``hash_ids`` but with prompt segments (``segment_ids``/``segment_tokens``:
    a workload composed with a ``prefix`` section, or its native export) gets its block ids
    at ``block_tokens`` tokens per block from them (:func:`with_block_ids`).
    """
    _check_k(k)
    _check_lru(block_tokens, None)
    method = _session_method(trace, session_method, block_tokens)
    trace = with_block_ids(trace, block_tokens=block_tokens)
    flat = _flatten(trace, max_accesses)
    if isinstance(flat, str):
        sess = _sessions(trace, method, None, block_tokens) if method == "session_id" else _empty_sessions(method, flat)
        return PrefixReport(
            _empty_reuse(flat), _empty_depth(flat), Table.empty(TOP_SCHEMA, flat), sess, _empty_lru(flat, block_tokens),
            reason=flat,
        )
    return PrefixReport(
        reuse=_block_reuse(flat),
        depth=_prefix_depth(flat),
        top=_top_prefixes(flat, k),
        sessions=_sessions(flat.trace, method, flat if method in BLOCK_METHODS else None, block_tokens),
        lru=_lru_hit_ratio(flat, block_tokens, None),
    )


#: Columns of a composed workload's prompt segments (:mod:`servegen_core.generate.sessions`).
SEGMENT_COLUMNS = ("segment_ids", "segment_tokens")


def with_block_ids(trace: pl.DataFrame, *, block_tokens: int = DEFAULT_BLOCK_TOKENS) -> pl.DataFrame:
    """The trace with ``hash_ids`` derived from its prompt segments when it has segments and no
    ``hash_ids`` (:func:`servegen_core.blocks.hash_ids` at ``block_tokens``); otherwise unchanged."""
    if not isinstance(trace, pl.DataFrame) or "hash_ids" in trace.columns or not set(SEGMENT_COLUMNS) <= set(trace.columns):
        return trace
    if trace["segment_ids"].null_count() or trace["segment_tokens"].null_count():
        return trace
    ids = hash_ids(trace["segment_ids"], trace["segment_tokens"], block_size=block_tokens)
    return trace.with_columns(ids.alias("hash_ids"))


# --------------------------------------------------------------------------------------------
# Reuse of a generated workload against its source, at every cache size
# --------------------------------------------------------------------------------------------

#: Relative tolerance of the block reuse ratio (generated / source) of :func:`compare_reuse`.
REUSE_TOLERANCE = 0.10
#: Relative tolerance of the LRU hit ratio at every compared cache size.
LRU_TOLERANCE = 0.15
#: The smallest meaningful cache size: where the source's hit ratio first reaches this share of
#: its unbounded-cache value (below it the ratio is a few hits, and its relative error noise).
MEANINGFUL_SHARE = 0.10
#: The source's curve has flattened where its hit ratio first reaches this share of its
#: unbounded-cache value (:func:`flat_capacity`).
FLAT_SHARE = 0.95
#: Cache sizes compared, geometrically spaced from the smallest meaningful size to the flat one.
COMPARE_POINTS = 24

COMPARE_SCHEMA = {
    "capacity_blocks": pl.Int64(),
    "source": pl.Float64(),
    "generated": pl.Float64(),
    "ratio": pl.Float64(),
    "passed": pl.Boolean(),
}


@dataclass(frozen=True)
class ReuseComparison(Result):
    """Block reuse and the LRU hit-ratio curve of a generated workload against its source.

    ``frame``: ``capacity_blocks, source, generated, ratio, passed`` per compared cache size
    (geometric from ``min_capacity``, the smallest meaningful size, to ``flat_capacity``, where
    the source's curve flattens). ``reuse_ratio`` is generated / source block reuse; it passes
    within ``reuse_tolerance``, and each cache size within ``lru_tolerance``. ``worst_capacity``
    and ``worst_ratio`` name the size whose ratio is farthest from 1. ``source_curve`` and
    ``generated_curve`` are the two :class:`LRUCurve` (the Preview chart draws them).
    """

    frame: pl.DataFrame
    block_tokens: int
    source_reuse: float
    generated_reuse: float
    reuse_ratio: float
    min_capacity: int
    flat_capacity: int
    worst_capacity: int
    worst_ratio: float
    reuse_tolerance: float
    lru_tolerance: float
    source_curve: LRUCurve | None = None
    generated_curve: LRUCurve | None = None

    @property
    def reuse_passed(self) -> bool:
        return bool(self.ok and abs(self.reuse_ratio - 1.0) <= self.reuse_tolerance)

    @property
    def lru_passed(self) -> bool:
        return bool(self.ok and self.frame.height > 0 and self.frame["passed"].all())

    @property
    def passed(self) -> bool:
        return self.reuse_passed and self.lru_passed


def block_tokens_of(trace: pl.DataFrame, *, default: int = DEFAULT_BLOCK_TOKENS) -> int:
    """Tokens per block of a trace's ``hash_ids``: the block size ``B`` with
    ``len(hash_ids) == ceil(input_tokens / B)`` on every request with block ids (a request
    of ``n >= 2`` blocks bounds ``B`` to ``[ceil(x / n), floor((x - 1) / (n - 1))]``). Of the
    sizes every request allows, ``default`` when it is one of them, else the largest power
    of two, else the smallest; ``default`` without ``hash_ids`` or when no size fits all."""
    if not isinstance(trace, pl.DataFrame) or "hash_ids" not in trace.columns or "input_tokens" not in trace.columns:
        return default
    n = trace["hash_ids"].list.len().fill_null(0).cast(pl.Int64).to_numpy()
    x = trace["input_tokens"].fill_null(0).cast(pl.Int64).to_numpy()
    has = (n >= 1) & (x >= 1)
    if not has.any():
        return default
    n, x = n[has], x[has]
    lo = int(np.max(-(-x // n)))
    multi = n >= 2
    hi = int(np.min((x[multi] - 1) // (n[multi] - 1))) if multi.any() else max(int(x.max()), lo)
    if lo > hi:
        return default
    if lo <= default <= hi:
        return default
    twos = 1 << np.arange(0, 40)
    fit = twos[(twos >= lo) & (twos <= hi)]
    return int(fit.max()) if fit.size else lo


def flat_capacity(curve: LRUCurve, *, share: float = FLAT_SHARE) -> int:
    """The smallest cache (blocks) whose hit ratio reaches ``share`` of the unbounded cache's:
    where the curve has flattened (1 for a curve without hits)."""
    if curve.hit_counts is None or curve.hit_counts[-1] <= 0:
        return 1
    hits = curve.hit_counts
    return max(1, int(np.searchsorted(hits, share * hits[-1], side="left")))


def _compare_grid(curve: LRUCurve, min_capacity: int | None, points: int) -> tuple[int, int, np.ndarray]:
    flat = flat_capacity(curve)
    if min_capacity is None:
        min_capacity = flat_capacity(curve, share=MEANINGFUL_SHARE)
    lo = int(min(max(1, min_capacity), flat))
    grid = np.unique(np.rint(np.geomspace(lo, flat, max(points, 2))).astype(np.int64))
    return lo, flat, grid


def compare_reuse(
    source: pl.DataFrame,
    generated: pl.DataFrame,
    *,
    block_tokens: int | None = None,
    min_capacity: int | None = None,
    points: int = COMPARE_POINTS,
    reuse_tolerance: float = REUSE_TOLERANCE,
    lru_tolerance: float = LRU_TOLERANCE,
    max_accesses: int = MAX_ACCESSES,
) -> ReuseComparison:
    """Block reuse and the LRU hit ratio of ``generated`` against ``source`` at every cache size
    from the smallest meaningful one to where the source's curve flattens (see
    :class:`ReuseComparison`; :data:`MEANINGFUL_SHARE`, :data:`FLAT_SHARE`).

    ``source`` has ``hash_ids``; ``generated`` has them or prompt segments (block ids are then
    cut at the source's block size, :func:`with_block_ids`). ``block_tokens`` defaults to
    :func:`block_tokens_of` the source; ``min_capacity`` overrides the smallest size. A side
    without block ids gives an empty comparison whose reason names it.
    """
    bt = block_tokens_of(source) if block_tokens is None else int(block_tokens)
    _check_lru(bt, None)
    src = _flatten(source, max_accesses)
    gen = _flatten(with_block_ids(generated, block_tokens=bt), max_accesses)
    for side, flat in (("source", src), ("generated workload", gen)):
        if isinstance(flat, str):
            return _empty_comparison(bt, f"the {side} has no block reuse to compare: {flat}", reuse_tolerance, lru_tolerance)
    s_curve, g_curve = _lru_hit_ratio(src, bt, None), _lru_hit_ratio(gen, bt, None)
    s_reuse, g_reuse = _block_reuse(src).reuse_ratio, _block_reuse(gen).reuse_ratio
    lo, flat, grid = _compare_grid(s_curve, min_capacity, points)
    s_hit, g_hit = s_curve.at(grid), g_curve.at(grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(s_hit > 0, g_hit / s_hit, np.where(g_hit > 0, np.inf, 1.0))
    passed = np.abs(ratio - 1.0) <= lru_tolerance
    frame = pl.DataFrame(
        {"capacity_blocks": grid, "source": s_hit, "generated": g_hit, "ratio": ratio, "passed": passed}, schema=COMPARE_SCHEMA
    )
    w = int(np.argmax(np.abs(ratio - 1.0)))
    return ReuseComparison(
        frame=frame,
        block_tokens=bt,
        source_reuse=s_reuse,
        generated_reuse=g_reuse,
        reuse_ratio=g_reuse / s_reuse if s_reuse > 0 else (1.0 if g_reuse == 0 else float("inf")),
        min_capacity=lo,
        flat_capacity=flat,
        worst_capacity=int(grid[w]),
        worst_ratio=float(ratio[w]),
        reuse_tolerance=reuse_tolerance,
        lru_tolerance=lru_tolerance,
        source_curve=s_curve,
        generated_curve=g_curve,
    )


def _empty_comparison(bt: int, reason: str, reuse_tol: float, lru_tol: float) -> ReuseComparison:
    nan = float("nan")
    return ReuseComparison(pl.DataFrame(schema=COMPARE_SCHEMA), bt, nan, nan, nan, 0, 0, 0, nan, reuse_tol, lru_tol, reason=reason)
