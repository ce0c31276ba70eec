"""The scale decision: replicas for a server's next window.

The load forecast comes from :class:`predictor.models.load.OnlineLoad`, one per
server, learning from the windows of telemetry as they close (or from the
``recent_load`` the caller sends). The scaler provisions for an upper
quantile of the next window's load (``quantile``, default 90 %): the
forecast plus that quantile of the server's recent forecast errors
(split-conformal on the last windows), or a Poisson bound around the
expected count until enough errors are known,
at the target utilization (default 70 %), steps up at most x1.5 (at least
one replica), scales down only to the highest recommendation of the last
``stabilization`` windows (as the Kubernetes HPA does), and stays within
``[min_replicas, max_replicas]``.

>>> scaler = Scaler()
>>> answer = scaler.scale(ScaleRequest(server="a", current_replicas=2,
...                                    capacity_per_replica=10, recent_load=[30, 60]))
>>> answer.replicas, answer.limited_by
(3, ['max step up'])
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Literal

from river.utils import SortedWindow

from predictor.api.provenance import Provenance
from predictor.api.scale import Forecast, ScaleRequest, ScaleResponse
from predictor.data.schema import CallRecord
from predictor.models.load import ACTIVE_AFTER, LAGS, OnlineLoad
from predictor.plugin import DecisionPlugin

__all__ = [
    "Forecast",
    "ScaleRequest",
    "ScaleResponse",
    "Scaler",
    "recommendations",
    "step_replicas",
]

MAX_STEP_UP = 1.5
RESIDUAL_WINDOWS = 500  # recent forecast errors the upper quantile is calibrated on
MIN_RESIDUALS = 30  # fewer: a Poisson bound stands in








def _features(history: list[float]) -> dict[str, float]:
    x = {f"lag{lag}": history[-lag] if len(history) >= lag else float("nan") for lag in LAGS}
    recent = history[-12:]
    x["mean12"] = sum(recent) / len(recent) if recent else float("nan")
    x["trend"] = (history[-1] - x["mean12"]) if recent else 0.0
    x["max12"] = max(recent) if recent else float("nan")
    return x


def _interpolated(ordered: SortedWindow[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly (numpy's default).

    >>> window = SortedWindow(10)
    >>> for value in [3.0, 1.0, 2.0, 4.0]:
    ...     window.append(value)
    >>> _interpolated(window, 0.5), _interpolated(window, 0.9)
    (2.5, 3.7)
    """
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def step_replicas(current: int, desired: int, past: Iterable[int], min_replicas: int = 1,
                  max_replicas: int = 1_000_000) -> tuple[int, list[str]]:
    """The replicas to run from those ``desired``, and which rules limited them.

    Up at most x1.5 (at least one replica), down only to the highest of the
    ``past`` recommendations (HPA's scale-down stabilization), within
    ``[min_replicas, max_replicas]``.

    >>> step_replicas(10, 2, [8, 3])
    (8, ['stabilization'])
    >>> step_replicas(4, 20, [8, 3])
    (6, ['max step up'])
    """
    limited: list[str] = []
    replicas = desired
    step_cap = max(current + 1, math.floor(current * MAX_STEP_UP))
    if replicas > step_cap:
        replicas, limited = step_cap, [*limited, "max step up"]
    floor = max(past, default=0)
    if replicas < current and floor > replicas:
        replicas = min(current, floor)
        limited.append("stabilization")
    if replicas > max_replicas:
        replicas, limited = max_replicas, [*limited, "max_replicas"]
    if replicas < min_replicas:
        replicas, limited = min_replicas, [*limited, "min_replicas"]
    return replicas, limited


def recommendations(loads: Sequence[float], per_replica: float, windows: int) -> list[int]:
    """The replicas the load of each of the last ``windows`` windows needed.

    These are the recommendations a scale-down must respect: the decision
    never scales below what the load of the last ``windows`` windows (300 s at
    the default 60 s windows, HPA's stabilization) needed. They come from
    observed load, not from earlier answers, so asking changes nothing.

    >>> recommendations([30.0, 7.0, 0.0], per_replica=7.0, windows=2)
    [1, 1]
    >>> recommendations([30.0, 7.0, 0.0], per_replica=7.0, windows=5)
    [5, 1, 1]
    """
    return [max(1, math.ceil(load / per_replica)) for load in loads[-windows:]]


class Scaler(DecisionPlugin):
    """Per-server load forecasts from telemetry windows, and the scaling rule; thread-safe.

    Parameters
    ----------
    window_s
        Length of a load window in seconds.
    stabilization
        Windows whose load a scale-down must respect (5 of 60 s: HPA's 300 s).
    """

    def __init__(self, *, window_s: float = 60.0, stabilization: int = 5) -> None:
        super().__init__()
        self.window_s = window_s
        self.stabilization = stabilization
        self._counts: dict[str, deque[float]] = {}
        self._current: dict[str, tuple[int, float]] = {}  # server -> (window index, count)
        self._models: dict[str, OnlineLoad] = {}
        self._errors: dict[str, SortedWindow[float]] = {}
        self._lock = threading.Lock()

    def __setstate__(self, state: dict) -> None:
        # Checkpoints written before the forecast errors were kept.
        state.setdefault("_errors", {})
        super().__setstate__(state)

    def _close(self, server: str, value: float) -> None:
        # get, not setdefault: building a forecaster per window cost a fifth of learning.
        history = self._counts.get(server)
        if history is None:
            history = self._counts[server] = deque(maxlen=48)
        model = self._models.get(server)
        if model is None:
            model = self._models[server] = OnlineLoad()
        x = _features(list(history))
        # The forecast the scaler would have used, from the step that learns the window.
        expected = model.forecast_then_learn(x, value)
        if expected is not None:
            # Its error, scaled like Poisson noise so that busy and quiet periods share one
            # calibration.
            errors = self._errors.get(server)
            if errors is None:
                errors = self._errors[server] = SortedWindow(RESIDUAL_WINDOWS)
            errors.append((value - expected) / math.sqrt(max(expected, 1.0)))
        history.append(value)

    def _quantiles(self, server: str, expected: float, quantiles: tuple[float, ...],
                   calibrated: bool) -> tuple[list[float], str]:
        """The ``quantiles`` of the next window's load, and how they were obtained."""
        errors = self._errors.get(server) if calibrated else None
        if errors is not None and len(errors) >= MIN_RESIDUALS:
            zs = [_interpolated(errors, q) for q in quantiles]
            method = f"errors of the last {len(errors)} forecasts"
        else:
            zs, method = [NormalDist().inv_cdf(q) for q in quantiles], "poisson"
        spread = math.sqrt(max(expected, 1.0))
        return [max(expected + z * spread, 0.0) for z in zs], method

    def _forecast(self, server: str, recent_load: list[float] | None,
                  quantiles: tuple[float, ...], fallback: float
                  ) -> tuple[float, list[float], Literal["online", "prior"], str, int]:
        history = list(recent_load if recent_load is not None
                       else self._counts.get(server, ()))
        model = self._models.get(server)
        learned_windows = model._n if model is not None else 0
        if model is not None and recent_load is None and model._n >= model.warmup:
            expected, source = model.predict_one(_features(history)), "online"
        elif history:
            # Prior: the last window's load (persistence). A mean of the last few carries a
            # burst into the windows after it; on intermittent load that costs more.
            expected, source = float(history[-1]), "prior"
        else:
            expected, source = fallback, "prior"
        uppers, method = self._quantiles(server, expected, quantiles,
                                         calibrated=source == "online")
        return expected, uppers, source, method, learned_windows

    def forecast(self, server: str, quantiles: tuple[float, ...] = (0.9,)
                 ) -> tuple[float, list[float], str]:
        """The server's expected load in the next window, its ``quantiles``, and the source.

        >>> scaler = Scaler()
        >>> for count in [10, 12, 11]:
        ...     scaler.observe_window("a", count)
        >>> expected, (median, upper), source = scaler.forecast("a", (0.5, 0.9))
        >>> expected == median, upper > expected, source
        (True, True, 'prior')
        """
        with self._lock:
            expected, uppers, source, _, _ = self._forecast(server, None, tuple(quantiles), 0.0)
        return expected, uppers, source

    family = "load"
    why_online = ("scale answers from the per-server online forecaster, which learns every "
                  "window")

    def learn_call(self, record: CallRecord) -> None:
        self.observe_call(record.epoch, record.server)

    def observe_call(self, ts: float, server: str) -> None:
        """Count a call; a window that closes teaches the server's forecaster."""
        index = int(ts // self.window_s)
        with self._lock:
            window, count = self._current.get(server, (index, 0.0))
            if index > window:
                # Close the finished window and any empty ones after it.
                for closing in range(window, min(index, window + ACTIVE_AFTER + 1)):
                    self._close(server, count if closing == window else 0.0)
                window, count = index, 0.0
            self._current[server] = (window, count + 1.0)

    def observe_window(self, server: str, count: float) -> None:
        """Close one whole window of ``count`` calls (replays of counted telemetry)."""
        with self._lock:
            self._close(server, float(count))

    def scale(self, req: ScaleRequest) -> ScaleResponse:
        with self._lock:
            fallback = req.current_replicas * req.capacity_per_replica * req.target_utilization
            expected, (upper,), source, method, learned_windows = self._forecast(
                req.server, req.recent_load, (req.quantile,), fallback)
            desired = max(1, math.ceil(upper / (req.capacity_per_replica
                                                * req.target_utilization)))
            past = recommendations(list(req.recent_load if req.recent_load is not None
                                        else self._counts.get(req.server, ())),
                                   req.capacity_per_replica * req.target_utilization,
                                   self.stabilization)
            replicas, limited = step_replicas(req.current_replicas, desired, past,
                                              req.min_replicas, req.max_replicas)
        return ScaleResponse(
            replicas=replicas, desired=desired,
            forecast=Forecast(expected=round(expected, 3), upper=round(upper, 3),
                              quantile=req.quantile, upper_from=method),
            limited_by=limited, source=source,
            model=Provenance.of("load", observations=learned_windows,
                                learned=source == "online"),
            reason=f"q{req.quantile:g} forecast {upper:.1f} calls at "
                   f"{req.target_utilization:.0%} of {req.capacity_per_replica:g} per replica "
                   f"needs {desired}",
        )
