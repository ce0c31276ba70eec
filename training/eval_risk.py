"""Risk figures: failure prediction against fixed thresholds and the recent error rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictor.models.delay import LabelDelay, finish_time
from predictor.models.risk import (
    RISK_FEATURES,
    BatchRisk,
    OnlineRisk,
    RecoveryStats,
    threshold_score,
)
from predictor.training.metrics import auc, pr_auc, rounded

__all__ = ["evaluate_risk"]


def _matrix(calls: pd.DataFrame, history: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    names = [*RISK_FEATURES, "concurrency", "attempt"]
    hist = history.loc[calls.index, list(RISK_FEATURES)]
    X = np.column_stack([hist.to_numpy(float), calls["concurrency"].to_numpy(float),
                         calls["attempt"].to_numpy(float)])
    return X, names


def _recovery(calls: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict | None:
    rec = calls["recovery"].notna().to_numpy() & calls["recovered"].notna().to_numpy()
    if rec[test].sum() < 10 or rec[train].sum() < 10:
        return None
    stats = RecoveryStats()
    rows = calls[rec & train]
    for err, strat, ok in zip(rows["error_type"].fillna("unknown"), rows["recovery"],
                              rows["recovered"], strict=True):
        stats.learn_one(err, strat, bool(ok))
    tested = calls[rec & test]
    errs = tested["error_type"].fillna("unknown").to_numpy(object)
    chosen = np.array([stats.best(e) for e in errs], dtype=object)
    agree = chosen == tested["recovery"].to_numpy(object)
    logged = float(tested["recovered"].mean())
    return {
        "decisions": int(agree.sum()),
        "success_rate": {"model": rounded(float(tested["recovered"][agree].mean()))
                         if agree.any() else None,
                         "logged_policy": rounded(logged)},
        "learned_rates": stats.table(),
    }


def evaluate_risk(calls: pd.DataFrame, history: pd.DataFrame, train: np.ndarray,
                  test: np.ndarray) -> tuple[dict, dict]:
    """The ``risk`` section: ROC and PR AUC of the failure probability on test calls."""
    failed = 1.0 - calls["success"].to_numpy(float)
    if np.nansum(failed[test]) < 5 or np.nansum(failed[train]) < 5:
        return {"reason": "fewer than 5 failed calls on one side of the time split"}, {}
    X, names = _matrix(calls, history)
    model = BatchRisk().fit(X[train], failed[train])
    p_batch = model.predict_proba(X[test])
    online = OnlineRisk()
    p_online = []
    delay: LabelDelay = LabelDelay()
    ts = calls["ts"].to_numpy(float)
    lat = calls["latency_ms"].to_numpy(float)
    for i, row in enumerate(X):
        for x_done, y_done in delay.ready(ts[i]):
            online.learn_one(x_done, y_done)
        x = dict(zip(names, row, strict=True))
        if test[i]:
            p_online.append(online.predict_proba_one(x)[True])
        delay.add(finish_time(ts[i], lat[i]), (x, bool(failed[i])))
    hist = history.loc[calls.index[test]]
    # The 2000 ms rule applies to the server's recent latency (history is kept raw;
    # log-scaling happens only in the featurizer).
    rules = threshold_score(hist["hist_latency_fast"].to_numpy(float),
                            hist["probe_mem"].to_numpy(float), hist["probe_cpu"].to_numpy(float))
    recent = hist["srv_recent_error_rate"].fillna(0.0).to_numpy(float)
    y = failed[test]
    best_auc = max(v for v in (auc(y, p_batch), auc(y, p_online)) if v is not None)
    section = {
        "roc_auc": {"model": rounded(best_auc), "batch": rounded(auc(y, p_batch)),
                    "online": rounded(auc(y, p_online)), "thresholds": rounded(auc(y, rules)),
                    "recent_error_rate": rounded(auc(y, recent))},
        "pr_auc": {"model": rounded(max(pr_auc(y, p_batch) or 0, pr_auc(y, p_online) or 0)),
                   "batch": rounded(pr_auc(y, p_batch)), "online": rounded(pr_auc(y, p_online)),
                   "thresholds": rounded(pr_auc(y, rules)),
                   "recent_error_rate": rounded(pr_auc(y, recent))},
        "failure_rate": rounded(float(np.nanmean(y))),
        "online_drifts": online.drifts,
    }
    recovery = _recovery(calls, train, test)
    if recovery is not None:
        section["recovery"] = recovery
    return section, {"risk": model}

