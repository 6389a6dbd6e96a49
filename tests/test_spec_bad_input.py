"""WorkloadSpec and composition on absurd numbers: spec errors naming the key, size limits with
the number, never an empty workload or an allocation sized by an unchecked value."""

from __future__ import annotations

import json
import math

import pytest

from servegen_core.generate.compose import compose, iter_compose, plan_workload
from servegen_core.errors import LimitError, SpecError
from servegen_core.limits import DASHBOARD_MAX_REQUESTS, DEFAULT_MAX_REQUESTS, DEFAULT_MAX_REQUESTS_MEMORY
from servegen_core.spec import (
    ConstantRate,
    ObservedRate,
    PiecewiseRate,
    RampRate,
    ServeGenSource,
    Span,
    Weights,
    WorkloadSpec,
)


def shared(servegen_dir, **changes) -> dict:
    spec = {
        "schema_version": 1,
        "source": {"kind": "servegen", "data_dir": str(servegen_dir), "model": "language/m-large"},
        "span": {"start_s": 72000, "duration_s": 600},
        "missing_lengths": "pooled",
        "seed": 5,
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: ConstantRate(rps=1e12), "rate.rps"),
        (lambda: ConstantRate(rps=math.inf), "rate.rps"),
        (lambda: ConstantRate(rps=math.nan), "rate.rps"),
        (lambda: ObservedRate(factor=1e308), "rate.factor"),
        (lambda: RampRate(start_rps=1.0, end_rps=1e300), "rate.end_rps"),
        (lambda: PiecewiseRate(points=((0, 1.0), (1e300, 2.0))), "rate.points[1]"),
        (lambda: Weights(mode="explicit", values={"0": 1e308, "1": 1.0}), "weights.values.0"),
        (lambda: Weights(mode="explicit", values={"0": -2.0}), "weights.values.0"),
        (lambda: Weights(mode="explicit", values={"0": math.nan}), "weights.values.0"),
        (lambda: Span(start_s=0, duration_s=1e20), "span.duration_s"),
        (lambda: Span(start_s=10**400, duration_s=60), "span.start_s"),
    ],
)
def test_absurd_values_in_code_name_the_key(build, key):
    with pytest.raises(SpecError) as info:
        build()
    assert info.value.key == key
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_huge_integer_in_json_is_a_spec_error(servegen_dir):
    text = json.dumps(shared(servegen_dir, rate={"kind": "constant", "rps": 1})).replace('"rps": 1', '"rps": ' + "9" * 400)
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_json(text)
    assert info.value.key == "rate.rps" and "..." in str(info.value)


def test_nested_json_is_a_spec_error():
    with pytest.raises(SpecError, match="nested too deeply"):
        WorkloadSpec.from_json('{"a": ' * 100_000 + "1" + "}" * 100_000)


def test_limits_are_ordered():
    assert DASHBOARD_MAX_REQUESTS < DEFAULT_MAX_REQUESTS_MEMORY < DEFAULT_MAX_REQUESTS


def test_compose_refuses_above_max_requests_before_generating(servegen_dir):
    spec = WorkloadSpec.from_dict(shared(servegen_dir, rate={"kind": "constant", "rps": 500.0}))
    plan = plan_workload(spec)
    assert plan.expected_requests == pytest.approx(500.0 * 600)
    with pytest.raises(LimitError) as info:
        compose(spec, max_requests=100_000)
    assert info.value.value == pytest.approx(300_000) and info.value.limit == 100_000
    assert "300,000" in str(info.value) and "100,000" in str(info.value)
    with pytest.raises(LimitError):
        plan.compose(max_requests=299_000)
    with pytest.raises(LimitError):
        next(iter_compose(spec, chunk_s=60, max_requests=1000))
    # at a limit above the estimate it composes, and the count is near the estimate
    trace = compose(spec, max_requests=400_000).trace
    assert abs(trace.height - 300_000) < 5 * math.sqrt(300_000) * 3


def test_in_memory_default_is_lower_than_streamed(servegen_dir, monkeypatch):
    spec = WorkloadSpec.from_dict(shared(servegen_dir, rate={"kind": "constant", "rps": 100.0}))
    monkeypatch.setenv("SERVEGEN_MAX_REQUESTS_MEMORY", "50000")
    monkeypatch.setenv("SERVEGEN_MAX_REQUESTS", "70000")
    with pytest.raises(LimitError, match="SERVEGEN_MAX_REQUESTS_MEMORY"):
        compose(spec)  # 60,000 expected
    chunks = list(iter_compose(spec, chunk_s=600))
    assert sum(c.height for c in chunks) > 50_000
    monkeypatch.setenv("SERVEGEN_MAX_REQUESTS", "40000")
    with pytest.raises(LimitError, match="SERVEGEN_MAX_REQUESTS"):
        plan_workload(spec)


def test_weights_at_the_bound_keep_finite_shares(servegen_dir):
    """Weights at the bound are fine (relative); the composed shares stay finite."""
    spec = WorkloadSpec(
        source=ServeGenSource(data_dir=str(servegen_dir), model="language/m-large"),
        span=Span(start_s=72000, duration_s=600),
        weights=Weights(mode="explicit", values={"0": 1e12, "1": 1e-300}),
        missing_lengths="pooled",
    )
    plan = plan_workload(spec)
    shares = dict(zip(plan.weights["client_id"], plan.weights["weight_share"], strict=True))
    assert shares["0"] == pytest.approx(1.0) and all(math.isfinite(v) for v in shares.values())
