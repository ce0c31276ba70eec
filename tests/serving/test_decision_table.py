"""A decision added through the table alone reaches every face."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from mcp import Client
from pydantic import BaseModel, Field

from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord
from predictor.decisions import DECISIONS, Decision
from predictor.engine import Engine
from predictor.plugin import DecisionPlugin
from predictor.serving.app import create_app
from predictor.serving.client import with_decisions
from predictor.serving.mcp_server import build_mcp_server
from predictor.serving.service import Service
from predictor.serving.settings import Settings


class SlowestRequest(BaseModel):
    servers: list[str] = Field(min_length=1, max_length=100, description="servers to compare")


class SlowestResponse(BaseModel):
    server: str
    source: str
    model: Provenance


class SlowestServer(DecisionPlugin):
    """Throwaway decision: the server with the highest latency seen."""

    family = "performance"

    def __init__(self) -> None:
        super().__init__()
        self.worst: dict[str, float] = {}

    def learn_call(self, record: CallRecord) -> None:
        self.observations += 1
        if record.latency_ms is not None:
            self.worst[record.server] = max(self.worst.get(record.server, 0.0),
                                            record.latency_ms)

    def slowest(self, req: SlowestRequest) -> SlowestResponse:
        server = max(req.servers, key=lambda s: self.worst.get(s, 0.0))
        provenance = self.provenance()
        return SlowestResponse(server=server, source=provenance.source, model=provenance)


ROW = Decision("slowest", f"{__name__}:SlowestServer", "slowest", "performance",
               "/v1/slowest", "slowest_server", SlowestRequest, SlowestResponse,
               "The slowest of these servers so far.", inline=True)
TABLE = (*DECISIONS, ROW)


def test_a_decision_added_to_the_table_is_a_route_a_tool_and_a_client_method(
        tmp_path) -> None:
    settings = Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state",
                        load_champions=False, online_registry=False)
    service = Service(settings, decisions=TABLE)
    app = create_app(settings, service, decisions=TABLE)
    with TestClient(app, base_url="http://127.0.0.1:8000") as http:
        accepted = http.post("/v1/telemetry", json=[
            {"ts": 1.0, "server": "a", "tool": "t", "latency_ms": 50.0},
            {"ts": 2.0, "server": "b", "tool": "t", "latency_ms": 900.0}]).json()["accepted"]
        assert accepted == 2 and service.wait_learned()
        answer = http.post("/v1/slowest", json={"servers": ["a", "b"]}).json()
        assert answer["server"] == "b" and answer["source"] == "online"
        assert "/v1/slowest" in http.get("/openapi.json").json()["paths"]
        assert http.post("/v1/slowest", json={"servers": []}).status_code == 422
        client_class = with_decisions(TABLE)
        client = client_class.__new__(client_class)
        client._http = http  # the client's methods over the in-process app
        assert client.slowest({"servers": ["a", "b"]}).server == "b"

    async def tools() -> tuple[list[str], dict]:
        async with Client(build_mcp_server(service, TABLE)) as mcp:
            listed = [t.name for t in (await mcp.list_tools()).tools]
            result = await mcp.call_tool("slowest_server", {"servers": ["a", "b"]})
            return listed, result.structured_content

    listed, result = asyncio.run(tools())
    assert "slowest_server" in listed and result["server"] == "b"


def test_an_engine_checkpoints_an_added_decision_with_its_family() -> None:
    engine = Engine(decisions=TABLE)
    assert f"{__name__}:SlowestServer" in engine.part("performance")
    assert engine.answer("slowest", SlowestRequest(servers=["x"])).source == "prior"
