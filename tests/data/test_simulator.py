from __future__ import annotations

import pandas as pd
import pytest

from predictor.data.schema import parse_record
from predictor.data.simulator import CATALOG, RECOVERY_SUCCESS, Simulator, write_simulation


def test_same_seed_same_bytes_and_exact_count(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_simulation(a, 3000, seed=5)
    write_simulation(b, 3000, seed=5)
    write_simulation(c, 3000, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert len(a.read_bytes().splitlines()) == 3000


def test_every_record_is_valid_and_in_time_order(sim_records):
    parsed = [parse_record(r) for r in sim_records]
    epochs = [r.epoch for r in parsed]
    assert epochs == sorted(epochs)
    kinds = {r.kind for r in parsed}
    assert kinds == {"call", "health"}


@pytest.fixture(scope="module")
def calls() -> pd.DataFrame:
    frame = pd.DataFrame(list(Simulator(seed=2).records(60_000)))
    return frame[frame["kind"].isna()].copy()


def test_several_servers_per_task_type_with_different_latency(calls):
    for task_type, servers in CATALOG.items():
        assert len(servers) >= 2
        seen = calls[calls["task_type"] == task_type]
        assert set(seen["server"]) == set(servers)
    search = calls[(calls["task_type"] == "search") & (calls["concurrency"] <= 1)]
    medians = search.groupby("server")["latency_ms"].median()
    assert medians.max() > 1.4 * medians.min()
    spread = calls[calls["task_type"] == "search"].groupby("server")["latency_ms"].quantile(0.95)
    assert spread.max() > 1.4 * spread.min()


def test_latency_grows_with_load_and_input_tokens(calls):
    ok = calls[calls["success"]]
    corr = ok[["latency_ms", "concurrency", "input_tokens"]].corr(method="spearman")
    assert corr.loc["latency_ms", "concurrency"] > 0.1
    assert corr.loc["latency_ms", "input_tokens"] > 0.1


def test_failures_have_distinct_types_and_rise_with_load(calls):
    types = set(calls["error_type"].dropna())
    assert {"timeout", "connection", "tool_error", "invalid_params"} <= types
    high = calls["concurrency"] > calls["concurrency"].quantile(0.9)
    assert (1 - calls[high]["success"].mean()) > (1 - calls[~high]["success"].mean())


def test_recovery_outcomes_follow_the_documented_truth(calls):
    failed = calls[calls["recovery"].notna()]
    assert set(failed["recovery"]) == {"retry", "fallback", "degrade", "abort"}
    assert not failed[failed["recovery"] == "abort"]["recovered"].any()
    invalid = failed[(failed["error_type"] == "invalid_params") & (failed["recovery"] == "retry")]
    assert not invalid["recovered"].any()
    conn = failed[failed["error_type"] == "connection"]
    by = conn.groupby("recovery")["recovered"].mean()
    assert by["fallback"] > by["retry"]
    assert RECOVERY_SUCCESS["rate_limit"]["retry"] > RECOVERY_SUCCESS["rate_limit"]["abort"]


def test_cache_keys_repeat_in_sequences(calls):
    keys = calls["cache_key"]
    counts = keys.value_counts()
    assert counts.iloc[0] > 20  # popular items
    assert (counts == 1).sum() > 100  # and one-hit wonders
    # Workflow-topic sequences recur: the same key is followed by the same key.
    pairs = calls.sort_values(["workflow_id", "ts"]).groupby("workflow_id")["cache_key"]
    successors = pd.DataFrame({"key": keys, "next": pairs.shift(-1)}).dropna()
    repeated = successors.groupby(["key", "next"]).size()
    assert (repeated >= 3).sum() > 50


def test_workflows_have_phases_and_health_probes_exist(sim_records):
    frame = pd.DataFrame(sim_records)
    calls = frame[frame["kind"].isna()]
    per_run = calls.groupby("workflow_id")["phase"].nunique()
    assert per_run.max() >= 3
    health = frame[frame["kind"] == "health"]
    assert set(health["server"]) == {s for servers in CATALOG.values() for s in servers}
