from __future__ import annotations

import copy
import math

import numpy as np
from river import linear_model, optim, preprocessing

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


class _RiverRisk:
    """OnlineRisk's model as river's own objects: the scaler, then a logistic regression
    over the standardized inputs, their missing indicators, hinges and crossed cells (what
    OnlineRisk held, and learned through river's calls, before its step was compiled)."""

    def __init__(self) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.model = linear_model.LogisticRegression(optimizer=optim.AdaGrad(0.05),
                                                     clip_gradient=1.0)
        self.crossed: tuple[str, ...] = ()

    @staticmethod
    def clean(x: dict) -> dict:
        return {(f"{k}_missing" if v is None or v != v else k):
                (1.0 if v is None or v != v else float(v)) for k, v in x.items()}

    def expand(self, z: dict) -> dict:
        out = dict(z)
        for name, value in z.items():
            if not name.endswith("_missing"):
                for knot in OnlineRisk.KNOTS:
                    if value > knot:
                        out[f"{name}>{knot}"] = value - knot
        low, mid, high = OnlineRisk.CROSS_CUTS
        bins = ["m" if (v := z.get(name)) is None else str((v > low) + (v > mid) + (v > high))
                for name in self.crossed]
        for a in range(len(self.crossed)):
            for b in range(a + 1, len(self.crossed)):
                out[f"{self.crossed[a]}*{self.crossed[b]}={bins[a]}{bins[b]}"] = 1.0
        return out

    def learn_one(self, x: dict, y: bool) -> None:
        x = self.clean(x)
        self.scaler.learn_one(x)
        self.model.learn_one(self.expand(self.scaler.transform_one(x)), y)

    def predict(self, x: dict) -> float:
        z = self.scaler.transform_one(self.clean(x))
        return self.model.predict_proba_one(self.expand(z))[True]


def _calls(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        mem = float(rng.uniform(20, 100))
        x = {"probe_mem": mem if i % 7 else float("nan"), "srv_error_rate": float(rng.random()),
             "attempt": None if i % 5 else 2.0, "concurrency": float(rng.integers(0, 9))}
        yield x, bool(rng.random() < (0.6 if mem > 85 else 0.05))


def test_online_risk_compiled_step_equals_river_objects():
    compiled, reference = OnlineRisk(), _RiverRisk()
    for x, y in _calls(3000):
        compiled.learn_one(x, y)
        reference.crossed = compiled.crossed_inputs  # as chosen before this step
        reference.learn_one(x, y)
    for row, name in enumerate(compiled._names):
        for slot, key in enumerate((name, f"{name}_missing")):
            assert compiled._counts[row, slot] == reference.scaler.counts.get(key, 0)
            assert compiled._means[row, slot] == reference.scaler.means.get(key, 0.0)
    assert abs(compiled.intercept - reference.model.intercept) < 1e-12
    assert compiled.steps == reference.model.optimizer.n_iterations == 3000
    ours, theirs = compiled.weights, reference.model.weights
    assert set(ours) <= set(theirs)
    # 4 inputs, 3 hinges each, 2 missing; then the cells of the crossed pairs (attempt,
    # constant when present, is not crossed).
    assert set(compiled.crossed_inputs) == {"probe_mem", "srv_error_rate", "concurrency"}
    cells = [k for k in theirs if "*" in k]
    assert len(theirs) - len(cells) == 16 and {k.split("=")[0] for k in cells} == {
        "probe_mem*srv_error_rate", "probe_mem*concurrency", "srv_error_rate*concurrency"}
    # river's dot product sums in its own order (in Rust): equal to the last bits.
    assert max(abs(ours.get(k, 0.0) - theirs[k]) for k in theirs) < 1e-12
    for mem in (30.0, 90.0, float("nan")):
        x = {"probe_mem": mem, "srv_error_rate": 0.5, "attempt": 1.0, "concurrency": 3.0}
        assert abs(compiled.predict_proba_one(x)[True] - reference.predict(x)) < 1e-12
    # An input never learned weighs nothing, as in river.
    x = {"probe_mem": 50.0, "srv_error_rate": 0.5, "attempt": 1.0, "concurrency": 3.0}
    assert compiled.predict_proba_one({**x, "new": 9.0}) == compiled.predict_proba_one(x)


def test_checkpoints_holding_river_objects_load_and_learn_on():
    reference = _RiverRisk()
    crossing = OnlineRisk()
    for x, y in _calls(2500):
        crossing.learn_one(x, y)
        reference.crossed = crossing.crossed_inputs
        reference.learn_one(x, y)
    # The state an OnlineRisk pickled when its scaler and regression were river's.
    old = {"prior": 0.05, "lr": 0.05, "crossed": 6, "cross_after": 2000,
           "_scaler": reference.scaler, "_model": reference.model, "_drift": crossing._drift,
           "_seen": {False, True}, "drifts": 0, "_class_sums": None, "_ranked": 2000,
           "_crossed_inputs": reference.crossed, "_crosses": ()}
    restored = OnlineRisk.__new__(OnlineRisk)
    restored.__setstate__(old)
    for mem in (30.0, 90.0, float("nan")):
        x = {"probe_mem": mem, "srv_error_rate": 0.5, "attempt": None, "concurrency": 3.0}
        assert abs(restored.predict_proba_one(x)[True] - reference.predict(x)) < 1e-12
    for x, y in _calls(500, seed=9):  # and both learn on alike
        restored.learn_one(x, y)
        reference.learn_one(x, y)
    assert abs(restored.intercept - reference.model.intercept) < 1e-12
    assert max(abs(restored.weights.get(k, 0.0) - w)
               for k, w in reference.model.weights.items()) < 1e-9


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
    # The inputs' names, once each: weights are arrays, not dictionaries of names.
    assert state["_names"] == ["mem", "errors", "queue", "noise"] and "_layouts" not in state
    restored = pickle.loads(pickle.dumps(model))
    probe = {"mem": 0.9, "errors": 0.9, "queue": 0.1, "noise": 0.5}
    assert restored.crossed_inputs == model.crossed_inputs
    assert restored.predict_proba_one(probe) == model.predict_proba_one(probe)
    restored.learn_one(probe, True)  # and it learns on, crosses and all
    model.learn_one(probe, True)
    assert restored.weights == model.weights
    assert any("*" in name for name in restored.weights)


def test_risk_models_saved_before_crosses_learn_on_and_choose_them():
    model = OnlineRisk()
    state = model.__dict__.copy()
    for name in ("crossed", "cross_after", "_class_sums", "_ranked", "_crossed_inputs",
                 "_pairs", "_cell_weights", "_cell_g2"):
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


class _NamedSums:
    """The choice of crossed inputs as it was made with per-name sums (the reference)."""

    def __init__(self, model: OnlineRisk) -> None:
        self.model, self.sums, self.ranked = model, {}, 0

    def note(self, x: dict, y: bool) -> tuple[str, ...] | None:
        for name, value in x.items():
            if value is None or value != value:
                continue
            entry = self.sums.setdefault(name, [0.0, 0, 0.0, 0])
            entry[0 if y else 2] += value
            entry[1 if y else 3] += 1
        self.ranked += 1
        model = self.model
        if self.ranked < model.cross_after or not model.learned:
            return None
        variances = {name: float(model._vars[row, 0]) for row, name in enumerate(model._names)}
        strength = {}
        for name, (failed_sum, failed, other_sum, other) in self.sums.items():
            variance = variances.get(name, 0.0)
            if failed >= 5 and other >= 5 and variance > 0:
                strength[name] = abs(failed_sum / failed - other_sum / other) / variance**0.5
        if len(strength) < 2:
            return None
        return tuple(sorted(strength, key=lambda n: (-strength[n], n))[:model.crossed])


def test_crossed_inputs_are_chosen_at_the_call_and_as_per_name_sums_chose_them():
    rng = np.random.default_rng(11)
    model = OnlineRisk(crossed=3, cross_after=300)
    reference = _NamedSums(model)
    chosen_at = expected_at = expected = None
    for i in range(3_000):
        x = {"mem": float(rng.random()), "errors": float(rng.normal(3.0, 1.0)),
             "queue": float(rng.integers(0, 9)) if rng.random() < 0.7 else math.nan,
             "late": float(rng.random()) if i > 1_000 else None, "constant": 1.0}
        failed = bool(rng.random() < 0.02 + 0.2 * (x["mem"] > 0.9))
        if expected is None:
            expected = reference.note(x, failed)
            expected_at = i if expected is not None else None
        model.learn_one(x, failed)
        if chosen_at is None and model.crossed_inputs:
            chosen_at = i
    assert expected is not None and chosen_at == expected_at == 299  # the 300th call
    assert model.crossed_inputs == expected
    assert "constant" not in expected  # no variance: never crossed


def test_a_checkpoint_that_summed_by_name_resumes_as_the_arrays_do():
    rng = np.random.default_rng(5)
    calls = [({"mem": float(rng.random()), "errors": float(rng.random())},
              bool(rng.random() < 0.1)) for _ in range(900)]
    model = OnlineRisk(crossed=2, cross_after=400)
    for x, y in calls[:300]:
        model.learn_one(x, y)
    state = copy.deepcopy(model.__getstate__())  # its arrays, not the model's
    state["_class_sums"] = {name: [float(v) if k % 2 == 0 else int(v)
                                   for k, v in enumerate(state["_class_sums"][row])]
                            for row, name in enumerate(state["_names"])}
    old = OnlineRisk.__new__(OnlineRisk)
    old.__setstate__(state)
    for x, y in calls[300:]:
        model.learn_one(x, y)
        old.learn_one(x, y)
    assert sorted(model.crossed_inputs) == ["errors", "mem"]
    assert old.crossed_inputs == model.crossed_inputs
    assert old.weights == model.weights


def test_a_copied_model_learns_apart_from_its_original():
    """The arrays are views of buffers the compiled step writes: a copy (a checkpoint, the
    evaluation's deepcopy) holds buffers of its own, and its views read them."""
    import copy
    import pickle

    rng = np.random.default_rng(3)
    model = OnlineRisk(crossed=2, cross_after=200)
    for _ in range(400):
        x = {"mem": float(rng.random()), "errors": float(rng.random())}
        model.learn_one(x, bool(x["mem"] > 0.8))
    before = model.weights
    probe = {"mem": 0.95, "errors": 0.1}
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.weights == before
        twin.learn_one(probe, True)
        assert model.weights == before  # the original's buffers did not move
        assert twin.weights != before and twin.steps == model.steps + 1
        # Every array is a view of the twin's own buffers, which the step wrote.
        table, cells = twin._packed
        assert all(np.shares_memory(getattr(twin, name), table)
                   for name in ("_counts", "_means", "_vars", "_weights", "_g2"))
        assert np.shares_memory(twin._cell_weights, cells)
    model.learn_one({**probe, "queue": 3.0}, False)  # a new input grows the table
    assert model._weights.shape == (3, 5) and np.shares_memory(model._weights, model._packed[0])
    assert model._counts[2, 0] == 1 and model._means[2, 0] == 3.0  # the step wrote its row


def test_rows_learned_in_runs_leave_the_models_as_learned_one_by_one():
    """ServerRisk.learn_rows (what the risk decision's learner hands a run of calls) equals
    learn_row per call, across runs cut anywhere, before and after each model has chosen
    its crossed inputs (the compiled loop runs only after)."""
    import itertools
    import pickle

    rng = np.random.default_rng(11)
    keys = ("concurrency", "probe_mem", "errors")
    n = 12_000
    servers = [f"s{i}" for i in rng.integers(0, 3, n)]
    rows = rng.normal(size=(n, 3))
    rows[rng.random((n, 3)) < 0.1] = math.nan  # missing inputs
    failed = (np.nan_to_num(rows[:, 0]) > 1.0) | (rng.random(n) < 0.03)
    one, runs = ServerRisk(), ServerRisk()
    for server, row, y in zip(servers, rows, failed, strict=True):
        one.learn_row(server, keys, row, bool(y))
    start = 0
    for size in itertools.cycle((1, 7, 500, 2999, 64)):
        if start >= n:
            break
        runs.learn_rows(servers[start:start + size], keys, rows[start:start + size],
                        failed[start:start + size])
        start += size
    # Every model chose its crosses on the way: both paths ran.
    assert runs.fleet.crossed_inputs and all(m.crossed_inputs for m in runs.servers.values())
    assert sorted(runs.servers) == ["s0", "s1", "s2"] and runs.calls == one.calls == n
    assert runs.fleet.steps == one.fleet.steps and runs.fleet.drifts == one.fleet.drifts
    assert pickle.dumps(runs) == pickle.dumps(one)
    x = dict(zip(keys, (2.0, 0.5, -0.3), strict=True))
    assert runs.predict_proba("s1", x) == one.predict_proba("s1", x)
