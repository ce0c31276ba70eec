"""``predictor run``: the seed's adaptive workflow executor, on the gateway core.

For each phase of a :class:`~predictor.serving.workflow.Workflow`, in order:

1. **allocate**: the needs of each of the phase's tools (calls x duration and
   tokens) with intervals at the workflow's ``coverage``, from the served
   allocate decision;
2. **plan**: the served plan decision groups the steps into batches of at
   most ``max_batch`` that respect ``depends_on``, longest critical path
   first (durations learned per tool);
3. **run**: each batch's steps run concurrently through the gateway (select,
   risk, recover, cache: see :mod:`predictor.serving.gateway`), every attempt
   recorded as telemetry with the run's ``workflow_id`` and the ``phase``;
   a step's ``context`` is cut into passages and reduced under its token
   budget by the reduce_context decision; a step whose dependency failed is
   skipped;
4. **compare**: the adjust decision sets the phase's actual time (summed
   call latency) and tokens against the intervals. When a learned interval
   (``source: "online"``) was exceeded, or a step failed, what is left is
   **re-planned**: half the parallelism, and the providers that served the
   deviating tools are avoided while another one is up. A deviation from a
   prior (nothing learned yet) is reported but re-plans nothing: a prior
   says nothing about these servers.

The run ends with the validate decision on every recorded call against the
workflow's expectations, and a report: per phase predicted against actual,
every decision taken with its source, each step's attempts and recoveries.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from predictor.api.allocate import AdjustRequest, AllocateRequest, PhaseSpec, Usage
from predictor.api.context import ContextItem, ReduceRequest
from predictor.api.plan import Operation, PlanRequest
from predictor.api.validate import ValidateRequest
from predictor.serving.gateway import CallReport, Gateway, estimate_tokens
from predictor.serving.workflow import Phase, Step, Workflow

__all__ = ["WorkflowRunner", "passages"]

#: Tokens per passage a step's context is cut into before reduction.
_PASSAGE_TOKENS = 120

Progress = Callable[[str, dict[str, Any]], None]


def _verdict(met: bool | None) -> str:
    return "unknown" if met is None else "ok" if met else "FAILED"


def passages(text: str, max_tokens: int = _PASSAGE_TOKENS) -> list[str]:
    """``text`` cut at blank lines, then at lines, into pieces of about ``max_tokens``.

    >>> passages("a\\n\\nb")
    ['a', 'b']
    >>> len(passages("line\\n" * 200, max_tokens=50))  # 2 tokens a line
    8
    """
    pieces: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        current: list[str] = []
        size = 0
        for line in block.splitlines():
            cost = estimate_tokens(line + "\n")
            if current and size + cost > max_tokens:
                pieces.append("\n".join(current))
                current, size = [], 0
            current.append(line)
            size += cost
        if current and "".join(current).strip():
            pieces.append("\n".join(current))
    return pieces


class WorkflowRunner:
    """Runs one workflow on a started gateway (see the module docstring).

    Parameters
    ----------
    gateway
        A started :class:`~predictor.serving.gateway.Gateway`.
    workflow
        What to run.
    progress
        Called with an event name (``phase``, ``step``, ``replan``) and its
        details as the run goes.
    """

    def __init__(self, gateway: Gateway, workflow: Workflow,
                 progress: Progress | None = None) -> None:
        self.gateway = gateway
        self.workflow = workflow
        self.progress = progress or (lambda event, details: None)
        self.engine = gateway.service.engine
        self.workflow_id = f"{workflow.name}-{uuid.uuid4().hex[:12]}"
        self.parallelism = workflow.max_batch
        self.avoid: set[str] = set()
        self.calls: dict[str, CallReport] = {}
        self.failed: set[str] = set()
        self.decisions: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []

    def _decide(self, decision: str, source: str, detail: str, **where: str) -> None:
        self.decisions.append({"decision": decision, "source": source, "detail": detail, **where})

    def _upstream_tool(self, step: Step) -> str:
        entry = self.gateway.tools.get(step.tool)
        if entry is None:
            down = [f"{name} ({upstream.last_error or 'not up'})"
                    for name, upstream in self.gateway.upstreams.items() if not upstream.ready]
            raise ValueError(f"step {step.id!r}: the gateway lists no tool {step.tool!r}"
                             + (f"; upstreams not up: {', '.join(down)}" if down else ""))
        return entry.upstream_tool

    async def run(self) -> dict[str, Any]:
        """Run every phase, validate, and return the report (JSON-ready)."""
        for step in self.workflow.steps().values():
            self._upstream_tool(step)  # every tool is known before anything runs
        started = time.time()
        clock = time.perf_counter()
        phases = []
        replans = []
        for index, phase in enumerate(self.workflow.phases):
            result, replan = await self._phase(phase, index)
            phases.append(result)
            if replan is not None:
                replans.append(replan)
        records = [record for call in self.calls.values() for record in call.records]
        expectations = self.workflow.expectations
        validation = self.engine.answer("validate", ValidateRequest(
            calls=records or [{"ts": started, "server": "none", "tool": "none",
                               "success": False}],
            max_duration_ms=expectations.max_duration_ms,
            min_success_rate=expectations.min_success_rate,
            max_memory_mb=expectations.max_memory_mb, max_tokens=expectations.max_tokens))
        self._decide("validate", validation.source,
                     f"{'all met' if validation.all_met else 'not met'}: "
                     + ", ".join(f"{c.name} {_verdict(c.met)}" for c in validation.checks))
        succeeded = sum(1 for s in self.steps if s["status"] == "ok")
        return {
            "workflow": self.workflow.name, "workflow_id": self.workflow_id,
            "started": started, "wall_ms": round((time.perf_counter() - clock) * 1000, 3),
            "steps_total": len(self.steps), "steps_succeeded": succeeded,
            "success": succeeded == len(self.steps) and validation.all_met,
            "phases": phases, "steps": self.steps, "decisions": self.decisions,
            "replans": replans, "validation": validation.model_dump(mode="json"),
            "cache": self.gateway.cache.stats(),
        }

    async def _phase(self, phase: Phase, index: int) -> tuple[dict[str, Any], dict | None]:
        tools: dict[str, int] = defaultdict(int)
        for step in phase.steps:
            tools[self._upstream_tool(step)] += 1
        specs = [PhaseSpec(phase=f"{phase.name}/{tool}", tool=tool, calls=n)
                 for tool, n in tools.items()]
        allocation = self.engine.answer("allocate", AllocateRequest(
            phases=specs, coverage=self.workflow.coverage))
        self._decide("allocate", allocation.source,
                     f"{allocation.total.duration_ms.expected:.0f} ms "
                     f"[{allocation.total.duration_ms.low:.0f}, "
                     f"{allocation.total.duration_ms.high:.0f}], "
                     f"{allocation.total.tokens.expected:.0f} tokens", phase=phase.name)
        here = {step.id for step in phase.steps}
        operations = [Operation(
            id=step.id, tool=self._upstream_tool(step),
            depends_on=sorted((set(step.depends_on) | set(step.context.sources
                                                         if step.context else [])) & here))
            for step in phase.steps]
        plan = self.engine.answer("plan", PlanRequest(operations=operations,
                                                      max_batch=self.parallelism))
        self._decide("plan", plan.model.source,
                     f"{len(plan.batches)} batch(es) of at most {self.parallelism}, "
                     f"predicted {plan.predicted_ms:.0f} ms", phase=phase.name)
        self.progress("phase", {"phase": phase.name, "index": index, "steps": len(phase.steps),
                                "batches": len(plan.batches)})
        by_id = {step.id: step for step in phase.steps}
        clock = time.perf_counter()
        for batch in plan.batches:
            await asyncio.gather(*(self._step(by_id[op], phase.name) for op in batch.operations))
        wall_ms = (time.perf_counter() - clock) * 1000
        used: dict[str, dict[str, float]] = defaultdict(lambda: {"duration_ms": 0.0,
                                                                 "tokens": 0.0})
        servers: dict[str, set[str]] = defaultdict(set)
        for step in phase.steps:
            call = self.calls.get(step.id)
            if call is None:
                continue
            spec = f"{phase.name}/{self._upstream_tool(step)}"
            used[spec]["duration_ms"] += sum(a.latency_ms for a in call.attempts) \
                if call.attempts else call.latency_ms
            used[spec]["tokens"] += call.input_tokens + call.output_tokens
            servers[spec] |= {a.server for a in call.attempts}
        adjust = self.engine.answer("adjust", AdjustRequest(
            phases=specs, coverage=self.workflow.coverage,
            actual={spec: Usage(duration_ms=round(u["duration_ms"], 3), tokens=u["tokens"])
                    for spec, u in used.items()}))
        learned = {estimate.phase for estimate in allocation.phases
                   if estimate.source == "online"}
        over = [d for d in adjust.deviations if d.outside and d.actual > d.high]
        acting = [d for d in over if d.phase in learned]
        failed_here = sorted(s.id for s in phase.steps if s.id in self.failed)
        self._decide("adjust", allocation.source,
                     f"{len(over)} figure(s) above the interval"
                     + (f" ({', '.join(f'{d.phase} {d.metric}' for d in over)})" if over else "")
                     + (", learned ones re-plan" if acting else ""), phase=phase.name)
        replan = None
        before = self.parallelism
        last = index + 1 == len(self.workflow.phases)
        if (acting or failed_here) and not last:  # nothing is left to re-plan after the last
            self.parallelism = max(1, self.parallelism // 2)
            avoided = sorted({server for d in acting for server in servers[d.phase]
                              if len(self._providers(d.phase)) > 1})
            self.avoid |= set(avoided)
            exceeded = [f"{d.phase} {d.metric} {d.actual:.0f} > {d.high:.0f}" for d in acting]
            failures = [f"failed steps {', '.join(failed_here)}"] if failed_here else []
            reason = "; ".join(exceeded + failures)
            replan = {"after_phase": phase.name, "reason": reason,
                      "parallelism": [before, self.parallelism], "avoid": avoided}
            self._decide("replan", allocation.source if acting else "rule",
                         f"parallelism {before} -> {self.parallelism}"
                         + (f", avoiding {', '.join(avoided)}" if avoided else ""),
                         phase=phase.name)
            self.progress("replan", replan)
        estimates = {estimate.phase: estimate for estimate in allocation.phases}
        result = {
            "phase": phase.name, "batches": [b.operations for b in plan.batches],
            "parallelism": before,
            "predicted": {
                "duration_ms": allocation.total.duration_ms.model_dump(),
                "tokens": allocation.total.tokens.model_dump(),
                "plan_ms": plan.predicted_ms, "source": allocation.source,
            },
            "actual": {
                "duration_ms": round(sum(u["duration_ms"] for u in used.values()), 3),
                "wall_ms": round(wall_ms, 3),
                "tokens": sum(u["tokens"] for u in used.values()),
                "steps": len(phase.steps), "failed": len(failed_here),
            },
            "tools": {spec: {"predicted_ms": estimates[spec].duration_ms.model_dump(),
                             "actual_ms": round(used[spec]["duration_ms"], 3),
                             "source": estimates[spec].source} for spec in estimates},
            "deviations": [d.model_dump() for d in adjust.deviations if d.outside],
            "within": not over,
            "replanned": replan is not None,
        }
        return result, replan

    def _providers(self, spec: str) -> tuple[str, ...]:
        tool = spec.split("/", 1)[1]
        return next((e.providers for e in self.gateway.tools.values()
                     if e.upstream_tool == tool and len(e.providers) > 1), ())

    async def _step(self, step: Step, phase: str) -> None:
        record: dict[str, Any] = {"id": step.id, "phase": phase, "tool": step.tool}
        blocked = [d for d in step.depends_on + (step.context.sources if step.context else [])
                   if d in self.failed or d not in self.calls]
        if blocked:
            self.failed.add(step.id)
            record.update(status="skipped", reason=f"dependency failed: {', '.join(blocked)}")
            self.steps.append(record)
            self.progress("step", record)
            return
        arguments = dict(step.arguments)
        if step.context is not None:
            arguments[step.context.into] = self._context(step, phase)
        call = await self.gateway.execute(step.tool, arguments, workflow_id=self.workflow_id,
                                          phase=phase, avoid=frozenset(self.avoid))
        self.calls[step.id] = call
        for decision in call.decisions:
            self._decide(decision.decision, decision.source, decision.detail, phase=phase,
                         step=step.id)
        if not call.success:
            self.failed.add(step.id)
        record.update(
            status="ok" if call.success else "failed", server=call.server,
            served_from=call.served_from, latency_ms=round(call.latency_ms, 3),
            attempts=[{"server": a.server, "latency_ms": round(a.latency_ms, 3),
                       "error_type": a.error_type} for a in call.attempts],
            recoveries=call.recoveries, tokens=call.input_tokens + call.output_tokens)
        if not call.success:
            record["error"] = call.failure() or call.text()[:300]
        self.steps.append(record)
        self.progress("step", record)

    def _context(self, step: Step, phase: str) -> str:
        spec = step.context
        assert spec is not None
        items = [ContextItem(id=f"{source}#{k}", text=text)
                 for source in spec.sources
                 for k, text in enumerate(passages(self.calls[source].text()))]
        if not items:
            return ""
        answer = self.engine.answer("reduce_context", ReduceRequest(
            query=spec.query, items=items, budget_tokens=spec.budget_tokens,
            threshold=spec.threshold))
        kept = {item.id for item in answer.kept}
        self._decide("reduce_context", answer.source,
                     f"kept {len(kept)} of {len(items)} passages, {answer.tokens_before} -> "
                     f"{answer.tokens_after} tokens", phase=phase, step=step.id)
        return "\n\n".join(item.text for item in items if item.id in kept)

