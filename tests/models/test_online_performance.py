from __future__ import annotations

import math

import numpy as np

from predictor.models.performance import OnlinePerformance


def _calls(n: int, seed: int = 0):
    """Two servers: "fast" answers in ~100 ms, "slow" in ~800 ms and fails 20 % of calls."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        slow = rng.random() < 0.5
        x = {"server_slow": 1.0 if slow else 0.0, "server_fast": 0.0 if slow else 1.0,
             "input_tokens": float(rng.integers(10, 100))}
        latency = float(rng.lognormal(math.log(800 if slow else 100), 0.3))
        y = {"latency_ms": latency, "success": float(rng.random() > (0.2 if slow else 0.01)),
             "output_tokens": 2.0 * x["input_tokens"], "cost_usd": 1e-4 * x["input_tokens"]}
        yield x, y


def test_answers_priors_before_learning():
    answer = OnlinePerformance().predict_one({"server_fast": 1.0})
    assert answer["latency_ms"] == answer["latency_ms_upper"] == 500.0
    assert answer["success"] == 0.95
    assert math.isnan(answer["output_tokens"]) and math.isnan(answer["cost_usd"])


def test_learns_each_target_from_the_calls():
    model = OnlinePerformance()
    for x, y in _calls(4000):
        model.learn_one(x, y)
    fast = model.predict_one({"server_fast": 1.0, "server_slow": 0.0, "input_tokens": 50.0})
    slow = model.predict_one({"server_fast": 0.0, "server_slow": 1.0, "input_tokens": 50.0})
    assert 70 < fast["latency_ms"] < 140 and 550 < slow["latency_ms"] < 1100
    # The upper quantile sits above the median: about exp(1.645 * 0.3) = 1.64 times it.
    assert 1.2 < slow["latency_ms_upper"] / slow["latency_ms"] < 2.2
    assert fast["success"] > slow["success"]
    assert 70 < fast["output_tokens"] < 130
    assert 0.003 < fast["cost_usd"] < 0.008


def test_missing_outcomes_are_skipped_and_other_targets_learned():
    model = OnlinePerformance()
    for i in range(500):
        model.learn_one({"a": float(i % 5)}, {"latency_ms": math.nan, "success": None,
                                              "queue_depth": 3.0})
    answer = model.predict_one({"a": 2.0})
    assert answer["latency_ms"] == 500.0 and answer["success"] == 0.95
    assert abs(answer["queue_depth"] - 3.0) < 0.3


def test_a_pair_without_history_starts_from_its_tools_usual_latency():
    # No moving average in the features (a server that has not run the tool yet): the
    # tool's own running mean is the base, not the mean over every tool.
    model = OnlinePerformance()
    rng = np.random.default_rng(3)
    for _ in range(3000):
        tool = "tool=render" if rng.random() < 0.5 else "tool=ping"
        latency = 60_000.0 if tool == "tool=render" else 20.0
        model.learn_one({tool: 1.0, "hist_latency_missing": 1.0},
                        {"latency_ms": latency * rng.lognormal(0, 0.2)})
    render = model.predict_one({"tool=render": 1.0, "hist_latency_missing": 1.0})
    ping = model.predict_one({"tool=ping": 1.0, "hist_latency_missing": 1.0})
    assert 40_000 < render["latency_ms"] < 90_000
    assert 12 < ping["latency_ms"] < 35
