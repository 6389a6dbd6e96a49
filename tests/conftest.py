"""Shared fixtures. The shared reference data is required: its absence fails, never skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegen_core.paths import SHARED_DATA_ENV, demo_data_dir, shared_data_dir
from servegen_core.sources.pool import ClientPool, load_pool


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


def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's columnar cache folder (the one :func:`_isolated_cache` points the loader at)."""
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture(scope="session")
def m_large(servegen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ClientPool:
    """ServeGen's ``language/m-large`` pool, loaded once for the whole session.

    A pool is frozen, so tests share it safely; the arrays the characterizations derive from it
    are kept with it (:attr:`ClientPool.derived`), so later tests reuse them.
    """
    return load_pool(servegen_dir, "language/m-large", cache_dir=_session_cache(tmp_path_factory))


@pytest.fixture(scope="session")
def mm_image(servegen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ClientPool:
    """ServeGen's ``multimodal/mm-image`` pool, loaded once for the whole session."""
    return load_pool(servegen_dir, "multimodal/mm-image", cache_dir=_session_cache(tmp_path_factory))


@pytest.fixture(scope="session")
def deepseek_r1(servegen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ClientPool:
    """ServeGen's ``reason/deepseek-r1`` pool, loaded once for the whole session."""
    return load_pool(servegen_dir, "reason/deepseek-r1", cache_dir=_session_cache(tmp_path_factory))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session uses its own columnar cache folder, never the user's."""
    monkeypatch.setenv("SERVEGEN_CACHE_DIR", str(_session_cache(tmp_path_factory)))
