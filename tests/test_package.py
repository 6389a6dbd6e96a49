"""Package-level properties: the core imports without the dashboard stack, and executes no data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import servegen_core

CORE = Path(servegen_core.__file__).parent


def test_core_imports_without_streamlit_or_plotly():
    code = (
        "import sys, servegen_core, servegen_core.cli\n"
        "import servegen_core.arrivals, servegen_core.rates, servegen_core.lengths\n"
        "import servegen_core.multimodal, servegen_core.reasoning, servegen_core.demo\n"
        "bad = [m for m in ('streamlit', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve():
    for name in servegen_core.__all__:
        assert getattr(servegen_core, name) is not None, name


def test_core_never_calls_eval_exec_or_compile():
    """No call to eval/exec/compile/__import__ anywhere in the core (data is parsed, never run)."""
    forbidden = {"eval", "exec", "compile", "__import__"}
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                if isinstance(fn, ast.Name) and fn.id in forbidden:
                    offenders.append(f"{path.name}:{node.lineno} {fn.id}")
                # builtins.eval(...) and the like; polars' expression method .list.eval is fine
                if (
                    isinstance(fn, ast.Attribute)
                    and fn.attr in forbidden
                    and isinstance(fn.value, ast.Name)
                    and fn.value.id == "builtins"
                ):
                    offenders.append(f"{path.name}:{node.lineno} builtins.{fn.attr}")
    assert offenders == []


def test_submodule_names_are_modules():
    """``servegen_core.compose`` and ``.validate`` are the modules, whatever was imported first."""
    code = (
        "import types\n"
        "from servegen_core import WorkloadSpec, load_pool\n"
        "from servegen_core import compose, validate\n"
        "assert isinstance(compose, types.ModuleType), compose\n"
        "assert isinstance(validate, types.ModuleType), validate\n"
        "import servegen_core\n"
        "assert isinstance(servegen_core.compose, types.ModuleType)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
