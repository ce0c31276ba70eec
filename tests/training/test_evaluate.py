from __future__ import annotations

import json

import pytest

from predictor.api.select import DEFAULT_WEIGHTS
from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.training.evaluate import FAMILIES, evaluate_frame


@pytest.fixture(scope="module")
def sim_report():
    records = [parse_record(r) for r in Simulator(seed=4).records(25_000)]
    return evaluate_frame(records_to_frame(records)).report


def test_report_has_the_contract_shape(sim_report):
    r = sim_report
    assert r["events"] == 25_000 and r["rejected"] == 0
    assert r["train_events"] + r["test_events"] == 25_000
    for family in FAMILIES:
        assert "reason" not in r[family], (family, r[family])
    assert set(r["performance"]["latency_mae_ms"]) == {"batch", "online", "ewma", "global_mean"}
    assert set(r["performance"]["success_auc"]) >= {"batch", "online", "ewma"}
    assert set(r["selection"]["mean_latency_ms"]) == {"served", "model", "ewma", "random",
                                                      "best_fixed"}
    assert set(r["selection"]["all_rounds"]["mean_latency_ms"]) == {"served", "ewma", "random"}
    assert r["selection"]["weights"] == DEFAULT_WEIGHTS
    assert set(r["resources"]["duration_mae_ms"]) == {"batch", "online", "group_mean", "served"}
    assert 0.0 <= r["resources"]["interval_coverage_80_served"] <= 1.0
    assert set(r["cache"]["hit_ratio"]) == {"predictive", "lru", "belady", "served"}
    for figure in ("underprovisioned_pct", "mean_replicas"):
        assert set(r["scaling"][figure]) - {"decision_at_hpa_cost"} == {
            "predictive", "reactive", "decision", "decision_matched_cost", "served"}
        assert r["scaling"][figure]["served"] == r["scaling"][figure]["decision"]
    if "decision_at_hpa_cost" in r["scaling"]["mean_replicas"]:
        # Compared after the fact at exactly the HPA rule's spending.
        assert (r["scaling"]["mean_replicas"]["decision_at_hpa_cost"]
                == r["scaling"]["mean_replicas"]["reactive"])
    assert r["scaling"]["decision_quantile"]["decision"] == 0.9
    assert set(r["risk"]["roc_auc"]) >= {"model", "served", "thresholds", "recent_error_rate"}
    for family in ("performance", "selection", "resources", "cache", "scaling", "risk"):
        assert r[family]["variant"] in ("online", "batch"), family
    chosen = r["risk"]["variant"]
    assert r["risk"]["roc_auc"]["model"] == r["risk"]["roc_auc"][chosen]
    json.dumps(r)  # serializable as it stands


def test_models_beat_their_baselines_on_the_simulation(sim_report):
    p = sim_report["performance"]
    assert p["latency_mae_ms"]["batch"] < p["latency_mae_ms"]["ewma"]
    assert p["success_auc"]["batch"] > p["success_auc"]["ewma"]
    assert p["output_tokens_mae"]["batch"] < p["output_tokens_mae"]["ewma"]
    c = sim_report["cache"]["hit_ratio"]
    assert c["predictive"] > c["lru"]
    assert c["belady"] >= c["lru"]
    r = sim_report["risk"]["roc_auc"]
    assert r["model"] > max(r["thresholds"], r["recent_error_rate"])
    s = sim_report["selection"]["mean_latency_ms"]
    assert s["model"] < s["random"]
    assert s["served"] < s["random"]
    # At DESIGN's weights (cost .20) the served selector spends less than a latency
    # router, on the test part and over every round (what it trades latency for).
    selection = sim_report["selection"]
    for figures in (selection, selection["all_rounds"]):
        assert figures["mean_cost_usd"]["served"] < figures["mean_cost_usd"]["ewma"]
    assert sim_report["cache"]["hit_ratio"]["served"] > c["lru"]
    assert r["served"] > max(r["thresholds"], r["recent_error_rate"])
    d = sim_report["resources"]["duration_mae_ms"]
    assert d["batch"] < d["group_mean"]


def _calls(n: int, **fields):
    return [parse_record({"ts": float(i), "server": "only", "tool": "t", **fields})
            for i in range(n)]


@pytest.mark.parametrize(
    "records",
    [
        pytest.param(_calls(300, input_tokens=10, output_tokens=20), id="no-latency"),
        pytest.param(_calls(300, latency_ms=50.0), id="one-server-no-cache-keys"),
        pytest.param([parse_record({"ts": 0, "server": "s", "kind": "health",
                                    "reachable": True})], id="health-only"),
        pytest.param(_calls(5, latency_ms=1.0, cache_key="k"), id="tiny"),
    ],
)
def test_any_valid_log_gives_a_report_with_reasons(records):
    report = evaluate_frame(records_to_frame(records)).report
    for family in FAMILIES:
        section = report[family]
        assert isinstance(section, dict)
        if "reason" in section:
            assert "evaluation failed" not in section["reason"], section["reason"]


def test_worker_processes_do_not_change_the_report():
    frame = records_to_frame([parse_record(r) for r in Simulator(seed=12).records(6_000)])
    serial = evaluate_frame(frame, n_jobs=1).report
    parallel = evaluate_frame(frame, n_jobs=2).report
    assert json.dumps(serial) == json.dumps(parallel)  # same figures, same order
    assert list(serial)[5:] == list(FAMILIES)


def test_evaluate_log_starts_its_workers_first_and_they_read_a_large_log(tmp_path,
                                                                        monkeypatch):
    """``evaluate_log`` reads a large log with the workers that then evaluate it: the frame
    of one pass, handed on with the pool (what the pool changes in an evaluation is
    nothing: ``test_worker_processes_do_not_change_the_report``)."""
    import orjson
    import pandas as pd

    import predictor.training.evaluate as evaluate
    import predictor.training.ranges as ranges
    from predictor.data.readers import ReadSummary
    from predictor.training.workers import WorkerPool

    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n"
                             for r in Simulator(seed=12).records(2_000)))
    cut, read, handed = ranges._cuts, [], []
    monkeypatch.setattr(ranges, "_cuts", lambda *args: read.append(1) or cut(*args))
    monkeypatch.setattr(ranges, "MIN_BYTES", 0)
    monkeypatch.setattr(evaluate, "evaluate_frame",
                        lambda frame, **options: handed.append((frame, options)) or "done")
    assert evaluate.evaluate_log(str(log), n_jobs=2) == "done"
    (frame, options), = handed
    assert read and isinstance(options["pool"], WorkerPool) and options["rejected"] == 0
    pd.testing.assert_frame_equal(frame, evaluate.load_log(str(log), ReadSummary()))
    handed.clear()
    evaluate.evaluate_log(str(log), n_jobs=1)  # one process: no pool, read in one pass
    assert "pool" not in handed[0][1] and len(read) == 1


def test_a_log_without_task_types_is_judged_on_the_tools_several_servers_serve():
    import random

    rng = random.Random(7)
    records = []
    for i in range(3_000):
        server = rng.choice(["fast", "slow"])  # a random logging policy: the replay is fair
        latency = rng.expovariate(1 / (40.0 if server == "fast" else 400.0))
        records.append(parse_record({"ts": float(i), "server": server, "tool": "lookup",
                                     "latency_ms": latency}))
    section = evaluate_frame(records_to_frame(records)).report["selection"]
    assert section["task_type_from_tool"] == 3_000
    assert section["candidates"] == {"lookup": 2}
    # The served selector learns that "fast" is fast: its matched calls cost a fraction of
    # the random policy's.
    latency = section["mean_latency_ms"]
    assert latency["served"] < 0.5 * latency["random"]


def test_without_costs_the_served_selector_takes_less_time_per_success_than_ewma():
    """With nothing to trade for cost, the served selector at its default weights takes less
    time per success than EWMA (mean latency over success rate: a failure is retried) and
    succeeds at least as often, on the test part and over every round."""
    from predictor.training.eval_selection import fit_selection, score_selection
    from predictor.training.features import Features

    records = [parse_record({k: v for k, v in r.items() if k != "cost_usd"})
               for r in Simulator(seed=4).records(25_000)]
    features = Features.of(records_to_frame(records))
    section, _ = score_selection(features, fit_selection(features))
    assert section["weights"] == DEFAULT_WEIGHTS
    for figures in (section, section["all_rounds"]):
        latency, success = figures["mean_latency_ms"], figures["success_rate"]
        assert latency["served"] / success["served"] < latency["ewma"] / success["ewma"]
        assert success["served"] >= success["ewma"]
