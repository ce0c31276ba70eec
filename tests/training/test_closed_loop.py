from __future__ import annotations

from predictor.training.closed_loop import POLICIES, run_closed_loop


def test_closed_loop_report_and_model_beats_rules():
    report = run_closed_loop(6_000, seed=3)
    sel = report["selection"]
    assert report["events"] == 6_000
    assert set(sel["mean_latency_ms"]) == {*POLICIES, "oracle"}
    lat, ok = sel["mean_latency_ms"], sel["success_rate"]
    for baseline in ("ewma", "random", "round_robin"):
        assert lat["model"] < lat[baseline]
    assert ok["model"] >= ok["random"]
    assert all(sel["regret_ms"][p] >= 0 for p in POLICIES)
    assert lat["oracle"] <= min(lat[p] for p in POLICIES)


def test_closed_loop_is_deterministic():
    a = run_closed_loop(1_000, seed=5)["selection"]["mean_latency_ms"]
    b = run_closed_loop(1_000, seed=5)["selection"]["mean_latency_ms"]
    assert a == b
