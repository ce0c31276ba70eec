"""Caches replayed over an access sequence: LRU, Belady, and the predictive cache.

All count keys (every item the same size) and report the hit ratio over the
accesses they are given. The predictive cache is driven by
:class:`predictor.models.cache.AccessModel`; LRU and Belady are its baselines.

>>> keys = ["a", "b", "a", "c", "b", "a"]
>>> lru_hit_ratio(keys, 2), belady_hit_ratio(keys, 2)
(0.16666666666666666, 0.3333333333333333)
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from collections.abc import Sequence

__all__ = ["PredictiveCache", "belady_hit_ratio", "lru_hit_ratio", "next_use_positions"]


def lru_hit_ratio(keys: Sequence[str], size: int) -> float:
    """Hit ratio of a least-recently-used cache of ``size`` keys."""
    if not keys:
        return 0.0
    cache: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in keys:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > size:
                cache.popitem(last=False)
    return hits / len(keys)


def next_use_positions(keys: Sequence[str]) -> list[int]:
    """For each position, where the same key is accessed next (``len(keys)`` if never)."""
    never = len(keys)
    nxt = [never] * len(keys)
    last: dict[str, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        nxt[i] = last.get(keys[i], never)
        last[keys[i]] = i
    return nxt


def belady_hit_ratio(keys: Sequence[str], size: int) -> float:
    """Hit ratio of Belady's offline optimum (demand fetch, evict the furthest next use)."""
    if not keys:
        return 0.0
    nxt = next_use_positions(keys)
    cached: dict[str, int] = {}  # key -> its next use
    heap: list[tuple[int, str]] = []  # (-next use, key), lazily invalidated
    hits = 0
    for i, key in enumerate(keys):
        if key in cached:
            hits += 1
        elif len(cached) >= size:
            while True:
                neg, victim = heapq.heappop(heap)
                if cached.get(victim) == -neg:
                    del cached[victim]
                    break
        cached[key] = nxt[i]
        heapq.heappush(heap, (-nxt[i], key))
    return hits / len(keys)


class PredictiveCache:
    """A key cache whose preloading and eviction follow a learned access model.

    Space is shared by three segments, like a segmented LRU: *probation*
    (keys fetched on a miss, not yet reused), *protected* (keys reused while
    cached: likely to be reused again) and *preloaded* (keys fetched ahead of
    use on the model's prediction). Victims come first from preloaded keys
    past their share, then from probation, then from protected, so one-hit
    keys and wrong guesses leave before keys with proven reuse. The
    preloads' share follows the misses (``adapt_preloads``): it grows when
    preloads leave before their use, shrinks when they push out keys that
    are read again.

    A missed key first enters a small *window* (``window_share`` of the
    space, plain LRU). When the window overflows, its oldest key is admitted
    to the rest of the cache only if it has been accessed more often than the
    key it would evict (frequencies counted over the recent accesses, halved
    every ten cache sizes of them: W-TinyLFU's admission). Keys read once,
    the bulk of a prefix cache's or a scan's accesses, then pass through the
    window without pushing out keys that are reused.

    After each access the model proposes successors; at most ``max_preload``
    of them whose probability reaches ``threshold`` are preloaded. A preload
    issued at time ``t`` is usable only by accesses with a later time.

    Parameters
    ----------
    size
        Capacity in keys.
    model
        Any object with ``predict_next(key, k)`` and ``learn_one(key, ts)``,
        normally :class:`predictor.models.cache.AccessModel`.
    window_share
        Share of the space for the admission window; ``None`` admits every
        missed key (a segmented LRU).
    adapt_preloads
        Move the preloaded segment's share (starting at ``preload_share``)
        with what the misses say, as ARC moves its recency/frequency split:
        the cache remembers the keys it evicted (as many as it holds) from
        each side; a miss on a preload evicted unused grows the share, a
        miss on a demand-fetched key evicted shrinks it, each by the ratio
        of the two memories' sizes (at least one key). The share stays
        between one key and half the space. ``False`` keeps it fixed.
    """

    def __init__(self, size: int, model, *, max_preload: int = 2, threshold: float = 0.05,
                 protected_share: float = 0.5, preload_share: float = 0.1,
                 window_share: float | None = 0.1, adapt_preloads: bool = True) -> None:
        self.size = max(1, size)
        self.window_cap = 0 if window_share is None else max(1, round(window_share * self.size))
        self.window: OrderedDict[str, None] = OrderedDict()
        self._frequency: Counter[str] = Counter()
        self._counted = 0
        self._sample = 10 * self.size
        self.model = model
        self.max_preload = max_preload
        self.threshold = threshold
        self.protected_cap = max(1, int(protected_share * self.size))
        self.preload_cap = max(1, int(preload_share * self.size))
        self.adapt_preloads = adapt_preloads
        self._max_preload_cap = max(1, self.size // 2)
        #: Keys evicted lately, unused preloads and demand-fetched keys: ARC's ghosts.
        self._preload_ghosts: OrderedDict[str, None] = OrderedDict()
        self._demand_ghosts: OrderedDict[str, None] = OrderedDict()
        self.probation: OrderedDict[str, None] = OrderedDict()
        self.protected: OrderedDict[str, None] = OrderedDict()
        self.preloaded: OrderedDict[str, None] = OrderedDict()
        self._pending: list[str] = []
        self._pending_ts = float("-inf")
        #: Keys held in all the segments and the window: what ``len`` answers, kept as they
        #: move (summing four sizes at every insertion and eviction was most of a replay).
        self._held = 0
        self.hits = 0
        self.accesses = 0
        self.preloads = 0
        self.preload_hits = 0

    def __contains__(self, key: str) -> bool:
        return (key in self.probation or key in self.protected or key in self.preloaded
                or key in self.window)

    def __len__(self) -> int:
        return self._held

    def _victim(self) -> tuple[OrderedDict[str, None], str] | None:
        """The segment and key the main cache evicts next (the window aside)."""
        if self.preloaded and (len(self.preloaded) > self.preload_cap
                               or not (self.probation or self.protected)):
            segment = self.preloaded
        elif self.probation:
            segment = self.probation
        elif self.protected:
            segment = self.protected
        else:
            return None
        return segment, next(iter(segment))

    def _evict(self) -> None:
        victim = self._victim()
        if victim is None:
            self.window.popitem(last=False)
            self._held -= 1
        else:
            self._drop(*victim)

    def _drop(self, segment: OrderedDict[str, None], key: str) -> None:
        """Evict ``key`` from the main cache's ``segment``, remembering it as a ghost."""
        del segment[key]
        self._held -= 1
        if self.adapt_preloads:
            ghosts = self._preload_ghosts if segment is self.preloaded else self._demand_ghosts
            ghosts[key] = None
            if len(ghosts) > self.size:
                ghosts.popitem(last=False)

    def _adapt(self, key: str) -> None:
        """A miss on ``key``: move the preload share towards the side that lost it."""
        preload_ghosts, demand_ghosts = self._preload_ghosts, self._demand_ghosts
        if key in preload_ghosts:
            del preload_ghosts[key]
            step = max(1, len(demand_ghosts) // max(1, len(preload_ghosts)))
            self.preload_cap = min(self._max_preload_cap, self.preload_cap + step)
        elif key in demand_ghosts:
            del demand_ghosts[key]
            step = max(1, len(preload_ghosts) // max(1, len(demand_ghosts)))
            self.preload_cap = max(1, self.preload_cap - step)

    def _insert(self, segment: OrderedDict[str, None], key: str) -> None:
        """Hold ``key`` (not held yet) in ``segment``, evicting first if the cache is full."""
        while self._held >= self.size:
            self._evict()
        segment[key] = None
        self._held += 1

    def _count(self, key: str) -> None:
        self._frequency[key] += 1
        self._counted += 1
        if self._counted >= self._sample:
            # Halved: frequencies say what is popular now, not since the start.
            self._frequency = Counter({k: c // 2 for k, c in self._frequency.items() if c > 1})
            self._counted //= 2

    def _admit_missed(self, key: str) -> None:
        if not self.window_cap:
            self._insert(self.probation, key)
            return
        self.window[key] = None
        self._held += 1
        if len(self.window) <= self.window_cap:
            while self._held > self.size:
                self._evict()
            return
        candidate, _ = self.window.popitem(last=False)
        if self._held <= self.size:  # the candidate left the window: one key fewer held
            self.probation[candidate] = None
            return
        self._held -= 1
        victim = self._victim()
        if victim is not None and self._frequency[candidate] > self._frequency[victim[1]]:
            self._drop(*victim)
            self.probation[candidate] = None
            self._held += 1

    def _flush_preloads(self, ts: float) -> None:
        if self._pending and ts > self._pending_ts:
            for key in self._pending:
                if key not in self:
                    self._insert(self.preloaded, key)
                    self.preloads += 1
                    # Resident again: no longer a ghost of either side.
                    self._preload_ghosts.pop(key, None)
                    self._demand_ghosts.pop(key, None)
            self._pending = []

    def access(self, key: str, ts: float, *, learn: bool = True) -> bool:
        """Serve one access; return whether it hit."""
        self._flush_preloads(ts)
        self.accesses += 1
        self._count(key)
        hit = True
        if key in self.window:
            self.window.move_to_end(key)
        elif key in self.protected:
            self.protected.move_to_end(key)
        elif key in self.probation:
            del self.probation[key]
            self.protected[key] = None
            if len(self.protected) > self.protected_cap:
                demoted, _ = self.protected.popitem(last=False)
                self.probation[demoted] = None
        elif key in self.preloaded:
            del self.preloaded[key]
            self.probation[key] = None
            self.preload_hits += 1
        else:
            hit = False
            if self.adapt_preloads:
                self._adapt(key)
            self._admit_missed(key)
        self.hits += hit
        if learn:
            self.model.learn_one(key, ts)
        if ts > self._pending_ts:
            self._pending_ts = ts
        issued = 0
        for candidate, probability in self.model.predict_next(key, k=2 * self.max_preload):
            if issued >= self.max_preload or probability < self.threshold:
                break
            if candidate not in self and candidate not in self._pending:
                self._pending.append(candidate)
                issued += 1
        return hit

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.accesses if self.accesses else 0.0
