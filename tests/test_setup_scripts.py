"""Issue 18 points 11-12: the test command installs only what is missing (never upgrades the
machine) and the README says what it installs; the README's sections are each written once."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_test_script_installs_only_what_is_missing():
    script = (ROOT / "scripts" / "test.sh").read_text()
    commands = [line.split("#", 1)[0] for line in script.splitlines() if "apt-get" in line.split("#", 1)[0]]
    installs = [c for c in commands if re.search(r"apt-get\s+(-\S+\s+)*install\b", c)]
    assert installs, "scripts/test.sh installs Chromium with apt-get"
    for c in installs:
        assert "--no-upgrade" in c, c
        assert "chromium" in c.split(), c
    assert not [c for c in commands if re.search(r"apt-get\s+(-\S+\s+)*(upgrade|dist-upgrade|full-upgrade)\b", c)]
    # installed only when missing
    assert re.search(r"if ! command -v chromium .*\[ ! -x /usr/bin/chromium \]", script)


def test_the_readme_says_what_the_test_command_installs_and_has_one_layout_section():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("---")]
    assert "scripts/test.sh" in head and "chromium" in head and "when `/usr/bin/chromium` is missing" in head
    assert "--no-upgrade" in head and "nothing already installed is upgraded" in head
    assert "requirements-replay.txt" in head  # the AIPerf virtualenv it builds
    headings = re.findall(r"^#+ .+$", readme, flags=re.M)
    repeated = {h for h in headings if headings.count(h) > 1}
    assert not repeated, repeated
    assert headings.count("## Layout") == 1
