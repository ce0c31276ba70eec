"""The preload decision: which keys to fetch ahead of their use.

:class:`Preloader` learns the access stream from telemetry (every call with
a ``cache_key``) with :class:`predictor.models.cache.AccessModel`: exact successors
("after A comes B") and, for numeric keys, strides. Given the recent
accesses, it ranks candidate keys by the probability that each is accessed
within the model's horizon, merging the successors of the last few
accesses (more recent accesses weigh more), and keeps the best ones that
fit the budget and are not cached already. ``estimated_hit_rate`` is the
expected share of the preloaded keys that will be used (the mean of their
probabilities).

>>> preloader = Preloader()
>>> for t, key in enumerate(["a", "b", "c"] * 20):
...     preloader.observe(key, float(t))
>>> answer = preloader.preload(PreloadRequest(recent=["a"], budget_keys=1))
>>> [k.key for k in answer.keys], answer.source
(['b'], 'online')
"""

from __future__ import annotations

import threading
from collections import deque
from operator import itemgetter

from predictor.api.preload import PreloadKey, PreloadRequest, PreloadResponse
from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord
from predictor.models.cache import AccessModel, PredictionCalibration, ranked_by_score
from predictor.plugin import DecisionPlugin

__all__ = [
    "PreloadKey",
    "PreloadRequest",
    "PreloadResponse",
    "Preloader",
]








class Preloader(DecisionPlugin):
    """Learns key access patterns from telemetry and proposes preloads; thread-safe.

    Parameters
    ----------
    horizon
        Accesses ahead that count as "next" for the successor model.
    context
        How many of the most recent accesses propose candidates.
    """

    def __init__(self, *, horizon: int = 8, context: int = 3) -> None:
        super().__init__()
        self.model = AccessModel(horizon=horizon)
        #: How often the answers' probabilities came true lately: what the answers say.
        self.calibration = PredictionCalibration(horizon=horizon, memory=self.CALIBRATION_MEMORY)
        #: The latest keys seen in telemetry: the default ``recent`` of a request.
        self.recent: deque[str] = deque(maxlen=16)
        self.context = context
        self._lock = threading.Lock()
        self.observations = 0

    #: Keys of the default answer checked, after one access in :attr:`SHADOW_EVERY`.
    SHADOW_KEYS = 4
    SHADOW_EVERY = 4
    #: Predictions per probability bin the stated rates follow (see PredictionCalibration).
    CALIBRATION_MEMORY = 200

    family = "cache"
    why_online = "preload answers from the online access model, which learns every access"

    def learn_call(self, record: CallRecord) -> None:
        if record.cache_key is not None:
            self.observe(record.cache_key, record.epoch)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "calibration" not in state:  # checkpoints from before calibration
            self.calibration = PredictionCalibration(horizon=self.model.horizon,
                                                     memory=self.CALIBRATION_MEMORY)

    def observe(self, key: str, ts: float) -> None:
        """Learn one access to ``key`` at ``ts``."""
        with self._lock:
            self.calibration.observe(key, ts)
            self.model.learn_one(key, ts)
            self.recent.append(key)
            self.observations += 1
            # What a default request would be answered now, checked against what comes;
            # after every few accesses only: rates need counts, not every answer.
            if self.observations % self.SHADOW_EVERY == 0:
                recent = list(self.recent)[-self.context:]
                # Highest first, equal scores in the order proposed (a stable sort).
                ranked = sorted(self._scores(recent, self.SHADOW_KEYS, {key}).items(),
                                key=itemgetter(1), reverse=True)
                self.calibration.record(ranked[:self.SHADOW_KEYS], ts)

    def _scores(self, recent: list[str], limit: int, skip: set[str]) -> dict[str, float]:
        """Uncalibrated scores of the candidates the ``recent`` accesses propose."""
        scores: dict[str, float] = {}
        for age, key in enumerate(reversed(recent)):
            weight = 0.5 ** age  # the latest access says most about what comes next
            for candidate, p in self.model.predict_next(key, k=max(limit, 1) * 2):
                if candidate not in skip:
                    # What max(scores.get(candidate, 0.0), weight * p) keeps.
                    score, known = weight * p, scores.get(candidate)
                    if known is None or score > known:
                        scores[candidate] = score
        return scores

    def preload(self, req: PreloadRequest) -> PreloadResponse:
        keys, learned, observations = self._chosen(req)
        chosen = [PreloadKey(key=k, probability=p) for k, p in keys]
        rate = sum(k.probability for k in chosen) / len(chosen) if chosen else 0.0
        return PreloadResponse(keys=chosen, estimated_hit_rate=round(rate, 4),
                               source="online" if learned else "prior",
                               model=Provenance.of("cache", observations=observations,
                                                   learned=learned))

    def proposals(self, req: PreloadRequest) -> list[tuple[str, float]]:
        """The keys :meth:`preload` would answer ``req`` with and their probabilities, without
        building its answer: what a replay of the decision asks after every access."""
        return self._chosen(req)[0]

    def _chosen(self, req: PreloadRequest) -> tuple[list[tuple[str, float]], bool, int]:
        """The chosen (key, probability as answered), whether they are learned, and the
        observations they come from."""
        limit = req.budget_keys
        if req.budget_mb is not None:
            limit = min(limit, int(req.budget_mb // req.key_size_mb))
        with self._lock:
            # No accesses given: the latest ones seen in telemetry.
            accessed = req.recent or list(self.recent)
            recent = accessed[-self.context:]
            skip = set(req.cached) | set(accessed[-1:])
            raw = self._scores(recent, limit, skip)
            # Stated as the rate at which such scores came true lately (the successor counts
            # overstate on keys that rarely repeat: 0.21 stated where 0.10 came true on
            # CloudPhysics).
            scores = {key: self.calibration(p) for key, p in raw.items()}
            # Learned: the model knows one of these accesses, or proposed something for them
            # (strides learned on other keys); a key never seen gets no learned answer.
            learned = bool(scores) or any(self.model.access_count(k) for k in recent)
            observations = self.observations
        ranked = ranked_by_score(scores)
        chosen = [(k, round(p, 4)) for k, p in ranked if p >= req.min_probability][:limit]
        return chosen, learned, observations
