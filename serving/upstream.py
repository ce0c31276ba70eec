"""One upstream MCP server behind the gateway: its session, its restarts, its failures.

A supervisor task holds the ``mcp.Client`` session open (an MCP session's
context must be entered and left in one task); calls from any task share
it. When the server dies (a stdio child killed, a connection closed) the
call that sees it fails with ``connection``, the session is torn down, and
the supervisor starts it again with exponential back-off (0.5 s doubling to
30 s), resetting once a session stays up.

Every outcome is classified into the telemetry ``error_type``s from what
MCP really returns: JSON-RPC errors (-32602 ``invalid_params``, -32603
``internal_error``, -32001 ``timeout``, -32000 and closed sessions
``connection``), results marked ``isError`` (``tool_error``, or
``invalid_params``/``rate_limit``/``timeout`` when the server's text says
so), and calls that outlast ``timeout_s`` (``timeout``).

>>> classify_text("Error executing tool get_current_time: 1 validation error for ...")
'invalid_params'
>>> classify_text("429 Too Many Requests"), classify_text("Invalid timezone: 'Mars/Base'")
('rate_limit', 'tool_error')
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, TextIO

from mcp import Client, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from predictor.serving.gateway_config import Upstream as UpstreamConfig

__all__ = ["Outcome", "Upstream", "classify_error", "classify_text"]

log = logging.getLogger("predictor.gateway")

_JSONRPC_ERRORS = {-32602: "invalid_params", -32603: "internal_error", -32001: "timeout",
                   -32000: "connection", -32601: "invalid_params"}
_TEXT_KINDS = (
    ("invalid_params", re.compile(r"validation error|invalid (argument|param)|rejected argument"
                                  r"|missing required|unexpected keyword", re.I)),
    ("rate_limit", re.compile(r"rate.?limit|too many requests|\b429\b", re.I)),
    ("timeout", re.compile(r"timed? ?out\b|deadline exceeded", re.I)),
)


def classify_text(text: str) -> str:
    """The ``error_type`` of an ``isError`` result from what its text says."""
    for kind, pattern in _TEXT_KINDS:
        if pattern.search(text):
            return kind
    return "tool_error"


def classify_error(error: BaseException) -> str:
    """The ``error_type`` of a call that raised instead of answering."""
    if isinstance(error, MCPError):
        code = getattr(error, "code", None)
        if code is None and getattr(error, "error", None) is not None:
            code = error.error.code
        if code in _JSONRPC_ERRORS:
            return _JSONRPC_ERRORS[code]
        return "connection" if "closed" in str(error).lower() else "internal_error"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "connection"


def _leaves(error: BaseException) -> list[BaseException]:
    """The errors inside ``error`` (task groups wrap what went wrong in exception groups)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _cannot_start(error: BaseException) -> bool:
    """Whether ``error`` says the program cannot be run at all (retrying will not help)."""
    return any(isinstance(leaf, FileNotFoundError | PermissionError | NotADirectoryError)
               for leaf in _leaves(error))


def _reason(error: BaseException) -> str:
    """The innermost error, for a message."""
    leaf = _leaves(error)[0]
    return f"{type(leaf).__name__}: {leaf}"


@dataclass
class Outcome:
    """One attempt at one upstream."""

    server: str
    tool: str
    started: float
    latency_ms: float
    result: types.CallToolResult | None
    error_type: str | None
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.error_type is None


class Upstream:
    """A supervised session to one upstream (see the module docstring)."""

    MAX_BACKOFF_S = 30.0

    def __init__(self, config: UpstreamConfig, errlog: TextIO | None = None) -> None:
        self.config = config
        self.errlog = errlog  # where a stdio upstream's stderr goes (default: ours)
        self.name = config.name
        self.client: Client | None = None
        self.tools: list[types.Tool] = []
        self.restarts = 0
        #: Why the last session ended or failed to start (None while up).
        self.last_error: str | None = None
        #: Set when the server cannot start at all (no such program, not executable):
        #: waiting for it is pointless, though the supervisor keeps trying.
        self.unstartable = asyncio.Event()
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._broken.is_set()

    def _target(self) -> Any:
        if self.config.url is not None:
            return self.config.url
        command, *args = self.config.command or []
        cwd = self.config.cwd
        if cwd is not None:
            cwd.mkdir(parents=True, exist_ok=True)
        parameters = StdioServerParameters(command=command, args=args,
                                           env=self.config.env or None, cwd=cwd)
        if self.errlog is None:
            return parameters
        return stdio_client(parameters, errlog=self.errlog)

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"upstream-{self.name}")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the session is up; False after ``timeout`` or if it cannot start."""
        ready = asyncio.ensure_future(self._ready.wait())
        hopeless = asyncio.ensure_future(self.unstartable.wait())
        try:
            await asyncio.wait({ready, hopeless}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            hopeless.cancel()
        return self._ready.is_set()

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            started = time.monotonic()
            try:
                async with Client(self._target(),
                                  read_timeout_seconds=self.config.timeout_s) as client:
                    self.tools = list((await client.list_tools()).tools)
                    self.client = client
                    self.last_error = None
                    self.unstartable.clear()
                    self._broken.clear()
                    self._ready.set()
                    log.info("upstream up", extra={"event": "upstream_up", "upstream": self.name,
                                                   "tools": len(self.tools)})
                    await self._broken.wait()
            except Exception as err:  # a server that fails to start is retried, not fatal
                self.last_error = _reason(err)
                if _cannot_start(err):
                    self.unstartable.set()
                log.warning("upstream %s down: %s", self.name, self.last_error)
            finally:
                self._ready.clear()
                self.client = None
            if self._stopping:
                break
            if time.monotonic() - started > 60:
                backoff = 0.5  # it stayed up: a new failure starts the back-off again
            self.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(self.MAX_BACKOFF_S, backoff * 2)

    async def call(self, tool: str, arguments: dict[str, Any] | None) -> Outcome:
        """Call ``tool`` once, within ``timeout_s``; never raises."""
        started = time.time()
        clock = time.perf_counter()
        client = self.client if self.ready else None
        if client is None:
            return Outcome(self.name, tool, started, 0.0, None, "connection",
                           "the upstream is not connected")
        try:
            # A timeout scope, not wait_for: no extra task per call.
            async with asyncio.timeout(self.config.timeout_s):
                result = await client.call_tool(tool, arguments or {})
        except Exception as err:
            kind = classify_error(err)
            if kind == "connection":
                self._broken.set()  # the supervisor tears the session down and restarts it
            return Outcome(self.name, tool, started, (time.perf_counter() - clock) * 1000,
                           None, kind, f"{type(err).__name__}: {err}")
        latency = (time.perf_counter() - clock) * 1000
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            return Outcome(self.name, tool, started, latency, result, classify_text(text),
                           text[:300])
        return Outcome(self.name, tool, started, latency, result, None)

    async def stop(self) -> None:
        self._stopping = True
        self._broken.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
