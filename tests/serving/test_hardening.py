"""Hostile input gets a 4xx naming the field and costs nothing accepted; first contact works."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import orjson
import pytest
from fastapi.testclient import TestClient

from predictor import __version__
from predictor.engine import Engine
from predictor.serving.app import create_app
from predictor.serving.settings import Settings


def _settings(tmp_path, **overrides) -> Settings:
    return Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state", load_champions=False,
                    **overrides)


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(_settings(tmp_path))) as test_client:
        yield test_client


HOSTILE = {
    "scale tiny capacity": ("/v1/scale", b'{"server":"a","current_replicas":1,'
                                         b'"capacity_per_replica":5e-324}',
                            "capacity_per_replica"),
    "scale zero utilization": ("/v1/scale", b'{"server":"a","current_replicas":1,'
                                            b'"capacity_per_replica":10,'
                                            b'"target_utilization":1e-300}',
                               "target_utilization"),
    "invalid utf-8": ("/v1/select", b"\xff\xfe", "body"),
    "NaN explore": ("/v1/select", b'{"task_type":"s","candidates":["a"],"explore":NaN}',
                    "explore"),
    "Infinity weight": ("/v1/select", b'{"task_type":"s","candidates":["a","b"],'
                                      b'"weights":{"performance":Infinity}}',
                        "weights.performance"),
    "unknown factor": ("/v1/select", b'{"task_type":"s","candidates":["a"],'
                                     b'"weights":{"luck":1}}', "weights.luck"),
    "false as a number": ("/v1/select", b'{"task_type":"s","candidates":["a"],"explore":false}',
                          "explore"),
    "text as an integer": ("/v1/plan", b'{"operations":[],"max_batch":"3"}', "max_batch"),
    "preload tiny key size": ("/v1/preload", b'{"recent":["k1"],"key_size_mb":1e-320}',
                              "key_size_mb"),
    "recover huge attempt": ("/v1/recover", b'{"error_type":"timeout","server":"a",'
                                            b'"attempt":908831145461796480}', "attempt"),
    "huge recent load": ("/v1/scale", b'{"server":"a","current_replicas":1,'
                                      b'"capacity_per_replica":1,"recent_load":[1e308]}',
                         "recent_load.0"),
    "name too long": ("/v1/risk", b'{"server":"' + b"s" * 600 + b'"}', "server"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_gets_a_422_naming_the_field(client, case):
    path, body, field = HOSTILE[case]
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert field in [error["field"] for error in reply.json()["detail"]]
    # The service keeps answering.
    assert client.post("/v1/select", json={"task_type": "s", "candidates": ["a"]}).status_code \
        == 200


def test_an_integral_float_is_an_integer(client):
    reply = client.post("/v1/plan", json={"operations": [{"id": "a"}], "max_batch": 3.0})
    assert reply.status_code == 200, reply.text


def test_an_unstorable_unknown_field_costs_only_its_record(client, sim_records):
    deep: dict = {"x": 1}
    for _ in range(300):
        deep = {"x": deep}
    batch = [dict(sim_records[0], deep=deep), sim_records[1], sim_records[2]]
    reply = client.post("/v1/telemetry", content=json.dumps(batch),
                        headers={"content-type": "application/json"})
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert (report["accepted"], report["rejected"]) == (2, 1)
    assert report["errors"][0]["field"] == "deep"


OTLP_HOSTILE = [
    {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"name": "MCP send tools/call x", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [{"key": "server.address", "value": {"intValue": None}}]}]}]}]},
    {"resourceSpans": [{"resource": "nope", "scopeSpans": "nope"}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"name": "MCP send tools/call x", "startTimeUnixNano": "1",
         "endTimeUnixNano": "1" + "0" * 320, "status": "bad",
         "attributes": [{"key": "server.address", "value": {"stringValue": "s"}}]}]}]}]},
]


@pytest.mark.parametrize("body", OTLP_HOSTILE)
def test_malformed_otlp_is_refused_not_a_server_error(client, body):
    reply = client.post("/v1/traces", json=body)
    assert reply.status_code in (200, 422), reply.text
    assert reply.json()["accepted"] == 0


def test_a_record_from_the_future_is_rejected_by_name(client, sim_records):
    future = dict(sim_records[0], ts=time.time() + 10 * 86_400)
    reply = client.post("/v1/telemetry", json=[future, sim_records[1]])
    report = reply.json()
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["field"] == "ts"
    service = client.app.state.service
    assert service.wait_learned(30)
    assert service.engine.clock < time.time() + 300


def test_clamped_records_keep_the_time_they_claimed(tmp_path, sim_records):
    settings = _settings(tmp_path, future_policy="clamp")
    claimed = time.time() + 10 * 86_400
    with TestClient(create_app(settings)) as client:
        reply = client.post("/v1/telemetry", json=[dict(sim_records[0], ts=claimed)])
        assert reply.json()["accepted"] == 1
        service = client.app.state.service
        assert service.wait_learned(30)
        assert service.engine.clock < time.time() + 300
        (record,) = [rec for _, rec in service.store.read_since(0, 10)]
    assert record.epoch <= time.time()
    assert record.attrs["claimed_ts"].startswith(time.strftime("%Y", time.gmtime(claimed)))


def test_mcp_answers_at_its_path_without_a_redirect(client):
    reply = client.post(
        "http://127.0.0.1:8000/mcp", headers={"accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}},
        follow_redirects=False)
    assert reply.status_code == 200, reply.text
    assert "predictor" in reply.text


def test_openapi_documents_what_is_accepted_and_refused(client):
    schema = client.get("/openapi.json").json()
    text = json.dumps(schema)
    # Bounds appear as JSON Schema keywords, never as pydantic's raw names.
    assert not re.search(r'"(ge|le|gt|lt)": ', text)
    for path in ("/v1/select", "/v1/scale", "/v1/recover"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"413", "422"} <= set(responses)
    assert set(schema["paths"]["/v1/telemetry"]["post"]["responses"]) >= {"400", "413", "422",
                                                                          "429"}
    assert "text/plain" in schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    select = schema["components"]["schemas"]["SelectRequest"]["properties"]
    assert select["explore"]["maximum"] == 1.0


def _predictor() -> str:
    exe = shutil.which("predictor") or os.path.join(os.path.dirname(sys.executable), "predictor")
    assert os.path.exists(exe)
    return exe


def test_version_and_python_dash_m():
    done = subprocess.run([_predictor(), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == f"predictor {__version__}"
    done = subprocess.run([sys.executable, "-m", "predictor.serving.cli", "serve", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--port" in done.stdout


def test_ingest_fails_when_nothing_is_accepted_and_says_what_it_expects(tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_text('{"time": 1, "host": "a"}\n{"when": 2}\n')
    done = subprocess.run([_predictor(), "ingest", str(log), "--db", str(tmp_path / "p.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no record accepted" in done.stderr and "latency_ms" in done.stderr


def _rpc(proc: subprocess.Popen, message: dict) -> None:
    proc.stdin.write(orjson.dumps(message) + b"\n")
    proc.stdin.flush()


def _reply(proc: subprocess.Popen, wanted: int) -> dict:
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode()[-2000:]
        message = orjson.loads(line)
        if message.get("id") == wanted:
            return message


def test_predictor_mcp_checkpoints_what_it_learned_on_sigterm(tmp_path, sim_records):
    env = dict(os.environ, PREDICTOR_DB=str(tmp_path / "p.db"),
               PREDICTOR_STATE_DIR=str(tmp_path / "state"), PREDICTOR_LOAD_CHAMPIONS="false")
    proc = subprocess.Popen([_predictor(), "mcp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                               "clientInfo": {"name": "test", "version": "1"}}})
        _reply(proc, 1)
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "report_telemetry",
                               "arguments": {"records": sim_records[:500]}}})
        answer = _reply(proc, 2)
        assert answer["result"]["structuredContent"]["accepted"] == 500
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    latest = (tmp_path / "state" / "LATEST").read_text().strip()
    engine = Engine.load(tmp_path / "state" / latest)
    assert engine.cursor == 500


def test_latest_never_leaves_the_state_folder(tmp_path, sim_records):
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/telemetry", json=sim_records[:300]).raise_for_status()
        assert client.app.state.service.wait_learned(30)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    checkpoint = next((tmp_path / "state").glob("engine-*.joblib"))
    for suffix in (".joblib", ".json"):  # a signed checkpoint, but outside the folder
        (outside / f"engine-1{suffix}").write_bytes(checkpoint.with_suffix(suffix).read_bytes())
    (tmp_path / "state" / "LATEST").write_text("../elsewhere/engine-1")
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        assert service.wait_learned(30)
        # Refused: relearned from the store instead, every record once.
        assert service.engine.cursor == 300 and service.engine.learned == 300


def test_a_retried_batch_is_stored_once_and_answered_the_same(client, sim_records):
    batch = [*sim_records[:20], {"server": "s", "tool": "t"}]
    headers = {"Idempotency-Key": "batch-0001"}
    first = client.post("/v1/telemetry", json=batch, headers=headers)
    again = client.post("/v1/telemetry", json=batch, headers=headers)
    assert first.status_code == again.status_code == 200
    assert (first.json()["accepted"], first.json()["replayed"]) == (20, False)
    assert again.json() == {**first.json(), "replayed": True}
    # The same id in the body, and a fresh id, behave alike.
    body = {"batch_id": "batch-0002", "records": sim_records[20:30]}
    assert client.post("/v1/telemetry", json=body).json()["accepted"] == 10
    assert client.post("/v1/telemetry", json=body).json()["replayed"] is True
    service = client.app.state.service
    assert service.wait_learned(30)
    assert service.store.count() == 30
    assert "predictor_ingest_replayed_total 2.0" in client.get("/metrics").text


def test_a_batch_id_is_bounded(client, sim_records):
    reply = client.post("/v1/telemetry", json=sim_records[:2],
                        headers={"Idempotency-Key": "x" * 201})
    assert reply.status_code == 422 and "Idempotency-Key" in reply.json()["detail"]


def test_batch_keys_survive_a_restart_and_expire(tmp_path, sim_records):
    from predictor.data.schema import parse_record
    from predictor.data.store import DuplicateBatch, SQLiteEventStore

    records = [parse_record(r) for r in sim_records[:3]]
    with SQLiteEventStore(tmp_path / "e.db") as store:
        store.append_batch(records, batch_key="k", reply=b"first")
    with SQLiteEventStore(tmp_path / "e.db") as store:
        with pytest.raises(DuplicateBatch) as seen:
            store.append_batch(records, batch_key="k", reply=b"second")
        assert seen.value.reply == b"first" and store.count() == 3
    with SQLiteEventStore(tmp_path / "e.db", batch_key_retention_s=0.0) as store:
        time.sleep(0.01)
        assert store.append_batch(records, batch_key="k") == (4, 6)  # forgotten: stored again


def test_auth_all_guards_the_decisions_too(tmp_path):
    settings = _settings(tmp_path, api_token="s3cret", auth="all")
    with TestClient(create_app(settings)) as client:
        ask = {"task_type": "s", "candidates": ["a"]}
        assert client.post("/v1/select", json=ask).status_code == 401
        assert client.get("/v1/models").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/select", json=ask, headers=good).status_code == 200
        assert client.get("/healthz").status_code == 200
    with TestClient(create_app(_settings(tmp_path, api_token="s3cret"))) as client:
        assert client.post("/v1/select", json=ask).status_code == 200  # writes only


def test_nothing_is_created_when_start_fails(tmp_path):
    import socket

    done = subprocess.run([_predictor(), "ingest", str(tmp_path / "missing.jsonl"),
                           "--db", str(tmp_path / "p.db")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and not (tmp_path / "p.db").exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, PREDICTOR_DB=str(tmp_path / "s.db"),
                   PREDICTOR_STATE_DIR=str(tmp_path / "state"))
        done = subprocess.run([_predictor(), "serve", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot listen" in done.stderr
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "state").exists()


def _resume_elsewhere_learned(tmp_path, sim_records, interrupt: bool, monkeypatch) -> int:
    """Records learned after a first catch-up over a store that holds what a checkpoint
    learned elsewhere (the first 4,000 records), interrupted once if ``interrupt``."""
    import predictor.serving.service as service_module
    from predictor.data.schema import parse_record
    from predictor.data.store import SQLiteEventStore
    from predictor.serving.service import Service

    records = [parse_record(r) for r in sim_records]
    elsewhere = Engine()
    elsewhere.learn(records[:4000])
    (tmp_path / "state").mkdir(parents=True)
    elsewhere.save(tmp_path / "state" / "engine-0")
    (tmp_path / "state" / "LATEST").write_text("engine-0")
    with SQLiteEventStore(tmp_path / "p.db") as store:
        store.append_batch(records)
    settings = _settings(tmp_path)
    if interrupt:
        monkeypatch.setattr(service_module, "_CATCH_UP_CHUNK", 500)
        first = Service(settings)
        original = first._learn

        def learn_then_stop(*args, **kwargs):  # the service is stopped mid catch-up
            original(*args, **kwargs)
            first._stop.set()

        first._learn = learn_then_stop
        first.start()
        first.stop(register=False)
        assert first.engine.cursor < len(records)  # it did stop part way
        assert first.engine.taken_as_learned is not None
        monkeypatch.setattr(first, "_learn", original)
    service = Service(settings)
    service.start()
    try:
        assert service.wait_learned(60)
        assert service.engine.cursor == len(records)
        return service.engine.learned
    finally:
        service.stop(register=False)


def test_an_interrupted_first_catch_up_never_learns_a_record_twice(tmp_path, sim_records,
                                                                  monkeypatch):
    whole = _resume_elsewhere_learned(tmp_path / "a", sim_records, False, monkeypatch)
    interrupted = _resume_elsewhere_learned(tmp_path / "b", sim_records, True, monkeypatch)
    assert 4000 < whole < len(sim_records) + 4000
    assert interrupted == whole


def test_the_preload_memory_bound_is_a_setting(tmp_path, sim_records):
    with TestClient(create_app(_settings(tmp_path, preload_max_keys=1_000))) as client:
        model = client.app.state.service.engine.plugin("preload").model
        assert model.max_keys == 1_000
        records = [dict(r, cache_key=f"key-{i}") for i, r in enumerate(sim_records)
                   if r.get("kind", "call") == "call"][:3_000]
        client.post("/v1/telemetry", json=records).raise_for_status()
        assert client.app.state.service.wait_learned(30)
        assert len(model._seen) <= 1_000
