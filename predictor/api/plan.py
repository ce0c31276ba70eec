"""Request and answer of the plan decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from predictor.api.base import MAX_DURATION_MS, Integral, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "Batch",
    "Operation",
    "PlanRequest",
    "PlanResponse",
]


class Operation(RequestModel):
    id: Name
    depends_on: list[Name] = Field(default_factory=list, max_length=1000)
    tool: Name | None = None
    duration_ms: float | None = Field(default=None, ge=0, le=MAX_DURATION_MS)


class PlanRequest(RequestModel):
    operations: list[Operation] = Field(max_length=10_000)
    max_batch: Annotated[int, Field(ge=1, le=1000), Integral] = Field(default=10)


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
