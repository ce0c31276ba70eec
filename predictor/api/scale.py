"""Request and answer of the scale decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from predictor.api.base import Integral, Name, RequestModel
from predictor.api.provenance import Provenance

#: Most replicas a request may state or get.
MAX_REPLICAS = 100_000

__all__ = [
    "MAX_REPLICAS",
    "Forecast",
    "ScaleRequest",
    "ScaleResponse",
]


class ScaleRequest(RequestModel):
    server: Name
    current_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS), Integral]
    capacity_per_replica: float = Field(ge=1e-3, le=1e12,
                                        description="calls one replica serves per window")
    min_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS), Integral] = Field(default=1)
    max_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS), Integral] = Field(default=100)
    target_utilization: float = Field(default=0.7, ge=0.01, le=1)
    quantile: float = Field(
        default=0.9, gt=0, lt=1,
        description="quantile of the next window's load to provision for; lower costs fewer "
                    "replicas and risks more under-provisioned windows")
    recent_load: list[Annotated[float, Field(ge=0, le=1e12)]] | None = Field(
        default=None, max_length=10_000,
        description="calls per window, oldest first; default: from telemetry")

    @model_validator(mode="after")
    def _bounds(self) -> ScaleRequest:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
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
