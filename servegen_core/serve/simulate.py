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
  served. *Chunked prefill* is the default, as in current vLLM (the V1 engine always chunks
  prefills; ``vllm serve`` defaults, ``EngineArgs.get_batch_defaults`` in vLLM 0.10-0.11: a
  token budget of 2,048 and 256 sequences, 8,192 and 1,024 on GPUs of 70 GiB or more other
  than the A100; :class:`ServerConfig` defaults to 8,192 tokens and 256 sequences). *Prefill-
  first* (vLLM V0 without chunked prefill, ``chunked_prefill=False``): when the head of the
  queue can be admitted, an iteration runs only prefills, taking queued prompts while their
  tokens fit ``max_batched_tokens`` (a longer prompt runs alone), the running sequences stay
  under ``max_num_seqs`` and their KV blocks fit the free cache minus a 1 % watermark; the
  prefill produces each request's first token. Otherwise an iteration decodes one token for
  every running sequence. *Chunked prefill* (Sarathi-style): every
  iteration decodes all running sequences and fills the rest of the token budget with chunks
  of the admitted prompts, in order.
- **KV cache.** Blocks of ``block_size`` tokens; capacity from the cost model (GPU memory x
  ``gpu_memory_utilization`` minus the weights). A sequence holds ``ceil(tokens / block)``
  blocks. When a decode step would need more blocks than exist, the most recently admitted
  sequence is preempted (its blocks freed) and goes back to the head of the queue; when
  readmitted, its prompt and the tokens it had generated are prefilled again (recompute).
  A request that cannot fit an empty cache is rejected (``completed`` false).
- **Context limit.** A request whose prompt plus output tokens exceed the cost model's
  ``max_context`` (the model's ``max_position_embeddings``) is refused on arrival, as vLLM
  answers such a request with an error: it is never routed nor served (``refused`` true,
  ``completed`` false, no latencies) and :meth:`SimResult.summary` counts it apart.
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

import numpy as np
import polars as pl

from servegen_core.errors import SpecError
from servegen_core.limits import MAX_BATCHED_TOKENS, MAX_BLOCK_SIZE, MAX_NUM_SEQS, MAX_REPLICAS, max_workers
from servegen_core.serve.classes import PriorityWaiting, priorities_of
from servegen_core.serve.costmodel import CostModel, check_count
from servegen_core.serve.sessions import SESSION_MODES, check_session_mode, has_sessions, session_roots, turn_predecessors

__all__ = ["ROUTERS", "SESSION_MODES", "ServerConfig", "SimResult", "request_columns", "route", "route_sessions", "session_links", "simulate"]

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
    chunked_prefill: bool = True
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

    ``requests``: one row per request in input order: ``arrival_s, replica`` (null when
    refused), ``input_tokens, output_tokens, completed, refused`` (longer than the model's
    context), ``queue_s`` (arrival to first scheduled), ``ttft_s``, ``tpot_s``
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
        """p50/p90/p95/p99 of TTFT, TPOT, end-to-end and queueing (seconds) over completed requests, the
        counts (``requests``, ``completed``, ``refused``: longer than the context) and mean utilization."""
        out: dict[str, float] = {"replicas": float(self.n_replicas), "requests": float(self.requests.height)}
        out["completed"] = float(self.requests["completed"].sum())
        out["refused"] = float(self.requests["refused"].sum()) if "refused" in self.requests.columns else 0.0
        for col in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
            vals = self.requests.filter(pl.col("completed"))[col].drop_nulls().drop_nans().to_numpy()
            for q in (50, 90, 95, 99):
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


#: One replica's work: arrival seconds (sorted), input and output tokens of its requests, the
#: cost model, the scheduler settings, the timeline bin and the span of the whole workload;
#: optionally the closed-loop links (each request's previous turn on the replica, -1 none, and
#: its think time; :mod:`servegen_core.serve.sessions`) and the priorities (or None).
_ReplicaJob = tuple  # (at, inp, out, cost, config, bin_s, span_s[, links[, priorities]])


@dataclass(frozen=True)
class _ReplicaRun:
    """What one replica's simulation returns: per request (in the replica's arrival order) the
    first-scheduled, first-token and finish times (NaN if never), preemptions and rejection;
    per replica the busy seconds, the largest batch, the peak KV share, preemptions, prefill
    and decode tokens, the per-bin busy seconds, batch x seconds and KV share x seconds, and
    the time the replica went idle for good; with closed-loop links, the release time of
    every request (else None)."""

    sched: np.ndarray
    first: np.ndarray
    finish: np.ndarray
    npre: np.ndarray
    rejected: np.ndarray
    busy: float
    bmax: int
    kv_peak: float
    n_preempt: int
    prefill_tokens: int
    decode_tokens: int
    tb_busy: np.ndarray
    tb_batch: np.ndarray
    tb_kv: np.ndarray
    end: float
    release: np.ndarray | None = None


class _Replica:
    """The scheduler state of one replica, advanced one event at a time by :meth:`run`.

    Per request: ``gen`` tokens generated so far, ``gj`` the decode counter at its (re)admission,
    ``gfin`` the decode counter at which it completes. The decoding batch is kept in running
    sums: ``running`` maps a request to ``a`` (it holds ``a + G`` KV tokens at decode counter
    ``G``; insertion order is admission order), ``B`` sequences, ``S0`` the sum of their ``a``,
    ``qsum`` and ``rcnt`` the quotient sum and remainder counts of their blocks, so that the
    KV blocks at any counter take O(block size) (:meth:`blocks_at`). Chunked prefill keeps the
    admitted prompts in ``prefilling``, their tokens prefilled so far in ``done_tok`` and the
    blocks they hold in ``reserved``.
    """

    __slots__ = (
        "B", "G", "S0", "at", "bin_s", "bmax", "bs", "budget", "busy", "cap", "chunked", "compute", "decode_tokens",
        "done_tok", "finish", "first", "gen", "gfin", "gj", "heap", "inp", "kv_peak", "max_seqs", "memory", "n", "n_preempt",
        "nbins", "npre", "nxt", "out", "pend", "prefill_tokens", "prefilling", "qsum", "rcnt", "rejected", "rel", "reserved",
        "roots", "running", "sched", "succ", "t", "tb_batch", "tb_busy", "tb_kv", "think", "waiting", "wm",
    )

    def __init__(self, job: _ReplicaJob) -> None:
        at, inp, outp, cost, cfg, bin_s, span_s, *extra = job
        n = len(at)
        links = extra[0] if extra else None
        prio = extra[1] if len(extra) > 1 else None
        self.n = n
        self.at = at.tolist()
        self.inp = inp.tolist()
        self.out = outp.tolist()
        self.sched = [math.nan] * n
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.npre = [0] * n
        self.gen = [0] * n
        self.gj = [0] * n
        self.gfin = [-1] * n
        self.rejected = [False] * n
        self.done_tok = [0] * n
        self.bs = cfg.block_size
        self.cap = cost.kv_tokens // cfg.block_size  # blocks
        self.wm = int(cfg.watermark * self.cap)
        self.max_seqs = cfg.max_num_seqs
        self.budget = cfg.max_batched_tokens
        self.chunked = cfg.chunked_prefill
        self.compute = cost.compute
        self.memory = cost.memory
        self.bin_s = bin_s
        self.nbins = max(1, int(math.ceil(max(span_s, 1e-9) / bin_s)) + 1)
        self.tb_busy = [0.0] * self.nbins
        self.tb_batch = [0.0] * self.nbins
        self.tb_kv = [0.0] * self.nbins
        self.t = 0.0
        self.G = 0
        self.heap: list[tuple[int, int]] = []
        self.running: dict[int, int] = {}
        self.B = 0
        self.S0 = 0
        self.qsum = 0
        self.rcnt = [0] * cfg.block_size
        self.waiting: deque[int] | PriorityWaiting = deque() if prio is None else PriorityWaiting(prio.tolist())
        self.pend: list[tuple[float, int]] = []  # closed loop: (release time, request) of released later turns
        self.succ: list[int] | None = None
        self.roots: list[int] | None = None
        if links is not None:
            self.closed_loop(*links)
        self.prefilling: deque[int] = deque()
        self.reserved = 0
        self.nxt = 0
        self.busy = 0.0
        self.bmax = 0
        self.kv_peak = 0
        self.n_preempt = 0
        self.prefill_tokens = 0
        self.decode_tokens = 0

    # -- the event loop ------------------------------------------------------------------------

    def run(self) -> _ReplicaRun:
        """Serve every request to completion (or rejection) and return the replica's record."""
        at, n, pend = self.at, self.n, self.pend
        while True:
            if (self.nxt < n and at[self.nxt] <= self.t) or (pend and pend[0][0] <= self.t):
                self.enqueue_arrivals()
            if self.chunked:
                if self.waiting:
                    self.start_chunked_prefills()
                if self.prefilling:
                    self.chunked_iteration()
                    continue
            elif self.waiting and self.B < self.max_seqs:
                batch, blocks, tokens, pairs = self.admit(self.B, self.budget)
                if batch:
                    self.prefill_iteration(batch, blocks, tokens, pairs)
                    continue
            if self.B == 0:
                if self.waiting and not self.prefilling:
                    # an empty server could not admit the head: it can never fit
                    rid = self.waiting.popleft()
                    self.rejected[rid] = True
                    if self.succ is not None:
                        self.ended((rid,))
                    continue
                nt = self.next_arrival()
                if nt < math.inf:
                    if nt > self.t:
                        self.t = nt
                    continue
                break
            self.decode_stretch()
        return self.outcome()

    def next_arrival(self) -> float:
        """The time of the next arrival not yet queued (inf if none is known)."""
        nt = self.at[self.nxt] if self.nxt < self.n else math.inf
        if self.pend and self.pend[0][0] < nt:
            nt = self.pend[0][0]
        return nt

    def closed_loop(self, link: np.ndarray, think: np.ndarray) -> None:
        """Set up closed-loop sessions: only requests without a previous turn (``link`` -1) arrive
        at their times; the others are released by :meth:`ended`."""
        n = len(link)
        roots = np.flatnonzero(link < 0)
        succ = np.full(n, -1, dtype=np.int64)
        later = np.flatnonzero(link >= 0)
        succ[link[later]] = later
        self.rel = list(self.at)  # release times: the roots' own, the others' set when released
        self.succ = succ.tolist()
        self.think = np.asarray(think, dtype=float).tolist()
        self.roots = roots.tolist()
        self.at = [self.rel[i] for i in self.roots]
        self.n = len(self.roots)

    def ended(self, rids: list[int] | tuple[int, ...]) -> None:
        """Release the next turn of each request of ``rids`` that ended now (closed loop)."""
        succ, think, rel, pend, t = self.succ, self.think, self.rel, self.pend, self.t
        for rid in rids:
            s = succ[rid]
            if s >= 0:
                r = t + think[s]
                rel[s] = r
                heapq.heappush(pend, (r, s))

    def enqueue_arrivals(self) -> None:
        """Append the requests that have arrived by now to the waiting queue."""
        if self.roots is not None:
            self.enqueue_released()
            return
        at, n, t, nxt = self.at, self.n, self.t, self.nxt
        while nxt < n and at[nxt] <= t:
            self.waiting.append(nxt)
            nxt += 1
        self.nxt = nxt

    def enqueue_released(self) -> None:
        """Closed loop: append the first turns and the released later turns due by now, in time order."""
        at, n, t, nxt, pend, roots, waiting = self.at, self.n, self.t, self.nxt, self.pend, self.roots, self.waiting
        while True:
            a = at[nxt] if nxt < n else math.inf
            if pend and pend[0][0] <= t and pend[0][0] <= a:
                waiting.append(heapq.heappop(pend)[1])
            elif a <= t:
                waiting.append(roots[nxt])
                nxt += 1
            else:
                break
        self.nxt = nxt

    # -- the batch and its KV blocks -------------------------------------------------------------

    def blocks_at(self, g: int) -> int:
        """KV blocks the decoding batch holds at decode counter ``g``."""
        bs = self.bs
        s = g % bs
        return self.qsum + self.B * (g // bs) + (sum(self.rcnt[bs - s :]) if s else 0)

    def join(self, joining: list[tuple[int, int]]) -> None:
        """Add each ``(rid, p)`` of ``joining`` (a request holding ``p`` KV tokens, ``gen[rid]``
        tokens generated) to the decoding batch, in order; decoding resumes at counter ``G``."""
        G, bs, running, gj, gfin, heap, out, gen, rcnt = self.G, self.bs, self.running, self.gj, self.gfin, self.heap, self.out, self.gen, self.rcnt
        S0, qsum = self.S0, self.qsum
        heappush = heapq.heappush
        for rid, p in joining:
            a = p + 1 - G
            running[rid] = a
            gj[rid] = G
            gf = G + out[rid] - gen[rid]
            gfin[rid] = gf
            heappush(heap, (gf, rid))
            S0 += a
            q, r = divmod(a + bs - 1, bs)
            qsum += q
            rcnt[r] += 1
        self.B += len(joining)
        self.S0 = S0
        self.qsum = qsum

    def leave(self, offsets: list[int]) -> None:
        """Subtract sequences already taken out of ``running`` (their offsets ``a``: each held
        ``a + G`` KV tokens) from the decoding batch's running sums."""
        bs, rcnt = self.bs, self.rcnt
        S0, qsum = self.S0, self.qsum
        for a in offsets:
            S0 -= a
            q, r = divmod(a + bs - 1, bs)
            qsum -= q
            rcnt[r] -= 1
        self.B -= len(offsets)
        self.S0 = S0
        self.qsum = qsum

    def complete_due(self) -> None:
        """Finish (at the current time) every running request whose last token is generated by now."""
        heap, gfin, running, gen, out, finish, G, t = self.heap, self.gfin, self.running, self.gen, self.out, self.finish, self.G, self.t
        heappop = heapq.heappop
        offsets = []
        done = []
        while heap and heap[0][0] <= G:
            gf, rid = heappop(heap)
            if gfin[rid] != gf:
                continue  # a stale entry of a preempted and readmitted request
            a = running.pop(rid, None)
            if a is None:
                continue  # a stale entry of a preempted request
            offsets.append(a)
            done.append(rid)
            gen[rid] = out[rid]
            finish[rid] = t
        if offsets:
            self.leave(offsets)
            if self.succ is not None:
                self.ended(done)

    def preempt_overflow(self) -> None:
        """Preempt the most recently admitted sequences until the cache holds the rest; they go
        back to the head of the queue (recomputed when readmitted)."""
        prio = self.waiting.prio if isinstance(self.waiting, PriorityWaiting) else None
        while self.B and self.blocks_at(self.G) + self.reserved > self.cap:
            # vLLM V1: the newest (FCFS), or the largest (priority, arrival) under priority scheduling
            rid = next(reversed(self.running)) if prio is None else max(self.running, key=lambda r: (prio[r], r))
            self.gen[rid] += self.G - self.gj[rid]
            self.leave([self.running.pop(rid)])
            self.npre[rid] += 1
            self.n_preempt += 1
            self.waiting.appendleft(rid)

    # -- admission ---------------------------------------------------------------------------

    def admit(self, slots_taken: int, token_budget: int | None) -> tuple[list[int], int, int, float]:
        """Take waiting prompts first come, first served; return them, the KV blocks they need,
        their tokens and the attention pairs of prefilling them whole.

        A prompt (its input and the tokens it had generated before a preemption) is taken while
        ``slots_taken`` plus those taken stay under ``max_num_seqs``, its blocks (for its tokens
        and the first generated one) fit the free cache minus the watermark and, with a
        ``token_budget`` (prefill-first), its tokens fit what the prompts taken so far left of it
        (the first prompt always does). A prompt taken for the first time is scheduled now.
        """
        waiting, inp, gen, sched, bs = self.waiting, self.inp, self.gen, self.sched, self.bs
        free = self.cap - self.blocks_at(self.G) - self.reserved - self.wm
        taken: list[int] = []
        blocks = 0
        tokens = 0
        pairs = 0.0
        while waiting and slots_taken + len(taken) < self.max_seqs:
            rid = waiting[0]
            p = inp[rid] + gen[rid]
            need = -(-(p + 1) // bs)
            if need > free or (token_budget is not None and taken and tokens + p > token_budget):
                break
            waiting.popleft()
            free -= need
            blocks += need
            tokens += p
            pairs += p * (p + 1) / 2
            taken.append(rid)
            if math.isnan(sched[rid]):
                sched[rid] = self.t
        return taken, blocks, tokens, pairs

    # -- prefill-first -------------------------------------------------------------------------

    def prefill_iteration(self, batch: list[int], blocks: int, tok: int, A: float) -> None:
        """Run one prefill-only iteration of ``batch`` (holding ``blocks`` new KV blocks, ``tok``
        prompt tokens, ``A`` attention pairs): each prompt produces its first token, then
        finishes or joins the decoding batch."""
        inp, gen, out, first, finish, bs = self.inp, self.gen, self.out, self.first, self.finish, self.bs
        c0, cT, cA = self.compute[0], self.compute[1], self.compute[2]
        m0, mT, mA = self.memory[0], self.memory[1], self.memory[2]
        used = self.blocks_at(self.G) + blocks
        dt = max(c0 + cT * tok + cA * A, m0 + mT * tok + mA * A)
        t0 = self.t
        t = t0 + dt
        self.t = t
        self.busy += dt
        self.prefill_tokens += tok
        joining = []
        for rid in batch:  # each request is admitted once (again after a preemption)
            if math.isnan(first[rid]):
                first[rid] = t
            g = gen[rid]
            p = inp[rid] + g
            g += 1
            gen[rid] = g
            if g >= out[rid]:
                finish[rid] = t
                used -= -(-(p + 1) // bs)
                if self.succ is not None:
                    self.ended((rid,))
                continue
            joining.append((rid, p))
        self.join(joining)
        self.record(t0, dt, len(batch), used)
        if self.B > self.bmax:
            self.bmax = self.B
        if used > self.kv_peak:
            self.kv_peak = used

    # -- chunked prefill -----------------------------------------------------------------------

    def start_chunked_prefills(self) -> None:
        """Admit waiting prompts (sequence slots count the prompts still prefilling) and reserve their blocks."""
        taken, blocks, _, _ = self.admit(self.B + len(self.prefilling), None)
        self.reserved += blocks
        for rid in taken:
            self.done_tok[rid] = 0
            self.prefilling.append(rid)

    def chunked_iteration(self) -> None:
        """Run one chunked iteration: every running sequence decodes a token and the admitted
        prompts fill the rest of the token budget, in order; finished prompts join the batch."""
        inp, gen, out, done_tok, bs = self.inp, self.gen, self.out, self.done_tok, self.bs
        c0, cT, cA, cK, cS = self.compute
        m0, mT, mA, mK, mS = self.memory
        B, G = self.B, self.G
        room = self.budget - B
        T = 0
        A = 0.0
        K = 0
        finished = []
        for rid in self.prefilling:  # the prompts in this iteration's token budget
            if room <= 0:
                break
            p = inp[rid] + gen[rid]
            d = done_tok[rid]
            c = min(p - d, room)
            room -= c
            T += c
            A += c * d + c * (c + 1) / 2
            K += d
            done_tok[rid] = d + c
            if d + c >= p:
                finished.append(rid)
        C = self.S0 + B * G
        dt = max(c0 + cT * T + cA * (A + C) + cK * (K + C) + cS * B, m0 + mT * T + mA * (A + C) + mK * (K + C) + mS * B)
        kvb = self.blocks_at(G) + self.reserved
        self.record_split(self.t, dt, B + len(finished), kvb)
        if kvb > self.kv_peak:
            self.kv_peak = kvb
        t = self.t + dt
        self.t = t
        self.busy += dt
        self.prefill_tokens += T
        self.decode_tokens += B
        if B:
            self.G = G + 1
        joining = []
        for rid in finished:
            self.prefilling.popleft()  # finished prompts are at the head, in order
            p = inp[rid] + gen[rid]
            self.reserved -= -(-(p + 1) // bs)
            if math.isnan(self.first[rid]):
                self.first[rid] = t
            gen[rid] += 1
            if gen[rid] >= out[rid]:
                self.finish[rid] = t
                if self.succ is not None:
                    self.ended((rid,))
            else:
                joining.append((rid, p))
        self.join(joining)
        B = self.B
        if B > self.bmax:
            self.bmax = B
        heap = self.heap
        if heap and heap[0][0] <= self.G:  # a request is due (checked here: most iterations finish none)
            self.complete_due()
            B = self.B
        # KV overflow during chunked iterations: preempt the newest; the bound B x (G // bs + 1)
        # on the batch's blocks past its quotient sum rules it out without counting them
        if B and self.qsum + B * (self.G // bs + 1) + self.reserved > self.cap:
            self.preempt_overflow()

    # -- decoding --------------------------------------------------------------------------------

    def decode_stretch(self) -> None:
        """Advance the decode-only iterations until the next completion, arrival or cache
        overflow in one jump (closed-form sum of the iteration times), then finish the requests
        due and preempt on overflow."""
        c0, _, cA, cK, cS = self.compute
        m0, _, mA, mK, mS = self.memory
        B, G, bs, cap, t = self.B, self.G, self.bs, self.cap, self.t
        k = self.heap[0][0] - G
        C0 = self.S0 + B * G
        a1 = c0 + cS * B + (cA + cK) * C0
        b1 = (cA + cK) * B
        a2 = m0 + mS * B + (mA + mK) * C0
        b2 = (mA + mK) * B
        # time of k steps: one line dominates all of them in the common case (inlined)
        d0 = a1 - a2
        dk = d0 + (b1 - b2) * (k - 1)
        if d0 >= 0 and dk >= 0:
            dt = a1 * k + b1 * k * (k - 1) * 0.5
        elif d0 <= 0 and dk <= 0:
            dt = a2 * k + b2 * k * (k - 1) * 0.5
        else:
            dt = _sum_lines(a1, b1, a2, b2, k)
        nt = self.at[self.nxt] if self.nxt < self.n else math.inf
        if self.pend and self.pend[0][0] < nt:
            nt = self.pend[0][0]
        if nt < math.inf and not self.waiting:
            target = nt - t
            if dt > target:
                k = _steps_to_reach(a1, b1, a2, b2, target, k)
                dt = _sum_lines(a1, b1, a2, b2, k)
        # KV blocks: iteration G + j holds blocks_at(G + j); find the last one that fits
        overflow = False
        g = G + k - 1
        blocks_at = self.blocks_at
        if self.qsum + B * (g // bs + 1) > cap and blocks_at(g) > cap:  # cheap upper bound first
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
            kvb = blocks_at(G + k - 1)
            self.record(t, dt, B, kvb)
            if kvb > self.kv_peak:
                self.kv_peak = kvb
            if B > self.bmax:
                self.bmax = B
            self.t = t + dt
            self.busy += dt
            self.decode_tokens += B * k
            self.G = G + k
            if self.heap[0][0] <= G + k:  # a completion ended the stretch (not an arrival)
                self.complete_due()
        if overflow:
            self.preempt_overflow()

    # -- timeline --------------------------------------------------------------------------------

    def record(self, t0: float, dt: float, b: int, kvb: int) -> None:
        """Add the step ``[t0, t0 + dt)`` of batch ``b`` holding ``kvb`` blocks to the timeline:
        whole to its bin when it ends inside it, else split by :meth:`record_split`."""
        i = int(t0 / self.bin_s)
        if i < self.nbins - 1 and t0 + dt <= (i + 1) * self.bin_s:
            self.tb_busy[i] += dt
            self.tb_batch[i] += b * dt
            self.tb_kv[i] += kvb * dt
        else:
            self.record_split(t0, dt, b, kvb)

    def record_split(self, t0: float, dt: float, b: int, kvb: int) -> None:
        """Split the step ``[t0, t0 + dt)`` over the bins it covers (the last bin takes the rest)."""
        bin_s, nbins = self.bin_s, self.nbins
        i = int(t0 / bin_s)
        end = t0 + dt
        while True:
            j = i if i < nbins else nbins - 1
            edge = (i + 1) * bin_s
            part = (end if end < edge or i >= nbins - 1 else edge) - t0
            self.tb_busy[j] += part
            self.tb_batch[j] += b * part
            self.tb_kv[j] += kvb * part
            if end <= edge or i >= nbins - 1:
                return
            t0 = edge
            i += 1

    def outcome(self) -> _ReplicaRun:
        """The replica's record (KV use as shares of the cache)."""
        cap = self.cap
        return _ReplicaRun(
            sched=np.asarray(self.sched),
            first=np.asarray(self.first),
            finish=np.asarray(self.finish),
            npre=np.asarray(self.npre, dtype=np.int64),
            rejected=np.asarray(self.rejected, dtype=bool),
            busy=self.busy,
            bmax=self.bmax,
            kv_peak=self.kv_peak / cap if cap else 0.0,
            n_preempt=self.n_preempt,
            prefill_tokens=self.prefill_tokens,
            decode_tokens=self.decode_tokens,
            tb_busy=np.asarray(self.tb_busy),
            tb_batch=np.asarray(self.tb_batch),
            tb_kv=np.asarray(self.tb_kv) / cap if cap else np.zeros(self.nbins),
            end=self.t,
            release=None if self.roots is None else np.asarray(self.rel),
        )


def _simulate_replica(job: _ReplicaJob) -> _ReplicaRun:
    """Simulate one replica (a module-level function, so that worker processes can run it)."""
    return _Replica(job).run()


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


def _run_replicas(jobs: list[_ReplicaJob], workers: int, progress: Callable[[float], None] | None) -> list[_ReplicaRun]:
    """Simulate every replica's job, in ``workers`` processes when more than one; ``progress``
    is called with the share of replicas done."""
    results: list[_ReplicaRun] = []
    replicas = len(jobs)
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
    return results


def _replica_row(replica: int, n_requests: int, res: _ReplicaRun, horizon: float) -> dict[str, float | int]:
    """One row of :attr:`SimResult.replicas` (utilization over ``horizon`` seconds)."""
    busy = res.busy
    return {
        "replica": replica,
        "requests": n_requests,
        "busy_s": busy,
        "utilization": busy / horizon if horizon > 0 else 0.0,
        "mean_batch": float(res.tb_batch.sum() / busy) if busy > 0 else 0.0,
        "max_batch": res.bmax,
        "peak_kv_frac": res.kv_peak,
        "preemptions": res.n_preempt,
        "rejected": int(res.rejected.sum()),
        "prefill_tokens": res.prefill_tokens,
        "decode_tokens": res.decode_tokens,
    }


def _replica_timeline(replica: int, res: _ReplicaRun, bin_s: float) -> pl.DataFrame:
    """The rows of :attr:`SimResult.timeline` of one replica, one per ``bin_s`` bin."""
    nb = len(res.tb_busy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pl.DataFrame(
            {
                "replica": np.full(nb, replica, dtype=np.int64),
                "t_s": np.arange(nb) * float(bin_s),
                "busy_frac": np.minimum(res.tb_busy / bin_s, 1.0),
                "batch": np.where(res.tb_busy > 0, res.tb_batch / bin_s, 0.0),
                "kv_frac": res.tb_kv / bin_s,
            }
        )


def session_links(requests: pl.DataFrame, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Closed-loop links of the requests ``rows`` of ``requests`` (in that order, timestamps
    ``t``): each one's previous turn among them (-1: none) and its think time (the gap between
    their timestamps); None when ``requests`` has no sessions or no later turn among them."""
    if not has_sessions(requests):
        return None
    sub = requests.select(pl.col("session_id", "turn_index").gather(rows)).with_columns(pl.Series("timestamp_s", t))
    link = turn_predecessors(sub)
    if not (link >= 0).any():
        return None
    return link, np.where(link >= 0, t - t[np.maximum(link, 0)], 0.0)


def route_sessions(
    t: np.ndarray, inp: np.ndarray, out: np.ndarray, link: np.ndarray, n_replicas: int, *, router: str, cost: CostModel | None,
) -> np.ndarray:
    """Replica of every request when sessions are routed whole: the first turns (``link`` -1)
    are routed by :func:`route` with their session's tokens, later turns follow their first."""
    root = session_roots(link)
    first = np.flatnonzero(link < 0)
    tok_in = np.bincount(root, weights=inp, minlength=len(t))[first]
    tok_out = np.bincount(root, weights=out, minlength=len(t))[first]
    rep_first = np.zeros(len(t), dtype=np.int64)
    rep_first[first] = route(t[first], tok_in, tok_out, n_replicas, router=router, cost=cost)
    return rep_first[root]


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
    sessions: str = "closed",
) -> SimResult:
    """Simulate ``requests`` (``timestamp_s, input_tokens, output_tokens``) on ``replicas`` servers.

    Token counts of 0 are served as 1 (a server prefills and generates at least one token).
    ``sessions="closed"`` (the default) releases a session's later turns (``session_id``,
    ``turn_index`` columns) their think time after the previous turn's response and routes
    sessions whole (:mod:`servegen_core.serve.sessions`; ``arrival_s`` is then the release
    time); ``"open"`` sends every request at its timestamp. An ``slo_priority`` column
    schedules the waiting requests by priority (:mod:`servegen_core.serve.classes`).

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
    check_session_mode(sessions)
    t, inp, outp = request_columns(requests)
    prio = priorities_of(requests)
    order = np.argsort(t, kind="stable")
    t0 = float(t[order[0]]) if len(t) else 0.0
    ts = t[order] - t0
    ins = inp[order]
    outs = outp[order]
    span = float(ts[-1]) if len(ts) else 0.0
    refused = (ins + outs > cost.max_context) if cost.max_context else np.zeros(len(ts), dtype=bool)
    accepted = np.flatnonzero(~refused)
    rep_sorted = np.full(len(ts), -1, dtype=np.int64)
    links = session_links(requests, order[accepted], ts[accepted]) if sessions == "closed" else None
    if links is None:
        rep_sorted[accepted] = route(ts[accepted], ins[accepted], outs[accepted], replicas, router=router, cost=cost)
    else:
        rep_sorted[accepted] = route_sessions(ts[accepted], ins[accepted], outs[accepted], links[0], replicas, router=router, cost=cost)
        link_sorted = np.full(len(ts), -1, dtype=np.int64)
        link_sorted[accepted] = np.where(links[0] >= 0, accepted[np.maximum(links[0], 0)], -1)
        think_sorted = np.zeros(len(ts))
        think_sorted[accepted] = links[1]
        local = np.full(len(ts), -1, dtype=np.int64)
    prio_sorted = prio[order] if prio is not None else None
    jobs: list[_ReplicaJob] = []
    members = []
    for r in range(replicas):  # one job per replica
        idx = np.flatnonzero(rep_sorted == r)
        members.append(idx)
        job: tuple = (ts[idx], ins[idx], outs[idx], cost, config, float(bin_s), span)
        if links is not None:
            local[idx] = np.arange(len(idx))
            up = link_sorted[idx]
            job += ((np.where(up >= 0, local[np.maximum(up, 0)], -1), think_sorted[idx]),)
        if prio_sorted is not None:
            job += (None,) * (8 - len(job)) + (prio_sorted[idx],)
        jobs.append(job)
    results = _run_replicas(jobs, workers, progress)
    arrive = ts.copy()  # closed loop: the release times
    n = len(ts)
    sched = np.full(n, np.nan)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    npre = np.zeros(n, dtype=np.int64)
    rejected = np.zeros(n, dtype=bool)
    rows = []
    tl = []
    horizon = max(span, max((res.end for res in results), default=0.0))
    for r, (idx, res) in enumerate(zip(members, results, strict=True)):
        sched[idx] = res.sched + 0.0
        first[idx] = res.first
        finish[idx] = res.finish
        npre[idx] = res.npre
        rejected[idx] = res.rejected
        if res.release is not None:
            arrive[idx] = res.release
        rows.append(_replica_row(r, len(idx), res, horizon))
        tl.append(_replica_timeline(r, res, bin_s))
    completed = ~np.isnan(finish)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outs > 1, (finish - first) / np.maximum(outs - 1, 1), np.nan)
    local = pl.DataFrame(
        {
            "arrival_s": arrive + t0,
            "replica": pl.Series(rep_sorted).set(pl.Series(refused), None) if refused.any() else rep_sorted,
            "input_tokens": ins,
            "output_tokens": outs,
            "completed": completed,
            "refused": refused,
            "queue_s": sched - arrive,
            "ttft_s": first - arrive,
            "tpot_s": tpot,
            "e2e_s": finish - arrive,
            "preemptions": npre,
        }
    ).with_columns(pl.col(c).fill_nan(None) for c in ("queue_s", "ttft_s", "tpot_s", "e2e_s"))
    if "slo_class" in requests.columns:
        local = local.with_columns(requests["slo_class"].cast(pl.String).gather(order).alias("slo_class"))
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

