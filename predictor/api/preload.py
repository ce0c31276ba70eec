"""Request and answer of the preload decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from predictor.api.provenance import Provenance

__all__ = [
    "PreloadKey",
    "PreloadRequest",
    "PreloadResponse",
]


class PreloadRequest(BaseModel):
    recent: list[str] = Field(default_factory=list, max_length=1000,
                              description="recent accesses, oldest first")
    budget_keys: int = Field(default=10, ge=0, le=10_000)
    budget_mb: float | None = Field(default=None, ge=0)
    key_size_mb: float = Field(default=1.0, gt=0, description="size assumed per key")
    cached: list[str] = Field(default_factory=list, description="keys already in the cache")
    min_probability: float = Field(default=0.05, ge=0, le=1)


class PreloadKey(BaseModel):
    key: str
    probability: float


class PreloadResponse(BaseModel):
    keys: list[PreloadKey]
    estimated_hit_rate: float
    source: Literal["online", "prior"]
    model: Provenance
