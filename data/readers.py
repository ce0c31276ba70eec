"""Read telemetry files: JSONL, CSV and Parquet, optionally gzip-compressed, or stdin.

Every reader yields valid records and reports the invalid ones, each with
its line number (the file's line for JSONL and CSV, header being line 1 of a
CSV; the 1-based row for Parquet), the field at fault and the reason. A bad
record never stops the records around it from being read.

Examples
--------
>>> import io
>>> text = b'{"ts": 1, "server": "a", "tool": "t"}\\n{"ts": 2, "server": "a"}\\n'
>>> summary = ReadSummary()
>>> [r.server for r in read_records(io.BytesIO(text), summary, name="x.jsonl")]
['a']
>>> summary.read, summary.accepted, summary.rejected, summary.errors[0].field
(2, 1, 1, 'tool')
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from predictor.data.fast_validation import RecordValues, quick_record, quick_values
from predictor.data.schema import CallRecord, HealthRecord, Record, RecordError, parse_record

__all__ = [
    "MAX_ERRORS",
    "ReadSummary",
    "RejectedRecord",
    "detect_format",
    "read_records",
    "read_sourced_records",
]

MAX_ERRORS = 100
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class RejectedRecord:
    """Where a bad record was and what was wrong with it."""

    file: str
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class ReadSummary:
    """Counts over one or more reads, with the first :data:`MAX_ERRORS` errors."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[RejectedRecord] = field(default_factory=list)

    def reject(self, error: RejectedRecord) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in self.errors],
        }


class StrictModeError(RecordError):
    """Raised by :func:`read_records` in strict mode at the first bad record."""

    def __init__(self, error: RejectedRecord) -> None:
        super().__init__(error.field, error.reason)
        self.error = error

    def __str__(self) -> str:
        e = self.error
        return f"{e.file}:{e.line}: {e.field}: {e.reason}"


def detect_format(name: str, head: bytes) -> str:
    """``"jsonl"``, ``"csv"`` or ``"parquet"`` from the name, else from the first bytes.

    >>> detect_format("calls.csv.gz", b"ts,server")
    'csv'
    >>> detect_format("-", b'  {"ts": 1}')
    'jsonl'
    """
    lower = name.lower().removesuffix(".gz")
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return "csv"


def _open_binary(source: str | Path | IO[bytes]) -> tuple[IO[bytes], str]:
    if isinstance(source, str | Path):
        name = str(source)
        raw: IO[bytes] = sys.stdin.buffer if name == "-" else open(source, "rb")  # noqa: SIM115
    else:
        raw, name = source, getattr(source, "name", "<stream>")
    if not raw.seekable():
        raw = io.BytesIO(raw.read())  # stdin: buffer it so the format can be sniffed
    head = raw.read(2)
    raw.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw), name  # type: ignore[return-value]
    return raw, name


def _jsonl_rows(stream: IO[bytes], quick: Callable[[bytes], Any] = quick_record
                ) -> Iterator[tuple[int, Any, bytes | None]]:
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            continue
        # A line in the contract's plain form comes back as its record already.
        record = quick(line)
        if record is not None:
            yield number, record, line
            continue
        try:
            yield number, orjson.loads(line), line
        except orjson.JSONDecodeError as err:
            yield number, RecordError("record", f"invalid JSON: {err}"), None


def _csv_value(column: str, text: str) -> Any:
    if column == "attrs":
        return orjson.loads(text) if text.startswith("{") else text
    return text


def _scalar_from_text(text: str) -> Any:
    # Unknown CSV columns go to attrs; give them the type JSON would have given.
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _csv_rows(stream: IO[bytes]) -> Iterator[tuple[int, Any, bytes | None]]:
    from predictor.data.schema import CALL_FIELDS, HEALTH_FIELDS

    known = CALL_FIELDS | HEALTH_FIELDS
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    for row in reader:
        number = reader.line_num
        try:
            record = {
                col: (_csv_value(col, val) if col in known else _scalar_from_text(val))
                for col, val in row.items()
                if col is not None and val not in (None, "")
            }
        except orjson.JSONDecodeError as err:
            yield number, RecordError("attrs", f"invalid JSON: {err}"), None
            continue
        if None in row:
            yield number, RecordError("record", "more values than columns"), None
            continue
        yield number, record, None


def _parquet_rows(stream: IO[bytes]) -> Iterator[tuple[int, Any, bytes | None]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=65_536):
        for row in batch.to_pylist():
            number += 1
            yield number, {k: v for k, v in row.items() if v is not None}, None


_ROW_READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


def read_records(
    source: str | Path | IO[bytes],
    summary: ReadSummary | None = None,
    *,
    strict: bool = False,
    name: str | None = None,
    values: bool = False,
    kind: str | None = None,
) -> Iterator[Record | RecordValues]:
    """Yield the valid records of one file, counting and reporting the others.

    Parameters are those of :func:`read_sourced_records`.
    """
    for record, _ in read_sourced_records(source, summary, strict=strict, name=name,
                                          values=values, kind=kind):
        yield record


def read_sourced_records(
    source: str | Path | IO[bytes],
    summary: ReadSummary | None = None,
    *,
    strict: bool = False,
    name: str | None = None,
    values: bool = False,
    kind: str | None = None,
) -> Iterator[tuple[Record | RecordValues, bytes | None]]:
    """Yield each valid record with the JSON text it was read from (JSONL only).

    Storing that text instead of re-serializing the record is what makes
    ingestion cheap; parsing it again gives the same record.

    Parameters
    ----------
    source
        A path, ``"-"`` for standard input, or a binary stream.
    summary
        Updated in place with counts and errors (a fresh one when omitted).
    strict
        Raise :class:`StrictModeError` at the first bad record.
    name
        The file name used for format detection and in errors.
    values
        Yield the :class:`~predictor.data.fast_validation.RecordValues` of
        each JSON line the fast check takes, not its record: for a reader
        into columns (:func:`predictor.data.frame.records_to_frame`), which
        reads nothing else; other lines still come as records.
    kind
        ``"jsonl"``, ``"csv"`` or ``"parquet"``; by default detected from
        ``name`` and the first bytes (:func:`detect_format`). A part of a
        file (read from the middle) is given the whole file's.
    """
    summary = summary if summary is not None else ReadSummary()
    stream, default_name = _open_binary(source)
    name = name or default_name
    try:
        if kind is None:
            head = stream.read(8)
            stream.seek(0)
            kind = detect_format(name, head)
        elif kind not in _ROW_READERS:
            raise ValueError(f"kind must be one of {sorted(_ROW_READERS)}, got {kind!r}")
        rows = _jsonl_rows(stream, quick_values) if values and kind == "jsonl" \
            else _ROW_READERS[kind](stream)
        for number, raw, text in rows:
            summary.read += 1
            try:
                if isinstance(raw, RecordError):
                    raise raw
                record = raw if isinstance(raw, CallRecord | HealthRecord | RecordValues) \
                    else parse_record(raw)
            except RecordError as err:
                rejected = RejectedRecord(name, number, err.field, err.reason)
                summary.reject(rejected)
                if strict:
                    raise StrictModeError(rejected) from None
                continue
            summary.accepted += 1
            yield record, text
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
