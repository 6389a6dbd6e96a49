"""Fixtures for the dashboard tests.

``streamlit run dashboard/app.py`` puts ``dashboard/`` on ``sys.path`` (so pages import
``state`` and ``charts``); the tests do the same to import those modules directly.
"""

from __future__ import annotations

import sys

import pytest
from _dash import DASHBOARD, Dashboard

if str(DASHBOARD) not in sys.path:
    sys.path.insert(0, str(DASHBOARD))


@pytest.fixture
def dashboard() -> Dashboard:
    """A fresh app session (opened on the default source, the synthetic demo)."""
    return Dashboard()
