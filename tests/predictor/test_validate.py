from __future__ import annotations

import pytest
from pydantic import ValidationError

from predictor.validate import ValidateRequest, validate_workflow

CALLS = [
    {"ts": 0, "server": "s", "tool": "a", "latency_ms": 1000, "mem_mb": 200,
     "input_tokens": 100, "output_tokens": 50},
    {"ts": 1, "server": "s", "tool": "b", "latency_ms": 3000, "mem_mb": 700,
     "input_tokens": 300, "output_tokens": 20},
    {"ts": 5, "server": "s", "tool": "c", "latency_ms": 500, "error_type": "timeout"},
]


def test_reports_each_expectation_with_its_figure():
    answer = validate_workflow(ValidateRequest(calls=CALLS, max_duration_ms=6000,
                                               min_success_rate=0.6, max_memory_mb=512,
                                               max_tokens=1000))
    checks = {c.name: c for c in answer.checks}
    assert checks["max_duration_ms"].actual == 5500.0 and checks["max_duration_ms"].met
    assert checks["min_success_rate"].actual == pytest.approx(0.6667, abs=1e-4)
    assert checks["min_success_rate"].met
    assert checks["max_memory_mb"].actual == 700 and not checks["max_memory_mb"].met
    assert checks["max_tokens"].actual == 470 and checks["max_tokens"].met
    assert answer.all_met is False


def test_seed_defaults_hold():
    answer = validate_workflow(ValidateRequest(calls=CALLS))
    checks = {c.name: c for c in answer.checks}
    assert {name: c.expected for name, c in checks.items()} == {
        "max_duration_ms": 300_000.0, "min_success_rate": 0.95, "max_memory_mb": 512.0,
        "max_tokens": 50_000}
    assert not checks["min_success_rate"].met and not checks["max_memory_mb"].met
    assert checks["max_duration_ms"].met and checks["max_tokens"].met
    assert not answer.all_met and answer.source == "rule"


def test_an_unrecorded_figure_is_unknown_not_unmet():
    calls = [{"ts": 0, "server": "s", "tool": "a", "latency_ms": 10}]
    answer = validate_workflow(ValidateRequest(calls=calls))
    checks = {c.name: c for c in answer.checks}
    assert checks["max_memory_mb"].met is None and checks["max_tokens"].met is None
    assert answer.unknown == ["max_memory_mb", "max_tokens"] and answer.all_met


def test_bad_call_is_named_by_index_and_field():
    with pytest.raises(ValidationError, match=r"calls\[1\]\.latency_ms"):
        ValidateRequest(calls=[CALLS[0], {**CALLS[1], "latency_ms": -1}])
