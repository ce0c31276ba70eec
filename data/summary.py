"""A readable summary of a telemetry frame: what the main job prints.

>>> import pandas as pd
>>> from predictor.data.frame import records_to_frame
>>> from predictor.data.schema import parse_record
>>> frame = records_to_frame([parse_record({"ts": 0, "server": "a", "tool": "t",
...                                         "latency_ms": 10})])
>>> print(summarize(frame).splitlines()[0])
1 records (1 calls, 0 health probes) from 1970-01-01 00:00:00+00:00 to 1970-01-01 00:00:00+00:00
"""

from __future__ import annotations

import pandas as pd

__all__ = ["summarize"]


def summarize(frame: pd.DataFrame) -> str:
    """Counts, time span and per-server latency, success and load, as text."""
    if frame.empty:
        return "0 records"
    calls = frame[frame["kind"] == "call"]
    start = pd.Timestamp(frame["ts"].min(), unit="s", tz="UTC")
    end = pd.Timestamp(frame["ts"].max(), unit="s", tz="UTC")
    lines = [
        f"{len(frame)} records ({len(calls)} calls, {len(frame) - len(calls)} health probes) "
        f"from {start} to {end}"
    ]
    if not calls.empty:
        per_server = calls.groupby("server").agg(
            calls=("tool", "size"),
            latency_p50_ms=("latency_ms", "median"),
            latency_p95_ms=("latency_ms", lambda s: s.quantile(0.95)),
            success=("success", "mean"),
            mean_concurrency=("concurrency", "mean"),
        )
        lines.append(per_server.round(3).to_string())
    return "\n".join(lines)
