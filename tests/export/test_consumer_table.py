"""README's replay-consumer table is the one tests/replay/consumer_table.py renders from the tests' results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _table_module():
    spec = importlib.util.spec_from_file_location("consumer_table", ROOT / "tests" / "replay" / "consumer_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_consumer_table_is_generated():
    table = _table_module()
    assert table.readme_section(table.README.read_text()) == table.render(), (
        "README.md's consumer table is stale: run python tests/replay/consumer_table.py --write"
    )


def test_table_marks_what_was_run_and_what_was_not():
    table = _table_module()
    seen = {"x": {"consumer": "AIPerf", "version": "0.13.0", "format": "mooncake", "rows": "3/3",
                  "timing": "exact (ms)", "lengths": "exact", "block_size": 16}}
    text = table.render(seen)
    aiperf = next(line for line in text.splitlines() if line.startswith("| AIPerf | 0.13.0 | `mooncake`"))
    assert "own parser, file read back" in aiperf and "3/3" in aiperf and "blocks 16 seen" in aiperf
    guidellm = next(line for line in text.splitlines() if line.startswith("| GuideLLM"))
    assert "not run here" in guidellm
