"""The learner's linger: records ingested one at a time are learned as one run."""

from __future__ import annotations

import pickle

import pytest

from predictor.engine import Engine
from predictor.serving.service import Service, contiguous
from predictor.serving.settings import Settings


def _calls(n: int) -> list[dict]:
    return [{"ts": 1.7e9 + i, "server": "ab"[i % 2], "tool": "query", "task_type": "search",
             "latency_ms": 50.0 + 7 * i, "success": i % 5 != 4, "cache_key": f"k{i % 3}"}
            for i in range(n)]


@pytest.mark.parametrize("linger, runs", [(1.0, [3]), (0.0, [1, 1, 1])])
def test_records_ingested_one_at_a_time_are_learned_in_one_run(tmp_path, monkeypatch,
                                                                linger, runs) -> None:
    learned_runs: list[int] = []
    original = Engine.learn

    def counting(self, records, cursor=None):
        records = list(records)
        if records:
            learned_runs.append(len(records))
        return original(self, records, cursor)

    monkeypatch.setattr(Engine, "learn", counting)
    service = Service(Settings(db=tmp_path / "p.db", state_dir=tmp_path / "state",
                               load_champions=False, online_registry=False,
                               learn_linger_s=linger))
    service.start()
    try:
        assert service.wait_learned()
        for record in _calls(3):  # three batches of one, well within a second
            assert service.ingest([record]).accepted == 1
        assert service.wait_learned()
        assert learned_runs == runs
        assert service.engine.cursor == 3 and service.engine.learned == 3
        state = pickle.dumps(service.engine.plugins)
    finally:
        service.stop(False)
    reference = Engine()
    original(reference, _parsed(_calls(3)))
    assert pickle.dumps(reference.plugins) == state  # the same state either way


def _parsed(raw: list[dict]) -> list:
    from predictor.data.schema import parse_record

    return [parse_record(r) for r in raw]


def test_only_batches_whose_ids_follow_on_are_joined() -> None:
    assert contiguous([]) == []
    assert contiguous([(5, 6, ["a", "b"]), (7, 7, ["c"]), (8, 9, ["d", "e"])]) == [
        (5, 9, ["a", "b", "c", "d", "e"])]
    # One committed late (ids 3-4 queued after 5): each learned on its own, in order.
    assert contiguous([(1, 2, ["a", "b"]), (5, 5, ["e"]), (3, 4, ["c", "d"])]) == [
        (1, 2, ["a", "b"]), (5, 5, ["e"]), (3, 4, ["c", "d"])]


def test_a_gateway_lingers_by_default_and_serve_does_not(tmp_path) -> None:
    from predictor.serving.cli import _gateway_settings
    from predictor.serving.gateway_config import GatewayConfig

    upstream = [{"name": "u", "command": ["true"]}]
    config = GatewayConfig.model_validate({"db": str(tmp_path / "g.db"), "upstream": upstream})
    assert _gateway_settings(config).learn_linger_s == config.learn_linger_s == 0.02
    off = GatewayConfig.model_validate({"db": str(tmp_path / "g.db"), "upstream": upstream,
                                        "learn_linger_s": 0})
    assert _gateway_settings(off).learn_linger_s == 0.0
    assert Settings().learn_linger_s == 0.0
    with pytest.raises(ValueError, match="learn_linger_s"):
        GatewayConfig.model_validate({"upstream": upstream, "learn_linger_s": 2})
