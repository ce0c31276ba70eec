"""What is known of each server on each task type: the select decision's estimator.

:class:`ArmStats` is a river multi-target regressor over "arms", one per
(server, task type), plus each server's reliability over all its tasks. It
learns a call at a time, with whichever outcomes are known:

* latency on a log scale as ``level + slope * load`` (``load`` is the
  server's concurrency, in tens of calls), with constant step sizes so the
  arm follows a server that degrades and recovers, and the residual
  variance, which gives the p95 and the uncertainty Thompson sampling draws
  from; a failed call's latency is learned only while nothing else is known
  (it says little about a successful call's);
* success as discounted counts (``discount`` per call, drift adaptation),
  read as a Beta posterior around a prior the caller gives
  (``capability_prior`` in ``x``, with 5 pseudo-calls), or else the rate of
  the server's recent calls of the same tool shrunk towards 0.7;
* an arm's counts fade with its **server's** calls, not its own: a task type
  asked seldom is judged by the server's recent calls of the same ``tool``
  (``x["tool"]``, over every task type) more than by its own old ones;
* cost as a moving average;
* the server's reliability over all tasks, a Beta posterior around 0.95.

>>> stats = ArmStats()
>>> round(stats.predict_one({"server": "a", "task_type": "search"})["latency_p50_ms"])
499
>>> for _ in range(30):
...     stats.learn_one({"server": "a", "task_type": "search"},
...                     {"latency_ms": 120.0, "success": 1.0, "cost_usd": 0.002})
>>> guess = stats.predict_one({"server": "a", "task_type": "search"})
>>> round(guess["latency_p50_ms"]), round(guess["success"], 3), guess["cost_usd"]
(120, 0.975, 0.002)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from river import base

__all__ = ["PARENT_WEIGHT", "PRIOR_CALLS", "UNINFORMED_SUCCESS", "ArmStats", "as_number"]

#: Faded calls of its own at which an arm's latency weighs as much as its server's calls
#: of the same tool over every task type.
PARENT_WEIGHT = 5.0
#: Pseudo-calls at 0.7 that the success prior an arm takes from its server's calls of the
#: same tool is shrunk by.
PRIOR_CALLS = 20.0
#: Success rate assumed of an arm nothing says anything about.
UNINFORMED_SUCCESS = 0.7


@dataclass
class _Arm:
    level: float
    slope: float = 0.0
    var: float = 1.0  # residual variance of log latency
    n: float = 0.0  # discounted latency observations
    ok: float = 0.0  # discounted successes
    fail: float = 0.0  # discounted failures
    cost: float = math.nan
    seen: int = 0  # its server's learned calls when it last learned one

    def faded(self, calls: int, discount: float) -> float:
        """How much of its counts is left after its server's ``calls`` since ``seen``."""
        return discount ** (calls - self.seen)

    def fade(self, calls: int, discount: float) -> None:
        """Forget by its server's calls since it last learned one, then mark it seen."""
        if calls > self.seen:
            f = self.faded(calls, discount)
            self.ok, self.fail, self.n = f * self.ok, f * self.fail, f * self.n
        self.seen = calls


def as_number(value: Any) -> float | None:
    """A learned value as a float, ``None`` when absent (``None``, NaN, text).

    >>> as_number(True), as_number(float("nan")), as_number("3")
    (1.0, None, None)
    """
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return None if math.isnan(value) else value


class ArmStats(base.MultiTargetRegressor):
    """Latency, success and cost per (server, task type), and server reliability.

    Parameters
    ----------
    discount
        Per-observation forgetting of the success counts and latency weight.
    step
        Step size of the latency level and slope updates.
    prior_latency_ms
        Latency median assumed of an arm never seen.
    prior_log_sd
        Spread of log latency assumed of an arm never seen.
    cost_alpha
        Weight of the newest cost in the cost's moving average.
    """

    def __init__(self, discount: float = 0.98, step: float = 0.15,
                 prior_latency_ms: float = 500.0, prior_log_sd: float = 1.0,
                 cost_alpha: float = 0.1) -> None:
        self.discount = discount
        self.step = step
        self.prior_latency_ms = prior_latency_ms
        self.prior_log_sd = prior_log_sd
        self.cost_alpha = cost_alpha
        self._arms: dict[tuple[Any, Any], _Arm] = {}
        self._servers: dict[Any, list[float]] = {}  # server -> [successes, failures]
        self._calls: dict[Any, int] = {}  # server -> learned calls: the clock arms fade by
        self._unseen = self._prior()  # read only: what an arm never seen answers

    @staticmethod
    def _key(x: dict) -> tuple[Any, Any]:
        return x.get("server"), x.get("task_type") or "*"

    def _prior(self) -> _Arm:
        return _Arm(level=math.log(self.prior_latency_ms), var=self.prior_log_sd ** 2)

    def knows(self, server: Any, task_type: Any) -> bool:
        """Whether any call of ``server`` on ``task_type`` was learned."""
        return (server, task_type or "*") in self._arms

    def learn_one(self, x: dict, y: dict) -> None:
        server, task = self._key(x)
        self.learn_values(server, task, x.get("tool"), as_number(x.get("load")) or 0.0,
                          as_number(y.get("latency_ms")), as_number(y.get("success")),
                          as_number(y.get("cost_usd")))

    def learn_values(self, server: Any, task: Any, tool: Any, load: float,
                     latency: float | None, success: float | None, cost: float | None
                     ) -> None:
        """:meth:`learn_one` from the values themselves (``task`` ``"*"`` when the call
        names none; each number ``None`` when unknown, never NaN): what the select
        decision teaches at every call, without two dictionaries to build and read."""
        key = (server, task)
        calls = self._calls[server] = self._calls.get(server, 0) + 1
        arm = self._arms.get(key)
        if arm is None:
            arm = self._arms[key] = self._prior()
        arm.fade(calls - 1, self.discount)
        # The server's calls of this tool over every task type: fresh where a task type
        # seldom asked is stale, so such an arm leans on it.
        parent_key = (server, ("tool", tool))
        parent = self._arms.get(parent_key)
        if parent is None:
            parent = self._arms[parent_key] = self._prior()
        parent.fade(calls - 1, self.discount)
        d = self.discount
        if success is not None:
            ok = success >= 0.5
            for known in (arm, parent):
                known.ok, known.fail = d * known.ok + ok, d * known.fail + (not ok)
            counts = self._servers.setdefault(server, [0.0, 0.0])
            counts[0], counts[1] = d * counts[0] + ok, d * counts[1] + (not ok)
        if latency is not None and latency >= 0:
            target = math.log1p(latency)
            load = load / 10.0
            for known in (arm, parent):
                if success is None or success >= 0.5 or known.n == 0:
                    err = target - (known.level + known.slope * load)
                    eta = max(self.step, 1.0 / (known.n + 1.0))
                    known.level += eta * err
                    known.slope += 0.5 * eta * err * load / (1.0 + load * load)
                    known.var += 0.05 * (err * err - known.var)
                    known.n = d * known.n + 1.0
        # This call's forgetting is done (``discount`` above): the arm is current.
        arm.seen = parent.seen = calls
        if cost is not None:
            arm.cost = cost if math.isnan(arm.cost) else arm.cost + self.cost_alpha * (
                cost - arm.cost)

    def posterior(self, server: Any, task_type: Any, load: float = 0.0,
                  capability_prior: float | None = None, tool: Any = None
                  ) -> tuple[float, ...]:
        """``(log_mean, log_sd, latency_n, a, b, ra, rb, cost)`` of an arm at ``load``.

        ``a, b`` are the Beta parameters of its success, ``ra, rb`` those of its
        server's reliability; the selector draws Thompson samples from them.

        An arm's counts fade with its *server's* calls since its last one, so
        a task type seldom asked is judged by what the server's recent calls
        of ``tool`` (over every task type) say: its latency weighs its faded
        calls against ``PARENT_WEIGHT`` of those, and its success starts from
        their rate. ``capability_prior`` (5 pseudo-calls) replaces that rate
        where the caller declares one; with neither, 0.7. That rate is shrunk
        towards 0.7 by ``PRIOR_CALLS``.
        """
        arm = self._arms.get((server, task_type or "*")) or self._unseen
        calls = self._calls.get(server, 0)
        f = arm.faded(calls, self.discount)  # an unseen arm's counts are 0 anyway
        level, var, n = arm.level + arm.slope * load / 10.0, arm.var, f * arm.n
        ok_arm, fail_arm = f * arm.ok, f * arm.fail
        parent = self._arms.get((server, ("tool", tool)))
        prior = capability_prior
        if parent is not None:
            g = parent.faded(calls, self.discount)
            w = n / (n + PARENT_WEIGHT)
            level = w * level + (1.0 - w) * (parent.level + parent.slope * load / 10.0)
            var = w * var + (1.0 - w) * parent.var
            n += (1.0 - w) * g * parent.n
            if prior is None:
                # Shrunk towards 0.7 (the pessimism that keeps a bandit off what it has
                # not seen work) by PRIOR_CALLS: a tool the server answered often lately
                # moves it.
                prior = (g * parent.ok + PRIOR_CALLS * UNINFORMED_SUCCESS) / (
                    g * (parent.ok + parent.fail) + PRIOR_CALLS)
        if prior is None:
            prior = UNINFORMED_SUCCESS
        ok, fail = self._servers.get(server, (0.0, 0.0))
        return (level, math.sqrt(max(var, 1e-4)), n,
                ok_arm + 5 * prior, fail_arm + 5 * (1 - prior),
                ok + 4.75, fail + 0.25, arm.cost)

    def predict_one(self, x: dict) -> dict[str, float]:
        """Estimates and posterior parameters of the arm ``x`` names (its prior if unseen).

        ``log_mean``/``log_sd``/``latency_n`` describe log latency at ``x["load"]``;
        ``success``/``success_n`` and ``reliability``/``reliability_n`` are Beta
        posterior means and total pseudo-counts.
        """
        log_mean, log_sd, n, a, b, ra, rb, cost = self.posterior(
            x.get("server"), x.get("task_type"), as_number(x.get("load")) or 0.0,
            as_number(x.get("capability_prior")), x.get("tool"))
        p50 = max(math.expm1(log_mean), 0.0)
        return {"latency_p50_ms": p50,
                "latency_p95_ms": max(math.expm1(log_mean + 1.645 * log_sd), p50),
                "log_mean": log_mean, "log_sd": log_sd, "latency_n": n,
                "success": a / (a + b), "success_n": a + b,
                "reliability": ra / (ra + rb), "reliability_n": ra + rb,
                "cost_usd": cost}
