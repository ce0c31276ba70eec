from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pytest

from predictor.data.readers import ReadSummary, StrictModeError, read_records

GOOD = [{"ts": i, "server": "s", "tool": "t", "latency_ms": 10.0 + i} for i in range(6)]
BAD = {"ts": 99, "server": "s", "tool": "t", "latency_ms": -5}


def _jsonl(records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_bad_line_in_the_middle_keeps_the_rest_and_names_it(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(_jsonl(GOOD[:3] + [BAD] + GOOD[3:]))
    summary = ReadSummary()
    records = list(read_records(path, summary))
    assert [r.latency_ms for r in records] == [10, 11, 12, 13, 14, 15]
    assert (summary.read, summary.accepted, summary.rejected) == (7, 6, 1)
    err = summary.errors[0]
    assert (err.line, err.field, err.file) == (4, "latency_ms", str(path))


def test_invalid_json_and_blank_lines(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(_jsonl(GOOD[:1]) + b"\n{not json\n" + _jsonl(GOOD[1:2]))
    summary = ReadSummary()
    assert len(list(read_records(path, summary))) == 2
    assert summary.errors[0].line == 3
    assert summary.errors[0].field == "record"
    assert "invalid JSON" in summary.errors[0].reason


def test_strict_mode_raises_at_first_bad_record(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(_jsonl(GOOD[:2] + [BAD]))
    with pytest.raises(StrictModeError) as info:
        list(read_records(path, strict=True))
    assert info.value.error.line == 3


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "calls.jsonl.gz"
    path.write_bytes(gzip.compress(_jsonl(GOOD)))
    assert len(list(read_records(path))) == 6


def test_csv_with_line_numbers_and_unknown_columns(tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text(
        "ts,server,tool,latency_ms,success,region,size\n"
        "2026-01-01T00:00:00Z,a,t,12.5,true,eu,3\n"
        "2026-01-01T00:00:01Z,a,t,-1,true,eu,3\n"
        "1767225602,a,t,,false,us,4.5\n"
    )
    summary = ReadSummary()
    records = list(read_records(path, summary))
    assert [r.latency_ms for r in records] == [12.5, None]
    assert records[1].success is False
    assert records[0].attrs == {"region": "eu", "size": 3}
    assert records[1].attrs == {"region": "us", "size": 4.5}
    assert summary.errors[0].line == 3 and summary.errors[0].field == "latency_ms"


def test_parquet_rows(tmp_path):
    path = tmp_path / "calls.parquet"
    frame = pd.DataFrame(
        {
            "ts": [1.0, 2.0, 3.0],
            "server": ["a", "b", "c"],
            "tool": "t",
            "cache_key": [1, 2, 3],
            "latency_ms": [1.0, -1.0, None],
        }
    )
    frame.to_parquet(path)
    summary = ReadSummary()
    records = list(read_records(path, summary))
    assert [r.cache_key for r in records] == ["1", "3"]
    assert summary.errors[0].line == 2


def test_stdin(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(gzip.compress(_jsonl(GOOD))))
    monkeypatch.setattr("sys.stdin", fake)
    assert len(list(read_records("-"))) == 6


def test_shared_real_traces_load_with_zero_rejects(shared_data):
    expected = {
        "azure-llm-2023.jsonl.gz": 28_185,
        "cloudphysics-cache.jsonl.gz": 113_872,
        "wfcommons-pegasus.jsonl.gz": 23_669,
    }
    for name, count in expected.items():
        summary = ReadSummary()
        assert sum(1 for _ in read_records(shared_data / name, summary)) == count
        assert summary.rejected == 0


def test_frame_keeps_one_string_object_per_distinct_value():
    import orjson

    from predictor.data.frame import records_to_frame
    from predictor.data.schema import parse_record

    # Each record parses its own copies of its strings, as a reader's would.
    lines = [orjson.dumps({"ts": t, "server": f"srv-{t % 2}", "tool": "search",
                           "task_type": None if t == 3 else "q"}) for t in range(6)]
    frame = records_to_frame(parse_record(orjson.loads(line)) for line in lines)
    servers, tools = frame["server"].tolist(), frame["tool"].tolist()
    assert servers == ["srv-0", "srv-1"] * 3 and tools == ["search"] * 6
    assert servers[0] is servers[2] is servers[4] and servers[1] is servers[3]
    assert len({id(tool) for tool in tools}) == 1
    assert frame["task_type"].isna().tolist() == [False, False, False, True, False, False]


def test_rows_without_attrs_share_one_read_only_dict_and_records_get_their_own():
    import pickle

    from predictor.data.frame import NO_ATTRS, frame_records, records_to_frame
    from predictor.data.schema import parse_record

    frame = records_to_frame([parse_record({"ts": t, "server": "s", "tool": "t"})
                              for t in range(3)]
                             + [parse_record({"ts": 3, "server": "s", "tool": "t",
                                              "region": "eu"})])
    attrs = frame["attrs"].tolist()
    assert attrs == [{}, {}, {}, {"region": "eu"}]
    assert all(a is NO_ATTRS for a in attrs[:3])
    with pytest.raises(TypeError, match="read-only"):
        attrs[0]["region"] = "us"
    with pytest.raises(TypeError, match="read-only"):
        attrs[0].update(region="us")
    assert NO_ATTRS == {}
    # Pickled (a features file, a worker's copy) it stays the one shared object.
    assert pickle.loads(pickle.dumps(frame, protocol=5))["attrs"][0] is NO_ATTRS
    # Each record built from the frame has its own attrs, which it may change.
    records = list(frame_records(frame))
    assert [r.attrs for r in records] == attrs
    assert records[0].attrs is not NO_ATTRS and records[3].attrs is not attrs[3]
    records[0].attrs["region"] = "us"
    assert NO_ATTRS == {} and records[1].attrs == {}


def test_records_rebuilt_from_the_frame_are_the_records_read():
    """frame_records builds each record field by field (as model_construct would from its
    present values): the same values, types, field order, and set of fields given."""
    from predictor.data.frame import frame_records, records_to_frame
    from predictor.data.schema import parse_record
    from predictor.data.simulator import Simulator

    records = [parse_record(r) for r in Simulator(seed=3).records(2000)] + [
        parse_record({"ts": 5.0, "server": "x", "tool": "t", "attrs": {"region": "eu"},
                      "error_type": "timeout"}),
        parse_record({"ts": 6.0, "server": "x", "kind": "health", "reachable": True}),
        parse_record({"ts": 7.0, "server": "x", "tool": "t", "input_tokens": 2**60,
                      "success": False})]
    records.sort(key=lambda r: r.epoch)
    frame = records_to_frame(records)
    rebuilt = list(frame_records(frame))
    assert rebuilt == records
    assert {type(r) for r in rebuilt} == {type(r) for r in records}
    for got, read in zip(rebuilt, records, strict=True):
        # The fields (``epoch`` is a cached property: the sort above stored it in each read).
        fields = {name: value for name, value in read.__dict__.items() if name != "epoch"}
        assert list(got.__dict__.items()) == list(fields.items())
        assert [type(v) for v in got.__dict__.values()] == [type(v) for v in fields.values()]
        assert got.__pydantic_fields_set__ == {
            name for name, value in got.__dict__.items() if value is not None}
    # Without the columns a record can do without (kind, success, attrs), the same calls.
    bare = list(frame_records(frame[frame["kind"] == "call"].drop(
        columns=["kind", "success", "attrs"])))
    assert [(r.kind, r.success, r.attrs) for r in bare] == [
        ("call", r.error_type is None, {}) for r in records if r.kind == "call"]


def test_a_frame_read_from_values_is_the_frame_read_from_records(tmp_path):
    from predictor.data.frame import records_to_frame
    from predictor.data.simulator import Simulator

    lines = [json.dumps(r) for r in Simulator(seed=3).records(400)]
    # Lines only pydantic takes (epoch milliseconds, a number as a string, an unknown
    # field that goes to attrs, a success implied by an error) and one it refuses.
    lines += ['{"ts": 1767571200123, "server": "a", "tool": "t", "latency_ms": "12.5"}',
              '{"ts": 1767571201, "server": "a", "tool": "t", "region": "eu"}',
              '{"ts": 1767571202, "server": "b", "tool": "t", "error_type": "timeout"}',
              '{"ts": 1767571203, "kind": "health", "server": "b", "reachable": false}',
              '{"ts": 1767571204, "server": "b"}', ""]
    log = tmp_path / "mixed.jsonl"
    log.write_text("\n".join(lines) + "\n")
    from_records, from_values = ReadSummary(), ReadSummary()
    expected = records_to_frame(read_records(log, from_records))
    read = list(read_records(log, from_values, values=True))
    got = records_to_frame(read)
    pd.testing.assert_frame_equal(got, expected)
    for column in expected.columns:  # the same Python types, not only equal values
        assert list(map(type, got[column])) == list(map(type, expected[column])), column
    assert from_values.as_dict() == from_records.as_dict()
    assert (from_values.read, from_values.accepted, from_values.rejected) == (405, 404, 1)
    # The values path took the simulator's lines; pydantic's records, the others.
    assert sum(type(r).__name__ == "RecordValues" for r in read) >= 400
