"""The ``servegen`` command line.

::

    servegen models DATA_DIR [--json]
    servegen summary SOURCE [--model M] [--preset P] [--json]
    servegen generate --spec SPEC --format F -o OUT [--overwrite] [--chunk-s N]
                      [--naive poisson|pooled_lengths|poisson_pooled|constant] [--seed N] [--block-size T] [-q]
    servegen validate --spec SPEC [--workload FILE] [--preset P] [--seed N] [--json]
    servegen spec-template [--model M] [--data-dir D] [--start-s S] [--duration-s D]
                           [--seed N] [--overwrite] -o FILE
    servegen spec-template --trace FILE [--preset P] [--fit-length-correlation]
                           [--fit-prefix [--block-size T]]
                           [--start-s S] [--duration-s D] [--seed N] [--overwrite] -o FILE
    servegen whatif (--spec SPEC | --trace FILE) --model M --gpu G [--slo-ttft-p99 S]
                    [--slo-tpot-p99 S] [--calibration FILE ...] [--baselines LIST] [--json]

``generate`` composes with :func:`servegen_core.generate.compose.plan_workload` and writes
with :mod:`servegen_core.export.formats`: JSONL/CSV formats are streamed chunk by chunk
(``--chunk-s``, default one hour of span time) with a progress bar on stderr,
and are byte for byte what ``export_trace(compose(spec).trace, ...)`` writes;
``parquet`` is written whole as one file, or as a folder of part files when
``--chunk-s`` is given. The spec actually used (after ``--seed``/``--naive``)
is written beside the output as ``OUT.spec.json``. Nothing partial is left
behind on an error or an interrupt.

:func:`main` parses ``argv`` and returns an exit code: 0 on success, 1 when
``validate`` finds a failing check, 2 for a usage, spec, data or file-system
error, 3 for anything unexpected (a bug), 130 on Ctrl-C. Errors the package
raises on purpose (:class:`~servegen_core.errors.ServeGenError`: spec, data,
export, option and limit errors) and operating-system errors (a missing file,
a folder without write access, a full disk) print one line,
``servegen: error: <message>``, on stderr and no traceback. An unexpected error
prints ``servegen: internal error: <type>: <message>``; ``--debug`` (before or
after the subcommand) adds its traceback.

``DATA_DIR`` (and a ``summary`` SOURCE folder) may be ``demo`` (the embedded
synthetic demo data) or ``shared`` (the shared reference data), a folder
holding ``<category>/<model>/`` folders, a folder holding such a ``servegen/``
folder, or one model's folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from servegen_core.errors import ServeGenError
from servegen_core.paths import demo_data_dir, shared_data_dir

__all__ = ["DATA_SHORTCUTS", "build_parser", "main", "resolve_data_dir"]

PROG = "servegen"

#: Names accepted in place of a data folder.
DATA_SHORTCUTS: dict[str, Callable[[], Path]] = {
    "demo": lambda: demo_data_dir() / "servegen",
    "shared": lambda: shared_data_dir() / "servegen",
}

#: Exit codes.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_UNEXPECTED = 3


class CliError(ServeGenError):
    """A command-line request that cannot be carried out (bad combination of arguments, ...)."""


# --------------------------------------------------------------------------- #
# Data sources
# --------------------------------------------------------------------------- #


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("chunk-*-trace.csv"))


def resolve_data_dir(text: str | Path) -> Path:
    """The ServeGen data folder named by ``text`` (a shortcut of :data:`DATA_SHORTCUTS` or a path).

    A folder that holds a ``servegen/`` folder with models (e.g. ``../shared/data``) resolves
    to that ``servegen/`` folder.
    """
    key = str(text)
    path = DATA_SHORTCUTS[key]() if key in DATA_SHORTCUTS else Path(key).expanduser()
    if not path.exists():
        msg = f"data folder not found: {path}"
        if key not in DATA_SHORTCUTS:
            msg += f" (shortcuts: {', '.join(DATA_SHORTCUTS)})"
        raise CliError(msg)
    if not path.is_dir():
        msg = f"not a folder: {path}"
        raise CliError(msg)
    inner = path / "servegen"
    if inner.is_dir() and not _has_models(path):
        return inner
    return path


def _has_models(path: Path) -> bool:
    from servegen_core.sources.pool import list_models

    try:
        return bool(list_models(path))
    except ServeGenError:
        return False


def _pool_source(text: str, model: str | None) -> tuple[Path, str]:
    """``(data_dir, model)`` for a data folder (+ ``model``) or one model's folder."""
    from servegen_core.sources.pool import list_models

    path = DATA_SHORTCUTS[text]() if text in DATA_SHORTCUTS else Path(text).expanduser()
    if _is_model_dir(path):
        resolved = path.resolve()
        name = f"{resolved.parent.name}/{resolved.name}"
        if model is not None and model != name:
            msg = f"{path} is the folder of model {name}, but --model {model} was given"
            raise CliError(msg)
        return resolved.parent.parent, name
    data_dir = resolve_data_dir(text)
    models = list_models(data_dir)
    if model is None:
        if len(models) == 1:
            return data_dir, models[0]
        msg = f"{data_dir} holds {len(models)} models; choose one with --model ({', '.join(models) or 'none found'})"
        raise CliError(msg)
    if model not in models:
        msg = f"no model {model!r} in {data_dir}; models there: {', '.join(models) or 'none'}"
        raise CliError(msg)
    return data_dir, model


# --------------------------------------------------------------------------- #
# Output helpers
# --------------------------------------------------------------------------- #


def _fmt_number(value: Any, *, digits: int = 3) -> str:
    """Short human text for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-" if math.isnan(value) else str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[bool] | None = None) -> str:
    """A plain-text table: a header, a rule, then rows; numeric columns right-aligned."""
    cells = [[_fmt_number(v) for v in row] for row in rows]
    if numeric is None:
        numeric = [
            bool(rows) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
            for i in range(len(headers))
        ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def _json_value(value: Any) -> Any:
    """``value`` with NaN/inf turned into ``None`` and tuples into lists, ready for ``json.dumps``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(_json_value(obj), indent=2, allow_nan=False) + "\n")


class ProgressBar:
    """A one-line text progress bar on ``stream`` (stderr), updated once per chunk.

    On a terminal the line is redrawn in place; otherwise (a log file, a pipe) a line is
    written each time another tenth of the work is done, so logs stay short.
    """

    def __init__(self, total: int, *, stream: TextIO, label: str = "", width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.stream = stream
        self.label = label
        self.width = width
        self.done = 0
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._open = False

    def render(self, detail: str = "") -> str:
        frac = min(self.done / self.total, 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{self.label} [{bar}] {100 * frac:5.1f}% {self.done}/{self.total}"
        return f"{text} {detail}".rstrip()

    def update(self, done: int, detail: str = "") -> None:
        self.done = done
        line = self.render(detail)
        if self._tty:
            self.stream.write("\r" + line)
            self._open = True
        else:
            tenth = int(10 * min(done / self.total, 1.0))
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


#: Trace files at least this large show a loading progress line on stderr.
LOAD_PROGRESS_MIN_BYTES = 32 * 2**20


class LoadProgress:
    """Rows read so far from a large trace file, as one line on ``stream`` (stderr).

    The share done is estimated from the file size and the length of its first lines (plain
    CSV and JSON Lines; for ``.gz`` and Parquet only the rows are shown). On a terminal the
    line is redrawn in place; in a log a line is written per tenth (or per 5,000,000 rows).
    """

    def __init__(self, path: Path, *, stream: TextIO) -> None:
        self.stream = stream
        self.name = path.name
        self.t0 = time.perf_counter()
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -1
        self.rows_estimate: float | None = None
        if path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
            try:
                with path.open("rb") as fh:
                    head = fh.read(1 << 16)
                lines = head.count(b"\n")
                if lines > 1:
                    self.rows_estimate = path.stat().st_size / (len(head) / lines)
            except OSError:
                pass

    def __call__(self, rows: int) -> None:
        share = min(rows / self.rows_estimate, 0.99) if self.rows_estimate else None
        step = int(share * 10) if share is not None else rows // 5_000_000
        text = f"reading {self.name}: {rows:,} rows" + (f" (~{share:.0%})" if share is not None else "")
        text += f", {time.perf_counter() - self.t0:.0f} s"
        if self._tty:
            self.stream.write("\r" + text)
        elif step != self._last:
            self.stream.write(text + "\n")
        self._last = step
        self.stream.flush()

    def close(self, rows: int | None = None) -> None:
        if rows is not None:
            text = f"read {self.name}: {rows:,} rows in {time.perf_counter() - self.t0:.0f} s"
            self.stream.write(("\r" + text + "\n") if self._tty else text + "\n")
        elif self._tty:
            self.stream.write("\n")
        self.stream.flush()


def load_trace_file(path: Path, *, preset: str | None) -> Any:
    """:func:`servegen_core.sources.traces.load_trace` with a progress line on stderr for a large file."""
    from servegen_core.sources.traces import load_trace

    try:
        big = path.stat().st_size >= LOAD_PROGRESS_MIN_BYTES
    except OSError:
        big = False
    if not big:
        return load_trace(path, preset=preset)
    progress = LoadProgress(path, stream=sys.stderr)
    loaded = None
    try:
        loaded = load_trace(path, preset=preset, progress=progress)
    finally:
        progress.close(None if loaded is None else loaded.trace.height)
    return loaded


# --------------------------------------------------------------------------- #
# servegen models
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``servegen models``."""

    model: str
    clients: int
    clients_without_lengths: int
    span_days: float
    windows: int
    fields: tuple[str, ...]


def model_infos(data_dir: Path) -> list[ModelInfo]:
    """Describe every model under ``data_dir`` (loading each pool, through the columnar cache)."""
    from servegen_core.sources.pool import list_models, load_pool

    infos = []
    for name in list_models(data_dir):
        pool = load_pool(data_dir, name)
        infos.append(
            ModelInfo(
                model=name,
                clients=len(pool.client_ids),
                clients_without_lengths=len(pool.clients_without_lengths),
                span_days=pool.duration_s / 86400,
                windows=pool.windows.height,
                fields=pool.fields,
            )
        )
    return infos


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    infos = model_infos(data_dir)
    if not infos:
        msg = f"no models in {data_dir} (expected <category>/<model>/chunk-<client>-trace.csv files)"
        raise CliError(msg)
    if args.json:
        _print_json(
            {
                "data_dir": str(data_dir),
                "models": [
                    {
                        "model": i.model,
                        "clients": i.clients,
                        "clients_without_lengths": i.clients_without_lengths,
                        "span_days": i.span_days,
                        "windows": i.windows,
                        "fields": list(i.fields),
                    }
                    for i in infos
                ],
            },
            out,
        )
        return EXIT_OK
    out.write(f"Models in {data_dir}\n\n")
    rows = [
        (i.model, i.clients, i.clients_without_lengths, round(i.span_days, 2), i.windows, ", ".join(i.fields))
        for i in infos
    ]
    headers = ("model", "clients", "without lengths", "span (days)", "windows", "fields")
    out.write(format_table(headers, rows, numeric=(False, True, True, True, True, False)) + "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# servegen summary
# --------------------------------------------------------------------------- #

#: Length fields reported by ``summary``, in this order, where the source has them.
SUMMARY_FIELDS = (
    "input_tokens",
    "output_tokens",
    "text_tokens",
    "image_tokens",
    "image_count",
    "audio_tokens",
    "video_tokens",
    "reasoning_tokens",
    "answer_tokens",
    "reason_ratio",
)

#: Number of busiest clients whose share of the requests ``summary`` reports.
TOP_K = 10


def _load_source(text: str, *, model: str | None, preset: str | None) -> tuple[Any, dict[str, Any], list[str]]:
    """A ClientPool or a RequestTrace for ``summary``, a description of it, and notes from loading."""
    from servegen_core.sources.pool import load_pool

    path = Path(text).expanduser()
    if text not in DATA_SHORTCUTS and path.is_file():
        _check_preset(preset)
        if model is not None:
            msg = f"--model applies to a ServeGen data folder, but {path} is a trace file"
            raise CliError(msg)
        loaded = load_trace_file(path, preset=preset)
        info = {
            "kind": "trace",
            "path": str(path),
            "preset": loaded.preset,
            "preset_detected": loaded.detected,
            "timestamp_resolution_s": loaded.resolution.grid_s,
        }
        notes = list(loaded.warnings)
        if loaded.n_failed:
            notes.append(f"{loaded.n_failed:,} requests flagged as failed are included")
        return loaded.trace, info, notes
    if preset is not None:
        msg = f"--preset applies to a raw trace file, but {text} is not a file"
        raise CliError(msg)
    data_dir, name = _pool_source(text, model)
    pool = load_pool(data_dir, name)
    info = {"kind": "servegen", "data_dir": str(data_dir), "model": name}
    return pool, info, []


def headline(source: Any) -> tuple[dict[str, Any], list[str]]:
    """Headline characterization of a ClientPool or RequestTrace, as a JSON-ready dict, and notes.

    Keys: ``requests``, ``span_s``, ``clients``, ``mean_rps``, ``top10_share``, ``gini``,
    ``rate`` (peak/trough of the aggregate rate per 600 s), ``burstiness`` (share of
    windows and of load with CV > 1), ``lengths`` (per field: requests, mean, p50, p90,
    p99, max). A value that cannot be computed is ``None`` and its reason is in the notes.
    """
    from servegen_core.characterize import arrivals, lengths, rates
    from servegen_core.sources.pool import ClientPool, expected_requests

    notes: list[str] = []
    if isinstance(source, ClientPool):
        requests: float = expected_requests(source)
        span_s = float(source.duration_s)
        clients = len(source.client_ids)
        fields = [f for f in SUMMARY_FIELDS if f in source.fields]
        if source.clients_without_lengths:
            notes.append(
                f"{len(source.clients_without_lengths)} of {clients} clients have no length data; "
                "length statistics cover the others"
            )
    else:
        requests = source.height
        span_s = float(source["timestamp_s"].max() - source["timestamp_s"].min()) if source.height else 0.0
        clients = source["client_id"].n_unique()
        fields = [f for f in SUMMARY_FIELDS if f in source.columns]

    def value(result: Any, attr: str, label: str) -> Any:
        if not result.ok:
            notes.append(f"{label}: {result.reason}")
            return None
        return getattr(result, attr)

    top = rates.top_k_share(source, TOP_K)
    gini = rates.gini(source)
    # 600 s bins (the pools' window); a trace too short for three of them uses 60 s bins
    resolution = 600 if isinstance(source, ClientPool) or span_s >= 3 * 600 else 60
    peak = rates.peak_trough(source, resolution_s=resolution)
    burst = arrivals.burstiness_summary(source, window_s=600)
    out: dict[str, Any] = {
        "requests": requests,
        "span_s": span_s,
        "clients": clients,
        "mean_rps": requests / span_s if span_s > 0 else None,
        f"top{TOP_K}_share": value(top, "share", f"top-{TOP_K} share"),
        "gini": value(gini, "value", "Gini"),
        "rate": {
            "resolution_s": resolution,
            "peak_rps": value(peak, "peak_rps", "aggregate rate"),
            "trough_rps": peak.trough_rps if peak.ok else None,
            "peak_trough_ratio": peak.ratio if peak.ok else None,
        },
        "burstiness": {
            "window_s": 600,
            "windows": burst.windows,
            "share_windows_cv_gt1": value(burst, "share_windows_cv_gt1", "burstiness"),
            "share_load_cv_gt1": burst.share_load_cv_gt1,
            "median_cv": burst.median_cv,
            "load_weighted_median_cv": burst.weighted_median_cv,
        },
        "lengths": {},
    }
    modal = [m for m in ("image", "audio", "video") if f"{m}_tokens" in fields]
    if modal:
        out["multimodal"] = _multimodal_headline(source, notes)
    if "reason_ratio" in fields or "reasoning_tokens" in fields:
        out["reasoning"] = _reasoning_headline(source, notes)
    for f in fields:
        table = lengths.length_percentiles(source, f)
        if not table.ok or table.frame.height == 0:
            notes.append(f"{f}: {table.reason}")
            continue
        row = table.frame.row(0, named=True)
        out["lengths"][f] = {k: row[k] for k in ("requests", "mean", "p50", "p90", "p99", "max") if k in row}
    return out, notes


def _multimodal_headline(source: Any, notes: list[str]) -> dict[str, Any] | None:
    """Per modality: share of input tokens and share of requests carrying it."""
    from servegen_core.characterize import multimodal
    shares = multimodal.modality_shares(source)
    if not shares.ok:
        notes.append(f"modality shares: {shares.reason}")
        return None
    modalities = {
        r["modality"]: {"token_share": r["token_share"], "request_share": r["request_share"]}
        for r in shares.summary.iter_rows(named=True)
    }
    counts = multimodal.image_count_distribution(source)
    if not counts.ok:
        notes.append(f"images per request: {counts.reason}")
    return {
        "modalities": modalities,
        "mean_images_per_request": counts.mean if counts.ok else None,
        "share_requests_with_images": counts.share_nonzero if counts.ok else None,
        "method": shares.method,
    }


def _reasoning_headline(source: Any, notes: list[str]) -> dict[str, Any] | None:
    """Reasoning share of output tokens, reason-ratio median, and whether the ratio is bimodal."""
    from servegen_core.characterize import reasoning
    out: dict[str, Any] = {}
    tokens = reasoning.reasoning_tokens(source)
    if tokens.ok:
        out["reasoning_share"] = tokens.reasoning_share
    else:
        notes.append(f"reasoning tokens: {tokens.reason}")
    ratio = reasoning.reason_ratio_distribution(source)
    if ratio.ok:
        row = ratio.summary.row(0, named=True)
        out["reason_ratio_mean"] = row["mean"]
        out["reason_ratio_p50"] = row["p50"]
    else:
        notes.append(f"reason ratio: {ratio.reason}")
    bi = reasoning.bimodality(source)
    if bi.ok:
        comps = bi.components.sort("component")
        out["bimodality_coefficient"] = bi.bc
        out["bimodal"] = bi.bimodal
        out["modes"] = [
            {"location": r["location"], "weight": r["weight"]} for r in comps.iter_rows(named=True)
        ]
    else:
        notes.append(f"bimodality: {bi.reason}")
    return out or None


def _summary_text(info: dict[str, Any], head: dict[str, Any], notes: list[str]) -> str:
    if info["kind"] == "servegen":
        title = f"{info['model']} (ServeGen client pool, {info['data_dir']})"
    else:
        how = "detected" if info["preset_detected"] else "given"
        title = f"{info['path']} (raw trace, preset {info['preset']}, {how})"
    span = head["span_s"]
    res = head["rate"]["resolution_s"]
    burst = head["burstiness"]
    lines = [title, ""]
    rows: list[tuple[str, str]] = [
        ("requests", _fmt_number(round(head["requests"]) if info["kind"] == "servegen" else head["requests"])),
        ("span", _span_text(span)),
        ("clients", _fmt_number(head["clients"])),
        ("mean rate", f"{_fmt_number(head['mean_rps'])} req/s"),
        (f"top-{TOP_K} client share", _pct(head[f"top{TOP_K}_share"])),
        ("Gini (client volume)", _fmt_number(head["gini"])),
        (f"aggregate rate max ({res} s bins)", f"{_fmt_number(head['rate']['peak_rps'])} req/s"),
        (f"aggregate rate min ({res} s bins)", f"{_fmt_number(head['rate']['trough_rps'])} req/s"),
        ("client windows with CV > 1", _pct(burst["share_windows_cv_gt1"])),
        ("load in windows with CV > 1", _pct(burst["share_load_cv_gt1"])),
        ("median window CV (by load)", _fmt_number(burst["load_weighted_median_cv"])),
    ]
    width = max(len(k) for k, _ in rows)
    lines.extend(f"{k.ljust(width)}  {v}" for k, v in rows)
    mm = head.get("multimodal")
    if mm:
        lines.append("")
        for m, v in mm["modalities"].items():
            if not (v["token_share"] or v["request_share"]):
                continue
            lines.append(
                f"{m:<6} {_pct(v['token_share'])} of input tokens, in {_pct(v['request_share'])} of requests"
            )
        if mm["mean_images_per_request"] is not None:
            lines.append(f"images per request (mean)  {_fmt_number(mm['mean_images_per_request'])}")
    rs = head.get("reasoning")
    if rs:
        lines.append("")
        if "reasoning_share" in rs:
            lines.append(f"reasoning share of output tokens  {_pct(rs['reasoning_share'])}")
        if "reason_ratio_p50" in rs:
            lines.append(
                f"reason ratio mean / median       {_fmt_number(rs['reason_ratio_mean'])} / "
                f"{_fmt_number(rs['reason_ratio_p50'])}"
            )
        if "bimodal" in rs:
            modes = ", ".join(f"{_fmt_number(m['location'])} ({_pct(m['weight'])})" for m in rs["modes"])
            verdict = "bimodal" if rs["bimodal"] else "not bimodal"
            lines.append(
                f"reason ratio modes                {modes}; "
                f"bimodality coefficient {_fmt_number(rs['bimodality_coefficient'])} ({verdict})"
            )
    if head["lengths"]:
        lines.append("")
        headers = ("field", "mean", "p50", "p90", "p99", "max")
        table_rows = [(f, *(s.get(k) for k in headers[1:])) for f, s in head["lengths"].items() if s.get("max")]
        zeros = [f for f, s in head["lengths"].items() if not s.get("max")]
        lines.append(format_table(headers, table_rows, numeric=(False, True, True, True, True, True)))
        if zeros:
            lines.append(f"always 0: {', '.join(zeros)}")
    if notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines) + "\n"


def _span_text(span_s: float) -> str:
    text = f"{_fmt_number(span_s)} s = {span_s / 3600:.3g} h"
    return text + (f" = {span_s / 86400:.3g} d" if span_s >= 86400 else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _cmd_summary(args: argparse.Namespace, out: TextIO) -> int:
    source, info, notes = _load_source(args.source, model=args.model, preset=args.preset)
    head, more = headline(source)
    notes.extend(more)
    if args.json:
        _print_json({"source": info, **head, "notes": notes}, out)
    else:
        out.write(_summary_text(info, head, notes))
    return EXIT_OK


# --------------------------------------------------------------------------- #
# servegen generate
# --------------------------------------------------------------------------- #

#: Span seconds per chunk when ``generate`` streams without ``--chunk-s``.
DEFAULT_CHUNK_S = 3600.0


def read_spec(path: str | Path, *, seed: int | None = None) -> Any:
    """Read a spec file (relative paths in it resolve against its folder); ``seed`` overrides its seed."""
    import dataclasses

    from servegen_core.spec import WorkloadSpec

    p = Path(path)
    if not p.is_file():
        msg = f"spec file not found: {p}" if not p.exists() else f"not a file: {p}"
        raise CliError(msg)
    spec = WorkloadSpec.from_file(p)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    return spec


def _usage_hint(info: Any, path: Path, block_size: int | None) -> str:
    from servegen_core.export.formats import usage_hint

    return usage_hint(info.name, path, block_size)


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


#: How ``generate`` words each reason a client is excluded (keys of ``ComposePlan.exclusions``).
_EXCLUSION_TEXT = {
    "idle": "idle in the span",
    "no_lengths": "with no length data",
    "weight_zero": "with weight 0",
}


def _clients_text(plan: Any) -> str:
    """``54 composed, 108 excluded (95 idle in the span, 13 with no length data)``, plus ``N not selected``."""
    ex = plan.exclusions
    text = f"{len(plan.clients)} composed"
    parts = [f"{len(ex[r])} {words}" for r, words in _EXCLUSION_TEXT.items() if ex[r]]
    n_excluded = sum(len(ex[r]) for r in _EXCLUSION_TEXT)
    if n_excluded:
        text += f", {n_excluded} excluded ({', '.join(parts)})"
    if ex["not_selected"]:
        text += f", {len(ex['not_selected'])} not selected"
    cw = plan.client_windows
    borrowing = cw.filter(cw["length_source"] == "borrowed")["client_id"].n_unique()
    if borrowing:
        text += f"; {borrowing} borrowing the other clients' lengths (none of their own)"
    return text


def _cmd_generate(args: argparse.Namespace, out: TextIO) -> int:
    from servegen_core.generate.compose import load_source, naive_spec, plan_workload
    from servegen_core.errors import LimitError
    from servegen_core.export.formats import get_format
    from servegen_core.export.writer import ChunkWriter, WriteProgress, check_target, export_trace, write_chunks
    from servegen_core.limits import max_requests as default_max_requests

    info = get_format(args.format)
    target = Path(args.output)
    spec = read_spec(args.spec, seed=args.seed)

    def note(text: str) -> None:
        out.write(f"note: {text}\n")

    streamed = args.chunk_s is not None or info.container != "parquet"
    check_target(target, overwrite=args.overwrite)  # before any work is done
    pool = load_source(spec)
    if args.naive is not None:
        spec = naive_spec(spec, args.naive, pool=pool)
    limit = args.max_requests if args.max_requests is not None else default_max_requests(streamed=streamed)
    try:
        plan = plan_workload(spec, pool=pool, max_requests=limit)
    except LimitError as exc:
        if streamed or args.max_requests is not None:
            raise
        msg = f"{exc}; or give --chunk-s to stream a folder of Parquet parts (limit {default_max_requests(streamed=True):,})"
        raise CliError(msg) from None
    for w in plan.warnings:
        sys.stderr.write(f"{PROG}: warning: {w}\n")

    if streamed:
        chunk_s = float(args.chunk_s) if args.chunk_s is not None else DEFAULT_CHUNK_S
        writer = ChunkWriter(
            target, info.name, spec=spec, overwrite=args.overwrite, block_size=args.block_size, note=note
        )
        total = max(1, math.ceil(plan.span_duration_s / chunk_s))
        bar = ProgressBar(total, stream=sys.stderr, label="generating") if total > 1 and not args.quiet else None

        def show(done: WriteProgress) -> None:
            assert bar is not None
            last = float(done.chunk["timestamp_s"][-1])
            bar.update(min(total, int(last // chunk_s) + 1), f"{done.rows:,} requests")

        try:
            chunks = plan.iter_chunks(chunk_s, max_requests=limit)
            result = write_chunks(writer, chunks, progress=None if bar is None else show)
            if bar is not None:
                bar.update(total, f"{result.rows:,} requests")
        finally:
            if bar is not None:
                bar.close()
    else:
        trace = plan.compose(max_requests=limit).trace
        result = export_trace(
            trace, target, info.name, spec=spec, overwrite=args.overwrite, block_size=args.block_size, note=note
        )

    kind = "folder" if result.path.is_dir() else "file"
    out.write(
        f"wrote {result.rows:,} requests to {result.path} ({info.name} {kind}, {_size_text(result.bytes)}; "
        f"expected {plan.expected_requests:,.0f})\n"
    )
    out.write(
        f"clients: {_clients_text(plan)}; span {_fmt_number(plan.span_start_s)} s + "
        f"{_fmt_number(plan.span_duration_s)} s of {plan.pool.name}; seed {spec.seed}\n"
    )
    if result.spec_path is not None:
        out.write(f"spec: {result.spec_path}\n")
    if info.usage:
        out.write(f"replay: {_usage_hint(info, result.path, result.block_size)}\n")
    else:
        out.write(f"format: {info.description}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# servegen validate
# --------------------------------------------------------------------------- #


def _check_preset(preset: str | None) -> None:
    """Refuse ``--preset generic``: it needs a column mapping, which only a spec's trace source gives."""
    if preset == "generic":
        msg = (
            "--preset generic needs a column mapping and a time unit, which the command line does not take; "
            "convert the file to a named preset's columns, or use a spec whose source is "
            '{"kind": "trace", "preset": "generic", "columns": {...}, "time_unit": ...}'
        )
        raise CliError(msg)


def _read_workload(path: Path, preset: str | None) -> tuple[pl.DataFrame, list[str]]:
    """A workload file (or a folder of Parquet parts written by ``generate --chunk-s``) as a RequestTrace."""
    from servegen_core.schema import validate_trace
    from servegen_core.sources.traces import load_trace

    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            msg = f"{path} is a folder without part-*.parquet files"
            raise CliError(msg)
        loaded = [load_trace(p, preset=preset) for p in parts]
        trace = validate_trace(pl.concat([lt.trace for lt in loaded], how="diagonal_relaxed"), source=path)
        return trace, [w for lt in loaded for w in lt.warnings]
    if not path.is_file():
        msg = f"workload file not found: {path}"
        raise CliError(msg)
    _check_preset(preset)
    loaded = load_trace_file(path, preset=preset)
    return loaded.trace, list(loaded.warnings)


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from servegen_core.generate.compose import compose, load_source, plan_workload
    from servegen_core.generate.validate import validate

    spec = read_spec(args.spec, seed=args.seed)
    notes: list[str] = []
    if args.workload is None:
        if args.preset is not None:
            msg = "--preset applies to a --workload file"
            raise CliError(msg)
        workload = compose(spec, max_requests=args.max_requests)
        report = validate(workload)
        what = f"workload composed from {args.spec} (seed {spec.seed})"
        notes.extend(workload.warnings)
    else:
        path = Path(args.workload)
        trace, warnings = _read_workload(path, args.preset)
        notes.extend(warnings)
        pool = load_source(spec)
        plan = plan_workload(spec, pool=pool)
        ids = set(trace["client_id"].unique().to_list())
        if len(plan.clients) > 1 and not ids & set(plan.clients):
            notes.append(
                f"{path} carries no client ids of the spec (its format may not store them); the per-client "
                "checks cannot pass: validate a native export (csv, jsonl or parquet) instead"
            )
        report = validate(trace, spec, pool=pool)
        what = f"{path} against {args.spec}"
    if args.json:
        _print_json(
            {
                "spec": str(args.spec),
                "workload": None if args.workload is None else str(args.workload),
                "passed": report.passed,
                "reason": report.reason,
                "checks": report.checks.to_dicts(),
                "notes": notes,
            },
            out,
        )
    else:
        out.write(f"Validation of the {what}\n\n")
        if report.ok:
            rows = [
                (r["name"], r["value"], r["target"], "ok" if r["passed"] else "FAIL", r["n"], r["detail"])
                for r in report.checks.iter_rows(named=True)
            ]
            headers = ("check", "value", "target", "result", "n", "detail")
            out.write(format_table(headers, rows, numeric=(False, True, False, False, True, False)) + "\n\n")
            failed = report.failed()
            out.write(
                f"{len(rows) - len(failed)} of {len(rows)} checks passed"
                + (f"; failed: {', '.join(failed)}" if failed else "")
                + "\n"
            )
        else:
            out.write(f"no checks: {report.reason}\n")
        for n in notes:
            out.write(f"note: {n}\n")
    return EXIT_OK if report.passed else EXIT_CHECK_FAILED


# --------------------------------------------------------------------------- #
# servegen spec-template
# --------------------------------------------------------------------------- #

#: Default span of a template: one hour from noon of the first day (clipped to the data).
TEMPLATE_START_S = 12 * 3600
TEMPLATE_DURATION_S = 3600


def spec_template(
    data_dir: str = "demo",
    model: str | None = None,
    *,
    start_s: float | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    trace: str | None = None,
    preset: str | None = None,
    fit_length_correlation: bool = False,
    fit_prefix: bool = False,
    block_size: int | None = None,
) -> Any:
    """An example :class:`~servegen_core.spec.WorkloadSpec` for one model of ``data_dir``,
    or for a raw trace file (``trace``).

    The model defaults to the first one of the folder. The span defaults to an hour from
    noon of the data's first day, moved earlier when the data end sooner. A ``data_dir``
    that is not a shortcut is written as an absolute path, so the spec works from any folder.

    With ``trace``, the source is that file (written as an absolute path, with its
    ``preset``, detected from the columns when not given) and the span defaults to the
    whole trace. ``fit_length_correlation`` sets the spec's ``length_correlation`` to the
    Gaussian-copula correlation of the trace's input and output lengths
    (:func:`servegen_core.sources.fit.length_correlation`, rounded to 4 decimals), so that composed
    lengths keep the source's rank correlation. ``fit_prefix`` adds a ``prefix`` section
    fitted to the trace's ``hash_ids`` (:func:`servegen_core.generate.sessions.fit_prefix`,
    ``block_size`` tokens per id, 512 by default; one profile per client when the trace has
    several clients).
    """
    if trace is not None:
        return _trace_template(
            trace, preset, start_s=start_s, duration_s=duration_s, seed=seed, fit=fit_length_correlation,
            fit_prefix=fit_prefix, block_size=block_size,
        )
    if fit_length_correlation or fit_prefix:
        flag = "--fit-length-correlation" if fit_length_correlation else "--fit-prefix"
        msg = f"{flag} needs a raw trace (--trace FILE) to fit"
        raise CliError(msg)
    if preset is not None:
        msg = "--preset applies to a raw trace file (--trace FILE)"
        raise CliError(msg)
    from servegen_core.sources.pool import list_models, load_pool
    from servegen_core.spec import ServeGenSource, Span, WorkloadSpec

    if model is None and not _is_model_dir(Path(data_dir)):
        models = list_models(resolve_data_dir(data_dir))
        if not models:
            msg = f"no models in {resolve_data_dir(data_dir)}"
            raise CliError(msg)
        model = models[0]
    folder, name = _pool_source(data_dir, model)
    pool = load_pool(folder, name)
    if duration_s is None:
        duration_s = min(TEMPLATE_DURATION_S, pool.duration_s)
    if start_s is None:
        start_s = max(pool.start_s, min(pool.start_s + TEMPLATE_START_S, pool.end_s - duration_s))
    if start_s < pool.start_s or start_s + duration_s > pool.end_s:
        msg = (
            f"span [{start_s}, {start_s + duration_s}) s is outside the data of {name} "
            f"([{pool.start_s}, {pool.end_s}) s)"
        )
        raise CliError(msg)
    start_s, duration_s = _whole(start_s), _whole(duration_s)
    text = data_dir if data_dir in DATA_SHORTCUTS else str(folder.resolve())
    return WorkloadSpec(
        source=ServeGenSource(data_dir=text, model=name),
        span=Span(start_s=start_s, duration_s=duration_s),
        seed=seed,
    )


def _trace_template(
    trace: str,
    preset: str | None,
    *,
    start_s: float | None,
    duration_s: float | None,
    seed: int,
    fit: bool,
    fit_prefix: bool = False,
    block_size: int | None = None,
) -> Any:
    """The spec template of a raw trace file (see :func:`spec_template`)."""
    from servegen_core.sources.fit import length_correlation, pool_from_trace
    from servegen_core.spec import Span, TraceSource, WorkloadSpec

    path = Path(trace).expanduser()
    if not path.is_file():
        msg = f"trace file not found: {path}"
        raise CliError(msg)
    _check_preset(preset)
    loaded = load_trace_file(path, preset=preset)
    trace_df = loaded.trace.filter(~pl.col("failed").fill_null(False)) if "failed" in loaded.trace.columns else loaded.trace
    pool = pool_from_trace(trace_df, name=f"trace/{path.name}")  # the pool a spec composes from
    start = 0.0 if start_s is None else float(start_s)
    if start >= pool.end_s or (duration_s is not None and start + duration_s > pool.end_s):
        msg = f"span [{start:g}, {start + (duration_s or 0):g}) s is outside the trace's windows ([{pool.start_s}, {pool.end_s}) s)"
        raise CliError(msg)
    rho = round(length_correlation(trace_df), 4) if fit else 0.0
    prefix = None
    if fit_prefix:
        from servegen_core.generate.sessions import fit_prefix as fit_prefix_section

        if "hash_ids" not in trace_df.columns:
            msg = f"--fit-prefix needs a trace with hash_ids (block ids); {path} has none"
            raise CliError(msg)
        try:
            several = trace_df["client_id"].n_unique() > 1  # a profile per client, as the pool fits them
            prefix = fit_prefix_section(trace_df, block_size=block_size or 512, per_client=several)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    return WorkloadSpec(
        source=TraceSource(path=str(path.resolve()), preset=loaded.preset),
        span=Span(start_s=_whole(start), duration_s=None if duration_s is None else _whole(duration_s)),
        length_correlation=rho,
        seed=seed,
        prefix=prefix,
    )


def _whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def _cmd_spec_template(args: argparse.Namespace, out: TextIO) -> int:
    spec = spec_template(
        args.data_dir,
        args.model,
        start_s=args.start_s,
        duration_s=args.duration_s,
        seed=args.seed,
        trace=args.trace,
        preset=args.preset,
        fit_length_correlation=args.fit_length_correlation,
        fit_prefix=args.fit_prefix,
        block_size=args.block_size,
    )
    if args.output == "-":
        out.write(spec.to_json())
        return EXIT_OK
    path = Path(args.output)
    spec.to_file(path, overwrite=args.overwrite)
    what = spec.source.path if args.trace is not None else spec.source.model
    duration = "whole trace" if spec.span.duration_s is None else f"{_fmt_number(spec.span.duration_s)} s"
    fitted = f", length_correlation {spec.length_correlation:g} (fitted)" if args.fit_length_correlation else ""
    if spec.prefix is not None:
        fitted += ", prefix section (fitted from hash_ids)"
    out.write(
        f"wrote {path} ({what}, {duration} from "
        f"{_fmt_number(spec.span.start_s)} s, seed {spec.seed}{fitted})\n"
        f"edit it, then: {PROG} generate --spec {path} --format mooncake -o workload.jsonl\n"
    )
    return EXIT_OK


# --------------------------------------------------------------------------- #
# Parser and entry point
# --------------------------------------------------------------------------- #


# --------------------------------------------------------------------------- #
# servegen whatif
# --------------------------------------------------------------------------- #


def _whatif_cost(args: argparse.Namespace) -> Any:
    from servegen_core.serve import simulate as serving
    roof = serving.roofline(
        args.model, args.gpu, efficiency=args.efficiency, overhead_s=args.overhead_ms / 1e3, tensor_parallel=args.tensor_parallel,
    )
    if not args.calibration:
        return roof
    return serving.calibrate(args.calibration, kv_tokens=roof.kv_tokens, name=f"calibrated {args.model}@{args.gpu}")


def _cmd_whatif(args: argparse.Namespace, out: TextIO) -> int:
    from servegen_core.serve import simulate as serving
    if (args.spec is None) == (args.trace is None):
        msg = "give exactly one of --spec (a workload spec) or --trace (a raw trace file)"
        raise CliError(msg)
    if args.preset is not None and args.trace is None:
        msg = "--preset applies to a --trace file"
        raise CliError(msg)
    slo = serving.Slo(ttft_p99_s=args.slo_ttft_p99, tpot_p99_s=args.slo_tpot_p99)
    cost = _whatif_cost(args)
    config = serving.ServerConfig(
        max_num_seqs=args.max_num_seqs, max_batched_tokens=args.max_batched_tokens, chunked_prefill=args.chunked_prefill,
    )
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else list(serving.BASELINES)
    progress = None if args.quiet else (lambda text: sys.stderr.write(f"{PROG}: {text}\n"))
    common = {"config": config, "router": args.router, "max_replicas": args.max_replicas, "workers": args.workers, "progress": progress}
    if args.spec is not None:
        from servegen_core.limits import max_requests as default_max_requests

        spec = read_spec(args.spec, seed=args.seed)
        limit = args.max_requests if args.max_requests is not None else default_max_requests(streamed=False)
        comparison = serving.compare_spec(spec, slo, cost, baselines=baselines, max_requests=limit, **common)
        what = str(args.spec)
    else:
        from servegen_core.sources.traces import load_trace

        if baselines != ["poisson"] and args.baselines:
            msg = "a raw trace is compared with its Poisson baseline only (--baselines poisson)"
            raise CliError(msg)
        loaded = load_trace(args.trace, preset=args.preset)
        comparison = serving.compare_trace(loaded.trace, slo, cost, window_s=args.window_s, seed=args.seed or 0, **common)
        what = str(args.trace)
    if args.json:
        _print_json(
            {
                "source": what,
                "slo": {"ttft_p99_s": slo.ttft_p99_s, "tpot_p99_s": slo.tpot_p99_s},
                "cost_model": comparison.cost_name,
                "cost_note": comparison.cost_note,
                "table": comparison.table.to_dicts(),
                "curves": comparison.curves.to_dicts(),
                "answer": comparison.sentence(),
            },
            out,
        )
        return EXIT_OK
    out.write(f"Replicas needed for {slo.describe()}: {what}\n{comparison.cost_note}\n\n")
    n_real = comparison.table["replicas"][0]
    at = f" at {n_real}" if n_real is not None else ""
    headers = ("workload", "requests", "replicas", "under-provisioned", f"p50 TTFT s{at}", f"p99 TTFT s{at}", f"p99 TPOT s{at}", "SLO met")
    rows = [
        (
            r["workload"], r["requests"], "none" if r["replicas"] is None else r["replicas"],
            None if r["under_provisioning"] is None else f"{r['under_provisioning']:.0%}",
            r["ttft_p50_s"], r["ttft_p99_s"], r["tpot_p99_s"], None if r["met"] is None else ("yes" if r["met"] else "no"),
        )
        for r in comparison.table.iter_rows(named=True)
    ]
    out.write(format_table(headers, rows, numeric=(False, True, True, True, True, True, True, False)) + "\n\n")
    for r in comparison.table.iter_rows(named=True):
        if r["note"]:
            out.write(f"note: {r['workload']}: {r['note']}\n")
    out.write(comparison.sentence() + "\n")
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors read ``servegen: error: ...`` (also in subcommands) and exit with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{PROG}: error: {message}\n")


def _number_arg(kind: type, test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown}") from None
        if not ((isinstance(value, int) or math.isfinite(value)) and test(value)):  # a 400-digit int has no float
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown}")
        return value

    parse.__name__ = what
    return parse


_pos_float = _number_arg(float, lambda v: v > 0, "a positive number")
_nonneg_float = _number_arg(float, lambda v: v >= 0, "a number >= 0")
_seed = _number_arg(int, lambda v: 0 <= v < 2**63, "a whole number in [0, 2**63)")
_chunk_s = _number_arg(float, lambda v: 1 <= v <= 1e9, "a number of seconds in [1, 1e9]")
_max_requests = _number_arg(int, lambda v: 1 <= v <= 10**12, "a whole number in [1, 10**12]")


def _block_size(text: str) -> int:
    from servegen_core.limits import MAX_BLOCK_SIZE

    return _number_arg(int, lambda v: 1 <= v <= MAX_BLOCK_SIZE, f"a whole number of tokens in [1, {MAX_BLOCK_SIZE:,}]")(text)


def _count(hi: int, what: str = "a whole number") -> Callable[[str], int]:
    return _number_arg(int, lambda v: 1 <= v <= hi, f"{what} in [1, {hi:,}]")


#: Largest SLO objective and Poisson-baseline window accepted on the command line (seconds).
_WHATIF_MAX_S = 86_400.0
_whatif_seconds = _number_arg(float, lambda v: 0 < v <= _WHATIF_MAX_S, f"a number of seconds in (0, {_WHATIF_MAX_S:,.0f}]")
_efficiency = _number_arg(float, lambda v: 0 < v <= 1, "a share in (0, 1]")
_overhead_ms = _number_arg(float, lambda v: 0 <= v <= 60_000, "a number of milliseconds in [0, 60,000]")


def _naive_kinds() -> tuple[str, ...]:
    from servegen_core.spec import NAIVE_KINDS

    return NAIVE_KINDS


def build_parser() -> argparse.ArgumentParser:
    """The ``servegen`` argument parser (subcommands ``models``, ``summary``, ``generate``, ``validate``, ``spec-template``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="print the traceback of an unexpected error (exit code 3)",
    )
    parser = _Parser(
        prog=PROG,
        description="Characterize LLM-serving traces and compose per-client workloads from ServeGen data.",
        epilog="exit codes: 0 ok, 1 a validation check failed, 2 usage, spec, data or file error, 3 unexpected error",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("models", help="list the models of a ServeGen data folder", parents=[common])
    p.add_argument("data_dir", metavar="DATA_DIR", help="data folder, or 'demo' / 'shared'")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.set_defaults(func=_cmd_models)

    from servegen_core.sources.traces import PRESETS

    p = sub.add_parser("summary", help="headline characterization of a ServeGen model or a raw trace", parents=[common])
    p.add_argument("source", metavar="SOURCE", help="ServeGen data folder ('demo', 'shared', a path) or a trace file")
    p.add_argument("--model", help="model of the data folder, e.g. language/m-large")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of a trace file (default: detected)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    p.set_defaults(func=_cmd_summary)

    from servegen_core.export.formats import DEFAULT_BLOCK_SIZE, FORMATS

    p = sub.add_parser("generate", help="compose the workload of a spec and export it", parents=[common])
    p.add_argument("--spec", required=True, metavar="SPEC", help="workload spec (JSON), e.g. from spec-template")
    p.add_argument(
        "-f", "--format", required=True, choices=list(FORMATS), metavar="FORMAT",
        help=f"output format: {', '.join(FORMATS)}",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write (its spec goes to OUT.spec.json)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT (and its spec) if they exist")
    p.add_argument(
        "--chunk-s", type=_chunk_s, metavar="N",
        help=(
            f"generate and write N span seconds at a time (default {DEFAULT_CHUNK_S:g}; parquet is written "
            "whole unless given, and as a folder of part files when given)"
        ),
    )
    p.add_argument(
        "--naive",
        choices=list(_naive_kinds()),
        help="compose a naive baseline of the spec instead: only Poisson arrivals (poisson), only pooled lengths "
        "(pooled_lengths), both (poisson_pooled), or a constant rate with Poisson arrivals (constant)",
    )
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's)")
    p.add_argument(
        "--block-size", type=_block_size, default=None, metavar="TOKENS",
        help=(
            f"tokens per hash_ids block (default: the target's own, {DEFAULT_BLOCK_SIZE} for mooncake and "
            "guidellm, 16 for vllm timed_trace)"
        ),
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-requests", type=_max_requests, metavar="N",
        help=(
            "refuse a workload expected to hold more than N requests (default: $SERVEGEN_MAX_REQUESTS or "
            "200,000,000 when streamed; $SERVEGEN_MAX_REQUESTS_MEMORY or 20,000,000 for parquet written whole)"
        ),
    )
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("validate", help="check a workload against its spec and source (exit 1 if a check fails)", parents=[common])
    p.add_argument("--spec", required=True, metavar="SPEC", help="workload spec (JSON)")
    p.add_argument("--workload", metavar="FILE", help="workload file to check (default: compose the spec)")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of the workload file (default: detected)")
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument(
        "--max-requests", type=_max_requests, metavar="N",
        help="refuse to compose a workload expected to hold more than N requests (default: the in-memory limit)",
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("spec-template", help="write an example workload spec (JSON)", parents=[common])
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="spec file to write ('-' for stdout)")
    p.add_argument("--data-dir", default="demo", help="ServeGen data folder, 'demo' (default) or 'shared'")
    p.add_argument("--model", help="model, e.g. language/m-large (default: the folder's first model)")
    p.add_argument("--trace", metavar="FILE", help="a raw trace file as the source instead of ServeGen data")
    p.add_argument("--preset", help="the trace's preset (default: detected from its columns)")
    p.add_argument(
        "--fit-length-correlation", action="store_true",
        help="set length_correlation to the input/output correlation fitted from --trace",
    )
    p.add_argument(
        "--fit-prefix", action="store_true",
        help="add a prefix section (shared prompts, sessions) fitted to the hash_ids of --trace",
    )
    p.add_argument(
        "--block-size", type=_block_size, metavar="TOKENS",
        help="tokens per hash id of --trace for --fit-prefix (default 512, Mooncake's)",
    )
    p.add_argument(
        "--start-s", type=_nonneg_float,
        help="span start in seconds of the data (default: noon of day 1; a trace: its start)",
    )
    p.add_argument("--duration-s", type=_pos_float, help="span length in seconds (default 3600; a trace: all of it)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=_cmd_spec_template)


    from servegen_core.serve.hardware import GPU_ALIASES, GPUS, MODELS
    from servegen_core.limits import MAX_BATCHED_TOKENS, MAX_NUM_SEQS, MAX_REPLICAS, MAX_TENSOR_PARALLEL, max_workers
    from servegen_core.serve.simulate import ALL_BASELINES, BASELINES, ROUTERS

    p = sub.add_parser(
        "whatif", help="replicas a workload needs for a latency SLO, realistic vs its naive baselines (simulated)", parents=[common],
    )
    p.add_argument("--spec", metavar="SPEC", help="workload spec (JSON): compared with its naive baselines")
    p.add_argument("--trace", metavar="FILE", help="raw trace file: compared with its Poisson baseline")
    p.add_argument("--preset", choices=list(PRESETS), help="column preset of the --trace file (default: detected)")
    p.add_argument("--model", required=True, choices=list(MODELS), help="served model (roofline cost model)")
    p.add_argument("--gpu", required=True, choices=[*GPUS, *GPU_ALIASES], help="GPU of one replica")
    p.add_argument("--tensor-parallel", type=_count(MAX_TENSOR_PARALLEL), default=1, metavar="N", help="GPUs per replica (default 1)")
    p.add_argument("--efficiency", type=_efficiency, default=0.6, help="share of peak FLOP/s and bandwidth reached (default 0.6)")
    p.add_argument("--overhead-ms", type=_overhead_ms, default=2.0, help="fixed time per iteration in ms (default 2)")
    p.add_argument(
        "--calibration", nargs="+", metavar="FILE",
        help="fit the cost model to your benchmark results (AIPerf profile_export_aiperf.json, vLLM bench JSON, or CSV)",
    )
    p.add_argument("--slo-ttft-p99", type=_whatif_seconds, metavar="S", help="p99 time to first token objective (seconds)")
    p.add_argument("--slo-tpot-p99", type=_whatif_seconds, metavar="S", help="p99 time per output token objective (seconds)")
    p.add_argument(
        "--baselines", metavar="LIST",
        help=f"comma-separated naive baselines of a spec, from {','.join(ALL_BASELINES)} (default: {','.join(BASELINES)})",
    )
    p.add_argument("--router", choices=list(ROUTERS), default="round_robin", help="request router (default round_robin)")
    p.add_argument("--chunked-prefill", action="store_true", help="Sarathi-style chunked prefill instead of prefill-first")
    p.add_argument("--max-num-seqs", type=_count(MAX_NUM_SEQS), default=256, metavar="N", help="running sequences per replica (default 256)")
    p.add_argument("--max-batched-tokens", type=_count(MAX_BATCHED_TOKENS), default=8192, metavar="N", help="tokens per iteration (default 8192)")
    p.add_argument("--max-replicas", type=_count(MAX_REPLICAS), default=1024, metavar="N", help="largest replica count tried (default 1024)")
    p.add_argument("--window-s", type=_whatif_seconds, default=600.0, help="windows keeping a trace's request counts in its Poisson baseline (default 600)")
    p.add_argument("--seed", type=_seed, help="random seed (overrides the spec's; the trace baseline's draw)")
    p.add_argument(
        "--workers", type=_count(max_workers()), default=1, metavar="N",
        help=f"processes simulating replicas (default 1, at most {max_workers()}: 4 x the CPUs)",
    )
    p.add_argument("--max-requests", type=_max_requests, metavar="N", help="refuse a workload expected to hold more than N requests")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_whatif)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``servegen`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: :data:`EXIT_OK` (0), :data:`EXIT_CHECK_FAILED` (1, ``validate`` found a failing
    check), :data:`EXIT_ERROR` (2, a usage, spec, data or file-system error: one line
    ``servegen: error: ...`` on stderr), :data:`EXIT_UNEXPECTED` (3, anything else: a short
    message, and the traceback only with ``--debug``), 130 on Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    debug = bool(getattr(args, "debug", False))
    try:
        return args.func(args, sys.stdout)
    except (ServeGenError, OSError) as exc:
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return 130
    except MemoryError:
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(
            f"{PROG}: internal error: out of memory (a smaller span, rate or --chunk-s may help; "
            "rerun with --debug for the traceback)\n"
        )
        return EXIT_UNEXPECTED
    except Exception as exc:  # noqa: BLE001  (the last resort: one line, not a traceback)
        _flush_stdout()
        if debug:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.write(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]}\n")
        else:
            sys.stderr.write(
                f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
                "(rerun with --debug for the traceback)\n"
            )
        return EXIT_UNEXPECTED


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe or a full disk behind stdout
        pass


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{exc.filename}: {exc.strerror}"
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
