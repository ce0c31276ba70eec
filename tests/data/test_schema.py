from __future__ import annotations

from datetime import UTC, datetime

import pytest

from predictor.data.schema import (
    CallRecord,
    HealthRecord,
    RecordError,
    parse_record,
    record_to_json,
)

GOOD = {"ts": "2026-01-01T00:00:00Z", "server": "exa", "tool": "web_search"}


def test_minimal_call_defaults_to_success_and_kind_call():
    rec = parse_record(GOOD)
    assert isinstance(rec, CallRecord)
    assert rec.kind == "call"
    assert rec.success is True
    assert rec.ts == datetime(2026, 1, 1, tzinfo=UTC)


def test_error_type_without_success_means_failure():
    rec = parse_record({**GOOD, "error_type": "timeout"})
    assert rec.success is False


def test_timestamps_are_normalized_to_utc():
    assert parse_record({**GOOD, "ts": "2026-01-01T02:00:00+02:00"}).ts == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert parse_record({**GOOD, "ts": 1767225600}).ts == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_record({**GOOD, "ts": 1767225600.5}).epoch == pytest.approx(1767225600.5)
    naive = parse_record({**GOOD, "ts": "2026-01-01T00:00:00"})
    assert naive.ts.tzinfo is UTC


def test_unknown_fields_are_kept_in_attrs():
    rec = parse_record(
        {
            **GOOD,
            "region": "eu",
            "retries": 2,
            "attrs": {"a": 1},
            "nested": {"x": [1]},
            "empty": None,
        }
    )
    assert rec.attrs == {"a": 1, "region": "eu", "retries": 2, "nested": '{"x":[1]}'}


def test_numeric_identifiers_become_strings():
    rec = parse_record({**GOOD, "cache_key": 42932745, "server": 7})
    assert rec.cache_key == "42932745"
    assert rec.server == "7"


def test_health_record():
    rec = parse_record(
        {
            "kind": "health",
            "ts": 0,
            "server": "exa",
            "reachable": False,
            "mem_pct": 91.5,
            "queue_depth": 3,
        }
    )
    assert isinstance(rec, HealthRecord)
    assert rec.reachable is False and rec.mem_pct == 91.5


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"ts": None}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"server": None}, "server"),
        ({"server": ""}, "server"),
        ({"tool": None}, "tool"),
        ({"latency_ms": -5}, "latency_ms"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": float("inf")}, "latency_ms"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"cost_usd": -0.1}, "cost_usd"),
        ({"success": "maybe"}, "success"),
        ({"success": True, "error_type": "timeout"}, "success"),
        ({"cpu_pct": 100.5}, "cpu_pct"),
        ({"cpu_pct": -1}, "cpu_pct"),
        ({"mem_mb": -2}, "mem_mb"),
        ({"concurrency": -1}, "concurrency"),
        ({"attempt": 0}, "attempt"),
        ({"recovery": "pray"}, "recovery"),
        ({"attrs": {"x": [1, 2]}}, "attrs.x"),
        ({"attrs": {"x": float("nan")}}, "attrs"),
        ({"kind": "metric"}, "kind"),
    ],
)
def test_rejects_each_contract_violation_naming_the_field(patch, field):
    raw = {**GOOD, **patch}
    if patch.get("ts", 0) is None:
        del raw["ts"]
    with pytest.raises(RecordError) as info:
        parse_record({k: v for k, v in raw.items() if not (v is None and k in ("server", "tool"))})
    assert info.value.field.startswith(field)
    assert info.value.reason


def test_health_percentages_and_reachable_are_checked():
    with pytest.raises(RecordError) as info:
        parse_record({"kind": "health", "ts": 0, "server": "s", "reachable": True, "mem_pct": 120})
    assert info.value.field == "mem_pct"
    with pytest.raises(RecordError) as info:
        parse_record({"kind": "health", "ts": 0, "server": "s"})
    assert info.value.field == "reachable"


def test_non_object_record_is_rejected():
    with pytest.raises(RecordError) as info:
        parse_record([1, 2])
    assert info.value.field == "record"


def test_json_round_trip_is_lossless():
    import orjson

    rec = parse_record({**GOOD, "latency_ms": 12.5, "cache_key": "k", "region": "eu"})
    again = parse_record(orjson.loads(record_to_json(rec)))
    assert again == rec


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
def test_a_time_outside_the_calendar_in_utc_is_a_record_error(ts):
    # astimezone raises OverflowError, which pydantic does not turn into a validation error.
    with pytest.raises(RecordError) as info:
        parse_record({**GOOD, "ts": ts})
    assert info.value.field == "ts"
    assert "years 1-9999" in info.value.reason
