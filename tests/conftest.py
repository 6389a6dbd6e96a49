"""Shared fixtures. The shared reference data is required: its absence fails, never skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegen_core.paths import SHARED_DATA_ENV, demo_data_dir, shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "servegen").is_dir() or not (path / "traces").is_dir():
        pytest.fail(
            f"shared reference data not found at {path} (set {SHARED_DATA_ENV} or put ../shared/data beside the project)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def servegen_dir(shared_data: Path) -> Path:
    return shared_data / "servegen"


@pytest.fixture(scope="session")
def traces_dir(shared_data: Path) -> Path:
    return shared_data / "traces"


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return demo_data_dir()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session uses its own columnar cache folder, never the user's."""
    monkeypatch.setenv("SERVEGEN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
