"""A service that learns loads its compiled loops before it serves; a replica does not.

The first records a process learns load numba and its compiled loops, holding
the interpreter (a decision asked meanwhile waited 205 to 229 ms in
``bench/first_ingest.py``): the app does it at start. Run in fresh processes:
this one may have loaded them in other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_STARTED = """
import json, sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from predictor.models import risk
from predictor.models.kernels import Kernel
from predictor.serving.app import create_app
from predictor.serving.settings import Settings

def loaded():
    return sorted(name for name, value in vars(risk).items()
                  if not isinstance(value, Kernel) and hasattr(value, "signatures")
                  and value.signatures)

folder = Path(tempfile.mkdtemp())
app = create_app(Settings(db=folder / "p.db", role=sys.argv[1], state_dir=folder / "state",
                          load_champions=False, online_registry=False))
before = loaded()
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    print(json.dumps({"before": before, "serving": loaded()}))
"""


@pytest.mark.parametrize("role, loads", [("all", True), ("replica", False)])
def test_the_compiled_loops_load_before_serving_where_the_service_learns(role, loads) -> None:
    done = subprocess.run([sys.executable, "-c", _STARTED, role], capture_output=True,
                          text=True, check=True, timeout=300)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == []
    assert bool(seen["serving"]) is loads
