"""servegen_core.generate.fidelity: what a spec's workload is scored against."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from servegen_core.generate.compose import compose
from servegen_core.generate.fidelity import reference_seed_of, source_window, spec_fidelity
from servegen_core.sources.traces import load_trace
from servegen_core.spec import MAX_SEED, ClientSelection, ServeGenSource, Span, TraceSource, WorkloadSpec


@pytest.fixture(scope="module")
def demo_trace_path(demo_dir):
    return demo_dir / "traces" / "demo_requests.csv"


def test_trace_source_is_cut_to_the_span_and_the_composed_clients(demo_trace_path):
    trace = load_trace(demo_trace_path).trace
    spec = WorkloadSpec(
        source=TraceSource(str(demo_trace_path)), span=Span(start_s=1200, duration_s=3000),
        clients=ClientSelection(mode="ids", ids=("1", "4")), seed=2,
    )
    made = compose(spec)
    part = source_window(trace, made)
    ts = pl.col("timestamp_s")
    expected = trace.filter((ts >= 1200) & (ts < 4200) & pl.col("client_id").is_in(["1", "4"]))
    assert part.height == expected.height > 0
    assert part["timestamp_s"].min() >= 0 and part["timestamp_s"].max() < 3000
    assert part["timestamp_s"].to_list() == (expected["timestamp_s"] - 1200).to_list()
    result = spec_fidelity(spec, workload=made)
    assert result.reference == "trace" and result.reference_seed is None
    assert result.report.line("requests").source_value == expected.height
    assert result.report.line("requests").generated_value == made.trace.height


def test_trace_source_without_clients_is_one_client_and_reaches_the_last_request(demo_trace_path):
    trace = load_trace(demo_trace_path).trace
    spec = WorkloadSpec(source=TraceSource(str(demo_trace_path), per_client=False), span=Span(start_s=0), seed=1)
    made = compose(spec)
    assert made.clients == ("all",)
    part = source_window(trace, made)
    assert part.height == trace.height and part["client_id"].unique().to_list() == ["all"]


def test_pool_source_against_a_second_draw(demo_dir):
    spec = WorkloadSpec(source=ServeGenSource("demo", "language/demo-chat"), span=Span(36000, 1800), seed=11)
    result = spec_fidelity(spec)
    second = compose(dataclasses.replace(spec, seed=12)).trace
    assert result.reference == "model" and result.reference_seed == 12
    assert result.report.line("requests_vs_model").source_value == second.height
    assert result.passed, result.report.failed()
    # the Poisson baseline of the bursty demo chat fails its short-scale lines against the model
    naive = spec_fidelity(spec, naive="poisson")
    assert naive.scored_spec.arrivals == "poisson" and naive.reference_seed == 12
    assert {"dispersion_1s_vs_model", "interarrival_ks_vs_model"} <= set(naive.report.failed())
    assert spec_fidelity(spec, reference_seed=40).reference_seed == 40
    assert reference_seed_of(MAX_SEED) == MAX_SEED - 1


def test_bad_arguments(demo_dir, demo_trace_path):
    spec = WorkloadSpec(source=ServeGenSource("demo", "language/demo-chat"), span=Span(36000, 600), seed=11)
    with pytest.raises(ValueError, match="naive must be one of"):
        spec_fidelity(spec, naive="nonsense")
    with pytest.raises(ValueError, match="only of a spec with a trace source"):
        spec_fidelity(spec, trace=load_trace(demo_trace_path).trace)
    other = compose(dataclasses.replace(spec, seed=3))
    with pytest.raises(ValueError, match="not composed from the scored spec"):
        spec_fidelity(spec, workload=other)
