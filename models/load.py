"""The load family: calls per window per server, forecast for the next window.

Features of a window are known at its start: the counts of the previous
windows (lags 1-6), their recent mean and trend, the count one day earlier
when the log is that long, and the time of day. Series are per server.

* :class:`BatchLoad` (scikit-learn): Poisson-loss gradient boosting for the
  expected count and quantile-loss boosting for the upper quantile (what a
  scaler provisions for).
* :class:`OnlineLoad` (river): a linear model of the log count over the same
  features, learning one window at a time.

>>> import pandas as pd
>>> counts = pd.DataFrame({"a": [1, 2, 3, 4, 5, 6, 7, 8]}, index=range(0, 480, 60))
>>> load_features(counts, window_s=60).shape
(8, 15)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from river import base, linear_model
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.features import informative_columns
from predictor.models.linear_stack import ScaledLinearStack

__all__ = ["ACTIVE_AFTER", "BatchLoad", "OnlineLoad", "active_windows", "load_features",
           "window_counts"]

LAGS = (1, 2, 3, 4, 5, 6)


def window_counts(ts: np.ndarray, servers: np.ndarray, window_s: float,
                  start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Calls per window (rows, by window start) and server (columns), zeros included."""
    start = float(np.min(ts)) if start is None else start
    end = float(np.max(ts)) if end is None else end
    n = int((end - start) // window_s) + 1
    idx = ((ts - start) // window_s).astype(int)
    frame = pd.DataFrame({"w": idx, "server": servers})
    counts = frame.groupby(["w", "server"]).size().unstack(fill_value=0)
    counts = counts.reindex(range(n), fill_value=0)
    counts.index = start + counts.index.to_numpy() * window_s
    return counts.astype(float)


#: Windows of a series on which the batch forecaster must beat the last value to answer.
MIN_CALIBRATION_WINDOWS = 24

#: Windows after a server's last call that still count as active (see :func:`active_windows`).
ACTIVE_AFTER = 47


def active_windows(counts: pd.DataFrame, after: int = ACTIVE_AFTER) -> pd.DataFrame:
    """Per server, the windows with a call or within ``after`` windows of one.

    A forecaster learns and a scaler decides in these windows only: deeper in
    a lull every policy sits at its minimum with no load to serve, and the
    service itself closes at most ``after`` empty windows after a gap
    (:class:`predictor.scale.Scaler`). A sparse log spanning a year of 60 s
    windows is then replayed in proportion to its calls, not its span.

    >>> counts = pd.DataFrame({"a": [1.0, 0, 0, 0, 2.0, 0]})
    >>> active_windows(counts, after=1)["a"].tolist()
    [True, True, False, False, True, True]
    """
    busy = (counts > 0).astype(np.int8)
    return busy.rolling(after + 1, min_periods=1).max().astype(bool)


def load_features(counts: pd.DataFrame, window_s: float,
                  active: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long frame: one row per (window, server) with features known at the window's start.

    With ``active`` (:func:`active_windows`), only each server's active windows.
    """
    rows = []
    day = round(86_400 / window_s)
    codes = {server: i for i, server in enumerate(counts.columns)}
    for server in counts.columns:
        series = counts[server]
        feats = pd.DataFrame(index=counts.index)
        for lag in LAGS:
            feats[f"lag{lag}"] = series.shift(lag)
        feats["mean12"] = series.shift(1).rolling(12, min_periods=1).mean()
        feats["trend"] = feats["lag1"] - feats["mean12"]
        feats["max12"] = series.shift(1).rolling(12, min_periods=1).max()
        feats["day_ago"] = series.shift(day) if len(series) > day else np.nan
        phase = (counts.index.to_numpy() % 86_400) / 86_400 * 2 * math.pi
        feats["hour_sin"], feats["hour_cos"] = np.sin(phase), np.cos(phase)
        feats["server"] = codes[server]
        feats["y"] = series
        feats["series"] = server
        rows.append(feats if active is None else feats[active[server].to_numpy()])
    long = pd.concat(rows)
    return long.drop(columns=["y", "series"]).assign(y=long["y"], series=long["series"])


FEATURES = [*(f"lag{lag}" for lag in LAGS), "mean12", "trend", "max12", "day_ago",
            "hour_sin", "hour_cos", "server"]


class BatchLoad:
    """Expected count and upper quantile of the next window's load.

    Parameters
    ----------
    quantile
        The upper quantile to forecast.
    """

    def __init__(self, *, quantile: float = 0.9, random_state: int = 0) -> None:
        self.quantile = quantile
        self.random_state = random_state

    def fit(self, features: pd.DataFrame) -> BatchLoad:
        X, y = features[FEATURES].to_numpy(float), features["y"].to_numpy(float)
        self.columns_ = informative_columns(X)
        X = X[:, self.columns_]
        cat = [name == "server" for name, keep in zip(FEATURES, self.columns_, strict=True)
               if keep]
        common = dict(max_iter=150, max_leaf_nodes=15, min_samples_leaf=10,
                      categorical_features=cat, random_state=self.random_state,
                      early_stopping=False)
        self.mean_ = HistGradientBoostingRegressor(loss="poisson", **common).fit(X, y)
        # Poisson boosting can blow up on a few huge bursts; never forecast past 10x
        # the largest load seen in training.
        self.ceiling_ = 10.0 * float(np.max(y)) if len(y) else 0.0
        self.upper_ = HistGradientBoostingRegressor(loss="quantile", quantile=self.quantile,
                                                    **common).fit(X, y)
        return self

    def predict(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Expected count and upper quantile of each row's window.

        Series in ``last_value_series_`` answer the last window's count as the
        expected one (see :meth:`last_value_series`).
        """
        X = features[FEATURES].to_numpy(float)[:, self.columns_]
        with np.errstate(over="ignore"):
            raw = compiled.predict(self.mean_, X)
            mean = np.clip(np.nan_to_num(raw, posinf=self.ceiling_), 0.0, self.ceiling_)
        fallback = getattr(self, "last_value_series_", frozenset())
        if fallback:
            rows = features["server"].isin(list(fallback)).to_numpy()
            mean[rows] = features["lag1"].fillna(0.0).to_numpy(float)[rows]
        return mean, np.clip(compiled.predict(self.upper_, X), mean, max(self.ceiling_, 0.0))

    def last_value_series(self, features: pd.DataFrame) -> frozenset:
        """The series (``server`` codes) whose last value beat this model on ``features``.

        ``features`` are windows this model did not learn (newer ones): on a
        sparse or intermittent series the last value's absolute error can be
        lower than a count model's, and a forecaster that answers the model
        there does worse than doing nothing. A series with fewer than
        :data:`MIN_CALIBRATION_WINDOWS` windows here keeps the last value too.
        """
        if features.empty:
            return frozenset()
        mean, _ = self.predict(features)
        y = features["y"].to_numpy(float)
        errors = pd.DataFrame({
            "series": features["server"].to_numpy(),
            "model": np.abs(mean - y),
            "last": np.abs(features["lag1"].fillna(0.0).to_numpy(float) - y),
        }).groupby("series").agg(["mean", "size"])
        # A win on a handful of windows says little (azure: 11 per server, won there and
        # lost by half on the next 12): the last value stays until the model won on enough.
        lost = (errors[("model", "mean")] > errors[("last", "mean")]) | (
            errors[("model", "size")] < MIN_CALIBRATION_WINDOWS)
        return frozenset(errors.index[lost].tolist())


class OnlineLoad(base.Regressor):
    """River forecaster of the next window's count, one window at a time.

    A linear model of the log count over log-scaled lags. It keeps a running
    mean absolute error of its own forecasts and of the last window's count
    (persistence) over the same windows, and answers whichever has been the
    better lately: on sparse or intermittent series (most windows 0 to 2
    calls) a regression on the log count loses to the last value, and a
    forecaster must never do much worse than that. Until it has seen
    ``warmup`` windows it answers the last value too. A forecast never
    exceeds twice the largest of the last windows plus one (an extrapolating
    linear model on the log scale can otherwise ask for millions).

    Parameters
    ----------
    warmup
        Windows to see before trusting the model.
    lr
        AdaGrad learning rate.
    error_decay
        Weight of the newest window in the running errors.

    Examples
    --------
    >>> model = OnlineLoad()
    >>> model.predict_one({"lag1": 4.0})
    4.0
    >>> for i in range(200):  # a steady cycle: the model beats the last value
    ...     lags = {f"lag{k}": float(10 + 5 * ((i - k) % 2)) for k in LAGS}
    ...     model.learn_one({**lags, "max12": 15.0}, float(10 + 5 * (i % 2)))
    >>> model.answering
    'model'
    """

    def __init__(self, warmup: int = 10, lr: float = 0.1, error_decay: float = 0.05) -> None:
        self.warmup = warmup
        self.lr = lr
        self.error_decay = error_decay
        # river's StandardScaler | LinearRegression(AdaGrad(lr), clip 1, intercept rate lr),
        # stepped by the compiled stack (the same arithmetic, without river's loops).
        self._stack = ScaledLinearStack()
        self._row = self._stack.add_model(linear_model.LinearRegression(
            optimizer=AdaGrad(lr), clip_gradient=1.0, intercept_lr=lr))
        self._n = 0
        self._model_error = 0.0
        self._last_error = 0.0

    def __setstate__(self, state: dict) -> None:
        # Checkpoints from before the running errors: trust the model as they did.
        state.setdefault("error_decay", 0.05)
        state.setdefault("_model_error", 0.0)
        state.setdefault("_last_error", 0.0)
        pipeline = state.pop("_model", None)
        if pipeline is not None:  # checkpoints whose model was river's pipeline
            state["_stack"], state["_row"] = ScaledLinearStack.from_pipeline(pipeline)
        self.__dict__.update(state)

    @staticmethod
    def _clean(x: dict) -> dict[str, float]:
        out = {}
        for k, v in x.items():
            if k == "server":
                continue
            v = 0.0 if v is None or v != v else float(v)
            out[k] = v if k in ("trend", "hour_sin", "hour_cos") else math.log1p(max(v, 0.0))
        return out

    @staticmethod
    def _last(x: dict) -> float:
        last = x.get("lag1", 0.0)
        return 0.0 if last is None or last != last else max(float(last), 0.0)

    def _model_forecast(self, x: dict, clean: dict[str, float] | None = None) -> float:
        recent = [v for v in (x.get("max12"), x.get("lag1")) if v is not None and v == v]
        ceiling = max(recent, default=0.0) + 1.0
        clean = self._clean(x) if clean is None else clean
        raw = math.expm1(min(float(self._stack.raw(clean, (self._row,))[0]), 20.0))
        return min(max(raw, 0.0), ceiling)

    @property
    def answering(self) -> str:
        """``"model"`` or ``"last value"``: what :meth:`predict_one` answers now."""
        if self._n < self.warmup or self._model_error > self._last_error:
            return "last value"
        return "model"

    def learn_one(self, x: dict, y: float) -> None:
        self.forecast_then_learn(x, y)

    def forecast_then_learn(self, x: dict, y: float) -> float | None:
        """Learn that the window after ``x`` held ``y`` calls; return what :meth:`predict_one`
        answered for it before (``None`` while warming up, when nothing is scored).

        One pass for the scaler, which scores each forecast as it learns the window.
        """
        y = max(float(y), 0.0)
        clean = self._clean(x)
        answered = None
        if self._n >= self.warmup:
            model, last = self._model_forecast(x, clean), self._last(x)
            answered = last if self._model_error > self._last_error else model
            decay = self.error_decay
            self._model_error += decay * (abs(model - y) - self._model_error)
            self._last_error += decay * (abs(last - y) - self._last_error)
        self._stack.learn(clean, ((self._row, math.log1p(y)),))
        self._n += 1
        return answered

    def predict_one(self, x: dict) -> float:
        if self.answering == "last value":
            return self._last(x)
        return self._model_forecast(x)
