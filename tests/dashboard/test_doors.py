"""Every door through which a user's path enters the dashboard goes through the one confinement
function, found from the code: a new door that skips it fails here.

The scan reads every module of ``dashboard/`` (its AST), resolves import aliases to the core's
names, and checks each call that opens, lists or loads a path:

* the core's loaders (``load_trace``, ``trace_columns``, ``load_pool``, ``list_models``,
  ``calibrate``) and the dashboard's own functions whose parameter is a ``ReadablePath``
  get, as that argument, a path confined by ``uploads.readable_path`` (a call of it, a name
  bound from one, a ``ReadablePath`` parameter, a name unpacked from a function returning
  ``ReadablePath``);
* ``sources.load.load_source`` (spec -> source) gets ``roots=readable_roots()``;
* the compose family (``plan_workload``, ``compose``, ``iter_compose``, ``naive_spec``,
  ``compare_spec``), which loads the spec's source itself when no pool is given, gets ``pool=``;
* ``open``, Polars ``read_*``/``scan_*``, ``WorkloadSpec.from_file`` and the path methods that
  read or test a file (``read_bytes``, ``stat``, ``exists``, ``is_file``, ...) act on a confined
  path, or sit in :data:`NOT_USER_PATHS` with the reason their path is not a user's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from _dash import DASHBOARD

#: The confinement function (``uploads.readable_path`` = ``paths.confine`` over the readable
#: folders) and, for the one write door (Export's "Save to a path"), ``paths.resolve_under``
#: over the export folder, the check ``confine`` itself is built on.
CONFINE = {"readable_path", "confine", "resolve_under"}
#: Core functions whose first argument is a path they read.
PATH_LOADERS = {
    "servegen_core.sources.traces.load_trace",
    "servegen_core.sources.traces.trace_columns",
    "servegen_core.sources.pool.load_pool",
    "servegen_core.sources.pool.list_models",
    "servegen_core.serve.calibration.calibrate",
    "servegen_core.spec.WorkloadSpec.from_file",
}
SPEC_LOADERS = {
    "servegen_core.sources.load.load_source",
    "servegen_core.generate.compose.load_source",
    "servegen_core.compose.load_source",
}
NEEDS_POOL = {
    "servegen_core.generate.compose.plan_workload",
    "servegen_core.generate.compose.compose",
    "servegen_core.generate.compose.iter_compose",
    "servegen_core.generate.compose.naive_spec",
    "servegen_core.serve.whatif.compare_spec",
    "servegen_core.compose.compose",
    "servegen_core.compose.plan_workload",
}
READ_METHODS = {"read_bytes", "read_text", "open", "stat", "exists", "is_file", "is_dir", "iterdir", "glob", "rglob", "lstat"}
#: (module, function, call): why that path is not a user's. Each entry must still match a call.
NOT_USER_PATHS = {
    ("export_files", "export_bytes", "read_bytes"): "the file export_trace just wrote into a temporary folder",
    ("export_files", "export_target", "is_file"): "the target confined under the export folder and its spec sidecar beside it",
    ("sidebar", "_demo_options", "list_models"): "the embedded demo folder (demo_data_dir())",
    ("sidebar", "_demo_options", "is_dir"): "the embedded demo folder",
    ("sidebar", "_demo_options", "is_file"): "the embedded demo trace",
    ("uploads", "uploads_root", "stat"): "the server's own uploads folder under the temp folder",
    ("uploads", "sweep_stale_uploads", "iterdir"): "the server's own uploads folder",
    ("uploads", "sweep_stale_uploads", "is_dir"): "the server's own uploads folder",
    ("uploads", "sweep_stale_uploads", "stat"): "the server's own uploads folder",
    ("uploads", "session_upload_dir", "is_dir"): "this session's upload folder",
    ("uploads", "save_upload", "exists"): "a file in this session's upload folder, named by the server",
    ("uploads", "save_upload", "iterdir"): "this session's upload folder",
    ("uploads", "save_upload", "is_dir"): "an entry of this session's upload folder",
    ("uploads", "folder_bytes", "lstat"): "the files of a session's upload folder, counted for the session's upload cap",
    ("settings", "servegen_folders", "is_dir"): "the operator's SERVEGEN_DATA_DIR and the shared data folder",
}


@dataclass(frozen=True)
class Call:
    module: str
    function: str
    line: int
    name: str  # qualified core name, or the dashboard function / method name
    node: ast.Call


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(DASHBOARD.rglob("*.py")):
        rel = path.relative_to(DASHBOARD).with_suffix("").as_posix()
        found[rel] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> qualified name for ``from x import y as z`` and ``import x.y as z``."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    return out


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def qualified(func: ast.expr, names: dict[str, str]) -> str | None:
    text = dotted(func)
    if text is None:
        return None
    head, _, rest = text.partition(".")
    base = names.get(head, head)
    return f"{base}.{rest}" if rest else base


def functions(tree: ast.Module):
    """(function name, node) for each function, plus ("<module>", tree) for module-level code."""
    yield "<module>", tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node


def own_nodes(scope: ast.AST):
    """The nodes of ``scope`` outside nested functions (each function is scanned on its own)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def returns_readable(trees: dict[str, ast.Module]) -> set[str]:
    out = set()
    for tree in trees.values():
        for _, fn in functions(tree):
            if isinstance(fn, ast.FunctionDef) and fn.returns is not None and "ReadablePath" in ast.unparse(fn.returns):
                out.add(fn.name)
    return out - CONFINE


def readable_params(trees: dict[str, ast.Module]) -> dict[str, list[int]]:
    """Dashboard function name -> positions of its ``ReadablePath`` parameters."""
    out: dict[str, list[int]] = {}
    for tree in trees.values():
        for _, fn in functions(tree):
            if isinstance(fn, ast.FunctionDef):
                pos = [i for i, a in enumerate(fn.args.args) if a.annotation is not None and ast.unparse(a.annotation) == "ReadablePath"]
                if pos:
                    out[fn.name] = pos
    return out


def call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


class Scope:
    """The names a function binds to confined paths."""

    def __init__(self, fn: ast.AST, readable_returns: set[str]) -> None:
        self.confined: set[str] = set()
        self.carriers: set[str] = set()  # names holding a tuple with a ReadablePath
        if isinstance(fn, ast.FunctionDef):
            for a in fn.args.args + fn.args.kwonlyargs:
                if a.annotation is not None and ast.unparse(a.annotation) == "ReadablePath":
                    self.confined.add(a.arg)
        self.readable_returns = readable_returns
        changed = True
        while changed:  # bindings in any order (a loop body, a later branch)
            changed = False
            for node in own_nodes(fn):
                if not isinstance(node, ast.Assign):
                    continue
                for target in node.targets:
                    if isinstance(target, ast.Name) and self.is_confined(node.value) and target.id not in self.confined:
                        self.confined.add(target.id)
                        changed = True
                    elif isinstance(target, ast.Name) and self.carries(node.value) and target.id not in self.carriers:
                        self.carriers.add(target.id)
                        changed = True
                    elif isinstance(target, ast.Tuple) and self.carries(node.value):
                        for elt in target.elts:
                            if isinstance(elt, ast.Name) and elt.id not in self.confined:
                                self.confined.add(elt.id)
                                changed = True

    def carries(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in self.carriers
        return isinstance(expr, ast.Call) and call_name(expr) in self.readable_returns

    def is_confined(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Call) and call_name(expr) in CONFINE:
            return True
        if isinstance(expr, ast.Call) and call_name(expr) in ("str", "Path", "ReadablePath") and len(expr.args) == 1:
            return self.is_confined(expr.args[0])
        if isinstance(expr, ast.Name):
            return expr.id in self.confined
        if isinstance(expr, ast.List | ast.Tuple):
            return bool(expr.elts) and all(self.is_confined(e) for e in expr.elts)
        return False


def first_arg(node: ast.Call) -> ast.expr | None:
    return node.args[0] if node.args else (node.keywords[0].value if node.keywords else None)


def scan() -> tuple[list[str], set[tuple[str, str, str]], int]:
    """Violations, the allow-list entries used, and the number of doors checked."""
    trees = modules()
    readable_returns = returns_readable(trees)
    params = readable_params(trees)
    problems: list[str] = []
    used: set[tuple[str, str, str]] = set()
    checked = 0
    for module, tree in trees.items():
        names = aliases(tree)
        for fname, fn in functions(tree):
            scope = Scope(fn, readable_returns)
            for node in own_nodes(fn):
                if not isinstance(node, ast.Call):
                    continue
                where = f"dashboard/{module}.py:{node.lineno} ({fname})"
                qual = qualified(node.func, names) or ""
                short = call_name(node)
                if qual in SPEC_LOADERS or (short == "run" and node.args and qualified(node.args[0], names) in SPEC_LOADERS):
                    checked += 1
                    roots = next((k.value for k in node.keywords if k.arg == "roots"), None)
                    if not (isinstance(roots, ast.Call) and call_name(roots) == "readable_roots"):
                        problems.append(f"{where}: load_source without roots=readable_roots()")
                    continue
                if qual in NEEDS_POOL or (short == "run" and node.args and qualified(node.args[0], names) in NEEDS_POOL):
                    checked += 1
                    inner = node
                    if short == "run":
                        unhashed = next((k.value for k in node.keywords if k.arg == "unhashed"), None)
                        has_pool = isinstance(unhashed, ast.Dict) and any(
                            isinstance(k, ast.Constant) and k.value == "pool" for k in unhashed.keys
                        )
                    else:
                        has_pool = any(k.arg == "pool" for k in inner.keywords)
                    if not has_pool:
                        problems.append(f"{where}: {qual or short} without pool= loads the spec's source unconfined")
                    continue
                if qual in PATH_LOADERS or (short in params and not qual.startswith("servegen_core")):
                    checked += 1
                    if short in params:
                        args = [node.args[i] for i in params[short] if i < len(node.args)]
                    else:
                        arg = first_arg(node)
                        args = [] if arg is None else [arg]
                    if all(scope.is_confined(a) for a in args) and args:
                        continue
                    entry = (module, fname, short)
                    if entry in NOT_USER_PATHS:
                        used.add(entry)
                        continue
                    problems.append(f"{where}: {short}({ast.unparse(args[0]) if args else ''}) on a path not confined by readable_path")
                    continue
                is_read = (
                    short == "open" and isinstance(node.func, ast.Name)
                    or qual.startswith("polars.read_") or qual.startswith("polars.scan_")
                    or (isinstance(node.func, ast.Attribute) and short in READ_METHODS and not qual.startswith(("st.", "streamlit")))
                )
                if not is_read:
                    continue
                checked += 1
                receiver = node.args[0] if isinstance(node.func, ast.Name) or qual.startswith("polars.") else node.func.value
                if node.args and (isinstance(node.func, ast.Name) or qual.startswith("polars.")):
                    receiver = node.args[0]
                if scope.is_confined(receiver):
                    continue
                entry = (module, fname, short)
                if entry in NOT_USER_PATHS:
                    used.add(entry)
                    continue
                problems.append(f"{where}: {ast.unparse(node)} reads a path not confined by readable_path")
    return problems, used, checked


def test_every_door_goes_through_the_confinement_function():
    problems, used, checked = scan()
    assert checked >= 10, checked  # the scan finds the doors (sidebar, comparison, calibration, ...)
    assert not problems, "\n".join(problems)
    stale = {k for k in NOT_USER_PATHS if NOT_USER_PATHS[k]} - used
    assert not stale, f"allow-list entries that match no call any more (remove them): {sorted(stale)}"


def test_the_scan_catches_a_door_that_skips_confinement(tmp_path, monkeypatch):
    """The scan is not vacuous: a module with unconfined doors of each kind is reported."""
    bad = DASHBOARD / "views" / "_door_probe_test_only.py"
    bad.write_text(
        "import core_calls\n"
        "from pathlib import Path\n"
        "from servegen_core.sources.load import load_source as other\n"
        "from servegen_core.sources.traces import load_trace\n"
        "from servegen_core.generate.compose import compose\n"
        "from uploads import readable_path\n"
        "def door(text, spec):\n"
        "    load_trace(text)\n"
        "    other(spec)\n"
        "    core_calls.run(other, spec, key=1)\n"
        "    compose(spec)\n"
        "    Path(text).read_bytes()\n"
        "    open(text)\n"
        "    ok = readable_path(text)\n"
        "    load_trace(ok)\n"
        "    load_trace(ok / '..')\n",
        encoding="utf-8",
    )
    try:
        problems, _, _ = scan()
    finally:
        bad.unlink()
    mine = [p for p in problems if "_door_probe_test_only" in p]
    lines = sorted(int(p.split(":")[1].split()[0]) for p in mine)
    assert lines == [8, 9, 10, 11, 12, 13, 16], mine


@pytest.mark.parametrize("name", sorted(PATH_LOADERS | SPEC_LOADERS))
def test_the_loaders_listed_exist(name):
    """A renamed core loader must be renamed here too, or the scan would miss its calls."""
    import importlib

    module, _, attr = name.rpartition(".")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError:
        module, _, cls = module.rpartition(".")
        obj = getattr(importlib.import_module(module), cls)
    assert callable(getattr(obj, attr))
