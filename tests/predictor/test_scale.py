from __future__ import annotations

import numpy as np
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


def test_scales_down_only_once_the_busy_window_is_out_of_the_stabilization_window():
    scaler = Scaler(stabilization=3)
    # A busy window two windows ago (60 calls need 9 replicas at 70 % of 10) holds the
    # scale-down; once it is more than 3 windows old, the decision scales down.
    held = ScaleRequest(server="a", current_replicas=10, capacity_per_replica=10,
                        recent_load=[60.0, 5.0, 5.0])
    first = scaler.scale(held)
    assert first.replicas == 9 and "stabilization" in first.limited_by
    later = ScaleRequest(server="a", current_replicas=9, capacity_per_replica=10,
                         recent_load=[60.0, 5.0, 5.0, 5.0])
    assert scaler.scale(later).replicas < 9


def test_asking_changes_nothing():
    scaler = Scaler(stabilization=3)
    busy = ScaleRequest(server="a", current_replicas=2, capacity_per_replica=10,
                        recent_load=[60.0] * 3)
    quiet = ScaleRequest(server="a", current_replicas=10, capacity_per_replica=10,
                         recent_load=[5.0] * 3)
    before = scaler.scale(quiet)
    scaler.scale(busy)
    assert scaler.scale(quiet) == before and before.replicas < 10


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


def _noisy_scaler(seed: int = 0, windows: int = 400) -> tuple[Scaler, np.ndarray]:
    """A server whose load per window is overdispersed: gamma-mixed Poisson around 100."""
    rng = np.random.default_rng(seed)
    loads = rng.poisson(rng.gamma(4.0, 25.0, size=windows)).astype(float)
    scaler = Scaler()
    for load in loads:
        scaler.observe_window("a", load)
    return scaler, loads


def test_upper_quantile_is_calibrated_on_recent_forecast_errors():
    scaler, _ = _noisy_scaler()
    answer = scaler.scale(ScaleRequest(server="a", current_replicas=5, capacity_per_replica=20))
    assert answer.source == "online"
    assert answer.forecast.upper_from == "errors of the last 390 forecasts"
    # The load is far wider than Poisson noise; the calibrated bound covers about 90 % of
    # the windows that follow, where a Poisson bound around the forecast covers far fewer.
    _, future = _noisy_scaler(seed=9, windows=1000)
    covered = poisson = 0
    for load in future:
        expected, (upper,), _ = scaler.forecast("a", (0.9,))
        covered += load <= upper
        poisson += load <= expected + 1.2816 * np.sqrt(expected)
        scaler.observe_window("a", load)
    assert 0.86 <= covered / len(future) <= 0.94
    assert poisson / len(future) < 0.7


def test_a_lower_quantile_asks_for_fewer_replicas():
    scaler, _ = _noisy_scaler(seed=1)
    answers = [scaler.forecast("a", (0.5, 0.9, 0.99))[1]]
    low, mid, high = answers[0]
    assert low < mid < high
    cheap = Scaler().scale(ScaleRequest(server="b", current_replicas=10, capacity_per_replica=10,
                                        recent_load=[50.0] * 3, quantile=0.5))
    safe = Scaler().scale(ScaleRequest(server="b", current_replicas=10, capacity_per_replica=10,
                                       recent_load=[50.0] * 3, quantile=0.99))
    assert cheap.desired < safe.desired
    assert cheap.forecast.upper_from == "poisson" and cheap.forecast.upper == 50.0


def test_checkpoints_without_forecast_errors_still_load():
    scaler, _ = _noisy_scaler(windows=50)
    state = scaler.__getstate__()
    del state["_errors"]  # as written before the errors were kept
    restored = Scaler.__new__(Scaler)
    restored.__setstate__(state)
    answer = restored.scale(ScaleRequest(server="a", current_replicas=5, capacity_per_replica=20))
    assert answer.forecast.upper_from == "poisson"
