"""The Ray engine (servegen_core.engines.ray) on a local Ray instance with 2 CPUs: the fitted pool
and the generated workload are byte-identical to the single-process (local engine) result."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import ray

from servegen_core.engines import ray as ray_engine
from servegen_core.export.writer import write_parquet_parts
from servegen_core.generate.compose import plan_workload
from servegen_core.schema import validate_trace
from servegen_core.sources.fit import pool_from_trace
from servegen_core.sources.pool import ClientPool
from servegen_core.sources.traces import load_trace
from servegen_core.spec import BatchJob, ServeGenSource, Span, WorkloadSpec
from tests._cli import run


@pytest.fixture(scope="module", autouse=True)
def local_ray(monkeypatch_module: pytest.MonkeyPatch) -> None:
    """A local Ray instance with 2 CPUs for this module (``$SERVEGEN_RAY_ADDRESS`` unset)."""
    monkeypatch_module.delenv(ray_engine.RAY_ADDRESS_ENV, raising=False)
    assert ray_engine.connect() == "local"
    assert ray.cluster_resources()["CPU"] == ray_engine.LOCAL_CPUS
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _frame_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, statistics=False)
    return buf.getvalue()


def _pool_digest(pool: ClientPool) -> dict[str, str]:
    """Every field of a pool: frames as the SHA-256 of their Parquet bytes, the rest as repr."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(pool):
        value = getattr(pool, f.name)
        if isinstance(value, pl.DataFrame):
            out[f.name] = hashlib.sha256(_frame_bytes(value)).hexdigest()
        elif f.name != "derived":
            out[f.name] = repr(value)
    return out


def _bursty_trace(n_clients: int = 6, seconds: float = 5400.0, seed: int = 5) -> pl.DataFrame:
    """A synthetic trace with known structure: clients of different rates, Gamma CV 3 gaps on a
    microsecond clock (so the sub-window arrival models are fitted), and a reasoning column."""
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(n_clients):
        rate = 0.5 + c
        shape = 1 / 9
        gaps = rng.gamma(shape, 1 / (rate * shape), size=int(rate * seconds * 1.2))
        t = np.cumsum(gaps)
        t = np.round(t[t < seconds], 6)
        parts.append(
            pl.DataFrame(
                {
                    "timestamp_s": t,
                    "client_id": f"c{c}",
                    "input_tokens": rng.integers(10, 4000, t.size),
                    "output_tokens": rng.integers(1, 900, t.size),
                }
            )
        )
    trace = pl.concat(parts).sort("timestamp_s", maintain_order=True)
    return trace.with_columns(pl.col("timestamp_s") - pl.col("timestamp_s").min())


def test_fit_pool_is_the_local_pool_on_a_real_trace(traces_dir: Path) -> None:
    trace = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace
    local = pool_from_trace(trace, name="azure", seed=3)
    remote = ray_engine.fit_pool(trace, name="azure", seed=3)
    assert local.arrival_models is not None and local.arrival_models.height > 0
    assert _pool_digest(remote) == _pool_digest(local)


def test_fit_pool_is_the_local_pool_on_a_bursty_multi_client_trace() -> None:
    trace = _bursty_trace()
    local = pool_from_trace(trace, window_s=600, length_window_s=3600, seed=11)
    remote = ray_engine.fit_pool(trace, window_s=600, length_window_s=3600, seed=11)
    assert len(local.client_ids) == 6
    assert _pool_digest(remote) == _pool_digest(local)
    # a different seed is a different pool (the digest would notice a change)
    other = pool_from_trace(trace, window_s=600, length_window_s=3600, seed=12)
    assert _pool_digest(other) != _pool_digest(local)


@pytest.mark.parametrize("partitions", [1, 3, 6])
def test_fit_pool_in_client_partitions_is_the_local_pool(partitions: int) -> None:
    """The clients fitted in 1, 3 or 6 Ray tasks: the local pool, byte for byte, with the
    sub-window arrival models of every client (a microsecond clock) and on a 1 s grid (the
    per-client de-quantization draws)."""
    trace = _bursty_trace()
    local = pool_from_trace(trace, seed=4)
    remote = ray_engine.fit_pool(trace, seed=4, partitions=partitions)
    assert local.arrival_models is not None
    assert local.arrival_models["client_id"].n_unique() == 6
    assert _pool_digest(remote) == _pool_digest(local)
    coarse = trace.with_columns(pl.col("timestamp_s").floor())
    local_q = pool_from_trace(coarse, seed=4)
    assert local_q.arrival_models is None  # de-quantized
    assert not local_q.gaps["gap_s"].equals(pool_from_trace(coarse, seed=5).gaps["gap_s"])
    assert _pool_digest(ray_engine.fit_pool(coarse, seed=4, partitions=partitions)) == _pool_digest(local_q)


def test_generated_workload_of_a_ray_fitted_pool_is_the_local_workload() -> None:
    """A pool fitted on Ray and its workload generated on Ray: the local workload's bytes."""
    trace = _bursty_trace(n_clients=4, seconds=3600.0)
    local_pool = pool_from_trace(trace, seed=2)
    remote_pool = ray_engine.fit_pool(trace, seed=2, partitions=4)
    spec = WorkloadSpec(source=ServeGenSource(data_dir="shared", model="trace/bursty"), span=Span(start_s=0, duration_s=3600), seed=9)
    local = list(plan_workload(spec, pool=local_pool).iter_chunks(600.0))
    remote = list(ray_engine.iter_chunks(plan_workload(spec, pool=remote_pool), 600.0, in_flight=2))
    assert sum(f.height for f in local) > 5000
    assert [_frame_bytes(f) for f in remote] == [_frame_bytes(f) for f in local]


def test_generation_chunks_equal_the_local_chunks(m_large: ClientPool) -> None:
    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(start_s=12 * 3600, duration_s=3600),
        seed=7,
    )
    plan = plan_workload(spec, pool=m_large)
    local = list(plan.iter_chunks(600.0))
    remote = list(ray_engine.iter_chunks(plan, 600.0, in_flight=3))
    assert len(local) == len(remote) >= 6
    assert sum(f.height for f in local) > 10_000
    assert [_frame_bytes(f) for f in remote] == [_frame_bytes(f) for f in local]
    # the chunk bounds are the plan's: concatenated they are compose's frame
    assert pl.concat(remote).equals(plan.compose().trace)
    # another seed draws other requests
    other = plan_workload(dataclasses.replace(spec, seed=8), pool=m_large)
    assert not pl.concat(list(ray_engine.iter_chunks(other, 600.0))).equals(pl.concat(remote))


@pytest.mark.parametrize("submission_rps", [None, 50.0])
def test_a_batch_job_is_submitted_as_locally(m_large: ClientPool, submission_rps: float | None) -> None:
    """The batch stage runs on the Ray tasks' frames as on local ones: submission times, not arrivals."""
    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(start_s=12 * 3600, duration_s=1200),
        seed=7,
        batch=BatchJob(submission_rps=submission_rps),
    )
    plan = plan_workload(spec, pool=m_large)
    local = list(plan.iter_chunks(600.0))
    remote = list(ray_engine.iter_chunks(plan, 600.0, in_flight=2))
    assert [_frame_bytes(f) for f in remote] == [_frame_bytes(f) for f in local]
    times = pl.concat(remote)["timestamp_s"]
    if submission_rps is None:
        assert (times == 0.0).all()
    else:
        assert times.max() == pytest.approx((times.len() - 1) / submission_rps)


def test_write_parquet_parts_of_ray_chunks_is_the_local_folder(m_large: ClientPool, tmp_path: Path) -> None:
    spec = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(start_s=12 * 3600, duration_s=1800),
        seed=7,
    )
    plan = plan_workload(spec, pool=m_large)
    write_parquet_parts(plan.iter_chunks(600.0), tmp_path / "local", note=None)
    write_parquet_parts(ray_engine.iter_chunks(plan, 600.0, in_flight=2), tmp_path / "ray", note=None)
    local, remote = _tree_bytes(tmp_path / "local"), _tree_bytes(tmp_path / "ray")
    assert len(local) == 3  # 1800 s in chunks of 600 s
    assert remote == local


def _tree_bytes(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.mark.parametrize(
    ("fmt", "name", "chunk"),
    [("parquet", "parts", ["--chunk-s", "900"]), ("parquet", "w.parquet", []), ("jsonl", "w.jsonl", ["--chunk-s", "1200"])],
)
def test_cli_generate_writes_the_same_bytes(capsys, tmp_path: Path, fmt: str, name: str, chunk: list[str]) -> None:
    spec_path = tmp_path / "spec.json"
    code, _, err = run(capsys, "spec-template", "--data-dir", "shared", "--model", "language/m-large",
                       "--start-s", 43200, "--duration-s", 3600, "-o", spec_path)
    assert code == 0, err
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine / name
        out.parent.mkdir()
        code, text, err = run(capsys, "generate", "--spec", spec_path, "-f", fmt, "-o", out, "-q",
                              "--engine", engine, *chunk)
        assert code == 0, err
        assert "wrote " in text
        outputs[engine] = _tree_bytes(out)
    assert outputs["ray"] == outputs["local"]
    if chunk and fmt == "parquet":
        assert len(outputs["local"]) >= 4  # one part per 900 s chunk
    assert sum(len(b) for b in outputs["local"].values()) > 100_000


def test_prefix_workload_from_a_trace_is_the_same_on_ray(capsys, tmp_path: Path, traces_dir: Path) -> None:
    """spec-template --trace (with hash_ids: a prefix section) fitted on Ray, then generated on Ray:
    the spec and the workload bytes equal the local ones (sessions expanded across chunks)."""
    trace = traces_dir / "mooncake_synthetic_trace.jsonl"
    texts, workloads = {}, {}
    for engine in ("local", "ray"):
        folder = tmp_path / engine
        folder.mkdir()
        code, _, err = run(capsys, "spec-template", "--trace", trace, "-o", folder / "spec.json", "--engine", engine)
        assert code == 0, err
        texts[engine] = (folder / "spec.json").read_text()
        code, _, err = run(capsys, "generate", "--spec", folder / "spec.json", "-f", "mooncake",
                           "-o", folder / "w.jsonl", "-q", "--chunk-s", 300, "--engine", engine)
        assert code == 0, err
        workloads[engine] = (folder / "w.jsonl").read_bytes()
    assert json.loads(texts["local"])["prefix"] is not None
    assert texts["ray"] == texts["local"]
    assert workloads["ray"] == workloads["local"]
    assert workloads["local"].count(b"\n") > 1000


def test_spec_template_engine_needs_a_trace(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "spec-template", "-o", tmp_path / "s.json", "--engine", "ray")
    assert code != 0
    assert "--engine applies to the fit of a raw trace" in err


def test_read_trace_reads_a_partitioned_parquet_folder(tmp_path: Path) -> None:
    trace = _bursty_trace(n_clients=4, seconds=1800.0)
    folder = tmp_path / "trace"
    folder.mkdir()
    for i, part in enumerate(trace.partition_by("client_id", maintain_order=True)):
        part.write_parquet(folder / f"part-{i:05d}.parquet")
    read = ray_engine.read_trace(str(folder))
    assert read.equals(validate_trace(trace))
    # and what it reads fits to the pool of the in-memory trace
    assert _pool_digest(ray_engine.fit_pool(read, seed=1)) == _pool_digest(pool_from_trace(trace, seed=1))


def test_read_trace_names_the_path_of_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    pl.DataFrame(schema={"timestamp_s": pl.Float64, "client_id": pl.String, "input_tokens": pl.Int64,
                         "output_tokens": pl.Int64}).write_parquet(folder / "part-0.parquet")
    with pytest.raises(ValueError, match="no rows in the Parquet trace .*empty"):
        ray_engine.read_trace(str(folder))
