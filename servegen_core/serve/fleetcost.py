"""What a fleet costs, two serving options compared, and the latency no replica count beats.

- :data:`GPU_PRICES`: on-demand **list prices** in USD per GPU-hour, one row per GPU of
  :data:`~servegen_core.serve.hardware.GPUS`, each with the instance it is read from, the
  source URL and the date of the figure. They are list prices of one cloud and region, to be
  edited (or passed as ``usd_per_gpu_hour=``) for the prices actually paid: reserved, spot
  and negotiated rates are often half of them or less.
- :func:`fleet_cost`: GPU-hours and cost of ``replicas`` replicas of ``tensor_parallel`` GPUs
  held for a workload's span.
- :func:`gpu_comparison`: the fewest replicas each of several serving options (GPU, model,
  tensor parallelism, cost model) needs for one workload and one :class:`~servegen_core.serve.whatif.Slo`,
  searched by :func:`~servegen_core.serve.whatif.min_replicas`, with the GPU-hours and cost of each.
- :func:`latency_floor`: the lowest TTFT, TPOT and end-to-end percentiles any replica count
  reaches: every request alone on an idle replica (the limit of one request per replica),
  simulated by the same engine; an objective below its floor cannot be met by adding replicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from servegen_core.errors import SpecError
from servegen_core.serve.costmodel import DEFAULT_COMPUTE_EFFICIENCY, CostModel, check_count, roofline
from servegen_core.serve.hardware import gpu as gpu_named
from servegen_core.serve.simulate import ServerConfig, request_columns, simulate
from servegen_core.serve.whatif import SLO_PERCENTILES, ProvisioningResult, Slo, min_replicas, simulated_columns

__all__ = [
    "GPU_PRICES",
    "FLOOR_MAX_REQUESTS",
    "FleetCost",
    "GpuComparison",
    "GpuPrice",
    "LatencyFloor",
    "ServingOption",
    "fleet_cost",
    "gpu_comparison",
    "gpu_price",
    "latency_floor",
    "serving_option",
]


@dataclass(frozen=True)
class GpuPrice:
    """An on-demand list price: USD per GPU-hour (the instance's hourly price over its GPUs,
    CPU, memory and disk of the instance included), the instance it is read from, the source
    URL and the date of the figure."""

    gpu: str
    usd_per_gpu_hour: float
    instance: str
    source: str
    as_of: str


_AWS = "https://aws.amazon.com/ec2/pricing/on-demand/"
_AWS_NOTE = "AWS EC2 on-demand, Linux, US East (N. Virginia); AWS lowered P4 and P5 prices in June 2025: edit"

#: On-demand LIST prices per GPU-hour, keyed by :data:`~servegen_core.serve.hardware.GPUS` name.
#: Edit them (or pass ``usd_per_gpu_hour=``) for the prices you pay.
GPU_PRICES: dict[str, GpuPrice] = {
    p.gpu: p
    for p in (
        GpuPrice("a100-80gb", 40.96 / 8, f"p4de.24xlarge, 8 x A100 80GB, $40.96/h ({_AWS_NOTE})", _AWS, "2024-06"),
        GpuPrice("a100-40gb", 32.77 / 8, f"p4d.24xlarge, 8 x A100 40GB, $32.77/h ({_AWS_NOTE})", _AWS, "2024-06"),
        GpuPrice("h100-sxm", 98.32 / 8, f"p5.48xlarge, 8 x H100 80GB, $98.32/h ({_AWS_NOTE})", _AWS, "2024-06"),
        GpuPrice("l40s", 1.861, f"g6e.xlarge, 1 x L40S, $1.861/h ({_AWS_NOTE})", _AWS, "2024-08"),
        GpuPrice("a10g", 1.006, f"g5.xlarge, 1 x A10G, $1.006/h ({_AWS_NOTE})", _AWS, "2024-06"),
    )
}


def gpu_price(gpu: str, prices: Mapping[str, GpuPrice] = GPU_PRICES) -> GpuPrice:
    """The list price of ``gpu`` (a :data:`~servegen_core.serve.hardware.GPUS` name or alias);
    :class:`SpecError` naming ``gpu`` when the table has none."""
    name = gpu_named(gpu).name
    if name not in prices:
        msg = f"no list price for {name}; known: {', '.join(prices)} (give usd_per_gpu_hour)"
        raise SpecError("gpu", msg)
    return prices[name]


def _positive(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise SpecError(key, f"must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FleetCost:
    """Output of :func:`fleet_cost`: ``gpus`` (replicas x tensor parallel), ``gpu_hours`` over
    ``span_s``, ``usd_per_gpu_hour``, ``cost_usd`` and, given the workload's ``requests``,
    ``usd_per_million_requests`` (None without requests)."""

    replicas: int
    gpu: str
    tensor_parallel: int
    span_s: float
    gpus: int
    gpu_hours: float
    usd_per_gpu_hour: float
    cost_usd: float
    usd_per_million_requests: float | None
    price_source: str

    def sentence(self) -> str:
        """``"4 replicas x 2 x h100-sxm = 8 GPUs for 1.00 h: 8.0 GPU-hours, $98.32 at $12.29 per GPU-hour"``."""
        per = f" (${self.usd_per_million_requests:,.2f} per million requests)" if self.usd_per_million_requests is not None else ""
        return (
            f"{self.replicas} replica{'' if self.replicas == 1 else 's'} x {self.tensor_parallel} x {self.gpu} = {self.gpus} "
            f"GPU{'' if self.gpus == 1 else 's'} for {self.span_s / 3600:,.2f} h: {self.gpu_hours:,.1f} GPU-hours, "
            f"${self.cost_usd:,.2f} at ${self.usd_per_gpu_hour:,.3f} per GPU-hour{per}"
        )


def fleet_cost(
    replicas: int, gpu: str, tp: int, span_s: float, *, requests: int | None = None,
    usd_per_gpu_hour: float | None = None, prices: Mapping[str, GpuPrice] = GPU_PRICES,
) -> FleetCost:
    """GPU-hours and cost of ``replicas`` replicas of ``tp`` x ``gpu`` held for ``span_s`` seconds
    (a workload's span), at ``usd_per_gpu_hour`` (default: the list price of :data:`GPU_PRICES`)."""
    check_count("replicas", replicas, 10**9)
    check_count("tensor_parallel", tp, 10**6)
    span = _positive("span_s", span_s)
    name = gpu_named(gpu).name
    if usd_per_gpu_hour is None:
        price = gpu_price(name, prices)
        rate, source = price.usd_per_gpu_hour, f"{price.instance}; {price.source} ({price.as_of})"
    else:
        rate, source = _positive("usd_per_gpu_hour", usd_per_gpu_hour), "given"
    gpus = int(replicas) * int(tp)
    hours = gpus * span / 3600.0
    cost = hours * rate
    per_million = cost / requests * 1e6 if requests else None
    return FleetCost(int(replicas), name, int(tp), span, gpus, hours, rate, cost, per_million, source)


@dataclass(frozen=True)
class ServingOption:
    """One way to serve a workload: a ``label``, its cost model, and the ``gpu`` and
    ``tensor_parallel`` its price is read for."""

    label: str
    cost: CostModel
    gpu: str
    tensor_parallel: int = 1


def serving_option(model: str, gpu: str, *, tensor_parallel: int = 1, efficiency: float = DEFAULT_COMPUTE_EFFICIENCY) -> ServingOption:
    """The roofline :class:`ServingOption` of ``model`` on ``tensor_parallel`` x ``gpu``."""
    cost = roofline(model, gpu, efficiency=efficiency, tensor_parallel=tensor_parallel)
    return ServingOption(cost.name, cost, gpu_named(gpu).name, int(tensor_parallel))


#: Columns of :attr:`GpuComparison.table`.
COMPARISON_COLUMNS = {
    "option": pl.String, "gpu": pl.String, "tensor_parallel": pl.Int64, "replicas": pl.Int64, "gpus": pl.Int64,
    "gpu_hours": pl.Float64, "usd_per_gpu_hour": pl.Float64, "cost_usd": pl.Float64, "usd_per_million_requests": pl.Float64,
    "ttft_s": pl.Float64, "tpot_s": pl.Float64, "e2e_s": pl.Float64, "note": pl.String,
}


@dataclass(frozen=True)
class GpuComparison:
    """Output of :func:`gpu_comparison`. ``table``: one row per option, in the order given:
    ``option, gpu, tensor_parallel, replicas`` (null when not met up to the maximum), ``gpus,
    gpu_hours, usd_per_gpu_hour, cost_usd, usd_per_million_requests`` (null without an answer),
    ``ttft_s, tpot_s, e2e_s`` (the objective's percentile at the answer) and ``note`` (why there
    is no answer). ``results``: each option's :class:`ProvisioningResult`; ``n_requests`` of the workload."""

    table: pl.DataFrame
    results: Mapping[str, ProvisioningResult]
    slo: Slo
    span_s: float
    n_requests: int = 0

    def priced(self, usd_per_gpu_hour: Mapping[str, float]) -> GpuComparison:
        """The same answers at other prices per GPU-hour (by option label; others keep theirs)."""
        rate = pl.Series([_positive("usd_per_gpu_hour", usd_per_gpu_hour.get(o, r)) if r is not None else None
                          for o, r in zip(self.table["option"], self.table["usd_per_gpu_hour"], strict=True)], dtype=pl.Float64)
        cost = self.table["gpu_hours"] * rate
        per_million = cost / self.n_requests * 1e6 if self.n_requests else pl.Series([None] * len(cost), dtype=pl.Float64)
        table = self.table.with_columns(rate.alias("usd_per_gpu_hour"), cost.alias("cost_usd"), per_million.alias("usd_per_million_requests"))
        return GpuComparison(table, self.results, self.slo, self.span_s, self.n_requests)

    def sentence(self) -> str:
        """The comparison in one sentence: each option's replicas and cost, and the cheaper one."""
        parts = []
        for r in self.table.iter_rows(named=True):
            if r["replicas"] is None:
                parts.append(f"{r['option']} cannot ({r['note']})")
            else:
                n = r["replicas"]
                parts.append(f"{r['option']} needs {n} replica{'' if n == 1 else 's'} ({r['gpu_hours']:,.1f} GPU-hours, ${r['cost_usd']:,.2f})")
        head = f"For {self.slo.describe()} over {self.span_s / 3600:,.2f} h: " + "; ".join(parts)
        met = self.table.filter(pl.col("cost_usd").is_not_null()).sort("cost_usd", maintain_order=True)
        if met.height >= 2:
            low, high = met.row(0, named=True), met.row(met.height - 1, named=True)
            if high["cost_usd"] > low["cost_usd"]:
                return f"{head}. {low['option']} is the cheaper, {1 - low['cost_usd'] / high['cost_usd']:.0%} below {high['option']}."
            return f"{head}. They cost the same."
        return head + "."


def gpu_comparison(
    requests: pl.DataFrame,
    options: Sequence[ServingOption],
    slo: Slo,
    *,
    span_s: float | None = None,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    usd_per_gpu_hour: Mapping[str, float] | None = None,
    prices: Mapping[str, GpuPrice] = GPU_PRICES,
    progress: Callable[[str], None] | None = None,
    sessions: str = "closed",
) -> GpuComparison:
    """The fewest replicas each of ``options`` needs for ``requests`` (``timestamp_s,
    input_tokens, output_tokens``) and ``slo`` (:func:`~servegen_core.serve.whatif.min_replicas`),
    and the GPU-hours and cost of each over ``span_s`` (default: first to last arrival), at
    ``usd_per_gpu_hour[option label]`` where given, else the list price of its GPU. The
    workload's sessions and SLO classes are simulated as in the search (``sessions``: the
    simulator's session mode)."""
    if not options:
        raise SpecError("options", "give at least one serving option")
    labels = [o.label for o in options]
    if len(set(labels)) != len(labels):
        raise SpecError("options", f"option labels must differ, got {labels}")
    work = simulated_columns(requests, "realistic")
    if span_s is None:
        t = work["timestamp_s"]
        span_s = float(t.max() - t.min()) if work.height else 0.0
    rates = usd_per_gpu_hour or {}
    rows, results = [], {}
    for opt in options:
        note = (lambda text, label=opt.label: progress(f"{label}: {text}")) if progress else None
        res = min_replicas(work, slo, opt.cost, config=config, router=router, max_replicas=max_replicas, progress=note, sessions=sessions)
        results[opt.label] = res
        row: dict[str, object] = {"option": opt.label, "gpu": opt.gpu, "tensor_parallel": opt.tensor_parallel, "replicas": res.replicas, "note": res.reason}
        if res.replicas is not None:
            fc = fleet_cost(res.replicas, opt.gpu, opt.tensor_parallel, span_s, requests=work.height, usd_per_gpu_hour=rates.get(opt.label), prices=prices)
            row.update(gpus=fc.gpus, gpu_hours=fc.gpu_hours, usd_per_gpu_hour=fc.usd_per_gpu_hour, cost_usd=fc.cost_usd, usd_per_million_requests=fc.usd_per_million_requests)
            at = res.curve.filter(pl.col("replicas") == res.replicas).row(0, named=True)
            row.update({f"{k}_s": at[f"{k}_p{slo.percentile}_s"] for k in ("ttft", "tpot", "e2e")})
        rows.append(row)
    return GpuComparison(pl.DataFrame(rows, schema=COMPARISON_COLUMNS), results, slo, float(span_s), work.height)


#: Requests :func:`latency_floor` simulates at most (a seeded random sample of a larger workload).
FLOOR_MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class LatencyFloor:
    """Output of :func:`latency_floor`. ``table``: one row per latency (``ttft``, ``tpot``,
    ``e2e``) with the percentiles ``p50_s, p90_s, p95_s, p99_s`` of every request served alone;
    ``requests``: how many were simulated of the workload's ``of_requests``; ``left_out``: those
    refused or rejected at every replica count (longer than the context or the KV cache); the
    others are a sample when ``sampled``."""

    table: pl.DataFrame
    requests: int
    of_requests: int
    left_out: int = 0

    @property
    def sampled(self) -> bool:
        return self.requests < self.of_requests - self.left_out

    def value(self, latency: str, percentile: int) -> float:
        """The floor of one latency (``"ttft"``, ``"tpot"``, ``"e2e"``) at one percentile, seconds."""
        return float(self.table.filter(pl.col("latency") == latency)[f"p{percentile}_s"].item())

    def headroom(self, slo: Slo) -> list[str]:
        """One sentence per objective of ``slo``: its bound against the floor at its percentile."""
        labels = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
        out = []
        q = slo.percentile
        for name, bound in slo.objectives():
            floor = self.value(name, q)
            what = f"p{q} {labels[name]} <= {bound:g} s"
            if math.isnan(floor):
                out.append(f"{what}: no request has a {labels[name]} (one-token answers only).")
            elif bound < floor:
                out.append(f"{what} cannot be met by any replica count: alone on an idle replica the requests' p{q} {labels[name]} is {floor:,.3g} s.")
            else:
                out.append(
                    f"{what} leaves {bound / floor:,.1f}x the lowest p{q} {labels[name]} any replica count reaches "
                    f"({floor:,.3g} s, every request alone): {bound - floor:,.3g} s for queueing and batching."
                )
        return out


def _lone_gap_s(inp: np.ndarray, out: np.ndarray, cost: CostModel, config: ServerConfig) -> float:
    """Seconds between arrivals that leave every request alone: twice the longest lone
    prefill (one iteration per chunk of the token budget) plus decode, plus a second."""
    chunks = np.ceil(inp / config.max_batched_tokens) if config.chunked_prefill else np.ones(len(inp))
    prefill = cost.prefill_time(inp) + chunks * float(cost.iteration_time())
    decode = out * cost.decode_time(1, inp + out)
    return float(2.0 * np.max(prefill + decode)) + 1.0


def latency_floor(
    requests: pl.DataFrame, cost: CostModel, *, config: ServerConfig | None = None,
    max_requests: int = FLOOR_MAX_REQUESTS, seed: int = 0,
) -> LatencyFloor:
    """The lowest TTFT, TPOT and end-to-end percentiles any replica count reaches for
    ``requests``: each request alone on an idle replica (one request per replica), simulated by
    :func:`~servegen_core.serve.simulate.simulate` with the arrivals spaced so that none
    overlaps another (checked: no request waits). Requests the model's context refuses or the
    KV cache cannot hold (refused or rejected at every replica count) are left out; above ``max_requests`` a sample of that many, drawn with ``seed``, is simulated."""
    config = config or ServerConfig()
    check_count("max_requests", max_requests, 10**9)
    _, inp, out = request_columns(requests)
    n_all = len(inp)
    keep = (inp + out <= cost.max_context) if cost.max_context else np.ones(n_all, dtype=bool)
    blocks = cost.kv_tokens // config.block_size
    keep &= -(-(np.maximum(inp, 1) + np.maximum(out, 1)) // config.block_size) <= blocks - int(config.watermark * blocks)
    inp, out = inp[keep], out[keep]
    left_out = n_all - len(inp)
    if len(inp) > max_requests:
        pick = np.sort(np.random.default_rng(seed).choice(len(inp), size=max_requests, replace=False))
        inp, out = inp[pick], out[pick]
    rows = {name: dict.fromkeys((f"p{q}_s" for q in SLO_PERCENTILES), math.nan) for name in ("ttft", "tpot", "e2e")}
    if len(inp):
        gap = _lone_gap_s(np.maximum(inp, 1), np.maximum(out, 1), cost, config)
        t = np.arange(len(inp), dtype=float) * gap
        lone = pl.DataFrame({"timestamp_s": t, "input_tokens": inp, "output_tokens": out})
        sim = simulate(lone, cost, replicas=1, config=config, bin_s=max(float(t[-1]), 1.0))
        req = sim.requests
        ends = (req["arrival_s"] + req["e2e_s"]).to_numpy()
        if not (req["completed"].all() and float(req["queue_s"].max()) == 0.0 and (ends[:-1] <= t[1:]).all()):
            msg = "the lone-request simulation had requests waiting or overlapping"
            raise SpecError("latency_floor", msg)
        summary = sim.summary()
        rows = {name: {f"p{q}_s": summary[f"{name}_p{q}_s"] for q in SLO_PERCENTILES} for name in rows}
    table = pl.DataFrame([{"latency": name, **vals} for name, vals in rows.items()])
    return LatencyFloor(table, int(len(inp)), n_all, int(left_out))
