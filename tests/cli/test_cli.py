"""Tests for servegen_core.cli: the ``servegen`` command, called through ``main(argv)``."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from _cli import error_line, run

DEMO_MODELS = ("language/demo-chat", "multimodal/demo-vl", "reason/demo-r1")


def folder_facts(model_dir: Path) -> dict:
    """Clients, clients without a dataset JSON, span and window count, read from the files directly."""
    traces = sorted(model_dir.glob("chunk-*-trace.csv"))
    ids = [re.fullmatch(r"chunk-(\d+)-trace\.csv", p.name).group(1) for p in traces]
    without = [c for c in ids if not (model_dir / f"chunk-{c}-dataset.json").exists()]
    starts = [int(line.split(",", 1)[0]) for p in traces for line in p.read_text().splitlines() if line.strip()]
    return {
        "clients": len(ids),
        "without": len(without),
        "windows": len(starts),
        "span_days": (max(starts) + 600 - min(starts)) / 86400,
    }


# --------------------------------------------------------------------------- #
# models
# --------------------------------------------------------------------------- #


def test_models_demo_shortcut_table(capsys, demo_dir):
    code, out, err = run(capsys, "models", "demo")
    assert code == 0, err
    root = demo_dir / "servegen"
    for model in DEMO_MODELS:
        facts = folder_facts(root / model)
        row = next(ln for ln in out.splitlines() if ln.startswith(model + " "))
        cells = row.split()
        assert int(cells[1]) == facts["clients"]
        assert int(cells[2]) == facts["without"]
        assert float(cells[3]) == pytest.approx(facts["span_days"])
        assert int(cells[4].replace(",", "")) == facts["windows"]
    # the demo chat model has trace-only clients; the reasoning model's fields include reason_ratio
    assert "reason_ratio" in next(ln for ln in out.splitlines() if ln.startswith("reason/demo-r1"))


def test_models_shared_json_matches_files(capsys, servegen_dir, shared_data):
    # the parent folder of servegen/ is accepted too
    code, out, err = run(capsys, "models", shared_data, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert Path(data["data_dir"]).resolve() == servegen_dir.resolve()
    names = [m["model"] for m in data["models"]]
    assert names == sorted(f"{p.parent.name}/{p.name}" for p in servegen_dir.glob("*/*") if p.is_dir())
    missing = (servegen_dir / "MISSING.txt").read_text().split()
    for m in data["models"]:
        facts = folder_facts(servegen_dir / m["model"])
        assert m["clients"] == facts["clients"]
        assert m["clients_without_lengths"] == facts["without"]
        assert m["clients_without_lengths"] == sum(x.startswith(m["model"] + "/") for x in missing)
        assert m["windows"] == facts["windows"]
        assert m["span_days"] == pytest.approx(facts["span_days"])
        assert "output_tokens" in m["fields"]
    large = next(m for m in data["models"] if m["model"] == "language/m-large")
    assert large["fields"] == ["input_tokens", "output_tokens"]


def test_models_shared_shortcut(capsys, servegen_dir):
    code, out, err = run(capsys, "models", "shared")
    assert code == 0, err
    assert str(servegen_dir.resolve()) in out
    assert "multimodal/mm-image" in out and "reason/deepseek-r1" in out


def test_models_missing_folder(capsys, tmp_path):
    code, out, err = run(capsys, "models", tmp_path / "nowhere")
    assert code == 2
    assert str(tmp_path / "nowhere") in error_line(err)
    assert out == ""


def test_models_empty_folder(capsys, tmp_path):
    code, _, err = run(capsys, "models", tmp_path)
    assert code == 2
    assert "no models" in error_line(err)


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "servegen: error:" in err
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and "invalid choice" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("models", "summary", "generate", "validate", "spec-template"):
        assert command in out


def test_python_dash_m_runs_the_cli(demo_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "servegen_core", "models", str(demo_dir / "servegen")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(m in proc.stdout for m in DEMO_MODELS)


# --------------------------------------------------------------------------- #
# summary
# --------------------------------------------------------------------------- #


def read_pool_windows(model_dir: Path) -> pl.DataFrame:
    """Every trace CSV of a model folder, read directly: client, start_s, rate_rps, cv."""
    frames = []
    for p in sorted(model_dir.glob("chunk-*-trace.csv")):
        client = re.fullmatch(r"chunk-(\d+)-trace\.csv", p.name).group(1)
        f = pl.read_csv(
            p,
            has_header=False,
            schema={"start": pl.Int64, "rate": pl.Float64, "cv": pl.Float64, "pattern": pl.String, "shape": pl.Float64, "scale": pl.Float64},
        )
        frames.append(f.with_columns(pl.lit(client).alias("client")))
    return pl.concat(frames)


def gini_of(x: np.ndarray) -> float:
    """Mean absolute difference over twice the mean."""
    x = np.asarray(x, dtype=float)
    return float(np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean()))


def window_cv_shares(ts: np.ndarray, window_s: float = 600, min_requests: int = 10) -> tuple[float, float]:
    """Share of windows, and of requests, in windows whose inter-arrival CV exceeds 1 (single client)."""
    win = np.floor(ts / window_s)
    cvs, counts = [], []
    for w in np.unique(win):
        t = ts[win == w]
        if t.size < min_requests:
            continue
        g = np.diff(t)
        cvs.append(g.std() / g.mean())
        counts.append(t.size)
    cvs, counts = np.array(cvs), np.array(counts)
    return float((cvs > 1).mean()), float(counts[cvs > 1].sum() / counts.sum())


def check_lengths(stats: dict, values: np.ndarray) -> None:
    assert stats["requests"] == values.size
    assert stats["mean"] == pytest.approx(values.mean())
    for q in (50, 90, 99):
        assert stats[f"p{q}"] == np.quantile(values, q / 100, method="inverted_cdf")
    assert stats["max"] == values.max()


def test_summary_demo_pool_matches_files(capsys, demo_dir):
    code, out, err = run(capsys, "summary", "demo", "--model", "language/demo-chat", "--json")
    assert code == 0, err
    s = json.loads(out)
    w = read_pool_windows(demo_dir / "servegen" / "language" / "demo-chat")
    w = w.with_columns(req=pl.col("rate") * 600)
    per_client = w.group_by("client").agg(pl.col("req").sum())["req"].to_numpy()
    assert s["source"]["kind"] == "servegen" and s["source"]["model"] == "language/demo-chat"
    assert s["requests"] == pytest.approx(w["req"].sum())
    assert s["clients"] == per_client.size == 20
    assert s["span_s"] == 2 * 86400
    assert s["top10_share"] == pytest.approx(np.sort(per_client)[::-1][:10].sum() / per_client.sum())
    assert s["gini"] == pytest.approx(gini_of(per_client))
    agg = w.group_by("start").agg(pl.col("rate").sum()).filter(pl.col("rate") > 0)["rate"]
    assert s["rate"]["peak_rps"] == pytest.approx(agg.max())
    assert s["rate"]["trough_rps"] == pytest.approx(agg.min())
    busy = w.filter(pl.col("req") >= 10)
    bursty = busy.filter(pl.col("cv") > 1)
    assert s["burstiness"]["share_windows_cv_gt1"] == pytest.approx(bursty.height / busy.height)
    assert s["burstiness"]["share_load_cv_gt1"] == pytest.approx(bursty["req"].sum() / busy["req"].sum())
    # two demo clients have no dataset file: their requests carry no lengths
    assert any("2 of 20 clients have no length data" in n for n in s["notes"])
    inp = s["lengths"]["input_tokens"]
    assert inp["p50"] <= inp["p90"] <= inp["p99"] <= inp["max"]
    assert 0 < inp["requests"] < s["requests"]


def test_summary_text_multimodal_and_reasoning(capsys):
    code, out, err = run(capsys, "summary", "demo", "--model", "multimodal/demo-vl")
    assert code == 0, err
    assert out.startswith("multimodal/demo-vl (ServeGen client pool")
    table = out.split("field", 1)[1]
    for field in ("image_tokens", "image_count", "text_tokens", "output_tokens"):
        assert re.search(rf"^{field}\s", table, re.M), field
    # the demo sends 1-5 images with every request, no audio or video
    assert "always 0: audio_tokens, video_tokens" in out
    code, out, err = run(capsys, "summary", "demo", "--model", "multimodal/demo-vl", "--json")
    mm = json.loads(out)["multimodal"]
    assert mm["share_requests_with_images"] == pytest.approx(1.0)
    assert 1 <= mm["mean_images_per_request"] <= 5
    shares = mm["modalities"]
    assert shares["audio"]["token_share"] == shares["video"]["token_share"] == 0
    assert shares["text"]["token_share"] + shares["image"]["token_share"] == pytest.approx(1.0)

    code, out, err = run(capsys, "summary", "demo", "--model", "reason/demo-r1", "--json")
    assert code == 0, err
    s = json.loads(out)
    rr = s["lengths"]["reason_ratio"]
    assert 0 < rr["p50"] < 1 and rr["max"] <= 1
    # demo-r1's reason ratio is a mixture of modes near 0.45-0.62 and 0.9-0.97 (data/demo/README.md)
    r = s["reasoning"]
    assert r["bimodal"] is True
    low, high = r["modes"]
    assert 0.45 <= low["location"] <= 0.62 and 0.9 <= high["location"] <= 0.97
    assert 0.13 <= high["weight"] <= 0.48
    assert 0 < r["reasoning_share"] < 1


def test_summary_model_folder_directly(capsys, demo_dir):
    code, out, err = run(capsys, "summary", demo_dir / "servegen" / "reason" / "demo-r1", "--json")
    assert code == 0, err
    assert json.loads(out)["source"]["model"] == "reason/demo-r1"


def test_summary_shared_pool(capsys, servegen_dir):
    code, out, err = run(capsys, "summary", "shared", "--model", "language/m-large", "--json")
    assert code == 0, err
    s = json.loads(out)
    w = read_pool_windows(servegen_dir / "language" / "m-large").with_columns(req=pl.col("rate") * 600)
    per_client = w.group_by("client").agg(pl.col("req").sum())["req"].to_numpy()
    assert s["clients"] == 162
    assert s["requests"] == pytest.approx(w["req"].sum())
    assert s["span_s"] == 14 * 86400
    assert s["top10_share"] == pytest.approx(np.sort(per_client)[::-1][:10].sum() / per_client.sum())
    assert s["gini"] == pytest.approx(gini_of(per_client))
    agg = w.group_by("start").agg(pl.col("rate").sum()).filter(pl.col("rate") > 0)["rate"]
    assert s["rate"]["peak_rps"] == pytest.approx(agg.max())
    assert s["rate"]["trough_rps"] == pytest.approx(agg.min())
    assert any("15 of 162 clients have no length data" in n for n in s["notes"])


def azure_seconds(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds from the first request, context and generated tokens, parsed with the csv module."""
    from datetime import datetime, timezone

    ts, inp, out = [], [], []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            whole, frac = row["TIMESTAMP"].split(".")
            sec = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
            ts.append(sec + int(frac) / 10 ** len(frac))
            inp.append(int(row["ContextTokens"]))
            out.append(int(row["GeneratedTokens"]))
    t = np.array(ts)
    return t - t.min(), np.array(inp), np.array(out)


def test_summary_azure_trace(capsys, traces_dir):
    path = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    code, out, err = run(capsys, "summary", path, "--json")
    assert code == 0, err
    s = json.loads(out)
    t, inp, outp = azure_seconds(path)
    assert s["source"] == {**s["source"], "kind": "trace", "preset": "azure", "preset_detected": True}
    assert s["requests"] == t.size
    assert s["span_s"] == pytest.approx(t.max() - t.min(), abs=1e-6)
    assert s["clients"] == 1 and s["top10_share"] == 1.0
    assert s["gini"] is None and any(n.startswith("Gini:") for n in s["notes"])
    # 600 s bins over an hour-long trace; the last, cut-short bin is left out
    counts = np.bincount(np.floor(t / 600).astype(int))
    complete = counts[: int(t.max() // 600)]
    assert s["rate"]["resolution_s"] == 600
    assert s["rate"]["peak_rps"] == pytest.approx(complete.max() / 600)
    assert s["rate"]["trough_rps"] == pytest.approx(complete.min() / 600)
    share_w, share_l = window_cv_shares(t)
    assert s["burstiness"]["share_windows_cv_gt1"] == pytest.approx(share_w)
    assert s["burstiness"]["share_load_cv_gt1"] == pytest.approx(share_l)
    check_lengths(s["lengths"]["input_tokens"], inp)
    check_lengths(s["lengths"]["output_tokens"], outp)


def test_summary_mooncake_trace_text(capsys, traces_dir):
    path = traces_dir / "mooncake_synthetic_trace.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    t = np.array([r["timestamp"] for r in rows], dtype=float) / 1000
    code, out, err = run(capsys, "summary", path, "--preset", "mooncake", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["requests"] == len(rows)
    assert s["span_s"] == pytest.approx(t.max() - t.min())
    assert s["source"]["preset_detected"] is False
    # a 17-minute trace has no three 600 s bins: the rate extremes use 60 s bins
    assert s["rate"]["resolution_s"] == 60
    counts = np.bincount(np.floor((t - t.min()) / 60).astype(int))[: int((t.max() - t.min()) // 60)]
    assert s["rate"]["peak_rps"] == pytest.approx(counts.max() / 60)
    check_lengths(s["lengths"]["input_tokens"], np.array([r["input_length"] for r in rows]))
    # the millisecond grid is reported
    assert any("quantized" in n for n in s["notes"])
    code, out, err = run(capsys, "summary", path)
    assert code == 0, err
    assert f"requests{' ' * 5}" in out and f"{len(rows):,}" in out
    assert "preset mooncake, detected" in out
    assert re.search(r"^input_tokens\s", out, re.M) and "note: timestamps are quantized" in out


def test_summary_errors(capsys, tmp_path, traces_dir):
    code, _, err = run(capsys, "summary", "demo")
    assert code == 2 and "choose one with --model" in error_line(err)
    code, _, err = run(capsys, "summary", "demo", "--model", "language/nope")
    assert code == 2 and "language/nope" in error_line(err)
    code, _, err = run(capsys, "summary", traces_dir / "AzureLLMInferenceTrace_conv.csv", "--model", "x/y")
    assert code == 2 and "--model" in error_line(err)
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.00,12.5,3\n")
    code, _, err = run(capsys, "summary", bad)
    line = error_line(err)
    assert code == 2 and str(bad) in line and "line 3" in line and "ContextTokens" in line
    code, _, err = run(capsys, "summary", traces_dir / "AzureLLMInferenceTrace_conv.csv", "--preset", "nope")
    assert code == 2 and "invalid choice" in err


# --------------------------------------------------------------------------- #
# spec-template
# --------------------------------------------------------------------------- #


def test_spec_template_demo_default(capsys, tmp_path):
    from servegen_core.spec import WorkloadSpec

    target = tmp_path / "spec.json"
    code, out, err = run(capsys, "spec-template", "-o", target)
    assert code == 0, err
    spec = WorkloadSpec.from_file(target)
    assert spec.source.data_dir == "demo" and spec.source.model == "language/demo-chat"
    assert (spec.span.start_s, spec.span.duration_s) == (12 * 3600, 3600)
    assert f"generate --spec {target}" in out
    # an existing file is not replaced without --overwrite
    before = target.read_bytes()
    code, _, err = run(capsys, "spec-template", "-o", target, "--model", "reason/demo-r1")
    assert code == 2 and str(target) in error_line(err)
    assert target.read_bytes() == before
    code, _, err = run(capsys, "spec-template", "-o", target, "--model", "reason/demo-r1", "--overwrite", "--seed", "7")
    assert code == 0, err
    spec = WorkloadSpec.from_file(target)
    assert (spec.source.model, spec.seed) == ("reason/demo-r1", 7)


def test_spec_template_shared_and_bounds(capsys, servegen_dir):
    code, out, err = run(capsys, "spec-template", "--data-dir", "shared", "--model", "language/m-large", "--start-s", "86400", "--duration-s", "600", "-o", "-")
    assert code == 0, err
    d = json.loads(out)
    assert d["source"] == {"kind": "servegen", "data_dir": "shared", "model": "language/m-large"}
    assert d["span"] == {"start_s": 86400, "duration_s": 600}
    # a path is written absolute, so the spec works from any folder
    code, out, err = run(capsys, "spec-template", "--data-dir", servegen_dir, "--model", "reason/deepseek-r1", "-o", "-")
    assert code == 0, err
    assert json.loads(out)["source"]["data_dir"] == str(servegen_dir.resolve())
    # deepseek-r1 spans one day: a span past its end is refused
    code, _, err = run(capsys, "spec-template", "--data-dir", "shared", "--model", "reason/deepseek-r1", "--start-s", "86000", "-o", "-")
    assert code == 2 and "outside the data" in error_line(err)


# --------------------------------------------------------------------------- #
# generate
# --------------------------------------------------------------------------- #


def write_spec(folder: Path, data: dict, name: str = "spec.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data, indent=2))
    return path


def demo_spec(**changes) -> dict:
    spec = {
        "schema_version": 1,
        "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
        "span": {"start_s": 36000, "duration_s": 1800},
        "seed": 11,
    }
    spec.update(changes)
    return spec


def python_export(spec_path: Path, out: Path, fmt: str, **kw) -> bytes:
    """The Python API route: read the spec, compose, export_trace; the bytes written."""
    from servegen_core.generate.compose import compose
    from servegen_core.export.writer import export_trace
    from servegen_core.spec import WorkloadSpec

    spec = WorkloadSpec.from_file(spec_path)
    export_trace(compose(spec).trace, out, fmt, spec=spec, note=None, **kw)
    return out.read_bytes()


@pytest.mark.parametrize("fmt", ["mooncake", "csv", "parquet", "vidur"])
def test_generate_matches_python_api_bytes(capsys, tmp_path, fmt):
    from servegen_core.export.formats import FORMATS

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
    if FORMATS[fmt].usage:
        assert "replay: " + FORMATS[fmt].usage.replace("FILE", str(target)).replace("BLOCK_SIZE", "512") in out
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
    # vLLM's own block size (16 tokens per hash id) needs no flag
    assert "--timed-trace-chunk-hash-size" not in out
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


# --------------------------------------------------------------------------- #
# validate
# --------------------------------------------------------------------------- #


def test_validate_composed_demo_passes(capsys, tmp_path):
    from servegen_core.generate.compose import compose
    from servegen_core.spec import WorkloadSpec

    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 36000, "duration_s": 3600}))
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True and report["workload"] is None
    checks = {c["name"]: c for c in report["checks"]}
    assert {"total_requests", "rate_tracking", "client_share", "cv_ratio", "length_ks"} <= set(checks)
    n = compose(WorkloadSpec.from_file(spec_path)).trace.height
    assert f"{n:,} requests generated" in checks["total_requests"]["detail"]
    # the text form: one row per check, all "ok", and the count line
    code, out, err = run(capsys, "validate", "--spec", spec_path)
    assert code == 0, err
    for name in checks:
        assert re.search(rf"^{name}\s+\S+\s+.*\sok\s", out, re.M), name
    assert f"{len(checks)} of {len(checks)} checks passed" in out


def test_validate_exported_file_and_a_broken_one(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 36000, "duration_s": 3600}))
    target = tmp_path / "w.csv"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "csv", "-o", target)[0] == 0
    code, out, err = run(capsys, "validate", "--spec", tmp_path / "w.csv.spec.json", "--workload", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    rows = pl.read_csv(target, schema_overrides={"client_id": pl.String})
    total = next(c for c in report["checks"] if c["name"] == "total_requests")
    assert f"{rows.height:,} requests generated" in total["detail"]

    # every other request removed: the total and the rate tracking fail, exit code 1
    half = tmp_path / "half.csv"
    rows.gather_every(2).write_csv(half)
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", half)
    assert code == 1, err
    # about half the requests (the counts are random around their targets, so not exactly half)
    m = re.search(r"^total_requests\s+(0\.\d+)\s.*\sFAIL\s", out, re.M)
    assert m and abs(float(m.group(1)) - 0.5) < 0.02, out
    assert re.search(r"failed: total_requests, rate_tracking\b", out)


def test_validate_benchmark_format_without_client_ids(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.jsonl"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "mooncake", "-o", target)[0] == 0
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", target)
    assert code == 1, err
    assert "carries no client ids of the spec" in out
    assert re.search(r"^client_share\s.*\sFAIL\s", out, re.M)


def test_validate_parquet_parts_folder(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec())
    target = tmp_path / "w.parquet"
    assert run(capsys, "generate", "--spec", spec_path, "-f", "parquet", "-o", target, "--chunk-s", "600")[0] == 0
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--workload", target, "--json")
    assert code == 0, err
    assert json.loads(out)["passed"] is True


def test_validate_shared_m_large(capsys, tmp_path, servegen_dir):
    spec_path = write_spec(
        tmp_path,
        {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
            "span": {"start_s": 50400, "duration_s": 600},
            "seed": 3,
        },
    )
    code, out, err = run(capsys, "validate", "--spec", spec_path, "--json")
    report = json.loads(out)
    assert code == (0 if report["passed"] else 1), err
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["total_requests"]["passed"] and checks["client_share"]["passed"]
    assert checks["cv_ratio"]["n"] > 0 and checks["length_ks"]["n"] > 0
    # m-large's clients without a dataset file borrow the other clients' lengths, and it is said so
    assert any("without length data" in n and "borrow lengths" in n for n in report["notes"])


def test_validate_errors(capsys, tmp_path):
    spec_path = write_spec(tmp_path, demo_spec(span={"start_s": 0, "duration_s": -1}))
    code, _, err = run(capsys, "validate", "--spec", spec_path)
    assert code == 2 and "spec key 'span.duration_s'" in error_line(err)
    good = write_spec(tmp_path, demo_spec(), name="good.json")
    code, _, err = run(capsys, "validate", "--spec", good, "--workload", tmp_path / "absent.csv")
    assert code == 2 and "absent.csv" in error_line(err)


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


def test_progress_bar_redraws_on_a_terminal_and_steps_in_a_log():
    import io

    from servegen_core.cli.output import ProgressBar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressBar(4, stream=tty, label="generating", width=8)
    for i in range(1, 5):
        bar.update(i, f"{i * 10} requests")
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "\rgenerating [##------]  25.0% 1/4 10 requests" in text
    assert "\rgenerating [########] 100.0% 4/4 40 requests\n" in text

    log = io.StringIO()
    bar = ProgressBar(100, stream=log, label="g", width=10)
    for i in range(1, 101):
        bar.update(i)
    bar.close()
    lines = log.getvalue().splitlines()
    # one line per tenth of the work (the first update opens the 0-10 % step), no carriage returns
    assert len(lines) == 11 and "\r" not in log.getvalue()
    assert lines[-1] == "g [##########] 100.0% 100/100"


def test_spec_template_fits_a_prefix_section_and_generate_uses_it(capsys, tmp_path, traces_dir):
    """spec-template --fit-prefix writes the section fit_prefix gives for the trace; generate
    composes it into a mooncake file whose records share blocks (the trace's reuse), as the
    Python route does; a trace without hash_ids is refused with exit 2."""
    from servegen_core.generate.sessions import fit_prefix
    from servegen_core.spec import WorkloadSpec
    from servegen_core.sources.traces import load_trace

    trace = traces_dir / "mooncake_synthetic_trace.jsonl"
    spec_path = tmp_path / "spec.json"
    code, out, err = run(capsys, "spec-template", "--trace", trace, "--fit-prefix", "-o", spec_path)
    assert code == 0, err
    assert "prefix section (fitted from hash_ids)" in out
    spec = WorkloadSpec.from_file(spec_path)
    assert spec.prefix == fit_prefix(load_trace(trace).trace, block_size=512)
    target = tmp_path / "w.jsonl"
    code, out, err = run(capsys, "generate", "--spec", spec_path, "--format", "mooncake", "-o", target)
    assert code == 0, err
    assert target.read_bytes() == python_export(spec_path, tmp_path / "api.jsonl", "mooncake")
    recs = [json.loads(line) for line in target.read_text().splitlines()]
    seen: set[int] = set()
    reused = total = 0
    for r in recs:
        total += len(r["hash_ids"])
        reused += sum(1 for h in r["hash_ids"] if h in seen)
        seen.update(r["hash_ids"])
    assert reused / total > 0.5
    azure = traces_dir / "AzureLLMInferenceTrace_conv.csv"
    code, _, err = run(capsys, "spec-template", "--trace", azure, "--fit-prefix", "-o", tmp_path / "a.json")
    assert code == 2 and "hash_ids" in err
