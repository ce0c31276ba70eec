"""Request and answer of the risk decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_EPOCH_S, Integral, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "RiskRequest",
    "RiskResponse",
]


class RiskRequest(RequestModel):
    server: Name
    tool: Name | None = None
    ts: float | None = Field(default=None, ge=0, le=MAX_EPOCH_S,
                             description="epoch seconds; default: the latest telemetry time")
    threshold: float = Field(default=0.7, ge=0, le=1)
    concurrency: Annotated[int, Field(ge=0, le=1_000_000), Integral] | None = Field(default=None,
                                    description="calls in flight at the server when the call "
                                                "starts, if known")
    attempt: Annotated[int, Field(ge=1, le=100), Integral] | None = Field(default=None,
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
