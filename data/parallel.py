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
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO

import orjson

from predictor.data.readers import ReadSummary, RejectedRecord, _open_binary
from predictor.data.schema import RecordError, parse_record
from predictor.data.store import SQLiteEventStore, StoreRow

__all__ = ["ingest_jsonl_parallel"]

_CHUNK = 10_000


def _parse_chunk(
    name: str, first_line: int, lines: list[bytes]
) -> tuple[list[StoreRow], list[RejectedRecord], int]:
    rows: list[StoreRow] = []
    errors: list[RejectedRecord] = []
    read = 0
    for offset, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        read += 1
        try:
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise RecordError("record", f"invalid JSON: {err}") from None
            rec = parse_record(raw)
        except RecordError as err:
            errors.append(RejectedRecord(name, first_line + offset, err.field, err.reason))
            continue
        rows.append((rec.epoch, rec.kind, rec.server, getattr(rec, "tool", None), line))
    return rows, errors, read


def _chunks(stream: IO[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    lines: list[bytes] = []
    first = 1
    for number, line in enumerate(stream, start=1):
        lines.append(line)
        if len(lines) >= _CHUNK:
            yield first, lines
            first, lines = number + 1, []
    if lines:
        yield first, lines


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
    in_flight: deque[Future] = deque()
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:

            def drain_one() -> None:
                rows, errors, read = in_flight.popleft().result()
                store.append_rows(rows)
                summary.read += read
                summary.accepted += len(rows)
                for err in errors:
                    summary.reject(err)

            for first, lines in _chunks(stream):
                in_flight.append(pool.submit(_parse_chunk, name, first, lines))
                if len(in_flight) > 2 * workers:
                    drain_one()
            while in_flight:
                drain_one()
    finally:
        stream.close()
