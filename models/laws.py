"""Per-tool resource laws: the allocate decision's estimator.

:class:`ToolLaws` is a river multi-target regressor keyed by ``x["tool"]``.
For each tool it keeps running moments (Welford) of the log of a call's
duration, its tokens, its memory and its CPU, shrunk towards a prior spread
while few calls are known (5 pseudo-calls). Durations are log-normal here:
the allocate decision turns the log moments into the mean and variance of a
call, then of a phase of several calls.

A tool never seen is not given a fixed guess once three or more tools are
known: its law is the population of known tools (the mean of their means,
and the spread of those means plus their typical spread), so the interval
of a new tool is as wide as the tools differ. A fixed prior is confidently
wrong when a new workload arrives (a new workflow system's tools), and
covers few of its calls until they finish.

The width of the intervals is calibrated online (:meth:`ToolLaws.z`): each
value learned is checked against the interval its tool's law gave when the
call started (the call's ``start`` and ``end`` in ``x``, when given), and
each coverage level's quantile moves with its misses (adaptive conformal
inference). The normal quantile is right only when the laws are; when calls
of a new workload, or a tool's new regime, arrive in bursts, the laws lag
and the calibrated quantile widens until the share of calls inside is the
level asked for.

>>> laws = ToolLaws()
>>> laws.law("search", "tokens")
(500.0, 250000.0, False)
>>> for tokens in (100.0, 300.0):
...     laws.learn_one({"tool": "search"}, {"tokens": tokens, "latency_ms": 999.0})
>>> mean, var, learned = laws.law("search", "tokens")
>>> mean, round(var), learned
(200.0, 211667, True)
>>> round(laws.predict_one({"tool": "search"})["log_duration"], 3)
6.908
>>> for tool, ms in (("a", 10.0), ("b", 100.0), ("c", 1000.0)):
...     laws.learn_one({"tool": tool}, {"latency_ms": ms})
>>> mean, var, learned = laws.law("never-seen", "log_duration")
>>> round(mean, 2), round(var, 2), learned
(5.21, 6.8, False)
>>> round(laws.z("log_duration", 0.8), 4)  # one value met a learned law, inside: narrower
1.2759
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
from river import base

from predictor.models.kernels import kernel

__all__ = ["LEVELS", "PRIORS", "ToolLaws"]

#: Mean and variance assumed of a tool never seen, per quantity.
PRIORS = {"log_duration": (math.log(1000.0), 1.0), "tokens": (500.0, 500.0**2),
          "memory_mb": (100.0, 100.0**2), "cpu_pct": (20.0, 15.0**2)}
#: Which outcome each quantity is learned from (duration on a log scale).
_SOURCES = {"log_duration": "latency_ms", "tokens": "tokens", "memory_mb": "mem_mb",
            "cpu_pct": "cpu_pct"}
#: Interval coverages whose width is calibrated online.
LEVELS = (0.5, 0.8, 0.9, 0.95)
_NORMAL = NormalDist()
_LOWEST_MISS = 1e-4
_HIGHEST_MISS = 1.0 - _LOWEST_MISS
_TARGETS = tuple(1.0 - level for level in LEVELS)
_TARGETS_ARRAY = np.array(_TARGETS)
#: The quantities in the order of their rows of miss rates (two per quantity).
_KEYS = tuple(_SOURCES)
_PRIOR_VARS = tuple(PRIORS[key][1] for key in _KEYS)
_SQRT2 = math.sqrt(2.0)
#: Values learned whose calibration may wait for the miss rates to be read (bounded memory).
_PENDING_AT_MOST = 4096
#: A tool's law is remembered after each of its first calls, then each time its count
#: grew by this factor: a bounded history (log of the count) of what was served when.
_SNAPSHOT_GROWTH = 1.25
_SNAPSHOT_EVERY_CALL = 8

Law = tuple[float, float, bool]


@dataclass
class _Moments:
    n: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def var(self, prior: float) -> float:
        # Shrink towards the prior spread until there are enough observations.
        return (self.m2 + 5 * prior) / (self.n + 5 - 1) if self.n else prior


@dataclass
class _History:
    """What a tool's laws were after some of its calls, by when those calls ended."""

    calls: int = 0
    last_end: float = -math.inf
    #: ``(end, calls, laws)``: ``laws`` maps a quantity to ``(mean, var)``, absent when
    #: none of it was learned yet.
    snapshots: list[tuple[float, int, dict[str, tuple[float, float]]]] = field(
        default_factory=list)


class ToolLaws(base.MultiTargetRegressor):
    """Running moments of duration (log), tokens, memory and CPU per tool.

    ``learn_one(x, y)``: ``x["tool"]`` names the tool, and ``x["start"]`` and
    ``x["end"]`` (epoch seconds, optional) say when the call ran; ``y`` holds
    whichever of ``latency_ms``, ``tokens``, ``mem_mb`` and ``cpu_pct`` are
    known. ``predict_one(x)``: the mean of each quantity (the prior's for an
    unseen tool); :meth:`law` adds the variance and whether it was learned,
    and :meth:`z` the calibrated quantile of each interval level.
    """

    #: Known tools needed before a new tool's law is their population's.
    MIN_TOOLS = 3
    #: Step of the adaptive conformal update of each level's miss rate.
    CALIBRATION_RATE = 0.01

    def __init__(self) -> None:
        self._stats: dict[Any, dict[str, _Moments]] = {}
        self._defaults()

    def _defaults(self) -> None:
        # States saved before these fields existed get them on load (__setstate__).
        state = self.__dict__
        state.setdefault("_stats", {})
        state.setdefault("_miss_rates", {
            key: {learned: [1.0 - level for level in LEVELS] for learned in (False, True)}
            for key in PRIORS})
        state.setdefault("_histories", {})
        state.setdefault("_values", 0)
        state.setdefault("_pending", array("d"))
        # Per quantity: (values learned when computed, the population law).
        state["_populations"] = {}
        for stale in ("_population", "_learned_at_population", "_learned", "_sums"):
            state.pop(stale, None)

    def __getstate__(self) -> dict:
        self.calibrate()  # a saved state holds its rates, not values waiting for them
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._defaults()

    def learn_one(self, x: dict, y: dict) -> None:
        self.learn_values(x.get("tool"), x.get("start"), x.get("end"), y.get("latency_ms"),
                          y.get("tokens"), y.get("mem_mb"), y.get("cpu_pct"))

    def learn_values(self, tool: Any, start: Any, end: Any, latency_ms: Any, tokens: Any,
                     mem_mb: Any, cpu_pct: Any) -> None:
        """:meth:`learn_one` without its dictionaries: what the allocate decision calls."""
        stats = self._stats.get(tool)
        if stats is None:
            stats = self._stats[tool] = {k: _Moments() for k in PRIORS}
        at_start: dict[str, tuple[float, float]] | None = None
        checked = False
        pending = self._pending
        for index, (key, value) in enumerate(zip(_KEYS, (latency_ms, tokens, mem_mb, cpu_pct),
                                                 strict=True)):
            if value is None or isinstance(value, str):
                continue
            value = float(value)
            if index == 0:
                value = math.log1p(value) if value >= 0 else math.nan
            if not math.isfinite(value):
                continue
            if not checked:
                at_start, checked = self._at_start(tool, start), True
            moments = stats[key]
            n = moments.n
            if at_start is None:
                if n:
                    mean, var, learned = moments.mean, (moments.m2 + 5 * _PRIOR_VARS[index]) / (
                        n + 4), True
                else:
                    mean, var, learned = self._unseen(key)
            else:
                found = at_start.get(key)
                mean, var, learned = (*found, True) if found is not None else self._unseen(key)
            # The value's two-sided normal tail beyond its score, kept until the levels' miss
            # rates are next read (:meth:`calibrate`): computing them is what costs.
            score = abs(value - mean) / math.sqrt(var) if var > 0 else math.inf
            pending.append(2 * index + learned)
            pending.append(math.erfc(score / _SQRT2))
            if not n:  # a tool joins the population
                self._populations.pop(key, None)
            # Welford's step (_Moments.add), inlined: this runs for every value learned.
            n += 1
            moments.n = n
            delta = value - moments.mean
            moments.mean += delta / n
            moments.m2 += delta * (value - moments.mean)
        if checked:
            self._values += 1
            self._remember(tool, stats, end)
            if len(pending) >= 2 * _PENDING_AT_MOST:
                self.calibrate()

    def _at_start(self, tool: Any, start: Any) -> dict[str, tuple[float, float]] | None:
        """The tool's laws when a call started at ``start``; ``None`` when they are today's."""
        history = self._histories.get(tool)
        if history is None or not isinstance(start, int | float) or history.last_end <= start:
            return None
        # Snapshots are in the order of their end times: the last one ended by ``start``.
        before = bisect.bisect_right(history.snapshots, start, key=_end)
        return history.snapshots[before - 1][2] if before else {}

    def _remember(self, tool: Any, stats: dict[str, _Moments], end: Any) -> None:
        history = self._histories.get(tool)
        if history is None:
            history = self._histories[tool] = _History()
        history.calls += 1
        if isinstance(end, int | float) and end > history.last_end:
            history.last_end = float(end)
        snapshots = history.snapshots
        if (history.calls <= _SNAPSHOT_EVERY_CALL
                or history.calls >= snapshots[-1][1] * _SNAPSHOT_GROWTH):
            laws = {key: (m.mean, m.var(PRIORS[key][1])) for key, m in stats.items() if m.n}
            snapshots.append((history.last_end, history.calls, laws))

    def calibrate(self) -> None:
        """Move each level's miss rate with the values learned since the rates were read.

        Adaptive conformal inference (Gibbs and Candes, 2021): each value is
        checked against the one-call interval each level gave, and that
        level's miss rate moves against its error. Whatever the sequence, the
        long-run share of values outside the interval then approaches 1 -
        level. Tools never seen and tools learned are calibrated apart (a
        Mondrian split): a population law's misses say nothing about a learned
        law's, and known tools' calls far outnumber new ones'. The values wait
        in ``_pending`` as ``2 * quantity + learned`` then ``tail``, flat floats rather
        than a tuple per value (tuples that live until the rates are read made the
        collector's full passes more frequent), in the order they
        were learned, and are applied in that order by a compiled loop.
        """
        pending = self._pending
        if not pending:
            return
        values = np.array(pending).reshape(-1, 2)
        del pending[:]
        groups, tails = values[:, 0].astype(np.intp), values[:, 1].copy()
        rates = np.array([self._miss_rates[key][learned] for key in _KEYS
                          for learned in (False, True)])
        _apply_misses(groups, tails, rates,
                      _TARGETS_ARRAY, self.CALIBRATION_RATE, _LOWEST_MISS, _HIGHEST_MISS)
        for index, key in enumerate(_KEYS):
            for learned in (False, True):
                self._miss_rates[key][learned] = rates[2 * index + learned].tolist()

    def z(self, key: str, coverage: float, learned: bool = True) -> float:
        """The normal quantile that gives ``coverage`` for quantity ``key`` now.

        It starts at the normal one and is calibrated on each value learned
        (adaptive conformal inference), apart for laws ``learned`` and for
        tools never seen; ``coverage`` is one of :data:`LEVELS`.
        """
        self.calibrate()
        return _quantile(self._miss_rates[key][learned][LEVELS.index(coverage)])

    def law(self, tool: Any, key: str) -> Law:
        """``(mean, variance, learned)`` of quantity ``key`` for ``tool``."""
        moments = self._stats.get(tool, {}).get(key)
        if moments is None or moments.n == 0:
            return self._unseen(key)
        return moments.mean, moments.var(PRIORS[key][1]), True

    def _unseen(self, key: str) -> Law:
        population = self.population(key)
        if population is not None:
            return population[0], population[1], False
        return PRIORS[key][0], PRIORS[key][1], False

    def population(self, key: str) -> tuple[float, float] | None:
        """``(mean, variance)`` of quantity ``key`` over the known tools' laws.

        The mean of their means, and the variance of those means plus the
        mean of their variances; ``None`` with fewer than :attr:`MIN_TOOLS`.
        Recomputed when a tool joined, or after as many values were learned
        as there are tools (at least 256): it moves slowly, and this keeps its
        cost per value learned constant.
        """
        cached = self._populations.get(key)
        tools = len(self._stats)
        if cached is not None and self._values - cached[0] < max(256, tools):
            return cached[1]
        prior_var = PRIORS[key][1]
        laws = [(m.mean, m.var(prior_var)) for stats in self._stats.values()
                if (m := stats[key]).n > 0]
        population = None
        if len(laws) >= self.MIN_TOOLS:
            means = [mean for mean, _ in laws]
            k = len(means)
            centre = sum(means) / k
            # A new tool's mean is one more draw: (1 + 1/k) of the spread of the means (the
            # centre itself is estimated from k of them).
            between = sum((mean - centre) ** 2 for mean in means) / (k - 1) * (1 + 1 / k)
            population = (centre, between + sum(var for _, var in laws) / k)
        self._populations[key] = (self._values, population)
        return population

    def predict_one(self, x: dict) -> dict[str, float]:
        return {key: self.law(x.get("tool"), key)[0] for key in PRIORS}

    def durations_learned(self) -> int:
        """How many durations were learned, over all tools."""
        return int(sum(s["log_duration"].n for s in self._stats.values()))


@kernel
def _apply_misses(groups, tails, rates, targets, step, lowest, highest
                  ):  # pragma: no cover - compiled
    """Each value's step of its group's miss rates, in order (``ToolLaws.calibrate``).

    A value is outside the interval of miss rate r exactly when the two-sided
    normal tail beyond its score is below r: one ``erfc`` per value rather than a
    quantile per level.
    """
    for v in range(groups.size):
        g = groups[v]
        tail = tails[v]
        for i in range(targets.size):
            rate = rates[g, i]
            # The rate the served quantile uses: past the ends, the interval is all or none.
            served = lowest if rate < lowest else (highest if rate > highest else rate)
            rate += step * (targets[i] - (1.0 if tail < served else 0.0))
            # Bounded: a rate run far out (a quantity that never varies) would take long
            # to return when it starts to.
            rates[g, i] = -1.0 if rate < -1.0 else (2.0 if rate > 2.0 else rate)


def _end(snapshot: tuple[float, int, dict]) -> float:
    return snapshot[0]


def _quantile(miss_rate: float) -> float:
    # A miss rate pushed to or past 0 or 1 asks for an interval of almost all or none.
    return _NORMAL.inv_cdf(1.0 - min(max(miss_rate, _LOWEST_MISS), _HIGHEST_MISS) / 2.0)
