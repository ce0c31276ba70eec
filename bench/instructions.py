"""Instructions the online learner executes per record, counted by valgrind.

Usage::

    python bench/instructions.py [--events 6000] [--seed 0]

On a shared, noisy machine the learner's records per second vary by a
third between runs of the same code (``bench/learn.py`` reports medians
and a ratio to parsing for that reason); the instructions it executes do
not. This runs the same script twice under ``valgrind --tool=callgrind``
(``apt-get install valgrind``; about 50 times slower than without it):
once reading a ``--events`` simulation and teaching a fresh
:class:`predictor.engine.Engine` its first 100 records (imports, reading,
the compiled kernels loaded: the base), once doing that and then teaching
another fresh engine every record. The difference, divided by the
records, is what learning a record costs in instructions. Run it with
each code to compare them: two runs of the same code differed by 0.8 %
(379,194 and 382,401 instructions per record), a change of a tenth by ten
times that.

``--gateway CALLS`` counts the gateway's own work per call instead: a
gateway process (its service, its learner and its store, as ``predictor
gateway`` builds them) in front of one ``mcp-server-time`` (installed by
``scripts/upstreams``), called through its own MCP server over the SDK's
in-memory transport, 20 calls (the base) against 20 + ``CALLS``. The
upstream runs in its own process, not counted; the client of the
in-memory transport is counted (it is the same SDK code as the end
client's, in every code compared). 3,510,095 instructions per call (200
calls), against 3,678,834 before records went to the service as JSON text.
The gateway's count includes threads woken by the clock (the learner's
waits, the store's sync timer), which run differently under valgrind's
slowdown: it cannot judge a change to when the learner wakes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
from _support import time_server

from predictor.data.simulator import write_simulation

_CHILD = """
import sys
from predictor.data.readers import ReadSummary, read_records
from predictor.engine import Engine, warm_up
records = list(read_records(sys.argv[1], ReadSummary()))
warm_up()  # the compiled kernels loaded (or compiled) here, as the gateway loads them
Engine().learn(records[:100])
if sys.argv[2] == "learn":
    Engine().learn(records)
"""


_GATEWAY_CHILD = """
import asyncio, sys, tempfile
from pathlib import Path
from mcp import Client
from predictor.serving.gateway import Gateway, build_server
from predictor.serving.gateway_config import GatewayConfig
from predictor.serving.service import Service
from predictor.serving.settings import Settings
folder = Path(tempfile.mkdtemp(prefix="predictor-bench-instructions-"))
config = GatewayConfig.model_validate({
    "db": str(folder / "gw.db"),
    "upstream": [{"name": "time", "command": [sys.argv[1], "--local-timezone", "UTC"]}],
    "route": [{"tool": "get_current_time", "providers": ["time"]}]})
# As predictor gateway sets its service (the learner's linger where the config has one).
linger = {"learn_linger_s": config.learn_linger_s} if hasattr(config, "learn_linger_s") else {}
service = Service(Settings(db=folder / "gw.db", state_dir=folder / "state",
                           durability=config.durability, load_champions=False,
                           online_registry=False, **linger))

async def main():
    await asyncio.to_thread(service.start)
    gateway = Gateway(config, service)
    await gateway.start()
    try:
        async with Client(build_server(gateway)) as client:
            for _ in range(20 + int(sys.argv[2])):
                await client.call_tool("get_current_time", {"timezone": "UTC"})
        await asyncio.to_thread(service.wait_learned)
    finally:
        await gateway.stop()
        await asyncio.to_thread(service.stop, False)

asyncio.run(main())
"""


def _instructions(child: str, args: list[str], folder: Path, name: str) -> int:
    out = folder / f"callgrind.{name}"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         "-c", child, *args], capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def _gateway(calls: int, folder: Path) -> dict:
    server = time_server()
    _instructions(_GATEWAY_CHILD, [server, "0"], folder, "warm")  # see _CHILD's warm-up
    base = _instructions(_GATEWAY_CHILD, [server, "0"], folder, "gateway-base")
    called = _instructions(_GATEWAY_CHILD, [server, str(calls)], folder, "gateway")
    return {"command": f"python bench/instructions.py --gateway {calls}", "calls": calls,
            "instructions_base": base, "instructions_calls": called - base,
            "instructions_per_call": round((called - base) / calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gateway", type=int, metavar="CALLS",
                        help="count the gateway's work per call instead (see above)")
    args = parser.parse_args()
    if args.gateway:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(_gateway(args.gateway, Path(tmp)), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "sim.jsonl"
        write_simulation(log, args.events, args.seed)
        # Warm numba's cache under valgrind: a kernel compiled in a counted run would count,
        # and numba caches a kernel per CPU, which valgrind's emulated one is not.
        _instructions(_CHILD, [str(log), "base"], folder, "warm")
        base = _instructions(_CHILD, [str(log), "base"], folder, "base")
        learn = _instructions(_CHILD, [str(log), "learn"], folder, "learn")
    print(json.dumps({
        "command": f"python bench/instructions.py --events {args.events} --seed {args.seed}",
        "records": args.events,
        "instructions_base": base,
        "instructions_learning": learn - base,
        "instructions_per_record": round((learn - base) / args.events),
    }, indent=2))


if __name__ == "__main__":
    main()
