"""Parse an ``aiperf profile`` command line with AIPerf's own parser and read its input file back.

Run under AIPerf's interpreter (``.venv-aiperf/bin/python parse_aiperf_command.py profile ...``):
the arguments after ``profile`` go through ``aiperf.cli_commands.profile.app`` (cyclopts), then
``resolve_config`` and ``build_benchmark_plan``, exactly as ``aiperf profile`` does before it starts
a benchmark (nothing is sent). Prints one JSON object: the models, URLs, endpoint, dataset path,
format and block size, the profiling phase's type and request count, and the input file's
records as AIPerf's loader reads them (``MooncakeTrace``; the BurstGPT loader's row parser).
"""

from __future__ import annotations

import csv
import json
import sys

from aiperf.cli_commands.profile import app
from aiperf.config.flags.resolver import resolve_config
from aiperf.config.loader import build_benchmark_plan
from aiperf.dataset.loader.burst_gpt import BurstGPTTraceDatasetLoader
from aiperf.dataset.loader.models import MooncakeTrace


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "profile":
        print(json.dumps({"error": f"expected 'profile ...', got {argv[:1]}"}))
        return 2
    _command, bound, _ignored = app.parse_args(argv[1:], exit_on_error=False)
    cli = bound.kwargs["cli_config"]
    config = resolve_config(cli, cli.config_file)
    build_benchmark_plan(config)  # raises where the command would fail before sending anything
    bench = json.loads(config.model_dump_json())["benchmark"]
    dataset = bench["datasets"][0]
    phase = bench["phases"][0]
    records = []
    if dataset["format"] == "mooncake_trace":
        with open(dataset["path"], encoding="utf-8") as fh:
            for line in fh:
                rec = MooncakeTrace.model_validate_json(line)
                records.append([rec.timestamp, rec.input_length, rec.output_length, len(rec.hash_ids or [])])
    elif dataset["format"] == "burst_gpt_trace":
        with open(dataset["path"], encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                # the loader's own row parser (it does not use its instance); None = a row it drops
                rec = BurstGPTTraceDatasetLoader._parse_row(None, row)  # noqa: SLF001
                records.append(None if rec is None else [rec.timestamp, rec.input_length, rec.output_length, 0])
    print(json.dumps({
        "models": [m["name"] for m in bench["models"]["items"]],
        "urls": bench["endpoint"]["urls"],
        "endpoint": bench["endpoint"]["type"],
        "streaming": bench["endpoint"]["streaming"],
        "tokenizer": bench["tokenizer"]["name"],
        "path": dataset["path"],
        "format": dataset["format"],
        "block_size": dataset["block_size"],
        "phase": phase["type"],
        "requests": phase["requests"],
        "records": records,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
