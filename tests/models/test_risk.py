from __future__ import annotations

import numpy as np

from predictor.models.risk import (
    BatchRisk,
    OnlineRisk,
    RecoveryStats,
    ServerRisk,
    threshold_score,
)
from predictor.training.metrics import auc


def test_recovery_never_prefers_retrying_invalid_params_even_with_lucky_data():
    stats = RecoveryStats()
    for _ in range(3):
        stats.learn_one("invalid_params", "retry", True)
    assert stats.best("invalid_params") != "retry"


def test_recovery_learns_what_works_per_error_type():
    stats = RecoveryStats()
    for i in range(200):
        stats.learn_one("timeout", "fallback", i % 10 != 0)
        stats.learn_one("timeout", "retry", i % 3 == 0)
    assert stats.best("timeout") == "fallback"
    assert stats.rate("timeout", "fallback") > 0.85


def test_threshold_score_counts_breaches():
    score = threshold_score(np.array([100.0, 2500.0]), np.array([90.0, 10.0]),
                            np.array([75.0, np.nan]))
    assert score.tolist() == [2.0, 1.0]


def test_batch_risk_ranks_failures_from_memory_pressure():
    rng = np.random.default_rng(0)
    mem = rng.uniform(30, 100, 4000)
    failed = rng.random(4000) < np.where(mem > 85, 0.5, 0.02)
    X = np.column_stack([mem, rng.normal(size=4000)])
    model = BatchRisk().fit(X[:3000], failed[:3000])
    p = model.predict_proba(X[3000:])
    assert p[mem[3000:] > 85].mean() > 3 * p[mem[3000:] < 80].mean()


def test_online_risk_predicts_before_learning_and_learns():
    model = OnlineRisk()
    assert model.predict_proba_one({"probe_mem": 50.0})[True] == 0.05
    for i in range(2000):
        mem = 40.0 + (i % 60)
        model.learn_one({"probe_mem": mem}, mem > 90)
    assert (model.predict_proba_one({"probe_mem": 99.0})[True]
            > model.predict_proba_one({"probe_mem": 45.0})[True])


def test_per_server_models_rank_where_servers_fail_at_different_loads():
    # Four servers whose failures start at different concurrency (their capacity), seen
    # through the same inputs: one additive model over the fleet cannot place each step.
    rng = np.random.default_rng(7)
    capacity = {"s0": 2.0, "s1": 4.0, "s2": 6.0, "s3": 8.0}
    per_server, fleet = ServerRisk(), OnlineRisk()
    y, p_server, p_fleet = [], [], []
    for i in range(12_000):
        server = f"s{i % 4}"
        x = {"concurrency": float(rng.uniform(0, 10)), "probe_mem": float(rng.uniform(30, 90))}
        failed = bool(rng.random() < (0.6 if x["concurrency"] > capacity[server] else 0.02))
        if i >= 8_000:  # scored before learning, prequentially
            y.append(failed)
            p_server.append(per_server.predict_proba(server, x))
            p_fleet.append(fleet.predict_proba_one(x)[True])
        per_server.learn_one(server, x, failed)
        fleet.learn_one(x, failed)
    server_auc, fleet_auc = auc(np.array(y, float), p_server), auc(np.array(y, float), p_fleet)
    assert server_auc > 0.81 and fleet_auc < 0.79, (server_auc, fleet_auc)  # 0.827, 0.775
    assert per_server.learned and sorted(per_server.servers) == sorted(capacity)
    # A server never seen answers as the fleet does.
    x = {"concurrency": 5.0, "probe_mem": 50.0}
    assert per_server.predict_proba("new", x) == per_server.fleet.predict_proba_one(x)[True]


def test_online_estimators_pass_river_checks():
    from river import checks

    from predictor.models.arms import ArmStats
    from predictor.models.laws import ToolLaws
    from predictor.models.load import OnlineLoad
    from predictor.models.performance import OnlinePerformance
    from predictor.models.resources import OnlineResources

    for model in (OnlineRisk(), OnlineResources(), OnlineLoad(), OnlinePerformance(),
                  ArmStats(), ToolLaws()):
        checks.check_estimator(model)


def test_a_risk_model_that_cannot_rank_is_never_champion():
    from predictor.training.bundles import RiskBundle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    few = np.zeros(300)
    few[:6] = 1.0  # six failures: the model falls back to the base rate
    base_rate = RiskBundle(BatchRisk().fit(X, few))
    assert "base rate 0.0200" in base_rate.why_not_champion(0.1)
    failed = (X[:, 0] > 1.0).astype(float)
    ranking = RiskBundle(BatchRisk().fit(X, failed))
    assert ranking.why_not_champion(0.2) is None
    assert "no better than chance" in ranking.why_not_champion(0.5)


def _river_step(model: OnlineRisk, x: dict, y: bool) -> None:
    """What OnlineRisk.learn_one did before its step was fused: river's own path (after
    counting the call towards the choice of crossed inputs)."""
    model._note(x, bool(y))
    x = model._clean(x)
    model._scaler.learn_one(x)
    model._model.learn_one(model._expand(model._scaler.transform_one(x)), y)
    model._drift.update(float(y))
    if model._drift.drift_detected:
        model.drifts += 1
    model._seen.add(y)


def test_online_risk_fused_step_equals_river_pipeline():
    rng = np.random.default_rng(3)
    fused, reference = OnlineRisk(), OnlineRisk()
    for i in range(3000):
        mem = float(rng.uniform(20, 100))
        x = {"probe_mem": mem if i % 7 else float("nan"), "srv_error_rate": float(rng.random()),
             "attempt": None if i % 5 else 2.0, "concurrency": float(rng.integers(0, 9))}
        y = bool(rng.random() < (0.6 if mem > 85 else 0.05))
        fused.learn_one(x, y)
        _river_step(reference, x, y)
    assert fused._scaler.counts == reference._scaler.counts
    assert fused._scaler.means == reference._scaler.means
    # The dot product sums in another order (river's is in Rust): equal to the last bits.
    assert abs(fused._model.intercept - reference._model.intercept) < 1e-9
    assert fused._model.optimizer.n_iterations == reference._model.optimizer.n_iterations == 3000
    ours, theirs = fused._model.weights, reference._model.weights
    assert ours.keys() == theirs.keys()
    # 4 inputs, 3 hinges each, 2 missing; then the cells of the crossed pairs (attempt,
    # constant when present, is not crossed).
    assert fused.crossed_inputs == reference.crossed_inputs
    assert set(fused.crossed_inputs) == {"probe_mem", "srv_error_rate", "concurrency"}
    cells = [k for k in ours if "*" in k]
    assert len(ours) - len(cells) == 16 and {k.split("=")[0] for k in cells} == {
        "probe_mem*srv_error_rate", "probe_mem*concurrency", "srv_error_rate*concurrency"}
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-9
    assert fused.drifts == reference.drifts
    for mem in (30.0, 90.0, float("nan")):
        x = {"probe_mem": mem, "srv_error_rate": 0.5, "attempt": 1.0, "concurrency": 3.0}
        assert abs(fused.predict_proba_one(x)[True] - reference.predict_proba_one(x)[True]) < 1e-9


def test_crossed_inputs_survive_a_checkpoint_and_their_names_are_not_in_it():
    import pickle

    rng = np.random.default_rng(5)
    model = OnlineRisk(crossed=3, cross_after=500)
    for _ in range(1_500):
        x = {"mem": float(rng.random()), "errors": float(rng.random()),
             "queue": float(rng.random()), "noise": float(rng.random())}
        model.learn_one(x, bool(x["mem"] > 0.7 and x["errors"] > 0.7))
    assert len(model.crossed_inputs) == 3 and {"mem", "errors"} <= set(model.crossed_inputs)
    state = model.__getstate__()
    assert state["_crosses"] == () and "_inputs" not in state  # names, rebuilt on load
    restored = pickle.loads(pickle.dumps(model))
    assert restored._crosses == model._crosses
    probe = {"mem": 0.9, "errors": 0.9, "queue": 0.1, "noise": 0.5}
    assert restored.crossed_inputs == model.crossed_inputs
    assert restored.predict_proba_one(probe) == model.predict_proba_one(probe)
    restored.learn_one(probe, True)  # and it learns on, crosses and all
    assert any("*" in name for name in restored._model.weights)


def test_risk_models_saved_before_crosses_learn_on_and_choose_them():
    model = OnlineRisk()
    state = model.__dict__.copy()
    for name in ("crossed", "cross_after", "_class_sums", "_ranked", "_crossed_inputs",
                 "_crosses"):
        del state[name]
    restored = OnlineRisk.__new__(OnlineRisk)
    restored.__setstate__(state)
    rng = np.random.default_rng(1)
    for _ in range(2_500):
        x = {"mem": float(rng.random()), "errors": float(rng.random())}
        restored.learn_one(x, bool(x["mem"] > 0.8))
    assert sorted(restored.crossed_inputs) == ["errors", "mem"]


def test_a_model_that_has_seen_too_few_failures_waits_to_choose_its_crosses():
    model = OnlineRisk(crossed=2, cross_after=100)
    rng = np.random.default_rng(2)
    for i in range(1_000):  # 3 failures: no input's failed mean is known yet
        model.learn_one({"mem": float(rng.random()), "errors": float(rng.random())},
                        i in (10, 500, 900))
    assert model.crossed_inputs == ()
    for _ in range(3_000):
        x = {"mem": float(rng.random()), "errors": float(rng.random())}
        model.learn_one(x, bool(x["mem"] > 0.8))
    assert sorted(model.crossed_inputs) == ["errors", "mem"]
