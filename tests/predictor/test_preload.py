from __future__ import annotations

from predictor.preload import Preloader, PreloadRequest


def _taught() -> Preloader:
    preloader = Preloader(horizon=2)
    for t, key in enumerate(["intro", "setup", "usage", "faq"] * 30):
        preloader.observe(key, float(t))
    return preloader


def test_prior_answers_nothing_before_telemetry():
    answer = Preloader().preload(PreloadRequest(recent=["x"]))
    assert answer.keys == [] and answer.source == "prior" and answer.estimated_hit_rate == 0.0


def test_preloads_the_learned_successors_within_budget():
    answer = _taught().preload(PreloadRequest(recent=["intro"], budget_keys=2))
    assert [k.key for k in answer.keys] == ["setup", "usage"]
    assert answer.keys[0].probability >= answer.keys[1].probability
    assert 0 < answer.estimated_hit_rate <= 1


def test_budget_in_megabytes_and_cached_keys_are_respected():
    preloader = _taught()
    answer = preloader.preload(PreloadRequest(recent=["intro"], budget_keys=10, budget_mb=1.5,
                                              key_size_mb=1.0, cached=["setup"]))
    assert [k.key for k in answer.keys] == ["usage"]


def test_a_key_never_seen_gets_a_prior_answer():
    from predictor.preload import Preloader, PreloadRequest

    preloader = Preloader()
    for t, key in enumerate(["a", "b", "c"] * 10):
        preloader.observe(key, float(t))
    assert preloader.preload(PreloadRequest(recent=["a"])).source == "online"
    unseen = preloader.preload(PreloadRequest(recent=["zzz"]))
    assert unseen.source == "prior" and unseen.keys == []


def test_stated_probabilities_match_how_often_the_keys_came():
    """Keys drawn at random from a large pool: a key seen once had one successor, so its
    successor counts say 1.0; the answers say what such predictions have been worth."""
    import random

    from predictor.models.cache import PredictionCalibration

    rng = random.Random(0)
    preloader = Preloader()
    checker = PredictionCalibration(horizon=preloader.model.horizon)
    stated = []
    for t in range(12_000):
        key = f"k{rng.randrange(3000)}"
        checker.observe(key, float(t))
        preloader.observe(key, float(t))
        if t >= 6000:
            answer = preloader.preload(PreloadRequest(budget_keys=2, min_probability=0.0))
            proposed = [(k.key, k.probability) for k in answer.keys]
            checker.record(proposed, float(t))
            stated += [p for _, p in proposed]
    realized = sum(checker.used) / sum(checker.issued)
    assert max(p for _, p in preloader.model.predict_next("k1", k=2)) >= 0.2  # the counts
    assert abs(sum(stated) / len(stated) - realized) < 0.01  # uncalibrated: 0.29 vs 0.003


def test_proposals_are_what_preload_answers():
    """What a replay asks after each access: preload's keys and probabilities, unbuilt."""
    import random

    rng = random.Random(5)
    preloader = Preloader(horizon=3)
    requests = [PreloadRequest(), PreloadRequest(budget_keys=2),
                PreloadRequest(recent=["k3", "k4"], cached=["k5"], min_probability=0.0),
                PreloadRequest(budget_mb=2.5, key_size_mb=1.0)]
    proposed = 0
    for t in range(3000):
        key = f"k{(t % 7) + rng.choice([0, 0, 0, 1, 9])}"
        preloader.observe(key, float(t))
        for request in requests:
            answer = [(k.key, k.probability) for k in preloader.preload(request).keys]
            assert preloader.proposals(request) == answer, (t, request)
            proposed += len(answer)
    assert proposed > 3000
