"""Shared prompt prefixes and multi-turn sessions: the prefix stage of compose, hash ids, and fits.

A spec with a ``prefix`` section (:class:`servegen_core.spec.PrefixSpec`) gives its composed
workload four more columns (:data:`servegen_core.schema.PREFIX_COLUMNS`): ``session_id``,
``turn_index`` and the prompt of every request as content segments, ``segment_ids`` and
``segment_tokens``. Without the section nothing here runs and the workload is unchanged.

How the prefix stage works (per generation unit, from the unit's own generator
``np.random.default_rng([seed, w, 2, piece])`` (``w`` the arrival window, ``piece`` its part
when compose cuts a busy window into units), so chunks do not change the result)
----------------------------------------------------------------------------------
1. Session starts. Compose generates the arrivals of every client-window as usual, with the
   client's fitted arrival pattern, but its request counts are session starts: per client,
   the starts of each window are chosen so that they plus the later turns of earlier and
   current sessions landing in the window meet the window's target in expectation (a
   lower-triangular system over the windows, with Gamma think times, solved forward; see
   :func:`_start_counts`). So session starts keep the client's arrival pattern (CV) and the
   workload follows the rate function window by window: the first window gets more starts
   (no session began before the span), windows near the end fewer turns per start (turns
   after the span end are dropped).
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
   its own uniforms); the input lengths of the session's turns inside the span are then
   sorted, smallest first (those past the span end, dropped, do not take part), so the
   input marginal is still the client's PDF. Turn ``j``'s prompt is the previous
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

Block ids (:func:`hash_ids`, :func:`block_keys`, re-exported from :mod:`servegen_core.blocks`)
at any block size ``B``: block ``k`` of a request is keyed by the id of the segment holding its
last token and the block's end offset, so requests that share exactly their first ``X`` tokens
share exactly their first ``floor(X / B)`` blocks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.optimize import brentq, minimize_scalar, nnls
from scipy.special import gammainc, ndtr, ndtri
from scipy.stats import gamma as gamma_dist

from servegen_core.blocks import TAG_KEY, TAG_PROMPT, TAG_TURN, block_keys, hash_ids, hash_parts, id63, lists_by_owner
from servegen_core.generate.classes import CLASS_COLUMNS
from servegen_core.characterize import prefix as characterize_prefix
from servegen_core.errors import SpecError
from servegen_core.schema import PREFIX_COLUMNS, SCHEMA
from servegen_core.sources.pool import client_sort_key
from servegen_core.spec import MAX_PROMPTS, MAX_TURNS, PrefixProfile, PrefixSpec, Sessions, SystemPrompts

if TYPE_CHECKING:  # annotations only: the plan module imports this one
    from servegen_core.generate.plan import ComposePlan

__all__ = [
    "PREFIX_COLUMNS",
    "PrefixPlan",
    "block_keys",
    "fit_prefix",
    "hash_ids",
    "plan_prefix",
    "prefix_depth",
    "prepare",
    "session_chunks",
]


#: Points per window over which a start's expected turns landing in each window are averaged.
_EDGE_POINTS = 16


# --------------------------------------------------------------------------------------------
# Plan preparation
# --------------------------------------------------------------------------------------------


def _profiles(spec: PrefixSpec, names: list[str], known: set[str]) -> list[PrefixProfile]:
    for cid, _prof in spec.clients:
        if cid not in known:
            raise SpecError(f"prefix.clients.{cid}", f"unknown client id {cid!r} in the source")
    return [spec.profile(c) for c in names]


def _start_counts(sess: Sessions, t0: np.ndarray, d: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Expected session starts per client-window (rows in time order) such that starts plus
    the later turns that land in each window meet that window's ``target`` requests.

    ``A[k, j]``, the expected turns that a start placed uniformly in window ``j`` puts in
    window ``k`` (1 for the start itself when ``k = j``, plus ``sum_m P(T > m)
    P(t + S_m in window k)`` with ``S_m`` Gamma, averaged over points of window ``j``), is
    lower triangular; the starts solve ``A s = target`` by forward substitution, clipped at
    0 where the target falls faster than earlier sessions' turns fade: such a window gets
    more requests than its target. When that happens the starts are solved again
    (:func:`_total_kept_starts`) so that the expected total stays the targets' sum. Turns past
    the span end fall in no window.
    """
    probs = np.array(sess.turn_probabilities())
    surv = 1.0 - np.concatenate([[0.0], np.cumsum(probs)[:-1]])  # P(T > m), m = 0..K-1
    m = np.flatnonzero(surv[1:] > 1e-9) + 1
    shape = 1.0 / (sess.think_cv**2)
    scale = sess.think_mean_s * sess.think_cv**2
    R = len(t0)
    frac = (np.arange(_EDGE_POINTS) + 0.5) / _EDGE_POINTS
    pts = t0[:, None] + d[:, None] * frac[None, :]  # (R, P)
    horizon = float(scale * shape * (m.max() if len(m) else 0) * 1.5 + 20 * scale * math.sqrt(shape * max(len(m), 1)))
    ends = t0 + d
    A: dict[int, np.ndarray] = {}  # band b: A[j + b, j] for every j
    for b in range(R):
        if b and not (t0[b:] - ends[: R - b] <= horizon).any():
            break
        j = np.arange(R - b)
        k = j + b
        a_k, b_k = t0[k][:, None], ends[k][:, None]
        if len(m):
            def cdf(x: np.ndarray) -> np.ndarray:
                return gammainc(m[None, None, :] * shape, np.maximum(x, 0.0)[:, :, None] / scale)

            inside = (cdf(b_k - pts[j]) - cdf(a_k - pts[j])) @ surv[m]
            val = inside.mean(axis=1)
        else:
            val = np.zeros(len(j))
        if b == 0:
            val = val + 1.0
        A[b] = val
    starts = np.zeros(R)
    clipped = False
    for k in range(R):
        acc = float(target[k])
        for b in range(1, min(len(A), k + 1)):
            acc -= A[b][k - b] * starts[k - b]
        clipped |= acc < -1e-9 * max(float(target[k]), 1.0)
        starts[k] = max(acc, 0.0) / A[0][k]
    return _total_kept_starts(A, target) if clipped else starts


#: Weight of the total's row in :func:`_total_kept_starts`, relative to a window's.
_TOTAL_WEIGHT = 1e3


def _total_kept_starts(A: dict[int, np.ndarray], target: np.ndarray) -> np.ndarray:
    """Non-negative starts whose expected requests follow ``target`` window by window in the
    least-squares sense and keep its total: where a client's rate falls faster than its earlier
    sessions' turns fade, forward substitution would clip starts at 0 and leave the excess in the
    total; here earlier windows start fewer sessions instead (non-negative least squares over
    the windows plus a heavily weighted row for the total, each window's row scaled by its
    target's Poisson sd)."""
    R = len(target)
    M = np.zeros((R, R))
    for b, band in A.items():
        j = np.arange(R - b)
        M[j + b, j] = band
    t = np.asarray(target, dtype=np.float64)
    w = np.full(R, 1.0 / np.sqrt(max(float(t.mean()), 1.0)))  # rate_tracking sums absolute errors
    rows = np.vstack([M * w[:, None], _TOTAL_WEIGHT * M.sum(axis=0) / np.sqrt(max(t.sum(), 1.0))])
    rhs = np.concatenate([t * w, [_TOTAL_WEIGHT * t.sum() / np.sqrt(max(t.sum(), 1.0))]])
    starts, _residual = nnls(rows, rhs, maxiter=50 * R)
    return starts


@dataclass(frozen=True, eq=False)
class PrefixPlan:
    """The prefix model resolved for a plan's composed clients (arrays indexed by the client's
    position in ``GenerationUnits.client_ids``).

    System prompts: ``prompt_share`` (share of sessions using one), ``min_quantile``,
    ``repeat_share``, ``repeat_lag``, ``prompt_tokens`` (-1: the whole input),
    ``unique_tokens``, and the prompts' Zipf cumulative tables ``zipf_cum`` (client ``c``'s
    values offset by ``c``, rows ``zipf_offsets[c]:zipf_offsets[c + 1]``), laid out the same
    way ``prompt_lengths`` (-1: ``prompt_tokens``) and ``prompt_rank`` (a prompt's length key:
    its length rank among the client's prompts scaled into ``(0, 1)``; -1 without per-prompt
    lengths). Sessions:
    ``has_sessions``, the turn-count cumulative tables ``turn_cum``/``turn_offsets`` (laid
    out the same way), the Gamma think time's ``think_shape`` and ``think_scale`` and
    ``mean_turns``. ``client_window_key`` is ``unit * n_clients + client`` of every unit row
    (sorted), to find a start's row. Conversation growth: ``has_growth``, the quantile tables
    ``first_input_q`` and ``new_tokens_q`` (client ``c``'s rows
    ``*_offsets[c]:*_offsets[c + 1]``) and the ``context_tokens`` cap (int64 max: none).
    """

    prompt_share: np.ndarray
    min_quantile: np.ndarray
    repeat_share: np.ndarray
    repeat_lag: np.ndarray
    prompt_tokens: np.ndarray
    unique_tokens: np.ndarray
    zipf_cum: np.ndarray
    zipf_offsets: np.ndarray
    has_sessions: np.ndarray
    turn_cum: np.ndarray
    turn_offsets: np.ndarray
    think_shape: np.ndarray
    think_scale: np.ndarray
    mean_turns: np.ndarray
    client_window_key: np.ndarray
    n_clients: int
    has_growth: np.ndarray | None = None
    first_input_q: np.ndarray | None = None
    first_input_offsets: np.ndarray | None = None
    new_tokens_q: np.ndarray | None = None
    new_tokens_offsets: np.ndarray | None = None
    context_tokens: np.ndarray | None = None
    prompt_lengths: np.ndarray | None = None
    prompt_rank: np.ndarray | None = None


def plan_prefix(plan: ComposePlan) -> ComposePlan:
    """The prefix stage of planning: the plan with its prefix model resolved
    (:attr:`~servegen_core.generate.plan.ComposePlan.prefix_plan`, a :class:`PrefixPlan`)
    and the expected session starts of every client-window as its units' ``row_expected`` (:func:`_start_counts`: starts plus the later turns
    landing in each window meet its target). A plan whose spec has no ``prefix`` is returned
    unchanged.

    Raises :class:`SpecError` for client ids of ``prefix.clients`` the source lacks and for a
    source whose input length is not drawn as ``input_tokens`` (multimodal pools).
    """
    pre = plan.spec.prefix
    if pre is None:
        return plan
    units = plan.units
    names = [str(c) for c in units.client_ids]
    profiles = _profiles(pre, names, set(plan.pool.client_ids))
    if "input_tokens" not in plan.request_fields or plan.item_modalities:
        msg = f"prefix models need a source whose requests draw input_tokens directly; {plan.pool.name} has fields {list(plan.request_fields)}"
        raise SpecError("prefix", msg)
    C = len(names)
    share = np.zeros(C)
    min_q = np.zeros(C)
    rep_share = np.zeros(C)
    rep_lag = np.ones(C)
    tokens = np.zeros(C, dtype=np.int64)  # -1: "input"
    unique = np.zeros(C, dtype=np.int64)
    zipf_cum: list[np.ndarray] = []
    prompt_len: list[np.ndarray] = []
    prompt_rank: list[np.ndarray] = []
    zipf_off = np.zeros(C + 1, dtype=np.int64)
    has_sess = np.zeros(C, dtype=bool)
    turn_cum: list[np.ndarray] = []
    turn_off = np.zeros(C + 1, dtype=np.int64)
    think_shape = np.ones(C)
    think_scale = np.ones(C)
    mean_turns = np.ones(C)
    has_growth = np.zeros(C, dtype=bool)
    first_q: list[np.ndarray] = []
    new_q: list[np.ndarray] = []
    first_off = np.zeros(C + 1, dtype=np.int64)
    new_off = np.zeros(C + 1, dtype=np.int64)
    cap = np.full(C, np.iinfo(np.int64).max, dtype=np.int64)
    for c, prof in enumerate(profiles):
        ss = prof.sessions
        grows = ss is not None and bool(ss.new_tokens) and len(ss.turn_probabilities()) > 1
        if grows:
            has_growth[c] = True
            first_q.append(np.asarray(ss.first_input, dtype=np.float64))
            new_q.append(np.asarray(ss.new_tokens, dtype=np.float64))
            if ss.context_tokens is not None:
                cap[c] = int(ss.context_tokens)
        first_off[c + 1] = first_off[c] + (len(ss.first_input) if grows else 0)
        new_off[c + 1] = new_off[c] + (len(ss.new_tokens) if grows else 0)
    for c, prof in enumerate(profiles):
        sp = prof.system_prompts
        if sp is not None and sp.request_share > 0:
            share[c] = float(sp.request_share)
            min_q[c] = float(sp.min_quantile)
            rep_share[c] = float(sp.repeat_share)
            rep_lag[c] = float(sp.repeat_lag)
            tokens[c] = -1 if sp.tokens == "input" else int(sp.tokens)
            unique[c] = int(sp.unique_tokens)
            w = np.arange(1, sp.count + 1, dtype=np.float64) ** -float(sp.zipf_s)
            cum = np.cumsum(w) / w.sum()
            cum[-1] = 1.0
            zipf_cum.append(cum + c)
            own = np.asarray(sp.lengths, dtype=np.int64) if sp.lengths else np.full(sp.count, -1, dtype=np.int64)
            prompt_len.append(own)
            # longer prompts get larger length keys: their sessions the longer first turns
            rank = np.argsort(np.argsort(own, kind="stable"), kind="stable")
            prompt_rank.append((rank + 0.5) / sp.count if sp.lengths else np.full(sp.count, -1.0))
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

    # session starts: starts plus the later turns landing in each client-window meet its target
    row_client = units.row_client
    expected = units.row_expected.astype(np.float64).copy()
    for c in np.flatnonzero(has_sess):
        rows = np.flatnonzero(row_client == c)  # generation order: window, then client
        if len(rows):
            expected[rows] = _start_counts(
                profiles[c].sessions, units.row_t0_s[rows], units.row_duration_s[rows], expected[rows]
            )
    unit_of_row = np.repeat(np.arange(len(units), dtype=np.int64), np.diff(units.row_offsets))
    prefix_plan = PrefixPlan(
        prompt_share=share,
        min_quantile=min_q,
        repeat_share=rep_share,
        repeat_lag=rep_lag,
        prompt_tokens=tokens,
        unique_tokens=unique,
        zipf_cum=np.concatenate(zipf_cum) if zipf_cum else np.zeros(0),
        zipf_offsets=zipf_off,
        has_sessions=has_sess,
        turn_cum=np.concatenate(turn_cum) if turn_cum else np.zeros(0),
        turn_offsets=turn_off,
        think_shape=think_shape,
        think_scale=think_scale,
        mean_turns=mean_turns,
        client_window_key=unit_of_row * max(C, 1) + row_client,
        n_clients=C,
        has_growth=has_growth,
        first_input_q=np.concatenate(first_q) if first_q else np.zeros(0),
        first_input_offsets=first_off,
        new_tokens_q=np.concatenate(new_q) if new_q else np.zeros(0),
        new_tokens_offsets=new_off,
        context_tokens=cap,
        prompt_lengths=np.concatenate(prompt_len) if prompt_len else np.zeros(0, dtype=np.int64),
        prompt_rank=np.concatenate(prompt_rank) if prompt_rank else np.zeros(0),
    )
    return dataclasses.replace(plan, units=dataclasses.replace(units, row_expected=expected), prefix_plan=prefix_plan)


#: The former name of :func:`plan_prefix`.
prepare = plan_prefix


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


def _repeat_recent(
    prompt: np.ndarray,
    uses: np.ndarray,
    kpos: np.ndarray,
    crank: np.ndarray,
    u_copy: np.ndarray,
    u_lag: np.ndarray,
    share: np.ndarray,
    lag: np.ndarray,
) -> np.ndarray:
    """Prompts with temporal locality: a prompted row (rows in time order) takes, with
    probability ``share``, the prompt of the prompted row ``l`` places before it in its
    (window, client), ``l`` geometric with mean ``lag`` (copies of copies resolved); rows
    whose ``l`` reaches before the group's first prompted row keep their own draw."""
    idx = np.flatnonzero(uses)
    if not len(idx) or not (share[idx] > 0).any():
        return prompt
    group = kpos[idx] * (int(crank.max()) + 1) + crank[idx]  # rows are in time order, groups interleave
    order = np.lexsort((idx, group))
    rows = idx[order]
    g = group[order]
    first = np.searchsorted(g, g, side="left")
    pos = np.arange(len(rows)) - first
    mean = lag[rows]
    q = np.where(mean > 1, 1.0 - 1.0 / np.maximum(mean, 1.0), 0.0)
    with np.errstate(divide="ignore"):
        ell = 1 + np.where(q > 0, np.floor(np.log1p(-u_lag[rows]) / np.log(np.where(q > 0, q, 0.5))), 0)
    copy = (u_copy[rows] < share[rows]) & (ell <= pos)
    src = np.arange(len(rows))
    src[copy] = (np.arange(len(rows)) - ell.astype(np.int64))[copy]
    while True:
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    out = prompt.copy()
    out[rows] = prompt[rows[src]]
    return out


def _stratified(u: np.ndarray, kpos: np.ndarray, crank: np.ndarray, seed: int, w: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    """Stratified uniforms for the turn counts: inside each (window, client), the ``m``
    starts, in the order of ``u``, get one uniform each from the ``m`` equal strata of
    ``[0, 1)`` (placed inside its stratum by a hash of seed, unit and ordinal). Each start's
    count keeps its distribution, and a window's total turns stay close to their expectation
    (independent draws made the request total of a session workload wander by a few per cent)."""
    if not len(u):
        return u
    group = kpos.astype(np.int64) * (int(crank.max()) + 1) + crank
    order = np.lexsort((u, group))
    g = group[order]
    first = np.searchsorted(g, g, side="left")
    size = np.searchsorted(g, g, side="right") - first
    rank = np.empty(len(u), dtype=np.int64)
    rank[order] = np.arange(len(u)) - first
    m = np.empty(len(u), dtype=np.int64)
    m[order] = size
    frac = hash_parts(TAG_KEY, seed, w, ordinal, 8).astype(np.float64) / 2.0**64
    return (rank + frac) / m


def _length_keys(
    P: PrefixPlan, seed: int, crank: np.ndarray, prompt: np.ndarray, uses: np.ndarray, u_k: np.ndarray
) -> np.ndarray:
    """The key that hands out the drawn lengths inside a (window, client): for prompted
    sessions the prompt's own uniform number (from seed, client and prompt) scaled into
    ``[min_quantile, 1)``; for the others ``u_k`` spread so that all keys stay uniform."""
    prompt_key = hash_parts(TAG_KEY, seed, crank, prompt).astype(np.float64) / 2.0**64
    if P.prompt_rank is not None and len(P.prompt_rank) and uses.any():
        ranked = P.prompt_rank[np.minimum(P.zipf_offsets[crank] + prompt, len(P.prompt_rank) - 1)]
        prompt_key = np.where(uses & (ranked >= 0), ranked, prompt_key)
    # keys: prompted rows in [q_min, 1); the others spread so that all keys stay uniform
    q_min = P.min_quantile[crank]
    key_p = q_min + (1.0 - q_min) * prompt_key
    share = P.prompt_share[crank]
    low = np.divide(q_min, 1.0 - share, out=np.zeros_like(q_min), where=share < 1)
    key_o = np.where(
        u_k < low,
        np.divide(u_k, low, out=np.zeros_like(u_k), where=low > 0) * q_min,
        q_min + (1.0 - q_min) * np.divide(u_k - low, 1.0 - low, out=np.zeros_like(u_k), where=low < 1),
    )
    key = np.where(uses, key_p, key_o)
    return key


def _quantile(q: np.ndarray, off: np.ndarray, client: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Whole numbers drawn from each client's quantile table (``M + 1`` values at
    probabilities ``i / M``, linear between them) at uniforms ``u``."""
    lo, hi = off[client], off[client + 1]
    m = (hi - lo - 1).astype(np.float64)
    pos = np.clip(u, 0.0, 1.0) * m
    i = np.minimum(np.floor(pos).astype(np.int64), np.maximum(hi - lo - 2, 0))
    frac = pos - i
    a = q[lo + i]
    b = q[np.minimum(lo + i + 1, hi - 1)]
    return np.rint(a + frac * (b - a)).astype(np.int64)


def _table_cdf(plan: ComposePlan, tids: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(F(x-), F(x))`` of values ``x`` in length tables ``tids``: the probability below
    ``x`` and up to it (``x`` need not be a bin value)."""
    tables = plan.tables
    values = tables.values.astype(np.float64)
    starts = np.concatenate([[0], tables.ends[:-1]])
    owner = np.repeat(np.arange(len(tables.ends)), tables.ends - starts)
    top = float(np.abs(values).max()) + 1.0 if len(values) else 1.0
    comp = owner + (values + top) / (4.0 * top)  # sorted: tables in order, values inside
    key = tids + (np.asarray(x, dtype=np.float64) + top) / (4.0 * top)
    below = np.searchsorted(comp, key, side="left") - 1  # last bin < x
    upto = np.searchsorted(comp, key, side="right") - 1  # last bin <= x
    cum = tables.cum

    def at(i: np.ndarray) -> np.ndarray:
        inside = i >= starts[tids]
        return np.where(inside, cum[np.maximum(i, 0)] - tids, 0.0)

    return at(below), at(upto)


def _grow_turns(
    plan: ComposePlan,
    lens: dict[str, np.ndarray],
    r: np.ndarray,
    crank: np.ndarray,
    first: np.ndarray,
    T: np.ndarray,
    u_follow: np.ndarray,
    v_start: np.ndarray,
) -> None:
    """Conversation growth, in place on ``lens`` ((session, turn) order) for the sessions of
    clients with a growth model: the start's input becomes the first-turn quantile at its
    rank in its table (a uniform inside the drawn bin, ``v_start``), so the copula with its
    output stays; turn ``j`` has input ``x_{j-1} + o_{j-1} + new`` (``new`` from the client's
    new-token quantiles at the turn's input uniform), at least 1 and at most the context
    cap, and its output drawn from its table by the spec's copula at the rank of that input
    in the client's input table. ``u_follow``: the further turns' length uniforms (rows in
    (session, turn) order of the follow-up turns, columns the request fields)."""
    P = plan.prefix_plan
    if P.has_growth is None or not P.has_growth[crank].any():
        return
    grow = P.has_growth[crank]
    fields = tuple(plan.request_fields)
    fi, fo = fields.index("input_tokens"), fields.index("output_tokens")
    rho = float(plan.spec.length_correlation)
    tids = plan.units.row_tables[r]  # per session: its start's client-window tables
    x, o = lens["input_tokens"], lens["output_tokens"]
    g = np.flatnonzero(grow)
    lo, hi = _table_cdf(plan, tids[g, fi], x[first[g]])
    u0 = lo + v_start[g] * (hi - lo)
    x[first[g]] = np.maximum(_quantile(P.first_input_q, P.first_input_offsets, crank[g], u0), 1)
    cap = P.context_tokens[crank]
    for j in range(1, int(T[g].max()) if len(g) else 0):  # a loop over turn positions, vectorized over sessions
        s = g[T[g] > j]
        rows = first[s] + j
        k = first[s] - s + (j - 1)  # the row's index among the follow-up rows
        new = _quantile(P.new_tokens_q, P.new_tokens_offsets, crank[s], u_follow[k, fi])
        x[rows] = np.clip(x[rows - 1] + o[rows - 1] + new, 1, cap[s])
        lo_x, hi_x = _table_cdf(plan, tids[s, fi], x[rows])
        u_in = np.clip(0.5 * (lo_x + hi_x), 1e-9, 1.0 - 1e-9)
        u_out = ndtr(rho * ndtri(u_in) + math.sqrt(max(1.0 - rho * rho, 0.0)) * ndtri(np.clip(u_follow[k, fo], 1e-12, 1.0 - 1e-12)))
        o[rows] = plan.tables.sample(tids[s, fo], u_out).astype(np.int64)
    if "reason_ratio" in fields:
        rows = np.flatnonzero(np.repeat(grow, T))
        reasoning = np.rint(o[rows] * lens["reason_ratio"][rows]).astype(np.int64)
        lens["reasoning_tokens"][rows] = reasoning
        lens["answer_tokens"][rows] = o[rows] - reasoning


def _turn_lengths(
    plan: ComposePlan,
    r: np.ndarray,
    sid: np.ndarray,
    is_follow: np.ndarray,
    starts: pl.DataFrame,
    length_cols: list[str],
    u_len: np.ndarray,
    crank: np.ndarray,
    first: np.ndarray,
    T: np.ndarray,
    v_start: np.ndarray,
    kept: np.ndarray,
) -> dict[str, np.ndarray]:
    """Length columns of every turn ((session, turn) order): a start keeps its row of
    ``starts``, a further turn draws from its start's client-window tables (row ``r`` of
    the session) at ``u_len``; then the rows of each session's turns inside the span
    (``kept``: its first turns) are ordered by input length, smallest first, and the rows of
    the turns past the span end follow them (rows move whole, so fields stay together). So
    the turns a workload holds are a permutation of i.i.d. draws, and its input marginal is
    the client's PDF however many turns the span end cuts off. Sessions of clients with a
    growth model grow turn by turn instead (:func:`_grow_turns`) and keep their turn order."""
    fields = tuple(plan.request_fields)
    F = len(fields)
    follow_sid = sid[is_follow]
    tids = plan.units.row_tables[r[follow_sid]][:, :F] if len(follow_sid) else np.zeros((0, F), dtype=np.int64)
    drawn: dict[str, np.ndarray] = {}
    for j, f in enumerate(fields):
        drawn[f] = plan.tables.sample(tids[:, j], u_len[:, j]) if len(follow_sid) else np.zeros(0)
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
    _grow_turns(plan, lens, r, crank, first, T, u_len, v_start)
    # a session's input lengths go smallest first among its turns inside the span, then those
    # past its end (sorting all of them would leave the span the smaller ones of a cut session);
    # a growing conversation keeps its turn order
    grows = plan.prefix_plan.has_growth[crank][sid] if plan.prefix_plan.has_growth is not None else np.zeros(len(sid), dtype=bool)
    turn = np.arange(len(sid)) - np.repeat(first, T)
    order = np.lexsort((np.where(grows, turn, lens["input_tokens"]), ~(kept | grows), sid))
    for col in length_cols:
        lens[col] = lens[col][order]
    return lens


def _prompt_segments(
    P: PrefixPlan,
    seed: int,
    crank: np.ndarray,
    prompt: np.ndarray,
    uses: np.ndarray,
    w: np.ndarray,
    ordinal: np.ndarray,
    first: np.ndarray,
    T: np.ndarray,
    x: np.ndarray,
    o: np.ndarray,
) -> pl.DataFrame:
    """``segment_ids`` and ``segment_tokens`` of every turn ((session, turn) order; session
    ``s`` has ``T[s]`` turns from row ``first[s]``, input ``x`` and output ``o``): turn 0 is
    the system prompt's segment (prompted sessions) and its own tokens; turn ``j`` keeps the
    first ``h_j`` tokens of the previous prompt plus output, then its own new tokens (see the
    module docstring)."""
    tok_cap = P.prompt_tokens[crank]
    if P.prompt_lengths is not None and len(P.prompt_lengths) and uses.any():
        own = P.prompt_lengths[np.minimum(P.zipf_offsets[crank] + prompt, len(P.prompt_lengths) - 1)]
        tok_cap = np.where(uses & (own > 0), own, tok_cap)
    cap = np.where(tok_cap < 0, np.iinfo(np.int64).max, tok_cap)
    n = len(first)
    s_prompt = np.where(uses, np.minimum(cap, np.maximum(0, x[first] - P.unique_tokens[crank])), 0) if n else np.zeros(0, dtype=np.int64)
    prompt_id = id63(hash_parts(TAG_PROMPT, seed, crank, prompt))
    req_parts: list[np.ndarray] = []
    id_parts: list[np.ndarray] = []
    tok_parts: list[np.ndarray] = []
    # turn 0
    rows0 = first
    sess = np.arange(n)
    seg_sess = np.concatenate([sess[s_prompt > 0], sess])
    seg_id = np.concatenate([prompt_id[s_prompt > 0], id63(hash_parts(TAG_TURN, seed, w, ordinal, 0))])
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
        seg_id = np.concatenate([seg_id, id63(hash_parts(TAG_TURN, seed, w[out_s], ordinal[out_s], 2 * j - 1))])
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
        seg_id = np.concatenate([seg_id, id63(hash_parts(TAG_TURN, seed, w[new_s], ordinal[new_s], 2 * j))])
        seg_tok = np.concatenate([seg_tok, new_tok])
        o_ = np.argsort(seg_sess, kind="stable")
        seg_sess, seg_id, seg_tok = seg_sess[o_], seg_id[o_], seg_tok[o_]
        kk = seg_tok > 0
        req_parts.append(now_rows[seg_sess[kk]])
        id_parts.append(seg_id[kk])
        tok_parts.append(seg_tok[kk])
        seg_sess, seg_id, seg_tok = seg_sess[kk], seg_id[kk], seg_tok[kk]

    R = int(T.sum())
    req = np.concatenate(req_parts)
    ro = np.argsort(req, kind="stable")
    return lists_by_owner(req[ro], R, segment_ids=np.concatenate(id_parts)[ro], segment_tokens=np.concatenate(tok_parts)[ro])


def _expand(plan: ComposePlan, base: pl.DataFrame, k0: int, k1: int) -> pl.DataFrame:
    """Every turn of the sessions started in windows ``k0 <= k < k1`` (base = their starts),
    with the prefix columns and sort keys ``_w`` (start window), ``_o`` (start ordinal)."""
    units = plan.units
    P = plan.prefix_plan
    fields = tuple(plan.request_fields)
    n = base.height
    t = base["timestamp_s"].to_numpy()
    C = int(P.n_clients)
    names = [str(c) for c in units.client_ids]
    crank = base["client_id"].replace_strict({c: i for i, c in enumerate(names)}, return_dtype=pl.Int64).to_numpy()
    kpos = np.clip(np.searchsorted(units.t0_s, t, side="right") - 1, k0, k1 - 1)
    ordinal = np.arange(n) - np.searchsorted(kpos, kpos, side="left")
    r = np.searchsorted(P.client_window_key, kpos * max(C, 1) + crank)
    # a generation unit: the arrival window, and its piece when compose cuts a busy window
    # into pieces (``units.piece``); segment ids and generators are per unit
    piece = units.piece
    w = units.window_index[kpos].astype(np.int64) * (1 << 16) + piece[kpos].astype(np.int64)
    seed = int(plan.spec.seed)

    # batch 1 per window: prompt use, prompt pick, length key, turn count
    counts = np.bincount(kpos - k0, minlength=k1 - k0)
    gens = [np.random.default_rng([seed, int(wi), 2, int(pc)]) for wi, pc in zip(units.window_index[k0:k1], piece[k0:k1])]
    u1 = np.concatenate([g.random((int(m), 6)) for g, m in zip(gens, counts)]) if n else np.zeros((0, 6))
    uses = u1[:, 0] < P.prompt_share[crank]
    prompt = _pick(P.zipf_cum, P.zipf_offsets, crank, u1[:, 1])
    prompt = _repeat_recent(prompt, uses, kpos, crank, u1[:, 4], u1[:, 5], P.repeat_share[crank], P.repeat_lag[crank])
    key = _length_keys(P, seed, crank, prompt, uses, u1[:, 2])
    T = np.where(P.has_sessions[crank], 1 + _pick(P.turn_cum, P.turn_offsets, crank, _stratified(u1[:, 3], kpos, crank, seed, w, ordinal)), 1)

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
    shape_f = np.repeat(P.think_shape[crank], m)
    scale_f = np.repeat(P.think_scale[crank], m)
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
    v_start = hash_parts(TAG_KEY, seed, w, ordinal, 7).astype(np.float64) / 2.0**64
    kept = t_all < float(plan.span_duration_s)
    lens = _turn_lengths(plan, r, sid, is_follow, starts, length_cols, u_len, crank, first, T, v_start, kept)

    # segments, turn by turn
    frame = _prompt_segments(P, seed, crank, prompt, uses, w, ordinal, first, T, lens["input_tokens"], lens["output_tokens"])
    sess_client = P.has_sessions[crank]
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
        .then(
            pl.concat_str(
                pl.lit("s"),
                (pl.col("_w") // (1 << 16)).cast(pl.String),
                pl.when(pl.col("_w") % (1 << 16) > 0).then(pl.concat_str(pl.lit("."), (pl.col("_w") % (1 << 16)).cast(pl.String))).otherwise(pl.lit("")),
                pl.lit("-"),
                pl.col("_o").cast(pl.String),
            )
        )
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
    win_t0 = plan.units.t0_s
    n_win = len(win_t0)
    end = float(plan.span_duration_s)
    cols = [c for c in plan.output_columns if c not in CLASS_COLUMNS]  # the class stage runs after this one
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


# --------------------------------------------------------------------------------------------
# Fitting a prefix model from a trace with hash_ids
# --------------------------------------------------------------------------------------------

#: A fitted prompt is "document-style" (``tokens="input"``) when the requests of a prompt group
#: have at least this median fraction of their input in common with the group's first request.
DOCUMENT_SHARE = 0.9


def _block_table(trace: pl.DataFrame) -> pl.DataFrame:
    """One row per (request, block position): ``req, pos, block, seen`` (``seen``: the block
    occurred in an earlier request)."""
    blocks = (
        trace.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("req"), pl.col("hash_ids").cast(pl.List(pl.Int64)))
        .explode("hash_ids")
        .drop_nulls("hash_ids")
        .rename({"hash_ids": "block"})
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("req").alias("pos"))
    )
    first = blocks.group_by("block").agg(pl.col("req").min().alias("_first"))
    return blocks.join(first, on="block", how="left").with_columns((pl.col("_first") < pl.col("req")).alias("seen")).drop("_first")


def prefix_depth(trace: pl.DataFrame) -> pl.Series:
    """Per request, the number of leading ``hash_ids`` blocks already seen in an earlier
    request (its reusable prefix depth, in blocks)."""
    table = _block_table(trace)
    depth = table.filter(~pl.col("seen")).group_by("req").agg(pl.col("pos").min().alias("depth"))
    lens = trace.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("req"), pl.col("hash_ids").list.len().cast(pl.Int64).alias("n"))
    out = lens.join(depth, on="req", how="left", maintain_order="left").with_columns(pl.col("depth").fill_null(pl.col("n")))
    return out["depth"]


#: Share of follow-up turns whose input grows by more than the previous turn's output, below
#: which detected "sessions" are taken for repeated documents rather than conversations.
CONVERSATION_SHARE = 0.5


def _conversational(found: object, trace: pl.DataFrame) -> bool:
    """Whether detected sessions look like conversations: in the model a turn's input holds the
    previous input and output plus new tokens, so it grows by more than the previous output.
    Trusted as they are when the trace names its sessions (``session_id``)."""
    if found.method in ("session_id", "conversation"):
        return True
    req = found.requests.with_columns(trace["output_tokens"].alias("_o"), trace["input_tokens"].alias("_x"))
    prev = req.sort("session", "turn").with_columns(
        (pl.col("_x") - pl.col("_x").shift(1).over("session")).alias("_g"),
        pl.col("_o").shift(1).over("session").alias("_po"),
    ).filter(pl.col("turn") >= 2)
    if prev.height == 0:
        return False
    return float((prev["_g"] > prev["_po"]).mean()) >= CONVERSATION_SHARE


#: A session whose last turn is closer to the trace's end than this quantile of the think
#: times may have been cut by the end: its turn count is censored (:func:`_turn_pmf`).
CENSOR_QUANTILE = 0.95


def _turn_pmf(found: object, gaps: np.ndarray, end_s: float) -> tuple[tuple[int, float], ...]:
    """The turn-count pmf of the found sessions, corrected for sessions cut by the trace's end
    (Kaplan-Meier): a session whose last turn lies within the :data:`CENSOR_QUANTILE`
    quantile of the think times of ``end_s`` counts as still running (at risk of another turn,
    not as ended). Counts above :data:`~servegen_core.spec.MAX_TURNS` are left out."""
    per = found.requests.group_by("session").agg(pl.col("turn").max().alias("k"), pl.col("timestamp_s").max().alias("last"))
    k = per["k"].to_numpy().astype(np.int64)
    horizon = float(np.quantile(gaps, CENSOR_QUANTILE)) if len(gaps) else 0.0
    censored = (end_s - per["last"].to_numpy()) < horizon
    top = int(min(k.max(), MAX_TURNS))
    k = np.minimum(k, top)
    at_risk = np.cumsum(np.bincount(k, minlength=top + 1)[::-1])[::-1]  # sessions with at least m turns
    ended = np.bincount(k[~censored], minlength=top + 1)
    hazard = np.divide(ended, at_risk, out=np.zeros(top + 1), where=at_risk > 0)[1:]
    alive = np.concatenate([[1.0], np.cumprod(1.0 - hazard)])  # P(T > m), m = 0..top
    probs = alive[:-1] * hazard
    probs[-1] += alive[-1]  # sessions still running at the longest count seen end there
    return tuple((m + 1, float(p)) for m, p in enumerate(probs) if p > 0)


#: Quantile tables of fitted conversation growth have this many steps (``M + 1`` values).
GROWTH_QUANTILES = 200


def _quantile_table(values: np.ndarray) -> tuple[int, ...]:
    """``M + 1`` whole-number quantiles (probabilities ``i / M``, ``M`` at most
    :data:`GROWTH_QUANTILES`) of ``values``."""
    m = int(min(GROWTH_QUANTILES, max(len(values) - 1, 1)))
    q = np.quantile(values.astype(np.float64), np.arange(m + 1) / m)
    return tuple(int(v) for v in np.maximum.accumulate(np.rint(q)))


def _growth_tables(found: object, trace: pl.DataFrame) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(first_input, new_tokens)`` quantile tables of conversations: the inputs of every
    session's first turn, and per later turn the tokens beyond the previous turn's input and
    output (``x_j - x_{j-1} - o_{j-1}``). ``((), ())`` with fewer than 2 later turns."""
    req = found.requests.with_columns(trace["input_tokens"].alias("_x"), trace["output_tokens"].alias("_o"))
    firsts = req.filter(pl.col("turn") == 1)["_x"].to_numpy()
    later = (
        req.sort("session", "turn")
        .with_columns((pl.col("_x") - pl.col("_x").shift(1).over("session") - pl.col("_o").shift(1).over("session")).alias("_new"))
        .filter(pl.col("turn") >= 2)["_new"]
        .drop_nulls()
        .to_numpy()
    )
    if len(later) < 2 or len(firsts) < 2:
        return (), ()
    return tuple(max(v, 1) for v in _quantile_table(firsts)), _quantile_table(later)


def _zipf_fit(sizes: np.ndarray) -> float:
    """Maximum-likelihood Zipf exponent of group sizes ranked largest first."""
    counts = np.sort(sizes)[::-1].astype(np.float64)
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    if len(counts) < 2:
        return 0.0

    def nll(s: float) -> float:
        logw = -s * np.log(ranks)
        log_h = np.logaddexp.reduce(logw)
        return -float(np.dot(counts, logw - log_h))

    return float(minimize_scalar(nll, bounds=(0.0, 5.0), method="bounded").x)


def fit_prefix(trace: pl.DataFrame, *, block_size: int = 512, per_client: bool = False) -> PrefixSpec:
    """A ``prefix`` section fitted to a RequestTrace with ``hash_ids`` (``block_size`` tokens
    per id, 512 for Mooncake traces): the ``default`` profile fitted to the whole trace and,
    with ``per_client``, one profile per ``client_id`` fitted to that client's requests
    alone (the generator gives every client its own prompts and sessions).

    Sessions: as :func:`servegen_core.characterize.prefix.sessions` finds them (``session_id`` where the
    trace has it, else requests that extend an earlier request's complete blocks); the turn
    count pmf and the Gamma think time (the mean of the gaps between consecutive turns, the CV
    of the Gamma with their quartile ratio, :func:`_think_cv`)
    are measured. None when no session has two turns, or when the sessions were found from
    blocks and fewer than :data:`CONVERSATION_SHARE` of their follow-up turns grow by more than
    the previous output (repeated documents, as in the Mooncake trace: then every request
    counts as a first turn for the prompts).

    System prompts, over the sessions' first turns: requests whose first block is shared with
    another first turn form a prompt group; ``count`` is the number of groups,
    ``request_share`` the share of first turns in one, ``zipf_s`` the maximum-likelihood
    Zipf exponent of the group sizes. A later request of a group has in common with the
    group's first request the blocks both start with (times ``block_size``): when the median
    share of the input in common is at least :data:`DOCUMENT_SHARE`, prompts are
    document-style (``tokens="input"``, ``unique_tokens`` the median of input minus the
    tokens seen earlier); otherwise each prompt has its own length, its group's median in
    common (``lengths``, in popularity order; see :func:`_prompt_length`). None when no
    first block repeats. Sessions read from blocks alone that look like conversations are
    read again as chains of turns that hold the previous output (``method="conversation"``
    of :func:`servegen_core.characterize.prefix.sessions`).
    """
    if "hash_ids" not in trace.columns:
        msg = "fit_prefix needs a trace with a hash_ids column (block ids per request)"
        raise ValueError(msg)
    if not (isinstance(block_size, int) and block_size >= 1):
        msg = f"block_size must be a positive whole number of tokens, got {block_size!r}"
        raise ValueError(msg)
    trace = trace.filter(pl.col("hash_ids").is_not_null())
    if trace.height == 0:
        msg = "fit_prefix: no request has hash_ids"
        raise ValueError(msg)
    default = _fit_profile(trace, block_size)
    clients: list[tuple[str, PrefixProfile]] = []
    if per_client:
        for cid in sorted(trace["client_id"].unique().to_list(), key=client_sort_key):  # a loop per client
            clients.append((str(cid), _fit_profile(trace.filter(pl.col("client_id") == cid), block_size)))
    return PrefixSpec(default=default, clients=tuple(clients))


def _fit_profile(trace: pl.DataFrame, block_size: int) -> PrefixProfile:
    """One profile fitted to ``trace`` (see :func:`fit_prefix`)."""
    trace = trace.sort("timestamp_s", maintain_order=True)
    found = characterize_prefix.sessions(trace, block_tokens=block_size)
    if found.requests.height != trace.height:
        msg = f"fit_prefix: {found.reason or 'no sessions could be read'}"
        raise ValueError(msg)
    if found.method == "hash_ids" and found.multi_turn_sessions > 0 and _conversational(found, trace):
        # conversations read from blocks alone: chains of turns that hold the previous output
        found = characterize_prefix.sessions(trace, method="conversation", block_tokens=block_size)
    turn = (found.requests["turn"] - 1).to_numpy()
    sessions = None
    if found.multi_turn_sessions > 0 and not _conversational(found, trace):
        turn = np.zeros_like(turn)  # repeated documents, not conversations: left to the prompts
    elif found.multi_turn_sessions > 0:
        gaps = found.turns["gap_s"].to_numpy()
        pmf = _turn_pmf(found, gaps, float(trace["timestamp_s"].max()))
        mean_gap = float(gaps.mean()) if len(gaps) else 1.0
        cv = _think_cv(gaps, mean_gap)
        first_input, new_tokens = _growth_tables(found, trace)
        sessions = Sessions(
            turns_kind="pmf", turns_pmf=pmf, think_mean_s=max(mean_gap, 1e-3), think_cv=max(cv, 1e-3),
            first_input=first_input, new_tokens=new_tokens,
            context_tokens=int(trace["input_tokens"].max()) if new_tokens else None,
        )

    firsts = trace.filter(pl.Series(turn == 0))
    depth = prefix_depth(firsts).to_numpy()
    head = firsts["hash_ids"].list.first()
    groups = pl.DataFrame({"head": head, "depth": depth, "x": firsts["input_tokens"], "client_id": firsts["client_id"]}).with_columns(
        pl.len().over("head").alias("size"), pl.int_range(pl.len()).over("head").alias("rank")
    )
    groups = pl.concat([groups, _group_prompt_blocks(firsts)], how="horizontal")
    prompted = groups.filter(pl.col("size") >= 2)
    system_prompts = None
    if prompted.height:
        sizes = prompted.group_by("head").agg(pl.len().alias("n"))["n"].to_numpy()
        reuse = prompted.filter(pl.col("rank") > 0).with_columns(
            (pl.col("depth") * block_size).clip(upper_bound=pl.col("x")).alias("shared"),
            (pl.col("lead_blocks") * block_size).clip(upper_bound=pl.col("x")).alias("common"),
        )
        tokens, unique_tokens, lengths = _prompt_length(reuse, prompted)
        q = float(prompted.height / firsts.height)
        rep_share, rep_lag = _locality(prompted, sizes)
        system_prompts = SystemPrompts(
            repeat_share=rep_share,
            repeat_lag=rep_lag,
            count=min(int(len(sizes)), MAX_PROMPTS),
            request_share=q,
            min_quantile=_min_quantile(groups["x"].to_numpy(), float(prompted["x"].mean()), 1.0 - q),
            zipf_s=round(_zipf_fit(sizes), 6),
            tokens=tokens,
            unique_tokens=max(0, unique_tokens),
            lengths=lengths[:MAX_PROMPTS],
        )
    return PrefixProfile(system_prompts=system_prompts, sessions=sessions)


def _prompt_length(reuse: pl.DataFrame, prompted: pl.DataFrame) -> tuple[int | str, int, tuple[int, ...]]:
    """``(tokens, unique_tokens, lengths)`` of the prompts, from the later requests of each
    prompt group (``reuse``: ``head`` its group, ``x`` input tokens, ``common`` tokens shared
    from the start with the group's first request, ``shared`` with any earlier request).

    Document-style (``"input"``, ``unique_tokens`` the median of ``x - shared``) when the
    median share of the input that a request has in common with its group is at least
    :data:`DOCUMENT_SHARE` (the requests of a group differ only in a short tail); otherwise
    every prompt has its own length, its group's median ``common`` (``lengths`` in popularity
    order: ``prompted``'s group sizes, largest first; ``tokens`` their mean). A group whose
    requests share a system prompt, then a document some of them sent again, or their own
    message, is of the second kind."""
    x = reuse["x"].to_numpy().astype(np.float64)
    common = reuse["common"].to_numpy().astype(np.float64)
    if float(np.median(common / np.maximum(x, 1.0))) >= DOCUMENT_SHARE:
        return "input", max(0, int(round(float(np.median(x - reuse["shared"].to_numpy()))))), ()
    own = reuse.group_by("head").agg(pl.col("common").median().round().cast(pl.Int64).clip(lower_bound=1).alias("L"))
    order = (
        prompted.group_by("head").agg(pl.len().alias("n")).join(own, on="head", how="left")
        .sort(["n", "head"], descending=[True, False])
    )
    lengths = tuple(int(v) for v in order["L"].fill_null(1).to_list())
    return max(1, int(round(float(common.mean())))), 1, lengths


def _group_prompt_blocks(firsts: pl.DataFrame) -> pl.DataFrame:
    """Per request (rows of ``firsts``) of a group (requests with the same first block):
    ``lead_blocks``, the blocks it shares from the start with the group's first request (its
    own length for that request)."""
    rows = firsts.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("req"), pl.col("hash_ids").cast(pl.List(pl.Int64)))
    rows = rows.with_columns(pl.col("hash_ids").list.first().alias("head"))
    lead = rows.group_by("head").agg(pl.col("req").min().alias("lead"))
    blocks = rows.explode("hash_ids").drop_nulls("hash_ids").with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("req").alias("pos"))
    lead_blocks = blocks.join(lead, left_on="req", right_on="lead").select("head", "pos", pl.col("hash_ids").alias("lead_block"))
    same = blocks.join(lead_blocks, on=["head", "pos"], how="left").with_columns(
        (pl.col("hash_ids") == pl.col("lead_block")).fill_null(False).alias("same")
    )
    # shared from the start: positions before the first mismatch
    common = same.group_by("req").agg(
        pl.when(pl.col("same").all()).then(pl.len()).otherwise(pl.col("pos").filter(~pl.col("same")).min()).alias("lcp"),
        pl.col("head").first(),
    )
    out = rows.select("req").join(common.select("req", "lcp"), on="req", how="left", maintain_order="left")
    return out.select(pl.col("lcp").fill_null(0).cast(pl.Int64).alias("lead_blocks"))


def _think_cv(gaps: np.ndarray, mean_gap: float) -> float:
    """CV of the Gamma think time whose quartile ratio (q75 / q25) is the gaps' own: robust to
    a few gaps far from the rest (a turn read from blocks that was another session's, a user
    who came back after hours), which the sample CV is not. The sample CV when there are fewer
    than 8 gaps or the quartiles cannot be matched."""
    moment = float(gaps.std() / mean_gap) if len(gaps) > 1 and mean_gap > 0 else 1.0
    if len(gaps) < 8:
        return moment
    q25, q75 = np.quantile(gaps, [0.25, 0.75])
    if not q25 > 0 or not q75 > q25:
        return moment
    ratio = float(q75 / q25)

    def gap(log_k: float) -> float:
        k = math.exp(log_k)
        return float(gamma_dist.ppf(0.75, k) / gamma_dist.ppf(0.25, k)) - ratio

    lo, hi = math.log(THINK_SHAPE_RANGE[0]), math.log(THINK_SHAPE_RANGE[1])
    if not (np.isfinite(gap(lo)) and gap(lo) > 0 > gap(hi)):
        return moment
    return float(1.0 / math.sqrt(math.exp(brentq(gap, lo, hi, xtol=1e-6))))


#: Gamma shapes the quartile fit of the think time searches (CV from 20 down to 0.01).
THINK_SHAPE_RANGE = (0.0025, 1e4)


def _min_quantile(x: np.ndarray, target_mean: float, upper: float) -> float:
    """The quantile ``m`` (a multiple of 0.01, at most ``upper``) above which the inputs ``x``
    have the mean closest to ``target_mean``: the lengths of the prompted requests as a
    slice of the whole distribution (moment matching)."""
    xs = np.sort(x.astype(np.float64))
    n = len(xs)
    grid = np.round(np.arange(0.0, max(upper, 0.0) + 1e-9, 0.01), 2)
    grid = grid[grid <= upper + 1e-12]
    tail = np.concatenate([np.cumsum(xs[::-1])[::-1], [0.0]])
    lo = np.minimum((grid * n).astype(np.int64), n - 1)
    means = tail[lo] / (n - lo)
    return float(grid[int(np.argmin(np.abs(means - target_mean)))])


#: Largest distance back (in prompted requests) that the locality fit looks at.
LOCALITY_HORIZON = 100


def _chance(p: np.ndarray, k_eff: np.ndarray) -> np.ndarray:
    """``sum_i p_i (1 - (1 - p_i) ** k)`` at every (real) ``k`` of ``k_eff``: the chance that a
    prompt drawn by popularity ``p`` was drawn among ``k`` independent draws before it
    (interpolated linearly between whole ``k``)."""
    top = int(np.ceil(float(k_eff.max()))) + 1 if k_eff.size else 1
    whole = np.arange(top + 1, dtype=np.float64)
    table = (p[None, :] * (1.0 - (1.0 - p[None, :]) ** whole[:, None])).sum(axis=1)
    return np.interp(k_eff, whole, table)


#: Indirect-inference steps of the locality fit (each simulates the model at the current
#: estimate and moves the estimate by the gap between the estimator's answer and the data's).
LOCALITY_STEPS = 4


def _locality(prompted: pl.DataFrame, sizes: np.ndarray) -> tuple[float, float]:
    """``(repeat_share, repeat_lag)`` fitted to how soon prompts come back.

    :func:`_locality_estimate` reads a first answer from the distances back; it is biased (a
    closed form of a process whose copies cluster). The bias is removed by indirect
    inference: the model is simulated (fixed seed, the data's popularity and size) at the
    current answer, the estimator is applied to the simulation, and the answer moves by the
    difference to the data's estimate (:data:`LOCALITY_STEPS` times), so that the model at
    the fitted values gives back, through the same estimator, what the data gives.
    """
    target = _locality_estimate(prompted, sizes)
    n = prompted.height
    if n < 3 or target[0] <= 0:
        return target
    p = np.sort(sizes)[::-1] / sizes.sum()  # popularity order: the draws do not depend on group order
    rho, lag = target
    rng = np.random.default_rng(LOCALITY_SEED)
    for _ in range(LOCALITY_STEPS):
        got = np.mean([_simulated_estimate(p, n, rho, lag, rng) for _ in range(LOCALITY_REPLICATES)], axis=0)
        rho = float(np.clip(rho + target[0] - got[0], 0.0, 1.0))
        lag = float(np.clip(lag + target[1] - got[1], 1.0, LOCALITY_HORIZON))
    return round(rho, 2), round(lag, 1)


#: Seed of the locality fit's simulations (the fit is deterministic).
LOCALITY_SEED = 20261208
#: Simulations per indirect-inference step (their estimates are averaged).
LOCALITY_REPLICATES = 4


def _simulated_estimate(p: np.ndarray, n: int, rho: float, lag: float, rng: np.random.Generator) -> tuple[float, float]:
    """:func:`_locality_estimate` of one simulation of the model (only prompts drawn at least
    twice count as prompted, as in the data)."""
    sim = _simulate_locality(p, n, rho, lag, rng)
    n_of = np.bincount(sim["head"].to_numpy(), minlength=len(p))
    sim = sim.filter(pl.Series(n_of[sim["head"].to_numpy()] >= 2))
    return _locality_estimate(sim, n_of[n_of >= 2])


def _simulate_locality(p: np.ndarray, n: int, rho: float, lag: float, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` prompted requests of one client under the locality model (prompt by popularity
    ``p``; with probability ``rho`` the prompt of the request ``l`` back, ``l`` geometric of
    mean ``lag``): columns ``head``, ``client_id``, ``_i`` (time order)."""
    head = rng.choice(len(p), size=n, p=p)
    ell = rng.geometric(1.0 / max(lag, 1.0), size=n) if lag > 1 else np.ones(n, dtype=np.int64)
    i = np.arange(n)
    copy = (rng.random(n) < rho) & (ell <= i)
    src = i.copy()
    src[copy] = (i - ell)[copy]
    while True:
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    return pl.DataFrame({"head": head[src], "client_id": np.zeros(n, dtype=np.int64), "_i": i})


def _locality_estimate(prompted: pl.DataFrame, sizes: np.ndarray) -> tuple[float, float]:
    """A first ``(repeat_share, repeat_lag)`` from how soon prompts come back.

    For each prompted request (in time order, per client) the distance back to the last
    request with the same prompt, in prompted requests, gives ``obs(k)``: the share that
    recur within ``k``. Under the model a request copies a recent prompt with probability
    ``rho`` at a geometric lag of mean ``L``, else draws by popularity, so
    ``obs(k) = c(k) + (1 - c(k)) rho (1 - (1 - 1/L) ** k)`` with ``c(k)`` the chance of a
    recurrence within ``k`` from popularity alone (``sum_i p_i (1 - (1 - p_i) ** k')``, with
    ``k' = k (1 - rho) + rho L (1 - (1 - 1/L) ** k)`` the independent draws among the ``k``
    requests before: a copy whose source lies inside them repeats a prompt already there).
    The closed form still ignores how copies cluster; :func:`_locality` removes the rest of
    the bias. ``rho`` (step 0.01) and ``L`` (1..:data:`LOCALITY_HORIZON`) minimize the squared error
    over ``k = 1..LOCALITY_HORIZON``.
    """
    seq = prompted.with_columns(pl.int_range(pl.len()).over("client_id").alias("_pos"))
    dist = seq.with_columns((pl.col("_pos") - pl.col("_pos").shift(1).over("client_id", "head")).alias("_d"))["_d"]
    d = dist.drop_nulls().to_numpy()
    n = prompted.height
    if n < 3 or len(d) == 0:
        return 0.0, 10.0
    k = np.arange(1, LOCALITY_HORIZON + 1)
    obs = np.searchsorted(np.sort(d), k, side="right") / n
    p = np.sort(sizes)[::-1] / sizes.sum()  # popularity order: sums do not depend on group order
    rho = np.round(np.arange(0.0, 1.0001, 0.01), 2)
    lags = np.arange(1, LOCALITY_HORIZON + 1, dtype=np.float64)
    within = 1.0 - (1.0 - 1.0 / lags[:, None]) ** k[None, :]  # (L, k)
    # independent draws among the k requests before: the copies whose source lies inside the
    # window repeat a prompt already there (expected rho * L * within(k) copies reach outside)
    k_eff = k[None, None, :] * (1.0 - rho[:, None, None]) + rho[:, None, None] * lags[None, :, None] * within[None, :, :]
    chance = _chance(p, k_eff)
    model = chance + (1.0 - chance) * rho[:, None, None] * within[None, :, :]
    err = ((model - obs[None, None, :]) ** 2).sum(axis=2)
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(rho[i]), float(lags[j])
