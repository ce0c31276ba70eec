"""Request and answer of the allocate decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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


class PhaseSpec(BaseModel):
    phase: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    calls: int = Field(default=1, ge=1, le=100_000)


class AllocateRequest(BaseModel):
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


class Usage(BaseModel):
    duration_ms: float | None = Field(default=None, ge=0)
    tokens: float | None = Field(default=None, ge=0)
    memory_mb: float | None = Field(default=None, ge=0)
    cpu_pct: float | None = Field(default=None, ge=0, le=100)


class AdjustRequest(AllocateRequest):
    actual: dict[str, Usage] = Field(description="phase -> what it used, for finished phases")


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
