"""GPUs and open models for the serving cost models, as data with a source per row.

``GPUS`` holds dense (no-sparsity) BF16 tensor-core peak FLOP/s, memory bandwidth and memory
size, from the vendors' datasheets. ``MODELS`` holds the architecture numbers of open models
from their Hugging Face ``config.json`` (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, ``num_key_value_heads``, ``head_dim = hidden_size /
num_attention_heads``) and the parameter count of their model card. Names are matched case-
insensitively; :data:`GPU_ALIASES` maps short names (``a100``, ``h100``) to rows.

Peak figures are what the silicon could do, never what a serving engine reaches: the roofline
cost model multiplies them by an efficiency factor, and absolute latencies are only as good as
that factor (or a calibration from the user's own benchmark, see
:func:`servegen_core.serve.costmodel.calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from servegen_core.errors import SpecError

__all__ = ["GPUS", "GPU_ALIASES", "MODELS", "Gpu", "ModelConfig", "gpu", "model"]


@dataclass(frozen=True)
class Gpu:
    """One GPU: dense BF16 peak (FLOP/s), memory bandwidth (bytes/s), memory (bytes), source."""

    name: str
    peak_flops: float
    mem_bandwidth: float
    mem_bytes: float
    source: str


@dataclass(frozen=True)
class ModelConfig:
    """One decoder-only transformer: parameter count and the shapes that size its KV cache."""

    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    source: str
    dtype_bytes: int = 2

    @property
    def weight_bytes(self) -> float:
        """Bytes of the weights at ``dtype_bytes`` per parameter."""
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of K and V cache per token: ``2 x layers x kv_heads x head_dim x dtype_bytes``."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


GB = 1e9
TB = 1e12

GPUS: dict[str, Gpu] = {
    g.name: g
    for g in (
        Gpu(
            "a100-80gb",
            312e12,
            2039 * GB,
            80 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): BF16 tensor 312 TFLOPS dense, HBM2e 2,039 GB/s, 80 GB",
        ),
        Gpu(
            "h100-sxm",
            989e12,
            3.35 * TB,
            80 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 tensor 1,979 TFLOPS with sparsity = 989 dense, HBM3 3.35 TB/s, 80 GB",
        ),
        Gpu(
            "l40s",
            362e12,
            864 * GB,
            48 * GB,
            "NVIDIA L40S datasheet: BF16 tensor 733 TFLOPS with sparsity = 362 dense, GDDR6 864 GB/s, 48 GB",
        ),
        Gpu(
            "a10g",
            125e12,
            600 * GB,
            24 * GB,
            "AWS EC2 G5 (A10G): 24 GB, 600 GB/s; NVIDIA publishes no A10G tensor peak, so the NVIDIA A10 datasheet's "
            "BF16 125 TFLOPS dense is used (likely an overestimate: calibrate)",
        ),
    )
}

GPU_ALIASES: dict[str, str] = {"a100": "a100-80gb", "h100": "h100-sxm", "a10": "a10g"}


def _model(name: str, params: float, layers: int, hidden: int, heads: int, kv_heads: int, repo: str) -> ModelConfig:
    src = (
        f"huggingface.co/{repo} config.json: hidden_size {hidden}, num_hidden_layers {layers}, "
        f"num_attention_heads {heads}, num_key_value_heads {kv_heads}; {params / 1e9:.2f}B parameters (model card)"
    )
    return ModelConfig(name, params, layers, hidden, heads, kv_heads, hidden // heads, src)


MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        _model("llama-3-8b", 8.03e9, 32, 4096, 32, 8, "meta-llama/Meta-Llama-3-8B"),
        _model("llama-3-70b", 70.6e9, 80, 8192, 64, 8, "meta-llama/Meta-Llama-3-70B"),
        _model("qwen2.5-7b", 7.62e9, 28, 3584, 28, 4, "Qwen/Qwen2.5-7B"),
        _model("qwen2.5-72b", 72.7e9, 80, 8192, 64, 8, "Qwen/Qwen2.5-72B"),
        _model("mistral-7b", 7.24e9, 32, 4096, 32, 8, "mistralai/Mistral-7B-v0.1"),
    )
}


def gpu(name: str) -> Gpu:
    """The GPU row named ``name`` (or an alias such as ``a100``); :class:`SpecError` if unknown."""
    key = GPU_ALIASES.get(name.lower(), name.lower())
    if key not in GPUS:
        msg = f"unknown GPU {name!r}; known: {', '.join([*GPUS, *GPU_ALIASES])}"
        raise SpecError("gpu", msg)
    return GPUS[key]


def model(name: str) -> ModelConfig:
    """The model row named ``name``; :class:`SpecError` if unknown."""
    key = name.lower()
    if key not in MODELS:
        msg = f"unknown model {name!r}; known: {', '.join(MODELS)}"
        raise SpecError("model", msg)
    return MODELS[key]
