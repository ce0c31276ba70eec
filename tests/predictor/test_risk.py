from __future__ import annotations

import pickle
import random

from predictor.models.risk import OnlineRisk, ServerRisk
from predictor.risk import RiskAssessor, RiskRequest


def _teach(assessor: RiskAssessor) -> float:
    rng = random.Random(0)
    t = 0.0
    for _ in range(3000):
        t += 1.0
        # Server "hot" fails when its memory is high; "cool" rarely fails.
        mem = rng.uniform(40, 100)
        assessor.observe_health(t, "hot", reachable=True, mem_pct=mem, cpu_pct=30)
        assessor.observe_call(t, "hot", "q", success=not (mem > 85 and rng.random() < 0.9),
                              latency_ms=100.0)
        assessor.observe_call(t, "cool", "q", success=rng.random() > 0.02, latency_ms=100.0)
    return t


def test_prior_before_telemetry_and_learned_after():
    assessor = RiskAssessor()
    assert assessor.assess(RiskRequest(server="x", ts=0)).source == "prior"
    t = _teach(assessor)
    assessor.observe_health(t + 1, "hot", reachable=True, mem_pct=97, cpu_pct=30)
    risky = assessor.assess(RiskRequest(server="hot", tool="q", ts=t + 2, threshold=0.5))
    assessor.observe_health(t + 3, "hot", reachable=True, mem_pct=45, cpu_pct=30)
    calm = assessor.assess(RiskRequest(server="hot", tool="q", ts=t + 4, threshold=0.5))
    assert risky.source == "online"
    assert risky.failure_probability > calm.failure_probability
    assert risky.drivers["probe_mem"] == 97


def test_prevent_suggests_route_away_when_unreachable():
    assessor = RiskAssessor()
    t = _teach(assessor)
    assessor.observe_health(t + 1, "hot", reachable=False, mem_pct=99, cpu_pct=30)
    answer = assessor.assess(RiskRequest(server="hot", tool="q", ts=t + 2, threshold=0.0))
    assert answer.prevent
    assert answer.suggestion == "route_away"


def test_a_checkpoint_of_the_fleet_model_alone_goes_on_per_server():
    assessor = RiskAssessor()
    fleet = OnlineRisk()
    for i in range(200):
        fleet.learn_one({"probe_mem": float(i % 100)}, i % 100 > 90)
    assessor.model = fleet  # what checkpoints written before ServerRisk hold
    restored = pickle.loads(pickle.dumps(assessor))
    assert isinstance(restored.model, ServerRisk)
    assert restored.model.fleet.predict_proba_one({"probe_mem": 95.0}) == \
        fleet.predict_proba_one({"probe_mem": 95.0})
    assert restored.model.learned and restored.model.servers == {}


def test_rows_scored_at_once_answer_as_assess_does():
    """A replay collects ``inputs`` and scores them together: the same probabilities."""
    import numpy as np

    from predictor.models.risk import BatchRisk

    teacher = RiskAssessor()
    rng = random.Random(1)
    rows, failed = [], []
    for t in range(2000):
        mem = rng.uniform(40, 100)
        teacher.observe_health(float(t), "hot", reachable=True, mem_pct=mem, cpu_pct=30)
        rows.append(teacher.inputs(RiskRequest(server="hot", tool="q", ts=float(t))))
        fails = mem > 85 and rng.random() < 0.9
        failed.append(fails)
        teacher.observe_call(float(t), "hot", "q", success=not fails, latency_ms=100.0)
    assessor = RiskAssessor()
    assessor.use_batch(BatchRisk().fit(np.array(rows), np.array(failed)), "1")
    answers, later = [], []
    for t in range(300):
        assessor.observe_health(float(t), "hot", reachable=t % 7 != 0, mem_pct=40.0 + t % 60,
                                cpu_pct=30)
        request = RiskRequest(server="hot", tool="q", ts=float(t), concurrency=t % 4)
        answers.append(assessor.assess(request).failure_probability)
        later.append(assessor.inputs(request))
        assessor.observe_call(float(t), "hot", "q", success=t % 5 != 0, latency_ms=80.0)
    batched = [round(p, 4) for p in assessor.batch_probabilities(np.array(later)).tolist()]
    assert batched == answers
    assert len(set(answers)) > 20  # the answers moved with the history


def test_learning_from_rows_is_learning_from_the_features():
    """observe_call teaches the model one array per call: the same model as teaching it the
    features' dictionaries (what assess reads) call by call."""
    from predictor.models.history import History
    from predictor.risk import _x

    assessor = RiskAssessor()
    history, reference = History(), ServerRisk()
    rng = random.Random(5)
    for i in range(7500):  # each server past the 2,000 calls after which inputs are crossed
        t, server = float(i), rng.choice("abc")
        mem, ok = rng.uniform(40, 100), rng.random() > 0.1
        assessor.observe_health(t, server, reachable=True, mem_pct=mem, cpu_pct=30)
        history.observe_health(t, server, reachable=1.0, latency_ms=float("nan"), cpu_pct=30.0,
                               mem_pct=mem, queue_depth=float("nan"))
        ok = ok and not (server == "a" and mem > 80)
        reference.learn_one(server, _x(history.features(t, server, "q"), float(i % 7)),
                            not ok)
        history.observe_call(t, server, "q", latency_ms=50.0, success=float(ok),
                             concurrency=float(i % 7))
        assessor.observe_call(t, server, "q", success=ok, latency_ms=50.0,
                              concurrency=float(i % 7))
    x = _x(history.features(7500.0, "a", "q"), 3.0)
    own, theirs = assessor.model.servers["a"], reference.servers["a"]
    assert own.crossed_inputs == theirs.crossed_inputs != ()
    for server in "abc":
        assert assessor.model.predict_proba(server, x) == reference.predict_proba(server, x)
    # At a's memory pressure, a (which fails there) far above b (which never does).
    assert assessor.model.predict_proba("a", x) > 0.5 > assessor.model.predict_proba("b", x)
