"""The cooldown decision: how long to keep a failing server out of routing.

Routers cool a deployment down after ``allowed_fails`` consecutive failures
for a fixed ``cooldown_time`` (LiteLLM: 3 failures, 5 s). Here the length is
learned: every time a server's failure streak reaches ``allowed_fails``, the
time until its next success is one observed *outage*; a server's cooldown is
the median of its last outages (``quantile``), the median over all servers
while it has fewer than ``min_outages`` of its own, and the fixed prior only
before any outage was seen. A failure during a cooldown restarts it. Errors
that are the caller's fault (``invalid_params``) do not count.

The select decision honours the answer: a cooling server is ranked after
every other candidate, with availability 0.

>>> from predictor.data.schema import parse_record
>>> cooldowns = Cooldowns()
>>> def call(ts, ok):
...     cooldowns.learn(parse_record({"ts": ts, "server": "a", "tool": "t", "success": ok,
...                                   "latency_ms": 0, "error_type": None if ok else "timeout"}))
>>> for start in (0, 100, 200):  # three outages of 40 s after the third failure
...     for k in range(3):
...         call(start + k, False)
...     call(start + 42, True)
>>> for k in range(3):
...     call(300 + k, False)
>>> answer = cooldowns.cooldowns(CooldownRequest(servers=["a", "b"]))
>>> [(s.server, s.cooling_down, s.cooldown_s, s.source) for s in answer.servers]
[('a', True, 40.0, 'online'), ('b', False, 40.0, 'online')]
>>> round(answer.servers[0].until - 302, 1)
40.0
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from predictor.api.cooldown import CooldownRequest, CooldownResponse, ServerCooldown
from predictor.api.provenance import Provenance
from predictor.data.schema import CallRecord
from predictor.plugin import DecisionPlugin

__all__ = ["CooldownRequest", "CooldownResponse", "Cooldowns", "ServerCooldown"]

#: Errors a server is not to blame for: they never start a cooldown.
_CALLER_ERRORS = frozenset({"invalid_params"})


@dataclass
class _Streak:
    failures: int = 0
    tripped_at: float = math.nan  # when the streak reached allowed_fails (or last refreshed)
    outages: deque[float] = field(default_factory=lambda: deque(maxlen=25))


class Cooldowns(DecisionPlugin):
    """Learned per-server cooldowns; thread-safe.

    Parameters
    ----------
    allowed_fails
        Consecutive failures that start a cooldown (LiteLLM's default, 3).
    prior_cooldown_s
        Cooldown before any outage was observed (LiteLLM's default, 5 s).
    quantile
        Which quantile of the observed outages a cooldown lasts (0.5: median).
    min_outages
        Outages of its own a server needs before its own figure is used.
    """

    family = "risk"
    record_fields = frozenset({"ts", "kind", "server", "error_type", "latency_ms", "success"})

    def __init__(self, *, allowed_fails: int = 3, prior_cooldown_s: float = 5.0,
                 quantile: float = 0.5, min_outages: int = 3) -> None:
        super().__init__()
        self.allowed_fails = allowed_fails
        self.prior_cooldown_s = prior_cooldown_s
        self.quantile = quantile
        self.min_outages = min_outages
        self._streaks: dict[str, _Streak] = {}
        self._all_outages: deque[float] = deque(maxlen=200)

    def learn_call(self, record: CallRecord) -> None:
        if record.error_type in _CALLER_ERRORS:
            return
        end = record.epoch + (record.latency_ms or 0.0) / 1000.0
        with self._lock:
            streak = self._streaks.get(record.server)
            if streak is None:
                streak = self._streaks[record.server] = _Streak()
            if record.success is False:
                streak.failures += 1
                if streak.failures >= self.allowed_fails:
                    if math.isnan(streak.tripped_at):
                        streak.tripped_at = end
                    elif end > streak.tripped_at + self._length(streak):
                        # Tried again after the cooldown and failed: cool down anew.
                        streak.tripped_at = end
            else:
                if not math.isnan(streak.tripped_at):
                    outage = max(0.0, record.epoch - streak.tripped_at)
                    streak.outages.append(outage)
                    self._all_outages.append(outage)
                streak.failures, streak.tripped_at = 0, math.nan

    def _quantile(self, values: deque[float]) -> float:
        ordered = sorted(values)
        pos = self.quantile * (len(ordered) - 1)
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (pos - low) * (ordered[high] - ordered[low])

    def _length(self, streak: _Streak | None) -> float:
        """The cooldown of a server with this streak history (caller holds the lock)."""
        if streak is not None and len(streak.outages) >= self.min_outages:
            return self._quantile(streak.outages)
        if self._all_outages:
            return self._quantile(self._all_outages)
        return self.prior_cooldown_s

    def cooling(self, server: str, now: float | None = None) -> bool:
        """Whether ``server`` is in a cooldown at ``now`` (default: the telemetry clock)."""
        now = self.clock if now is None else now
        streak = self._streaks.get(server)
        if streak is None or math.isnan(streak.tripped_at) or math.isnan(now):
            return False
        return now < streak.tripped_at + self._length(streak)

    def cooldowns(self, req: CooldownRequest) -> CooldownResponse:
        """Which of ``req.servers`` are cooling down at ``req.now``, until when, and why."""
        with self._lock:
            now = self.clock if req.now is None else req.now
            answers = []
            for server in dict.fromkeys(req.servers):
                streak = self._streaks.get(server)
                length = self._length(streak)
                tripped = math.nan if streak is None else streak.tripped_at
                until = None if math.isnan(tripped) else tripped + length
                cooling = until is not None and not math.isnan(now) and now < until
                answers.append(ServerCooldown(
                    server=server, cooling_down=cooling, until=until,
                    remaining_s=round(until - now, 3) if cooling and until is not None else 0.0,
                    consecutive_failures=0 if streak is None else streak.failures,
                    allowed_fails=self.allowed_fails, cooldown_s=round(length, 3),
                    source="online" if self._all_outages else "prior"))
            learned = bool(self._all_outages)
            provenance = Provenance.of("risk", observations=self.observations, learned=learned)
        return CooldownResponse(servers=answers, now=None if math.isnan(now) else now,
                                source="online" if learned else "prior", model=provenance)
