"""Parallel JSONL ingestion: a failed append leaves a prefix of the file stored."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from predictor.data import parallel
from predictor.data.readers import ReadSummary
from predictor.data.store import SQLiteEventStore


def _log(path, n: int):
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"ts": float(i), "server": f"s{i % 3}", "tool": "t"}) + "\n")
    return path


class _SlowStore(SQLiteEventStore):
    """Appends take a while (a slow disk: chunks queue up behind them), and one fails."""

    fail_on: int | None = None

    def append_rows(self, rows):
        self.appends.append(len(rows))
        if len(self.appends) == self.fail_on:
            raise OSError("disk full")
        time.sleep(0.05)
        return super().append_rows(rows)


def _store(tmp_path, fail_on=None) -> _SlowStore:
    store = _SlowStore(tmp_path / "p.db")
    store.appends, store.fail_on = [], fail_on
    return store


def test_a_failed_append_leaves_a_prefix_of_the_file_and_is_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "_CHUNK", 100)
    log = _log(tmp_path / "calls.jsonl", 2_000)
    store, summary = _store(tmp_path, fail_on=2), ReadSummary()
    with pytest.raises(OSError, match="disk full"):
        parallel.ingest_jsonl_parallel(store, log, summary, workers=1)
    stored = [r.epoch for r in store.read()]
    assert stored == [float(i) for i in range(store.appends[0])]  # the first append only
    assert len(store.appends) == 2 and summary.accepted == len(stored)
    store.close()


def _stored(store) -> list[bytes]:
    import sqlite3

    with sqlite3.connect(store.path) as conn:
        return [row[0] for row in conn.execute("SELECT record FROM events ORDER BY id")]


def test_workers_reading_byte_ranges_store_what_a_stream_stores(tmp_path, monkeypatch):
    # Blank and whitespace lines, CRLF, an invalid line and a last line without its
    # newline: the workers' own reads of the file split it as this process does.
    monkeypatch.setattr(parallel, "_CHUNK", 3)
    lines = [b'{"ts": 1, "server": "a", "tool": "t"}\r', b"", b"   ",
             b'{"ts": 2, "server": "b", "tool": "t"}', b'{"ts": "x"}',
             b'  {"ts": 3, "kind": "health", "server": "a", "reachable": true}  ',
             b'{"ts": 4, "server": "c", "tool": "t"}']
    log = tmp_path / "calls.jsonl"
    log.write_bytes(b"\n".join(lines))
    results = []
    for name, source in (("file", log), ("stream", open(log, "rb"))):  # noqa: SIM115
        store, summary = SQLiteEventStore(tmp_path / f"{name}.db"), ReadSummary()
        parallel.ingest_jsonl_parallel(store, source, summary, workers=1)
        results.append((_stored(store), summary.read, summary.accepted,
                        [(e.line, e.field) for e in summary.errors]))
        store.close()
    assert results[0] == results[1]
    assert results[0][1:] == (5, 4, [(5, "ts")])
    assert results[0][0][0] == b'{"ts": 1, "server": "a", "tool": "t"}'


def test_a_file_changed_while_ingested_stores_what_was_validated(tmp_path, monkeypatch):
    # The workers read the file again: if it changed meanwhile, their checksum differs
    # and this process parses its own lines, so each stored row is a line it validated.
    log = _log(tmp_path / "calls.jsonl", 50)
    read_range = parallel._parse_range

    def after_a_rewrite(name, path, chunk):
        with open(path, "r+b") as handle:  # same length, other servers, one line invalid
            text = handle.read().replace(b'"s1"', b'"zz"').replace(b'"ts": 7.0', b'"ts": -1')
            handle.seek(0)
            handle.write(text)
        return read_range(name, path, chunk)

    monkeypatch.setattr(parallel, "_parse_range", after_a_rewrite)
    # Threads, so that the workers run the rewrite above (a process could not receive it).
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", ThreadPoolExecutor)
    store, summary = SQLiteEventStore(tmp_path / "p.db"), ReadSummary()
    parallel.ingest_jsonl_parallel(store, log, summary, workers=1)
    assert summary.accepted == 50 and not summary.errors
    assert [r.server for r in store.read()] == [f"s{i % 3}" for i in range(50)]
    store.close()
