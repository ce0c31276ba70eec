"""The MLflow pyfunc face of a trained family.

:class:`FamilyModel` wraps a bundle (:mod:`predictor.training.bundles`) saved with
:func:`predictor.models.persistence.save`; ``load_context`` checks its sha256 before
unpickling it (these artifacts come from our own registry, never from a
client). ``predict`` takes a DataFrame of telemetry records (DESIGN's
field names as columns, ``ts`` as RFC 3339 text or epoch seconds) and
returns the family's predictions.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow.pyfunc
import pandas as pd

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record

__all__ = ["FamilyModel", "frame_from_pandas", "pip_requirements"]


def pip_requirements() -> list[str]:
    """The pinned libraries a logged model needs (given, so MLflow need not infer them)."""
    from predictor.models.persistence import library_versions

    versions = library_versions()
    return [f"{name}=={versions[name]}" for name in ("scikit-learn", "treelite", "river", "numba",
                                                     "numpy", "pandas", "joblib", "pydantic")
            if versions.get(name, "not installed") != "not installed"]


def row_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A DataFrame row as plain Python fields, missing values (None, NaN) left out.

    >>> import numpy as np
    >>> row_fields({"a": np.int64(3), "b": float("nan"), "c": np.array([1, 2]), "d": None})
    {'a': 3, 'c': [1, 2]}
    """
    fields = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        fields[key] = _plain(value)
    return fields


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (a DataFrame's cells), at any depth, as Python values and lists:
    requests validate strictly, and ``numpy.int64`` is not an ``int``.

    >>> import numpy as np
    >>> _plain({"phases": [{"calls": np.int64(2)}], "share": np.float32(0.5)})
    {'phases': [{'calls': 2}], 'share': 0.5}
    """
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def frame_from_pandas(records: pd.DataFrame) -> pd.DataFrame:
    """Validate a DataFrame of telemetry records into a time-ordered frame."""
    parsed = []
    for row in records.to_dict("records"):
        parsed.append(parse_record(row_fields(row)))
    return records_to_frame(parsed)


class FamilyModel(mlflow.pyfunc.PythonModel):
    """Predict with a trained family's bundle."""

    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        from predictor.models.persistence import load

        self.bundle, self.metadata = load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        frame = frame_from_pandas(pd.DataFrame(model_input))
        return self.bundle.predict(frame).reset_index(drop=True)
