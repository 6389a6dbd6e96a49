"""What-if provisioning: the replicas a workload needs for a latency objective, realistic vs naive.

:func:`min_replicas` finds the smallest replica count at which the simulation meets an
:class:`Slo` (p99 TTFT and/or p99 TPOT; :data:`DEFAULT_SLO` both) and so does every larger
count tried: latency is not assumed monotone in the replica count (p99 TPOT is not), the
search bisects and checks the count above its answer, and a fleet whose queue is still
growing at the end of the span (:func:`queue_growing`) is never an answer. Every count
simulated is a row of the curve with its percentiles, SLO ``attainment`` and goodput.
A run is simulated replica by replica (:func:`simulate_until_missed`) and stops once the
objective is missed for sure; the workload is sorted and checked once per search, and the
per-replica split of each count and the pilot's replica simulations are cached
(:class:`FleetWork`). The search starts at a :func:`pilot_estimate` (the first few replicas of
each count simulated, over the whole span) and brackets the answer around it before bisecting.
With ``workers > 1`` the replicas of a run are simulated in ``forkserver`` worker processes
(:func:`worker_pool`), taken in replica order so that the result is the one-process result;
a script that uses workers needs an ``if __name__ == "__main__":`` guard.

:func:`compare_spec` composes a spec once and derives its naive baselines from the composed
requests by common random numbers (:func:`naive_workloads`: the same requests row for row,
only the named aspect changed), searches each and reports the replicas each needs, the
under-provisioning of each naive workload and its latencies at the realistic count;
:func:`compare_trace` does the same for a raw trace against :func:`naive_trace` (the same
requests with Poisson arrivals, the same count per window). :func:`answer_range` gives the
answer over several seeds and the plausible sub-window arrival models, and whether the
realistic-vs-naive gap survives that range.

The kinds of naive baseline are the spec's :data:`~servegen_core.spec.NAIVE_KINDS`;
:data:`DEFAULT_NAIVE_KINDS` are the ones compared by default.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from servegen_core.errors import SpecError
from servegen_core.generate.compose import compose, naive_spec
from servegen_core.generate.plan import ComposePlan, Workload
from servegen_core.sources.load import load_source
from servegen_core.limits import MAX_REPLICAS, max_workers
from servegen_core.serve.costmodel import CostModel, check_count
from servegen_core.serve.sessions import check_session_mode
from servegen_core.serve.simulate import ServerConfig, SimResult, request_columns, route, route_sessions, session_links, simulate
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import NAIVE_KINDS, WorkloadSpec

__all__ = [
    "CURVE_COLUMNS",
    "RANGE_SUB_WINDOWS",
    "AnswerRange",
    "answer_range",
    "DEFAULT_NAIVE_KINDS",
    "Comparison",
    "ProvisioningResult",
    "SLO_PERCENTILES",
    "Slo",
    "checked_naive_spec",
    "compare_spec",
    "compare_trace",
    "DEFAULT_SLO",
    "attainment",
    "capacity_estimate",
    "FleetWork",
    "constant_retimed",
    "simulate_until_missed",
    "pilot_estimate",
    "worker_pool",
    "min_replicas",
    "naive_trace",
    "naive_workloads",
    "percentile_columns",
    "TABLE_LATENCIES",
    "poisson_retimed",
    "queue_growing",
    "smallest_met_above_all_failures",
]

#: Percentiles an :class:`Slo` can bound (:meth:`SimResult.summary` has each).
SLO_PERCENTILES = (50, 90, 95, 99)

#: Naive baselines compared by default; :data:`~servegen_core.spec.NAIVE_KINDS` adds
#: ``"constant"`` (no rate shifts either).
DEFAULT_NAIVE_KINDS = ("poisson", "pooled_lengths", "poisson_pooled")


# --------------------------------------------------------------------------------------------
# Replicas needed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slo:
    """A latency objective over completed requests, in seconds (at least one of TTFT, TPOT and
    end-to-end): the ``percentile`` (one of :data:`SLO_PERCENTILES`, default 99) of every latency
    with an objective must be at most it; a request that could not be served (rejected) fails
    the objective. ``ttft_p99_s`` and ``tpot_p99_s`` keep their names for every percentile
    (they are the TTFT and TPOT bounds); ``e2e_s`` bounds the end-to-end latency."""

    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None
    e2e_s: float | None = None
    percentile: int = 99

    def __post_init__(self) -> None:
        if self.ttft_p99_s is None and self.tpot_p99_s is None and self.e2e_s is None:
            raise SpecError("slo", "give a TTFT, TPOT and/or end-to-end latency objective")
        for key in ("ttft_p99_s", "tpot_p99_s", "e2e_s"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))):
                raise SpecError(f"slo.{key}", f"must be a positive number of seconds, got {v!r}")
        if isinstance(self.percentile, bool) or self.percentile not in SLO_PERCENTILES:
            raise SpecError("slo.percentile", f"must be one of {', '.join(map(str, SLO_PERCENTILES))}, got {self.percentile!r}")

    def objectives(self) -> tuple[tuple[str, float], ...]:
        """``(latency, bound)`` of every objective set: latency ``"ttft"``, ``"tpot"`` or ``"e2e"``
        (the request column ``<latency>_s``, the summary key ``<latency>_p<percentile>_s``)."""
        pairs = (("ttft", self.ttft_p99_s), ("tpot", self.tpot_p99_s), ("e2e", self.e2e_s))
        return tuple((name, float(bound)) for name, bound in pairs if bound is not None)

    def met(self, summary: Mapping[str, float]) -> bool:
        """Whether a :meth:`SimResult.summary` meets the objective."""
        if summary["completed"] + summary.get("refused", 0.0) < summary["requests"]:  # refusals: reported, not a miss
            return False
        for name, bound in self.objectives():
            value = summary[f"{name}_p{self.percentile}_s"]
            if not (value <= bound or (name == "tpot" and math.isnan(value))):  # no TPOT (one-token answers only) meets it
                return False
        return True

    def describe(self) -> str:
        """``"p99 TTFT <= 2 s and p99 TPOT <= 0.1 s"`` (``"p90 E2E <= 30 s"`` for an end-to-end objective)."""
        labels = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
        return " and ".join(f"p{self.percentile} {labels[name]} <= {bound:g} s" for name, bound in self.objectives())


#: The default objective: both latencies a chat user feels, p99 TTFT <= 2 s and p99 TPOT <= 0.1 s.
DEFAULT_SLO = Slo(ttft_p99_s=2.0, tpot_p99_s=0.1)

#: Latency percentiles of the curve besides the first eight columns: every one an :class:`Slo` can bound.
CURVE_PERCENTILES = tuple(
    f"{name}_p{q}_s" for name in ("ttft", "tpot", "e2e") for q in SLO_PERCENTILES if f"{name}_p{q}_s" not in ("ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s")
)
#: Columns of :attr:`ProvisioningResult.curve`, one row per replica count simulated.
CURVE_COLUMNS = (
    "replicas", "ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "queue_p99_s", "utilization_mean", "preemptions",
    "attainment", "goodput_rps", "unstable", "simulated_share", "met", *CURVE_PERCENTILES,
)

#: Latency columns of :attr:`Comparison.table` at every SLO percentile (``ttft_p50_s, ttft_p99_s, tpot_p99_s``).
TABLE_LATENCIES = ("ttft_p50_s", "ttft_p99_s", "tpot_p99_s")


def percentile_columns(percentile: int) -> tuple[str, ...]:
    """The TTFT, TPOT and end-to-end columns at ``percentile`` (``ttft_p90_s, tpot_p90_s,
    e2e_p90_s``) that :attr:`Comparison.table` carries besides :data:`TABLE_LATENCIES`."""
    return tuple(c for c in (f"{name}_p{percentile}_s" for name in ("ttft", "tpot", "e2e")) if c not in TABLE_LATENCIES)


#: The share of the span at its end (and the share before it) over which :func:`queue_growing`
#: compares the requests' median queueing delays.
TAIL_SHARE = 0.05
#: Queueing delays below this many seconds (or the TTFT objective, if larger) never make a run unstable.
UNSTABLE_QUEUE_S = 10.0


def attainment(sim: SimResult, slo: Slo) -> tuple[float, float]:
    """SLO attainment and goodput of a simulation: the share of the requests served (refused
    ones, longer than the model's context, left out) that completed within every objective of
    ``slo`` (TTFT, TPOT and end-to-end, each request against the objective, not the percentile;
    a one-token answer has no TPOT and meets that objective), and those requests per second of the span."""
    req = sim.requests.filter(~pl.col("refused")) if "refused" in sim.requests.columns else sim.requests
    if req.height == 0:
        return math.nan, 0.0
    ok = pl.col("completed")
    for name, bound in slo.objectives():
        within = pl.col(f"{name}_s") <= bound
        ok = ok & ((pl.col("tpot_s").is_null() | within) if name == "tpot" else within)
    good = int(req.select(ok.fill_null(False).sum()).item())
    return good / req.height, good / max(sim.span_s, 1.0)


def queue_growing(sim: SimResult, slo: Slo) -> bool:
    """Whether the fleet's queue is still growing at the end of the span (unstable): the
    requests arriving in the last :data:`TAIL_SHARE` of the span wait (median queueing delay,
    arrival to first scheduled) more than ``max(UNSTABLE_QUEUE_S, TTFT objective)`` and longer
    than those arriving in the share before it. A stable fleet's queue drains between bursts,
    so its median wait stays near zero; an overloaded one's grows with time."""
    req = sim.requests.filter(pl.col("completed"))
    if req.height == 0:
        return False
    t = req["arrival_s"].to_numpy()
    q = req["queue_s"].to_numpy()
    t0, t1 = float(t.min()), float(t.max())
    width = TAIL_SHARE * (t1 - t0)
    if width <= 0:
        return False
    last = q[t >= t1 - width]
    before = q[(t >= t1 - 2 * width) & (t < t1 - width)]
    if len(last) == 0 or len(before) == 0:
        return False
    floor = max(UNSTABLE_QUEUE_S, slo.ttft_p99_s or 0.0)
    tail = float(np.median(last))
    return tail > floor and tail > float(np.median(before))


@dataclass(frozen=True)
class ProvisioningResult:
    """Output of :func:`min_replicas`: the smallest ``replicas`` at which the simulation and the
    simulation of every larger count tried meets ``slo`` (None if there is none up to
    ``max_replicas``), and ``curve``, one row per replica count simulated on the way (sorted by
    ``replicas``: latency percentiles in seconds, mean utilization, SLO ``attainment`` and
    ``goodput_rps``, ``unstable`` (:func:`queue_growing`) and ``met``).
    ``simulation`` is the full :class:`SimResult` at the answer (per-request latencies, per-
    replica statistics and timelines), None without an answer; ``reason`` says why there is
    no answer ("" when there is one)."""

    replicas: int | None
    slo: Slo
    curve: pl.DataFrame
    max_replicas: int
    simulation: SimResult | None = None
    reason: str = ""


def _curve_row(n: int, sim: SimResult, slo: Slo, share: float = 1.0) -> dict[str, float | int | bool]:
    """One row of a provisioning curve: ``n`` replicas, the latencies, attainment, goodput and
    stability of ``sim``, the ``simulated_share`` of the replicas (below 1 when the run stopped
    as soon as the objective was missed: the figures are then those of the replicas simulated),
    and ``met`` (the whole fleet was simulated, the percentiles meet ``slo`` and the queue is
    not growing)."""
    summary = sim.summary()
    row: dict[str, float | int | bool] = {k: summary[k] for k in CURVE_COLUMNS[1:8]}
    row["replicas"] = n
    row["attainment"], row["goodput_rps"] = attainment(sim, slo)
    row["unstable"] = queue_growing(sim, slo)
    row["simulated_share"] = share
    row["met"] = share == 1.0 and slo.met(summary) and not row["unstable"]
    row.update({k: summary[k] for k in CURVE_PERCENTILES})
    return row


def smallest_met_above_all_failures(met: Mapping[int, bool]) -> int | None:
    """The smallest replica count that met and above which every count tried met too (None when
    the largest count tried did not meet): the answer :func:`min_replicas` gives."""
    answer = None
    for n in sorted(met, reverse=True):
        if not met[n]:
            break
        answer = n
    return answer


def capacity_estimate(inp: np.ndarray, out: np.ndarray, span_s: float, cost: CostModel) -> int:
    """Replicas the cost model's nominal token rate needs for the workload's mean token load."""
    rate = cost.token_rate(float(inp.mean()), float(out.mean()))
    return max(1, math.ceil(float(inp.sum() + out.sum()) / max(span_s, 1.0) / rate))


def _infeasible(slo: Slo, cost: CostModel, inp: np.ndarray, out: np.ndarray, config: ServerConfig) -> str:
    """Why even every request alone on its own replica would miss the objective ("" if it would
    not): one does not fit the KV cache (it is rejected), or the percentile of lone prefill,
    decode step or prefill-plus-decode times is above its objective."""
    blocks = cost.kv_tokens // config.block_size
    cap = blocks - int(config.watermark * blocks)
    if len(inp):
        need = -(-(inp + out) // config.block_size)
        too_big = int((need > cap).sum())
        if too_big:
            return (
                f"{too_big:,} request(s) need more KV cache than a replica holds ({cap * config.block_size:,} tokens) "
                "and are rejected"
            )
    q = slo.percentile
    prefill = cost.prefill_time(inp)
    multi = out > 1
    step = cost.decode_time(1, inp + 1 + np.maximum(out - 2, 0) / 2)  # a lone decode step at the mean context
    if slo.ttft_p99_s is not None:
        v = float(np.percentile(prefill, q))
        if v > slo.ttft_p99_s:
            return f"even alone, the p{q} of the requests' prefill times is {v:.3g} s, above the {slo.ttft_p99_s:g} s TTFT objective"
    if slo.tpot_p99_s is not None and multi.any():
        v = float(np.percentile(step[multi], q))
        if v > slo.tpot_p99_s:
            return f"even alone, the p{q} of the requests' decode step times is {v:.3g} s, above the {slo.tpot_p99_s:g} s TPOT objective"
    if slo.e2e_s is not None:
        v = float(np.percentile(prefill + np.maximum(out - 1, 0) * step, q))
        if v > slo.e2e_s:
            return f"even alone, the p{q} of the requests' prefill and decode times is {v:.3g} s, above the {slo.e2e_s:g} s end-to-end objective"
    return ""


#: Columns a search keeps beside the lengths: sessions (closed loop) and SLO classes.
FLEET_EXTRA = ("session_id", "turn_index", "slo_class", "slo_priority")
#: Replicas the pilot (:func:`pilot_estimate`) simulates at each count it tries: the first ones of
#: that count's split, kept in :attr:`FleetWork.replica_sims` and reused by the whole run at that count.
PILOT_REPLICAS = 4
#: Per-replica splits a :class:`FleetWork` keeps (the most recent counts).
KEPT_SPLITS = 8
#: Replicas submitted ahead of the one a run waits for when it runs in worker processes.
LOOKAHEAD = 8


@dataclass(frozen=True)
class FleetWork:
    """A workload prepared once for every run of a search: arrival seconds (sorted), input and
    output tokens, the positions (in ``requests``' order) of the requests the model's context
    accepts, and the refused ones' rows as :func:`simulate` reports them.

    It also caches, across the runs of a search, the per-replica split of the accepted requests
    at each replica count (:meth:`split`, the :data:`KEPT_SPLITS` most recent) and the
    simulations of the first :data:`PILOT_REPLICAS` replicas of each count
    (``replica_sims``): a replica's simulation depends only on its requests, so the pilot's
    replicas are not simulated again by the whole run at the same count."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    accepted: np.ndarray
    refused: pl.DataFrame
    n_requests: int
    span_s: float
    #: the session and class columns (:data:`FLEET_EXTRA`) of the rows in time order, if any
    extra: pl.DataFrame | None = None
    splits: dict = field(default_factory=dict, compare=False, repr=False)
    replica_sims: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, requests: pl.DataFrame, cost: CostModel) -> FleetWork:
        t, i, o = request_columns(requests)
        order = np.argsort(t, kind="stable")
        t, i, o = t[order], i[order], o[order]
        refused = (i + o > cost.max_context) if cost.max_context else np.zeros(len(t), dtype=bool)
        null = pl.lit(None, dtype=pl.Float64)
        refused_rows = pl.DataFrame(
            {"arrival_s": t[refused], "input_tokens": i[refused], "output_tokens": o[refused]},
            schema={"arrival_s": pl.Float64, "input_tokens": pl.Int64, "output_tokens": pl.Int64},
        ).with_columns(
            pl.lit(None, dtype=pl.Int64).alias("replica"), pl.lit(False).alias("completed"), pl.lit(True).alias("refused"),
            *(null.alias(c) for c in ("queue_s", "ttft_s", "tpot_s", "e2e_s")), pl.lit(0, dtype=pl.Int64).alias("preemptions"),
        )
        span = float(t[-1] - t[0]) if len(t) else 0.0
        keep = [c for c in FLEET_EXTRA if c in requests.columns]
        extra = requests.select(pl.col(keep).gather(order)) if keep else None
        if extra is not None and "slo_class" in keep:
            refused_rows = refused_rows.with_columns(extra["slo_class"].cast(pl.String).filter(pl.Series(refused)).alias("slo_class"))
        return cls(t, i, o, np.flatnonzero(~refused), refused_rows, len(t), span, extra)

    def split(self, replicas: int, router: str, cost: CostModel, sessions: str = "closed") -> list[np.ndarray]:
        """Each replica's requests at ``replicas`` (:func:`~servegen_core.serve.simulate.route`;
        closed-loop sessions routed whole, :func:`~servegen_core.serve.simulate.route_sessions`),
        as positions in :attr:`accepted` in time order; cached per count, router, cost model and
        session mode."""
        key = (replicas, router, cost, sessions)
        got = self.splits.get(key)
        if got is None:
            acc = self.accepted
            t, i, o = self.arrival_s[acc], self.input_tokens[acc], self.output_tokens[acc]
            extra = self.extra[acc] if self.extra is not None else None
            links = (
                session_links(extra.with_columns(pl.Series("timestamp_s", t)), np.arange(len(t)), t)
                if extra is not None and sessions == "closed" else None
            )
            if links is None:
                assignment = route(t, i, o, replicas, router=router, cost=cost)
            else:
                assignment = route_sessions(t, i, o, links[0], replicas, router=router, cost=cost)
            order = np.argsort(assignment, kind="stable")
            got = np.split(order, np.cumsum(np.bincount(assignment, minlength=replicas))[:-1])
            while len(self.splits) >= KEPT_SPLITS:
                del self.splits[next(iter(self.splits))]
            self.splits[key] = got
        return got


def _missed_for_sure(fails: int, n: int, percentile: int = 99) -> bool:
    """Whether ``fails`` values above an objective among ``n`` make their ``percentile`` (NumPy's
    linear interpolation) exceed it whatever the other values: the value at
    ``floor(percentile / 100 (n - 1))`` in sorted order is then above it."""
    return n > 0 and fails >= n - math.floor(percentile / 100 * (n - 1))


def _replica_simulation(job: tuple) -> SimResult:
    """One replica's simulation of its requests (module level, so that worker processes can run
    it): ``(timestamps, inputs, outputs, session and class columns or None, cost, config, sessions)``."""
    t, i, o, extra, cost, config, sessions = job
    sub = pl.DataFrame({"timestamp_s": t, "input_tokens": i, "output_tokens": o})
    if extra is not None:
        sub = pl.concat([sub, extra], how="horizontal")
    return simulate(sub, cost, replicas=1, config=config, sessions=sessions)


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` processes to simulate replicas in (None for one: everything runs in this
    process), started with the ``forkserver`` context and shut down on exit. A script that
    uses more than one worker needs an ``if __name__ == "__main__":`` guard: the workers import
    the main module."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as ex:
        yield ex


def _replica_sims(
    fleet: FleetWork, replicas: int, count: int, cost: CostModel, router: str, config: ServerConfig | None, executor: Executor | None,
    sessions: str = "closed",
) -> Iterator[tuple[int, SimResult | None]]:
    """The simulations of the first ``count`` of ``replicas`` replicas, in replica order (None for
    a replica without requests): taken from ``fleet``'s cache, else simulated here or, with an
    ``executor``, a few replicas ahead in its worker processes (closing the iterator cancels
    those not started)."""
    parts = fleet.split(replicas, router, cost, sessions)
    acc = fleet.accepted
    ahead = LOOKAHEAD
    pending: deque[tuple[int, object]] = deque()

    def job(r: int) -> tuple:
        pos = parts[r]
        idx = acc[pos]
        extra = fleet.extra[idx] if fleet.extra is not None else None
        return fleet.arrival_s[idx], fleet.input_tokens[idx], fleet.output_tokens[idx], extra, cost, config, sessions

    def start(r: int) -> object:
        key = (replicas, router, cost, config, sessions, r)
        if key in fleet.replica_sims or len(parts[r]) == 0:
            return fleet.replica_sims.get(key)
        return executor.submit(_replica_simulation, job(r)) if executor is not None else None

    nxt = 0
    try:
        for r in range(count):
            while nxt < count and (nxt <= r or (executor is not None and nxt < r + ahead)):
                pending.append((nxt, start(nxt)))
                nxt += 1
            _, got = pending.popleft()
            if isinstance(got, Future):
                got = got.result()
            elif got is None and len(parts[r]):
                got = _replica_simulation(job(r))
            if got is not None and r < PILOT_REPLICAS:
                fleet.replica_sims[(replicas, router, cost, config, sessions, r)] = got
            yield r, got
    finally:
        for _, got in pending:
            if isinstance(got, Future):
                got.cancel()


def _run_until_missed(
    fleet: FleetWork, replicas: int, slo: Slo, cost: CostModel, *, router: str, config: ServerConfig | None, count: int,
    executor: Executor | None, sessions: str = "closed",
) -> tuple[SimResult, int]:
    """:func:`simulate_until_missed` of the first ``count`` replicas (the objective judged over
    their requests); returns the simulation and the number of replicas run."""
    parts = fleet.split(replicas, router, cost, sessions)
    multi = fleet.output_tokens[fleet.accepted] > 1
    if count >= replicas:
        n_acc, n_multi = len(multi), int(multi.sum())
    else:
        n_acc = sum(len(parts[r]) for r in range(count))
        n_multi = sum(int(multi[parts[r]].sum()) for r in range(count))
    parts_out, replica_rows, timelines = [], [], []
    fails = dict.fromkeys(("ttft", "tpot", "e2e"), 0)
    done = 0
    sims = _replica_sims(fleet, replicas, count, cost, router, config, executor, sessions)
    for r, one in sims:
        done += 1
        if one is None:
            continue
        req = one.requests.with_columns(pl.lit(r, dtype=pl.Int64).alias("replica"))
        parts_out.append(req)
        replica_rows.append(one.replicas.with_columns(pl.lit(r, dtype=pl.Int64).alias("replica")))
        if one.timeline.height:
            timelines.append(one.timeline.with_columns(pl.lit(r, dtype=pl.Int64).alias("replica")))
        if not bool(req["completed"].all()):
            break
        missed = False
        for name, bound in slo.objectives():
            fails[name] += int((req[f"{name}_s"] > bound).sum())
            missed = missed or _missed_for_sure(fails[name], n_multi if name == "tpot" else n_acc, slo.percentile)
        if missed:
            break
    sims.close()  # cancels the replicas simulated ahead that are no longer needed
    requests = pl.concat([*parts_out, fleet.refused.select(parts_out[0].columns)] if parts_out else [fleet.refused]).sort("arrival_s", maintain_order=True)
    ends = requests.select((pl.col("arrival_s") + pl.col("e2e_s")).max()).item()
    horizon = max(fleet.span_s, (ends or 0.0) - float(fleet.arrival_s[0]) if fleet.n_requests else 0.0)
    reps = pl.concat(replica_rows) if replica_rows else pl.DataFrame({"replica": [], "busy_s": [], "utilization": [], "preemptions": []})
    if reps.height and horizon > 0:
        reps = reps.with_columns((pl.col("busy_s") / horizon).alias("utilization"))
    sim = SimResult(
        requests=requests, replicas=reps, timeline=pl.concat(timelines) if timelines else pl.DataFrame(),
        n_replicas=replicas, cost=cost, config=config or ServerConfig(), router=router, span_s=fleet.span_s,
    )
    return sim, done


def simulate_until_missed(
    fleet: FleetWork, replicas: int, slo: Slo, cost: CostModel, *, router: str = "round_robin", config: ServerConfig | None = None,
    executor: Executor | None = None, sessions: str = "closed",
) -> tuple[SimResult, float]:
    """Simulate ``fleet`` on ``replicas`` servers one replica at a time (the replicas are
    independent once routed, :func:`~servegen_core.serve.simulate.route`), stopping as soon as
    the objective is missed for sure: a request not served, or enough requests past the TTFT,
    TPOT or end-to-end objective that its percentile is past it whatever the other replicas
    give. Closed-loop sessions (``sessions``) are routed whole. Returns the
    simulation of the replicas run (requests in time order, refused ones included; each
    replica's timeline from its first arrival) and the share of the replicas simulated.

    With an ``executor`` (:func:`worker_pool`) the replicas are simulated a few ahead in its
    worker processes and taken in replica order, so the run stops at the same replica and
    gives the same result as in one process."""
    sim, done = _run_until_missed(fleet, replicas, slo, cost, router=router, config=config, count=replicas, executor=executor, sessions=sessions)
    return sim, done / replicas


def pilot_estimate(
    fleet: FleetWork, slo: Slo, cost: CostModel, *, guess: int, max_replicas: int, router: str = "round_robin",
    config: ServerConfig | None = None, executor: Executor | None = None, step: float = 2.0, sessions: str = "closed",
) -> int:
    """An estimate of the replicas ``fleet`` needs, from a pilot that simulates only the first
    :data:`PILOT_REPLICAS` replicas of each count it tries (the whole span: a replica's share of
    the traffic at that count) and judges the objective over their requests. It steps from
    ``guess`` by the factor ``step`` until one count meets and one fails, then bisects to the
    smallest count whose pilot meets. The pilot's replicas are kept in ``fleet`` and reused by
    the exact search; the estimate only decides where that search starts."""
    tried: dict[int, bool] = {}

    def ok(n: int) -> bool:
        if n not in tried:
            count = min(n, PILOT_REPLICAS)
            sim, done = _run_until_missed(fleet, n, slo, cost, router=router, config=config, count=count, executor=executor, sessions=sessions)
            tried[n] = done == count and slo.met(sim.summary()) and not queue_growing(sim, slo)
        return tried[n]

    lo, hi = 0, None  # lo: a count whose pilot fails (0: none); hi: one whose pilot meets
    n = int(min(max_replicas, max(1, guess)))
    if ok(n):
        hi = n
        while hi > 1:
            m = max(1, min(hi - 1, math.floor(hi / step)))
            if not ok(m):
                lo = m
                break
            hi = m
    else:
        lo = n
        while hi is None:
            if lo >= max_replicas:
                return max_replicas
            m = min(max_replicas, max(lo + 1, math.ceil(lo * step)))
            if ok(m):
                hi = m
            else:
                lo = m
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _bracket(run: Callable[[int], bool], guess: int, max_replicas: int) -> None:
    """Simulate (``run``) counts outward from ``guess`` until a failing count lies below a met
    one: below a met ``guess`` (above a failing one) by steps of 1, 2, 4, ... replicas; the
    bisection then starts inside that bracket."""
    met = run(guess)
    n, d = guess, 1
    while (n > 1) if met else (n < max_replicas):
        m = max(1, n - d) if met else min(max_replicas, n + d)
        if run(m) != met:
            return
        n, d = m, 2 * d


def min_replicas(
    requests: pl.DataFrame,
    slo: Slo,
    cost: CostModel,
    *,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    also: Sequence[int] = (),
    start: int | None = None,
    pilot: bool = True,
    hint: int | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    progress: Callable[[str], None] | None = None,
    sessions: str = "closed",
) -> ProvisioningResult:
    """The smallest number of replicas at which the simulation of ``requests`` meets ``slo``,
    and so does the simulation at every larger count tried.

    A count meets the objective when its percentiles do (:meth:`Slo.met`) and its queue is not
    still growing at the end of the span (:func:`queue_growing`: an unstable fleet is never an
    answer). When even requests served alone would miss the objective (one needs more KV
    cache than a replica has, or the p99 of their prefill times or lone decode times exceeds
    it), the answer is None after one simulation.

    The search does not assume latency falls as replicas are added (p99 TPOT does not, at
    small counts). It starts at ``start`` if given, else at the :func:`pilot_estimate` (from
    ``hint``, default :func:`capacity_estimate`; ``pilot=False``: at the capacity estimate
    itself, the search before the pilot existed), brackets the answer (``_bracket``: steps of
    1, 2, 4, ... replicas), bisects between the largest failing count below the
    candidate and the candidate, and checks the candidate plus one; whenever a count above the
    candidate fails, the candidate moves above it and the search goes on
    (:func:`smallest_met_above_all_failures` of every count tried). Every run stops as soon as
    it has missed for sure (:func:`simulate_until_missed`). ``also`` lists further replica
    counts to simulate for the curve (they take part in the answer). ``workers > 1`` (or an
    open ``executor`` of :func:`worker_pool`) simulates replicas in worker processes; the
    answer and the curve are the same as in one process (scripts need an
    ``if __name__ == "__main__":`` guard). ``progress`` is called with a line of text before
    each simulation. ``sessions`` is the session mode of
    :func:`~servegen_core.serve.simulate.simulate` (closed loop by default).
    """
    check_session_mode(sessions)
    check_count("max_replicas", max_replicas, MAX_REPLICAS)
    check_count("workers", workers, max_workers())
    if executor is None and workers > 1:
        with worker_pool(workers) as ex:
            return min_replicas(
                requests, slo, cost, config=config, router=router, max_replicas=max_replicas, also=also, start=start,
                pilot=pilot, hint=hint, executor=ex, progress=progress, sessions=sessions,
            )
    rows: dict[int, dict[str, float | int | bool]] = {}
    kept: dict[int, SimResult] = {}  # the simulations of counts that met (the answer's is returned)
    fleet = FleetWork.of(requests, cost)  # sorted and checked once, reused by every run

    def run(n: int) -> bool:
        if n not in rows:
            if progress:
                progress(f"simulating {requests.height:,} requests on {n} replica(s)")
            res, share = simulate_until_missed(fleet, n, slo, cost, router=router, config=config, executor=executor, sessions=sessions)
            rows[n] = _curve_row(n, res, slo, share)
            if rows[n]["met"]:
                kept[n] = res
                for m in [m for m in kept if m > n]:  # only the smallest met count can become the answer
                    del kept[m]
        return bool(rows[n]["met"])

    answer: int | None = None
    reason = ""
    if requests.height == 0:
        answer = 1
        run(1)
    else:
        t, i, o = request_columns(requests)
        estimate = capacity_estimate(i, o, float(t.max() - t.min()), cost) if hint is None else hint
        estimate = int(min(max_replicas, max(1, estimate)))
        reason = _infeasible(slo, cost, i, o, config or ServerConfig())
        if reason:
            run(estimate if start is None else int(min(max_replicas, max(1, start))))
        else:
            if start is not None:
                _bracket(run, int(min(max_replicas, max(1, start))), max_replicas)
            elif pilot:
                if progress:
                    progress(f"pilot: simulating the first {PILOT_REPLICAS} replicas of each count from {estimate}")
                step = 2.0 if hint is None else 1.25
                guess = pilot_estimate(fleet, slo, cost, guess=estimate, max_replicas=max_replicas, router=router, config=config, executor=executor, step=step,
                    sessions=sessions,
                )
                _bracket(run, guess, max_replicas)
            elif run(estimate) and estimate > 1:  # the search without a pilot: one step down by a fifth
                run(max(1, min(estimate - 1, math.floor(estimate / 1.25))))
            for n in also:
                if 1 <= n <= max_replicas:
                    run(int(n))
            answer = _settle(run, rows, max_replicas)
            if answer is None:
                reason = f"not met with {max(rows)} replicas, the most tried"
    for n in also:
        if 1 <= n <= max_replicas:
            run(int(n))
    curve = pl.DataFrame([rows[k] for k in sorted(rows)]).select(CURVE_COLUMNS)
    return ProvisioningResult(answer, slo, curve, max_replicas, kept.get(answer) if answer is not None else None, reason)


def _settle(run: Callable[[int], bool], rows: Mapping[int, Mapping[str, float | int | bool]], max_replicas: int) -> int | None:
    """Simulate (``run``) until the answer over the counts tried in ``rows`` is settled: the
    smallest met count above every failing one, with the count just below it failing (or 1)
    and the count just above it tried and met; None when ``max_replicas`` does not meet."""
    while True:
        met = {n: bool(r["met"]) for n, r in rows.items()}
        answer = smallest_met_above_all_failures(met)
        if answer is None:
            top = max(met)
            if top >= max_replicas:
                return None
            run(min(max_replicas, max(top + 1, 2 * top)))
            continue
        below = max((n for n, ok in met.items() if not ok and n < answer), default=0)
        if answer - below > 1:
            run((below + answer) // 2)
        elif answer + 1 <= max_replicas and answer + 1 not in met:
            run(answer + 1)
        else:
            return answer


def naive_trace(requests: pl.DataFrame, *, window_s: float = 600.0, seed: int = 0) -> pl.DataFrame:
    """``requests`` with Poisson arrivals: the same requests in the same order, the same count
    in every ``window_s`` window, timestamps drawn uniformly within their window (a Poisson
    process given the count) and sorted. Only the burstiness inside windows changes."""
    if not (window_s > 0 and math.isfinite(window_s)):
        raise SpecError("window_s", f"must be a positive number, got {window_s}")
    if requests.height == 0:
        return requests
    df = requests.sort("timestamp_s", maintain_order=True)
    t = df["timestamp_s"].cast(pl.Float64).to_numpy()
    t0, t1 = float(t[0]), float(t[-1])
    w = np.floor((t - t0) / window_s)
    start = t0 + w * window_s
    width = np.minimum(window_s, max(t1 - t0, 1e-9) - w * window_s)
    width = np.where(width > 0, width, window_s)
    rng = np.random.default_rng(seed)
    new = start + rng.random(len(t)) * width
    new = new[np.lexsort((new, w))]
    return df.with_columns(pl.Series("timestamp_s", new))


#: The stream of :func:`poisson_retimed` and :func:`constant_retimed` under a spec's seed
#: (``default_rng([seed, RETIME_STREAM])``; generation uses ``[seed, window, 0..2, piece]``).
RETIME_STREAM = 3


def poisson_retimed(trace: pl.DataFrame, plan: ComposePlan, *, seed: int) -> pl.DataFrame:
    """The Poisson baseline of a composed workload by common random numbers: the same requests
    (every column but ``timestamp_s`` unchanged), the same count in every client-window of
    ``plan``, and within each client-window the same requests in the same order, given new
    times: the order statistics of uniform draws over the window (through the rate function's
    cumulative integral when the plan has one), a Poisson process given the count. Rows are
    sorted by the new times (stable). Only the arrivals inside windows change."""
    if trace.height == 0:
        return trace
    cw = plan.client_windows.select("client_id", "t0_s", "duration_s").sort("t0_s")
    df = trace.with_row_index("_row").sort("timestamp_s", maintain_order=True)
    joined = df.join_asof(cw, left_on="timestamp_s", right_on="t0_s", by="client_id", strategy="backward", check_sortedness=False)  # sorted by time
    t = joined["timestamp_s"].to_numpy()
    t0 = joined["t0_s"].to_numpy()
    d = joined["duration_s"].to_numpy()
    if np.isnan(t0).any() or (t >= t0 + d + 1e-9).any():
        msg = "a request lies outside every client-window of its plan: the trace was not composed from this plan"
        raise SpecError("trace", msg)
    group = joined.select(pl.struct("client_id", "t0_s").rank("dense")).to_series().to_numpy()
    rng = np.random.default_rng([int(plan.spec.seed), RETIME_STREAM])
    u = rng.random(len(t))
    by_u = np.lexsort((u, group))
    by_time = np.lexsort((np.arange(len(t)), group))  # df is in time order: the group's requests in order
    pos = np.empty(len(t))
    pos[by_time] = u[by_u]
    time_map = plan.arrivals.time_map
    if time_map is not None:
        lam0 = time_map.cumulative(t0)
        new = np.maximum(time_map.inverse(lam0 + pos * (time_map.cumulative(t0 + d) - lam0)), t0)
    else:
        new = t0 + pos * d
    new = np.minimum(new, np.nextafter(t0 + d, -np.inf))
    out = df.with_columns(pl.Series("timestamp_s", new, dtype=pl.Float64)).sort(["timestamp_s", "_row"])
    return out.drop("_row")


def constant_retimed(trace: pl.DataFrame, span_s: float, *, seed: int) -> pl.DataFrame:
    """The constant-rate Poisson baseline by common random numbers: the same requests in the
    same order (every column but ``timestamp_s`` unchanged, so the clients' shares are exact),
    at the order statistics of uniform times over ``[0, span_s)``: Poisson at the mean rate."""
    if trace.height == 0:
        return trace
    df = trace.sort("timestamp_s", maintain_order=True)
    rng = np.random.default_rng([int(seed), RETIME_STREAM])
    new = np.sort(rng.random(df.height)) * float(span_s)
    return df.with_columns(pl.Series("timestamp_s", new, dtype=pl.Float64))


def naive_workloads(workload: Workload, kinds: Sequence[str], *, pool: ClientPool | None = None, max_requests: int | None = None) -> dict[str, pl.DataFrame]:
    """The naive baselines ``kinds`` of a composed ``workload`` by common random numbers, each the
    same requests row for row with only the named aspect changed: ``poisson``
    (:func:`poisson_retimed`), ``pooled_lengths`` (the spec with pooled lengths composed under
    the same seed: the same generators give the same counts and times, and the lengths come
    from the pooled tables by the same uniforms; checked), ``poisson_pooled`` (both, the same
    new times as ``poisson``), ``constant`` (:func:`constant_retimed`)."""
    _check_naive_kinds(kinds)
    trace = workload.trace
    plan = workload.plan
    out: dict[str, pl.DataFrame] = {}
    pooled: pl.DataFrame | None = None
    if {"pooled_lengths", "poisson_pooled"} & set(kinds):
        kwargs = {} if max_requests is None else {"max_requests": max_requests}
        pooled = compose(naive_spec(workload.spec, "pooled_lengths", pool=pool), pool=pool if pool is not None else plan.pool, **kwargs).trace
        same = pooled.height == trace.height and pooled["timestamp_s"].equals(trace["timestamp_s"]) and pooled["client_id"].equals(trace["client_id"])
        if not same:
            msg = "the pooled-lengths baseline did not keep the realistic workload's requests and times"
            raise SpecError("naive", msg)
    seed = int(workload.spec.seed)
    for kind in kinds:
        if kind == "poisson":
            out[kind] = poisson_retimed(trace, plan, seed=seed)
        elif kind == "pooled_lengths" and pooled is not None:
            out[kind] = pooled
        elif kind == "poisson_pooled" and pooled is not None:
            out[kind] = poisson_retimed(pooled, plan, seed=seed)
        elif kind == "constant":
            out[kind] = constant_retimed(trace, plan.span_duration_s, seed=seed)
    return out


def _check_naive_kinds(kinds: Iterable[str]) -> None:
    """Raise :class:`SpecError` (key ``naive``) for the first of ``kinds`` that is not one of
    :data:`~servegen_core.spec.NAIVE_KINDS`."""
    for kind in kinds:
        if kind not in NAIVE_KINDS:
            msg = f"unknown baseline {kind!r}; known: {', '.join(NAIVE_KINDS)}"
            raise SpecError("naive", msg)


def checked_naive_spec(spec: WorkloadSpec, kind: str, *, pool: ClientPool | None = None) -> WorkloadSpec:
    """The naive baseline ``kind`` of a workload spec, :func:`servegen_core.generate.compose.naive_spec`,
    with an unknown ``kind`` refused as a :class:`SpecError` naming ``naive`` (the error the CLI
    and the dashboard report): ``"poisson"`` (only the arrivals become Poisson: same rates,
    clients and per-client lengths), ``"pooled_lengths"`` (only the lengths are pooled over
    clients), ``"poisson_pooled"`` (both), ``"constant"`` (Poisson arrivals at a constant
    aggregate rate equal to the spec's mean over the span, same client shares and per-client
    lengths; needs the source: ``pool``, else loaded from the spec)."""
    _check_naive_kinds((kind,))
    return naive_spec(spec, kind, pool=pool)


# --------------------------------------------------------------------------------------------
# Realistic vs naive
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Realistic vs naive provisioning (:func:`compare_spec`, :func:`compare_trace`).

    ``table``: one row per workload (``realistic`` first): ``workload, requests, replicas``
    (needed for the SLO; null if not met up to the maximum), ``under_provisioning`` (``1 -
    naive replicas / realistic replicas``: the share of the realistic need a benchmark with
    that baseline would miss), then ``ttft_p50_s, ttft_p99_s, tpot_p99_s``, the TTFT, TPOT and
    end-to-end latencies at the objective's percentile not among them (``ttft_p90_s, tpot_p90_s,
    e2e_p90_s`` for p90; ``e2e_p99_s`` for p99: :func:`percentile_columns`), ``attainment``
    (share of requests within every objective), ``goodput_rps``, ``unstable`` and ``met`` of
    that workload *at the realistic replica count*, and ``note``: why a workload has no answer.
    ``curves``: every simulated point,
    ``workload, replicas, ttft_p99_s, tpot_p99_s, ...``. ``realistic``: the simulation of the
    realistic workload at its answer (None without one).
    """

    table: pl.DataFrame
    curves: pl.DataFrame
    slo: Slo
    cost_name: str
    cost_note: str
    realistic: SimResult | None = None

    def sentence(self) -> str:
        """The answer in one sentence."""
        rows = {r["workload"]: r for r in self.table.iter_rows(named=True)}
        real = rows.get("realistic")
        if real is None:
            return "No realistic workload was simulated."
        if real["replicas"] is None:
            return f"The realistic workload cannot meet {self.slo.describe()} on {self.cost_name}: {real['note']}."
        parts = []
        for name, r in rows.items():
            if name == "realistic":
                continue
            if r["replicas"] is None:
                parts.append(f"{name} none ({r['note']})")
            else:
                u = r["under_provisioning"]
                how = f"{u:.0%} under-provisioned" if u >= 0 else f"{-u:.0%} over-provisioned"
                parts.append(f"{name} {r['replicas']} ({how})")
        tail = f"; the naive baselines suggest {', '.join(parts)}" if parts else ""
        n = real["replicas"]
        return f"To meet {self.slo.describe()} on {self.cost_name}, the realistic workload needs {n} replica{'' if n == 1 else 's'}{tail}."


def _compare_workloads(
    workloads: Mapping[str, pl.DataFrame],
    slo: Slo,
    cost: CostModel,
    *,
    config: ServerConfig | None,
    router: str,
    max_replicas: int,
    workers: int,
    progress: Callable[[str], None] | None,
    sessions: str = "closed",
) -> Comparison:
    """:func:`min_replicas` of every workload (``realistic`` first; the others searched from its
    answer and simulated at it) gathered into a :class:`Comparison`."""
    results: dict[str, ProvisioningResult] = {}
    n_real: int | None = None
    with worker_pool(workers) as executor:  # one set of worker processes for every search
        for name, df in workloads.items():  # realistic first: the baselines are also simulated at its answer
            note = (lambda text, name=name: progress(f"{name}: {text}")) if progress else None
            also = (n_real,) if n_real is not None else ()
            res = min_replicas(
                df, slo, cost, config=config, router=router, max_replicas=max_replicas, also=also, hint=n_real, executor=executor, progress=note,
                sessions=sessions,
            )
            if name == "realistic":
                n_real = res.replicas
            else:
                res = dataclasses.replace(res, simulation=None)  # only the realistic run is kept whole
            results[name] = res
    at_percentile = percentile_columns(slo.percentile)
    rows = []
    curves = []
    for name, res in results.items():
        at = res.curve.filter(pl.col("replicas") == n_real).row(0, named=True) if n_real is not None else None
        under = None
        if name != "realistic" and n_real is not None and res.replicas is not None:
            under = 1.0 - res.replicas / n_real
        rows.append(
            {
                "workload": name,
                "requests": workloads[name].height,
                "replicas": res.replicas,
                "under_provisioning": under,
                "ttft_p50_s": at["ttft_p50_s"] if at else None,
                "ttft_p99_s": at["ttft_p99_s"] if at else None,
                "tpot_p99_s": at["tpot_p99_s"] if at else None,
                **{k: at[k] if at else None for k in at_percentile},
                "attainment": at["attainment"] if at else None,
                "goodput_rps": at["goodput_rps"] if at else None,
                "unstable": at["unstable"] if at else None,
                "met": at["met"] if at else None,
                "note": res.reason,
            }
        )
        curves.append(res.curve.with_columns(pl.lit(name).alias("workload")).select("workload", *CURVE_COLUMNS))
    schema = {
        "workload": pl.String, "requests": pl.Int64, "replicas": pl.Int64, "under_provisioning": pl.Float64,
        "ttft_p50_s": pl.Float64, "ttft_p99_s": pl.Float64, "tpot_p99_s": pl.Float64, **dict.fromkeys(at_percentile, pl.Float64),
        "attainment": pl.Float64, "goodput_rps": pl.Float64, "unstable": pl.Boolean, "met": pl.Boolean, "note": pl.String,
    }
    real = results["realistic"].simulation
    return Comparison(pl.DataFrame(rows, schema=schema), pl.concat(curves), slo, cost.name, cost.note, real)


def compare_spec(
    spec: WorkloadSpec,
    slo: Slo,
    cost: CostModel,
    *,
    naive: Sequence[str] = DEFAULT_NAIVE_KINDS,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    max_requests: int | None = None,
    pool: ClientPool | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    sessions: str = "closed",
) -> Comparison:
    """Compose ``spec`` (from ``pool``, else loaded from the spec), derive its ``naive`` baselines
    from the composed requests by common random numbers (:func:`naive_workloads`) and compare
    the replicas each needs for ``slo``. Sessions (``sessions``: the simulator's mode) and SLO
    classes are kept where the baseline keeps the timestamps (:func:`simulated_columns`)."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any composing
    check_count("workers", workers, max_workers())
    _check_naive_kinds(naive)  # an unknown kind fails before any work
    if pool is None:
        pool = load_source(spec)
    kwargs = {} if max_requests is None else {"max_requests": max_requests}
    if progress:
        progress("realistic: composing")
    made = compose(spec, pool=pool, **kwargs)
    workloads = {"realistic": made.trace}
    if progress and naive:
        progress(f"{naive[0]}: deriving the baselines by common random numbers")
    workloads.update(naive_workloads(made, naive, pool=pool, max_requests=max_requests))
    workloads = {name: simulated_columns(df, name) for name, df in workloads.items()}
    return _compare_workloads(
        workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress, sessions=sessions,
    )


#: Baselines with new timestamps: their requests arrive independently (no sessions are kept).
RETIMED_KINDS = ("poisson", "poisson_pooled", "constant")


def simulated_columns(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """The columns of workload ``name`` a search simulates: timestamps and lengths, the SLO
    classes, and the sessions unless ``name`` is a retimed baseline (:data:`RETIMED_KINDS`:
    its turns are retimed one by one, so they no longer follow each other)."""
    keep = [c for c in FLEET_EXTRA if c in df.columns and not (name in RETIMED_KINDS and c in ("session_id", "turn_index"))]
    return df.select("timestamp_s", "input_tokens", "output_tokens", *keep)


def compare_trace(
    requests: pl.DataFrame,
    slo: Slo,
    cost: CostModel,
    *,
    window_s: float = 600.0,
    seed: int = 0,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    sessions: str = "closed",
) -> Comparison:
    """A raw trace against its naive baseline (:func:`naive_trace`: Poisson arrivals): the replicas
    each needs. The trace's sessions are simulated in mode ``sessions``; the baseline has none."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any simulating
    check_count("workers", workers, max_workers())
    real = simulated_columns(requests, "realistic").sort("timestamp_s", maintain_order=True)
    workloads = {"realistic": real, "poisson": simulated_columns(naive_trace(real, window_s=window_s, seed=seed), "poisson")}
    return _compare_workloads(
        workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress, sessions=sessions,
    )


# --------------------------------------------------------------------------------------------
# The answer with its uncertainty
# --------------------------------------------------------------------------------------------

#: The sub-window arrival models an answer's range covers (:data:`~servegen_core.spec.SUB_WINDOW_MODELS`
#: that a pool's rate and CV leave plausible).
RANGE_SUB_WINDOWS = ("gamma", "weibull", "hyperexp", "mmpp")
#: Seeds of the range besides the spec's own: ``seed + 1``, ``seed + 2``.
RANGE_EXTRA_SEEDS = 2


@dataclass(frozen=True)
class AnswerRange:
    """The replicas each workload needs over several seeds and sub-window models
    (:func:`answer_range`). ``runs``: one row per (``workload``, ``seed``, ``sub_window``):
    ``replicas`` (null when not met). ``table``: one row per workload: ``low``, ``high`` (the
    smallest and largest answer; null when one run had none) and ``runs``. ``gap_survives``:
    every realistic answer is above every naive one (None without answers to compare)."""

    runs: pl.DataFrame
    table: pl.DataFrame
    gap_survives: bool | None

    def sentence(self) -> str:
        """The range in one sentence."""
        parts = []
        for r in self.table.iter_rows(named=True):
            if r["low"] is None:
                parts.append(f"{r['workload']} not always met")
            else:
                parts.append(f"{r['workload']} {r['low']}" + (f"-{r['high']}" if r["high"] != r["low"] else ""))
        n = self.runs.filter(pl.col("workload") == "realistic").height
        head = f"Over {n} realistic runs (seeds x sub-window models): " + ", ".join(parts) + " replicas"
        if self.gap_survives is None:
            return head + "."
        verdict = "survives" if self.gap_survives else "does not survive"
        return f"{head}; the realistic-vs-naive gap {verdict} that range."


def answer_range(
    spec: WorkloadSpec,
    slo: Slo,
    cost: CostModel,
    *,
    naive: Sequence[str] = ("poisson",),
    seeds: Sequence[int] | None = None,
    sub_windows: Sequence[str] | None = None,
    pool: ClientPool | None = None,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    max_requests: int | None = None,
    start: int | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    sessions: str = "closed",
) -> AnswerRange:
    """The replicas ``spec`` needs for ``slo`` over ``seeds`` (default: the spec's and
    :data:`RANGE_EXTRA_SEEDS` more) and, for fitted arrivals, ``sub_windows`` (default
    :data:`RANGE_SUB_WINDOWS`; the spec's own model alone for other arrivals), and the ``naive``
    baselines' replicas per seed (derived by common random numbers from that seed's workload
    under the spec's own sub-window model). Every search starts from ``start`` (e.g. the
    answer of :func:`compare_spec`), else from the previous answer, so a run near it costs a
    few simulations."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)
    _check_naive_kinds(naive)
    if pool is None:
        pool = load_source(spec)
    seeds = [int(spec.seed) + k for k in range(RANGE_EXTRA_SEEDS + 1)] if seeds is None else [int(s) for s in seeds]
    if spec.arrivals != "fitted":
        models = [spec.sub_window]
    else:
        models = list(RANGE_SUB_WINDOWS if sub_windows is None else sub_windows)
        if spec.sub_window in models:  # the spec's own model first: its workload also gives the baselines
            models.remove(spec.sub_window)
        models.insert(0, spec.sub_window)
    kwargs = {} if max_requests is None else {"max_requests": max_requests}
    rows: list[dict[str, object]] = []
    last: dict[str, int | None] = {"realistic": start}
    with worker_pool(workers) as executor:  # one set of worker processes for every search
        for seed in seeds:
            for model in models:
                s = dataclasses.replace(spec, seed=seed, sub_window=model)
                if progress:
                    progress(f"realistic: seed {seed}, sub-window {model}: composing")
                made = compose(s, pool=pool, **kwargs)
                workloads = {"realistic": simulated_columns(made.trace, "realistic")}
                if model == spec.sub_window:
                    baselines = naive_workloads(made, naive, pool=pool, max_requests=max_requests)
                    workloads.update({k: simulated_columns(v, k) for k, v in baselines.items()})
                for name, df in workloads.items():
                    note = (lambda text, name=name, seed=seed, model=model: progress(f"{name}: seed {seed}, sub-window {model}: {text}")) if progress else None
                    res = min_replicas(
                        df, slo, cost, config=config, router=router, max_replicas=max_replicas, start=last.get(name), executor=executor, progress=note,
                        sessions=sessions,
                    )
                    if res.replicas is not None:
                        last[name] = res.replicas
                    rows.append({"workload": name, "seed": seed, "sub_window": model if name == "realistic" else spec.sub_window, "replicas": res.replicas})
    runs = pl.DataFrame(rows, schema={"workload": pl.String, "seed": pl.Int64, "sub_window": pl.String, "replicas": pl.Int64})
    table = (
        runs.group_by("workload", maintain_order=True)
        .agg(
            pl.when(pl.col("replicas").null_count() == 0).then(pl.col("replicas").min()).alias("low"),
            pl.when(pl.col("replicas").null_count() == 0).then(pl.col("replicas").max()).alias("high"),
            pl.len().alias("runs"),
        )
    )
    real = table.filter(pl.col("workload") == "realistic").row(0, named=True)
    others = table.filter(pl.col("workload") != "realistic")
    gap: bool | None = None
    if real["low"] is not None and others.height and others["high"].null_count() == 0:
        gap = bool(real["low"] > others["high"].max())
    return AnswerRange(runs, table, gap)
