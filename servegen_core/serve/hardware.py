"""GPUs and open models for the serving cost models, as data with a source per row.

``GPUS`` holds dense (no-sparsity) BF16 tensor-core peak FLOP/s and memory bandwidth from the
vendors' datasheets, and the memory in bytes as the card has it (an "80GB" A100 or H100 holds
80 GiB = 80 x 2^30 bytes; the GDDR cards' usable memory as ``nvidia-smi`` reports it with ECC
on). ``MODELS`` holds the architecture numbers of open models from their Hugging Face
``config.json`` (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
``num_key_value_heads``, ``head_dim = hidden_size / num_attention_heads``, ``vocab_size``,
``max_position_embeddings`` as the context limit), the parameter count of their model card,
and the input-embedding parameters (``vocab_size x hidden_size``): a table lookup per token,
neither matmul FLOPs nor bytes read in full each step. Names are matched case-
insensitively; :data:`GPU_ALIASES` maps short names (``a100``, ``h100``) to rows.

Peak figures are what the silicon could do, never what a serving engine reaches: the roofline
cost model multiplies them by an efficiency factor, and absolute latencies are only as good as
that factor (or a calibration from the user's own benchmark, see
:func:`servegen_core.serve.calibration.calibrate`).
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
    """One decoder-only transformer: parameter count, the shapes that size its KV cache, its
    input-embedding parameters (a lookup) and its context limit in tokens (prompt + output)."""

    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    source: str
    embedding_params: float = 0.0
    max_context: int = 0
    dtype_bytes: int = 2

    @property
    def weight_bytes(self) -> float:
        """Bytes of all the weights at ``dtype_bytes`` per parameter (what the GPU memory holds)."""
        return self.params * self.dtype_bytes

    @property
    def matmul_params(self) -> float:
        """Parameters multiplied by every token: all but the input embedding (a table lookup)."""
        return self.params - self.embedding_params

    @property
    def streamed_bytes(self) -> float:
        """Bytes of the weights read in full by every iteration: all but the input embedding,
        of which an iteration reads only its tokens' rows."""
        return self.matmul_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of K and V cache per token: ``2 x layers x kv_heads x head_dim x dtype_bytes``."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


GB = 1e9
TB = 1e12
GiB = 2.0**30
MiB = 2.0**20

GPUS: dict[str, Gpu] = {
    g.name: g
    for g in (
        Gpu(
            "a100-80gb",
            312e12,
            2039 * GB,
            80 * GiB,
            "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): BF16 tensor 312 TFLOPS dense, HBM2e 2,039 GB/s, 80 GiB",
        ),
        Gpu(
            "a100-40gb",
            312e12,
            1555 * GB,
            40 * GiB,
            "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB): BF16 tensor 312 TFLOPS dense, HBM2 1,555 GB/s, 40 GiB",
        ),
        Gpu(
            "h100-sxm",
            989e12,
            3.35 * TB,
            80 * GiB,
            "NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 tensor 1,979 TFLOPS with sparsity = 989 dense, HBM3 3.35 TB/s, 80 GiB",
        ),
        Gpu(
            "l40s",
            362e12,
            864 * GB,
            46068 * MiB,
            "NVIDIA L40S datasheet: BF16 tensor 733 TFLOPS with sparsity = 362 dense, GDDR6 864 GB/s, 48 GB "
            "(46,068 MiB usable with ECC, as nvidia-smi reports)",
        ),
        Gpu(
            "a10g",
            125e12,
            600 * GB,
            23028 * MiB,
            "AWS EC2 G5 (A10G): 24 GB (23,028 MiB usable with ECC, as nvidia-smi reports), 600 GB/s; NVIDIA publishes no A10G tensor peak, so the NVIDIA A10 datasheet's "
            "BF16 125 TFLOPS dense is used (likely an overestimate: calibrate)",
        ),
    )
}

GPU_ALIASES: dict[str, str] = {"a100": "a100-80gb", "h100": "h100-sxm", "h100-80gb": "h100-sxm", "a10": "a10g"}


def _model(
    name: str, params: float, layers: int, hidden: int, heads: int, kv_heads: int, vocab: int, context: int, repo: str
) -> ModelConfig:
    src = (
        f"huggingface.co/{repo} config.json: hidden_size {hidden}, num_hidden_layers {layers}, "
        f"num_attention_heads {heads}, num_key_value_heads {kv_heads}, vocab_size {vocab}, "
        f"max_position_embeddings {context}; {params / 1e9:.2f}B parameters (model card)"
    )
    return ModelConfig(name, params, layers, hidden, heads, kv_heads, hidden // heads, src, float(vocab * hidden), context)


MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        _model("llama-3-8b", 8.03e9, 32, 4096, 32, 8, 128256, 8192, "meta-llama/Meta-Llama-3-8B"),
        _model("llama-3.1-8b", 8.03e9, 32, 4096, 32, 8, 128256, 131072, "meta-llama/Llama-3.1-8B"),
        _model("llama-3-70b", 70.6e9, 80, 8192, 64, 8, 128256, 8192, "meta-llama/Meta-Llama-3-70B"),
        _model("llama-3.1-70b", 70.6e9, 80, 8192, 64, 8, 128256, 131072, "meta-llama/Llama-3.1-70B"),
        _model("qwen2.5-7b", 7.62e9, 28, 3584, 28, 4, 152064, 131072, "Qwen/Qwen2.5-7B"),
        _model("qwen2.5-72b", 72.7e9, 80, 8192, 64, 8, 152064, 131072, "Qwen/Qwen2.5-72B"),
        _model("mistral-7b", 7.24e9, 32, 4096, 32, 8, 32000, 32768, "mistralai/Mistral-7B-v0.1"),
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
