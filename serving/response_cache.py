"""The gateway's response cache for read-only tools, and what it counts.

An upstream marks a tool read-only with ``readOnlyHint``: calling it again
with the same arguments changes nothing, so its last answer can be served
again. Entries are keyed by tool and canonical arguments (the telemetry
``cache_key``), bounded in number (least recently used go first) and in
size per entry. An entry is *fresh* for ``ttl_s`` after it was stored and
answers calls on its own; past that it is *stale* and only serves a call
whose upstreams all failed, when the recover decision degrades (the answer
then says so in its ``_meta``).

Prefetched entries remember that they were prefetched until their first
hit, so the cache can say how many prefetches were used (precision).

>>> cache = ResponseCache(max_entries=2, ttl_s=10.0)
>>> key = cache_key("get_current_time", {"timezone": "UTC"})
>>> key
'get_current_time:7d3a1d4c580f507e'
>>> cache.put(key, "answer", now=0.0)
>>> cache.fresh(key, now=5.0), cache.fresh(key, now=11.0), cache.stale(key, now=11.0)
('answer', None, ('answer', 11.0))
>>> cache.stats()["hits"], cache.stats()["misses"]
(1, 1)
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

__all__ = ["ResponseCache", "cache_key"]

T = TypeVar("T")


def cache_key(tool: str, arguments: dict[str, Any] | None) -> str:
    """``tool:<hash of the canonical arguments>``: the same call gives the same key."""
    canonical = orjson.dumps(arguments or {}, option=orjson.OPT_SORT_KEYS)
    return f"{tool}:{hashlib.blake2b(canonical, digest_size=8).hexdigest()}"


@dataclass
class _Entry(Generic[T]):
    value: T
    stored: float
    prefetched: bool


class ResponseCache(Generic[T]):
    """A bounded LRU of answers with a freshness limit; thread-safe.

    Parameters
    ----------
    max_entries
        Entries kept at most; the least recently used go first.
    ttl_s
        Seconds an entry answers calls on its own (0: never; it still serves
        a degraded answer when every provider failed).
    """

    def __init__(self, max_entries: int = 1024, ttl_s: float = 30.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stale_served = 0
        self.prefetched = 0
        self.prefetch_used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def fresh(self, key: str, now: float, ttl_s: float | None = None) -> T | None:
        """The entry for ``key`` if stored less than ``ttl_s`` ago (counted as hit or miss)."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now - entry.stored >= ttl:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            if entry.prefetched:
                entry.prefetched = False
                self.prefetch_used += 1
            return entry.value

    def is_fresh(self, key: str, now: float, ttl_s: float | None = None) -> bool:
        """Whether ``key`` would be a hit now (not counted)."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        entry = self._entries.get(key)
        return entry is not None and now - entry.stored < ttl

    def stale(self, key: str, now: float) -> tuple[T, float] | None:
        """The entry for ``key`` however old, with its age in seconds (a degraded answer)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self.stale_served += 1
            return entry.value, now - entry.stored

    def put(self, key: str, value: T, now: float, prefetched: bool = False) -> None:
        """Store ``value`` for ``key``, dropping the least recently used past the bound."""
        with self._lock:
            self._entries[key] = _Entry(value, now, prefetched)
            self._entries.move_to_end(key)
            if prefetched:
                self.prefetched += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def keys_by_recency(self) -> list[str]:
        """Keys held, least recently used first."""
        with self._lock:
            return list(self._entries)

    def stats(self) -> dict[str, float]:
        """Hits, misses, hit ratio, prefetches and their precision (used over issued)."""
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "hit_ratio": self.hits / lookups if lookups else 0.0,
                "stale_served": self.stale_served, "prefetched": self.prefetched,
                "prefetch_used": self.prefetch_used,
                "prefetch_precision": self.prefetch_used / self.prefetched
                if self.prefetched else 0.0,
            }
