"""``servegen_core.serving``: the facade keeps every name it had before the split, bound to the
objects of the serve modules, and no core module imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import servegen_core
from servegen_core import serving
from servegen_core.serve import calibration, costmodel, simulate, whatif
from servegen_core.spec import NAIVE_KINDS

#: The public names of ``servegen_core.serving`` before it was split into serve/ modules.
NAMES_BEFORE_THE_SPLIT = (
    "ALL_BASELINES", "BASELINES", "ROUTERS", "Comparison", "CostModel", "ProvisioningResult", "ServerConfig", "SimResult",
    "Slo", "baseline_spec", "calibrate", "compare_spec", "compare_trace", "min_replicas", "poisson_baseline", "roofline",
    "route", "simulate",
)


def test_the_facade_reexports_every_earlier_name_as_the_modules_objects():
    assert sorted(serving.__all__) == sorted(NAMES_BEFORE_THE_SPLIT)
    assert serving.roofline is costmodel.roofline and serving.calibrate is calibration.calibrate
    assert serving.simulate is simulate.simulate and serving.ServerConfig is simulate.ServerConfig
    assert serving.min_replicas is whatif.min_replicas and serving.compare_spec is whatif.compare_spec
    # the earlier words for the naive baselines
    assert serving.BASELINES == whatif.DEFAULT_NAIVE_KINDS == ("poisson", "pooled_lengths", "poisson_pooled")
    assert serving.ALL_BASELINES == NAIVE_KINDS
    assert serving.baseline_spec is whatif.checked_naive_spec and serving.poisson_baseline is whatif.naive_trace


def test_no_core_module_imports_the_facade():
    core = Path(servegen_core.__file__).parent
    offenders = []
    for path in core.rglob("*.py"):
        if path.name == "serving.py" and path.parent == core:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "servegen_core.serving" for n in names):
                offenders.append(str(path))
    assert offenders == []
