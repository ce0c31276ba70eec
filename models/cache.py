"""The cache family: which keys will be accessed next.

:class:`AccessModel` learns online, one access at a time, two kinds of
successor pattern:

* exact successors: after key ``A``, key ``B`` was accessed within the next
  ``horizon`` accesses (workflow and topic sequences: "after A comes B");
* strides, for numeric keys (block ids): the offsets ``B - A`` that follow
  an access, learned globally (sequential and strided scans).

Only accesses at a later timestamp count as successors: accesses sharing a
timestamp arrive together, so one cannot be predicted from another in time.

It also keeps per-key access counts (:meth:`AccessModel.access_count`). The
cache around it (:class:`predictor.models.caching.PredictiveCache`) keeps
its own recent frequencies for admission, halved as they age.

>>> model = AccessModel(horizon=2)
>>> for t, key in enumerate(["a", "b", "a", "b", "a"]):
...     model.learn_one(key, float(t))
>>> [(key, round(p, 3)) for key, p in model.predict_next("a", k=1)]
[('b', 0.667)]
>>> strides = AccessModel(horizon=1)
>>> for t, key in enumerate(["100", "108", "116", "124"]):
...     strides.learn_one(key, float(t))
>>> strides.predict_next("132", k=1)
[('140', 0.75)]
"""

from __future__ import annotations

import bisect
import heapq
import pickle
from collections import Counter, deque
from operator import itemgetter

__all__ = ["AccessModel", "PredictionCalibration", "ranked_by_score"]


def ranked_by_score(scores: dict[str, float]) -> list[tuple[str, float]]:
    """``scores``' items by score, highest first, equal scores by key: what sorting on
    ``(-score, key)`` gives, in two sorts that run in C (by key, then a stable sort by
    score) instead of a Python key function per item.

    >>> ranked_by_score({"b": 0.5, "c": 0.9, "a": 0.5})
    [('c', 0.9), ('a', 0.5), ('b', 0.5)]
    """
    ranked = sorted(scores.items())  # keys are distinct: the scores are never compared
    ranked.sort(key=itemgetter(1), reverse=True)  # stable: equal scores stay by key
    return ranked


class AccessModel:
    """Online successor and reuse model over a key access stream.

    Parameters
    ----------
    horizon
        How many later accesses count as successors of an access.
    max_successors
        Successors kept per key (the most frequent).
    max_strides
        Strides kept as candidates (the most frequent).
    max_keys
        Keys remembered (counts and successors). Past it, the least accessed
        half is forgotten, so a service that sees new keys for weeks keeps a
        bounded memory.
    """

    def __init__(self, horizon: int = 8, max_successors: int = 8, max_strides: int = 16,
                 max_keys: int = 250_000) -> None:
        self.horizon = horizon
        self.max_successors = max_successors
        self.max_strides = max_strides
        self.max_keys = max_keys
        # Plain dicts, not Counters: a Counter pickles through a Python __reduce__ that
        # copies it, which made the successors most of the time a published state took.
        self._successors: dict[str, dict[str, int]] = {}
        self._seen: Counter[str] = Counter()
        self._strides: Counter[int] = Counter()
        self._numeric_seen = 0
        self._recent: deque[tuple[str, float, int | None]] = deque()
        self._top_strides: list[tuple[int, int]] = []
        self._since_refresh = 0

    def __setstate__(self, state: dict) -> None:
        state.setdefault("max_keys", 250_000)  # checkpoints from before the bound
        successors = state.get("_successors") or {}
        if any(type(succ) is not dict for succ in successors.values()):  # saved as Counters
            state["_successors"] = {key: dict(succ) for key, succ in successors.items()}
        self.__dict__.update(state)

    def copy(self) -> AccessModel:
        """An independent copy: a pickle round trip, about ten times faster than
        ``copy.deepcopy`` on a model of many keys."""
        return pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def _as_int(key: str) -> int | None:
        if key.isdigit() and len(key) < 19:
            return int(key)
        return None

    def learn_one(self, key: str, ts: float) -> None:
        """Learn from one access of ``key`` at time ``ts`` (seconds)."""
        number = self._as_int(key)
        successors, strides = self._successors, self._strides
        crowded = 4 * self.max_successors
        credited: set[str] = set()
        credited_strides: set[int] = set()
        for prev_key, prev_ts, prev_number in self._recent:
            if prev_ts >= ts or prev_key in credited:
                continue
            credited.add(prev_key)
            succ = successors.get(prev_key)
            if succ is None:
                succ = successors[prev_key] = {key: 1}
            else:
                succ[key] = succ.get(key, 0) + 1
                if len(succ) > crowded:
                    # Keep memory bounded: drop the rarest successors.
                    # What succ.most_common() ranks (a stable sort on the counts).
                    for rare, _ in sorted(succ.items(), key=itemgetter(1),
                                          reverse=True)[2 * self.max_successors:]:
                        del succ[rare]
            if number is not None and prev_number is not None:
                stride = number - prev_number
                if stride not in credited_strides:
                    credited_strides.add(stride)
                    strides[stride] = strides.get(stride, 0) + 1
        seen = self._seen
        seen[key] = seen.get(key, 0) + 1
        if number is not None:
            self._numeric_seen += 1
        recent = self._recent
        recent.append((key, ts, number))
        if len(recent) > self.horizon:
            recent.popleft()
        self._since_refresh += 1
        if self._since_refresh >= 1000:
            self._refresh_strides()
            if len(self._seen) > self.max_keys:
                self._forget_rare_keys()

    def _forget_rare_keys(self) -> None:
        # The most accessed keys; among equals, the newest (a key seen once long ago is
        # less likely to come back than one seen once just now).
        ranked = heapq.nlargest(self.max_keys // 2, enumerate(self._seen.items()),
                                key=lambda item: (item[1][1], item[0]))
        self._seen = Counter(dict(pair for _, pair in sorted(ranked)))
        self._successors = {key: succ for key, succ in self._successors.items()
                            if key in self._seen}

    def _refresh_strides(self) -> None:
        self._since_refresh = 0
        if len(self._strides) > 50_000:
            self._strides = Counter(dict(self._strides.most_common(5_000)))
        self._top_strides = [(s, c) for s, c in self._strides.most_common(self.max_strides) if s]

    def predict_next(self, key: str, k: int = 2) -> list[tuple[str, float]]:
        """The ``k`` keys most likely to follow ``key``, with probabilities."""
        scores: dict[str, float] = {}
        seen = self._seen.get(key, 0)
        succ = self._successors.get(key)
        if succ and seen:
            # What succ.most_common(n) answers (heapq.nlargest is documented equal to this
            # sort, ties in insertion order), sorted in C: its heap runs in Python. With n
            # or fewer successors all are kept, and the order they are scored in does not
            # matter (the ranking below is total), so nothing is sorted.
            items = succ.items() if len(succ) <= self.max_successors else sorted(
                succ.items(), key=itemgetter(1), reverse=True)[:self.max_successors]
            for other, count in items:
                if other != key:
                    scores[other] = min(1.0, count / seen)
        number = self._as_int(key)
        if number is not None and self._numeric_seen:
            if not self._top_strides and self._strides:
                self._refresh_strides()
            for stride, count in self._top_strides:
                candidate = str(number + stride)
                p = min(1.0, count / self._numeric_seen)
                if p > scores.get(candidate, 0.0):
                    scores[candidate] = p
        return ranked_by_score(scores)[:k]

    def access_count(self, key: str) -> int:
        """How many times ``key`` has been accessed so far."""
        return self._seen.get(key, 0)


class PredictionCalibration:
    """How often the access model's probabilities came true, by probability bin.

    After each access, :meth:`record` is given what was predicted next;
    :meth:`observe` credits a prediction when its key is accessed, at a later
    time, within the next ``horizon`` accesses (when a preload issued then
    would have been used). Calling it answers a probability as the rate seen
    in its bin (over about its latest ``memory`` to ``2 * memory``
    predictions when ``memory`` is set), shrunk towards itself by ``prior``
    pseudo-predictions. The
    preload decision states its probabilities through it, and the evaluation
    checks them with another.

    >>> calibration = PredictionCalibration(horizon=2)
    >>> for t in range(100):
    ...     calibration.record([("never", 0.3)], float(t))
    ...     calibration.observe("other", float(t) + 0.5)
    >>> round(calibration(0.3), 3)
    0.006
    """

    #: Upper edges of the probability bins.
    EDGES = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75)

    def __init__(self, horizon: int = 8, prior: float = 2.0, memory: int | None = None
                 ) -> None:
        self.horizon = horizon
        self.prior = prior
        self.memory = memory
        self.issued = [0] * (len(self.EDGES) + 1)
        self.used = [0] * (len(self.EDGES) + 1)
        self._pending: deque[tuple[int, float, dict[str, int]]] = deque()
        self._position = 0

    def record(self, predictions: list[tuple[str, float]], ts: float) -> None:
        """Remember ``(key, probability)`` predictions made at ``ts``."""
        keys = {}
        for key, probability in predictions:
            b = bisect.bisect_left(self.EDGES, probability)
            if self.memory is not None and self.issued[b] >= 2 * self.memory:
                # Halved: the rate of the latest few hundred predictions, so that it
                # follows an access pattern that changes.
                self.issued[b] //= 2
                self.used[b] //= 2
            self.issued[b] += 1
            keys[key] = b
        if keys:
            self._pending.append((self._position, ts, keys))

    def observe(self, key: str, ts: float) -> None:
        """One access: credit the pending predictions of ``key`` made before ``ts``."""
        for _, made, keys in self._pending:
            if made < ts:
                b = keys.pop(key, None)
                if b is not None:
                    self.used[b] += 1
        self._position += 1
        while self._pending and self._pending[0][0] < self._position - self.horizon:
            self._pending.popleft()

    def __call__(self, probability: float) -> float:
        """The rate at which predictions of ``probability`` came true."""
        b = bisect.bisect_left(self.EDGES, probability)
        # At most 1: a prediction made before its bin was halved may still be credited.
        return min(1.0, (self.used[b] + self.prior * probability) / (self.issued[b] + self.prior))
