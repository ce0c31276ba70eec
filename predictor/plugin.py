"""The one small interface every decision plug-in implements.

A plug-in owns the learned state behind one or more decisions (rows of
:data:`predictor.decisions.DECISIONS`): it learns from each telemetry record
(:meth:`DecisionPlugin.learn`), answers typed requests with the methods the
table names, says where its answers come from (:meth:`DecisionPlugin.provenance`)
and is checkpointed as a whole (pickled without its lock and without the
peers it borrows).

A plug-in that needs another one's answers (recover ranks fallbacks with the
select decision; select keeps cooling servers out) names it in ``needs``
(attribute -> plug-in key); the engine binds it after building or restoring
the plug-ins, so each piece of state has exactly one owner. A plug-in reads
its peers only to answer, never to learn: what it learns from a record
depends on the records and on its own state alone (and not on ``clock``,
which the engine sets after a batch). That lets the engine teach the
plug-ins a run of records one plug-in after another.

>>> from predictor.data.schema import parse_record
>>> class Counter(DecisionPlugin):
...     family = "load"
...     def __init__(self):
...         super().__init__()
...         self.calls = 0
...     def learn_call(self, record):
...         self.calls += 1
...         self.observations += 1
>>> counter = Counter()
>>> counter.learn(parse_record({"ts": 0, "server": "a", "tool": "t"}))
>>> counter.calls, counter.provenance().source
(1, 'online')
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord, HealthRecord, Record
from predictor.state import LockedState

__all__ = ["DecisionPlugin"]


class DecisionPlugin(LockedState):
    """Base of every decision plug-in: learn, answer, provenance, state.

    Subclasses set :attr:`family`, override :meth:`learn_call` and
    :meth:`learn_health` (both default to nothing), and add one answering
    method per decision they serve. ``observations`` counts what was learned;
    ``clock`` is the latest telemetry time seen (the "now" of questions that
    do not give one).
    """

    #: The model family this plug-in's state belongs to (checkpoints, registry names).
    family: ClassVar[str] = "context"
    #: Whether the plug-in learns anything (stateless ones are not checkpointed).
    stateful: ClassVar[bool] = True
    #: Peers borrowed from the engine: attribute name -> plug-in key.
    needs: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: Why the family's batch champion does not answer here (``None``: it may).
    why_online: ClassVar[str | None] = None
    #: The record fields :meth:`learn_call` and :meth:`learn_health` read (``ts`` for
    #: ``epoch``), or ``None``: any. A replay may rebuild records with only these set
    #: (training's families read no other column of the log for it); a test teaches each
    #: plug-in both ways and compares.
    record_fields: ClassVar[frozenset[str] | None] = None

    def __init__(self) -> None:
        self.observations = 0
        self.clock = math.nan
        self._lock = threading.Lock()

    @classmethod
    def build(cls, *, capabilities: dict[str, list[str]] | None = None,
              seed: int = 0) -> DecisionPlugin:
        """A fresh plug-in with the engine's settings (most plug-ins take none)."""
        return cls()

    # --- learning ------------------------------------------------------------------
    def learn(self, record: Record) -> None:
        """Learn from one telemetry record (a call or a health probe).

        Plug-ins implement :meth:`learn_call` and :meth:`learn_health` rather than
        this: the engine calls those directly and keeps ``clock`` itself.
        """
        ts = record.epoch
        if not ts < self.clock:
            self.clock = ts
        if isinstance(record, CallRecord):
            self.learn_call(record)
        elif isinstance(record, HealthRecord):
            self.learn_health(record)

    #: ``learn_run(records)``, when a plug-in defines it: learn a run of records (calls and
    #: health probes, in order) at once, leaving exactly what :meth:`learn_call` and
    #: :meth:`learn_health` on each would (a test teaches each such plug-in both ways and
    #: compares). The engine hands such a plug-in its runs whole: a plug-in whose learning
    #: is a compiled loop pays its per-call overhead once per run, not per record.
    learn_run: Any = None

    def learn_call(self, record: CallRecord) -> None:
        """Learn from a finished call (default: nothing)."""

    def learn_health(self, record: HealthRecord) -> None:
        """Learn from a health probe (default: nothing)."""

    # --- provenance ----------------------------------------------------------------
    def provenance(self) -> Provenance:
        """Where this plug-in's answers come from now."""
        if not self.stateful:
            return Provenance(family=self.family, variant="rule", version="rule",  # type: ignore[arg-type]
                              source="rule")
        return Provenance.of(self.family, observations=self.observations)

    # --- state ---------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for attr in self.needs:  # borrowed, not owned: the engine binds them again
            state[attr] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("observations", 0)
        self.__dict__.setdefault("clock", math.nan)
