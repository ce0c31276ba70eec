"""deploy/local: the compose topology as local processes (MLflow on PostgreSQL, a learner
and a standby, two replicas, nginx in front), driven through the load balancer."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_local_deployment_learns_once_and_answers_everywhere(pg_url, tmp_path,
                                                                 sim_records):
    if shutil.which("nginx") is None:
        pytest.fail("nginx not installed (scripts/test installs it)")
    base, name = pg_url.rsplit("/", 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PG_BASE": base, "DB_NAME": name, "PORT": str(port),
           "WORK": str(tmp_path / "deploy"), "SYNC": "1", "PREDICTOR_LOG_LEVEL": "WARNING"}
    with open(tmp_path / "deploy.out", "wb") as out:
        proc = subprocess.Popen([str(ROOT / "deploy" / "local")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    lb = f"http://127.0.0.1:{port}"
    try:
        for _ in range(480):
            text = (tmp_path / "deploy.out").read_text()
            if "ready:" in text or proc.poll() is not None:
                break
            time.sleep(0.25)
        assert "ready:" in text, text
        replicas = [int(p) for p in re.search(r"replicas :(\d+) :(\d+)", text).groups()]
        calls = [r for r in sim_records if r.get("kind", "call") == "call"][:2000]
        reply = httpx.post(f"{lb}/v1/telemetry", content=orjson.dumps(calls), timeout=60,
                           headers={"content-type": "application/json"})
        assert reply.json()["accepted"] == 2000
        # Learned once (by the elected learner), loaded by both replicas.
        deadline = time.monotonic() + 60
        states = []
        while time.monotonic() < deadline:
            states = [httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=5).json()["state"]
                      for p in replicas]
            if all(s and s["cursor"] == 2000 for s in states):
                break
            time.sleep(0.2)
        assert [s["learned"] for s in states] == [2000, 2000]
        assert states[0]["version"] == states[1]["version"]
        task = next(r["task_type"] for r in calls if r.get("task_type"))
        candidates = sorted({r["server"] for r in calls if r.get("task_type") == task})
        for _ in range(4):  # whichever replica the balancer picks
            answer = httpx.post(f"{lb}/v1/select", json={"task_type": task,
                                                         "candidates": candidates}).json()
            assert answer["source"] == "online"
        assert httpx.get(f"{lb}/readyz").json()["role"] == "replica"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=90)
    # Everything it started is gone with it.
    for p in replicas:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2)
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}_mlflow WITH (FORCE)")
