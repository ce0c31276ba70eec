"""Cache figures: the predictive cache against LRU and Belady of the same size."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from predictor.api.preload import PreloadRequest
from predictor.models.cache import AccessModel, PredictionCalibration
from predictor.models.caching import PredictiveCache, belady_hit_ratio, lru_hit_ratio
from predictor.preload import Preloader
from predictor.training.bundles import CacheBundle
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import rounded
from predictor.training.served import served_engine

__all__ = ["CACHE_GRID", "MAX_TUNING_ACCESSES", "CacheFit", "fit_cache", "score_cache",
           "tune_cache"]

#: Settings of the predictive cache tried on the validation slice of the training part.
CACHE_GRID = {
    "protected_share": (0.0, 0.5, 0.8),
    "preload_share": (0.1, 0.25),
    "threshold": (0.01, 0.05),
    "window_share": (None, 0.1),
}


def _replay(model: AccessModel, keys, ts, size: int, **settings) -> PredictiveCache:
    cache = PredictiveCache(size, model, **settings)
    for key, t in zip(keys, ts, strict=True):
        cache.access(key, t)
    return cache


class _Proposals:
    """An access model's proposals after each access of a sequence, replayed in order.

    Stands in for the model in :class:`PredictiveCache`: ``learn_one`` moves
    to the next access, ``predict_next`` answers what the model proposed
    there (computed once, with the ``k`` every cache of the grid asks).
    """

    K = 2 * 2  # PredictiveCache asks for twice its max_preload (2 in every setting)

    def __init__(self, model: AccessModel, keys: list[str], ts: np.ndarray) -> None:
        self._answers = []
        for key, t in zip(keys, ts, strict=True):
            model.learn_one(key, t)
            self._answers.append(model.predict_next(key, k=self.K))
        self._position = -1

    def rewound(self) -> _Proposals:
        """These proposals, from the first access again."""
        copy = object.__new__(_Proposals)
        copy._answers, copy._position = self._answers, -1
        return copy

    def learn_one(self, key: str, ts: float) -> None:
        self._position += 1

    def predict_next(self, key: str, k: int = 2) -> list[tuple[str, float]]:
        if k != self.K:
            raise ValueError(f"proposals were computed for k={self.K}, not {k}")
        return self._answers[self._position]


#: Most validation accesses each setting of :data:`CACHE_GRID` replays (the newest).
MAX_TUNING_ACCESSES = 50_000


def tune_cache(keys: list[str], ts: np.ndarray) -> tuple[dict, AccessModel]:
    """Pick cache settings on the training accesses alone.

    The model learns the first 80 % of the training accesses' time span; each
    setting of :data:`CACHE_GRID` then replays the rest at 5 % of its distinct
    keys. Returns the best setting and a model that has learned all of ``keys``.
    A validation part longer than :data:`MAX_TUNING_ACCESSES` is learned up to
    its newest that many, which are replayed: twelve replays of a long log
    would cost more than the rest of the family.
    """
    cut = ts.min() + 0.8 * (ts.max() - ts.min()) if len(ts) else 0.0
    fit = ts < cut
    if int((~fit).sum()) > MAX_TUNING_ACCESSES:
        fit = np.arange(len(ts)) < len(ts) - MAX_TUNING_ACCESSES
    model = AccessModel()
    for key, t in zip(itertools.compress(keys, fit), ts[fit], strict=True):
        model.learn_one(key, t)
    val_keys = list(itertools.compress(keys, ~fit))
    best: dict = {"protected_share": 0.0, "preload_share": 0.1, "threshold": 0.05,
                  "window_share": 0.1}
    if len(val_keys) >= 100:
        size = max(1, round(0.05 * len(set(val_keys))))
        # What the model proposes after each access does not depend on the cache it
        # drives: one copy of the model learns the validation accesses once, and every
        # setting replays its proposals (as each once did on a copy of its own).
        proposals = _Proposals(model.copy(), val_keys, ts[~fit])
        scores = []
        for values in itertools.product(*CACHE_GRID.values()):
            settings = dict(zip(CACHE_GRID, values, strict=True))
            cache = _replay(proposals.rewound(), val_keys, ts[~fit], size, **settings)
            scores.append((cache.hit_ratio, settings))
        best = max(scores, key=lambda item: item[0])[1]
    for key, t in zip(val_keys, ts[~fit], strict=True):
        model.learn_one(key, t)
    return best, model


@dataclass(frozen=True)
class CacheFit:
    """The access model after the training accesses, and the cache settings tuned on them."""

    model: AccessModel
    settings: dict

    @property
    def bundle(self) -> CacheBundle:
        """What training registers as ``predictor-cache``."""
        return CacheBundle(self.model, self.settings)


def _accesses(features: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, ts, has_key) over the calls."""
    calls = features.calls
    return (calls["cache_key"].to_numpy(object), calls["ts"].to_numpy(float),
            calls["cache_key"].notna().to_numpy())


def fit_cache(features: Features, options: Options | None = None) -> CacheFit:
    """Tune the predictive cache's settings and learn the access model on the training part."""
    keys, ts, has_key = _accesses(features)
    train, test = features.train, features.test
    if has_key[test].sum() < 10 or has_key[train].sum() < 10:
        raise Unsupported("too few cache_key accesses on one side of the time split")
    settings, model = tune_cache(list(keys[train & has_key]), ts[train & has_key])
    return CacheFit(model, settings)


def score_cache(features: Features, fit: CacheFit, options: Options | None = None
                ) -> tuple[dict, dict]:
    """The ``cache`` section of the report, and the data of its plot."""
    keys, ts, has_key = _accesses(features)
    train, test = features.train, features.test
    train_keys = list(keys[train & has_key])
    test_keys = list(keys[test & has_key])
    test_ts = ts[test & has_key]
    size = (options or Options()).cache_size or max(1, round(0.05 * len(set(test_keys))))
    settings = fit.settings
    # One pass of the model over the test accesses serves every cache size replayed.
    proposals = _Proposals(fit.model.copy(), test_keys, test_ts)
    cache = _replay(proposals.rewound(), test_keys, test_ts, size, **settings)
    section = {
        "cache_size": size,
        "hit_ratio": {
            "predictive": rounded(cache.hit_ratio),
            "lru": rounded(lru_hit_ratio(test_keys, size)),
            "belady": rounded(belady_hit_ratio(test_keys, size)),
        },
        "accesses": len(test_keys),
        "preloads": cache.preloads,
        "preload_precision": rounded(cache.preload_hits / cache.preloads if cache.preloads
                                     else 0.0),
        "settings": settings,
    }
    served = _served(train_keys, ts[train & has_key], test_keys, test_ts, size)
    section["hit_ratio"]["served"] = rounded(served.hit_ratio)
    section["served_preloads"] = served.preloads
    section["served_preload_precision"] = rounded(
        served.preload_hits / served.preloads if served.preloads else 0.0)
    section["served_preload_probability"] = served.model.probability()
    # Where the adaptive share of the cache's space for preloads ended.
    section["served_preload_share"] = rounded(served.preload_cap / served.size)
    section["variant"] = "online"
    section["variant_why"] = (f"{Preloader.why_online}; the cache around it is a segmented "
                              "LRU behind a frequency-admission window, with default shares, its "
                              "preloads' share adapting to the misses (the settings above are "
                              "tuned for 'predictive' only)")
    plot_data = _curve(proposals, settings, test_keys, test_ts, size, cache.hit_ratio) \
        if (options or Options()).plots else None
    return section, plot_data


def _curve(proposals: _Proposals, settings: dict, keys: list[str], ts: np.ndarray, size: int,
           hit_ratio: float) -> dict[str, list]:
    """Hit ratios of the predictive cache, LRU and Belady at 1/4 to 4 times ``size``."""
    sizes = sorted({max(1, int(size * f)) for f in (0.25, 0.5, 1, 2, 4)})
    return {
        "sizes": sizes,
        "predictive": [hit_ratio if s == size else
                       _replay(proposals.rewound(), keys, ts, s, **settings).hit_ratio
                       for s in sizes],
        "lru": [lru_hit_ratio(keys, s) for s in sizes],
        "belady": [belady_hit_ratio(keys, s) for s in sizes],
    }


class _ServedPreloads:
    """The preload decision as a cache's access model: it learns each access and proposes
    what ``POST /v1/preload`` would, with the request's defaults."""

    def __init__(self, preloader: Preloader) -> None:
        self.preloader = preloader
        #: Whether what the decision proposed was accessed within its horizon, later.
        self.check = PredictionCalibration(horizon=preloader.model.horizon)
        self.stated = 0.0
        self._ts = float("-inf")
        self._requests: dict[int, PreloadRequest] = {}

    def learn_one(self, key: str, ts: float) -> None:
        self.check.observe(key, ts)
        self.preloader.observe(key, ts)
        self._ts = ts

    def predict_next(self, key: str, k: int) -> list[tuple[str, float]]:
        request = self._requests.get(k)
        if request is None:  # one default request per budget: validated once
            request = self._requests[k] = PreloadRequest(budget_keys=k)
        proposed = self.preloader.proposals(request)  # what preload would answer
        self.check.record(proposed, self._ts)
        self.stated += sum(p for _, p in proposed)
        return proposed

    def probability(self) -> dict[str, float | None]:
        """The mean probability the decision stated for the keys it proposed, and the share
        of them accessed (at a later time) within the model's horizon."""
        issued = sum(self.check.issued)
        if not issued:
            return {"stated": None, "realized": None}
        return {"stated": rounded(self.stated / issued),
                "realized": rounded(sum(self.check.used) / issued)}


def _served(train_keys: list[str], train_ts: np.ndarray, test_keys: list[str],
            test_ts: np.ndarray, size: int) -> PredictiveCache:
    """A cache of ``size`` keys that preloads what the served preload decision proposes.

    The decision learns every training access first, then drives the cache
    over the test accesses, learning each as it happens (as the service does).
    """
    preloader = served_engine(("preload",)).plugin("preload")
    for key, t in zip(train_keys, train_ts, strict=True):
        preloader.observe(key, float(t))
    min_probability = PreloadRequest.model_fields["min_probability"].default
    return _replay(_ServedPreloads(preloader), test_keys, test_ts, size,
                   threshold=min_probability)
