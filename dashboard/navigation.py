"""The dashboard's pages: title, script, icon and section, in menu order (no Streamlit here).

``app.py`` turns this table into ``st.navigation`` and the tests read their page list from it,
so a page added here is opened by every page test.

Page scripts live in ``views/``, not ``pages/``: Streamlit treats a ``pages/`` folder beside the
entry script as a legacy multipage app until ``st.navigation`` has run once, so the first
request after the server starts (and every AppTest run) would bypass ``app.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The folder of the page scripts.
VIEWS = Path(__file__).resolve().parent / "views"


@dataclass(frozen=True)
class PageEntry:
    """One page: its menu ``title``, its script ``file`` in :data:`VIEWS`, its ``icon`` and menu ``section``."""

    title: str
    file: str
    icon: str
    section: str
    default: bool = False

    @property
    def name(self) -> str:
        """The script's stem, e.g. ``overview``."""
        return Path(self.file).stem

    @property
    def link(self) -> str:
        """The page as ``st.page_link``/``st.switch_page`` name it: ``views/<file>``."""
        return f"views/{self.file}"


PAGES: tuple[PageEntry, ...] = (
    PageEntry("Overview", "overview.py", ":material/dashboard:", "Source", default=True),
    PageEntry("Burstiness", "burstiness.py", ":material/bolt:", "Characterize"),
    PageEntry("Rate shifts", "rate_shifts.py", ":material/show_chart:", "Characterize"),
    PageEntry("Lengths", "lengths.py", ":material/straighten:", "Characterize"),
    PageEntry("Multimodal", "multimodal.py", ":material/image:", "Characterize"),
    PageEntry("Reasoning", "reasoning.py", ":material/psychology:", "Characterize"),
    PageEntry("Prefix reuse", "prefix.py", ":material/layers:", "Characterize"),
    PageEntry("Clients", "clients.py", ":material/group:", "Compose"),
    PageEntry("Compose", "compose.py", ":material/tune:", "Compose"),
    PageEntry("Preview", "preview.py", ":material/preview:", "Compose"),
    PageEntry("Export", "export.py", ":material/download:", "Compose"),
    PageEntry("Provisioning", "provisioning.py", ":material/dns:", "What-if"),
)


def sections() -> dict[str, list[PageEntry]]:
    """The pages by menu section, sections and pages in menu order."""
    out: dict[str, list[PageEntry]] = {}
    for entry in PAGES:
        out.setdefault(entry.section, []).append(entry)
    return out


def page(name: str) -> PageEntry:
    """The page whose script is ``<name>.py``."""
    for entry in PAGES:
        if entry.name == name:
            return entry
    msg = f"no page {name!r}; pages: {', '.join(e.name for e in PAGES)}"
    raise KeyError(msg)
