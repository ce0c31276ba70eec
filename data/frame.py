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

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from predictor.data.schema import (
    CallRecord,
    HealthRecord,
    Record,
)

if TYPE_CHECKING:
    from predictor.data.fast_validation import RecordValues

__all__ = ["BOOL_COLUMNS", "NO_ATTRS", "NUMBER_COLUMNS", "STRING_COLUMNS", "frame_records",
           "in_time_order",
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


def records_to_frame(records: Iterable[Record | RecordValues]) -> pd.DataFrame:
    """Flatten records into a DataFrame sorted by ``ts`` (stable for ties).

    A record may come as its :class:`~predictor.data.fast_validation.RecordValues`
    (a reader's ``values=True``): the frame reads the same values of it.

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
    return in_time_order(pd.DataFrame(data, copy=False))


def in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by ``ts`` with a stable sort (ties keep their order), index
    ``0..n-1``; ``frame`` itself when it is in time order already (as logs mostly are: no
    sorted copy).

    Frames read in parts, each put in time order, then concatenated in the order read,
    give the frame of all their records at once: among equal times, the stable sorts keep
    the order the records were read in.

    >>> frame = pd.DataFrame({"ts": [2.0, 1.0, 2.0], "tag": ["a", "b", "c"]})
    >>> in_time_order(frame)["tag"].tolist()
    ['b', 'a', 'c']
    """
    order = frame["ts"].to_numpy()
    if len(order) < 2 or bool((order[1:] >= order[:-1]).all()):
        return frame
    return frame.sort_values("ts", kind="stable", ignore_index=True)


#: Records :func:`records_to_frame` packs into arrays at once.
_CHUNK = 65_536


_INTS = frozenset({"input_tokens", "output_tokens", "concurrency", "attempt", "queue_depth"})


def frame_records(frame: pd.DataFrame) -> Iterator[Record]:
    """The records of a frame made by :func:`records_to_frame`, in its row order.

    The frame's values were validated when the records were read, so the
    records are built without validating them again (NaN becomes ``None``),
    each as ``model_construct`` would build it from its present values (the
    same field values, types and order, and the same set of fields set).
    A generator: a replay holds one record at a time, not the log.
    """
    columns = [c for c in ("ts", *STRING_COLUMNS, *NUMBER_COLUMNS, *BOOL_COLUMNS, "attrs")
               if c in frame.columns]
    arrays = {c: frame[c].to_numpy() for c in columns}
    if "kind" not in arrays:
        arrays["kind"] = np.full(len(frame), "call", dtype=object)
    fields_sets: dict[tuple, dict[int, frozenset[str]]] = {}
    for start in range(0, len(frame), _ROWS_AT_ONCE):
        # Python values a slice at a time, converted column by column: value by value
        # cost more than building the records, and whole columns as lists would hold
        # the log. Each kind's records are built field by field, then interleaved.
        chunk = {name: values[start:start + _ROWS_AT_ONCE] for name, values in arrays.items()}
        is_health = chunk["kind"] == "health"
        calls = _kind_records(CallRecord, chunk, ~is_health, fields_sets)
        health = _kind_records(HealthRecord, chunk, is_health, fields_sets)
        for h in is_health.tolist():
            yield next(health) if h else next(calls)


def _kind_records(cls: type[CallRecord] | type[HealthRecord], chunk: dict[str, np.ndarray],
                  rows: np.ndarray, fields_sets: dict[tuple, dict[int, frozenset[str]]]
                  ) -> Iterator[Record]:
    """The records of type ``cls`` of a slice of a frame's columns (``rows`` of it).

    Each field's values are made at once (a column's, or its default), so a
    record is one ``dict(zip(...))`` of its field values in field order. Its
    fields set are those present in its row (one bit per column, the sets
    kept per pattern of bits) and those always given: time and attributes,
    and for a call its kind and success (``success`` absent: no error type).
    """
    n = int(rows.sum())
    if not n:
        return
    values: list[list] = []
    present = np.zeros(n, dtype=np.int64)
    given: list[str] = []  # the columns behind present's bits
    for name, field in cls.model_fields.items():
        if name == "ts":
            values.append([datetime.fromtimestamp(t, UTC) for t in chunk["ts"][rows].tolist()])
        elif name in chunk:
            column = chunk[name][rows]
            absent = np.isnan(column) if column.dtype != object else pd.isna(column)
            present |= (~absent).astype(np.int64) << len(given)
            given.append(name)
            values.append(_python_values(name, column))
        else:
            values.append([None if field.is_required() or field.default_factory is not None
                           else field.default] * n)
    at = {name: i for i, name in enumerate(cls.model_fields)}
    values[at["attrs"]] = [{} if v is None else v for v in values[at["attrs"]]]
    always = {"ts", "attrs"}
    if cls is CallRecord:
        values[at["kind"]] = ["call"] * n
        values[at["success"]] = [error is None if success is None else success for
                                 success, error in zip(values[at["success"]],
                                                       values[at["error_type"]], strict=True)]
        always |= {"kind", "success"}
    order = list(cls.model_fields)
    known = fields_sets.setdefault((cls, tuple(given)), {})
    new, setattr_ = cls.__new__, object.__setattr__
    for row, bits in zip(zip(*values, strict=True), present.tolist(), strict=True):
        record = new(cls)
        setattr_(record, "__dict__", dict(zip(order, row, strict=True)))
        fields_set = known.get(bits)
        if fields_set is None:
            fields_set = known[bits] = frozenset(
                {name for i, name in enumerate(given) if bits >> i & 1} | always)
        # Its own set: pydantic adds to it when a field is assigned.
        setattr_(record, "__pydantic_fields_set__", set(fields_set))
        setattr_(record, "__pydantic_extra__", None)
        setattr_(record, "__pydantic_private__", None)
        yield record


#: Rows :func:`frame_records` turns into Python values at once.
_ROWS_AT_ONCE = 4096


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
