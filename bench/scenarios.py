"""Evaluation on scenarios built from the shared real logs (issue 15's weaknesses).

Usage::

    python bench/scenarios.py [--only tool_mix_shift|sparse_load|block_runs|many_task_types ...]
                              [--out FILE.json]

``tool_mix_shift``: ``wfcommons-pegasus`` with the montage and soykb workflow
families moved to the last 19 % of the time span
(:func:`predictor.data.scenarios.late_groups`), so that the test part holds
tools the training part never saw; ``predictor evaluate`` on it and on the
original log, and the ``resources`` figures of both (the served allocate
decision's and the batch model's duration MAE and 80 % interval coverage).

``sparse_load``: ``azure-llm-2023`` with its clock slowed 200 times
(:func:`predictor.data.scenarios.stretched`: 58 minutes become 8 days, and
76-88 % of each server's 60 s windows hold 0 to 2 calls), the original log,
and ``wfcommons-pegasus`` (intermittent: whole workflows start at once); the
``scaling`` figures of each: forecast MAE of the batch and the served online
forecaster against the last value, and under-provisioned windows and mean
replicas of the served scale decision (at its default and at matched cost)
against the HPA rule.

``block_runs``: ``azure-llm-2023``'s requests as the runs of 256-token prompt
blocks a prefix cache reads (:func:`predictor.data.scenarios.prefix_blocks`:
real arrival times and prompt lengths, shared system prompts and
conversation histories drawn; 80 % of the test part's keys are read once),
and ``cloudphysics-cache``; the ``cache`` figures of each at 5 % of the test
part's distinct keys: hit ratio of the cache the served preload decision
drives (``served``), of the tuned predictive cache, LRU and Belady, the
share of the LRU-to-Belady gap each closes, and the mean probability the
preload decision stated for the keys it proposed against the share of them
used within its horizon.

``many_task_types``: ``predictor simulate --events 200000 --seed 11`` without
costs, as is and with each task type split 40 ways per workflow run
(:func:`predictor.data.scenarios.split_task_types`: 200 task types, each served
by the same two to four servers, so each (server, task type) pair is seen
seldom); the ``selection`` figures of each: latency per success (mean
latency over success rate, a failed call counted at its latency) of the served
select decision, the batch model, ``ewma``, ``best_fixed`` and ``random``, on
the test part and over all rounds. Costs are dropped so that the figure is the
one every policy optimizes: with costs, the served decision also weighs price.

Needs ``../shared/data`` beside the checkout (but for ``many_task_types``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
import orjson
from _support import ROOT, predictor_command

from predictor.data.scenarios import late_groups, prefix_blocks, split_task_types, stretched
from predictor.data.simulator import Simulator

SHARED = ROOT.parent / "shared" / "data"


def _evaluate(log: Path, folder: Path) -> dict:
    """``predictor evaluate LOG``'s report."""
    report = folder / f"{log.name}.report.json"
    subprocess.run([predictor_command(), "evaluate", str(log), "--report", str(report)],
                   check=True, capture_output=True)
    return json.loads(report.read_text())


def _resources(log: Path, folder: Path) -> dict:
    full = _evaluate(log, folder)
    section = full["resources"]
    return {"train_events": full["train_events"], "test_events": full["test_events"],
            "duration_mae_ms": section["duration_mae_ms"],
            "interval_coverage_80_served": section.get("interval_coverage_80_served"),
            "interval_coverage_80_batch": section.get("interval_coverage_80")}


def _scaling(log: Path, folder: Path) -> dict:
    section = _evaluate(log, folder)["scaling"]
    if "reason" in section:
        return {"reason": section["reason"]}
    keys = ("window_s", "window_note", "scored_windows", "forecast_mae", "underprovisioned_pct",
            "mean_replicas", "decision_quantile")
    return {key: section[key] for key in keys if key in section}


def _read(name: str) -> list[dict]:
    source = SHARED / name
    if not source.exists():
        sys.exit(f"{source} not found: ../shared/data must be beside the checkout")
    with gzip.open(source) as handle:
        return [orjson.loads(line) for line in handle]


def _write(records: list[dict], path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def tool_mix_shift(folder: Path) -> dict:
    shifted = late_groups(_read("wfcommons-pegasus.jsonl.gz"), {"montage", "soykb"},
                          key=lambda r: r["workflow_id"].split("/")[1])
    log = _write(shifted, folder / "pegasus-late-montage-soykb.jsonl")
    return {"tool_mix_shift": _resources(log, folder),
            "original": _resources(SHARED / "wfcommons-pegasus.jsonl.gz", folder)}


def sparse_load(folder: Path) -> dict:
    log = _write(stretched(_read("azure-llm-2023.jsonl.gz"), 200.0),
                 folder / "azure-llm-2023-x200.jsonl")
    return {"azure_x200": _scaling(log, folder),
            "azure": _scaling(SHARED / "azure-llm-2023.jsonl.gz", folder),
            "pegasus": _scaling(SHARED / "wfcommons-pegasus.jsonl.gz", folder)}


def _cache(log: Path, folder: Path) -> dict:
    section = _evaluate(log, folder)["cache"]
    if "reason" in section:
        return {"reason": section["reason"]}
    ratios = section["hit_ratio"]
    lru, belady = ratios["lru"], ratios["belady"]
    return {"cache_size": section["cache_size"], "accesses": section["accesses"],
            "hit_ratio": ratios,
            "gap_closed": {name: round((ratios[name] - lru) / (belady - lru), 3)
                           for name in ("served", "predictive") if belady > lru},
            "served_preload_precision": section.get("served_preload_precision"),
            "served_preload_share": section.get("served_preload_share"),
            "served_preload_probability": section.get("served_preload_probability")}


def block_runs(folder: Path) -> dict:
    log = _write(prefix_blocks(_read("azure-llm-2023.jsonl.gz")),
                 folder / "azure-llm-2023-prefix-blocks.jsonl")
    return {"block_runs": _cache(log, folder),
            "cloudphysics": _cache(SHARED / "cloudphysics-cache.jsonl.gz", folder)}


def _selection(log: Path, folder: Path) -> dict:
    section = _evaluate(log, folder)["selection"]
    if "reason" in section:
        return {"reason": section["reason"]}

    def per_success(figures: dict) -> dict:
        return {policy: round(latency / figures["success_rate"][policy], 1)
                for policy, latency in figures["mean_latency_ms"].items()
                if latency is not None and figures["success_rate"][policy]}

    return {"task_types": len(section["candidates"]),
            "test_decisions": section["decisions"],
            "latency_per_success_ms": per_success(section),
            "all_rounds_latency_per_success_ms": per_success(section["all_rounds"])}


def many_task_types(folder: Path) -> dict:
    records = []
    for record in Simulator(seed=11).records(200_000):
        record.pop("cost_usd", None)
        records.append(record)
    plain = _write(records, folder / "simulation-200k-seed-11-no-cost.jsonl")
    split = _write(split_task_types(records, 40),
                   folder / "simulation-200k-seed-11-no-cost-40-ways.jsonl")
    return {"many_task_types": _selection(split, folder), "five_task_types": _selection(
        plain, folder)}


SCENARIOS = {"tool_mix_shift": tool_mix_shift, "sparse_load": sparse_load,
             "block_runs": block_runs, "many_task_types": many_task_types}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-scenarios-"))
    report: dict = {"command": " ".join(["python", "bench/scenarios.py", *sys.argv[1:]])}
    for name in args.only:
        report.update(SCENARIOS[name](folder))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
