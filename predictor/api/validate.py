"""Request and answer of the validate decision (light: pydantic only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from predictor.api.base import Integral, RequestModel
from predictor.data.schema import CallRecord, RecordError, parse_record

__all__ = [
    "Check",
    "ValidateRequest",
    "ValidateResponse",
]


class ValidateRequest(RequestModel):
    calls: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)
    max_duration_ms: float | None = Field(
        default=300_000.0, ge=0, le=1e12, description="wall time from the first call's start to "
        "the last call's end (the seed's 300,000 ms); null skips the check")
    min_success_rate: float | None = Field(default=0.95, ge=0, le=1,
                                           description="share of calls that succeeded")
    max_memory_mb: float | None = Field(default=512.0, ge=0, le=1e9,
                                        description="peak mem_mb of any call (the seed's 512)")
    max_tokens: Annotated[int, Field(ge=0, le=10**15), Integral] | None = Field(default=50_000,
                                   description="input plus output tokens of all calls "
                                               "(the seed's 50,000)")

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
    actual: float | None = Field(description="null when no call recorded the figure")
    met: bool | None = Field(description="null (unknown) when no call recorded the figure")


class ValidateResponse(BaseModel):
    checks: list[Check]
    all_met: bool = Field(description="every check whose figure is known was met")
    unknown: list[str] = Field(default_factory=list,
                               description="checks no call recorded a figure for")
    calls: int
    source: Literal["rule"] = Field(default="rule", description="computed by fixed rules")
