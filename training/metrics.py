"""Small metric helpers that return ``None`` where a metric is undefined.

>>> mae([1.0, 2.0, float("nan")], [2.0, 2.0, 5.0])
0.5
>>> auc([1, 1, 1], [0.2, 0.3, 0.4]) is None
True
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["auc", "mae", "pr_auc", "rounded"]


def mae(y_true, y_pred) -> float | None:
    """Mean absolute error over pairs where both are known."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    mask = ~(np.isnan(t) | np.isnan(p))
    return float(np.mean(np.abs(t[mask] - p[mask]))) if mask.any() else None


def _ranking_score(metric, y_true, score) -> float | None:
    t, s = np.asarray(y_true, float), np.asarray(score, float)
    mask = ~(np.isnan(t) | np.isnan(s))
    if mask.sum() < 2 or len(np.unique(t[mask])) < 2:
        return None
    return float(metric(t[mask], s[mask]))


def auc(y_true, score) -> float | None:
    """ROC AUC, or ``None`` when only one class is present."""
    return _ranking_score(roc_auc_score, y_true, score)


def pr_auc(y_true, score) -> float | None:
    """Average precision (area under the precision-recall curve) of the positive class."""
    return _ranking_score(average_precision_score, y_true, score)


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
