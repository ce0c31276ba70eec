"""The table of decisions: everything else is derived from it.

Each row names a decision, the plug-in that owns its state and the method
that answers, its model family, typed request and answer, HTTP path and MCP
tool. The engine (:class:`predictor.engine.Engine`) builds one plug-in per
distinct ``plugin`` and checkpoints them per family; the HTTP routes, MCP
tools and client methods (:mod:`predictor.serving`), ``/v1/models`` and the
registry names of online checkpoints are made from the rows. Adding a
decision is one plug-in module and one row.

This module imports only the light request and answer models
(:mod:`predictor.api`): the client can read the table without loading any
model library; plug-ins are imported when an engine is built.

>>> [d.tool for d in DECISIONS][:3]
['select_server', 'allocate_resources', 'adjust_allocation']
>>> sorted(online_families())
['cache', 'load', 'performance', 'resources', 'risk']
>>> primary("load").name
'scale'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from predictor.api.allocate import AdjustRequest, AdjustResponse, AllocateRequest, AllocateResponse
from predictor.api.bottlenecks import BottlenecksRequest, BottlenecksResponse
from predictor.api.context import ReduceRequest, ReduceResponse
from predictor.api.cooldown import CooldownRequest, CooldownResponse
from predictor.api.plan import PlanRequest, PlanResponse
from predictor.api.preload import PreloadRequest, PreloadResponse
from predictor.api.recover import RecoverRequest, RecoverResponse
from predictor.api.risk import RiskRequest, RiskResponse
from predictor.api.scale import ScaleRequest, ScaleResponse
from predictor.api.select import SelectRequest, SelectResponse
from predictor.api.validate import ValidateRequest, ValidateResponse

__all__ = ["DECISIONS", "Decision", "online_families", "plugin_class", "primary"]


@dataclass(frozen=True)
class Decision:
    """One decision: who answers it, with what types, and where HTTP and MCP reach it.

    Parameters
    ----------
    name
        The decision's name: the engine's and the client's method.
    plugin
        ``"module:Class"`` of the plug-in that owns the state and answers.
    method
        The plug-in's method that answers a request.
    family
        The model family whose state the plug-in holds (checkpoints, registry).
    path, tool
        The HTTP path and the MCP tool name.
    request, response
        Typed request and answer (pydantic): the HTTP body and the MCP schema.
    summary
        What the decision answers (OpenAPI and MCP description).
    http
        ``POST`` (JSON body) or ``GET`` (query parameters).
    inline
        Cheap enough to answer on the event loop (else a worker thread).
    primary
        The decision a family's registered online checkpoint answers.
    example
        A request, for the registered input example of the family.
    """

    name: str
    plugin: str
    method: str
    family: str
    path: str
    tool: str
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str
    http: Literal["POST", "GET"] = "POST"
    inline: bool = False
    primary: bool = False
    example: dict[str, Any] = field(default_factory=dict)


DECISIONS: tuple[Decision, ...] = (
    Decision("select", "predictor.select:Selector", "select", "performance", "/v1/select",
             "select_server", SelectRequest, SelectResponse,
             "Rank candidate MCP servers for a task: per-factor scores (capability, performance, "
             "cost, reliability, availability), predicted latency, success and cost.",
             inline=True, primary=True,
             example={"task_type": "search", "candidates": ["a", "b"], "explore": 0.0}),
    Decision("allocate", "predictor.allocate:Allocator", "allocate", "resources", "/v1/allocate",
             "allocate_resources", AllocateRequest, AllocateResponse,
             "Predict duration, tokens, memory and CPU of a workflow spec, per phase and in "
             "total, with prediction intervals.", primary=True,
             example={"phases": [{"phase": "fetch", "tool": "search", "calls": 2}]}),
    Decision("adjust", "predictor.allocate:Allocator", "adjust", "resources",
             "/v1/allocate/adjust", "adjust_allocation", AdjustRequest, AdjustResponse,
             "Given actual usage so far, say which phases deviate beyond their interval and "
             "re-estimate the rest."),
    Decision("preload", "predictor.preload:Preloader", "preload", "cache", "/v1/preload",
             "preload_keys", PreloadRequest, PreloadResponse,
             "Keys to preload given recent accesses and a budget, with probabilities and the "
             "estimated hit rate.", inline=True, primary=True,
             example={"recent": ["k1"], "budget_keys": 2}),
    Decision("scale", "predictor.scale:Scaler", "scale", "load", "/v1/scale",
             "recommend_scaling", ScaleRequest, ScaleResponse,
             "Replicas for a server's next window from its load forecast (target utilization, "
             "max step x1.5, stabilization, min/max).", inline=True, primary=True,
             example={"server": "a", "current_replicas": 2, "capacity_per_replica": 10.0}),
    Decision("risk", "predictor.risk:RiskAssessor", "assess", "risk", "/v1/risk",
             "assess_risk", RiskRequest, RiskResponse,
             "Probability that a server's next call fails, and whether (and how) to prevent it.",
             primary=True, example={"server": "a"}),
    Decision("recover", "predictor.recover:Recoverer", "recover", "risk", "/v1/recover",
             "recommend_recovery", RecoverRequest, RecoverResponse,
             "After a failed call: retry with backoff, fall back to another server, degrade or "
             "abort, from the learned success of each strategy.", inline=True),
    Decision("cooldown", "predictor.cooldown:Cooldowns", "cooldowns", "risk", "/v1/cooldown",
             "check_cooldown", CooldownRequest, CooldownResponse,
             "Which servers to keep out of routing now and until when: a cooldown after "
             "consecutive failures, as long as that server's past outages (learned).",
             inline=True),
    Decision("reduce_context", "predictor.context:ContextReducer", "reduce", "context",
             "/v1/context/reduce", "reduce_context", ReduceRequest, ReduceResponse,
             "Keep the context items most relevant to a query under a token budget."),
    Decision("plan", "predictor.plan:Planner", "plan", "resources", "/v1/plan",
             "plan_operations", PlanRequest, PlanResponse,
             "Group operations with dependencies into parallel batches in a valid order, with "
             "the predicted time against running them one by one."),
    Decision("bottlenecks", "predictor.bottlenecks:BottleneckFinder", "bottlenecks", "performance",
             "/v1/bottlenecks", "find_bottlenecks", BottlenecksRequest, BottlenecksResponse,
             "Servers and tools that breach, or are forecast to breach, the alert thresholds, "
             "with drift alarms and the suggested action.", http="GET"),
    Decision("validate", "predictor.validate:Validator", "validate", "workflow", "/v1/validate",
             "validate_workflow", ValidateRequest, ValidateResponse,
             "Check a recorded workflow's calls against expected metrics (duration, success "
             "rate, memory, tokens)."),
)


def plugin_class(path: str) -> type:
    """The plug-in class named ``"module:Class"`` (imported on first use)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def online_families(decisions: tuple[Decision, ...] = DECISIONS) -> list[str]:
    """Families with a primary decision: each has a registered online checkpoint."""
    return list(dict.fromkeys(d.family for d in decisions if d.primary))


def primary(family: str, decisions: tuple[Decision, ...] = DECISIONS) -> Decision:
    """The decision a family's online checkpoint answers."""
    return next(d for d in decisions if d.primary and d.family == family)
