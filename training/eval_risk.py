"""Risk figures: failure prediction against fixed thresholds and the recent error rate."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from predictor.api.risk import RiskRequest
from predictor.data.frame import frame_records
from predictor.models.delay import LabelDelay, finish_time
from predictor.models.risk import (
    RISK_FEATURES,
    BatchRisk,
    RecoveryStats,
    ServerRisk,
    threshold_score,
)
from predictor.training.bundles import RiskBundle
from predictor.training.features import Features, Options, Unsupported, newest
from predictor.training.metrics import auc, pr_auc, rounded
from predictor.training.served import frame_columns, replay, served_engine

__all__ = ["FRAME_COLUMNS", "RiskFit", "can_rank", "fit_risk", "score_risk",
           "validation_slice"]

#: The columns of the log (``features.frame``) this family reads: the records of the
#: served replay and what each test call asks (:func:`frame_columns`); ``None``: every
#: column (a plug-in that does not say what it reads).
FRAME_COLUMNS = frame_columns(("risk",), {"ts", "kind", "server", "tool", "concurrency",
                                          "attempt"})

_NAMES = [*RISK_FEATURES, "concurrency", "attempt"]


def validation_slice(ts: np.ndarray, train: np.ndarray, share: float = 0.2) -> np.ndarray:
    """The last ``share`` of the training part's time span: where variants are chosen.

    >>> validation_slice(np.arange(10.0), np.arange(10) < 6).nonzero()[0].tolist()
    [4, 5]
    """
    if not train.any():
        return train.copy()
    start, end = ts[train].min(), ts[train].max()
    return train & (ts >= end - share * (end - start))


def can_rank(model: BatchRisk, y: np.ndarray, p: np.ndarray) -> bool:
    """Whether a fitted risk model ranks at all: not the base rate, and better than chance."""
    score = auc(y, p)
    return model.model_ is not None and score is not None and score > 0.5


def _matrix(calls: pd.DataFrame, history: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The batch model's inputs (:data:`_NAMES`), one row per call.

    Each column is written into the matrix as it is read: selecting the
    history's columns, then stacking them, held the inputs three times over
    (on a million calls, about 300 MB above the matrix itself).
    """
    names = list(_NAMES)
    # The calls' own rows of the history (usually the same index: no reindexing).
    same = history.index.equals(calls.index)
    X = np.empty((len(calls), len(names)))
    for j, name in enumerate(RISK_FEATURES):
        X[:, j] = (history[name] if same else history.loc[calls.index, name]).to_numpy(float)
    X[:, -2] = calls["concurrency"].to_numpy(float)
    X[:, -1] = calls["attempt"].to_numpy(float)
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


@dataclass
class RiskFit:
    """The batch risk model, the online one after the training calls, and which answers.

    ``online`` has learned every training call that had finished before the
    first test call; ``pending`` holds the rest (label delay), so scoring
    carries on exactly where fitting stopped.
    """

    #: What only scoring reads: dropped once scored (see ``run_family``).
    WORKSPACE: ClassVar[tuple[str, ...]] = ("failed", "online", "pending")

    model: BatchRisk
    failed: np.ndarray
    variant: str
    why: str
    online: ServerRisk
    pending: LabelDelay
    first_test: int

    @property
    def bundle(self) -> RiskBundle:
        """What training registers as ``predictor-risk``."""
        return RiskBundle(self.model)



def _online_pass(online: ServerRisk, delay: LabelDelay, X: np.ndarray, failed: np.ndarray,
                 ts: np.ndarray, lat: np.ndarray, servers: np.ndarray, rows: range,
                 scored: np.ndarray) -> list[float]:
    """Learn ``rows`` prequentially (with label delay); the probabilities at ``scored`` rows.

    ``X`` holds the inputs of the calls from ``rows.start`` on (row ``i``'s
    at ``X[i - rows.start]``); the other arrays are over every call.
    """
    out = []
    keys = tuple(_NAMES)  # every call's inputs, in this order: a row of X each
    for i in rows:
        for (server_done, x_done), y_done in delay.ready(ts[i]):
            online.learn_row(server_done, keys, x_done, y_done)
        x = X[i - rows.start].copy()  # a view would hold all of X while the call waits
        server = servers[i]
        if scored[i]:
            out.append(online.predict_row(server, keys, x))
        delay.add(finish_time(ts[i], lat[i]), ((server, x), bool(failed[i])))
    return out


def fit_risk(features: Features, options: Options | None = None) -> RiskFit:
    """Fit the batch model, run the online one over the training part, choose the variant.

    The variant that answers is chosen on the validation slice of the
    training part: the batch model, fitted on the rest of it, answers when it
    can rank and beats the online model's ROC AUC there.
    """
    calls, train, test = features.calls, features.train, features.test
    failed = 1.0 - calls["success"].to_numpy(float)
    if np.nansum(failed[test]) < 5 or np.nansum(failed[train]) < 5:
        raise Unsupported("fewer than 5 failed calls on one side of the time split")
    X, _ = _matrix(calls, features.history)
    rows = features.fit_mask(options)
    model = BatchRisk().fit(X[rows], failed[rows])
    ts = calls["ts"].to_numpy(float)
    valid = validation_slice(ts, train)
    online, delay = ServerRisk(), LabelDelay()
    # The split is by time over time-ordered calls: the test calls are the last ones.
    first_test = int(np.argmax(test))
    p_online_valid = _online_pass(online, delay, X, failed, ts,
                                  calls["latency_ms"].to_numpy(float),
                                  calls["server"].to_numpy(object), range(first_test), valid)
    early = newest(train & ~valid, (options or Options()).max_fit_calls)
    variant, why = _choose_variant(X, failed, early, valid, p_online_valid)
    return RiskFit(model, failed, variant, why, online, delay, first_test)


def score_risk(features: Features, fit: RiskFit, options: Options | None = None
               ) -> tuple[dict, None]:
    """The ``risk`` section: ROC and PR AUC of the failure probability on test calls.

    ``model`` reports the variant the fit chose, and ``served`` the risk
    decision replayed with it.
    """
    calls, history, test = features.calls, features.history, features.test
    failed, model, variant, why = fit.failed, fit.model, fit.variant, fit.why
    # The test calls are the last ones: only the inputs from the first of them are read
    # (on a million calls, 25 MB where the whole matrix held beside the replay was 110).
    X, _ = _matrix(calls.iloc[fit.first_test:], history)
    p_batch = model.predict_proba(X[test[fit.first_test:]])
    # Scoring learns on: work on a copy so the fit stays what was fitted.
    online, delay = copy.deepcopy(fit.online), copy.deepcopy(fit.pending)
    p_online = _online_pass(online, delay, X, failed, calls["ts"].to_numpy(float),
                            calls["latency_ms"].to_numpy(float),
                            calls["server"].to_numpy(object), range(fit.first_test, len(calls)),
                            test)
    hist = history.loc[calls.index[test]]
    # The 2000 ms rule applies to the server's recent latency (history is kept raw;
    # log-scaling happens only in the featurizer).
    rules = threshold_score(hist["hist_latency_fast"].to_numpy(float),
                            hist["probe_mem"].to_numpy(float), hist["probe_cpu"].to_numpy(float))
    recent = hist["srv_recent_error_rate"].fillna(0.0).to_numpy(float)
    y = failed[test]
    p_served = _served(features.frame, calls, test, model if variant == "batch" else None)
    chosen = p_batch if variant == "batch" else p_online
    section = {
        "variant": variant,
        "variant_why": why,
        "roc_auc": {"model": rounded(auc(y, chosen)), "batch": rounded(auc(y, p_batch)),
                    "online": rounded(auc(y, p_online)), "served": rounded(auc(y, p_served)),
                    "thresholds": rounded(auc(y, rules)),
                    "recent_error_rate": rounded(auc(y, recent))},
        "pr_auc": {"model": rounded(pr_auc(y, chosen)),
                   "batch": rounded(pr_auc(y, p_batch)), "online": rounded(pr_auc(y, p_online)),
                   "served": rounded(pr_auc(y, p_served)),
                   "thresholds": rounded(pr_auc(y, rules)),
                   "recent_error_rate": rounded(pr_auc(y, recent))},
        "failure_rate": rounded(float(np.nanmean(y))),
        "online_drifts": online.drifts,
    }
    recovery = _recovery(calls, features.train, test)
    if recovery is not None:
        section["recovery"] = recovery
    return section, None


def _choose_variant(X: np.ndarray, failed: np.ndarray, early: np.ndarray, valid: np.ndarray,
                    p_online_valid: list[float]) -> tuple[str, str]:
    """``("batch" | "online", why)``, decided on the validation slice of the training part."""
    y_valid = failed[valid]
    if np.nansum(failed[early]) < 5 or np.nansum(y_valid) < 1:
        return "online", "too few failures to fit and check a batch model before the test part"
    candidate = BatchRisk().fit(X[early], failed[early])
    p_batch = candidate.predict_proba(X[valid])
    online_auc = auc(y_valid, p_online_valid)
    if not can_rank(candidate, y_valid, p_batch):
        return "online", "the batch model cannot rank on the validation slice"
    batch_auc = auc(y_valid, p_batch)
    if online_auc is not None and batch_auc is not None and online_auc >= batch_auc:
        return "online", (f"validation ROC AUC online {online_auc:.3f} >= batch "
                          f"{batch_auc:.3f}")
    return "batch", (f"validation ROC AUC batch {batch_auc:.3f} > online "
                     f"{online_auc if online_auc is None else round(online_auc, 3)}")


def _served(frame: pd.DataFrame, calls: pd.DataFrame, test: np.ndarray,
            batch: BatchRisk | None) -> np.ndarray:
    """The risk decision replayed: its failure probability at the start of each test call.

    It learns every call once finished and every probe, as the service does,
    and answers from ``batch`` when that variant was chosen (as the service
    does with a registered champion).
    """
    engine = served_engine(("risk",))
    assessor = engine.plugin("risk")
    if batch is not None:
        assessor.use_batch(batch, "evaluation")
        # The batch classifier's answers read the history only: the online model the
        # service also keeps learning meanwhile changes none of them, and was most
        # of this replay's time.
        assessor.online_while_batch = False
    wanted = set(calls.index[test])
    index = frame.index.to_numpy()
    out: list[float] = []
    rows: np.ndarray | None = None  # what assess gives the batch classifier, per test call
    for position, call in replay(engine, frame_records(frame)):
        if int(index[position]) in wanted:
            request = RiskRequest(server=call.server, tool=call.tool, ts=call.epoch,
                                  concurrency=call.concurrency, attempt=call.attempt)
            if batch is None:
                out.append(assessor.assess(request).failure_probability)
                continue
            row = assessor.inputs(request)
            if rows is None:
                rows = np.empty((len(wanted), len(row)))
            rows[len(out)] = row
            out.append(math.nan)
    if rows is not None:  # scored at once, rounded as assess answers
        out = [round(p, 4) for p in assessor.batch_probabilities(rows[:len(out)]).tolist()]
    return np.array(out, dtype=float)
