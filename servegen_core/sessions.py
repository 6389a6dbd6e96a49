"""Shared prompt prefixes and multi-turn sessions: the prefix stage of compose, hash ids, and fits.

A spec with a ``prefix`` section (:class:`servegen_core.spec.PrefixSpec`) gives its composed
workload four more columns (:data:`servegen_core.schema.PREFIX_COLUMNS`): ``session_id``,
``turn_index`` and the prompt of every request as content segments, ``segment_ids`` and
``segment_tokens``. Without the section nothing here runs and the workload is unchanged.

How the prefix stage works (per arrival window, from the window's own generator
``np.random.default_rng([seed, w, 2])``, so chunks do not change the result)
----------------------------------------------------------------------------------
1. Session starts. Compose generates the arrivals of every client-window as usual, with the
   client's fitted arrival pattern, at the target rate divided by the expected number of
   turns a session started then places inside the span (:func:`prepare`; with
   Gamma think times the expectation is exact: ``sum_k P(T > k) P(S_k <= D - t)``, ``S_k``
   the sum of ``k`` think times, averaged over the window). So session starts keep the
   client's arrival process, and starts plus later turns meet the rate function in
   expectation. The first turns of the span have no sessions begun before it (a ramp-up
   of about one think time); turns that would arrive after the span end are dropped.
2. System prompts. A session uses one of its client's ``count`` prompts with probability
   ``request_share``, prompt ``i`` with probability proportional to ``i ** -zipf_s``.
   Requests that use the same prompt get input lengths close to each other: inside a
   (client, window), the drawn length rows are handed out in the order of a key that is the
   prompt's own uniform number (derived from seed, client and prompt) for prompted
   sessions and a fresh one otherwise. This only permutes the window's draws, so every
   length marginal (and the input/output copula) is exactly the one compose drew.
3. Sessions. A session has ``T`` turns (the client's turn distribution); turn ``j >= 1``
   arrives a Gamma think time after turn ``j - 1``'s arrival (the think time includes the
   previous turn's response time: no server is modeled). The ``T - 1`` further turns draw
   their lengths from the start's client-window tables (each field by inverse CDF from
   its own uniforms); the session's ``T`` input lengths are then sorted, smallest first,
   so the input marginal is still the client's PDF. Turn ``j``'s prompt is the previous
   turn's prompt, then the previous turn's output, then its own new tokens: it shares
   ``h_j = min(x_{j-1} + o_{j-1}, x_j - 1)`` tokens with that context (at least one new
   token). Where the drawn ``x_j`` is shorter than the previous context plus output
   (``h_j < x_{j-1} + o_{j-1}``), the turn keeps the first ``h_j`` tokens of that context,
   as a client that cuts its history would.
4. Segments. The prompt's first ``s = min(tokens, max(0, x_0 - unique_tokens))`` tokens
   are the prompt segment (``tokens`` infinite for ``"input"``); every turn's new tokens
   and every output are a segment of their own. A segment id is a 63-bit hash of what the
   segment is (prompt: seed, client, prompt index; turn content: seed, window, the start's
   ordinal in its window, slot), so ids do not depend on chunking.

Block ids (:func:`hash_ids`) at any block size ``B``: block ``k`` of a request covers tokens
``[kB, min((k+1)B, x))``; its id is a hash of (the id of the segment holding its last token,
the block's end offset). A segment id fixes everything before the segment, so two requests
that share exactly their first ``X`` tokens share exactly their first ``floor(X / B)`` blocks
(and, when both are the same ``X`` tokens long, the last partial block too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.special import gammainc

from servegen_core.errors import SpecError
from servegen_core.schema import PREFIX_COLUMNS, SCHEMA
from servegen_core.spec import PrefixProfile, PrefixSpec, Sessions

if TYPE_CHECKING:
    from servegen_core.compose import ComposePlan

__all__ = [
    "PREFIX_COLUMNS",
    "hash_ids",
    "prepare",
    "session_chunks",
]

#: Largest start ordinal inside one arrival window (the segment-id layout's limit).
MAX_WINDOW_STARTS = 2**31 - 1

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_TAG_PROMPT, _TAG_TURN, _TAG_BLOCK, _TAG_KEY = 1, 2, 3, 4
#: Points per window at which the expected turns inside the span are averaged.
_EDGE_POINTS = 16


# --------------------------------------------------------------------------------------------
# Hashing (splitmix64, vectorized; uint64 arithmetic wraps by design)
# --------------------------------------------------------------------------------------------


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _M1
        z = (z ^ (z >> np.uint64(30))) * _M2
        z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def _hash(tag: int, *parts: np.ndarray | int) -> np.ndarray:
    """A uint64 hash of ``tag`` and the integer arrays ``parts`` (broadcast together)."""
    arrays = [np.asarray(p).astype(np.int64).astype(np.uint64) for p in parts]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    h = np.full(shape, np.uint64(tag), dtype=np.uint64)
    for a in arrays:
        h = _splitmix(h ^ _splitmix(a))
    return h


def _id63(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(1)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Plan preparation
# --------------------------------------------------------------------------------------------


def _profiles(spec: PrefixSpec, names: list[str], known: set[str]) -> list[PrefixProfile]:
    for cid, _prof in spec.clients:
        if cid not in known:
            raise SpecError(f"prefix.clients.{cid}", f"unknown client id {cid!r} in the source")
    return [spec.profile(c) for c in names]


def _expected_turns(sess: Sessions, remaining: np.ndarray) -> np.ndarray:
    """Expected turns of a session started with ``remaining`` seconds of span left."""
    probs = np.array(sess.turn_probabilities())
    surv = 1.0 - np.concatenate([[0.0], np.cumsum(probs)[:-1]])  # P(T > k), k = 0..K-1
    shape = 1.0 / (sess.think_cv**2)
    scale = sess.think_mean_s * sess.think_cv**2
    k = np.arange(1, len(probs))
    r = np.maximum(np.asarray(remaining, dtype=np.float64), 0.0)
    inside = gammainc(k[None, :] * shape, r.reshape(-1, 1) / scale) if len(k) else np.zeros((r.size, 0))
    return (surv[0] + inside @ surv[1:]).reshape(r.shape)


def prepare(plan: ComposePlan) -> ComposePlan:
    """The plan with its prefix model resolved: per-client parameter arrays and session-start
    counts (each client-window's expected requests divided by the expected turns per session
    placed inside the span). A plan whose spec has no ``prefix`` is returned unchanged.

    Raises :class:`SpecError` for client ids of ``prefix.clients`` the source lacks and for a
    source whose input length is not drawn as ``input_tokens`` (multimodal pools).
    """
    pre = plan.spec.prefix
    if pre is None:
        return plan
    a = dict(plan._arrays)
    names = [str(c) for c in a["client_names"]]
    profiles = _profiles(pre, names, set(plan.pool.client_ids))
    if "input_tokens" not in plan.request_fields or plan.item_modalities:
        msg = f"prefix models need a source whose requests draw input_tokens directly; {plan.pool.name} has fields {list(plan.request_fields)}"
        raise SpecError("prefix", msg)
    C = len(names)
    share = np.zeros(C)
    tokens = np.zeros(C, dtype=np.int64)  # -1: "input"
    unique = np.zeros(C, dtype=np.int64)
    zipf_cum: list[np.ndarray] = []
    zipf_off = np.zeros(C + 1, dtype=np.int64)
    has_sess = np.zeros(C, dtype=bool)
    turn_cum: list[np.ndarray] = []
    turn_off = np.zeros(C + 1, dtype=np.int64)
    think_shape = np.ones(C)
    think_scale = np.ones(C)
    mean_turns = np.ones(C)
    for c, prof in enumerate(profiles):
        sp = prof.system_prompts
        if sp is not None and sp.request_share > 0:
            share[c] = float(sp.request_share)
            tokens[c] = -1 if sp.tokens == "input" else int(sp.tokens)
            unique[c] = int(sp.unique_tokens)
            w = np.arange(1, sp.count + 1, dtype=np.float64) ** -float(sp.zipf_s)
            cum = np.cumsum(w) / w.sum()
            cum[-1] = 1.0
            zipf_cum.append(cum + c)
        zipf_off[c + 1] = zipf_off[c] + (len(zipf_cum[-1]) if sp is not None and sp.request_share > 0 else 0)
        ss = prof.sessions
        if ss is not None:
            probs = np.array(ss.turn_probabilities())
            if len(probs) > 1:
                has_sess[c] = True
                cum = np.cumsum(probs)
                cum[-1] = 1.0
                turn_cum.append(cum + c)
                turn_off[c + 1] = turn_off[c] + len(cum)
                think_shape[c] = 1.0 / ss.think_cv**2
                think_scale[c] = ss.think_mean_s * ss.think_cv**2
                mean_turns[c] = float(np.dot(np.arange(1, len(probs) + 1), probs))
                continue
        turn_off[c + 1] = turn_off[c]

    # session starts: expected requests / expected turns placed inside the span
    row_client = a["row_client"]
    expected = a["row_expected"].astype(np.float64).copy()
    D = float(plan.span_duration_s)
    for c in np.flatnonzero(has_sess):
        ss = profiles[c].sessions
        rows = np.flatnonzero(row_client == c)
        if not len(rows):
            continue
        t0, d = a["row_t0"][rows], a["row_d"][rows]
        frac = (np.arange(_EDGE_POINTS) + 0.5) / _EDGE_POINTS
        t = t0[:, None] + d[:, None] * frac[None, :]
        e = _expected_turns(ss, D - t).mean(axis=1)
        expected[rows] = expected[rows] / e
    a["row_expected"] = expected
    win_pos = np.repeat(np.arange(len(a["win_index"]), dtype=np.int64), np.diff(a["win_row_offsets"]))
    a["prefix"] = {
        "share": share,
        "tokens": tokens,
        "unique": unique,
        "zipf_cum": np.concatenate(zipf_cum) if zipf_cum else np.zeros(0),
        "zipf_off": zipf_off,
        "has_sessions": has_sess,
        "turn_cum": np.concatenate(turn_cum) if turn_cum else np.zeros(0),
        "turn_off": turn_off,
        "think_shape": think_shape,
        "think_scale": think_scale,
        "mean_turns": mean_turns,
        "cw_key": win_pos * max(C, 1) + row_client,
        "n_clients": C,
    }
    return dataclasses.replace(plan, _arrays=a)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _pick(cum: np.ndarray, off: np.ndarray, client: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index (0-based) drawn from each client's cumulative table at uniform ``u``."""
    if not len(cum):
        return np.zeros(len(u), dtype=np.int64)
    idx = np.searchsorted(cum, client + u, side="right")
    lo, hi = off[client], off[client + 1]
    return np.clip(idx, lo, np.maximum(hi - 1, lo)) - lo


def _expand(plan: ComposePlan, base: pl.DataFrame, k0: int, k1: int) -> pl.DataFrame:
    """Every turn of the sessions started in windows ``k0 <= k < k1`` (base = their starts),
    with the prefix columns and sort keys ``_w`` (start window), ``_o`` (start ordinal)."""
    from servegen_core.compose import _sample

    a = plan._arrays
    P = a["prefix"]
    fields = tuple(plan.request_fields)
    n = base.height
    t = base["timestamp_s"].to_numpy()
    C = int(P["n_clients"])
    names = [str(c) for c in a["client_names"]]
    crank = base["client_id"].replace_strict({c: i for i, c in enumerate(names)}, return_dtype=pl.Int64).to_numpy()
    kpos = np.clip(np.searchsorted(a["win_t0"], t, side="right") - 1, k0, k1 - 1)
    ordinal = np.arange(n) - np.searchsorted(kpos, kpos, side="left")
    r = np.searchsorted(P["cw_key"], kpos * max(C, 1) + crank)
    w = a["win_index"][kpos].astype(np.int64)
    seed = int(a["seed"])

    # batch 1 per window: prompt use, prompt pick, length key, turn count
    counts = np.bincount(kpos - k0, minlength=k1 - k0)
    gens = [np.random.default_rng([seed, int(wi), 2]) for wi in a["win_index"][k0:k1]]
    u1 = np.concatenate([g.random((int(m), 4)) for g, m in zip(gens, counts)]) if n else np.zeros((0, 4))
    uses = u1[:, 0] < P["share"][crank]
    prompt = _pick(P["zipf_cum"], P["zipf_off"], crank, u1[:, 1])
    prompt_key = _hash(_TAG_KEY, seed, crank, prompt).astype(np.float64) / 2.0**64
    key = np.where(uses, prompt_key, u1[:, 2])
    T = np.where(P["has_sessions"][crank], 1 + _pick(P["turn_cum"], P["turn_off"], crank, u1[:, 3]), 1)

    # lengths handed out inside each (window, client) in key order (a permutation of the draws)
    length_cols = [c for c in base.columns if c not in ("timestamp_s", "client_id")]
    x0 = base["input_tokens"].to_numpy()
    by_key = np.lexsort((key, crank, kpos))
    by_len = np.lexsort((x0, crank, kpos))
    perm = np.empty(n, dtype=np.int64)
    perm[by_key] = by_len
    starts = base.select(length_cols)[perm] if n else base.select(length_cols)

    # batch 2 per window: think times and the further turns' length uniforms
    m = T - 1
    F = len(fields)
    m_win = np.bincount(kpos - k0, weights=m, minlength=k1 - k0).astype(np.int64)
    shape_f = np.repeat(P["think_shape"][crank], m)
    scale_f = np.repeat(P["think_scale"][crank], m)
    think = np.empty(int(m.sum()))
    u_len = np.empty((int(m.sum()), F))
    pos = 0
    for g, mw in zip(gens, m_win):
        if mw:
            think[pos : pos + mw] = g.standard_gamma(shape_f[pos : pos + mw])
            u_len[pos : pos + mw] = g.random((int(mw), F))
            pos += int(mw)
    think *= scale_f

    # every turn in (session, turn) order; session s is start row s
    sid = np.repeat(np.arange(n), T)
    first = np.concatenate([[0], np.cumsum(T)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    turn = np.arange(len(sid)) - np.repeat(first, T)
    is_follow = turn > 0
    gap = np.zeros(len(sid))
    gap[is_follow] = think
    # turn j arrives a think time after turn j - 1 (turn by turn, so that rounding does not
    # depend on the other sessions generated with it)
    t_all = np.empty(len(sid))
    t_all[first] = t
    for j in range(1, int(T.max()) if n else 0):
        rows = (first + j)[T > j]
        t_all[rows] = t_all[rows - 1] + gap[rows]

    # lengths of every turn: the start's row, then draws for the further turns
    follow_sid = sid[is_follow]
    tids = a["row_tables"][r[follow_sid]][:, :F] if len(follow_sid) else np.zeros((0, F), dtype=np.int64)
    drawn: dict[str, np.ndarray] = {}
    for j, f in enumerate(fields):
        drawn[f] = _sample(a, tids[:, j], u_len[:, j]) if len(follow_sid) else np.zeros(0)
    lens: dict[str, np.ndarray] = {}
    for col in length_cols:
        dtype = SCHEMA.get(col, pl.Int64())
        full = np.empty(len(sid), dtype=np.float64 if dtype == pl.Float64() else np.int64)
        full[~is_follow] = starts[col].to_numpy()
        lens[col] = full
    lens["input_tokens"][is_follow] = drawn["input_tokens"].astype(np.int64)
    lens["output_tokens"][is_follow] = drawn["output_tokens"].astype(np.int64)
    if "reason_ratio" in fields:
        ratio = drawn["reason_ratio"]
        reasoning = np.rint(lens["output_tokens"][is_follow] * ratio).astype(np.int64)
        lens["reason_ratio"][is_follow] = ratio
        lens["reasoning_tokens"][is_follow] = reasoning
        lens["answer_tokens"][is_follow] = lens["output_tokens"][is_follow] - reasoning
    # a session's input lengths go smallest first (rows move whole, so fields stay together)
    order = np.lexsort((lens["input_tokens"], sid))
    for col in length_cols:
        lens[col] = lens[col][order]
    x = lens["input_tokens"]
    o = lens["output_tokens"]

    # segments, turn by turn
    tok_cap = P["tokens"][crank]
    cap = np.where(tok_cap < 0, np.iinfo(np.int64).max, tok_cap)
    s_prompt = np.where(uses, np.minimum(cap, np.maximum(0, x[first] - P["unique"][crank])), 0) if n else np.zeros(0, dtype=np.int64)
    prompt_id = _id63(_hash(_TAG_PROMPT, seed, crank, prompt))
    req_parts: list[np.ndarray] = []
    id_parts: list[np.ndarray] = []
    tok_parts: list[np.ndarray] = []
    # turn 0
    rows0 = first
    sess = np.arange(n)
    seg_sess = np.concatenate([sess[s_prompt > 0], sess])
    seg_id = np.concatenate([prompt_id[s_prompt > 0], _id63(_hash(_TAG_TURN, seed, w, ordinal, 0))])
    seg_tok = np.concatenate([s_prompt[s_prompt > 0], x[rows0] - s_prompt])
    o_ = np.argsort(seg_sess, kind="stable")
    seg_sess, seg_id, seg_tok = seg_sess[o_], seg_id[o_], seg_tok[o_]
    keep = seg_tok > 0
    req_parts.append(rows0[seg_sess[keep]])
    id_parts.append(seg_id[keep])
    tok_parts.append(seg_tok[keep])
    t_max = int(T.max()) if n else 0
    for j in range(1, t_max):
        alive = T > j
        prev_rows = first + (j - 1)
        now_rows = first + j
        # previous prompt (its segments) + its output, cut at h, + new tokens
        ks = alive[seg_sess]
        seg_sess, seg_id, seg_tok = seg_sess[ks], seg_id[ks], seg_tok[ks]
        out_s = np.flatnonzero(alive)
        seg_sess = np.concatenate([seg_sess, out_s])
        seg_id = np.concatenate([seg_id, _id63(_hash(_TAG_TURN, seed, w[out_s], ordinal[out_s], 2 * j - 1))])
        seg_tok = np.concatenate([seg_tok, o[prev_rows[out_s]]])
        o_ = np.argsort(seg_sess, kind="stable")
        seg_sess, seg_id, seg_tok = seg_sess[o_], seg_id[o_], seg_tok[o_]
        h = np.zeros(n, dtype=np.int64)
        pr, nr = prev_rows[alive], now_rows[alive]
        h[alive] = np.maximum(0, np.minimum(x[pr] + o[pr], x[nr] - 1))
        cum = np.cumsum(seg_tok)
        grp_first = np.searchsorted(seg_sess, seg_sess, side="left")
        start_tok = cum - seg_tok - (cum[grp_first] - seg_tok[grp_first])
        seg_tok = np.minimum(seg_tok, np.maximum(h[seg_sess] - start_tok, 0))
        kk = seg_tok > 0
        seg_sess, seg_id, seg_tok = seg_sess[kk], seg_id[kk], seg_tok[kk]
        new_s = out_s
        new_tok = x[now_rows[new_s]] - h[new_s]
        seg_sess = np.concatenate([seg_sess, new_s])
        seg_id = np.concatenate([seg_id, _id63(_hash(_TAG_TURN, seed, w[new_s], ordinal[new_s], 2 * j))])
        seg_tok = np.concatenate([seg_tok, new_tok])
        o_ = np.argsort(seg_sess, kind="stable")
        seg_sess, seg_id, seg_tok = seg_sess[o_], seg_id[o_], seg_tok[o_]
        kk = seg_tok > 0
        req_parts.append(now_rows[seg_sess[kk]])
        id_parts.append(seg_id[kk])
        tok_parts.append(seg_tok[kk])
        seg_sess, seg_id, seg_tok = seg_sess[kk], seg_id[kk], seg_tok[kk]

    R = len(sid)
    req = np.concatenate(req_parts)
    ro = np.argsort(req, kind="stable")
    frame = _lists(req[ro], R, segment_ids=np.concatenate(id_parts)[ro], segment_tokens=np.concatenate(tok_parts)[ro])
    sess_client = P["has_sessions"][crank]
    data = {
        "timestamp_s": pl.Series(t_all, dtype=pl.Float64),
        "client_id": base["client_id"].gather(sid),
        **{c: pl.Series(c, lens[c], dtype=SCHEMA.get(c, pl.Int64())) for c in length_cols},
        "_w": pl.Series(w[sid], dtype=pl.Int64),
        "_o": pl.Series(ordinal[sid], dtype=pl.Int64),
        "_sess": pl.Series(sess_client[sid], dtype=pl.Boolean),
        "turn_index": pl.Series(turn, dtype=pl.Int64),
    }
    out = pl.DataFrame(data).with_columns(
        frame["segment_ids"],
        frame["segment_tokens"],
        pl.when(pl.col("_sess"))
        .then(pl.concat_str(pl.lit("s"), pl.col("_w").cast(pl.String), pl.lit("-"), pl.col("_o").cast(pl.String)))
        .otherwise(None)
        .alias("session_id"),
    )
    return out.drop("_sess")


def session_chunks(
    plan: ComposePlan,
    bounds: Iterable[tuple[int, int]],
    generate: Callable[[ComposePlan, int, int], pl.DataFrame],
) -> Iterator[pl.DataFrame]:
    """The workload of a plan with a prefix model, in time chunks.

    ``bounds`` are ``(k0, k1)`` plan-window ranges in time order and ``generate(plan, k0, k1)``
    gives the session starts of those windows (compose's arrival and length generation).
    Each chunk's sessions are generated whole; a later turn is held back until the chunk
    that covers its timestamp (rows before the next chunk's first window start), so the
    concatenated chunks equal the workload generated at once. Rows are sorted by
    ``timestamp_s``, ties by the start's window, its ordinal in the window, and turn.
    Turns at or after the span end are dropped.
    """
    a = plan._arrays
    win_t0 = a["win_t0"]
    n_win = len(win_t0)
    end = float(plan.span_duration_s)
    cols = list(plan.output_columns)
    keys = ["timestamp_s", "_w", "_o", "turn_index"]
    pending: pl.DataFrame | None = None
    for k0, k1 in bounds:
        base = generate(plan, int(k0), int(k1))
        rows = _expand(plan, base, int(k0), int(k1)).filter(pl.col("timestamp_s") < end)
        if pending is not None and pending.height:
            rows = pl.concat([pending, rows])
        limit = float(win_t0[k1]) if k1 < n_win else end
        now = rows.filter(pl.col("timestamp_s") < limit)
        pending = rows.filter(pl.col("timestamp_s") >= limit)
        if now.height:
            yield now.sort(keys).select(cols)


def hash_ids(segment_ids: pl.Series, segment_tokens: pl.Series, *, block_size: int) -> pl.Series:
    """``hash_ids`` at ``block_size`` tokens per block from a request's prompt segments.

    Block ``k`` (tokens ``[kB, min((k+1)B, x))``) gets a 63-bit id hashed from the id of the
    segment holding its last token and the block's end offset; a request gets
    ``ceil(x / B)`` ids. Requests that share exactly their first ``X`` tokens share exactly
    their first ``floor(X / B)`` ids (see the module docstring).
    """
    if block_size < 1:
        msg = f"block_size must be a positive number of tokens, got {block_size}"
        raise ValueError(msg)
    n = len(segment_ids)
    lens = segment_tokens.list.len().to_numpy()
    ids = segment_ids.explode().drop_nulls().to_numpy().astype(np.int64)
    toks = segment_tokens.explode().drop_nulls().to_numpy().astype(np.int64)
    seg_req = np.repeat(np.arange(n), lens)
    x = np.bincount(seg_req, weights=toks, minlength=n).astype(np.int64)
    nblocks = (x + block_size - 1) // block_size
    blk_req = np.repeat(np.arange(n), nblocks)
    bfirst = np.concatenate([[0], np.cumsum(nblocks)[:-1]])
    k = np.arange(int(nblocks.sum())) - np.repeat(bfirst, nblocks)
    end = np.minimum((k + 1) * block_size, x[blk_req])
    # global token positions: request offset + position inside the request
    req_base = np.concatenate([[0], np.cumsum(x)[:-1]])
    seg_end = np.cumsum(toks)  # global end of each segment
    last_tok = req_base[blk_req] + end - 1
    seg = np.searchsorted(seg_end, last_tok, side="right")
    out = _id63(_hash(_TAG_BLOCK, ids[seg], end))
    return _lists(blk_req, n, hash_ids=out)["hash_ids"]


def _lists(owner: np.ndarray, n: int, **values: np.ndarray) -> pl.DataFrame:
    """List(Int64) columns of ``n`` rows from flat values grouped by ``owner`` (sorted row
    numbers; a row without values gets an empty list), without a Python loop per row."""
    flat = pl.DataFrame(
        {"_r": owner.astype(np.int64), **{k: v.astype(np.int64) for k, v in values.items()}},
        schema={"_r": pl.Int64(), **{k: pl.Int64() for k in values}},
    )
    grouped = flat.group_by("_r", maintain_order=True).agg(*values)
    full = pl.DataFrame({"_r": np.arange(n, dtype=np.int64)}).join(grouped, on="_r", how="left", maintain_order="left")
    return full.select(pl.col(k).fill_null([]).cast(pl.List(pl.Int64)) for k in values)
