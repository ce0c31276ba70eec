"""Resources figures: duration (and other needs) against the per-tool training mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictor.allocate import Allocator
from predictor.data.frame import frame_records
from predictor.models.features import CallFeaturizer
from predictor.models.resources import TARGETS, BatchResources, OnlineResources
from predictor.training.bundles import ResourcesBundle
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import mae, rounded
from predictor.training.served import replay, served_engine

__all__ = ["HISTORY", "ResourcesFit", "fit_resources", "score_resources"]

#: The history features the resources models read.
HISTORY = ("hist_latency", "hist_output_tokens", "hist_calls")


def _group_mean(calls: pd.DataFrame, column: str, train: np.ndarray,
                test: np.ndarray) -> np.ndarray:
    means = calls[train].groupby("tool")[column].mean()
    overall = float(calls[train][column].mean())
    return calls[test]["tool"].map(means).fillna(overall).to_numpy(float)


@dataclass(frozen=True)
class ResourcesFit:
    """The fitted batch resources model (and its featurizer)."""

    featurizer: CallFeaturizer
    model: BatchResources

    @property
    def bundle(self) -> ResourcesBundle:
        """What training registers as ``predictor-resources``."""
        return ResourcesBundle(self.featurizer, self.model)


def fit_resources(features: Features, options: Options | None = None) -> ResourcesFit:
    """Fit the batch model (and its 80 % interval) on the training calls."""
    calls, train, test = features.calls, features.train, features.test
    duration = calls["latency_ms"].to_numpy(float)
    if np.isnan(duration[train]).all() or np.isnan(duration[test]).all():
        raise Unsupported("no latency_ms (durations) on both sides of the time split")
    hist = features.history[list(HISTORY)]
    featurizer = CallFeaturizer(spec_only=True).fit(calls[train], hist)
    rows = features.fit_mask(options)
    targets = {name: calls[col].to_numpy(float)[rows] for name, col in TARGETS.items()}
    # The newest quarter of the (time-ordered) training rows calibrates the interval. Only
    # the rows fitted on are featurized: a row's inputs read its call and history alone.
    batch = BatchResources(categorical=featurizer.categorical_mask).fit(
        featurizer.transform(calls[rows], hist), targets,
        base_column=featurizer.feature_names_.index("hist_latency"))
    return ResourcesFit(featurizer, batch)


def score_resources(features: Features, fit: ResourcesFit, options: Options | None = None
                    ) -> tuple[dict, None]:
    """The ``resources`` section: batch, online, served and ``group_mean`` on the test part."""
    calls, train, test = features.calls, features.train, features.test
    featurizer, batch = fit.featurizer, fit.model
    duration = calls["latency_ms"].to_numpy(float)
    ts = calls["ts"].to_numpy(float)
    # Every call's inputs are read once, a chunk at a time, by the online pass; the test
    # calls' are kept on the way for the batch model.
    X_test = np.empty((int(test.sum()), len(featurizer.feature_names_)))
    # The featurizer reads the history columns it was fitted on: no copy of them is needed.
    online_pred = OnlineResources().learn_predict(
        featurizer.stream(calls, features.history, keep=test, kept=X_test),
        featurizer.input_names(), duration, ts, test)
    pred = batch.predict(X_test)
    truth = duration[test]
    section: dict = {
        "duration_mae_ms": {
            "batch": rounded(mae(truth, pred.get("duration_ms", np.full(len(truth), np.nan))), 2),
            "online": rounded(mae(truth, online_pred), 2),
            "group_mean": rounded(mae(truth, _group_mean(calls, "latency_ms", train, test)), 2),
        }
    }
    band = batch.interval(X_test)
    if band is None:
        section["interval_coverage_80"] = None
    else:
        known = ~np.isnan(truth)
        inside = (truth[known] >= band[0][known]) & (truth[known] <= band[1][known])
        section["interval_coverage_80"] = rounded(float(inside.mean()))
        section["interval_width_ms_median"] = rounded(float(np.median((band[1] - band[0])[known])),
                                                      1)
    for name, col in TARGETS.items():
        if name == "duration_ms" or name not in pred:
            continue
        truth_other = calls[col].to_numpy(float)[test]
        if np.isnan(truth_other).all():
            continue
        section[f"{name}_mae"] = {
            "batch": rounded(mae(truth_other, pred[name]), 3),
            "group_mean": rounded(mae(truth_other, _group_mean(calls, col, train, test)), 3),
        }
    served, inside = _served(calls, test)
    section["duration_mae_ms"]["served"] = rounded(mae(truth, served), 2)
    section["interval_coverage_80_served"] = rounded(inside)
    section["variant"] = "online"
    section["variant_why"] = Allocator.why_online
    return section, None


def _served(calls: pd.DataFrame, test: np.ndarray) -> tuple[np.ndarray, float | None]:
    """The allocate decision, replayed: each test call's expected duration as one call of its
    tool, and the share of test calls inside the 80 % interval it gives."""
    engine = served_engine(("allocate",))
    allocator = engine.plugin("allocate")
    expected = np.full(int(test.sum()), np.nan)
    hits = []
    k = 0
    for position, call in replay(engine, frame_records(calls)):
        if not test[position]:
            continue
        estimate, _ = allocator.duration(call.tool, 1, 0.8)
        expected[k] = estimate.expected
        k += 1
        if call.latency_ms is not None:
            hits.append(estimate.low <= call.latency_ms <= estimate.high)
    return expected, float(np.mean(hits)) if hits else None
