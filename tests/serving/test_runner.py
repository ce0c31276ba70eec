"""The gateway's cache, degrade and prefetch, and the workflow runner's re-planning.

In-process, over the project's fault-injecting upstream (``bench/faulty_upstream.py``,
a real stdio MCP server): fast and deterministic. The end-to-end run over the real
third-party servers is ``test_example_workflow.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from predictor.serving.gateway import Gateway
from predictor.serving.gateway_config import GatewayConfig, expand, load_config
from predictor.serving.runner import WorkflowRunner, passages
from predictor.serving.service import Service
from predictor.serving.settings import Settings
from predictor.serving.workflow import Workflow

ROOT = Path(__file__).resolve().parents[2]
FAULTY = str(ROOT / "bench" / "faulty_upstream.py")


def _upstream(name: str, *args: str, **extra: object) -> dict:
    return {"name": name, "command": [sys.executable, FAULTY, *args], **extra}


def _service(tmp_path: Path) -> Service:
    return Service(Settings(db=tmp_path / "gw.db", state_dir=tmp_path / "state",
                            load_champions=False, online_registry=False))


async def _with_gateway(config: GatewayConfig, service: Service, body):
    await asyncio.to_thread(service.start)
    gateway = Gateway(config, service)
    await gateway.start()
    try:
        return await body(gateway)
    finally:
        await gateway.stop()
        await asyncio.to_thread(service.stop, False)


def test_read_only_answers_are_cached_and_hits_recorded_apart(tmp_path):
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"), "cache": {"ttl_s": 60, "prefetch_keys": 0},
        "upstream": [_upstream("slow", "--latency-ms", "30")]})
    service = _service(tmp_path)

    async def body(gateway: Gateway):
        first = await gateway.execute("lookup", {"query": "a"})
        second = await gateway.execute("lookup", {"query": "a"})
        other = await gateway.execute("lookup", {"query": "b"})
        return first, second, other, gateway.cache.stats()

    first, second, other, stats = asyncio.run(_with_gateway(config, service, body))
    assert (first.served_from, second.served_from, other.served_from) == \
        ("upstream", "cache", "upstream")
    assert second.text() == first.text() and not second.attempts
    assert second.latency_ms < first.latency_ms
    assert (stats["hits"], stats["misses"]) == (1, 2)
    hit = second.records[0]
    assert hit["server"] == "predictor-cache" and hit["cache_hit"] is True
    assert first.records[0]["server"] == "slow" and first.records[0]["cache_hit"] is False
    assert first.records[0]["cache_key"] == hit["cache_key"] != other.records[0]["cache_key"]


def test_a_failed_call_degrades_to_the_stale_answer_marked_stale(tmp_path):
    # ttl 0: the answer never serves a call on its own, only as a degraded answer.
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"), "cache": {"prefetch_keys": 0},
        "upstream": [_upstream("dying", "--latency-ms", "5", "--crash-after", "1")]})
    service = _service(tmp_path)

    async def body(gateway: Gateway):
        first = await gateway.execute("lookup", {"query": "a"})
        second = await gateway.execute("lookup", {"query": "a"})
        return first, second

    first, second = asyncio.run(_with_gateway(config, service, body))
    assert first.served_from == "upstream" and first.success
    assert second.served_from == "stale_cache" and second.success
    assert second.result.meta["predictor/stale"] is True
    assert second.result.meta["predictor/age_s"] >= 0
    assert second.text() == first.text()
    assert second.recoveries[-1] == "degrade"
    failed = second.records[-1]
    assert failed["success"] is False and failed["recovery"] == "degrade"
    assert failed["recovered"] is True


def test_prefetch_fetches_what_the_preload_decision_predicts_next(tmp_path):
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"),
        "cache": {"ttl_s": 0.5, "prefetch_keys": 1, "prefetch_min_probability": 0.2},
        "upstream": [_upstream("files", "--latency-ms", "5")]})
    service = _service(tmp_path)
    sequence = ["a", "b", "c"]

    async def body(gateway: Gateway):
        for _ in range(8):  # teach the access stream: after a comes b, after b comes c
            for query in sequence:
                await gateway.execute("lookup", {"query": query})
            await asyncio.sleep(0.55)  # every answer goes stale
        await gateway.drain()
        await asyncio.to_thread(service.wait_learned, 30)
        await asyncio.sleep(0.6)
        before = gateway.cache.stats()
        await gateway.execute("lookup", {"query": "a"})  # predicts b, fetches it ahead
        await gateway.drain()
        after_prefetch = gateway.cache.stats()
        b = await gateway.execute("lookup", {"query": "b"})
        return before, after_prefetch, b, gateway.cache.stats()

    before, after_prefetch, b, after = asyncio.run(_with_gateway(config, service, body))
    assert after_prefetch["prefetched"] > before["prefetched"]
    assert b.served_from == "cache"
    assert after["prefetch_used"] > before["prefetch_used"]
    assert 0 < after["prefetch_precision"] <= 1


def _two_phases() -> Workflow:
    steps = [{"id": f"q{k}", "tool": "lookup", "arguments": {"query": f"q{k}"}}
             for k in range(4)]
    later = [{"id": f"r{k}", "tool": "lookup", "arguments": {"query": f"r{k}"},
              "depends_on": [f"q{k}"]} for k in range(4)]
    return Workflow.model_validate({"name": "two", "max_batch": 4, "phases": [
        {"name": "first", "steps": steps}, {"name": "second", "steps": later}]})


def test_a_phase_slower_than_learned_replans_what_is_left(tmp_path):
    def config(latency: str) -> GatewayConfig:
        return GatewayConfig.model_validate({
            "db": str(tmp_path / "gw.db"), "cache": {"enabled": False},
            "upstream": [_upstream("a", "--latency-ms", latency, "--jitter", "0.05"),
                         _upstream("b", "--latency-ms", latency, "--jitter", "0.05")],
            "route": [{"tool": "lookup", "providers": ["a", "b"]}]})

    async def run(gateway: Gateway):
        return await WorkflowRunner(gateway, _two_phases()).run()

    first = asyncio.run(_with_gateway(config("5"), _service(tmp_path), run))
    for _ in range(3):  # learn the tool's durations
        steady = asyncio.run(_with_gateway(config("5"), _service(tmp_path), run))
    slow = asyncio.run(_with_gateway(config("150"), _service(tmp_path), run))

    assert first["success"] and first["steps_succeeded"] == 8
    assert first["phases"][0]["predicted"]["source"] == "prior"
    assert first["replans"] == []  # a prior says nothing about these servers
    assert {p["predicted"]["source"] for p in steady["phases"]} == {"online"}
    assert steady["replans"] == [] and all(p["within"] for p in steady["phases"])
    assert [b for b in first["phases"][0]["batches"]] == [["q0", "q1", "q2", "q3"]]
    # Four times slower than anything learned: the first phase is outside its interval,
    # and the rest runs with half the parallelism, away from the providers that served it.
    assert not slow["phases"][0]["within"]
    (replan,) = slow["replans"]
    assert replan["after_phase"] == "first" and replan["parallelism"] == [4, 2]
    assert set(replan["avoid"]) <= {"a", "b"} and replan["avoid"]
    assert slow["phases"][1]["batches"] == [["r0", "r1"], ["r2", "r3"]]
    decided = {(d["decision"], d["source"]) for d in slow["decisions"]}
    assert ("replan", "online") in decided and ("select", "online") in decided
    assert slow["validation"]["all_met"] and slow["success"]


def test_a_failed_step_skips_its_dependents(tmp_path):
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"), "cache": {"enabled": False},
        "upstream": [_upstream("broken", "--error-rate", "1.0", "--latency-ms", "1")]})
    workflow = Workflow.model_validate({"name": "broken", "phases": [
        {"name": "only", "steps": [
            {"id": "fails", "tool": "lookup", "arguments": {"query": "x"}},
            {"id": "after", "tool": "lookup", "arguments": {"query": "y"},
             "depends_on": ["fails"]}]}]})

    async def run(gateway: Gateway):
        return await WorkflowRunner(gateway, workflow).run()

    report = asyncio.run(_with_gateway(config, _service(tmp_path), run))
    status = {s["id"]: s["status"] for s in report["steps"]}
    assert status == {"fails": "failed", "after": "skipped"}
    assert not report["success"] and report["steps_succeeded"] == 0
    assert report["validation"]["all_met"] is False
    failed = next(s for s in report["steps"] if s["id"] == "fails")
    assert failed["attempts"][0]["error_type"] == "tool_error"


def test_context_is_reduced_under_its_budget(tmp_path):
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"), "cache": {"enabled": False},
        "upstream": [_upstream("echo", "--latency-ms", "1")]})
    workflow = Workflow.model_validate({"name": "ctx", "phases": [
        {"name": "gather", "steps": [
            {"id": f"s{k}", "tool": "lookup", "arguments": {"query": f"topic {k}"}}
            for k in range(3)]},
        {"name": "use", "steps": [
            {"id": "use", "tool": "lookup", "arguments": {}, "context": {
                "from": ["s0", "s1", "s2"], "query": "topic", "into": "query",
                "budget_tokens": 10, "threshold": 0.0}}]}]})

    async def run(gateway: Gateway):
        runner = WorkflowRunner(gateway, workflow)
        report = await runner.run()
        return report, runner.calls["use"].records[0]

    report, record = asyncio.run(_with_gateway(config, _service(tmp_path), run))
    reduced = next(d for d in report["decisions"] if d["decision"] == "reduce_context")
    assert reduced["source"] == "rule" and reduced["step"] == "use"
    kept, total = (int(x) for x in reduced["detail"].split(" passages")[0]
                   .removeprefix("kept ").split(" of "))
    assert total == 3 and 1 <= kept < 3  # three answers, a budget for fewer
    assert record["input_tokens"] <= 20


def test_workflows_and_configs_refuse_what_cannot_run(tmp_path, monkeypatch):
    base = {"name": "w", "phases": [{"name": "p", "steps": [{"id": "a", "tool": "t"}]}]}
    Workflow.model_validate(base)
    bad_dependency = {"name": "w", "phases": [{"name": "p", "steps": [
        {"id": "a", "tool": "t", "depends_on": ["later"]}]},
        {"name": "q", "steps": [{"id": "later", "tool": "t"}]}]}
    with pytest.raises(ValidationError, match="depends on \\['later'\\]"):
        Workflow.model_validate(bad_dependency)
    repeated = {"name": "w", "phases": [{"name": "p", "steps": [
        {"id": "a", "tool": "t"}, {"id": "a", "tool": "t"}]}]}
    with pytest.raises(ValidationError, match="step ids repeat"):
        Workflow.model_validate(repeated)
    with pytest.raises(ValidationError, match="coverage"):
        Workflow.model_validate({**base, "coverage": 0.7})
    with pytest.raises(ValidationError, match="max_batch"):
        Workflow.model_validate({**base, "max_batch": 11})
    assert passages("x\n\ny\nz", max_tokens=1) == ["x", "y", "z"]

    monkeypatch.setenv("FAKE_UPSTREAMS", "/opt/u")
    (tmp_path / "g.toml").write_text(
        'db = "x.db"\n[[upstream]]\nname = "a"\ncommand = ["${FAKE_UPSTREAMS}/bin/a"]\n'
        'cwd = "work"\nenv = { F = "${CONFIG_DIR}/f" }\n')
    loaded = load_config(tmp_path / "g.toml")
    assert loaded.upstream[0].command == ["/opt/u/bin/a"]
    assert loaded.upstream[0].cwd == tmp_path.resolve() / "work"
    assert loaded.upstream[0].env == {"F": f"{tmp_path.resolve()}/f"}
    assert loaded.db == tmp_path.resolve() / "x.db"
    monkeypatch.delenv("FAKE_UPSTREAMS")
    with pytest.raises(ValueError, match="upstream 'a': \\$\\{FAKE_UPSTREAMS\\} is not set"):
        load_config(tmp_path / "g.toml")
    with pytest.raises(ValueError, match="NOPE"):
        expand("${NOPE}", {})


def test_an_upstream_that_cannot_start_is_named_with_its_reason(tmp_path):
    config = GatewayConfig.model_validate({
        "db": str(tmp_path / "gw.db"),
        "upstream": [{"name": "missing", "command": [str(tmp_path / "no-such-server")]},
                     _upstream("fine", "--latency-ms", "1")]})
    workflow = Workflow.model_validate({"name": "w", "phases": [
        {"name": "p", "steps": [{"id": "a", "tool": "missing__lookup"}]}]})

    async def run(gateway: Gateway):
        assert gateway.upstreams["missing"].unstartable.is_set()
        assert gateway.upstreams["fine"].ready
        return await WorkflowRunner(gateway, workflow).run()

    with pytest.raises(ValueError) as raised:
        asyncio.run(_with_gateway(config, _service(tmp_path), run))
    message = str(raised.value)
    assert "no tool 'missing__lookup'" in message
    assert "upstreams not up: missing (FileNotFoundError" in message
