"""What every request model shares: strict, finite, bounded input.

A request is validated as it is declared, so the OpenAPI and MCP schemas
are exactly what is accepted: no ``false`` for a number, no ``"3"`` for an
integer, no ``NaN`` or ``Infinity`` anywhere, and every name, list and
number within the bounds below.

>>> from pydantic import ValidationError
>>> class Example(RequestModel):
...     rate: float = 1.0
...     count: Annotated[int, Field(ge=0), Integral] = 1
>>> Example.model_validate_json('{"rate": 2, "count": 3.0}')
Example(rate=2.0, count=3)
>>> for body in ('{"rate": false}', '{"rate": NaN}', '{"count": true}', '{"count": 2.5}'):
...     try:
...         Example.model_validate_json(body)
...     except ValidationError as err:
...         print(err.errors()[0]["type"])
float_type
finite_number
int_type
int_type
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["MAX_DURATION_MS", "MAX_EPOCH_S", "MAX_TOKENS", "Integral", "Name", "RequestModel"]

#: Longest name (server, tool, task type, key, id) a request may hold.
MAX_NAME = 512
#: A day: the longest duration a request may state.
MAX_DURATION_MS = 86_400_000.0
#: Latest epoch second a request may state (year 5138): far past any real clock.
MAX_EPOCH_S = 1e11
#: Most tokens a request may state.
MAX_TOKENS = 1_000_000_000

def _integral(value: object) -> object:
    """A float with no fraction as the integer it is (JSON Schema's ``integer`` allows ``3.0``)."""
    if type(value) is float and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


#: Marks an integer that may be written ``3.0`` (strictly an integer otherwise: never
#: ``true``, never ``"3"``). It goes after the bounds, so the schema shows them:
#: ``Annotated[int, Field(ge=1, le=10), Integral]``.
Integral = BeforeValidator(_integral)

#: A non-empty name of bounded length.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


class RequestModel(BaseModel):
    """Base of every decision request: strict types, finite numbers."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)
