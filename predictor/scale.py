"""The scale decision: replicas for a server's next window.

The load forecast comes from :class:`models.load.OnlineLoad`, one per
server, learning from the windows of telemetry as they close (or from the
``recent_load`` the caller sends). The scaler provisions for an upper
quantile of the forecast (a Poisson 90 % bound around the expected count),
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
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from models.load import LAGS, OnlineLoad
from predictor.provenance import Provenance
from predictor.state import LockedState

__all__ = ["ScaleRequest", "ScaleResponse", "Scaler"]

MAX_STEP_UP = 1.5
Z90 = 1.2816  # one-sided 90 % normal quantile


class ScaleRequest(BaseModel):
    server: str = Field(min_length=1)
    current_replicas: int = Field(ge=1)
    capacity_per_replica: float = Field(gt=0, description="calls one replica serves per window")
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=100, ge=1)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    recent_load: list[float] | None = Field(
        default=None, description="calls per window, oldest first; default: from telemetry")

    @model_validator(mode="after")
    def _bounds(self) -> ScaleRequest:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        if self.recent_load is not None and any(v < 0 or not math.isfinite(v)
                                                for v in self.recent_load):
            raise ValueError("recent_load must hold finite counts >= 0")
        return self


class Forecast(BaseModel):
    expected: float
    upper: float


class ScaleResponse(BaseModel):
    replicas: int
    desired: int
    forecast: Forecast
    limited_by: list[str]
    source: Literal["online", "prior"]
    reason: str
    model: Provenance


def _features(history: list[float]) -> dict[str, float]:
    x = {f"lag{lag}": history[-lag] if len(history) >= lag else float("nan") for lag in LAGS}
    recent = history[-12:]
    x["mean12"] = sum(recent) / len(recent) if recent else float("nan")
    x["trend"] = (history[-1] - x["mean12"]) if recent else 0.0
    x["max12"] = max(recent) if recent else float("nan")
    return x


class Scaler(LockedState):
    """Per-server load forecasts from telemetry windows, and the scaling rule; thread-safe.

    Parameters
    ----------
    window_s
        Length of a load window in seconds.
    stabilization
        Windows of recommendations a scale-down must respect.
    """

    def __init__(self, *, window_s: float = 60.0, stabilization: int = 5) -> None:
        self.window_s = window_s
        self.stabilization = stabilization
        self._counts: dict[str, deque[float]] = {}
        self._current: dict[str, tuple[int, float]] = {}  # server -> (window index, count)
        self._models: dict[str, OnlineLoad] = {}
        self._recommended: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def _close(self, server: str, value: float) -> None:
        history = self._counts.setdefault(server, deque(maxlen=48))
        model = self._models.setdefault(server, OnlineLoad())
        model.learn_one(_features(list(history)), value)
        history.append(value)

    def observe_call(self, ts: float, server: str) -> None:
        """Count a call; a window that closes teaches the server's forecaster."""
        index = int(ts // self.window_s)
        with self._lock:
            window, count = self._current.get(server, (index, 0.0))
            if index > window:
                # Close the finished window and any empty ones after it.
                for closing in range(window, min(index, window + 48)):
                    self._close(server, count if closing == window else 0.0)
                window, count = index, 0.0
            self._current[server] = (window, count + 1.0)

    def observe_window(self, server: str, count: float) -> None:
        """Close one whole window of ``count`` calls (replays of counted telemetry)."""
        with self._lock:
            self._close(server, float(count))

    def scale(self, req: ScaleRequest) -> ScaleResponse:
        with self._lock:
            history = list(req.recent_load if req.recent_load is not None
                           else self._counts.get(req.server, ()))
            model = self._models.get(req.server)
            learned_windows = model._n if model is not None else 0
            if model is not None and req.recent_load is None and model._n >= model.warmup:
                expected, source = model.predict_one(_features(history)), "online"
            elif history:
                # Prior: the mean of the last windows (persistence, smoothed).
                tail = history[-3:]
                expected, source = sum(tail) / len(tail), "prior"
            else:
                expected, source = req.current_replicas * req.capacity_per_replica * \
                    req.target_utilization, "prior"
            upper = expected + Z90 * math.sqrt(max(expected, 1.0))
            desired = max(1, math.ceil(upper / (req.capacity_per_replica
                                                * req.target_utilization)))
            limited: list[str] = []
            replicas = desired
            step_cap = max(req.current_replicas + 1,
                           math.floor(req.current_replicas * MAX_STEP_UP))
            if replicas > step_cap:
                replicas, limited = step_cap, [*limited, "max step up"]
            past = self._recommended.setdefault(req.server, deque(maxlen=self.stabilization))
            if replicas < req.current_replicas and past and max(past) > replicas:
                replicas = min(req.current_replicas, max(past))
                limited.append("stabilization")
            past.append(desired)
            if replicas > req.max_replicas:
                replicas, limited = req.max_replicas, [*limited, "max_replicas"]
            if replicas < req.min_replicas:
                replicas, limited = req.min_replicas, [*limited, "min_replicas"]
        return ScaleResponse(
            replicas=replicas, desired=desired,
            forecast=Forecast(expected=round(expected, 3), upper=round(upper, 3)),
            limited_by=limited, source=source,
            model=Provenance.of("load", observations=learned_windows,
                                learned=source == "online"),
            reason=f"upper forecast {upper:.1f} calls at {req.target_utilization:.0%} of "
                   f"{req.capacity_per_replica:g} per replica needs {desired}",
        )
