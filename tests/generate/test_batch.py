"""Offline batch mode: batch traces characterized (lengths, prefix reuse, image reuse) and composed as a batch job.

The fixture is a ServeGen offline batch trace (``data/offline/trace_a..c.jsonl`` layout, written
here from its documented schema: ``request_id``, ``type``, ``input_length``, ``output_length``,
16-token ``hash_ids`` in one namespace, ``img_ids``; no timestamps) with known answers: every
request starts with the same 4-block system prompt, every third image request sends image 7
again. The spec's ``batch`` key (:class:`~servegen_core.spec.BatchJob`) composes the workload as
without it and submits it at ``t = 0`` or at a stated rate.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from servegen_core.characterize import prefix
from servegen_core.characterize.summary import client_summary
from servegen_core.errors import SpecError
from servegen_core.generate.compose import compose, iter_compose
from servegen_core.sources.traces import LINKED_BLOCK_SIZE, load_trace
from servegen_core.spec import BatchJob, ConstantRate, Span, TraceSource, WorkloadSpec
from tests._cli import run, write_spec

N = 120
SYSTEM_BLOCKS = 4


def _records() -> list[dict]:
    rng = np.random.default_rng(5)
    recs = []
    next_id = 100
    for i in range(N):
        n_in = SYSTEM_BLOCKS * LINKED_BLOCK_SIZE + int(rng.integers(1, 400))
        own = -(-n_in // LINKED_BLOCK_SIZE) - SYSTEM_BLOCKS
        image = i % 2 == 0
        # image requests: a fresh image each, except every third, which sends image 7 again
        imgs = ([7] if i % 6 == 0 else [1000 + i]) if image else []
        recs.append({
            "request_id": i, "type": "image" if image else "text", "input_length": n_in,
            "output_length": int(rng.integers(1, 300)),
            "hash_ids": list(range(SYSTEM_BLOCKS)) + list(range(next_id, next_id + own)), "img_ids": imgs,
        })
        next_id += own
    return recs


@pytest.fixture
def batch_trace(tmp_path):
    recs = _records()
    path = tmp_path / "trace_a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path, recs


def test_batch_trace_characterized_lengths_prefix_and_image_reuse(batch_trace):
    path, recs = batch_trace
    tr = load_trace(path).trace
    assert set(tr["timestamp_s"]) == {0.0}
    assert tr["image_ids"].to_list() == [r["img_ids"] for r in recs]  # ids kept, in file order
    # lengths, per client (the request type)
    summary = client_summary(tr).frame.sort("client_id")
    for row in summary.iter_rows(named=True):
        inputs = [r["input_length"] for r in recs if r["type"] == row["client_id"]]
        assert row["requests"] == len(inputs)
        assert row["input_mean"] == pytest.approx(np.mean(inputs))
    # prefix reuse: the system prompt's blocks are the only blocks seen twice
    blocks = prefix.block_reuse(tr)
    assert blocks.reused_blocks == SYSTEM_BLOCKS * (N - 1)
    # image reuse: image 7 is sent by 20 requests, every other image once
    images = prefix.image_reuse(tr)
    sent_seven = sum(r["img_ids"] == [7] for r in recs)
    assert images.blocks == N // 2 and images.unique_blocks == N // 2 - sent_seven + 1
    assert images.reused_blocks == sent_seven - 1
    assert images.reuse_ratio == pytest.approx((sent_seven - 1) / (N // 2))
    per = images.per_client.filter(pl.col("client_id") == "image")
    assert per["reused_blocks"].item() == sent_seven - 1
    assert prefix.image_reuse(tr.drop("image_ids")).reason.startswith("the trace has no 'image_ids'")


def _spec(path, **kw) -> WorkloadSpec:
    return WorkloadSpec(source=TraceSource(path=str(path)), span=Span(0, None), seed=3, **kw)


def test_batch_job_at_t0_is_the_online_composition_submitted_at_once(batch_trace):
    path, _ = batch_trace
    online = compose(_spec(path)).trace
    batch = compose(_spec(path, batch=BatchJob())).trace
    assert batch.height == online.height == N  # observed rate: as many requests as the trace holds
    assert set(batch["timestamp_s"]) == {0.0}
    assert batch.drop("timestamp_s").equals(online.drop("timestamp_s"))  # same requests, same order


def test_batch_job_at_a_stated_submission_rate(batch_trace):
    path, _ = batch_trace
    spec = _spec(path, batch=BatchJob(submission_rps=8.0), rate=ConstantRate(rps=300.0))
    trace = compose(spec).trace
    np.testing.assert_allclose(trace["timestamp_s"].to_numpy(), np.arange(trace.height) / 8.0)
    # streamed in chunks: the submission times run on across chunks
    assert pl.concat(list(iter_compose(spec, chunk_s=1.0))).equals(trace)


def test_batch_spec_json_round_trip_and_strict_parsing(batch_trace):
    path, _ = batch_trace
    spec = _spec(path, batch=BatchJob(submission_rps=2.5))
    assert spec.to_dict()["batch"] == {"submission_rps": 2.5}
    assert WorkloadSpec.from_json(spec.to_json()) == spec
    assert "batch" not in _spec(path).to_dict()  # absent unless set: older specs write the same bytes
    base = _spec(path).to_dict()
    assert WorkloadSpec.from_dict({**base, "batch": None}).batch is None
    assert WorkloadSpec.from_dict({**base, "batch": {}}).batch == BatchJob()
    for bad, key, text in (
        ({"submission_rps": 0}, "batch.submission_rps", "0"),
        ({"submission_rps": "fast"}, "batch.submission_rps", "expected a number"),
        ({"rps": 3}, "batch.rps", "unknown"),
        ([1], "batch", "object"),
    ):
        with pytest.raises(SpecError) as err:
            WorkloadSpec.from_dict({**base, "batch": bad})
        assert err.value.key == key and text in str(err.value)
    with pytest.raises(SpecError, match="batch"):
        WorkloadSpec(source=TraceSource(path=str(path)), span=Span(0, None), batch={"submission_rps": 1})


def test_cli_generate_batch(batch_trace, tmp_path, capsys):
    path, _ = batch_trace
    spec_path = write_spec(tmp_path, {"schema_version": 1, "source": {"kind": "trace", "path": str(path)},
                                      "span": {"start_s": 0, "duration_s": None}})
    out = tmp_path / "job.jsonl"
    code, text, _err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", out, "-q",
                           "--batch", "--submission-rps", "4")
    assert code == 0 and "batch job: submitted one after another at 4 requests/s" in text
    stamps = [json.loads(line)["timestamp"] for line in out.read_text().splitlines()]
    assert stamps == [round(1000 * i / 4) for i in range(N)]  # milliseconds
    written = WorkloadSpec.from_file(out.with_name(out.name + ".spec.json"))
    assert written.batch == BatchJob(submission_rps=4.0)
    code, _text, err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "x.jsonl",
                           "--submission-rps", "4")
    assert code != 0 and "--batch" in err
