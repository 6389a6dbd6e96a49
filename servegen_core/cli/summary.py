"""``servegen summary SOURCE [--model M] [--preset P] [--json]``: the headline characterization
of a ServeGen model or a raw trace file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from servegen_core.characterize import arrivals, lengths, multimodal, prefix, rates, reasoning
from servegen_core.cli.common import EXIT_OK, CliError
from servegen_core.cli.inputs import DATA_SHORTCUTS, check_preset, load_trace_file, pool_source
from servegen_core.cli.output import fmt_number, format_table, print_json
from servegen_core.result import Result
from servegen_core.sources.pool import ClientPool, expected_requests, load_pool

__all__ = ["SUMMARY_FIELDS", "TOP_K", "headline", "run"]

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


def _load_source(
    text: str, *, model: str | None, preset: str | None, hash_block_size: int | None = None
) -> tuple[ClientPool | pl.DataFrame, dict[str, Any], list[str]]:
    """A ClientPool or a RequestTrace for ``summary``, a description of it, and notes from loading."""
    path = Path(text).expanduser()
    if text not in DATA_SHORTCUTS and path.is_file():
        check_preset(preset)
        if model is not None:
            msg = f"--model applies to a ServeGen data folder, but {path} is a trace file"
            raise CliError(msg)
        loaded = load_trace_file(path, preset=preset, hash_block_size=hash_block_size)
        info = {
            "kind": "trace",
            "path": str(path),
            "preset": loaded.preset,
            "preset_detected": loaded.detected,
            "timestamp_resolution_s": loaded.resolution.grid_s,
            "hash_block_size": loaded.hash_block_size,
        }
        notes = list(loaded.warnings)
        if loaded.n_failed:
            notes.append(f"{loaded.n_failed:,} requests flagged as failed are included")
        return loaded.trace, info, notes
    for flag, given in (("--preset", preset), ("--hash-block-size", hash_block_size)):
        if given is not None:
            msg = f"{flag} applies to a raw trace file, but {text} is not a file"
            raise CliError(msg)
    data_dir, name = pool_source(text, model)
    pool = load_pool(data_dir, name)
    info = {"kind": "servegen", "data_dir": str(data_dir), "model": name}
    return pool, info, []


def _totals(source: ClientPool | pl.DataFrame, notes: list[str]) -> tuple[float, float, int, list[str]]:
    """Requests (expected, for a pool), span seconds, clients and the :data:`SUMMARY_FIELDS` the
    source has; a note when some clients have no length data."""
    if isinstance(source, ClientPool):
        clients = len(source.client_ids)
        if source.clients_without_lengths:
            notes.append(
                f"{len(source.clients_without_lengths)} of {clients} clients have no length data; "
                "length statistics cover the others"
            )
        fields = [f for f in SUMMARY_FIELDS if f in source.fields]
        return expected_requests(source), float(source.duration_s), clients, fields
    span_s = float(source["timestamp_s"].max() - source["timestamp_s"].min()) if source.height else 0.0
    fields = [f for f in SUMMARY_FIELDS if f in source.columns]
    return source.height, span_s, source["client_id"].n_unique(), fields


def headline(source: ClientPool | pl.DataFrame) -> tuple[dict[str, Any], list[str]]:
    """Headline characterization of a ClientPool or RequestTrace, as a JSON-ready dict, and notes.

    Keys: ``requests``, ``span_s``, ``clients``, ``mean_rps``, ``top10_share``, ``gini``,
    ``rate`` (peak/trough of the aggregate rate per 600 s), ``burstiness`` (share of
    windows and of load with CV > 1), ``lengths`` (per field: requests, mean, p50, p90,
    p99, max). A value that cannot be computed is ``None`` and its reason is in the notes.
    """
    notes: list[str] = []
    requests, span_s, clients, fields = _totals(source, notes)

    def value(result: Result, attr: str, label: str) -> Any:
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


def _prefix_headline(trace: pl.DataFrame, block: int | None, notes: list[str]) -> dict[str, Any] | None:
    """Prefix blocks of a trace with ``hash_ids``: tokens per id (``None``: not documented by its
    layout nor given), ids, and the share of them seen earlier in the trace."""
    reuse = prefix.block_reuse(trace)
    if not reuse.ok:
        notes.append(f"prefix blocks: {reuse.reason}")
        return None
    if block is None:
        notes.append("prefix blocks: the file's tokens per hash id are not documented by its layout (give --hash-block-size)")
    return {"hash_block_size": block, "blocks": reuse.blocks, "unique_blocks": reuse.unique_blocks, "reuse_ratio": reuse.reuse_ratio}


def _prefix_lines(pre: dict[str, Any] | None) -> list[str]:
    """The text line of the prefix headline (none without one)."""
    if not pre:
        return []
    size = "unknown size" if pre["hash_block_size"] is None else f"{pre['hash_block_size']:,} tokens each"
    return ["", f"prefix blocks  {fmt_number(pre['blocks'])} hash ids ({size}), {_pct(pre['reuse_ratio'])} seen earlier"]


def _multimodal_headline(source: ClientPool | pl.DataFrame, notes: list[str]) -> dict[str, Any] | None:
    """Per modality: share of input tokens and share of requests carrying it."""
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


def _reasoning_headline(source: ClientPool | pl.DataFrame, notes: list[str]) -> dict[str, Any] | None:
    """Reasoning share of output tokens, reason-ratio median, and whether the ratio is bimodal."""
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
    """The text report of ``servegen summary``: title, headline numbers, modalities, reasoning, lengths, notes."""
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
        ("requests", fmt_number(round(head["requests"]) if info["kind"] == "servegen" else head["requests"])),
        ("span", _span_text(span)),
        ("clients", fmt_number(head["clients"])),
        ("mean rate", f"{fmt_number(head['mean_rps'])} req/s"),
        (f"top-{TOP_K} client share", _pct(head[f"top{TOP_K}_share"])),
        ("Gini (client volume)", fmt_number(head["gini"])),
        (f"aggregate rate max ({res} s bins)", f"{fmt_number(head['rate']['peak_rps'])} req/s"),
        (f"aggregate rate min ({res} s bins)", f"{fmt_number(head['rate']['trough_rps'])} req/s"),
        ("client windows with CV > 1", _pct(burst["share_windows_cv_gt1"])),
        ("load in windows with CV > 1", _pct(burst["share_load_cv_gt1"])),
        ("median window CV (by load)", fmt_number(burst["load_weighted_median_cv"])),
    ]
    width = max(len(k) for k, _ in rows)
    lines.extend(f"{k.ljust(width)}  {v}" for k, v in rows)
    lines.extend(_multimodal_lines(head.get("multimodal")))
    lines.extend(_reasoning_lines(head.get("reasoning")))
    lines.extend(_prefix_lines(head.get("prefix")))
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


def _multimodal_lines(mm: dict[str, Any] | None) -> list[str]:
    """The text lines of the multimodal headline (none without one)."""
    if not mm:
        return []
    lines = [""]
    for m, v in mm["modalities"].items():
        if not (v["token_share"] or v["request_share"]):
            continue
        lines.append(
            f"{m:<6} {_pct(v['token_share'])} of input tokens, in {_pct(v['request_share'])} of requests"
        )
    if mm["mean_images_per_request"] is not None:
        lines.append(f"images per request (mean)  {fmt_number(mm['mean_images_per_request'])}")
    return lines


def _reasoning_lines(rs: dict[str, Any] | None) -> list[str]:
    """The text lines of the reasoning headline (none without one)."""
    if not rs:
        return []
    lines = [""]
    if "reasoning_share" in rs:
        lines.append(f"reasoning share of output tokens  {_pct(rs['reasoning_share'])}")
    if "reason_ratio_p50" in rs:
        lines.append(
            f"reason ratio mean / median       {fmt_number(rs['reason_ratio_mean'])} / "
            f"{fmt_number(rs['reason_ratio_p50'])}"
        )
    if "bimodal" in rs:
        modes = ", ".join(f"{fmt_number(m['location'])} ({_pct(m['weight'])})" for m in rs["modes"])
        verdict = "bimodal" if rs["bimodal"] else "not bimodal"
        lines.append(
            f"reason ratio modes                {modes}; "
            f"bimodality coefficient {fmt_number(rs['bimodality_coefficient'])} ({verdict})"
        )
    return lines


def _span_text(span_s: float) -> str:
    text = f"{fmt_number(span_s)} s = {span_s / 3600:.3g} h"
    return text + (f" = {span_s / 86400:.3g} d" if span_s >= 86400 else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Print the headline characterization of ``args.source`` on ``out``, as text or JSON."""
    source, info, notes = _load_source(args.source, model=args.model, preset=args.preset, hash_block_size=args.hash_block_size)
    head, more = headline(source)
    notes.extend(more)
    if isinstance(source, pl.DataFrame) and "hash_ids" in source.columns:
        head["prefix"] = _prefix_headline(source, info.get("hash_block_size"), notes)
    if args.json:
        print_json({"source": info, **head, "notes": notes}, out)
    else:
        out.write(_summary_text(info, head, notes))
    return EXIT_OK
