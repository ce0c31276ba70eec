"""The MCP face: every decision of :data:`predictor.serving.catalog.CATALOG` as a tool.

Telemetry reporting is a tool too.

Each tool takes the fields of its decision's request model as arguments
(same names, types, defaults and descriptions as the HTTP body) and returns
the response model as structured output. Decisions are marked read-only;
``report_telemetry`` stores records and teaches the online models.

Served over stdio by ``predictor mcp`` and over streamable HTTP at ``/mcp``
of ``predictor serve`` (see :func:`predictor.serving.app.create_app`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from predictor import __version__
from predictor.api.telemetry import MAX_BATCH_ID
from predictor.data.schema import RecordError
from predictor.serving.catalog import CATALOG, Decision
from predictor.serving.service import IngestReport, QueueFull, Service

__all__ = ["build_mcp_server", "instructions"]

def instructions(decisions: tuple[Decision, ...] = CATALOG) -> str:
    """The server's instructions: one line per tool, from the decisions table."""
    lines = ["predictor learns from MCP tool-call telemetry and answers an execution layer's "
             "questions. Every answer says which model answered and its source (online, batch, "
             "prior or rule). Tools:"]
    lines += [f"- {d.tool}: {d.summary}" for d in decisions]
    lines.append("- report_telemetry: send telemetry records (stored durably, learned online).")
    return "\n".join(lines)


def _signature(model: type[BaseModel], returns: Any) -> inspect.Signature:
    """The request model's fields as keyword parameters (with their constraints)."""
    params = []
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        metadata = [*info.metadata]
        if info.description:
            metadata.append(Field(description=info.description))
        if metadata:
            annotation = Annotated[(annotation, *metadata)]
        default = (inspect.Parameter.empty if info.is_required()
                   else info.get_default(call_default_factory=True))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=annotation, default=default))
    return inspect.Signature(params, return_annotation=returns)


def _decision_tool(service: Service, decision: Decision) -> Callable[..., BaseModel]:
    def tool(**arguments: Any) -> BaseModel:
        try:
            request = decision.request.model_validate(arguments)
            answer = service.engine.answer(decision.name, request)
        except ValueError as err:  # pydantic's ValidationError is one
            raise ToolError(f"{decision.tool}: {err}") from None
        source = getattr(answer, "source", None) or "rule"
        service.metrics.decisions.labels(decision=decision.name, source=source).inc()
        return answer

    tool.__name__ = decision.tool
    tool.__doc__ = decision.summary
    tool.__signature__ = _signature(decision.request, decision.response)  # type: ignore[attr-defined]
    return tool


def build_mcp_server(service: Service, decisions: tuple[Decision, ...] = CATALOG) -> MCPServer:
    """An :class:`mcp.server.MCPServer` whose tools (one per decision) answer from ``service``."""
    server = MCPServer(name="predictor", instructions=instructions(decisions), version=__version__)
    for decision in decisions:
        server.add_tool(_decision_tool(service, decision), name=decision.tool,
                        description=decision.summary,
                        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
                        structured_output=True)

    def report_telemetry(
        records: Annotated[list[dict[str, Any]], Field(
            max_length=100_000,
            description="telemetry records (DESIGN's schema: kind call or health)")],
        batch_id: Annotated[str | None, Field(
            min_length=1, max_length=MAX_BATCH_ID,
            description="optional: a retried batch with the same id is stored once and "
                        "answered as the first time (replayed true)")] = None,
    ) -> IngestReport:
        """Store telemetry records durably and teach the online models; invalid records are
        reported by index and field, the valid ones kept."""
        try:
            return IngestReport.of(service.ingest(records, batch_id))
        except (RecordError, QueueFull) as err:
            raise ToolError(f"report_telemetry: {err}") from None

    server.add_tool(report_telemetry, name="report_telemetry",
                    annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False,
                                                idempotentHint=False, openWorldHint=False),
                    structured_output=True)
    return server
