"""The resources family: what a call of a workflow will need, with 80 % intervals.

Inputs are what a workflow spec says before it runs (tool, task type, phase,
input size, numeric attrs such as input bytes or fan-in; see
:class:`predictor.models.features.CallFeaturizer` with ``spec_only``), plus the
history of earlier finished calls of the same tool.

* :class:`BatchResources` (scikit-learn): absolute-error gradient boosting
  per target (output tokens, memory, CPU) and, for duration, conformalized
  quantile regression (:class:`predictor.models.conformal.ConformalIntervalRegressor`):
  the median and an 80 % interval calibrated on the newest quarter of the
  training rows.
* :class:`OnlineResources` (river): a linear model of log duration that
  learns one call at a time.
"""

from __future__ import annotations

import math

import numpy as np
from river import base, linear_model
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.conformal import ConformalIntervalRegressor
from predictor.models.features import informative_columns
from predictor.models.linear_stack import ScaledLinearStack

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

    def fit(self, X: np.ndarray, targets: dict[str, np.ndarray], *,
            base_column: int | None = None, calibration_fraction: float = 0.25
            ) -> BatchResources:
        """Fit on time-ordered rows; the newest ``calibration_fraction`` calibrates the interval.

        With ``base_column`` (the log-scaled moving average of duration), duration is
        learned as a log-ratio to it, so that it moves with the average when workloads
        change; quantiles commute with that transform.
        """
        duration = targets.get("duration_ms")
        known = duration[~np.isnan(duration)] if duration is not None else np.empty(0)
        fallback = float(np.log1p(np.median(known))) if len(known) else 0.0
        self.base_ = (base_column, fallback)
        self.columns_ = informative_columns(X)
        categorical = (None if self.categorical is None
                       else list(np.asarray(self.categorical)[self.columns_]))
        Xc = X[:, self.columns_]
        self.models_: dict[str, HistGradientBoostingRegressor] = {}
        for name, y in targets.items():
            if name == "duration_ms":
                continue
            rows = ~np.isnan(y)
            if rows.sum() >= 30:
                self.models_[name] = _booster("absolute_error", categorical,
                                              seed=self.random_state).fit(Xc[rows], y[rows])
        self.duration_ = None
        if duration is not None:
            rows = ~np.isnan(duration)
            if rows.sum() >= 30:
                log_ratio = np.log1p(duration[rows]) - self._base(X[rows])
                self.duration_ = ConformalIntervalRegressor(
                    coverage=self.coverage, calibration_fraction=calibration_fraction,
                    categorical_features=categorical, random_state=self.random_state,
                ).fit(Xc[rows], log_ratio)
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
        out = {name: np.maximum(compiled.predict(model, Xc), 0.0)
               for name, model in self.models_.items()}
        duration = self.duration(X)
        if duration is not None:
            out["duration_ms"] = duration
        return out

    def duration(self, X: np.ndarray) -> np.ndarray | None:
        """``predict(X)["duration_ms"]`` alone (``None`` if not fitted): a holdout loss
        reads nothing else."""
        if self.duration_ is None:
            return None
        return np.maximum(self._duration(X, self.duration_.predict(X[:, self.columns_])), 0.0)

    def interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The calibrated interval of duration for rows of ``X`` (``None`` if not fitted)."""
        if self.duration_ is None:
            return None
        lo, hi = self.duration_.predict_interval(X[:, self.columns_])
        return np.maximum(self._duration(X, lo), 0.0), self._duration(X, hi)


class OnlineResources(base.Regressor):
    """A river regressor of log duration, learning one call at a time.

    Parameters
    ----------
    prior_ms
        Duration answered before learning.
    lr
        AdaGrad learning rate.

    Examples
    --------
    >>> model = OnlineResources()
    >>> model.predict_one({"log_input_tokens": 3.0})
    1000.0
    >>> model.learn_one({"log_input_tokens": 3.0}, 250.0)
    >>> model.predict_one({"log_input_tokens": 3.0}) > 0
    True
    """

    def __init__(self, prior_ms: float = 1000.0, lr: float = 0.1) -> None:
        self.prior_ms = prior_ms
        self.lr = lr
        # river's StandardScaler | LinearRegression(AdaGrad(lr), clip 1), stepped by the
        # compiled stack: the same arithmetic without river's loops over the call's inputs.
        self._stack = ScaledLinearStack()
        self._row = self._stack.add_model(linear_model.LinearRegression(
            optimizer=AdaGrad(lr), clip_gradient=1.0))
        self._n = 0

    def learn_one(self, x: dict, y: float) -> None:
        if y is not None and not math.isnan(y):
            self._stack.learn(x, ((self._row, math.log1p(max(float(y), 0.0))),))
            self._n += 1

    def predict_one(self, x: dict) -> float:
        if not self._n:
            return self.prior_ms
        raw = float(self._stack.raw(x, (self._row,))[0])
        return max(math.expm1(min(raw, 25.0)), 0.0)
