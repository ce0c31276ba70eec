"""Load forecasters on sparse, intermittent series: never much worse than the last value."""

import numpy as np
import pandas as pd

from predictor.models.load import BatchLoad, OnlineLoad, load_features


def _sparse_counts(seed: int, windows: int = 3_000) -> pd.DataFrame:
    """Three servers: mostly 0 to 2 calls per window (one nearly always 0), rare bursts."""
    rng = np.random.default_rng(seed)
    series = {}
    for server, rate in (("idle", 0.01), ("quiet", 0.3), ("bursty", 0.8)):
        counts = rng.poisson(rate, windows).astype(float)
        bursts = rng.random(windows) < 0.01
        counts[bursts] += rng.integers(20, 40, bursts.sum())
        series[server] = counts
    return pd.DataFrame(series, index=np.arange(windows) * 60.0)


def _mae(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def test_online_forecaster_is_within_ten_percent_of_the_last_value_on_sparse_series():
    feats = load_features(_sparse_counts(seed=3), window_s=60.0)
    for server, rows in feats.groupby("series"):
        model, forecasts = OnlineLoad(), []
        for x, y in zip(rows.drop(columns=["y", "series"]).to_dict("records"), rows["y"],
                        strict=True):
            forecasts.append(model.predict_one(x))
            model.learn_one(x, y)
        y, last = rows["y"].to_numpy(), rows["lag1"].fillna(0.0).to_numpy()
        assert _mae(y, forecasts) <= 1.1 * _mae(y, last), server


def test_online_forecaster_uses_its_model_where_it_beats_the_last_value():
    model = OnlineLoad()
    for i in range(300):  # a steady cycle of 10 and 30: the last value is always 20 off
        x = {f"lag{k}": float(10 + 20 * ((i - k) % 2)) for k in range(1, 7)}
        model.learn_one({**x, "max12": 30.0}, float(10 + 20 * (i % 2)))
    assert model.answering == "model"
    x = {f"lag{k}": float(10 + 20 * ((300 - k) % 2)) for k in range(1, 7)}
    assert abs(model.predict_one({**x, "max12": 30.0}) - 10.0) < 5.0


def test_batch_forecaster_falls_back_to_the_last_value_where_it_lost():
    feats = load_features(_sparse_counts(seed=5), window_s=60.0)
    times = feats.index.to_numpy()
    cut, check = np.quantile(times, 0.6), np.quantile(times, 0.8)
    fit, calibration, test = times < cut, (times >= cut) & (times < check), times >= check
    model = BatchLoad().fit(feats[fit])
    model.last_value_series_ = model.last_value_series(feats[calibration])
    mean, upper = model.predict(feats[test])
    y, last = feats["y"].to_numpy()[test], feats["lag1"].fillna(0).to_numpy()[test]
    assert _mae(y, mean) <= 1.1 * _mae(y, last)
    assert (upper >= mean).all()


def test_online_load_steps_as_river_and_resumes_a_state_saved_with_river():
    """The forecaster's model learns on the compiled stack what river's pipeline learns, and
    a state saved when its model was river's pipeline loads onto the stack."""
    import math
    import pickle
    import random

    from river import linear_model, preprocessing

    from predictor.models.adagrad import AdaGrad
    from predictor.models.load import LAGS, OnlineLoad

    rng = random.Random(4)
    ours = OnlineLoad()
    pipeline = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=AdaGrad(0.1), clip_gradient=1.0, intercept_lr=0.1)
    for i in range(400):
        x = {f"lag{k}": float(rng.randint(0, 30) + 10 * ((i - k) % 3)) for k in LAGS}
        x["max12"] = max(x.values())
        y = float(10 * (i % 3) + rng.randint(0, 5))
        ours.learn_one(x, y)
        pipeline.learn_one(OnlineLoad._clean(x), math.log1p(y))
    x = {f"lag{k}": float(10 * ((400 - k) % 3)) for k in LAGS}
    x["max12"] = 25.0
    clean = OnlineLoad._clean(x)
    assert math.isclose(float(ours._stack.raw(clean, (ours._row,))[0]),
                        pipeline.predict_one(clean), rel_tol=1e-9)
    # A state from before the stack: its pipeline, not the stack.
    old = ours.__dict__.copy()
    del old["_stack"], old["_row"]
    old["_model"] = pipeline
    resumed = OnlineLoad.__new__(OnlineLoad)
    resumed.__setstate__(pickle.loads(pickle.dumps(old)))
    assert math.isclose(resumed.predict_one(x), ours.predict_one(x), rel_tol=1e-9)
    for model in (ours, resumed):  # both go on learning alike
        model.learn_one(x, 12.0)
    assert math.isclose(resumed.predict_one(x), ours.predict_one(x), rel_tol=1e-9)
    assert ours.answering == "model"
