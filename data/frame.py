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
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from predictor.data.schema import Record

__all__ = ["BOOL_COLUMNS", "NUMBER_COLUMNS", "STRING_COLUMNS", "records_to_frame"]

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
