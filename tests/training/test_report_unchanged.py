"""The evaluation report of a small seeded log, against the one kept in the repository.

Cost work (issue 16: features once, parts per family, packed files, a faster
store) must leave every figure as it was. The kept report is
``expected/report-sim-6000-seed-4.json``; a change meant to move figures
writes it again with::

    PREDICTOR_UPDATE_EXPECTED=1 pytest tests/training/test_report_unchanged.py

and the diff of that file is then part of the change, for review.
The evaluation runs on one thread (OpenMP's and BLAS's), so that a machine
with more cores sums nothing in another order; figures are compared to a
relative 1e-6 all the same.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.training.evaluate import evaluate_frame

EXPECTED = Path(__file__).parent / "expected" / "report-sim-6000-seed-4.json"


def _differences(got: Any, kept: Any, where: str = "report") -> list[str]:
    """Where ``got`` differs from ``kept``: keys, types, strings exactly; numbers to 1e-6."""
    if isinstance(kept, dict) and isinstance(got, dict):
        if list(got) != list(kept):
            return [f"{where}: keys {list(got)} != {list(kept)}"]
        return [d for key in kept for d in _differences(got[key], kept[key], f"{where}.{key}")]
    if isinstance(kept, list) and isinstance(got, list) and len(got) == len(kept):
        return [d for i, (g, k) in enumerate(zip(got, kept, strict=True))
                for d in _differences(g, k, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(kept, numbers) and isinstance(got, numbers) \
            and not isinstance(kept, bool) and not isinstance(got, bool):
        same = math.isclose(got, kept, rel_tol=1e-6, abs_tol=1e-12) or (
            math.isnan(got) and math.isnan(kept))
        return [] if same else [f"{where}: {got!r} != {kept!r}"]
    return [] if got == kept and type(got) is type(kept) else [f"{where}: {got!r} != {kept!r}"]


def test_the_report_of_a_small_log_is_the_kept_one():
    records = sorted(map(parse_record, Simulator(seed=4).records(6000)), key=lambda r: r.epoch)
    with threadpool_limits(limits=1):
        report = json.loads(json.dumps(evaluate_frame(records_to_frame(records),
                                                      n_jobs=1).report))
    if os.environ.get("PREDICTOR_UPDATE_EXPECTED"):
        EXPECTED.write_text(json.dumps(report, indent=1) + "\n")
        pytest.skip(f"wrote {EXPECTED.name}")
    kept = json.loads(EXPECTED.read_text())
    assert _differences(report, kept) == []


def test_the_comparison_sees_a_moved_figure_and_a_missing_one():
    kept = {"risk": {"roc_auc": {"model": 0.8144, "online": 0.8035}, "reason": None}}
    assert _differences(kept, kept) == []
    moved = {"risk": {"roc_auc": {"model": 0.8145, "online": 0.8035}, "reason": None}}
    assert _differences(moved, kept) == ["report.risk.roc_auc.model: 0.8145 != 0.8144"]
    missing = {"risk": {"roc_auc": {"model": 0.8144}, "reason": None}}
    assert _differences(missing, kept) == [
        "report.risk.roc_auc: keys ['model'] != ['model', 'online']"]
    assert _differences({"risk": {"roc_auc": {"model": 1, "online": 0.8035}, "reason": None}},
                        {"risk": {"roc_auc": {"model": True, "online": 0.8035},
                                  "reason": None}}) != []
