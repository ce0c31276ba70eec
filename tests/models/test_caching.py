from __future__ import annotations

import pytest

from predictor.models.cache import AccessModel
from predictor.models.caching import PredictiveCache, belady_hit_ratio, lru_hit_ratio


def test_lru_counts_hits():
    assert lru_hit_ratio(["a", "b", "a", "c", "a", "b"], 2) == pytest.approx(2 / 6)


def test_belady_beats_or_ties_lru_and_is_optimal_on_a_known_case():
    keys = ["a", "b", "c", "a", "b", "c", "a", "b", "c"]
    assert lru_hit_ratio(keys, 2) == 0.0
    # Optimal keeps one of the cycle resident: 3 hits of 9 with 2 slots... exactly:
    assert belady_hit_ratio(keys, 2) == pytest.approx(3 / 9)


def test_reference_hit_ratios_on_cloudphysics(shared_data):
    from predictor.data.readers import read_records

    keys = [r.cache_key for r in read_records(shared_data / "cloudphysics-cache.jsonl.gz")]
    expected = {500: (0.1622, 0.2081), 2500: (0.1756, 0.2986), 5000: (0.1962, 0.3738),
                10000: (0.3024, 0.4569)}
    for size, (lru, belady) in expected.items():
        assert round(lru_hit_ratio(keys, size), 4) == lru
        assert round(belady_hit_ratio(keys, size), 4) == belady


def test_access_model_learns_successors_and_strides():
    model = AccessModel(horizon=1)
    for t, key in enumerate(["x", "y", "z", "x", "y", "z", "x"]):
        model.learn_one(key, float(t))
    assert model.predict_next("x", k=1) == [("y", pytest.approx(2 / 3))]
    strided = AccessModel(horizon=1)
    for t in range(50):
        strided.learn_one(str(1000 + 8 * t), float(t))
    assert strided.predict_next("5000", k=1)[0][0] == "5008"


def test_same_timestamp_accesses_are_not_successors():
    model = AccessModel()
    for key in ("a", "b"):
        model.learn_one(key, 1.0)
    assert model.predict_next("a") == []


def test_predictive_cache_preloads_a_repeating_sequence():
    sequence = [f"k{i}" for i in range(20)] * 30
    ts = [float(i) for i in range(len(sequence))]
    cache = PredictiveCache(5, AccessModel(horizon=2), threshold=0.2)
    for key, t in zip(sequence, ts, strict=True):
        cache.access(key, t)
    # LRU of 5 keys never hits a cycle of 20; the preloader learns the cycle.
    assert lru_hit_ratio(sequence, 5) == 0.0
    assert cache.hit_ratio > 0.8
    assert cache.preload_hits > 0


def test_preload_is_not_usable_within_the_same_timestamp():
    cache = PredictiveCache(4, AccessModel(horizon=1), threshold=0.0)
    # Teach a -> b at distinct times, then access a and b together at one time.
    for t, key in enumerate(["a", "b", "c", "a", "b", "c"]):
        cache.model.learn_one(key, float(t))
    fresh = PredictiveCache(4, cache.model, threshold=0.0)
    fresh.access("a", 100.0, learn=False)
    assert fresh.access("b", 100.0, learn=False) is False
    # b was preloaded after a at t=100 but arrived at t=100 too: a miss, not a preload hit.
    assert fresh.preload_hits == 0
    # c, preloaded after b at t=100, is there for an access at t=101.
    assert fresh.access("c", 101.0, learn=False) is True
    assert fresh.preload_hits == 1


def test_access_model_memory_is_bounded_and_keeps_the_frequent_keys():
    model = AccessModel(horizon=1, max_keys=1_000)
    t = 0.0
    for i in range(20_000):
        # A hot cycle a -> b -> c between a stream of keys never seen again.
        for key in ("a", "b", "c", f"once-{i}") if i % 4 == 0 else (f"once-{i}",):
            t += 1.0
            model.learn_one(key, t)
    assert len(model._seen) <= 2 * model.max_keys
    assert len(model._successors) <= 2 * model.max_keys
    assert model.access_count("a") == 5_000
    assert model.predict_next("a", k=1)[0][0] == "b"
    assert model.access_count("once-1") == 0  # long forgotten
    assert model.access_count("once-19999") == 1  # just seen


def test_access_models_saved_before_the_bound_still_learn():
    model = AccessModel()
    state = model.__dict__.copy()
    del state["max_keys"]
    restored = AccessModel.__new__(AccessModel)
    restored.__setstate__(state)
    for t in range(2_000):
        restored.learn_one(str(t), float(t))
    assert restored.max_keys == 250_000 and restored.access_count("5") == 1


def test_keys_read_once_pass_through_the_window_without_evicting_reused_ones():
    """20 hot keys, each read again 100 accesses later, between runs of keys read once (a
    scan, or the new blocks of prompts): more than the cache's 40 keys come between two
    reads of a hot key, so admitting every miss keeps none of them; frequency admission
    keeps them all."""
    stream = []
    for run in range(400):
        stream += [f"hot{(5 * run + i) % 20}" for i in range(5)]
        stream += [f"once{run}-{i}" for i in range(20)]

    def hit_ratio(**settings) -> float:
        cache = PredictiveCache(40, AccessModel(), threshold=1.1, **settings)
        for t, key in enumerate(stream):
            cache.access(key, float(t))
        return cache.hit_ratio

    hot_reads = 5 / 25
    assert hit_ratio() > 0.9 * hot_reads  # nearly every hot read hits
    assert hit_ratio(window_share=None) < 0.1 * hot_reads


class _Oracle:
    """Proposes the key ``lead`` accesses ahead in a known sequence, with probability 1."""

    def __init__(self, sequence: list[str], lead: int) -> None:
        self.sequence, self.lead, self.position = sequence, lead, -1

    def learn_one(self, key: str, ts: float) -> None:
        self.position += 1

    def predict_next(self, key: str, k: int = 2) -> list[tuple[str, float]]:
        ahead = self.position + self.lead
        return [(self.sequence[ahead], 1.0)] if ahead < len(self.sequence) else []


def _run(sequence: list[str], model, **settings) -> PredictiveCache:
    cache = PredictiveCache(20, model, threshold=0.5, **settings)
    for t, key in enumerate(sequence):
        cache.access(key, float(t))
    return cache


def test_the_preload_share_grows_when_preloads_are_evicted_before_their_use():
    # Every key is new and read once; each is proposed 8 accesses ahead. With two preload
    # slots (10 % of 20) most preloads are evicted before their use; the share grows
    # until they last, and nearly every access hits.
    sequence = [f"k{i}" for i in range(2_000)]
    fixed = _run(sequence, _Oracle(sequence, 8), adapt_preloads=False)
    adaptive = _run(sequence, _Oracle(sequence, 8))
    assert fixed.preload_cap == 2 and fixed.hit_ratio < 0.3
    assert adaptive.preload_cap >= 8
    assert adaptive.hit_ratio > 0.95


def test_the_preload_share_shrinks_when_preloads_crowd_out_reused_keys():
    # 15 keys read in turn; the model proposes keys never read. With half of the 20 keys'
    # space for preloads the cycle does not fit and nothing hits; the evicted keys come
    # back as misses on the demand side, the share falls to one key and the cycle fits.
    sequence = [f"hot{i % 15}" for i in range(3_000)]
    wrong = _Oracle([f"never{i}" for i in range(len(sequence) + 10)], 1)
    fixed = _run(sequence, wrong, preload_share=0.5, adapt_preloads=False)
    wrong.position = -1
    adaptive = _run(sequence, wrong, preload_share=0.5)
    assert fixed.preload_cap == 10 and fixed.hit_ratio == 0.0
    assert adaptive.preload_cap == 1
    assert adaptive.hit_ratio > 0.95


def test_access_models_saved_with_counters_load_as_plain_dicts_and_answer_the_same():
    import pickle
    from collections import Counter

    model = AccessModel(horizon=2)
    for t, key in enumerate("abcabdabcabe" * 20):
        model.learn_one(key, float(t))
    before = {key: model.predict_next(key, k=4) for key in "abcde"}
    # What checkpoints held before the successors were plain dicts.
    model._successors = {key: Counter(succ) for key, succ in model._successors.items()}
    restored = pickle.loads(pickle.dumps(model))
    assert {type(succ) for succ in restored._successors.values()} == {dict}
    assert {key: restored.predict_next(key, k=4) for key in "abcde"} == before
    assert before["a"][0] == ("b", 1.0) and before["b"][0][0] == "a"
    restored.learn_one("a", 1e6)
    assert restored.access_count("a") == model.access_count("a") + 1


@pytest.mark.parametrize("window_share", [None, 0.1])
def test_the_held_count_is_the_keys_in_the_segments_after_every_access(window_share):
    """``len`` is a count kept as keys move: it never drifts from what the segments hold,
    and never passes the size, through admissions, preloads, promotions and evictions."""
    import random

    rng = random.Random(3)
    cache = PredictiveCache(40, AccessModel(), window_share=window_share, threshold=0.01)
    sizes = []
    for t in range(4_000):
        # A repeating walk (preloads) with popular keys (promotions) and one-time keys.
        roll = rng.random()
        key = (f"walk{t % 60}" if roll < 0.5 else f"hot{rng.randrange(8)}" if roll < 0.8
               else f"once{t}")
        cache.access(key, float(t // 2))
        held = (len(cache.probation) + len(cache.protected) + len(cache.preloaded)
                + len(cache.window))
        assert len(cache) == held <= cache.size
        sizes.append(held)
    assert cache.preloads > 100 and cache.preload_hits > 50 and max(sizes) == cache.size
