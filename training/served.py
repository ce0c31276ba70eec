"""Replay a log through the decisions exactly as the service builds them.

:func:`served_engine` builds a :class:`predictor.engine.Engine` with the
served defaults (the same plug-in classes, parameters and seed as
``predictor serve``), restricted to the decisions a family's evaluation asks
so that the replay learns only what those decisions need. :func:`replay`
walks the records in time order and yields each call *before* the engine
learns it: the caller asks the engine what it would have answered then. A
call is learned once its outcome is known (``ts + latency_ms``, label
delay); a health probe as soon as it is taken.

>>> from predictor.data.schema import parse_record
>>> records = [parse_record({"ts": float(t), "server": "a", "tool": "q", "latency_ms": 1500.0})
...            for t in range(3)]
>>> engine = served_engine(("scale",))
>>> [(i, engine.learned) for i, _ in replay(engine, records)]
[(0, 0), (1, 0), (2, 1)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from predictor.data.schema import CallRecord, Record
from predictor.decisions import DECISIONS
from predictor.engine import Engine
from predictor.models.delay import LabelDelay, finish_time

__all__ = ["SERVED_SEED", "frame_columns", "replay", "replay_fields", "served_engine"]

#: The seed ``predictor serve`` uses by default (``Settings.seed``).
SERVED_SEED = 0


def served_engine(names: Sequence[str], *, seed: int = SERVED_SEED) -> Engine:
    """An engine with the served defaults answering the decisions ``names``."""
    return Engine(seed=seed, decisions=tuple(d for d in DECISIONS if d.name in names))


def replay_fields(names: Sequence[str]) -> frozenset[str] | None:
    """The record fields a :func:`replay` of the decisions ``names`` reads: those their
    plug-ins learn from (:attr:`predictor.plugin.DecisionPlugin.record_fields`, peers
    included) and the time, kind and latency the replay orders them by; ``None`` when a
    plug-in does not say (then every field).

    >>> sorted(replay_fields(("risk",)))[:4]
    ['attempt', 'concurrency', 'cpu_pct', 'kind']
    """
    fields = {"ts", "kind", "latency_ms"}
    for plugin in served_engine(names).plugins.values():
        if plugin.record_fields is None:
            return None
        fields |= plugin.record_fields
    return frozenset(fields)


def frame_columns(names: Sequence[str], also: set[str]) -> tuple[str, ...] | None:
    """The columns of a log a family reads that replays the decisions ``names``: the
    replay's records (:func:`replay_fields`) and ``also``, what the family reads itself;
    ``None`` (every column) when a plug-in does not say what it reads.

    >>> frame_columns(("risk",), {"attempt"})[:3]
    ('attempt', 'concurrency', 'cpu_pct')
    """
    replayed = replay_fields(names)
    return None if replayed is None else tuple(sorted(replayed | also))


def replay(engine: Engine, records: Iterable[Record]) -> Iterator[tuple[int, CallRecord]]:
    """Yield ``(position, call)`` in order; the engine learns each record after it is asked.

    A call is learned when it finishes, before the first call that starts later.
    """
    pending: LabelDelay[Record] = LabelDelay()
    teach = engine.learner()  # Engine.learn, its plug-ins looked up once
    for position, record in enumerate(records):
        ts = record.epoch
        ready = pending.ready(ts)
        if ready:
            teach(ready)
        if not isinstance(record, CallRecord):
            teach((record,))
            continue
        yield position, record
        latency = record.latency_ms
        pending.add(finish_time(ts, float("nan") if latency is None else latency), record)
