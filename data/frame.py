"""Records as a flat, time-ordered pandas DataFrame: what models and evaluation read.

``ts`` becomes float seconds since the epoch; numbers are float (NaN when
absent); ``success``, ``cache_hit``, ``recovered`` and ``reachable`` are
float 1/0 (NaN when absent or not applicable); strings stay objects with
``None`` when absent; ``attrs`` stays a column of dicts.

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

from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from predictor.data.schema import CALL_FIELDS, HEALTH_FIELDS, CallRecord, HealthRecord, Record

__all__ = ["BOOL_COLUMNS", "NUMBER_COLUMNS", "STRING_COLUMNS", "frame_records",
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


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    """Flatten records into a DataFrame sorted by ``ts`` (stable for ties)."""
    cols: dict[str, list] = {
        name: [] for name in ("ts", *STRING_COLUMNS, *NUMBER_COLUMNS, *BOOL_COLUMNS, "attrs")
    }
    getters = [(name, cols[name]) for name in (*STRING_COLUMNS, *NUMBER_COLUMNS, *BOOL_COLUMNS)]
    ts = cols["ts"]
    for rec in records:
        ts.append(rec.epoch)
        fields = rec.__dict__  # pydantic keeps field values here; much faster than getattr
        for name, column in getters:
            column.append(fields.get(name))
        cols["attrs"].append(rec.attrs)
    data: dict[str, object] = {"ts": np.asarray(ts, dtype=float)}
    for name in STRING_COLUMNS:
        data[name] = pd.Series(cols[name], dtype=object)
    for name in (*NUMBER_COLUMNS, *BOOL_COLUMNS):
        # None becomes NaN in the float conversion.
        data[name] = np.array(cols[name], dtype=float)
    data["attrs"] = pd.Series(cols["attrs"], dtype=object)
    frame = pd.DataFrame(data)
    return frame.sort_values("ts", kind="stable", ignore_index=True)


_INTS = frozenset({"input_tokens", "output_tokens", "concurrency", "attempt", "queue_depth"})


def frame_records(frame: pd.DataFrame) -> list[Record]:
    """The records of a frame made by :func:`records_to_frame`, in its row order.

    The frame's values were validated when the records were read, so the
    records are built without validating them again (NaN becomes ``None``).
    """
    columns = [c for c in ("ts", *STRING_COLUMNS, *NUMBER_COLUMNS, *BOOL_COLUMNS, "attrs")
               if c in frame.columns]
    out: list[Record] = []
    for values in zip(*(frame[c].to_numpy() for c in columns), strict=True):
        row = dict(zip(columns, values, strict=True))
        fields: dict = {"ts": datetime.fromtimestamp(float(row.pop("ts")), UTC)}
        kind = row.get("kind")
        known = HEALTH_FIELDS if kind == "health" else CALL_FIELDS
        for name, value in row.items():
            if name not in known or value is None or (isinstance(value, float) and value != value):
                continue
            if name in BOOL_COLUMNS:
                value = bool(value)
            elif name in _INTS:
                value = int(value)
            elif name in NUMBER_COLUMNS:
                value = float(value)
            fields[name] = value
        fields.setdefault("attrs", {})
        if kind == "health":
            out.append(HealthRecord.model_construct(**fields))
        else:
            fields["kind"] = "call"
            fields.setdefault("success", fields.get("error_type") is None)
            out.append(CallRecord.model_construct(**fields))
    return out
