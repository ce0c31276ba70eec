"""Request and answer of the recover decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_DURATION_MS, Integral, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "RecoverRequest",
    "RecoverResponse",
    "Strategy",
    "StrategyOption",
]

Strategy = Literal["retry", "fallback", "degrade", "abort"]


class RecoverRequest(RequestModel):
    error_type: Name
    server: Name
    attempt: Annotated[int, Field(ge=1, le=100), Integral] = Field(
        default=1, description="the attempt that just failed")
    elapsed_ms: float = Field(default=0.0, ge=0, le=MAX_DURATION_MS,
                              description="time spent on this call so far")
    candidates: list[Name] = Field(default_factory=list, max_length=1000,
                                  description="servers able to take the call instead")
    task_type: Name | None = Field(default=None,
                                  description="lets the selector rank the fallback servers")
    max_attempts: Annotated[int, Field(ge=1, le=10), Integral] = Field(default=4,
                              description="attempts in all: the first try and at most 3 "
                                          "retries or fallbacks (the seed's maxRetries 3)")
    budget_ms: float = Field(default=30_000.0, gt=0, le=MAX_DURATION_MS,
                             description="time the whole call may take (the seed's 30 s)")
    min_attempt_ms: float = Field(default=1_000.0, ge=0, le=MAX_DURATION_MS,
                                  description="time another attempt needs at the least")
    degrade_available: bool | None = Field(
        default=None, description="whether a degraded answer (a cached one, however old) can "
        "be served: false rules degrade out; null: unknown, the caller decides")


class StrategyOption(BaseModel):
    strategy: Strategy
    success: float
    allowed: bool
    why_not: str | None = None


class RecoverResponse(BaseModel):
    strategy: Strategy
    backoff_ms: float | None = None
    fallback_server: str | None = None
    expected_success: float
    options: list[StrategyOption]
    source: Literal["online", "prior"]
    reason: str
    model: Provenance
