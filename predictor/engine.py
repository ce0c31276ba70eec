"""One container for every decision, fed by one telemetry stream.

:class:`Engine` is what the HTTP routes and the MCP tools share: it holds
one instance of each decision object, teaches all of them from each
record (:meth:`Engine.learn`), and answers each question with the typed
request and response models of its decision. Nothing here knows about HTTP
or MCP.

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
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from predictor.allocate import (
    AdjustRequest,
    AdjustResponse,
    AllocateRequest,
    AllocateResponse,
    Allocator,
)
from predictor.bottlenecks import BottleneckFinder, BottlenecksRequest, BottlenecksResponse
from predictor.context import ReduceRequest, ReduceResponse, reduce_context
from predictor.data.schema import CallRecord, HealthRecord, Record
from predictor.models.persistence import load, save
from predictor.plan import Planner, PlanRequest, PlanResponse
from predictor.preload import Preloader, PreloadRequest, PreloadResponse
from predictor.recover import Recoverer, RecoverRequest, RecoverResponse
from predictor.risk import RiskAssessor, RiskRequest, RiskResponse
from predictor.scale import Scaler, ScaleRequest, ScaleResponse
from predictor.select import Selector, SelectRequest, SelectResponse
from predictor.state import LockedState
from predictor.validate import ValidateRequest, ValidateResponse, validate_workflow

__all__ = ["FAMILY_PARTS", "Engine"]

#: The decision objects holding each model family's online state, as
#: checkpointed one family at a time (see :meth:`Engine.save_parts`).
FAMILY_PARTS: dict[str, tuple[str, ...]] = {
    "performance": ("selector", "bottleneck_finder"),
    "resources": ("allocator", "planner"),
    "cache": ("preloader", "_recent_keys"),
    "load": ("scaler",),
    "risk": ("risk", "recoverer"),
}
_PROGRESS = ("learned", "cursor", "clock", "store_id")


def _num(value: float | int | None) -> float | None:
    return None if value is None else float(value)


class Engine(LockedState):
    """Every decision object, learning from the same records; thread-safe.

    Parameters
    ----------
    capabilities
        Optional configuration: server -> task types it declares it serves
        (the select decision's capability prior).
    seed
        Seed of the exploration and jitter samplers.
    """

    def __init__(self, capabilities: dict[str, list[str]] | None = None, *, seed: int = 0) -> None:
        self.selector = Selector(capabilities, seed=seed)
        self.recoverer = Recoverer(selector=self.selector, seed=seed)
        self.scaler = Scaler()
        self.risk = RiskAssessor()
        self.preloader = Preloader()
        self.allocator = Allocator()
        self.planner = Planner()
        self.bottleneck_finder = BottleneckFinder()
        self.learned = 0
        self.cursor = 0
        self.clock = math.nan
        #: The event store whose ids ``cursor`` counts (``None``: not learned from a store).
        self.store_id: str | None = None
        self._recent_keys: deque[str] = deque(maxlen=16)
        self._lock = threading.Lock()

    # --- learning ---------------------------------------------------------
    def learn(self, records: Iterable[Record], cursor: int | None = None) -> int:
        """Teach every decision from ``records`` (in order); return how many were learned.

        ``cursor``, when given, is the store id of the last of these records.
        """
        n = 0
        with self._lock:
            for record in records:
                if isinstance(record, CallRecord):
                    self._learn_call(record)
                elif isinstance(record, HealthRecord):
                    self._learn_health(record)
                n += 1
            self.learned += n
            if cursor is not None:
                self.cursor = max(self.cursor, cursor)
        return n

    def _learn_call(self, r: CallRecord) -> None:
        ts = r.epoch
        self.clock = ts if not ts < self.clock else self.clock
        success = bool(r.success)
        self.selector.observe_call(ts, r.server, r.task_type, latency_ms=r.latency_ms,
                                   success=success, error_type=r.error_type,
                                   concurrency=_num(r.concurrency), cost_usd=r.cost_usd)
        self.risk.observe_call(ts, r.server, r.tool, success=success, latency_ms=r.latency_ms,
                               concurrency=_num(r.concurrency), attempt=_num(r.attempt))
        self.scaler.observe_call(ts, r.server)
        self.bottleneck_finder.observe_call(ts, r.server, r.tool, latency_ms=r.latency_ms,
                                            success=success)
        tokens = None if r.input_tokens is None and r.output_tokens is None else float(
            (r.input_tokens or 0) + (r.output_tokens or 0))
        self.allocator.observe(r.tool, latency_ms=r.latency_ms, tokens=tokens, mem_mb=r.mem_mb,
                               cpu_pct=r.cpu_pct)
        if r.latency_ms is not None:
            self.planner.observe(r.tool, r.latency_ms)
        if r.cache_key is not None:
            self.preloader.observe(r.cache_key, ts)
            self._recent_keys.append(r.cache_key)
        if not success:
            self.recoverer.observe(r.error_type, r.recovery, r.recovered)

    def _learn_health(self, r: HealthRecord) -> None:
        ts = r.epoch
        self.clock = ts if not ts < self.clock else self.clock
        self.selector.observe_health(r.server, reachable=r.reachable,
                                     queue_depth=_num(r.queue_depth))
        self.risk.observe_health(ts, r.server, reachable=r.reachable, latency_ms=r.latency_ms,
                                 cpu_pct=r.cpu_pct, mem_pct=r.mem_pct,
                                 queue_depth=_num(r.queue_depth))
        self.bottleneck_finder.observe_health(ts, r.server, cpu_pct=r.cpu_pct, mem_pct=r.mem_pct)

    # --- decisions --------------------------------------------------------
    def select(self, req: SelectRequest) -> SelectResponse:
        return self.selector.select(req)

    def allocate(self, req: AllocateRequest) -> AllocateResponse:
        return self.allocator.allocate(req)

    def adjust(self, req: AdjustRequest) -> AdjustResponse:
        return self.allocator.adjust(req)

    def preload(self, req: PreloadRequest) -> PreloadResponse:
        if not req.recent:
            # No accesses given: the latest ones seen in telemetry.
            req = req.model_copy(update={"recent": list(self._recent_keys)})
        return self.preloader.preload(req)

    def scale(self, req: ScaleRequest) -> ScaleResponse:
        return self.scaler.scale(req)

    def assess_risk(self, req: RiskRequest) -> RiskResponse:
        if req.ts is None and not math.isnan(self.clock):
            req = req.model_copy(update={"ts": self.clock})
        return self.risk.assess(req)

    def recover(self, req: RecoverRequest) -> RecoverResponse:
        return self.recoverer.recover(req)

    def reduce_context(self, req: ReduceRequest) -> ReduceResponse:
        return reduce_context(req)

    def plan(self, req: PlanRequest) -> PlanResponse:
        return self.planner.plan(req)

    def bottlenecks(self, req: BottlenecksRequest) -> BottlenecksResponse:
        now = req.now
        if now is None and not math.isnan(self.clock):
            now = self.clock
        return self.bottleneck_finder.find(now, req.thresholds)

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        return validate_workflow(req)

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

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("store_id", None)  # checkpoints older than store ids
        self.recoverer.selector = self.selector  # a pickled recoverer leaves it out

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
                family: save({attr: getattr(self, attr) for attr in attrs},
                             directory / family, family=family, variant="online",
                             extra={"engine_progress": progress})
                for family, attrs in FAMILY_PARTS.items()
            }

    @classmethod
    def from_parts(cls, parts: dict[str, dict[str, Any]], progress: dict[str, Any] | None = None,
                   *, seed: int = 0) -> Engine:
        """An engine whose families' state comes from ``parts`` (family -> saved part).

        Families missing from ``parts`` start from their priors. ``progress``
        (from :meth:`progress`) restores the cursor and clock.

        >>> engine = Engine(seed=1)
        >>> twin = Engine.from_parts({"load": {"scaler": engine.scaler}}, engine.progress())
        >>> twin.scaler is engine.scaler, twin.recoverer.selector is twin.selector
        (True, True)
        """
        engine = cls(seed=seed)
        for family, part in parts.items():
            expected = set(FAMILY_PARTS[family])
            if set(part) != expected:
                raise ValueError(f"the {family} part holds {sorted(part)}, "
                                 f"expected {sorted(expected)}")
            for attr, value in part.items():
                setattr(engine, attr, value)
        # One selector for selection and for the recoverer's fallback ranking.
        engine.recoverer.selector = engine.selector
        for name, value in (progress or {}).items():
            if name in _PROGRESS:
                setattr(engine, name, math.nan if name == "clock" and value is None else value)
        return engine
