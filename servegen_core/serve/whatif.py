"""What-if provisioning: the replicas a workload needs for a latency objective, realistic vs naive.

:func:`min_replicas` finds the smallest replica count whose simulation
(:func:`servegen_core.serve.simulate.simulate`) meets an :class:`Slo` (p99 TTFT and/or p99
TPOT) by galloping then bisection. :func:`compare_spec` composes a spec and its naive
baselines (:func:`checked_naive_spec`: Poisson arrivals; pooled lengths; both; optionally a
constant rate), searches each naive workload from the realistic answer, and reports the
replicas each needs, the under-provisioning of each naive workload and its latencies at the
realistic count; :func:`compare_trace` does the same for a raw trace against
:func:`naive_trace` (the same requests with Poisson arrivals, the same count per window).

The kinds of naive baseline are the spec's :data:`~servegen_core.spec.NAIVE_KINDS`;
:data:`DEFAULT_NAIVE_KINDS` are the ones compared by default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.errors import SpecError
from servegen_core.generate.compose import compose, naive_spec
from servegen_core.sources.load import load_source
from servegen_core.limits import MAX_REPLICAS, max_workers
from servegen_core.serve.costmodel import CostModel, check_count
from servegen_core.serve.simulate import ServerConfig, SimResult, request_columns, simulate
from servegen_core.sources.pool import ClientPool
from servegen_core.spec import NAIVE_KINDS, WorkloadSpec

__all__ = [
    "CURVE_COLUMNS",
    "DEFAULT_NAIVE_KINDS",
    "Comparison",
    "ProvisioningResult",
    "Slo",
    "checked_naive_spec",
    "compare_spec",
    "compare_trace",
    "min_replicas",
    "naive_trace",
]

#: Naive baselines compared by default; :data:`~servegen_core.spec.NAIVE_KINDS` adds
#: ``"constant"`` (no rate shifts either).
DEFAULT_NAIVE_KINDS = ("poisson", "pooled_lengths", "poisson_pooled")


# --------------------------------------------------------------------------------------------
# Replicas needed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slo:
    """A latency objective: p99 TTFT and/or p99 TPOT in seconds (at least one), over completed
    requests; a request that could not be served (rejected) fails the objective."""

    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None

    def __post_init__(self) -> None:
        if self.ttft_p99_s is None and self.tpot_p99_s is None:
            raise SpecError("slo", "give a p99 TTFT and/or a p99 TPOT objective")
        for key in ("ttft_p99_s", "tpot_p99_s"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))):
                raise SpecError(f"slo.{key}", f"must be a positive number of seconds, got {v!r}")

    def met(self, summary: Mapping[str, float]) -> bool:
        """Whether a :meth:`SimResult.summary` meets the objective."""
        if summary["completed"] + summary.get("refused", 0.0) < summary["requests"]:  # refusals: reported, not a miss
            return False
        if self.ttft_p99_s is not None and not summary["ttft_p99_s"] <= self.ttft_p99_s:
            return False
        return not (self.tpot_p99_s is not None and summary["tpot_p99_s"] > self.tpot_p99_s)

    def describe(self) -> str:
        """``"p99 TTFT <= 2 s and p99 TPOT <= 0.1 s"``."""
        parts = []
        if self.ttft_p99_s is not None:
            parts.append(f"p99 TTFT <= {self.ttft_p99_s:g} s")
        if self.tpot_p99_s is not None:
            parts.append(f"p99 TPOT <= {self.tpot_p99_s:g} s")
        return " and ".join(parts)


#: Columns of :attr:`ProvisioningResult.curve`, one row per replica count simulated.
CURVE_COLUMNS = ("replicas", "ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "queue_p99_s", "utilization_mean", "preemptions", "met")


@dataclass(frozen=True)
class ProvisioningResult:
    """Output of :func:`min_replicas`: the smallest ``replicas`` meeting ``slo`` (None if even
    ``max_replicas`` did not), and ``curve``, one row per replica count simulated on the way
    (sorted by ``replicas``: latency percentiles in seconds, mean utilization, ``met``).
    ``simulation`` is the full :class:`SimResult` at the answer (per-request latencies, per-
    replica statistics and timelines), None without an answer; ``reason`` says why there is
    no answer ("" when there is one)."""

    replicas: int | None
    slo: Slo
    curve: pl.DataFrame
    max_replicas: int
    simulation: SimResult | None = None
    reason: str = ""


def _curve_row(n: int, summary: Mapping[str, float], met: bool) -> dict[str, float | int | bool]:
    """One row of a provisioning curve: ``n`` replicas, the latencies of ``summary``, ``met``."""
    row: dict[str, float | int | bool] = {k: summary[k] for k in CURVE_COLUMNS[1:-1]}
    row["replicas"] = n
    row["met"] = met
    return row


def _infeasible(slo: Slo, cost: CostModel, inp: np.ndarray, out: np.ndarray, config: ServerConfig) -> str:
    """Why even every request alone on its own replica would miss the objective ("" if it would
    not): one does not fit the KV cache (it is rejected), or the p99 of lone prefill or decode
    times is above the objective."""
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
    if slo.ttft_p99_s is not None:
        p99 = float(np.percentile(cost.prefill_time(inp), 99))
        if p99 > slo.ttft_p99_s:
            return f"even alone, the p99 of the requests' prefill times is {p99:.3g} s, above the {slo.ttft_p99_s:g} s TTFT objective"
    if slo.tpot_p99_s is not None:
        multi = out > 1
        if multi.any():
            p99 = float(np.percentile(cost.decode_time(1, inp[multi] + 1 + (out[multi] - 2) / 2), 99))
            if p99 > slo.tpot_p99_s:
                return f"even alone, the p99 of the requests' decode step times is {p99:.3g} s, above the {slo.tpot_p99_s:g} s TPOT objective"
    return ""


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
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> ProvisioningResult:
    """The smallest number of replicas whose simulation of ``requests`` meets ``slo``.

    When even requests served alone would miss the objective (one needs more KV cache than a
    replica has, or the p99 of their prefill times or lone decode times exceeds it), the answer
    is None after one simulation. Otherwise the
    search starts at ``start`` (default: the replica count the cost model's nominal token rate
    suggests), gallops down or up (steps of 1, 2, 4, ... from ``start``; halving or doubling
    from the suggestion) until the objective flips, then
    bisects (latency is taken as non-increasing in the replica count). ``also`` lists further
    replica counts to simulate for the curve.
    ``progress`` is called with a line of text before each simulation.
    """
    check_count("max_replicas", max_replicas, MAX_REPLICAS)
    check_count("workers", workers, max_workers())
    rows: dict[int, dict[str, float | int | bool]] = {}
    best: dict[int, SimResult] = {}  # the smallest count meeting the SLO so far (at most one kept)

    def run(n: int) -> bool:
        if n not in rows:
            if progress:
                progress(f"simulating {requests.height:,} requests on {n} replica(s)")
            res = simulate(requests, cost, replicas=n, router=router, config=config, workers=workers)
            s = res.summary()
            rows[n] = _curve_row(n, s, slo.met(s))
            if rows[n]["met"] and (not best or n < min(best)):
                best.clear()
                best[n] = res
        return bool(rows[n]["met"])

    answer: int | None
    reason = ""
    if requests.height == 0:
        answer = 1
        run(1)
    else:
        t, i, o = request_columns(requests)
        span = max(float(t.max() - t.min()), 1.0)
        rate = cost.token_rate(float(i.mean()), float(o.mean()))
        guess = int(min(max_replicas, max(1, math.ceil(float(i.sum() + o.sum()) / span / rate))))
        if start is not None:
            guess = int(min(max_replicas, max(1, start)))
        reason = _infeasible(slo, cost, i, o, config or ServerConfig())
        if reason:
            run(guess)
            hi = lo = None
        elif run(guess):
            # down to a count that misses: steps 1, 2, 4, ... from a start, halving from a guess
            hi, lo, step = guess, 0, 1
            while hi > 1:
                n = max(1, hi - step) if start is not None else max(1, hi // 2)
                if run(n):
                    hi = n
                    step *= 2
                else:
                    lo = n
                    break
        else:
            # up to a count that meets: steps 1, 2, 4, ... from a start, doubling from a guess
            lo, hi, step = guess, None, 1
            while lo < max_replicas:
                n = min(max_replicas, lo + step if start is not None else lo * 2)
                if run(n):
                    hi = n
                    break
                lo = n
                step *= 2
        if hi is None:
            answer = None
            reason = reason or f"not met with {max_replicas} replicas, the most tried"
        else:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if run(mid):
                    hi = mid
                else:
                    lo = mid
            answer = hi
    for n in also:
        if 1 <= n <= max_replicas:
            run(int(n))
    curve = pl.DataFrame([rows[k] for k in sorted(rows)]).select(CURVE_COLUMNS)
    return ProvisioningResult(answer, slo, curve, max_replicas, best.get(answer) if answer is not None else None, reason)


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
    that baseline would miss), then ``ttft_p50_s, ttft_p99_s, tpot_p99_s, met`` of that
    workload *at the realistic replica count*, and ``note``: why a workload has no answer.
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
        return f"To meet {self.slo.describe()} on {self.cost_name}, the realistic workload needs {real['replicas']} replicas{tail}."


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
) -> Comparison:
    """:func:`min_replicas` of every workload (``realistic`` first; the others searched from its
    answer and simulated at it) gathered into a :class:`Comparison`."""
    results: dict[str, ProvisioningResult] = {}
    n_real: int | None = None
    for name, df in workloads.items():  # realistic first: the baselines are also simulated at its answer
        note = (lambda text, name=name: progress(f"{name}: {text}")) if progress else None
        also = (n_real,) if n_real is not None else ()
        res = min_replicas(
            df, slo, cost, config=config, router=router, max_replicas=max_replicas, also=also, start=n_real, workers=workers, progress=note,
        )
        if name == "realistic":
            n_real = res.replicas
        else:
            res = dataclasses.replace(res, simulation=None)  # only the realistic run is kept whole
        results[name] = res
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
                "met": at["met"] if at else None,
                "note": res.reason,
            }
        )
        curves.append(res.curve.with_columns(pl.lit(name).alias("workload")).select("workload", *CURVE_COLUMNS))
    schema = {
        "workload": pl.String, "requests": pl.Int64, "replicas": pl.Int64, "under_provisioning": pl.Float64,
        "ttft_p50_s": pl.Float64, "ttft_p99_s": pl.Float64, "tpot_p99_s": pl.Float64, "met": pl.Boolean, "note": pl.String,
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
) -> Comparison:
    """Compose ``spec`` and its ``naive`` baselines (kinds of :func:`checked_naive_spec`) from one
    loaded source (``pool``, else loaded from the spec) and compare the replicas each needs for ``slo``."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any composing
    check_count("workers", workers, max_workers())
    _check_naive_kinds(naive)  # an unknown kind fails before any work
    if pool is None:
        pool = load_source(spec)
    kwargs = {} if max_requests is None else {"max_requests": max_requests}
    workloads = {}
    for name, s in [("realistic", spec), *[(k, checked_naive_spec(spec, k, pool=pool)) for k in naive]]:
        if progress:
            progress(f"{name}: composing")
        workloads[name] = compose(s, pool=pool, **kwargs).trace.select("timestamp_s", "input_tokens", "output_tokens")
    return _compare_workloads(workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress)


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
) -> Comparison:
    """A raw trace against its naive baseline (:func:`naive_trace`: Poisson arrivals): the replicas each needs."""
    check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any simulating
    check_count("workers", workers, max_workers())
    real = requests.select("timestamp_s", "input_tokens", "output_tokens").sort("timestamp_s", maintain_order=True)
    workloads = {"realistic": real, "poisson": naive_trace(real, window_s=window_s, seed=seed)}
    return _compare_workloads(workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress)
