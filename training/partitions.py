"""A log read in partitions: training on logs larger than a worker's memory.

``predictor train --max-events N`` reads its logs as runs of
:data:`PARTITION_EVENTS` records (every format the readers take), each packed
into columns and sorted by time as it is read, and keeps only the **newest N
records** (the *window*) in memory. Every batch family is fitted and scored on
the window, whatever the log's size, so no process ever holds more than the
window and a partition or two; the **online state learns every record**,
partition after partition, from files written as the log is read (checked
with an HMAC before they are unpickled, like the job's features).

The window is exactly the newest N rows of the frame the whole log would
give (:func:`predictor.training.evaluate.load_log`: time order, stable for
ties), so a log of at most N records trains as it would without a window.
Past the window, the online state learns the log partition by partition,
each in time order: a log written in time order (as services write them)
is learned in the order a whole-log pass takes; across partitions of an
unordered log it is the log's own order, as the service learns what it ingests.

>>> import json, tempfile
>>> from predictor.data.readers import ReadSummary
>>> from predictor.data.simulator import Simulator
>>> with tempfile.TemporaryDirectory() as folder:
...     log = Path(folder) / "log.jsonl"
...     _ = log.write_text("".join(json.dumps(r) + "\\n"
...                                for r in Simulator(seed=1).records(1_000)))
...     read = read_window([log], ReadSummary(), max_events=300,
...                        folder=Path(folder) / "parts", partition_events=256)
...     len(read.frame), read.events, len(read.partitions.partitions)
(300, 1000, 4)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import pandas as pd

from predictor.data.frame import in_time_order, records_to_frame
from predictor.data.readers import ReadSummary, read_records
from predictor.training.features import read_table, write_table

__all__ = ["PARTITION_EVENTS", "Partition", "Partitions", "WindowedLog", "read_window"]

#: Records per partition: its columns take ~15 MB, a small share of a worker's memory,
#: and the files stay few (15 per million records).
PARTITION_EVENTS = 65_536


@dataclass(frozen=True)
class Partition:
    """One partition's file, its HMAC and how many records it holds."""

    path: str
    digest: str
    events: int


@dataclass(frozen=True)
class Partitions:
    """The whole log as written partition by partition, in the order read.

    A handle a worker process of this machine can be given (it is small): the
    key that checks the files travels with it, never on disk.
    """

    key: bytes = field(repr=False)
    partitions: tuple[Partition, ...] = ()

    @property
    def events(self) -> int:
        """Records in all the partitions."""
        return sum(p.events for p in self.partitions)

    def frames(self) -> Iterator[pd.DataFrame]:
        """Each partition's frame (time-ordered), one at a time, in the order read.

        Raises
        ------
        ValueError
            When a file is not the one written (checked before it is unpickled).
        """
        for partition in self.partitions:
            yield read_table(partition.path, partition.digest, self.key,
                             "partition this job wrote")


@dataclass
class WindowedLog:
    """What :func:`read_window` read.

    Attributes
    ----------
    frame
        The newest ``max_events`` records (all of them for a smaller log),
        time-ordered, index ``0..n-1``.
    events
        Valid records read in all.
    partitions
        The whole log, partition by partition, when it held more records than
        the window (what the online state learns); ``None`` otherwise.
    """

    frame: pd.DataFrame
    events: int
    partitions: Partitions | None = None

    @property
    def windowed(self) -> bool:
        """Whether the window left older records out."""
        return self.events > len(self.frame)


def read_window(paths: Sequence[str | Path], summary: ReadSummary, max_events: int,
                folder: Path, partition_events: int = PARTITION_EVENTS) -> WindowedLog:
    """Read ``paths`` in partitions, keeping the newest ``max_events`` records.

    Each partition is also written to ``folder`` (for the online state): the
    files are removed again when the whole log fits the window. Memory: the
    window, at most ``max_events`` more records waiting to be compacted, and
    one partition.

    Raises
    ------
    ValueError
        For a ``max_events`` or ``partition_events`` below 1.
    """
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    if partition_events < 1:
        raise ValueError(f"partition_events must be at least 1, got {partition_events}")
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    written: list[Partition] = []
    kept: list[pd.DataFrame] = []
    held = events = 0
    records = (record for path in paths
               for record in read_records(path, summary, values=True))
    while batch := list(islice(records, partition_events)):
        part = records_to_frame(batch)
        del batch
        events += len(part)
        written.append(_write_partition(folder / f"partition-{len(written):06d}", part, key))
        kept.append(part)
        held += len(part)
        if held > 2 * max_events:  # compact: amortized, each record is sorted a few times
            kept = [_newest(kept, max_events)]
            held = len(kept[0])
    frame = _newest(kept, max_events) if kept else records_to_frame([])
    if events <= max_events:
        for partition in written:
            Path(partition.path).unlink()
        return WindowedLog(frame, events)
    return WindowedLog(frame, events, Partitions(key, tuple(written)))


def _newest(frames: list[pd.DataFrame], limit: int) -> pd.DataFrame:
    """The newest ``limit`` rows of ``frames`` (each time-ordered, in the order read), in
    time order, stable for ties: the tail of the frame their records would give at once.

    A stable sort of runs that are each stably sorted keeps, among equal
    times, the order the records were read in; a row left out here has
    ``limit`` rows after it already, so it is never among the newest.
    """
    frame = in_time_order(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
    return frame.iloc[max(0, len(frame) - limit):].reset_index(drop=True)


def _write_partition(path: Path, frame: pd.DataFrame, key: bytes) -> Partition:
    return Partition(str(path), write_table(path, frame, key), len(frame))
