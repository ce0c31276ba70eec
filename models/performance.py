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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from river import base, linear_model, optim
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.calibrated import fit_calibrated_classifier
from predictor.models.delay import finish_times, release_schedule
from predictor.models.features import informative_columns
from predictor.models.kernels import kernel
from predictor.models.linear_stack import ScaledLinearStack, scaled_raw, scaled_step
from predictor.models.prequential import gather, run_chunks

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
    (river's arithmetic, every model stepped in one compiled loop), and a call's
    targets are learned and answered by compiled steps too (:func:`_learn_call`,
    :func:`_predict_call`): :meth:`learn_predict` runs the same steps over a
    whole log in one loop.

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
        #: Target name -> its index in the per-target arrays below.
        self._targets: dict[str, int] = {}
        #: Per target: the stack's row learning it (-1 until first learned), how often it
        #: was learned, its factor before the log, its log ceiling, and flags: learned as a
        #: probability, learned over a base (a moving average or its running mean), never
        #: negative, and whether the upper quantile learns it too.
        self._rows = np.zeros(0, dtype=np.int64)
        self._seen = np.zeros(0, dtype=np.int64)
        self._scales = np.zeros(0)
        self._ceilings = np.zeros(0)
        self._flags = np.zeros((0, 4), dtype=np.int64)
        #: Group name ("tool=...") -> its column of the running log means (0: every call).
        self._groups: dict[str, int] = {}
        self._log_means = np.zeros((0, 1))
        self._has_mean = np.zeros((0, 1), dtype=np.bool_)
        for target in (*TARGET_BASES, *BINARY_TARGETS):
            self._target(target)

    def _target(self, name: str) -> int:
        """The index of target ``name``, added if new."""
        index = self._targets.get(name)
        if index is not None:
            return index
        index = self._targets[name] = len(self._targets)
        binary = name in BINARY_TARGETS
        self._rows = np.append(self._rows, self._success if binary else -1)
        self._seen = np.append(self._seen, 0)
        self._scales = np.append(self._scales, TARGET_SCALES.get(name, 1.0))
        self._ceilings = np.append(self._ceilings, TARGET_LOG_CEILINGS.get(name, 30.0))
        based = TARGET_BASES.get(name, name) is not None
        self._flags = np.vstack([self._flags, [[binary, based, name in TARGET_BASES,
                                                name == "latency_ms"]]])
        self._log_means = np.vstack([self._log_means, np.zeros((1, self._log_means.shape[1]))])
        self._has_mean = np.vstack([self._has_mean,
                                    np.zeros((1, self._has_mean.shape[1]), dtype=np.bool_)])
        return index

    def _group_column(self, name: str | None, add: bool) -> int:
        """The column of group ``name``'s running means (0 for none; added if ``add``)."""
        if name is None:
            return 0
        column = self._groups.get(name)
        if column is None:
            if not add:
                return 0
            column = self._groups[name] = self._log_means.shape[1]
            self._log_means = np.hstack([self._log_means, np.zeros((len(self._targets), 1))])
            self._has_mean = np.hstack([self._has_mean,
                                        np.zeros((len(self._targets), 1), dtype=np.bool_)])
        return column

    def _group_of(self, x: dict) -> str | None:
        prefix = f"{self.group}="
        return next((key for key in x if key.startswith(prefix)), None)

    def _bases(self, x: dict) -> np.ndarray:
        """Per target, the value in ``x`` of the input it is learned over (NaN: none)."""
        bases = np.full(len(self._targets), math.nan)
        for name, index in self._targets.items():
            key = TARGET_BASES.get(name, name)
            value = None if key is None else x.get(key)
            if value is not None and value == value:
                bases[index] = float(value)
        return bases

    def _state(self) -> tuple:
        """What the compiled steps take after a call's inputs: the stack's arrays, then
        the targets' and the running means'."""
        return (*self._stack.arrays(), self._rows, self._seen, self._scales, self._ceilings,
                self._flags, self._log_means, self._has_mean, self._latency_upper)

    def learn_one(self, x: dict, y: dict) -> None:  # type: ignore[override]
        ys = [(self._target(name), value) for name, value in y.items()]
        values = np.full(len(self._targets), math.nan)
        for index, value in ys:
            if value is None or value != value:
                continue
            values[index] = float(value)
            if self._rows[index] < 0:  # a regression target's first value: its model
                self._rows[index] = self._stack.add_model(_linear(lr=self.lr))
        group = self._group_column(self._group_of(x), add=not np.isnan(values).all())
        if x:
            idx = self._stack.index(x)
            inputs = np.fromiter(x.values(), dtype=float, count=len(x))
        else:
            idx, inputs = np.zeros(0, dtype=np.intp), np.zeros(0)
        _learn_call(idx, inputs, self._bases(x), values, group, *self._state())

    def predict_one(self, x: dict) -> dict[str, float]:  # type: ignore[override]
        out = np.empty(len(self._targets) + 1)
        _predict_call(self._stack.known(x), np.fromiter(x.values(), dtype=float, count=len(x)),
                      self._bases(x), self._group_column(self._group_of(x), add=False),
                      *self._state(), out)
        return self._answer(out)

    def _answered(self) -> dict[str, int]:
        """What :meth:`predict_one` answers -> its place in a compiled step's outputs: the
        targets every model knows, those learned, and the latency's upper quantile."""
        answered = {name: index for name, index in self._targets.items()
                    if name in TARGET_BASES or name in BINARY_TARGETS or self._seen[index]}
        answered["latency_ms_upper"] = len(self._targets)
        return answered

    def _answer(self, out: np.ndarray) -> dict[str, float]:
        """The answer of :meth:`predict_one` from a compiled step's outputs."""
        return {name: float(out[index]) for name, index in self._answered().items()}

    def learn_predict(self, inputs: Iterable[tuple[np.ndarray, np.ndarray]],
                      names: list[str], y: dict[str, np.ndarray], bases: dict[str, np.ndarray],
                      groups: np.ndarray, group_names: list[str], starts: np.ndarray,
                      predict: np.ndarray) -> dict[str, np.ndarray]:
        """Predict calls, learning each once it has finished, over a whole log at once.

        What a replay does with :meth:`predict_one` at each call marked in ``predict``
        and :meth:`learn_one` once a call has finished (before the first call that
        starts after ``starts + latency``; :class:`~predictor.models.delay.LabelDelay`),
        in one compiled loop. ``inputs`` are the calls' inputs in order, a chunk at a
        time, as ids of ``names`` and values
        (:meth:`~predictor.models.features.CallFeaturizer.sparse`); ``y`` the targets
        by name (NaN: unknown; ``latency_ms`` sets when a call finishes); ``bases``
        per target the input it is learned over (NaN: missing); ``groups`` each
        call's group, an index of ``group_names`` (-1: none). Returns each answer of
        :meth:`predict_one` for the marked calls, in order.
        """
        n = len(starts)
        ends = finish_times(starts, y["latency_ms"])
        release, order = release_schedule(starts, ends)
        targets = [self._target(name) for name in y]
        values = np.full((n, len(self._targets)), math.nan)
        based = np.full((n, len(self._targets)), math.nan)
        for name, index in zip(y, targets, strict=True):
            values[:, index] = y[name]
            if self._rows[index] < 0 and not np.isnan(y[name]).all():
                self._rows[index] = self._stack.add_model(_linear(lr=self.lr))
        for name, column in bases.items():
            based[:, self._target(name)] = column
        # Every group may be learned: their columns now (the loop cannot add them).
        columns = np.array([self._group_column(f"{self.group}={name}", add=True)
                            for name in group_names] or [0], dtype=np.int64)
        group = np.where(groups >= 0, columns[np.maximum(groups, 0)], 0)
        out = np.empty((int(predict.sum()), len(self._targets) + 1))
        progress = np.zeros(2, dtype=np.int64)  # (learned, predicted) so far

        def loop(start: int, stop: int, slots: np.ndarray, ids: np.ndarray,
                 inputs: np.ndarray, positions: np.ndarray, added: np.ndarray) -> None:
            _learn_predict(start, stop, release, order, slots, ids, inputs, based, values,
                           group, predict, positions, added, progress, out,
                           *self._state())  # read now: run_chunks made room in the stack

        run_chunks(inputs, names, self._stack, release, loop)
        return {name: out[:, index] for name, index in self._answered().items()}


@kernel
def _base(target, group, base, log_means, has_mean):  # pragma: no cover - compiled
    """What target ``target`` is learned over: the input ``base`` (a moving average, on a
    log scale), else the running mean of the log target over the calls of the group,
    then over every call, then 0."""
    if base == base:
        return base
    if group > 0 and has_mean[target, group]:
        return log_means[target, group]
    if has_mean[target, 0]:
        return log_means[target, 0]
    return 0.0


@kernel
def _learn_call(idx, inputs, bases, values, group, counts, means, variances, weights, g2,
                intercepts, lrs, eps, clips, intercept_lrs, loss_codes, alphas, steps,
                rows, seen, scales, ceilings, flags, log_means, has_mean, upper
                ):  # pragma: no cover - compiled
    """One call learned (:meth:`OnlinePerformance.learn_one`): each known target's value
    (NaN: unknown), a probability as is, a regression target as its log over its base;
    then the stack's step on the call's inputs (none: nothing to step)."""
    learning = np.empty(values.size + 1, dtype=np.int64)
    ys = np.empty(values.size + 1)
    k = 0
    for t in range(values.size):
        value = values[t]
        if value != value:
            continue
        seen[t] += 1
        if flags[t, 0]:  # a probability: its label
            learning[k] = rows[t]
            ys[k] = 1.0 if value != 0.0 else 0.0
            k += 1
            continue
        scaled = value * scales[t]
        log_value = math.copysign(math.log1p(abs(scaled)), scaled)
        if flags[t, 1]:  # the running means of its log, over every call, then the group
            for column in (0, group):
                if has_mean[t, column]:
                    log_means[t, column] += 0.01 * (log_value - log_means[t, column])
                else:
                    log_means[t, column] = log_value
                    has_mean[t, column] = True
                if group == 0:
                    break
            residual = log_value - _base(t, group, bases[t], log_means, has_mean)
        else:
            residual = log_value
        learning[k] = rows[t]
        ys[k] = residual
        k += 1
        if flags[t, 3]:  # the latency: its upper quantile too
            learning[k] = upper
            ys[k] = residual
            k += 1
    if idx.size:
        scaled_step(idx, inputs, counts, means, variances, weights, g2, intercepts, lrs, eps,
                    clips, intercept_lrs, loss_codes, alphas, steps, learning[:k], ys[:k])


@kernel
def _predict_call(idx, inputs, bases, group, counts, means, variances, weights, g2,
                  intercepts, lrs, eps, clips, intercept_lrs, loss_codes, alphas, steps,
                  rows, seen, scales, ceilings, flags, log_means, has_mean, upper, out
                  ):  # pragma: no cover - compiled
    """One call answered (:meth:`OnlinePerformance.predict_one`): ``out[t]`` per target,
    then the latency's upper quantile last."""
    asked = np.empty(rows.size + 1, dtype=np.int64)
    for t in range(rows.size):
        asked[t] = max(rows[t], 0)
    asked[rows.size] = upper
    raw = scaled_raw(idx, inputs, means, variances, weights, intercepts, asked)
    out[rows.size] = PRIOR_LATENCY_MS
    for t in range(rows.size):
        if flags[t, 0]:  # a probability: river's sigmoid, or the prior before learning
            if not seen[t]:
                out[t] = PRIOR_SUCCESS
            elif raw[t] < -30.0:
                out[t] = 0.0
            elif raw[t] > 30.0:
                out[t] = 1.0
            else:
                out[t] = 1.0 / (1.0 + math.exp(-raw[t]))
            continue
        if not seen[t]:
            out[t] = PRIOR_LATENCY_MS if flags[t, 3] else math.nan
            continue
        base = _base(t, group, bases[t], log_means, has_mean) if flags[t, 1] else 0.0
        # min() and max() as Python's: the first argument unless the other is beyond it.
        log_value = base + raw[t]
        log_value = ceilings[t] if ceilings[t] < log_value else log_value
        value = math.copysign(math.expm1(abs(log_value)), log_value) / scales[t]
        out[t] = 0.0 if flags[t, 2] and value < 0.0 else value
        if flags[t, 3]:
            high = base + raw[rows.size]
            high = ceilings[t] if ceilings[t] < high else high
            high = math.expm1(high)
            out[rows.size] = out[t] if out[t] > high else high


@kernel
def _learn_predict(start, stop, release, order, slots, ids, inputs, bases, values, group,
                   predict, positions, added, progress, out, counts, means, variances,
                   weights, g2, intercepts, lrs, eps, clips, intercept_lrs, loss_codes,
                   alphas, steps, rows, seen, scales, ceilings, flags, log_means, has_mean,
                   upper):  # pragma: no cover - compiled
    """Calls ``start`` to ``stop`` of :meth:`OnlinePerformance.learn_predict`: before each,
    the calls :func:`~predictor.models.delay.release_schedule` releases then are learned;
    then it is answered if marked."""
    idx = np.empty(ids.shape[1], dtype=np.intp)
    row_inputs = np.empty(ids.shape[1])
    answer = np.empty(out.shape[1])
    p, k = progress[0], progress[1]
    for j in range(start, stop):
        while p < order.size and release[order[p]] == j:
            i = order[p]
            m = gather(ids, inputs, slots[i], positions, added, idx, row_inputs, True)
            _learn_call(idx[:m], row_inputs[:m], bases[i], values[i], group[i], counts, means,
                        variances, weights, g2, intercepts, lrs, eps, clips, intercept_lrs,
                        loss_codes, alphas, steps, rows, seen, scales, ceilings, flags,
                        log_means, has_mean, upper)
            p += 1
        if predict[j]:
            m = gather(ids, inputs, slots[j], positions, added, idx, row_inputs, False)
            _predict_call(idx[:m], row_inputs[:m], bases[j], group[j], counts, means,
                          variances, weights, g2, intercepts, lrs, eps, clips, intercept_lrs,
                          loss_codes, alphas, steps, rows, seen, scales, ceilings, flags,
                          log_means, has_mean, upper, answer)
            out[k] = answer
            k += 1
    progress[0], progress[1] = p, k
