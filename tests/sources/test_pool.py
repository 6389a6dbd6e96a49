"""ClientPool loader on the shared ServeGen data: counts, exact values, cache behaviour, views.

Reference values are read independently here (``csv``, ``json`` and ``ast.literal_eval`` as a
test-only reference parser of the dict literals) and compared with what the loader produced.
"""

from __future__ import annotations

import ast
import builtins
import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servegen_core.sources import pool as pool_mod
from servegen_core.errors import DataFormatError
from servegen_core.paths import PROJECT_DIR, default_cache_dir
from servegen_core.sources.pool import (
    DISTRIBUTION_SCHEMA,
    LENGTH_WINDOW_SCHEMA,
    WINDOW_SCHEMA,
    ClientPool,
    expected_requests,
    hour_of_day,
    list_models,
    load_pool,
    parse_pdf_literal,
)

# Facts about the shared data (its README): clients per model, arrival windows per client,
# dataset files missing, length fields per category.
MODELS = {
    "language/m-large": {"clients": 162, "windows": 2016, "missing": 15},
    "language/m-mid": {"clients": 109, "windows": 2016, "missing": 35},
    "language/m-small": {"clients": 43, "windows": 2016, "missing": 5},
    "multimodal/mm-image": {"clients": 35, "windows": 144, "missing": 0},
    "reason/deepseek-r1": {"clients": 73, "windows": 144, "missing": 0},
}
FIELDS = {
    "language": {"input_tokens", "output_tokens"},
    "reason": {"input_tokens", "output_tokens", "reason_ratio"},
    "multimodal": {
        "text_tokens", "image_tokens", "audio_tokens", "video_tokens",
        "image_count", "audio_count", "video_count", "output_tokens",
    },
}
SMALL = "multimodal/mm-image"  # 2.2 MB: the model copied around in cache tests


# ------------------------------------------------------------------------------------------
# Independent reference readers
# ------------------------------------------------------------------------------------------


def ref_trace(path: Path) -> list[tuple]:
    with path.open(newline="") as fh:
        return [
            (int(r[0]), float(r[1]), float(r[2]), r[3], float(r[4]), float(r[5]))
            for r in csv.reader(fh)
        ]


def ref_dataset(path: Path) -> dict[int, dict[str, dict[float, float]]]:
    data = json.loads(path.read_text())
    return {int(k): {f: ast.literal_eval(lit) for f, lit in fields.items()} for k, fields in data.items()}


def chunk_ids(model_dir: Path, kind: str) -> set[str]:
    suffix = f"-{kind}.csv" if kind == "trace" else f"-{kind}.json"
    return {p.name[len("chunk-") : -len(suffix)] for p in model_dir.glob(f"chunk-*{suffix}")}


@pytest.fixture(scope="module", params=list(MODELS))
def loaded(request: pytest.FixtureRequest, servegen_dir: Path) -> tuple[str, ClientPool]:
    """Each model parsed from its files (no cache), one model in memory at a time."""
    return request.param, load_pool(servegen_dir, request.param, use_cache=False)


def copy_model(servegen_dir: Path, dest: Path, model: str = SMALL) -> Path:
    shutil.copytree(servegen_dir / model, dest / model)
    return dest


# ------------------------------------------------------------------------------------------
# Listing and shapes
# ------------------------------------------------------------------------------------------


def test_list_models(servegen_dir: Path) -> None:
    assert list_models(servegen_dir) == sorted(MODELS)


def test_list_models_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not a folder"):
        list_models(tmp_path / "nowhere")


def test_unknown_model_names_available_ones(servegen_dir: Path) -> None:
    with pytest.raises(DataFormatError, match="m-large"):
        load_pool(servegen_dir, "language/no-such-model", use_cache=False)


def test_schemas_and_identity(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    assert pool.name == model
    assert Path(pool.source) == (servegen_dir / model).resolve()
    assert pool.category == model.split("/")[0]
    assert dict(pool.windows.schema) == WINDOW_SCHEMA
    assert dict(pool.distributions.schema) == DISTRIBUTION_SCHEMA
    assert dict(pool.length_windows.schema) == LENGTH_WINDOW_SCHEMA


def test_client_and_window_counts(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    facts = MODELS[model]
    traces = chunk_ids(servegen_dir / model, "trace")
    assert len(pool.client_ids) == facts["clients"] == len(traces)
    assert set(pool.client_ids) == traces
    assert list(pool.client_ids) == sorted(traces, key=int)
    per_client = pool.windows.group_by("client_id").len()
    assert per_client["len"].to_list() == [facts["windows"]] * facts["clients"]
    assert pool.window_s == 600
    assert pool.windows["duration_s"].unique().to_list() == [600]
    assert pool.start_s == 0
    assert pool.end_s == pool.duration_s == facts["windows"] * 600


def test_windows_sorted_by_client_then_start(loaded: tuple[str, ClientPool]) -> None:
    _, pool = loaded
    ids = pool.windows["client_id"].cast(pl.Int64).to_numpy()
    starts = pool.windows["start_s"].to_numpy()
    assert np.all(np.diff(ids) >= 0)
    same = np.diff(ids) == 0
    assert np.all(np.diff(starts)[same] == 600)


def test_fields_per_category(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    assert set(pool.fields) == FIELDS[pool.category]
    first = min(chunk_ids(servegen_dir / model, "dataset"), key=int)
    data = json.loads((servegen_dir / model / f"chunk-{first}-dataset.json").read_text())
    assert pool.fields == tuple(next(iter(data.values())))


def test_missing_datasets_match_missing_txt(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    listed = (servegen_dir / "MISSING.txt").read_text().split()
    expected = {
        Path(p).name[len("chunk-") : -len("-dataset.json")] for p in listed if p.startswith(model + "/")
    }
    assert len(expected) == MODELS[model]["missing"]
    assert set(pool.clients_without_lengths) == expected
    assert expected == chunk_ids(servegen_dir / model, "trace") - chunk_ids(servegen_dir / model, "dataset")
    # Loaded with their arrival windows, but no length rows at all.
    missing = list(expected)
    assert pool.windows.filter(pl.col("client_id").is_in(missing)).height == len(missing) * MODELS[model]["windows"]
    assert pool.length_windows.filter(pl.col("client_id").is_in(missing)).height == 0
    assert pool.distributions.filter(pl.col("client_id").is_in(missing)).height == 0


def test_missing_dataset_total_over_shared_data(servegen_dir: Path) -> None:
    listed = (servegen_dir / "MISSING.txt").read_text().split()
    assert len(listed) == sum(f["missing"] for f in MODELS.values()) == 55
    assert all(not (servegen_dir / p).exists() for p in listed)


# ------------------------------------------------------------------------------------------
# Exact values
# ------------------------------------------------------------------------------------------


def sample_clients(model_dir: Path) -> list[str]:
    """First, middle and last client with a dataset file, plus the first one without."""
    with_ds = sorted(chunk_ids(model_dir, "dataset"), key=int)
    without = sorted(chunk_ids(model_dir, "trace") - set(with_ds), key=int)
    return [with_ds[0], with_ds[len(with_ds) // 2], with_ds[-1], *without[:1]]


def test_trace_values_exact(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    for client in sample_clients(servegen_dir / model):
        expected = ref_trace(servegen_dir / model / f"chunk-{client}-trace.csv")
        got = (
            pool.windows.filter(pl.col("client_id") == client)
            .select("start_s", "rate_rps", "cv", "pattern", "shape", "scale")
            .rows()
        )
        assert got == expected, f"{model} client {client}"


def test_distribution_values_exact(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    for client in sample_clients(servegen_dir / model):
        path = servegen_dir / model / f"chunk-{client}-dataset.json"
        if not path.exists():
            continue  # the sample's client without a dataset: covered by the MISSING.txt test
        ref = ref_dataset(path)
        expected = sorted(
            (start, field, float(v), float(p))
            for start, fields in ref.items()
            for field, pdf in fields.items()
            for v, p in pdf.items()
        )
        got = sorted(
            pool.distributions.filter(pl.col("client_id") == client)
            .select("start_s", "field", "value", "prob")
            .rows()
        )
        assert len(got) == len(expected) > 0
        assert got == expected, f"{model} client {client}"
        lw = pool.length_windows.filter(pl.col("client_id") == client)
        assert lw["start_s"].to_list() == list(ref)


def test_token_bins_are_whole_numbers(loaded: tuple[str, ClientPool]) -> None:
    _, pool = loaded
    tokens = pool.distributions.filter(pl.col("field") != "reason_ratio")["value"].to_numpy()
    assert tokens.size > 0
    assert np.all(tokens == np.floor(tokens))
    assert np.all(tokens >= 0)


def test_reason_ratio_bins_are_k_over_501(servegen_dir: Path) -> None:
    pool = load_pool(servegen_dir, "reason/deepseek-r1", use_cache=False)
    ratio = pool.distributions.filter(pl.col("field") == "reason_ratio")
    values = ratio["value"].to_numpy()
    assert values.size > 0
    k = np.rint(values * 501).astype(np.int64)
    # The data's bins are np.linspace(0, 1, 502)[k], k = 0..500: k/501 up to one ulp, kept bit-exact.
    assert np.array_equal(values, np.linspace(0, 1, 502)[k])
    assert np.all(np.abs(values - k / 501) <= np.spacing(k / 501))
    assert k.min() == 0 and k.max() == 500
    assert ratio.group_by("client_id", "start_s").len()["len"].unique().to_list() == [501]
    assert not np.allclose(values[k > 0], np.rint(values[k > 0] * 500) / 500)  # not k/500


def test_probabilities_valid(loaded: tuple[str, ClientPool]) -> None:
    _, pool = loaded
    d = pool.distributions
    assert (d["prob"] >= 0).all()
    totals = d.group_by("client_id", "start_s", "field").agg(pl.col("prob").sum())["prob"].to_numpy()
    assert np.all(np.abs(totals - 1.0) <= 1e-6)


def test_length_windows_six_hours(loaded: tuple[str, ClientPool]) -> None:
    model, pool = loaded
    lw = pool.length_windows
    assert pool.length_window_s == 21600
    assert lw["duration_s"].unique().to_list() == [21600]
    assert (lw["start_s"] % 21600 == 0).all()
    per_client = lw.group_by("client_id").len()["len"].unique().to_list()
    # Length windows cover the arrival span: 14 days (language) or 1 day.
    assert per_client == [pool.duration_s // 21600]


def test_inactive_windows_iff_all_literals_empty(loaded: tuple[str, ClientPool], servegen_dir: Path) -> None:
    model, pool = loaded
    rows = []
    for path in sorted((servegen_dir / model).glob("chunk-*-dataset.json")):
        client = path.name[len("chunk-") : -len("-dataset.json")]
        for key, fields in json.loads(path.read_text()).items():
            empty = [lit.strip() == "{}" for lit in fields.values()]
            rows.append((client, int(key), not all(empty)))
    expected = pl.DataFrame(rows, schema=["client_id", "start_s", "active"], orient="row")
    got = pool.length_windows.select("client_id", "start_s", "active")
    assert_frame_equal(got.sort("client_id", "start_s"), expected.sort("client_id", "start_s"))
    # Active windows have rows for every field; inactive ones have none.
    present = pool.distributions.select("client_id", "start_s", "field").unique()
    n_active = got["active"].sum()
    assert present.height == n_active * len(pool.fields)
    inactive = got.filter(~pl.col("active"))
    assert present.join(inactive, on=["client_id", "start_s"], how="semi").height == 0


def test_some_windows_inactive_in_language_data(servegen_dir: Path) -> None:
    pool = load_pool(servegen_dir, "language/m-small", use_cache=False)
    counts = pool.length_windows["active"].value_counts()
    assert set(counts["active"].to_list()) == {True, False}


def test_expected_requests_matches_csv(servegen_dir: Path) -> None:
    pool = load_pool(servegen_dir, SMALL, use_cache=False)
    total = sum(
        row[1] * 600 for path in (servegen_dir / SMALL).glob("chunk-*-trace.csv") for row in ref_trace(path)
    )
    assert expected_requests(pool) == pytest.approx(total, rel=1e-12)


def test_loader_never_calls_eval(servegen_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        msg = "eval/exec called"
        raise AssertionError(msg)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    pool = load_pool(servegen_dir, "reason/deepseek-r1", use_cache=False)
    assert pool.distributions.height > 0


# ------------------------------------------------------------------------------------------
# parse_pdf_literal
# ------------------------------------------------------------------------------------------


def test_parse_pdf_literal_values() -> None:
    values, probs = parse_pdf_literal("{0.001996007984031936: 0.25, 7: 0.75,}")
    assert values.tolist() == [0.001996007984031936, 7.0]
    assert probs.tolist() == [0.25, 0.75]
    values, probs = parse_pdf_literal(" {} ")
    assert values.size == probs.size == 0


@pytest.mark.parametrize(
    "text", ["{1: x}", "x", "{1: float('1')}", "{1: math.pi}", "{'1': 1.0}", "{1, 2}", "{,}", "{1: 1.0"]
)
def test_parse_pdf_literal_rejects(text: str) -> None:
    with pytest.raises(DataFormatError, match=r"f\.json: window 0, field input_tokens: "):
        parse_pdf_literal(text, path="f.json", where="window 0, field input_tokens")


# ------------------------------------------------------------------------------------------
# Time
# ------------------------------------------------------------------------------------------


def test_hour_of_day() -> None:
    assert hour_of_day(0) == 0
    assert hour_of_day(13 * 3600) == 13
    assert hour_of_day(86400 + 1800) == 0.5
    assert hour_of_day(np.array([0, 3600 * 23, 86400 * 13 + 7200])).tolist() == [0, 23, 2]
    frame = pl.DataFrame({"start_s": [0, 600, 86400 + 3600]})
    assert frame.select(hour_of_day(pl.col("start_s")))["start_s"].to_list() == [0, 1 / 6, 1]


def test_language_windows_cover_whole_days_from_midnight(servegen_dir: Path) -> None:
    pool = load_pool(servegen_dir, "language/m-small", use_cache=False)
    hours = pool.windows.group_by(hour_of_day(pl.col("start_s")).floor().alias("h")).len().sort("h")
    assert hours["h"].to_list() == list(range(24))
    # 14 days x 6 windows per hour x 43 clients in every hour of the day.
    assert hours["len"].unique().to_list() == [14 * 6 * 43]


# ------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        msg = "source files parsed although the cache is valid"
        raise AssertionError(msg)

    monkeypatch.setattr(pool_mod, "_read_trace_csvs", boom)
    monkeypatch.setattr(pool_mod, "_read_datasets", boom)


def _assert_same(a: ClientPool, b: ClientPool) -> None:
    assert_frame_equal(a.windows, b.windows)
    assert_frame_equal(a.distributions, b.distributions)
    assert_frame_equal(a.length_windows, b.length_windows)
    assert (a.window_s, a.length_window_s, a.name, a.source) == (b.window_s, b.length_window_s, b.name, b.source)


def test_cache_hit_does_not_parse(servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_pool(servegen_dir, SMALL, cache_dir=cache)
    assert any(cache.iterdir())
    _forbid_parsing(monkeypatch)
    second = load_pool(servegen_dir, SMALL, cache_dir=cache)
    _assert_same(first, second)
    with pytest.raises(AssertionError, match="parsed"):
        load_pool(servegen_dir, SMALL, cache_dir=cache, use_cache=False)


def test_cached_equals_parsed_for_each_small_model(servegen_dir: Path, tmp_path: Path) -> None:
    for model in ("multimodal/mm-image", "reason/deepseek-r1"):
        parsed = load_pool(servegen_dir, model, use_cache=False)
        load_pool(servegen_dir, model, cache_dir=tmp_path)
        _assert_same(parsed, load_pool(servegen_dir, model, cache_dir=tmp_path))


def test_default_cache_folder_outside_repo(servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVEGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "servegen"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert PROJECT_DIR not in default_cache_dir().resolve().parents
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_pool(servegen_dir, SMALL)
    assert len(list((tmp_path / "xdg" / "servegen").glob("*/windows.parquet"))) == 1


def test_cache_folder_from_environment(servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVEGEN_CACHE_DIR", str(tmp_path / "env-cache"))
    load_pool(servegen_dir, SMALL)
    assert len(list((tmp_path / "env-cache").glob("*/distributions.parquet"))) == 1


def test_cache_invalidated_by_changed_trace(servegen_dir: Path, tmp_path: Path) -> None:
    root = copy_model(servegen_dir, tmp_path / "data")
    cache = tmp_path / "cache"
    before = load_pool(root, SMALL, cache_dir=cache)
    trace = root / SMALL / "chunk-3-trace.csv"
    lines = trace.read_text().splitlines()
    parts = lines[5].split(",")
    parts[1:4] = ["123.5", "0.25", "Gamma"]
    lines[5] = ",".join(parts)
    trace.write_text("\n".join(lines) + "\n")
    after = load_pool(root, SMALL, cache_dir=cache)
    row = after.windows.filter((pl.col("client_id") == "3") & (pl.col("start_s") == int(parts[0])))
    assert row.select("rate_rps", "cv", "pattern").row(0) == (123.5, 0.25, "Gamma")
    assert before.windows.filter(pl.col("client_id") == "3")["rate_rps"][5] != 123.5
    _assert_same(after, load_pool(root, SMALL, use_cache=False))


def test_cache_invalidated_by_changed_dataset(servegen_dir: Path, tmp_path: Path) -> None:
    root = copy_model(servegen_dir, tmp_path / "data")
    cache = tmp_path / "cache"
    load_pool(root, SMALL, cache_dir=cache)
    path = root / SMALL / "chunk-0-dataset.json"
    data = json.loads(path.read_text())
    data["21600"]["output_tokens"] = "{17: 0.5, 4242: 0.5}"
    path.write_text(json.dumps(data))
    after = load_pool(root, SMALL, cache_dir=cache)
    pdf = after.pdf("0", "output_tokens", 21600)
    assert pdf.rows() == [(17.0, 0.5), (4242.0, 0.5)]


def test_cache_invalidated_by_touch_and_by_added_file(
    servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_model(servegen_dir, tmp_path / "data")
    cache = tmp_path / "cache"
    load_pool(root, SMALL, cache_dir=cache)
    calls = []
    real = pool_mod._read_trace_csvs

    def counting(*args: object):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(pool_mod, "_read_trace_csvs", counting)
    load_pool(root, SMALL, cache_dir=cache)
    assert calls == []
    path = root / SMALL / "chunk-7-trace.csv"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    load_pool(root, SMALL, cache_dir=cache)
    assert calls == [1]
    shutil.copy(root / SMALL / "chunk-7-trace.csv", root / SMALL / "chunk-999-trace.csv")
    grown = load_pool(root, SMALL, cache_dir=cache)
    assert calls == [1, 1]
    assert "999" in grown.clients_without_lengths
    (root / SMALL / "chunk-999-trace.csv").unlink()
    shrunk = load_pool(root, SMALL, cache_dir=cache)
    assert calls == [1, 1, 1]
    assert len(shrunk.client_ids) == 35


@pytest.mark.parametrize("name", ["windows", "distributions", "length_windows"])
def test_truncated_cache_is_rebuilt(
    servegen_dir: Path, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    reference = load_pool(servegen_dir, SMALL, use_cache=False)
    load_pool(servegen_dir, SMALL, cache_dir=cache)
    (target,) = cache.glob(f"*/{name}.parquet")
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))
    _forbid_parsing(monkeypatch)  # the rebuilt cache is used again
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))


def test_altered_cache_is_rebuilt(servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    reference = load_pool(servegen_dir, SMALL, use_cache=False)
    load_pool(servegen_dir, SMALL, cache_dir=cache)
    # A valid Parquet file with the right schema and row count, but different values.
    (target,) = cache.glob("*/windows.parquet")
    reference.windows.with_columns(pl.col("rate_rps") + 1).write_parquet(target)
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))
    # Flipped bytes inside the file.
    (target,) = cache.glob("*/distributions.parquet")
    data = bytearray(target.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))
    _forbid_parsing(monkeypatch)  # and the rebuilt cache is good again
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))


@pytest.mark.parametrize("content", ["", "[]", "{", '{"manifest": 1}', "null"])
def test_corrupt_manifest_is_rebuilt(servegen_dir: Path, tmp_path: Path, content: str) -> None:
    cache = tmp_path / "cache"
    reference = load_pool(servegen_dir, SMALL, use_cache=False)
    load_pool(servegen_dir, SMALL, cache_dir=cache)
    (manifest,) = cache.glob("*/manifest.json")
    manifest.write_text(content)
    _assert_same(reference, load_pool(servegen_dir, SMALL, cache_dir=cache))


def test_cache_leaves_no_temp_folders(servegen_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for _ in range(2):
        load_pool(servegen_dir, SMALL, cache_dir=cache, use_cache=True)
        (manifest,) = cache.glob("*/manifest.json")
        manifest.write_text("{}")
    load_pool(servegen_dir, SMALL, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1


# ------------------------------------------------------------------------------------------
# Working directory
# ------------------------------------------------------------------------------------------


def test_any_working_directory(servegen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = load_pool(servegen_dir, SMALL, use_cache=False)
    monkeypatch.chdir(tmp_path)
    assert list_models(servegen_dir) == sorted(MODELS)
    _assert_same(reference, load_pool(servegen_dir, SMALL, use_cache=False))
    relative = os.path.relpath(servegen_dir, tmp_path)
    assert list_models(relative) == sorted(MODELS)
    _assert_same(reference, load_pool(relative, SMALL, cache_dir="rel-cache"))
    assert (tmp_path / "rel-cache").is_dir()


# ------------------------------------------------------------------------------------------
# Views: span, select_clients, frozen
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deepseek(servegen_dir: Path) -> ClientPool:
    return load_pool(servegen_dir, "reason/deepseek-r1", use_cache=False)


def _snapshot(pool: ClientPool) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return pool.windows.clone(), pool.distributions.clone(), pool.length_windows.clone()


def _assert_unchanged(pool: ClientPool, snap: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> None:
    assert_frame_equal(pool.windows, snap[0])
    assert_frame_equal(pool.distributions, snap[1])
    assert_frame_equal(pool.length_windows, snap[2])


def test_span(deepseek: ClientPool) -> None:
    snap = _snapshot(deepseek)
    part = deepseek.span(20000, 30000)
    _assert_unchanged(deepseek, snap)
    w = deepseek.windows
    assert_frame_equal(part.windows, w.filter((pl.col("start_s") >= 20000) & (pl.col("start_s") < 30000)))
    assert part.windows["start_s"].unique().sort().to_list() == list(range(20400, 30000, 600))
    assert part.start_s == 20400 and part.end_s == 30000
    # Length windows overlapping [20000, 30000): the ones starting at 0 and 21600.
    assert sorted(part.length_windows["start_s"].unique().to_list()) == [0, 21600]
    assert_frame_equal(part.distributions, deepseek.distributions.filter(pl.col("start_s").is_in([0, 21600])))
    assert part.client_ids == deepseek.client_ids
    assert (part.name, part.source, part.window_s) == (deepseek.name, deepseek.source, deepseek.window_s)
    with pytest.raises(ValueError, match="after its start"):
        deepseek.span(100, 100)


def test_span_inside_one_length_window(deepseek: ClientPool) -> None:
    part = deepseek.span(22000, 23000)
    assert part.length_windows["start_s"].unique().to_list() == [21600]
    assert part.windows["start_s"].unique().sort().to_list() == [22200, 22800]
    assert set(part.distributions["start_s"].unique().to_list()) == {21600}


def test_select_clients(deepseek: ClientPool) -> None:
    snap = _snapshot(deepseek)
    part = deepseek.select_clients(["17", 3])
    _assert_unchanged(deepseek, snap)
    assert part.client_ids == ("3", "17")
    for name in ("windows", "distributions", "length_windows"):
        full = getattr(deepseek, name)
        assert_frame_equal(getattr(part, name), full.filter(pl.col("client_id").is_in(["3", "17"])))
    assert part.windows.height == 2 * 144
    with pytest.raises(ValueError, match="unknown client"):
        deepseek.select_clients(["3", "9999"])


def test_select_clients_keeps_missing_length_marker(servegen_dir: Path) -> None:
    pool = load_pool(servegen_dir, "language/m-small", use_cache=False)
    missing = pool.clients_without_lengths
    assert "0" not in missing
    part = pool.select_clients([missing[0], "0"])
    assert part.clients_without_lengths == (missing[0],)
    assert part.client_ids == ("0", missing[0])
    assert part.length_windows["client_id"].unique().to_list() == ["0"]


def test_pool_is_frozen(deepseek: ClientPool) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        deepseek.name = "other"  # type: ignore[misc]
