"""``predictor gateway``: one MCP server in front of many, acting on the decisions.

The gateway lists its upstreams' tools (``<upstream>__<tool>`` where names
clash) and serves *routes*: one logical tool that several upstreams
provide. For every call it

* picks the provider with the served **select** decision (cooldowns
  included: a server that keeps failing is kept out of the ranking), among
  the providers whose session is up;
* calls it within the upstream's ``timeout_s``, and after a failure asks
  the **recover** decision what to do: retry after its back-off, fall back
  to the server it names, or abort (``degrade`` has no cache to serve from
  yet, so it aborts too); at most the decision's 4 attempts in all;
* records every attempt as one telemetry record (``server``, ``tool``,
  ``latency_ms``, ``success``, ``error_type``, ``attempt``, ``task_type``,
  and for a failed attempt the ``recovery`` that followed and whether it
  ``recovered``) in the event store, durably, before it answers; the
  service's learner learns them, so the next call's decisions use them.

An upstream's own error result (``isError``) goes back to the client as it
came when no recovery helps; a call that ends without any answer is an MCP
error that says what was tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from predictor import __version__
from predictor.api.recover import RecoverRequest
from predictor.api.select import SelectRequest
from predictor.serving.gateway_config import GatewayConfig
from predictor.serving.service import Service
from predictor.serving.upstream import Outcome, Upstream

__all__ = ["Gateway", "GatewayTool", "build_server", "http_app"]

log = logging.getLogger("predictor.gateway")

#: How long a call waits for a provider whose session is restarting.
_WAIT_FOR_PROVIDER_S = 5.0


@dataclass(frozen=True)
class GatewayTool:
    """A tool as clients see it, and who serves it."""

    tool: types.Tool
    providers: tuple[str, ...]
    upstream_tool: str
    task_type: str | None


class Gateway:
    """The gateway core: upstream sessions, the tool table, and the call path."""

    def __init__(self, config: GatewayConfig, service: Service) -> None:
        self.config = config
        self.service = service
        self.upstreams = {u.name: Upstream(u) for u in config.upstream}
        self.tools: dict[str, GatewayTool] = {}
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

    async def stop(self) -> None:
        await asyncio.gather(*(u.stop() for u in self.upstreams.values()))

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

    # --- the call path ------------------------------------------------------
    async def _pick(self, entry: GatewayTool, exclude: set[str]) -> str:
        """The provider to try: the select decision's first among those whose session is up."""
        deadline = time.monotonic() + _WAIT_FOR_PROVIDER_S
        while True:
            ready = [p for p in entry.providers if self.upstreams[p].ready and p not in exclude]
            if ready or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        if not ready:
            left = [p for p in entry.providers if p not in exclude]
            return (left or list(entry.providers))[0]
        if len(ready) == 1:
            return ready[0]
        if self.config.policy == "round_robin":
            self._turn += 1
            return ready[self._turn % len(ready)]
        if self.config.policy == "ewma":
            healthy = [p for p in ready if not self._failed_last.get(p)] or ready
            # Unseen providers first (latency routers try them), then the fastest average.
            return min(healthy, key=lambda p: self._ewma.get((p, entry.upstream_tool), -1.0))
        answer = self.service.engine.answer("select", SelectRequest(
            task_type=entry.task_type or entry.upstream_tool, candidates=ready,
            tool=entry.upstream_tool))
        return answer.ranking[0].server

    async def call(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Serve one ``tools/call`` (see the module docstring)."""
        entry = self.tools.get(name)
        if entry is None:
            raise MCPError(-32602, f"unknown tool {name!r}")
        started = time.perf_counter()
        attempts: list[Outcome] = []
        recoveries: list[str] = []
        server = await self._pick(entry, set())
        while True:
            outcome = await self.upstreams[server].call(entry.upstream_tool, arguments)
            attempts.append(outcome)
            self._observe(outcome)
            if outcome.success:
                break
            others = [p for p in entry.providers if p != server and self.upstreams[p].ready]
            plan = self.service.engine.answer("recover", RecoverRequest(
                error_type=outcome.error_type or "unknown", server=server,
                attempt=len(attempts), candidates=others,
                elapsed_ms=min((time.perf_counter() - started) * 1000, 86_400_000.0),
                task_type=entry.task_type))
            strategy = plan.strategy
            if strategy == "fallback" and not others:
                strategy = "abort"
            if strategy in ("degrade", "abort"):
                recoveries.append("abort")
                break
            recoveries.append(strategy)
            if strategy == "retry":
                await asyncio.sleep(min((plan.backoff_ms or 0.0) / 1000, 5.0))
            else:
                server = plan.fallback_server if plan.fallback_server in others \
                    else await self._pick(entry, {a.server for a in attempts})
        await self._record(entry, attempts, recoveries)
        last = attempts[-1]
        if last.result is not None:
            return last.result
        tried = "; ".join(f"{a.server}: {a.error_type} ({a.detail[:80]})" for a in attempts)
        raise MCPError(-32603, f"predictor gateway: {name} failed after {len(attempts)} "
                               f"attempt(s): {tried}")

    def _observe(self, outcome: Outcome) -> None:
        """What the rule-based policies remember (the served one learns from the store)."""
        self._failed_last[outcome.server] = not outcome.success
        if outcome.success:
            key = (outcome.server, outcome.tool)
            before = self._ewma.get(key)
            self._ewma[key] = outcome.latency_ms if before is None \
                else 0.7 * before + 0.3 * outcome.latency_ms

    async def _record(self, entry: GatewayTool, attempts: list[Outcome],
                      recoveries: list[str]) -> None:
        """Every attempt, as telemetry, durably, before the answer goes out."""
        ok = attempts[-1].success
        records = []
        for k, attempt in enumerate(attempts):
            record: dict[str, Any] = {
                "ts": attempt.started, "server": attempt.server, "tool": entry.upstream_tool,
                "latency_ms": round(attempt.latency_ms, 3), "success": attempt.success,
                "attempt": k + 1,
            }
            if entry.task_type:
                record["task_type"] = entry.task_type
            if not attempt.success:
                record["error_type"] = attempt.error_type
                if k < len(recoveries):
                    record["recovery"] = recoveries[k]
                    record["recovered"] = ok
            records.append(record)
        try:
            await asyncio.to_thread(self.service.ingest, records)
        except Exception as err:  # the call's answer must not be lost to a telemetry hiccup
            log.error("attempts not recorded: %s", err)


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
    from starlette.applications import Starlette

    server = build_server(gateway)
    inner = server.streamable_http_app(streamable_http_path="/mcp", host=host)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await asyncio.to_thread(gateway.service.start)
        await gateway.start()
        try:
            async with server.session_manager.run():
                yield
        finally:
            await gateway.stop()
            await asyncio.to_thread(gateway.service.stop, False)

    return Starlette(routes=inner.routes, lifespan=lifespan)


async def serve_stdio(gateway: Gateway) -> None:
    """Serve the gateway over stdio until stdin closes."""
    from mcp.server.stdio import stdio_server

    server = build_server(gateway)
    await asyncio.to_thread(gateway.service.start)
    await gateway.start()
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await gateway.stop()
        await asyncio.to_thread(gateway.service.stop, False)
