"""Durable event store: SQLite in WAL mode, and an in-memory test double.

Both implement :class:`EventStore`. ``append`` returns only once the batch
is committed (and, for SQLite, synced to disk), so anything a caller has
acknowledged survives a crash. A store opened with ``durability="commit"``
(the gateway's default, for its own records of attempts) returns once the
batch is committed: visible to every reader and safe from a crash of the
process; it reaches the disk within ``fsync_interval_s``, so a crash of the
machine loses at most that much. Reads come back in time order, by time range,
server, tool and kind, as an iterator of records or as a pandas DataFrame.

Each record is stored as its canonical JSON (or the line it arrived as)
beside columns of its time, kind, server and tool: the JSON keeps every
field and ``attrs`` losslessly, the columns filter without parsing it. Ids
(the order of arrival) and times are indexed; the SQLite store indexes
nothing else, so appends stay cheap.

Examples
--------
>>> from predictor.data.schema import parse_record
>>> store = MemoryEventStore()
>>> store.append([parse_record({"ts": 5, "server": "a", "tool": "t"}),
...               parse_record({"ts": 1, "server": "b", "tool": "t"})])
2
>>> [r.server for r in store.read()]
['b', 'a']
>>> [r.server for r in store.read(server="a")]
['a']
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from predictor.data.fast_validation import parse_line
from predictor.data.schema import Record, record_to_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DuplicateBatch",
    "Durability",
    "EventStore",
    "MemoryEventStore",
    "SQLiteEventStore",
    "StoreRow",
    "append_all",
    "open_store",
    "store_exists",
]

TimeBound = float | datetime | None
#: What an append waits for: ``"fsync"``, the batch on disk; ``"commit"``, the batch
#: committed (a crash of the process loses nothing), on disk within ``fsync_interval_s``.
Durability = Literal["fsync", "commit"]


def _durability(value: str) -> Durability:
    """``value``, checked to be a :data:`Durability`."""
    if value not in ("fsync", "commit"):
        raise ValueError(f"durability: 'fsync' or 'commit', not {value!r}")
    return value  # type: ignore[return-value]

#: One stored row: (epoch seconds, kind, server, tool, record JSON).
StoreRow = tuple[float, str, str, str | None, bytes]


def _epoch(bound: TimeBound) -> float | None:
    if bound is None:
        return None
    if isinstance(bound, datetime):
        return bound.timestamp()
    return float(bound)


@runtime_checkable
class EventStore(Protocol):
    """What the rest of the project needs of an event store."""

    #: Identifies the store: record ids (and cursors over them) mean something in it only.
    store_id: str

    def append(
        self, records: Sequence[Record], sources: Sequence[bytes | None] | None = None
    ) -> int:
        """Durably add ``records``; return how many were added.

        ``sources``, when given, holds for each record the JSON text it was
        parsed from (or ``None``); a store may keep that text instead of
        serializing the record again.
        """
        ...

    def append_batch(
        self, records: Sequence[Record], sources: Sequence[bytes | None] | None = None,
        *, batch_key: str | None = None, reply: bytes = b"",
    ) -> tuple[int, int] | None:
        """Like :meth:`append`; return the (consecutive) ids of the first and last record.

        With ``batch_key``, the batch is stored at most once: ``reply`` (what
        the first ingestion answered) is kept with the key in the same
        transaction, and a batch with a key already stored raises
        :class:`DuplicateBatch` holding that reply, storing nothing.
        """
        ...

    def last_id(self) -> int:
        """The id of the last record added (0 when empty)."""
        ...

    def read_since(self, after_id: int, limit: int = 10_000) -> list[tuple[int, Record]]:
        """Up to ``limit`` records with ids above ``after_id``, in the order they were added."""
        ...

    def read(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        server: str | None = None,
        tool: str | None = None,
        kind: str | None = None,
    ) -> Iterator[Record]:
        """Records with ``start <= ts < end`` matching the filters, in time order."""
        ...

    def count(self) -> int:
        """Number of stored records."""
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...


class _FrameMixin:
    def frame(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        server: str | None = None,
        tool: str | None = None,
        kind: str | None = None,
    ) -> pd.DataFrame:
        """The same selection as :meth:`read`, as a flat DataFrame (see
        :mod:`predictor.data.frame`)."""
        # pandas is imported here, not with the module: ingestion never needs it and a
        # command line that only ingests starts 0.4 s sooner without it.
        from predictor.data.frame import records_to_frame

        return records_to_frame(self.read(start, end, server, tool, kind))  # type: ignore[attr-defined]


class DuplicateBatch(Exception):
    """A batch with this key was stored before: nothing was stored again.

    ``reply`` is what the first ingestion of the batch answered.
    """

    def __init__(self, key: str, reply: bytes) -> None:
        super().__init__(f"batch {key!r} was stored before")
        self.key = key
        self.reply = reply


class _Appends:
    """``append``, for every store: :meth:`append_batch` without the ids."""

    def append(
        self, records: Sequence[Record], sources: Sequence[bytes | None] | None = None
    ) -> int:
        return len(records) if self.append_batch(records, sources) else 0  # type: ignore[attr-defined]


class MemoryEventStore(_Appends, _FrameMixin):
    """An in-memory :class:`EventStore` for tests; same semantics, no durability."""

    def __init__(self) -> None:
        self.store_id = uuid.uuid4().hex
        self._records: list[tuple[float, int, Record]] = []
        self._batches: dict[str, bytes] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def append_batch(
        self, records: Sequence[Record], sources: Sequence[bytes | None] | None = None,
        *, batch_key: str | None = None, reply: bytes = b"",
    ) -> tuple[int, int] | None:
        """Add ``records``; return the ids given to the first and the last (``None`` if empty)."""
        if not records:
            return None
        with self._lock:
            if batch_key is not None:
                if batch_key in self._batches:
                    raise DuplicateBatch(batch_key, self._batches[batch_key])
                self._batches[batch_key] = reply
            first = self._seq + 1
            for rec in records:
                self._seq += 1
                self._records.append((rec.epoch, self._seq, rec))
            return first, self._seq

    def last_id(self) -> int:
        """The id of the last record added (0 when empty)."""
        return self._seq

    def read_since(self, after_id: int, limit: int = 10_000) -> list[tuple[int, Record]]:
        """Up to ``limit`` records with ids above ``after_id``, in the order they were added."""
        with self._lock:
            rows = [(seq, rec) for _, seq, rec in self._records if seq > after_id]
        return sorted(rows, key=lambda row: row[0])[:limit]

    def read(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        server: str | None = None,
        tool: str | None = None,
        kind: str | None = None,
    ) -> Iterator[Record]:
        lo, hi = _epoch(start), _epoch(end)
        with self._lock:
            snapshot = sorted(self._records, key=lambda item: (item[0], item[1]))
        for ts, _, rec in snapshot:
            if lo is not None and ts < lo:
                continue
            if hi is not None and ts >= hi:
                continue
            if server is not None and rec.server != server:
                continue
            if tool is not None and getattr(rec, "tool", None) != tool:
                continue
            if kind is not None and rec.kind != kind:
                continue
            yield rec

    def count(self) -> int:
        return len(self._records)

    def close(self) -> None:
        self._records = []


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id     INTEGER PRIMARY KEY,
    ts     REAL NOT NULL,
    kind   TEXT NOT NULL,
    server TEXT NOT NULL,
    tool   TEXT,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
-- An index per (server, ts) cost 30 % of every append (rows land in as many places as
-- there are servers) and served no read the project makes: dropped where it exists.
DROP INDEX IF EXISTS events_server_ts;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    key     TEXT PRIMARY KEY,
    reply   BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_created ON batches (created);
-- What the elected learner publishes for replicas (roles on one machine); AUTOINCREMENT:
-- a version is never reused once older ones are deleted.
CREATE TABLE IF NOT EXISTS engine_states (
    version   INTEGER PRIMARY KEY AUTOINCREMENT,
    created   REAL NOT NULL,
    cursor    INTEGER NOT NULL,
    learned   INTEGER NOT NULL,
    publisher TEXT NOT NULL,
    raw_bytes INTEGER NOT NULL,
    state     BLOB NOT NULL
);
"""


class _SqlAppends(_Appends, ABC):
    """Appends, idempotency keys and published states of a SQL store (SQLite, PostgreSQL).

    Records become rows (:data:`StoreRow`); the store's ``_insert(rows,
    batch_key, reply)`` adds them in one transaction and returns the first and
    last ids. A batch key is stored once, with its first reply: the store
    provides ``_sql(statement, params)`` (inside its write transaction), its
    parameter mark, ``batch_key_retention_s`` and ``_pruned_at``. The
    learner's states (:meth:`publish_state`, :meth:`latest_state`) go through
    ``_transaction()`` and ``_query_one``.
    """

    _mark = "?"
    batch_key_retention_s: float
    _pruned_at: float

    @abstractmethod
    def _sql(self, statement: str, params: tuple) -> Any:
        """Run ``statement`` inside the write transaction; return its cursor."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """The write transaction (serialized with this store's other writes)."""

    @abstractmethod
    def _query_one(self, statement: str, params: tuple) -> tuple | None:
        """The first row of a read, outside any write transaction."""

    # --- what the elected learner publishes for replicas -----------------------
    _STATE_COLUMNS = ("version", "created", "cursor", "learned", "publisher", "raw_bytes",
                      "state")

    def publish_state(self, state: bytes, *, cursor: int, learned: int, raw_bytes: int,
                      publisher: str, keep: int = 3) -> int:
        """Store a published engine state; keep the newest ``keep``; return its version.

        Versions only grow: one is never reused once older ones are deleted.
        """
        mark = self._mark
        with self._transaction():
            version = int(self._sql(
                "INSERT INTO engine_states (created, cursor, learned, publisher, raw_bytes, "
                f"state) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}) "
                "RETURNING version",
                (time.time(), cursor, learned, publisher, raw_bytes, state)).fetchone()[0])
            self._sql(f"DELETE FROM engine_states WHERE version <= {mark}", (version - keep,))
        return version

    def latest_state(self, newer_than: int = 0) -> dict[str, Any] | None:
        """The newest published state if its version is above ``newer_than``."""
        row = self._query_one(
            f"SELECT {', '.join(self._STATE_COLUMNS)} FROM engine_states "
            f"WHERE version > {self._mark} ORDER BY version DESC LIMIT 1", (newer_than,))
        if row is None:
            return None
        found = dict(zip(self._STATE_COLUMNS, row, strict=True))
        found["state"] = bytes(found["state"])
        return found

    @abstractmethod
    def _insert(self, rows: Sequence[StoreRow], batch_key: str | None = None,
                reply: bytes = b"") -> tuple[int, int] | None:
        """Add ``rows`` in one transaction; return the first and last ids."""

    def append_batch(
        self, records: Sequence[Record], sources: Sequence[bytes | None] | None = None,
        *, batch_key: str | None = None, reply: bytes = b"",
    ) -> tuple[int, int] | None:
        """Durably add ``records``; return the ids of the first and the last (``None`` if empty).

        One batch is one transaction, so its ids are consecutive. With
        ``batch_key``, see :meth:`EventStore.append_batch`: keys are kept
        ``batch_key_retention_s`` (a day by default), so the table of keys
        stays bounded.
        """
        if sources is None:
            sources = [None] * len(records)
        return self._insert(
            [(rec.epoch, rec.kind, rec.server, getattr(rec, "tool", None),
              text if text is not None else record_to_json(rec))
             for rec, text in zip(records, sources, strict=True)],
            batch_key, reply)

    def append_rows(self, rows: Sequence[StoreRow]) -> int:
        """Durably add rows already validated (see :data:`StoreRow`)."""
        return len(rows) if self._insert(rows) else 0

    def _remember(self, batch_key: str, reply: bytes) -> None:
        """Inside the write transaction: record ``batch_key`` or raise :class:`DuplicateBatch`."""
        mark = self._mark
        now = time.time()
        if now - self._pruned_at > 60.0:  # forget keys past their retention, once a minute
            self._sql(f"DELETE FROM batches WHERE created < {mark}",
                      (now - self.batch_key_retention_s,))
            self._pruned_at = now
        found = self._sql(f"SELECT reply FROM batches WHERE key = {mark}",
                          (batch_key,)).fetchone()
        if found is not None:
            raise DuplicateBatch(batch_key, bytes(found[0]))
        self._sql(f"INSERT INTO batches VALUES ({mark}, {mark}, {mark})",
                  (batch_key, reply, now))


_INSERT_EVENT = "INSERT INTO events (ts, kind, server, tool, record) VALUES (?, ?, ?, ?, ?)"


class SQLiteEventStore(_SqlAppends, _FrameMixin):
    """An :class:`EventStore` in one SQLite file (WAL, synchronous=FULL).

    One writer and many readers may use it at once, from threads or
    processes: writes are serialized by a lock and by SQLite, and each read
    uses its own connection so readers never block the writer.

    Parameters
    ----------
    path
        The database file; created with its parent folder when missing.
    durability
        ``"fsync"``: each append returns once its batch is on disk (SQLite's
        ``synchronous=FULL`` syncs the write-ahead log at every commit).
        ``"commit"``: once it is committed (``synchronous=NORMAL``); a thread
        syncs the write-ahead log every ``fsync_interval_s`` while appends
        arrive, and :meth:`close` syncs what is left.
    fsync_interval_s
        With ``durability="commit"``, the longest a committed batch waits
        to be synced.
    checkpoint_pages
        Pages of write-ahead log a commit lets grow before SQLite copies
        them into the database.
    page_size
        Bytes per page of a file created here (SQLite's default, 4096, when
        ``None``); an existing file keeps its own.
    loading
        A bulk load into a file created here (``durability="fsync"`` only;
        ignored for a file that exists): until :meth:`close`, commits go
        through a rollback journal rather than the write-ahead log (each
        record's bytes are written once, not to the log and again into the
        database) and the time index is left out (built once at the end, a
        sort, rather than kept up to date row by row): together a tenth of
        ``predictor ingest``'s time. Each commit is as durable; :meth:`close`
        builds the index and turns the write-ahead log on. If the process
        dies first, the next opening does both.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from predictor.data.schema import parse_record
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = SQLiteEventStore(folder / "e.db", durability="commit", fsync_interval_s=60)
    >>> store.append([parse_record({"ts": 1, "server": "a", "tool": "t"})])
    1
    >>> store.unsynced  # committed, not yet on disk
    1
    >>> store.close(); store.unsynced
    0
    """

    def __init__(self, path: str | Path, batch_key_retention_s: float = 86_400.0, *,
                 checkpoint_pages: int = 1000, durability: Durability = "fsync",
                 fsync_interval_s: float = 1.0, page_size: int | None = None,
                 loading: bool = False) -> None:
        if not fsync_interval_s > 0:
            raise ValueError("fsync_interval_s must be positive")
        self.path = Path(path)
        #: Whether this is a bulk load into a new file, until :meth:`close` (see ``loading``).
        self.loading = loading and durability == "fsync" and not self.path.exists()
        self.durability = _durability(durability)
        self.fsync_interval_s = fsync_interval_s
        #: Batches committed since the write-ahead log was last synced (``"commit"`` only).
        self.unsynced = 0
        self.checkpoint_pages = checkpoint_pages
        self.page_size = page_size
        self.batch_key_retention_s = batch_key_retention_s
        self._pruned_at = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = self._connect()
        with self._conn:
            self._conn.executescript(_SCHEMA)
            if self.loading:
                self._conn.execute("DROP INDEX events_ts")  # built by close()
            # Ids count in one store only: checkpoints name the store their cursor is in.
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)",
                               (uuid.uuid4().hex,))
        self.store_id: str = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
        self._closing = threading.Event()
        self._syncer: threading.Thread | None = None
        if durability == "commit":
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True,
                                            name="predictor-store-sync")
            self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._closing.wait(self.fsync_interval_s):
            self.sync()

    def sync(self) -> None:
        """Put every committed batch on disk (``durability="commit"``; a no-op otherwise).

        Syncs the write-ahead log file, where SQLite keeps commits until a
        checkpoint copies them into the database (a checkpoint syncs the log
        before it and the database after it, at ``synchronous=NORMAL`` too).
        """
        pending = self.unsynced
        if not pending:
            return
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # no log: everything committed is in the database
            fd = None
        if fd is not None:
            try:
                os.fsync(fd)  # Linux syncs the file's pages whichever descriptor wrote them
            finally:
                os.close(fd)
        with self._lock:
            self.unsynced -= pending

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        if self.page_size is not None:
            # Before anything creates the file's header; no effect on an existing file.
            conn.execute(f"PRAGMA page_size={int(self.page_size)}")
        # A bulk load into a new file journals its commits, and turns the WAL on at close.
        conn.execute("PRAGMA journal_mode=DELETE" if self.loading else "PRAGMA journal_mode=WAL")
        # FULL syncs the WAL at every commit: an acknowledged batch is on disk. NORMAL
        # syncs it only at checkpoints; "commit" durability syncs it on a timer as well.
        conn.execute("PRAGMA synchronous=FULL" if self.durability == "fsync"
                     else "PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        # How much WAL a commit lets grow before copying it into the database: SQLite's
        # 1000 pages keep commits short for a service; a bulk load lets it grow to 40 MB
        # (fewer, larger checkpoints; see open_store).
        conn.execute(f"PRAGMA wal_autocheckpoint={int(self.checkpoint_pages)}")
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._committed()

    def _committed(self) -> None:
        """Count one commit more for the sync timer to sync (``durability="commit"``)."""
        if self._syncer is not None:
            self.unsynced += 1

    def _insert(self, rows: Sequence[StoreRow], batch_key: str | None = None,
                reply: bytes = b"") -> tuple[int, int] | None:
        if not rows:
            return None
        if len(rows) == 1 and batch_key is None:
            # One row is one statement, which SQLite commits as a transaction of its own
            # (the connection is in autocommit mode): BEGIN, the id query and COMMIT would
            # be three statements more for each call a gateway records.
            with self._lock:
                last = int(self._conn.execute(_INSERT_EVENT, rows[0]).lastrowid)
                self._committed()
            return last, last
        with self._transaction():
            if batch_key is not None:
                self._remember(batch_key, reply)  # raises DuplicateBatch, storing nothing
            self._conn.executemany(_INSERT_EVENT, rows)
            last = int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        return last - len(rows) + 1, last

    def _sql(self, statement: str, params: tuple) -> Any:
        return self._conn.execute(statement, params)

    def _query_one(self, statement: str, params: tuple) -> tuple | None:
        conn = sqlite3.connect(self.path, timeout=30.0)  # a reader of its own never blocks
        try:
            return conn.execute(statement, params).fetchone()
        finally:
            conn.close()

    def writable(self) -> bool:
        """Whether the store can take a write now (takes and releases the write lock)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ROLLBACK")
        return True

    def last_id(self) -> int:
        """The id of the last record added (0 when empty)."""
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def read_since(self, after_id: int, limit: int = 10_000) -> list[tuple[int, Record]]:
        """Up to ``limit`` records with ids above ``after_id``, in the order they were added.

        A consumer that remembers the last id it processed resumes exactly
        where it stopped (the online learner does, across restarts).
        """
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            rows = conn.execute(
                "SELECT id, record FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        finally:
            conn.close()
        return [(int(i), parse_line(blob)) for i, blob in rows]

    def read(
        self,
        start: TimeBound = None,
        end: TimeBound = None,
        server: str | None = None,
        tool: str | None = None,
        kind: str | None = None,
    ) -> Iterator[Record]:
        clauses, params = [], []
        for column, op, value in (
            ("ts", ">=", _epoch(start)),
            ("ts", "<", _epoch(end)),
            ("server", "=", server),
            ("tool", "=", tool),
            ("kind", "=", kind),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")  # column and op are fixed above
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            cursor = conn.execute(f"SELECT record FROM events {where} ORDER BY ts, id", params)
            for (blob,) in cursor:
                yield parse_line(blob)
        finally:
            conn.close()

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        """Close the store; with ``durability="commit"``, after syncing what is committed."""
        if self._syncer is not None:
            self._closing.set()
            self._syncer.join()
            self.sync()
        with self._lock:
            try:
                if self.loading:
                    self._finish_loading()
            finally:
                self._conn.close()

    def _finish_loading(self) -> None:
        """The end of a bulk load (``loading``): the time index, then the write-ahead log."""
        self._conn.execute("CREATE INDEX IF NOT EXISTS events_ts ON events (ts)")
        # When another connection has the file, its next opening turns the log on.
        with contextlib.suppress(sqlite3.OperationalError):
            self._conn.execute("PRAGMA journal_mode=WAL")
        self.loading = False

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(target: str | Path | None = None, *, bulk: bool = False,
               durability: Durability = "fsync", fsync_interval_s: float = 1.0) -> Any:
    """Open the event store ``target`` names: a ``postgresql://`` URL, or a SQLite file.

    A path, or ``sqlite:///path``, is the embedded SQLite store (default
    ``predictor.db`` here); a ``postgresql://`` (or ``postgres://``) URL is
    :class:`~predictor.data.pg_store.PostgresEventStore`. ``bulk`` opens a
    SQLite store for loading files (larger pages in a new file, larger WAL
    checkpoints; a new file is ``loading``, see :class:`SQLiteEventStore`);
    what an append guarantees does not change. ``durability`` says what an append waits for
    (:data:`Durability`; see :class:`SQLiteEventStore`; on PostgreSQL,
    ``"commit"`` is ``synchronous_commit = off``, which leaves the flush to
    its WAL writer).
    """
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from predictor.data.pg_store import PostgresEventStore

        return PostgresEventStore(target, durability=durability)
    if isinstance(target, str) and target.startswith("sqlite:///"):
        target = target[len("sqlite:///"):]
    if bulk:
        # Pages of 16 KiB (a file created here; an existing file keeps its own) put a
        # record's bytes in fewer pages, and checkpoints every 40 MB of log rather than
        # 4 MB: fewer page and checkpoint writes per record appended.
        return SQLiteEventStore(target or "predictor.db", checkpoint_pages=2_500,
                                durability=durability, fsync_interval_s=fsync_interval_s,
                                page_size=16_384, loading=True)
    return SQLiteEventStore(target or "predictor.db", durability=durability,
                            fsync_interval_s=fsync_interval_s)


def store_exists(target: str | Path) -> bool:
    """Whether ``target`` names a store that exists (a URL is taken to: connecting tells)."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        return True
    if isinstance(target, str) and target.startswith("sqlite:///"):
        target = target[len("sqlite:///"):]
    return Path(target).exists()


def append_all(
    store: EventStore, records: Iterable[Record | tuple[Record, bytes | None]], batch: int = 10_000
) -> int:
    """Append records (or ``(record, source JSON)`` pairs) in batches; return the count."""
    total = 0
    chunk: list[Record] = []
    texts: list[bytes | None] = []
    for item in records:
        if isinstance(item, tuple):
            chunk.append(item[0])
            texts.append(item[1])
        else:
            chunk.append(item)
            texts.append(None)
        if len(chunk) >= batch:
            total += store.append(chunk, texts)
            chunk, texts = [], []
    if chunk:
        total += store.append(chunk, texts)
    return total
