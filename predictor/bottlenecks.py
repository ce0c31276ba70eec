"""The bottlenecks decision: where the system breaches, or is about to breach, its alerts.

:class:`BottleneckFinder` keeps the calls of the last two windows per
(server, tool) and the last health probe per server, and an ADWIN drift
detector per server over its log latency. For each (server, tool) of the
current window it checks the alert thresholds (defaults from the seed
pattern: p95 latency 2,000 ms, throughput below 50 calls per minute,
memory 80 %, CPU 70 %) now and one window ahead (the p95 extrapolated by
its growth from the previous window). Throughput counts only where it fell
below the threshold from at or above it in the previous window: a quiet
tool is not a bottleneck. Each finding carries the suggested action:
``scale`` for CPU, memory or throughput, ``reroute`` for latency.

>>> finder = BottleneckFinder(window_s=60)
>>> for i in range(30):
...     finder.observe_call(float(i), "slow", "search", latency_ms=3000.0, success=True)
>>> [(f.server, f.metric, f.action) for f in finder.find(now=31.0).findings]
[('slow', 'latency_p95_ms', 'reroute')]
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np
from river import drift

from predictor.api.bottlenecks import BottlenecksRequest, BottlenecksResponse, Finding, Thresholds
from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord, HealthRecord
from predictor.plugin import DecisionPlugin

__all__ = [
    "BottleneckFinder",
    "BottlenecksRequest",
    "BottlenecksResponse",
    "Finding",
    "Thresholds",
]










class BottleneckFinder(DecisionPlugin):
    """Recent telemetry, thresholds and drift detectors; thread-safe."""

    def __init__(self, *, window_s: float = 300.0, thresholds: Thresholds | None = None) -> None:
        super().__init__()
        self.window_s = window_s
        self.thresholds = thresholds or Thresholds()
        self._calls: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._probes: dict[str, tuple[float, float, float]] = {}
        self._drift: dict[str, drift.ADWIN] = {}
        self._alarms: dict[str, deque[float]] = {}
        self.observations = 0
        self._lock = threading.Lock()

    family = "performance"

    def learn_call(self, record: CallRecord) -> None:
        self.observe_call(record.epoch, record.server, record.tool,
                          latency_ms=record.latency_ms, success=bool(record.success))

    def learn_health(self, record: HealthRecord) -> None:
        self.observe_health(record.epoch, record.server, cpu_pct=record.cpu_pct,
                            mem_pct=record.mem_pct)

    def bottlenecks(self, req: BottlenecksRequest) -> BottlenecksResponse:
        """Answer a request: at ``req.now``, or at the latest telemetry time."""
        now = req.now
        if now is None and not math.isnan(self.clock):
            now = self.clock
        return self.find(now, req.thresholds)

    def observe_call(self, ts: float, server: str, tool: str, *, latency_ms: float | None,
                     success: bool | None = None) -> None:
        with self._lock:
            self.observations += 1
            calls = self._calls.setdefault((server, tool), deque())
            calls.append((ts, math.nan if latency_ms is None else latency_ms))
            while calls and calls[0][0] < ts - 2 * self.window_s:
                calls.popleft()
            if latency_ms is not None:
                detector = self._drift.get(server)
                if detector is None:  # not setdefault: a detector is costly to build
                    detector = self._drift[server] = drift.ADWIN(delta=0.002)
                detector.update(math.log1p(latency_ms))
                if detector.drift_detected:
                    self._alarms.setdefault(server, deque(maxlen=100)).append(ts)

    def observe_health(self, ts: float, server: str, *, cpu_pct: float | None = None,
                       mem_pct: float | None = None) -> None:
        with self._lock:
            self._probes[server] = (ts, math.nan if cpu_pct is None else cpu_pct,
                                    math.nan if mem_pct is None else mem_pct)

    def find(self, now: float | None = None,
             thresholds: Thresholds | None = None) -> BottlenecksResponse:
        now = time.time() if now is None else now
        limits = thresholds or self.thresholds
        start, previous = now - self.window_s, now - 2 * self.window_s
        minutes = self.window_s / 60.0
        findings: list[Finding] = []

        def add(server, tool, metric, value, threshold, when, action, higher_is_worse=True):
            ratio = value / threshold if threshold else 1.0
            severity = ratio if higher_is_worse else (1 / ratio if ratio else 10.0)
            findings.append(Finding(server=server, tool=tool, metric=metric,
                                    value=round(value, 3), threshold=threshold, when=when,
                                    action=action, severity=round(severity, 3)))

        with self._lock:
            for (server, tool), calls in self._calls.items():
                now_lat = np.array([lat for ts, lat in calls if ts >= start], dtype=float)
                old_lat = np.array([lat for ts, lat in calls if previous <= ts < start],
                                   dtype=float)
                if len(now_lat) == 0:
                    continue
                known = now_lat[~np.isnan(now_lat)]
                if len(known):
                    p95 = float(np.percentile(known, 95))
                    if p95 > limits.latency_p95_ms:
                        add(server, tool, "latency_p95_ms", p95, limits.latency_p95_ms, "now",
                            "reroute")
                    else:
                        old_known = old_lat[~np.isnan(old_lat)]
                        if len(old_known):
                            growth = p95 / max(float(np.percentile(old_known, 95)), 1e-9)
                            ahead = p95 * min(growth, 3.0)
                            if ahead > limits.latency_p95_ms:
                                add(server, tool, "latency_p95_ms", ahead,
                                    limits.latency_p95_ms, "forecast", "reroute")
                rate, old_rate = len(now_lat) / minutes, len(old_lat) / minutes
                if rate < limits.throughput_per_min <= old_rate:
                    add(server, tool, "throughput_per_min", rate, limits.throughput_per_min,
                        "now", "scale", higher_is_worse=False)
            for server, (probed, cpu, mem) in self._probes.items():
                if not start <= probed <= now:
                    continue  # a probe outside the window says nothing about "now"
                if not math.isnan(cpu) and cpu > limits.cpu_pct:
                    add(server, None, "cpu_pct", cpu, limits.cpu_pct, "now", "scale")
                if not math.isnan(mem) and mem > limits.memory_pct:
                    add(server, None, "memory_pct", mem, limits.memory_pct, "now", "scale")
            alarms = {server: sum(1 for ts in times if ts >= start)
                      for server, times in self._alarms.items()}
        findings.sort(key=lambda f: -f.severity)
        drifts = {k: v for k, v in alarms.items() if v}
        if drifts and not findings:
            source = "online"  # only the drift detectors have something to say
        else:
            source = "rule" if findings or self.observations else "prior"
        return BottlenecksResponse(findings=findings, drift_alarms=drifts,
                                   window_s=self.window_s, source=source,
                                   model=Provenance(family="performance", variant="rule",
                                                    version=str(self.observations),
                                                    source="rule" if self.observations
                                                    else "prior"))
