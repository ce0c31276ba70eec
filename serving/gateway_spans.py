"""The gateway's attempts as OpenTelemetry spans, exported over OTLP/HTTP (``[otlp]``).

One ``INTERNAL`` span per call the gateway served (``predictor.gateway
<tool>``), with one ``CLIENT`` child per attempt at an upstream that
carries the OpenTelemetry MCP and GenAI conventions: ``mcp.method.name =
tools/call``, ``gen_ai.operation.name = execute_tool``, ``gen_ai.tool.name``,
``server.address`` (the upstream's name), ``error.type`` and an ``ERROR``
status on failure, and ``predictor.*`` attributes for what the conventions
lack (attempt, recovery, task type, cache). The call span carries no MCP
attributes, so a collector that makes calls of MCP spans (``predictor
serve``'s ``/v1/traces`` among them) counts each attempt once. Export is
batched in the background by the OpenTelemetry SDK; a collector that is
down costs the call path nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from predictor import __version__
from predictor.serving.gateway_config import Otlp

__all__ = ["SpanExport"]

log = logging.getLogger("predictor.gateway")


class SpanExport:
    """Turns a call's attempts into spans and exports them (see the module docstring).

    Parameters
    ----------
    config
        Where to export: the ``[otlp]`` section.
    exporter
        Replaces the OTLP/HTTP exporter (tests use an in-memory one).
    """

    def __init__(self, config: Otlp, exporter: SpanExporter | None = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({
            "service.name": config.service_name, "service.version": __version__}))
        exporter = exporter or OTLPSpanExporter(endpoint=config.endpoint,
                                                headers=config.headers or None,
                                                timeout=config.timeout_s)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("predictor.gateway", __version__)

    def call(self, tool: str, records: list[dict[str, Any]], served_from: str) -> None:
        """Spans of one call, from the telemetry records the gateway wrote for it."""
        if not records:
            return
        start = min(r["ts"] for r in records)
        end = max(r["ts"] + r.get("latency_ms", 0.0) / 1000 for r in records)
        parent = self.tracer.start_span(
            f"predictor.gateway {tool}", kind=SpanKind.INTERNAL, start_time=_ns(start),
            attributes={"predictor.tool": tool, "predictor.served_from": served_from,
                        "predictor.attempts": sum(1 for r in records if "attempt" in r)})
        context = set_span_in_context(parent)
        for record in records:
            if "attempt" not in record:
                continue  # a cache hit never reached an upstream
            attributes: dict[str, Any] = {
                "mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": record["tool"], "server.address": record["server"],
                "predictor.attempt": record["attempt"],
            }
            for name in ("task_type", "recovery", "workflow_id", "phase", "cache_key"):
                if record.get(name) is not None:
                    attributes[f"predictor.{name}"] = record[name]
            if record.get("recovered") is not None:
                attributes["predictor.recovered"] = record["recovered"]
            if not record["success"]:
                attributes["error.type"] = record.get("error_type") or "error"
            span = self.tracer.start_span(
                f"tools/call {record['tool']}", context=context, kind=SpanKind.CLIENT,
                start_time=_ns(record["ts"]), attributes=attributes)
            if not record["success"]:
                span.set_status(Status(StatusCode.ERROR, record.get("error_type")))
            span.end(end_time=_ns(record["ts"] + record.get("latency_ms", 0.0) / 1000))
        if not records[-1]["success"] and served_from == "upstream":
            parent.set_status(Status(StatusCode.ERROR, records[-1].get("error_type")))
        parent.end(end_time=_ns(end))

    def shutdown(self) -> None:
        """Export what is pending, then stop."""
        try:
            self.provider.shutdown()
        except Exception as err:  # a collector that is down must not stop the gateway
            log.warning("spans not exported: %s", err)


def _ns(epoch_s: float) -> int:
    return int(epoch_s * 1e9)
