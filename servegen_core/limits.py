"""Resource limits: the largest inputs and workloads the package accepts.

Each limit protects memory or disk from one small input that describes a huge amount of
work (a gzip bomb, a trace spanning 10^20 seconds, a spec asking for 10^12 requests per
second). The defaults are generous for real traces and workloads. All but the last can be
changed through an environment variable (read when the limit is needed, so a change takes
effect without a restart) or, where a function takes it, a keyword argument.

- decompressed size of a ``.gz`` input: ``$SERVEGEN_MAX_DECOMPRESSED_MB`` (default 4096 MB);
- time span of a loaded trace, and window starts of a pool: ``$SERVEGEN_MAX_SPAN_S``
  (default 31,622,400 s, 366 days);
- tokens per request and per PDF bin: ``$SERVEGEN_MAX_TOKENS`` (default 10,000,000);
- rows and columns of a loaded trace: ``$SERVEGEN_MAX_ROWS`` (default 40,000,000) and
  ``$SERVEGEN_MAX_COLUMNS`` (default 1,024), and a file's rows x columns read at most
  :data:`CELLS_PER_ROW` x the row limit; uploads to the dashboard are held to
  :data:`UPLOAD_MAX_ROWS` and :data:`UPLOAD_MAX_COLUMNS` (``max_rows(upload=True)``);
- requests of a workload streamed to a file: ``$SERVEGEN_MAX_REQUESTS`` (default 200,000,000);
- requests of a workload composed in memory: ``$SERVEGEN_MAX_REQUESTS_MEMORY`` (default
  20,000,000, about 100 bytes each);
- time bins of a rate series: :data:`MAX_TIME_BINS`, client x bin cells :data:`MAX_BIN_CELLS`;
- serving simulation (:mod:`servegen_core.serve.simulate`): replicas :data:`MAX_REPLICAS`, GPUs per
  replica :data:`MAX_TENSOR_PARALLEL`, running sequences per replica :data:`MAX_NUM_SEQS`,
  tokens per iteration :data:`MAX_BATCHED_TOKENS`, worker processes :func:`max_workers`
  (4 x the machine's CPU count); size of a cost-model calibration file
  :data:`MAX_CALIBRATION_BYTES`.

The dashboard composes in memory for a visitor and uses the lower
:data:`DASHBOARD_MAX_REQUESTS`.
"""

from __future__ import annotations

import math
import os

from servegen_core.errors import LimitError, ServeGenError, quoted

__all__ = [
    "DASHBOARD_MAX_REQUESTS",
    "DEFAULT_MAX_DECOMPRESSED_MB",
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_MAX_REQUESTS_MEMORY",
    "DEFAULT_MAX_SPAN_S",
    "DEFAULT_MAX_TOKENS",
    "MAX_BIN_CELLS",
    "MAX_BATCHED_TOKENS",
    "MAX_BLOCK_SIZE",
    "MAX_CALIBRATION_BYTES",
    "MAX_NUM_SEQS",
    "MAX_REPLICAS",
    "MAX_TENSOR_PARALLEL",
    "MAX_DECOMPRESSED_ENV",
    "MAX_REQUESTS_ENV",
    "MAX_REQUESTS_MEMORY_ENV",
    "MAX_SPAN_ENV",
    "MAX_TIME_BINS",
    "MAX_TOKENS_ENV",
    "CELLS_PER_ROW",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "MAX_COLUMNS_ENV",
    "MAX_ROWS_ENV",
    "UPLOAD_MAX_COLUMNS",
    "UPLOAD_MAX_ROWS",
    "check_time_bins",
    "max_columns",
    "max_decompressed_bytes",
    "max_requests",
    "max_rows",
    "max_span_s",
    "max_tokens",
    "max_workers",
]

MAX_DECOMPRESSED_ENV = "SERVEGEN_MAX_DECOMPRESSED_MB"
MAX_SPAN_ENV = "SERVEGEN_MAX_SPAN_S"
MAX_TOKENS_ENV = "SERVEGEN_MAX_TOKENS"
MAX_REQUESTS_ENV = "SERVEGEN_MAX_REQUESTS"
MAX_REQUESTS_MEMORY_ENV = "SERVEGEN_MAX_REQUESTS_MEMORY"
MAX_ROWS_ENV = "SERVEGEN_MAX_ROWS"
MAX_COLUMNS_ENV = "SERVEGEN_MAX_COLUMNS"

DEFAULT_MAX_DECOMPRESSED_MB = 4096
DEFAULT_MAX_SPAN_S = 366 * 86400
DEFAULT_MAX_TOKENS = 10_000_000
#: Requests of a workload generated and written chunk by chunk (``servegen generate``).
DEFAULT_MAX_REQUESTS = 200_000_000
#: Requests of a workload composed whole in memory (``compose``): about 100 bytes each.
DEFAULT_MAX_REQUESTS_MEMORY = 20_000_000
#: Rows of a trace file loaded whole. A loaded trace holds about 78 bytes per row, and loading
#: one peaks near 200 bytes per row (a 6-column CSV of 5M rows: 0.97 GB; its Parquet: 0.74 GB),
#: so 40M rows peak near 8 GB: a third of a 24 GiB machine, room for the rest. The largest
#: public traces (BurstGPT, a week of Azure LLM inference) hold 5M to 30M rows.
DEFAULT_MAX_ROWS = 40_000_000
#: Columns of a trace file (a real trace has a few dozen; Polars spends ~10 kB per column).
DEFAULT_MAX_COLUMNS = 1024
#: A file's rows x columns read may be at most this many times the row limit: a wide CSV (whose
#: every column is read, as text) is held to proportionally fewer rows.
CELLS_PER_ROW = 8
#: Rows of a file uploaded to the dashboard, loaded for a visitor while other sessions run
#: (peak about 1 GB, as a composed workload of :data:`DASHBOARD_MAX_REQUESTS`).
UPLOAD_MAX_ROWS = 5_000_000
#: Columns of a file uploaded to the dashboard.
UPLOAD_MAX_COLUMNS = 256
#: Requests the dashboard composes for a visitor (in memory, several sessions at once).
DASHBOARD_MAX_REQUESTS = 5_000_000
#: Largest ``hash_ids`` block size (tokens): one block per request at the token limit.
MAX_BLOCK_SIZE = DEFAULT_MAX_TOKENS
#: Most time bins a rate series spans (a series is dense over the span: 50M float64 = 400 MB).
MAX_TIME_BINS = 50_000_000
#: Most cells of a per-client rate table (clients x time bins, float64: 1.6 GB).
MAX_BIN_CELLS = 200_000_000
#: Most serving replicas simulated at once (one job and one state per replica).
MAX_REPLICAS = 65_536
#: Most GPUs of one simulated replica.
MAX_TENSOR_PARALLEL = 1024
#: Most running sequences of one simulated replica (vLLM's ``max_num_seqs``).
MAX_NUM_SEQS = 1_000_000
#: Most tokens of one simulated iteration (vLLM's ``max_num_batched_tokens``).
MAX_BATCHED_TOKENS = DEFAULT_MAX_TOKENS
#: Largest cost-model calibration file (benchmark JSON or CSV of iteration times) read whole.
MAX_CALIBRATION_BYTES = 16 * 1024 * 1024


def max_workers() -> int:
    """Most worker processes of a simulation: 4 x ``os.cpu_count()`` (4 when it is unknown)."""
    return 4 * (os.cpu_count() or 1)


def check_time_bins(n_bins: int, bin_s: float, *, clients: int = 1) -> None:
    """Refuse a rate series of ``n_bins`` bins of ``bin_s`` seconds (per client: ``clients`` rows)
    above :data:`MAX_TIME_BINS` or :data:`MAX_BIN_CELLS`, before it is allocated."""
    hint = f"the data span {n_bins * bin_s:.4g} s; use coarser bins or a shorter span"
    if n_bins > MAX_TIME_BINS:
        raise LimitError(f"time bins of {bin_s:g} s", n_bins, MAX_TIME_BINS, hint)
    if n_bins * clients > MAX_BIN_CELLS:
        raise LimitError(f"cells of a {clients:,}-client rate table", n_bins * clients, MAX_BIN_CELLS, hint)


class LimitConfigError(ServeGenError, ValueError):
    """A limit's environment variable does not hold a positive number."""


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"environment variable {name} must be a positive number, got {quoted(text.strip(), limit=40)}"
        raise LimitConfigError(msg)
    return value


def max_decompressed_bytes() -> int:
    """Largest decompressed size of a compressed input (``$SERVEGEN_MAX_DECOMPRESSED_MB`` MB)."""
    return int(_env_number(MAX_DECOMPRESSED_ENV, DEFAULT_MAX_DECOMPRESSED_MB) * 1024 * 1024)


def max_span_s() -> float:
    """Longest time span of a loaded trace or data set, seconds (``$SERVEGEN_MAX_SPAN_S``)."""
    return _env_number(MAX_SPAN_ENV, DEFAULT_MAX_SPAN_S)


def max_tokens() -> int:
    """Largest token count of one request or one PDF bin (``$SERVEGEN_MAX_TOKENS``)."""
    return int(_env_number(MAX_TOKENS_ENV, DEFAULT_MAX_TOKENS))


def max_requests(*, streamed: bool) -> int:
    """Largest expected request count of a workload, streamed to a file or composed in memory."""
    if streamed:
        return int(_env_number(MAX_REQUESTS_ENV, DEFAULT_MAX_REQUESTS))
    return int(_env_number(MAX_REQUESTS_MEMORY_ENV, DEFAULT_MAX_REQUESTS_MEMORY))


def max_rows(*, upload: bool = False) -> int:
    """Most rows of a trace file loaded whole (``$SERVEGEN_MAX_ROWS``, default
    :data:`DEFAULT_MAX_ROWS`); with ``upload`` at most :data:`UPLOAD_MAX_ROWS` as well."""
    limit = max(1, int(_env_number(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)))
    return min(limit, UPLOAD_MAX_ROWS) if upload else limit


def max_columns(*, upload: bool = False) -> int:
    """Most columns of a trace file (``$SERVEGEN_MAX_COLUMNS``, default
    :data:`DEFAULT_MAX_COLUMNS`); with ``upload`` at most :data:`UPLOAD_MAX_COLUMNS` as well."""
    limit = max(1, int(_env_number(MAX_COLUMNS_ENV, DEFAULT_MAX_COLUMNS)))
    return min(limit, UPLOAD_MAX_COLUMNS) if upload else limit
