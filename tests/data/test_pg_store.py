"""The PostgreSQL event store: the SQLite store's guarantees, across processes."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from predictor.data.pg_store import MIGRATIONS, Leadership, PostgresEventStore
from predictor.data.schema import parse_record
from predictor.data.store import DuplicateBatch, open_store


def _records(n: int, server: str = "a", start: float = 0.0) -> list:
    return [parse_record({"ts": start + i, "server": server, "tool": "t", "latency_ms": 10 + i})
            for i in range(n)]


def test_appends_reads_and_migrations(pg_url):
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresEventStore)
        assert store.append_batch(_records(3)) == (1, 3)
        assert store.append_batch(_records(2, "b", start=0.5)) == (4, 5)
        assert store.last_id() == 5 and store.count() == 5
        assert [r.server for r in store.read()] == ["a", "b", "a", "b", "a"]
        assert [r.epoch for r in store.read(server="b")] == [0.5, 1.5]
        assert [i for i, _ in store.read_since(3)] == [4, 5]
        assert store.frame()["latency_ms"].tolist() == [10, 10, 11, 11, 12]
        with pytest.raises(DuplicateBatch):
            store.append_batch(_records(1), batch_key="k", reply=b"first")
            store.append_batch(_records(1), batch_key="k", reply=b"second")
        assert store.count() == 6  # the retry stored nothing
        store_id = store.store_id
    with psycopg.connect(pg_url) as conn:
        applied = [v for (v,) in conn.execute("SELECT version FROM schema_migrations "
                                              "ORDER BY version")]
    assert applied == [v for v, _ in MIGRATIONS]
    with open_store(pg_url) as again:  # reopening migrates nothing and keeps its identity
        assert again.store_id == store_id and again.count() == 6


_WRITER = """
import sys
from predictor.data.schema import parse_record
from predictor.data.store import open_store
url, name, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open_store(url) as store:
    for b in range(batches):
        store.append_batch([parse_record({"ts": b, "server": name, "tool": "t"})
                            for _ in range(7)])
"""


def test_a_follower_misses_nothing_while_processes_write_at_once(pg_url):
    open_store(pg_url).close()  # migrated before the writers race
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, f"w{k}", "40"])
               for k in range(3)]
    seen: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        with open_store(pg_url) as store:
            cursor = 0
            while True:
                rows = store.read_since(cursor, 50)
                seen.extend(i for i, _ in rows)
                cursor = rows[-1][0] if rows else cursor
                if not rows and stop.is_set():
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    stop.set()
    follower.join(timeout=60)
    # Ids are committed in the order they are numbered: a follower that only ever asks
    # "after my cursor" sees every one, once, in order.
    assert seen == list(range(1, 3 * 40 * 7 + 1))


def test_one_learner_holds_the_election_until_its_connection_ends(pg_url):
    first, second = Leadership(pg_url), Leadership(pg_url)
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire()
    first.release()  # as a killed process's connection would end
    assert second.try_acquire() and not first.still_held()
    second.release()


def test_commit_durability_leaves_the_flush_to_the_wal_writer(pg_url):
    strict, relaxed = open_store(pg_url), open_store(pg_url, durability="commit")
    try:
        shown = [s._write.execute("SHOW synchronous_commit").fetchone()[0]
                 for s in (strict, relaxed)]
        assert shown == ["on", "off"]
        ids = relaxed.append_batch(_records(3, server="relaxed"))
        assert ids is not None
        # Committed: the other connection reads it at once.
        assert [i for i, _ in strict.read_since(0)] == list(range(ids[0], ids[1] + 1))
    finally:
        strict.close()
        relaxed.close()
