"""The performance family: latency p50/p95, success probability, output tokens, cost.

Two variants over the same inputs (:class:`predictor.models.features.CallFeaturizer`):

* :class:`BatchPerformance` (scikit-learn): histogram gradient boosting with
  quantile loss for the latency p50 and p95 (true quantile regression), a
  calibrated classifier for success (:mod:`predictor.models.calibrated`),
  absolute-error boosting for output tokens and cost (the median minimizes
  absolute error). Latency and tokens are learned as a log-ratio
  to the (server, tool) moving average.
* :class:`OnlinePerformance` (river): linear models that learn one call at
  a time, with per-server load and per-tool size interactions. Latency and
  output tokens are learned on a log scale as a correction to the
  (server, tool) moving average when there is one, so the model adapts as
  fast as the average and adds what load and input size explain; the p95
  uses a quantile (pinball) loss. It predicts before it has learned
  anything (priors: 500 ms, 95 % success). Its models are river's
  ``LinearRegression`` and ``LogisticRegression`` settings stepped together
  over one shared scaler, compiled
  (:class:`predictor.models.linear_stack.ScaledLinearStack`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from river import base, linear_model, optim, utils
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.calibrated import fit_calibrated_classifier
from predictor.models.features import informative_columns
from predictor.models.linear_stack import ScaledLinearStack

__all__ = ["PERFORMANCE_TARGETS", "BatchPerformance", "OnlinePerformance",
           "PerformancePrediction"]

PRIOR_LATENCY_MS = 500.0
PRIOR_SUCCESS = 0.95


@dataclass(frozen=True)
class PerformancePrediction:
    latency_p50_ms: np.ndarray
    latency_p95_ms: np.ndarray
    success: np.ndarray
    output_tokens: np.ndarray
    cost_usd: np.ndarray


#: What :class:`BatchPerformance` predicts: the fields of :class:`PerformancePrediction`.
PERFORMANCE_TARGETS = ("latency_p50_ms", "latency_p95_ms", "success", "output_tokens",
                       "cost_usd")


def _hgb_regressor(loss: str, quantile: float | None = None, categorical=None,
                   seed: int = 0) -> HistGradientBoostingRegressor:
    kwargs = {"quantile": quantile} if quantile is not None else {}
    return HistGradientBoostingRegressor(
        loss=loss, max_iter=120, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=40,
        categorical_features=categorical, random_state=seed, early_stopping=False, **kwargs,
    )


def _log_median(values: np.ndarray) -> float:
    """log1p of the median of the known values (0 when none is known)."""
    known = values[~np.isnan(values)]
    return float(np.log1p(np.median(known))) if len(known) else 0.0


class _Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value)


class BatchPerformance:
    """Gradient-boosted performance models fitted on a feature matrix.

    Parameters
    ----------
    categorical
        Boolean mask of categorical columns (ordinal codes).
    max_rows
        Fit on at most this many rows, the most recent ones.
    random_state
        Seed for the boosters.
    targets
        The predictions to fit (fields of :class:`PerformancePrediction`); the
        others are predicted as NaN. A caller that reads only some of them
        (the selection evaluation's ``model`` policy reads the median latency
        and the success) spares the others' boosters; each fitted one is the
        same whatever else is fitted.
    """

    def __init__(self, *, categorical: list[bool] | None = None, max_rows: int = 120_000,
                 random_state: int = 0, targets: tuple[str, ...] = PERFORMANCE_TARGETS
                 ) -> None:
        unknown = set(targets) - set(PERFORMANCE_TARGETS)
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; known: {PERFORMANCE_TARGETS}")
        self.categorical = categorical
        self.max_rows = max_rows
        self.random_state = random_state
        self.targets = tuple(targets)

    def _fit_reg(self, target: str, X, y, loss, quantile=None, min_rows=50):
        if target not in self.targets:
            return _Constant(math.nan)
        mask = ~np.isnan(y) & self._recent
        if mask.sum() < min_rows:
            return _Constant(float(np.nanmedian(y)) if mask.any() else math.nan)
        model = _hgb_regressor(loss, quantile, self._categorical, self.random_state)
        return model.fit(X[mask], y[mask])

    def _base(self, X: np.ndarray, column: int | None, fallback: float) -> np.ndarray:
        """Log-scale moving average of the target, where known (else the training median)."""
        if column is None:
            return np.full(len(X), fallback)
        base = X[:, column]
        return np.where(np.isnan(base), fallback, base)

    def fit(self, X: np.ndarray, *, latency_ms: np.ndarray, success: np.ndarray,
            output_tokens: np.ndarray, cost_usd: np.ndarray,
            feature_names: list[str] | None = None) -> BatchPerformance:
        """Fit every target; with ``feature_names``, latency and tokens are learned as a
        log-ratio to their (server, tool) moving averages, so that predictions move with
        the averages when a regime changes instead of staying where training left them."""
        self.columns_ = informative_columns(X)
        X = X[:, self.columns_]
        # Past max_rows, the most recent rows: the freshest behaviour, and a bounded fit.
        self._recent = np.arange(len(X)) >= len(X) - self.max_rows
        self._categorical = (None if self.categorical is None
                             else list(np.asarray(self.categorical)[self.columns_]))
        names = [n for n, keep in zip(feature_names or [], self.columns_, strict=False) if keep]
        self.latency_base_ = names.index("hist_latency") if "hist_latency" in names else None
        self.tokens_base_ = (names.index("hist_output_tokens") if "hist_output_tokens" in names
                             else None)
        self.latency_fallback_ = _log_median(latency_ms)
        self.tokens_fallback_ = _log_median(output_tokens)
        log_latency = np.log1p(latency_ms) - self._base(X, self.latency_base_,
                                                        self.latency_fallback_)
        log_tokens = np.log1p(output_tokens) - self._base(X, self.tokens_base_,
                                                          self.tokens_fallback_)
        # Quantiles commute with the monotone log and with a per-row shift, so these
        # quantile (and absolute-error) fits are still quantiles of the raw target.
        self.latency_p50_ = self._fit_reg("latency_p50_ms", X, log_latency, "quantile", 0.5)
        self.latency_p95_ = self._fit_reg("latency_p95_ms", X, log_latency, "quantile", 0.95)
        self.output_tokens_ = self._fit_reg("output_tokens", X, log_tokens, "absolute_error")
        self.cost_usd_ = self._fit_reg("cost_usd", X, cost_usd, "absolute_error")
        mask = ~np.isnan(success) & self._recent
        y = success[mask]
        if "success" not in self.targets:
            self.success_ = _Constant(math.nan)
        elif mask.sum() >= 50 and 0 < y.mean() < 1 and min(y.sum(), (1 - y).sum()) >= 10:
            self.success_ = fit_calibrated_classifier(X[mask], y.astype(int), self._categorical,
                                                      self.random_state)
        else:
            self.success_ = _Constant(float(y.mean()) if len(y) else PRIOR_SUCCESS)
        return self

    def predict(self, X: np.ndarray) -> PerformancePrediction:
        X = X[:, self.columns_]
        success = (compiled.predict_proba(self.success_, X)
                   if hasattr(self.success_, "predict_proba") else self.success_.predict(X))
        p50 = self._scaled(X, self.latency_p50_, self.latency_base_, self.latency_fallback_)
        p95 = self._scaled(X, self.latency_p95_, self.latency_base_, self.latency_fallback_)
        tokens = self._scaled(X, self.output_tokens_, self.tokens_base_,
                              self.tokens_fallback_)
        return PerformancePrediction(
            latency_p50_ms=np.maximum(p50, 0.0),
            latency_p95_ms=np.maximum(p95, p50),
            success=success,
            output_tokens=np.maximum(tokens, 0.0),
            cost_usd=np.maximum(compiled.predict(self.cost_usd_, X), 0.0),
        )

    def median_latency(self, X: np.ndarray) -> np.ndarray:
        """``predict(X).latency_p50_ms`` alone: a holdout loss reads nothing else, and the
        other boosters' predictions cost as much each."""
        X = X[:, self.columns_]
        return np.maximum(self._scaled(X, self.latency_p50_, self.latency_base_,
                                       self.latency_fallback_), 0.0)

    def output_tokens(self, X: np.ndarray) -> np.ndarray:
        """``predict(X).output_tokens`` alone (see :meth:`median_latency`)."""
        X = X[:, self.columns_]
        return np.maximum(self._scaled(X, self.output_tokens_, self.tokens_base_,
                                       self.tokens_fallback_), 0.0)

    def _scaled(self, X: np.ndarray, model: HistGradientBoostingRegressor | _Constant,
                base: int | None, fallback: float) -> np.ndarray:
        """A log-scale booster's prediction over its base, back on the raw scale (rows of
        the informative columns)."""
        return np.expm1(np.minimum(self._base(X, base, fallback) + compiled.predict(model, X),
                                   25.0))


def _linear(loss=None, lr: float = 0.05) -> linear_model.LinearRegression:
    # AdaGrad with clipped gradients: plain SGD diverges on heavy-tailed latency.
    return linear_model.LinearRegression(optimizer=AdaGrad(lr), loss=loss,
                                         clip_gradient=1.0)


def _signed_log1p(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def _signed_expm1(value: float) -> float:
    return math.copysign(math.expm1(abs(value)), value)


#: Where each call target's log-scale base comes from: the feature holding its
#: (server, tool) moving average, or ``None`` for no base (the model learns the level).
#: Other targets use the running mean of their own log value.
TARGET_BASES: dict[str, str | None] = {
    "latency_ms": "hist_latency", "output_tokens": "hist_output_tokens", "cost_usd": None,
}
#: Factor applied before the log: costs are fractions of a dollar.
TARGET_SCALES = {"cost_usd": 1e6}
#: Largest log value a prediction may reach (a bound against runaway extrapolation).
TARGET_LOG_CEILINGS = {"latency_ms": 15.0, "output_tokens": 20.0}
#: Targets learned as a probability (logistic regression) rather than a regression.
BINARY_TARGETS = ("success",)


class OnlinePerformance(base.MultiTargetRegressor):
    """River performance models learning one call at a time, for several targets at once.

    ``learn_one(x, y)`` takes the call's features and a dict of whichever
    outcomes are known (``latency_ms``, ``success``, ``output_tokens``,
    ``cost_usd``; missing or NaN ones are skipped, other names are learned
    like costs); ``predict_one(x)`` answers every target: the latency median
    (``latency_ms``) and its ``quantile`` (``latency_ms_upper``), the success
    probability and the output tokens and cost. Regression targets are
    learned on a log scale, latency and tokens as a correction to their
    (server, tool) moving average when the features carry one, so the model
    adapts as fast as the average and adds what load and input size explain.
    Before any learning it answers the priors: 500 ms, 95 % success. The
    models' state lives in a :class:`~predictor.models.linear_stack.ScaledLinearStack`
    (river's arithmetic, every model stepped in one compiled loop).

    Parameters
    ----------
    lr
        AdaGrad learning rate of the median and mean models.
    quantile
        The upper latency quantile, learned with a pinball loss.
    quantile_lr
        AdaGrad learning rate of the quantile model.
    group
        The categorical feature (one-hot as ``"<group>=<value>"``) whose running
        mean stands in for a missing moving average: a tool's usual latency on
        a server that has not run it yet.

    Examples
    --------
    >>> model = OnlinePerformance()
    >>> model.predict_one({"concurrency": 1.0})["latency_ms"]
    500.0
    >>> model.learn_one({"concurrency": 1.0}, {"latency_ms": 200.0, "success": 1.0})
    >>> 0 < model.predict_one({"concurrency": 1.0})["success"] <= 1
    True
    """

    def __init__(self, lr: float = 0.05, quantile: float = 0.95,
                 quantile_lr: float = 0.01, group: str = "tool") -> None:
        self.lr = lr
        self.group = group
        self.quantile = quantile
        self.quantile_lr = quantile_lr
        # Every model's state lives in one stack over the shared scaler's inputs: the
        # models read the same scaled call, so stepping them together is a few array
        # operations (river's step, model by model, was most of the evaluation's time).
        self._stack = ScaledLinearStack()
        self._success = self._stack.add_model(linear_model.LogisticRegression(
            optimizer=AdaGrad(lr), clip_gradient=1.0))
        self._latency_upper = self._stack.add_model(
            _linear(optim.losses.Quantile(quantile), lr=quantile_lr))
        #: Regression target -> its model's row in the stack (added when first learned).
        self._regressors: dict[str, int] = {}
        self._log_means: dict[str, float] = {}
        self._seen: dict[str, int] = {}

    def _group_of(self, x: dict) -> str | None:
        prefix = f"{self.group}="
        return next((key for key in x if key.startswith(prefix)), None)

    def _base(self, x: dict, target: str, group: str | None) -> float:
        key = TARGET_BASES.get(target, target)
        if key is None:
            return 0.0
        # History features arrive log-scaled (models.features): the moving average;
        # without one (a pair not seen yet), the running mean of the log target over the
        # calls of the same group (tool), then over every call seen.
        value = x.get(key)
        if value is not None and value == value:
            return float(value)
        if group is not None and f"{key}|{group}" in self._log_means:
            return self._log_means[f"{key}|{group}"]
        return self._log_means.get(key, 0.0)

    def _track(self, target: str, log_value: float, group: str | None) -> None:
        key = TARGET_BASES.get(target, target)
        if key is None:
            return
        for name in (key, f"{key}|{group}") if group is not None else (key,):
            mean = self._log_means.get(name)
            self._log_means[name] = (log_value if mean is None
                                     else mean + 0.01 * (log_value - mean))

    def learn_one(self, x: dict, y: dict) -> None:  # type: ignore[override]
        group = self._group_of(x)
        targets: list[tuple[int, float | bool]] = []
        for target, value in y.items():
            if value is None or value != value:
                continue
            self._seen[target] = self._seen.get(target, 0) + 1
            if target in BINARY_TARGETS:
                targets.append((self._success, bool(value)))
                continue
            log_value = _signed_log1p(float(value) * TARGET_SCALES.get(target, 1.0))
            self._track(target, log_value, group)
            residual = log_value - self._base(x, target, group)
            row = self._regressors.get(target)
            if row is None:
                row = self._regressors[target] = self._stack.add_model(_linear(lr=self.lr))
            targets.append((row, residual))
            if target == "latency_ms":
                targets.append((self._latency_upper, residual))
        self._stack.learn(x, targets)

    def predict_one(self, x: dict) -> dict[str, float]:  # type: ignore[override]
        group = self._group_of(x)
        targets = list(self._regressors)
        rows = [self._regressors[t] for t in targets]
        *values, upper_raw, success_raw = self._stack.raw(
            x, [*rows, self._latency_upper, self._success])
        raw = dict(zip(targets, values, strict=True))
        out: dict[str, float] = {}
        for target in {*TARGET_BASES, *self._regressors}:
            if target not in self._regressors:
                out[target] = PRIOR_LATENCY_MS if target == "latency_ms" else math.nan
                continue
            ceiling = TARGET_LOG_CEILINGS.get(target, 30.0)
            base_value = self._base(x, target, group)
            log_value = min(base_value + float(raw[target]), ceiling)
            value = _signed_expm1(log_value) / TARGET_SCALES.get(target, 1.0)
            # Latency, tokens and cost are never negative; other targets may be.
            out[target] = max(value, 0.0) if target in TARGET_BASES else value
            if target == "latency_ms":
                upper = min(base_value + float(upper_raw), ceiling)
                out["latency_ms_upper"] = max(math.expm1(upper), out[target])
        out.setdefault("latency_ms_upper", out["latency_ms"])
        for target in BINARY_TARGETS:
            out[target] = (utils.math.sigmoid(float(success_raw))
                           if self._seen.get(target) else PRIOR_SUCCESS)
        return out
