"""Request and answer of the scale decision (light: pydantic only)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from predictor.api.provenance import Provenance

__all__ = [
    "Forecast",
    "ScaleRequest",
    "ScaleResponse",
]


class ScaleRequest(BaseModel):
    server: str = Field(min_length=1)
    current_replicas: int = Field(ge=1)
    capacity_per_replica: float = Field(gt=0, description="calls one replica serves per window")
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=100, ge=1)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    quantile: float = Field(
        default=0.9, gt=0, lt=1,
        description="quantile of the next window's load to provision for; lower costs fewer "
                    "replicas and risks more under-provisioned windows")
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
    upper: float = Field(description="the provisioned quantile of the next window's load")
    quantile: float
    upper_from: str = Field(description="'poisson' (a Poisson bound around the expected "
                                        "count) or the recent forecast errors it was "
                                        "calibrated on")


class ScaleResponse(BaseModel):
    replicas: int
    desired: int
    forecast: Forecast
    limited_by: list[str]
    source: Literal["online", "prior"]
    reason: str
    model: Provenance
