"""Scenarios built from real logs: the shifts users' logs will have and ours do not.

:func:`late_groups` moves some groups of a log (workflow families, say) to the
end of its time span, so that a time split tests on groups the training part
never saw: a new workflow system coming online, a tool mix that shifts.

:func:`stretched` slows a log's clock down, so that each load window holds a
few calls where it held hundreds: the sparse, intermittent per-server load
of a quiet fleet, with the real log's bursts and lulls.

>>> records = [{"ts": float(t), "group": g} for t, g in enumerate("abab")]
>>> [(r["group"], r["ts"]) for r in late_groups(records, {"b"}, key=lambda r: r["group"],
...                                            span_s=100.0)]
[('a', 0.0), ('a', 80.0), ('b', 82.0), ('b', 100.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

__all__ = ["late_groups", "stretched"]


def _epoch(ts: Any) -> float:
    if isinstance(ts, int | float):
        return float(ts)
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


def late_groups(records: Iterable[dict[str, Any]], late: set[str],
                key: Callable[[dict[str, Any]], str], *, span_s: float = 10_000_000.0,
                share: float = 0.19) -> list[dict[str, Any]]:
    """``records`` retimed: the other groups squeezed into the first ``1 - share`` of
    ``span_s`` (less a 1 % gap), the ``late`` groups into the last ``share``.

    Each part keeps its own order and relative spacing. Returns new dicts in time
    order, with ``ts`` in epoch seconds.
    """
    early = [dict(r) for r in records if key(r) not in late]
    later = [dict(r) for r in records if key(r) in late]
    gap = 0.01 * span_s

    def squeeze(part: list[dict[str, Any]], start: float, end: float) -> None:
        times = [_epoch(r["ts"]) for r in part]
        if not times:
            return
        low, high = min(times), max(times)
        for r, t in zip(part, times, strict=True):
            r["ts"] = start + (t - low) / ((high - low) or 1.0) * (end - start)

    squeeze(early, 0.0, (1 - share) * span_s - gap)
    squeeze(later, (1 - share) * span_s + gap, span_s)
    return sorted(early + later, key=lambda r: r["ts"])


def stretched(records: Iterable[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """``records`` with the time since the first one multiplied by ``factor``.

    Returns new dicts in time order, with ``ts`` in epoch seconds; durations
    (``latency_ms``) stay as they were.

    >>> [r["ts"] for r in stretched([{"ts": 10.0}, {"ts": 12.5}], 100.0)]
    [10.0, 260.0]
    """
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}")
    out = [dict(r) for r in records]
    times = [_epoch(r["ts"]) for r in out]
    start = min(times, default=0.0)
    for r, t in zip(out, times, strict=True):
        r["ts"] = start + (t - start) * factor
    return sorted(out, key=lambda r: r["ts"])
