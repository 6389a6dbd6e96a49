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

One budget holds the heavy work of every session of a server together (composing, loading,
validating, simulating): :class:`MemoryBudget`, a semaphore over estimated bytes
(:func:`composed_bytes`, :func:`loaded_bytes`, :func:`simulated_bytes`) whose capacity is
``$SERVEGEN_SERVER_BUDGET_MB`` (default :func:`default_server_budget_mb`: half the machine's
memory). A job waits (first come, first served) until its bytes fit beside the running jobs; a
job larger than the whole budget is refused with :class:`ServerBudgetError`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    "BYTES_PER_COMPOSED_REQUEST",
    "BYTES_PER_LOADED_CELL",
    "BYTES_PER_LOADED_ROW",
    "BYTES_PER_SIMULATED_REQUEST",
    "SERVER_BUDGET_ENV",
    "BudgetWait",
    "MemoryBudget",
    "ServerBudgetError",
    "check_time_bins",
    "composed_bytes",
    "default_server_budget_mb",
    "loaded_bytes",
    "server_budget",
    "server_budget_bytes",
    "simulated_bytes",
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



# --------------------------------------------------------------------------------------------
# One memory budget for the heavy work of a whole server (every session)
# --------------------------------------------------------------------------------------------

SERVER_BUDGET_ENV = "SERVEGEN_SERVER_BUDGET_MB"
#: Peak bytes per request of composing a workload in memory (a Preview of 5M requests peaks near
#: 1.8 GB: about 360 bytes each, rounded up).
BYTES_PER_COMPOSED_REQUEST = 400
#: Peak bytes per row of loading a trace of a few columns (see :data:`DEFAULT_MAX_ROWS`).
BYTES_PER_LOADED_ROW = 200
#: Peak bytes per cell of loading a wide trace (200 bytes per row of 6 columns).
BYTES_PER_LOADED_CELL = 34
#: Bytes per request of one serving simulation (its request arrays and per-request results).
BYTES_PER_SIMULATED_REQUEST = 200

_MB = 1024 * 1024


def composed_bytes(requests: float) -> int:
    """Estimated peak bytes of composing ``requests`` requests in memory."""
    return int(max(0.0, requests) * BYTES_PER_COMPOSED_REQUEST)


def loaded_bytes(rows: float, columns: int) -> int:
    """Estimated peak bytes of loading a trace of ``rows`` rows and ``columns`` columns read."""
    return int(max(0.0, rows) * max(BYTES_PER_LOADED_ROW, BYTES_PER_LOADED_CELL * max(1, columns)))


def simulated_bytes(requests: float, *, workloads: int = 1) -> int:
    """Estimated bytes of simulating ``workloads`` workloads of ``requests`` requests each (one at a
    time, each kept as its composed rows and its simulation)."""
    return int(max(0.0, requests) * (BYTES_PER_COMPOSED_REQUEST + BYTES_PER_SIMULATED_REQUEST) * max(1, workloads))


def _machine_memory_bytes() -> int | None:
    """Physical memory, or the cgroup (container) limit when lower; ``None`` when unknown."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    for limit_file in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:
            sizes.append(int(text))
    return min(sizes) if sizes else None


def default_server_budget_mb() -> int:
    """Half the machine's memory (or its container's limit) in MB; 4096 MB when unknown."""
    memory = _machine_memory_bytes()
    return 4096 if memory is None else max(256, memory // 2 // _MB)


def server_budget_bytes() -> int:
    """The server-wide budget of heavy work: ``$SERVEGEN_SERVER_BUDGET_MB`` MB (default
    :func:`default_server_budget_mb`)."""
    return int(_env_number(SERVER_BUDGET_ENV, default_server_budget_mb()) * _MB)


class ServerBudgetError(LimitError):
    """One job's estimated memory is larger than the whole server budget: it could never run.

    ``value`` and ``limit`` are bytes; the message says both in MB."""

    def __init__(self, what: str, needed: int, capacity: int) -> None:
        self.quantity = f"estimated memory of {what}"
        self.value = needed
        self.limit = capacity
        text = (
            f"{what} needs an estimated {needed / _MB:,.1f} MB, more than this server's whole budget for heavy "
            f"work of all sessions, {capacity / _MB:,.1f} MB (${SERVER_BUDGET_ENV}); make the job smaller "
            "(a shorter span, a lower rate, fewer requests)"
        )
        ServeGenError.__init__(self, text)


@dataclass(frozen=True)
class BudgetWait:
    """What a queued job waits for: its bytes, the bytes running jobs hold, the capacity and the
    jobs queued ahead of it."""

    what: str
    needed: int
    in_use: int
    capacity: int
    ahead: int
    waited_s: float

    def sentence(self) -> str:
        """``"Busy: your job (composing ..., 1,200 MB) is queued; 5,000 of 6,000 MB in use, 1 job ahead."``"""
        ahead = f", {self.ahead} job{'s' if self.ahead != 1 else ''} ahead" if self.ahead else ""
        return (
            f"Busy: your job ({self.what}, {self.needed / _MB:,.0f} MB) is queued; "
            f"{self.in_use / _MB:,.0f} of {self.capacity / _MB:,.0f} MB of the server's budget in use{ahead}."
        )


class MemoryBudget:
    """A semaphore over estimated bytes, shared by every thread of a process.

    :meth:`reserve` holds ``nbytes`` for the duration of a ``with`` block: it waits until they fit
    beside the bytes other jobs hold, first come first served (a large job is not overtaken
    forever by small ones), and always gives them back, also when the block raises or the wait is
    interrupted. A job larger than :attr:`capacity` is refused at once with
    :class:`ServerBudgetError`, naming both numbers.

    Results kept after their job (a cache of composed workloads) count too: :meth:`hold` charges
    their bytes until :meth:`release_held`. A job that fits beside the running jobs but not beside
    the kept results asks its ``make_room`` callback to drop them (a cache clear that releases
    them) rather than wait for it.
    """

    def __init__(self, capacity: int, *, poll_s: float = 0.5) -> None:
        if capacity <= 0:
            msg = f"a memory budget must be positive, got {capacity}"
            raise ValueError(msg)
        self.capacity = int(capacity)
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._running = 0
        self._held = 0
        self._queue: list[object] = []  # tickets of the waiting jobs, oldest first
        #: Most bytes held at once (running jobs and kept results) since the budget was made.
        self.peak = 0
        #: Most bytes of running jobs at once since the budget was made.
        self.peak_running = 0

    def resize(self, capacity: int) -> None:
        """Change the capacity (running jobs keep their bytes; waiting jobs are checked again)."""
        if capacity <= 0:
            msg = f"a memory budget must be positive, got {capacity}"
            raise ValueError(msg)
        with self._cond:
            self.capacity = int(capacity)
            self._cond.notify_all()

    @property
    def in_use(self) -> int:
        """Bytes the running jobs and the kept results hold."""
        with self._cond:
            return self._running + self._held

    @property
    def running(self) -> int:
        """Bytes the running jobs hold."""
        with self._cond:
            return self._running

    @property
    def held(self) -> int:
        """Bytes of kept results (:meth:`hold`)."""
        with self._cond:
            return self._held

    @property
    def waiting(self) -> int:
        """Jobs queued."""
        with self._cond:
            return len(self._queue)

    def hold(self, nbytes: int) -> None:
        """Charge ``nbytes`` of a kept result (never waits: the result exists already)."""
        with self._cond:
            self._held += max(0, int(nbytes))
            self.peak = max(self.peak, self._running + self._held)

    def release_held(self, nbytes: int) -> None:
        """Give back the bytes of a kept result that was dropped."""
        with self._cond:
            self._held = max(0, self._held - max(0, int(nbytes)))
            self._cond.notify_all()

    def check(self, nbytes: int, what: str) -> None:
        """Refuse a job of ``nbytes`` larger than the whole budget (it could never run)."""
        if nbytes > self.capacity:
            raise ServerBudgetError(what, nbytes, self.capacity)

    def _outside_lock(self, callback: Callable[[], None]) -> None:
        self._cond.release()
        try:
            callback()
        finally:
            self._cond.acquire()

    @contextmanager
    def reserve(
        self,
        nbytes: int,
        what: str,
        *,
        on_wait: Callable[[BudgetWait], None] | None = None,
        make_room: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Hold ``nbytes`` of the budget while the block runs (see the class). While the job
        waits, ``on_wait`` is called at once and then every :attr:`poll_s` seconds with a
        :class:`BudgetWait`; an exception it raises abandons the wait (nothing is held)."""
        nbytes = max(0, int(nbytes))
        self.check(nbytes, what)
        ticket = object()
        started = time.monotonic()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._running + self._held + nbytes > self.capacity:
                    first = self._queue[0] is ticket
                    if first and make_room is not None and self._held and self._running + nbytes <= self.capacity:
                        self._outside_lock(make_room)
                        if self._running + self._held + nbytes <= self.capacity:
                            continue  # room made: the loop ends
                    if on_wait is not None:
                        wait = BudgetWait(
                            what, nbytes, self._running + self._held, self.capacity, self._queue.index(ticket),
                            time.monotonic() - started,
                        )
                        self._outside_lock(lambda: on_wait(wait))
                    self._cond.wait(self.poll_s)
            except BaseException:
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.pop(0)
            self._running += nbytes
            self.peak = max(self.peak, self._running + self._held)
            self.peak_running = max(self.peak_running, self._running)
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._running -= nbytes
                self._cond.notify_all()


_SERVER_BUDGET: MemoryBudget | None = None
_SERVER_BUDGET_LOCK = threading.Lock()


def server_budget() -> MemoryBudget:
    """The process-wide :class:`MemoryBudget`, its capacity :func:`server_budget_bytes` (read at
    every call, as the other limits: a changed variable resizes the one budget)."""
    global _SERVER_BUDGET  # noqa: PLW0603 - one budget per process, made on first use
    capacity = server_budget_bytes()
    with _SERVER_BUDGET_LOCK:
        if _SERVER_BUDGET is None:
            _SERVER_BUDGET = MemoryBudget(capacity)
        elif _SERVER_BUDGET.capacity != capacity:
            _SERVER_BUDGET.resize(capacity)
        return _SERVER_BUDGET
