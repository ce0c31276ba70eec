"""OTLP/HTTP JSON trace export -> telemetry call records.

A span is an MCP tool call when it carries the OpenTelemetry MCP / GenAI
conventions: ``mcp.method.name = tools/call``, or ``gen_ai.tool.name``, or a
name of the form ``... tools/call <tool>`` (the Python MCP SDK's client
spans, ``MCP send tools/call <tool>``, carry no ``gen_ai.tool.name``).

* ``tool``: ``gen_ai.tool.name``, else the last word of the span name;
* ``server``: ``server.address`` (a client span names its server), else the
  resource's ``service.name`` (a server span is the server), each mapped
  through ``server_map`` when it names them;
* ``ts`` and ``latency_ms``: ``startTimeUnixNano`` and the span's duration;
* ``success``: false when the status is ERROR or ``error.type`` is set (a
  tool result with ``isError`` sets ``error.type=tool_error`` on the server
  span and leaves the client span OK); ``error_type`` from ``error.type``,
  else ``error`` for an ERROR status;
* ``input_tokens``/``output_tokens`` from ``gen_ai.usage.*``; the trace and
  span ids go to ``attrs``.

Other spans (HTTP handlers, list_tools, ...) are skipped, and counted.

>>> body = {"resourceSpans": [{"resource": {"attributes": [
...     {"key": "service.name", "value": {"stringValue": "search-mcp"}}]},
...   "scopeSpans": [{"spans": [
...     {"name": "tools/call web_search", "traceId": "ab", "spanId": "cd",
...      "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225600250000000",
...      "attributes": [{"key": "mcp.method.name", "value": {"stringValue": "tools/call"}},
...                     {"key": "gen_ai.tool.name", "value": {"stringValue": "web_search"}},
...                     {"key": "error.type", "value": {"stringValue": "tool_error"}}]},
...     {"name": "GET /health", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}
>>> result = spans_to_raw_records(body)
>>> [(r["server"], r["tool"], r["latency_ms"], r["error_type"]) for _, r in result.records]
[('search-mcp', 'web_search', 250.0, 'tool_error')]
>>> result.skipped
1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from predictor.data.schema import RecordError

__all__ = ["OtlpBatch", "spans_to_raw_records"]

_STATUS_ERROR = (2, "STATUS_CODE_ERROR", "ERROR")


@dataclass
class OtlpBatch:
    """Raw call records (with where each span was) and what could not be used."""

    #: (span path, raw record) pairs, still to be validated by ``parse_record``.
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: (span path, error) for spans that are calls but malformed.
    errors: list[tuple[str, RecordError]] = field(default_factory=list)
    #: Spans that are not tool calls.
    skipped: int = 0


def _value(value: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:  # OTLP JSON sends 64-bit ints as strings
            number = int(value["intValue"])
        except (TypeError, ValueError, OverflowError):
            return None
        return number if -(2**63) <= number < 2**64 else None
    return None  # arrays, kvlists and bytes carry nothing a call record uses


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    out = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("value"), dict) and "key" in item:
            out[str(item["key"])] = _value(item["value"])
    return out


def _is_call(name: str, attrs: Mapping[str, Any]) -> bool:
    return (attrs.get("mcp.method.name") == "tools/call" or "gen_ai.tool.name" in attrs
            or "tools/call " in name)


def _object(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a malformed part carries nothing)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _nanos(span: Mapping[str, Any], key: str) -> int:
    try:
        value = int(span[key])
    except KeyError:
        raise RecordError(key, "missing") from None
    except (TypeError, ValueError):
        raise RecordError(key, f"not an integer: {str(span[key])[:40]!r}") from None
    if not 0 <= value < 2**64:  # OTLP's fixed64
        raise RecordError(key, "outside 0 .. 2^64 - 1 nanoseconds")
    return value


def _span_record(span: Mapping[str, Any], resource: Mapping[str, Any],
                 server_map: Mapping[str, str]) -> dict[str, Any] | None:
    name = str(span.get("name", ""))
    attrs = _attributes(span.get("attributes"))
    if not _is_call(name, attrs):
        return None
    tool = attrs.get("gen_ai.tool.name") or (name.split()[-1] if "tools/call " in name else None)
    if not tool:
        raise RecordError("gen_ai.tool.name", "a tools/call span without a tool name")
    server = attrs.get("server.address") or resource.get("service.name")
    if not server:
        raise RecordError("server.address", "no server.address and no resource service.name")
    server = server_map.get(str(server), str(server))
    start, end = _nanos(span, "startTimeUnixNano"), _nanos(span, "endTimeUnixNano")
    if end < start:
        raise RecordError("endTimeUnixNano", "ends before it starts")
    status = _object(span.get("status"))
    error_type = attrs.get("error.type")
    if error_type is None and status.get("code") in _STATUS_ERROR:
        error_type = "error"
    record: dict[str, Any] = {
        "ts": start / 1e9, "server": server, "tool": str(tool),
        "latency_ms": (end - start) / 1e6, "success": error_type is None,
        "error_type": None if error_type is None else str(error_type),
    }
    for key, target in (("gen_ai.usage.input_tokens", "input_tokens"),
                        ("gen_ai.usage.output_tokens", "output_tokens")):
        if attrs.get(key) is not None:
            record[target] = attrs[key]
    extra = {k: v for k, v in (("trace_id", span.get("traceId")), ("span_id", span.get("spanId")),
                               ("session_id", attrs.get("mcp.session.id"))) if v}
    if extra:
        record["attrs"] = extra
    return record


def spans_to_raw_records(body: Any, server_map: Mapping[str, str] | None = None) -> OtlpBatch:
    """Turn an OTLP/HTTP JSON ``ExportTraceServiceRequest`` into raw call records.

    Raises
    ------
    RecordError
        When the body is not an OTLP trace export at all.
    """
    if not isinstance(body, dict) or not isinstance(body.get("resourceSpans"), list):
        raise RecordError("resourceSpans", "expected an OTLP/HTTP JSON trace export")
    server_map = server_map or {}
    batch = OtlpBatch()
    for r, resource_spans in enumerate(body["resourceSpans"]):
        if not isinstance(resource_spans, dict):
            batch.errors.append((f"resourceSpans[{r}]", RecordError("record", "not an object")))
            continue
        resource = _attributes(_object(resource_spans.get("resource")).get("attributes"))
        for s, scope in enumerate(_list(resource_spans.get("scopeSpans"))):
            for i, span in enumerate(_list(_object(scope).get("spans"))):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                if not isinstance(span, dict):
                    batch.errors.append((where, RecordError("record", "not an object")))
                    continue
                try:
                    record = _span_record(span, resource, server_map)
                except RecordError as err:
                    batch.errors.append((where, err))
                    continue
                if record is None:
                    batch.skipped += 1
                else:
                    batch.records.append((where, record))
    return batch
