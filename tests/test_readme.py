"""The README's snippets run as written (the registry ones in tests/training/test_train.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx


def test_every_python_snippet_is_covered(readme):
    snippets = readme()
    assert len(snippets) == 3
    assert sum("PredictorClient" in s for s in snippets) == 1
    assert sum("mlflow.pyfunc.load_model" in s for s in snippets) == 2


def test_the_client_snippet_runs_against_a_service(tmp_path, readme):
    (snippet,) = [s for s in readme() if "PredictorClient" in s]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = shutil.which("predictor") or os.path.join(os.path.dirname(sys.executable), "predictor")
    env = dict(os.environ, PREDICTOR_DB=str(tmp_path / "p.db"),
               PREDICTOR_STATE_DIR=str(tmp_path / "state"), PREDICTOR_LOAD_CHAMPIONS="false",
               PREDICTOR_ONLINE_REGISTRY="false")
    server = subprocess.Popen([exe, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        code = snippet.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        code += "\nprint(best.server, best.source)\n"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        server_name, source = done.stdout.split()
        assert server_name in ("brave", "exa") and source in ("prior", "online")
    finally:
        server.terminate()
        server.wait(timeout=60)
