"""Parallel JSONL ingestion: a failed append leaves a prefix of the file stored."""

from __future__ import annotations

import json
import time

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
