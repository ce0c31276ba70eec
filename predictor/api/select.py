"""Request and answer of the select decision (light: pydantic only)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "DEFAULT_WEIGHTS",
    "Factors",
    "Predicted",
    "RankedServer",
    "SelectRequest",
    "SelectResponse",
]

#: The seed's factor weights, which the service answers with unless a request sets its own.
DEFAULT_WEIGHTS = {"capability": 0.35, "performance": 0.25, "cost": 0.20, "reliability": 0.15,
                   "availability": 0.05}


class SelectRequest(BaseModel):
    """``POST /v1/select`` request (DESIGN contract)."""

    task_type: str = Field(min_length=1)
    candidates: list[str] = Field(min_length=1, max_length=1000)
    tool: str | None = None
    input_tokens: int | None = Field(default=None, ge=0)
    weights: dict[str, float] | None = None
    explore: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = set(value) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown factors {sorted(unknown)}; known: {list(DEFAULT_WEIGHTS)}")
        if any(w < 0 or not math.isfinite(w) for w in value.values()):
            raise ValueError("weights must be finite and >= 0")
        return value


class Factors(BaseModel):
    capability: float
    performance: float
    cost: float
    reliability: float
    availability: float


class Predicted(BaseModel):
    latency_p50_ms: float
    latency_p95_ms: float
    success: float
    cost_usd: float | None


class RankedServer(BaseModel):
    server: str
    score: float
    factors: Factors
    predicted: Predicted
    source: Literal["online", "prior"] = Field(
        default="prior", description="online: this server's figures on this task type are "
        "learned; prior: nothing is known of it yet")


class SelectResponse(BaseModel):
    """``POST /v1/select`` response (DESIGN contract)."""

    ranking: list[RankedServer]
    explored: bool
    source: Literal["online", "batch", "prior"] = Field(
        description="where the first-ranked server's figures come from (each entry says its own)")
    model_version: str
