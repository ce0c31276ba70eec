"""Scaling figures: the predictive scaler against the Kubernetes HPA rule, at matched cost."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from predictor.models.load import BatchLoad, active_windows, load_features, window_counts
from predictor.scale import Scaler, ScaleRequest, recommendations, step_replicas
from predictor.training.bundles import LoadBundle
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import mae, rounded

__all__ = ["ScalingFit", "fit_scaling", "predictive_replicas", "reactive_replicas",
           "score_scaling"]

TARGET_UTILIZATION = 0.7
MAX_STEP_UP = 1.5
HPA_STABILIZATION_S = 300.0  # HPA's default scale-down stabilization window
#: Most windows x servers counted (8 bytes each); past it, coarser windows (the report says).
MAX_CELLS = 20_000_000
MAX_SERVERS = 50
WINDOW_LADDER = (300.0, 900.0, 3600.0, 21_600.0, 86_400.0)
DECISION_QUANTILES = tuple(round(q, 2) for q in np.arange(0.05, 0.96, 0.05))
DECISION_WARMUP = 24  # windows replayed before the first scored one


def reactive_replicas(loads: np.ndarray, capacity: float, stabilization: int = 1) -> np.ndarray:
    """The Kubernetes HPA rule, one window late; one more value than ``loads``.

    Each window's load recommends ``ceil(load / (capacity * 0.7))`` replicas;
    the next window runs the highest recommendation of the last
    ``stabilization`` windows (HPA scales up at once and down only after its
    stabilization window, 300 s by default). The first window runs one.

    >>> reactive_replicas(np.array([0.0, 7.0, 14.0]), 10.0).tolist()
    [1.0, 1.0, 1.0, 2.0]
    >>> reactive_replicas(np.array([30.0, 7.0, 7.0, 7.0]), 10.0, stabilization=2).tolist()
    [1.0, 5.0, 5.0, 1.0, 1.0]
    """
    desired = np.maximum(np.ceil(loads / (capacity * TARGET_UTILIZATION)), 1.0)
    if stabilization > 1 and len(desired):
        desired = pd.Series(desired).rolling(stabilization, min_periods=1).max().to_numpy()
    return np.concatenate([[1.0], desired])


def stabilization_windows(window_s: float) -> int:
    """HPA's default scale-down stabilization (300 s) in windows of ``window_s``.

    >>> stabilization_windows(60.0), stabilization_windows(3600.0)
    (5, 1)
    """
    return max(1, round(HPA_STABILIZATION_S / window_s))


def predictive_replicas(forecast: np.ndarray, capacity: float, headroom: float = 1.0,
                        budget: np.ndarray | None = None, stabilization: int = 5
                        ) -> np.ndarray:
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
    if budget is not None and len(budget):
        current = float(budget[0])  # both start from the replicas deployed now
    recent: list[float] = []
    used = allowed = 0.0
    for i in range(len(need)):
        scale = headroom
        if budget is not None and used > 0:
            # More replicas than the baseline so far: less headroom, and the reverse.
            scale = headroom * min(4.0, max(0.25, (allowed / used) ** 2))
        want = max(np.ceil(scale * need[i]), 1.0)
        recent.append(want)
        recent = recent[-stabilization:]
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


@dataclass(frozen=True)
class ScalingFit:
    """Per-server load windows, the load forecaster fitted on the training windows, and the
    headroom and per-replica capacities calibrated there."""

    #: What only scoring reads: dropped once scored (see ``run_family``); the windows'
    #: features were most of what the job's main process received of this family.
    WORKSPACE: ClassVar[tuple[str, ...]] = ("counts", "active", "feats", "train_windows")

    model: BatchLoad
    window_s: float
    requested_window_s: float
    counts: pd.DataFrame
    active: pd.DataFrame
    feats: pd.DataFrame
    caps: dict
    headroom: float
    stabilization: int
    train_windows: np.ndarray
    calibration_cut: float

    @property
    def bundle(self) -> LoadBundle:
        """What training registers as ``predictor-load``."""
        return LoadBundle(self.model, self.window_s)


def fit_scaling(features: Features, options: Options | None = None) -> ScalingFit:
    """Count per-server windows and fit the forecaster and its headroom on the training part.

    Each server is forecast and scaled in its active windows
    (:func:`predictor.models.load.active_windows`): those with a call and the
    47 after; a sparse log spanning months is replayed in proportion to its
    calls. Only a log whose span holds more than :data:`MAX_CELLS` windows x
    servers is counted in the smallest coarser window of
    :data:`WINDOW_LADDER` that fits, and the report says which. Only the
    :data:`MAX_SERVERS` busiest servers are scaled.
    """
    options = options or Options()
    calls, cut, capacity = features.calls, features.split.cut, options.capacity
    ts, servers = calls["ts"].to_numpy(float), calls["server"].to_numpy(object)
    requested = window_s = options.window_s
    span = float(ts.max() - ts.min()) if len(ts) else 0.0
    busiest = pd.Series(servers).value_counts().index[:MAX_SERVERS]
    for candidate in (window_s, *(w for w in WINDOW_LADDER if w > window_s)):
        window_s = candidate
        if (span / window_s + 1) * len(busiest) <= MAX_CELLS:
            break
    keep = np.isin(servers, busiest)
    counts = window_counts(ts[keep], servers[keep], window_s, start=float(ts.min()))
    active = active_windows(counts)
    train_windows = counts.index < cut
    busy = active.any(axis=1).to_numpy()
    if (busy & train_windows).sum() < 12 or (busy & ~train_windows).sum() < 3:
        raise Unsupported(f"fewer than 12 training or 3 test active windows of {window_s:g} s")
    feats = load_features(counts, window_s, active)
    in_train = feats.index < cut
    # Calibrate the headroom on the last quarter of the active training windows, with a
    # forecaster that has not seen them: matched cost, decided without the test part.
    train_idx = counts.index[train_windows & busy]
    cal_cut = train_idx[int(0.75 * len(train_idx))]
    fit_rows, cal_rows = feats.index < cal_cut, in_train & (feats.index >= cal_cut)
    caps = {}
    for server in counts.columns:
        mean = counts.loc[train_windows, server].mean()
        # A replica serves at least one call per window: sparse logs would otherwise
        # ask for millions of replicas.
        caps[server] = capacity or max(mean / 4.0, 1.0)
    calibrator = BatchLoad().fit(feats[fit_rows])
    stabilization = stabilization_windows(window_s)
    headroom = _calibrate(calibrator, feats[cal_rows], caps, stabilization)
    model = BatchLoad().fit(feats[in_train])
    # Series where the last value beat the forecaster on windows it had not learned.
    model.last_value_series_ = calibrator.last_value_series(feats[cal_rows])
    return ScalingFit(model, window_s, requested, counts, active, feats, caps, headroom,
                      stabilization, train_windows, float(cal_cut))


def score_scaling(features: Features, fit: ScalingFit, options: Options | None = None
                  ) -> tuple[dict, pd.DataFrame]:
    """The ``scaling`` section (per-server windows, aggregated over servers) and its plot data."""
    model, window_s, requested, counts, active, feats, caps, headroom, stabilization = (
        fit.model, fit.window_s, fit.requested_window_s, fit.counts, fit.active, fit.feats,
        fit.caps, fit.headroom, fit.stabilization)
    train_windows, cal_cut = fit.train_windows, fit.calibration_cut
    in_train = feats.index < features.split.cut
    test_feats = feats[~in_train]
    mean_fc, upper_fc = model.predict(test_feats)
    # The HPA rule's replicas for a window follow from the loads before it: a known budget.
    hpa = {server: reactive_replicas(counts[server].to_numpy(float), caps[server],
                                     stabilization)[:-1] for server in counts.columns}
    loads_all, pred_all, react_all = [], [], []
    for server in counts.columns:
        rows = (test_feats["series"] == server).to_numpy()
        loads = test_feats["y"].to_numpy(float)[rows]
        react = hpa[server][active[server].to_numpy() & ~train_windows]
        pred = predictive_replicas(upper_fc[rows], caps[server], headroom, budget=react,
                                   stabilization=stabilization)
        loads_all.append(loads / caps[server])
        pred_all.append(pred)
        react_all.append(react)
    loads_n = np.concatenate(loads_all)
    pred_r, react_r = np.concatenate(pred_all), np.concatenate(react_all)
    under_p, mean_p = _score(loads_n, pred_r, 1.0)
    under_r, mean_r = _score(loads_n, react_r, 1.0)
    decision = _evaluate_decision(counts, active, caps, hpa, window_s, stabilization,
                                  train_windows, counts.index >= cal_cut)
    # The online forecasts are the served scale decision's: one forecaster per server.
    online_fc = decision["expected"]
    y = test_feats["y"].to_numpy(float)
    section = {
        "window_s": window_s,
        **({"window_note": f"--window {requested:g} s gives more than {MAX_CELLS:,} windows "
                           f"x servers over this log's span; counted in {window_s:g} s windows"}
           if window_s != requested else {}),
        "scored_windows": len(test_feats),
        "underprovisioned_pct": {"predictive": rounded(under_p, 2),
                                 "reactive": rounded(under_r, 2),
                                 **decision["underprovisioned_pct"]},
        "mean_replicas": {"predictive": rounded(mean_p, 3), "reactive": rounded(mean_r, 3),
                          **decision["mean_replicas"]},
        "decision_quantile": decision["quantile"],
        "variant": "online",
        "variant_why": f"{Scaler.why_online}; 'served' is the decision at its default quantile",
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
    return section, totals


def _evaluate_decision(counts: pd.DataFrame, active: pd.DataFrame, caps: dict, hpa: dict,
                       window_s: float, stabilization: int, train_windows: np.ndarray,
                       calibration: np.ndarray) -> dict:
    """The ``scale`` decision replayed: at its default quantile, and at matched cost.

    The matched-cost quantile is the highest of :data:`DECISION_QUANTILES`
    whose mean replicas over the calibration windows (the last quarter of the
    training part) stay within the HPA rule's there: chosen before the test
    windows, as a user tuning ``quantile`` on past load would.
    """
    default = float(ScaleRequest.model_fields["quantile"].default)
    quantiles = tuple(sorted({*DECISION_QUANTILES, default}))
    calibration = calibration & train_windows
    # Replicas are asked for from DECISION_WARMUP windows before the first scored one on,
    # enough for the step and stabilization rules to reach their level.
    scored = calibration | ~train_windows
    start = max(0, int(np.argmax(scored)) - DECISION_WARMUP) if scored.any() else 0
    # Every array below holds each server's active windows only, servers one after another.
    replayed, loads, expected, reacts, tests, cals = [], [], [], [], [], []
    for server in counts.columns:
        series = counts[server]
        windows = np.flatnonzero(active[server].to_numpy())
        replicas, forecasts = _decision_replicas(series, windows, caps[server], window_s,
                                                 stabilization, quantiles, start)
        replayed.append(replicas)
        expected.append(forecasts)
        loads.append(series.to_numpy(float)[windows] / caps[server])
        reacts.append(hpa[server][windows])
        tests.append(~train_windows[windows])
        cals.append(calibration[windows])
    replicas, load = (np.concatenate(parts, axis=-1) for parts in (replayed, loads))
    react, test, cal = (np.concatenate(parts) for parts in (reacts, tests, cals))
    # Without calibration windows, or when even the lowest quantile costs more than
    # the HPA rule there, the cheapest quantile stands in.
    cost = replicas[:, cal].mean(axis=1) if cal.any() else np.arange(len(quantiles), 0, -1)
    within = np.flatnonzero(cost <= react[cal].mean()) if cal.any() else []
    matched = int(within[-1]) if len(within) else int(np.argmin(cost))
    figures = {name: _score(load[test], replicas[k, test], 1.0)
               for name, k in (("decision", quantiles.index(default)),
                               ("decision_matched_cost", matched))}
    # 'served' is the decision as a request with the defaults gets it.
    figures["served"] = figures["decision"]
    chosen = {"decision": default, "decision_matched_cost": quantiles[matched]}
    at_cost = _at_cost(load[test], replicas[:, test], float(react[test].mean()), quantiles)
    if at_cost is not None:
        figures["decision_at_hpa_cost"], chosen["decision_at_hpa_cost"] = at_cost
    return {"expected": np.concatenate(expected)[test],
            "underprovisioned_pct": {name: rounded(under, 2)
                                     for name, (under, _) in figures.items()},
            "mean_replicas": {name: rounded(mean, 3) for name, (_, mean) in figures.items()},
            "quantile": {name: rounded(q, 3) for name, q in chosen.items()}}


def _at_cost(load: np.ndarray, replicas: np.ndarray, cost: float,
             quantiles: tuple[float, ...]) -> tuple[tuple[float, float], float] | None:
    """The decision's under-provisioned share at exactly ``cost`` mean replicas.

    Interpolated linearly between the two asked quantiles whose mean
    replicas over the same windows bracket ``cost`` (``None`` when none
    do): the comparison at equal spending, made after the fact, beside the
    quantile chosen beforehand on training windows (which may spend less or
    more on the test windows than the baseline did). Returns ``((under %,
    cost), quantile)``.

    >>> load = np.array([1.0, 2.0, 3.0, 4.0])
    >>> replicas = np.array([[1, 1, 1, 1], [2, 2, 4, 4]])
    >>> _at_cost(load, replicas, 2.0, (0.5, 0.9))
    ((37.5, 2.0), 0.7)
    """
    costs = replicas.mean(axis=1)
    unders = (load[None, :] > replicas).mean(axis=1) * 100
    for k in range(len(costs) - 1):
        low, high = costs[k], costs[k + 1]
        if low <= cost <= high and high > low:
            share = (cost - low) / (high - low)
            under = unders[k] + share * (unders[k + 1] - unders[k])
            quantile = quantiles[k] + share * (quantiles[k + 1] - quantiles[k])
            return (float(under), cost), round(float(quantile), 3)
    return None


def _decision_replicas(series: pd.Series, windows: np.ndarray, capacity: float,
                       window_s: float, stabilization: int, quantiles: tuple[float, ...],
                       start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Replicas of the ``scale`` decision in each of ``windows`` (positions in ``series``),
    one row per quantile asked for, and the expected load it forecast for each.

    One :class:`predictor.scale.Scaler` learns every window as it closes; before
    each window it forecasts the load's ``quantiles``, and each quantile's
    replicas follow the decision's rule (:func:`predictor.scale.step_replicas`)
    from the replicas it asked for last, as separate callers of ``/v1/scale``
    with different ``quantile`` would. Nothing here knows a budget. Windows
    before ``start`` are only learned (their replicas are NaN): the replay
    asks for replicas from there on. ``windows`` are the active ones
    (:func:`predictor.models.load.active_windows`): the service closes at most
    48 windows after a call.
    """
    scaler = Scaler(window_s=window_s, stabilization=stabilization)
    server = str(series.name)
    per_replica = capacity * TARGET_UTILIZATION
    current = [1] * len(quantiles)
    counts = series.to_numpy(float)
    out = np.full((len(quantiles), len(windows)), np.nan)
    expected = np.full(len(windows), np.nan)
    for j, w in enumerate(windows):
        count = counts[w]
        if w < start:
            scaler.observe_window(server, count)
            continue
        expected[j], uppers, _ = scaler.forecast(server, quantiles)
        past = recommendations(counts[max(0, w - scaler.stabilization):w], per_replica,
                               scaler.stabilization)
        for k, upper in enumerate(uppers):
            desired = max(1, math.ceil(upper / per_replica))
            current[k], _ = step_replicas(current[k], desired, past)
            out[k, j] = current[k]
        scaler.observe_window(server, count)
    return out, expected


def _calibrate(model: BatchLoad, feats: pd.DataFrame, caps: dict, stabilization: int
               ) -> float:
    """The largest headroom (0.2-2) whose mean replicas stay within the reactive rule's."""
    if feats.empty:
        return 1.0
    _, upper = model.predict(feats)
    series = feats["series"].to_numpy(object)
    lag1 = feats["lag1"].fillna(0).to_numpy(float)
    rows = {server: series == server for server in caps if (series == server).any()}
    react = np.concatenate([reactive_replicas(lag1[r], caps[server], stabilization)[1:]
                            for server, r in rows.items()]).mean()
    best = 0.2
    for headroom in np.round(np.arange(0.2, 2.01, 0.05), 2):
        pred = np.concatenate([predictive_replicas(upper[r], caps[server], float(headroom),
                                                   stabilization=stabilization)
                               for server, r in rows.items()])
        if pred.mean() <= react:
            best = float(headroom)
    return best
