"""``servegen models DATA_DIR [--json]``: the models of a ServeGen data folder, one row each."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from servegen_core.cli.common import EXIT_OK, CliError
from servegen_core.cli.inputs import resolve_data_dir
from servegen_core.cli.output import format_table, print_json
from servegen_core.sources.pool import list_models, load_pool

__all__ = ["ModelInfo", "model_infos", "run"]


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


def run(args: argparse.Namespace, out: TextIO) -> int:
    """List the models of ``args.data_dir`` on ``out``, as a table or JSON."""
    data_dir = resolve_data_dir(args.data_dir)
    infos = model_infos(data_dir)
    if not infos:
        msg = f"no models in {data_dir} (expected <category>/<model>/chunk-<client>-trace.csv files)"
        raise CliError(msg)
    if args.json:
        print_json(
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
