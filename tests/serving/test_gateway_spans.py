"""The gateway's OTLP span export, and ``/v1/traces`` taking what OpenTelemetry SDKs send.

The round trip is real: the SDK's OTLP/HTTP protobuf exporter in the gateway, posting to
``predictor serve``'s ``/v1/traces`` over HTTP, which stores the attempts as call records.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from predictor.data.store import SQLiteEventStore
from predictor.serving.app import create_app
from predictor.serving.gateway import Gateway
from predictor.serving.gateway_config import GatewayConfig, Otlp
from predictor.serving.gateway_spans import SpanExport
from predictor.serving.service import Service
from predictor.serving.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FAULTY = str(ROOT / "bench" / "faulty_upstream.py")
PREDICTOR = os.path.join(os.path.dirname(sys.executable), "predictor")


def test_attempts_become_mcp_client_spans_under_one_call_span():
    memory = InMemorySpanExporter()
    export = SpanExport(Otlp(endpoint="http://unused"), exporter=memory)
    export.call("lookup", [
        {"ts": 100.0, "server": "a", "tool": "lookup", "latency_ms": 30.0, "success": False,
         "attempt": 1, "error_type": "timeout", "recovery": "fallback", "recovered": True,
         "task_type": "search"},
        {"ts": 100.05, "server": "b", "tool": "lookup", "latency_ms": 20.0, "success": True,
         "attempt": 2, "task_type": "search"}], "upstream")
    export.shutdown()
    spans = {s.name + "@" + str(s.attributes.get("server.address")): s
             for s in memory.get_finished_spans()}
    assert sorted(spans) == ["predictor.gateway lookup@None", "tools/call lookup@a",
                             "tools/call lookup@b"]
    failed, ok, parent = (spans["tools/call lookup@a"], spans["tools/call lookup@b"],
                          spans["predictor.gateway lookup@None"])
    assert failed.attributes["mcp.method.name"] == "tools/call"
    assert failed.attributes["gen_ai.tool.name"] == "lookup"
    assert failed.attributes["error.type"] == "timeout"
    assert failed.attributes["predictor.recovery"] == "fallback"
    assert failed.status.status_code.name == "ERROR" and ok.status.status_code.name == "UNSET"
    assert "error.type" not in ok.attributes and "mcp.method.name" not in parent.attributes
    assert failed.parent.span_id == parent.context.span_id == ok.parent.span_id
    assert (failed.end_time - failed.start_time) == 30_000_000
    assert parent.start_time == 100_000_000_000 and parent.end_time == 100_070_000_000


def test_traces_route_takes_protobuf_and_answers_in_kind(tmp_path):
    settings = Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state",
                        load_champions=False)
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add()
    service_name = spans.resource.attributes.add()
    service_name.key, service_name.value.string_value = "service.name", "search-mcp"
    scope = spans.scope_spans.add()
    for k, tool in enumerate(["web_search", "fetch"]):
        span = scope.spans.add()
        span.name, span.trace_id, span.span_id = f"tools/call {tool}", bytes(16), bytes([k]) * 8
        span.start_time_unix_nano = 1_767_225_600_000_000_000 + k
        span.end_time_unix_nano = span.start_time_unix_nano + 250_000_000
        attribute = span.attributes.add()
        attribute.key, attribute.value.string_value = "mcp.method.name", "tools/call"
    broken = scope.spans.add()  # a call without a start time
    broken.name = "tools/call broken"
    with TestClient(create_app(settings)) as client:
        reply = client.post("/v1/traces", content=request.SerializeToString(),
                            headers={"content-type": "application/x-protobuf"})
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-protobuf"
        answer = ExportTraceServiceResponse.FromString(reply.content)
        assert answer.partial_success.rejected_spans == 1
        assert answer.partial_success.error_message == \
            "resourceSpans[0].scopeSpans[0].spans[2] startTimeUnixNano: missing"
        records = list(client.app.state.service.store.read())
        assert [(r.server, r.tool, r.latency_ms) for r in records] == [
            ("search-mcp", "web_search", 250.0), ("search-mcp", "fetch", 250.0)]
        assert records[1].attrs["span_id"] == "0101010101010101"
        bad = client.post("/v1/traces", content=b"\xff\xff\xff not protobuf",
                          headers={"content-type": "application/x-protobuf"})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("body: not an OTLP")


def test_gateway_exports_its_attempts_to_predictor_serve(tmp_path, wait_http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collector = tmp_path / "collector"
    collector.mkdir()
    env = {**os.environ, "PREDICTOR_LOAD_CHAMPIONS": "false",
           "PREDICTOR_ONLINE_REGISTRY": "false"}
    with open(collector / "serve.log", "wb") as log:
        serve = subprocess.Popen([PREDICTOR, "serve", "--port", str(port)], cwd=collector,
                                 env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", serve, collector / "serve.log")
        config = GatewayConfig.model_validate({
            "db": str(tmp_path / "gw.db"), "cache": {"enabled": False},
            "otlp": {"endpoint": f"http://127.0.0.1:{port}/v1/traces",
                     "service_name": "gw-under-test"},
            "upstream": [{"name": "flaky", "command": [sys.executable, FAULTY, "--latency-ms",
                                                       "2", "--error-rate", "0.5", "--seed",
                                                       "3"]}]})
        service = Service(Settings(db=tmp_path / "gw.db", state_dir=tmp_path / "state",
                                   load_champions=False, online_registry=False))

        async def calls() -> None:
            await asyncio.to_thread(service.start)
            gateway = Gateway(config, service)
            await gateway.start()
            try:
                for k in range(6):
                    await gateway.execute("lookup", {"query": f"q{k}"})
            finally:
                await gateway.stop()  # flushes the spans
                await asyncio.to_thread(service.stop, False)

        asyncio.run(calls())
        with SQLiteEventStore(tmp_path / "gw.db") as store:
            recorded = [(r.server, r.tool, r.success, r.error_type) for r in store.read()]
        for _ in range(100):
            with SQLiteEventStore(collector / "predictor.db") as store:
                exported = [(r.server, r.tool, r.success, r.error_type) for r in store.read()]
            if len(exported) >= len(recorded):
                break
            time.sleep(0.1)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    assert len(recorded) >= 6 and any(not ok for _, _, ok, _ in recorded)
    # Every attempt the gateway recorded arrived as one call of the same upstream and outcome.
    assert sorted(exported, key=str) == sorted(recorded, key=str)
