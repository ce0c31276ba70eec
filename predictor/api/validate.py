"""Request and answer of the validate decision (light: pydantic only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from predictor.data.schema import CallRecord, RecordError, parse_record

__all__ = [
    "Check",
    "ValidateRequest",
    "ValidateResponse",
]


class ValidateRequest(BaseModel):
    calls: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)
    max_duration_ms: float | None = Field(default=None, ge=0)
    min_success_rate: float | None = Field(default=0.95, ge=0, le=1)
    max_memory_mb: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    @field_validator("calls")
    @classmethod
    def _valid_calls(cls, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, raw in enumerate(calls):
            try:
                record = parse_record(raw)
            except RecordError as err:
                raise ValueError(f"calls[{index}].{err.field}: {err.reason}") from None
            if not isinstance(record, CallRecord):
                raise ValueError(f"calls[{index}].kind: a workflow holds calls, not probes")
        return calls


class Check(BaseModel):
    name: str
    expected: float
    actual: float | None
    met: bool


class ValidateResponse(BaseModel):
    checks: list[Check]
    all_met: bool
    calls: int
