"""The event store on PostgreSQL (psycopg 3), for more than one process or machine.

Chosen by URL (``PREDICTOR_DB=postgresql://user@host:5432/db``); the
guarantees are the SQLite store's:

* **a batch acknowledged is committed**: ``append_batch`` returns after
  ``COMMIT`` (``synchronous_commit`` on, PostgreSQL's default);
* **concurrent writers** from any number of processes and machines;
* **readers see whole batches**: one batch is one transaction;
* **cursors are monotonic ids a learner can follow without missing a record
  committed late**: every append takes a transaction-scoped advisory lock
  before it numbers its rows (the last id + 1, ...) and holds it until its
  commit, so ids are assigned *and committed* in the same order. A reader
  that has seen id *n* will never later find a committed id below *n*
  (with a plain sequence it could: a transaction that drew id 5 may commit
  after one that drew id 6). The price is that appends are serialized, as
  SQLite's are; each is one ``COPY``.

The schema is created and migrated by the project: numbered migrations,
applied in order under an advisory lock, recorded in ``schema_migrations``.

The same database holds what the learner publishes for replicas
(``engine_states``, see :mod:`predictor.serving.roles`), and the learner's
election is an advisory lock on it (:class:`Leadership`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from predictor.data.fast_validation import parse_line
from predictor.data.schema import Record
from predictor.data.store import (
    Durability,
    StoreRow,
    TimeBound,
    _durability,
    _epoch,
    _FrameMixin,
    _SqlAppends,
)

__all__ = ["MIGRATIONS", "Leadership", "PostgresEventStore", "is_postgres_url"]

#: Advisory lock keys (arbitrary 64-bit constants of this project).
_APPEND_LOCK = 0x7072_6564_0001
_MIGRATE_LOCK = 0x7072_6564_0002
LEARNER_LOCK = 0x7072_6564_0003

#: Numbered schema migrations; a database records the ones applied.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
        CREATE TABLE events (
            id     BIGINT PRIMARY KEY,
            ts     DOUBLE PRECISION NOT NULL,
            kind   TEXT NOT NULL,
            server TEXT NOT NULL,
            tool   TEXT,
            record BYTEA NOT NULL
        );
        CREATE INDEX events_ts ON events (ts);
        CREATE INDEX events_server_ts ON events (server, ts);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE batches (
            key     TEXT PRIMARY KEY,
            reply   BYTEA NOT NULL,
            created DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX batches_created ON batches (created);
    """),
    (2, """
        CREATE TABLE engine_states (
            version    BIGSERIAL PRIMARY KEY,
            created    DOUBLE PRECISION NOT NULL,
            cursor     BIGINT NOT NULL,
            learned    BIGINT NOT NULL,
            publisher  TEXT NOT NULL,
            raw_bytes  BIGINT NOT NULL,
            state      BYTEA NOT NULL
        );
    """),
)


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database.

    >>> is_postgres_url("postgresql://postgres@127.0.0.1:5432/test"), is_postgres_url("p.db")
    (True, False)
    """
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _migrate(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version INT PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version not in done:
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)",
                             (version, time.time()))
        conn.execute("INSERT INTO meta VALUES ('store_id', %s) ON CONFLICT DO NOTHING",
                     (uuid.uuid4().hex,))


class PostgresEventStore(_SqlAppends, _FrameMixin):
    """An :class:`~predictor.data.store.EventStore` in a PostgreSQL database.

    Parameters
    ----------
    url
        ``postgresql://user@host:port/database``.
    batch_key_retention_s
        How long an idempotency key is remembered (a day).
    durability
        ``"fsync"``: an append returns once its commit is flushed to the
        server's disk (``synchronous_commit`` on). ``"commit"``: once it is
        committed and visible (``synchronous_commit = off`` for this store's
        writes): the server's WAL writer flushes it within about three
        ``wal_writer_delay`` (600 ms by default), so only a crash of the
        database server in that time loses it.
    """

    _mark = "%s"  # psycopg's parameter mark

    def __init__(self, url: str, batch_key_retention_s: float = 86_400.0, *,
                 durability: Durability = "fsync") -> None:
        self.url = url
        self.durability = _durability(durability)
        self.path = url  # what logs and checkpoints name the store by
        self.batch_key_retention_s = batch_key_retention_s
        self._pruned_at = 0.0
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write = psycopg.connect(url, autocommit=True)
        _migrate(self._write)
        if durability == "commit":
            self._write.execute("SET synchronous_commit TO off")
        self._read = psycopg.connect(url, autocommit=True)
        self.store_id: str = self._write.execute(
            "SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]

    # --- writing (append, append_batch, append_rows: _SqlAppends) -----------------
    def _insert(self, rows: Sequence[StoreRow], batch_key: str | None = None,
                reply: bytes = b"") -> tuple[int, int] | None:
        if not rows:
            return None
        with self._transaction():
            conn = self._write
            # Held to the commit: ids are numbered and committed in one order (module doc).
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            if batch_key is not None:
                self._remember(batch_key, reply)
            last = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
            with conn.cursor() as cursor, cursor.copy(
                    "COPY events (id, ts, kind, server, tool, record) FROM STDIN") as copy:
                for offset, (ts, kind, server, tool, record) in enumerate(rows, start=1):
                    copy.write_row((last + offset, ts, kind, server, tool, bytes(record)))
        return last + 1, last + len(rows)

    def _sql(self, statement: str, params: tuple) -> Any:
        return self._write.execute(statement, params)  # type: ignore[arg-type]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._write_lock, self._write.transaction():
            yield

    def _query_one(self, statement: str, params: tuple) -> tuple | None:
        with self._read_lock:
            return self._read.execute(statement, params).fetchone()  # type: ignore[arg-type]

    def writable(self) -> bool:
        """Whether the database takes a write now."""
        with self._write_lock:
            self._write.execute("SELECT 1")
        return True

    # --- reading --------------------------------------------------------------
    def last_id(self) -> int:
        with self._read_lock:
            return int(self._read.execute(
                "SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def read_since(self, after_id: int, limit: int = 10_000) -> list[tuple[int, Record]]:
        """Up to ``limit`` records with ids above ``after_id``, in id order."""
        with self._read_lock:
            rows = self._read.execute(
                "SELECT id, record FROM events WHERE id > %s ORDER BY id LIMIT %s",
                (after_id, limit)).fetchall()
        return [(int(i), parse_line(blob)) for i, blob in rows]

    def read(self, start: TimeBound = None, end: TimeBound = None, server: str | None = None,
             tool: str | None = None, kind: str | None = None) -> Iterator[Record]:
        clauses, params = [], []
        for column, op, value in (("ts", ">=", _epoch(start)), ("ts", "<", _epoch(end)),
                                  ("server", "=", server), ("tool", "=", tool),
                                  ("kind", "=", kind)):
            if value is not None:
                clauses.append(f"{column} {op} %s")  # column and op are fixed above
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with psycopg.connect(self.url) as conn, conn.cursor(name="predictor_read") as cursor:
            # A server-side cursor: a store larger than memory streams through.
            cursor.itersize = 10_000
            cursor.execute(f"SELECT record FROM events {where} ORDER BY ts, id", params)
            for (blob,) in cursor:
                yield parse_line(blob)

    def count(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        for lock, conn in ((self._write_lock, self._write), (self._read_lock, self._read)):
            with lock:
                conn.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Leadership:
    """The learner's election: a session advisory lock on the shared database.

    Exactly one process holds it; it is released when that process's
    connection ends (a crash, a kill -9, a network partition after
    PostgreSQL's TCP keepalive), and a standby that asks again takes it.
    """

    def __init__(self, url: str, key: int = LEARNER_LOCK) -> None:
        self.url = url
        self.key = key
        self._conn: psycopg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        if self._conn is not None:
            return True
        conn = psycopg.connect(self.url, autocommit=True, keepalives=1, keepalives_idle=5,
                               keepalives_interval=2, keepalives_count=3)
        if conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        """Whether the lock's connection is alive (a lost connection lost the lock)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
