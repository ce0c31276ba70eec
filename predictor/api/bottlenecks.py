"""Request and answer of the bottlenecks decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_DURATION_MS, MAX_EPOCH_S, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "BottlenecksRequest",
    "BottlenecksResponse",
    "Finding",
    "Thresholds",
]


class Thresholds(RequestModel):
    latency_p95_ms: float = Field(default=2000.0, gt=0, le=MAX_DURATION_MS)
    throughput_per_min: float = Field(default=50.0, ge=0, le=1e12)
    memory_pct: float = Field(default=80.0, ge=0, le=100)
    cpu_pct: float = Field(default=70.0, ge=0, le=100)


class BottlenecksRequest(RequestModel):
    now: float | None = Field(default=None, ge=0, le=MAX_EPOCH_S,
                              description="epoch seconds the window ends at; default: the "
                                          "latest telemetry time")
    thresholds: Thresholds = Field(default_factory=Thresholds)


class Finding(BaseModel):
    server: str
    tool: str | None
    metric: Literal["latency_p95_ms", "throughput_per_min", "memory_pct", "cpu_pct"]
    value: float
    threshold: float
    when: Literal["now", "forecast"]
    action: Literal["reroute", "scale", "preload"]
    severity: float | None
    source: Literal["rule"] = Field(default="rule", description="a fixed threshold on the "
                                    "window's figures (forecast: their growth extrapolated)")


class BottlenecksResponse(BaseModel):
    findings: list[Finding]
    drift_alarms: dict[str, int] = Field(description="per server, drift alarms in the window "
                                         "from its online ADWIN detector of latency")
    window_s: float
    source: Literal["rule", "online", "prior"] = Field(
        default="rule", description="rule: findings from fixed thresholds; online: drift "
        "alarms only; prior: nothing observed in the window")
    model: Provenance
