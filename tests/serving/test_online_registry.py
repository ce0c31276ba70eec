"""Online checkpoints in the registry: a service on a new machine resumes from them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from predictor.data.schema import parse_record
from predictor.data.store import SQLiteEventStore
from predictor.serving.app import create_app
from predictor.serving.settings import Settings

mlflow = pytest.importorskip("mlflow")


def _settings(tmp_path, db: str, state: str, uri: str) -> Settings:
    return Settings(db=tmp_path / db, state_dir=tmp_path / state, tracking_uri=uri,
                    load_champions=False)


def test_a_new_machine_resumes_online_learning_from_the_registry(tmp_path, sim_records):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = sim_records[0]["server"]
    scale = {"server": server, "current_replicas": 2, "capacity_per_replica": 10}
    with TestClient(create_app(_settings(tmp_path, "a.db", "state-1", uri))) as client:
        client.post("/v1/telemetry", json=sim_records).raise_for_status()
        assert client.app.state.service.wait_learned(60)
        before = client.post("/v1/scale", json=scale).json()
        assert client.get("/v1/models").json()["online"]["registry"] == {"state": "not used"}
    # Stopping registered the state, one version per family, tagged with its cursor.
    versions = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(
        "name = 'predictor-load-online'")
    assert [(str(v.version), v.tags["source"], v.tags["cursor"]) for v in versions] == [
        ("1", "serve", str(len(sim_records)))]

    # Same store, empty state folder: resumes at its cursor, learns nothing twice.
    with TestClient(create_app(_settings(tmp_path, "a.db", "state-2", uri))) as client:
        assert client.app.state.service.wait_learned(60)
        online = client.get("/v1/models").json()["online"]
        assert online["learned"] == online["cursor"] == len(sim_records)
        assert online["registry"]["state"] == "resumed"
        assert online["registry"]["versions"]["load"] == "1"
        after = client.post("/v1/scale", json=scale).json()
        assert (after["replicas"], after["forecast"], after["source"]) == (
            before["replicas"], before["forecast"], "online")

    # Another (empty) store: keeps what it learned, counts the new store from its start.
    with TestClient(create_app(_settings(tmp_path, "b.db", "state-3", uri))) as client:
        service = client.app.state.service
        assert service.wait_learned(60)
        assert (service.engine.learned, service.engine.cursor) == (len(sim_records), 0)
        client.post("/v1/telemetry", json=sim_records[:100]).raise_for_status()
        assert service.wait_learned(60)
        assert (service.engine.learned, service.engine.cursor) == (len(sim_records) + 100, 100)

    # A store already holding the history the checkpoint learned (train, then serve
    # over the ingested log): that history is not learned twice.
    with SQLiteEventStore(tmp_path / "c.db") as store:
        store.append([parse_record(r) for r in sim_records])
    with TestClient(create_app(_settings(tmp_path, "c.db", "state-4", uri))) as client:
        service = client.app.state.service
        assert service.wait_learned(60)
        assert (service.engine.learned, service.engine.cursor) == (
            len(sim_records) + 100, len(sim_records))
