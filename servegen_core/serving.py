"""Public facade of the serving simulator, kept because user code imports ``servegen_core.serving``.

It re-exports every public name ``servegen_core.serving`` had before the serving code was
split over :mod:`servegen_core.serve.costmodel` (cost models, calibration),
:mod:`servegen_core.serve.simulate` (the engine, routers) and :mod:`servegen_core.serve.whatif`
(replicas needed, realistic vs naive). Four names are the earlier words for the naive baselines:
``BASELINES`` is :data:`~servegen_core.serve.whatif.DEFAULT_NAIVE_KINDS`, ``ALL_BASELINES`` is
:data:`~servegen_core.spec.NAIVE_KINDS`, ``baseline_spec`` is
:func:`~servegen_core.serve.whatif.checked_naive_spec` and ``poisson_baseline`` is
:func:`~servegen_core.serve.whatif.naive_trace`; :func:`compare_spec` takes the kinds to compare as
``naive=`` (earlier ``baselines=``). Code of the package imports the modules above, never this facade.
"""

from servegen_core.serve.calibration import calibrate
from servegen_core.serve.costmodel import CostModel, roofline
from servegen_core.serve.simulate import ROUTERS, ServerConfig, SimResult, route, simulate
from servegen_core.serve.whatif import (
    DEFAULT_NAIVE_KINDS as BASELINES,
    Comparison,
    ProvisioningResult,
    Slo,
    checked_naive_spec as baseline_spec,
    compare_spec,
    compare_trace,
    min_replicas,
    naive_trace as poisson_baseline,
)
from servegen_core.spec import NAIVE_KINDS as ALL_BASELINES

__all__ = [
    "ALL_BASELINES",
    "BASELINES",
    "ROUTERS",
    "Comparison",
    "CostModel",
    "ProvisioningResult",
    "ServerConfig",
    "SimResult",
    "Slo",
    "baseline_spec",
    "calibrate",
    "compare_spec",
    "compare_trace",
    "min_replicas",
    "poisson_baseline",
    "roofline",
    "route",
    "simulate",
]
