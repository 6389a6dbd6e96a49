"""Tests for ``servegen summary`` (servegen_core.cli.summary): headline numbers checked against the files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from _cli import check_lengths, error_line, run


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
