"""ServeGen workbench dashboard: ``streamlit run dashboard/app.py`` (opens on the synthetic demo data)."""

from pathlib import Path

import streamlit as st

import specstate
import state

# Page scripts live in views/, not pages/: Streamlit treats a pages/ folder beside the entry
# script as a legacy multipage app until st.navigation has run once, so the first request
# after the server starts (and every AppTest run) would bypass this file.
PAGES = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="ServeGen workbench", page_icon=":material/monitoring:", layout="wide")

pages = {
    "Source": [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    ],
    "Characterize": [
        st.Page(PAGES / "burstiness.py", title="Burstiness", icon=":material/bolt:"),
        st.Page(PAGES / "rate_shifts.py", title="Rate shifts", icon=":material/show_chart:"),
        st.Page(PAGES / "lengths.py", title="Lengths", icon=":material/straighten:"),
        st.Page(PAGES / "multimodal.py", title="Multimodal", icon=":material/image:"),
        st.Page(PAGES / "reasoning.py", title="Reasoning", icon=":material/psychology:"),
        st.Page(PAGES / "prefix.py", title="Prefix reuse", icon=":material/layers:"),
    ],
    "Compose": [
        st.Page(PAGES / "clients.py", title="Clients", icon=":material/group:"),
        st.Page(PAGES / "compose.py", title="Compose", icon=":material/tune:"),
        st.Page(PAGES / "preview.py", title="Preview", icon=":material/preview:"),
        st.Page(PAGES / "export.py", title="Export", icon=":material/download:"),
    ],
    "What-if": [
        st.Page(PAGES / "provisioning.py", title="Provisioning", icon=":material/dns:"),
    ],
}

navigation = st.navigation(pages)
specstate.apply_pending(state.servegen_folders())  # a spec from the link, an import or undo: before any widget
state.sidebar()
specstate.to_url(st.session_state.get("spec"))
navigation.run()
