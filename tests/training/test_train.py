from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

from predictor.data.simulator import Simulator

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from predictor.training.online import load_online  # noqa: E402
from predictor.training.train import train  # noqa: E402


def _write(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    records = list(Simulator(seed=6).records(14_000))
    log = _write(tmp / "sim.jsonl", records)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    first = train([log], tracking_uri=uri, experiment="t")
    return tmp, records, uri, first


def test_first_training_registers_and_promotes_every_family(trained):
    _, _, uri, first = trained
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    assert {o.family for o in first.families} == {"performance", "resources", "cache", "load",
                                                  "risk"}
    for outcome in first.families:
        assert outcome.promoted, outcome
        version = client.get_model_version_by_alias(f"predictor-{outcome.family}", "champion")
        assert str(version.version) == outcome.version
    runs = mlflow.search_runs(experiment_names=["t"])
    # The job, one child per family, the promotion step and the online checkpoint.
    assert len(runs) == 8
    steps = runs["tags.predictor.step"].value_counts().to_dict()
    assert steps == {"train": 1, "register": 5, "promote": 1}
    promotion = runs[runs["tags.predictor.step"] == "promote"].iloc[0]
    assert promotion["tags.promoted.risk"] == "true"
    parent = client.get_run(first.run_id)
    assert parent.inputs.dataset_inputs[0].dataset.name == "telemetry"
    assert int(parent.data.params["events"]) == 14_000
    child = runs[runs["tags.mlflow.runName"] == "performance"].iloc[0]
    assert child["metrics.latency_mae_ms.batch"] > 0


def test_worse_model_does_not_move_the_champion(trained):
    tmp, records, uri, first = trained
    # Shuffle latency and success across the training part only: the holdout stays true.
    calls = [r for r in records if r.get("kind") != "health"]
    cut = calls[int(0.7 * len(calls))]["ts"]
    train_part = [r for r in calls if r["ts"] < cut]
    import random

    rng = random.Random(0)
    shuffled = [(r["latency_ms"], r["success"], r.get("error_type")) for r in train_part]
    rng.shuffle(shuffled)
    broken = []
    for r in records:
        if r.get("kind") != "health" and r["ts"] < cut:
            lat, ok, err = shuffled.pop()
            r = {**r, "latency_ms": lat, "success": ok}
            r.pop("error_type", None)
            if err is not None:
                r["error_type"] = err
            r.pop("recovery", None)
            r.pop("recovered", None)
        broken.append(r)
    log = _write(tmp / "broken.jsonl", broken)
    second = train([log], tracking_uri=uri, experiment="t", families=["performance"],
                   online=False)
    outcome = second.families[0]
    assert not outcome.promoted
    assert "not below the champion" in outcome.reason
    mlflow.set_tracking_uri(uri)
    champion = MlflowClient().get_model_version_by_alias("predictor-performance", "champion")
    first_version = next(o.version for o in first.families if o.family == "performance")
    assert str(champion.version) == first_version
    run = mlflow.search_runs(experiment_names=["t"], filter_string="tags.family = 'performance'",
                             order_by=["start_time DESC"]).iloc[0]
    assert run["tags.promoted"] == "false"


def test_champion_loads_and_predicts_in_a_fresh_process(trained):
    tmp, records, uri, _ = trained
    calls = [r for r in records if r.get("kind") != "health"][:50]
    (tmp / "calls.json").write_text(json.dumps(calls))
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "m = mlflow.pyfunc.load_model('models:/predictor-performance@champion')\n"
        "out = m.predict(pd.DataFrame(json.load(open(sys.argv[2]))))\n"
        "print(len(out), float(out['latency_p50_ms'].min()) > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, uri, str(tmp / "calls.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["50", "True"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_training_against_a_tracking_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        import urllib.request

        for _ in range(120):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        log = _write(tmp_path / "sim.jsonl", Simulator(seed=8).records(8_000))
        result = train([log], tracking_uri=uri, experiment="server", families=["risk", "load"])
        mlflow.set_tracking_uri(uri)
        for outcome in result.families:
            alias = MlflowClient().get_model_version_by_alias(f"predictor-{outcome.family}",
                                                              "champion")
            assert str(alias.version) == outcome.version
        engine, described = load_online(uri)  # artifacts through the server
        assert described["versions"] == result.online and engine.learned == 8_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_online_state_is_registered_and_resumed(trained):
    """``train`` registers the service's online state after the log, one version per family."""
    from predictor.data.schema import parse_record
    from predictor.engine import Engine
    from predictor.risk import RiskRequest
    from predictor.scale import ScaleRequest
    from predictor.select import SelectRequest

    _, records, uri, first = trained
    assert set(first.online) == {"performance", "resources", "cache", "load", "risk"}
    engine, described = load_online(uri)
    assert described["versions"] == first.online and described["source"] == "train"
    direct = Engine()
    direct.learn(sorted((parse_record(r) for r in records), key=lambda r: r.epoch))
    assert engine.learned == direct.learned == 14_000 and engine.clock == direct.clock
    assert engine.store_id is None and engine.cursor == 0  # not learned from a store
    server = records[0]["server"]
    scale = ScaleRequest(server=server, current_replicas=2, capacity_per_replica=10)
    assert engine.scale(scale) == direct.scale(scale)
    task = next(r["task_type"] for r in records if r.get("task_type"))
    candidates = sorted({r["server"] for r in records if r.get("task_type") == task})
    pick = SelectRequest(task_type=task, candidates=candidates, explore=0)
    assert engine.select(pick).ranking == direct.select(pick).ranking
    assert engine.plugin("recover").selector is engine.plugin("select")

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/predictor-risk-online/{first.online['risk']}")
    answer = json.loads(model.predict(pd.DataFrame([{"server": server}]))["answer"][0])
    expected = direct.risk(RiskRequest(server=server))
    assert answer["failure_probability"] == pytest.approx(expected.failure_probability)
    assert answer["source"] == expected.source == "online"


def test_the_readme_registry_snippets_run_where_train_wrote(trained, readme):
    tmp, records, _, _ = trained
    calls = [r for r in records if r.get("kind") != "health"][:20]
    (tmp / "calls.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in calls))
    snippets = [s for s in readme() if "mlflow.pyfunc.load_model" in s]
    assert len(snippets) == 2
    for snippet in snippets:
        # The snippet ends with an expression: show what it gives.
        tree = ast.parse(snippet)
        tree.body[-1] = ast.Assign([ast.Name("out", ast.Store())], tree.body[-1].value,
                                   lineno=0)
        code = ast.unparse(ast.fix_missing_locations(tree)) + "\nprint(len(out))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, cwd=tmp)
        assert done.returncode == 0, done.stderr[-2000:]
        assert int(done.stdout.split()[-1]) in (1, 20)


def test_a_tracking_store_that_cannot_be_used_fails_the_job_before_the_evaluation(tmp_path):
    log = _write(tmp_path / "sim.jsonl", Simulator(seed=2).records(2_000))
    steps: list[str] = []
    (tmp_path / "a-file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    with pytest.raises(ValueError, match=r"the MLflow tracking store sqlite:///.* cannot be used"):
        train([log], tracking_uri=uri, experiment="t", progress=steps.append)
    assert steps == ["reading logs"]  # nothing evaluated


def test_a_worker_that_has_exited_holds_no_memory_to_wait_for():
    """What the record step's imports wait for in the evaluation's tail (``_alive``): a
    process still running, not one that exited (reaped or not) or never was."""
    import os

    from predictor.training.train import _alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert _alive(child.pid) and _alive(os.getpid())
    deadline = time.monotonic() + 30
    while _alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Not alive once it has exited, while still a zombie (not waited for yet)...
    assert Path(f"/proc/{child.pid}").exists() and not _alive(child.pid)
    assert child.poll() is not None
    assert not _alive(child.pid)  # ...nor once reaped
    assert not _alive(2**22 + 12_345)  # no such process
