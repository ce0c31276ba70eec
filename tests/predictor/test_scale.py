from __future__ import annotations

import pytest
from pydantic import ValidationError

from predictor.scale import Scaler, ScaleRequest


def test_never_scales_past_max_or_below_min():
    scaler = Scaler()
    big = scaler.scale(ScaleRequest(server="a", current_replicas=90, max_replicas=100,
                                    capacity_per_replica=1, recent_load=[10_000] * 6))
    assert big.replicas == 100 and "max_replicas" in big.limited_by
    idle = scaler.scale(ScaleRequest(server="b", current_replicas=1, min_replicas=2,
                                     capacity_per_replica=100, recent_load=[0, 0, 0]))
    assert idle.replicas == 2


def test_steps_up_at_most_one_and_a_half():
    answer = Scaler().scale(ScaleRequest(server="a", current_replicas=4, capacity_per_replica=1,
                                         recent_load=[100.0] * 3))
    assert answer.desired > 6
    assert answer.replicas == 6
    assert answer.limited_by == ["max step up"]


def test_scales_down_only_after_stabilization():
    scaler = Scaler(stabilization=3)
    high = ScaleRequest(server="a", current_replicas=10, capacity_per_replica=10,
                        recent_load=[60.0] * 3)
    assert scaler.scale(high).replicas >= 10
    low = ScaleRequest(server="a", current_replicas=10, capacity_per_replica=10,
                       recent_load=[5.0] * 3)
    first = scaler.scale(low)
    assert first.replicas == 10 and "stabilization" in first.limited_by
    for _ in range(3):
        last = scaler.scale(low)
    assert last.replicas < 10


def test_learns_the_load_from_telemetry_windows():
    scaler = Scaler(window_s=60)
    for minute in range(40):
        for i in range(20 + 10 * (minute % 2)):  # alternating 20 and 30 calls
            scaler.observe_call(minute * 60 + i, "a")
    answer = scaler.scale(ScaleRequest(server="a", current_replicas=3, capacity_per_replica=10))
    assert answer.source == "online"
    assert 15 <= answer.forecast.expected <= 35


def test_rejects_inconsistent_bounds():
    with pytest.raises(ValidationError):
        ScaleRequest(server="a", current_replicas=1, capacity_per_replica=1, min_replicas=5,
                     max_replicas=2)
