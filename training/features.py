"""The first training step: one log's features, computed once for every family.

Every later step (each family's ``fit``, then its ``score``, then register and
promote) takes a :class:`Features`, so the time split, the calls and their
leak-free history features are computed once per job, not once per family.

>>> from predictor.data.frame import records_to_frame
>>> from predictor.data.schema import parse_record
>>> from predictor.data.simulator import Simulator
>>> records = sorted(map(parse_record, Simulator(seed=1).records(300)), key=lambda r: r.epoch)
>>> features = Features.of(records_to_frame(records))
>>> len(features.calls) == len(features.history), bool(features.train.any())
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictor.models.history import call_features
from predictor.training.split import TimeSplit

__all__ = ["Features", "Options", "Unsupported"]


class Unsupported(Exception):
    """The log cannot support a family; the message says why (it becomes ``reason``)."""


@dataclass(frozen=True)
class Options:
    """What a user may set for one evaluation (``predictor evaluate``'s options).

    Attributes
    ----------
    cache_size
        Keys the caches hold; ``None``: 5 % of the test part's distinct keys.
    window_s
        Load window of the scaling family, in seconds.
    capacity
        Calls one replica serves per window; ``None``: per server, a quarter
        of its mean training load per window.
    """

    cache_size: int | None = None
    window_s: float = 60.0
    capacity: float | None = None


@dataclass(frozen=True)
class Features:
    """A time-ordered log, its split, and what every family reads from it.

    Attributes
    ----------
    frame
        Every record (calls and health probes), time-ordered, index ``0..n-1``.
    calls
        The calls of ``frame`` (same index).
    history
        Leak-free history features of each call (:func:`predictor.models.history.call_features`).
    split
        The time split of DESIGN's evaluation contract, over ``frame``.
    train, test
        The split's masks restricted to ``calls``.
    rejected
        Records the reader rejected (reported, never learned).
    """

    frame: pd.DataFrame
    calls: pd.DataFrame
    history: pd.DataFrame
    split: TimeSplit
    train: np.ndarray
    test: np.ndarray
    rejected: int = 0

    @classmethod
    def of(cls, frame: pd.DataFrame, rejected: int = 0) -> Features:
        """Split ``frame`` and compute its history features (the one pass over the log)."""
        frame = frame.reset_index(drop=True)
        split = TimeSplit.of(frame)
        is_call = (frame["kind"] == "call").to_numpy()
        calls = frame[is_call]
        history = call_features(frame) if len(calls) else pd.DataFrame(index=calls.index)
        return cls(frame, calls, history, split, split.train_mask[is_call],
                   split.test_mask[is_call], rejected)
