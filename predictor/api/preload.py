"""Request and answer of the preload decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from predictor.api.base import Integral, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = [
    "PreloadKey",
    "PreloadRequest",
    "PreloadResponse",
]


class PreloadRequest(RequestModel):
    recent: list[Name] = Field(default_factory=list, max_length=1000,
                              description="recent accesses, oldest first")
    budget_keys: Annotated[int, Field(ge=0, le=10_000), Integral] = Field(default=10)
    budget_mb: float | None = Field(default=None, ge=0, le=1e9)
    key_size_mb: float = Field(default=1.0, ge=1e-6, le=1e6,
                               description="size assumed per key (at least a byte)")
    cached: list[Name] = Field(default_factory=list, max_length=100_000,
                               description="keys already in the cache")
    min_probability: float = Field(default=0.05, ge=0, le=1)


class PreloadKey(BaseModel):
    key: str
    probability: float


class PreloadResponse(BaseModel):
    keys: list[PreloadKey]
    estimated_hit_rate: float
    source: Literal["online", "prior"]
    model: Provenance
