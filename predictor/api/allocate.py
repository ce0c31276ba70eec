"""Request and answer of the allocate decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_DURATION_MS, MAX_TOKENS, Integral, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "AdjustRequest",
    "AdjustResponse",
    "AllocateRequest",
    "AllocateResponse",
    "Deviation",
    "Estimate",
    "Needs",
    "PhaseEstimate",
    "PhaseSpec",
    "Usage",
]


class PhaseSpec(RequestModel):
    phase: Name
    tool: Name
    calls: Annotated[int, Field(ge=1, le=100_000), Integral] = Field(default=1)


class AllocateRequest(RequestModel):
    phases: list[PhaseSpec] = Field(min_length=1, max_length=1000)
    coverage: Literal[0.5, 0.8, 0.9, 0.95] = 0.8


class Estimate(BaseModel):
    expected: float
    low: float
    high: float


class Needs(BaseModel):
    duration_ms: Estimate
    tokens: Estimate
    memory_mb: Estimate
    cpu_pct: Estimate


class PhaseEstimate(Needs):
    phase: str
    source: Literal["online", "prior"]


class AllocateResponse(BaseModel):
    phases: list[PhaseEstimate]
    total: Needs
    coverage: float
    source: Literal["online", "prior"]
    model: Provenance


class Usage(RequestModel):
    duration_ms: float | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    tokens: float | None = Field(default=None, ge=0, le=MAX_TOKENS)
    memory_mb: float | None = Field(default=None, ge=0, le=1e9)
    cpu_pct: float | None = Field(default=None, ge=0, le=100)


class AdjustRequest(AllocateRequest):
    actual: dict[Name, Usage] = Field(max_length=1000,
                                      description="phase -> what it used, for finished phases")


class Deviation(BaseModel):
    phase: str
    metric: str
    actual: float
    low: float
    high: float
    outside: bool


class AdjustResponse(BaseModel):
    deviations: list[Deviation]
    deviating: bool
    total: Needs
