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
import os
import pickle
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.models.history import call_features
from predictor.training.split import TimeSplit

__all__ = ["PARTS", "Columns", "Features", "FeaturesFile", "Kept", "NotLoaded", "Options",
           "Unsupported", "newest", "read_table", "write_table"]

#: The large parts of :class:`Features`: a task names those it reads (:meth:`Features.only`).
PARTS = ("frame", "calls", "history")

#: Bytes of the offset that ends a features file: where its index of columns starts.
_OFFSET_BYTES = 8

#: What a task reads of the parts it holds, where not every column (:meth:`Features.only`):
#: part of :data:`PARTS` -> the columns of it read.
Columns = Mapping[str, tuple[str, ...]]


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
    holdout_losses
        Compute each registered per-call family's loss on the holdout (what
        promotion compares) where the family ran, from the features it holds:
        training registers them, and the main process need not predict the
        holdout again.
    """

    cache_size: int | None = None
    window_s: float = 60.0
    capacity: float | None = None
    max_fit_calls: int = 250_000
    plots: bool = False
    holdout_losses: bool = False


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

    def only(self, parts: tuple[str, ...], columns: Columns | None = None) -> Features:
        """These features with only ``parts`` of :data:`PARTS`; the others are
        :class:`NotLoaded`, which names the part on any use. ``columns`` may
        narrow a part kept further (:data:`Columns`): to ``columns[part]`` (any
        other column raises ``KeyError`` naming it).

        A family's task in a worker holds only what it reads: the frame, the
        calls and their history are each a few hundred MB on a million records.

        >>> from predictor.data.frame import records_to_frame
        >>> from predictor.data.schema import parse_record
        >>> frame = records_to_frame([parse_record({"ts": t, "server": "a", "tool": "q"})
        ...                           for t in range(4)])
        >>> calls_only = Features.of(frame).only(("calls",))
        >>> len(calls_only.calls)
        4
        >>> calls_only.history["hist_latency"]
        Traceback (most recent call last):
        ...
        RuntimeError: features.history was not loaded for this task: add it to the parts it reads
        >>> list(Features.of(frame).only(("calls",), {"calls": ("tool", "ts")}).calls.columns)
        ['ts', 'tool']
        """
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; known: {list(PARTS)}")
        kept: dict[str, Any] = {part: NotLoaded(part) for part in PARTS if part not in parts}
        for part in parts:
            names = (columns or {}).get(part)
            if names is not None:
                table = getattr(self, part)
                kept[part] = table[_kept_columns(table, names)]
        return replace(self, **kept)

    @classmethod
    def of(cls, frame: pd.DataFrame, rejected: int = 0, *, history: bool = True) -> Features:
        """Split ``frame`` and compute its history features (the one pass over the log).

        With ``history=False`` the history is left :class:`NotLoaded`, for
        :meth:`with_history` to compute later: what reads the frame alone can
        start first.
        """
        frame = frame.reset_index(drop=True)
        split = TimeSplit.of(frame)
        is_call = _call_rows(frame)
        features = cls(frame, frame[is_call], NotLoaded("history"), split,
                       split.train_mask[is_call], split.test_mask[is_call], rejected)
        return features.with_history() if history else features

    def with_history(self) -> Features:
        """These features with the calls' history features computed."""
        history = call_features(self.frame) if len(self.calls) \
            else pd.DataFrame(index=self.calls.index)
        return replace(self, history=history)


class NotLoaded:
    """Stands for a part of :class:`Features` that a task did not load; any use of it
    raises, naming the part (rather than a task reading an empty or stale one)."""

    def __init__(self, part: str) -> None:
        self.part = part

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"features.{self.part} was not loaded for this task: add it to "
                           "the parts it reads")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like probe for these
            raise AttributeError(name)
        return self._refuse()

    __getitem__ = __len__ = __iter__ = __contains__ = _refuse

    def __repr__(self) -> str:
        return f"NotLoaded({self.part!r})"


@dataclass(frozen=True)
class FeaturesFile:
    """:class:`Features` written once to a file that this machine's workers read.

    Handed to each family's task as an argument, the features were pickled
    once per task by the main process, which also held them for the whole
    evaluation; a task now receives this handle, and the main process may
    drop its copy meanwhile. The file holds pickles (protocol 5, the C
    unpickler: joblib's format read object columns through Python's) of
    :func:`_pack`'s compact form, one per column of the frame, so that a task
    unpickles only the columns it reads; the history features are a second
    file beside it. Each task reads its own copy. Memory-mapping
    the arrays instead would share their pages among the workers (though each
    worker's resident memory still counts them), but reading one value of a NumPy
    ``memmap`` costs twice as much as of an array (its indexing runs in
    Python), and the replays read the log value by value.

    Loading unpickles, so the file is checked first against an HMAC-SHA256
    whose key lives only in memory (this handle, passed to the workers as a
    task argument): a file replaced on disk is refused, not loaded. Write it
    in a private folder (``tempfile.TemporaryDirectory``).

    Attributes
    ----------
    path
        Where the features are (all but the history).
    key, digest
        The HMAC key and the file's HMAC under it (hex).
    history_path, history_digest
        Where the history features are, and that file's HMAC (``None`` until
        they are written).
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
    #: The history features' own file and its HMAC under ``key`` (:meth:`with_history`).
    history_path: str | None = None
    history_digest: str | None = None

    @classmethod
    def write(cls, features: Features, folder: str | Path,
              options: Options | None = None) -> FeaturesFile:
        """Write ``features`` into ``folder``; the handle that reads them back.

        Features whose history is :class:`NotLoaded` (``Features.of(...,
        history=False)``) are written without it, for tasks that read the
        frame or the calls; :meth:`with_history` adds it.
        """
        path = Path(folder) / "features.pickle"
        packed = _pack(features)
        history = packed.pop("history")
        _write_columns(path, packed.pop("columns"), packed)
        stored = cls(str(path), key := secrets.token_bytes(32), _file_hmac(path, key),
                     features.summary(options))
        return stored if isinstance(history, NotLoaded) else stored.with_history(history)

    def with_history(self, history: pd.DataFrame) -> FeaturesFile:
        """This handle with the history features written beside the rest (in a file of
        their own: a task that does not read them never opens it)."""
        path = Path(self.path).with_name("history.pickle")
        return replace(self, history_path=str(path),
                       history_digest=write_table(path, history, self.key))

    def load(self, parts: tuple[str, ...] = PARTS, columns: Columns | None = None
             ) -> Features:
        """The features (only ``parts`` of them, narrowed to ``columns``:
        :meth:`Features.only`), after checking the files are the ones written.
        Columns not read are not unpickled.

        Raises
        ------
        ValueError
            When a file is not the one :meth:`write` wrote, or ``parts`` names the
            history before it was written.
        """
        columns = columns or {}
        # The frame's columns that the frame and the calls read (all, if either reads all).
        wanted = [columns.get(part) for part in ("frame", "calls") if part in parts]
        read = None if None in wanted else tuple({name for names in wanted for name in names})
        # The HMACs checked what is unpickled here.
        packed_columns, packed = _read_columns(self._checked(self.path, self.digest), read)
        packed["columns"] = packed_columns
        if "history" in parts:  # else _unpack stands a NotLoaded in for it
            if self.history_path is None or self.history_digest is None:
                raise ValueError("the history features were not written yet")
            packed["history"] = read_table(self.history_path, self.history_digest, self.key,
                                           "features file this job wrote",
                                           columns.get("history"))
        return _unpack(packed, parts, columns)

    def keep(self, name: str, value: Any) -> Kept:
        """Write ``value`` beside the features, under the same key: a worker's result that
        the job reads back only when it needs it (:meth:`fetch`)."""
        path = Path(self.path).with_name(f"kept-{name}.pickle")
        with path.open("wb") as out:
            pickle.dump(value, out, protocol=5)
        return Kept(str(path), _file_hmac(path, self.key))

    def fetch(self, kept: Kept) -> Any:
        """What :meth:`keep` wrote, after checking it is the file written.

        >>> import tempfile
        >>> from predictor.data.frame import records_to_frame
        >>> from predictor.data.schema import parse_record
        >>> frame = records_to_frame([parse_record({"ts": 0.0, "server": "a", "tool": "q"})])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     stored = FeaturesFile.write(Features.of(frame), folder)
        ...     stored.fetch(stored.keep("fit", {"model": [1, 2]}))
        {'model': [1, 2]}
        """
        with open(self._checked(kept.path, kept.digest), "rb") as stored:
            return pickle.load(stored)  # the HMAC checked what is unpickled here

    def _checked(self, path: str, digest: str) -> str:
        return _checked_file(path, digest, self.key, "features file this job wrote")


@dataclass(frozen=True)
class Kept:
    """Where :meth:`FeaturesFile.keep` wrote a value, and the file's HMAC."""

    path: str
    digest: str


def _kept_columns(table: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    """The columns of ``table`` among ``names``, in the table's order."""
    return [name for name in table.columns if name in names]


def write_table(path: Path, table: pd.DataFrame, key: bytes) -> str:
    """Write ``table`` column by column (:func:`_write_columns`); the file's HMAC under
    ``key``, for :func:`read_table`."""
    # Arrays, not Series: each Series would carry its own copy of the index.
    _write_columns(path, {name: table[name].to_numpy() for name in table.columns},
                   {"index": table.index})
    return _file_hmac(path, key)


def read_table(path: str, digest: str, key: bytes, what: str,
               names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The table :func:`write_table` wrote (only the columns ``names``; all with ``None``),
    once the file's HMAC is ``digest`` (else ``ValueError``: it is not the ``what``).

    >>> import tempfile
    >>> table = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", None]}, dtype=object)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     digest = write_table(Path(folder) / "t", table, b"key")
    ...     back = read_table(str(Path(folder) / "t"), digest, b"key", "table", ("b",))
    >>> back["b"].tolist(), back["b"].dtype
    (['x', None], dtype('O'))
    """
    columns, rest = _read_columns(_checked_file(path, digest, key, what), names)
    index = rest["index"]
    # Each column with the dtype it was written with (pandas would infer its ``str``
    # dtype for an object column of names, which the frame's readers do not expect).
    return pd.DataFrame({name: pd.Series(values, index=index, dtype=values.dtype, copy=False)
                         for name, values in columns.items()}, index=index, copy=False)


def _write_columns(path: Path, columns: dict[str, Any], rest: dict[str, Any]) -> None:
    """Write ``columns`` (name -> any picklable) and ``rest`` to ``path``, so that
    :func:`_read_columns` can unpickle some of the columns only.

    The layout: one pickle per column, then ``rest`` with where each column
    starts, then that pickle's offset in :data:`_OFFSET_BYTES` bytes.
    """
    with path.open("wb") as out:
        starts = {}
        for name, column in columns.items():
            starts[name] = out.tell()
            pickle.dump(column, out, protocol=5)
        at = out.tell()
        pickle.dump({**rest, "columns": starts}, out, protocol=5)
        out.write(at.to_bytes(_OFFSET_BYTES, "little"))


def _read_columns(path: str, names: tuple[str, ...] | None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(columns, rest)`` as :func:`_write_columns` wrote them: of the columns only
    ``names`` (all with ``None``), in the order written. The caller has checked the file.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "columns"
    ...     _write_columns(path, {"a": [1], "b": [2], "c": [3]}, {"n": 1})
    ...     _read_columns(str(path), ("c", "a"))
    ({'a': [1], 'c': [3]}, {'n': 1})
    """
    with open(path, "rb") as stored:
        stored.seek(-_OFFSET_BYTES, os.SEEK_END)
        stored.seek(int.from_bytes(stored.read(_OFFSET_BYTES), "little"))
        rest = pickle.load(stored)
        columns = {}
        for name, start in rest.pop("columns").items():
            if names is None or name in names:
                stored.seek(start)
                columns[name] = pickle.load(stored)
    return columns, rest


def _file_hmac(path: Path, key: bytes) -> str:
    digest = hmac.new(key, digestmod=hashlib.sha256)
    with path.open("rb") as data:
        while chunk := data.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_file(path: str, digest: str, key: bytes, what: str) -> str:
    """``path``, once its HMAC under ``key`` is ``digest``; else ``ValueError`` saying
    it is not the ``what``."""
    if not hmac.compare_digest(_file_hmac(Path(path), key), digest):
        raise ValueError(f"{path} is not the {what}")
    return path


def _call_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of a frame are calls (its :attr:`Features.calls`)."""
    return (frame["kind"] == "call").to_numpy()


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, distinct)`` with ``distinct[codes]`` equal to ``values`` (the same objects),
    for a column of strings and ``None``; ``None`` for any other column."""
    distinct: dict = {}
    codes = np.fromiter((distinct.setdefault(v, len(distinct)) for v in values),
                        dtype=np.int32, count=len(values))
    if not all(v is None or type(v) is str for v in distinct):
        return None
    table = np.empty(len(distinct), dtype=object)
    table[:] = list(distinct)
    return codes, table


def _pack(features: Features) -> dict[str, Any]:
    """What :class:`FeaturesFile` stores of ``features``: :func:`_unpack` rebuilds them.

    Unpickling an object column costs a pickle opcode per row, and the frame's
    string columns (server, tool, task type, ...) were most of a file's load
    time, in each of the workers: each is stored
    as integer codes into its distinct values. The calls are the frame's rows
    of kind ``call`` (as :meth:`Features.of` makes them) and are not stored
    twice, unless they are something else.
    """
    frame = features.frame
    columns: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        coded = _codes(column.to_numpy()) if column.dtype == object and name != "attrs" \
            else None
        # Other columns go as Series: pickled from their own arrays, they come back
        # writable (a read-only view, as to_numpy gives, would come back read-only).
        columns[name] = ("codes", *coded) if coded is not None else ("series", column)
    calls = features.calls
    is_call = _call_rows(frame) if "kind" in frame.columns else None
    derived = is_call is not None and list(calls.columns) == list(frame.columns) \
        and calls.index.equals(frame.index[is_call])
    fields = {name: getattr(features, name) for name in ("history", "split", "train", "test",
                                                          "rejected")}
    return {"columns": columns, "index": frame.index,
            "calls": ("of frame", is_call) if derived else ("stored", calls), **fields}


def _unpack(packed: dict[str, Any], parts: tuple[str, ...] = PARTS,
            columns: Columns | None = None) -> Features:
    """The :class:`Features` that :func:`_pack` packed (only ``parts`` of them, narrowed
    to ``columns``: the packed columns may be those the frame and the calls read alone).

    Calls derived from the frame are built from the packed columns directly,
    so a task that reads the calls alone never holds the frame.

    >>> from predictor.data.frame import records_to_frame
    >>> from predictor.data.schema import parse_record
    >>> frame = records_to_frame([parse_record({"ts": t, "server": "ab"[t % 2], "tool": "q"})
    ...                           for t in range(4)])
    >>> back = _unpack(_pack(Features.of(frame)))
    >>> back.frame["server"].tolist(), back.frame["server"].dtype, len(back.calls)
    (['a', 'b', 'a', 'b'], dtype('O'), 4)
    >>> _unpack(_pack(Features.of(frame)), ("calls",)).calls["server"].tolist()
    ['a', 'b', 'a', 'b']
    """
    index = packed.pop("index")
    packed_columns = packed.pop("columns")

    columns = columns or {}

    def table(rows: np.ndarray | None, names: tuple[str, ...] | None) -> pd.DataFrame:
        at = index if rows is None else index[rows]
        data: dict[str, Any] = {}
        for name, (how, *stored) in packed_columns.items():
            if names is not None and name not in names:
                continue
            if how == "codes":
                codes = stored[0] if rows is None else stored[0][rows]
                # Of dtype object: pandas would infer its string dtype from an object array.
                data[name] = pd.Series(stored[1][codes], index=at, dtype=object, copy=False)
            else:
                data[name] = stored[0] if rows is None else stored[0][rows]
        return pd.DataFrame(data, copy=False) if data else pd.DataFrame(index=at)

    how, calls = packed.pop("calls")
    if "history" not in parts:
        packed["history"] = NotLoaded("history")
    frame = table(None, columns.get("frame")) if "frame" in parts else NotLoaded("frame")
    names = columns.get("calls")
    if "calls" not in parts:
        calls = NotLoaded("calls")
    elif how == "of frame" and "frame" in parts and "frame" not in columns:
        # The whole frame's rows, of only the columns read (no copy of the others).
        calls = frame[calls] if names is None else \
            frame.loc[calls, _kept_columns(frame, names)]
    elif how == "of frame":
        calls = table(calls, names)
    elif names is not None:  # a caller's own calls, stored whole
        calls = calls[_kept_columns(calls, names)]
    return Features(frame, calls, **packed)
