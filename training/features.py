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

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.models.history import call_features
from predictor.training.split import TimeSplit

__all__ = ["Features", "FeaturesFile", "Options", "Unsupported", "newest"]


class Unsupported(Exception):
    """The log cannot support a family; the message says why (it becomes ``reason``)."""


def newest(mask: np.ndarray, limit: int) -> np.ndarray:
    """``mask`` keeping only its last ``limit`` true entries (rows are time-ordered).

    >>> newest(np.array([True, False, True, True]), 2).tolist()
    [False, False, True, True]
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if int(mask.sum()) <= limit:
        return mask
    kept = mask.copy()
    kept[np.flatnonzero(mask)[:-limit]] = False
    return kept


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
    max_fit_calls
        Most training calls a batch model fits on: the newest ones. Past a
        few hundred thousand calls a gradient-boosted model gains little
        from older calls while its fit grows with them; the online variants
        and every replay still see the whole log.
    plots
        Compute what the plots draw beyond the report (the cache's hit ratio
        at four more sizes: four more replays of the test part).
    """

    cache_size: int | None = None
    window_s: float = 60.0
    capacity: float | None = None
    max_fit_calls: int = 250_000
    plots: bool = False


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

    def fit_mask(self, options: Options | None = None) -> np.ndarray:
        """The training calls a batch model fits on: the newest ``max_fit_calls`` of them.

        >>> from predictor.data.frame import records_to_frame
        >>> from predictor.data.schema import parse_record
        >>> frame = records_to_frame([parse_record({"ts": t, "server": "a", "tool": "q"})
        ...                           for t in range(10)])
        >>> features = Features.of(frame)
        >>> int(features.train.sum()), features.fit_mask(Options(max_fit_calls=3)).nonzero()[0]
        (8, array([5, 6, 7]))
        """
        return newest(self.train, (options or Options()).max_fit_calls)

    def summary(self, options: Options | None = None) -> dict[str, int]:
        """What the evaluation report's header reads: records, calls, the split's sizes.

        ``fit_calls`` is how many training calls a batch model fits on
        (:meth:`fit_mask`).
        """
        return {
            "events": len(self.frame), "calls": len(self.calls),
            "train_events": int(self.split.train_mask.sum()),
            "test_events": int(self.split.test_mask.sum()),
            "rejected": self.rejected,
            "fit_calls": int(self.fit_mask(options).sum()),
        }

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


@dataclass(frozen=True)
class FeaturesFile:
    """:class:`Features` written once to a file that this machine's workers read.

    Handed to each family's task as an argument, the features were pickled
    once per task by the main process, which also held them for the whole
    evaluation; a task now receives this handle, and the main process may
    drop its copy meanwhile. The file is joblib's format (numeric columns
    stored raw, read without a pickle of them in between); each task reads
    its own copy. Memory-mapping the arrays instead (``mmap_mode``) would
    share their pages among the workers, but reading one value of a NumPy
    ``memmap`` costs twice as much as of an array (its indexing runs in
    Python), and the replays read the log value by value.

    Loading unpickles, so the file is checked first against an HMAC-SHA256
    whose key lives only in memory (this handle, passed to the workers as a
    task argument): a file replaced on disk is refused, not loaded. Write it
    in a private folder (``tempfile.TemporaryDirectory``).

    Attributes
    ----------
    path
        Where the features are.
    key, digest
        The HMAC key and the file's HMAC under it (hex).
    summary
        :meth:`Features.summary`: what the evaluation report's header reads,
        so that the main process need not load the features to write it.

    Examples
    --------
    >>> import tempfile
    >>> from predictor.data.frame import records_to_frame
    >>> from predictor.data.schema import parse_record
    >>> frame = records_to_frame([parse_record({"ts": t, "server": "a", "tool": "q"})
    ...                           for t in range(10)])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     stored = FeaturesFile.write(Features.of(frame), folder)
    ...     stored.summary["calls"], len(stored.load().calls)
    (10, 10)
    """

    path: str
    key: bytes = field(repr=False)
    digest: str
    summary: dict

    @classmethod
    def write(cls, features: Features, folder: str | Path,
              options: Options | None = None) -> FeaturesFile:
        """Write ``features`` into ``folder``; the handle that reads them back."""
        import joblib

        path = Path(folder) / "features.joblib"
        joblib.dump(features, path)
        key = secrets.token_bytes(32)
        return cls(str(path), key, _file_hmac(path, key), features.summary(options))

    def load(self) -> Features:
        """The features, after checking the file is the one written.

        Raises
        ------
        ValueError
            When the file is not the one :meth:`write` wrote.
        """
        import joblib

        if not hmac.compare_digest(_file_hmac(Path(self.path), self.key), self.digest):
            raise ValueError(f"{self.path} is not the features file this job wrote")
        return joblib.load(self.path)


def _file_hmac(path: Path, key: bytes) -> str:
    digest = hmac.new(key, digestmod=hashlib.sha256)
    with path.open("rb") as data:
        while chunk := data.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
