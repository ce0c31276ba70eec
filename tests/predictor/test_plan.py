from __future__ import annotations

import random

import pytest

from predictor.plan import Operation, Planner, PlanRequest


def _random_dag(n: int, seed: int) -> list[Operation]:
    rng = random.Random(seed)
    ops = []
    for i in range(n):
        deps = [f"op{j}" for j in range(i) if rng.random() < 0.1]
        ops.append(Operation(id=f"op{i}", depends_on=deps, duration_ms=rng.uniform(10, 500)))
    return ops


@pytest.mark.parametrize("seed", range(5))
def test_plans_respect_every_dependency_and_the_batch_size(seed):
    ops = _random_dag(60, seed)
    answer = Planner().plan(PlanRequest(operations=ops, max_batch=10))
    batch_of = {op: i for i, b in enumerate(answer.batches) for op in b.operations}
    assert sorted(batch_of) == sorted(op.id for op in ops)
    for op in ops:
        for dep in op.depends_on:
            assert batch_of[dep] < batch_of[op.id]
    assert all(len(b.operations) <= 10 for b in answer.batches)
    assert answer.predicted_ms <= answer.sequential_ms


def test_critical_path_goes_first():
    ops = [Operation(id="long", duration_ms=1000), Operation(id="tail", depends_on=["long"],
                                                           duration_ms=1000)]
    ops += [Operation(id=f"short{i}", duration_ms=10) for i in range(3)]
    answer = Planner().plan(PlanRequest(operations=ops, max_batch=2))
    assert "long" in answer.batches[0].operations


def test_learned_durations_and_errors():
    planner = Planner()
    planner.observe("search", 300.0)
    answer = planner.plan(PlanRequest(operations=[Operation(id="a", tool="search"),
                                                  Operation(id="b")]))
    assert answer.durations_ms == {"a": 300.0, "b": 1000.0}
    with pytest.raises(ValueError, match="cycle"):
        planner.plan(PlanRequest(operations=[Operation(id="a", depends_on=["b"]),
                                             Operation(id="b", depends_on=["a"])]))
    with pytest.raises(ValueError, match="unknown"):
        planner.plan(PlanRequest(operations=[Operation(id="a", depends_on=["zzz"])]))
