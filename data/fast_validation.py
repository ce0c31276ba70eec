"""A fast check of a telemetry line that accepts only what :func:`parse_record` accepts.

Validating a record with pydantic (:func:`predictor.data.schema.parse_record`)
costs about 10 µs, several times the JSON parse; ingestion spends most of
its time there. msgspec decodes and checks a JSON line against the same
contract in about 2 µs. :func:`quick_row` answers the store row of a line
when the line is in the common, unambiguous form, and ``None`` otherwise:
the caller then runs :func:`parse_record`, which stays the authority (it
names the field at fault, coerces numbers given as strings, moves unknown
fields into ``attrs``, reads epoch milliseconds).

So the two paths never disagree, the fast one is narrower than pydantic
everywhere: no unknown fields, no coercion (a number where a name is
expected, ``"true"`` for a boolean), ``ts`` only as an RFC 3339 string with
at most 6 fractional digits (pydantic truncates further digits) or as
non-negative epoch seconds with at most 6 decimals, and every rule pydantic
enforces after parsing (``success`` against ``error_type``, a UTC time
within the calendar) checked again.
``tests/data/test_fast_validation.py`` holds the two to the same answers.

>>> quick_row(b'{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t","latency_ms":5}')[:4]
(1767571200.0, 'call', 'a', 't')
>>> quick_row(b'{"ts":1767571200.25,"kind":"health","server":"a","reachable":true}')[:4]
(1767571200.25, 'health', 'a', None)
>>> quick_row(b'{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t","region":"eu"}') is None
True
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
import orjson

from predictor.data.schema import (
    CallRecord,
    HealthRecord,
    Record,
    parse_record,
    trusted_builder,
)

if TYPE_CHECKING:
    from predictor.data.store import StoreRow

__all__ = ["RecordValues", "parse_line", "quick_record", "quick_row", "quick_values"]

_NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
# JSON integers past 64 bits reach pydantic as floats (orjson), which an int field
# refuses; msgspec bounds stop at int64, so larger counts are left to pydantic.
_I64 = 2**63 - 1
_NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=_I64)]
# orjson reads an integer past 64 bits as a float; msgspec would keep it whole.
_Attrs = dict[str, str | Annotated[int, msgspec.Meta(ge=-_I64 - 1, le=_I64)] | float | bool]
_Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
_Name = Annotated[str, msgspec.Meta(min_length=1)]


# The timestamp forms taken here: an RFC 3339 string with at most microseconds, or
# non-negative epoch seconds with at most 6 decimals. Up to 2e10 pydantic reads a number
# as seconds (past it, milliseconds), rounding to the microsecond as datetime does; with
# 6 decimals or fewer no value falls on a rounding tie, so the two agree exactly.
_RFC3339 = re.compile(
    rb'"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?"')
_EPOCH = re.compile(rb"\d{1,11}(?:\.\d{1,6})?")
_EPOCH_SECONDS_UP_TO = 2e10


class _Call(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Mirrors predictor.data.schema.CallRecord; JSON floats out of range fail in msgspec,
    # so no infinity reaches a bound. ts stays raw JSON: its text decides (see _epoch).
    ts: msgspec.Raw
    server: _Name
    tool: _Name
    kind: Literal["call"] = "call"
    attrs: _Attrs = msgspec.field(default_factory=dict)
    latency_ms: _NonNegFloat | None = None
    success: bool | None = None
    error_type: str | None = None
    task_type: str | None = None
    workflow_id: str | None = None
    phase: str | None = None
    input_tokens: _NonNegInt | None = None
    output_tokens: _NonNegInt | None = None
    cost_usd: _NonNegFloat | None = None
    cache_key: str | None = None
    cache_hit: bool | None = None
    cpu_pct: _Percent | None = None
    mem_mb: _NonNegFloat | None = None
    concurrency: _NonNegInt | None = None
    attempt: Annotated[int, msgspec.Meta(ge=1, le=_I64)] | None = None
    recovery: Literal["retry", "fallback", "degrade", "abort"] | None = None
    recovered: bool | None = None


class _Health(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Mirrors predictor.data.schema.HealthRecord.
    ts: msgspec.Raw
    server: _Name
    kind: Literal["health"]
    reachable: bool
    attrs: _Attrs = msgspec.field(default_factory=dict)
    latency_ms: _NonNegFloat | None = None
    cpu_pct: _Percent | None = None
    mem_pct: _Percent | None = None
    queue_depth: _NonNegInt | None = None


_CALL = msgspec.json.Decoder(_Call)
_HEALTH = msgspec.json.Decoder(_Health)


def _time(raw: msgspec.Raw) -> datetime | None:
    """The UTC time of a raw ``ts`` in a form taken here, else ``None``."""
    text = bytes(raw)
    try:
        if _RFC3339.fullmatch(text) is not None:
            when = datetime.fromisoformat(text[1:-1].decode())
            # Naive times are UTC (the contract); an aware one must stay in the calendar
            # once in UTC.
            return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if _EPOCH.fullmatch(text) is not None and float(text) <= _EPOCH_SECONDS_UP_TO:
            return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _decode(line: bytes) -> tuple[_Call | _Health, datetime] | None:
    try:
        record: _Call | _Health = _CALL.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            record = _HEALTH.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
    if isinstance(record, _Call) and record.success and record.error_type is not None:
        return None
    when = _time(record.ts)
    return None if when is None else (record, when)


def quick_row(line: bytes) -> StoreRow | None:
    """The store row of a valid telemetry line, or ``None`` when only pydantic can say.

    ``None`` does not mean invalid: :func:`predictor.data.schema.parse_record`
    decides those lines (and names the fault when there is one).
    """
    decoded = _decode(line)
    if decoded is None:
        return None
    record, when = decoded
    tool = record.tool if isinstance(record, _Call) else None
    return when.timestamp(), record.kind, record.server, tool, line


_CALL_NAMES = tuple(f for f in _Call.__struct_fields__ if f not in ("ts", "attrs", "kind"))
_HEALTH_NAMES = tuple(f for f in _Health.__struct_fields__ if f not in ("ts", "attrs", "kind"))
_BUILD_CALL = trusted_builder(CallRecord)
_BUILD_HEALTH = trusted_builder(HealthRecord)


def quick_record(line: bytes) -> Record | None:
    """The record :func:`parse_record` makes of a JSON line, or ``None`` when only it can say.

    >>> quick_record(b'{"ts":1,"server":"a","tool":"t","error_type":"timeout"}').success
    False
    """
    fields = _quick_fields(line)
    if fields is None:
        return None
    return (_BUILD_CALL if fields["kind"] == "call" else _BUILD_HEALTH)(fields)


class RecordValues:
    """A valid line's values as its record's ``__dict__`` holds them, ``epoch`` included,
    without the record: what a reader into columns
    (:func:`predictor.data.frame.records_to_frame`) reads of each record.

    Building the pydantic record costs more than the line's decoding; a
    log read into a frame builds a million of them for nothing.
    """

    epoch: float
    attrs: dict


def quick_values(line: bytes) -> RecordValues | None:
    """What :func:`quick_record` makes of a JSON line, as :class:`RecordValues`.

    >>> values = quick_values(b'{"ts":1,"server":"a","tool":"t","error_type":"timeout"}')
    >>> values.epoch, values.success, values.kind, values.attrs
    (1.0, False, 'call', {})
    """
    fields = _quick_fields(line)
    if fields is None:
        return None
    fields["epoch"] = fields["ts"].timestamp()
    values = RecordValues()
    values.__dict__ = fields
    return values


def _quick_fields(line: bytes) -> dict | None:
    """The fields :func:`parse_record` sets from a JSON line, or ``None`` when only it can
    say (``"kind"`` included, ``"ts"`` a UTC datetime)."""
    decoded = _decode(line)
    if decoded is None:
        return None
    record, when = decoded
    call = isinstance(record, _Call)
    fields: dict = {"ts": when}
    for name in _CALL_NAMES if call else _HEALTH_NAMES:
        value = getattr(record, name)
        if value is not None:
            fields[name] = value
    fields["kind"] = record.kind
    if call and record.success is None:
        fields["success"] = record.error_type is None
    fields["attrs"] = record.attrs
    return fields


def parse_line(line: bytes) -> Record:
    """The record of a JSON line: :func:`quick_record`, else :func:`parse_record`.

    Raises what :func:`parse_record` (``RecordError``) or ``orjson.loads``
    (``orjson.JSONDecodeError``) raise.

    >>> parse_line(b'{"ts":0,"server":"s","tool":"t","region":"eu"}').attrs
    {'region': 'eu'}
    """
    record = quick_record(line)
    return record if record is not None else parse_record(orjson.loads(line))
