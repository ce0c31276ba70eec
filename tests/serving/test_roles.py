"""Roles on the shared PostgreSQL store: one elected learner publishes, replicas load."""

from __future__ import annotations

import time

import pytest

from predictor.api.select import SelectRequest
from predictor.engine import Engine
from predictor.models.persistence import ArtifactIntegrityError
from predictor.serving.roles import pack_state, unpack_state
from predictor.serving.service import Service
from predictor.serving.settings import Settings


def test_a_published_state_is_signed_and_a_forged_one_refused(monkeypatch):
    engine = Engine()
    engine.learn([])
    packed, raw = pack_state(engine, publisher="test")
    loaded, header = unpack_state(packed)
    assert isinstance(loaded, Engine) and header["raw_bytes"] == raw > len(packed) / 2
    assert header["bytes"] < raw  # compressed
    tampered = packed[:-10] + bytes(10)
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        unpack_state(tampered)
    monkeypatch.setenv("PREDICTOR_SIGNING_KEY", "another deployment")
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        unpack_state(packed)
    with pytest.raises(ArtifactIntegrityError, match="not a published"):
        unpack_state(b"pickle me")


def _service(pg_url: str, role: str, tmp_path) -> Service:
    return Service(Settings(db=pg_url, role=role, state_dir=tmp_path / role,
                            load_champions=False, online_registry=False, sync_interval_s=0.3))


def _wait(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_replicas_answer_from_what_the_elected_learner_learned(pg_url, tmp_path, sim_records):
    learner = _service(pg_url, "learner", tmp_path)
    standby = _service(pg_url, "learner", tmp_path / "s")
    replica = _service(pg_url, "replica", tmp_path)
    for service in (learner, standby, replica):
        service.start()
    try:
        assert _wait(lambda: learner.leading or standby.leading)
        leader, other = (learner, standby) if learner.leading else (standby, learner)
        assert not other.leading
        calls = [r for r in sim_records if r.get("kind", "call") == "call"][:3000]
        task = next(r["task_type"] for r in calls if r.get("task_type"))
        candidates = sorted({r["server"] for r in calls if r.get("task_type") == task})
        request = SelectRequest(task_type=task, candidates=candidates, explore=0.0)
        assert replica.engine.answer("select", request).source == "prior"
        result = replica.ingest(calls[:1500])
        assert result.accepted == 1500 and replica._pending == 0  # no queue on a replica
        # Learned by the leader from the shared store, published, loaded by the replica.
        assert _wait(lambda: replica.state_info.get("cursor") == 1500)
        assert replica.engine.answer("select", request).source == "online"
        assert replica.readiness()["role"] == "replica"
        assert leader.readiness()["leader"] is True and other.readiness()["leader"] is False
        info = replica.state_info
        assert info["learned"] == 1500 and 0 < info["bytes"] < info["raw_bytes"]
        assert info["compression_ratio"] == round(info["raw_bytes"] / info["bytes"], 2) > 1
        # The leader stops (as if killed): the standby takes over from the published state.
        leader.stop(register=False)
        assert _wait(lambda: other.leading)
        replica.ingest(calls[1500:])
        assert _wait(lambda: replica.state_info.get("cursor") == 3000)
        assert replica.state_info["learned"] == 3000  # nothing learned twice, nothing lost
        assert replica.store.count() == 3000
    finally:
        for service in (replica, standby, learner):
            if service.store is not None:
                service.stop(register=False)


def test_roles_other_than_all_need_the_shared_store(tmp_path):
    with pytest.raises(ValueError, match="needs the shared PostgreSQL store"):
        Service(Settings(db=tmp_path / "p.db", role="replica")).start()
