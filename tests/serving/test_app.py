"""The HTTP face in-process (FastAPI TestClient): routes, ingestion, errors, security, restart."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from predictor.serving.app import create_app
from predictor.serving.settings import Settings


def _settings(tmp_path, **overrides) -> Settings:
    return Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state", load_champions=False,
                    **overrides)


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(_settings(tmp_path))) as test_client:
        yield test_client


def _learned(client: TestClient) -> None:
    assert client.app.state.service.wait_learned(30)


def _ready(client: TestClient, timeout_s: float = 30.0):
    """``/readyz`` once it answers 200, or its last answer after ``timeout_s``: a service
    is not ready until its online models have caught up with the store, which a loaded
    machine makes take a moment after start."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = client.get("/readyz")
        if ready.status_code == 200 or time.monotonic() > deadline:
            return ready
        time.sleep(0.05)


def test_ingest_keeps_valid_records_and_names_bad_ones(client, sim_records):
    batch = [*sim_records[:50], {"ts": 1, "server": "s", "tool": "t", "latency_ms": -1},
             {"server": "s", "tool": "t"}]
    reply = client.post("/v1/telemetry", json=batch)
    assert reply.status_code == 200
    body = reply.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (52, 50, 2)
    assert body["errors"] == [
        {"index": 50, "field": "latency_ms", "reason": body["errors"][0]["reason"]},
        {"index": 51, "field": "ts", "reason": "Field required"}]
    assert client.app.state.service.store.count() == 50
    assert client.post("/v1/telemetry", json=[{"ts": "x"}]).status_code == 422
    assert client.post("/v1/telemetry", json={"not": "a list"}).status_code == 422
    assert client.post("/v1/telemetry", content=b"{nope",
                       headers={"content-type": "application/json"}).status_code == 400
    assert client.app.state.service.store.count() == 50


def test_select_moves_from_prior_to_online(client, sim_records):
    calls = [r for r in sim_records if r.get("kind", "call") == "call"]
    servers = sorted({r["server"] for r in calls})[:10]
    task = next(r["task_type"] for r in calls if r.get("task_type"))
    request = {"task_type": task, "candidates": servers, "explore": 0}
    before = client.post("/v1/select", json=request).json()
    assert before["source"] == "prior" and before["model_version"] == "online-0"
    client.post("/v1/telemetry", json=sim_records).raise_for_status()
    _learned(client)
    after = client.post("/v1/select", json=request).json()
    assert after["source"] == "online"
    assert [r["server"] for r in after["ranking"]] != servers or after["ranking"][0]["score"] > 0
    assert set(after["ranking"][0]["factors"]) == {"capability", "performance", "cost",
                                                   "reliability", "availability"}
    assert client.post("/v1/select", json={"task_type": "x", "candidates": []}).status_code == 422


def test_every_decision_route_answers(client, sim_records):
    client.post("/v1/telemetry", json=sim_records).raise_for_status()
    _learned(client)
    calls = [r for r in sim_records if r.get("kind", "call") == "call"]
    server, tool = calls[0]["server"], calls[0]["tool"]
    keys = [r["cache_key"] for r in calls if r.get("cache_key")][-5:]
    answers = {
        "/v1/allocate": {"phases": [{"phase": "p", "tool": tool, "calls": 3}]},
        "/v1/allocate/adjust": {"phases": [{"phase": "p", "tool": tool}],
                                "actual": {"p": {"duration_ms": 10.0}}},
        "/v1/preload": {"recent": keys, "budget_keys": 3},
        "/v1/scale": {"server": server, "current_replicas": 2, "capacity_per_replica": 30},
        "/v1/risk": {"server": server},
        "/v1/recover": {"error_type": "invalid_params", "server": server},
        "/v1/context/reduce": {"query": "cache eviction",
                               "items": [{"id": "a", "text": "cache eviction policies"},
                                         {"id": "b", "text": "cooking pasta"}]},
        "/v1/plan": {"operations": [{"id": "a"}, {"id": "b", "depends_on": ["a"]}]},
        "/v1/validate": {"calls": calls[:20], "min_success_rate": 0.5},
    }
    for path, body in answers.items():
        reply = client.post(path, json=body)
        assert reply.status_code == 200, (path, reply.text)
    assert client.post("/v1/recover", json=answers["/v1/recover"]).json()["strategy"] != "retry"
    assert client.post("/v1/scale", json=answers["/v1/scale"]).json()["model"]["source"] == "online"
    plan = client.post("/v1/plan", json=answers["/v1/plan"]).json()
    assert [b["operations"] for b in plan["batches"]] == [["a"], ["b"]]
    kept = client.post("/v1/context/reduce", json=answers["/v1/context/reduce"]).json()["kept"]
    assert [k["id"] for k in kept] == ["a"]
    findings = client.get("/v1/bottlenecks", params={"latency_p95_ms": 1}).json()
    assert findings["findings"] and findings["findings"][0]["metric"] == "latency_p95_ms"
    cycle = {"operations": [{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}]}
    assert client.post("/v1/plan", json=cycle).status_code == 422
    models = client.get("/v1/models").json()
    assert models["online"]["learned"] == len(sim_records)
    assert models["families"]["risk"]["source"] == "online"


def test_operations_routes(client, sim_records):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = _ready(client)
    assert ready.status_code == 200 and ready.json()["checks"]["store"] is True
    client.post("/v1/telemetry", json=sim_records[:100]).raise_for_status()
    client.post("/v1/select", json={"task_type": "search", "candidates": ["a"]})
    text = client.get("/metrics").text
    assert 'predictor_records_ingested_total{via="telemetry"} 100.0' in text
    assert 'predictor_decisions_total{decision="select",source="prior"} 1.0' in text
    assert 'route="/v1/select"' in text
    spec = client.get("/openapi.json").json()
    select_body = spec["paths"]["/v1/select"]["post"]["requestBody"]["content"]
    assert select_body["application/json"]["schema"]["$ref"].endswith("/SelectRequest")
    assert "candidates" in spec["components"]["schemas"]["SelectRequest"]["properties"]


def test_otlp_spans_become_calls(client):
    span = {"name": "MCP send tools/call web_search", "traceId": "t", "spanId": "s",
            "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225600400000000",
            "attributes": [{"key": "server.address", "value": {"stringValue": "brave"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}],
            "status": {"code": 2}}
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        span, {"name": "GET /", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
        {**span, "endTimeUnixNano": "5"}]}]}]}
    reply = client.post("/v1/traces", json=body).json()
    assert (reply["accepted"], reply["skipped"], reply["rejected"]) == (1, 1, 1)
    assert reply["errors"][0]["field"] == "endTimeUnixNano"
    stored = next(iter(client.app.state.service.store.read()))
    assert (stored.server, stored.tool, stored.latency_ms, stored.success, stored.error_type,
            stored.input_tokens) == ("brave", "web_search", 400.0, False, "error", 12)


def test_full_queue_refuses_before_storing(tmp_path, sim_records):
    with TestClient(create_app(_settings(tmp_path, queue_max_records=60))) as client:
        service = client.app.state.service
        with service.engine._lock:  # hold the learner back
            assert client.post("/v1/telemetry", json=sim_records[:50]).status_code == 200
            reply = client.post("/v1/telemetry", json=sim_records[50:100])
            assert reply.status_code == 429
            assert int(reply.headers["retry-after"]) >= 1
            assert service.store.count() == 50
        assert service.wait_learned(30)
        assert client.post("/v1/telemetry", json=sim_records[50:100]).status_code == 200
        assert service.store.count() == 100


def test_token_and_body_limit(tmp_path, sim_records):
    settings = _settings(tmp_path, api_token="s3cret", max_body_bytes=4096)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/telemetry", json=sim_records[:5]).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/v1/telemetry", json=sim_records[:5], headers=wrong).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/telemetry", json=sim_records[:5], headers=good).status_code == 200
        assert client.post("/v1/models/reload").status_code == 401
        assert client.post("/mcp/", json={}).status_code == 401
        # Decisions stay open; oversized bodies are refused before they are read.
        assert client.post("/v1/select", json={"task_type": "t", "candidates": ["a"]}).is_success
        big = client.post("/v1/telemetry", json=sim_records[:200], headers=good)
        assert big.status_code == 413


def test_restart_resumes_learning_without_loss(tmp_path, sim_records):
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/telemetry", json=sim_records[:3000]).raise_for_status()
        _learned(client)
    # Clean stop: checkpointed; then records arrive that a crash will leave unlearned.
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        assert service.engine.learned == 3000 and service.engine.cursor == 3000
        client.post("/v1/telemetry", json=sim_records[3000:]).raise_for_status()
        _learned(client)
        learned = service.engine.learned
        service._stop.set()  # simulate a crash: no final checkpoint
        service.checkpoint = lambda: None
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        _learned(client)
        assert service.store.count() == len(sim_records)
        assert service.engine.learned == learned == len(sim_records)


def test_settings_from_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "predictor.toml"
    config.write_text('port = 9100\nqueue_max_records = 5\n[capabilities]\nexa = ["search"]\n')
    monkeypatch.setenv("PREDICTOR_CONFIG", str(config))
    monkeypatch.setenv("PREDICTOR_QUEUE_MAX_RECORDS", "7")
    settings = Settings()
    assert (settings.port, settings.queue_max_records, settings.host) == (9100, 7, "127.0.0.1")
    assert settings.capabilities == {"exa": ["search"]}
    assert Settings(port=9200).port == 9200


def test_the_json_text_path_answers_and_stores_as_parsed_ingestion(tmp_path, sim_records,
                                                                     telemetry_variants):
    # ingest_json (the route's path) against ingest of the parsed body: same report, same
    # records stored, whatever mix of plain, coerced, unknown-field and invalid records.
    import re

    import orjson

    from predictor.serving.service import Service

    valid_json = [line for line in telemetry_variants if _is_json(line)]
    body = b"[" + b",".join([*valid_json, *map(orjson.dumps, sim_records[:300])]) + b"]"
    reports, stored = [], []
    for name, ingest in (("text", "ingest_json"), ("parsed", "ingest")):
        service = Service(_settings(tmp_path / name))
        service.start()
        try:
            given = body if ingest == "ingest_json" else orjson.loads(body)
            result = getattr(service, ingest)(given, "batch-1")
            # A record too far in the future is named with how far, from each call's clock.
            errors = [{**e, "reason": re.sub(r"^\d+ s in the future", "N s in the future",
                                             e["reason"])} for e in result.errors]
            reports.append((result.received, result.accepted, result.rejected, errors))
            stored.append([orjson.dumps(r.model_dump(mode="json")) for r in service.store.read()])
            again = getattr(service, ingest)(given, "batch-1")
            assert again.replayed and again.accepted == result.accepted
        finally:
            service.stop()
    assert reports[0] == reports[1]
    assert reports[0][1] > 400 and reports[0][2] > 400
    assert stored[0] == stored[1]


def _is_json(line: bytes) -> bool:
    import orjson

    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def test_a_body_that_is_not_json_is_a_400_on_either_path(client):
    for body in (b'[{"ts": 1, "server": "a", "tool": "t"}, {"ts": NaN}]', b"[1, 2", b"{nope",
                 b'[{"ts":"2026-01-05T00:00:00Z","server":"a\\ud800","tool":"t"}]'):
        reply = client.post("/v1/telemetry", content=body,
                            headers={"content-type": "application/json"})
        assert reply.status_code == 400, body
        assert reply.json()["detail"].startswith("body is not JSON")
    assert client.app.state.service.store.count() == 0
