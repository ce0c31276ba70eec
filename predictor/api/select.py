"""Request and answer of the select decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from predictor.api.base import MAX_TOKENS, Integral, Name, RequestModel

__all__ = [
    "DEFAULT_WEIGHTS",
    "Factors",
    "Predicted",
    "RankedServer",
    "SelectRequest",
    "SelectResponse",
]

#: The factors a selection weighs.
Factor = Literal["capability", "performance", "cost", "reliability", "availability"]

#: The factor weights the service answers with unless a request sets its own: DESIGN's
#: (the seed's), .35/.25/.20/.15/.05. They trade cost against speed: at .20 a server 2.7
#: times the cheapest one's price loses as much score as one 67 % slower, so where a log
#: has costs the served selector pays in latency for what it saves (README, "Decisions");
#: a request that cares less for cost says so in ``weights``.
DEFAULT_WEIGHTS = {"capability": 0.35, "performance": 0.25, "cost": 0.20, "reliability": 0.15,
                   "availability": 0.05}


class SelectRequest(RequestModel):
    """``POST /v1/select`` request (DESIGN contract)."""

    task_type: Name
    candidates: list[Name] = Field(min_length=1, max_length=1000)
    tool: Name | None = None
    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS), Integral] | None = Field(default=None)
    weights: dict[Factor, Annotated[float, Field(ge=0, le=1e6)]] | None = Field(
        default=None, max_length=len(DEFAULT_WEIGHTS),
        description="factor -> weight (0 to 1e6), for the factors to weigh otherwise than the "
                    "defaults: capability .35, performance .25, cost .20, reliability .15, "
                    "availability .05")
    explore: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = set(value) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown factors {sorted(unknown)}; known: {list(DEFAULT_WEIGHTS)}")
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
