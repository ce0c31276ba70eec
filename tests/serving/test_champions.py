"""Registry champions in the service: none at start, picked up by reload, answering risk."""

from __future__ import annotations

import time

import orjson
from fastapi.testclient import TestClient

from predictor.serving.app import create_app
from predictor.serving.settings import Settings
from predictor.training.train import train


def _wait_registry(client: TestClient) -> dict:
    for _ in range(600):
        models = client.get("/v1/models").json()
        if models["registry"]["state"] != "not loaded":
            return models
        time.sleep(0.05)
    raise AssertionError("the registry was never read")


def test_reload_swaps_in_a_new_risk_champion(tmp_path, sim_records):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state", tracking_uri=uri)
    with TestClient(create_app(settings)) as client:
        models = _wait_registry(client)
        assert models["registry"]["state"] == "loaded"
        assert models["families"]["risk"] == {
            "decision": "risk", "decisions": ["risk", "recover", "cooldown"],
            "source": "prior", "variant": "online", "version": "0", "champion": None,
            "metrics": {}, "trained_at": None, "why_online": "no batch champion is registered"}
        client.post("/v1/telemetry", json=sim_records).raise_for_status()
        assert client.app.state.service.wait_learned(30)
        server = sim_records[0]["server"]
        assert client.post("/v1/risk", json={"server": server}).json()["source"] == "online"

        log = tmp_path / "sim.jsonl"
        log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in sim_records))
        train([log], tracking_uri=uri, experiment="serving", families=["risk"])

        reloaded = client.post("/v1/models/reload").json()["families"]
        risk = reloaded["risk"]
        assert (risk["source"], risk["version"], risk["champion"]["version"]) == ("batch", "1", "1")
        assert risk["trained_at"] and risk["metrics"]
        assert reloaded["performance"]["champion"] is None
        answer = client.post("/v1/risk", json={"server": server}).json()
        assert answer["source"] == "batch"
        assert answer["model"] == {"family": "risk", "variant": "batch", "version": "1",
                                   "source": "batch"}
        assert 0.0 <= answer["failure_probability"] <= 1.0
        assert 'predictor_model_version{family="risk",variant="batch"} 1.0' in client.get(
            "/metrics").text

        # A newer champion whose artifact was tampered with is refused; v1 keeps serving.
        train([log], tracking_uri=uri, experiment="serving", families=["risk"],
              promote="always", online=False)
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(uri)
        source = MlflowClient(tracking_uri=uri).get_model_version_download_uri(
            "predictor-risk", "2")
        from pathlib import Path
        from urllib.parse import urlparse

        stored = Path(urlparse(source).path) if source.startswith("file:") else Path(source)
        bundle = next(stored.rglob("*.joblib"))
        bundle.write_bytes(bundle.read_bytes() + b"tampered")
        reloaded = client.post("/v1/models/reload").json()["families"]["risk"]
        assert reloaded["version"] == "1" and reloaded["source"] == "batch"
        assert reloaded["champion"]["refused"]["version"] == "2"
        assert "sha256" in reloaded["champion"]["refused"]["why"]
        assert client.post("/v1/risk", json={"server": server}).json()["model"]["version"] == "1"
