"""Render the README's replay-consumer table from what the tests saw (``consumer_results.json``).

``python tests/replay/consumer_table.py`` prints the table; ``--write`` puts it into README.md
between ``<!-- consumer-table:start -->`` and ``<!-- consumer-table:end -->``. Rows: every printed
replay command (:func:`servegen_core.export.formats.replay_commands`). Where a consumer's own
parser ran in ``tests/replay/test_replay_commands.py`` (recorded with
``SERVEGEN_RECORD_CONSUMERS=1``), timing, lengths and the block size are what it read back; the
other consumers are marked "not run here" and described from their cited sources. Sessions and
prefix blocks follow from the format (:data:`~servegen_core.export.formats.SESSION_FORMATS`,
:data:`~servegen_core.export.formats.HASH_FORMATS`); "ignores" is the command's own note.
tests/export/test_consumer_table.py fails when README.md and this rendering differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from servegen_core.export.formats import FORMATS, HASH_FORMATS, SESSION_FORMATS, replay_commands

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
RESULTS = HERE / "consumer_results.json"
START, END = "<!-- consumer-table:start -->", "<!-- consumer-table:end -->"


def _seen(results: dict, consumer: str, fmt: str) -> list[dict]:
    return [v for v in results.values() if v["consumer"] == consumer and v["format"] == fmt]


def render(results: dict | None = None) -> str:
    if results is None:
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    lines = [
        "| consumer | version | format | checked | rows replayed | timing | lengths | sessions | prefix blocks | ignores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt in FORMATS:
        for c in replay_commands(fmt, "FILE"):
            seen = _seen(results, c.consumer, fmt)
            if seen:
                blocks = sorted({s["block_size"] for s in seen if s.get("block_size")})
                checked = "own parser, file read back" + (
                    " (rows validated)" if any(s.get("rows_validated") for s in seen) else "")
                rows = ", ".join(sorted({s["rows"] for s in seen}))
                timing, lengths = seen[0]["timing"], seen[0]["lengths"]
            else:
                blocks, checked, rows, timing, lengths = [], "not run here (cited source)", "—", "per source", "per source"
            if fmt in SESSION_FORMATS and c.consumer == "AIPerf":
                sessions = "conversations"
            elif fmt == "blis":
                sessions = "session_id, round_index"
            elif fmt in SESSION_FORMATS:
                sessions = "not checked"
            else:
                sessions = "no"
            if fmt in HASH_FORMATS:
                prefix = "hash_ids" + (f" (blocks {', '.join(map(str, blocks))} seen)" if blocks else "")
            else:
                prefix = "no"
            note = c.note.replace("|", "/")
            lines.append(f"| {c.consumer} | {c.version} | `{fmt}` | {checked} | {rows} | {timing} | {lengths} | {sessions} | {prefix} | {note} |")
    return "\n".join(lines) + "\n"


def readme_section(text: str) -> str:
    a, b = text.index(START) + len(START), text.index(END)
    return text[a:b].strip("\n") + "\n"


def main(argv: list[str]) -> int:
    table = render()
    if argv == ["--write"]:
        text = README.read_text()
        a, b = text.index(START) + len(START), text.index(END)
        README.write_text(text[:a] + "\n" + table + text[b:])
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
