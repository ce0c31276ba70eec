"""A plug-in's declared ``record_fields`` are all it learns from: training's replays
rebuild records from those columns of the log only (``COLUMNS``), so a plug-in taught
records of those fields alone must end in the same state as one taught whole records."""

from __future__ import annotations

import io
import pickle

import pytest

from predictor.data.frame import frame_records, records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.decisions import DECISIONS
from predictor.training.evaluate import COLUMNS
from predictor.training.served import replay_fields, served_engine


def _bytes(state: object) -> bytes:
    """``state`` pickled without its memo: equal values give equal bytes."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.fast = True
    pickler.dump(state)
    return out.getvalue()


@pytest.fixture(scope="module")
def frame():
    records = sorted((parse_record(r) for r in Simulator(seed=12).records(6_000)),
                     key=lambda r: r.epoch)
    frame = records_to_frame(records)
    # Every field a plug-in could read is in this log: calls and probes, failures of
    # several kinds, costs, attempts and the probes' load.
    assert frame["error_type"].nunique() > 1 and (frame["kind"] == "health").any()
    assert frame[["cost_usd", "attempt", "queue_depth", "mem_pct"]].notna().any().all()
    return frame


DECLARED = [d.name for d in DECISIONS if replay_fields((d.name,)) is not None]


def test_the_replayed_families_read_only_what_their_plugins_declare():
    assert {"select", "risk"} <= set(DECLARED)
    assert set(COLUMNS["selection"]["frame"]) >= replay_fields(("select",))
    assert set(COLUMNS["risk"]["frame"]) >= replay_fields(("risk",))
    assert len(COLUMNS["risk"]["frame"]) < 20  # of the log's 25


@pytest.mark.parametrize("decision", DECLARED)
def test_a_plugin_learns_the_same_from_its_declared_fields_alone(frame, decision):
    fields = replay_fields((decision,))
    narrowed = frame[[c for c in frame.columns if c in fields]]
    assert len(narrowed.columns) < len(frame.columns)
    whole, alone = served_engine((decision,)), served_engine((decision,))
    # Compared along the way, not only at the end: a field missed can leave a trace that a
    # later record wipes (a failure streak that a success resets).
    for start in range(0, len(frame), 25):
        whole.learn(frame_records(frame.iloc[start:start + 25]))
        alone.learn(frame_records(narrowed.iloc[start:start + 25]))
        for key, plugin in whole.plugins.items():
            assert _bytes(alone.plugins[key]) == _bytes(plugin), (key, start)
    assert alone.learned == whole.learned == len(frame)
