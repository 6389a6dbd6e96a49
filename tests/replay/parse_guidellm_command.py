"""Parse a ``guidellm run`` command line with GuideLLM's own parser and check its trace rows.

Run under GuideLLM's interpreter (``.venv-guidellm/bin/python parse_guidellm_command.py run ...``):
the arguments after ``run`` go through ``guidellm.cli.run.run`` (click, with GuideLLM's pydantic
validation of every ``kind=...`` option), with the benchmark entry point replaced by one that keeps
the validated ``BenchmarkScenario`` instead of sending requests. Then (where GuideLLM's data package imports, i.e. with torch) every line of the ``--data``
file is checked by GuideLLM's ``MooncakeTraceFormat.validate_row`` at the parsed
``hash_id_block_size`` (``ceil(input_length / block) == len(hash_ids)``, ids non-negative) and read
with its default column names. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys

import guidellm.entrypoints as entrypoints
from guidellm.cli.run import run

try:  # GuideLLM's data package imports torch, which .venv-guidellm leaves out (about 6 GB)
    from guidellm.data.deserializers.trace_mooncake import MooncakeTraceFormat
except ImportError as exc:
    MooncakeTraceFormat = None
    ROW_CHECK_MISSING = f"{type(exc).__name__}: {exc}"
else:
    ROW_CHECK_MISSING = ""


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print(json.dumps({"error": f"expected 'run ...', got {argv[:1]}"}))
        return 2
    kept = {}

    async def keep(args, progress, console):  # noqa: ARG001 - the entry point's signature
        kept["args"] = args

    entrypoints.benchmark_generative_text = keep
    run.main(argv[1:], standalone_mode=False)
    spec = json.loads(kept["args"].model_dump_json())["spec"]
    data = spec["data"][0]
    fmt = None if MooncakeTraceFormat is None else MooncakeTraceFormat(kept["args"].spec.data[0], dataset=None)
    rows, invalid = [], []
    with open(data["source"]["path"], encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            row = json.loads(line)
            try:
                if fmt is not None:
                    fmt.validate_row(row)
            except Exception as exc:  # noqa: BLE001 - reported
                invalid.append([number, str(exc)])
            rows.append([row[data["timestamp_column"]], row[data["prompt_tokens_column"]],
                         row[data["output_tokens_column"]], len(row[data["hash_ids_column"]])])
    print(json.dumps({
        "backend": spec["backend"]["kind"],
        "target": spec["backend"]["target"],
        "model": spec["backend"]["model"],
        "tokenizer": spec["tokenizer"]["model"],
        "data_kind": data["kind"],
        "source_kind": data["source"]["kind"],
        "path": data["source"]["path"],
        "block_size": data["hash_id_block_size"],
        "profile": spec["profile"]["kind"],
        "schedule_turn": spec["profile"]["schedule_turn"],
        "time_scale": spec["profile"]["time_scale"],
        "constraints": spec["constraints"],
        "rows": rows,
        "invalid": invalid,
        "row_check_missing": ROW_CHECK_MISSING,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
