"""The answer to an ingestion (light: pydantic only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["IngestError", "IngestReport"]


class IngestError(BaseModel):
    index: int | str = Field(description="position in the batch (a span's path for OTLP)")
    field: str
    reason: str


class IngestReport(BaseModel):
    """The answer to an ingestion: what was stored, what was rejected and why."""

    received: int
    accepted: int = Field(description="records stored durably before this reply")
    rejected: int
    skipped: int = Field(default=0, description="OTLP spans that are not tool calls")
    errors: list[IngestError] = Field(description="the first 100 rejections")

    @classmethod
    def of(cls, result: Any) -> IngestReport:
        """From a :class:`predictor.serving.service.IngestResult`."""
        return cls(received=result.received, accepted=result.accepted,
                   rejected=result.rejected, skipped=result.skipped,
                   errors=[IngestError(**e) for e in result.errors])
