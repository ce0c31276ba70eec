"""Who learns: the election of one learner among ``--role learner`` processes.

On PostgreSQL the election is a session advisory lock
(:class:`predictor.data.pg_store.Leadership`). On a SQLite store, whose
processes share one machine, it is an exclusive ``flock`` on a file beside
the database (:class:`FileLeadership`): the kernel releases it when the
holder exits however it exits (a crash, ``kill -9``), and a standby that
asks again takes it. Both answer the same three questions.

>>> import tempfile, pathlib
>>> db = pathlib.Path(tempfile.mkdtemp()) / "p.db"
>>> first, second = FileLeadership(db), FileLeadership(db)
>>> first.try_acquire(), second.try_acquire()
(True, False)
>>> first.release(); second.try_acquire(), second.still_held()
(True, True)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FileLeadership", "Leader", "leadership_for"]


class Leader(Protocol):
    """What the learner asks of its election."""

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool:
        """Take the lead if it is free; True when this process holds it."""

    def still_held(self) -> bool:
        """Whether this process still holds it."""

    def release(self) -> None:
        """Give it up (a standby may take it)."""


class FileLeadership:
    """The learner's election on one machine: an exclusive ``flock`` on ``<db>.learner.lock``.

    A lock belongs to the open file, so two elections in one process
    exclude each other as two processes do.
    """

    def __init__(self, db: str | Path) -> None:
        self.path = Path(f"{db}.learner.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """Whether this process holds the lock (nothing takes a held flock away)."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # closing the file releases its lock
            finally:
                self._fd = None


def leadership_for(db: Any) -> Leader:
    """The election of the store ``db`` names: PostgreSQL's for a URL, else a file lock."""
    from predictor.data.pg_store import is_postgres_url

    if is_postgres_url(db):
        from predictor.data.pg_store import Leadership

        return Leadership(str(db))
    return FileLeadership(str(db).removeprefix("sqlite:///"))
