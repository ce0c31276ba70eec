"""Performance figures: latency, success and output tokens against ewma and global mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from river import drift

from predictor.models.delay import finish_times, release_schedule
from predictor.models.features import CallFeaturizer
from predictor.models.performance import TARGET_BASES, BatchPerformance, OnlinePerformance
from predictor.select import Selector
from predictor.training.bundles import PerformanceBundle
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import auc, mae, rounded

__all__ = ["AFTER_DRIFT_S", "PerformanceFit", "fit_performance", "score_performance"]

#: Test calls within this many seconds after a drift alarm on their server are
#: scored again on their own, to show how each variant copes with change.
AFTER_DRIFT_S = 600.0


def _online_predictions(featurizer: CallFeaturizer, calls: pd.DataFrame,
                        history: pd.DataFrame, test: np.ndarray,
                        X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Prequential pass with label delay: predict each test call, learn every call once it
    has finished (:meth:`OnlinePerformance.learn_predict`). The test calls' rows of the
    batch model's inputs are written to ``X_test`` on the way (every call's inputs are
    computed once, a chunk at a time)."""
    y = _targets(calls)
    ts = calls["ts"].to_numpy(float)
    bases = {target: featurizer.history_input(calls, history, feature)
             for target, feature in TARGET_BASES.items()
             if feature is not None and feature in featurizer.history_columns_}
    tools = featurizer.codes(calls, "tool")
    tool_names = sorted(featurizer.vocab_["tool"], key=featurizer.vocab_["tool"].get)

    answers = OnlinePerformance().learn_predict(
        featurizer.stream(calls, history, keep=test, kept=X_test), featurizer.input_names(),
        y, bases, np.where(np.isnan(tools), -1, tools).astype(np.int64), tool_names, ts, test)
    out = {name: answers[answer] for name, answer in (
        ("latency_p50_ms", "latency_ms"), ("latency_p95_ms", "latency_ms_upper"),
        ("success", "success"), ("output_tokens", "output_tokens"))}
    out["since_alarm_s"] = _since_alarm(calls, test)
    return out


def _since_alarm(calls: pd.DataFrame, test: np.ndarray) -> np.ndarray:
    """Seconds since the last drift alarm on its server at each test call (inf: none).

    One ADWIN per server over the log latencies the online pass learns, in the order it
    learns them (calls as they finish): when a server's behaviour shifts.
    """
    ts, latency = calls["ts"].to_numpy(float), calls["latency_ms"].to_numpy(float)
    ends = finish_times(ts, latency)
    release, order = release_schedule(ts, ends)
    servers = calls["server"].to_numpy(object)
    detectors: dict[str, drift.ADWIN] = {}
    last_alarm: dict[str, float] = {}
    since_alarm = np.full(int(test.sum()), np.inf)
    learned, released = order.tolist(), release[order].tolist()
    latencies, finished = latency.tolist(), ends.tolist()
    p = 0
    for k, j in enumerate(np.flatnonzero(test).tolist()):
        while p < len(learned) and released[p] <= j:
            i = learned[p]
            p += 1
            if latencies[i] == latencies[i]:  # not NaN
                detector = detectors.get(servers[i])
                if detector is None:  # not setdefault: a detector is costly to build
                    detector = detectors[servers[i]] = drift.ADWIN(delta=0.002)
                detector.update(np.log1p(latencies[i]))
                if detector.drift_detected:
                    last_alarm[servers[i]] = finished[i]
        alarm = last_alarm.get(servers[j])
        if alarm is not None:
            since_alarm[k] = ts[j] - alarm
    return since_alarm


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
    online = _online_predictions(featurizer, calls, history, test, X_test)
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
