from __future__ import annotations

import pytest
from pydantic import ValidationError

from predictor.recover import Recoverer, RecoverRequest
from predictor.select import Selector


def test_never_retries_invalid_parameters_even_after_lucky_retries():
    decider = Recoverer()
    for _ in range(50):
        decider.observe("invalid_params", "retry", True)
    answer = decider.recover(RecoverRequest(error_type="invalid_params", server="a",
                                            candidates=["a", "b"]))
    assert answer.strategy != "retry"
    retry = next(o for o in answer.options if o.strategy == "retry")
    assert not retry.allowed and "invalid parameters" in retry.why_not


def test_rate_limits_back_off_and_retry():
    decider = Recoverer(seed=1)
    answer = decider.recover(RecoverRequest(error_type="rate_limit", server="a", attempt=1))
    assert answer.strategy == "retry"
    assert 500.0 <= answer.backoff_ms <= 1500.0  # 2 x 500 ms base, jitter 0.5-1.5
    assert answer.source == "prior"


def test_learns_that_fallback_beats_retry_for_connection_errors():
    decider = Recoverer()
    for i in range(100):
        decider.observe("connection", "retry", i % 10 == 0)
        decider.observe("connection", "fallback", i % 10 != 0)
    answer = decider.recover(RecoverRequest(error_type="connection", server="a",
                                            candidates=["a", "b", "c"]))
    assert answer.source == "online"
    assert answer.strategy == "fallback"
    assert answer.fallback_server in {"b", "c"}
    assert answer.expected_success > 0.8


def test_fallback_goes_to_the_best_alternative():
    selector = Selector()
    for i in range(30):
        selector.observe_call(float(i), "b", "search", latency_ms=900.0, success=True)
        selector.observe_call(float(i), "c", "search", latency_ms=100.0, success=True)
    decider = Recoverer(selector=selector)
    answer = decider.recover(RecoverRequest(error_type="connection", server="a",
                                            candidates=["a", "b", "c"], task_type="search"))
    assert answer.fallback_server == "c"


def test_at_most_three_retries_and_thirty_seconds():
    decider = Recoverer()
    third = decider.recover(RecoverRequest(error_type="timeout", server="a", attempt=3,
                                           candidates=["a", "b"]))
    assert third.strategy in ("retry", "fallback")
    last = decider.recover(RecoverRequest(error_type="timeout", server="a", attempt=4,
                                          candidates=["a", "b"]))
    assert last.strategy in ("degrade", "abort")
    late = decider.recover(RecoverRequest(error_type="tool_error", server="a", attempt=1,
                                          elapsed_ms=29_900, candidates=["a", "b"]))
    assert late.strategy in ("degrade", "abort")
    with pytest.raises(ValidationError):
        RecoverRequest(error_type="timeout", server="a", attempt=0)


def test_a_huge_attempt_number_is_refused_and_the_largest_allowed_one_is_cheap():
    with pytest.raises(ValidationError, match="attempt"):
        RecoverRequest(error_type="timeout", server="a", attempt=908831145461796480)
    answer = Recoverer().recover(RecoverRequest(error_type="timeout", server="a", attempt=100,
                                                max_attempts=10))
    assert answer.strategy in ("degrade", "abort")


def test_degrade_needs_a_degraded_answer():
    decider = Recoverer(seed=0)
    request = dict(error_type="connection", server="a", attempt=4, candidates=[])
    unknown = decider.recover(RecoverRequest(**request))
    assert unknown.strategy == "degrade"  # the caller decides whether it has one
    without = decider.recover(RecoverRequest(**request, degrade_available=False))
    assert without.strategy == "abort"
    option = next(o for o in without.options if o.strategy == "degrade")
    assert not option.allowed and option.why_not == "no degraded answer available"
    with_cache = decider.recover(RecoverRequest(**request, degrade_available=True))
    assert with_cache.strategy == "degrade"
