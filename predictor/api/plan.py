"""Request and answer of the plan decision (light: pydantic only)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from predictor.api.provenance import Provenance

__all__ = [
    "Batch",
    "Operation",
    "PlanRequest",
    "PlanResponse",
]


class Operation(BaseModel):
    id: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)
    tool: str | None = None
    duration_ms: float | None = Field(default=None, ge=0)


class PlanRequest(BaseModel):
    operations: list[Operation] = Field(max_length=10_000)
    max_batch: int = Field(default=10, ge=1, le=1000)


class Batch(BaseModel):
    operations: list[str]
    predicted_ms: float


class PlanResponse(BaseModel):
    batches: list[Batch]
    predicted_ms: float
    sequential_ms: float
    time_reduction: float
    durations_ms: dict[str, float]
    model: Provenance
