"""The time-ordered split of DESIGN's evaluation contract, and what both sides share.

>>> import pandas as pd
>>> frame = pd.DataFrame({"ts": [0.0, 5.0, 8.0, 10.0], "kind": ["call"] * 4})
>>> split = TimeSplit.of(frame)
>>> split.cut, split.train_mask.tolist(), split.test_mask.tolist()
(8.0, [True, True, False, False], [False, False, True, True])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["TimeSplit"]


@dataclass(frozen=True)
class TimeSplit:
    """The first 80 % of the time span trains, the rest tests."""

    cut: float
    train_mask: np.ndarray
    test_mask: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame, train_share: float = 0.8) -> TimeSplit:
        ts = frame["ts"].to_numpy(dtype=float)
        if len(ts) == 0:
            return cls(0.0, np.zeros(0, bool), np.zeros(0, bool))
        cut = float(ts.min() + train_share * (ts.max() - ts.min()))
        train = ts < cut
        if not train.any() or train.all():
            # One timestamp only: no time to split; fall back to record order.
            train = np.arange(len(ts)) < int(train_share * len(ts))
        return cls(cut, train, ~train)
