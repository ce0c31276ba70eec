"""A seeded simulator of MCP telemetry whose ground truth is written down here.

It is the embedded default data of the project and the environment of the
closed-loop evaluation. Everything below is what a model can learn; nothing
else drives the numbers.

Ground truth
------------
**Catalog.** Five task types, each served by two to four servers, each task
type with two tools (:data:`CATALOG`). A server has a base latency, a
lognormal spread, a load sensitivity and a capacity, a per-token cost, a
base error rate and a rate limit per minute (:class:`ServerProfile`).

**Load.** Workflow runs arrive as a Poisson process whose rate follows a
daily cycle (peak mid-afternoon UTC, trough at night, amplitude 50 %) and
bursts: about every three hours the rate jumps by a factor of 2 to 3.5 for
5 to 20 minutes. Each run belongs to a template (``research``,
``code-review``, ``data-report``) with phases; its calls run one after the
other with a short think time between them, so runs overlap and servers see
real concurrency (``concurrency`` is the number of calls in flight at that
server when a call starts, ours plus a background of other tenants'
calls that follows the same daily cycle and bursts). The calling agent picks a server for each call
uniformly among those that serve the task type (an exploring logging policy,
so the log supports off-policy replay).

**Latency.** ``median = base * tool_factor * (1 + input_tokens/1000 * token_cost)
* (1 + load_sensitivity * (concurrency/capacity)^2) * state_factor``, times
a lognormal noise of the server's spread, with a 2 % chance of a Pareto
heavy-tail multiplier. Latency therefore grows with load and input size;
cache hits take 30 % of the time.

**Health and failures.** Each server has a memory level that leaks upward
(at a per-server rate) and is reset by a restart. Its state is a Markov
chain stepped every minute: ``healthy -> degraded -> down -> healthy``.
The chance of degrading rises steeply with memory above 80 %, and a small
memory-independent chance models network incidents. Degraded servers are
2.5x slower and time out often; down servers refuse connections; a server
restarts (memory reset) after an outage. A call fails with probability
``base_error + 0.25 * max(0, mem - 0.8) / 0.2 + load term + state term``;
the error type is ``connection`` when down, ``timeout`` when degraded or very
slow, ``rate_limit`` when the server's calls over the last minute exceed its
limit, ``invalid_params`` for oversized inputs to strict tools, and
``tool_error`` otherwise. Health probes every ``probe_interval_s`` seconds
per server report reachability, probe latency, CPU (utilization), memory and
queue depth.

**Recovery.** After a failure the agent picks a recovery uniformly among
``retry``, ``fallback``, ``degrade``, ``abort``. Its success depends on the
error type (:data:`RECOVERY_SUCCESS`): rate limits recover by retrying with
back-off, timeouts and connection errors by falling back, invalid
parameters never by retrying, ``abort`` never recovers. ``retry`` and
``fallback`` produce a follow-up call with ``attempt + 1``.

**Tokens and cost.** Input tokens are lognormal per tool; output tokens
``= ratio * input_tokens^0.8`` times lognormal noise; cost is tokens times
the server's price.

**Cache keys.** Each run has a topic drawn from a Zipf law over topics;
a topic fixes the sequence of resources its run reads, so the same
sequences recur. Some reads are of globally popular keys (Zipf), some of
keys never seen again. ``cache_hit`` reports a 2,000-key LRU cache in front
of every server.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "CATALOG",
    "RECOVERY_SUCCESS",
    "CallContext",
    "ServerProfile",
    "Simulator",
    "World",
    "write_simulation",
]

START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
DAY = 86_400.0


@dataclass(frozen=True)
class ServerProfile:
    """The hidden truth about one server."""

    name: str
    task_type: str
    base_ms: float
    spread: float
    load_sensitivity: float
    capacity: float
    base_error: float
    price_per_1k: float
    rate_limit_per_min: int
    leak_per_min: float
    incident_per_day: float


@dataclass(frozen=True)
class ToolProfile:
    name: str
    task_type: str
    factor: float
    input_median: float
    output_ratio: float
    token_cost: float
    cpu: float
    mem_mb: float
    max_input: int


def _servers() -> tuple[ServerProfile, ...]:
    s = ServerProfile
    return (
        s("brave", "search", 380, 0.35, 1.2, 6, 0.010, 0.004, 25, 0.05, 0.5),
        s("exa", "search", 520, 0.25, 0.4, 10, 0.006, 0.006, 40, 0.03, 0.3),
        s("tavily", "search", 300, 0.45, 3.0, 4, 0.015, 0.002, 14, 0.08, 0.8),
        s("serper", "search", 420, 0.55, 1.0, 6, 0.030, 0.001, 18, 0.12, 2.0),
        s("github", "code", 450, 0.30, 0.8, 8, 0.012, 0.000, 30, 0.04, 0.5),
        s("gitlab", "code", 650, 0.40, 0.6, 8, 0.015, 0.000, 25, 0.06, 1.0),
        s("sourcegraph", "code", 380, 0.50, 2.0, 4, 0.020, 0.003, 16, 0.10, 1.2),
        s("context7", "docs", 250, 0.30, 1.0, 6, 0.008, 0.001, 30, 0.04, 0.4),
        s("readthedocs", "docs", 600, 0.35, 0.5, 10, 0.010, 0.000, 45, 0.02, 0.3),
        s("deepwiki", "docs", 350, 0.60, 1.5, 5, 0.025, 0.002, 15, 0.09, 1.5),
        s("postgres-primary", "db", 120, 0.40, 2.5, 6, 0.006, 0.000, 30, 0.05, 0.6),
        s("postgres-replica", "db", 160, 0.30, 0.8, 10, 0.008, 0.000, 45, 0.03, 0.4),
        s("fs-local", "files", 60, 0.50, 1.5, 8, 0.004, 0.000, 60, 0.03, 0.3),
        s("s3", "files", 180, 0.30, 0.3, 20, 0.006, 0.0005, 80, 0.02, 0.2),
    )


def _tools() -> tuple[ToolProfile, ...]:
    t = ToolProfile
    return (
        t("web_search", "search", 1.0, 300, 6.0, 0.3, 25, 60, 1500),
        t("news_search", "search", 1.3, 200, 8.0, 0.3, 30, 80, 4000),
        t("search_code", "code", 1.0, 250, 5.0, 0.2, 35, 120, 3000),
        t("read_file", "code", 0.6, 1200, 1.5, 0.5, 15, 200, 20000),
        t("get_docs", "docs", 1.2, 800, 3.0, 0.6, 20, 150, 12000),
        t("resolve_library", "docs", 0.5, 80, 2.0, 0.1, 10, 40, 1000),
        t("query", "db", 1.0, 150, 4.0, 0.8, 45, 250, 600),
        t("list_tables", "db", 0.4, 40, 3.0, 0.1, 10, 30, 160),
        t("read", "files", 1.0, 600, 1.2, 0.4, 15, 180, 16000),
        t("write", "files", 1.5, 900, 0.2, 0.4, 20, 220, 16000),
    )


CATALOG: dict[str, list[str]] = {}
for _srv in _servers():
    CATALOG.setdefault(_srv.task_type, []).append(_srv.name)

#: P(recovered | error type, strategy): the truth a recovery model should find.
RECOVERY_SUCCESS: dict[str, dict[str, float]] = {
    "rate_limit": {"retry": 0.85, "fallback": 0.75, "degrade": 0.60, "abort": 0.0},
    "timeout": {"retry": 0.40, "fallback": 0.85, "degrade": 0.70, "abort": 0.0},
    "connection": {"retry": 0.15, "fallback": 0.90, "degrade": 0.60, "abort": 0.0},
    "tool_error": {"retry": 0.55, "fallback": 0.60, "degrade": 0.55, "abort": 0.0},
    "invalid_params": {"retry": 0.0, "fallback": 0.05, "degrade": 0.50, "abort": 0.0},
}

#: Workflow templates: phases of (task type, tool, min calls, max calls).
TEMPLATES: dict[str, list[tuple[str, str, str, int, int]]] = {
    "research": [
        ("plan", "docs", "resolve_library", 1, 2),
        ("gather", "search", "web_search", 2, 5),
        ("read", "docs", "get_docs", 2, 4),
        ("write", "files", "write", 1, 1),
    ],
    "code-review": [
        ("locate", "code", "search_code", 1, 3),
        ("read", "code", "read_file", 2, 6),
        ("check", "db", "query", 1, 2),
        ("report", "files", "write", 1, 1),
    ],
    "data-report": [
        ("inspect", "db", "list_tables", 1, 1),
        ("query", "db", "query", 2, 5),
        ("fetch", "files", "read", 1, 3),
        ("context", "search", "news_search", 1, 2),
    ],
}
TEMPLATE_WEIGHTS = (0.45, 0.35, 0.20)
_MEAN_CALLS = 9.5


@dataclass
class _ServerState:
    state: str = "healthy"
    mem: float = 0.5
    until: float = 0.0
    background: int = 0
    inflight: list[float] = field(default_factory=list)
    recent: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class CallContext:
    """What is known before a call starts (DESIGN's inputs)."""

    ts: float
    task_type: str
    tool: str
    input_tokens: int
    workflow_id: str | None = None
    phase: str | None = None
    cache_key: str | None = None
    attempt: int = 1


class World:
    """Server states over time and the outcome of any call at any moment.

    The state (memory, health, bursts) evolves on its own, minute by minute,
    from the seed; :meth:`outcome` answers what a call to a server would do
    now. The log generator and the closed-loop evaluation share it.
    """

    def __init__(self, seed: int = 0, *, base_rate: float = 1.0) -> None:
        self.servers = {s.name: s for s in _servers()}
        self.tools = {t.name: t for t in _tools()}
        self.base_rate = base_rate
        self._rng = random.Random(f"world-{seed}")
        self._state = {
            name: _ServerState(mem=0.35 + 0.3 * self._rng.random()) for name in self.servers
        }
        self._clock = START
        self._burst_until = 0.0
        self._burst_factor = 1.0
        self._cache: OrderedDict[str, None] = OrderedDict()

    # --- exogenous state --------------------------------------------------
    def advance(self, t: float) -> None:
        """Step server states and bursts, minute by minute, up to time ``t``."""
        rng = self._rng
        while self._clock + 60.0 <= t:
            self._clock += 60.0
            now = self._clock
            if now >= self._burst_until:
                self._burst_factor = 1.0
                if rng.random() < 1 / 180:
                    self._burst_factor = 2.0 + 1.5 * rng.random()
                    self._burst_until = now + 60.0 * rng.randint(5, 20)
            utilization = 0.45 * self.rate(now) / self.base_rate
            for name, prof in self.servers.items():
                st = self._state[name]
                # Other tenants' calls: they follow the same daily cycle and bursts.
                mean = prof.capacity * utilization * (0.8 + 0.4 * rng.random())
                st.background = max(0, round(rng.gauss(mean, math.sqrt(mean))))
                st.mem = min(1.0, st.mem + prof.leak_per_min / 100 * (0.5 + rng.random()))
                if st.state == "healthy":
                    pressure = max(0.0, st.mem - 0.8) / 0.2
                    p = prof.incident_per_day / 1440 + 0.06 * pressure**2
                    if rng.random() < p:
                        st.state, st.until = "degraded", now + 60.0 * rng.randint(4, 25)
                elif now >= st.until:
                    if st.state == "degraded" and rng.random() < 0.45:
                        st.state, st.until = "down", now + 60.0 * rng.randint(2, 10)
                    else:
                        # Recovering from an incident means a restart: memory resets.
                        st.state, st.mem = "healthy", 0.3 + 0.2 * rng.random()

    def rate(self, t: float) -> float:
        """Calls per second expected at time ``t`` (daily cycle times bursts)."""
        phase = 2 * math.pi * ((t - START) % DAY - 9 * 3600) / DAY
        return self.base_rate * (1.0 + 0.5 * math.sin(phase)) * self._burst_factor

    def state(self, server: str) -> str:
        return self._state[server].state

    def concurrency(self, server: str, t: float) -> int:
        """Calls in flight at ``server`` at time ``t``: ours and other tenants'."""
        st = self._state[server]
        inflight = st.inflight
        while inflight and inflight[0] <= t:
            heapq.heappop(inflight)
        return len(inflight) + st.background

    def _recent_calls(self, server: str, t: float) -> int:
        recent = self._state[server].recent
        while recent and recent[0] <= t - 60.0:
            recent.popleft()
        return len(recent)

    def register(self, server: str, start: float, latency_ms: float) -> None:
        """Count a call as in flight from ``start`` for ``latency_ms``."""
        st = self._state[server]
        heapq.heappush(st.inflight, start + latency_ms / 1000.0)
        st.recent.append(start)

    # --- outcomes ----------------------------------------------------------
    def expected_latency_ms(self, server: str, ctx: CallContext, concurrency: int) -> float:
        """The median latency of a call, before noise and cache effects."""
        prof, tool = self.servers[server], self.tools[ctx.tool]
        st = self._state[server]
        load = 1.0 + prof.load_sensitivity * (concurrency / prof.capacity) ** 2
        size = 1.0 + ctx.input_tokens / 1000.0 * tool.token_cost
        state = {"healthy": 1.0, "degraded": 2.5, "down": 1.5}[st.state]
        return prof.base_ms * tool.factor * size * load * state

    def failure_probability(self, server: str, ctx: CallContext, concurrency: int) -> float:
        prof, st = self.servers[server], self._state[server]
        if st.state == "down":
            return 0.92
        p = prof.base_error + 0.25 * max(0.0, st.mem - 0.8) / 0.2
        p += 0.04 * max(0.0, concurrency / prof.capacity - 1.0)
        if st.state == "degraded":
            p += 0.30
        return min(p, 0.95)

    def outcome(
        self, server: str, ctx: CallContext, rng: random.Random, *, concurrency: int | None = None
    ) -> dict[str, Any]:
        """Sample the outcome of ``ctx`` sent to ``server`` at ``ctx.ts``."""
        prof, tool, st = self.servers[server], self.tools[ctx.tool], self._state[server]
        conc = self.concurrency(server, ctx.ts) if concurrency is None else concurrency
        latency = self.expected_latency_ms(server, ctx, conc) * rng.lognormvariate(0, prof.spread)
        if rng.random() < 0.02:
            latency *= min(rng.paretovariate(1.5), 40.0)
        hit = ctx.cache_key is not None and ctx.cache_key in self._cache
        if hit:
            latency *= 0.3
        error: str | None = None
        over_limit = self._recent_calls(server, ctx.ts) - prof.rate_limit_per_min
        if ctx.input_tokens > tool.max_input and rng.random() < 0.8:
            error = "invalid_params"
        elif st.state == "down" and rng.random() < 0.92:
            error, latency = "connection", min(latency, 50 + 100 * rng.random())
        elif over_limit > 0 and rng.random() < min(0.9, 0.1 + over_limit / prof.rate_limit_per_min):
            error, latency = "rate_limit", min(latency, 30 + 40 * rng.random())
        elif rng.random() < self.failure_probability(server, ctx, conc) - (
            0.92 if st.state == "down" else 0.0
        ):
            error = "timeout" if st.state == "degraded" or rng.random() < 0.3 else "tool_error"
        if latency > 30_000:
            error, latency = "timeout", 30_000.0
        if error == "timeout":
            latency = max(latency, 8_000 + 22_000 * rng.random())
        out_tokens = (
            0
            if error
            else int(tool.output_ratio * ctx.input_tokens**0.8 * rng.lognormvariate(0, 0.3) + 5)
        )
        util = conc / prof.capacity
        return {
            "latency_ms": round(latency, 1),
            "success": error is None,
            "error_type": error,
            "output_tokens": out_tokens,
            "cost_usd": round((ctx.input_tokens + out_tokens) / 1000 * prof.price_per_1k, 6),
            "cache_hit": hit,
            "cpu_pct": round(min(100.0, tool.cpu * (0.7 + 0.6 * util) * rng.uniform(0.8, 1.2)), 1),
            "mem_mb": round(
                tool.mem_mb * (0.5 + ctx.input_tokens / 1000) * rng.uniform(0.8, 1.3), 1
            ),
        }

    def touch_cache(self, key: str | None) -> None:
        if key is None:
            return
        self._cache[key] = None
        self._cache.move_to_end(key)
        if len(self._cache) > 2000:
            self._cache.popitem(last=False)

    def health(self, server: str, t: float, rng: random.Random) -> dict[str, Any]:
        prof, st = self.servers[server], self._state[server]
        conc = self.concurrency(server, t)
        util = conc / prof.capacity
        reachable = st.state != "down" and rng.random() > 0.003
        factor = {"healthy": 1.0, "degraded": 3.0, "down": 1.0}[st.state]
        record: dict[str, Any] = {
            "kind": "health",
            "server": server,
            "reachable": reachable,
            "cpu_pct": round(
                min(100.0, 15 + 55 * util + 20 * (st.state == "degraded") + 8 * rng.random()), 1
            ),
            "mem_pct": round(100 * min(1.0, st.mem + 0.02 * rng.random()), 1),
            "queue_depth": conc,
        }
        if reachable:
            record["latency_ms"] = round(
                prof.base_ms * 0.1 * factor * (1 + util) * rng.lognormvariate(0, 0.2), 1
            )
        return record


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Simulator:
    """Generate telemetry from a :class:`World`, deterministically from ``seed``.

    Parameters
    ----------
    seed
        Same seed, same records, byte for byte.
    base_rate
        Mean calls per second before the daily cycle and bursts.
    probe_interval_s
        Seconds between health probes of each server.

    Examples
    --------
    >>> records = list(Simulator(seed=1).records(50))
    >>> len(records), records[0]["ts"] <= records[-1]["ts"]
    (50, True)
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        base_rate: float = 1.0,
        probe_interval_s: float = 120.0,
        n_topics: int = 3000,
    ) -> None:
        self.seed = seed
        self.world = World(seed, base_rate=base_rate)
        self.probe_interval_s = probe_interval_s
        self._rng = random.Random(f"sim-{seed}")
        self._n_topics = n_topics
        # Zipf weights as a cumulative table: topics and popular keys recur.
        self._topic_cdf = self._zipf_cdf(n_topics, 0.9)
        self._popular_cdf = self._zipf_cdf(800, 1.1)
        self._unique = 0
        self._runs = 0

    @staticmethod
    def _zipf_cdf(n: int, s: float) -> list[float]:
        weights = [1.0 / (k + 1) ** s for k in range(n)]
        total, acc, cdf = sum(weights), 0.0, []
        for w in weights:
            acc += w / total
            cdf.append(acc)
        return cdf

    def _draw(self, cdf: list[float]) -> int:
        return min(bisect.bisect_left(cdf, self._rng.random()), len(cdf) - 1)

    def _cache_key(self, template: str, topic: int, phase: str, index: int) -> str:
        r = self._rng.random()
        if r < 0.70:
            return f"{template}/{topic}/{phase}/{index}"
        if r < 0.88:
            return f"popular/{self._draw(self._popular_cdf)}"
        self._unique += 1
        return f"once/{self.seed}/{self._unique}"

    def _plan_run(self) -> list[tuple[str, str, str, str]]:
        rng = self._rng
        template = rng.choices(list(TEMPLATES), weights=TEMPLATE_WEIGHTS)[0]
        topic = self._draw(self._topic_cdf)
        calls = []
        for phase, task_type, tool, lo, hi in TEMPLATES[template]:
            for index in range(rng.randint(lo, hi)):
                calls.append(
                    (phase, task_type, tool, self._cache_key(template, topic, phase, index))
                )
        return calls

    def _input_tokens(self, tool: str) -> int:
        prof = self.world.tools[tool]
        return max(1, int(prof.input_median * self._rng.lognormvariate(0, 0.7)))

    def records(self, n_events: int) -> Iterator[dict[str, Any]]:
        """Yield exactly ``n_events`` records (calls and health probes) in time order."""
        rng, world = self._rng, self.world
        # (ts, seq, run id, planned calls, index, attempt, server, forced outcome)
        pending: list[tuple[float, int, str, list, int, int, str, tuple | None]] = []
        seq = 0
        next_run = START
        next_probe = START + self.probe_interval_s
        emitted = 0
        servers = list(world.servers)
        while emitted < n_events:
            # Next event: the earliest of a run start, a pending call, a probe round.
            t_call = pending[0][0] if pending else math.inf
            t = min(next_run, t_call, next_probe)
            world.advance(t)
            if t == next_probe:
                for server in servers:
                    if emitted >= n_events:
                        break
                    rec = world.health(server, t, rng)
                    yield {"ts": _rfc3339(t), **rec}
                    emitted += 1
                next_probe += self.probe_interval_s
                continue
            if t == next_run:
                self._runs += 1
                run_id = f"wf-{self.seed}-{self._runs:07d}"
                heapq.heappush(pending, (t, seq, run_id, self._plan_run(), 0, 1, "", None))
                seq += 1
                next_run = t + rng.expovariate(world.rate(t) / _MEAN_CALLS)
                continue
            _, _, run_id, calls, index, attempt, server, forced = heapq.heappop(pending)
            phase, task_type, tool, key = calls[index]
            if attempt == 1:
                server = rng.choice(CATALOG[task_type])
                tokens = self._input_tokens(tool)
            else:
                tokens = forced[1]
            ctx = CallContext(t, task_type, tool, tokens, run_id, phase, key, attempt)
            record = self._call(ctx, server, attempt, forced)
            end = t + record["latency_ms"] / 1000.0
            follow_up = None
            if not record["success"] and forced is None:
                recovery = rng.choice(("retry", "fallback", "degrade", "abort"))
                recovered = rng.random() < RECOVERY_SUCCESS[record["error_type"]][recovery]
                record["recovery"], record["recovered"] = recovery, recovered
                if recovery == "retry":
                    follow_up = (end + 2.0 * rng.uniform(0.5, 1.5), server)
                elif recovery == "fallback":
                    others = [s for s in CATALOG[task_type] if s != server]
                    follow_up = (end + 0.2, rng.choice(others) if others else server)
                elif recovery == "abort":
                    calls = calls[: index + 1]  # the run stops here
                if follow_up is not None:
                    # The follow-up's fate was drawn above; the call will agree with it.
                    outcome = (recovered, tokens, record["error_type"])
                    heapq.heappush(
                        pending,
                        (
                            follow_up[0],
                            seq,
                            run_id,
                            calls,
                            index,
                            attempt + 1,
                            follow_up[1],
                            outcome,
                        ),
                    )
                    seq += 1
            yield record
            emitted += 1
            if follow_up is None and index + 1 < len(calls):
                think = rng.expovariate(1 / 1.5)
                heapq.heappush(pending, (end + think, seq, run_id, calls, index + 1, 1, "", None))
                seq += 1

    def _call(
        self, ctx: CallContext, server: str, attempt: int, forced: tuple[bool, int, str] | None
    ) -> dict[str, Any]:
        world = self.world
        conc = world.concurrency(server, ctx.ts)
        out = world.outcome(server, ctx, self._rng, concurrency=conc)
        if forced is not None and forced[0] != out["success"]:
            if forced[0]:
                tool = world.tools[ctx.tool]
                out.update(
                    success=True,
                    error_type=None,
                    output_tokens=int(tool.output_ratio * ctx.input_tokens**0.8 + 5),
                )
            else:
                out.update(success=False, error_type=forced[2], output_tokens=0)
        world.register(server, ctx.ts, out["latency_ms"])
        world.touch_cache(ctx.cache_key)
        record: dict[str, Any] = {
            "ts": _rfc3339(ctx.ts),
            "server": server,
            "tool": ctx.tool,
            "task_type": ctx.task_type,
            "workflow_id": ctx.workflow_id,
            "phase": ctx.phase,
            "input_tokens": ctx.input_tokens,
            "concurrency": conc,
            "attempt": attempt,
            "cache_key": ctx.cache_key,
            **out,
        }
        if record["error_type"] is None:
            del record["error_type"]
        return record


def write_simulation(path: str | Path, n_events: int, seed: int = 0) -> int:
    """Write ``n_events`` simulated records as JSONL to ``path`` (``-`` for stdout)."""
    import sys

    sim = Simulator(seed=seed)
    out = sys.stdout.buffer if str(path) == "-" else open(path, "wb")  # noqa: SIM115
    try:
        for record in sim.records(n_events):
            out.write(orjson.dumps(record))
            out.write(b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return n_events
