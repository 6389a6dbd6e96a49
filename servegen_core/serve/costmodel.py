"""Cost models of one serving replica: how long one scheduler iteration takes.

A :class:`CostModel` gives an iteration's time as ``max(compute . x, memory . x)``, two linear
functions of the iteration's features ``x = (1, T, A, K, S)``: ``T`` prefill tokens computed,
``A`` attention (query, key) pairs, ``K`` KV-cache tokens read, ``S`` sequences decoding one
token. It also holds the KV-cache capacity of one replica in tokens.

:func:`roofline` builds one from a model and a GPU of :mod:`servegen_core.serve.hardware`: an
iteration takes ``overhead + max(compute, memory)`` where compute is ``2 x matmul params x
tokens + 4 x layers x heads x head_dim x attention pairs`` FLOPs at ``efficiency x peak`` and
memory is the weights streamed each step (all but the input embedding, a lookup) plus the KV
cache read and written at ``bandwidth_efficiency x bandwidth``. The defaults are checked
against published vLLM measurements (:mod:`servegen_core.serve.measurements`, the test
``tests/serve/test_published_measurements.py``). A cost model carries the model's context
limit (``max_context``): the simulator refuses longer requests, as a server does.
:func:`servegen_core.serve.calibration.calibrate` fits a roofline's overhead and its compute and
memory scales to a user's own benchmark results by replaying their settings in the simulator.
Absolute latencies are only as good as the constants or that calibration;
comparisons between workloads on the same cost model (realistic vs naive) are what the
what-if (:mod:`servegen_core.serve.whatif`) relies on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from servegen_core.errors import SpecError
from servegen_core.limits import MAX_TENSOR_PARALLEL
from servegen_core.serve.hardware import Gpu, ModelConfig, gpu as gpu_named, model as model_named

__all__ = [
    "COST_FEATURES", "DEFAULT_BANDWIDTH_EFFICIENCY", "DEFAULT_COMPUTE_EFFICIENCY", "DEFAULT_OVERHEAD_S", "CostModel", "check_count", "roofline",
]

#: Feature order of a cost line: intercept, prefill tokens T, attention pairs A, KV tokens read K,
#: decoding sequences S.
COST_FEATURES = ("intercept_s", "prefill_token_s", "attention_pair_s", "kv_token_s", "decode_seq_s")

#: Default roofline constants (see :func:`roofline`; checked against published vLLM runs in
#: ``tests/serve/test_published_measurements.py``).
DEFAULT_COMPUTE_EFFICIENCY = 0.6
DEFAULT_BANDWIDTH_EFFICIENCY = 0.8
DEFAULT_OVERHEAD_S = 0.001



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
    the KV-cache capacity of one replica in tokens; ``max_context`` the longest request
    (prompt + output tokens) the server accepts, 0 for no limit. ``name`` and ``note``
    describe where the numbers come from.
    """

    compute: tuple[float, float, float, float, float]
    memory: tuple[float, float, float, float, float]
    kv_tokens: int
    name: str = "custom"
    note: str = ""
    max_context: int = 0

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
        if isinstance(self.max_context, bool) or not isinstance(self.max_context, (int, np.integer)) or self.max_context < 0:
            raise SpecError("cost.max_context", f"must be a whole number >= 0 (0: no limit), got {self.max_context!r}")
        object.__setattr__(self, "max_context", int(self.max_context))

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
    efficiency: float = DEFAULT_COMPUTE_EFFICIENCY,
    bandwidth_efficiency: float = DEFAULT_BANDWIDTH_EFFICIENCY,
    overhead_s: float = DEFAULT_OVERHEAD_S,
    tensor_parallel: int = 1,
    gpu_memory_utilization: float = 0.9,
) -> CostModel:
    """A roofline cost model of ``model`` on ``tensor_parallel`` x ``gpu`` (see the module docstring).

    ``efficiency`` scales the FLOP/s peak, ``bandwidth_efficiency`` the memory bandwidth (the
    defaults put published vLLM runs within 15 %: batch-1 decode of Llama-3.1-8B reaches
    about 75 % of the peak bandwidth over the whole step); ``overhead_s`` is a fixed time per
    iteration (scheduling, kernel launches, sampling); the KV capacity is
    ``gpu_memory_utilization`` of the GPUs' memory minus the weights, in tokens; the context
    limit is the model's ``max_position_embeddings``. Tensor parallelism is taken as ideal
    (peaks and memory add up). :class:`SpecError` if the weights do not fit.
    """
    m = model_named(model) if isinstance(model, str) else model
    g = gpu_named(gpu) if isinstance(gpu, str) else gpu
    if not 0 < efficiency <= 1:
        raise SpecError("efficiency", f"must lie in (0, 1], got {efficiency}")
    if not 0 < bandwidth_efficiency <= 1:
        raise SpecError("bandwidth_efficiency", f"must lie in (0, 1], got {bandwidth_efficiency}")
    if not 0 < gpu_memory_utilization <= 1:
        raise SpecError("gpu_memory_utilization", f"must lie in (0, 1], got {gpu_memory_utilization}")
    if overhead_s < 0 or not math.isfinite(overhead_s):
        raise SpecError("overhead_s", f"must be a finite number >= 0, got {overhead_s}")
    check_count("tensor_parallel", tensor_parallel, MAX_TENSOR_PARALLEL)
    flops = g.peak_flops * tensor_parallel * efficiency
    bw = g.mem_bandwidth * tensor_parallel * bandwidth_efficiency
    free = g.mem_bytes * tensor_parallel * gpu_memory_utilization - m.weight_bytes
    kv_tokens = int(free // m.kv_bytes_per_token)
    if kv_tokens < 1:
        msg = (
            f"{m.name} weights ({m.weight_bytes / 2**30:.0f} GiB) do not fit {tensor_parallel} x {g.name} "
            f"at gpu_memory_utilization {gpu_memory_utilization}; raise tensor_parallel"
        )
        raise SpecError("tensor_parallel", msg)
    per_tok = 2.0 * m.matmul_params / flops  # the input embedding is a lookup, not a matmul
    per_pair = 4.0 * m.layers * m.heads * m.head_dim / flops
    kvb = m.kv_bytes_per_token / bw
    overhead = max(overhead_s, 1e-6)
    compute = (overhead, per_tok, per_pair, 0.0, per_tok)
    # memory: the streamed weights once per iteration, KV read (K) and written (T + S)
    memory = (overhead + m.streamed_bytes / bw, kvb, 0.0, kvb, kvb)
    note = (
        f"roofline: {m.name} on {tensor_parallel} x {g.name}, compute efficiency {efficiency:g}, bandwidth efficiency "
        f"{bandwidth_efficiency:g}, overhead {overhead_s * 1e3:g} ms, KV {kv_tokens:,} tokens, context {m.max_context:,} tokens. "
        f"Sources: {g.source}; {m.source}"
    )
    label = f"{m.name}@{g.name}" + (f"x{tensor_parallel}" if tensor_parallel > 1 else "")
    return CostModel(compute, memory, kv_tokens, name=label, note=note, max_context=m.max_context)
