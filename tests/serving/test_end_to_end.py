"""End to end: ``predictor serve`` and ``predictor mcp`` as subprocesses, driven by real clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from mcp import Client, StdioServerParameters

from predictor.serving.catalog import CATALOG
from predictor.serving.client import AsyncPredictorClient, PredictorClient

PREDICTOR = shutil.which("predictor") or str(Path(sys.executable).with_name("predictor"))

TOOL_ARGUMENTS = {
    "allocate_resources": {"phases": [{"phase": "p", "tool": "web_search"}]},
    "adjust_allocation": {"phases": [{"phase": "p", "tool": "web_search"}],
                          "actual": {"p": {"duration_ms": 5.0}}},
    "preload_keys": {"budget_keys": 2},
    "recommend_scaling": {"server": "S", "current_replicas": 1, "capacity_per_replica": 10},
    "assess_risk": {"server": "S"},
    "recommend_recovery": {"error_type": "rate_limit", "server": "S"},
    "reduce_context": {"query": "q", "items": [{"id": "a", "text": "q"}]},
    "plan_operations": {"operations": [{"id": "a"}]},
    "find_bottlenecks": {},
    "validate_workflow": {"calls": [{"ts": 1, "server": "S", "tool": "t"}]},
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PREDICTOR_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
           "PREDICTOR_CHECKPOINT_INTERVAL_S": "3600"}
    log = open(folder / "serve.log", "ab")  # noqa: SIM115 (the server owns it until it stops)
    proc = subprocess.Popen([PREDICTOR, "serve", "--port", str(port)], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    proc.kill()
    raise AssertionError((folder / "serve.log").read_text()[-2000:])


def _stop(proc: subprocess.Popen, folder: Path) -> None:
    """SIGTERM, as a process manager stops it: a graceful shutdown that checkpoints."""
    proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert '"event":"stop"' in (folder / "serve.log").read_text()


def _wait_learned(client: httpx.Client) -> None:
    for _ in range(600):
        if client.get("/readyz").json()["pending_records"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("the online models did not catch up")


async def _call_every_tool(client: Client, server: str, task: str, records: list[dict]) -> dict:
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {d.tool for d in CATALOG} | {"report_telemetry"}
    report = await client.call_tool("report_telemetry", {"records": records})
    assert not report.is_error and report.structured_content["accepted"] == len(records)
    answers = {}
    select = await client.call_tool("select_server", {"task_type": task,
                                                      "candidates": [server, "other"]})
    answers["select_server"] = select.structured_content
    for name, arguments in TOOL_ARGUMENTS.items():
        arguments = {k: (server if v == "S" else v) for k, v in arguments.items()}
        result = await client.call_tool(name, arguments)
        assert not result.is_error, (name, result.content)
        answers[name] = result.structured_content
    bad = await client.call_tool("plan_operations", {"operations": [
        {"id": "a", "depends_on": ["a"]}]})
    assert bad.is_error and "cycle" in bad.content[0].text
    return answers


def test_serve_learns_over_http_and_mcp_and_survives_restart(tmp_path, sim_records):
    port = _port()
    proc = _serve(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    calls = [r for r in sim_records if r.get("kind", "call") == "call"]
    server, task = calls[0]["server"], calls[0]["task_type"]
    select = {"task_type": task, "candidates": [server, "other"], "explore": 0}
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.post("/v1/select", json=select).json()["source"] == "prior"
            assert http.post("/v1/risk", json={"server": server}).json()["source"] == "prior"
            assert http.post("/v1/telemetry", json=sim_records[:5000]).json()["accepted"] == 5000
            _wait_learned(http)
            assert http.post("/v1/select", json=select).json()["source"] == "online"
            assert http.post("/v1/risk", json={"server": server}).json()["source"] == "online"
            models = http.get("/v1/models").json()
            assert models["registry"]["state"] == "loaded"  # an empty registry: no champions
            assert all(f["champion"] is None for f in models["families"].values())

            async def over_http() -> dict:
                async with Client(f"{base}/mcp/") as client:
                    return await _call_every_tool(client, server, task, sim_records[5000:5500])

            answers = asyncio.run(over_http())
            assert answers["select_server"]["source"] == "online"
            assert answers["recommend_scaling"]["model"]["source"] == "online"
            _wait_learned(http)
            learned = http.get("/v1/models").json()["online"]["learned"]
            assert learned == 5500
    finally:
        _stop(proc, tmp_path)
    # Restart: every acknowledged record is stored and the online models resume.
    proc = _serve(tmp_path, port)
    try:
        with PredictorClient(base) as client:
            assert client.models()["online"]["learned"] == 5500
            answer = client.select(select)
            assert answer.source == "online" and len(answer.ranking) == 2
            assert client.telemetry(sim_records[5500:5600]).accepted == 100
            assert client.plan({"operations": [{"id": "a"}]}).batches[0].operations == ["a"]

        async def async_client() -> str:
            async with AsyncPredictorClient(base) as client:
                return (await client.risk({"server": server})).source

        assert asyncio.run(async_client()) == "online"
    finally:
        _stop(proc, tmp_path)


def test_mcp_over_stdio_calls_every_tool(tmp_path, sim_records):
    calls = [r for r in sim_records if r.get("kind", "call") == "call"]
    params = StdioServerParameters(
        command=PREDICTOR, args=["mcp", "--db", str(tmp_path / "p.db")], cwd=str(tmp_path),
        env={**os.environ, "PREDICTOR_LOAD_CHAMPIONS": "false",
             "PREDICTOR_STATE_DIR": str(tmp_path / "state")})

    async def run() -> dict:
        async with Client(params) as client:
            return await _call_every_tool(client, calls[0]["server"], calls[0]["task_type"],
                                          sim_records[:3000])

    answers = asyncio.run(run())
    assert answers["select_server"]["ranking"][0]["server"] in (calls[0]["server"], "other")
    assert answers["validate_workflow"]["calls"] == 1
