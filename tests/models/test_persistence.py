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
