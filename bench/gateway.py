"""What the gateway adds to a call: the same tool called directly and through the gateway.

Usage::

    python bench/gateway.py [--calls 300] [--rounds 3] [--out FILE.json]

Both paths use the same transport (stdio) and the same real upstream,
``mcp-server-time`` (installed by ``scripts/upstreams``): ``direct`` opens
an MCP session to it; ``gateway`` opens one to ``predictor gateway --stdio``
with that server as the only provider of a route, so each call also goes
through the select decision and is recorded durably (fsynced) in the
gateway's event store before the answer. Rounds alternate the two paths
(the machine is shared and noisy); the report gives each path's median and
p99 per-call latency over all rounds and what the gateway adds, and peak
resident memory (this process, and the largest child: the gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/http.py is named like the standard library's ``http``: keep this folder off the
# import path so that ``import http.client`` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _predictor() -> str:
    return shutil.which("predictor") or str(Path(sys.executable).with_name("predictor"))


def time_server() -> str:
    folder = subprocess.run([str(ROOT / "scripts" / "upstreams")], capture_output=True,
                            text=True, check=True).stdout.strip()
    return str(Path(folder) / "mcp-server-time" / "bin" / "mcp-server-time")


async def timed_calls(params: StdioServerParameters, calls: int) -> list[float]:
    """Per-call latency in ms of ``calls`` sequential calls on one session (after 20 warm-up)."""
    async with Client(params, read_timeout_seconds=60) as client:
        for _ in range(20):
            await client.call_tool("get_current_time", {"timezone": "UTC"})
        out = []
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("get_current_time", {"timezone": "UTC"})
            out.append((time.perf_counter() - started) * 1000)
            if result.is_error:
                raise RuntimeError(f"call failed: {result.content}")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    server = time_server()
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-gateway-"))
    config = folder / "gateway.toml"
    config.write_text(f'db = "{folder / "gw.db"}"\n[[upstream]]\nname = "time"\n'
                      f'command = ["{server}", "--local-timezone", "UTC"]\n'
                      '[[route]]\ntool = "get_current_time"\nproviders = ["time"]\n')
    env = {**os.environ, "PREDICTOR_STATE_DIR": str(folder / "state"),
           "PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false"}
    direct = StdioServerParameters(command=server, args=["--local-timezone", "UTC"])
    through = StdioServerParameters(command=_predictor(),
                                    args=["gateway", "--config", str(config), "--stdio"],
                                    env=env, cwd=str(folder))
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(args.rounds):
        samples["direct"] += asyncio.run(timed_calls(direct, args.calls))
        samples["gateway"] += asyncio.run(timed_calls(through, args.calls))

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(statistics.median(ordered), 3),
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3)}

    d, g = figures(samples["direct"]), figures(samples["gateway"])
    report = {
        "command": " ".join(["python", "bench/gateway.py", *sys.argv[1:]]),
        "calls_per_round": args.calls, "rounds": args.rounds,
        "direct": d, "gateway": g,
        "added_median_ms": round(g["median_ms"] - d["median_ms"], 3),
        "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
        "recorded_attempts": _recorded(folder / "gw.db"),
        # ru_maxrss: KiB on Linux; children: the largest one that has exited (the gateway).
        "peak_rss_mb": {"bench": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                        "largest_child": round(
                            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def _recorded(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


if __name__ == "__main__":
    main()
