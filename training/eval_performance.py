"""Performance figures: latency, success and output tokens against ewma and global mean."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from river import drift

from predictor.models.delay import LabelDelay, finish_time
from predictor.models.features import CallFeaturizer
from predictor.models.performance import BatchPerformance, OnlinePerformance
from predictor.select import Selector
from predictor.training.bundles import PerformanceBundle
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import auc, mae, rounded

__all__ = ["AFTER_DRIFT_S", "PerformanceFit", "fit_performance", "score_performance"]

#: Test calls within this many seconds after a drift alarm on their server are
#: scored again on their own, to show how each variant copes with change.
AFTER_DRIFT_S = 600.0


def _online_predictions(inputs: Iterable[dict[str, float]], calls: pd.DataFrame,
                        test: np.ndarray) -> dict[str, np.ndarray]:
    """Prequential pass with label delay: predict each call, learn once it has finished.

    ``inputs`` are the online model's inputs of every call, in order
    (:meth:`CallFeaturizer.dicts`).
    """
    model = OnlinePerformance()
    names = ("latency_p50_ms", "latency_p95_ms", "success", "output_tokens")
    answers = ("latency_ms", "latency_ms_upper", "success", "output_tokens")
    out = {name: np.full(int(test.sum()), np.nan) for name in names}
    targets = zip(calls["ts"].to_numpy(float), calls["latency_ms"].to_numpy(float),
                  calls["success"].to_numpy(float), calls["output_tokens"].to_numpy(float),
                  calls["cost_usd"].to_numpy(float), strict=True)
    delay: LabelDelay = LabelDelay()
    # One ADWIN per server over its log latency: when a server's behaviour shifts.
    detectors: dict[str, drift.ADWIN] = {}
    last_alarm: dict[str, float] = {}
    since_alarm = np.full(int(test.sum()), np.inf)
    servers = calls["server"].to_numpy(object)
    j = 0
    for i, (is_test, x, (ts, lat, ok, tokens, cost)) in enumerate(
        zip(test, inputs, targets, strict=True)
    ):
        for server, x_done, lat_done, ok_done, tokens_done, cost_done, end in delay.ready(ts):
            model.learn_one(x_done, {"latency_ms": lat_done, "success": ok_done,
                                     "output_tokens": tokens_done, "cost_usd": cost_done})
            if not np.isnan(lat_done):
                detector = detectors.get(server)
                if detector is None:  # not setdefault: a detector is costly to build
                    detector = detectors[server] = drift.ADWIN(delta=0.002)
                detector.update(np.log1p(lat_done))
                if detector.drift_detected:
                    last_alarm[server] = end
        if is_test and servers[i] in last_alarm:
            since_alarm[j] = ts - last_alarm[servers[i]]
        if is_test:
            pred = model.predict_one(x)
            for name, answer in zip(names, answers, strict=True):
                out[name][j] = pred[answer]
            j += 1
        end = finish_time(ts, lat)
        delay.add(end, (servers[i], x, lat, ok, tokens, cost, end))
    out["since_alarm_s"] = since_alarm
    return out


@dataclass(frozen=True)
class PerformanceFit:
    """The fitted batch performance model."""

    featurizer: CallFeaturizer
    model: BatchPerformance

    @property
    def bundle(self) -> PerformanceBundle:
        """What training registers as ``predictor-performance``."""
        return PerformanceBundle(self.featurizer, self.model)


def _targets(calls: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: calls[name].to_numpy(float)
            for name in ("latency_ms", "success", "output_tokens", "cost_usd")}


def fit_performance(features: Features, options: Options | None = None) -> PerformanceFit:
    """Fit the batch model on the training calls."""
    calls, history, train, test = (features.calls, features.history, features.train,
                                   features.test)
    if not train.any() or not test.any():
        raise Unsupported("the log has no calls on one side of the time split")
    featurizer = CallFeaturizer().fit(calls[train], history)
    y = _targets(calls)
    rows = features.fit_mask(options)
    # Only the rows fitted on: a row's inputs read that call and its history alone.
    batch = BatchPerformance(categorical=featurizer.categorical_mask).fit(
        featurizer.transform(calls[rows], history), latency_ms=y["latency_ms"][rows],
        success=y["success"][rows], output_tokens=y["output_tokens"][rows],
        cost_usd=y["cost_usd"][rows], feature_names=featurizer.feature_names_,
    )
    return PerformanceFit(featurizer, batch)


def score_performance(features: Features, fit: PerformanceFit, options: Options | None = None
                      ) -> tuple[dict, dict]:
    """The ``performance`` section of the report, and the data of its plots."""
    calls, history, train, test = (features.calls, features.history, features.train,
                                   features.test)
    featurizer, y = fit.featurizer, _targets(calls)
    # Every call's inputs are read once, a chunk at a time, by the online pass; the test
    # calls' are kept on the way for the batch model.
    X_test = np.empty((int(test.sum()), len(featurizer.feature_names_)))
    online = _online_predictions(featurizer.stream(calls, history, keep=test, kept=X_test),
                                 calls, test)
    pred = fit.model.predict(X_test)
    hist = history.loc[calls.index[test]]
    section: dict = {}
    lat_true = y["latency_ms"][test]
    if np.isnan(lat_true).all():
        section["latency_mae_ms"] = {"reason": "no latency_ms in the test part"}
    else:
        mean = float(np.nanmean(y["latency_ms"][train])) if not np.isnan(
            y["latency_ms"][train]).all() else float("nan")
        ewma = hist["hist_latency"].fillna(mean).to_numpy()
        section["latency_mae_ms"] = {
            "batch": rounded(mae(lat_true, pred.latency_p50_ms), 2),
            "online": rounded(mae(lat_true, online["latency_p50_ms"]), 2),
            "ewma": rounded(mae(lat_true, ewma), 2),
            "global_mean": rounded(mae(lat_true, np.full(len(lat_true), mean)), 2),
        }
        after = online["since_alarm_s"] <= AFTER_DRIFT_S
        if after.sum() >= 20:
            # Right after a server's latency shifted: does learning online pay off?
            section["latency_mae_ms_after_drift"] = {
                "calls": int(after.sum()),
                "batch": rounded(mae(lat_true[after], pred.latency_p50_ms[after]), 2),
                "online": rounded(mae(lat_true[after], online["latency_p50_ms"][after]), 2),
                "ewma": rounded(mae(lat_true[after], ewma[after]), 2),
            }
        known = ~np.isnan(lat_true)
        section["latency_p95_coverage"] = {
            "batch": rounded(float(np.mean(lat_true[known] <= pred.latency_p95_ms[known]))),
            "online": rounded(float(np.mean(lat_true[known] <= online["latency_p95_ms"][known]))),
            "target": 0.95,
        }
    ok_true = y["success"][test]
    batch_auc = auc(ok_true, pred.success)
    if batch_auc is None:
        section["success_auc"] = {"reason": "the test part has no failures (or only failures)"}
    else:
        ewma_ok = hist["hist_success"].fillna(float(np.nanmean(y["success"][train]))).to_numpy()
        section["success_auc"] = {
            "batch": rounded(batch_auc),
            "online": rounded(auc(ok_true, online["success"])),
            "ewma": rounded(auc(ok_true, ewma_ok)),
        }
    tok_true = y["output_tokens"][test]
    if np.isnan(tok_true).all() or np.isnan(y["output_tokens"][train]).all():
        section["output_tokens_mae"] = {"reason": "no output_tokens in the log"}
    else:
        mean_tok = float(np.nanmean(y["output_tokens"][train]))
        section["output_tokens_mae"] = {
            "batch": rounded(mae(tok_true, pred.output_tokens), 2),
            "online": rounded(mae(tok_true, online["output_tokens"]), 2),
            "ewma": rounded(mae(tok_true, hist["hist_output_tokens"].fillna(mean_tok)), 2),
            "global_mean": rounded(mae(tok_true, np.full(len(tok_true), mean_tok)), 2),
        }
    plot_data = {"latency_true": lat_true, "latency_pred": pred.latency_p50_ms,
                 "success_true": ok_true, "success_prob": pred.success}
    section["variant"] = "online"
    section["variant_why"] = Selector.why_online
    return section, plot_data
