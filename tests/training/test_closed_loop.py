from __future__ import annotations

from predictor.api.select import DEFAULT_WEIGHTS
from predictor.training.closed_loop import POLICIES, run_closed_loop


def test_served_selector_at_its_defaults_beats_the_rules_on_latency_to_success():
    report = run_closed_loop(6_000, seed=3)
    sel = report["selection"]
    assert report["events"] == 6_000
    assert set(sel["mean_latency_ms"]) == {*POLICIES, "oracle"}
    assert sel["weights"] == DEFAULT_WEIGHTS and sel["explore"] == 0.1
    per_success = sel["latency_per_success_ms"]
    for baseline in ("ewma", "random", "round_robin"):
        assert per_success["served"] < per_success[baseline]
    assert sel["mean_latency_ms"]["served"] == sel["mean_latency_ms"]["model"]
    assert sel["mean_cost_usd"]["served"] < sel["mean_cost_usd"]["ewma"]
    assert all(sel["regret_ms"][p] >= 0 for p in POLICIES)
    lat = sel["mean_latency_ms"]
    assert lat["oracle"] <= min(lat[p] for p in POLICIES)


def test_closed_loop_is_deterministic():
    a = run_closed_loop(1_000, seed=5)["selection"]["mean_latency_ms"]
    b = run_closed_loop(1_000, seed=5)["selection"]["mean_latency_ms"]
    assert a == b
