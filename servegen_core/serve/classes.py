"""SLO classes in the serving simulator: the priority waiting queue and per-class answers.

A workload with an ``slo_priority`` column (:mod:`servegen_core.generate.classes`) is scheduled
by priority in :func:`~servegen_core.serve.simulate.simulate`: waiting requests are admitted
lowest priority number first and first come, first served within a priority, as vLLM's
``--scheduling-policy priority`` orders its waiting queue by ``(priority, arrival)`` (a lower
value is served earlier). A preempted request goes back to the head of its own priority. The
head of the queue still blocks the rest when it does not fit the cache (as in vLLM). Running
requests are never preempted to admit a waiting one; when the cache overflows, the running
request with the largest priority number (the latest arrival among equals) is preempted, as
vLLM V1's scheduler picks ``max(running, key=(priority, arrival_time))`` under the priority
policy (the newest admitted under first come, first served).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.errors import SpecError

__all__ = ["ClassSlo", "PriorityWaiting", "class_met", "priorities_of"]


class PriorityWaiting:
    """The waiting queue of one replica by priority, with the deque methods the engine uses:
    ``append`` (an arrival: last of its priority), ``appendleft`` (a preempted request: first of
    its priority), ``popleft`` and ``[0]`` (the head: lowest priority number, then order)."""

    __slots__ = ("heap", "prio", "seq", "front")

    def __init__(self, prio: list[int]) -> None:
        self.heap: list[tuple[int, int, int]] = []
        self.prio = prio
        self.seq = 0
        self.front = 0

    def append(self, rid: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (self.prio[rid], self.seq, rid))

    def appendleft(self, rid: int) -> None:
        self.front -= 1
        heapq.heappush(self.heap, (self.prio[rid], self.front, rid))

    def popleft(self) -> int:
        return heapq.heappop(self.heap)[2]

    def __getitem__(self, i: int) -> int:
        if i != 0:
            raise IndexError("only the head of the waiting queue is read")
        return self.heap[0][2]

    def __len__(self) -> int:
        return len(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)


def priorities_of(requests: pl.DataFrame) -> np.ndarray | None:
    """The ``slo_priority`` column as integers (None without one). :class:`SpecError` when it
    holds a missing value."""
    if "slo_priority" not in requests.columns:
        return None
    col = requests["slo_priority"]
    if col.null_count():
        raise SpecError("slo_priority", "every request needs a priority (no missing values)")
    return col.cast(pl.Int64).to_numpy()


@dataclass(frozen=True)
class ClassSlo:
    """The objective of one SLO class (seconds; None: no bound): p99 TTFT, p99 TPOT and p99
    end-to-end latency, over the class's completed requests."""

    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None
    e2e_p99_s: float | None = None

    def __post_init__(self) -> None:
        for key in ("ttft_p99_s", "tpot_p99_s", "e2e_p99_s"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))):
                raise SpecError(f"slo.{key}", f"must be a positive number of seconds, got {v!r}")
        if self.ttft_p99_s is None and self.tpot_p99_s is None and self.e2e_p99_s is None:
            raise SpecError("slo", "give at least one of a TTFT, TPOT or end-to-end objective")

    def describe(self) -> str:
        """``"p99 TTFT <= 1 s, p99 TPOT <= 0.05 s"``."""
        parts = [f"p99 {name} <= {v:g} s" for name, v in (("TTFT", self.ttft_p99_s), ("TPOT", self.tpot_p99_s), ("E2E", self.e2e_p99_s)) if v is not None]
        return ", ".join(parts)


def class_met(requests: pl.DataFrame, objectives: Mapping[str, ClassSlo]) -> dict[str, dict[str, float | bool]]:
    """Per class of ``requests`` (a :attr:`SimResult.requests` with an ``slo_class`` column):
    its request count, p99 TTFT/TPOT/end-to-end over completed requests and whether it meets
    its objective in ``objectives`` (every request served, apart from refusals, and each
    bound met). A class without requests meets its objective."""
    out: dict[str, dict[str, float | bool]] = {}
    for name, slo in objectives.items():
        sub = requests.filter(pl.col("slo_class") == name)
        done = sub.filter(pl.col("completed"))
        row: dict[str, float | bool] = {"requests": float(sub.height)}
        for col in ("ttft_s", "tpot_s", "e2e_s"):
            v = done[col].drop_nulls().drop_nans().to_numpy()
            row[f"{col[:-2]}_p99_s"] = float(np.percentile(v, 99)) if len(v) else math.nan
        served = int(done.height) + int(sub["refused"].sum()) if "refused" in sub.columns else int(done.height)
        ok = served >= sub.height
        for key in ("ttft_p99_s", "tpot_p99_s", "e2e_p99_s"):
            bound = getattr(slo, key)
            if bound is not None and row[key] > bound:  # NaN (no values) is no miss
                ok = False
        row["met"] = ok
        out[name] = row
    return out
