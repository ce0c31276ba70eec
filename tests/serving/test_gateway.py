"""The gateway in front of real MCP servers (mcp-server-time from PyPI, installed by
scripts/upstreams): routes, namespacing, failover when an upstream dies, telemetry."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from predictor.serving.gateway_config import GatewayConfig, load_config
from predictor.serving.upstream import classify_error, classify_text

ROOT = Path(__file__).resolve().parents[2]


def test_config_names_every_provider_and_one_transport(tmp_path):
    base = {"upstream": [{"name": "a", "command": ["x"]}]}
    with pytest.raises(ValueError, match="unknown providers"):
        GatewayConfig.model_validate({**base, "route": [{"tool": "t", "providers": ["a", "b"]}]})
    with pytest.raises(ValueError, match="exactly one of command and url"):
        GatewayConfig.model_validate({"upstream": [{"name": "a", "command": ["x"],
                                                    "url": "http://h/mcp"}]})
    (tmp_path / "g.toml").write_text('db = "gw.db"\n[[upstream]]\nname = "a"\n'
                                     'url = "http://127.0.0.1:1/mcp"\n')
    config = load_config(tmp_path / "g.toml")
    assert config.db == tmp_path / "gw.db"
    # Attempts are committed before the answer, synced within a second, unless told.
    assert (config.durability, config.fsync_interval_s) == ("commit", 1.0)
    with pytest.raises(ValueError, match="durability"):
        GatewayConfig.model_validate({**base, "durability": "never"})
    from predictor.serving.cli import _gateway_settings

    strict = _gateway_settings(GatewayConfig.model_validate({**base, "durability": "fsync"}))
    assert (strict.durability, _gateway_settings(config).durability) == ("fsync", "commit")


def test_failures_are_classified_from_what_mcp_returns():
    assert classify_error(MCPError(-32602, "bad")) == "invalid_params"
    assert classify_error(MCPError(-32603, "boom")) == "internal_error"
    assert classify_error(MCPError(-32001, "slow")) == "timeout"
    assert classify_error(MCPError(-32000, "Connection closed")) == "connection"
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(ConnectionResetError()) == "connection"
    assert classify_text("Error executing tool x: 1 validation error for xArguments") == \
        "invalid_params"
    assert classify_text("rate limit exceeded, retry later") == "rate_limit"
    assert classify_text("Invalid timezone: 'No time zone found with key Mars'") == "tool_error"


@pytest.fixture(scope="module")
def time_server(upstreams) -> str:
    return str(upstreams / "mcp-server-time" / "bin" / "mcp-server-time")


def _predictor() -> str:
    return shutil.which("predictor") or os.path.join(os.path.dirname(sys.executable),
                                                     "predictor")


def _children(pid: int, needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and needle.encode() in cmd:
            found.append(int(entry))
    return found


def test_gateway_routes_fails_over_and_records_every_attempt(tmp_path, time_server):
    config = tmp_path / "gateway.toml"
    config.write_text(f"""db = "{tmp_path / 'gw.db'}"
[[upstream]]
name = "time-a"
command = ["{time_server}", "--local-timezone", "UTC"]
[[upstream]]
name = "time-b"
command = ["{time_server}", "--local-timezone", "Etc/UTC"]
[[route]]
tool = "get_current_time"
providers = ["time-a", "time-b"]
task_type = "time"
""")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PREDICTOR_STATE_DIR=str(tmp_path / "state"),
               PREDICTOR_LOAD_CHAMPIONS="false", PREDICTOR_ONLINE_REGISTRY="false")
    with open(tmp_path / "gw.log", "wb") as log:  # the child keeps its own copy of the fd
        gateway = subprocess.Popen([_predictor(), "gateway", "--config", str(config), "--port",
                                    str(port)], cwd=tmp_path, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)

    async def drive() -> dict:
        from mcp import Client

        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            answers: list[types.CallToolResult] = []
            for _ in range(10):
                answers.append(await client.call_tool("get_current_time", {"timezone": "UTC"}))
            # Kill the upstream that served them (by its distinct timezone argument): the
            # route must fail over to the other one.
            from predictor.data.store import SQLiteEventStore

            with SQLiteEventStore(tmp_path / "gw.db") as store:
                served = [r.server for r in store.read()]
            busy = max(set(served), key=served.count)
            zone = {"time-a": b"UTC", "time-b": b"Etc/UTC"}[busy]
            for pid in _children(gateway.pid, "mcp-server-time"):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2] == zone:
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.3)
            for _ in range(10):
                answers.append(await client.call_tool("get_current_time", {"timezone": "UTC"}))
            converted = await client.call_tool(
                "time-b__convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
            return {"names": names, "answers": answers, "converted": converted}

    try:
        for _ in range(240):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.25)
        result = asyncio.run(drive())
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
    assert result["names"] == ["get_current_time", "time-a__convert_time",
                               "time-b__convert_time"]
    assert not any(a.is_error for a in result["answers"])
    assert "Asia/Tokyo" in result["converted"].content[0].text
    summary = json.loads(subprocess.run(
        [_predictor(), "summary", "--db", str(tmp_path / "gw.db"), "--json"],
        capture_output=True, text=True, timeout=120, check=True).stdout)
    servers = summary["servers"]
    assert sum(s["calls"] - s["failures"] for s in servers.values()) == 21
    from predictor.data.store import SQLiteEventStore

    with SQLiteEventStore(tmp_path / "gw.db") as store:
        failed = [r for r in store.read() if r.success is False]
    # The call that met the dead upstream fell back and recovered.
    assert failed and all(r.error_type == "connection" for r in failed)
    assert failed[0].recovery == "fallback" and failed[0].recovered is True
    assert {r.task_type for r in failed} == {"time"}


def test_rule_policies_pick_as_users_rules_do(tmp_path):
    from predictor.serving.gateway import Gateway, GatewayTool
    from predictor.serving.service import Service
    from predictor.serving.settings import Settings
    from predictor.serving.upstream import Outcome

    def gateway(policy: str) -> tuple[Gateway, GatewayTool]:
        config = GatewayConfig.model_validate({
            "db": str(tmp_path / "g.db"), "policy": policy,
            "upstream": [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}],
            "route": [{"tool": "t", "providers": ["a", "b"]}]})
        core = Gateway(config, Service(Settings(db=tmp_path / "g.db")))
        for upstream in core.upstreams.values():
            upstream._ready.set()  # as if their sessions were up
        entry = GatewayTool(types.Tool(name="t", input_schema={"type": "object"}), ("a", "b"),
                            "t", "t")
        return core, entry

    async def picks(core: Gateway, entry: GatewayTool, n: int) -> list[str]:
        return [await core._pick(entry, set(), frozenset(), []) for _ in range(n)]

    core, entry = gateway("round_robin")
    assert asyncio.run(picks(core, entry, 4)) == ["a", "b", "a", "b"]
    core, entry = gateway("ewma")
    assert asyncio.run(picks(core, entry, 1)) == ["a"]  # unseen first
    core._observe(Outcome("a", "t", 0.0, 50.0, None, None))
    core._observe(Outcome("b", "t", 0.0, 20.0, None, None))
    assert asyncio.run(picks(core, entry, 1)) == ["b"]  # the lower average
    core._observe(Outcome("b", "t", 0.0, 5.0, None, "tool_error"))
    assert asyncio.run(picks(core, entry, 1)) == ["a"]  # b failed its last call


def test_gateway_over_stdio_answers_concurrent_calls(tmp_path, time_server):
    """``--stdio`` serves on the event loop's own pipes (no worker threads)."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'db = "{tmp_path / "gw.db"}"\n[[upstream]]\nname = "time"\n'
                      f'command = ["{time_server}", "--local-timezone", "UTC"]\n')
    env = dict(os.environ, PREDICTOR_STATE_DIR=str(tmp_path / "state"),
               PREDICTOR_LOAD_CHAMPIONS="false", PREDICTOR_ONLINE_REGISTRY="false")

    async def drive() -> tuple[list[str], list[str]]:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(command=_predictor(), env=env, cwd=str(tmp_path),
                                       args=["gateway", "--config", str(config), "--stdio"])
        async with Client(params, read_timeout_seconds=60) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            answers = await asyncio.gather(*(
                client.call_tool("get_current_time", {"timezone": zone})
                for zone in ("UTC", "Asia/Tokyo", "Europe/Paris")))
        return names, [a.content[0].text for a in answers]

    names, texts = asyncio.run(drive())
    assert names == ["convert_time", "get_current_time"]
    assert [json.loads(t)["timezone"] for t in texts] == ["UTC", "Asia/Tokyo", "Europe/Paris"]
    from predictor.data.store import SQLiteEventStore

    with SQLiteEventStore(tmp_path / "gw.db") as store:
        assert sorted(r.tool for r in store.read()) == ["get_current_time"] * 3


def test_attempts_are_stored_as_the_gateway_wrote_them(tmp_path):
    """The records go in as JSON text through the service's fast check, stored as written,
    and read back as the contract's parser makes them of the same fields."""
    import sqlite3

    import orjson

    from predictor.data.schema import parse_record
    from predictor.serving.gateway import Gateway, GatewayTool
    from predictor.serving.service import Service
    from predictor.serving.settings import Settings
    from predictor.serving.upstream import Outcome

    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "g.db"),
        "upstream": [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}],
        "route": [{"tool": "t", "providers": ["a", "b"], "task_type": "clock"}]})
    service = Service(Settings(db=tmp_path / "g.db", state_dir=tmp_path / "state",
                               load_champions=False, online_registry=False))
    service.start()
    try:
        core = Gateway(config, service)
        entry = GatewayTool(types.Tool(name="t", input_schema={"type": "object"}), ("a", "b"),
                            "t", "clock")
        answer = types.CallToolResult(content=[types.TextContent(type="text", text="12:00")])
        attempts = [Outcome("a", "t", 1767571200.1234567, 41.23456, None, "timeout"),
                    Outcome("b", "t", 1767571200.2, 12.5, answer, None)]
        context = {"workflow_id": "w1", "phase": "read", "key": "t:1", "input_tokens": 4}
        records = asyncio.run(core._record(entry, attempts, ["fallback"], True, context))
        prefetched = asyncio.run(core._record(entry, attempts[1:], [], True, context,
                                              prefetch=True))
        with sqlite3.connect(tmp_path / "g.db") as conn:
            stored = [bytes(row[0]) for row in conn.execute(
                "SELECT record FROM events ORDER BY id")]
        written = records + prefetched
        assert stored == [orjson.dumps(record) for record in written]
        assert [r for _, r in service.store.read_since(0, 10)] == [
            parse_record(record) for record in written]
        first, second, third = written
        assert first["ts"] == 1767571200.123457  # to the microsecond, as a record keeps it
        assert (first["error_type"], first["recovery"], first["recovered"]) == (
            "timeout", "fallback", True)
        assert (second["attempt"], second["cache_key"], second["output_tokens"]) == (2, "t:1", 2)
        assert "cache_key" not in third and third["attrs"]["prefetch_key"] == "t:1"
    finally:
        service.stop(False)
