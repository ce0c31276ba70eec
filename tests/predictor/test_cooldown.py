"""The cooldown decision: learned outage lengths, honoured by select."""

from __future__ import annotations

from predictor.api.cooldown import CooldownRequest
from predictor.api.select import SelectRequest
from predictor.data.schema import parse_record
from predictor.engine import Engine


def _call(ts: float, server: str, ok: bool, error: str = "timeout"):
    return parse_record({"ts": ts, "server": server, "tool": "q", "task_type": "search",
                         "latency_ms": 100.0, "success": ok,
                         "error_type": None if ok else error})


def _outages(server: str, starts: list[float], length: float) -> list:
    records = []
    for start in starts:
        records += [_call(start + k, server, False) for k in range(3)]
        records.append(_call(start + 2.1 + length, server, True))
    return records


def test_cooldown_lasts_as_long_as_the_servers_past_outages() -> None:
    engine = Engine(seed=0)
    engine.learn(_outages("a", [0, 1000, 2000], 120.0))
    engine.learn([_call(3000 + k, "a", False) for k in range(3)])
    answer = engine.cooldown(CooldownRequest(servers=["a"]))
    (a,) = answer.servers
    assert a.cooling_down and a.source == "online"
    assert abs(a.cooldown_s - 120.0) < 1.0
    assert abs(a.until - (3002.1 + 120.0)) < 1.0
    later = engine.cooldown(CooldownRequest(servers=["a"], now=3002.1 + 121.0))
    assert not later.servers[0].cooling_down


def test_cooldown_uses_the_prior_before_any_outage() -> None:
    engine = Engine(seed=0)
    engine.learn([_call(k, "a", False) for k in range(3)])
    (a,) = engine.cooldown(CooldownRequest(servers=["a"])).servers
    assert a.source == "prior" and a.cooldown_s == 5.0 and a.cooling_down


def test_invalid_parameters_never_start_a_cooldown() -> None:
    engine = Engine(seed=0)
    engine.learn([_call(k, "a", False, error="invalid_params") for k in range(5)])
    (a,) = engine.cooldown(CooldownRequest(servers=["a"])).servers
    assert not a.cooling_down and a.consecutive_failures == 0


def test_select_ranks_a_cooling_server_last() -> None:
    engine = Engine(seed=0)
    # "a" is the faster server, but it has just failed three times in a row.
    engine.learn([_call(float(i), s, True) for i in range(20) for s in ("a", "b")])
    engine.learn([parse_record({"ts": 30.0 + i, "server": "b", "tool": "q",
                                "task_type": "search", "latency_ms": 900.0})
                  for i in range(5)])
    before = engine.select(SelectRequest(task_type="search", candidates=["a", "b"], explore=0))
    assert before.ranking[0].server == "a"
    engine.learn([_call(40.0 + k, "a", False) for k in range(3)])
    during = engine.select(SelectRequest(task_type="search", candidates=["a", "b"], explore=1))
    assert [r.server for r in during.ranking] == ["b", "a"]
    assert during.ranking[1].factors.availability == 0.0
