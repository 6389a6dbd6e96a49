"""The what-if answer per SLO class: replicas at which every class meets its own objective.

A workload composed with a spec's ``slo_classes`` section has ``slo_class`` and
``slo_priority`` columns (:mod:`servegen_core.generate.classes`); the simulator serves the
waiting requests by priority (:mod:`servegen_core.serve.classes`). :func:`min_replicas_by_class`
searches the smallest replica count at which every class meets its objective
(:func:`~servegen_core.serve.classes.class_met`) and so does every larger count tried (the same
rule as :func:`~servegen_core.serve.whatif.min_replicas`: latency is not assumed monotone in
the replica count), with the queue not still growing at the end of the span; it also gives the
smallest such count per class on its own. :func:`classes_of_spec` reads the objectives from a
spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from servegen_core.errors import SpecError
from servegen_core.limits import MAX_REPLICAS
from servegen_core.serve.classes import ClassSlo, class_met
from servegen_core.serve.costmodel import CostModel, check_count
from servegen_core.serve.simulate import ServerConfig, SimResult, request_columns, simulate
from servegen_core.serve.whatif import UNSTABLE_QUEUE_S, Slo, capacity_estimate, queue_growing, smallest_met_above_all_failures
from servegen_core.spec import WorkloadSpec

__all__ = ["ClassProvisioning", "classes_of_spec", "min_replicas_by_class"]


def classes_of_spec(spec: WorkloadSpec) -> dict[str, ClassSlo]:
    """The objective of each SLO class of ``spec`` (in the spec's order). :class:`SpecError`
    (key ``slo_classes``) when the spec has no ``slo_classes`` section."""
    if spec.slo_classes is None:
        raise SpecError("slo_classes", "the spec has no slo_classes section")
    return {
        name: ClassSlo(ttft_p99_s=c.ttft_p99_s, tpot_p99_s=c.tpot_p99_s, e2e_p99_s=c.e2e_p99_s)
        for name, c in spec.slo_classes.classes
    }


@dataclass(frozen=True)
class ClassProvisioning:
    """Output of :func:`min_replicas_by_class`: ``replicas`` (every class met there and at every
    larger count tried; None if none up to ``max_replicas``), ``by_class`` (per class: its
    requests, ``replicas`` (the same rule for that class alone), and its p99 TTFT/TPOT/E2E and
    ``met`` at the answer), ``curve`` (per count simulated and class: the p99s and ``met``,
    with the fleet's ``unstable``) and the ``simulation`` at the answer."""

    replicas: int | None
    by_class: pl.DataFrame
    curve: pl.DataFrame
    objectives: Mapping[str, ClassSlo]
    simulation: SimResult | None = None

    def sentence(self) -> str:
        """One line: the replicas every class needs, and each class on its own."""
        if self.replicas is None:
            return "No replica count tried meets every class's objective."
        parts = [f"{r['slo_class']} {r['replicas'] if r['replicas'] is not None else 'none'}" for r in self.by_class.iter_rows(named=True)]
        return f"Every SLO class is met with {self.replicas} replicas (each class alone: {', '.join(parts)})."


def _answer(met: Mapping[int, bool]) -> int | None:
    return smallest_met_above_all_failures(met) if met else None


def _next_count(met: Mapping[int, bool], max_replicas: int) -> int | None:
    """The next count to simulate for the all-classes answer (None: settled)."""
    answer = _answer(met)
    if answer is None:
        top = max(met)
        return None if top >= max_replicas else min(max_replicas, max(top + 1, 2 * top))
    below = max((n for n, ok in met.items() if not ok and n < answer), default=0)
    if answer - below > 1:
        return (below + answer) // 2
    if answer + 1 <= max_replicas and answer + 1 not in met:
        return answer + 1
    return None


def min_replicas_by_class(
    requests: pl.DataFrame,
    objectives: Mapping[str, ClassSlo],
    cost: CostModel,
    *,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    start: int | None = None,
    sessions: str = "closed",
    progress: Callable[[str], None] | None = None,
) -> ClassProvisioning:
    """The smallest replica count at which every class of ``requests`` (an ``slo_class``
    column; its ``slo_priority`` orders the waiting queue) meets its objective in
    ``objectives``, searched from ``start`` (default: the cost model's capacity estimate) by
    doubling and bisection, checking the count above the answer (see the module docstring)."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)
    if "slo_class" not in requests.columns:
        raise SpecError("slo_class", "the requests have no slo_class column (compose a spec with an slo_classes section)")
    unknown = sorted(set(requests["slo_class"].drop_nulls().unique().to_list()) - set(objectives))
    if unknown:
        raise SpecError("slo_class", f"no objective for class(es) {unknown}")
    floor = min((o.ttft_p99_s for o in objectives.values() if o.ttft_p99_s is not None), default=None)
    stable_slo = Slo(ttft_p99_s=floor if floor is not None else UNSTABLE_QUEUE_S)  # queue_growing's threshold
    rows: list[dict[str, object]] = []
    met_all: dict[int, bool] = {}
    met_one: dict[str, dict[int, bool]] = {name: {} for name in objectives}
    sims: dict[int, SimResult] = {}

    def run(n: int) -> None:
        if progress:
            progress(f"simulating {requests.height:,} requests on {n} replica(s), by class")
        sim = simulate(requests, cost, replicas=n, router=router, config=config, sessions=sessions)
        unstable = queue_growing(sim, stable_slo)
        per = class_met(sim.requests, objectives)
        for name, r in per.items():
            ok = bool(r["met"]) and not unstable
            met_one[name][n] = ok
            rows.append({"replicas": n, "slo_class": name, **{k: r[k] for k in ("requests", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s")}, "unstable": unstable, "met": ok})
        met_all[n] = all(met_one[name][n] for name in objectives)
        if met_all[n]:  # only the smallest count met can become the answer: keep its simulation
            sims[n] = sim
            for m in [m for m in sims if m > n]:
                del sims[m]

    if requests.height == 0:
        run(1)
    else:
        t, i, o = request_columns(requests)
        guess = start if start is not None else capacity_estimate(i, o, float(t.max() - t.min()), cost)
        run(int(min(max_replicas, max(1, guess))))
        while True:  # every class together first, then each class alone, until none asks for a count
            wanted = [_next_count(met_all, max_replicas), *(_next_count(met_one[name], max_replicas) for name in objectives)]
            n = next((w for w in wanted if w is not None), None)
            if n is None:
                break
            run(n)
    answer = _answer(met_all)
    curve = pl.DataFrame(rows).sort("replicas", "slo_class", maintain_order=True)
    at = curve.filter(pl.col("replicas") == answer) if answer is not None else curve.clear()
    by_class = pl.DataFrame(
        [
            {
                "slo_class": name, "requests": int(requests.filter(pl.col("slo_class") == name).height),
                "replicas": _answer(met_one[name]), "objective": objectives[name].describe(),
                **({k: at.filter(pl.col("slo_class") == name)[k][0] for k in ("ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "met")} if at.height else {}),
            }
            for name in objectives
        ]
    )
    return ClassProvisioning(answer, by_class, curve, dict(objectives), sims.get(answer) if answer is not None else None)
