"""The fast line check accepts only what pydantic accepts, with the same store row."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from predictor.data.fast_validation import quick_record, quick_row
from predictor.data.ingest import ingest_files
from predictor.data.parallel import _chunks
from predictor.data.schema import RecordError, parse_record, record_to_json
from predictor.data.simulator import Simulator
from predictor.data.store import open_store


def _pydantic_row(line: bytes) -> tuple | None:
    try:
        record = parse_record(orjson.loads(line))
    except (RecordError, orjson.JSONDecodeError):
        return None
    return record.epoch, record.kind, record.server, getattr(record, "tool", None)


def test_what_the_fast_check_accepts_pydantic_accepts_with_the_same_row(telemetry_variants):
    lines = telemetry_variants
    accepted = 0
    for line in lines:
        row = quick_row(line)
        if row is None:
            continue
        accepted += 1
        assert _pydantic_row(line) == row[:4], line
        assert row[4] is line
    # Narrower than pydantic (no coercion, no unknown fields), but not empty: the corpus
    # holds about 190 lines in the contract's plain form.
    assert 150 < accepted < sum(_pydantic_row(line) is not None for line in lines)


def test_epoch_seconds_with_six_decimals_or_fewer_agree_with_pydantic():
    rng = random.Random(5)
    for _ in range(3000):
        text = f"{rng.randint(0, 2 * 10**10)}.{rng.randint(0, 10**6 - 1):06d}"[:rng.randint(11, 18)]
        line = b'{"ts":%s,"server":"a","tool":"t"}' % text.rstrip(".").encode()
        row = quick_row(line)
        if float(text.rstrip(".")) <= 2e10:
            assert row is not None and row[:4] == _pydantic_row(line), line
        else:
            assert row is None


def _same_record(fast, slow) -> bool:
    typed = {name: (type(value), value) for name, value in fast.__dict__.items()}
    return (fast == slow and record_to_json(fast) == record_to_json(slow)
            and typed == {name: (type(value), value) for name, value in slow.__dict__.items()})


def test_the_fast_record_is_the_one_pydantic_makes(telemetry_variants):
    accepted = 0
    for line in telemetry_variants:
        fast = quick_record(line)
        assert (fast is None) == (quick_row(line) is None), line
        if fast is not None:
            accepted += 1
            assert _same_record(fast, parse_record(orjson.loads(line))), line
    assert accepted > 150


def test_every_simulated_record_takes_the_fast_path():
    for raw in Simulator(seed=3).records(3000):
        line = orjson.dumps(raw)
        row = quick_row(line)
        assert row is not None, line
        assert row[:4] == _pydantic_row(line)
        assert _same_record(quick_record(line), parse_record(raw))


@pytest.mark.parametrize("field,value", [("attrs", None), ("server", 7), ("success", "true"),
                                         ("latency_ms", "12"), ("region", "eu")])
def test_what_only_pydantic_can_decide_goes_to_it(field, value):
    call = {"ts": "2026-01-05T00:00:00Z", "server": "a", "tool": "t"}
    line = json.dumps({**call, field: value}).encode()
    assert quick_row(line) is None


def test_ingest_stores_the_same_rows_as_record_by_record_parsing(tmp_path, telemetry_variants):
    log = tmp_path / "mixed.jsonl"
    lines = telemetry_variants
    log.write_bytes(b"\n".join(lines) + b"\n\n  \n")
    summary = ingest_files([log], tmp_path / "p.db")
    expected = [row for row in map(_pydantic_row, lines) if row is not None]
    assert summary.accepted == len(expected)
    assert summary.read == len(lines)
    assert summary.rejected == len(lines) - len(expected)
    with open_store(tmp_path / "p.db") as store:
        stored = [(r.epoch, r.kind, r.server, getattr(r, "tool", None)) for r in store.read()]
    assert sorted(stored, key=repr) == sorted(expected, key=repr)
    # Errors name the line they came from (1-based, blank lines counted).
    bad = next(i for i, line in enumerate(lines, 1) if _pydantic_row(line) is None)
    assert summary.errors[0].line == bad


def test_chunks_keep_line_numbers_across_blocks(monkeypatch):
    import io

    monkeypatch.setattr("predictor.data.parallel._BLOCK", 7)
    text = b"".join(b"line%d\n" % i for i in range(1, 26)) + b"last"
    monkeypatch.setattr("predictor.data.parallel._CHUNK", 10)
    chunks = list(_chunks(io.BytesIO(text)))
    assert [(c.first, len(c.lines)) for c in chunks] == [(1, 10), (11, 10), (21, 6)]
    assert chunks[1].lines[0] == b"line11" and chunks[2].lines[-1] == b"last"
    # The byte ranges tile the text: what a worker reads there is the chunk.
    assert [(c.offset, c.size) for c in chunks] == [(0, 61), (61, 70), (131, 39)]
    assert sum(c.size for c in chunks) == len(text)


def test_the_fast_structs_name_the_contract_fields():
    # A field added to the contract must be added here too, or its lines leave the fast path.
    from predictor.data import fast_validation
    from predictor.data.schema import CALL_FIELDS, HEALTH_FIELDS

    assert set(fast_validation._Call.__struct_fields__) == CALL_FIELDS
    assert set(fast_validation._Health.__struct_fields__) == HEALTH_FIELDS
