"""One container for every decision, fed by one telemetry stream.

:class:`Engine` is what the HTTP routes and the MCP tools share: it holds
one instance of each decision object, teaches all of them from each
record (:meth:`Engine.learn`), and answers each question with the typed
request and response models of its decision. Nothing here knows about HTTP
or MCP.

The decision objects are plug-ins (:class:`predictor.plugin.DecisionPlugin`)
built from the table :data:`predictor.decisions.DECISIONS`: one per distinct
plug-in, each learning from every record, each answering the decisions whose
rows name it. Nothing in the engine is specific to a decision.

The engine keeps a telemetry clock, the latest ``ts`` it has learned.
Questions about "now" that do not give a time (risk, bottlenecks) are
answered at that clock, so an engine fed a replayed log answers as it would
have at the end of that log; a live deployment's clock is the wall clock's
recent past.

``cursor`` is the id (in the event store) of the last record learned: a
checkpoint saved with it lets a restarted service learn exactly the
records it had not learned yet (see :meth:`Engine.save` and
:meth:`Engine.load`).

>>> from predictor.data.schema import parse_record
>>> engine = Engine(seed=1)
>>> from predictor.api.select import SelectRequest
>>> engine.select(SelectRequest(task_type="search", candidates=["a", "b"])).source
'prior'
>>> engine.learn([parse_record({"ts": float(i), "server": s, "tool": "q", "task_type": "search",
...                             "latency_ms": lat})
...               for i in range(20) for s, lat in (("a", 900.0), ("b", 100.0))], cursor=40)
40
>>> answer = engine.select(SelectRequest(task_type="search", candidates=["a", "b"], explore=0))
>>> answer.source, answer.ranking[0].server, engine.cursor
('online', 'b', 40)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from predictor.data.schema import CallRecord, Record
from predictor.decisions import DECISIONS, Decision, plugin_class
from predictor.models.persistence import load, save
from predictor.plugin import DecisionPlugin
from predictor.state import LockedState

__all__ = ["Engine", "family_parts", "warm_up"]

_PROGRESS = ("learned", "cursor", "clock", "store_id")
#: Marks a plug-in that learns a run of records at once (``DecisionPlugin.learn_run``).
_RUN = object()


def warm_up() -> int:
    """Load what a process's first learned records load, by teaching a throwaway engine.

    The first records a process learns import numba and load its compiled loops
    from numba's cache (a second or more on a slow machine), holding the
    interpreter all that time. A process that answers calls while it learns
    them (the gateway) calls this before it serves, so that its first calls do
    not wait behind that load. Nothing is learned by any engine in use.
    Returns the records taught.

    >>> warm_up()
    48
    """
    from predictor.data.schema import parse_record

    records = []
    for i in range(24):  # two servers, failures among the successes, one of each kind
        for server in ("warm-a", "warm-b"):
            if i % 6 == 5:
                raw = {"kind": "health", "reachable": i % 12 != 5, "latency_ms": 3.0,
                       "cpu_pct": 50.0, "mem_pct": 40.0, "queue_depth": i % 4}
            else:
                raw = {"tool": "t", "task_type": "warm", "workflow_id": f"w{i % 3}",
                       "phase": "p", "latency_ms": 10.0 + i, "success": i % 4 != 3,
                       "error_type": "timeout" if i % 4 == 3 else None,
                       "input_tokens": 10 + i, "output_tokens": 5, "cost_usd": 0.001,
                       "cache_key": f"k{i % 5}", "cpu_pct": 30.0, "mem_mb": 100.0,
                       "concurrency": 1 + i % 3, "attempt": 1}
            # A minute apart: the scale decision closes a window per record, and forecasts
            # (a compiled loop) once it has learned ten.
            records.append(parse_record({"ts": 1.0 + 60.0 * i, "server": server, **raw}))
    engine = Engine()
    taught = engine.learn(records)
    # The allocate decision calibrates its intervals on what was learned when they are
    # next read (a compiled loop, ToolLaws.calibrate): read one.
    engine.plugin("allocate").laws.z("log_duration", 0.8)
    # A risk model learns runs of calls in a compiled loop once it has chosen the inputs
    # it crosses (OnlineRisk.learn_rows), thousands of calls in: load that loop too.
    import numpy as np

    from predictor.models.risk import OnlineRisk

    model = OnlineRisk()
    model.cross(())
    model.learn_rows(("warm",), np.zeros((1, 1)), np.zeros(1, dtype=bool))
    return taught


def family_parts(decisions: tuple[Decision, ...] = DECISIONS) -> dict[str, tuple[str, ...]]:
    """Family -> the plug-ins holding its online state, as checkpointed one family at a time.

    >>> family_parts()["load"]
    ('predictor.scale:Scaler',)
    """
    parts: dict[str, list[str]] = {}
    for decision in decisions:
        if plugin_class(decision.plugin).stateful:
            keys = parts.setdefault(decision.family, [])
            if decision.plugin not in keys:
                keys.append(decision.plugin)
    return {family: tuple(keys) for family, keys in parts.items()}


class Engine(LockedState):
    """Every decision plug-in, learning from the same records; thread-safe.

    Parameters
    ----------
    capabilities
        Optional configuration: server -> task types it declares it serves
        (the select decision's capability prior).
    seed
        Seed of the exploration and jitter samplers.
    decisions
        The table the plug-ins are built from (default: every decision).
    """

    def __init__(self, capabilities: dict[str, list[str]] | None = None, *, seed: int = 0,
                 decisions: tuple[Decision, ...] = DECISIONS) -> None:
        self.capabilities = capabilities
        self.seed = seed
        self.decisions = decisions
        self.plugins: dict[str, DecisionPlugin] = {}
        self.learned = 0
        self.cursor = 0
        self.clock = math.nan
        #: The event store whose ids ``cursor`` counts (``None``: not learned from a store).
        self.store_id: str | None = None
        #: (last id, clock): the store's records up to that id and up to that time were
        #: learned elsewhere (logs, another store) and are skipped. Kept in checkpoints,
        #: so a first catch-up interrupted and resumed skips them still.
        self.taken_as_learned: tuple[int, float] | None = None
        self._lock = threading.Lock()
        self._complete()

    def _complete(self) -> None:
        """Build the plug-ins the table names and this engine lacks; bind their peers."""
        self._rows = {d.name: d for d in self.decisions}
        for key in dict.fromkeys(d.plugin for d in self.decisions):
            if key not in self.plugins:
                self.plugins[key] = plugin_class(key).build(capabilities=self.capabilities,
                                                            seed=self.seed)
        for plugin in list(self.plugins.values()):
            for attr, key in plugin.needs.items():
                if key not in self.plugins:
                    self.plugins[key] = plugin_class(key).build(
                        capabilities=self.capabilities, seed=self.seed)
                setattr(plugin, attr, self.plugins[key])

    # --- learning ---------------------------------------------------------
    #: Records each plug-in learns in turn: a plug-in learns a run of records at once
    #: (its code and state stay in the CPU's caches), then the next plug-in the same run.
    RUN = 1024

    def learn(self, records: Iterable[Record], cursor: int | None = None) -> int:
        """Teach every plug-in from ``records`` (in order); return how many were learned.

        ``cursor``, when given, is the store id of the last of these records.
        Each plug-in learns the records in their order; plug-ins learn only
        from records, never from each other (see :mod:`predictor.plugin`), so
        the engine teaches them a run of :attr:`RUN` records one plug-in after
        another, which leaves every plug-in as learning record by record
        would, a quarter faster (``bench/learn.py``).
        """
        return self.learner()(records, cursor)

    def learner(self) -> Callable[..., int]:
        """:meth:`learn` for the plug-ins this engine has now, for a caller that teaches
        many small batches (a replay teaches each call as it finishes): which plug-in
        learns which kind of record is worked out once, not at every batch.

        >>> from predictor.data.schema import parse_record
        >>> engine = Engine(seed=1)
        >>> teach = engine.learner()
        >>> teach([parse_record({"ts": 1.0, "server": "a", "tool": "q"})]), engine.learned
        (1, 1)
        """
        plugins = list(self.plugins.values())
        # What DecisionPlugin.learn does, with each record's type and time read once for
        # every plug-in rather than once by each, and plug-ins that ignore a kind skipped.
        learners = []
        for plugin in plugins:
            kind = type(plugin)
            if plugin.learn_run is not None:
                learners.append((plugin.learn_run, _RUN))
                continue
            on_call = plugin.learn_call \
                if kind.learn_call is not DecisionPlugin.learn_call else None
            on_health = plugin.learn_health \
                if kind.learn_health is not DecisionPlugin.learn_health else None
            if on_call is not None or on_health is not None:
                learners.append((on_call, on_health))

        def teach(records: Iterable[Record], cursor: int | None = None) -> int:
            n = 0
            iterator = iter(records)
            with self._lock:
                while run := list(islice(iterator, self.RUN)):
                    clock = self.clock
                    calls, health = [], []
                    for record in run:
                        ts = record.epoch
                        if not ts < clock:
                            clock = ts
                        (calls if isinstance(record, CallRecord) else health).append(record)
                    self.clock = clock
                    for on_call, on_health in learners:
                        if on_health is _RUN:
                            on_call(run)
                        elif on_call is None:
                            for record in health:
                                on_health(record)
                        elif on_health is None or not health:
                            for record in calls:
                                on_call(record)
                        else:  # both kinds, in the order they came
                            for record in run:
                                if isinstance(record, CallRecord):
                                    on_call(record)
                                else:
                                    on_health(record)
                    n += len(run)
                for plugin in plugins:
                    if not plugin.clock >= self.clock:
                        plugin.clock = self.clock
                self.learned += n
                if cursor is not None:
                    self.cursor = max(self.cursor, cursor)
            return n

        return teach

    # --- decisions --------------------------------------------------------
    def plugin(self, decision: str) -> Any:
        """The plug-in that answers ``decision``."""
        return self.plugins[self._rows[decision].plugin]

    def answer(self, decision: str, request: BaseModel) -> BaseModel:
        """Answer ``request`` with the decision named ``decision``."""
        row = self._rows[decision]
        return getattr(self.plugins[row.plugin], row.method)(request)

    def answer_provenance(self, decision: str) -> Any:
        """Where ``decision``'s answers come from now (its plug-in's provenance)."""
        return self.plugin(decision).provenance()

    def __getattr__(self, name: str) -> Callable[[BaseModel], Any]:
        # engine.select(request), engine.scale(request), ...: one per row of the table.
        rows = self.__dict__.get("_rows")
        if rows is None or name not in rows:
            raise AttributeError(name)
        row = rows[name]
        return getattr(self.plugins[row.plugin], row.method)

    # --- state ------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """How much the engine has learned, for ``/v1/models``."""
        return {"learned": self.learned, "cursor": self.cursor,
                "clock": None if math.isnan(self.clock) else self.clock}

    def save(self, path: str | Path) -> Path:
        """Checkpoint the whole engine (joblib + sha256 metadata); return the artifact path.

        The learner calls this between batches, so the state and ``cursor``
        always agree.
        """
        with self._lock:
            return save(self, path, family="engine", variant="online",
                        extra={"learned": self.learned, "cursor": self.cursor})

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """Resume an engine saved by :meth:`save` (checks its sha256 first)."""
        engine, _ = load(path)
        if not isinstance(engine, cls):
            raise TypeError(f"{path} holds a {type(engine).__name__}, not an Engine")
        return engine

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # The table is code, not state: a restored engine takes the running one, and
        # a decision added since the checkpoint starts from its prior.
        state.pop("decisions", None)
        state.pop("_rows", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.decisions = DECISIONS
        self._complete()

    def progress(self) -> dict[str, Any]:
        """How far learning went: records learned, store cursor, clock and store id."""
        return {name: getattr(self, name) for name in _PROGRESS}

    def save_parts(self, directory: str | Path) -> dict[str, Path]:
        """Checkpoint each family's online state apart, from one consistent snapshot.

        Every part records the engine's :meth:`progress` in its metadata, so
        parts saved together resume together (:meth:`from_parts`). Returns
        family -> artifact path.
        """
        directory = Path(directory)
        with self._lock:
            progress = self.progress()
            return {
                family: save(self.part(family), directory / family, family=family,
                             variant="online", extra={"engine_progress": progress})
                for family in family_parts(self.decisions)
            }

    def part(self, family: str) -> dict[str, DecisionPlugin]:
        """The plug-ins holding ``family``'s online state (plug-in key -> plug-in)."""
        return {key: self.plugins[key] for key in family_parts(self.decisions)[family]}

    @classmethod
    def from_parts(cls, parts: dict[str, dict[str, Any]], progress: dict[str, Any] | None = None,
                   *, seed: int = 0) -> Engine:
        """An engine whose families' state comes from ``parts`` (family -> saved part).

        Families missing from ``parts`` start from their priors. ``progress``
        (from :meth:`progress`) restores the cursor and clock.

        >>> engine = Engine(seed=1)
        >>> twin = Engine.from_parts({"load": engine.part("load")}, engine.progress())
        >>> twin.plugin("scale") is engine.plugin("scale")
        True
        >>> twin.plugin("recover").selector is twin.plugin("select")
        True
        """
        expected = family_parts()
        plugins: dict[str, DecisionPlugin] = {}
        for family, part in parts.items():
            if set(part) != set(expected.get(family, ())):
                raise ValueError(f"the {family} part holds {sorted(part)}, expected "
                                 f"{sorted(expected.get(family, ()))}: it was saved by another "
                                 "version of predictor; register a new one with "
                                 "'predictor train' or let 'predictor serve' relearn its store")
            plugins.update(part)
        engine = cls(seed=seed)
        engine.plugins.update(plugins)
        engine._complete()  # peers bound across parts (recover ranks with select)
        for name, value in (progress or {}).items():
            if name in _PROGRESS:
                setattr(engine, name, math.nan if name == "clock" and value is None else value)
        return engine
