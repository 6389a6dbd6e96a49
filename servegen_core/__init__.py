"""servegen_core: load LLM-serving traces, characterize them, compose per-client workloads.

The main names are re-exported here; the characterization functions live in their modules
(:mod:`~servegen_core.arrivals`, :mod:`~servegen_core.rates`, :mod:`~servegen_core.lengths`,
:mod:`~servegen_core.multimodal`, :mod:`~servegen_core.reasoning`, :mod:`~servegen_core.summary`).
Importing this package does not import Streamlit or Plotly. ``compose`` and ``validate`` are
not re-exported: those names are the modules :mod:`servegen_core.compose` and
:mod:`servegen_core.validate` (``from servegen_core.compose import compose``).
"""

import importlib
from typing import TYPE_CHECKING

# Names are imported on first use, so `import servegen_core.pool` stays cheap (no SciPy).
_LAZY: dict[str, str] = {
    "ChunkWriter": "servegen_core.export",
    "ClientPool": "servegen_core.pool",
    "DataFormatError": "servegen_core.errors",
    "ExportError": "servegen_core.errors",
    "FORMATS": "servegen_core.export",
    "LoadedTrace": "servegen_core.traces",
    "PRESETS": "servegen_core.traces",
    "REQUIRED": "servegen_core.schema",
    "Result": "servegen_core.result",
    "SCHEMA": "servegen_core.schema",
    "ServeGenError": "servegen_core.errors",
    "SpecError": "servegen_core.errors",
    "Table": "servegen_core.result",
    "ValidationReport": "servegen_core.validate",
    "Workload": "servegen_core.compose",
    "WorkloadSpec": "servegen_core.spec",
    "client_summary": "servegen_core.summary",
    "demo_data_dir": "servegen_core.paths",
    "export_chunks": "servegen_core.export",
    "export_trace": "servegen_core.export",
    "filter_clients": "servegen_core.summary",
    "hour_of_day": "servegen_core.pool",
    "iter_compose": "servegen_core.compose",
    "list_models": "servegen_core.pool",
    "load_pool": "servegen_core.pool",
    "load_trace": "servegen_core.traces",
    "naive_spec": "servegen_core.compose",
    "plan_workload": "servegen_core.compose",
    "pool_from_trace": "servegen_core.fit",
    "shared_data_dir": "servegen_core.paths",
    "validate_trace": "servegen_core.schema",
}

if TYPE_CHECKING:  # pragma: no cover
    from servegen_core.compose import Workload, iter_compose, naive_spec, plan_workload
    from servegen_core.errors import DataFormatError, ExportError, ServeGenError, SpecError
    from servegen_core.export import FORMATS, ChunkWriter, export_chunks, export_trace
    from servegen_core.fit import pool_from_trace
    from servegen_core.paths import demo_data_dir, shared_data_dir
    from servegen_core.pool import ClientPool, hour_of_day, list_models, load_pool
    from servegen_core.result import Result, Table
    from servegen_core.schema import REQUIRED, SCHEMA, validate_trace
    from servegen_core.spec import WorkloadSpec
    from servegen_core.summary import client_summary, filter_clients
    from servegen_core.traces import PRESETS, LoadedTrace, load_trace
    from servegen_core.validate import ValidationReport


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'servegen_core' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FORMATS",
    "PRESETS",
    "REQUIRED",
    "SCHEMA",
    "ChunkWriter",
    "ClientPool",
    "DataFormatError",
    "ExportError",
    "LoadedTrace",
    "Result",
    "ServeGenError",
    "SpecError",
    "Table",
    "ValidationReport",
    "Workload",
    "WorkloadSpec",
    "client_summary",
    "demo_data_dir",
    "export_chunks",
    "export_trace",
    "filter_clients",
    "hour_of_day",
    "iter_compose",
    "list_models",
    "load_pool",
    "load_trace",
    "naive_spec",
    "plan_workload",
    "pool_from_trace",
    "shared_data_dir",
    "validate_trace",
]

__version__ = "0.1.0"
