"""OTLP/HTTP protobuf trace exports, read into the JSON shape :mod:`predictor.data.otlp` reads.

OpenTelemetry SDKs export over HTTP as protobuf by default
(``application/x-protobuf``; the Python SDK has no JSON exporter at all), so
``POST /v1/traces`` takes both encodings. Decoding is the official
``opentelemetry-proto`` messages and protobuf's own JSON mapping, which is
the OTLP/JSON encoding except for trace and span ids: protobuf renders bytes
as base64, OTLP/JSON as hex, so ids are re-encoded here.

>>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
...     ExportTraceServiceRequest)
>>> request = ExportTraceServiceRequest()
>>> span = request.resource_spans.add().scope_spans.add().spans.add()
>>> span.name, span.trace_id, span.start_time_unix_nano = "tools/call x", b"\\x01\\x02", 5
>>> body = decode_traces(request.SerializeToString())
>>> body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
{'traceId': '0102', 'name': 'tools/call x', 'startTimeUnixNano': '5'}
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from predictor.data.schema import RecordError

__all__ = ["PROTOBUF", "decode_traces", "encode_response"]

#: The content type of OTLP/HTTP protobuf.
PROTOBUF = "application/x-protobuf"

_IDS = ("traceId", "spanId", "parentSpanId")


def _hex(value: str) -> str:
    return base64.b64decode(value).hex()


def decode_traces(body: bytes) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON form.

    Raises
    ------
    RecordError
        When ``body`` is not a protobuf ``ExportTraceServiceRequest``.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError) as err:
        raise RecordError("body", f"not an OTLP protobuf ExportTraceServiceRequest: "
                                  f"{err}") from None
    decoded = MessageToDict(request)
    for resource in decoded.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for name in _IDS:
                    if name in span:
                        span[name] = _hex(span[name])
                for link in span.get("links", []):
                    for name in _IDS:
                        if name in link:
                            link[name] = _hex(link[name])
    return decoded


def encode_response(rejected: int, message: str = "") -> bytes:
    """The protobuf answer to an export: how many spans were rejected, and why."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message[:1000]
    return response.SerializeToString()
