"""``predictor gateway``: one MCP server in front of many, acting on the decisions.

The gateway lists its upstreams' tools (``<upstream>__<tool>`` where names
clash) and serves *routes*: one logical tool that several upstreams
provide. For every call it

* answers from its **response cache** when the tool is read-only
  (``readOnlyHint``) and the same arguments were answered less than
  ``ttl_s`` ago;
* else picks the provider with the served **select** decision (cooldowns
  included: a server that keeps failing is kept out of the ranking) among
  the providers whose session is up, and routes away from it when the
  **risk** decision says to prevent (failure probability above its
  threshold) and another provider is not at risk;
* calls it within the upstream's ``timeout_s``, and after a failure asks
  the **recover** decision what to do: retry after its back-off, fall back
  to the server it names, degrade (the cached answer however old, marked
  stale in the result's ``_meta``), or abort; at most 4 attempts in all;
* records every attempt as one telemetry record (``server``, ``tool``,
  ``latency_ms``, ``success``, ``error_type``, ``attempt``, ``task_type``,
  ``cache_key`` for read-only tools, token counts estimated at 4 characters
  a token, and for a failed attempt the ``recovery`` that followed and
  whether it ``recovered``) in the event store before it answers (committed,
  or synced to disk with ``durability = "fsync"``);
  the service's learner learns them, so the next call's decisions use them.
  A call the cache answered is recorded under the cache's own ``server``
  name (``predictor-cache``) with ``cache_hit``: it never reached an
  upstream, so it must not teach one's latency;
* after answering, **prefetches** into the cache what the **preload**
  decision predicts will be asked next (at most ``prefetch_keys`` answers,
  each a call seen before, in the background).

An upstream's own error result (``isError``) goes back to the client as it
came when no recovery helps; a call that ends without any answer is an MCP
error that says what was tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import orjson
from mcp import types
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from predictor import __version__
from predictor.api.preload import PreloadRequest
from predictor.api.recover import RecoverRequest
from predictor.api.risk import RiskRequest
from predictor.api.select import SelectRequest
from predictor.engine import warm_up
from predictor.serving.gateway_config import GatewayConfig
from predictor.serving.response_cache import ResponseCache, cache_key
from predictor.serving.service import Service
from predictor.serving.upstream import Outcome, Upstream

__all__ = ["CallReport", "Decision", "Gateway", "GatewayTool", "build_server", "http_app"]

log = logging.getLogger("predictor.gateway")

#: How long a call waits for a provider whose session is restarting.
_WAIT_FOR_PROVIDER_S = 5.0
#: Recent cache keys the preload decision is shown, oldest first.
_RECENT_KEYS = 20
#: Calls remembered so that a predicted key can be fetched (key -> tool and arguments).
_KNOWN_CALLS = 4096


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` at 4 characters a token (MCP results carry no token counts).

    >>> estimate_tokens("x" * 10)
    3
    """
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class GatewayTool:
    """A tool as clients see it, and who serves it."""

    tool: types.Tool
    providers: tuple[str, ...]
    upstream_tool: str
    task_type: str | None

    @property
    def read_only(self) -> bool:
        """Whether the upstream says calling it changes nothing (``readOnlyHint``)."""
        return bool(self.tool.annotations and self.tool.annotations.read_only_hint)


@dataclass(frozen=True)
class Decision:
    """One decision the gateway took for a call, with where its answer came from."""

    decision: str
    source: str
    detail: str


@dataclass
class CallReport:
    """What one call through the gateway did: attempts, decisions, and the answer."""

    tool: str
    result: types.CallToolResult | None
    attempts: list[Outcome]
    recoveries: list[str]
    decisions: list[Decision]
    served_from: Literal["upstream", "cache", "stale_cache"]
    latency_ms: float
    input_tokens: int
    output_tokens: int
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """An answer came back that is not an error result."""
        return self.result is not None and not self.result.is_error

    @property
    def server(self) -> str | None:
        """The upstream whose answer this is (None when nothing answered)."""
        return self.attempts[-1].server if self.attempts else None

    def text(self) -> str:
        """The answer's text content, joined (empty when there is none)."""
        if self.result is None:
            return ""
        return "\n".join(getattr(c, "text", "") for c in self.result.content).strip()

    def failure(self) -> str:
        """What was tried, for an error message."""
        return "; ".join(f"{a.server}: {a.error_type} ({a.detail[:80]})" for a in self.attempts)


def _epoch(seconds: float) -> float:
    """``seconds`` to the microsecond, the precision a record keeps (and the service's
    fast check of a record's JSON takes: at most six decimals).

    >>> _epoch(1767571200.1234567)
    1767571200.123457
    """
    return round(seconds, 6)


def _result_text(result: types.CallToolResult | None) -> str:
    if result is None:
        return ""
    return " ".join(getattr(c, "text", "") for c in result.content)


class Gateway:
    """The gateway core: upstream sessions, the tool table, the cache, and the call path."""

    def __init__(self, config: GatewayConfig, service: Service,
                 errlog: TextIO | None = None) -> None:
        self.config = config
        self.service = service
        self.upstreams = {u.name: Upstream(u, errlog) for u in config.upstream}
        self.tools: dict[str, GatewayTool] = {}
        self.cache: ResponseCache[types.CallToolResult] = ResponseCache(
            config.cache.max_entries, config.cache.ttl_s)
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.spans: Any = None
        if config.otlp is not None:
            from predictor.serving.gateway_spans import SpanExport

            self.spans = SpanExport(config.otlp)
        self._recent: deque[str] = deque(maxlen=_RECENT_KEYS)
        self._known: OrderedDict[str, tuple[str, dict[str, Any] | None]] = OrderedDict()
        self._prefetching: set[asyncio.Task] = set()
        self._in_flight = 0
        self._prefetchable = False
        # State of the rule-based policies (``policy`` in the config), for comparisons.
        self._turn = -1
        self._ewma: dict[tuple[str, str], float] = {}
        self._failed_last: dict[str, bool] = {}

    # --- lifecycle ----------------------------------------------------------
    async def start(self, timeout_s: float = 60.0) -> None:
        """Start every upstream, wait for them (a slow one is left restarting), list tools."""
        for upstream in self.upstreams.values():
            upstream.start()
        await asyncio.gather(*(u.wait_ready(timeout_s) for u in self.upstreams.values()))
        down = [name for name, u in self.upstreams.items() if not u.ready]
        if down:
            log.warning("upstreams not up yet: %s", ", ".join(down))
        self.tools = self._table()
        # Prefetching fills the cache with fresh answers: pointless where none can be fresh.
        self._prefetchable = self.config.cache.prefetch_keys > 0 and any(
            self._cacheable(entry) and self._ttl(entry) > 0 for entry in self.tools.values())

    async def drain(self) -> None:
        """Wait for the prefetches in flight."""
        while self._prefetching:
            await asyncio.gather(*list(self._prefetching), return_exceptions=True)

    async def stop(self) -> None:
        await self.drain()
        await asyncio.gather(*(u.stop() for u in self.upstreams.values()))
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)

    def _table(self) -> dict[str, GatewayTool]:
        table: dict[str, GatewayTool] = {}
        routed = {(provider, route.tool) for route in self.config.route
                  for provider in route.providers}
        for route in self.config.route:
            schema = next((t for p in route.providers for t in self.upstreams[p].tools
                           if t.name == route.tool), None)
            if schema is None:
                schema = types.Tool(name=route.tool, input_schema={"type": "object"},
                                    description=f"routed to {', '.join(route.providers)}")
            table[route.tool] = GatewayTool(schema.model_copy(update={"name": route.tool}),
                                            tuple(route.providers), route.tool, route.task)
        rest = [(name, tool) for name, upstream in self.upstreams.items()
                for tool in upstream.tools if (name, tool.name) not in routed]
        seen = Counter(tool.name for _, tool in rest)
        for name, tool in rest:
            shown = tool.name if seen[tool.name] == 1 and tool.name not in table \
                else f"{name}__{tool.name}"
            table[shown] = GatewayTool(tool.model_copy(update={"name": shown}), (name,),
                                       tool.name, None)
        return table

    def _ttl(self, entry: GatewayTool) -> float:
        """Seconds an answer of ``entry`` stays fresh: the shortest of its providers'."""
        ttls = [self.upstreams[p].config.cache_ttl_s for p in entry.providers]
        return min(self.config.cache.ttl_s if t is None else t for t in ttls)

    def _cacheable(self, entry: GatewayTool) -> bool:
        return self.config.cache.enabled and entry.read_only

    # --- the call path ------------------------------------------------------
    async def _pick(self, entry: GatewayTool, exclude: set[str], avoid: frozenset[str],
                    decisions: list[Decision]) -> str:
        """The provider to try (see the module docstring); ``avoid`` only if others are up."""
        deadline = time.monotonic() + _WAIT_FOR_PROVIDER_S
        while True:
            ready = [p for p in entry.providers if self.upstreams[p].ready and p not in exclude]
            if ready or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        if not ready:
            left = [p for p in entry.providers if p not in exclude]
            return (left or list(entry.providers))[0]
        ready = [p for p in ready if p not in avoid] or ready
        if len(ready) == 1:
            return ready[0]
        if self.config.policy == "round_robin":
            self._turn += 1
            return ready[self._turn % len(ready)]
        if self.config.policy == "ewma":
            healthy = [p for p in ready if not self._failed_last.get(p)] or ready
            # Unseen providers first (latency routers try them), then the fastest average.
            return min(healthy, key=lambda p: self._ewma.get((p, entry.upstream_tool), -1.0))
        engine = self.service.engine
        answer = engine.answer("select", SelectRequest(
            task_type=entry.task_type or entry.upstream_tool, candidates=ready,
            tool=entry.upstream_tool))
        ranking = [r.server for r in answer.ranking]
        decisions.append(Decision("select", answer.source, f"{ranking[0]} of {len(ranking)}"
                                  + (" (explored)" if answer.explored else "")))
        top = ranking[0]
        risk = engine.answer("risk", RiskRequest(server=top, tool=entry.upstream_tool))
        if risk.prevent:
            for other in ranking[1:]:
                alternative = engine.answer("risk", RiskRequest(server=other,
                                                                tool=entry.upstream_tool))
                if not alternative.prevent:
                    decisions.append(Decision(
                        "risk", risk.source, f"{top} failure probability "
                        f"{risk.failure_probability:.2f} >= {risk.threshold:.2f}: routed to "
                        f"{other}"))
                    return other
        return top

    async def call(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Serve one ``tools/call``: the answer, or an MCP error that says what was tried."""
        report = await self.execute(name, arguments)
        if report.result is not None:
            return report.result
        raise MCPError(-32603, f"predictor gateway: {name} failed after "
                               f"{len(report.attempts)} attempt(s): {report.failure()}")

    async def execute(self, name: str, arguments: dict[str, Any] | None, *,
                      workflow_id: str | None = None, phase: str | None = None,
                      avoid: frozenset[str] = frozenset()) -> CallReport:
        """Serve one call (see the module docstring) and say what it did.

        ``workflow_id`` and ``phase`` go into its telemetry; providers in
        ``avoid`` are passed over while another one is up.
        """
        entry = self.tools.get(name)
        if entry is None:
            raise MCPError(-32602, f"unknown tool {name!r}")
        self._in_flight += 1
        try:
            return await self._execute(entry, name, arguments, workflow_id, phase, avoid)
        finally:
            self._in_flight -= 1

    async def _execute(self, entry: GatewayTool, name: str, arguments: dict[str, Any] | None,
                       workflow_id: str | None, phase: str | None,
                       avoid: frozenset[str]) -> CallReport:
        started = time.perf_counter()
        input_tokens = estimate_tokens(str(arguments or ""))
        decisions: list[Decision] = []
        key = cache_key(entry.upstream_tool, arguments) if self._cacheable(entry) else None
        context = {"workflow_id": workflow_id, "phase": phase, "key": key,
                   "input_tokens": input_tokens}
        if key is not None:
            self._remember(key, name, arguments)
            hit = self.cache.fresh(key, time.time(), self._ttl(entry))
            if hit is not None:
                latency = (time.perf_counter() - started) * 1000
                decisions.append(Decision("cache", "rule", f"fresh answer of {key}"))
                report = CallReport(name, hit, [], [], decisions, "cache", latency,
                                    input_tokens, estimate_tokens(_result_text(hit)))
                await self._record_hit(entry, report, context)
                self.counts["call", "cache"] += 1
                self._prefetch_after(key)
                return report
        attempts: list[Outcome] = []
        recoveries: list[str] = []
        served_from: Literal["upstream", "cache", "stale_cache"] = "upstream"
        result: types.CallToolResult | None = None
        server = await self._pick(entry, set(), avoid, decisions)
        while True:
            outcome = await self.upstreams[server].call(entry.upstream_tool, arguments)
            attempts.append(outcome)
            self._observe(outcome)
            self.counts["attempt", outcome.server, outcome.error_type or "success"] += 1
            if outcome.success:
                result = outcome.result
                break
            others = [p for p in entry.providers if p != server and self.upstreams[p].ready]
            cached = key is not None and key in self.cache
            plan = self.service.engine.answer("recover", RecoverRequest(
                error_type=outcome.error_type or "unknown", server=server,
                attempt=len(attempts), candidates=others,
                elapsed_ms=min((time.perf_counter() - started) * 1000, 86_400_000.0),
                task_type=entry.task_type, degrade_available=cached))
            strategy = plan.strategy
            decisions.append(Decision("recover", plan.source,
                                      f"{strategy} after {outcome.error_type} at {server}"))
            if strategy == "fallback" and not others:
                strategy = "abort"
            if strategy == "degrade" and cached:
                stale = self.cache.stale(key, time.time()) if key is not None else None
                if stale is not None:
                    recoveries.append("degrade")
                    value, age = stale
                    result = value.model_copy(update={"meta": {
                        **(value.meta or {}), "predictor/stale": True,
                        "predictor/age_s": round(age, 3)}})
                    served_from = "stale_cache"
                    break
            if strategy in ("degrade", "abort"):
                recoveries.append("abort")
                result = outcome.result  # an error result goes back as it came
                break
            recoveries.append(strategy)
            if strategy == "retry":
                await asyncio.sleep(min((plan.backoff_ms or 0.0) / 1000, 5.0))
            else:
                server = plan.fallback_server if plan.fallback_server in others \
                    else await self._pick(entry, {a.server for a in attempts}, avoid, decisions)
        last = attempts[-1]
        if key is not None and last.success and last.result is not None:
            self._store(key, last.result)
        report = CallReport(name, result, attempts, recoveries, decisions, served_from,
                            (time.perf_counter() - started) * 1000, input_tokens,
                            estimate_tokens(_result_text(result)))
        report.records = await self._record(entry, attempts, recoveries,
                                            served_from == "stale_cache" or last.success,
                                            context)
        self.counts["call", "success" if report.success else "failure"] += 1
        if self.spans is not None:
            self.spans.call(entry.upstream_tool, report.records, served_from)
        if key is not None:
            self._prefetch_after(key)
        return report

    def _observe(self, outcome: Outcome) -> None:
        """What the rule-based policies remember (the served one learns from the store)."""
        self._failed_last[outcome.server] = not outcome.success
        if outcome.success:
            key = (outcome.server, outcome.tool)
            before = self._ewma.get(key)
            self._ewma[key] = outcome.latency_ms if before is None \
                else 0.7 * before + 0.3 * outcome.latency_ms

    def _store(self, key: str, result: types.CallToolResult, prefetched: bool = False) -> None:
        size = len(result.model_dump_json(by_alias=True))
        if size <= self.config.cache.max_entry_kb * 1024:
            self.cache.put(key, result, time.time(), prefetched)

    def _remember(self, key: str, name: str, arguments: dict[str, Any] | None) -> None:
        self._known[key] = (name, arguments)
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_CALLS:
            self._known.popitem(last=False)

    # --- telemetry ------------------------------------------------------------
    def _base(self, entry: GatewayTool, context: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"tool": entry.upstream_tool}
        if entry.task_type:
            record["task_type"] = entry.task_type
        for name in ("workflow_id", "phase"):
            if context.get(name):
                record[name] = context[name]
        return record

    async def _record(self, entry: GatewayTool, attempts: list[Outcome],
                      recoveries: list[str], ok: bool, context: dict[str, Any],
                      prefetch: bool = False) -> list[dict[str, Any]]:
        """Every attempt, as telemetry, in the store (as durably as configured) before the
        answer goes out."""
        records = []
        for k, attempt in enumerate(attempts):
            record = self._base(entry, context)
            record.update({
                "ts": _epoch(attempt.started), "server": attempt.server,
                "latency_ms": round(attempt.latency_ms, 3), "success": attempt.success,
                "attempt": k + 1, "input_tokens": context["input_tokens"],
                "attrs": {"tokens": "estimated"},
            })
            if attempt.result is not None:
                record["output_tokens"] = estimate_tokens(_result_text(attempt.result))
            if context["key"] is not None:
                if prefetch:  # not an access: the preload decision must not learn it as one
                    record["attrs"] = {"tokens": "estimated", "prefetch_key": context["key"]}
                else:
                    record["cache_key"] = context["key"]
                    record["cache_hit"] = False
            if not attempt.success:
                record["error_type"] = attempt.error_type
                if k < len(recoveries):
                    record["recovery"] = recoveries[k]
                    record["recovered"] = ok
            records.append(record)
        await self._ingest(records)
        return records

    async def _record_hit(self, entry: GatewayTool, report: CallReport,
                          context: dict[str, Any]) -> None:
        record = self._base(entry, context)
        record.update({
            "ts": _epoch(time.time()), "server": self.config.cache.server,
            "latency_ms": round(report.latency_ms, 3), "success": True,
            "cache_key": context["key"], "cache_hit": True,
            "input_tokens": report.input_tokens, "output_tokens": report.output_tokens,
            "attrs": {"tokens": "estimated"},
        })
        report.records = [record]
        await self._ingest(report.records)

    async def _ingest(self, records: list[dict[str, Any]]) -> None:
        # As JSON text: the service checks records in the contract's plain form without
        # pydantic and stores the text as it came (the same records, validated alike).
        body = orjson.dumps(records)
        try:
            if self._in_flight <= 1 and not self._prefetching:
                # Alone on the loop, the append (a commit; with "fsync", a disk sync too)
                # costs less in place than the hop to a worker thread and back; with
                # others in flight it must not hold them up.
                self.service.ingest_json(body)
            else:
                await asyncio.to_thread(self.service.ingest_json, body)
        except Exception as err:  # the call's answer must not be lost to a telemetry hiccup
            log.error("attempts not recorded: %s", err)

    # --- prefetching ------------------------------------------------------------
    def _prefetch_after(self, key: str) -> None:
        """Remember the access, and fetch ahead what the preload decision predicts next."""
        self._recent.append(key)
        if not self._prefetchable or self._prefetching:
            return  # one round at a time: prefetches must never queue up behind calls
        task = asyncio.get_running_loop().create_task(self._prefetch(list(self._recent)))
        self._prefetching.add(task)
        task.add_done_callback(self._prefetching.discard)

    async def _prefetch(self, recent: list[str]) -> None:
        now = time.time()
        fresh = [k for k in self.cache.keys_by_recency() if self.cache.is_fresh(k, now)]
        try:
            answer = self.service.engine.answer("preload", PreloadRequest(
                recent=recent, budget_keys=self.config.cache.prefetch_keys, cached=fresh,
                min_probability=self.config.cache.prefetch_min_probability))
        except Exception as err:
            log.warning("preload decision failed: %s", err)
            return
        for predicted in answer.keys:
            known = self._known.get(predicted.key)
            if known is None or self.cache.is_fresh(predicted.key, time.time()):
                continue
            name, arguments = known
            entry = self.tools.get(name)
            if entry is None or self._ttl(entry) <= 0:
                continue
            decisions: list[Decision] = []
            server = await self._pick(entry, set(), frozenset(), decisions)
            outcome = await self.upstreams[server].call(entry.upstream_tool, arguments)
            self.counts["prefetch", outcome.error_type or "success"] += 1
            if outcome.success and outcome.result is not None:
                self._store(predicted.key, outcome.result, prefetched=True)
            await self._record(entry, [outcome], [], outcome.success,
                               {"key": predicted.key, "input_tokens":
                                estimate_tokens(str(arguments or ""))}, prefetch=True)

    # --- metrics ----------------------------------------------------------------
    def metrics(self) -> Iterator[Any]:
        """The gateway's Prometheus metric families (calls, attempts, cache, prefetch)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        calls = CounterMetricFamily("predictor_gateway_calls", "calls answered, by outcome "
                                    "(success, failure, or cache)", labels=["outcome"])
        attempts = CounterMetricFamily("predictor_gateway_attempts", "attempts at upstreams",
                                       labels=["upstream", "outcome"])
        prefetches = CounterMetricFamily("predictor_gateway_prefetches",
                                         "prefetch calls, by outcome", labels=["outcome"])
        for key, count in sorted(self.counts.items()):
            if key[0] == "call":
                calls.add_metric([key[1]], count)
            elif key[0] == "attempt":
                attempts.add_metric([key[1], key[2]], count)
            elif key[0] == "prefetch":
                prefetches.add_metric([key[1]], count)
        yield from (calls, attempts, prefetches)
        stats = self.cache.stats()
        for name, meaning in (("hit_ratio", "share of cacheable calls answered from the cache"),
                              ("prefetch_precision", "share of prefetched answers later used"),
                              ("entries", "answers held")):
            yield GaugeMetricFamily(f"predictor_gateway_cache_{name}", meaning, stats[name])
        for name in ("hits", "misses", "stale_served", "prefetched", "prefetch_used"):
            yield CounterMetricFamily(f"predictor_gateway_cache_{name}", f"cache {name}",
                                      stats[name])
        up = GaugeMetricFamily("predictor_gateway_upstream_up", "1 when the session is up",
                               labels=["upstream"])
        restarts = CounterMetricFamily("predictor_gateway_upstream_restarts",
                                       "sessions restarted", labels=["upstream"])
        for name, upstream in self.upstreams.items():
            up.add_metric([name], 1.0 if upstream.ready else 0.0)
            restarts.add_metric([name], upstream.restarts)
        yield from (up, restarts)


def build_server(gateway: Gateway) -> Server:
    """The MCP server the gateway answers as: the tool table and the call path."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[entry.tool for entry in gateway.tools.values()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await gateway.call(params.name, params.arguments)

    return Server("predictor-gateway", version=__version__,
                  instructions="Tools of several MCP servers; calls are routed, retried and "
                               "recorded by predictor.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


def http_app(gateway: Gateway, host: str = "127.0.0.1") -> Any:
    """A Starlette app serving the gateway at ``/mcp`` (streamable HTTP)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    server = build_server(gateway)
    inner = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    registry = CollectorRegistry(auto_describe=False)

    class _Collector:
        def collect(self) -> Iterator[Any]:
            return gateway.metrics()

    registry.register(_Collector())  # type: ignore[arg-type]

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await asyncio.to_thread(gateway.service.start)
        await _start_warm(gateway)
        try:
            async with server.session_manager.run():
                yield
        finally:
            await gateway.stop()
            await asyncio.to_thread(gateway.service.stop, False)

    return Starlette(routes=[*inner.routes, Route("/metrics", metrics)], lifespan=lifespan)


async def _start_warm(gateway: Gateway) -> None:
    """Start the upstreams while the learner's compiled loops load (see :func:`warm_up`).

    Each call is a record the gateway learns: without this, the first ones
    learned load numba while calls wait for the interpreter (``bench/gateway.py``
    read 25 ms added at p99 from that alone). The upstreams start in child
    processes meanwhile.
    """
    await asyncio.gather(asyncio.to_thread(warm_up), gateway.start())


async def serve_stdio(gateway: Gateway) -> None:
    """Serve the gateway over stdio until stdin closes."""
    from predictor.serving.stdio_transport import stdio_streams

    server = build_server(gateway)
    await asyncio.to_thread(gateway.service.start)
    await _start_warm(gateway)
    try:
        async with stdio_streams() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await gateway.stop()
        await asyncio.to_thread(gateway.service.stop, False)
