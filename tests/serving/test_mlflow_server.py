"""Training, the registry and serving against an MLflow tracking server on PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from predictor.serving.service import Service
from predictor.serving.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREDICTOR = os.path.join(os.path.dirname(sys.executable), "predictor")


def test_train_and_serve_through_a_tracking_server_on_postgresql(pg_url, tmp_path,
                                                                  wait_http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(tmp_path / "mlflow.log", "wb") as log:
        server = subprocess.Popen([str(ROOT / "scripts" / "mlflow-server"), pg_url, str(port),
                                   str(tmp_path / "artifacts")], stdout=log, stderr=log)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", server, tmp_path / "mlflow.log")
        subprocess.run([PREDICTOR, "simulate", "--events", "4000", "--seed", "1", "--out",
                        str(tmp_path / "sim.jsonl")], check=True, capture_output=True)
        done = subprocess.run([PREDICTOR, "train", str(tmp_path / "sim.jsonl"),
                               "--tracking-uri", uri, "--quiet"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
        service = Service(Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state",
                                   tracking_uri=uri, online_registry=False))
        service.start()
        try:
            models = service.reload()
        finally:
            service.stop(register=False)
        champions = {name for name, found in models["families"].items()
                     if found["champion"] is not None}
        assert champions == {"performance", "resources", "cache", "load", "risk"}, models
        assert models["registry"]["state"] == "loaded"
        assert models["registry"]["uri"] == uri
    finally:
        server.terminate()
        server.wait(timeout=60)
    # Runs and registered models are rows of the PostgreSQL database.
    import psycopg

    with psycopg.connect(pg_url) as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM registered_models")}
    assert {"predictor-performance", "predictor-risk"} <= names
