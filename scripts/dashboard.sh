#!/usr/bin/env bash
# Sets everything up, then opens the dashboard on the embedded (synthetic) demo data.
# Extra arguments go to `streamlit run`, e.g. scripts/dashboard.sh --server.port 8600
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/streamlit run dashboard/app.py --browser.gatherUsageStats false "$@"
