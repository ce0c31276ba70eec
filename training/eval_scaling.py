"""Scaling figures: the predictive scaler against the Kubernetes HPA rule, at matched cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.load import FEATURES, BatchLoad, OnlineLoad, load_features, window_counts
from predictor.scale import Scaler, ScaleRequest
from training.metrics import mae, rounded

__all__ = ["evaluate_scaling", "predictive_replicas", "reactive_replicas"]

TARGET_UTILIZATION = 0.7
MAX_STEP_UP = 1.5
DOWN_STABILIZATION = 5  # windows, as HPA's scale-down stabilization
MAX_WINDOWS = 20_000
MAX_SERVERS = 50
WINDOW_LADDER = (300.0, 900.0, 3600.0, 21_600.0, 86_400.0)


def reactive_replicas(loads: np.ndarray, capacity: float) -> np.ndarray:
    """HPA: next window's replicas from this window's load, ``ceil(load / (cap * 0.7))``.

    >>> reactive_replicas(np.array([0.0, 7.0, 14.0]), 10.0).tolist()
    [1.0, 1.0, 1.0, 2.0]
    """
    desired = np.ceil(loads / (capacity * TARGET_UTILIZATION))
    return np.concatenate([[1.0], np.maximum(desired, 1.0)])


def predictive_replicas(forecast: np.ndarray, capacity: float, headroom: float = 1.0,
                        budget: np.ndarray | None = None) -> np.ndarray:
    """Replicas per window from forecasts, stepping up at most x1.5, down after stabilization.

    With ``budget`` (the replicas a baseline uses in each window, known at that
    window's start), the headroom is steered so that the mean replicas so far
    track the baseline's: comparison at matched cost, decided causally.

    >>> predictive_replicas(np.array([5.0, 50.0, 50.0]), 10.0).tolist()
    [1.0, 2.0, 3.0]
    >>> predictive_replicas(np.array([5.0, 50.0, 50.0, 50.0]), 1.0).tolist()
    [8.0, 12.0, 18.0, 27.0]
    """
    need = forecast / (capacity * TARGET_UTILIZATION)
    out = np.empty_like(need, dtype=float)
    current = max(np.ceil(headroom * need[0]), 1.0) if len(need) else 1.0
    recent: list[float] = []
    used = allowed = 0.0
    for i in range(len(need)):
        scale = headroom
        if budget is not None and used > 0:
            # More replicas than the baseline so far: less headroom, and the reverse.
            scale = headroom * min(4.0, max(0.25, (allowed / used) ** 2))
        want = max(np.ceil(scale * need[i]), 1.0)
        recent.append(want)
        recent = recent[-DOWN_STABILIZATION:]
        if want > current:
            current = min(want, max(current + 1, math.floor(current * MAX_STEP_UP)))
        else:
            current = max(max(recent), 1.0) if max(recent) < current else current
        out[i] = current
        used += current
        if budget is not None:
            allowed += budget[i]
    return out


def _score(loads: np.ndarray, replicas: np.ndarray, capacity: float) -> tuple[float, float]:
    under = float(np.mean(loads > replicas * capacity)) * 100
    return under, float(np.mean(replicas))


def evaluate_scaling(calls: pd.DataFrame, cut: float, window_s: float = 60.0,
                     capacity: float | None = None) -> tuple[dict, dict]:
    """The ``scaling`` section: per-server windows, aggregated over servers.

    A log whose span holds more than :data:`MAX_WINDOWS` windows (years of
    sparse events) is counted in the smallest coarser window of
    :data:`WINDOW_LADDER` that fits, and the report says which. Only the
    :data:`MAX_SERVERS` busiest servers are scaled.
    """
    ts, servers = calls["ts"].to_numpy(float), calls["server"].to_numpy(object)
    requested = window_s
    span = float(ts.max() - ts.min()) if len(ts) else 0.0
    for candidate in (window_s, *(w for w in WINDOW_LADDER if w > window_s)):
        window_s = candidate
        if span / window_s <= MAX_WINDOWS:
            break
    busiest = pd.Series(servers).value_counts().index[:MAX_SERVERS]
    keep = np.isin(servers, busiest)
    counts = window_counts(ts[keep], servers[keep], window_s, start=float(ts.min()))
    train_windows = counts.index < cut
    if train_windows.sum() < 12 or (~train_windows).sum() < 3:
        return {"reason": f"fewer than 12 training or 3 test windows of {window_s:g} s"}, {}
    feats = load_features(counts, window_s)
    in_train = feats.index < cut
    # Calibrate the headroom on the last quarter of the training windows, with a
    # forecaster that has not seen them: matched cost, decided without the test part.
    train_idx = counts.index[train_windows]
    cal_cut = train_idx[int(0.75 * len(train_idx))]
    fit_rows, cal_rows = feats.index < cal_cut, in_train & (feats.index >= cal_cut)
    caps = {}
    for server in counts.columns:
        mean = counts.loc[train_windows, server].mean()
        # A replica serves at least one call per window: sparse logs would otherwise
        # ask for millions of replicas.
        caps[server] = capacity or max(mean / 4.0, 1.0)
    calibrator = BatchLoad().fit(feats[fit_rows])
    headroom = _calibrate(calibrator, feats[cal_rows], caps)
    model = BatchLoad().fit(feats[in_train])
    test_feats = feats[~in_train]
    mean_fc, upper_fc = model.predict(test_feats)
    online_fc = _online_forecasts(feats, ~in_train)
    loads_all, pred_all, react_all = [], [], []
    for server in counts.columns:
        rows = (test_feats["series"] == server).to_numpy()
        loads = test_feats["y"].to_numpy(float)[rows]
        react = reactive_replicas(loads, caps[server])[:-1]
        prev = counts.loc[counts.index < test_feats.index[rows][0], server]
        if len(prev):
            react[0] = max(1.0, math.ceil(prev.iloc[-1] / (caps[server] * TARGET_UTILIZATION)))
        # The HPA rule's replicas for a window follow from the load before it: a known budget.
        pred = predictive_replicas(upper_fc[rows], caps[server], headroom, budget=react)
        loads_all.append(loads / caps[server])
        pred_all.append(pred)
        react_all.append(react)
    loads_n = np.concatenate(loads_all)
    pred_r, react_r = np.concatenate(pred_all), np.concatenate(react_all)
    under_p, mean_p = _score(loads_n, pred_r, 1.0)
    under_r, mean_r = _score(loads_n, react_r, 1.0)
    dec_r = np.concatenate([_decision_replicas(counts[server], ~train_windows, caps[server],
                                               window_s) for server in counts.columns])
    under_d, mean_d = _score(loads_n, dec_r, 1.0)
    y = test_feats["y"].to_numpy(float)
    section = {
        "window_s": window_s,
        **({"window_note": f"--window {requested:g} s gives more than {MAX_WINDOWS} windows "
                           f"over this log's span; counted in {window_s:g} s windows"}
           if window_s != requested else {}),
        "underprovisioned_pct": {"predictive": rounded(under_p, 2),
                                 "reactive": rounded(under_r, 2),
                                 "decision": rounded(under_d, 2)},
        "mean_replicas": {"predictive": rounded(mean_p, 3), "reactive": rounded(mean_r, 3),
                          "decision": rounded(mean_d, 3)},
        "forecast_mae": {"batch": rounded(mae(y, mean_fc), 3),
                         "online": rounded(mae(y, online_fc), 3),
                         "last_value": rounded(mae(y, test_feats["lag1"].to_numpy(float)), 3)},
        "upper_quantile_coverage": rounded(float(np.mean(y <= upper_fc))),
        "headroom": rounded(headroom, 3),
        "capacity_per_replica": {k: rounded(v, 3) for k, v in caps.items()} if len(caps) <= 20
        else "per server: training mean load per window / 4",
    }
    totals = pd.DataFrame({"y": y, "mean": mean_fc, "upper": upper_fc},
                          index=test_feats.index).groupby(level=0).sum()
    return section, {"load": model, "headroom": headroom, "plot": totals, "window_s": window_s}


def _decision_replicas(series: pd.Series, test: np.ndarray, capacity: float,
                       window_s: float) -> np.ndarray:
    """Replicas of the ``scale`` decision (:class:`predictor.scale.Scaler`) in the test windows.

    The decision learns every window as it closes and is asked, before each
    test window, how many replicas to run, starting from the replicas it
    asked for last; it has no budget to track, so its mean replicas are its own.
    """
    scaler = Scaler(window_s=window_s)
    server = str(series.name)
    current, out = 1, []
    for count, in_test in zip(series.to_numpy(float), test, strict=True):
        if in_test:
            current = scaler.scale(ScaleRequest(
                server=server, current_replicas=current, capacity_per_replica=capacity,
                target_utilization=TARGET_UTILIZATION, max_replicas=1_000_000)).replicas
            out.append(float(current))
        scaler.observe_window(server, count)
    return np.array(out)


def _replicas_for(model: BatchLoad, feats: pd.DataFrame, caps: dict, headroom: float
                  ) -> tuple[float, float]:
    _, upper = model.predict(feats)
    under, reps, react_reps = [], [], []
    for server, cap in caps.items():
        rows = (feats["series"] == server).to_numpy()
        if not rows.any():
            continue
        loads = feats["y"].to_numpy(float)[rows]
        pred = predictive_replicas(upper[rows], cap, headroom)
        react = reactive_replicas(feats["lag1"].fillna(0).to_numpy(float)[rows], cap)[1:]
        under.append(loads > pred * cap)
        reps.append(pred)
        react_reps.append(react)
    return float(np.concatenate(reps).mean()), float(np.concatenate(react_reps).mean())


def _calibrate(model: BatchLoad, feats: pd.DataFrame, caps: dict) -> float:
    """The largest headroom (0.2-2) whose mean replicas stay within the reactive rule's."""
    if feats.empty:
        return 1.0
    best = 0.2
    for headroom in np.round(np.arange(0.2, 2.01, 0.05), 2):
        mean_pred, mean_react = _replicas_for(model, feats, caps, float(headroom))
        if mean_pred <= mean_react:
            best = float(headroom)
    return best


def _online_forecasts(feats: pd.DataFrame, test_rows: np.ndarray) -> np.ndarray:
    """Prequential per-window forecasts, in window order across servers."""
    order = np.argsort(feats.index.to_numpy(), kind="stable")
    model = OnlineLoad()
    out = np.full(len(feats), np.nan)
    X = feats[FEATURES].to_dict("records")
    y = feats["y"].to_numpy(float)
    for i in order:
        if test_rows[i]:
            out[i] = model.predict_one(X[i])
        model.learn_one(X[i], y[i])
    return out[test_rows]
