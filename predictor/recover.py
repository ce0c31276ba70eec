"""The recover decision: what to do after a failed call.

Strategies are ``retry`` (with exponential back-off and jitter), ``fallback``
(to another server), ``degrade`` (a cheaper answer) and ``abort``. The
choice maximizes the success rate learned per error type and strategy from
telemetry (:class:`predictor.models.risk.RecoveryStats`, shrunk towards a rule-based
prior), under rules that always hold: at most ``max_attempts`` attempts, a
total time budget, ``invalid_params`` is never retried, a fallback needs
another server, and a rate limit is retried only after a back-off.

>>> decider = Recoverer(seed=0)
>>> answer = decider.recover(RecoverRequest(error_type="invalid_params", server="a",
...                                         attempt=1, candidates=["a", "b"]))
>>> answer.strategy != "retry", answer.source
(True, 'prior')
"""

from __future__ import annotations

import random
import threading
from types import MappingProxyType

from predictor.api.provenance import Provenance
from predictor.api.recover import RecoverRequest, RecoverResponse, Strategy, StrategyOption
from predictor.data.schema import CallRecord
from predictor.models.risk import STRATEGIES, RecoveryStats
from predictor.plugin import DecisionPlugin
from predictor.select import Selector, SelectRequest

__all__ = [
    "RecoverRequest",
    "RecoverResponse",
    "Recoverer",
    "Strategy",
    "StrategyOption",
]









class Recoverer(DecisionPlugin):
    """Learns recovery outcomes from telemetry and decides; thread-safe.

    Parameters
    ----------
    selector
        Ranks the fallback servers when the request names its task type;
        without it, the first other candidate is the fallback.
    base_backoff_ms
        First retry's back-off before jitter; doubles with each attempt.
    seed
        Seed of the jitter.
    """

    def __init__(self, *, selector: Selector | None = None, base_backoff_ms: float = 500.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.selector = selector
        self.base_backoff_ms = base_backoff_ms
        self.stats = RecoveryStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    family = "risk"
    #: The selector ranks fallbacks; it belongs to the engine, which binds it.
    needs = MappingProxyType({"selector": "predictor.select:Selector"})

    @classmethod
    def build(cls, *, capabilities: dict[str, list[str]] | None = None,
              seed: int = 0) -> Recoverer:
        return cls(seed=seed)

    def learn_call(self, record: CallRecord) -> None:
        if not record.success:
            self.observe(record.error_type, record.recovery, record.recovered)

    def observe(self, error_type: str | None, recovery: str | None,
                recovered: bool | None) -> None:
        """Learn from a failed call whose recovery and outcome were recorded."""
        if error_type and recovery in STRATEGIES and recovered is not None:
            with self._lock:
                self.stats.learn_one(error_type, recovery, bool(recovered))

    def _backoff(self, req: RecoverRequest) -> float:
        # Capped doubling: past 2**20 the back-off exceeds any budget anyway.
        base = self.base_backoff_ms * 2.0 ** min(req.attempt - 1, 20)
        if req.error_type == "rate_limit":
            base *= 2  # rate limits need the window to pass
        return round(base * self._rng.uniform(0.5, 1.5), 1)

    def recover(self, req: RecoverRequest) -> RecoverResponse:
        with self._lock:
            remaining = req.budget_ms - req.elapsed_ms
            alternatives = [s for s in dict.fromkeys(req.candidates) if s != req.server]
            backoff = self._backoff(req)
            options = []
            for strategy in STRATEGIES:
                why_not = None
                if strategy in ("retry", "fallback") and req.attempt >= req.max_attempts:
                    why_not = f"attempt {req.attempt} of at most {req.max_attempts}"
                elif strategy == "retry" and req.error_type == "invalid_params":
                    why_not = "invalid parameters fail again however often they are retried"
                elif strategy == "retry" and backoff >= remaining:
                    why_not = f"back-off {backoff:.0f} ms exceeds the {remaining:.0f} ms left"
                elif strategy == "fallback" and not alternatives:
                    why_not = "no other candidate server"
                elif strategy == "degrade" and req.degrade_available is False:
                    why_not = "no degraded answer available"
                elif strategy in ("retry", "fallback") and remaining < req.min_attempt_ms:
                    why_not = f"{max(remaining, 0):.0f} ms left of the budget"
                options.append(StrategyOption(
                    strategy=strategy, success=round(self.stats.rate(req.error_type, strategy), 4),
                    allowed=why_not is None, why_not=why_not))
            allowed = [o for o in options if o.allowed]
            best = max(allowed, key=lambda o: o.success)
            learned = any(self.stats.attempts(req.error_type, s) for s in STRATEGIES)
            observations = sum(self.stats.attempts(e, s) for e in
                               {e for e, _ in self.stats._counts} for s in STRATEGIES)
        fallback = None
        if best.strategy == "fallback":
            fallback = alternatives[0]
            if self.selector is not None and req.task_type:
                ranked = self.selector.select(SelectRequest(
                    task_type=req.task_type, candidates=alternatives, explore=0.0))
                fallback = ranked.ranking[0].server
        return RecoverResponse(
            strategy=best.strategy,
            backoff_ms=backoff if best.strategy == "retry" else None,
            fallback_server=fallback,
            expected_success=best.success,
            options=options,
            source="online" if learned else "prior",
            reason=f"{best.strategy} has the highest success rate for {req.error_type} "
                   f"among the allowed strategies ({best.success:.2f})",
            model=Provenance.of("risk", observations=observations, learned=learned),
        )
