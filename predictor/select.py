"""The select decision: rank candidate servers for a task.

Score = weighted sum of five factors, each normalized to 0-1 and reported.
Each factor compares the candidate with the best one on a quantity where
less is better, as the best figure over this one's, so the weights trade
comparable things (the defaults are DESIGN's:
:data:`predictor.api.select.DEFAULT_WEIGHTS` says what they trade):

* **capability** (.35): how well the server does this task type: the
  lowest failure rate among the candidates over this one's (each plus 2 %,
  the resolution of success counts that forget at 0.98 a call),
  from the discounted success rate on the task, shrunk towards a prior (0.9
  for a server declared capable in configuration, 0.7 when nothing is known);
* **performance** (.25): the shortest expected time to a success among the
  candidates (p50 latency over success probability: a failure costs a retry)
  over this one's;
* **cost** (.20): ``1 / (1 + ln(cost / cheapest))``: prices of tools differ by
  orders of magnitude, so they compare on a log scale (1 when no cost is
  known);
* **reliability** (.15): the server's recent success rate over all tasks;
* **availability** (.05): 0 when its last health probe was unreachable or
  its last calls all failed to connect, else 1.

Latency is learned online per (server, task type) as a log-scale level plus a
load slope: ``log latency = level + slope * load``, where ``load`` is the
server's most recent known concurrency (from its calls or its health probe
queue depth). Level and slope adapt with constant step sizes, so the model
follows servers that degrade and recover. Every estimate carries its
uncertainty; with probability ``explore`` the pick is the best of a Thompson
sample from those posteriors, moved to the top of the ranking when it
differs from the greedy pick (the answer then says ``explored``). Before any telemetry,
every answer comes from the priors (``source: "prior"``).

>>> selector = Selector(seed=1)
>>> answer = selector.select(SelectRequest(task_type="search", candidates=["a", "b"],
...                                        explore=0.0))
>>> answer.source, [r.server for r in answer.ranking]
('prior', ['a', 'b'])
>>> for i in range(30):
...     selector.observe_call(float(i), "a", "search", latency_ms=900.0, success=True)
...     selector.observe_call(float(i), "b", "search", latency_ms=150.0, success=True)
>>> answer = selector.select(SelectRequest(task_type="search", candidates=["a", "b"],
...                                        explore=0.0))
>>> answer.source, answer.ranking[0].server
('online', 'b')
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from predictor.api.select import (
    DEFAULT_WEIGHTS,
    Factors,
    Predicted,
    RankedServer,
    SelectRequest,
    SelectResponse,
)
from predictor.data.schema import CallRecord, HealthRecord
from predictor.models.arms import ArmStats, as_number
from predictor.plugin import DecisionPlugin

__all__ = [
    "DEFAULT_WEIGHTS",
    "Factors",
    "Predicted",
    "RankedServer",
    "SelectRequest",
    "SelectResponse",
    "Selector",
]

PRIOR_LATENCY_MS = 500.0
PRIOR_LOG_SD = 1.0
_MEMO_SIZE = 1024
#: Posterior estimates kept per (server, task type, tool); past it they are dropped
#: (requests name task types and tools freely).
_ESTIMATES_SIZE = 8192












@dataclass
class _Server:
    """What the selector tracks of a server besides its estimates: load and availability."""

    load: float = 0.0
    reachable: bool = True
    connect_failures: int = 0


_PRIOR_SERVER = _Server()  # what is assumed of an unseen server (read only)


class Selector(DecisionPlugin):
    """Online server selection from telemetry; thread-safe.

    Parameters
    ----------
    capabilities
        Optional configuration: server -> task types it declares it serves.
    weights
        Default factor weights (DESIGN's seed pattern).
    discount
        Per-observation forgetting of success counts (drift adaptation).
    step
        Step size of the latency level and slope updates.
    seed
        Seed of the exploration sampler.
    """

    record_fields = frozenset({
        "ts", "kind", "server", "task_type", "tool", "latency_ms", "success", "error_type",
        "concurrency", "cost_usd", "reachable", "queue_depth"})

    def __init__(self, capabilities: dict[str, list[str]] | None = None, *,
                 weights: dict[str, float] | None = None, discount: float = 0.98,
                 step: float = 0.15, seed: int = 0) -> None:
        super().__init__()
        self.capabilities = {s: set(t) for s, t in (capabilities or {}).items()}
        self.cooldowns: Any = None  # the engine's cooldown plug-in, bound by the engine
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.discount = discount
        self.step = step
        #: The estimator behind the answers: latency, success, cost per (server, task type).
        self.stats = ArmStats(discount=discount, step=step, prior_latency_ms=PRIOR_LATENCY_MS,
                              prior_log_sd=PRIOR_LOG_SD)
        self._servers: dict[str, _Server] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.observations = 0
        self._state = 0  # bumped by every observation: the memo's validity
        self._memo: dict[tuple, tuple[int, list[dict], SelectResponse]] = {}
        #: Per server, its observations: what its estimates were computed at. An
        #: observation changes only its own server's estimates, so a select after one
        #: recomputes that server's and reuses the other candidates'.
        self._versions: dict[str, int] = {}
        self._estimates: dict[tuple, tuple[int, tuple[float, ...]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_estimates"] = {}  # recomputed on use: not worth a checkpoint's bytes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_versions", {})  # checkpoints from before the estimates
        self.__dict__.setdefault("_estimates", {})

    family = "performance"
    needs = MappingProxyType({"cooldowns": "predictor.cooldown:Cooldowns"})
    why_online = ("select answers from the online model: a batch predict of ten candidates "
                  "costs close to a millisecond (bench/models.py), select about 60 "
                  "microseconds, and the online model learns every call")

    @classmethod
    def build(cls, *, capabilities: dict[str, list[str]] | None = None,
              seed: int = 0) -> Selector:
        return cls(capabilities, seed=seed)

    # --- learning ---------------------------------------------------------
    def learn_call(self, record: CallRecord) -> None:
        self.observe_call(record.epoch, record.server, record.task_type, tool=record.tool,
                          latency_ms=record.latency_ms, success=bool(record.success),
                          error_type=record.error_type,
                          concurrency=None if record.concurrency is None else float(
                              record.concurrency),
                          cost_usd=record.cost_usd)

    def learn_health(self, record: HealthRecord) -> None:
        self.observe_health(record.server, reachable=record.reachable,
                            queue_depth=None if record.queue_depth is None else float(
                                record.queue_depth))

    def _server(self, name: str) -> _Server:
        srv = self._servers.get(name)
        if srv is None:
            srv = self._servers[name] = _Server()
        return srv

    def observe_health(self, server: str, *, reachable: bool,
                       queue_depth: float | None = None) -> None:
        """Learn from a health probe."""
        with self._lock:
            self._state += 1
            self._versions[server] = self._versions.get(server, 0) + 1
            srv = self._server(server)
            srv.reachable = reachable
            if queue_depth is not None and not math.isnan(queue_depth):
                srv.load = float(queue_depth)

    def observe_call(self, ts: float, server: str, task_type: str | None, *,
                     latency_ms: float | None = None, success: bool | None = None,
                     error_type: str | None = None, concurrency: float | None = None,
                     cost_usd: float | None = None, tool: str | None = None) -> None:
        """Learn from one finished call."""
        task = task_type or "*"
        with self._lock:
            self.observations += 1
            self._state += 1
            self._versions[server] = self._versions.get(server, 0) + 1
            srv = self._server(server)
            if concurrency is not None and not math.isnan(concurrency):
                srv.load = float(concurrency)
            if success is not None:
                srv.connect_failures = (srv.connect_failures + 1
                                        if error_type == "connection" else 0)
                if success:
                    srv.reachable = True
            self.stats.learn_values(
                server, task, tool, as_number(srv.load) or 0.0, as_number(latency_ms),
                None if success is None else float(success), as_number(cost_usd))

    # --- deciding ---------------------------------------------------------
    def _capability_prior(self, server: str, task: str) -> float | None:
        if not self.capabilities:
            return None  # what the server's recent calls of the tool say, else 0.7
        return 0.9 if task in self.capabilities.get(server, ()) else 0.3

    def _estimate(self, server: str, task: str, tool: str | None,
                  sample: bool) -> tuple[float, ...]:
        srv = self._servers.get(server) or _PRIOR_SERVER
        available = 1.0 if srv.reachable and srv.connect_failures < 3 else 0.0
        if self.cooldowns is not None and self.cooldowns.cooling(server):
            available = 0.0  # read every time: a cooldown ends with time, not observations
        if not sample:
            key, version = (server, task, tool), self._versions.get(server, 0)
            kept = self._estimates.get(key)
            if kept is not None and kept[0] == version:
                p50, p95, capability, reliability, cost = kept[1]
                return p50, p95, capability, reliability, available, cost
        mean_log, sd, latency_n, a, b, ra, rb, cost = self.stats.posterior(
            server, task, srv.load, self._capability_prior(server, task), tool)
        capability, reliability = a / (a + b), ra / (ra + rb)
        if sample:
            # Thompson draws. The Beta posteriors (at least 5 pseudo-counts) are drawn
            # from their normal approximation: one gauss() instead of two gamma
            # variates each, which keeps an exploring select as cheap as a greedy one.
            gauss = self._rng.gauss
            mean_log = gauss(mean_log, sd / math.sqrt(latency_n + 1.0))
            n, rn = a + b, ra + rb
            capability = min(1.0, max(0.0, gauss(capability, math.sqrt(
                capability * (1 - capability) / (n + 1)))))
            reliability = min(1.0, max(0.0, gauss(reliability, math.sqrt(
                reliability * (1 - reliability) / (rn + 1)))))
        p50 = max(math.expm1(mean_log), 0.0)
        p95 = max(math.expm1(mean_log + 1.645 * sd), p50)
        if not sample:
            if len(self._estimates) >= _ESTIMATES_SIZE:
                self._estimates.clear()
            self._estimates[key] = (version, (p50, p95, capability, reliability, cost))
        return p50, p95, capability, reliability, available, cost

    def _scored(self, req: SelectRequest, sample: bool) -> list[tuple[float, str, tuple]]:
        """(score, server, (performance, cost factor, estimate)) of every candidate."""
        weights = self.weights if not req.weights else {**self.weights, **req.weights}
        w_cap, w_perf, w_cost, w_rel, w_avail = (weights[name] for name in DEFAULT_WEIGHTS)
        task, tool, estimate = req.task_type, req.tool, self._estimate
        # Lists in the candidates' order (each once), not dictionaries: this runs at every
        # call a replay of the decision scores.
        servers = list(dict.fromkeys(req.candidates))
        est = [estimate(s, task, tool, sample) for s in servers]
        # Every factor is the best candidate's figure over this one's, for a quantity
        # where less is better: expected time to a success, failure rate, cost (log).
        to_success = [(e[0] + 1.0) / max(e[2], 0.05) for e in est]
        quickest = min(to_success)
        least_failing = min([1.0 - e[2] for e in est])
        # Failure rates are compared above the resolution of the discounted success counts
        # (one failure in the 1 / (1 - discount) calls they remember, 2 % by default), so
        # that 0.1 % against 0.2 % is not read as "twice as reliable".
        floor = 1.0 - self.discount
        costs = [e[5] for e in est if e[5] == e[5]]  # NaN: unknown
        cheapest = min(costs) if costs else math.nan
        no_cost = not costs
        scored = []
        for server, e, time_to_success in zip(servers, est, to_success, strict=True):
            _, _, success, reliability, available, cost = e
            perf = quickest / time_to_success
            capability = (least_failing + floor) / (1.0 - success + floor)
            cost_factor = 1.0 if no_cost or cost != cost else 1.0 / (
                1.0 + math.log((cost + 1e-6) / (cheapest + 1e-6)))
            score = (w_cap * capability + w_perf * perf + w_cost * cost_factor
                     + w_rel * reliability + w_avail * available)
            scored.append((score, server, (perf, capability, cost_factor, e)))
        return scored

    def _rank(self, req: SelectRequest) -> list[dict]:
        """The greedy ranking as plain dicts (validated once, as a whole, by :meth:`_answer`)."""
        ranked = []
        # Rounded (shorter answers on the wire); the memo pays for it once per state.
        for score, server, (perf, capability, cost_factor, e) in _greedy_order(
                self._scored(req, sample=False)):
            p50, p95, success, reliability, available, cost = e
            ranked.append({
                "server": server, "score": round(score, 4),
                "factors": {"capability": round(capability, 4), "performance": round(perf, 4),
                            "cost": round(cost_factor, 4),
                            "reliability": round(reliability, 4), "availability": available},
                "source": "online" if self.stats.knows(server, req.task_type) else "prior",
                "predicted": {"latency_p50_ms": round(p50, 1), "latency_p95_ms": round(p95, 1),
                              "success": round(success, 4),
                              "cost_usd": None if math.isnan(cost) else cost}})
        return ranked

    def _answer(self, req: SelectRequest, ranking: list[dict], explored: bool) -> SelectResponse:
        # One validation of the whole answer is much cheaper than a model per candidate.
        # The answer's source is its pick's.
        return SelectResponse.model_validate({
            "ranking": ranking, "explored": explored, "source": ranking[0]["source"],
            "model_version": f"online-{self.observations}"})

    def select(self, req: SelectRequest) -> SelectResponse:
        """Rank ``req.candidates``; explore with probability ``req.explore``.

        Exploring draws every candidate's score from its posterior (Thompson
        sampling) and picks the best draw. When that pick differs from the
        greedy one, it moves to the top of the ranking and ``explored`` is
        true; the figures reported stay the posterior means.

        The greedy answer is a pure function of the request and the learned
        state, so it is memoized until the next observation changes that
        state: a telemetry batch invalidates it once, not per request.
        """
        key = _memo_key(req)
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == self._state:
                greedy, answer = hit[1], hit[2]
            else:
                greedy = self._rank(req)
                answer = self._answer(req, greedy, False)
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.pop(next(iter(self._memo)))  # the oldest entry
                self._memo[key] = (self._state, greedy, answer)
            pick = self._explored(req)
            if pick is not None and pick != greedy[0]["server"]:
                ranking = ([r for r in greedy if r["server"] == pick]
                           + [r for r in greedy if r["server"] != pick])
                return self._answer(req, ranking, True)
            return answer

    def pick(self, req: SelectRequest) -> str:
        """The server :meth:`select` would rank first for ``req``, without building its answer.

        What a replay of the decision asks at every call (the served figures
        of ``predictor evaluate``): the same scores, order and exploration
        draw as :meth:`select`, so the same server and the same random
        stream, for a fraction of its cost (the answer's validation and its
        rounded figures per candidate).
        """
        key = _memo_key(req)
        with self._lock:
            hit = self._memo.get(key)
            greedy = hit[1][0]["server"] if hit is not None and hit[0] == self._state \
                else _greedy_first(self._scored(req, sample=False))
            explored = self._explored(req)
            return greedy if explored is None else explored

    def _explored(self, req: SelectRequest) -> str | None:
        """With probability ``req.explore``, the pick of a Thompson draw; else ``None``."""
        if req.explore > 0 and self._rng.random() < req.explore:
            drawn = self._scored(req, sample=True)
            # Exploration never sends a call to a server that is out of service.
            in_service = [d for d in drawn if d[2][3][4] > 0.0] or drawn
            return max(in_service)[1]
        return None


def _memo_key(req: SelectRequest) -> tuple:
    """What the greedy answer to ``req`` depends on besides the learned state."""
    return (req.task_type, req.tool, tuple(req.candidates),
            tuple(sorted(req.weights.items())) if req.weights else None)


def _greedy_order(scored: list[tuple[float, str, tuple]]) -> list[tuple[float, str, tuple]]:
    """The candidates as :meth:`Selector.select` ranks them: a server out of service (cooling
    down, unreachable) after every other one, then by score as answered (rounded to four
    places; ties keep the candidates' order)."""
    return sorted(scored, key=_greedy_key)


def _greedy_first(scored: list[tuple[float, str, tuple]]) -> str:
    """The server :func:`_greedy_order` ranks first, without sorting the others (``min``
    keeps the first of equals, as the stable sort does)."""
    return min(scored, key=_greedy_key)[1]


def _greedy_key(s: tuple[float, str, tuple]) -> tuple[bool, float]:
    return s[2][3][4] == 0.0, -round(s[0], 4)
