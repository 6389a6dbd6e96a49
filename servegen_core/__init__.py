"""servegen_core: load LLM-serving traces, characterize them, compose per-client workloads.

The package is layered; each layer imports only the layers below it (``pyproject.toml`` holds the
contract, checked by import-linter):

- foundation: :mod:`errors`, :mod:`limits`, :mod:`paths`, :mod:`result`, :mod:`schema`,
  :mod:`spec` (the frozen :class:`WorkloadSpec`), :mod:`renewal`, :mod:`blocks`
- :mod:`servegen_core.sources`: ServeGen client pools, raw traces, fitting a pool to a trace,
  the demo data, and the one pool-or-trace view the characterizations read
- :mod:`servegen_core.characterize`: arrivals, rates, lengths, multimodal, reasoning, prefix, summary
- :mod:`servegen_core.generate` (composing workloads, sessions, validation) beside
  :mod:`servegen_core.export` (benchmark file formats and the chunked writer)
- :mod:`servegen_core.serve`: hardware table, cost model, serving simulator, what-if
- :mod:`servegen_core.cli`: the ``servegen`` command

The main names are re-exported here, and the characterization modules are attributes
(``from servegen_core import arrivals, rates``). ``compose`` and ``validate`` are not
re-exported as functions: those names are the modules (``from servegen_core.compose import
compose``), aliases of :mod:`servegen_core.generate.compose` and
:mod:`servegen_core.generate.validate`. Importing this package does not import Streamlit or Plotly.
"""

import importlib
from typing import TYPE_CHECKING

# Names are imported on first use, so `import servegen_core.sources.pool` stays cheap (no SciPy).
_LAZY: dict[str, str] = {
    "ChunkWriter": "servegen_core.export.writer",
    "ClientPool": "servegen_core.sources.pool",
    "DataFormatError": "servegen_core.errors",
    "ExportError": "servegen_core.errors",
    "FORMATS": "servegen_core.export.formats",
    "LoadedTrace": "servegen_core.sources.traces",
    "PRESETS": "servegen_core.sources.traces",
    "REQUIRED": "servegen_core.schema",
    "Result": "servegen_core.result",
    "SCHEMA": "servegen_core.schema",
    "ServeGenError": "servegen_core.errors",
    "SpecError": "servegen_core.errors",
    "Table": "servegen_core.result",
    "ValidationReport": "servegen_core.generate.validate",
    "Workload": "servegen_core.generate.compose",
    "WorkloadSpec": "servegen_core.spec",
    "client_summary": "servegen_core.characterize.summary",
    "demo_data_dir": "servegen_core.paths",
    "export_chunks": "servegen_core.export.writer",
    "export_trace": "servegen_core.export.writer",
    "filter_clients": "servegen_core.characterize.summary",
    "hour_of_day": "servegen_core.sources.pool",
    "iter_compose": "servegen_core.generate.compose",
    "list_models": "servegen_core.sources.pool",
    "load_pool": "servegen_core.sources.pool",
    "load_trace": "servegen_core.sources.traces",
    "naive_spec": "servegen_core.generate.compose",
    "plan_workload": "servegen_core.generate.compose",
    "pool_from_trace": "servegen_core.sources.fit",
    "shared_data_dir": "servegen_core.paths",
    "validate_trace": "servegen_core.schema",
}

if TYPE_CHECKING:  # pragma: no cover
    from servegen_core.generate.compose import Workload, iter_compose, naive_spec, plan_workload
    from servegen_core.errors import DataFormatError, ExportError, ServeGenError, SpecError
    from servegen_core.export.formats import FORMATS
    from servegen_core.export.writer import ChunkWriter, export_chunks, export_trace
    from servegen_core.sources.fit import pool_from_trace
    from servegen_core.paths import demo_data_dir, shared_data_dir
    from servegen_core.sources.pool import ClientPool, hour_of_day, list_models, load_pool
    from servegen_core.result import Result, Table
    from servegen_core.schema import REQUIRED, SCHEMA, validate_trace
    from servegen_core.spec import WorkloadSpec
    from servegen_core.characterize.summary import client_summary, filter_clients
    from servegen_core.sources.traces import PRESETS, LoadedTrace, load_trace
    from servegen_core.generate.validate import ValidationReport


# Modules reachable as attributes of the package (``from servegen_core import rates``).
_MODULES: dict[str, str] = {
    "arrivals": "servegen_core.characterize.arrivals",
    "lengths": "servegen_core.characterize.lengths",
    "multimodal": "servegen_core.characterize.multimodal",
    "prefix": "servegen_core.characterize.prefix",
    "rates": "servegen_core.characterize.rates",
    "reasoning": "servegen_core.characterize.reasoning",
    "summary": "servegen_core.characterize.summary",
    "pool": "servegen_core.sources.pool",
    "traces": "servegen_core.sources.traces",
}


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'servegen_core' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))


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
