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

__all__ = ["summarize", "summary_dict"]


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


def summary_dict(frame: pd.DataFrame) -> dict:
    """What :func:`summarize` says, as data: counts, span, and per server its calls,
    failures, latency and success (``predictor summary --json``).

    >>> frame = pd.DataFrame({"ts": [0.0, 1.0, 2.0], "kind": ["call"] * 3,
    ...                       "server": ["a", "a", "b"], "tool": ["t"] * 3,
    ...                       "latency_ms": [10.0, 30.0, 5.0], "success": [1.0, 0.0, 1.0],
    ...                       "concurrency": [None] * 3})
    >>> summary_dict(frame)["servers"]["a"]
    {'calls': 2, 'failures': 1, 'success_rate': 0.5, 'latency_p50_ms': 20.0, 'latency_p95_ms': 29.0}
    """
    if frame.empty:
        return {"records": 0, "calls": 0, "health_probes": 0, "servers": {}}
    calls = frame[frame["kind"] == "call"]
    servers = {}
    for server, group in calls.groupby("server"):
        ok = group["success"].astype(float)
        latency = group["latency_ms"].astype(float)
        servers[str(server)] = {
            "calls": len(group),
            "failures": int((ok == 0).sum()),
            "success_rate": None if ok.isna().all() else round(float(ok.mean()), 4),
            "latency_p50_ms": None if latency.isna().all() else round(float(latency.median()), 3),
            "latency_p95_ms": None if latency.isna().all()
            else round(float(latency.quantile(0.95)), 3),
        }
    return {"records": len(frame), "calls": len(calls),
            "health_probes": int(len(frame) - len(calls)),
            "start": pd.Timestamp(frame["ts"].min(), unit="s", tz="UTC").isoformat(),
            "end": pd.Timestamp(frame["ts"].max(), unit="s", tz="UTC").isoformat(),
            "servers": servers}
