"""Roles on a shared store: one elected learner publishes, replicas load.

On PostgreSQL (processes anywhere) and on SQLite (processes of one machine,
sharing the file; the election is a file lock beside it).
"""

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


def _service(db, role: str, tmp_path) -> Service:
    return Service(Settings(db=db, role=role, state_dir=tmp_path / role,
                            load_champions=False, online_registry=False, sync_interval_s=0.3))


def _wait(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_db(request, tmp_path):
    """The store the roles share: a PostgreSQL database, or one SQLite file."""
    if request.param == "sqlite":
        return tmp_path / "shared.db"
    return request.getfixturevalue("pg_url")


def test_replicas_answer_from_what_the_elected_learner_learned(shared_db, tmp_path,
                                                               sim_records):
    learner = _service(shared_db, "learner", tmp_path)
    standby = _service(shared_db, "learner", tmp_path / "s")
    replica = _service(shared_db, "replica", tmp_path)
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


def test_a_published_state_is_kept_in_a_sqlite_store(tmp_path):
    from predictor.data.store import SQLiteEventStore

    with SQLiteEventStore(tmp_path / "p.db") as store:
        assert store.latest_state() is None
        versions = [store.publish_state(b"state %d" % k, cursor=k, learned=k, raw_bytes=9,
                                        publisher="test", keep=2) for k in range(4)]
        assert versions == [1, 2, 3, 4]
        newest = store.latest_state()
        assert (newest["version"], newest["cursor"], newest["state"]) == (4, 3, b"state 3")
        assert store.latest_state(newer_than=4) is None
        kept = store._conn.execute("SELECT version FROM engine_states").fetchall()
        assert kept == [(3,), (4,)]
        # A version is never reused, even after the older ones are gone.
        store._conn.execute("DELETE FROM engine_states")
        assert store.publish_state(b"x", cursor=5, learned=5, raw_bytes=1, publisher="t") == 5
