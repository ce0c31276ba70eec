"""The validate decision: did a recorded workflow meet its expectations?

Given a workflow's calls (telemetry records) and expectations (maximum
duration, minimum success rate, maximum memory, maximum tokens), each
expectation is checked against the figure computed from the calls:
duration from the first start to the last finish, success rate over the
calls, the largest memory of a call, and input plus output tokens. The
expectations default to the seed's (300,000 ms, 0.95, 512 MB, 50,000
tokens); a figure no call recorded is unknown (``met`` null), not unmet.

>>> answer = validate_workflow(ValidateRequest(calls=[
...     {"ts": 0, "server": "s", "tool": "t", "latency_ms": 1500, "mem_mb": 300},
...     {"ts": 2, "server": "s", "tool": "t", "latency_ms": 500, "error_type": "timeout"}],
...     max_duration_ms=3000))
>>> {c.name: c.met for c in answer.checks}  # doctest: +NORMALIZE_WHITESPACE
{'max_duration_ms': True, 'min_success_rate': False, 'max_memory_mb': True,
 'max_tokens': None}
"""

from __future__ import annotations

from predictor.api.validate import Check, ValidateRequest, ValidateResponse
from predictor.data.schema import parse_record
from predictor.plugin import DecisionPlugin

__all__ = [
    "Check",
    "ValidateRequest",
    "ValidateResponse",
    "Validator",
    "validate_workflow",
]


def validate_workflow(req: ValidateRequest) -> ValidateResponse:
    """Check each expectation that the request sets."""
    records = [parse_record(raw) for raw in req.calls]
    starts = [r.epoch for r in records]
    ends = [r.epoch + (r.latency_ms or 0.0) / 1000 for r in records]
    duration = (max(ends) - min(starts)) * 1000
    success = sum(bool(r.success) for r in records) / len(records)
    memory = [r.mem_mb for r in records if r.mem_mb is not None]
    tokens = [(r.input_tokens or 0) + (r.output_tokens or 0) for r in records
              if r.input_tokens is not None or r.output_tokens is not None]
    checks: list[Check] = []
    if req.max_duration_ms is not None:
        checks.append(Check(name="max_duration_ms", expected=req.max_duration_ms,
                            actual=round(duration, 3), met=duration <= req.max_duration_ms))
    if req.min_success_rate is not None:
        checks.append(Check(name="min_success_rate", expected=req.min_success_rate,
                            actual=round(success, 4), met=success >= req.min_success_rate))
    if req.max_memory_mb is not None:
        peak = max(memory) if memory else None
        checks.append(Check(name="max_memory_mb", expected=req.max_memory_mb, actual=peak,
                            met=None if peak is None else peak <= req.max_memory_mb))
    if req.max_tokens is not None:
        total = sum(tokens) if tokens else None
        checks.append(Check(name="max_tokens", expected=req.max_tokens, actual=total,
                            met=None if total is None else total <= req.max_tokens))
    return ValidateResponse(checks=checks, all_met=all(c.met is not False for c in checks),
                            unknown=[c.name for c in checks if c.met is None],
                            calls=len(records))


class Validator(DecisionPlugin):
    """The validate decision as a plug-in: fixed rules over the calls given, nothing learned."""

    family = "workflow"
    stateful = False

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        return validate_workflow(req)
