"""One feature definition for every call-level model, batch and online.

:class:`CallFeaturizer` is fitted on training calls (it learns the category
vocabularies and which numeric ``attrs`` are worth using) and turns calls
plus their leak-free history (:mod:`predictor.models.history`) into

* a float matrix for scikit-learn (categories as ordinal codes, NaN for
  missing values, which histogram gradient boosting handles natively), and
* feature dicts for river (one-hot categories, numbers with missing
  indicators).

Only DESIGN's *inputs* are used: ``server``, ``tool``, ``task_type``,
``phase``, ``input_tokens``, ``concurrency``, ``attempt``, the time of day,
numeric ``attrs``, and history of calls that had finished.

>>> import pandas as pd
>>> calls = pd.DataFrame({"ts": [0.0, 3600.0], "server": ["a", "b"], "tool": ["t", "t"],
...                       "task_type": [None, None], "phase": [None, None],
...                       "input_tokens": [100.0, None], "concurrency": [1.0, 2.0],
...                       "attempt": [1.0, 1.0], "attrs": [{"size": 4}, {}]})
>>> f = CallFeaturizer().fit(calls)
>>> f.numeric_attrs_
['size']
>>> f.transform(calls).shape
(2, 10)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd

__all__ = ["CATEGORICAL", "CHUNK_CALLS", "CallFeaturizer", "informative_columns"]

CATEGORICAL = ("server", "tool", "task_type", "phase")
_BASE_NUMERIC = ("log_input_tokens", "concurrency", "attempt", "hour_sin", "hour_cos")
_MAX_ATTRS = 8
_LOG_SCALE = frozenset({
    "hist_latency", "hist_latency_fast", "hist_output_tokens", "hist_calls", "srv_latency",
    "srv_since_failure_s", "probe_latency", "probe_age_s", "srv_last_concurrency",
})


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class CallFeaturizer:
    """Fitted mapping from calls (+ history features) to model inputs.

    Parameters
    ----------
    max_categories
        Most frequent values kept per categorical column (others are unknown).
    spec_only
        Keep only what a workflow spec says before it runs (categories, input
        size, time of day, numeric attrs): no live load or attempt number.
    """

    def __init__(self, max_categories: int = 250, *, spec_only: bool = False) -> None:
        self.max_categories = max_categories
        self.spec_only = spec_only

    def fit(self, calls: pd.DataFrame, history: pd.DataFrame | None = None) -> CallFeaturizer:
        self.vocab_: dict[str, dict[str, int]] = {}
        for col in CATEGORICAL:
            counts = calls[col].dropna().astype(str).value_counts()
            top = list(counts.index[: self.max_categories])
            self.vocab_[col] = {value: code for code, value in enumerate(sorted(top))}
        seen: Counter[str] = Counter()
        for attrs in calls["attrs"]:
            for key, value in attrs.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    seen[key] += 1
        limit = 0.2 * max(1, len(calls))
        self.numeric_attrs_ = sorted(k for k, n in seen.most_common(_MAX_ATTRS) if n >= limit)
        self.history_columns_ = [] if history is None else list(history.columns)
        self.numeric_ = [n for n in _BASE_NUMERIC
                         if not (self.spec_only and n in ("concurrency", "attempt"))]
        self.feature_names_ = [
            *CATEGORICAL, *self.numeric_,
            *(f"attr_{k}" for k in self.numeric_attrs_), *self.history_columns_,
        ]
        return self

    @property
    def categorical_mask(self) -> list[bool]:
        return [name in CATEGORICAL for name in self.feature_names_]

    def transform(self, calls: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The model inputs of ``calls``: one row per call, one column per
        ``feature_names_``.

        Each column is written into the matrix as it is computed: stacking
        them at the end held every column twice, and the history features a
        third time, on a million calls several hundred MB.
        """
        if self.history_columns_ and history is None:
            raise ValueError("this featurizer was fitted with history features")
        n = len(calls)
        matrix = np.empty((n, len(self.feature_names_)))
        columns = iter(matrix.T)

        def put(values: np.ndarray) -> None:
            next(columns)[:] = values

        for col in CATEGORICAL:
            put(self.codes(calls, col))
        hours = (calls["ts"].to_numpy(dtype=float) % 86_400.0) / 86_400.0 * 2 * math.pi
        numeric = {
            "log_input_tokens": lambda: np.log1p(calls["input_tokens"].to_numpy(dtype=float)),
            "concurrency": lambda: calls["concurrency"].to_numpy(dtype=float),
            "attempt": lambda: calls["attempt"].to_numpy(dtype=float),
            "hour_sin": lambda: np.sin(hours),
            "hour_cos": lambda: np.cos(hours),
        }
        for name in self.numeric_:
            put(numeric[name]())
        for key in self.numeric_attrs_:
            put(_signed_log(np.fromiter((_number(a.get(key)) for a in calls["attrs"]),
                                        dtype=float, count=n)))
        if self.history_columns_:
            # The calls' own rows of the history (usually the same index: no reindexing).
            same = history.index.equals(calls.index)
            for name in self.history_columns_:
                put(self.history_input(calls, history, name, same))
        return matrix

    def codes(self, calls: pd.DataFrame, column: str) -> np.ndarray:
        """The category codes of ``calls[column]`` (NaN: missing or not kept), as
        :meth:`transform` gives them."""
        vocab = self.vocab_[column]
        return np.fromiter((vocab.get(v, np.nan) if isinstance(v, str) else np.nan
                            for v in calls[column]), dtype=float, count=len(calls))

    @staticmethod
    def history_input(calls: pd.DataFrame, history: pd.DataFrame, name: str,
                      same: bool | None = None) -> np.ndarray:
        """History feature ``name`` of ``calls`` as :meth:`transform` gives it (``same``:
        whether ``history`` is indexed as ``calls``; found out when not given)."""
        if same is None:
            same = history.index.equals(calls.index)
        column = (history[name] if same else history.loc[calls.index, name]
                  ).to_numpy(dtype=float)
        # Latencies, counts and ages span decades: logs suit linear learners, and trees do
        # not care.
        return _signed_log(column) if name in _LOG_SCALE else column

    def chunks(self, calls: pd.DataFrame, history: pd.DataFrame | None = None
               ) -> Iterator[np.ndarray]:
        """:meth:`transform` of every call, in order, :data:`CHUNK_CALLS` rows at a time.

        A row's inputs read its call and that call's history alone, so the
        chunks stacked are the whole matrix, which a caller reading every
        call in turn need not hold (on a million calls, about 200 MB).
        """
        same = history is not None and history.index.equals(calls.index)
        for start in range(0, len(calls), CHUNK_CALLS):
            rows = slice(start, start + CHUNK_CALLS)
            yield self.transform(calls.iloc[rows], history.iloc[rows] if same else history)

    def stream(self, calls: pd.DataFrame, history: pd.DataFrame | None = None, *,
               keep: np.ndarray | None = None, kept: np.ndarray | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`sparse` inputs of every call, in order, a chunk at a time (:meth:`chunks`);
        the matrix rows of the calls ``keep`` marks are written to ``kept`` on the way
        (in order; ``kept`` has a row for each): what a prequential pass reads
        (:mod:`predictor.models.prequential`) while a batch model's test rows are kept.

        >>> calls = pd.DataFrame({"ts": [0.0, 1.0, 2.0], "server": ["a", "b", "a"],
        ...                       "tool": ["t"] * 3, "task_type": [None] * 3,
        ...                       "phase": [None] * 3, "input_tokens": [1.0, 2.0, 3.0],
        ...                       "concurrency": [1.0] * 3, "attempt": [1.0] * 3,
        ...                       "attrs": [{}] * 3})
        >>> f = CallFeaturizer().fit(calls)
        >>> kept = np.empty((2, len(f.feature_names_)))
        >>> [(ids, values)] = f.stream(calls, keep=np.array([True, False, True]), kept=kept)
        >>> whole = f.sparse(f.transform(calls))
        >>> np.array_equal(ids, whole[0]) and np.array_equal(values, whole[1])
        True
        >>> np.array_equal(kept, f.transform(calls)[[0, 2]], equal_nan=True)
        True
        """
        start = done = 0
        for matrix in self.chunks(calls, history):
            if keep is not None and kept is not None:
                chosen = matrix[keep[start:start + len(matrix)]]
                kept[done:done + len(chosen)] = chosen
                start, done = start + len(matrix), done + len(chosen)
            yield self.sparse(matrix)

    def dicts(self, matrix: np.ndarray) -> Iterator[dict[str, float]]:
        """River inputs from rows of :meth:`transform`.

        Categories become one-hot, missing numbers an indicator, and load and
        input size are crossed with the server and tool, so that a linear
        learner can give each server its own sensitivity.
        """
        names = self.feature_names_
        categorical = set(CATEGORICAL)
        # Every key a row can produce is formatted once, not per row: formatting and
        # numpy scalars cost more than the dicts themselves.
        labels = {col: {code: f"{col}={value}" for value, code in self.vocab_[col].items()}
                  for col in CATEGORICAL}
        crossed = {code: (f"concurrency^2*server={value}", f"concurrency*server={value}")
                   for value, code in self.vocab_["server"].items()}
        by_tool = {code: f"log_input_tokens*tool={value}"
                   for value, code in self.vocab_["tool"].items()}
        columns = [(name, f"{name}_missing", labels[name] if name in categorical else None)
                   for name in names]
        for start in range(0, len(matrix), _ROWS_AT_ONCE):
            for row in matrix[start:start + _ROWS_AT_ONCE].tolist():
                x: dict[str, float] = {}
                for value, (name, missing, label) in zip(row, columns, strict=True):
                    if value != value:  # NaN
                        x[missing] = 1.0
                    elif label is not None:
                        x[label[int(value)]] = 1.0
                    else:
                        x[name] = value
                server = row[0]
                if server == server:
                    conc = x.get("concurrency")
                    if conc is not None:
                        squared, linear = crossed[int(server)]
                        x[squared] = conc * conc / 100.0
                        x[linear] = conc / 10.0
                tool = row[1]
                tokens = x.get("log_input_tokens")
                if tokens is not None and tool == tool:
                    x[by_tool[int(tool)]] = tokens
                yield x


    def input_names(self) -> list[str]:
        """Every input name :meth:`dicts` can give, once each, in the order of the ids
        :meth:`sparse` gives them."""
        return list(self._input_ids()[0])

    def _input_ids(self) -> tuple[dict[str, int], list[tuple[np.ndarray, int, int]],
                                  np.ndarray, np.ndarray, np.ndarray]:
        """Input name -> id; per column, (its categories' ids by code, its own id, its
        missing indicator's id); the crossed inputs' ids by server code (squared, then
        linear) and the size-by-tool inputs' ids by tool code."""
        ids: dict[str, int] = {}

        def of(name: str) -> int:
            return ids.setdefault(name, len(ids))

        columns = []
        for name in self.feature_names_:
            vocab = self.vocab_.get(name) if name in CATEGORICAL else None
            codes = np.zeros(0, dtype=np.int64) if vocab is None else np.array(
                [of(f"{name}={value}") for value, _ in sorted(vocab.items(), key=_code)],
                dtype=np.int64)
            columns.append((codes, -1 if vocab is not None else of(name), of(f"{name}_missing")))
        servers = sorted(self.vocab_["server"].items(), key=_code)
        squared = np.array([of(f"concurrency^2*server={value}") for value, _ in servers],
                           dtype=np.int64)
        linear = np.array([of(f"concurrency*server={value}") for value, _ in servers],
                          dtype=np.int64)
        by_tool = np.array([of(f"log_input_tokens*tool={value}") for value, _ in
                            sorted(self.vocab_["tool"].items(), key=_code)], dtype=np.int64)
        return ids, columns, squared, linear, by_tool

    def sparse(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`dicts` of rows of :meth:`transform` as two arrays, for a compiled loop.

        Row ``r``'s inputs are ``ids[r, j]`` (ids of :meth:`input_names`) with values
        ``values[r, j]``, in the order of the dictionary :meth:`dicts` gives, skipping
        the ids ``-1``. Built column by column: no Python value per row.

        >>> calls = pd.DataFrame({"ts": [0.0, 1.0], "server": ["a", "b"], "tool": ["t"] * 2,
        ...                       "task_type": [None] * 2, "phase": [None] * 2,
        ...                       "input_tokens": [1.0, None], "concurrency": [2.0] * 2,
        ...                       "attempt": [1.0] * 2, "attrs": [{}] * 2})
        >>> f = CallFeaturizer().fit(calls)
        >>> ids, values = f.sparse(f.transform(calls))
        >>> names = f.input_names()
        >>> rebuilt = [{names[i]: v for i, v in zip(row_ids, row_values) if i >= 0}
        ...            for row_ids, row_values in zip(ids.tolist(), values.tolist())]
        >>> rebuilt == list(f.dicts(f.transform(calls)))
        True
        """
        _, columns, squared, linear, by_tool = self._input_ids()
        rows, width = len(matrix), len(self.feature_names_)
        ids = np.full((rows, width + 3), -1, dtype=np.int64)
        values = np.ones((rows, width + 3))
        for j, (codes, own, missing) in enumerate(columns):
            column = matrix[:, j]
            absent = np.isnan(column)
            if own < 0:  # a category: its value's one-hot input
                ids[:, j] = np.where(absent, missing, codes[np.where(absent, 0, column)
                                                             .astype(np.int64)] if len(codes)
                                     else missing)
            else:
                ids[:, j] = np.where(absent, missing, own)
                values[:, j] = np.where(absent, 1.0, column)
        names = self.feature_names_
        server, tool = matrix[:, 0], matrix[:, 1]
        if "concurrency" in names:
            concurrency = matrix[:, names.index("concurrency")]
            crossed = ~np.isnan(server) & ~np.isnan(concurrency)
            code = np.where(crossed, server, 0).astype(np.int64)
            ids[:, width] = np.where(crossed, squared[code] if len(squared) else -1, -1)
            values[:, width] = concurrency * concurrency / 100.0
            ids[:, width + 1] = np.where(crossed, linear[code] if len(linear) else -1, -1)
            values[:, width + 1] = concurrency / 10.0
        if "log_input_tokens" in names:
            tokens = matrix[:, names.index("log_input_tokens")]
            sized = ~np.isnan(tool) & ~np.isnan(tokens)
            code = np.where(sized, tool, 0).astype(np.int64)
            ids[:, width + 2] = np.where(sized, by_tool[code] if len(by_tool) else -1, -1)
            values[:, width + 2] = tokens
        return ids, values


def _code(item: tuple[str, int]) -> int:
    return item[1]


#: Rows :meth:`CallFeaturizer.dicts` turns into Python values at once.
_ROWS_AT_ONCE = 4096

#: Calls :meth:`CallFeaturizer.chunks` featurizes at once (on a million calls, a chunk's
#: matrix is about 15 MB where the whole one is 200 MB).
CHUNK_CALLS = 65_536


def informative_columns(X: np.ndarray) -> np.ndarray:
    """Mask of columns with at least one known value (all-NaN columns break binning).

    >>> informative_columns(np.array([[1.0, np.nan], [2.0, np.nan]])).tolist()
    [True, False]
    """
    return ~np.isnan(X).all(axis=0) if len(X) else np.ones(X.shape[1], dtype=bool)


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return np.nan
