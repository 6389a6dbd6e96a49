"""Path confinement: user paths stay under the configured data roots and export folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from servegen_core import paths
from servegen_core.paths import PathNotAllowedError, data_roots, export_dir, resolve_under, resolve_under_any


def test_relative_and_absolute_paths_inside_the_root(tmp_path):
    (tmp_path / "sub").mkdir()
    assert resolve_under(tmp_path, "sub/out.jsonl") == tmp_path.resolve() / "sub" / "out.jsonl"
    assert resolve_under(tmp_path, tmp_path / "a.csv") == tmp_path.resolve() / "a.csv"
    # ".." that stays inside is fine; the root itself is inside
    assert resolve_under(tmp_path, "sub/../b.csv") == tmp_path.resolve() / "b.csv"
    assert resolve_under(tmp_path, ".") == tmp_path.resolve()


@pytest.mark.parametrize("user", ["../x.csv", "sub/../../x.csv", "/etc/passwd", "..", "/"])
def test_dot_dot_and_absolute_paths_outside_are_refused(tmp_path, user):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    with pytest.raises(PathNotAllowedError, match="outside"):
        resolve_under(root, user)


def test_a_sibling_with_the_same_prefix_is_outside(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data-private").mkdir()
    with pytest.raises(PathNotAllowedError):
        resolve_under(tmp_path / "data", tmp_path / "data-private" / "x.csv")


def test_symlink_escapes_are_refused(tmp_path):
    root = tmp_path / "root"
    secret = tmp_path / "secret"
    root.mkdir()
    secret.mkdir()
    (secret / "key.csv").write_text("x\n")
    (root / "link_dir").symlink_to(secret, target_is_directory=True)
    (root / "link_file.csv").symlink_to(secret / "key.csv")
    for user in ("link_dir/key.csv", "link_file.csv", root / "link_dir" / "new.jsonl"):
        with pytest.raises(PathNotAllowedError, match="outside"):
            resolve_under(root, user)
    # a link that points inside the root is followed
    (root / "real.csv").write_text("x\n")
    (root / "alias.csv").symlink_to(root / "real.csv")
    assert resolve_under(root, "alias.csv") == (root / "real.csv").resolve()


def test_a_root_reached_through_a_symlink_still_confines(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    assert resolve_under(tmp_path / "alias", "f.csv") == real.resolve() / "f.csv"
    with pytest.raises(PathNotAllowedError):
        resolve_under(tmp_path / "alias", "../f.csv")


def test_symlink_loops_empty_and_nul_paths_are_refused(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for user in ("loop/x", "", "   ", "a\x00b"):
        with pytest.raises(PathNotAllowedError):
            resolve_under(tmp_path, user)


def test_any_of_several_roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a).mkdir()
    (b / "traces").mkdir(parents=True)
    (b / "traces" / "t.csv").write_text("x\n")
    # a relative path is found under the root that holds it
    assert resolve_under_any((a, b), "traces/t.csv") == (b / "traces" / "t.csv").resolve()
    # one that exists nowhere is placed under the first root
    assert resolve_under_any((a, b), "new.csv") == a.resolve() / "new.csv"
    assert resolve_under_any((a, b), b / "traces" / "t.csv") == (b / "traces" / "t.csv").resolve()
    with pytest.raises(PathNotAllowedError, match=f"outside the data folders \\({a.resolve()}, {b.resolve()}"):
        resolve_under_any((a, b), tmp_path / "elsewhere.csv")
    with pytest.raises(PathNotAllowedError, match="no data folders"):
        resolve_under_any((), "t.csv")


def test_data_roots_default_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.DATA_ROOTS_ENV, raising=False)
    assert data_roots() == ((paths.PROJECT_DIR / "data").resolve(), paths.shared_data_dir())
    monkeypatch.setenv(paths.DATA_ROOTS_ENV, os.pathsep.join([str(tmp_path / "x"), "", str(tmp_path / "y"), str(tmp_path / "x")]))
    assert data_roots() == ((tmp_path / "x").resolve(), (tmp_path / "y").resolve())


def test_export_dir_default_environment_and_off(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.EXPORT_DIR_ENV, raising=False)
    assert export_dir() == (paths.PROJECT_DIR / "exports").resolve()
    monkeypatch.setenv(paths.EXPORT_DIR_ENV, str(tmp_path))
    assert export_dir() == tmp_path.resolve()
    monkeypatch.setenv(paths.EXPORT_DIR_ENV, "")
    assert export_dir() is None


def test_a_path_relative_to_the_project_is_accepted_when_it_leads_into_a_root(tmp_path: Path) -> None:
    """The README's form: ``../shared/data/traces/x.csv`` from the project folder."""
    project, data = tmp_path / "project", tmp_path / "shared" / "data"
    (data / "traces").mkdir(parents=True)
    project.mkdir()
    (data / "traces" / "x.csv").write_text("a\n1\n")
    got = resolve_under_any((project / "data", data), "../shared/data/traces/x.csv", relative_to=project)
    assert got == (data / "traces" / "x.csv").resolve()
    assert resolve_under_any((project / "data", data), "traces/x.csv", relative_to=project) == got
    with pytest.raises(PathNotAllowedError, match="outside the data folders"):
        resolve_under_any((project / "data", data), "../secrets.txt", relative_to=project)
    with pytest.raises(PathNotAllowedError, match="outside the data folders"):  # without relative_to: relative to the roots only
        resolve_under_any((project / "data", data), "../shared/data/traces/x.csv")
