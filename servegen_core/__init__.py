"""servegen_core: load LLM-serving traces, characterize them, compose per-client workloads.

The main names are re-exported here; the characterization functions live in their modules
(:mod:`~servegen_core.arrivals`, :mod:`~servegen_core.rates`, :mod:`~servegen_core.lengths`,
:mod:`~servegen_core.multimodal`, :mod:`~servegen_core.reasoning`, :mod:`~servegen_core.summary`).
Importing this package does not import Streamlit or Plotly.
"""

from servegen_core.compose import Workload, compose, iter_compose, naive_spec, plan_workload
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
from servegen_core.validate import ValidationReport, validate

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
    "compose",
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
    "validate",
    "validate_trace",
]

__version__ = "0.1.0"
