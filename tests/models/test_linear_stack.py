from __future__ import annotations

import math
import pickle
import random

import pytest
from river import linear_model, optim, preprocessing

from predictor.models.adagrad import AdaGrad
from predictor.models.linear_stack import ScaledLinearStack


def _models():
    return {
        "median": linear_model.LinearRegression(optimizer=AdaGrad(0.05), clip_gradient=1.0),
        "upper": linear_model.LinearRegression(optimizer=optim.AdaGrad(0.01), clip_gradient=1.0,
                                               loss=optim.losses.Quantile(0.95)),
        "success": linear_model.LogisticRegression(optimizer=AdaGrad(0.05), clip_gradient=1.0),
    }


def _calls(n: int, seed: int = 0):
    """Sparse calls: one-hot servers, a missing-value indicator, inputs of no variance."""
    rng = random.Random(seed)
    for _ in range(n):
        server = rng.choice("abc")
        x = {f"server={server}": 1.0, "constant": 3.0}
        if rng.random() < 0.2:
            x["load_missing"] = 1.0
        else:
            x["load"] = rng.uniform(0, 10)
        latency = 2.0 + 0.3 * x.get("load", 5.0) + (server == "b") + rng.gauss(0, 0.5)
        targets = {"median": latency, "upper": latency, "success": latency < 4.5}
        if rng.random() < 0.3:
            del targets["upper"]  # a model that does not learn every call
        yield x, targets


def test_the_stack_learns_what_river_pipelines_learn_model_by_model():
    stack = ScaledLinearStack()
    rows = {name: stack.add_model(model) for name, model in _models().items()}
    # Each river model behind its own scaler: the scaler learns every call, as the stack's.
    pipelines = {name: preprocessing.StandardScaler() | model.clone()
                 for name, model in _models().items()}
    for x, targets in _calls(3_000):
        stack.learn(x, [(rows[name], y) for name, y in targets.items()])
        for name, pipeline in pipelines.items():
            if name in targets:
                pipeline.learn_one(x, targets[name])
            else:
                pipeline["StandardScaler"].learn_one(x)
    for name, pipeline in pipelines.items():
        model = pipeline[list(pipeline.steps)[-1]]
        ours = stack.weights(rows[name])
        assert set(model.weights) <= set(ours)
        for feature, weight in model.weights.items():
            assert ours[feature] == pytest.approx(weight, rel=1e-9, abs=1e-12), (name, feature)
        assert stack.intercept(rows[name]) == pytest.approx(model.intercept, rel=1e-9)
    assert stack.steps[rows["median"]] == 3_000 > stack.steps[rows["upper"]] > 1_800
    # Predictions, with an input never learned (it counts as 0, as in river).
    x = {"server=b": 1.0, "load": 7.0, "constant": 3.0, "new_input": 5.0}
    ours = stack.predict(x, [rows["median"], rows["upper"], rows["success"]])
    theirs = [pipelines["median"].predict_one(x), pipelines["upper"].predict_one(x),
              pipelines["success"].predict_proba_one(x)[True]]
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert 0.0 < ours[2] < 1.0 and ours[1] > ours[0]


def test_the_stack_survives_pickling_and_grows_past_its_first_capacity():
    stack = ScaledLinearStack()
    row = stack.add_model(_models()["median"])
    for i in range(500):  # 500 distinct inputs: past the 64 it starts with
        stack.learn({f"input{i}": 1.0, "shared": float(i % 5)}, [(row, float(i % 5))])
    copy = pickle.loads(pickle.dumps(stack))
    x = {"shared": 3.0, "input7": 1.0}
    assert copy.predict(x, [row]) == stack.predict(x, [row])
    assert len(stack.weights(row)) == 501
    assert math.isfinite(stack.predict(x, [row])[0])


def test_only_what_the_compiled_step_computes_stacks():
    stack = ScaledLinearStack()
    with pytest.raises(ValueError, match="penalty"):
        stack.add_model(linear_model.LinearRegression(optimizer=AdaGrad(0.1), l2=0.1))
    with pytest.raises(ValueError, match="AdaGrad"):
        stack.add_model(linear_model.LinearRegression(optimizer=optim.SGD(0.1)))
    with pytest.raises(ValueError, match="loss"):
        stack.add_model(linear_model.LinearRegression(optimizer=AdaGrad(0.1),
                                                      loss=optim.losses.Huber()))


def test_online_resources_answers_as_its_river_pipeline():
    """OnlineResources steps on the stack: the durations river's scaler and AdaGrad linear
    regression give, calls with different inputs and inputs never learned included."""
    from predictor.models.resources import OnlineResources

    rng = random.Random(2)
    ours = OnlineResources()
    theirs = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=AdaGrad(0.1), clip_gradient=1.0)
    for i in range(3000):
        x = {"log_input_tokens": rng.uniform(0, 8), f"tool=t{i % 5}": 1.0}
        if i % 3:
            x["hist_latency"] = rng.uniform(4, 9)
        y = math.expm1(0.4 * x["log_input_tokens"] + 0.3 * (i % 5) + rng.gauss(0, 0.1))
        ours.learn_one(x, y)
        theirs.learn_one(x, math.log1p(y))
    for x in ({"log_input_tokens": 2.0, "tool=t3": 1.0}, {"log_input_tokens": 5.0,
              "tool=never": 1.0, "hist_latency": 6.0}):
        want = max(math.expm1(min(theirs.predict_one(x), 25.0)), 0.0)
        assert math.isclose(ours.predict_one(x), want, rel_tol=1e-9)
    assert ours.predict_one({"log_input_tokens": 6.0, "tool=t4": 1.0}) > ours.predict_one(
        {"log_input_tokens": 1.0, "tool=t0": 1.0})
