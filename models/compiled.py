"""Fast predictions from fitted gradient-boosted trees, through treelite.

scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingRegressor`
costs about 1.3 ms per ``predict`` call whatever the number of rows (input
validation, the categorical encoder, a Python loop over the trees), which
is most of a decision about ten candidates. treelite's GTIL evaluates the
same trees in C++ and returns the same numbers in under 0.1 ms for ten
rows; it interprets the trees row by row, so past :data:`SMALL_BATCH` rows
scikit-learn's vectorized, multi-threaded predict is faster and is used.

:func:`predict` and :func:`predict_proba` take the fitted scikit-learn
estimator itself, so what is saved, logged and registered stays the
scikit-learn model; the compiled copy lives in a cache beside it, built on
first use (about 2 ms). Anything treelite cannot take (another estimator,
an unsupported loss) is predicted by scikit-learn as before.

>>> import numpy as np
>>> from sklearn.ensemble import HistGradientBoostingRegressor
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.integers(0, 5, 500), rng.normal(size=500)])
>>> y = X[:, 0] + X[:, 1]
>>> model = HistGradientBoostingRegressor(max_iter=20, categorical_features=[True, False]).fit(X, y)
>>> bool(np.allclose(predict(model, X), model.predict(X)))
True
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.frozen import FrozenEstimator

__all__ = ["predict", "predict_proba"]

SMALL_BATCH = 128  # rows; above, scikit-learn is faster (measured: 100 rows 0.8 ms vs 1.3 ms)
_UNSUPPORTED = object()
_cache: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class _Compiled:
    """A treelite model and how to present the inputs as scikit-learn would."""

    def __init__(self, estimator: HistGradientBoostingRegressor | HistGradientBoostingClassifier
                 ) -> None:
        import treelite

        self.model = treelite.sklearn.import_model(estimator)
        self.known: list[tuple[int, np.ndarray]] = []
        preprocessor = getattr(estimator, "_preprocessor", None)
        if preprocessor is not None:
            # scikit-learn encodes a category unseen in training as missing; treelite
            # would send it down the "not in this set" branch instead.
            encoder = preprocessor.named_transformers_["encoder"]
            columns = np.flatnonzero(estimator.is_categorical_)
            self.known = [(int(column), np.asarray(categories, dtype=float))
                          for column, categories in zip(columns, encoder.categories_,
                                                        strict=True)]

    def __call__(self, X: np.ndarray, margin: bool = False) -> np.ndarray:
        import treelite

        X = np.asarray(X, dtype=np.float64)
        if self.known:
            X = X.copy()
            for column, categories in self.known:
                values = X[:, column]
                values[~np.isin(values, categories)] = np.nan
        out = treelite.gtil.predict(self.model, X, pred_margin=margin, nthread=1)
        return out.reshape(len(X), -1)[:, 0]


def _compiled(estimator: Any) -> Any:
    with _lock:
        found = _cache.get(estimator)
    if found is None:
        try:
            found = _Compiled(estimator)
        except Exception:
            found = _UNSUPPORTED
        with _lock:
            _cache[estimator] = found
    return found


def predict(estimator: Any, X: np.ndarray) -> np.ndarray:
    """``estimator.predict(X)``, through treelite for a histogram gradient-boosted regressor."""
    if isinstance(estimator, HistGradientBoostingRegressor) and 0 < len(X) <= SMALL_BATCH:
        compiled = _compiled(estimator)
        if compiled is not _UNSUPPORTED:
            return compiled(X)
    return estimator.predict(X)


def _sigmoid(calibrator: Any, margin: np.ndarray) -> np.ndarray:
    """What a fitted ``_SigmoidCalibration.predict`` returns, without its input validation.

    The validation costs more than the formula for a few rows (a risk
    decision asks for one); attributes missing means another calibrator.
    """
    a, b = getattr(calibrator, "a_", None), getattr(calibrator, "b_", None)
    if a is None or b is None:
        return calibrator.predict(margin)
    return expit(-(a * margin + b))


def predict_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Probability of the positive class of a binary classifier: ``predict_proba(X)[:, 1]``.

    Histogram gradient-boosted classifiers, and their sigmoid calibration by
    :class:`~sklearn.calibration.CalibratedClassifierCV` around a frozen
    booster, go through treelite.
    """
    small = 0 < len(X) <= SMALL_BATCH
    if small and isinstance(estimator, CalibratedClassifierCV) and estimator.method == "sigmoid" \
            and len(estimator.calibrated_classifiers_) == 1:
        calibrated = estimator.calibrated_classifiers_[0]
        booster = calibrated.estimator
        booster = booster.estimator if isinstance(booster, FrozenEstimator) else booster
        if isinstance(booster, HistGradientBoostingClassifier) and len(booster.classes_) == 2:
            compiled = _compiled(booster)
            if compiled is not _UNSUPPORTED:
                return _sigmoid(calibrated.calibrators[0], compiled(X, margin=True))
    if small and isinstance(estimator, HistGradientBoostingClassifier) \
            and len(estimator.classes_) == 2:
        compiled = _compiled(estimator)
        if compiled is not _UNSUPPORTED:
            return compiled(X)
    return estimator.predict_proba(X)[:, 1]
