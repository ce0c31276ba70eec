"""Conformalized quantile regression as a scikit-learn estimator.

:class:`ConformalIntervalRegressor` fits a gradient-boosted median on all
rows and two quantile regressors (the interval edges) on the older rows, and
widens the interval on the newest ``calibration_fraction`` of the rows until
it covers ``coverage`` of them there (Romano, Patterson and Candès, 2019).
Rows are taken in the order given, which for telemetry is time order: the
calibration set is then the most recent behaviour, as split-conformal on
recent residuals asks.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(0, 10, size=(3000, 1))
>>> y = X[:, 0] + rng.normal(scale=1 + X[:, 0] / 5, size=3000)
>>> model = ConformalIntervalRegressor(random_state=0).fit(X[:2000], y[:2000])
>>> lo, hi = model.predict_interval(X[2000:])
>>> bool(0.75 < np.mean((y[2000:] >= lo) & (y[2000:] <= hi)) < 0.85)
True
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted, validate_data

from predictor.models import compiled

__all__ = ["ConformalIntervalRegressor"]


class ConformalIntervalRegressor(RegressorMixin, BaseEstimator):
    """Median prediction with a split-conformal ``coverage`` interval.

    Parameters
    ----------
    coverage : float, default=0.8
        Target share of outcomes inside the interval.
    calibration_fraction : float, default=0.25
        Share of the (last) rows held out to calibrate the interval.
    max_iter : int, default=150
        Boosting iterations of each quantile regressor.
    categorical_features : array-like of bool or None, default=None
        Passed to the boosters.
    random_state : int or None, default=None
        Seed of the boosters.

    Attributes
    ----------
    margin_ : float
        How much the raw quantile band was widened (negative: narrowed).
    n_iter_ : int
        Boosting iterations run by the median regressor.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def __init__(self, *, coverage: float = 0.8, calibration_fraction: float = 0.25,
                 max_iter: int = 150, categorical_features=None,
                 random_state: int | None = None) -> None:
        self.coverage = coverage
        self.calibration_fraction = calibration_fraction
        self.max_iter = max_iter
        self.categorical_features = categorical_features
        self.random_state = random_state

    def _booster(self, quantile: float) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="quantile", quantile=quantile, max_iter=self.max_iter, max_leaf_nodes=31,
            min_samples_leaf=20, categorical_features=self.categorical_features,
            random_state=self.random_state, early_stopping=False,
        )

    def fit(self, X, y):
        """Fit the quantile boosters on the older rows and calibrate on the newest."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", y_numeric=True)
        if not 0 < self.coverage < 1:
            raise ValueError(f"coverage must be in (0, 1), got {self.coverage}")
        if not 0 < self.calibration_fraction < 1:
            raise ValueError("calibration_fraction must be in (0, 1), "
                             f"got {self.calibration_fraction}")
        n_cal = round(self.calibration_fraction * len(y))
        n_fit = len(y) - n_cal
        if n_fit < 2 or n_cal < 2:
            n_fit, n_cal = len(y), 0  # too few rows to hold any out: no calibration
        alpha = (1 - self.coverage) / 2
        fit_X, fit_y = X[:n_fit], y[:n_fit]
        # The point prediction needs no calibration: it learns every row, newest included.
        self.median_ = self._booster(0.5).fit(X, y)
        self.lower_ = self._booster(alpha).fit(fit_X, fit_y)
        self.upper_ = self._booster(1 - alpha).fit(fit_X, fit_y)
        self.n_iter_ = self.median_.n_iter_
        if n_cal:
            cal_X, cal_y = X[n_fit:], y[n_fit:]
            scores = np.maximum(compiled.predict(self.lower_, cal_X) - cal_y,
                                cal_y - compiled.predict(self.upper_, cal_X))
            level = min(1.0, math.ceil((n_cal + 1) * self.coverage) / n_cal)
            self.margin_ = float(np.quantile(scores, level))
        else:
            self.margin_ = 0.0
        return self

    def predict(self, X):
        """The median prediction."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return compiled.predict(self.median_, X)

    def predict_interval(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper edges of the calibrated interval."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        lower = compiled.predict(self.lower_, X) - self.margin_
        upper = compiled.predict(self.upper_, X) + self.margin_
        return np.minimum(lower, upper), np.maximum(lower, upper)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
