"""ServeGen workbench dashboard: ``streamlit run dashboard/app.py`` (opens on the synthetic demo data)."""

import streamlit as st

import navigation
import session
import settings
import sidebar
import specstate

st.set_page_config(page_title="ServeGen workbench", page_icon=":material/monitoring:", layout="wide")

pages = {
    section: [
        st.Page(navigation.VIEWS / entry.file, title=entry.title, icon=entry.icon, default=entry.default)
        for entry in entries
    ]
    for section, entries in navigation.sections().items()
}

menu = st.navigation(pages)
specstate.apply_pending(settings.servegen_folders())  # a spec from the link, an import or undo: before any widget
sidebar.sidebar()
specstate.to_url(session.held_spec())
menu.run()
