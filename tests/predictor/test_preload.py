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
