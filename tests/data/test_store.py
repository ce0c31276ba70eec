from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from predictor.data.schema import parse_record
from predictor.data.store import MemoryEventStore, SQLiteEventStore, append_all


def _records():
    return [
        parse_record({"ts": 30, "server": "b", "tool": "x", "latency_ms": 3}),
        parse_record({"ts": 10, "server": "a", "tool": "x", "latency_ms": 1, "region": "eu"}),
        parse_record({"ts": 20, "server": "a", "tool": "y", "latency_ms": 2}),
        parse_record({"ts": 25, "server": "a", "kind": "health", "reachable": True}),
    ]


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryEventStore() if request.param == "memory" else SQLiteEventStore(tmp_path / "e.db")
    yield s
    s.close()


def test_reads_come_back_in_time_order_with_filters(store):
    assert store.append(_records()) == 4
    assert [r.epoch for r in store.read()] == [10, 20, 25, 30]
    assert [r.epoch for r in store.read(start=15, end=30)] == [20, 25]
    assert [r.epoch for r in store.read(server="a", kind="call")] == [10, 20]
    assert [r.epoch for r in store.read(tool="x")] == [10, 30]
    assert store.count() == 4
    first = next(iter(store.read()))
    assert first.attrs == {"region": "eu"}


def test_frame_has_flat_columns(store):
    store.append(_records())
    frame = store.frame(kind="call")
    assert list(frame["latency_ms"]) == [1.0, 2.0, 3.0]
    assert list(frame["server"]) == ["a", "a", "b"]
    assert list(frame["success"]) == [1.0, 1.0, 1.0]


def test_append_all_batches(store):
    recs = [parse_record({"ts": i, "server": "s", "tool": "t"}) for i in range(25)]
    assert append_all(store, recs, batch=10) == 25
    assert store.count() == 25


@pytest.mark.parametrize("durability", ["fsync", "commit"])
def test_single_records_take_the_next_ids_and_survive_a_crash(tmp_path, durability):
    db = tmp_path / "single.db"
    # One record per append (a gateway's attempts): one statement, committed on its own.
    child = textwrap.dedent(f"""
        import os
        from predictor.data.schema import parse_record
        from predictor.data.store import SQLiteEventStore
        store = SQLiteEventStore({str(db)!r}, durability={durability!r}, fsync_interval_s=60)
        ids = [store.append_batch([parse_record({{"ts": i, "server": "s", "tool": "t"}})])
               for i in range(3)]
        ids.append(store.append_batch([parse_record({{"ts": 3 + i, "server": "s", "tool": "t"}})
                                       for i in range(2)]))
        ids.append(store.append_batch([parse_record({{"ts": 5, "server": "s", "tool": "t"}})]))
        print(ids, store.unsynced, flush=True)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert proc.stdout.strip() == ("[(1, 1), (2, 2), (3, 3), (4, 5), (6, 6)] "
                                   + ("5" if durability == "commit" else "0"))
    reopened = SQLiteEventStore(db)
    assert [(i, r.epoch) for i, r in reopened.read_since(0)] == [(i + 1, float(i))
                                                                  for i in range(6)]
    reopened.close()


def _append_then_die(store: str, batches: int) -> int:
    """Records a child acknowledged before it died: it opens ``store`` (an expression),
    appends batches of 100, prints each acknowledgement, then dies without closing."""
    child = textwrap.dedent(f"""
        import os
        from predictor.data.schema import parse_record
        from predictor.data.store import SQLiteEventStore, open_store
        store = {store}
        for batch in range({batches}):
            store.append([parse_record({{"ts": batch * 100 + i, "server": "s", "tool": "t"}})
                          for i in range(100)])
            print("ack", (batch + 1) * 100, flush=True)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    return int(proc.stdout.split()[-1])


def test_acknowledged_records_survive_a_crash(tmp_path):
    db = tmp_path / "crash.db"
    acked = _append_then_die(f"SQLiteEventStore({str(db)!r})", batches=5)
    reopened = SQLiteEventStore(db)
    assert reopened.count() == acked == 500
    assert [r.epoch for r in reopened.read()] == list(range(500))
    reopened.close()


def test_commit_durability_survives_a_crash_of_the_process_and_syncs_on_a_timer(tmp_path):
    db = tmp_path / "commit.db"
    # Committed, not synced: a crash of the process (not of the machine) loses nothing.
    child = textwrap.dedent(f"""
        import os
        from predictor.data.schema import parse_record
        from predictor.data.store import SQLiteEventStore
        store = SQLiteEventStore({str(db)!r}, durability="commit", fsync_interval_s=60)
        for batch in range(3):
            store.append([parse_record({{"ts": batch * 10 + i, "server": "s", "tool": "t"}})
                          for i in range(10)])
        print("unsynced", store.unsynced, flush=True)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert proc.stdout.split() == ["unsynced", "3"]
    reopened = SQLiteEventStore(db)
    assert reopened.count() == 30
    assert reopened._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    reopened.close()

    timed = SQLiteEventStore(tmp_path / "timed.db", durability="commit", fsync_interval_s=0.05)
    assert timed._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    timed.append(_records())
    assert SQLiteEventStore(tmp_path / "timed.db").count() == 4  # visible before any sync
    for _ in range(200):  # the timer syncs it
        if timed.unsynced == 0:
            break
        threading.Event().wait(0.01)
    assert timed.unsynced == 0
    timed.append(_records())
    timed.sync()
    assert timed.unsynced == 0
    timed.close()
    with pytest.raises(ValueError, match="durability"):
        SQLiteEventStore(tmp_path / "x.db", durability="maybe")  # type: ignore[arg-type]


def test_one_writer_and_readers_at_once(tmp_path):
    store = SQLiteEventStore(tmp_path / "rw.db")
    errors: list[BaseException] = []
    seen: list[int] = []

    def write():
        for batch in range(20):
            store.append(
                [
                    parse_record({"ts": batch * 10 + i, "server": "s", "tool": "t"})
                    for i in range(10)
                ]
            )

    def read():
        try:
            for _ in range(20):
                epochs = [r.epoch for r in store.read()]
                assert epochs == sorted(epochs)
                seen.append(len(epochs))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 200
    # Every read saw whole batches: a reader never sees half a transaction.
    assert all(n % 10 == 0 for n in seen)
    store.close()


def test_a_bulk_load_creates_larger_pages_and_an_existing_file_keeps_its_own(tmp_path):
    import sqlite3

    from predictor.data.store import open_store

    def page_size(path) -> int:
        with sqlite3.connect(path) as conn:
            return conn.execute("PRAGMA page_size").fetchone()[0]

    record = parse_record({"ts": 1, "server": "a", "tool": "t"})
    for bulk in (True, False):
        with open_store(str(tmp_path / f"{bulk}.db"), bulk=bulk) as store:
            store.append([record])
    assert (page_size(tmp_path / "True.db"), page_size(tmp_path / "False.db")) == (16384, 4096)
    with open_store(str(tmp_path / "False.db"), bulk=True) as store:  # a service's file
        store.append([record])
        assert store.count() == 2
    assert page_size(tmp_path / "False.db") == 4096


def _layout(path) -> tuple[str, list[str]]:
    """A SQLite file's journal mode and the indexes of its events table."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(events)")]
    return mode, sorted(indexes)


def test_a_bulk_load_into_a_new_file_journals_and_indexes_at_the_end(tmp_path):
    from predictor.data.store import open_store

    records = [parse_record({"ts": 100 - t, "server": "a", "tool": "t"}) for t in range(50)]
    with open_store(str(tmp_path / "new.db"), bulk=True) as store:
        assert store.loading
        store.append(records[:25])
        store.append(records[25:])
        # While loading: a rollback journal, and no time index to keep up row by row.
        assert _layout(tmp_path / "new.db") == ("delete", [])
    assert _layout(tmp_path / "new.db") == ("wal", ["events_ts"])
    with SQLiteEventStore(tmp_path / "new.db") as reopened:
        assert [r.epoch for r in reopened.read(start=60, end=70)] == list(range(60, 70))
    # A file that exists (a service's) is loaded into as it is; so is one that commits
    # without syncing (its timer syncs the write-ahead log).
    with open_store(str(tmp_path / "new.db"), bulk=True) as store:
        assert not store.loading
        store.append(records[:1])
        assert _layout(tmp_path / "new.db") == ("wal", ["events_ts"])
    with open_store(str(tmp_path / "timer.db"), bulk=True, durability="commit") as store:
        assert not store.loading
        assert _layout(tmp_path / "timer.db") == ("wal", ["events_ts"])


def test_a_bulk_load_that_dies_keeps_what_it_acknowledged_and_the_next_opening_finishes_it(
        tmp_path):
    db = tmp_path / "load.db"
    assert _append_then_die(f"open_store({str(db)!r}, bulk=True)", batches=4) == 400
    assert _layout(db) == ("delete", [])
    with SQLiteEventStore(db) as reopened:
        assert reopened.count() == 400
        assert [r.epoch for r in reopened.read(start=390, end=400)] == list(range(390, 400))
    assert _layout(db) == ("wal", ["events_ts"])
