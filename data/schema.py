"""Telemetry records: the contract of ``DESIGN.md`` as pydantic v2 models.

Two kinds of record exist. A ``call`` (the default when ``kind`` is absent)
is one MCP tool call; a ``health`` record is a periodic probe of one server.
Timestamps are normalized to timezone-aware UTC, unknown top-level fields are
moved into ``attrs``, and every rule of the contract is enforced at parse
time so that nothing downstream has to re-check it.

Examples
--------
>>> rec = parse_record({"ts": 0, "server": "exa", "tool": "web_search",
...                     "latency_ms": 120, "region": "eu"})
>>> rec.kind, rec.success, rec.attrs
('call', True, {'region': 'eu'})
>>> rec.ts.isoformat()
'1970-01-01T00:00:00+00:00'
>>> try:
...     parse_record({"ts": 0, "server": "exa", "tool": "t", "latency_ms": -1})
... except RecordError as err:
...     print(err.field)
latency_ms
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "CALL_FIELDS",
    "HEALTH_FIELDS",
    "CallRecord",
    "HealthRecord",
    "Record",
    "RecordError",
    "parse_record",
    "record_to_json",
    "trusted_builder",
]

AttrValue = str | int | float | bool
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
# Identifiers may arrive as numbers (block ids, numeric server ids); they are names.
Ident = Annotated[str, Field(coerce_numbers_to_str=True)]
Name = Annotated[str, Field(min_length=1, coerce_numbers_to_str=True)]


class RecordError(ValueError):
    """A record that breaks the telemetry contract.

    Parameters
    ----------
    field
        Name of the field at fault (dotted for nested fields, ``"record"``
        when the record as a whole is malformed).
    reason
        Human-readable reason.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Epoch:
    """A record's start time as seconds since the Unix epoch, computed once.

    The engine and each of its plug-ins read it (several times per record
    learned). The value is kept in the record's ``__dict__`` at the first
    read, where later reads find it before this descriptor (functools'
    ``cached_property`` does the same behind a lock, which costs more here
    than the value does). A copy given another ``ts`` recomputes it
    (``model_copy`` below).

    >>> rec = parse_record({"ts": 10, "server": "s", "tool": "t"})
    >>> later = rec.model_copy(update={"ts": datetime.fromtimestamp(20, UTC)})
    >>> rec.epoch, later.epoch, rec == parse_record({"ts": 10, "server": "s", "tool": "t"})
    (10.0, 20.0, True)
    """

    def __get__(self, record: Any, owner: type | None = None) -> Any:
        if record is None:
            return self
        value = record.ts.timestamp()
        record.__dict__["epoch"] = value
        return value


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings",
                              ignored_types=(_Epoch,))

    ts: datetime
    server: Name
    attrs: dict[str, AttrValue] = Field(default_factory=dict)
    #: Start time as seconds since the Unix epoch (computed once: :class:`_Epoch`).
    epoch = _Epoch()

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # Naive timestamps are taken as UTC: the contract says ts is UTC.
        offset = value.utcoffset()
        if offset is None or not offset:
            # replace() rather than astimezone(): same instant, and much cheaper.
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # not a ValueError: pydantic would let it escape as a crash
            raise ValueError("outside the years 1-9999 once converted to UTC") from None

    @field_validator("attrs")
    @classmethod
    def _finite_attrs(cls, value: dict[str, AttrValue]) -> dict[str, AttrValue]:
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"attrs.{key} is not a finite number")
        return value

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        """pydantic's ``model_copy``; a copy given another ``ts`` recomputes its ``epoch``."""
        copied = super().model_copy(update=update, deep=deep)
        if update and "ts" in update:
            copied.__dict__.pop("epoch", None)
        return copied


class CallRecord(_Base):
    """One MCP tool call (``kind: "call"``).

    ``success`` is filled in when absent: true unless ``error_type`` is set.
    """

    kind: Literal["call"] = "call"
    tool: Name
    latency_ms: NonNegFloat | None = None
    success: bool | None = None
    error_type: str | None = None
    task_type: Ident | None = None
    workflow_id: Ident | None = None
    phase: Ident | None = None
    input_tokens: NonNegInt | None = None
    output_tokens: NonNegInt | None = None
    cost_usd: NonNegFloat | None = None
    cache_key: Ident | None = None
    cache_hit: bool | None = None
    cpu_pct: Percent | None = None
    mem_mb: NonNegFloat | None = None
    concurrency: NonNegInt | None = None
    attempt: Annotated[int, Field(ge=1)] | None = None
    recovery: Literal["retry", "fallback", "degrade", "abort"] | None = None
    recovered: bool | None = None

    @model_validator(mode="after")
    def _success_matches_error(self) -> CallRecord:
        if self.success is None:
            object.__setattr__(self, "success", self.error_type is None)
        elif self.success and self.error_type is not None:
            raise ValueError("success is true but error_type is set")
        return self


class HealthRecord(_Base):
    """A periodic probe of one server (``kind: "health"``)."""

    kind: Literal["health"]
    reachable: bool
    latency_ms: NonNegFloat | None = None
    cpu_pct: Percent | None = None
    mem_pct: Percent | None = None
    queue_depth: NonNegInt | None = None


Record = CallRecord | HealthRecord

CALL_FIELDS: frozenset[str] = frozenset(CallRecord.model_fields)
HEALTH_FIELDS: frozenset[str] = frozenset(HealthRecord.model_fields)
_CALL = TypeAdapter(CallRecord)
_HEALTH = TypeAdapter(HealthRecord)


#: Longest serialized unknown (nested) field a record may carry into ``attrs``.
MAX_UNKNOWN_CHARS = 65_536


def _move_unknown_to_attrs(raw: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    unknown = raw.keys() - known
    if not unknown:
        return raw
    out = {k: v for k, v in raw.items() if k in known}
    given = out.get("attrs")
    if given is not None and not isinstance(given, dict):
        return out  # let validation name the bad attrs field
    attrs = dict(given or {})
    for key in unknown:
        value = raw[key]
        if value is None:
            continue  # an unknown field set to null carries nothing
        if isinstance(value, dict | list):
            # Unknown nested values are kept, serialized, rather than dropped; a value
            # JSON cannot hold again (nested past orjson's 254 levels) or too large to
            # be worth storing rejects its record alone, never the batch.
            try:
                value = orjson.dumps(value).decode()
            except orjson.JSONEncodeError as err:
                raise RecordError(key, f"unknown field not storable: {err}") from None
            if len(value) > MAX_UNKNOWN_CHARS:
                raise RecordError(key, f"unknown field over {MAX_UNKNOWN_CHARS} characters")
        attrs.setdefault(key, value)
    out["attrs"] = attrs
    return out


def _first_error(err: ValidationError) -> RecordError:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "record"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if loc == "record" and "error_type" in msg:
        loc = "success"
    return RecordError(loc, msg)


def parse_record(raw: Any) -> Record:
    """Validate one raw record (a mapping) into a :class:`CallRecord` or :class:`HealthRecord`.

    Parameters
    ----------
    raw
        A mapping as read from JSON, CSV or Parquet. Absent optional fields may
        be missing or ``None``.

    Raises
    ------
    RecordError
        Naming the field at fault and the reason.
    """
    if not isinstance(raw, dict):
        raise RecordError("record", f"expected a JSON object, got {type(raw).__name__}")
    kind = raw.get("kind", "call")
    if kind is None or kind == "call":
        adapter, known = _CALL, CALL_FIELDS
    elif kind == "health":
        adapter, known = _HEALTH, HEALTH_FIELDS
    else:
        raise RecordError("kind", f"unknown kind {kind!r} (expected 'call' or 'health')")
    if kind is None:
        raw = {k: v for k, v in raw.items() if k != "kind"}
    data = _move_unknown_to_attrs(raw, known)
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        raise _first_error(err) from None


def trusted_builder(cls: type[CallRecord] | type[HealthRecord]) -> Callable[[dict], Record]:
    """A builder of ``cls`` from values validated before, as ``model_construct`` builds it.

    ``model_construct`` walks every field's aliases and defaults per record;
    replaying a log builds a million records, so the walk is done once here:
    a template of the defaults in field order (serialization follows that
    order) that each record's values overwrite.
    """
    template = {name: None if field.is_required() or field.default_factory is not None
                else field.default for name, field in cls.model_fields.items()}
    new = cls.__new__
    setattr_ = object.__setattr__

    def build(fields: dict) -> Record:
        record = new(cls)
        setattr_(record, "__dict__", {**template, **fields})
        setattr_(record, "__pydantic_fields_set__", set(fields))
        setattr_(record, "__pydantic_extra__", None)
        setattr_(record, "__pydantic_private__", None)
        return record

    return build


def record_to_json(record: Record) -> bytes:
    """Serialize a record to compact JSON without its absent fields.

    >>> rec = parse_record({"ts": "2026-01-01T00:00:00Z", "server": "s", "tool": "t"})
    >>> record_to_json(rec)
    b'{"ts":"2026-01-01T00:00:00Z","server":"s","kind":"call","tool":"t","success":true}'
    """
    return record.__pydantic_serializer__.to_json(
        record,
        exclude_none=True,
        exclude_defaults=False,
        exclude={"attrs"} if not record.attrs else None,
    )
