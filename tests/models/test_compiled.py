from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from predictor.models import compiled
from predictor.models.calibrated import fit_calibrated_classifier


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 3000
    X = np.column_stack([rng.integers(0, 8, n), rng.integers(0, 20, n),
                         rng.normal(size=(n, 4))]).astype(float)
    X[rng.random(n) < 0.1, 3] = np.nan
    y = (X[:, 0] % 3) + X[:, 2] + rng.normal(scale=0.5, size=n)
    # Inputs scikit-learn treats specially: categories unseen in training, negative
    # codes, missing categories and missing numbers.
    odd = X[:400].copy()
    odd[:100, 0] = 99
    odd[100:200, 1] = -1
    odd[200:300, 0] = np.nan
    odd[300:, 2] = np.nan
    return X, y, np.vstack([X[:28], odd[::4]])  # 128 rows: a small batch


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "quantile", "poisson"])
def test_regressors_predict_what_scikit_learn_predicts(data, loss):
    X, y, rows = data
    target = np.exp(y / 3) if loss == "poisson" else y
    model = HistGradientBoostingRegressor(
        loss=loss, max_iter=40, categorical_features=[True, True, False, False, False, False],
        random_state=0, **({"quantile": 0.9} if loss == "quantile" else {})).fit(X, target)
    np.testing.assert_allclose(compiled.predict(model, rows), model.predict(rows),
                               rtol=1e-9, atol=1e-9)


def test_calibrated_classifier_predicts_what_scikit_learn_predicts(data):
    X, y, rows = data
    model = fit_calibrated_classifier(X, (y > 1).astype(int), [True, True] + [False] * 4)
    np.testing.assert_allclose(compiled.predict_proba(model, rows),
                               model.predict_proba(rows)[:, 1], rtol=1e-9, atol=1e-12)
    booster = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y > 1)
    np.testing.assert_allclose(compiled.predict_proba(booster, rows),
                               booster.predict_proba(rows)[:, 1], rtol=1e-9, atol=1e-12)


def test_large_batches_are_scikit_learn_s_own(data, monkeypatch):
    X, y, _ = data
    model = HistGradientBoostingRegressor(max_iter=10).fit(X, y)
    monkeypatch.setattr(compiled, "_compiled", lambda estimator: pytest.fail("compiled"))
    np.testing.assert_array_equal(compiled.predict(model, X[:1000]), model.predict(X[:1000]))


def test_other_estimators_fall_back_to_scikit_learn(data):
    X, y, _ = data
    clean = np.nan_to_num(X)
    model = LinearRegression().fit(clean, y)
    np.testing.assert_array_equal(compiled.predict(model, clean[:5]), model.predict(clean[:5]))
