"""Simulate continuous-batching LLM serving replicas: the iteration-level engine.

The simulator
-------------
:func:`simulate` replays requests (arrival time, input tokens, output tokens) on ``N``
replicas of a vLLM-like server and returns per-request latencies (queueing delay, TTFT, TPOT,
end-to-end) and per-replica statistics (utilization, batch sizes, KV-cache use over time).

- **Router.** ``"round_robin"`` sends request ``i`` to replica ``i mod N``.
  ``"least_outstanding"`` sends each request to the replica with the fewest outstanding
  tokens. To keep the replicas independent (each is then simulated on its own), outstanding
  tokens are *estimated* rather than read from the simulation: every replica drains its
  assigned work (input + output tokens) as a fluid at its nominal token rate (the cost
  model's throughput for a batch of 32 mean-sized requests), so a replica's backlog at time
  ``t`` is ``rate x max(0, V - t)`` and the router picks the smallest virtual finish time
  ``V``. This is an approximation of a router that sees the servers' true queues.
- **Scheduler** (per replica, per iteration). Waiting requests are served first come, first
  served. *Prefill-first* (vLLM's default without chunked prefill): when the head of the
  queue can be admitted, an iteration runs only prefills, taking queued prompts while their
  tokens fit ``max_batched_tokens`` (a longer prompt runs alone), the running sequences stay
  under ``max_num_seqs`` and their KV blocks fit the free cache minus a 1 % watermark; the
  prefill produces each request's first token. Otherwise an iteration decodes one token for
  every running sequence. *Chunked prefill* (Sarathi-style, ``chunked_prefill=True``): every
  iteration decodes all running sequences and fills the rest of the token budget with chunks
  of the admitted prompts, in order.
- **KV cache.** Blocks of ``block_size`` tokens; capacity from the cost model (GPU memory x
  ``gpu_memory_utilization`` minus the weights). A sequence holds ``ceil(tokens / block)``
  blocks. When a decode step would need more blocks than exist, the most recently admitted
  sequence is preempted (its blocks freed) and goes back to the head of the queue; when
  readmitted, its prompt and the tokens it had generated are prefilled again (recompute).
  A request that cannot fit an empty cache is rejected (``completed`` false).
- **Time** comes from a :class:`CostModel`: an iteration's duration is a function of the
  prefill tokens, the attention pairs, the KV tokens read and the number of decoding
  sequences in it.

Speed: a replica's state is kept in running sums, so each scheduler *event* costs O(1)
(O(log n) for the completion heap) whatever the batch size: the decode context of all
running sequences is ``S0 + B x G`` (``G`` counts decode iterations), their KV blocks are
``sum q + B x (G // 16) + #{r >= 16 - G % 16}`` from per-residue counts, and a stretch of
decode-only iterations (the batch does not change until the next arrival or completion or
cache overflow) is advanced in one jump with the closed-form sum of iteration times (the
context grows linearly, so each iteration time is linear in the step and their sum is
quadratic). Replicas are simulated one after the other (in parallel processes with
``workers > 1``). The loop runs once per event (an arrival admitted, a completion, a cache
overflow), never once per token.

The iteration times come from a :class:`~servegen_core.serve.costmodel.CostModel`
(:mod:`servegen_core.serve.costmodel`); the replicas a workload needs for an objective, and
realistic vs naive workloads, are in :mod:`servegen_core.serve.whatif`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from servegen_core.errors import SpecError
from servegen_core.limits import MAX_BATCHED_TOKENS, MAX_BLOCK_SIZE, MAX_NUM_SEQS, MAX_REPLICAS, max_workers
from servegen_core.serve.costmodel import CostModel, check_count

__all__ = ["ROUTERS", "ServerConfig", "SimResult", "request_columns", "route", "simulate"]

#: Routers of :func:`route` (see the module docstring).
ROUTERS = ("round_robin", "least_outstanding")


@dataclass(frozen=True)
class ServerConfig:
    """Scheduler settings of one replica (vLLM's names).

    ``max_num_seqs`` running sequences at most; ``max_batched_tokens`` tokens per iteration
    (prefill-first: prompt tokens per prefill iteration, a longer prompt runs alone; chunked:
    decode + prefill tokens); ``block_size`` tokens per KV block; ``watermark`` share of the
    blocks kept free when admitting a prompt.
    """

    max_num_seqs: int = 256
    max_batched_tokens: int = 8192
    block_size: int = 16
    chunked_prefill: bool = False
    watermark: float = 0.01

    def __post_init__(self) -> None:
        for key, hi in (("max_num_seqs", MAX_NUM_SEQS), ("max_batched_tokens", MAX_BATCHED_TOKENS), ("block_size", MAX_BLOCK_SIZE)):
            check_count(key, getattr(self, key), hi)
        if not 0 <= self.watermark < 1:
            raise SpecError("watermark", f"must lie in [0, 1), got {self.watermark}")
        if self.chunked_prefill and self.max_batched_tokens <= self.max_num_seqs:
            msg = "with chunked prefill, max_batched_tokens must exceed max_num_seqs (decodes take one token each)"
            raise SpecError("max_batched_tokens", msg)


@dataclass(frozen=True)
class SimResult:
    """Output of :func:`simulate`.

    ``requests``: one row per request in input order: ``arrival_s, replica, input_tokens,
    output_tokens, completed, queue_s`` (arrival to first scheduled), ``ttft_s``, ``tpot_s``
    (mean time per output token after the first; null for one-token outputs), ``e2e_s``,
    ``preemptions``. ``replicas``: one row per replica: ``requests, busy_s, utilization``
    (busy time over the simulated span), ``mean_batch`` (time-weighted over busy time),
    ``max_batch, peak_kv_frac, preemptions, rejected, prefill_tokens, decode_tokens``.
    ``timeline``: per replica and ``bin_s`` bin: ``t_s`` (bin start), ``busy_frac``,
    ``batch`` (time-weighted mean), ``kv_frac`` (time-weighted mean KV blocks used / capacity);
    a step spanning several bins is split over them (the last bin takes the drain after the
    last arrival).
    """

    requests: pl.DataFrame
    replicas: pl.DataFrame
    timeline: pl.DataFrame
    n_replicas: int
    cost: CostModel
    config: ServerConfig
    router: str
    span_s: float
    bin_s: float = 10.0

    def percentile(self, column: str, q: float) -> float:
        """The ``q``-th percentile (0-100) of a latency column over completed requests (NaN if none)."""
        s = self.requests.filter(pl.col("completed"))[column].drop_nulls().drop_nans()
        return float(np.percentile(s.to_numpy(), q)) if len(s) else math.nan

    def fleet_timeline(self) -> pl.DataFrame:
        """The timeline over all replicas, per bin: ``t_s``, ``batch_mean``/``batch_max`` (the
        replicas' time-weighted batch sizes), ``kv_frac_mean``/``kv_frac_max`` and ``busy_frac_mean``."""
        if self.timeline.height == 0:
            return pl.DataFrame(schema={c: pl.Float64 for c in ("t_s", "batch_mean", "batch_max", "kv_frac_mean", "kv_frac_max", "busy_frac_mean")})
        return (
            self.timeline.group_by("t_s")
            .agg(
                pl.col("batch").mean().alias("batch_mean"),
                pl.col("batch").max().alias("batch_max"),
                pl.col("kv_frac").mean().alias("kv_frac_mean"),
                pl.col("kv_frac").max().alias("kv_frac_max"),
                pl.col("busy_frac").mean().alias("busy_frac_mean"),
            )
            .sort("t_s")
        )

    def summary(self) -> dict[str, float]:
        """p50/p90/p99 of TTFT, TPOT, end-to-end and queueing (seconds), plus counts and mean utilization."""
        out: dict[str, float] = {"replicas": float(self.n_replicas), "requests": float(self.requests.height)}
        out["completed"] = float(self.requests["completed"].sum())
        for col in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
            vals = self.requests.filter(pl.col("completed"))[col].drop_nulls().drop_nans().to_numpy()
            for q in (50, 90, 99):
                out[f"{col[:-2]}_p{q}_s"] = float(np.percentile(vals, q)) if len(vals) else math.nan
        out["utilization_mean"] = float(self.replicas["utilization"].mean()) if self.replicas.height else math.nan
        out["preemptions"] = float(self.replicas["preemptions"].sum()) if self.replicas.height else 0.0
        return out


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def route(
    arrival_s: np.ndarray,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    n_replicas: int,
    *,
    router: str = "round_robin",
    cost: CostModel | None = None,
) -> np.ndarray:
    """Replica index of every request (see the module docstring for the two routers)."""
    n = len(arrival_s)
    if router == "round_robin":
        return np.arange(n, dtype=np.int64) % n_replicas
    if router != "least_outstanding":
        raise SpecError("router", f"must be one of {', '.join(ROUTERS)}, got {router!r}")
    if cost is None:
        raise SpecError("router", "least_outstanding needs a cost model for the replicas' nominal token rate")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rate = cost.token_rate(float(np.mean(input_tokens)), float(np.mean(output_tokens)))
    work = ((np.asarray(input_tokens, dtype=float) + np.asarray(output_tokens, dtype=float)) / rate).tolist()
    heap = [(-math.inf, r) for r in range(n_replicas)]
    out = np.empty(n, dtype=np.int64)
    times = np.asarray(arrival_s, dtype=float).tolist()
    replace = heapq.heapreplace
    for i in range(n):  # one heap operation per request (the routing decision is sequential)
        v, r = heap[0]
        t = times[i]
        replace(heap, ((v if v > t else t) + work[i], r))
        out[i] = r
    return out


# --------------------------------------------------------------------------------------------
# One replica
# --------------------------------------------------------------------------------------------


def _sum_lines(a1: float, b1: float, a2: float, b2: float, k: int) -> float:
    """sum_{j=0}^{k-1} max(a1 + b1 j, a2 + b2 j)."""
    if k <= 0:
        return 0.0
    d0 = a1 - a2
    dk = d0 + (b1 - b2) * (k - 1)
    if d0 >= 0 and dk >= 0:
        return a1 * k + b1 * k * (k - 1) / 2
    if d0 <= 0 and dk <= 0:
        return a2 * k + b2 * k * (k - 1) / 2
    m = min(k, int(math.floor(-d0 / (b1 - b2))) + 1)  # steps 0..m-1 keep the sign of d0
    first = (a1, b1) if d0 > 0 else (a2, b2)
    second = (a2, b2) if d0 > 0 else (a1, b1)
    s = first[0] * m + first[1] * m * (m - 1) / 2
    s += second[0] * (k - m) + second[1] * (k * (k - 1) - m * (m - 1)) / 2
    return s


def _steps_to_reach(a1: float, b1: float, a2: float, b2: float, target: float, kmax: int) -> int:
    """Smallest k in [1, kmax] with ``_sum_lines(k) >= target`` (kmax if none)."""
    if target <= 0:
        return 1
    a, b = (a1, b1) if a1 >= a2 else (a2, b2)
    if b > 0:
        # b/2 k^2 + (a - b/2) k - target = 0
        p = a - b / 2
        k = int(math.ceil((-p + math.sqrt(p * p + 2 * b * target)) / b))
    else:
        k = int(math.ceil(target / a))
    k = max(1, min(k, kmax))
    # the dominant line at j = 0 may lose later on: correct by bisection if needed
    if _sum_lines(a1, b1, a2, b2, k) >= target:
        lo, hi = 0, k  # S(lo) < target <= S(hi)
        if k > 1 and _sum_lines(a1, b1, a2, b2, k - 1) < target:
            return k
    else:
        if _sum_lines(a1, b1, a2, b2, kmax) < target:
            return kmax
        lo, hi = k, kmax
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _sum_lines(a1, b1, a2, b2, mid) >= target:
            hi = mid
        else:
            lo = mid
    return max(hi, 1)


def _simulate_replica(args: tuple) -> dict[str, Any]:
    """Simulate one replica; returns per-request arrays (local order) and per-replica statistics."""
    at, inp, outp, cost, cfg, bin_s, span_s = args
    n = len(at)
    at_l = at.tolist()
    in_l = inp.tolist()
    out_l = outp.tolist()
    nan = math.nan
    sched = [nan] * n
    first = [nan] * n
    finish = [nan] * n
    npre = [0] * n
    gen = [0] * n  # tokens generated so far
    gj = [0] * n  # decode counter at (re)admission
    gfin = [-1] * n  # decode counter at which the request completes
    rejected = [False] * n

    bs = cfg.block_size
    cap = cost.kv_tokens // bs  # blocks
    wm = int(cfg.watermark * cap)
    max_seqs = cfg.max_num_seqs
    budget = cfg.max_batched_tokens
    chunked = cfg.chunked_prefill
    c0, cT, cA, cK, cS = cost.compute
    m0, mT, mA, mK, mS = cost.memory
    ca = cA + cK
    ma = mA + mK

    nbins = max(1, int(math.ceil(max(span_s, 1e-9) / bin_s)) + 1)
    tb_busy = [0.0] * nbins
    tb_batch = [0.0] * nbins
    tb_kv = [0.0] * nbins

    t = 0.0
    G = 0
    heap: list[tuple[int, int]] = []
    running: dict[int, int] = {}  # rid -> a (KV tokens at decode counter G are a + G); insertion = admission order
    B = 0
    S0 = 0
    qsum = 0
    rcnt = [0] * bs
    waiting: deque[int] = deque()
    prefilling: deque[int] = deque()  # chunked: admitted prompts being prefilled
    done_tok = [0] * n  # chunked: prompt tokens prefilled so far
    reserved = 0  # chunked: blocks held by prompts being prefilled
    nxt = 0
    busy = 0.0
    bmax = 0
    kv_peak = 0
    n_preempt = 0
    prefill_tokens = 0
    decode_tokens = 0
    heappush = heapq.heappush
    heappop = heapq.heappop
    isnan = math.isnan

    def blocks_at(g: int) -> int:
        s = g % bs
        return qsum + B * (g // bs) + (sum(rcnt[bs - s :]) if s else 0)

    def join(rid: int, p: int) -> None:
        # the request holds p tokens of KV and has generated gen[rid] tokens; decoding resumes at G
        nonlocal B, S0, qsum
        a = p + 1 - G
        running[rid] = a
        gj[rid] = G
        gf = G + out_l[rid] - gen[rid]
        gfin[rid] = gf
        heappush(heap, (gf, rid))
        B += 1
        S0 += a
        q, r = divmod(a + bs - 1, bs)
        qsum += q
        rcnt[r] += 1

    def leave(rid: int) -> None:
        nonlocal B, S0, qsum
        a = running.pop(rid)
        B -= 1
        S0 -= a
        q, r = divmod(a + bs - 1, bs)
        qsum -= q
        rcnt[r] -= 1

    def record(t0: float, dt: float, b: int, kvb: int) -> None:
        # split the step [t0, t0 + dt) over the bins it covers
        i = int(t0 / bin_s)
        end = t0 + dt
        while True:
            j = i if i < nbins else nbins - 1
            edge = (i + 1) * bin_s
            part = (end if end < edge or i >= nbins - 1 else edge) - t0
            tb_busy[j] += part
            tb_batch[j] += b * part
            tb_kv[j] += kvb * part
            if end <= edge or i >= nbins - 1:
                return
            t0 = edge
            i += 1

    while True:
        while nxt < n and at_l[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        # ---------------------------------------------------------------- prefill work
        if chunked:
            # admit new prompts (FIFO) while KV and sequence slots allow
            if waiting:
                free = cap - blocks_at(G) - reserved - wm
                while waiting and B + len(prefilling) < max_seqs:
                    rid = waiting[0]
                    p = in_l[rid] + gen[rid]
                    need = -(-(p + 1) // bs)
                    if need > free:
                        break
                    waiting.popleft()
                    free -= need
                    reserved += need
                    done_tok[rid] = 0
                    prefilling.append(rid)
                    if isnan(sched[rid]):
                        sched[rid] = t
            if prefilling:
                room = budget - B
                T = 0
                A = 0.0
                K = 0
                finished = []
                for rid in prefilling:  # the prompts in this iteration's token budget
                    if room <= 0:
                        break
                    p = in_l[rid] + gen[rid]
                    d = done_tok[rid]
                    c = min(p - d, room)
                    room -= c
                    T += c
                    A += c * d + c * (c + 1) / 2
                    K += d
                    done_tok[rid] = d + c
                    if d + c >= p:
                        finished.append(rid)
                C = S0 + B * G
                dt = max(c0 + cT * T + cA * (A + C) + cK * (K + C) + cS * B, m0 + mT * T + mA * (A + C) + mK * (K + C) + mS * B)
                kvb = blocks_at(G) + reserved
                record(t, dt, B + len(finished), kvb)
                if kvb > kv_peak:
                    kv_peak = kvb
                t += dt
                busy += dt
                prefill_tokens += T
                decode_tokens += B
                if B:
                    G += 1
                for rid in finished:
                    prefilling.popleft()  # finished prompts are at the head, in order
                    p = in_l[rid] + gen[rid]
                    reserved -= -(-(p + 1) // bs)
                    if isnan(first[rid]):
                        first[rid] = t
                    gen[rid] += 1
                    if gen[rid] >= out_l[rid]:
                        finish[rid] = t
                    else:
                        join(rid, p)
                if B > bmax:
                    bmax = B
                while heap and heap[0][0] <= G:
                    gf, rid = heappop(heap)
                    if gfin[rid] != gf or rid not in running:
                        continue
                    leave(rid)
                    gen[rid] = out_l[rid]
                    finish[rid] = t
                # KV overflow during chunked iterations: preempt the newest running sequences
                while B and blocks_at(G) + reserved > cap:
                    rid = next(reversed(running))
                    gen[rid] += G - gj[rid]
                    leave(rid)
                    npre[rid] += 1
                    n_preempt += 1
                    waiting.appendleft(rid)
                continue
        elif waiting and B < max_seqs:
            s = G % bs
            used = qsum + B * (G // bs) + (sum(rcnt[bs - s :]) if s else 0)
            free = cap - used - wm
            tok = 0
            A = 0.0
            batch = []
            while waiting and B + len(batch) < max_seqs:
                rid = waiting[0]
                p = in_l[rid] + gen[rid]
                need = -(-(p + 1) // bs)
                if (batch and tok + p > budget) or need > free:
                    break
                waiting.popleft()
                free -= need
                used += need
                tok += p
                A += p * (p + 1) / 2
                batch.append(rid)
            if batch:
                dt = max(c0 + cT * tok + cA * A, m0 + mT * tok + mA * A)
                t0 = t
                t += dt
                busy += dt
                prefill_tokens += tok
                for rid in batch:  # each request is admitted once (again after a preemption)
                    if isnan(sched[rid]):
                        sched[rid] = t0
                    if isnan(first[rid]):
                        first[rid] = t
                    g = gen[rid]
                    p = in_l[rid] + g
                    g += 1
                    gen[rid] = g
                    if g >= out_l[rid]:
                        finish[rid] = t
                        used -= -(-(p + 1) // bs)
                        continue
                    # join the decoding batch (inlined join())
                    a = p + 1 - G
                    running[rid] = a
                    gj[rid] = G
                    gf = G + out_l[rid] - g
                    gfin[rid] = gf
                    heappush(heap, (gf, rid))
                    B += 1
                    S0 += a
                    q, r = divmod(a + bs - 1, bs)
                    qsum += q
                    rcnt[r] += 1
                i = int(t0 / bin_s)
                if i < nbins - 1 and t <= (i + 1) * bin_s:
                    tb_busy[i] += dt
                    tb_batch[i] += len(batch) * dt
                    tb_kv[i] += used * dt
                else:
                    record(t0, dt, len(batch), used)
                if B > bmax:
                    bmax = B
                if used > kv_peak:
                    kv_peak = used
                continue
        # ---------------------------------------------------------------- nothing running
        if B == 0:
            if waiting and not prefilling:
                # an empty server could not admit the head: it can never fit
                rid = waiting.popleft()
                rejected[rid] = True
                continue
            if nxt < n:
                if at_l[nxt] > t:
                    t = at_l[nxt]
                continue
            break
        # ---------------------------------------------------------------- decode stretch
        k = heap[0][0] - G
        C0 = S0 + B * G
        a1 = c0 + cS * B + ca * C0
        b1 = ca * B
        a2 = m0 + mS * B + ma * C0
        b2 = ma * B
        # time of k steps: one line dominates all of them in the common case (inlined)
        d0 = a1 - a2
        dk = d0 + (b1 - b2) * (k - 1)
        if d0 >= 0 and dk >= 0:
            dt = a1 * k + b1 * k * (k - 1) * 0.5
        elif d0 <= 0 and dk <= 0:
            dt = a2 * k + b2 * k * (k - 1) * 0.5
        else:
            dt = _sum_lines(a1, b1, a2, b2, k)
        if nxt < n and not waiting:
            target = at_l[nxt] - t
            if dt > target:
                k = _steps_to_reach(a1, b1, a2, b2, target, k)
                dt = _sum_lines(a1, b1, a2, b2, k)
        # KV blocks: iteration G + j holds blocks_at(G + j); find the last one that fits
        overflow = False
        g = G + k - 1
        if qsum + B * (g // bs + 1) > cap and blocks_at(g) > cap:  # cheap upper bound first
            overflow = True
            if blocks_at(G) > cap:
                k = 0
            else:
                lo, hi = 0, k - 1  # blocks_at(G + lo) <= cap < blocks_at(G + hi)
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if blocks_at(G + mid) > cap:
                        hi = mid
                    else:
                        lo = mid
                k = hi
            dt = _sum_lines(a1, b1, a2, b2, k)
        if k > 0:
            g = G + k - 1
            s = g % bs
            kvb = qsum + B * (g // bs) + (sum(rcnt[bs - s :]) if s else 0)
            i = int(t / bin_s)
            if i < nbins - 1 and t + dt <= (i + 1) * bin_s:
                tb_busy[i] += dt
                tb_batch[i] += B * dt
                tb_kv[i] += kvb * dt
            else:
                record(t, dt, B, kvb)
            if kvb > kv_peak:
                kv_peak = kvb
            if B > bmax:
                bmax = B
            t += dt
            busy += dt
            decode_tokens += B * k
            G += k
            while heap and heap[0][0] <= G:
                gf, rid = heappop(heap)
                if gfin[rid] != gf:
                    continue
                a = running.pop(rid, None)
                if a is None:
                    continue
                # leave the batch (inlined leave())
                B -= 1
                S0 -= a
                q, r = divmod(a + bs - 1, bs)
                qsum -= q
                rcnt[r] -= 1
                gen[rid] = out_l[rid]
                finish[rid] = t
        if overflow:
            while B and blocks_at(G) > cap:
                rid = next(reversed(running))
                gen[rid] += G - gj[rid]
                leave(rid)
                npre[rid] += 1
                n_preempt += 1
                waiting.appendleft(rid)

    return {
        "sched": np.asarray(sched),
        "first": np.asarray(first),
        "finish": np.asarray(finish),
        "npre": np.asarray(npre, dtype=np.int64),
        "rejected": np.asarray(rejected, dtype=bool),
        "busy": busy,
        "bmax": bmax,
        "kv_peak": kv_peak / cap if cap else 0.0,
        "n_preempt": n_preempt,
        "prefill_tokens": prefill_tokens,
        "decode_tokens": decode_tokens,
        "tb_busy": np.asarray(tb_busy),
        "tb_batch": np.asarray(tb_batch),
        "tb_kv": np.asarray(tb_kv) / cap if cap else np.zeros(nbins),
        "end": t,
    }


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


def request_columns(trace: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival seconds (float), input and output tokens (int, at least 1) of ``requests``.

    :class:`SpecError` when a ``timestamp_s``, ``input_tokens`` or ``output_tokens`` column is
    missing, holds a missing value, or a token count is negative.
    """
    for col in ("timestamp_s", "input_tokens", "output_tokens"):
        if col not in trace.columns:
            raise SpecError("trace", f"the requests need a {col!r} column")
    t = trace["timestamp_s"].cast(pl.Float64).to_numpy()
    i = trace["input_tokens"].cast(pl.Int64).to_numpy()
    o = trace["output_tokens"].cast(pl.Int64).to_numpy()
    if trace.height and (np.isnan(t).any() or trace["input_tokens"].null_count() or trace["output_tokens"].null_count()):
        raise SpecError("trace", "timestamps and token counts must not be missing")
    if trace.height and (i.min() < 0 or o.min() < 0):
        raise SpecError("trace", "input_tokens and output_tokens must be >= 0")
    # a server prefills at least one token and generates at least one
    return t, np.maximum(i, 1), np.maximum(o, 1)


def simulate(
    requests: pl.DataFrame,
    cost: CostModel,
    *,
    replicas: int = 1,
    router: str = "round_robin",
    config: ServerConfig | None = None,
    bin_s: float = 10.0,
    workers: int = 1,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Simulate ``requests`` (``timestamp_s, input_tokens, output_tokens``) on ``replicas`` servers.

    Token counts of 0 are served as 1 (a server prefills and generates at least one token).

    Every request is simulated until it completes (the server drains after the last arrival).
    ``workers > 1`` simulates replicas in that many processes. ``progress`` is called with the
    share of replicas done (0..1). See the module docstring for the model.
    """
    config = config or ServerConfig()
    check_count("replicas", replicas, MAX_REPLICAS)
    check_count("workers", workers, max_workers())
    if router not in ROUTERS:
        raise SpecError("router", f"must be one of {', '.join(ROUTERS)}, got {router!r}")
    if not (bin_s > 0 and math.isfinite(bin_s)):
        raise SpecError("bin_s", f"must be a positive number, got {bin_s}")
    replicas = int(replicas)
    t, inp, outp = request_columns(requests)
    order = np.argsort(t, kind="stable")
    t0 = float(t[order[0]]) if len(t) else 0.0
    ts = t[order] - t0
    ins = inp[order]
    outs = outp[order]
    span = float(ts[-1]) if len(ts) else 0.0
    rep_sorted = route(ts, ins, outs, replicas, router=router, cost=cost)
    jobs = []
    members = []
    for r in range(replicas):  # one job per replica
        idx = np.flatnonzero(rep_sorted == r)
        members.append(idx)
        jobs.append((ts[idx], ins[idx], outs[idx], cost, config, float(bin_s), span))
    results: list[dict[str, Any]] = []
    if workers > 1 and replicas > 1:
        with ProcessPoolExecutor(max_workers=min(workers, replicas)) as ex:
            for i, res in enumerate(ex.map(_simulate_replica, jobs)):
                results.append(res)
                if progress:
                    progress((i + 1) / replicas)
    else:
        for i, job in enumerate(jobs):
            results.append(_simulate_replica(job))
            if progress:
                progress((i + 1) / replicas)

    n = len(ts)
    sched = np.full(n, np.nan)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    npre = np.zeros(n, dtype=np.int64)
    rejected = np.zeros(n, dtype=bool)
    rows = []
    tl = []
    horizon = max(span, max((res["end"] for res in results), default=0.0))
    for r, (idx, res) in enumerate(zip(members, results, strict=True)):
        sched[idx] = res["sched"] + 0.0
        first[idx] = res["first"]
        finish[idx] = res["finish"]
        npre[idx] = res["npre"]
        rejected[idx] = res["rejected"]
        busy = res["busy"]
        rows.append(
            {
                "replica": r,
                "requests": len(idx),
                "busy_s": busy,
                "utilization": busy / horizon if horizon > 0 else 0.0,
                "mean_batch": float(res["tb_batch"].sum() / busy) if busy > 0 else 0.0,
                "max_batch": res["bmax"],
                "peak_kv_frac": res["kv_peak"],
                "preemptions": res["n_preempt"],
                "rejected": int(res["rejected"].sum()),
                "prefill_tokens": res["prefill_tokens"],
                "decode_tokens": res["decode_tokens"],
            }
        )
        nb = len(res["tb_busy"])
        with np.errstate(invalid="ignore", divide="ignore"):
            tl.append(
                pl.DataFrame(
                    {
                        "replica": np.full(nb, r, dtype=np.int64),
                        "t_s": np.arange(nb) * float(bin_s),
                        "busy_frac": np.minimum(res["tb_busy"] / bin_s, 1.0),
                        "batch": np.where(res["tb_busy"] > 0, res["tb_batch"] / bin_s, 0.0),
                        "kv_frac": res["tb_kv"] / bin_s,
                    }
                )
            )
    completed = ~np.isnan(finish)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outs > 1, (finish - first) / np.maximum(outs - 1, 1), np.nan)
    local = pl.DataFrame(
        {
            "arrival_s": ts + t0,
            "replica": rep_sorted,
            "input_tokens": ins,
            "output_tokens": outs,
            "completed": completed,
            "queue_s": sched - ts,
            "ttft_s": first - ts,
            "tpot_s": tpot,
            "e2e_s": finish - ts,
            "preemptions": npre,
        }
    ).with_columns(pl.col(c).fill_nan(None) for c in ("queue_s", "ttft_s", "tpot_s", "e2e_s"))
    # back to input order
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    req = local[inverse] if n else local
    return SimResult(
        requests=req,
        replicas=pl.DataFrame(rows),
        timeline=pl.concat(tl) if tl else pl.DataFrame(),
        n_replicas=replicas,
        cost=cost,
        config=config,
        router=router,
        span_s=span,
        bin_s=float(bin_s),
    )

