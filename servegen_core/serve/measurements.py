"""Published serving measurements the default cost model is checked against, with their sources.

Each :class:`Measurement` is one published figure of one benchmark run: the engine and its
version, the model, precision and tensor parallelism, the GPU, the prompt and output lengths,
the load (a closed loop of ``concurrency`` requests in flight, or a request ``rate``), the
metric (``ttft_s``, ``tpot_s`` or ``output_tokens_per_s``), its value and statistic (mean or
p50) and the page it comes from. ``checkable`` is false when the page does not publish what a
simulation of the run needs (e.g. its lengths, for a metric that depends on them); ``note``
says why, or how a figure was derived from the page. ``tests/serve/test_published_measurements.py``
replays every checkable row with :func:`servegen_core.serve.calibration.replay` on the default
roofline and asserts it lands within 15 %; ``BENCHMARKS.md`` records the errors.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MEASUREMENTS", "Measurement"]


@dataclass(frozen=True)
class Measurement:
    """One published figure and the setting it was measured at (see the module docstring)."""

    source: str
    engine: str
    model: str
    precision: str
    tensor_parallel: int
    gpu: str
    input_tokens: int
    output_tokens: int
    concurrency: int | None
    rate: float | None
    metric: str
    statistic: str
    value: float
    max_num_seqs: int
    max_batched_tokens: int
    checkable: bool = True
    note: str = ""


MUSGRAVE = "https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on"
YOBITEL = "https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/"
# vLLM's own serve defaults (EngineArgs.get_batch_defaults, OPENAI_API_SERVER): A100 and cards
# under 70 GiB 2,048 batched tokens / 256 sequences; H100-class cards 8,192 / 1,024.
A100_DEFAULTS = {"max_num_seqs": 256, "max_batched_tokens": 2048}
H100_DEFAULTS = {"max_num_seqs": 1024, "max_batched_tokens": 8192}

MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        MUSGRAVE, "vLLM 0.23.0", "llama-3.1-8b", "bf16", 1, "a100-40gb", 1024, 128, 1, None, "tpot_s", "mean", 1 / 75,
        **A100_DEFAULTS,
        note="'decode at one request per time runs at about 75 tokens/sec': TPOT 1/75 s; vllm bench serve, random dataset, --ignore-eos",
    ),
    Measurement(
        MUSGRAVE, "vLLM 0.23.0", "llama-3.1-8b", "bf16", 1, "a100-40gb", 1024, 128, 8, None, "output_tokens_per_s", "mean", 6.6 * 75,
        **A100_DEFAULTS,
        note="'a 6.6x gain' in output throughput over concurrency 1 (75 tok/s): 495 tok/s",
    ),
    Measurement(
        YOBITEL, "vLLM 0.21.0", "llama-3.1-8b", "fp16", 1, "h100-sxm", 1024, 128, 1, None, "tpot_s", "p50", 6.48e-3,
        **H100_DEFAULTS,
        note="lengths of 'chatbot-short' not published: simulated at 1024/128; batch-1 TPOT moves < 1 % with the context (KV reads of "
        "1k tokens are 0.9 % of the weight bytes)",
    ),
    Measurement(
        YOBITEL, "vLLM 0.21.0", "llama-3.1-8b", "fp16", 1, "h100-sxm", 0, 0, 1, None, "ttft_s", "p50", 13.98e-3,
        **H100_DEFAULTS, checkable=False, note="prompt length not published; TTFT scales with it",
    ),
    Measurement(
        YOBITEL, "vLLM 0.21.0", "llama-3.1-8b", "fp16", 1, "h100-sxm", 0, 0, 16, None, "tpot_s", "p50", 10.94e-3,
        **H100_DEFAULTS, checkable=False, note="lengths not published; at batch 16 TPOT depends on the prefills interleaved",
    ),
    Measurement(
        YOBITEL, "vLLM 0.21.0", "llama-3.1-8b", "fp16", 1, "h100-sxm", 0, 0, 16, None, "output_tokens_per_s", "mean", 1384.2,
        **H100_DEFAULTS, checkable=False, note="lengths not published",
    ),
)
