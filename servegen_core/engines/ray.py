"""The Ray engine: the core's fit and generation run as Ray tasks, with the local engine's bytes.

Needs the optional extra (``pip install servegen-core[ray]``, Ray Data included). :func:`connect`
joins the cluster at ``$SERVEGEN_RAY_ADDRESS`` (``ray.init(address=...)``) or, when it is
unset, starts a local Ray instance with :data:`LOCAL_CPUS` CPUs.

Generation
    A plan's generation units (:class:`~servegen_core.generate.plan.GenerationUnits`) each draw
    from their own generators (``default_rng([seed, window, 0|1, piece])``,
    :mod:`servegen_core.generate.draw`), so a range of units gives the same rows whichever process
    draws it. :func:`iter_chunks` cuts the plan into the chunks
    :meth:`~servegen_core.generate.plan.ComposePlan.iter_chunks` yields (same ``chunk_s``, same
    :data:`~servegen_core.generate.plan.UNIT_REQUESTS` budget), runs
    :func:`~servegen_core.generate.draw.generate_rows` for each chunk as a Ray task (the plan
    is put in the object store once) and yields the frames in time order, keeping at most
    ``in_flight`` tasks outstanding, so the driver's memory stays bounded by that many chunks.
    The Ray tasks are the ``rows`` of ``plan.iter_chunks``, so its prefix stage (sessions
    expanded in the driver, in order) and batch stage run on their frames as on local ones. The frames are exactly
    those of ``plan.iter_chunks(chunk_s)``; written with the same
    :class:`~servegen_core.export.writer.ChunkWriter` they give the same bytes, in every format.
    The random streams are per unit (an arrival window holding all its clients), not per client:
    a task is a time range of units, and cutting by client instead would change the bytes.

Fit
    :func:`fit_pool` runs the per-client fit (:mod:`servegen_core.sources.fit`) as Ray tasks:
    the driver computes the trace-wide :func:`~servegen_core.sources.fit.fit_input` (client ids,
    timestamp resolution, window grids), cuts the trace into partitions of whole clients
    (:func:`~servegen_core.sources.fit.client_partitions`, ``partitions`` of them, default
    twice the cluster's CPUs), puts each in the object store and runs
    :func:`~servegen_core.sources.fit.fit_partition` on each as a task;
    :func:`~servegen_core.sources.fit.merge_parts` joins the results. Each client draws from its
    own streams (keyed by the SHA-256 of its id), so the pool is byte-identical to the local
    :func:`~servegen_core.sources.fit.pool_from_trace`. :func:`read_trace` reads a Parquet trace
    in the RequestTrace columns (a file, a folder of part files or an object store URL) with
    Ray Data, in file order.

Ray is imported when this module is (it is optional: without it :data:`ray` is None and every
function raises an ImportError saying how to install it).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

import polars as pl

try:  # the optional extra: the module imports without it, its functions then say how to install it
    import ray
except ImportError:  # pragma: no cover - exercised only where the extra is missing
    ray = None

from servegen_core.generate.draw import generate_rows
from servegen_core.generate.plan import ComposePlan, check_workload_size
from servegen_core.schema import validate_trace
from servegen_core.sources.fit import client_partitions, fit_input, fit_partition, merge_parts
from servegen_core.sources.pool import ClientPool

__all__ = [
    "LOCAL_CPUS",
    "RAY_ADDRESS_ENV",
    "connect",
    "fit_pool",
    "iter_chunks",
    "read_trace",
]

#: The environment variable naming the Ray cluster to join (``ray.init(address=...)``).
RAY_ADDRESS_ENV = "SERVEGEN_RAY_ADDRESS"
#: CPUs of the local Ray instance :func:`connect` starts when no address is set.
LOCAL_CPUS = 2


def _ray():  # noqa: ANN202 (the optional module itself)
    """The ``ray`` module, or an ImportError saying how to install it."""
    if ray is None:
        msg = "the ray engine needs Ray: pip install 'servegen-core[ray]'"
        raise ImportError(msg)
    return ray


def connect(*, num_cpus: int | None = None) -> str:
    """Join the Ray cluster at ``$SERVEGEN_RAY_ADDRESS``, or start a local instance with
    ``num_cpus`` (default :data:`LOCAL_CPUS`) CPUs; nothing when Ray is already initialized.
    Returns the address in use (``"local"`` for a local instance)."""
    ray = _ray()
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=LOCAL_CPUS if num_cpus is None else num_cpus, log_to_driver=False, include_dashboard=False)
    return address or "local"


def _cluster_cpus() -> int:
    return max(1, int(_ray().cluster_resources().get("CPU", 1)))


def fit_pool(trace: pl.DataFrame, *, partitions: int | None = None, **options: object) -> ClientPool:
    """:func:`~servegen_core.sources.fit.pool_from_trace` of ``trace`` (with its keyword
    ``options``), the clients fitted in ``partitions`` Ray tasks (default: twice the cluster's
    CPUs); byte-identical to the local pool (see the module docstring)."""
    remote = _ray()
    connect()
    inp, df = fit_input(trace, **options)  # type: ignore[arg-type]
    n_parts = 2 * _cluster_cpus() if partitions is None else partitions
    task = remote.remote(num_cpus=1)(fit_partition)
    inp_ref = remote.put(inp)
    refs = [task.remote(inp_ref, remote.put(part)) for part in client_partitions(inp, df, n_parts)]
    del df
    return merge_parts(inp, remote.get(refs))


def read_trace(path: str, *, source: str | None = None) -> pl.DataFrame:
    """The Parquet trace at ``path`` (a file, a folder of part files, a glob or an object store
    URL Ray Data can read), in the RequestTrace columns, read with Ray Data in file order and
    validated (:func:`~servegen_core.schema.validate_trace`; errors name ``source`` or ``path``)."""
    ray = _ray()
    connect()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    dataset = ray.data.read_parquet(path)
    tables = ray.get(dataset.to_arrow_refs())
    frames = [pl.from_arrow(t) for t in tables if t.num_rows]
    if not frames:
        msg = f"no rows in the Parquet trace {path}"
        raise ValueError(msg)
    frame = pl.concat(frames, how="vertical_relaxed")
    assert isinstance(frame, pl.DataFrame)
    return validate_trace(frame, source=source or path)


class _RayRows:
    """``generate(plan, k0, k1)`` for the given bounds, in their order, drawn by Ray tasks:
    at most ``in_flight`` outstanding, the next one submitted as each result is taken."""

    def __init__(self, plan: ComposePlan, bounds: list[tuple[int, int]], in_flight: int) -> None:
        ray = _ray()
        self._ray = ray
        self._plan_ref = ray.put(plan)
        self._task = ray.remote(num_cpus=1)(generate_rows)
        self._todo = deque(bounds)
        self._pending: deque[tuple[tuple[int, int], object]] = deque()
        self._in_flight = max(1, in_flight)
        self._fill()

    def _fill(self) -> None:
        while self._todo and len(self._pending) < self._in_flight:
            k0, k1 = self._todo.popleft()
            self._pending.append(((k0, k1), self._task.remote(self._plan_ref, k0, k1)))

    def __call__(self, plan: ComposePlan, k0: int, k1: int) -> pl.DataFrame:
        (b0, b1), ref = self._pending.popleft()
        if (b0, b1) != (k0, k1):
            msg = f"units {k0}:{k1} asked for out of order (next submitted: {b0}:{b1})"
            raise RuntimeError(msg)
        self._fill()
        return _owned(self._ray.get(ref))


def _owned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` copied into memory of this process. A frame taken from Ray's object store is
    equal to the local one but, written to Parquet whole (713,816 rows of m-large, one chunk), gave
    other bytes than the local frame; rebuilt by a concatenation it gives the local bytes (checked
    by tests/engines/test_ray.py). The copy is one pass over the chunk's memory."""
    half = frame.height // 2
    if half == 0:
        return frame.clone()
    return pl.concat([frame.slice(0, half), frame.slice(half)], rechunk=True)


def iter_chunks(
    plan: ComposePlan, chunk_s: float = 600.0, *, max_requests: int | None = None, in_flight: int | None = None
) -> Iterator[pl.DataFrame]:
    """The frames of ``plan.iter_chunks(chunk_s, max_requests=max_requests)``, each chunk drawn
    by a Ray task (see the module docstring); at most ``in_flight`` (default: twice the cluster's
    CPUs) chunks are held at once."""
    check_workload_size(plan, max_requests=max_requests, streamed=True)
    bounds = plan.chunk_bounds(chunk_s)
    if not bounds:
        return
    connect()
    rows = _RayRows(plan, bounds, 2 * _cluster_cpus() if in_flight is None else in_flight)
    yield from plan.iter_chunks(chunk_s, max_requests=max_requests, rows=rows)
