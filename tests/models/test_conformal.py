from __future__ import annotations

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from predictor.models.conformal import ConformalIntervalRegressor


@parametrize_with_checks([ConformalIntervalRegressor(max_iter=20, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_interval_covers_about_the_target_share():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 5, size=(4000, 2))
    y = 3 * X[:, 0] + rng.standard_t(3, size=4000) * (1 + X[:, 1])
    model = ConformalIntervalRegressor(coverage=0.8, random_state=0).fit(X[:3000], y[:3000])
    lo, hi = model.predict_interval(X[3000:])
    inside = np.mean((y[3000:] >= lo) & (y[3000:] <= hi))
    assert 0.76 <= inside <= 0.84
    assert np.all(lo <= hi)
