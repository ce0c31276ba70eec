"""``predictor evaluate --closed-loop N``: selection policies acting on the simulator.

The simulator (:mod:`predictor.data.simulator`) generates the stream of calls an
agent makes, with its servers' states evolving over time. At each call,
every policy picks a server among those that serve the task type and the
simulator answers that pick. Outcomes use common random numbers: the
outcome of call *i* on server *s* is the same whichever policy asks, so the
policies differ only by their picks, and the per-call ``oracle`` (the best
outcome among the candidates: a success first, then the lowest latency) is
exact. Each policy learns only from the outcomes of its own picks (bandit
feedback); the model policy also reads the health probes, which every
deployment has.

Policies: ``served`` (the select decision exactly as the service builds it:
the engine's selector with its cooldowns, the default weights and the
default exploration; reported as ``model`` too), ``ewma`` (the
lowest per-(server, tool) moving-average latency of its own observations,
unseen servers first), ``random``, ``round_robin``.

The world is exogenous: the policies' picks do not change server load
(the background traffic does). ``regret_ms`` is each policy's mean latency
minus the oracle's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from predictor.api.select import DEFAULT_WEIGHTS, SelectRequest
from predictor.data.schema import parse_record
from predictor.data.simulator import CATALOG, CallContext, Simulator
from predictor.engine import Engine

__all__ = ["POLICIES", "run_closed_loop"]

POLICIES = ("served", "model", "ewma", "random", "round_robin")
#: The exploration rate a select request gets when it does not set one.
SERVED_EXPLORE = SelectRequest.model_fields["explore"].default


class _Ewma:
    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.values: dict[tuple[str, str], float] = {}

    def pick(self, candidates: list[str], tool: str) -> str:
        # Servers not yet tried come first, as latency routers probe new backends.
        return min(candidates, key=lambda s: self.values.get((s, tool), -math.inf))

    def learn(self, server: str, tool: str, latency: float) -> None:
        old = self.values.get((server, tool))
        self.values[(server, tool)] = latency if old is None else old + self.alpha * (
            latency - old)


def run_closed_loop(n_calls: int, *, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``n_calls`` first-attempt calls through every policy; return the report."""
    progress = progress or (lambda message: None)
    sim = Simulator(seed=seed)
    world = sim.world
    engine = Engine(seed=seed)  # the served select decision, with its cooldowns
    ewma = _Ewma()
    rng = random.Random(f"closed-loop-{seed}")
    turn: dict[str, int] = {}
    results: dict[str, list[tuple[float, bool, float]]] = {
        p: [] for p in (*POLICIES, "oracle")}
    explored = 0
    calls = 0
    for record in sim.records(10 * n_calls + 1000):
        if calls >= n_calls:
            break
        if record.get("kind") == "health":
            engine.learn([parse_record(record)])
            continue
        if record.get("attempt", 1) != 1:
            continue
        calls += 1
        task, tool = record["task_type"], record["tool"]
        ts = _epoch(record["ts"])
        candidates = CATALOG[task]
        # No cache key: the logged call has already warmed the simulator's cache with it,
        # which would make every pick a hit.
        ctx = CallContext(ts, task, tool, record["input_tokens"], record.get("workflow_id"),
                          record.get("phase"), None)
        # Every candidate's outcome, drawn once: the oracle needs them all.
        concurrency = {s: world.concurrency(s, ts) for s in candidates}
        outcomes = {
            s: world.outcome(s, ctx, random.Random(f"{seed}-{calls}-{s}"),
                             concurrency=concurrency[s])
            for s in candidates
        }

        answer = engine.select(SelectRequest(task_type=task, candidates=candidates, tool=tool))
        explored += answer.explored
        k = turn.get(task, 0)
        turn[task] = k + 1
        picks = {
            "served": answer.ranking[0].server,
            "ewma": ewma.pick(candidates, tool),
            "random": rng.choice(candidates),
            "round_robin": candidates[k % len(candidates)],
        }
        for policy, server in picks.items():
            out = outcomes[server]
            results[policy].append((out["latency_ms"], out["success"], out["cost_usd"]))
        results["model"].append(results["served"][-1])
        best = min(candidates,
                   key=lambda s: (not outcomes[s]["success"], outcomes[s]["latency_ms"]))
        results["oracle"].append((outcomes[best]["latency_ms"], outcomes[best]["success"],
                                  outcomes[best]["cost_usd"]))
        # Each policy learns from its own pick only; the served one as the service
        # would, from the telemetry record of its call.
        server = picks["served"]
        out = outcomes[server]
        engine.learn([parse_record({
            "ts": ts, "server": server, "tool": tool, "task_type": task,
            "latency_ms": out["latency_ms"], "success": out["success"],
            "error_type": out["error_type"], "concurrency": concurrency[server],
            "cost_usd": out["cost_usd"]})])
        ewma.learn(picks["ewma"], tool, outcomes[picks["ewma"]]["latency_ms"])
        if calls % 10_000 == 0:
            progress(f"closed loop: {calls} calls")
    mean_latency = {p: float(np.mean([r[0] for r in v])) for p, v in results.items()}
    success = {p: float(np.mean([r[1] for r in v])) for p, v in results.items()}
    cost = {p: float(np.mean([r[2] for r in v])) for p, v in results.items()}
    oracle = mean_latency["oracle"]
    return {
        "events": calls,
        "closed_loop": True,
        "seed": seed,
        "selection": {
            "decisions": calls,
            "mean_latency_ms": {p: round(v, 2) for p, v in mean_latency.items()},
            "success_rate": {p: round(v, 4) for p, v in success.items()},
            "mean_cost_usd": {p: round(v, 6) for p, v in cost.items()},
            "latency_per_success_ms": {p: round(mean_latency[p] / max(success[p], 1e-9), 2)
                                       for p in results},
            "regret_ms": {p: round(mean_latency[p] - oracle, 2) for p in POLICIES},
            "explored_pct": round(100.0 * explored / max(calls, 1), 2),
            "weights": dict(DEFAULT_WEIGHTS),
            "explore": SERVED_EXPLORE,
        },
    }


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
