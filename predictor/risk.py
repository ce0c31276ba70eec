"""The risk decision: how likely a server's next call is to fail, and what to do first.

:class:`RiskAssessor` keeps the leak-free history of each server
(:class:`predictor.models.history.History`: recent errors, latency trend, last health
probe) and an online failure classifier (:class:`predictor.models.risk.ServerRisk`:
one over the fleet and one per server) that learns from every call it is told
about. Above the threshold (default 0.7) it says ``prevent`` with a suggestion:
``shed_load`` when the server is saturated (queue or CPU high), ``route_away``
when it is unreachable or failing now, else ``prewarm_fallback``.

>>> assessor = RiskAssessor()
>>> answer = assessor.assess(RiskRequest(server="a", ts=0.0))
>>> answer.source, answer.prevent
('prior', False)
"""

from __future__ import annotations

import math
import operator
import threading
import time
from typing import Any

import numpy as np

from predictor.api.provenance import Provenance
from predictor.api.risk import RiskRequest, RiskResponse
from predictor.data.schema import CallRecord, HealthRecord, Record
from predictor.models.history import HISTORY_FEATURES, History
from predictor.models.risk import RISK_FEATURES, OnlineRisk, ServerRisk
from predictor.plugin import DecisionPlugin

__all__ = [
    "RiskAssessor",
    "RiskRequest",
    "RiskResponse",
]






#: The online model's inputs, in the order _x gives them.
_INPUTS = (*RISK_FEATURES, "concurrency", "attempt")
#: Calls of a run below which :meth:`RiskAssessor.learn_run` teaches the models call by
#: call: a run gathers each model's rows and makes a compiled call per model, which pays
#: for itself only past a few dozen calls (a replay teaches one or two at a time).
_ROWS_AT_ONCE = 64
#: RISK_FEATURES out of History.values.
_risk_values = operator.itemgetter(*(HISTORY_FEATURES.index(name) for name in RISK_FEATURES))


def _x(features: dict[str, float], concurrency: float = math.nan,
       attempt: float = math.nan) -> dict[str, float]:
    x = {name: features[name] for name in RISK_FEATURES}
    x["concurrency"], x["attempt"] = concurrency, attempt
    return x


def _batch_probabilities(model: Any, rows: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(rows), dtype=float)


class RiskAssessor(DecisionPlugin):
    """History and an online failure model per deployment; thread-safe.

    Attributes
    ----------
    online_while_batch
        Whether the online model keeps learning while a batch classifier
        answers (default ``True``: the service does, so that its checkpoints
        and a fallback to the online model stay current). A replay that only
        measures the batch classifier's answers sets it to ``False``: those
        answers read the history alone, which learns either way.
    """

    record_fields = frozenset({
        "ts", "kind", "server", "tool", "success", "latency_ms", "concurrency", "attempt",
        "reachable", "cpu_pct", "mem_pct", "queue_depth"})

    #: See the class docstring; a class default, so checkpoints from before it load.
    online_while_batch = True

    def __init__(self) -> None:
        super().__init__()
        self.history = History()
        self.model = ServerRisk()
        self.observations = 0
        self.batch: tuple[Any, str] | None = None
        self._lock = threading.Lock()

    family = "risk"

    def learn_call(self, record: CallRecord) -> None:
        self.observe_call(record.epoch, record.server, record.tool, success=bool(record.success),
                          latency_ms=record.latency_ms,
                          concurrency=None if record.concurrency is None else float(
                              record.concurrency),
                          attempt=None if record.attempt is None else float(record.attempt))

    def learn_run(self, records: list[Record]) -> None:
        """Learn a run of records: the history as record by record, then the models from
        the calls' rows all at once (they read nothing of the history but those rows)."""
        rows, servers, failed = [], [], []
        with self._lock:
            for record in records:
                if isinstance(record, CallRecord):
                    success = bool(record.success)
                    row = self._step_call(
                        record.epoch, record.server, record.tool, success, record.latency_ms,
                        None if record.concurrency is None else float(record.concurrency),
                        None if record.attempt is None else float(record.attempt))
                    if row is not None:
                        rows.append(row)
                        servers.append(record.server)
                        failed.append(not success)
                elif isinstance(record, HealthRecord):
                    self._step_probe(record.epoch, record.server, record.reachable,
                                     record.latency_ms, record.cpu_pct, record.mem_pct,
                                     None if record.queue_depth is None else float(
                                         record.queue_depth))
            if len(rows) >= _ROWS_AT_ONCE:
                self.model.learn_rows(servers, _INPUTS, np.array(rows, dtype=float),
                                      np.array(failed, dtype=bool))
            else:  # a few calls (a replay's, a gateway's): the arrays of a run cost more
                learn_row = self.model.learn_row
                for server, row, fails in zip(servers, rows, failed, strict=True):
                    learn_row(server, _INPUTS, np.array(row), fails)

    def learn_health(self, record: HealthRecord) -> None:
        self.observe_health(record.epoch, record.server, reachable=record.reachable,
                            latency_ms=record.latency_ms, cpu_pct=record.cpu_pct,
                            mem_pct=record.mem_pct,
                            queue_depth=None if record.queue_depth is None else float(
                                record.queue_depth))

    def __getstate__(self) -> dict[str, Any]:
        # A registry champion is serving configuration, not learned state: the
        # service hands it over again after a restore (Service.reload).
        state = super().__getstate__()
        state["batch"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if isinstance(self.model, OnlineRisk):  # a checkpoint from before per-server models
            self.model = ServerRisk.from_fleet(self.model)

    def provenance(self) -> Provenance:
        batch = self.batch
        if batch is not None:
            return Provenance(family="risk", variant="batch", version=batch[1], source="batch")
        return Provenance.of("risk", observations=self.observations,
                             learned=self.model.learned)

    def use_batch(self, model: Any | None, version: str = "") -> None:
        """Answer with a trained batch classifier, or (``None``) with the online one again.

        ``model.predict_proba(X)`` takes rows of :data:`predictor.models.risk.RISK_FEATURES`
        then concurrency and attempt (as :class:`predictor.models.risk.BatchRisk` does) and
        returns the failure probabilities. The history still learns online.
        """
        self.batch = None if model is None else (model, version)

    def observe_health(self, ts: float, server: str, *, reachable: bool,
                       latency_ms: float | None = None, cpu_pct: float | None = None,
                       mem_pct: float | None = None, queue_depth: float | None = None) -> None:
        with self._lock:
            self._step_probe(ts, server, reachable, latency_ms, cpu_pct, mem_pct, queue_depth)

    def _step_probe(self, ts: float, server: str, reachable: bool, latency_ms: float | None,
                    cpu_pct: float | None, mem_pct: float | None,
                    queue_depth: float | None) -> None:
        """A probe into the history (NaN where unknown); the caller holds the lock."""
        nan = math.nan
        self.history.observe_health(
            ts, server, reachable=float(reachable),
            latency_ms=nan if latency_ms is None else latency_ms,
            cpu_pct=nan if cpu_pct is None else cpu_pct,
            mem_pct=nan if mem_pct is None else mem_pct,
            queue_depth=nan if queue_depth is None else queue_depth)

    def observe_call(self, ts: float, server: str, tool: str, *, success: bool,
                     latency_ms: float | None = None, concurrency: float | None = None,
                     attempt: float | None = None) -> None:
        """Learn from a finished call: its features as of its start, then its outcome."""
        with self._lock:
            row = self._step_call(ts, server, tool, success, latency_ms, concurrency, attempt)
            if row is not None:
                self.model.learn_row(server, _INPUTS, np.array(row), not success)

    def _step_call(self, ts: float, server: str, tool: str, success: bool,
                   latency_ms: float | None, concurrency: float | None,
                   attempt: float | None) -> tuple[float, ...] | None:
        """A call into the history; the models' inputs for it (the inputs ``_x`` gives, as
        one tuple: no dictionary per call), or ``None`` when the online models do not
        learn (a batch classifier answers alone). The caller holds the lock."""
        nan = math.nan
        self.observations += 1
        history = self.history
        concurrency = nan if concurrency is None else concurrency
        row = None
        if self.batch is None or self.online_while_batch:
            row = (*_risk_values(history.values(ts, server, tool)), concurrency,
                   nan if attempt is None else attempt)
        else:
            # What features() would have applied, so the history moves as it would.
            history.advance(ts)
        history.observe_call(ts, server, tool,
                             latency_ms=nan if latency_ms is None else latency_ms,
                             success=float(success), concurrency=concurrency)
        return row

    def _inputs(self, req: RiskRequest) -> tuple[dict[str, float], dict[str, float]]:
        """The history's features for ``req`` at its time, and the model's inputs from them;
        the caller holds the lock."""
        now = (self.clock if not math.isnan(self.clock) else time.time()) if req.ts is None \
            else req.ts
        features = self.history.features(now, req.server, req.tool or "")
        return features, _x(features,
                            math.nan if req.concurrency is None else float(req.concurrency),
                            math.nan if req.attempt is None else float(req.attempt))

    def inputs(self, req: RiskRequest) -> list[float]:
        """What :meth:`assess` gives a batch classifier for ``req`` now: one row of
        :data:`predictor.models.risk.RISK_FEATURES`, concurrency and attempt.

        A replay that measures the batch classifier collects these rows as the
        calls come and scores them at once (:meth:`batch_probabilities`): the
        classifier reads nothing else, and scoring rows one at a time pays
        scikit-learn's checks per row.
        """
        with self._lock:
            return list(self._inputs(req)[1].values())

    def batch_probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The batch classifier's failure probabilities for ``rows`` (:meth:`inputs`), as
        :meth:`assess` computes them (it answers each rounded to four places)."""
        batch = self.batch
        if batch is None:
            raise ValueError("no batch classifier answers: see use_batch")
        return _batch_probabilities(batch[0], rows)

    def assess(self, req: RiskRequest) -> RiskResponse:
        with self._lock:
            features, x = self._inputs(req)
            batch = self.batch
            if batch is None:
                p = self.model.predict_proba(req.server, x)
                learned = self.model.learned
        if batch is not None:
            row = np.array([list(x.values())], dtype=float)
            p, learned = float(_batch_probabilities(batch[0], row)[0]), True
        prevent = p > req.threshold
        suggestion = "none"
        if prevent:
            queue, cpu = features["probe_queue"], features["probe_cpu"]
            if features["probe_reachable"] == 0 or features["srv_recent_error_rate"] >= 0.5:
                suggestion = "route_away"
            elif (not math.isnan(cpu) and cpu > 70) or (not math.isnan(queue) and queue > 10):
                suggestion = "shed_load"
            else:
                suggestion = "prewarm_fallback"
        drivers = {k: (None if math.isnan(features[k]) else round(features[k], 4)) for k in (
            "srv_recent_error_rate", "srv_error_rate", "hist_latency_trend", "probe_reachable",
            "probe_mem", "probe_cpu", "probe_queue")}
        return RiskResponse(server=req.server, failure_probability=round(p, 4), prevent=prevent,
                            threshold=req.threshold, suggestion=suggestion, drivers=drivers,
                            source="batch" if batch else "online" if learned else "prior",
                            model=Provenance(family="risk", variant="batch", version=batch[1],
                                             source="batch") if batch else
                            Provenance.of("risk", observations=self.observations,
                                          learned=learned))
