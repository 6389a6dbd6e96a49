"""Tests of servegen_core.sources.demo and of the committed synthetic demo data in data/demo.

The format checks read the files with csv/json and strict regular expressions written here,
independently of the project's loader, and the same expressions are first run on the real
ServeGen files, so "matches the format" means "matches what the real data look like".
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from servegen_core.sources import demo
from servegen_core.schema import validate_trace

MODELS = {  # category/model: (clients, days)
    "language/demo-chat": (20, 2),
    "multimodal/demo-vl": (10, 1),
    "reason/demo-r1": (10, 1),
}
REAL_DATASET_FILES = {  # one real dataset file per category, for field names and format
    "language": "language/m-small/chunk-23-dataset.json",
    "multimodal": "multimodal/mm-image/chunk-0-dataset.json",
    "reason": "reason/deepseek-r1/chunk-0-dataset.json",
}
WINDOW_S = 600
LENGTH_WINDOW_S = 21600

# A non-negative number as Python's repr writes a float, or an integer.
NUM = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[-+][0-9]+)?"
INT = r"(?:0|[1-9][0-9]*)"
IDLE_ROW = re.compile(rf"({INT}),0,0,,0,0")
ACTIVE_ROW = re.compile(rf"({INT}),({NUM}),({NUM}),(Gamma|Weibull),({NUM}),({NUM})")


def _literal_re(key: str) -> re.Pattern[str]:
    pair = rf"{key}: {NUM}"
    return re.compile(rf"\{{(?:{pair}(?:, {pair})*)?\}}")


TOKEN_LITERAL = _literal_re(INT)
RATIO_LITERAL = _literal_re(NUM)
PAIR = re.compile(rf"({NUM}): ({NUM})")


def parse_literal(text: str, field: str) -> tuple[list[str], list[float]]:
    """Strictly parse a ``{bin: prob}`` literal into (bin strings, probabilities)."""
    pattern = RATIO_LITERAL if field == "reason_ratio" else TOKEN_LITERAL
    assert pattern.fullmatch(text), f"{field}: not a strict dict literal: {text[:80]!r}"
    pairs = PAIR.findall(text)
    return [k for k, _ in pairs], [float(p) for _, p in pairs]


def read_trace(path: Path) -> list[list[str]]:
    """Rows of a ServeGen trace CSV, each checked against the strict row patterns."""
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n"), f"{path}: rows must end with CRLF like the real files"
    text = raw.decode("ascii")
    lines = text[:-2].split("\r\n")
    for i, line in enumerate(lines):
        assert IDLE_ROW.fullmatch(line) or ACTIVE_ROW.fullmatch(line), f"{path} row {i}: {line!r}"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(r) == 6 for r in rows), f"{path}: every row has 6 columns"
    assert len(rows) == len(lines)
    return rows


def client_files(model_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    traces, datasets = {}, {}
    for p in model_dir.iterdir():
        m = re.fullmatch(r"chunk-(\d+)-(trace\.csv|dataset\.json)", p.name)
        assert m, f"unexpected file {p}"
        (traces if m.group(2) == "trace.csv" else datasets)[m.group(1)] = p
    return traces, datasets


def relative_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_servegen(demo_dir: Path) -> Path:
    return demo_dir / "servegen"


@pytest.fixture(scope="module")
def traces_by_model(demo_servegen: Path) -> dict[str, dict[str, list[list[str]]]]:
    out = {}
    for model in MODELS:
        traces, _ = client_files(demo_servegen / model)
        out[model] = {cid: read_trace(p) for cid, p in traces.items()}
    return out


@pytest.fixture(scope="module")
def datasets_by_model(demo_servegen: Path) -> dict[str, dict[str, tuple[str, dict]]]:
    out = {}
    for model in MODELS:
        _, datasets = client_files(demo_servegen / model)
        out[model] = {}
        for cid, p in datasets.items():
            text = p.read_text(encoding="utf-8")
            out[model][cid] = (text, json.loads(text))
    return out


# --- determinism, size, labels ------------------------------------------------------------


def test_rebuild_is_byte_identical_and_equals_committed(tmp_path: Path, demo_dir: Path) -> None:
    written_a = demo.build_demo(tmp_path / "a")
    written_b = demo.build_demo(tmp_path / "b", seed=demo.DEFAULT_SEED)
    files_a = relative_files(tmp_path / "a")
    files_b = relative_files(tmp_path / "b")
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in written_a) == list(files_a)
    assert len(written_b) == len(written_a)
    assert files_a == files_b
    committed = relative_files(demo_dir)
    assert list(committed) == list(files_a), "data/demo holds exactly the files build_demo writes"
    differing = [name for name in files_a if committed[name] != files_a[name]]
    assert not differing, f"committed data/demo differs from a rebuild: {differing[:5]}"


def test_main_other_seed_gives_other_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--out", str(tmp_path / "s7"), "--seed", "7"]) == 0
    assert "synthetic demo data" in capsys.readouterr().out
    assert demo.main(["--out", str(tmp_path / "s2025")]) == 0
    seven, default = relative_files(tmp_path / "s7"), relative_files(tmp_path / "s2025")
    shared_names = set(seven) & set(default)
    assert "traces/demo_requests.csv" in shared_names
    assert seven["traces/demo_requests.csv"] != default["traces/demo_requests.csv"]
    changed = [n for n in shared_names if n.endswith("-trace.csv") and seven[n] != default[n]]
    assert len(changed) >= 30


def test_rebuild_removes_stale_chunk_files(tmp_path: Path) -> None:
    stale = tmp_path / "servegen" / "language" / "demo-chat" / "chunk-99-trace.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("0,0,0,,0,0\r\n")
    keep = tmp_path / "notes.txt"
    keep.write_text("user file")
    demo.build_demo(tmp_path)
    assert not stale.exists()
    assert keep.read_text() == "user file"
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


def test_demo_is_small(demo_dir: Path) -> None:
    total = sum(p.stat().st_size for p in demo_dir.rglob("*") if p.is_file())
    assert 0 < total < 5 * 1024 * 1024


def test_labelled_synthetic(demo_dir: Path, demo_servegen: Path) -> None:
    assert demo.DEMO_LABEL == "synthetic demo data"
    models = sorted(f"{c.name}/{m.name}" for c in demo_servegen.iterdir() for m in c.iterdir())
    assert models == sorted(MODELS)
    assert all(m.split("/")[1].startswith("demo-") for m in models)
    readme = (demo_dir / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme
    assert "python -m servegen_core.demo" in readme
    assert f"default_rng({demo.DEFAULT_SEED})" in readme
    for model in MODELS:
        assert model in readme
    assert "| model | clients | days |" in readme  # the parameter table


# --- trace CSV format and content -----------------------------------------------------------


def test_row_patterns_accept_the_real_files(servegen_dir: Path) -> None:
    real = [
        *sorted((servegen_dir / "language" / "m-small").glob("chunk-*-trace.csv"))[:5],
        servegen_dir / "multimodal" / "mm-image" / "chunk-0-trace.csv",
        servegen_dir / "reason" / "deepseek-r1" / "chunk-0-trace.csv",
    ]
    kinds = set()
    for path in real:
        for row in read_trace(path):
            kinds.add(row[3])
    assert kinds == {"", "Gamma", "Weibull"}


def test_client_files_and_counts(demo_servegen: Path) -> None:
    for model, (n_clients, _) in MODELS.items():
        traces, datasets = client_files(demo_servegen / model)
        assert sorted(traces, key=int) == [str(i) for i in range(n_clients)]
        assert set(datasets) <= set(traces), "every dataset JSON has its trace CSV"
        missing = set(traces) - set(datasets)
        if model.startswith("language/"):
            assert 1 <= len(missing) <= 2, "one or two language clients have no dataset JSON"
        else:
            assert not missing


def test_windows_on_the_600s_grid(traces_by_model: dict) -> None:
    for model, (_, days) in MODELS.items():
        for cid, rows in traces_by_model[model].items():
            starts = [int(r[0]) for r in rows]
            assert starts == list(range(0, days * 86400, WINDOW_S)), f"{model} client {cid}"


def test_idle_and_active_windows(traces_by_model: dict) -> None:
    for model in MODELS:
        n_idle = n_active = 0
        for cid, rows in traces_by_model[model].items():
            for r in rows:
                rate, cv, shape, scale = (float(x) for x in (r[1], r[2], r[4], r[5]))
                if r[3] == "":
                    assert (r[1], r[2], r[4], r[5]) == ("0", "0", "0", "0"), f"{model} {cid} {r}"
                    n_idle += 1
                else:
                    assert rate > 0 and cv > 0 and shape > 0 and scale > 0, f"{model} {cid} {r}"
                    n_active += 1
        assert n_idle > 0 and n_active > n_idle, model


def test_shape_and_scale_consistent_with_rate_and_cv(traces_by_model: dict) -> None:
    for model in MODELS:
        seen = set()
        for cid, rows in traces_by_model[model].items():
            for r in rows:
                if not r[3]:
                    continue
                rate, cv, shape, scale = (float(x) for x in (r[1], r[2], r[4], r[5]))
                mean_iat = 1 / rate
                where = f"{model} client {cid} window {r[0]}"
                if r[3] == "Gamma":
                    assert math.isclose(shape, 1 / cv**2, rel_tol=1e-9), where
                    assert math.isclose(shape * scale, mean_iat, rel_tol=1e-9), where
                else:
                    log_ratio = math.lgamma(1 + 2 / shape) - 2 * math.lgamma(1 + 1 / shape)
                    assert math.isclose(math.sqrt(math.expm1(log_ratio)), cv, rel_tol=1e-9), where
                    assert math.isclose(scale * math.gamma(1 + 1 / shape), mean_iat, rel_tol=1e-9), where
                seen.add(r[3])
        assert seen == {"Gamma", "Weibull"}, model


def test_most_active_windows_are_bursty(traces_by_model: dict) -> None:
    for model in MODELS:
        cvs = np.array([float(r[2]) for rows in traces_by_model[model].values() for r in rows if r[3]])
        assert np.mean(cvs > 1) > 0.6, model
        assert np.mean(cvs < 1) > 0.02, f"{model}: some near-Poisson windows too"


def _rates(rows_by_client: dict[str, list[list[str]]]) -> dict[str, np.ndarray]:
    return {cid: np.array([float(r[1]) for r in rows]) for cid, rows in rows_by_client.items()}


def test_diurnal_rate_peaks_in_the_afternoon(traces_by_model: dict) -> None:
    for model, (_, days) in MODELS.items():
        total = sum(_rates(traces_by_model[model]).values())
        hour = (np.arange(total.size) * WINDOW_S % 86400) / 3600
        blocks = [total[(hour >= h) & (hour < h + 6)].mean() for h in (0, 6, 12, 18)]
        assert int(np.argmax(blocks)) == 2, f"{model}: 12-18 h is the busiest block, got {blocks}"
        assert int(np.argmin(blocks)) == 0, f"{model}: 0-6 h is the quietest block, got {blocks}"
        assert blocks[2] > 1.5 * blocks[0]


def test_a_few_clients_dominate(traces_by_model: dict) -> None:
    for model in MODELS:
        volume = np.sort([r.sum() for r in _rates(traces_by_model[model]).values()])[::-1]
        shares = volume / volume.sum()
        assert shares[:3].sum() > 0.5, model
        assert shares[-1] < 0.02, model


# --- dataset JSON format and content ----------------------------------------------------------


def test_dataset_fields_and_layout_match_the_real_files(servegen_dir: Path, datasets_by_model: dict) -> None:
    for model in MODELS:
        category = model.split("/")[0]
        real_text = (servegen_dir / REAL_DATASET_FILES[category]).read_text(encoding="utf-8")
        real = json.loads(real_text)
        assert real_text == json.dumps(real, indent=2), "the real files are indent-2 JSON"
        real_fields = list(next(iter(real.values())))
        for field, text in next(iter(real.values())).items():
            parse_literal(text, field)  # the literal grammar accepts the real data
        for cid, (text, data) in datasets_by_model[model].items():
            assert text == json.dumps(data, indent=2), f"{model} client {cid}: same JSON layout as the real files"
            for window in data.values():
                assert list(window) == real_fields, f"{model} client {cid}"


def test_dataset_windows_and_probabilities(datasets_by_model: dict) -> None:
    for model, (_, days) in MODELS.items():
        for cid, (_, data) in datasets_by_model[model].items():
            assert list(data) == [str(s) for s in range(0, days * 86400, LENGTH_WINDOW_S)], f"{model} {cid}"
            for start, window in data.items():
                empty = [f for f, text in window.items() if text == "{}"]
                assert empty in ([], list(window)), f"{model} {cid} {start}: all fields empty or none"
                if empty:
                    continue
                for field, text in window.items():
                    where = f"{model} client {cid} window {start} field {field}"
                    keys, probs = parse_literal(text, field)
                    values = [float(k) for k in keys]
                    assert values == sorted(set(values)), f"{where}: bins ascending and unique"
                    assert all(0 <= p <= 1 for p in probs), where
                    assert abs(math.fsum(probs) - 1) <= 1e-9, where
                    if field != "reason_ratio":
                        assert all(re.fullmatch(INT, k) for k in keys), f"{where}: integer bins"
                        assert len(keys) <= 300, f"{where}: coarse bins keep the files small"


def test_empty_length_windows_are_the_idle_ones(traces_by_model: dict, datasets_by_model: dict) -> None:
    per = LENGTH_WINDOW_S // WINDOW_S
    for model in MODELS:
        n_empty = 0
        for cid, (_, data) in datasets_by_model[model].items():
            idle = np.array([r[3] == "" for r in traces_by_model[model][cid]]).reshape(-1, per).all(axis=1)
            empty = np.array([all(t == "{}" for t in w.values()) for w in data.values()])
            assert (idle == empty).all(), f"{model} client {cid}"
            n_empty += int(empty.sum())
        assert n_empty > 0, f"{model}: some clients are part-time"


def test_length_distributions_vary_between_windows(datasets_by_model: dict) -> None:
    for model in MODELS:
        field = "text_tokens" if model.startswith("multimodal/") else "input_tokens"
        drifting = 0
        for _, data in datasets_by_model[model].values():
            means = []
            for window in data.values():
                if window[field] != "{}":
                    keys, probs = parse_literal(window[field], field)
                    means.append(float(np.dot(np.array(keys, dtype=float), probs)))
            if len(means) >= 2 and max(means) > 1.05 * min(means):
                drifting += 1
        assert drifting >= len(datasets_by_model[model]) // 2, model


def test_language_lengths(datasets_by_model: dict) -> None:
    inputs = outputs = 0
    for _, data in datasets_by_model["language/demo-chat"].values():
        for window in data.values():
            if window["input_tokens"] == "{}":
                continue
            k_in, p_in = parse_literal(window["input_tokens"], "input_tokens")
            k_out, p_out = parse_literal(window["output_tokens"], "output_tokens")
            x_in, x_out = np.array(k_in, dtype=float), np.array(k_out, dtype=float)
            mean_in = np.dot(x_in, p_in)
            # heavy-tailed inputs: the top 1 % of requests reach far beyond the mean
            cdf = np.cumsum(p_in)
            assert x_in[np.searchsorted(cdf, 0.99)] > 3 * mean_in
            # near-exponential outputs: CV close to 1
            mean_out = np.dot(x_out, p_out)
            cv_out = math.sqrt(max(np.dot(x_out**2, p_out) - mean_out**2, 0)) / mean_out
            assert 0.7 < cv_out < 1.4
            inputs += len(k_in)
            outputs += len(k_out)
    assert inputs > 0 and outputs > 0


def test_reason_ratio_bins_mirror_the_real_data(servegen_dir: Path, datasets_by_model: dict) -> None:
    real = json.loads((servegen_dir / REAL_DATASET_FILES["reason"]).read_text(encoding="utf-8"))
    real_keys, _ = parse_literal(real["0"]["reason_ratio"], "reason_ratio")
    assert len(real_keys) == 501
    pooled = np.zeros(501)
    for cid, (_, data) in datasets_by_model["reason/demo-r1"].items():
        for window in data.values():
            if window["reason_ratio"] == "{}":
                continue
            keys, probs = parse_literal(window["reason_ratio"], "reason_ratio")
            assert keys == real_keys, f"client {cid}: bins written exactly as in deepseek-r1"
            assert all(abs(float(k) - i / 501) < 1e-12 for i, k in enumerate(keys))
            pooled += probs
    pooled /= pooled.sum()
    ratio = np.arange(501) / 501
    low = pooled[(ratio >= 0.3) & (ratio < 0.7)].sum()
    dip = pooled[(ratio >= 0.75) & (ratio < 0.85)].sum()
    high = pooled[ratio >= 0.9].sum()
    assert low > 0.3 and high > 0.1, "two modes"
    # per 0.1 of ratio, the dip between the modes is lower than either mode
    assert dip < low / 4 and dip < high


def test_multimodal_fields(datasets_by_model: dict) -> None:
    counts_seen: set[int] = set()
    for cid, (_, data) in datasets_by_model["multimodal/demo-vl"].items():
        for start, window in data.items():
            if window["image_count"] == "{}":
                continue
            for field in ("audio_tokens", "video_tokens", "audio_count", "video_count"):
                assert window[field] == "{0: 1.0}"
            keys, _ = parse_literal(window["image_count"], "image_count")
            assert {int(k) for k in keys} <= {1, 2, 3, 4, 5}, f"client {cid} window {start}"
            counts_seen |= {int(k) for k in keys}
            keys, probs = parse_literal(window["image_tokens"], "image_tokens")
            assert min(int(k) for k in keys) > 0
            top = np.sort(probs)[::-1]
            assert top[:5].sum() > 1 / 3, f"client {cid} window {start}: a few dominant image sizes"
    assert counts_seen == {1, 2, 3, 4, 5}


# --- raw request trace ---------------------------------------------------------------------------


def test_raw_trace(demo_dir: Path) -> None:
    path = demo_dir / "traces" / "demo_requests.csv"
    text = path.read_text(encoding="ascii")
    lines = text.split("\n")
    assert lines[0] == "timestamp_s,client_id,input_tokens,output_tokens"
    assert lines[-1] == ""
    row = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{6},(0|[1-9][0-9]*),[1-9][0-9]*,[1-9][0-9]*")
    bad = [i for i, line in enumerate(lines[1:-1]) if not row.fullmatch(line)]
    assert not bad, f"rows {bad[:5]} do not match"
    df = pl.read_csv(path, schema_overrides={"client_id": pl.String})
    trace = validate_trace(df, source=path, sort=False)  # sorted by time already
    assert 20_000 <= trace.height <= 50_000
    ts = trace["timestamp_s"].to_numpy()
    assert 2 * 3600 <= ts.max() - ts.min() <= 6 * 3600
    assert np.mean(ts % 1 != 0) > 0.9, "sub-second timestamps"
    bursty = 0
    clients = trace["client_id"].unique().to_list()
    assert len(clients) >= 5
    for cid in clients:
        iat = np.diff(trace.filter(pl.col("client_id") == cid)["timestamp_s"].to_numpy())
        bursty += int(iat.std() / iat.mean() > 1)
    assert bursty > len(clients) / 2


# --- not a copy of the shared data ---------------------------------------------------------------


def test_not_copied_from_the_shared_data(servegen_dir: Path, traces_by_model: dict, datasets_by_model: dict) -> None:
    real_rows: set[str] = set()
    for folder in ("language/m-small", "multimodal/mm-image", "reason/deepseek-r1"):
        for p in (servegen_dir / folder).glob("chunk-*-trace.csv"):
            real_rows |= {line for line in p.read_text().splitlines() if not IDLE_ROW.fullmatch(line)}
    demo_rows = {",".join(r) for rows in traces_by_model.values() for t in rows.values() for r in t if r[3]}
    assert len(demo_rows) > 1000
    assert not demo_rows & real_rows
    real_literals: set[str] = set()
    for folder in ("multimodal/mm-image", "reason/deepseek-r1"):
        for p in (servegen_dir / folder).glob("chunk-*-dataset.json"):
            for window in json.loads(p.read_text()).values():
                real_literals |= {t for t in window.values() if len(t) > 40}
    demo_literals = {
        t
        for model in ("multimodal/demo-vl", "reason/demo-r1")
        for _, data in datasets_by_model[model].values()
        for window in data.values()
        for t in window.values()
        if len(t) > 40
    }
    assert len(demo_literals) > 50
    assert not demo_literals & real_literals


# --- the project's loader reads every demo model ----------------------------------------------


def test_load_pool_reads_every_demo_model(demo_servegen: Path, datasets_by_model: dict) -> None:
    from servegen_core.sources.pool import list_models, load_pool

    assert list_models(demo_servegen) == sorted(MODELS)
    for model, (n_clients, days) in MODELS.items():
        pool = load_pool(demo_servegen, model)
        traces, datasets = client_files(demo_servegen / model)
        assert len(pool.client_ids) == n_clients
        assert set(pool.clients_without_lengths) == set(traces) - set(datasets)
        assert pool.duration_s == days * 86400
        empty = sum(
            all(t == "{}" for t in w.values()) for _, data in datasets_by_model[model].values() for w in data.values()
        )
        assert pool.length_windows.filter(~pl.col("active")).height == empty
        real_fields = set(next(iter(next(iter(datasets_by_model[model].values()))[1].values())))
        assert set(pool.fields) == real_fields
