"""What the gateway adds to a call: the same tool called directly and through the gateway.

Usage::

    python bench/gateway.py [--calls 300] [--rounds 3] [--out FILE.json]

Both paths use the same transport (stdio) and the same real upstream,
``mcp-server-time`` (installed by ``scripts/upstreams``): ``direct`` opens
an MCP session to it; ``gateway`` opens one to ``predictor gateway --stdio``
with that server as the only provider of a route, so each call also goes
through the gateway's call path and is recorded in its event store before
the answer, at the gateway's default durability (committed; on disk within
a second); ``gateway_fsync`` is the same with ``durability = "fsync"`` (each
call's record synced to disk before the answer). Rounds alternate the three
paths, each round starting one path later than the last (the machine is
shared and noisy, and a fixed order favoured one position); use a multiple
of three rounds. The report gives each path's
median and p99 per-call latency over all rounds and what the gateway adds,
and peak resident memory (this process, and the largest child: a gateway).

Learning in the call path (``--learning-calls``): two providers of one
route, both ``bench/faulty_upstream.py`` instances set apart (a fast
provider that fails a quarter of its calls beside a steady one; a fast and
a slow reliable one), each run through a fresh gateway under each policy:
``served`` (the select decision), ``ewma`` (lowest moving average latency
of successful calls, skipping a provider whose last call failed) and
``round_robin``. It reports the share of first attempts on the good
provider after ``--warmup`` calls, the failures the client saw (after the
gateway's recoveries) and the mean latency the client saw.

The response cache (``--cache-calls``): one read-only tool
(``faulty_upstream.py``, 20 ms) read the way agents read documents: each
session picks a chain of keys (Zipf over 25 chains of 4) and reads it in
order with 30 ms of thinking between reads. Through ``predictor gateway``
over HTTP, three ways: no cache, a cache (answers fresh 3 s), and the cache
with prefetching from the preload decision; it reports the hit ratio and
prefetch precision from the gateway's ``/metrics``, the calls that reached
the upstream, and the latency the client saw.

Where the added time goes (``--breakdown``, in this process, over the same
``mcp-server-time``): the gateway's session call alone, the whole call path
(``Gateway.execute``: the call, its record, the decisions), the same
through the gateway's own MCP server over an in-memory transport, and the
record of one attempt alone (``Service.ingest``, at the gateway's default
durability); medians.

``--learn-linger-s S`` sets the gateway config's ``learn_linger_s`` in
every gateway it starts (default: the config's default), so that one run
with ``0`` and one without compare learning each attempt at once with
learning them in runs.

Providers crashing mid-run: two reliable providers under the served
policy, once as they are and once exiting after every 100 and 130 calls
they serve (the gateway restarts each with back-off); the failures the
client saw and the latency it paid (median, p99, worst).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
from _support import ROOT, predictor_command, time_server
from mcp import Client
from mcp.client.stdio import StdioServerParameters


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


#: Top-level lines every gateway config this bench writes starts with (``--learn-linger-s``).
CONFIG_TOP: list[str] = []


#: Two providers of one route, as (name, faulty_upstream.py arguments), per scenario.
SCENARIOS = {
    # A fast provider that fails often beside a steady one: latency alone picks wrong.
    "fast_but_flaky": [("steady", ["--latency-ms", "30", "--error-rate", "0.01"]),
                       ("flaky", ["--latency-ms", "15", "--error-rate", "0.25"])],
    # Two reliable providers, one three times slower: what latency routers are good at.
    "slow_and_fast": [("fast", ["--latency-ms", "20", "--error-rate", "0.0"]),
                      ("slow", ["--latency-ms", "60", "--error-rate", "0.0"])],
}
#: The provider a good policy should send calls to, per scenario.
GOOD = {"fast_but_flaky": "steady", "slow_and_fast": "fast"}


async def _drive(params: StdioServerParameters, calls: int) -> list[tuple[float, bool]]:
    """(user-visible latency ms, success) of ``calls`` sequential calls through the gateway."""
    out = []
    async with Client(params, read_timeout_seconds=120) as client:
        for i in range(calls):
            started = time.perf_counter()
            try:
                result = await client.call_tool("lookup", {"query": f"q{i % 50}"})
                ok = not result.is_error
            except Exception:
                ok = False
            out.append(((time.perf_counter() - started) * 1000, ok))
    return out


def _run(providers: list[tuple[str, list[str]]], policy: str, calls: int, seed: int
         ) -> tuple[list[tuple[float, bool]], list[str], int]:
    """``calls`` through a fresh gateway over ``providers`` (faulty_upstream.py instances):
    what the client saw, the provider of each first attempt, and all attempts recorded."""
    import sqlite3

    faulty = str(ROOT / "bench" / "faulty_upstream.py")
    folder = Path(tempfile.mkdtemp(prefix=f"predictor-bench-{policy}-"))
    lines = [*CONFIG_TOP, f'db = "{folder / "gw.db"}"', f'policy = "{policy}"']
    for k, (name, argv) in enumerate(providers):
        command = json.dumps([sys.executable, faulty, *argv, "--seed", str(seed + k)])
        lines += ["[[upstream]]", f'name = "{name}"', f"command = {command}"]
    names = json.dumps([name for name, _ in providers])
    lines += ["[[route]]", 'tool = "lookup"', f"providers = {names}"]
    (folder / "gateway.toml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PREDICTOR_STATE_DIR": str(folder / "state"),
           "PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false"}
    params = StdioServerParameters(
        command=predictor_command(), env=env, cwd=str(folder),
        args=["gateway", "--config", str(folder / "gateway.toml"), "--stdio"])
    seen = asyncio.run(_drive(params, calls))
    with sqlite3.connect(folder / "gw.db") as conn:
        # First attempts only: where the policy sent each call.
        picks = [row[0] for row in conn.execute(
            "SELECT server FROM events WHERE json_extract(record, '$.attempt') = 1 ORDER BY id")]
        attempts = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    return seen, picks, attempts


def learning(calls: int, warmup: int, seed: int) -> dict:
    """Each scenario under each policy: share of calls on the good provider after ``warmup``,
    user-visible failures and mean latency."""
    report: dict = {}
    for scenario, providers in SCENARIOS.items():
        report[scenario] = {}
        for policy in ("served", "ewma", "round_robin"):
            seen, picks, _ = _run(providers, policy, calls, seed)
            after = picks[warmup:]
            report[scenario][policy] = {
                "good_share_after_warmup": round(after.count(GOOD[scenario]) / len(after), 3),
                "user_visible_failures": sum(not ok for _, ok in seen),
                "mean_latency_ms": round(statistics.fmean(ms for ms, _ in seen), 2),
            }
    return report


def crashes(calls: int, seed: int) -> dict:
    """Two reliable 20 ms providers, served policy: as they are, and crashing (exiting)
    after every 100 and 130 calls each serves, restarted by the gateway each time."""
    steady = ["--latency-ms", "20", "--error-rate", "0.0"]
    report = {}
    for case, crash in (("no_crash", (0, 0)), ("crash_every_100_and_130", (100, 130))):
        providers = [(name, [*steady, "--crash-after", str(after)])
                     for name, after in zip(("a", "b"), crash, strict=True)]
        seen, _, attempts = _run(providers, "served", calls, seed)
        latencies = sorted(ms for ms, _ in seen)
        report[case] = {
            "user_visible_failures": sum(not ok for _, ok in seen),
            "attempts_recorded": attempts,
            "median_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
            "max_ms": round(latencies[-1], 2),
        }
    return report


def _metric(text: str, name: str) -> float:
    """A sample's value from a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _read_chains(url: str, calls: int, seed: int) -> list[float]:
    """``calls`` reads in sessions of chains (see the module docstring); latency of each."""
    import random

    from mcp import Client

    rng = random.Random(seed)
    chains = [[f"doc{c}-part{k}" for k in range(4)] for c in range(25)]
    weights = [1 / (rank + 1) for rank in range(len(chains))]
    latencies: list[float] = []
    async with Client(url, read_timeout_seconds=60) as client:
        while len(latencies) < calls:
            for key in rng.choices(chains, weights)[0]:
                started = time.perf_counter()
                result = await client.call_tool("lookup", {"query": key})
                latencies.append((time.perf_counter() - started) * 1000)
                if result.is_error:
                    raise RuntimeError(f"call failed: {result.content}")
                await asyncio.sleep(0.03)
    return latencies[:calls]


def caching(calls: int, seed: int) -> dict:
    """No cache, a cache, a cache with prefetching: hit ratio, precision, upstream calls."""
    import httpx
    from _support import free_port

    faulty = str(ROOT / "bench" / "faulty_upstream.py")
    report = {}
    for case, cache in (("no_cache", "enabled = false"),
                        ("cache", "ttl_s = 3\nprefetch_keys = 0"),
                        ("cache_and_prefetch", "ttl_s = 3\nprefetch_keys = 2")):
        folder = Path(tempfile.mkdtemp(prefix=f"predictor-bench-{case}-"))
        command = json.dumps([sys.executable, faulty, "--latency-ms", "20", "--jitter", "0.1",
                              "--seed", str(seed)])
        (folder / "gateway.toml").write_text(
            "".join(f"{line}\n" for line in CONFIG_TOP)
            + f'db = "{folder / "gw.db"}"\n[cache]\n{cache}\n'
            f'[[upstream]]\nname = "docs"\ncommand = {command}\n')
        port = free_port()
        env = {**os.environ, "PREDICTOR_STATE_DIR": str(folder / "state"),
               "PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false",
               "PREDICTOR_LOG_LEVEL": "WARNING"}
        with open(folder / "gateway.log", "wb") as log:
            gateway = subprocess.Popen(
                [predictor_command(), "gateway", "--config", str(folder / "gateway.toml"),
                 "--port", str(port)], env=env, cwd=folder, stdout=subprocess.DEVNULL,
                stderr=log)
        try:
            for _ in range(240):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.25)
            seen = asyncio.run(_read_chains(f"http://127.0.0.1:{port}/mcp", calls, seed))
            time.sleep(0.5)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            gateway.terminate()
            gateway.wait(timeout=60)
        upstream = sum(_metric(line, "predictor_gateway_attempts_total")
                       for line in metrics.splitlines()
                       if line.startswith("predictor_gateway_attempts_total"))
        prefetches = sum(_metric(line, "predictor_gateway_prefetches_total")
                         for line in metrics.splitlines()
                         if line.startswith("predictor_gateway_prefetches_total"))
        ordered = sorted(seen)
        report[case] = {
            "hit_ratio": round(_metric(metrics, "predictor_gateway_cache_hit_ratio"), 3),
            "prefetch_precision": round(
                _metric(metrics, "predictor_gateway_cache_prefetch_precision"), 3),
            "upstream_calls": int(upstream + prefetches),
            "prefetches": int(prefetches),
            "mean_ms": round(statistics.fmean(seen), 2),
            "median_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        }
    return report


def breakdown(server: str, calls: int) -> dict:
    """Medians (ms) of the parts of the gateway's path, in process (module docstring)."""
    from mcp import Client as InMemoryClient

    from predictor.serving.gateway import Gateway, build_server
    from predictor.serving.gateway_config import GatewayConfig
    from predictor.serving.service import Service
    from predictor.serving.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-breakdown-"))
    config = GatewayConfig.model_validate({
        "db": str(folder / "gw.db"),
        "upstream": [{"name": "time", "command": [server, "--local-timezone", "UTC"]}],
        "route": [{"tool": "get_current_time", "providers": ["time"]}]})
    service = Service(Settings(db=folder / "gw.db", state_dir=folder / "state",
                               durability=config.durability, load_champions=False,
                               online_registry=False, learn_linger_s=config.learn_linger_s))
    arguments = {"timezone": "UTC"}

    async def timed(call) -> float:
        for _ in range(20):
            await call()
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(samples), 3)

    async def run() -> dict:
        await asyncio.to_thread(service.start)
        gateway = Gateway(config, service)
        await gateway.start()
        upstream = gateway.upstreams["time"]
        try:
            out = {"session_call_ms": await timed(
                       lambda: upstream.call("get_current_time", arguments)),
                   "execute_ms": await timed(
                       lambda: gateway.execute("get_current_time", arguments))}
            async with InMemoryClient(build_server(gateway)) as client:
                out["through_own_mcp_server_ms"] = await timed(
                    lambda: client.call_tool("get_current_time", arguments))
            record = {"server": "time", "tool": "get_current_time", "latency_ms": 1.0,
                      "success": True, "attempt": 1}

            async def ingest() -> None:
                service.ingest([{**record, "ts": time.time()}])

            out["record_ms"] = await timed(ingest)
            return out
        finally:
            await gateway.stop()
            await asyncio.to_thread(service.stop, False)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--learning-calls", type=int, default=300,
                        help="calls per policy and scenario in the learning part (0: skip)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of the call path in process")
    parser.add_argument("--cache-calls", type=int, default=400,
                        help="reads per case in the cache part (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learn-linger-s", type=float,
                        help="learn_linger_s of every gateway started (default: the config's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.learn_linger_s is not None:
        CONFIG_TOP.append(f"learn_linger_s = {args.learn_linger_s}")
    server = time_server()
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-gateway-"))
    direct = StdioServerParameters(command=server, args=["--local-timezone", "UTC"])
    paths = {"direct": direct}
    for path, durability in (("gateway", None), ("gateway_fsync", "fsync")):
        config = folder / f"{path}.toml"
        config.write_text("".join(f"{line}\n" for line in CONFIG_TOP)
                          + ("" if durability is None else f'durability = "{durability}"\n')
                          + f'db = "{folder / path}.db"\n[[upstream]]\nname = "time"\n'
                          f'command = ["{server}", "--local-timezone", "UTC"]\n'
                          '[[route]]\ntool = "get_current_time"\nproviders = ["time"]\n')
        env = {**os.environ, "PREDICTOR_STATE_DIR": str(folder / f"{path}-state"),
               "PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false"}
        paths[path] = StdioServerParameters(
            command=predictor_command(), args=["gateway", "--config", str(config), "--stdio"],
            env=env, cwd=str(folder))
    samples: dict[str, list[float]] = {path: [] for path in paths}
    order = list(paths)
    for round_ in range(args.rounds):
        # Each round starts one path later: a fixed order favoured one position (in an
        # A/B of one gateway in two positions, the second ran 5-15 % faster every time).
        for path in order[round_ % len(order):] + order[:round_ % len(order)]:
            samples[path] += asyncio.run(timed_calls(paths[path], args.calls))

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(statistics.median(ordered), 3),
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3)}

    d, g = figures(samples["direct"]), figures(samples["gateway"])
    f = figures(samples["gateway_fsync"])
    report = {
        "command": " ".join(["python", "bench/gateway.py", *sys.argv[1:]]),
        "calls_per_round": args.calls, "rounds": args.rounds,
        "direct": d, "gateway": g,
        "added_median_ms": round(g["median_ms"] - d["median_ms"], 3),
        "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
        "gateway_over_direct_median": round(g["median_ms"] / d["median_ms"], 3),
        # The same gateway syncing each call's record to disk before answering.
        "gateway_fsync": f,
        "fsync_added_median_ms": round(f["median_ms"] - d["median_ms"], 3),
        "fsync_added_p99_ms": round(f["p99_ms"] - d["p99_ms"], 3),
        "recorded_attempts": _recorded(folder / "gateway.db"),
        "recorded_attempts_fsync": _recorded(folder / "gateway_fsync.db"),
        "learning": learning(args.learning_calls, args.warmup, args.seed)
        if args.learning_calls else None,
        "crashes": crashes(args.learning_calls, args.seed) if args.learning_calls else None,
        "cache": caching(args.cache_calls, args.seed) if args.cache_calls else None,
        "breakdown": breakdown(server, args.calls) if args.breakdown else None,
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
