"""Helpers for the export tests: constants, notes collector, spec stand-in, readers, chunking."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from servegen_core.export.writer import export_trace

BENCH_JSONL = ("mooncake", "vllm", "guidellm")
BENCH_CSV = ("vidur", "splitwise", "burstgpt")
STREAMED = ("csv", "jsonl", *BENCH_JSONL, *BENCH_CSV)
MULTIMODAL_REASONING = (
    "text_tokens",
    "image_tokens",
    "image_count",
    "reasoning_tokens",
    "answer_tokens",
    "reason_ratio",
)


class Notes(list):
    def __call__(self, text: str) -> None:
        self.append(text)


class Spec:
    """Stands in for a WorkloadSpec: anything with to_json()."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def to_json(self) -> str:
        return json.dumps({"source": "language/m-large", "seed": self.seed}, indent=2)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV file, read with the csv module."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def chunks_of(df: pl.DataFrame, sizes: list[int]):
    """``df`` cut into slices of ``sizes`` rows, then the rest."""
    start = 0
    for size in sizes:
        yield df.slice(start, size)
        start += size
    yield df.slice(start)


def export_noting(df, path, fmt, **kw):
    """``export_trace`` with the notes collected in a :class:`Notes` (unless ``note`` is given)."""
    kw.setdefault("note", Notes())
    return export_trace(df, path, fmt, **kw)
