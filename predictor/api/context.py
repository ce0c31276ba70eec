"""Request and answer of the context decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "ContextItem",
    "DroppedItem",
    "KeptItem",
    "ReduceRequest",
    "ReduceResponse",
]


class ContextItem(BaseModel):
    id: str
    text: str
    tokens: int | None = Field(default=None, ge=0)


class ReduceRequest(BaseModel):
    query: str = Field(min_length=1)
    items: list[ContextItem] = Field(max_length=10_000)
    budget_tokens: int = Field(default=4000, ge=0)
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
