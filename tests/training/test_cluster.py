"""Training on a cluster: the same report as the serial run (Dask LocalCluster here)."""

from __future__ import annotations

import math

import pytest

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.training.cluster import cluster_backend
from predictor.training.evaluate import evaluate_features
from predictor.training.features import Features


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def test_a_local_dask_cluster_gives_the_serial_report():
    records = [parse_record(r) for r in Simulator(seed=5).records(4_000)]
    features = Features.of(records_to_frame(records).reset_index(drop=True))
    serial = evaluate_features(features, n_jobs=1).report
    messages: list[str] = []
    clustered = evaluate_features(features, cluster="local", progress=messages.append).report
    assert any("on Dask at tcp://" in m for m in messages)
    assert _same(serial, clustered)
    assert "roc_auc" in str(clustered["risk"])


def test_unknown_clusters_are_refused():
    with pytest.raises(ValueError, match="give local, tcp://host:port"), \
            cluster_backend("spark://x"):
        pass
