"""Label delay: an online model learns from a call only once its outcome is known.

A call's outcome is known when it finishes (``ts + latency_ms``); the next
calls that start before then must be predicted without it, as in
production (river's ``progressive_val_score(..., delay=...)``).

>>> delay = LabelDelay()
>>> delay.add(10.0, "a")
>>> delay.add(5.0, "b")
>>> list(delay.ready(6.0)), list(delay.ready(11.0))
(['b'], ['a'])
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

__all__ = ["LabelDelay", "finish_time"]

T = TypeVar("T")


def finish_time(ts: float, latency_ms: float) -> float:
    """When a call's outcome becomes known (its start when latency is unknown)."""
    return ts if latency_ms != latency_ms else ts + latency_ms / 1000.0  # NaN check


class LabelDelay(Generic[T]):
    """Items held until their time has passed, released in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    def add(self, at: float, item: T) -> None:
        heapq.heappush(self._heap, (at, self._seq, item))
        self._seq += 1

    def ready(self, now: float) -> list[T]:
        """Release every item whose time is strictly before ``now``, in time order.

        A list, not a generator: a replay asks at every record, and most of the
        time nothing is due.
        """
        heap = self._heap
        due = []
        while heap and heap[0][0] < now:
            due.append(heapq.heappop(heap)[2])
        return due

    def __len__(self) -> int:
        return len(self._heap)
