"""Validate telemetry files and load them into an event store.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> log = os.path.join(folder, "calls.jsonl")
>>> _ = open(log, "w").write('{"ts": 1, "server": "a", "tool": "t"}\\n{"ts": 2}\\n')
>>> summary = ingest_files([log], os.path.join(folder, "p.db"))
>>> summary.accepted, summary.rejected
(1, 1)
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from predictor.data.parallel import ingest_jsonl_parallel
from predictor.data.readers import ReadSummary, detect_format, read_records, read_sourced_records
from predictor.data.store import EventStore, SQLiteEventStore, append_all, open_store

__all__ = ["ingest_files", "ingest_into"]


def ingest_into(
    store: EventStore,
    logs: Sequence[str | Path],
    *,
    strict: bool = False,
    batch: int = 10_000,
    parallel: bool = True,
) -> ReadSummary:
    """Read ``logs`` into ``store``; with ``strict``, validate everything first.

    JSONL files going into a SQLite store are parsed in worker processes
    when ``parallel`` (see :mod:`predictor.data.parallel`). In strict mode nothing is
    stored unless every record of every file is
    valid; the first bad record raises
    :class:`~predictor.data.readers.StrictModeError`.
    """
    if strict:
        # Standard input can be read once only: keep its bytes for both passes.
        stdin = sys.stdin.buffer.read() if any(str(log) == "-" for log in logs) else b""

        def source(log: str | Path) -> str | Path | io.BytesIO:
            return io.BytesIO(stdin) if str(log) == "-" else log

        # Validate all files first, so a strict ingest is all or nothing.
        for log in logs:
            for _ in read_records(source(log), ReadSummary(), strict=True, name=str(log)):
                pass
        logs = [source(log) for log in logs]  # type: ignore[misc]
    summary = ReadSummary()
    for log in logs:
        name = "-" if isinstance(log, io.BytesIO) else str(log)
        if parallel and isinstance(store, SQLiteEventStore) and _is_jsonl_file(log):
            ingest_jsonl_parallel(store, log, summary)
        else:
            append_all(store, read_sourced_records(log, summary, name=name), batch=batch)
    return summary


def _is_jsonl_file(log: str | Path | io.BytesIO) -> bool:
    if isinstance(log, io.BytesIO) or str(log) == "-":
        return False
    with open(log, "rb") as handle:
        head = handle.read(8)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(log, "rb") as handle:
            head = handle.read(8)
    return detect_format(str(log), head) == "jsonl"


def ingest_files(
    logs: Sequence[str | Path], db: str | Path, *, strict: bool = False, batch: int = 10_000
) -> ReadSummary:
    """Read ``logs`` into the SQLite store at ``db``.

    Raises
    ------
    FileNotFoundError
        When a log is missing; checked first, so no store is created for nothing.
    """
    for log in logs:
        if str(log) != "-" and not Path(log).exists():
            raise FileNotFoundError(f"no such file: {log}")
    with open_store(db, bulk=True) as store:
        return ingest_into(store, logs, strict=strict, batch=batch)
