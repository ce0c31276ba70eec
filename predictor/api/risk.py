"""Request and answer of the risk decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from predictor.api.provenance import Provenance

__all__ = [
    "RiskRequest",
    "RiskResponse",
]


class RiskRequest(BaseModel):
    server: str = Field(min_length=1)
    tool: str | None = None
    ts: float | None = Field(default=None, ge=0, le=1e11,
                             description="epoch seconds; default: the latest telemetry time")
    threshold: float = Field(default=0.7, ge=0, le=1)
    concurrency: int | None = Field(default=None, ge=0, le=1_000_000,
                                    description="calls in flight at the server when the call "
                                                "starts, if known")
    attempt: int | None = Field(default=None, ge=1, le=100,
                                description="which attempt the call is (1: first try), if known")


class RiskResponse(BaseModel):
    server: str
    failure_probability: float
    prevent: bool
    threshold: float
    suggestion: Literal["none", "route_away", "shed_load", "prewarm_fallback"]
    drivers: dict[str, float | None]
    source: Literal["online", "batch", "prior"]
    model: Provenance
