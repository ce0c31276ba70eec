"""The running service behind HTTP and MCP: store, engine, learner, champions.

:class:`Service` owns

* the SQLite event store: an ingested batch is committed (and synced)
  before the caller hears back;
* the :class:`predictor.engine.Engine` every route and tool asks;
* a learner thread that teaches the engine each stored batch, through a
  bounded queue: when more than ``queue_max_records`` records wait to be
  learned, ingestion is refused with :class:`QueueFull` (HTTP 429 with
  ``Retry-After``) before anything is stored, so nothing is dropped;
* checkpoints of the engine every ``checkpoint_interval_s`` and on stop.
  A checkpoint records the store id of the last record learned; on start the
  learner resumes from it and learns whatever was stored after it, so a
  restart loses neither an acknowledged record nor online learning;
* online checkpoints in the MLflow registry (``predictor-<family>-online``,
  see :mod:`predictor.training.online`), registered every ``online_registry_interval_s``
  and at stop; a service whose state folder is empty (a new machine) resumes
  from the newest. A checkpoint's cursor counts in the store it was taken
  from: from another store (or from ``predictor train``), the engine keeps
  what it learned, takes this store's records up to the checkpoint's clock
  as learned (the same history, loaded both ways) and learns the rest;
* the registry's batch champions, loaded in the background at start and
  swapped in atomically by :meth:`Service.reload`.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

from predictor.api.telemetry import MAX_BATCH_ID, IngestError, IngestReport
from predictor.data.fast_validation import quick_record
from predictor.data.otlp import spans_to_raw_records
from predictor.data.schema import Record, RecordError, parse_record
from predictor.data.store import DuplicateBatch, open_store
from predictor.decisions import DECISIONS, Decision, online_families, plugin_class
from predictor.engine import Engine
from predictor.models.persistence import write_atomically
from predictor.serving.champions import (
    Champion,
    keep_serving,
    load_champions,
    redact,
    resolve_tracking_uri,
)
from predictor.serving.metrics import Metrics
from predictor.serving.settings import Settings

__all__ = ["IngestError", "IngestReport", "IngestResult", "QueueFull",
           "Service"]

log = logging.getLogger("predictor.service")

_CATCH_UP_CHUNK = 5_000
_LEARN_CHUNK = 200  # records learned between two looks at the ingestion path
_YIELD_S = 0.1  # the longest the learner waits for ingestion, per chunk


def _batch_id(value: Any) -> str | None:
    """A client's batch id, checked: 1 to 200 printable characters, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_BATCH_ID \
            or not value.isprintable():
        raise RecordError("batch_id", f"a batch id is 1 to {MAX_BATCH_ID} printable characters")
    return value


class QueueFull(RuntimeError):
    """More records wait to be learned than the queue holds; retry after ``retry_after`` s."""

    def __init__(self, pending: int, retry_after: int) -> None:
        super().__init__(f"{pending} records wait to be learned; retry in {retry_after} s")
        self.pending = pending
        self.retry_after = retry_after


#: A telemetry body that is a JSON array, its items left as text.
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass
class IngestResult:
    """What an ingestion request did; ``errors`` hold the first 100 rejections."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    ids: tuple[int, int] | None = None
    #: The batch id was seen before: this is the first ingestion's answer, nothing was stored.
    replayed: bool = False

    def reject(self, where: int | str, err: RecordError) -> None:
        self.rejected += 1
        if len(self.errors) < 100:
            self.errors.append({"index": where, "field": err.field, "reason": err.reason})



def _shown(db: object) -> str:
    """The store's name for logs: a URL without its credentials."""
    from predictor.serving.champions import redact

    return str(redact(db) if isinstance(db, str) else db)


def _publisher() -> str:
    """Who publishes a state: host and process."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _when_due(last: float, interval_s: float, action: Callable[[], object],
              failure: str) -> float:
    """Run ``action`` if ``interval_s`` passed since ``last``; return when it last ran.

    A failure is logged, not raised: the learner must keep learning.
    """
    if time.monotonic() - last < interval_s:
        return last
    try:
        action()
    except Exception:
        log.exception(failure)
    return time.monotonic()


def contiguous(batches: list[tuple[int, int, list[Record]]]
               ) -> list[tuple[int, int, list[Record]]]:
    """Queued ``(first id, last id, records)`` batches, each joined to the one before
    when its ids follow on (so that they are learned as one run), in their order.

    >>> contiguous([(1, 2, ["a", "b"]), (3, 3, ["c"]), (7, 8, ["d", "e"]), (4, 4, ["f"])])
    [(1, 3, ['a', 'b', 'c']), (7, 8, ['d', 'e']), (4, 4, ['f'])]
    """
    out: list[tuple[int, int, list[Record]]] = []
    for first, last, records in batches:
        if out and first == out[-1][1] + 1:
            out[-1] = (out[-1][0], last, out[-1][2] + records)
        else:
            out.append((first, last, records))
    return out


class Service:
    """Everything the HTTP app and the MCP server share; see the module docstring."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None,
                 decisions: tuple[Decision, ...] = DECISIONS) -> None:
        self.decisions = decisions
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store: Any = None  # SQLiteEventStore or PostgresEventStore
        self._engine: Engine | None = None  # built on first use: it imports the models
        self._engine_lock = threading.Lock()
        self.champions: dict[str, Champion] = {}
        self.registry_uri: str | None = None
        self.registry_state = "not loaded"
        self._queue: queue.Queue[tuple[int, int, list[Record]]] = queue.Queue()
        self._pending = 0
        self._ingesting = 0  # ingestion requests being stored right now
        self._pending_lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._started = threading.Event()
        self._learner: threading.Thread | None = None
        self._checkpointed_cursor = -1
        self._registered_cursor = -1
        #: (last store id at start, clock): older records a resumed engine already knows.
        self._learned_until: tuple[int, float] | None = None
        #: The published state a replica or standby answers from (0: none yet).
        self.state_version = 0
        self.state_info: dict[str, Any] = {}
        self._leadership: Any = None
        self.leading = False
        #: The learner's publication being compressed and stored, off its learning thread.
        self._publication: Future[None] | None = None
        self._publisher: ThreadPoolExecutor | None = None
        self._snapshot_s = 0.0  # how long the last state took to pickle
        #: The newest online checkpoint registered or resumed from, for ``/v1/models``.
        self.online_registry: dict[str, Any] = {"state": "not used"}
        self._learn_rate = 10_000.0  # records per second, measured as the learner runs
        self.started_at = time.time()

    @property
    def engine(self) -> Engine:
        """The engine that answers: the resumed one once started, priors before that."""
        engine = self._engine
        if engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = Engine(self.settings.capabilities or None,
                                          seed=self.settings.seed, decisions=self.decisions)
                engine = self._engine
        return engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._engine = engine

    # --- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Open the store, resume the engine, start learning and load the champions."""
        role = self.settings.role
        self.store = open_store(self.settings.db, durability=self.settings.durability,
                                fsync_interval_s=self.settings.fsync_interval_s)
        if role != "all":
            self._start_shared()
            return
        self.engine = self._restore()
        if self.engine.store_id != self.store.store_id:
            self.engine.cursor = 0
            if self.engine.learned and not math.isnan(self.engine.clock):
                # Learned elsewhere (logs, another store) up to its clock: the records
                # this store already holds from before then count as learned, so
                # a history loaded both ways is not learned twice.
                self.engine.taken_as_learned = (self.store.last_id(), self.engine.clock)
                log.warning("the checkpoint was not learned from this store: its records "
                            "up to the checkpoint's clock are taken as learned",
                            extra={"event": "other_store", "clock": self.engine.clock})
            self.engine.store_id = self.store.store_id
        # The memory bound of the one state that grows with the data (new cache keys).
        self.engine.plugin("preload").model.max_keys = self.settings.preload_max_keys
        # A checkpoint taken during a first catch-up carries what it still has to skip.
        self._learned_until = getattr(self.engine, "taken_as_learned", None)
        self._checkpointed_cursor = self.engine.cursor
        self._registered_cursor = self.engine.cursor
        self._learner = threading.Thread(target=self._learn_loop, name="predictor-learner",
                                         daemon=True)
        self._learner.start()
        self._start_registry()
        self._started.set()
        log.info("started", extra={"event": "start", "db": _shown(self.settings.db),
                                   "cursor": self.engine.cursor})

    def _start_registry(self) -> None:
        """Load the registry's champions in the background (they take seconds to load)."""
        if self.settings.load_champions:
            threading.Thread(target=self._load_registry, name="predictor-registry",
                             daemon=True).start()
        else:
            self.registry_state = "disabled"

    def _start_shared(self) -> None:
        """Learner or replica on the shared store: answer from the newest published state."""
        from predictor.data.election import leadership_for

        self._sync_state()
        if self.settings.role == "learner":
            self._leadership = leadership_for(self.settings.db)
        self._learner = threading.Thread(target=self._follow_loop, name="predictor-follower",
                                         daemon=True)
        self._learner.start()
        self._start_registry()
        self._caught_up.set()  # a replica answers from what was published, never behind it
        self._started.set()
        log.info("started", extra={"event": "start", "db": _shown(self.settings.db),
                                   "role": self.settings.role, "state": self.state_version})

    def _sync_state(self) -> bool:
        """Swap in the newest published state, if there is a newer one; True if swapped."""
        from predictor.serving.roles import unpack_state

        found = self.store.latest_state(self.state_version)
        if found is None:
            return False
        try:
            engine, header = unpack_state(found["state"])
        except Exception as err:  # a state that does not verify is never loaded
            log.error("published state %s refused: %s", found["version"], err)
            self.state_version = found["version"]  # and not tried again
            return False
        engine.plugin("preload").model.max_keys = self.settings.preload_max_keys
        self.engine = engine  # one reference swap: every answer sees one whole state
        self.state_version = found["version"]
        self.state_info = {"version": found["version"], "cursor": found["cursor"],
                           "learned": found["learned"], "publisher": found["publisher"],
                           "created": found["created"], "bytes": len(found["state"]),
                           "raw_bytes": found["raw_bytes"],
                           "compression_ratio": round(found["raw_bytes"]
                                                      / max(len(found["state"]), 1), 2),
                           "loaded": time.time(), **{k: header[k] for k in ("store_id",)}}
        self.metrics.model_version.labels(family="all", variant="online").set(engine.learned)
        return True

    def publish_state(self, wait: bool = True) -> int | None:
        """Publish the engine for replicas, if it learned since the last publication.

        The engine is pickled here, in the learner's thread, so the state is
        the one its cursor says. With ``wait=False`` (the learner's periodic
        publication) a thread of its own compresses, signs and stores it
        while the learner goes on learning (zlib and the HMAC release the
        GIL): ``None`` is returned, and a publication still in flight makes
        this one wait for the next due time. Returns the version published.
        """
        from predictor.serving.roles import snapshot_state

        pending = self._publication
        if pending is not None and not pending.done():
            if not wait:
                return None
            pending.result()  # never raises: its failure is logged
        engine = self.engine
        if self.state_info.get("cursor") == engine.cursor and self.state_version:
            return None
        engine.store_id = self.store.store_id
        started = time.perf_counter()
        raw, header = snapshot_state(engine, publisher=_publisher())
        self._snapshot_s = time.perf_counter() - started
        if wait:
            return self._store_state(raw, header)
        if self._publisher is None:
            self._publisher = ThreadPoolExecutor(1, thread_name_prefix="predictor-publisher")
        self._publication = self._publisher.submit(self._store_state_logged, raw, header)
        return None

    def _store_state(self, raw: bytes, header: dict[str, Any]) -> int:
        """Compress, sign and store a snapshot (:meth:`publish_state`); return its version."""
        from predictor.serving.roles import seal_state

        packed = seal_state(raw, header)
        version = self.store.publish_state(packed, cursor=header["cursor"],
                                           learned=header["learned"], raw_bytes=len(raw),
                                           publisher=header["publisher"])
        self.state_version = version
        self.state_info = {"version": version, "cursor": header["cursor"],
                           "learned": header["learned"], "publisher": header["publisher"],
                           "created": time.time(), "bytes": len(packed), "raw_bytes": len(raw),
                           "compression_ratio": round(len(raw) / max(len(packed), 1), 2)}
        log.info("state published", extra={"event": "publish", "version": version,
                                           "cursor": header["cursor"], "bytes": len(packed),
                                           "raw_bytes": len(raw)})
        return version

    def _store_state_logged(self, raw: bytes, header: dict[str, Any]) -> None:
        try:
            self._store_state(raw, header)
        except Exception:  # the learner publishes again at its next due time
            log.exception("state not published")

    def _follow_loop(self) -> None:
        """Learner: elected, learn the shared stream and publish; else, as replicas, sync."""
        interval = self.settings.sync_interval_s
        last_publish = time.monotonic()
        while not self._stop.is_set():
            try:
                lead = self._leadership is not None and (
                    self._leadership.still_held() or self._leadership.try_acquire())
                if lead and not self.leading:
                    self._sync_state()  # go on from the newest state any leader published
                    self.leading = True
                    log.warning("elected learner", extra={"event": "elected",
                                                          "cursor": self.engine.cursor})
                elif not lead and self.leading:
                    self.leading = False
                    log.error("leadership lost: standing by", extra={"event": "standby"})
                if lead:
                    caught_up = self._catch_up(budget_s=interval)
                    # A state costs the learner its pickling (a large engine, a tenth of
                    # a second or more): at most a fifth of its time goes to publishing.
                    last_publish = _when_due(last_publish,
                                             max(interval, 5 * self._snapshot_s),
                                             lambda: self.publish_state(wait=False),
                                             "state not published")
                    if caught_up:  # else more is stored already: learn on
                        self._stop.wait(0.2)
                else:
                    self._sync_state()
                    self._stop.wait(min(interval, 1.0) if self._leadership else interval)
            except Exception:  # the database went away for a while: try again
                log.exception("following the shared store failed")
                self._stop.wait(1.0)
        if self.leading:
            try:
                self._catch_up(until=self.store.last_id())
                self.publish_state()
            except Exception:
                log.exception("last state not published")
        if self._leadership is not None:
            self._leadership.release()

    def stop(self, register: bool = True) -> None:
        """Learn what is queued, checkpoint, and close the store.

        ``register=False`` skips registering the online state in MLflow (slow
        to start; the local checkpoint holds it all anyway).
        """
        self._stop.set()
        if self._learner is not None:
            self._learner.join(timeout=120)
        if self._publisher is not None:  # a publication in flight is stored before closing
            self._publisher.shutdown(wait=True)
        if self.store is not None:
            if self.settings.role == "all":  # shared roles keep their state in the store
                self.checkpoint()
            try:
                if register and (self.settings.role == "all" or self.leading):
                    self.register_online()
            except Exception as err:  # the local checkpoint holds it all anyway
                log.error("online checkpoint not registered: %s", err)
            self.store.close()
            self.store = None
        log.info("stopped", extra={"event": "stop", "cursor": self.engine.cursor})

    # --- checkpoints --------------------------------------------------------
    def _latest(self) -> Path:
        return self.settings.state_dir / "LATEST"

    def _restore(self) -> Engine:
        latest = self._latest()
        if latest.exists():
            name = latest.read_text().strip()
            path = self.settings.state_dir / name
            try:
                # LATEST names a checkpoint in this folder, nothing else (no "../", no path).
                if not re.fullmatch(r"engine-\d+", name):
                    raise ValueError(f"LATEST names {name[:80]!r}, not a checkpoint here")
                engine = Engine.load(path)
                log.info("resumed", extra={"event": "resume", "checkpoint": path.name,
                                           "cursor": engine.cursor})
                return engine
            except Exception as err:  # the store still has every record: relearn it
                log.error("checkpoint %s unusable (%s); relearning from the store", path, err)
        uri = self._online_registry_uri()
        if uri is not None:
            try:
                from predictor.training.online import load_online

                found = load_online(uri)
            except Exception as err:
                log.error("online checkpoints in %s unusable: %s", uri, err)
                found = None
            if found is not None:
                engine, described = found
                self.online_registry = {"state": "resumed", "uri": uri, **described}
                log.info("resumed from the registry", extra={"event": "resume", **described})
                return engine
        return Engine(self.settings.capabilities or None, seed=self.settings.seed,
                      decisions=self.decisions)

    def _online_registry_uri(self) -> str | None:
        if not self.settings.online_registry:
            return None
        return resolve_tracking_uri(self.settings.tracking_uri)

    def register_online(self) -> dict[str, str] | None:
        """Register the engine's online state in the registry, if it learned since the last.

        Returns family -> version, or ``None`` when there was nothing new or no registry.
        """
        uri = self._online_registry_uri()
        engine = self.engine
        if uri is None or engine.cursor == self._registered_cursor:
            return None
        from predictor.training.online import register_online
        from predictor.training.registry import registry_at

        cursor = engine.cursor
        with registry_at(uri):
            versions = register_online(engine, source="serve")
        self._registered_cursor = cursor
        self.online_registry = {"state": "registered", "uri": uri, "versions": versions,
                                "cursor": cursor, "store_id": engine.store_id}
        log.info("online checkpoint registered", extra={"event": "register_online",
                                                        "versions": versions, "cursor": cursor})
        return versions

    def checkpoint(self) -> Path | None:
        """Save the engine if it learned anything since the last checkpoint.

        Called by the learner between batches (and on stop, after it ended),
        so the saved state and its cursor always agree. The new checkpoint is
        written beside the old one and ``LATEST`` is switched atomically.
        """
        engine = self.engine
        if engine.cursor == self._checkpointed_cursor:
            return None
        state = self.settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        name = f"engine-{engine.cursor}"
        path = engine.save(state / name)
        write_atomically(self._latest(), lambda tmp: tmp.write_text(name))
        for old in state.glob("engine-*"):
            if old.name not in (f"{name}.joblib", f"{name}.json"):
                old.unlink(missing_ok=True)
        self._checkpointed_cursor = engine.cursor
        self.metrics.checkpoints.inc()
        log.info("checkpoint", extra={"event": "checkpoint", "cursor": engine.cursor})
        return path

    # --- learning -----------------------------------------------------------
    def _learn(self, records: list[Record], ids: list[int] | range) -> None:
        """Teach the engine ``records`` (store ids ``ids``), in chunks.

        Ingestion and learning share the interpreter: while a batch is being
        stored, the learner waits between chunks, by the clock, as long as
        its last chunk took of its own CPU time (at most :data:`_YIELD_S`):
        at least half its time goes to learning, so a burst of ingestion
        never starves it (the interpreter it shares still slows it; see the
        README's figures). The bounded queue caps how far learning may fall
        behind.
        """
        cpu = 0.0
        for start in range(0, len(records), _LEARN_CHUNK):
            # By the clock: each sleep may end well after its millisecond, once the
            # interpreter is free again.
            deadline = time.perf_counter() + min(_YIELD_S, cpu)
            while self._ingesting and time.perf_counter() < deadline:
                time.sleep(0.001)
            chunk = records[start:start + _LEARN_CHUNK]
            started, started_cpu = time.perf_counter(), time.thread_time()
            n = self.engine.learn(chunk, cursor=ids[start + len(chunk) - 1])
            elapsed = time.perf_counter() - started
            # Its own CPU time, not the wall time: while ingestion holds the interpreter
            # a chunk takes longer, and waiting that long again starved the learner.
            cpu = time.thread_time() - started_cpu
            if n and elapsed > 0:
                self._learn_rate = 0.8 * self._learn_rate + 0.2 * (n / elapsed)
            self.metrics.learned.inc(n)
        self.metrics.model_version.labels(family="all", variant="online").set(self.engine.learned)

    def _catch_up(self, until: int | None = None, budget_s: float | None = None) -> bool:
        """Learn stored records after the engine's cursor (up to id ``until``).

        ``budget_s``: return once a chunk ends past that many seconds, caught
        up or not (the elected learner publishes between two catch-ups: a
        burst it cannot keep up with must not hold its publications back).
        Returns whether it caught up.
        """
        assert self.store is not None
        started = time.monotonic()
        while not self._stop.is_set() or until is not None:
            if budget_s is not None and time.monotonic() - started >= budget_s:
                return False
            rows = self.store.read_since(self.engine.cursor, _CATCH_UP_CHUNK)
            if until is not None:
                rows = [row for row in rows if row[0] <= until]
            if not rows:
                return True
            last = rows[-1][0]
            if self._learned_until is not None:
                old, clock = self._learned_until
                rows = [(i, r) for i, r in rows if i > old or r.epoch > clock]
            self._learn([record for _, record in rows], [i for i, _ in rows])
            self.engine.learn((), cursor=last)  # past the records taken as learned
            if self._learned_until is not None and last >= self._learned_until[0]:
                # Past every record taken as learned: from here on, each is learned once.
                self._learned_until = self.engine.taken_as_learned = None
        return False

    def _learn_loop(self) -> None:
        try:
            self._catch_up()
        finally:
            self._caught_up.set()
        last_checkpoint = last_registered = time.monotonic()
        while True:
            try:
                batch = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    break
            else:
                for first, last, records in contiguous([batch, *self._linger(batch)]):
                    try:
                        if last > self.engine.cursor:
                            if first > self.engine.cursor + 1:
                                # An earlier batch is still on its way to the queue: learn
                                # it from the store now, in order.
                                self._catch_up(until=first - 1)
                            skip = max(0, self.engine.cursor - first + 1)
                            self._learn(records[skip:], range(first + skip, last + 1))
                    except Exception:  # one bad batch must not stop learning
                        log.exception("learning a batch failed")
                    finally:
                        with self._pending_lock:
                            self._pending -= len(records)
                            self.metrics.queue.set(self._pending)
            last_checkpoint = _when_due(last_checkpoint, self.settings.checkpoint_interval_s,
                                        self.checkpoint, "checkpoint failed")
            last_registered = _when_due(last_registered,
                                        self.settings.online_registry_interval_s,
                                        self.register_online, "online checkpoint not registered")

    def _linger(self, batch: tuple[int, int, list[Record]]) -> list[tuple[int, int, list[Record]]]:
        """The batches queued within ``learn_linger_s`` of ``batch`` (at most a chunk's
        worth of records: a queue that fills faster is learned without waiting)."""
        linger = self.settings.learn_linger_s
        more: list[tuple[int, int, list[Record]]] = []
        if linger <= 0:
            return more
        deadline = time.monotonic() + linger
        gathered = len(batch[2])
        while gathered < _LEARN_CHUNK and (left := deadline - time.monotonic()) > 0:
            try:
                more.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
            gathered += len(more[-1][2])
        return more

    def wait_learned(self, timeout: float = 30.0) -> bool:
        """Block until everything ingested so far has been learned (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._caught_up.is_set() and self._pending == 0:
                return True
            time.sleep(0.01)
        return False

    # --- ingestion ----------------------------------------------------------
    def _reserve(self, n: int) -> None:
        with self._pending_lock:
            if self._pending and self._pending + n > self.settings.queue_max_records:
                self.metrics.throttled.inc()
                wait = math.ceil((self._pending + n) / max(self._learn_rate, 1.0))
                raise QueueFull(self._pending, max(1, min(wait, 60)))
            self._pending += n
            self.metrics.queue.set(self._pending)

    def _release(self, n: int) -> None:
        with self._pending_lock:
            self._pending -= n
            self.metrics.queue.set(self._pending)

    def _store(self, records: list[Record], result: IngestResult, via: str,
               batch_id: str | None = None, sources: list[bytes | None] | None = None
               ) -> IngestResult:
        if not records:
            return result
        # A service starting in the background (``predictor mcp``) stores once it has started.
        self._started.wait(timeout=60)
        if self.store is None:
            raise RuntimeError("the service is not started: nothing was stored")
        shared = self.settings.role != "all"  # the learner follows the store, not a queue
        self._reserve(0 if shared else len(records))
        # What this batch answers, kept with its id so that a retry answers the same.
        reply = b"" if batch_id is None else \
            IngestReport.of(replace(result, accepted=len(records))).model_dump_json().encode()
        try:
            with self._ingest_lock:  # ids reach the queue in the order they were given
                ids = self.store.append_batch(records, sources, batch_key=batch_id,
                                              reply=reply)
                assert ids is not None
                if not shared:
                    self._queue.put((ids[0], ids[1], records))
        except DuplicateBatch as seen:
            self._release(0 if shared else len(records))
            first = IngestReport.model_validate_json(seen.reply)
            self.metrics.replayed.inc()
            return IngestResult(received=first.received, accepted=first.accepted,
                                rejected=first.rejected, skipped=first.skipped,
                                errors=[e.model_dump() for e in first.errors], replayed=True)
        except BaseException:
            self._release(0 if shared else len(records))
            raise
        result.accepted, result.ids = len(records), ids
        self.metrics.ingested.labels(via=via).inc(len(records))
        return result

    @contextmanager
    def ingestion(self) -> Iterator[None]:
        """Mark an ingestion in progress: the learner gives way to it (reentrant).

        The HTTP route holds it from the first byte of the body to the reply.
        """
        with self._pending_lock:
            self._ingesting += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._ingesting -= 1

    def ingest(self, raw: Any, batch_id: str | None = None) -> IngestResult:
        """Validate a batch of telemetry records, store the valid ones, queue them for learning.

        With ``batch_id`` (or a ``batch_id`` beside ``records`` in the body),
        a batch is stored once: a retry answers as the first ingestion did,
        with ``replayed`` set.

        Raises
        ------
        RecordError
            When ``raw`` is not a list of records (or ``{"records": [...]}``).
        QueueFull
            When the learning queue cannot take the batch; nothing was stored.
        """
        with self.ingestion():
            return self._ingest(raw, batch_id)

    def ingest_otlp(self, body: Any, batch_id: str | None = None) -> IngestResult:
        """Like :meth:`ingest`, for an OTLP/HTTP JSON trace export (errors name the span)."""
        with self.ingestion():
            return self._ingest_otlp(body, batch_id)

    def _admit(self, record: Record, now: float) -> Record:
        """``record``, unless it starts in the future (past ``future_tolerance_s``).

        One such record would move the engine's clock for good, and every
        decision that answers "now" with it; it is rejected (``ts`` named) or,
        with ``future_policy="clamp"``, stored at the service's clock with the
        time it claimed in ``attrs.claimed_ts``.
        """
        ahead = record.epoch - now
        if ahead <= self.settings.future_tolerance_s:
            return record
        if self.settings.future_policy == "reject":
            raise RecordError("ts", f"{ahead:.0f} s in the future (tolerance "
                                    f"{self.settings.future_tolerance_s:g} s): a wrong clock?")
        attrs = {**(record.attrs or {}), "claimed_ts": record.ts.isoformat()}
        return record.model_copy(update={"ts": datetime.fromtimestamp(now, UTC), "attrs": attrs})

    def ingest_json(self, body: bytes, batch_id: str | None = None) -> IngestResult:
        """:meth:`ingest` of a body's JSON text, with the same answers, faster.

        Records of a JSON array in the contract's plain form (see
        :mod:`predictor.data.fast_validation`) are checked without pydantic
        and stored as they came; any other body is parsed whole and given to
        :meth:`ingest`.

        Raises
        ------
        orjson.JSONDecodeError
            When the body is not JSON.
        """
        with self.ingestion():
            try:
                items = _ARRAY.decode(body)
            except (msgspec.DecodeError, UnicodeDecodeError):
                return self._ingest(orjson.loads(body), batch_id)
            key = _batch_id(batch_id)
            result = IngestResult(received=len(items))
            records: list[Record] = []
            sources: list[bytes | None] = []
            now = time.time()
            for index, item in enumerate(items):
                text = bytes(item)
                record = quick_record(text)
                try:
                    if record is None:
                        record = parse_record(orjson.loads(text))
                        text = None
                    admitted = self._admit(record, now)
                except RecordError as err:
                    result.reject(index, err)
                    continue
                except orjson.JSONDecodeError:
                    # msgspec delimits an array's items without checking all their text:
                    # let the whole body fail as ingest would have it fail.
                    return self._ingest(orjson.loads(body), batch_id)
                records.append(admitted)
                sources.append(text if admitted is record else None)
            self.metrics.rejected.labels(via="telemetry").inc(result.rejected)
            return self._store(records, result, "telemetry", key, sources)

    def _ingest(self, raw: Any, batch_id: str | None = None) -> IngestResult:
        if isinstance(raw, dict) and "records" in raw:
            batch_id = raw.get("batch_id", batch_id)
            raw = raw["records"]
        batch_id = _batch_id(batch_id)
        if not isinstance(raw, list):
            raise RecordError("body", "expected a JSON array of telemetry records")
        result = IngestResult(received=len(raw))
        records: list[Record] = []
        now = time.time()
        for index, item in enumerate(raw):
            try:
                records.append(self._admit(parse_record(item), now))
            except RecordError as err:
                result.reject(index, err)
        self.metrics.rejected.labels(via="telemetry").inc(result.rejected)
        return self._store(records, result, "telemetry", batch_id)

    def _ingest_otlp(self, body: Any, batch_id: str | None = None) -> IngestResult:
        batch_id = _batch_id(batch_id)
        batch = spans_to_raw_records(body, self.settings.server_map)
        result = IngestResult(received=len(batch.records) + len(batch.errors) + batch.skipped,
                              skipped=batch.skipped)
        for where, err in batch.errors:
            result.reject(where, err)
        records: list[Record] = []
        now = time.time()
        for where, raw in batch.records:
            try:
                records.append(self._admit(parse_record(raw), now))
            except RecordError as err:
                result.reject(where, err)
        self.metrics.rejected.labels(via="traces").inc(result.rejected)
        return self._store(records, result, "traces", batch_id)

    # --- champions ----------------------------------------------------------
    def _load_registry(self) -> None:
        try:
            self.reload()
        except Exception as err:
            log.error("registry not loaded: %s", err)

    def reload(self) -> dict[str, Any]:
        """Read the registry's champions and swap them in at once; return :meth:`models`."""
        with self._reload_lock:
            uri = resolve_tracking_uri(self.settings.tracking_uri)
            if uri is None:
                self.registry_state = "no registry (answers from online models and priors)"
                return self.models()
            try:
                champions = keep_serving(load_champions(uri), self.champions)
            except Exception as err:
                # Credentials in a URI inside the message are not shown.
                message = re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", str(err))
                self.registry_state = f"error: {type(err).__name__}: {message}"
                raise
            risk = champions.get("risk")
            if risk is not None and risk.bundle is not None and risk.bundle.model.model_ is None:
                risk = None  # a base-rate champion never answers (registered by older versions)
            # One assignment each: a request sees the old set or the new one, never a mix.
            self.engine.plugin("risk").use_batch(
                None if risk is None or risk.bundle is None else risk.bundle.model,
                risk.version if risk else "")
            self.champions = champions
            self.registry_uri, self.registry_state = uri, "loaded"
            for family, champion in champions.items():
                if champion.version.isdigit():
                    self.metrics.model_version.labels(family=family, variant="batch").set(
                        int(champion.version))
            log.info("champions", extra={"event": "reload", "registry": uri,
                                         "versions": {f: c.version for f, c in champions.items()}})
            return self.models()

    def models(self) -> dict[str, Any]:
        """Each family: its decisions, champion, which variant answers, its version and figures.

        ``source`` and ``version`` are those of the variant that answers the
        family's primary decision now; ``metrics`` are the registered
        champion's figures from its last evaluation, given only when that
        champion is what answers (an online variant's figures come from
        ``predictor evaluate``, see ``why_online``).
        """
        champions = self.champions
        families = {}
        for family in online_families():
            champion = champions.get(family)
            row = next(d for d in DECISIONS if d.family == family and d.primary)
            provenance = self.engine.answer_provenance(row.name)
            answering = provenance.variant
            entry: dict[str, Any] = {
                "decision": row.name,
                "decisions": [d.name for d in DECISIONS if d.family == family],
                "source": provenance.source,
                "variant": answering,
                "version": provenance.version,
                "champion": None if champion is None else champion.describe(),
                "metrics": champion.metrics if champion and answering == "batch" else {},
                "trained_at": champion.trained_at if champion else None,
            }
            if answering != "batch":
                why = plugin_class(row.plugin).why_online
                entry["why_online"] = why or ("no batch champion is registered" if champion is None
                                              else "the champion cannot rank")
                if champion is not None:
                    entry["champion_metrics"] = champion.metrics
            families[family] = entry
        return {"families": families,
                "online": {**self.engine.status(),
                           "registry": {**self.online_registry,
                                        **({"uri": redact(self.online_registry["uri"])}
                                           if "uri" in self.online_registry else {})}},
                "registry": {"uri": redact(self.registry_uri), "state": self.registry_state}}

    # --- health -------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Whether the models are loaded and the store takes writes."""
        checks: dict[str, Any] = {"online_models": self._caught_up.is_set(),
                                  "registry": self.registry_state != "not loaded"}
        try:
            assert self.store is not None, "service not started"
            checks["store"] = self.store.writable()
        except Exception as err:
            checks["store"] = False
            checks["store_error"] = str(err)
        ready = all(checks[k] for k in ("online_models", "registry", "store"))
        state: dict[str, Any] = {"ready": ready, "checks": checks,
                                 "pending_records": self._pending, "role": self.settings.role}
        if self.settings.role == "learner":
            state["leader"] = self.leading
            if self.leading:  # how far learning is behind the shared store, in records
                state["learned_cursor"] = self.engine.cursor
                state["behind_records"] = max(0, self.store.last_id() - self.engine.cursor)
        if self.settings.role != "all":
            state["state"] = self.state_info or None
        return state
