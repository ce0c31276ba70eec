"""Every refusal the HTTP face gives: a documented 4xx whose body names the field.

FastAPI's default validation handler echoes each rejected input back; an
input that JSON cannot carry (invalid UTF-8, ``NaN``, ``Infinity``, nesting
hundreds deep) then fails to serialize and the refusal becomes a 500. Here
the echo is cut to what JSON can carry, and every error says which field
(``field``, dotted; ``body`` for the body as a whole) is at fault.

>>> _field(("body", "weights", "performance")), _field(("weights", "luck", "[key]"))
('weights.performance', 'weights.luck')
>>> _echo(float("nan")), _echo(b"\\xff\\xfe"), _echo({"deep": {}})
('nan', '\\\\xff\\\\xfe', None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = ["ERROR_RESPONSES", "ErrorBody", "FieldError", "validation_error"]

_ECHO_CHARS = 200


class FieldError(BaseModel):
    """One reason a request was refused."""

    field: str = Field(description="the field at fault, dotted (`body`: the body as a whole)")
    loc: list[str | int] = Field(description="the field's path, as pydantic gives it")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="pydantic's error type, e.g. `finite_number`")
    input: str | int | float | bool | None = Field(
        default=None, description="the rejected value, when it is a short scalar")


class ErrorBody(BaseModel):
    """The body of every 4xx: ``detail`` is a list of field errors, or one sentence."""

    detail: list[FieldError] | str


#: The 4xx answers a decision route documents in OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "body over the configured size limit"},
    422: {"model": ErrorBody, "description": "a field of the wrong type, out of its bounds, "
                                             "not finite, or a body that is not JSON; "
                                             "`detail` names each field"},
}


def _field(loc: Sequence[Any]) -> str:
    # pydantic ends the path of a bad dict key with "[key]": the key is the field at fault.
    parts = [str(p) for p in loc if p != "[key]"]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _echo(value: Any) -> str | int | float | bool | None:
    """The rejected value as JSON can carry it, or ``None`` when it is not a short scalar."""
    if isinstance(value, bool | int) and abs(int(value)) < 2**53:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        value = value[:_ECHO_CHARS].decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return value[:_ECHO_CHARS]
    return None


def field_errors(errors: Sequence[dict[str, Any]]) -> list[FieldError]:
    """pydantic's errors as :class:`FieldError` (at most 50; never the raw input)."""
    out = []
    for error in list(errors)[:50]:
        loc = [p if isinstance(p, int) else str(p)[:_ECHO_CHARS] for p in error.get("loc", ())]
        out.append(FieldError(field=_field(loc), loc=loc, msg=str(error.get("msg", ""))[:500],
                              type=str(error.get("type", "")), input=_echo(error.get("input"))))
    return out


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the fields named; never fails on what it was sent."""
    body = ErrorBody(detail=field_errors(exc.errors()))
    return JSONResponse(body.model_dump(), status_code=422)
