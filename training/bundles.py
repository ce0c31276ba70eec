"""What a trained family ships: its fitted models plus how to predict and score with them.

A bundle takes a telemetry frame (:func:`predictor.data.frame.records_to_frame`), so
it can rebuild the leak-free history features it was trained with. Every
bundle has

* ``predict(frame)``: one output row per call of the frame, and
* ``loss(frame, test, history=None)``: its primary error on the calls (or windows, or
  accesses) of ``frame`` selected by the boolean mask ``test``, lower is
  better. Promotion compares two bundles' losses on the same holdout.
  ``history``, when given, is the frame's history features already computed
  (:func:`predictor.models.history.call_features`), so a job computes them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictor.models.cache import AccessModel
from predictor.models.caching import PredictiveCache
from predictor.models.features import CallFeaturizer
from predictor.models.history import call_features
from predictor.models.load import BatchLoad, load_features, window_counts
from predictor.models.performance import BatchPerformance
from predictor.models.resources import BatchResources
from predictor.models.risk import RISK_FEATURES, BatchRisk
from predictor.training.families import BUNDLES
from predictor.training.metrics import auc, mae

__all__ = ["BUNDLES", "CacheBundle", "LoadBundle", "PerformanceBundle", "ResourcesBundle",
           "RiskBundle"]


def _calls(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "call"]


def _history(frame: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """The calls' history features: the ones given (computed once per job), or computed."""
    return call_features(frame) if history is None else history


def _call_mask(frame: pd.DataFrame, test: np.ndarray) -> np.ndarray:
    """``test`` (over every record of ``frame``) restricted to its calls."""
    return test[(frame["kind"] == "call").to_numpy()]


def _holdout(frame: pd.DataFrame, test: np.ndarray, history: pd.DataFrame | None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records of ``frame`` selected by ``test``, and the history features they read.

    A per-call model's predictions depend only on each call's own row and its
    history features, so a loss needs predictions for the holdout's calls only:
    predicting every call of the log, then keeping a fifth, cost most of the
    register step on large logs. History comes from the whole log (the past
    of the holdout), computed here when not given.
    """
    return frame[test], _history(frame, history)


@dataclass
class PerformanceBundle:
    featurizer: CallFeaturizer
    model: BatchPerformance
    family: str = "performance"
    metric: str = "latency_mae_ms"

    def _inputs(self, frame: pd.DataFrame, history: pd.DataFrame | None
                ) -> tuple[pd.DataFrame, np.ndarray]:
        """The calls of ``frame`` and the model's matrix of them."""
        calls = _calls(frame)
        return calls, self.featurizer.transform(calls, _history(frame, history))

    def predict(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        calls, X = self._inputs(frame, history)
        pred = self.model.predict(X)
        return pd.DataFrame({"latency_p50_ms": pred.latency_p50_ms,
                             "latency_p95_ms": pred.latency_p95_ms,
                             "success": pred.success, "output_tokens": pred.output_tokens,
                             "cost_usd": pred.cost_usd}, index=calls.index)

    def loss(self, frame: pd.DataFrame, test: np.ndarray,
             history: pd.DataFrame | None = None) -> float | None:
        calls, X = self._inputs(*_holdout(frame, test, history))
        # Only the prediction the loss reads (what predict() gives it, not its four others).
        truth = calls["latency_ms"].to_numpy(float)
        if not np.isnan(truth).all():
            return mae(truth, self.model.median_latency(X))
        return mae(calls["output_tokens"].to_numpy(float), self.model.output_tokens(X))


@dataclass
class ResourcesBundle:
    featurizer: CallFeaturizer
    model: BatchResources
    family: str = "resources"
    metric: str = "duration_mae_ms"

    def _inputs(self, frame: pd.DataFrame, history: pd.DataFrame | None
                ) -> tuple[pd.DataFrame, np.ndarray]:
        """The calls of ``frame`` and the model's matrix of them."""
        calls = _calls(frame)
        history = _history(frame, history)[self.featurizer.history_columns_]
        return calls, self.featurizer.transform(calls, history)

    def predict(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        calls, X = self._inputs(frame, history)
        out = pd.DataFrame(self.model.predict(X), index=calls.index)
        band = self.model.interval(X)
        if band is not None:
            out["duration_low_ms"], out["duration_high_ms"] = band
        return out

    def loss(self, frame: pd.DataFrame, test: np.ndarray,
             history: pd.DataFrame | None = None) -> float | None:
        calls, X = self._inputs(*_holdout(frame, test, history))
        # The point duration alone: predict() also gives the other targets and the interval.
        duration = self.model.duration(X)
        if duration is None:
            return None
        return mae(calls["latency_ms"].to_numpy(float), duration)


@dataclass
class RiskBundle:
    model: BatchRisk
    family: str = "risk"
    metric: str = "1 - roc_auc"

    def predict(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        calls = _calls(frame)
        history = _history(frame, history)
        X = np.column_stack([history.loc[calls.index, list(RISK_FEATURES)].to_numpy(float),
                             calls["concurrency"].to_numpy(float),
                             calls["attempt"].to_numpy(float)])
        return pd.DataFrame({"failure_probability": self.model.predict_proba(X)},
                            index=calls.index)

    def loss(self, frame: pd.DataFrame, test: np.ndarray,
             history: pd.DataFrame | None = None) -> float | None:
        frame, history = _holdout(frame, test, history)
        calls, pred = _calls(frame), self.predict(frame, history)
        score = auc(1 - calls["success"].to_numpy(float),
                    pred["failure_probability"].to_numpy())
        return None if score is None else 1.0 - score

    def why_not_champion(self, loss: float | None) -> str | None:
        """Why this model must not answer (it cannot rank), or ``None``."""
        if self.model.model_ is None:
            return (f"too few failures to fit: it answers the base rate "
                    f"{self.model.base_rate_:.4f} for every call")
        if loss is None or loss >= 0.5:
            return "it ranks failures no better than chance on the holdout"
        return None


@dataclass
class LoadBundle:
    model: BatchLoad
    window_s: float
    family: str = "load"
    metric: str = "forecast_mae"

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        calls = _calls(frame)
        counts = window_counts(calls["ts"].to_numpy(float), calls["server"].to_numpy(object),
                               self.window_s)
        return load_features(counts, self.window_s)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Forecasts for every (window, server) of the frame's span, known at window start."""
        feats = self._features(frame)
        mean, upper = self.model.predict(feats)
        return pd.DataFrame({"window_start": feats.index, "server": feats["series"].to_numpy(),
                             "load": feats["y"].to_numpy(), "forecast": mean,
                             "forecast_upper": upper})

    def loss(self, frame: pd.DataFrame, test: np.ndarray,
             history: pd.DataFrame | None = None) -> float | None:
        cut = float(frame["ts"].to_numpy(float)[test].min()) if test.any() else np.inf
        pred = self.predict(frame)
        rows = pred["window_start"].to_numpy(float) >= cut
        return mae(pred["load"].to_numpy(float)[rows], pred["forecast"].to_numpy()[rows])


@dataclass
class CacheBundle:
    access_model: AccessModel
    settings: dict[str, Any]
    family: str = "cache"
    metric: str = "1 - hit_ratio"

    def predict(self, frame: pd.DataFrame, k: int = 2) -> pd.DataFrame:
        """After each access, the ``k`` keys most likely next, with probabilities."""
        model = self.access_model.copy()
        calls = _calls(frame)
        rows = []
        for ts, key in zip(calls["ts"], calls["cache_key"], strict=True):
            if not isinstance(key, str):
                rows.append({"next_keys": "[]"})
                continue
            model.learn_one(key, ts)
            rows.append({"next_keys": str(model.predict_next(key, k))})
        return pd.DataFrame(rows, index=calls.index)

    def loss(self, frame: pd.DataFrame, test: np.ndarray,
             history: pd.DataFrame | None = None) -> float | None:
        calls = _calls(frame)
        mask = _call_mask(frame, test) & calls["cache_key"].notna().to_numpy()
        keys = list(calls["cache_key"].to_numpy(object)[mask])
        if len(keys) < 10:
            return None
        size = max(1, round(0.05 * len(set(keys))))
        cache = PredictiveCache(size, self.access_model.copy(), **self.settings)
        for key, ts in zip(keys, calls["ts"].to_numpy(float)[mask], strict=True):
            cache.access(key, ts)
        return 1.0 - cache.hit_ratio
