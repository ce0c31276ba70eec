from __future__ import annotations

import pytest

from predictor.models.persistence import ArtifactIntegrityError, load, save


def test_round_trip_records_metadata(tmp_path):
    path = save({"a": 1}, tmp_path / "perf", family="performance", variant="batch",
                features=["x", "y"], training_span=(0.0, 60.0), metrics={"mae": 1.5})
    obj, meta = load(path)
    assert obj == {"a": 1}
    assert meta["features"] == ["x", "y"]
    assert meta["metrics"] == {"mae": 1.5}
    assert meta["training_span"]["end"] == "1970-01-01T00:01:00+00:00"
    assert "scikit-learn" in meta["libraries"]


def test_load_refuses_a_tampered_artifact(tmp_path):
    path = save([1, 2, 3], tmp_path / "m", family="load", variant="online")
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load(path)


def test_load_refuses_an_artifact_without_metadata(tmp_path):
    path = save([1], tmp_path / "m", family="load", variant="online")
    path.with_suffix(".json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="metadata"):
        load(path)


class _Exploit:
    """Unpickling this writes a file: what a forged checkpoint would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_forged_pickle_with_a_recomputed_hash_is_never_unpickled(tmp_path):
    import hashlib
    import json

    import joblib

    path = save({"a": 1}, tmp_path / "m", family="engine", variant="online")
    marker = tmp_path / "executed"
    joblib.dump(_Exploit(str(marker)), path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()  # what an attacker can do
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactIntegrityError, match="refusing to unpickle"):
        load(path)
    assert not marker.exists()


def test_an_artifact_signed_with_another_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PREDICTOR_SIGNING_KEY", "key-of-machine-a")
    path = save([1], tmp_path / "m", family="load", variant="online")
    assert load(path)[0] == [1]
    monkeypatch.setenv("PREDICTOR_SIGNING_KEY", "key-of-machine-b")
    with pytest.raises(ArtifactIntegrityError, match="another key"):
        load(path)


def test_the_default_key_is_created_once_and_private(tmp_path, monkeypatch):
    import stat

    from predictor.models.persistence import signing_key

    monkeypatch.delenv("PREDICTOR_SIGNING_KEY", raising=False)
    monkeypatch.setenv("PREDICTOR_SIGNING_KEY_FILE", str(tmp_path / "keys" / "signing.key"))
    first = signing_key()
    assert len(first) == 32 and signing_key() == first
    mode = stat.S_IMODE((tmp_path / "keys" / "signing.key").stat().st_mode)
    assert mode == 0o600
