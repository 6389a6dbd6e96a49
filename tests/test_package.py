"""Package-level properties: the core imports without the dashboard stack, and executes no data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import servegen_core

CORE = Path(servegen_core.__file__).parent
DASHBOARD = CORE.parent / "dashboard"


def sources() -> list[Path]:
    """Every Python file of the core and of the dashboard."""
    files = sorted(CORE.rglob("*.py")) + sorted(DASHBOARD.rglob("*.py"))
    assert len(files) > 20 and any(p.parent.name == "views" for p in files)
    return files


def test_core_imports_without_streamlit_or_plotly():
    code = (
        "import sys, servegen_core, servegen_core.cli\n"
        "import servegen_core.characterize.arrivals, servegen_core.characterize.rates, servegen_core.characterize.lengths\n"
        "import servegen_core.characterize.multimodal, servegen_core.characterize.reasoning, servegen_core.sources.demo\n"
        "bad = [m for m in ('streamlit', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve():
    for name in servegen_core.__all__:
        assert getattr(servegen_core, name) is not None, name


def test_core_and_dashboard_never_call_eval_exec_or_compile():
    """No call to eval/exec/compile/__import__ in the core or the dashboard (data is parsed, never run)."""
    forbidden = {"eval", "exec", "compile", "__import__"}
    offenders = []
    for path in sources():
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


def test_randomness_only_through_explicit_generators():
    """No global NumPy random state (``np.random.seed``, ``np.random.rand``, ``RandomState``, ...)
    and no ``random`` module: every draw comes from a generator made by ``np.random.default_rng``."""
    allowed = {"default_rng", "Generator", "SeedSequence", "BitGenerator", "PCG64"}
    offenders = []
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr not in allowed:
                inner = node.value
                if isinstance(inner, ast.Attribute) and inner.attr == "random" and isinstance(inner.value, ast.Name) and inner.value.id in ("np", "numpy"):
                    offenders.append(f"{path.name}:{node.lineno} np.random.{node.attr}")
            if isinstance(node, ast.Import) and any(a.name == "random" for a in node.names):
                offenders.append(f"{path.name}:{node.lineno} import random")
            if isinstance(node, ast.ImportFrom) and node.module in ("random", "numpy.random"):
                names = {a.name for a in node.names}
                if node.module == "random" or not names <= allowed:
                    offenders.append(f"{path.name}:{node.lineno} from {node.module} import {', '.join(sorted(names))}")
    assert offenders == []


def test_submodule_names_are_modules():
    """``servegen_core.generate.compose`` and ``.validate`` are the modules, whatever was imported first."""
    code = (
        "import types\n"
        "from servegen_core import WorkloadSpec, load_pool\n"
        "from servegen_core import compose, validate\n"
        "assert isinstance(compose, types.ModuleType), compose\n"
        "assert isinstance(validate, types.ModuleType), validate\n"
        "import servegen_core\n"
        "assert isinstance(servegen_core.generate.compose, types.ModuleType)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
