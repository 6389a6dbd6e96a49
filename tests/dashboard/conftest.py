"""Fixtures for the dashboard tests.

``streamlit run dashboard/app.py`` puts ``dashboard/`` on ``sys.path`` (so pages import
``session``, ``core_calls``, ``charts``, ...); :mod:`_dash` does the same, so the tests import
those modules directly.
"""

from __future__ import annotations

import os

import pytest
from _dash import Dashboard

from servegen_core.paths import DATA_ROOTS_ENV, data_roots


@pytest.fixture(autouse=True)
def _tmp_path_is_a_data_root(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidebar reads traces only under the data roots: the default roots plus the test's
    ``tmp_path``, where tests write their crafted traces (tests of the refusal set their own)."""
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)
    monkeypatch.setenv(DATA_ROOTS_ENV, os.pathsep.join([*(str(r) for r in data_roots()), str(tmp_path)]))


@pytest.fixture
def dashboard() -> Dashboard:
    """A fresh app session (opened on the default source, the synthetic demo)."""
    return Dashboard()
