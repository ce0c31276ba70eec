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
from river import base, linear_model, preprocessing
from sklearn.ensemble import HistGradientBoostingRegressor

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad
from predictor.models.features import informative_columns

__all__ = ["BatchLoad", "OnlineLoad", "load_features", "window_counts"]

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


def load_features(counts: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Long frame: one row per (window, server) with features known at the window's start."""
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
        rows.append(feats)
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
        X = features[FEATURES].to_numpy(float)[:, self.columns_]
        with np.errstate(over="ignore"):
            raw = compiled.predict(self.mean_, X)
            mean = np.clip(np.nan_to_num(raw, posinf=self.ceiling_), 0.0, self.ceiling_)
        return mean, np.clip(compiled.predict(self.upper_, X), mean, max(self.ceiling_, 0.0))


class OnlineLoad(base.Regressor):
    """River forecaster of the next window's count, one window at a time.

    A linear model of the log count over log-scaled lags; until it has seen
    ``warmup`` windows it answers the last window's count (persistence).

    Parameters
    ----------
    warmup
        Windows to see before trusting the model.
    lr
        AdaGrad learning rate.

    Examples
    --------
    >>> model = OnlineLoad()
    >>> model.predict_one({"lag1": 4.0})
    4.0
    """

    def __init__(self, warmup: int = 10, lr: float = 0.1) -> None:
        self.warmup = warmup
        self.lr = lr
        self._model = preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=AdaGrad(lr), clip_gradient=1.0, intercept_lr=lr)
        self._n = 0

    @staticmethod
    def _clean(x: dict) -> dict[str, float]:
        out = {}
        for k, v in x.items():
            if k == "server":
                continue
            v = 0.0 if v is None or v != v else float(v)
            out[k] = v if k in ("trend", "hour_sin", "hour_cos") else math.log1p(max(v, 0.0))
        return out

    def learn_one(self, x: dict, y: float) -> None:
        self._model.learn_one(self._clean(x), math.log1p(max(float(y), 0.0)))
        self._n += 1

    def predict_one(self, x: dict) -> float:
        if self._n < self.warmup:
            last = x.get("lag1", 0.0)
            return 0.0 if last is None or last != last else float(last)
        return max(math.expm1(min(self._model.predict_one(self._clean(x)), 20.0)), 0.0)
