#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its runtime and test requirements.
# Sourced by scripts/dashboard.sh and scripts/test.sh; safe to run again (installs only what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PYTHON" -m venv "$ROOT/.venv"
fi
"$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$ROOT/requirements-test.txt" -e "$ROOT"
