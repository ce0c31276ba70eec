"""Request and answer of the context decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_NAME, MAX_TOKENS, Integral, RequestModel

__all__ = [
    "ContextItem",
    "DroppedItem",
    "KeptItem",
    "ReduceRequest",
    "ReduceResponse",
]


class ContextItem(RequestModel):
    id: str = Field(max_length=MAX_NAME)
    text: str = Field(max_length=1_000_000)
    tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS), Integral] | None = Field(default=None)


class ReduceRequest(RequestModel):
    query: str = Field(min_length=1, max_length=100_000)
    items: list[ContextItem] = Field(max_length=10_000)
    budget_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS), Integral] = Field(default=4000)
    threshold: float = Field(default=0.7, ge=0, le=1)
    duplicate_threshold: float = Field(default=0.9, gt=0, le=1)


class KeptItem(BaseModel):
    id: str
    relevance: float
    tokens: int


class DroppedItem(BaseModel):
    id: str
    relevance: float
    reason: str


class ReduceResponse(BaseModel):
    kept: list[KeptItem]
    dropped: list[DroppedItem]
    tokens_before: int
    tokens_after: int
    source: Literal["rule"] = Field(default="rule", description="computed by fixed rules "
                                    "(word coverage, TF-IDF duplicates, budget)")
