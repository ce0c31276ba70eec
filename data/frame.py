"""Records as a flat, time-ordered pandas DataFrame: what models and evaluation read.

``ts`` becomes float seconds since the epoch; numbers are float (NaN when
absent); ``success``, ``cache_hit``, ``recovered`` and ``reachable`` are
float 1/0 (NaN when absent or not applicable); strings stay objects with
``None`` when absent; ``attrs`` stays a column of dicts (the records without
attributes share one read-only empty dict, :data:`NO_ATTRS`).

>>> from predictor.data.schema import parse_record
>>> df = records_to_frame([parse_record({"ts": 2, "server": "a", "tool": "t", "latency_ms": 5}),
...                        parse_record({"ts": 1, "server": "a", "kind": "health",
...                                      "reachable": False})])
>>> df[["ts", "kind", "latency_ms", "reachable"]].to_dict("list")
{'ts': [1.0, 2.0], 'kind': ['health', 'call'], 'latency_ms': [nan, 5.0], 'reachable': [0.0, nan]}
>>> [(r.kind, r.epoch, r.latency_ms) for r in frame_records(df)]
[('health', 1.0, None), ('call', 2.0, 5.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from operator import itemgetter

import numpy as np
import pandas as pd

from predictor.data.schema import (
    CALL_FIELDS,
    HEALTH_FIELDS,
    CallRecord,
    HealthRecord,
    Record,
    trusted_builder,
)

__all__ = ["BOOL_COLUMNS", "NO_ATTRS", "NUMBER_COLUMNS", "STRING_COLUMNS", "frame_records",
           "records_to_frame"]

STRING_COLUMNS = (
    "kind",
    "server",
    "tool",
    "error_type",
    "task_type",
    "workflow_id",
    "phase",
    "cache_key",
    "recovery",
)
NUMBER_COLUMNS = (
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cpu_pct",
    "mem_mb",
    "concurrency",
    "attempt",
    "mem_pct",
    "queue_depth",
)
BOOL_COLUMNS = ("success", "cache_hit", "recovered", "reachable")


class _NoAttrs(dict):
    """An empty dict that cannot be filled: the ``attrs`` of every row without attributes.

    Most telemetry has no extra attributes; an empty dict per row (64 bytes
    each) was held by the frame and by each copy a training worker reads.
    Shared by many rows, it must not change: every way of filling it raises.

    >>> NO_ATTRS == {}, len(NO_ATTRS)
    (True, 0)
    >>> NO_ATTRS["region"] = "eu"
    Traceback (most recent call last):
    ...
    TypeError: the attrs of rows without attributes are shared and read-only
    """

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("the attrs of rows without attributes are shared and read-only")

    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> str:
        return "NO_ATTRS"  # unpickled as this module's one instance, however many rows


#: The ``attrs`` of a frame's rows whose record has none (see :class:`_NoAttrs`).
NO_ATTRS = _NoAttrs()


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    """Flatten records into a DataFrame sorted by ``ts`` (stable for ties).

    Numbers and flags are packed into float arrays every :data:`_CHUNK`
    records: held as Python lists for the whole log, their boxed values
    were most of the reader's peak memory (about 0.5 GB per million records).
    """
    numeric = ("ts", *NUMBER_COLUMNS, *BOOL_COLUMNS)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in numeric}
    pending: dict[str, list] = {name: [] for name in numeric}
    getters = [(name, pending[name]) for name in (*NUMBER_COLUMNS, *BOOL_COLUMNS)]
    # One string object per distinct value of a column: each record parses its own copy
    # of "server", "tool", ..., which held the frame (and every copy a worker unpickles)
    # at tens of bytes per row and column.
    string_columns: dict[str, list] = {name: [] for name in STRING_COLUMNS}
    strings = [(name, string_columns[name], {}) for name in STRING_COLUMNS]
    attrs: list = []
    ts = pending["ts"]

    def pack() -> None:
        for name in numeric:
            # None becomes NaN in the float conversion.
            chunks[name].append(np.array(pending[name], dtype=float))
            pending[name].clear()

    for rec in records:
        ts.append(rec.epoch)
        fields = rec.__dict__  # pydantic keeps field values here; much faster than getattr
        for name, column, seen in strings:
            value = fields.get(name)
            column.append(seen.setdefault(value, value))
        for name, column in getters:
            column.append(fields.get(name))
        attrs.append(rec.attrs or NO_ATTRS)
        if len(ts) == _CHUNK:
            pack()
    pack()
    data: dict[str, object] = {"ts": np.concatenate(chunks.pop("ts"))}
    for name in STRING_COLUMNS:
        data[name] = pd.Series(string_columns.pop(name), dtype=object)
    for name in (*NUMBER_COLUMNS, *BOOL_COLUMNS):
        data[name] = np.concatenate(chunks.pop(name))
    data["attrs"] = pd.Series(attrs, dtype=object)
    del attrs
    frame = pd.DataFrame(data, copy=False)
    order = frame["ts"].to_numpy()
    if len(order) < 2 or bool((order[1:] >= order[:-1]).all()):
        return frame  # already in time order (as logs mostly are): no sorted copy
    return frame.sort_values("ts", kind="stable", ignore_index=True)


#: Records :func:`records_to_frame` packs into arrays at once.
_CHUNK = 65_536


_INTS = frozenset({"input_tokens", "output_tokens", "concurrency", "attempt", "queue_depth"})


_BUILD_CALL = trusted_builder(CallRecord)
_BUILD_HEALTH = trusted_builder(HealthRecord)


def frame_records(frame: pd.DataFrame) -> Iterator[Record]:
    """The records of a frame made by :func:`records_to_frame`, in its row order.

    The frame's values were validated when the records were read, so the
    records are built without validating them again (NaN becomes ``None``).
    A generator: a replay holds one record at a time, not the log.
    """
    columns = [c for c in ("ts", *STRING_COLUMNS, *NUMBER_COLUMNS, *BOOL_COLUMNS, "attrs")
               if c in frame.columns]
    arrays = {c: frame[c].to_numpy() for c in columns}
    if "kind" not in arrays:
        arrays["kind"] = np.full(len(frame), "call", dtype=object)
    names = [c for c in arrays if c != "ts" and (c in CALL_FIELDS or c in HEALTH_FIELDS)]
    # Each kind's builder, fields, and their positions in a row of ``names``.
    kinds = {kind: (build, [n for n in names if n in known],
                    _getter([i for i, n in enumerate(names) if n in known]))
             for kind, build, known in (("call", _BUILD_CALL, CALL_FIELDS),
                                        ("health", _BUILD_HEALTH, HEALTH_FIELDS))}
    fromtimestamp = datetime.fromtimestamp
    for start in range(0, len(frame), _ROWS_AT_ONCE):
        # Python values a slice at a time, converted column by column (absent: None):
        # value by value cost more than building the records, and whole columns as
        # lists would hold the log.
        chunk = slice(start, start + _ROWS_AT_ONCE)
        values = [_python_values(name, arrays[name][chunk]) for name in names]
        for ts, kind, row in zip(arrays["ts"][chunk].tolist(), arrays["kind"][chunk].tolist(),
                                 zip(*values, strict=True), strict=True):
            build, wanted, pick = kinds["health" if kind == "health" else "call"]
            fields = {name: value for name, value in zip(wanted, pick(row), strict=True)
                      if value is not None}
            fields["ts"] = fromtimestamp(ts, UTC)
            if "attrs" not in fields:
                fields["attrs"] = {}
            if build is _BUILD_CALL:
                fields["kind"] = "call"
                if "success" not in fields:
                    fields["success"] = fields.get("error_type") is None
            yield build(fields)


#: Rows :func:`frame_records` turns into Python values at once.
_ROWS_AT_ONCE = 4096


def _getter(positions: list[int]) -> Callable[[tuple], tuple]:
    """A row's values at ``positions``, as a tuple (however many)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


def _python_values(column: str, values: np.ndarray) -> list:
    """A slice of a frame column as the records' values.

    ``None`` where absent (None or NaN); ints, flags and floats as the
    record's fields are typed; ``attrs`` a dict of the record's own (never
    the frame's: :data:`NO_ATTRS` is shared by many rows).

    >>> _python_values("attempt", np.array([1.0, np.nan])), _python_values(
    ...     "reachable", np.array([0.0, 1.0, np.nan]))
    ([1, None], [False, True, None])
    """
    if values.dtype != object:
        absent = np.isnan(values)
        if column in BOOL_COLUMNS:
            typed = (values != 0).astype(object)
        elif column in _INTS:
            present = values[~absent]
            if present.size and not np.abs(present).max() < 2.0 ** 53:
                return [None if v != v else int(v) for v in values.tolist()]  # beyond int64
            typed = np.where(absent, 0.0, values).astype(np.int64).astype(object)
        else:
            typed = values.astype(object)
        typed[absent] = None
        return typed.tolist()
    if column == "attrs":
        return [None if v is None or v != v else dict(v) for v in values.tolist()]
    return [None if v is None or v != v else v for v in values.tolist()]
