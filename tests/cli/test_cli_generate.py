"""Tests for ``servegen generate`` (servegen_core.cli.generate): bytes equal to the Python API, messages, failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from _cli import check_lengths, demo_spec, error_line, python_export, run, write_spec


@pytest.mark.parametrize("fmt", ["mooncake", "csv", "parquet", "vidur"])
def test_generate_matches_python_api_bytes(capsys, tmp_path, fmt):
    from servegen_core.export.formats import FORMATS, replay_commands

    spec_path = write_spec(tmp_path, demo_spec())
    ext = FORMATS[fmt].extension
    api = python_export(spec_path, tmp_path / f"api{ext}", fmt)
    target = tmp_path / f"cli{ext}"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "--format", fmt, "-o", target)
    assert code == 0, err
    assert target.is_file() and target.read_bytes() == api
    sidecar = tmp_path / f"cli{ext}.spec.json"
    assert sidecar.read_bytes() == (tmp_path / f"api{ext}.spec.json").read_bytes()
    n = pl.read_parquet(target).height if fmt == "parquet" else None
    if n is not None:
        assert f"wrote {n:,} requests to {target}" in out
    rows = int(re.search(r"wrote ([\d,]+) requests", out).group(1).replace(",", ""))
    most = None
    if fmt == "vidur":
        most = int(pl.read_csv(target).select(pl.max_horizontal(pl.col("PromptTokenCount") + pl.col("CompletionTokenCount")).max()).item())
    for command in replay_commands(fmt, target, rows=rows, max_request_tokens=most):
        assert f"replay ({command.consumer} {command.version}): {command.text}\n" in out
    assert ("replay (" in out) == bool(FORMATS[fmt].usage)
    # a second run gives the same bytes
    again = tmp_path / f"again{ext}"
    assert run(capsys, "generate", "--spec", spec_path, "--format", fmt, "-o", again)[0] == 0
    assert again.read_bytes() == api


def test_generate_streamed_over_several_hours_matches_python_api(capsys, tmp_path):
    """Without --chunk-s a 3 h span is streamed in three 1 h chunks and still equals the whole export."""
    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 30000, "duration_s": 3 * 3600}))
    api = python_export(spec_path, tmp_path / "api.csv", "csv")
    target = tmp_path / "cli.csv"
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target)
    assert code == 0, err
    assert "100.0% 3/3" in err
    assert target.read_bytes() == api


def test_generate_shared_m_large_matches_python_api(capsys, tmp_path, servegen_dir):
    spec_path = write_spec(
        tmp_path,
        {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
            "span": {"start_s": 50400, "duration_s": 600},
            "seed": 3,
        },
    )
    api = python_export(spec_path, tmp_path / "api.jsonl", "vllm")
    target = tmp_path / "cli.jsonl"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "vllm", "-o", target)
    assert code == 0, err
    data = target.read_bytes()
    assert data == api
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert f"wrote {len(rows):,} requests" in out
    # 14:00 on m-large carries hundreds of requests per second
    assert len(rows) > 600 * 50
    assert all(0 <= r["timestamp"] < 600 for r in rows)
    # the command names the block size, vLLM's own 16 tokens per hash id included, and every row
    assert "--timed-trace-chunk-hash-size 16" in out and f"--num-prompts {len(rows)} " in out
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // 16) for r in rows)
    # the warning about clients without lengths goes to stderr, not stdout; stdout's clients line
    # counts the clients that borrow lengths (the default for clients without length data)
    assert "without length data" in err and "without length data" not in out
    assert "borrow lengths" in err
    line = next(ln for ln in out.splitlines() if ln.startswith("clients: "))
    assert "borrowing the other clients' lengths" in line


def hour_exclusions(model_dir: Path, start: int, end: int, length_window: int = 21600) -> dict[str, int]:
    """Clients idle in [start, end) and active clients without length data there, read from the files directly."""
    idle = no_lengths = active = 0
    for trace in sorted(model_dir.glob("chunk-*-trace.csv")):
        cid = re.fullmatch(r"chunk-(\d+)-trace\.csv", trace.name).group(1)
        rows = [line.split(",") for line in trace.read_text().splitlines() if line.strip()]
        if not any(start <= int(r[0]) < end and float(r[1]) > 0 for r in rows):
            idle += 1
            continue
        dataset = model_dir / f"chunk-{cid}-dataset.json"
        windows = json.loads(dataset.read_text()) if dataset.exists() else {}
        lw = str(start // length_window * length_window)
        pdfs = windows.get(lw, {})
        if not pdfs or any(text.strip() in ("", "{}") for text in pdfs.values()):
            no_lengths += 1
        else:
            active += 1
    return {"idle": idle, "no_lengths": no_lengths, "composed": active}


def test_generate_says_why_clients_are_excluded(capsys, tmp_path, servegen_dir):
    # m-large 20:00-21:00: most excluded clients simply send nothing in that hour
    spec_path = write_spec(
        tmp_path,
        {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
            "span": {"start_s": 72000, "duration_s": 3600},
            "rate": {"kind": "constant", "rps": 5.0},
            "missing_lengths": "exclude",
        },
    )
    facts = hour_exclusions(servegen_dir / "language" / "m-large", 72000, 75600)
    assert facts["idle"] > facts["no_lengths"] > 0
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 0, err
    n_excluded = facts["idle"] + facts["no_lengths"]
    line = next(ln for ln in out.splitlines() if ln.startswith("clients: "))
    assert line.startswith(
        f"clients: {facts['composed']} composed, {n_excluded} excluded ({facts['idle']} idle in the span, "
        f"{facts['no_lengths']} with no length data); span 72,000 s + 3,600 s of language/m-large; seed 0"
    ), line
    assert "not selected" not in line and "weight 0" not in line


def test_generate_counts_weight_zero_and_unselected_clients(capsys, tmp_path, demo_dir):
    from servegen_core.sources.pool import load_pool
    from servegen_core.characterize.summary import client_summary, filter_clients

    pool = load_pool(demo_dir / "servegen", "language/demo-chat")
    top = filter_clients(client_summary(pool.span(36000, 37800)), top_k=6)
    with_lengths = [c for c in top if c not in pool.clients_without_lengths]
    lacking = [c for c in top if c in pool.clients_without_lengths]
    # two weighted clients, one named with weight 0, the rest of the top 6 not named (weight 0 too)
    weights = {with_lengths[0]: 2.0, with_lengths[1]: 1.0, with_lengths[2]: 0.0}
    spec_path = write_spec(
        tmp_path,
        demo_spec(clients={"mode": "top_k", "k": 6, "by": "request_share"}, weights={"mode": "explicit", "values": weights}),
    )
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("clients: "))
    n_zero = 6 - 2
    assert line.startswith(f"clients: 2 composed, {n_zero} excluded ({n_zero} with weight 0), {20 - 6} not selected; "), (line, lacking)
    written = pl.read_csv(tmp_path / "w.csv", schema_overrides={"client_id": pl.String})
    assert set(written["client_id"].unique()) == set(with_lengths[:2])


def test_generate_seed_override_and_naive(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    seeded = write_spec(tmp_path, demo_spec(seed=5), name="seeded.json")
    api = python_export(seeded, tmp_path / "api.csv", "csv")
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "cli.csv", "--seed", "5")
    assert code == 0, err
    assert (tmp_path / "cli.csv").read_bytes() == api
    assert json.loads((tmp_path / "cli.csv.spec.json").read_text())["seed"] == 5
    default = tmp_path / "default.csv"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", default)[0] == 0
    assert default.read_bytes() != api

    from servegen_core.generate.compose import compose, naive_spec
    from servegen_core.spec import WorkloadSpec

    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "naive.csv", "--naive", "constant")
    assert code == 0, err
    side = WorkloadSpec.from_file(tmp_path / "naive.csv.spec.json")
    assert (side.arrivals, side.lengths, side.rate.kind) == ("poisson", "client", "constant")
    expected = naive_spec(WorkloadSpec.from_file(spec_path), "constant")
    assert side.to_dict() == expected.to_dict()
    trace = pl.read_csv(tmp_path / "naive.csv", schema_overrides={"client_id": pl.String})
    assert_frame_equal(trace, compose(expected).trace)


def test_generate_chunked_progress_bar(capsys, tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.spec import WorkloadSpec

    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 36000, "duration_s": 3600}))
    target = tmp_path / "w.jsonl"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "jsonl", "-o", target, "--chunk-s", "600")
    assert code == 0, err
    bars = [ln for ln in err.splitlines() if ln.startswith("generating [")]
    assert bars and bars[-1].startswith("generating [" + "#" * 30 + "] 100.0% 6/6")
    trace = pl.read_ndjson(target, schema=compose(WorkloadSpec.from_file(spec_path)).trace.schema)
    assert f"{trace.height:,} requests" in bars[-1]
    assert_frame_equal(trace, compose(WorkloadSpec.from_file(spec_path)).trace)
    # -q: no bar
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "jsonl", "-o", target, "--overwrite", "-q", "--chunk-s", "600")
    assert code == 0 and "generating" not in err


def test_generate_parquet_chunked_is_a_folder_of_parts(capsys, tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.spec import WorkloadSpec

    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.parquet"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "parquet", "-o", target, "--chunk-s", "600")
    assert code == 0, err
    assert target.is_dir() and "parquet folder" in out
    parts = sorted(target.glob("part-*.parquet"))
    assert len(parts) == 3
    got = pl.concat([pl.read_parquet(p) for p in parts])
    assert_frame_equal(got, compose(WorkloadSpec.from_file(spec_path)).trace)


BAD_SPECS = [
    ("unknown top-level key", {"colour": "blue"}, "colour"),
    ("unknown nested key", {"rate": {"kind": "constant", "rps": 5, "burst": 2}}, "rate.burst"),
    ("seed of the wrong type", {"seed": "seven"}, "seed"),
    ("span start of the wrong type", {"span": {"start_s": "0", "duration_s": 60}}, "span.start_s"),
    ("negative duration", {"span": {"start_s": 0, "duration_s": -600}}, "span.duration_s"),
    ("negative rate", {"rate": {"kind": "constant", "rps": -2.0}}, "rate.rps"),
    ("negative ramp rate", {"rate": {"kind": "ramp", "start_rps": -1, "end_rps": 4}}, "rate.start_rps"),
    ("weights summing to 0", {"weights": {"mode": "explicit", "values": {"0": 0, "1": 0.0}}}, "weights.values"),
    ("unknown client id", {"clients": {"mode": "ids", "ids": ["0", "4242"]}}, "clients.ids[1]"),
    ("unknown weighted client", {"weights": {"mode": "explicit", "values": {"4242": 1}}}, "weights.values.4242"),
    ("span start outside the data", {"span": {"start_s": 5 * 86400, "duration_s": 600}}, "span.start_s"),
    ("span end outside the data", {"span": {"start_s": 86400, "duration_s": 2 * 86400}}, "span.duration_s"),
    ("unknown model", {"source": {"kind": "servegen", "data_dir": "demo", "model": "language/none"}}, "source.model"),
    ("missing span", {"span": None}, "span"),
]


@pytest.mark.parametrize(("case", "change", "key"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_generate_bad_spec_names_key_and_leaves_nothing(capsys, tmp_path, case, change, key):
    data = demo_spec(**change)
    if data["span"] is None:
        del data["span"]
    spec_path = write_spec(tmp_path, data)
    before = set(tmp_path.iterdir())
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2, case
    assert f"spec key '{key}'" in error_line(err)
    assert set(tmp_path.iterdir()) == before  # no output, no sidecar, no temporary


def test_generate_spec_not_json(capsys, tmp_path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text('{"schema_version": 1,,}')
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "w.csv")
    line = error_line(err)
    assert code == 2 and "line 1" in line and str(spec_path) in line
    code, _, err = run(capsys, "generate", "--spec", tmp_path / "absent.json", "-f", "csv", "-o", tmp_path / "w.csv")
    assert code == 2 and "absent.json" in error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_generate_unknown_format(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    code, _, err = run(capsys, "generate", "--spec", spec_path, "--format", "sharegpt", "-o", tmp_path / "w.json")
    assert code == 2
    assert "--format" in err and "sharegpt" in err and "mooncake" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_generate_existing_output_needs_overwrite(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.csv"
    target.write_text("keep me\n")
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target)
    assert code == 2 and str(target) in error_line(err) and "overwrite" in error_line(err)
    assert target.read_text() == "keep me\n"
    assert not (tmp_path / "w.csv.spec.json").exists()
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target, "--overwrite")
    assert code == 0, err
    assert target.read_text().startswith("timestamp_s,client_id,input_tokens,output_tokens")
    # a missing folder is a clear error too
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", tmp_path / "no" / "w.csv")
    assert code == 2 and "does not exist" in error_line(err)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, "data"])
def test_generate_failure_midway_leaves_nothing(capsys, tmp_path, monkeypatch, failure):
    """A run that fails after the first chunk is written leaves no partial output behind."""
    from servegen_core.generate import compose as compose_mod
    from servegen_core.errors import DataFormatError

    real = compose_mod.ComposePlan.iter_chunks

    def failing(self, chunk_s=600.0, **kw):
        it = real(self, chunk_s, **kw)
        yield next(it)
        if failure == "data":
            raise DataFormatError("source.csv", "window 600", "broken")
        raise KeyboardInterrupt

    monkeypatch.setattr(compose_mod.ComposePlan, "iter_chunks", failing)
    spec_path = write_spec(tmp_path, demo_spec())
    code, _, err = run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", tmp_path / "w.jsonl", "--chunk-s", "600")
    if failure == "data":
        assert code == 2 and "window 600: broken" in error_line(err)
    else:
        assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_generate_from_shared_trace_source_then_summary(capsys, tmp_path, traces_dir):
    """A spec whose source is the shared Azure trace (fitted to a pool); its export reads back in summary."""
    spec_path = write_spec(
        tmp_path,
        {
            "schema_version": 1,
            "source": {"kind": "trace", "path": str(traces_dir / "AzureLLMInferenceTrace_conv.csv")},
            "span": {"start_s": 0, "duration_s": 1800},
            "seed": 2,
        },
    )
    api = python_export(spec_path, tmp_path / "api.csv", "csv")
    target = tmp_path / "cli.csv"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target)
    assert code == 0, err
    assert target.read_bytes() == api
    rows = pl.read_csv(target, schema_overrides={"client_id": pl.String})
    assert rows["timestamp_s"].max() < 1800
    # the Azure hour carries about 5.5 requests per second
    assert 0.8 * 5.5 * 1800 < rows.height < 1.2 * 5.5 * 1800
    code, out, err = run(capsys, "summary", target, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["source"]["preset"] == "servegen" and s["requests"] == rows.height
    check_lengths(s["lengths"]["output_tokens"], rows["output_tokens"].to_numpy())
