"""The allocate decision: what a workflow will need, per phase and in total, with intervals.

:class:`Allocator` learns per tool, from every call it is told about, the
log-normal law of its duration (mean and variance of log latency), and the
mean and variance of its tokens (input plus output), memory and CPU. A
phase of ``n`` sequential calls then needs ``n`` times a call's mean, with a
normal-approximation interval (``coverage``, default 80 %) from ``n`` times
a call's variance; memory and CPU are per call (the phase's peak need).
The intervals' quantile is not the normal one but calibrated online on
every call learned (:meth:`predictor.models.laws.ToolLaws.z`), so that 80 %
intervals cover about 80 % of calls when the laws lag a new workload.
Before any telemetry for a tool, priors answer (1 s, 500 tokens, 100 MB,
20 % CPU, wide spreads) and the answer says ``source: "prior"``.

``adjust`` compares what the finished phases actually used with their
intervals and re-estimates the total as actual use plus the predicted
remainder.

>>> allocator = Allocator()
>>> for _ in range(50):
...     allocator.observe("search", latency_ms=200.0, tokens=300, mem_mb=50.0, cpu_pct=10.0)
>>> answer = allocator.allocate(AllocateRequest(phases=[PhaseSpec(phase="gather",
...                                                               tool="search", calls=3)]))
>>> round(answer.total.duration_ms.expected, -2), answer.source
(600.0, 'online')
"""

from __future__ import annotations

import math
import threading
from typing import Any

from predictor.api.allocate import (
    AdjustRequest,
    AdjustResponse,
    AllocateRequest,
    AllocateResponse,
    Deviation,
    Estimate,
    Needs,
    PhaseEstimate,
    PhaseSpec,
    Usage,
)
from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord
from predictor.models.laws import ToolLaws
from predictor.plugin import DecisionPlugin

__all__ = [
    "AdjustRequest",
    "AdjustResponse",
    "AllocateRequest",
    "AllocateResponse",
    "Allocator",
    "Deviation",
    "Estimate",
    "Needs",
    "PhaseEstimate",
    "PhaseSpec",
    "Usage",
]

_Z = {0.5: 0.6745, 0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96}


class Allocator(DecisionPlugin):
    """Per-tool resource laws learned from telemetry; thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        #: The estimator behind the answers: per-tool laws of duration, tokens, memory, CPU.
        self.laws = ToolLaws()
        self._lock = threading.Lock()

    family = "resources"
    why_online = ("allocate answers per tool from the online laws; the batch model needs a "
                  "call's history, which a workflow spec does not have")

    def __getstate__(self) -> dict[str, Any]:
        # The laws apply what waits for calibration when read (an answer, under this lock)
        # and when pickled (a checkpoint, under the engine's lock only): applied here first,
        # under this lock, so that the two never apply the same values at once.
        with self._lock:
            self.laws.calibrate()
        return super().__getstate__()

    def learn_call(self, record: CallRecord) -> None:
        r = record
        tokens = None if r.input_tokens is None and r.output_tokens is None else float(
            (r.input_tokens or 0) + (r.output_tokens or 0))
        start = r.epoch
        latency_ms = r.latency_ms
        end = start + latency_ms / 1000.0 if latency_ms is not None else start
        self.observe(r.tool, latency_ms=latency_ms, tokens=tokens, mem_mb=r.mem_mb,
                     cpu_pct=r.cpu_pct, start=start, end=end)

    def observe(self, tool: str, *, latency_ms: float | None = None, tokens: float | None = None,
                mem_mb: float | None = None, cpu_pct: float | None = None,
                start: float | None = None, end: float | None = None) -> None:
        """Learn one call of ``tool``; ``start`` and ``end`` (epoch seconds) say when it ran,
        so that its interval is calibrated against what was served when it started."""
        with self._lock:
            self.laws.learn_values(tool, start, end, latency_ms, tokens, mem_mb, cpu_pct)

    def duration(self, tool: str, calls: int = 1, coverage: float = 0.8) -> tuple[Estimate, bool]:
        """Duration of ``calls`` calls of ``tool`` with its interval, and whether it is learned."""
        with self._lock:
            return self._duration(tool, calls, coverage)

    def _duration(self, tool: str, n: int, coverage: float) -> tuple[Estimate, bool]:
        mu, s2, learned = self.laws.law(tool, "log_duration")
        z = self.laws.z("log_duration", coverage, learned)
        call_mean = math.exp(mu + s2 / 2)
        call_var = (math.exp(s2) - 1) * math.exp(2 * mu + s2)
        # The sum of n log-normal durations, itself close to log-normal (Fenton-Wilkinson):
        # its interval is skewed like the durations, not symmetric around the mean.
        mean, var = n * call_mean, n * call_var
        sigma2 = math.log1p(var / mean**2)
        centre, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
        return Estimate(expected=round(mean, 3), low=round(math.exp(centre - z * sigma), 3),
                        high=round(math.exp(centre + z * sigma), 3)), learned

    def _phase(self, spec: PhaseSpec, coverage: float) -> PhaseEstimate:
        n = spec.calls
        duration, learned = self._duration(spec.tool, n, coverage)
        t_mean, t_var, t_learned = self.laws.law(spec.tool, "tokens")
        m_mean, m_var, m_learned = self.laws.law(spec.tool, "memory_mb")
        c_mean, c_var, c_learned = self.laws.law(spec.tool, "cpu_pct")
        z = self.laws.z
        return PhaseEstimate(
            phase=spec.phase, duration_ms=duration,
            tokens=_interval(n * t_mean, n * t_var, z("tokens", coverage, t_learned)),
            memory_mb=_interval(m_mean, m_var, z("memory_mb", coverage, m_learned)),
            cpu_pct=_interval(c_mean, c_var, z("cpu_pct", coverage, c_learned), upper=100.0),
            source="online" if learned or t_learned else "prior")

    def allocate(self, req: AllocateRequest) -> AllocateResponse:
        z = _Z[req.coverage]
        with self._lock:
            phases = [self._phase(spec, req.coverage) for spec in req.phases]
            observations = self.laws.durations_learned()
        learned = any(p.source == "online" for p in phases)
        return AllocateResponse(phases=phases, total=_total(phases, z), coverage=req.coverage,
                                source="online" if learned else "prior",
                                model=Provenance.of("resources", observations=observations,
                                                    learned=learned))

    def adjust(self, req: AdjustRequest) -> AdjustResponse:
        planned = self.allocate(req)
        deviations = []
        remaining = []
        z = _Z[req.coverage]
        done_duration = done_tokens = 0.0
        for estimate in planned.phases:
            used = req.actual.get(estimate.phase)
            if used is None:
                remaining.append(estimate)
                continue
            for metric in ("duration_ms", "tokens", "memory_mb", "cpu_pct"):
                value = getattr(used, metric)
                if value is None:
                    continue
                band: Estimate = getattr(estimate, metric)
                deviations.append(Deviation(phase=estimate.phase, metric=metric, actual=value,
                                            low=band.low, high=band.high,
                                            outside=not band.low <= value <= band.high))
            done_duration += used.duration_ms or 0.0
            done_tokens += used.tokens or 0.0
        rest = _total(remaining, z) if remaining else None
        total = Needs(
            duration_ms=_shift(rest.duration_ms if rest else None, done_duration),
            tokens=_shift(rest.tokens if rest else None, done_tokens),
            memory_mb=planned.total.memory_mb, cpu_pct=planned.total.cpu_pct)
        return AdjustResponse(deviations=deviations,
                              deviating=any(d.outside for d in deviations), total=total)


def _interval(mean: float, var: float, z: float, upper: float | None = None) -> Estimate:
    sd = math.sqrt(max(var, 0.0))
    high = mean + z * sd
    return Estimate(expected=round(mean, 3), low=round(max(mean - z * sd, 0.0), 3),
                    high=round(min(high, upper) if upper is not None else high, 3))


def _total(phases: list[PhaseEstimate], z: float) -> Needs:
    def summed(metric: str) -> Estimate:
        mean = sum(getattr(p, metric).expected for p in phases)
        var = sum(((getattr(p, metric).high - getattr(p, metric).expected) / z) ** 2
                  for p in phases)
        return _interval(mean, var, z)

    def peak(metric: str) -> Estimate:
        worst = max(phases, key=lambda p: getattr(p, metric).high)
        return getattr(worst, metric)

    return Needs(duration_ms=summed("duration_ms"), tokens=summed("tokens"),
                 memory_mb=peak("memory_mb"), cpu_pct=peak("cpu_pct"))


def _shift(estimate: Estimate | None, done: float) -> Estimate:
    if estimate is None:
        return Estimate(expected=done, low=done, high=done)
    return Estimate(expected=round(estimate.expected + done, 3),
                    low=round(estimate.low + done, 3), high=round(estimate.high + done, 3))
