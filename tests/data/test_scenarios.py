"""The scenario builders of ``predictor.data.scenarios`` on seeded simulated telemetry."""

from __future__ import annotations

from collections import defaultdict

from predictor.data.scenarios import split_task_types
from predictor.data.simulator import Simulator


def test_split_task_types_keeps_a_run_together_and_spreads_runs_over_every_way():
    records = list(Simulator(seed=1).records(3_000))
    split = split_task_types(records, 8)
    assert len(split) == len(records)
    suffixes_by_run: dict[str, set[str]] = defaultdict(set)
    for before, after in zip(records, split, strict=True):
        if before.get("kind") == "health":
            assert after == before
            continue
        prefix, suffix = after["task_type"].rsplit("/", 1)
        assert prefix == before["task_type"]
        assert {k: v for k, v in after.items() if k != "task_type"} == {
            k: v for k, v in before.items() if k != "task_type"}
        suffixes_by_run[before["workflow_id"]].add(suffix)
    assert all(len(s) == 1 for s in suffixes_by_run.values())
    assert set().union(*suffixes_by_run.values()) == {str(k) for k in range(8)}
    # Another seed draws other ways for the same runs.
    other = split_task_types(records, 8, seed=1)
    assert sum(a.get("task_type") != b.get("task_type")
               for a, b in zip(split, other, strict=True)) > len(records) // 2
