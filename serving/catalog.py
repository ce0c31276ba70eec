"""The decisions the service answers: one table that both faces are built from.

Each :class:`Decision` names the engine method that answers, its request and
response models, its HTTP path and its MCP tool. :mod:`predictor.serving.app` makes a
route of each and :mod:`predictor.serving.mcp_server` a tool, so the two faces cannot
drift apart and neither holds any logic.

>>> [d.tool for d in CATALOG][:3]
['select_server', 'allocate_resources', 'adjust_allocation']
>>> {d.path for d in CATALOG} >= {"/v1/select", "/v1/context/reduce", "/v1/plan"}
True
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from predictor.allocate import AdjustRequest, AdjustResponse, AllocateRequest, AllocateResponse
from predictor.bottlenecks import BottlenecksRequest, BottlenecksResponse
from predictor.context import ReduceRequest, ReduceResponse
from predictor.plan import PlanRequest, PlanResponse
from predictor.preload import PreloadRequest, PreloadResponse
from predictor.recover import RecoverRequest, RecoverResponse
from predictor.risk import RiskRequest, RiskResponse
from predictor.scale import ScaleRequest, ScaleResponse
from predictor.select import SelectRequest, SelectResponse
from predictor.validate import ValidateRequest, ValidateResponse

__all__ = ["CATALOG", "Decision"]


@dataclass(frozen=True)
class Decision:
    """One decision: where HTTP and MCP reach it and which engine method answers."""

    name: str
    method: str
    path: str
    tool: str
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str


CATALOG = (
    Decision("select", "select", "/v1/select", "select_server", SelectRequest, SelectResponse,
             "Rank candidate MCP servers for a task: per-factor scores (capability, performance, "
             "cost, reliability, availability), predicted latency, success and cost."),
    Decision("allocate", "allocate", "/v1/allocate", "allocate_resources", AllocateRequest,
             AllocateResponse,
             "Predict duration, tokens, memory and CPU of a workflow spec, per phase and in "
             "total, with prediction intervals."),
    Decision("adjust", "adjust", "/v1/allocate/adjust", "adjust_allocation", AdjustRequest,
             AdjustResponse,
             "Given actual usage so far, say which phases deviate beyond their interval and "
             "re-estimate the rest."),
    Decision("preload", "preload", "/v1/preload", "preload_keys", PreloadRequest,
             PreloadResponse,
             "Keys to preload given recent accesses and a budget, with probabilities and the "
             "estimated hit rate."),
    Decision("scale", "scale", "/v1/scale", "recommend_scaling", ScaleRequest, ScaleResponse,
             "Replicas for a server's next window from its load forecast (target utilization, "
             "max step x1.5, stabilization, min/max)."),
    Decision("risk", "assess_risk", "/v1/risk", "assess_risk", RiskRequest, RiskResponse,
             "Probability that a server's next call fails, and whether (and how) to prevent it."),
    Decision("recover", "recover", "/v1/recover", "recommend_recovery", RecoverRequest,
             RecoverResponse,
             "After a failed call: retry with backoff, fall back to another server, degrade or "
             "abort, from the learned success of each strategy."),
    Decision("reduce_context", "reduce_context", "/v1/context/reduce", "reduce_context",
             ReduceRequest, ReduceResponse,
             "Keep the context items most relevant to a query under a token budget."),
    Decision("plan", "plan", "/v1/plan", "plan_operations", PlanRequest, PlanResponse,
             "Group operations with dependencies into parallel batches in a valid order, with "
             "the predicted time against running them one by one."),
    Decision("bottlenecks", "bottlenecks", "/v1/bottlenecks", "find_bottlenecks",
             BottlenecksRequest, BottlenecksResponse,
             "Servers and tools that breach, or are forecast to breach, the alert thresholds, "
             "with drift alarms and the suggested action."),
    Decision("validate", "validate", "/v1/validate", "validate_workflow", ValidateRequest,
             ValidateResponse,
             "Check a recorded workflow's calls against expected metrics (duration, success "
             "rate, memory, tokens)."),
)
