"""Parallel ingestion of JSONL: parse in worker processes, append in this one.

Parsing and validating a record costs about as much CPU as appending it to
SQLite, so on a multi-core machine the two run side by side: worker
processes turn chunks of lines into store rows and errors, the calling
process appends each chunk durably, in file order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import orjson

from predictor.data.fast_validation import quick_row
from predictor.data.readers import ReadSummary, RejectedRecord, _open_binary
from predictor.data.schema import RecordError, parse_record
from predictor.data.store import SQLiteEventStore, StoreRow

__all__ = ["ingest_jsonl_parallel"]

_CHUNK = 10_000
_BLOCK = 1 << 22  # bytes read at a time: splitting blocks costs a fraction of iterating lines

#: What a worker answers for one accepted line: its store row without the line
#: (epoch, kind, server, tool) and the line's position in the chunk. The calling
#: process holds the lines already; sending them back would double what crosses.
RowMeta = tuple[float, str, str, str | None, int]


def _parse_chunk(
    name: str, first_line: int, lines: list[bytes]
) -> tuple[list[RowMeta], list[RejectedRecord], int]:
    metas: list[RowMeta] = []
    errors: list[RejectedRecord] = []
    read = 0
    for offset, line in enumerate(lines):
        if not line:
            continue
        read += 1
        row = quick_row(line)
        if row is not None:
            metas.append((row[0], row[1], row[2], row[3], offset))
            continue
        try:
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise RecordError("record", f"invalid JSON: {err}") from None
            rec = parse_record(raw)
        except RecordError as err:
            errors.append(RejectedRecord(name, first_line + offset, err.field, err.reason))
            continue
        metas.append((rec.epoch, rec.kind, rec.server, getattr(rec, "tool", None), offset))
    return metas, errors, read


def _chunks(stream: IO[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """``(number of the first line, lines)`` of at most :data:`_CHUNK` lines, in file order,
    each stripped of surrounding whitespace (blank lines stay, empty, so numbers hold).

    >>> import io
    >>> [(first, len(lines)) for first, lines in _chunks(io.BytesIO(b"a\\n" * 25_001))]
    [(1, 10000), (10001, 10000), (20001, 5001)]
    """
    pending: list[bytes] = []
    first = 1
    tail = b""
    while True:
        block = stream.read(_BLOCK)
        if not block:
            break
        lines = (tail + block).split(b"\n")
        tail = lines.pop()  # the unfinished last line, completed by the next block
        pending.extend(line.strip() for line in lines)
        while len(pending) >= _CHUNK:
            yield first, pending[:_CHUNK]
            first, pending = first + _CHUNK, pending[_CHUNK:]
    if tail.strip():
        pending.append(tail.strip())
    if pending:
        yield first, pending


def _rows(metas: list[RowMeta], lines: list[bytes]) -> list[StoreRow]:
    return [(epoch, kind, server, tool, lines[offset])
            for epoch, kind, server, tool, offset in metas]


class _Writer:
    """Appends chunks in order on one thread of its own, so that SQLite's work (which
    releases the GIL) overlaps this process's Python work; after a failed append it
    appends nothing more, so what is stored stays a prefix of the file."""

    def __init__(self, store: SQLiteEventStore, summary: ReadSummary, depth: int = 2) -> None:
        self._store, self._summary, self._depth = store, summary, depth
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-append")
        self._pending: deque[Future] = deque()
        self._failed = False

    def _append(self, rows: list[StoreRow]) -> None:
        if self._failed:
            return
        try:
            self._summary.accepted += self._store.append_rows(rows)
        except BaseException:
            self._failed = True
            raise

    def submit(self, rows: list[StoreRow]) -> None:
        self._pending.append(self._thread.submit(self._append, rows))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every append; raise the first failure."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(wait=True)


def ingest_jsonl_parallel(
    store: SQLiteEventStore, source: str | Path, summary: ReadSummary, *, workers: int | None = None
) -> None:
    """Parse the JSONL file ``source`` in worker processes and append it to ``store``.

    Chunks are appended in file order, each durably, so a crash leaves a
    prefix of the file stored. Errors are reported as by
    :func:`predictor.data.readers.read_records`.
    """
    workers = workers or max(1, min(2, (os.cpu_count() or 1)))
    stream, name = _open_binary(source)
    in_flight: deque[tuple[Future, list[bytes]]] = deque()
    writer = _Writer(store, summary)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:

            def drain_one() -> None:
                future, lines = in_flight.popleft()
                metas, errors, read = future.result()
                writer.submit(_rows(metas, lines))
                summary.read += read
                for err in errors:
                    summary.reject(err)

            for first, lines in _chunks(stream):
                in_flight.append((pool.submit(_parse_chunk, name, first, lines), lines))
                if len(in_flight) > 2 * workers:
                    drain_one()
            while in_flight:
                drain_one()
    finally:
        try:
            writer.close()
        finally:
            stream.close()
