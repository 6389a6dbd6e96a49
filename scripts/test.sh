#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine and runs the whole test suite:
# the Python packages into .venv, Debian's Chromium for the browser tests when it is missing,
# AIPerf into .venv-aiperf (requirements-replay.txt) for the replay test when it is missing,
# GuideLLM's parser into .venv-guidellm (requirements-replay-guidellm.txt, no torch: about 650 MB,
# 1-2 minutes) for tests/replay/test_replay_commands.py when it is missing, and Vidur into .venv-vidur
# (requirements-replay-vidur.txt, about 2 minutes).
# The shared reference data must sit at ../shared/data (or $SERVEGEN_SHARED_DATA); its absence fails the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/sources/test_pool.py -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # --no-upgrade: installs chromium and what it lacks, never upgrades a package already installed
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade chromium
fi
# AIPerf (tests/replay) pins packages that conflict with ours: its own virtualenv, built once.
if [ ! -x "$ROOT/.venv-aiperf/bin/aiperf" ]; then
    "${PYTHON:-python3}" -m venv "$ROOT/.venv-aiperf"
    "$ROOT/.venv-aiperf/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/requirements-replay.txt"
fi
# GuideLLM 0.8.1 pins click~=8.4 and more: its own virtualenv; torch (about 6 GB with CUDA) is left out,
# GuideLLM's command-line parser does not import it.
if [ ! -x "$ROOT/.venv-guidellm/bin/guidellm" ]; then
    "${PYTHON:-python3}" -m venv "$ROOT/.venv-guidellm"
    "$ROOT/.venv-guidellm/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/requirements-replay-guidellm.txt"
    "$ROOT/.venv-guidellm/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps guidellm==0.8.1
fi
# Vidur 0.0.26 (its trace replay reader and parser, no torch): its own virtualenv, built once.
if [ ! -x "$ROOT/.venv-vidur/bin/python" ] || ! "$ROOT/.venv-vidur/bin/python" -c "import vidur" 2>/dev/null; then
    "${PYTHON:-python3}" -m venv "$ROOT/.venv-vidur"
    "$ROOT/.venv-vidur/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/requirements-replay-vidur.txt"
fi
cd "$ROOT"
# The core's layering contract (pyproject.toml [tool.importlinter]): an upward import fails here.
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
