from __future__ import annotations

from predictor.bottlenecks import BottleneckFinder


def test_ranks_breaches_and_suggests_actions():
    finder = BottleneckFinder(window_s=60)
    for i in range(60):
        finder.observe_call(float(i), "slow", "search", latency_ms=4000.0)
        finder.observe_call(float(i), "ok", "search", latency_ms=100.0)
    finder.observe_health(59.0, "hot", cpu_pct=95.0, mem_pct=50.0)
    answer = finder.find(now=60.0)
    assert [(f.server, f.metric) for f in answer.findings] == [
        ("slow", "latency_p95_ms"), ("hot", "cpu_pct")]
    assert answer.findings[0].action == "reroute" and answer.findings[1].action == "scale"


def test_forecasts_a_breach_from_growing_latency():
    finder = BottleneckFinder(window_s=60)
    for i in range(60):
        finder.observe_call(float(i), "a", "t", latency_ms=800.0)
    for i in range(60, 120):
        finder.observe_call(float(i), "a", "t", latency_ms=1500.0)
    finding = finder.find(now=120.0).findings[0]
    assert finding.when == "forecast" and finding.value > 2000


def test_throughput_drop_and_drift_alarm():
    finder = BottleneckFinder(window_s=60)
    for i in range(120):  # 120 calls per minute, fast
        finder.observe_call(i * 0.5, "a", "t", latency_ms=100.0)
    for i in range(10):  # then 10 calls in the next minute, slow
        finder.observe_call(60.0 + i * 6, "a", "t", latency_ms=1900.0)
    answer = finder.find(now=120.0)
    metrics = {f.metric for f in answer.findings}
    assert "throughput_per_min" in metrics
    assert answer.drift_alarms.get("a", 0) >= 1


def test_a_probe_older_than_the_window_is_not_a_finding_now():
    from predictor.bottlenecks import BottleneckFinder

    finder = BottleneckFinder()
    finder.observe_health(0.0, "old", cpu_pct=99.0, mem_pct=99.0)
    finder.observe_health(9_900.0, "fresh", cpu_pct=95.0)
    answer = finder.find(10_000.0)
    assert {(f.server, f.metric) for f in answer.findings} == {("fresh", "cpu_pct")}
    assert all(f.source == "rule" and f.when == "now" for f in answer.findings)
    assert answer.source == "rule"
