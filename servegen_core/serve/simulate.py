"""Simulate continuous-batching LLM serving replicas, and ask how many a workload needs.

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

Cost models
-----------
:func:`roofline` builds one from a model and a GPU of :mod:`servegen_core.serve.hardware`: an
iteration takes ``overhead + max(compute, memory)`` where compute is ``2 x params x tokens +
4 x layers x heads x head_dim x attention pairs`` FLOPs at ``efficiency x peak`` and memory is
the weights plus the KV cache read and written at ``efficiency x bandwidth``.
:func:`calibrate` fits the same linear features by non-negative least squares to a user's own
benchmark results (AIPerf ``profile_export_aiperf.json``, vLLM ``bench serve`` result JSON,
or a CSV of measured iterations). Absolute latencies are only as good as that calibration;
comparisons between workloads on the same cost model (realistic vs naive) are what the
what-if relies on.

What-if
-------
:func:`min_replicas` finds the smallest ``N`` meeting an :class:`Slo` (p99 TTFT and/or p99
TPOT) by galloping then bisection. :func:`compare_spec` runs a spec and its naive baselines
(:func:`baseline_spec`: Poisson arrivals; pooled lengths; both; optionally a constant rate),
searching each baseline from the realistic answer, and reports the replicas each needs, the under-provisioning of each baseline and its latencies at
the realistic ``N``; :func:`compare_trace` does the same for a raw trace against the trace
with Poisson arrivals (same requests, same count per window).
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import json
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from servegen_core.errors import DataFormatError, SpecError
from servegen_core.serve.hardware import Gpu, ModelConfig, gpu as _gpu, model as _model
from servegen_core.limits import MAX_BATCHED_TOKENS, MAX_BLOCK_SIZE, MAX_CALIBRATION_BYTES, MAX_NUM_SEQS, MAX_REPLICAS, MAX_TENSOR_PARALLEL, max_workers
from servegen_core.spec import NAIVE_KINDS

__all__ = [
    "ALL_BASELINES",
    "BASELINES",
    "ROUTERS",
    "Comparison",
    "CostModel",
    "ProvisioningResult",
    "ServerConfig",
    "SimResult",
    "Slo",
    "baseline_spec",
    "calibrate",
    "compare_spec",
    "compare_trace",
    "min_replicas",
    "poisson_baseline",
    "roofline",
    "route",
    "simulate",
]

ROUTERS = ("round_robin", "least_outstanding")

# Feature order of a cost line: intercept, prefill tokens T, attention pairs A, KV tokens read K,
# decoding sequences S.
_FEATURES = ("intercept_s", "prefill_token_s", "attention_pair_s", "kv_token_s", "decode_seq_s")


# --------------------------------------------------------------------------------------------
# Cost models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """Iteration time as the maximum of two linear functions of the iteration's features.

    ``time = max(c . x, m . x)`` with ``x = (1, T, A, K, S)``: ``T`` prefill tokens computed,
    ``A`` attention (query, key) pairs, ``K`` KV-cache tokens read, ``S`` sequences decoding
    one token. In a roofline, ``compute`` is the compute-bound line and ``memory`` the
    bandwidth-bound one; a calibrated model puts its fitted line in both. ``kv_tokens`` is
    the KV-cache capacity of one replica in tokens. ``name`` and ``note`` describe where the
    numbers come from.
    """

    compute: tuple[float, float, float, float, float]
    memory: tuple[float, float, float, float, float]
    kv_tokens: int
    name: str = "custom"
    note: str = ""

    def __post_init__(self) -> None:
        for label, line in (("compute", self.compute), ("memory", self.memory)):
            if len(line) != 5 or not all(math.isfinite(v) and v >= 0 for v in line):
                msg = f"cost line {label} must be 5 finite non-negative numbers {_FEATURES}, got {line!r}"
                raise SpecError("cost", msg)
        if max(self.compute[0], self.memory[0]) <= 0:
            msg = "cost model needs a positive per-iteration time (intercept) so that time advances"
            raise SpecError("cost", msg)
        if int(self.kv_tokens) < 1:
            msg = f"KV capacity must be at least one token, got {self.kv_tokens}"
            raise SpecError("cost.kv_tokens", msg)
        object.__setattr__(self, "compute", tuple(float(v) for v in self.compute))
        object.__setattr__(self, "memory", tuple(float(v) for v in self.memory))
        object.__setattr__(self, "kv_tokens", int(self.kv_tokens))

    def iteration_time(self, T: Any = 0, A: Any = 0, K: Any = 0, S: Any = 0) -> Any:
        """Seconds of one iteration (NumPy arrays broadcast)."""
        c, m = self.compute, self.memory
        return np.maximum(c[0] + c[1] * T + c[2] * A + c[3] * K + c[4] * S, m[0] + m[1] * T + m[2] * A + m[3] * K + m[4] * S)

    def prefill_time(self, tokens: Any) -> Any:
        """Seconds to prefill one prompt of ``tokens`` alone (its TTFT on an idle server)."""
        tokens = np.asarray(tokens, dtype=float)
        return self.iteration_time(T=tokens, A=tokens * (tokens + 1) / 2)

    def decode_time(self, batch: Any, context_tokens: Any) -> Any:
        """Seconds of one decode iteration of ``batch`` sequences holding ``context_tokens`` in all."""
        return self.iteration_time(A=context_tokens, K=context_tokens, S=batch)

    def token_rate(self, mean_input: float, mean_output: float, batch: int = 32) -> float:
        """Nominal tokens (input + output) per second of one replica serving ``batch`` mean-sized requests."""
        ctx = batch * (mean_input + mean_output / 2)
        per_request = float(self.prefill_time(mean_input)) + mean_output * float(self.decode_time(batch, ctx)) / batch
        return (mean_input + mean_output) / max(per_request, 1e-12)


def roofline(
    model: str | ModelConfig,
    gpu: str | Gpu,
    *,
    efficiency: float = 0.6,
    overhead_s: float = 0.002,
    tensor_parallel: int = 1,
    gpu_memory_utilization: float = 0.9,
) -> CostModel:
    """A roofline cost model of ``model`` on ``tensor_parallel`` x ``gpu`` (see the module docstring).

    ``efficiency`` scales both peaks (FLOP/s and bandwidth); ``overhead_s`` is a fixed time per
    iteration (scheduling, kernel launches); the KV capacity is ``gpu_memory_utilization`` of the
    GPUs' memory minus the weights, in tokens. Tensor parallelism is taken as ideal (peaks and
    memory add up). :class:`SpecError` if the weights do not fit.
    """
    m = _model(model) if isinstance(model, str) else model
    g = _gpu(gpu) if isinstance(gpu, str) else gpu
    if not 0 < efficiency <= 1:
        raise SpecError("efficiency", f"must lie in (0, 1], got {efficiency}")
    if not 0 < gpu_memory_utilization <= 1:
        raise SpecError("gpu_memory_utilization", f"must lie in (0, 1], got {gpu_memory_utilization}")
    if overhead_s < 0 or not math.isfinite(overhead_s):
        raise SpecError("overhead_s", f"must be a finite number >= 0, got {overhead_s}")
    _check_count("tensor_parallel", tensor_parallel, MAX_TENSOR_PARALLEL)
    flops = g.peak_flops * tensor_parallel * efficiency
    bw = g.mem_bandwidth * tensor_parallel * efficiency
    free = g.mem_bytes * tensor_parallel * gpu_memory_utilization - m.weight_bytes
    kv_tokens = int(free // m.kv_bytes_per_token)
    if kv_tokens < 1:
        msg = (
            f"{m.name} weights ({m.weight_bytes / 1e9:.0f} GB) do not fit {tensor_parallel} x {g.name} "
            f"at gpu_memory_utilization {gpu_memory_utilization}; raise tensor_parallel"
        )
        raise SpecError("tensor_parallel", msg)
    per_tok = 2.0 * m.params / flops
    per_pair = 4.0 * m.layers * m.heads * m.head_dim / flops
    kvb = m.kv_bytes_per_token / bw
    overhead = max(overhead_s, 1e-6)
    compute = (overhead, per_tok, per_pair, 0.0, per_tok)
    # memory: weights once per iteration, KV read (K) and written (T + S)
    memory = (overhead + m.weight_bytes / bw, kvb, 0.0, kvb, kvb)
    note = (
        f"roofline: {m.name} on {tensor_parallel} x {g.name}, efficiency {efficiency:g}, overhead {overhead_s * 1e3:g} ms, "
        f"KV {kv_tokens:,} tokens. Sources: {g.source}; {m.source}"
    )
    return CostModel(compute, memory, kv_tokens, name=f"{m.name}@{g.name}" + (f"x{tensor_parallel}" if tensor_parallel > 1 else ""), note=note)


# -- calibration ---------------------------------------------------------------------------


def _check_count(key: str, value: Any, hi: int) -> None:
    """Refuse ``value`` unless it is a whole number in ``[1, hi]`` (a count that sizes work or memory)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= hi:
        raise SpecError(key, f"must be a whole number in [1, {hi:,}], got {value!r}")


def _bench_point(data: Mapping[str, Any], path: Path) -> dict[str, float]:
    """(throughput rps, mean TTFT s, mean ITL s, mean e2e s, mean input, mean output) of one benchmark JSON."""

    def num(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataFormatError(path, f"key {key}", f"expected a finite number, got {value!r}")
        return float(value)

    if "time_to_first_token" in data:  # AIPerf profile_export_aiperf.json
        def avg(key: str, scale: float) -> float:
            entry = data.get(key)
            if not isinstance(entry, Mapping) or "avg" not in entry:
                raise DataFormatError(path, f"key {key}", "missing (AIPerf metric with an 'avg')")
            factor = 1.0
            if scale:
                units = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "us": 1e-6, "ns": 1e-9}
                unit = entry.get("unit")
                if unit not in units:
                    raise DataFormatError(path, f"key {key}.unit", f"expected a time unit ({', '.join(units)}), got {unit!r}")
                factor = units[unit]
            return num(f"{key}.avg", entry["avg"]) * factor

        return {
            "rps": avg("request_throughput", 0),
            "ttft": avg("time_to_first_token", 1),
            "itl": avg("inter_token_latency", 1),
            "e2e": avg("request_latency", 1),
            "input": avg("input_sequence_length", 0),
            "output": avg("output_sequence_length", 0),
        }
    if "mean_ttft_ms" in data:  # vLLM bench serve --save-result
        for key in ("request_throughput", "mean_ttft_ms", "mean_e2el_ms", "total_input_tokens", "total_output_tokens", "completed"):
            if key not in data:
                raise DataFormatError(path, f"key {key}", "missing (vLLM bench result JSON)")
        done = num("completed", data["completed"])
        if done <= 0:
            raise DataFormatError(path, "key completed", "no completed request")
        itl_key = "mean_itl_ms" if "mean_itl_ms" in data else "mean_tpot_ms"
        if itl_key not in data:
            raise DataFormatError(path, "key mean_itl_ms", "missing (vLLM bench result JSON)")
        return {
            "rps": num("request_throughput", data["request_throughput"]),
            "ttft": num("mean_ttft_ms", data["mean_ttft_ms"]) * 1e-3,
            "itl": num(itl_key, data[itl_key]) * 1e-3,
            "e2e": num("mean_e2el_ms", data["mean_e2el_ms"]) * 1e-3,
            "input": num("total_input_tokens", data["total_input_tokens"]) / done,
            "output": num("total_output_tokens", data["total_output_tokens"]) / done,
        }
    msg = "neither an AIPerf profile_export_aiperf.json (time_to_first_token) nor a vLLM bench result (mean_ttft_ms)"
    raise DataFormatError(path, None, msg)


_CSV_COLUMNS = ("prefill_tokens", "decode_seqs", "context_tokens", "time_ms")


def _read_rows(path: Path) -> tuple[list[list[float]], list[float], str]:
    """Design rows (features x) and measured seconds of one calibration file."""
    if path.suffix.lower() == ".csv":
        try:
            return _read_csv_rows(path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataFormatError(path, None, f"not a UTF-8 CSV: {type(exc).__name__}") from None
    return _read_json_rows(path)


def _read_csv_rows(path: Path) -> tuple[list[list[float]], list[float], str]:
    """Rows of a CSV of measured iterations (:data:`_CSV_COLUMNS`)."""
    rows: list[list[float]] = []
    times: list[float] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(path, "header", f"missing column(s) {', '.join(missing)} (need {', '.join(_CSV_COLUMNS)})")
        for i, rec in enumerate(reader, start=2):
            try:
                t, s, c, ms = (float(rec[k]) for k in _CSV_COLUMNS)
            except (TypeError, ValueError):
                raise DataFormatError(path, f"row {i}", "every column must be a number") from None
            if not all(math.isfinite(v) and v >= 0 for v in (t, s, c, ms)):
                raise DataFormatError(path, f"row {i}", "values must be finite and >= 0")
            rows.append([1.0, t, t * (t + 1) / 2 + c, c, s])
            times.append(ms * 1e-3)
    return rows, times, "csv"


def _read_json_rows(path: Path) -> tuple[list[list[float]], list[float], str]:
    """Two rows (a decode and a prefill iteration) of one AIPerf or vLLM benchmark result JSON."""
    rows: list[list[float]] = []
    times: list[float] = []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(path, None, f"not JSON: {exc}") from None
    except RecursionError:
        raise DataFormatError(path, None, "not a benchmark result: JSON nested too deeply") from None
    if not isinstance(data, Mapping):
        raise DataFormatError(path, None, "expected a JSON object")
    p = _bench_point(data, path)
    # Decode: Little's law gives the mean number of sequences decoding.
    batch = max(1.0, p["rps"] * max(p["e2e"] - p["ttft"], 0.0))
    ctx = batch * (p["input"] + p["output"] / 2)
    rows.append([1.0, 0.0, ctx, ctx, batch])
    times.append(p["itl"])
    # Prefill: the mean TTFT, an upper bound of a prefill alone (it includes queueing).
    n = p["input"]
    rows.append([1.0, n, n * (n + 1) / 2, 0.0, 0.0])
    times.append(p["ttft"])
    return rows, times, "aiperf" if "time_to_first_token" in data else "vllm"


def calibrate(paths: Sequence[str | Path], *, kv_tokens: int, name: str = "calibrated") -> CostModel:
    """A cost model fitted by non-negative least squares to the user's own benchmark results.

    Each file is one of: an AIPerf ``profile_export_aiperf.json`` or a vLLM ``bench serve``
    result JSON (one load level each: give several files at several loads), or a CSV with
    columns ``prefill_tokens, decode_seqs, context_tokens, time_ms`` (one measured iteration
    or iteration average per row). From a benchmark JSON, the mean inter-token latency is a
    decode iteration with ``throughput x (e2e - TTFT)`` sequences (Little's law) holding their
    prompts and half their outputs, and the mean TTFT is taken as the prefill of the mean
    prompt (queueing included: an upper bound, best from a low load). The fit is a single
    line; ``kv_tokens`` (the KV-cache capacity in tokens) is not observable from latencies and
    must be given (e.g. ``roofline(model, gpu).kv_tokens`` or vLLM's startup log).
    """
    from scipy.optimize import nnls

    if not paths:
        raise SpecError("calibration", "give at least one benchmark result file")
    rows: list[list[float]] = []
    times: list[float] = []
    kinds = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataFormatError(path, None, "file not found")
        size = path.stat().st_size
        if size > MAX_CALIBRATION_BYTES:
            msg = f"{size:,} bytes, above the {MAX_CALIBRATION_BYTES:,} bytes a calibration file may hold (servegen_core.limits)"
            raise DataFormatError(path, None, msg)
        r, t, kind = _read_rows(path)
        rows += r
        times += t
        kinds.append(kind)
    X = np.asarray(rows, dtype=float)
    y = np.asarray(times, dtype=float)
    if len(y) < 2:
        raise DataFormatError(Path(paths[0]), None, "need at least two measurements to fit a cost model")
    scale = np.maximum(np.abs(X).max(axis=0), 1e-30)
    coef, _ = nnls(X / scale, y)
    coef = coef / scale
    if coef[0] <= 0:
        coef[0] = max(float(y.min()) * 1e-3, 1e-6)
    resid = X @ coef - y
    rel = float(np.sqrt(np.mean((resid / np.maximum(y, 1e-12)) ** 2)))
    line = tuple(float(v) for v in coef)
    note = (
        f"calibrated by least squares on {len(y)} measurements from {len(paths)} file(s) ({', '.join(sorted(set(kinds)))}); "
        f"RMS relative error {rel:.1%}; KV capacity {int(kv_tokens):,} tokens (given). Absolute latencies are only as "
        "good as this calibration."
    )
    return CostModel(line, line, int(kv_tokens), name=name, note=note)


# --------------------------------------------------------------------------------------------
# Server configuration and results
# --------------------------------------------------------------------------------------------


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
            _check_count(key, getattr(self, key), hi)
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


def _columns(trace: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    _check_count("replicas", replicas, MAX_REPLICAS)
    _check_count("workers", workers, max_workers())
    if router not in ROUTERS:
        raise SpecError("router", f"must be one of {', '.join(ROUTERS)}, got {router!r}")
    if not (bin_s > 0 and math.isfinite(bin_s)):
        raise SpecError("bin_s", f"must be a positive number, got {bin_s}")
    replicas = int(replicas)
    t, inp, outp = _columns(requests)
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


# --------------------------------------------------------------------------------------------
# What-if: replicas needed
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
        if summary["completed"] < summary["requests"]:
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


_CURVE_COLUMNS = ("replicas", "ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "queue_p99_s", "utilization_mean", "preemptions", "met")


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


def _curve_row(n: int, summary: Mapping[str, float], met: bool) -> dict[str, Any]:
    row: dict[str, Any] = {k: summary[k] for k in _CURVE_COLUMNS[1:-1]}
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
    _check_count("max_replicas", max_replicas, MAX_REPLICAS)
    _check_count("workers", workers, max_workers())
    rows: dict[int, dict[str, Any]] = {}
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
        t, i, o = _columns(requests)
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
    curve = pl.DataFrame([rows[k] for k in sorted(rows)]).select(_CURVE_COLUMNS)
    return ProvisioningResult(answer, slo, curve, max_replicas, best.get(answer) if answer is not None else None, reason)


def poisson_baseline(requests: pl.DataFrame, *, window_s: float = 600.0, seed: int = 0) -> pl.DataFrame:
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


def baseline_spec(spec: Any, kind: str, *, pool: Any = None) -> Any:
    """The naive baseline ``kind`` of a workload spec, :func:`servegen_core.generate.compose.naive_spec`:
    ``"poisson"`` (only the arrivals become Poisson: same rates, clients and per-client
    lengths), ``"pooled_lengths"`` (only the lengths are pooled over clients),
    ``"poisson_pooled"`` (both), ``"constant"`` (Poisson arrivals at a constant aggregate rate
    equal to the spec's mean over the span, same client shares and per-client lengths; needs
    the source: ``pool``, else loaded from the spec)."""
    from servegen_core.generate.compose import naive_spec

    if kind not in ALL_BASELINES:
        msg = f"unknown baseline {kind!r}; known: {', '.join(ALL_BASELINES)}"
        raise SpecError("naive", msg)
    return naive_spec(spec, kind, pool=pool)


#: Baselines compared by default; ``ALL_BASELINES`` adds ``"constant"`` (no rate shifts either).
BASELINES = ("poisson", "pooled_lengths", "poisson_pooled")
ALL_BASELINES = NAIVE_KINDS


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


def _compare(workloads: Mapping[str, pl.DataFrame], slo: Slo, cost: CostModel, *, config, router, max_replicas, workers, progress) -> Comparison:
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
        curves.append(res.curve.with_columns(pl.lit(name).alias("workload")).select("workload", *_CURVE_COLUMNS))
    schema = {
        "workload": pl.String, "requests": pl.Int64, "replicas": pl.Int64, "under_provisioning": pl.Float64,
        "ttft_p50_s": pl.Float64, "ttft_p99_s": pl.Float64, "tpot_p99_s": pl.Float64, "met": pl.Boolean, "note": pl.String,
    }
    real = results["realistic"].simulation
    return Comparison(pl.DataFrame(rows, schema=schema), pl.concat(curves), slo, cost.name, cost.note, real)


def compare_spec(
    spec: Any,
    slo: Slo,
    cost: CostModel,
    *,
    baselines: Sequence[str] = BASELINES,
    config: ServerConfig | None = None,
    router: str = "round_robin",
    max_replicas: int = 1024,
    max_requests: int | None = None,
    pool: Any = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Compose ``spec`` and its naive ``baselines`` (see :func:`baseline_spec`) from one loaded
    source (``pool``, else loaded from the spec) and compare the replicas each needs for ``slo``."""
    from servegen_core.generate.compose import compose, load_source

    _check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any composing
    _check_count("workers", workers, max_workers())
    for kind in baselines:
        if kind not in ALL_BASELINES:
            baseline_spec(spec, kind)  # an unknown kind fails before any work
    if pool is None:
        pool = load_source(spec)
    kwargs = {} if max_requests is None else {"max_requests": max_requests}
    workloads = {}
    for name, s in [("realistic", spec), *[(k, baseline_spec(spec, k, pool=pool)) for k in baselines]]:
        if progress:
            progress(f"{name}: composing")
        workloads[name] = compose(s, pool=pool, **kwargs).trace.select("timestamp_s", "input_tokens", "output_tokens")
    return _compare(workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress)


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
    """A raw trace against its Poisson baseline (:func:`poisson_baseline`): the replicas each needs."""
    _check_count("max_replicas", max_replicas, MAX_REPLICAS)  # before any simulating
    _check_count("workers", workers, max_workers())
    real = requests.select("timestamp_s", "input_tokens", "output_tokens").sort("timestamp_s", maintain_order=True)
    workloads = {"realistic": real, "poisson": poisson_baseline(real, window_s=window_s, seed=seed)}
    return _compare(workloads, slo, cost, config=config, router=router, max_replicas=max_replicas, workers=workers, progress=progress)
