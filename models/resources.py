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
from collections.abc import Iterable

import numpy as np
from river import base, linear_model
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.conformal import ConformalIntervalRegressor
from predictor.models.delay import finish_times, release_schedule
from predictor.models.features import informative_columns
from predictor.models.kernels import kernel
from predictor.models.linear_stack import ScaledLinearStack, scaled_raw, scaled_step
from predictor.models.prequential import gather, run_chunks

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
            self._stack.learn(x, ((self._row, _log_duration(float(y))),))
            self._n += 1

    def predict_one(self, x: dict) -> float:
        if not self._n:
            return self.prior_ms
        return _duration(float(self._stack.raw(x, (self._row,))[0]))

    def learn_predict(self, inputs: Iterable[tuple[np.ndarray, np.ndarray]], names: list[str],
                      durations: np.ndarray, starts: np.ndarray, predict: np.ndarray
                      ) -> np.ndarray:
        """:meth:`predict_one` of each call marked in ``predict``, learning every call
        (:meth:`learn_one`) once it has finished, over a whole log in one compiled loop.

        ``inputs`` are the calls' inputs, a chunk at a time, as ids of ``names`` and
        values (:meth:`~predictor.models.features.CallFeaturizer.sparse`); a call
        started at ``starts`` and took ``durations`` (ms, NaN: unknown), and is
        learned before the first call that starts after it finished
        (:class:`~predictor.models.delay.LabelDelay`).
        """
        release, order = release_schedule(starts, finish_times(starts, durations))
        out = np.empty(int(predict.sum()))
        progress = np.array([0, 0, self._n], dtype=np.int64)  # learned, predicted, _n

        def loop(start: int, stop: int, slots: np.ndarray, ids: np.ndarray,
                 values: np.ndarray, positions: np.ndarray, added: np.ndarray) -> None:
            _learn_predict(start, stop, release, order, slots, ids, values, durations,
                           predict, positions, added, progress, out, self.prior_ms, self._row,
                           *self._stack.arrays())  # read now: run_chunks made room

        run_chunks(inputs, names, self._stack, release, loop)
        self._n = int(progress[2])
        return out


@kernel
def _log_duration(duration_ms):  # pragma: no cover - compiled
    """What the online model learns of a call's duration: its log (0 below 0 ms)."""
    return math.log1p(0.0 if duration_ms < 0.0 else duration_ms)  # max(duration, 0.0)


@kernel
def _duration(raw):  # pragma: no cover - compiled
    """The duration the online model answers for its raw output (a log, at most 25)."""
    value = math.expm1(25.0 if raw > 25.0 else raw)  # min(raw, 25.0), as Python's min
    return 0.0 if value < 0.0 else value


@kernel
def _learn_predict(start, stop, release, order, slots, ids, values, durations, predict,
                   positions, added, progress, out, prior, row, counts, means, variances,
                   weights, g2, intercepts, lrs, eps, clips, intercept_lrs, loss_codes, alphas,
                   steps):  # pragma: no cover - compiled
    """Calls ``start`` to ``stop`` of :meth:`OnlineResources.learn_predict`: before each,
    the calls :func:`~predictor.models.delay.release_schedule` releases then are learned
    (those with a duration); then it is answered if marked."""
    idx = np.empty(ids.shape[1], dtype=np.intp)
    inputs = np.empty(ids.shape[1])
    rows = np.full(1, row, dtype=np.intp)
    ys = np.empty(1)
    p, k = progress[0], progress[1]
    for j in range(start, stop):
        while p < order.size and release[order[p]] == j:
            i = order[p]
            p += 1
            if durations[i] != durations[i]:  # unknown: not learned
                continue
            m = gather(ids, values, slots[i], positions, added, idx, inputs, True)
            if m:  # a call without inputs counts, but steps nothing (as the stack's learn)
                ys[0] = _log_duration(durations[i])
                scaled_step(idx[:m], inputs[:m], counts, means, variances, weights, g2,
                            intercepts, lrs, eps, clips, intercept_lrs, loss_codes, alphas,
                            steps, rows, ys)
            progress[2] += 1
        if predict[j]:
            if progress[2] == 0:
                out[k] = prior
            else:
                m = gather(ids, values, slots[j], positions, added, idx, inputs, False)
                out[k] = _duration(scaled_raw(idx[:m], inputs[:m], means, variances, weights,
                                              intercepts, rows)[0])
            k += 1
    progress[0], progress[1] = p, k
