"""Cost models of one serving replica: how long one scheduler iteration takes.

A :class:`CostModel` gives an iteration's time as ``max(compute . x, memory . x)``, two linear
functions of the iteration's features ``x = (1, T, A, K, S)``: ``T`` prefill tokens computed,
``A`` attention (query, key) pairs, ``K`` KV-cache tokens read, ``S`` sequences decoding one
token. It also holds the KV-cache capacity of one replica in tokens.

:func:`roofline` builds one from a model and a GPU of :mod:`servegen_core.serve.hardware`: an
iteration takes ``overhead + max(compute, memory)`` where compute is ``2 x params x tokens +
4 x layers x heads x head_dim x attention pairs`` FLOPs at ``efficiency x peak`` and memory is
the weights plus the KV cache read and written at ``efficiency x bandwidth``.
:func:`calibrate` fits the same linear features by non-negative least squares to a user's own
benchmark results (AIPerf ``profile_export_aiperf.json``, vLLM ``bench serve`` result JSON,
or a CSV of measured iterations). Absolute latencies are only as good as that calibration;
comparisons between workloads on the same cost model (realistic vs naive) are what the
what-if (:mod:`servegen_core.serve.whatif`) relies on.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

from servegen_core.errors import DataFormatError, SpecError
from servegen_core.limits import MAX_CALIBRATION_BYTES, MAX_TENSOR_PARALLEL
from servegen_core.serve.hardware import Gpu, ModelConfig, gpu as gpu_named, model as model_named

__all__ = ["CALIBRATION_CSV_COLUMNS", "COST_FEATURES", "CostModel", "calibrate", "check_count", "roofline"]

#: Feature order of a cost line: intercept, prefill tokens T, attention pairs A, KV tokens read K,
#: decoding sequences S.
COST_FEATURES = ("intercept_s", "prefill_token_s", "attention_pair_s", "kv_token_s", "decode_seq_s")

#: Columns of a calibration CSV of measured iterations (one iteration or iteration average per row).
CALIBRATION_CSV_COLUMNS = ("prefill_tokens", "decode_seqs", "context_tokens", "time_ms")


def check_count(key: str, value: object, hi: int) -> None:
    """Refuse ``value`` (a :class:`SpecError` naming ``key``) unless it is a whole number in
    ``[1, hi]``: a count that sizes work or memory (replicas, workers, GPUs, batch limits)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= hi:
        raise SpecError(key, f"must be a whole number in [1, {hi:,}], got {value!r}")


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
                msg = f"cost line {label} must be 5 finite non-negative numbers {COST_FEATURES}, got {line!r}"
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

    def iteration_time(self, T: npt.ArrayLike = 0, A: npt.ArrayLike = 0, K: npt.ArrayLike = 0, S: npt.ArrayLike = 0) -> np.ndarray:
        """Seconds of one iteration (NumPy arrays broadcast; scalars give a 0-d result)."""
        c, m = self.compute, self.memory
        return np.maximum(c[0] + c[1] * T + c[2] * A + c[3] * K + c[4] * S, m[0] + m[1] * T + m[2] * A + m[3] * K + m[4] * S)

    def prefill_time(self, tokens: npt.ArrayLike) -> np.ndarray:
        """Seconds to prefill one prompt of ``tokens`` alone (its TTFT on an idle server)."""
        tokens = np.asarray(tokens, dtype=float)
        return self.iteration_time(T=tokens, A=tokens * (tokens + 1) / 2)

    def decode_time(self, batch: npt.ArrayLike, context_tokens: npt.ArrayLike) -> np.ndarray:
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
    m = model_named(model) if isinstance(model, str) else model
    g = gpu_named(gpu) if isinstance(gpu, str) else gpu
    if not 0 < efficiency <= 1:
        raise SpecError("efficiency", f"must lie in (0, 1], got {efficiency}")
    if not 0 < gpu_memory_utilization <= 1:
        raise SpecError("gpu_memory_utilization", f"must lie in (0, 1], got {gpu_memory_utilization}")
    if overhead_s < 0 or not math.isfinite(overhead_s):
        raise SpecError("overhead_s", f"must be a finite number >= 0, got {overhead_s}")
    check_count("tensor_parallel", tensor_parallel, MAX_TENSOR_PARALLEL)
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


# -- calibration from benchmark files -------------------------------------------------------


def _bench_point(data: Mapping[str, object], path: Path) -> dict[str, float]:
    """(throughput rps, mean TTFT s, mean ITL s, mean e2e s, mean input, mean output) of one benchmark JSON."""

    def num(key: str, value: object) -> float:
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


def _read_rows(path: Path) -> tuple[list[list[float]], list[float], str]:
    """Design rows (features x) and measured seconds of one calibration file."""
    if path.suffix.lower() == ".csv":
        try:
            return _read_csv_rows(path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataFormatError(path, None, f"not a UTF-8 CSV: {type(exc).__name__}") from None
    return _read_json_rows(path)


def _read_csv_rows(path: Path) -> tuple[list[list[float]], list[float], str]:
    """Rows of a CSV of measured iterations (:data:`CALIBRATION_CSV_COLUMNS`)."""
    rows: list[list[float]] = []
    times: list[float] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CALIBRATION_CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(path, "header", f"missing column(s) {', '.join(missing)} (need {', '.join(CALIBRATION_CSV_COLUMNS)})")
        for i, rec in enumerate(reader, start=2):
            try:
                t, s, c, ms = (float(rec[k]) for k in CALIBRATION_CSV_COLUMNS)
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
