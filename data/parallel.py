"""Parallel ingestion of JSONL: parse in a worker process, append in this one.

Parsing and validating a record costs less CPU than appending it to
SQLite, so the two run side by side: a worker process turns chunks
of lines (read from the file itself, by byte range, when it is a plain
file) into store rows and errors, and the calling process appends each
chunk durably, in file order, on a thread of its own.
"""

from __future__ import annotations

import io
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import IO, NamedTuple

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


def _parse_range(
    name: str, path: str, chunk: Chunk
) -> tuple[list[RowMeta], list[RejectedRecord], int, int]:
    """:func:`_parse_chunk` of the lines a worker reads itself from ``path`` at the chunk's
    byte range (the calling process sends 40 bytes, not the lines), with the checksum of
    what it read, which the calling process compares with its own lines'."""
    with open(path, "rb") as handle:
        handle.seek(chunk.offset)
        data = handle.read(chunk.size)
    raw = data.split(b"\n")
    if data.endswith(b"\n"):
        raw.pop()
    lines, crc = _stripped(raw)
    return (*_parse_chunk(name, chunk.first, lines), crc)


def _stripped(raw: list[bytes]) -> tuple[list[bytes], int]:
    """Lines as a chunk holds them (stripped), and the checksum of them as read: the one
    split that the calling process and a worker reading the same bytes both make."""
    return [line.strip() for line in raw], zlib.crc32(b"\n".join(raw))


class Chunk(NamedTuple):
    """At most :data:`_CHUNK` lines of a stream, stripped of surrounding whitespace (blank
    lines stay, empty, so numbers hold), and where they were."""

    #: Number of the first line (1-based).
    first: int
    lines: list[bytes]
    #: Byte offset of the first line in the stream, and bytes up to the next chunk's.
    offset: int
    size: int
    #: ``zlib.crc32`` of the lines as read (unstripped), joined by newlines.
    crc: int


def _chunks(stream: IO[bytes]) -> Iterator[Chunk]:
    """The stream's :class:`Chunk` s, in order.

    >>> import io
    >>> [(c.first, len(c.lines), c.offset, c.size)
    ...  for c in _chunks(io.BytesIO(b"ab\\n" * 25_001))]
    [(1, 10000, 0, 30000), (10001, 10000, 30000, 30000), (20001, 5001, 60000, 15003)]
    """
    pending: list[bytes] = []
    first, offset, tail = 1, 0, b""

    def cut(raw: list[bytes], newline_last: bool) -> Chunk:
        size = sum(map(len, raw)) + len(raw) - (0 if newline_last else 1)
        lines, crc = _stripped(raw)
        return Chunk(first, lines, offset, size, crc)

    while True:
        block = stream.read(_BLOCK)
        if not block:
            break
        lines = (tail + block).split(b"\n")
        tail = lines.pop()  # the unfinished last line, completed by the next block
        pending.extend(lines)
        while len(pending) >= _CHUNK:
            chunk = cut(pending[:_CHUNK], True)
            yield chunk
            first, offset, pending = first + _CHUNK, offset + chunk.size, pending[_CHUNK:]
    if tail.strip():  # a last line without its newline
        yield cut([*pending, tail], False)
    elif pending:
        yield cut(pending, True)


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
    store: SQLiteEventStore, source: str | Path | IO[bytes], summary: ReadSummary, *,
    workers: int | None = None,
) -> None:
    """Parse the JSONL file ``source`` in worker processes and append it to ``store``.

    Chunks are appended in file order, each durably, so a crash leaves a
    prefix of the file stored. Errors are reported as by
    :func:`predictor.data.readers.read_records`. Workers read a plain file's
    chunks themselves, by byte range; a chunk whose bytes differ from what
    this process read (the file changed meanwhile) is parsed again from this
    process's lines, so what is stored is always what was validated.
    """
    # One parser keeps up with the one writer (a line's check takes less time than its
    # append, bench/ingest.py); a second took CPU from the writer on two cores.
    workers = workers or 1
    stream, name = _open_binary(source)
    # A plain file can be read again by the workers; standard input and gzip cannot.
    path = str(source) if isinstance(source, str | Path) and str(source) != "-" \
        and type(stream) is io.BufferedReader else None
    in_flight: deque[tuple[Future, Chunk]] = deque()
    writer = _Writer(store, summary)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:

            def drain_one() -> None:
                future, chunk = in_flight.popleft()
                if path is None:
                    metas, errors, read = future.result()
                else:
                    metas, errors, read, crc = future.result()
                    if crc != chunk.crc:
                        metas, errors, read = _parse_chunk(name, chunk.first, chunk.lines)
                writer.submit(_rows(metas, chunk.lines))
                summary.read += read
                for err in errors:
                    summary.reject(err)

            for chunk in _chunks(stream):
                if path is None:
                    future = pool.submit(_parse_chunk, name, chunk.first, chunk.lines)
                else:
                    future = pool.submit(_parse_range, name, path,
                                         chunk._replace(lines=[]))
                in_flight.append((future, chunk))
                if len(in_flight) > 2 * workers:
                    drain_one()
            while in_flight:
                drain_one()
    finally:
        try:
            writer.close()
        finally:
            stream.close()
