"""The resources family: what a call of a workflow will need, with 80 % intervals.

Inputs are what a workflow spec says before it runs (tool, task type, phase,
input size, numeric attrs such as input bytes or fan-in; see
:class:`models.features.CallFeaturizer` with ``spec_only``), plus the
history of earlier finished calls of the same tool.

* :class:`BatchResources` (scikit-learn): absolute-error gradient boosting
  per target (duration, output tokens, memory, CPU), and for duration an
  80 % interval from conformalized quantile regression (Romano et al. 2019):
  quantile boosters at 10 % and 90 %, widened on a calibration slice (the
  last quarter of the training time span) until they cover 80 % there.
* :class:`OnlineResources` (river): a linear model of log duration that
  learns one call at a time.
"""

from __future__ import annotations

import math

import numpy as np
from river import linear_model, optim, preprocessing
from sklearn.ensemble import HistGradientBoostingRegressor

from models.features import informative_columns

__all__ = ["TARGETS", "BatchResources", "OnlineResources"]

#: Report name -> telemetry column.
TARGETS = {"duration_ms": "latency_ms", "output_tokens": "output_tokens",
           "mem_mb": "mem_mb", "cpu_pct": "cpu_pct"}


def _booster(loss: str, categorical, quantile: float | None = None,
             seed: int = 0) -> HistGradientBoostingRegressor:
    extra = {"quantile": quantile} if quantile is not None else {}
    return HistGradientBoostingRegressor(loss=loss, max_iter=150, max_leaf_nodes=31,
                                         min_samples_leaf=20, categorical_features=categorical,
                                         random_state=seed, early_stopping=False, **extra)


class BatchResources:
    """Per-target boosters and a conformal 80 % interval for duration.

    Parameters
    ----------
    categorical
        Boolean mask of categorical columns.
    coverage
        Target coverage of the duration interval.
    """

    def __init__(self, *, categorical: list[bool] | None = None, coverage: float = 0.8,
                 random_state: int = 0) -> None:
        self.categorical = categorical
        self.coverage = coverage
        self.random_state = random_state

    def fit(self, X: np.ndarray, targets: dict[str, np.ndarray], calibration: np.ndarray,
            base_column: int | None = None) -> BatchResources:
        """Fit on rows of ``X``; ``calibration`` marks rows held out to calibrate intervals.

        With ``base_column`` (the log-scaled moving average of duration), duration is
        learned as a log-ratio to it, so that it moves with the average when workloads
        change; quantiles commute with that transform, absolute-error medians too.
        """
        duration = targets.get("duration_ms")
        known = duration[~np.isnan(duration)] if duration is not None else np.empty(0)
        fallback = float(np.log1p(np.median(known))) if len(known) else 0.0
        self.base_ = (base_column, fallback)
        if duration is not None:
            targets = {**targets, "duration_ms": np.log1p(duration) - self._base(X)}
        self.columns_ = informative_columns(X)
        X = X[:, self.columns_]
        categorical = (None if self.categorical is None
                       else list(np.asarray(self.categorical)[self.columns_]))
        self.models_: dict[str, HistGradientBoostingRegressor] = {}
        for name, y in targets.items():
            known = ~np.isnan(y)
            if known.sum() >= 30:
                self.models_[name] = _booster("absolute_error", categorical,
                                              seed=self.random_state).fit(X[known], y[known])
        y = targets.get("duration_ms")
        self.interval_ = None
        if y is not None:
            fit_rows = ~np.isnan(y) & ~calibration
            cal_rows = ~np.isnan(y) & calibration
            if fit_rows.sum() >= 30 and cal_rows.sum() >= 10:
                alpha = (1 - self.coverage) / 2
                lo = _booster("quantile", categorical, alpha, self.random_state)
                hi = _booster("quantile", categorical, 1 - alpha, self.random_state)
                lo.fit(X[fit_rows], y[fit_rows])
                hi.fit(X[fit_rows], y[fit_rows])
                # Conformity scores on the calibration rows, on the log-ratio scale: how
                # far outside the band (a multiplicative margin on the raw scale).
                scores = np.maximum(lo.predict(X[cal_rows]) - y[cal_rows],
                                    y[cal_rows] - hi.predict(X[cal_rows]))
                n = len(scores)
                level = min(1.0, math.ceil((n + 1) * self.coverage) / n)
                self.interval_ = (lo, hi, float(np.quantile(scores, level)))
        return self

    def _base(self, X: np.ndarray) -> np.ndarray:
        column, fallback = self.base_
        if column is None:
            return np.full(len(X), fallback)
        return np.where(np.isnan(X[:, column]), fallback, X[:, column])

    def _duration(self, X: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
        return np.expm1(np.minimum(self._base(X) + log_ratio, 30.0))

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        Xc = X[:, self.columns_]
        out = {name: np.maximum(model.predict(Xc), 0.0) for name, model in self.models_.items()}
        if "duration_ms" in self.models_:
            out["duration_ms"] = np.maximum(
                self._duration(X, self.models_["duration_ms"].predict(Xc)), 0.0)
        return out

    def interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The 80 % interval of duration for rows of ``X`` (``None`` if not fitted)."""
        if self.interval_ is None:
            return None
        lo, hi, q = self.interval_
        Xc = X[:, self.columns_]
        return (np.maximum(self._duration(X, lo.predict(Xc) - q), 0.0),
                self._duration(X, hi.predict(Xc) + q))


class OnlineResources:
    """A river model of log duration, learning one call at a time.

    >>> model = OnlineResources()
    >>> model.predict_one({"log_input_tokens": 3.0})
    1000.0
    >>> model.learn_one({"log_input_tokens": 3.0}, 250.0)
    >>> model.predict_one({"log_input_tokens": 3.0}) > 0
    True
    """

    PRIOR_MS = 1000.0

    def __init__(self) -> None:
        self._model = preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=optim.AdaGrad(0.1), clip_gradient=1.0)
        self._n = 0

    def learn_one(self, x: dict[str, float], duration_ms: float) -> None:
        if not math.isnan(duration_ms):
            self._model.learn_one(x, math.log1p(duration_ms))
            self._n += 1

    def predict_one(self, x: dict[str, float]) -> float:
        if not self._n:
            return self.PRIOR_MS
        return max(math.expm1(min(self._model.predict_one(x), 25.0)), 0.0)
