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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from river import base

__all__ = ["PRIORS", "ToolLaws"]

#: Mean and variance assumed of a tool never seen, per quantity.
PRIORS = {"log_duration": (math.log(1000.0), 1.0), "tokens": (500.0, 500.0**2),
          "memory_mb": (100.0, 100.0**2), "cpu_pct": (20.0, 15.0**2)}
#: Which outcome each quantity is learned from (duration on a log scale).
_SOURCES = {"log_duration": "latency_ms", "tokens": "tokens", "memory_mb": "mem_mb",
            "cpu_pct": "cpu_pct"}


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


class ToolLaws(base.MultiTargetRegressor):
    """Running moments of duration (log), tokens, memory and CPU per tool.

    ``learn_one(x, y)``: ``x["tool"]`` names the tool; ``y`` holds whichever of
    ``latency_ms``, ``tokens``, ``mem_mb`` and ``cpu_pct`` are known.
    ``predict_one(x)``: the mean of each quantity (the prior's for an unseen
    tool); :meth:`law` adds the variance and whether it was learned.
    """

    #: Known tools needed before a new tool's law is their population's.
    MIN_TOOLS = 3

    def __init__(self) -> None:
        self._stats: dict[Any, dict[str, _Moments]] = {}
        self._population: dict[str, tuple[float, float] | None] = {}
        self._learned_at_population = -1
        self._learned = 0

    def learn_one(self, x: dict, y: dict) -> None:
        self._learned = getattr(self, "_learned", 0) + 1
        stats = self._stats.setdefault(x.get("tool"), {k: _Moments() for k in PRIORS})
        for key, source in _SOURCES.items():
            value = y.get(source)
            if value is None or isinstance(value, str):
                continue
            value = float(value)
            if key == "log_duration":
                value = math.log1p(value) if value >= 0 else math.nan
            if math.isfinite(value):
                stats[key].add(value)

    def law(self, tool: Any, key: str) -> tuple[float, float, bool]:
        """``(mean, variance, learned)`` of quantity ``key`` for ``tool``."""
        prior_mean, prior_var = PRIORS[key]
        moments = self._stats.get(tool, {}).get(key)
        if moments is None or moments.n == 0:
            population = self.population(key)
            if population is not None:
                return population[0], population[1], False
            return prior_mean, prior_var, False
        return moments.mean, moments.var(prior_var), True

    def population(self, key: str) -> tuple[float, float] | None:
        """``(mean, variance)`` of quantity ``key`` over the known tools' laws.

        The mean of their means, and the variance of those means plus the
        mean of their variances; ``None`` with fewer than :attr:`MIN_TOOLS`.
        Recomputed only after something new was learned.
        """
        if getattr(self, "_learned_at_population", -1) != getattr(self, "_learned", 0):
            self._population = {}
            self._learned_at_population = getattr(self, "_learned", 0)
        if key not in self._population:
            prior_var = PRIORS[key][1]
            laws = [(m.mean, m.var(prior_var)) for stats in self._stats.values()
                    if (m := stats[key]).n > 0]
            if len(laws) < self.MIN_TOOLS:
                self._population[key] = None
            else:
                means = [mean for mean, _ in laws]
                k = len(means)
                centre = sum(means) / k
                # A new tool's mean is one more draw: (1 + 1/k) of the spread of the
                # means (the centre itself is estimated from k of them).
                between = sum((mean - centre) ** 2 for mean in means) / (k - 1) * (1 + 1 / k)
                within = sum(var for _, var in laws) / k
                self._population[key] = (centre, between + within)
        return self._population[key]

    def predict_one(self, x: dict) -> dict[str, float]:
        return {key: self.law(x.get("tool"), key)[0] for key in PRIORS}

    def durations_learned(self) -> int:
        """How many durations were learned, over all tools."""
        return int(sum(s["log_duration"].n for s in self._stats.values()))
