"""The plan decision: group operations into parallel batches that respect dependencies.

Operations form a DAG (``depends_on``). Each batch holds at most
``max_batch`` operations whose dependencies all finished in earlier
batches; a batch takes as long as its slowest operation. Among the ready
operations, those with the longest remaining critical path (their duration
plus the longest chain of dependents after them) go first, which shortens
the whole plan (list scheduling with upward ranks, as in HEFT). Durations
come from the request, else from what :class:`Planner` learned per tool from
telemetry, else a prior of 1 s.

>>> planner = Planner()
>>> answer = planner.plan(PlanRequest(operations=[
...     Operation(id="fetch", duration_ms=100), Operation(id="parse", depends_on=["fetch"],
...     duration_ms=50), Operation(id="other", duration_ms=30)]))
>>> [b.operations for b in answer.batches], answer.predicted_ms, answer.sequential_ms
([['fetch', 'other'], ['parse']], 150.0, 180.0)
"""

from __future__ import annotations

import threading

from predictor.api.plan import Batch, Operation, PlanRequest, PlanResponse
from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord
from predictor.plugin import DecisionPlugin

__all__ = [
    "Batch",
    "Operation",
    "PlanRequest",
    "PlanResponse",
    "Planner",
]

PRIOR_DURATION_MS = 1000.0










class Planner(DecisionPlugin):
    """Learns per-tool durations from telemetry (EWMA) and plans; thread-safe."""

    def __init__(self, alpha: float = 0.2) -> None:
        super().__init__()
        self.alpha = alpha
        self._durations: dict[str, float] = {}
        self.observations = 0
        self._lock = threading.Lock()

    family = "resources"

    def learn_call(self, record: CallRecord) -> None:
        if record.latency_ms is not None:
            self.observe(record.tool, record.latency_ms)

    def observe(self, tool: str, latency_ms: float) -> None:
        with self._lock:
            self.observations += 1
            old = self._durations.get(tool)
            self._durations[tool] = latency_ms if old is None else old + self.alpha * (
                latency_ms - old)

    def _duration(self, op: Operation) -> float:
        if op.duration_ms is not None:
            return op.duration_ms
        if op.tool is not None and op.tool in self._durations:
            return self._durations[op.tool]
        return PRIOR_DURATION_MS

    def plan(self, req: PlanRequest) -> PlanResponse:
        """Batches in order; raises ``ValueError`` on duplicate ids, unknown deps or cycles."""
        ops = {op.id: op for op in req.operations}
        if len(ops) != len(req.operations):
            raise ValueError("operation ids must be unique")
        for op in req.operations:
            missing = [d for d in op.depends_on if d not in ops]
            if missing:
                raise ValueError(f"operation {op.id!r} depends on unknown {missing}")
        with self._lock:
            duration = {op_id: self._duration(op) for op_id, op in ops.items()}
            learned = any(op.tool in self._durations for op in req.operations)
            observations = self.observations
        dependents: dict[str, list[str]] = {op_id: [] for op_id in ops}
        for op in req.operations:
            for dep in set(op.depends_on):
                dependents[dep].append(op.id)
        # Upward rank: an operation's duration plus the longest chain after it.
        rank: dict[str, float] = {}
        order = self._topological(ops, dependents)
        for op_id in reversed(order):
            rank[op_id] = duration[op_id] + max((rank[d] for d in dependents[op_id]),
                                                default=0.0)
        waiting = {op_id: len(set(op.depends_on)) for op_id, op in ops.items()}
        ready = [op_id for op_id, n in waiting.items() if n == 0]
        batches: list[Batch] = []
        while ready:
            ready.sort(key=lambda op_id: (-rank[op_id], op_id))
            batch, ready = ready[: req.max_batch], ready[req.max_batch:]
            batches.append(Batch(operations=batch,
                                 predicted_ms=round(max(duration[o] for o in batch), 3)))
            for done in batch:
                for nxt in dependents[done]:
                    waiting[nxt] -= 1
                    if waiting[nxt] == 0:
                        ready.append(nxt)
        predicted = sum(b.predicted_ms for b in batches)
        sequential = sum(duration.values())
        return PlanResponse(
            batches=batches, predicted_ms=round(predicted, 3), sequential_ms=round(sequential, 3),
            time_reduction=round(1 - predicted / sequential, 4) if sequential else 0.0,
            durations_ms={k: round(v, 3) for k, v in duration.items()},
            model=Provenance.of("resources", observations=observations, learned=learned),
        )

    @staticmethod
    def _topological(ops: dict[str, Operation], dependents: dict[str, list[str]]) -> list[str]:
        indegree = {op_id: len(set(op.depends_on)) for op_id, op in ops.items()}
        queue = [op_id for op_id, n in indegree.items() if n == 0]
        order: list[str] = []
        while queue:
            op_id = queue.pop()
            order.append(op_id)
            for nxt in dependents[op_id]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    queue.append(nxt)
        if len(order) != len(ops):
            cyclic = sorted(op_id for op_id, n in indegree.items() if n > 0)
            raise ValueError(f"dependencies form a cycle among {cyclic}")
        return order
