"""A large JSON-lines log read by several worker processes, a byte range each.

Reading is the one step of a training job that runs in a single process
while the job's workers wait: parsing and validating a million records takes
about twice a plain ``json.loads`` pass over them. :func:`read_in_ranges` cuts
each uncompressed JSON-lines file at line boundaries into about as many byte
ranges as there are workers; each worker reads its range into a frame
(:func:`predictor.data.frame.records_to_frame`: time-ordered, stable for
ties), and the frames are put back together in the order of the ranges and
sorted by time with a stable sort. That is the frame a single pass gives
(:func:`predictor.training.evaluate.load_log`), row for row: among records of
equal time, the stable sorts keep the order they were read in. The counts of
the :class:`~predictor.data.readers.ReadSummary` are summed and its errors
name the line of the whole file.

Logs that cannot be cut (compressed, CSV, Parquet, standard input) or that
are small are left to the single pass (``None``).

>>> import json, tempfile
>>> from concurrent.futures import ThreadPoolExecutor
>>> from predictor.data.readers import ReadSummary
>>> from predictor.data.simulator import Simulator
>>> with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
...     log = Path(folder) / "log.jsonl"
...     _ = log.write_text("".join(json.dumps(r) + "\\n"
...                                for r in Simulator(seed=1).records(1_000)))
...     frame = read_in_ranges([log], ReadSummary(), pool, workers=2, min_bytes=0)
>>> len(frame), bool(frame["ts"].is_monotonic_increasing)
(1000, True)
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

import pandas as pd

from predictor.data.frame import in_time_order, records_to_frame
from predictor.data.readers import MAX_ERRORS, ReadSummary, detect_format, read_records

__all__ = ["MIN_BYTES", "read_in_ranges"]

#: Logs smaller than this are read in one pass: a worker's start and the frames' way back
#: cost more than the second process saves (about 400,000 simulated records).
MIN_BYTES = 128 * 2**20

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 2**22


def read_in_ranges(paths: Sequence[str | Path], summary: ReadSummary, pool: Executor, *,
                   workers: int, min_bytes: int | None = None) -> pd.DataFrame | None:
    """The time-ordered frame of ``paths``, read by ``pool`` a byte range at a time.

    Parameters
    ----------
    paths
        The logs, read in this order (as :func:`~predictor.training.evaluate.load_log`).
    summary
        Updated as a single pass would update it.
    pool
        Runs the ranges (a :class:`~predictor.training.workers.WorkerPool`, or any
        executor).
    workers
        How many ranges the logs are cut into, about.
    min_bytes
        Logs smaller in all are left to the single pass (default :data:`MIN_BYTES`).

    Returns
    -------
    pandas.DataFrame or None
        ``None`` when some log cannot be cut (not a plain JSON-lines file) or
        they are smaller than ``min_bytes``: the caller reads them in one pass.
    """
    least = MIN_BYTES if min_bytes is None else min_bytes
    sizes = [_plain_jsonl_size(path) for path in paths]
    if any(size is None for size in sizes) or sum(sizes) < max(least, 1):  # type: ignore[arg-type]
        return None
    share = max(sum(sizes) / max(workers, 1), 1.0)  # type: ignore[arg-type]
    ranges = [(str(path), start, end) for path, size in zip(paths, sizes, strict=True)
              for start, end in _cuts(path, size, round(size / share))]  # type: ignore[operator]
    futures = [pool.submit(_read_range, *part) for part in ranges]
    # While the workers parse, the lines before each range are counted here: an error's
    # line number is the whole file's.
    first_line = _first_lines(ranges)
    frames = []
    for line, future in zip(first_line, futures, strict=True):
        frame, part = future.result()
        _merge(summary, part, line)
        frames.append(frame)
    kept = [frame for frame in frames if len(frame)] or frames[:1]
    return in_time_order(kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True))


def _plain_jsonl_size(path: str | Path) -> int | None:
    """The size of ``path`` when it is an uncompressed JSON-lines file; else ``None``."""
    if str(path) == "-":
        return None
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            size = os.fstat(stream.fileno()).st_size
    except OSError:
        return None  # the single pass says what is wrong with it
    if head.startswith(_GZIP_MAGIC) or detect_format(str(path), head) != "jsonl":
        return None
    return size


def _cuts(path: str | Path, size: int, pieces: int) -> list[tuple[int, int]]:
    """``pieces`` byte ranges of ``path`` (or fewer), each starting at the start of a line."""
    starts = [0]
    with open(path, "rb") as stream:
        for i in range(1, max(pieces, 1)):
            stream.seek(max(size * i // pieces - 1, starts[-1]))
            stream.readline()  # to the end of the line the cut falls in
            start = stream.tell()
            if start >= size:
                break
            if start > starts[-1]:
                starts.append(start)
    return list(zip(starts, [*starts[1:], size], strict=True))


def _first_lines(ranges: list[tuple[str, int, int]]) -> list[int]:
    """Per range, how many lines of its file come before it (the ranges of a file come in
    order, one after another)."""
    lines = []
    for index, (path, start, _) in enumerate(ranges):
        before = ranges[index - 1] if index else None
        if before is None or before[0] != path:
            lines.append(0)
        else:
            lines.append(lines[-1] + _newlines(path, before[1], start))
    return lines


def _newlines(path: str, start: int, end: int) -> int:
    count = 0
    with open(path, "rb") as stream:
        stream.seek(start)
        left = end - start
        while left > 0:
            block = stream.read(min(_BLOCK, left))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def _merge(summary: ReadSummary, part: ReadSummary, first_line: int) -> None:
    summary.read += part.read
    summary.accepted += part.accepted
    summary.rejected += part.rejected
    room = MAX_ERRORS - len(summary.errors)
    summary.errors += [dataclasses.replace(error, line=error.line + first_line)
                       for error in part.errors[:max(room, 0)]]


def _read_range(path: str, start: int, end: int) -> tuple[pd.DataFrame, ReadSummary]:
    """One range's frame and summary (its errors' lines counted from the range's start)."""
    summary = ReadSummary()
    with io.BufferedReader(_ByteRange(path, start, end), buffer_size=2**20) as stream:
        frame = records_to_frame(read_records(stream, summary, name=path, kind="jsonl",
                                              values=True))
    return frame, summary


class _ByteRange(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file, as a file of their own."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__()
        self.name = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this stream
        self._start, self._end = start, end
        self._file.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = self._start + offset
        elif whence == io.SEEK_CUR:
            position = self._file.tell() + offset
        else:
            position = self._end + offset
        self._file.seek(min(max(position, self._start), self._end))
        return self.tell()

    def tell(self) -> int:
        return self._file.tell() - self._start

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self._end - self._file.tell()
        if left <= 0:
            return 0
        view = memoryview(buffer)
        return self._file.readinto(view[:min(len(view), left)])

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
