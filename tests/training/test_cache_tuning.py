"""The cache grid replays the access model's proposals instead of relearning it per setting."""

from __future__ import annotations

import itertools
import pickle

import numpy as np

from predictor.models.cache import AccessModel
from predictor.training.eval_cache import CACHE_GRID, _Proposals, _replay


def _accesses(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    keys: list[str] = []
    while len(keys) < n:
        # Runs of numbered blocks (strides) and a few popular keys.
        if rng.random() < 0.3:
            keys.append(f"hot{int(rng.integers(0, 12))}")
        else:
            start = int(rng.integers(0, 400)) * 8
            keys.extend(str(start + 8 * i) for i in range(int(rng.integers(1, 6))))
    return keys[:n], np.cumsum(rng.exponential(1.0, n))


def test_every_setting_scores_as_with_a_model_of_its_own():
    keys, ts = _accesses(3_000, seed=4)
    model = AccessModel()
    for key, t in zip(keys[:1_500], ts[:1_500], strict=True):
        model.learn_one(key, t)
    state = pickle.dumps(model)
    val_keys, val_ts = keys[1_500:], ts[1_500:]
    proposals = _Proposals(pickle.loads(state), val_keys, val_ts)
    ratios = []
    for values in itertools.product(*CACHE_GRID.values()):
        settings = dict(zip(CACHE_GRID, values, strict=True))
        own = _replay(pickle.loads(state), val_keys, val_ts, 40, **settings)
        shared = _replay(proposals.rewound(), val_keys, val_ts, 40, **settings)
        assert (shared.hits, shared.preloads, shared.preload_hits) == (
            own.hits, own.preloads, own.preload_hits)
        ratios.append(own.hit_ratio)
    # The grid's settings do differ on this sequence (the test compares something).
    assert len(set(ratios)) > 3 and min(ratios) > 0.1
