"""``predictor evaluate LOG``: replay a log in time order and score every family.

The report follows DESIGN's evaluation contract: the first 80 % of the time
span trains, the last 20 % tests, online variants learn prequentially (with
label delay) over the whole stream and are scored on the test part, and
every figure stands beside its baselines. A family the log cannot support
is ``{"reason": ...}``; a family that fails on an unexpected log is reported
the same way (with the error) rather than sinking the other families.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from predictor.data.frame import records_to_frame
from predictor.data.readers import ReadSummary, read_records
from predictor.data.schema import Record
from predictor.models.history import call_features
from predictor.training.eval_cache import evaluate_cache
from predictor.training.eval_performance import evaluate_performance
from predictor.training.eval_resources import evaluate_resources
from predictor.training.eval_risk import evaluate_risk
from predictor.training.eval_scaling import evaluate_scaling
from predictor.training.eval_selection import evaluate_selection
from predictor.training.split import TimeSplit

__all__ = ["Evaluation", "evaluate_frame", "evaluate_log", "load_log", "load_records"]

log = logging.getLogger(__name__)

FAMILIES = ("performance", "selection", "resources", "cache", "scaling", "risk")


class Evaluation:
    """A finished evaluation: the contract report and the fitted models behind it."""

    def __init__(self, report: dict[str, Any], artifacts: dict[str, dict[str, Any]]) -> None:
        self.report = report
        self.artifacts = artifacts


def load_records(paths: str | Path | list, summary: ReadSummary | None = None) -> list[Record]:
    """Read and validate one or more telemetry files, in time order (stable for ties)."""
    summary = summary if summary is not None else ReadSummary()
    paths = paths if isinstance(paths, list) else [paths]
    records = [rec for path in paths for rec in read_records(path, summary)]
    records.sort(key=lambda rec: rec.epoch)
    return records


def load_log(paths: str | Path | list, summary: ReadSummary | None = None) -> pd.DataFrame:
    """Read one or more telemetry files into a time-ordered frame."""
    return records_to_frame(load_records(paths, summary))


def _guarded(name: str, run: Callable[[], tuple[dict, dict]]) -> tuple[str, dict, dict, float]:
    start = time.perf_counter()
    try:
        section, artifacts = run()
    except Exception as err:  # a family must not sink the others on an odd log
        log.error("%s failed:\n%s", name, traceback.format_exc())
        section, artifacts = {"reason": f"evaluation failed: {type(err).__name__}: {err}"}, {}
    return name, section, artifacts, time.perf_counter() - start


def evaluate_frame(frame: pd.DataFrame, *, rejected: int = 0, cache_size: int | None = None,
                   window_s: float = 60.0, capacity: float | None = None,
                   progress: Callable[[str], None] | None = None,
                   n_jobs: int | None = None) -> Evaluation:
    """Evaluate every family on a time-ordered telemetry frame.

    The families are independent (each seeds its own randomness), so they run
    in ``n_jobs`` worker processes (default: up to 2, one per core here); the
    report is the same whatever ``n_jobs``.
    """
    progress = progress or (lambda message: None)
    frame = frame.reset_index(drop=True)
    split = TimeSplit.of(frame)
    is_call = (frame["kind"] == "call").to_numpy()
    report: dict[str, Any] = {
        "events": len(frame),
        "train_events": int(split.train_mask.sum()),
        "test_events": int(split.test_mask.sum()),
        "rejected": rejected,
    }
    artifacts: dict[str, dict[str, Any]] = {}
    calls = frame[is_call]
    if calls.empty:
        for family in FAMILIES:
            report[family] = {"reason": "the log has no calls"}
        return Evaluation(report, artifacts)
    train, test = split.train_mask[is_call], split.test_mask[is_call]
    progress("history features")
    history = call_features(frame)
    runs: dict[str, Callable[[], tuple[dict, dict]]] = {
        "performance": lambda: evaluate_performance(calls, history, train, test),
        "selection": lambda: evaluate_selection(calls, frame, history, train, test),
        "resources": lambda: evaluate_resources(calls, history, train, test),
        "cache": lambda: evaluate_cache(calls, train, test, cache_size),
        "scaling": lambda: evaluate_scaling(calls, split.cut, window_s, capacity),
        "risk": lambda: evaluate_risk(calls, history, train, test, frame),
    }
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    # Costliest first, so two workers finish together (measured on the simulation).
    order = ["performance", "cache", "resources", "selection", "scaling", "risk"]
    progress(f"evaluating {', '.join(order)} in {jobs} process{'es' if jobs > 1 else ''}")
    if jobs > 1:
        done = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(_guarded)(family, runs[family]) for family in order)
    else:
        done = (_guarded(family, runs[family]) for family in order)
    for family, section, found, seconds in done:
        report[family], artifacts[family] = section, found
        progress(f"{family}: done in {seconds:.1f} s")
    # The contract's order, whatever order the workers finished in.
    ordered = {key: report[key] for key in report if key not in FAMILIES}
    ordered.update({family: report[family] for family in FAMILIES})
    return Evaluation(ordered, {family: artifacts[family] for family in FAMILIES})


def evaluate_log(paths: str | Path | list, **options: Any) -> Evaluation:
    """Read ``paths`` and evaluate them (see :func:`evaluate_frame` for options)."""
    summary = ReadSummary()
    frame = load_log(paths, summary)
    return evaluate_frame(frame, rejected=summary.rejected, **options)


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(family, metric, "variant=value ...") rows for a readable table."""
    rows = []
    for family in FAMILIES:
        section = report.get(family)
        if not isinstance(section, dict):
            continue
        if "reason" in section:
            rows.append((family, "-", section["reason"]))
            continue
        for metric, value in section.items():
            if isinstance(value, dict) and value and all(
                isinstance(v, int | float) or v is None for v in value.values()
            ):
                cells = "  ".join(f"{k}={_fmt(v)}" for k, v in value.items())
                rows.append((family, metric, cells))
            elif isinstance(value, int | float):
                rows.append((family, metric, _fmt(value)))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not np.isnan(value):
        return f"{value:.4g}"
    return str(value)
