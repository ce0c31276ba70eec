"""The engine teaches its plug-ins in runs: each ends as learning record by record would."""

from __future__ import annotations

import math
import pickle

import pytest

from predictor.data.schema import CallRecord, HealthRecord, parse_record
from predictor.data.simulator import Simulator
from predictor.engine import Engine


@pytest.fixture(scope="module")
def records() -> list:
    return sorted(map(parse_record, Simulator(seed=5).records(3000)), key=lambda r: r.epoch)


def test_runs_leave_every_plugin_as_record_by_record(records, monkeypatch) -> None:
    kinds = {type(r) for r in records}
    assert kinds == {CallRecord, HealthRecord}  # both kinds, interleaved
    monkeypatch.setattr(Engine, "RUN", 97)  # several runs, cut anywhere
    engine = Engine(seed=3)
    assert engine.learn(records[:1500], cursor=1500) == 1500
    assert engine.learn(iter(records[1500:]), cursor=3000) == 1500  # any iterable
    reference = Engine(seed=3)
    for record in records:  # every plug-in learns each record before the next record
        for plugin in reference.plugins.values():
            plugin.learn(record)
    assert engine.learned == 3000 and engine.cursor == 3000
    assert engine.clock == max(r.epoch for r in records)
    for key, plugin in engine.plugins.items():
        twin = reference.plugins[key]
        assert plugin.clock == twin.clock == engine.clock, key
        assert plugin.observations == twin.observations, key
        assert pickle.dumps(plugin) == pickle.dumps(twin), key


def test_empty_input_learns_nothing_and_keeps_the_clock() -> None:
    engine = Engine(seed=3)
    assert engine.learn([]) == 0 and math.isnan(engine.clock)
    assert engine.learn((), cursor=7) == 0 and engine.cursor == 7 and engine.learned == 0
