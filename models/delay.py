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

import numpy as np

__all__ = ["LabelDelay", "finish_time", "finish_times", "release_schedule"]

T = TypeVar("T")


def finish_time(ts: float, latency_ms: float) -> float:
    """When a call's outcome becomes known (its start when latency is unknown)."""
    return ts if latency_ms != latency_ms else ts + latency_ms / 1000.0  # NaN check


def finish_times(ts: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """:func:`finish_time` of every call at once (the same arithmetic)."""
    return np.where(np.isnan(latency_ms), ts, ts + latency_ms / 1000.0)


def release_schedule(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When a :class:`LabelDelay` fed every call releases each, computed at once.

    Walking calls that start at ``starts`` (non-decreasing), asking for what is
    ready at each start and then adding that call with its ``ends``, call ``i``
    comes out before call ``release[i]`` (``len(starts)``: never), and
    ``order`` lists the calls in the order they come out.

    >>> release, order = release_schedule(np.array([0.0, 1.0, 2.0, 3.0]),
    ...                                   np.array([2.5, 1.5, 2.0, 9.0]))
    >>> release.tolist(), order.tolist()
    ([3, 2, 3, 4], [1, 2, 0, 3])
    """
    n = len(starts)
    # The first later start strictly after the end (a call is in the queue from the next).
    release = np.maximum(np.searchsorted(starts, ends, side="right"), np.arange(1, n + 1))
    # Released together: in the queue's order, by end, then by when they were added.
    return release, np.lexsort((np.arange(n), ends, release))


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
