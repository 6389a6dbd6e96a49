#!/usr/bin/env bash
# Sets everything up, then opens the dashboard on the embedded (synthetic) demo data.
# Listens on 127.0.0.1 only (SERVEGEN_ADDRESS=0.0.0.0 serves every interface: see the README).
# Streamlit's upload limit is SERVEGEN_MAX_UPLOAD_MB (default 500), the same as the page's own check.
# Extra arguments go to `streamlit run` (after ours, so they win), e.g. scripts/dashboard.sh --server.port 8600
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/streamlit run dashboard/app.py --browser.gatherUsageStats false \
    --server.address "${SERVEGEN_ADDRESS:-127.0.0.1}" \
    --server.maxUploadSize "${SERVEGEN_MAX_UPLOAD_MB:-500}" \
    "$@"
