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


_WARMED_THEN_LEARNED = """
import json
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.engine import Engine, warm_up
from predictor.models import laws, linear_stack, risk
from predictor.models.kernels import Kernel


def signatures():
    out = {}
    for module in (risk, linear_stack, laws):
        for name, value in vars(module).items():
            if isinstance(value, Kernel):
                out[f"{module.__name__}.{name}"] = [] if not value.compiled else [
                    str(s) for s in value.dispatcher().signatures]
            elif hasattr(value, "signatures") and hasattr(value, "py_func"):
                out[f"{module.__name__}.{name}"] = [str(s) for s in value.signatures]
    return out


before = signatures()
taught = warm_up()
warmed = signatures()
Engine(seed=1).learn(sorted(map(parse_record, Simulator(seed=2).records(3000)),
                            key=lambda r: r.epoch))
print(json.dumps({"taught": taught, "before": before, "warmed": warmed,
                  "learned": signatures()}))
"""


def test_warm_up_loads_every_loop_a_fresh_process_learns_with() -> None:
    import json
    import subprocess
    import sys

    # A fresh process: this one may have compiled the loops in other tests already.
    done = subprocess.run([sys.executable, "-c", _WARMED_THEN_LEARNED], capture_output=True,
                          text=True, check=True, timeout=300)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["taught"] == 48
    assert not any(seen["before"].values())  # nothing loaded before the warm-up
    assert any(seen["warmed"].values())  # the risk models' loops, at least
    # Learning a simulated log afterwards needed no loop, nor any type, the warm-up missed.
    assert seen["learned"] == seen["warmed"]
