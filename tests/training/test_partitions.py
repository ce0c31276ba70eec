"""Logs read in partitions: the window is the whole log's newest records, the online
state learns every record, and ``train --max-events`` reports what it read."""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path

import orjson
import pandas as pd
import pytest

from predictor.data.readers import ReadSummary
from predictor.data.simulator import Simulator
from predictor.training.evaluate import evaluate_features, load_log
from predictor.training.features import Features, Options
from predictor.training.partitions import read_window
from predictor.training.train import learn_online


def _write(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _bytes(state: object) -> bytes:
    """``state`` pickled without its memo: equal values give equal bytes, whether or not
    they are the same objects (the partitions' names are their own strings)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.fast = True
    pickler.dump(state)
    return out.getvalue()


def _records(n: int, seed: int) -> list[dict]:
    return list(Simulator(seed=seed).records(n))


def test_the_window_is_the_tail_of_the_whole_log_in_time_order(tmp_path):
    records = _records(3_000, seed=2)
    # Out of order, and whole seconds so that many records share a time: the window
    # must keep the whole log's order among ties (the order read).
    for record in records:
        record["ts"] = float(pd.Timestamp(record["ts"]).timestamp() // 5 * 5)
    random.Random(3).shuffle(records)
    log = _write(tmp_path / "log.jsonl", records)
    whole = load_log([str(log)], ReadSummary())
    read = read_window([str(log)], ReadSummary(), max_events=700,
                       folder=tmp_path / "parts", partition_events=128)
    assert read.events == 3_000 and read.windowed
    assert whole["ts"].duplicated().sum() > 1_000  # ties there are
    pd.testing.assert_frame_equal(read.frame, whole.tail(700).reset_index(drop=True))
    # Every record is in a partition, each time-ordered, in the order read.
    assert read.partitions.events == 3_000 and len(read.partitions.partitions) == 24
    parts = list(read.partitions.frames())
    assert all(part["ts"].is_monotonic_increasing for part in parts)
    assert sorted(pd.concat(parts)["ts"]) == sorted(whole["ts"])


def test_a_log_within_the_window_reads_as_a_whole_and_keeps_no_partition(tmp_path):
    log = _write(tmp_path / "log.jsonl", _records(1_000, seed=4))
    read = read_window([str(log)], ReadSummary(), max_events=1_000,
                       folder=tmp_path / "parts", partition_events=300)
    assert read.events == 1_000 and not read.windowed and read.partitions is None
    pd.testing.assert_frame_equal(read.frame, load_log([str(log)], ReadSummary()))
    assert list((tmp_path / "parts").iterdir()) == []


def test_a_replaced_partition_is_refused_before_it_is_unpickled(tmp_path):
    log = _write(tmp_path / "log.jsonl", _records(600, seed=5))
    read = read_window([str(log)], ReadSummary(), max_events=100,
                       folder=tmp_path / "parts", partition_events=200)
    target = Path(read.partitions.partitions[1].path)
    target.write_bytes(pickle.dumps({"index": None}))
    frames = read.partitions.frames()
    next(frames)
    with pytest.raises(ValueError, match="partition-000001 is not the partition this job"):
        next(frames)


def test_the_online_state_learns_every_partition_as_it_learns_the_whole_log(tmp_path):
    log = _write(tmp_path / "log.jsonl", _records(2_500, seed=6))
    read = read_window([str(log)], ReadSummary(), max_events=500,
                       folder=tmp_path / "parts", partition_events=400)
    streamed = learn_online(read.partitions)
    whole = learn_online(load_log([str(log)], ReadSummary()))
    assert streamed.learned == whole.learned == 2_500
    for name in whole.plugins:
        assert _bytes(streamed.plugins[name]) == _bytes(whole.plugins[name]), name


@pytest.mark.parametrize("cluster", [None, "local"])
def test_training_on_a_window_reports_it_and_learns_the_whole_log_online(tmp_path, cluster):
    pytest.importorskip("mlflow")
    from predictor.training.train import train

    log = _write(tmp_path / "log.jsonl", _records(6_000, seed=7))
    result = train([log], tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                   experiment="w", max_events=4_000, cluster=cluster)
    report = result.evaluation.report
    whole = load_log([str(log)], ReadSummary())
    assert report["events"] == 4_000
    assert report["window"] == {"max_events": 4_000, "log_events": 6_000,
                                "from_ts": float(whole["ts"].iloc[2_000])}
    # The families' figures are those of the newest 4,000 records evaluated alone.
    alone = evaluate_features(Features.of(whole.tail(4_000).reset_index(drop=True)),
                              Options(plots=True, holdout_losses=True), n_jobs=1).report
    assert {k: v for k, v in report.items() if k != "window"} == alone
    assert result.evaluation.also["online"].learned == 6_000
    assert set(result.online) == {"performance", "resources", "cache", "load", "risk"}
