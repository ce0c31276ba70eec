"""The answer to an ingestion (light: pydantic only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["MAX_BATCH_ID", "IngestError", "IngestReport"]

#: Longest batch id (``Idempotency-Key``) a client may send.
MAX_BATCH_ID = 200


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
    replayed: bool = Field(default=False, description="true when the batch id was seen before: "
                           "nothing was stored again, and this is the first answer")

    @classmethod
    def of(cls, result: Any) -> IngestReport:
        """From a :class:`predictor.serving.service.IngestResult`."""
        return cls(received=result.received, accepted=result.accepted,
                   rejected=result.rejected, skipped=result.skipped,
                   errors=[IngestError(**e) for e in result.errors],
                   replayed=getattr(result, "replayed", False))
