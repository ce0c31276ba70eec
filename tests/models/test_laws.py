"""ToolLaws: calibration of its intervals, checked against a plain reference."""

from __future__ import annotations

import math
import pickle
import random

from predictor.models.laws import LEVELS, PRIORS, ToolLaws


def _reference_rates(values: list[float]) -> dict[bool, list[float]]:
    """Adaptive conformal inference of one tool's tokens, value by value, written plainly:
    each value against the law its tool had before it (the prior for the first)."""
    prior_mean, prior_var = PRIORS["tokens"]
    rates = {learned: [1.0 - level for level in LEVELS] for learned in (False, True)}
    mean, m2 = 0.0, 0.0
    for n, value in enumerate(values):
        if n:
            law_mean, law_var, learned = mean, (m2 + 5 * prior_var) / (n + 4), True
        else:
            law_mean, law_var, learned = prior_mean, prior_var, False
        tail = math.erfc(abs(value - law_mean) / math.sqrt(law_var) / math.sqrt(2.0))
        for i, level in enumerate(LEVELS):
            served = min(max(rates[learned][i], 1e-4), 1.0 - 1e-4)
            rate = rates[learned][i] + 0.01 * ((1.0 - level) - (tail < served))
            rates[learned][i] = min(max(rate, -1.0), 2.0)
        delta = value - mean
        mean += delta / (n + 1)
        m2 += delta * (value - mean)
    return rates


def test_calibration_follows_every_value_in_order_and_survives_a_save():
    rng = random.Random(3)
    # A tool whose spread grows: its intervals must widen, value by value.
    values = [rng.gauss(400.0, 20.0 + i) for i in range(5000)]
    laws = ToolLaws()
    for value in values[:2500]:
        laws.learn_one({"tool": "a"}, {"tokens": value})
    # Saved half-way: what is saved holds the rates of every value learned so far.
    laws = pickle.loads(pickle.dumps(laws))
    assert len(laws._pending) == 0
    for value in values[2500:]:
        laws.learn_values("a", None, None, None, value, None, None)
    expected = _reference_rates(values)
    for learned in (False, True):
        for i, level in enumerate(LEVELS):
            served = ToolLaws.z(laws, "tokens", level, learned)
            want = min(max(expected[learned][i], 1e-4), 1.0 - 1e-4)
            assert math.isclose(served, _inverse(want), rel_tol=0, abs_tol=1e-12)
    # Widening variance: the learned 80 % quantile ends above the normal 1.2816.
    assert laws.z("tokens", 0.8) > 1.3


def _inverse(miss_rate: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - miss_rate / 2.0)
