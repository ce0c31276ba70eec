"""A small MCP server (stdio) that misbehaves on purpose, one instance per setting.

Usage::

    python bench/faulty_upstream.py [--latency-ms 20] [--jitter 0.3] [--error-rate 0.0]
                                    [--crash-after 0] [--seed 0]

It serves one read-only tool, ``lookup(query)``, that answers after
``--latency-ms`` (log-normal, ``--jitter`` its sigma), fails with an
``isError`` result at ``--error-rate``, and exits abruptly after
``--crash-after`` calls (0: never). It sits beside the real third-party
servers in benchmarks, never instead of them: the gateway learns which of
several providers to trust from what they do.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build(latency_ms: float, jitter: float, error_rate: float, crash_after: int,
          seed: int) -> MCPServer:
    rng = random.Random(seed)
    server = MCPServer(name="faulty-upstream")
    calls = [0]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def lookup(query: str) -> str:
        """Look ``query`` up (slowly, and not always successfully)."""
        calls[0] += 1
        if crash_after and calls[0] > crash_after:
            os._exit(1)  # a crash, not a clean shutdown
        delay = latency_ms * math.exp(rng.gauss(0.0, jitter) - jitter * jitter / 2) / 1000
        await asyncio.sleep(delay)
        if rng.random() < error_rate:
            raise ToolError(f"backend unavailable for {query!r}")
        return f"result for {query}"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build(args.latency_ms, args.jitter, args.error_rate, args.crash_after, args.seed).run("stdio")


if __name__ == "__main__":
    main()
