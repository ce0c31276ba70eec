"""The risk family: will a server's next call fail, and what recovers a failure.

Inputs are what is known about the server when the call starts: its recent
error rates, latency level and trend, time since its last failure, its last
health probe (reachability, probe latency, CPU, memory, queue depth, age),
and the call's own load and attempt number (see :mod:`predictor.models.history`).

* :class:`BatchRisk` (scikit-learn): gradient boosting, calibrated on the newest rows
  (:mod:`predictor.models.calibrated`).
* :class:`OnlineRisk` (river): logistic regression over standardized inputs
  and hinges of them (an additive piecewise-linear model: risk that rises
  past a level, as with memory), with a drift detector (ADWIN on the error
  stream).
* :class:`ServerRisk`: what the service learns online, one :class:`OnlineRisk`
  over the fleet and one per server, their log-odds averaged (servers differ
  in where load and memory start to hurt, which one additive model over the
  fleet cannot say).
* :class:`RecoveryStats`: per error type, the success rate of each recovery
  strategy seen in telemetry, shrunk towards a rule-based prior.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from river import base, drift, linear_model, preprocessing

from predictor.models import compiled
from predictor.models.adagrad import AdaGrad, learn_glm
from predictor.models.calibrated import fit_calibrated_classifier
from predictor.models.features import informative_columns

__all__ = ["RISK_FEATURES", "BatchRisk", "OnlineRisk", "RecoveryStats", "ServerRisk",
           "threshold_score"]

RISK_FEATURES = (
    "srv_error_rate", "srv_recent_error_rate", "srv_latency", "hist_latency_fast",
    "hist_latency_trend", "srv_since_failure_s", "probe_reachable", "probe_latency",
    "probe_cpu", "probe_mem", "probe_queue", "probe_age_s", "srv_last_concurrency",
)


def threshold_score(latency_ms: np.ndarray, mem_pct: np.ndarray, cpu_pct: np.ndarray
                    ) -> np.ndarray:
    """The fixed alert rules as a score: how many of latency > 2000 ms, memory > 85 %,
    CPU > 70 % are breached (unknown values breach nothing).

    >>> threshold_score(np.array([2500.0, 10.0]), np.array([90.0, np.nan]),
    ...                 np.array([10.0, 80.0])).tolist()
    [2.0, 1.0]
    """
    with np.errstate(invalid="ignore"):
        return ((np.nan_to_num(latency_ms) > 2000).astype(float)
                + (np.nan_to_num(mem_pct) > 85) + (np.nan_to_num(cpu_pct) > 70))


class BatchRisk:
    """Calibrated gradient-boosted failure probability."""

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, failed: np.ndarray) -> BatchRisk:
        self.columns_ = informative_columns(X)
        y = failed.astype(int)
        self.base_rate_ = float(y.mean()) if len(y) else 0.0
        if len(np.unique(y)) < 2 or min(y.sum(), (1 - y).sum()) < 10:
            self.model_ = None
            return self
        self.model_ = fit_calibrated_classifier(X[:, self.columns_], y,
                                                random_state=self.random_state)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability that each call fails."""
        if self.model_ is None:
            return np.full(len(X), self.base_rate_)
        return compiled.predict_proba(self.model_, X[:, self.columns_])


@functools.lru_cache(maxsize=1024)
def _cross_cells(inputs: tuple[str, ...], bins: int
                 ) -> tuple[tuple[int, int, tuple[tuple[str, ...], ...]], ...]:
    """Per pair of ``inputs``: their positions and the name of each pair of bins' cell
    (the last bin: missing). One table per choice, shared by the models that made it."""
    labels = (*(str(i) for i in range(bins - 1)), "m")
    return tuple(
        (k, m, tuple(tuple(f"{a}*{b}={i}{j}" for j in labels) for i in labels))
        for k, a in enumerate(inputs) for m, b in enumerate(inputs) if m > k)


class OnlineRisk(base.Classifier):
    """River failure classifier that adapts after drift.

    Logistic regression over standardized inputs, each also as hinges
    ``max(z - knot, 0)`` at :attr:`KNOTS` (so a failure rate that rises
    steeply past some level is not a straight line), with missing values as
    indicator features. Failures often need two things at once (memory high
    *and* errors lately), which an additive model cannot say: once it has
    seen ``cross_after`` calls, the ``crossed`` inputs that separate failed
    from other calls most are cut into bins, and each pair of them adds one
    indicator per pair of bins (a piecewise-constant interaction, the
    cheapest kind a linear model learns). An ADWIN detector watches the
    stream of outcomes; each detected change is counted in ``drifts``.
    Before it has seen both outcomes it answers the prior failure rate.

    Parameters
    ----------
    prior
        Failure probability answered before learning.
    lr
        AdaGrad learning rate.
    crossed
        Inputs whose pairs are crossed (``0`` or ``1``: none).
    cross_after
        Calls counted before the crossed inputs are chosen.

    Examples
    --------
    >>> model = OnlineRisk()
    >>> model.predict_proba_one({"srv_error_rate": 0.0})
    {False: 0.95, True: 0.05}
    >>> for i in range(3000):
    ...     model.learn_one({"mem": float(40 + i % 60)}, 40 + i % 60 > 90)
    >>> p = model.predict_proba_one({"mem": 99.0})[True]
    >>> p > model.predict_proba_one({"mem": 10.0})[True]
    True

    Failure only when two inputs are both high; the crosses find the corner:

    >>> import random
    >>> rng, both = random.Random(1), OnlineRisk(crossed=2)
    >>> for i in range(6000):
    ...     x = {"mem": rng.random(), "errors": rng.random()}
    ...     both.learn_one(x, x["mem"] > 0.7 and x["errors"] > 0.7 and rng.random() < 0.9)
    >>> sorted(both.crossed_inputs)
    ['errors', 'mem']
    >>> corner = both.predict_proba_one({"mem": 0.9, "errors": 0.9})[True]
    >>> edge = both.predict_proba_one({"mem": 0.9, "errors": 0.2})[True]
    >>> corner > 0.5 > 0.1 > edge
    True
    """

    #: Standardized levels past which each input's effect may bend: three hinges per
    #: input cost 1.5x the learning time of the straight model; more gained little.
    KNOTS = (-1.0, 0.5, 1.5)
    #: Standardized levels that cut a crossed input into four bins (a fifth: missing).
    CROSS_CUTS = (-0.5, 0.5, 1.5)

    def __init__(self, prior: float = 0.05, lr: float = 0.05, crossed: int = 6,
                 cross_after: int = 2000) -> None:
        self.prior = prior
        self.lr = lr
        self.crossed = crossed
        self.cross_after = cross_after
        self._scaler = preprocessing.StandardScaler()
        self._model = linear_model.LogisticRegression(optimizer=AdaGrad(lr),
                                                      clip_gradient=1.0)
        self._drift = drift.ADWIN(delta=0.002)
        self._seen: set[bool] = set()
        self.drifts = 0
        self._init_crosses()

    def _init_crosses(self) -> None:
        #: Per input: [sum when failed, count, sum when not, count], until the choice.
        self._class_sums: dict[str, list[float]] | None = {} if self.crossed >= 2 else None
        self._ranked = 0
        #: The crossed inputs, and per pair of them (their positions in it, and the name
        #: of each pair of bins' cell: bins 0-3 by CROSS_CUTS, 4 missing).
        self._crossed_inputs: tuple[str, ...] = ()
        self._crosses: tuple[tuple[int, int, tuple[tuple[str, ...], ...]], ...] = ()

    def __getstate__(self) -> dict:
        # Names built from the inputs, not learned: rebuilt on load, so that a published
        # state holds each model's weights and not hundreds of names per model.
        state = self.__dict__.copy()
        state.pop("_inputs", None)
        state["_crosses"] = ()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "crossed" not in state:  # checkpoints from before crossed inputs
            self.crossed, self.cross_after = 6, 2000
            self._init_crosses()
        elif self._crossed_inputs:
            self.cross(self._crossed_inputs)

    @property
    def crossed_inputs(self) -> tuple[str, ...]:
        """The inputs whose pairs are crossed (empty until they are chosen)."""
        return self._crossed_inputs

    def _note(self, x: dict, y: bool) -> None:
        """Count ``x`` towards the choice of crossed inputs; choose once enough are seen.

        An input's strength is the gap between its mean over failed and over
        other calls, in standard deviations (as the scaler knows them); the
        ``crossed`` strongest inputs, after ``cross_after`` calls with both
        outcomes among them, have their pairs crossed for good.
        """
        sums = self._class_sums
        if sums is None:
            return
        for name, value in x.items():
            if value is None or value != value:
                continue
            entry = sums.get(name)
            if entry is None:
                entry = sums[name] = [0.0, 0, 0.0, 0]
            if y:
                entry[0] += value
                entry[1] += 1
            else:
                entry[2] += value
                entry[3] += 1
        self._ranked += 1
        if self._ranked < self.cross_after or len(self._seen) < 2:
            return
        variances = self._scaler.vars
        strength = {}
        for name, (failed_sum, failed, other_sum, other) in sums.items():
            variance = variances.get(name, 0.0)
            if failed >= 5 and other >= 5 and variance > 0:
                strength[name] = abs(failed_sum / failed - other_sum / other) / variance**0.5
        if len(strength) < 2:
            return  # no pair to cross yet (too few failures): keep counting
        self.cross(tuple(sorted(strength, key=lambda name: (-strength[name], name))
                         [:self.crossed]))

    def cross(self, inputs: tuple[str, ...]) -> None:
        """Cross the pairs of ``inputs`` from now on, and stop counting towards a choice."""
        self._class_sums = None
        self._crossed_inputs = inputs
        self._crosses = _cross_cells(inputs, len(self.CROSS_CUTS) + 2)

    def _cross(self, z: dict[str, float], out: dict[str, float]) -> None:
        """Add to ``out`` the cell of each crossed pair that standardized ``z`` falls in."""
        low, mid, high = self.CROSS_CUTS
        get = z.get
        bins = [4 if (value := get(name)) is None
                else (value > low) + (value > mid) + (value > high)
                for name in self._crossed_inputs]
        for a, b, cells in self._crosses:
            out[cells[bins[a]][bins[b]]] = 1.0

    @staticmethod
    def _clean(x: dict) -> dict[str, float]:
        out = {}
        for k, v in x.items():
            if v != v or v is None:
                out[f"{k}_missing"] = 1.0
            else:
                out[k] = float(v)
        return out

    def _expand(self, z: dict[str, float]) -> dict[str, float]:
        out = dict(z)
        for name, value in z.items():
            for knot, hinge in self._input(name)[1]:
                if value > knot:
                    out[hinge] = value - knot
        if self._crosses:
            self._cross(z, out)
        return out

    def _input(self, name: str) -> tuple[str, tuple[tuple[float, str], ...]]:
        """``name``'s missing-value indicator name and its hinges (none for an indicator).

        Built once per input: formatting these names per call cost as much as
        the regression's step.
        """
        specs = self.__dict__.setdefault("_inputs", {})
        spec = specs.get(name)
        if spec is None:
            hinges = () if name.endswith("_missing") else tuple(
                (knot, f"{name}>{knot}") for knot in self.KNOTS)
            spec = specs[name] = (f"{name}_missing", hinges)
        return spec

    def learn_one(self, x: dict, y: bool) -> None:
        """Learn one outcome: river's ``StandardScaler | LogisticRegression`` step, fused.

        The arithmetic is that of ``scaler.learn_one(x)``, then
        ``model.learn_one(expand(scaler.transform_one(x)), y)``, on the same
        river objects (their state is what checkpoints hold): the scaler's
        in one loop over the inputs that also expands them, the model's by
        :func:`predictor.models.adagrad.learn_glm`. Through river's own calls
        this step was the largest cost of the online learner.
        ``tests/models/test_risk.py`` checks it against them.
        """
        y = bool(y)
        if self._class_sums is not None:
            self._note(x, y)
        scaler = self._scaler
        counts, means, variances = scaler.counts, scaler.means, scaler.vars
        specs = self.__dict__.get("_inputs") or {}
        z: dict[str, float] = {}
        for name, value in x.items():
            spec = specs.get(name) or self._input(name)
            if value is None or value != value:
                name, value, hinges = spec[0], 1.0, ()
            else:
                value, hinges = float(value), spec[1]
            # StandardScaler.learn_one, then transform_one, on the scaler's own dicts.
            n = counts[name] + 1
            counts[name] = n
            old_mean = means[name]
            mean = old_mean + (value - old_mean) / n
            means[name] = mean
            var = variances[name]
            var += ((value - old_mean) * (value - mean) - var) / n
            variances[name] = var
            scaled = (value - mean) / var**0.5 if var else 0.0
            z[name] = scaled
            for knot, hinge in hinges:
                if scaled > knot:
                    z[hinge] = scaled - knot
        if self._crosses:
            self._cross(z, z)
        learn_glm(self._model, z, y)
        self._drift.update(float(y))
        if self._drift.drift_detected:
            self.drifts += 1
        self._seen.add(y)

    @property
    def learned(self) -> bool:
        """Whether it has seen both outcomes (before, it answers the prior)."""
        return len(self._seen) == 2

    def predict_proba_one(self, x: dict) -> dict[bool, float]:
        if not self.learned:
            return {False: 1.0 - self.prior, True: self.prior}
        x = self._clean(x)
        p = self._model.predict_proba_one(
            self._expand(self._scaler.transform_one(x))).get(True, self.prior)
        return {False: 1.0 - p, True: p}


class ServerRisk:
    """Failure probability from a fleet-wide :class:`OnlineRisk` and one per server.

    Each outcome teaches the server's model; the fleet's learns from one call
    in ``fleet_every`` (and from every call until it has seen both outcomes):
    it is the answer for servers without their own model and half of every
    other answer, and a sample of the fleet's calls teaches it nearly as
    well as all of them, at a quarter of the cost of a second model (the
    online learner's largest step). A server's own model standardizes the inputs
    on that server's history and learns its own weights, so "concurrency
    past this server's capacity" or "memory past where this server fails"
    is learned per server, which an additive model over the whole fleet
    (the batch model's trees find such interactions) cannot express. The
    answer averages the two models' log-odds once the server's model has
    seen both outcomes, and is the fleet's answer until then (a new server,
    or one that never failed). Each model chooses the inputs it crosses
    (:class:`OnlineRisk`'s ``crossed``) on its own calls: what fails one
    server together differs from another's (the fleet's choice for every
    server ranked worse on the simulation).

    Parameters
    ----------
    prior, lr
        As :class:`OnlineRisk`, for every model.
    fleet_every
        The fleet model learns from one call in this many.

    Examples
    --------
    Two servers fail past different loads; one model over both cannot put
    the step in both places:

    >>> import random
    >>> rng = random.Random(0)
    >>> per_server, fleet = ServerRisk(), OnlineRisk()
    >>> capacity = {"a": 2.0, "b": 8.0}
    >>> for i in range(6000):
    ...     server, load = "ab"[i % 2], rng.uniform(0, 10)
    ...     failed = load > capacity[server] and rng.random() < 0.8
    ...     per_server.learn_one(server, {"load": load}, failed)
    ...     fleet.learn_one({"load": load}, failed)
    >>> on_a = {"load": 5.0}
    >>> round(per_server.predict_proba("a", on_a), 2), round(per_server.predict_proba("b", on_a), 2)
    (0.37, 0.12)
    >>> round(fleet.predict_proba_one(on_a)[True], 2)  # the same for both servers
    0.35
    """

    def __init__(self, prior: float = 0.05, lr: float = 0.05, fleet_every: int = 4) -> None:
        if fleet_every < 1:
            raise ValueError("fleet_every must be at least 1")
        self.prior = prior
        self.lr = lr
        self.fleet_every = fleet_every
        self.fleet = OnlineRisk(prior, lr)
        self.servers: dict[str, OnlineRisk] = {}
        self.calls = 0

    @classmethod
    def from_fleet(cls, fleet: OnlineRisk) -> ServerRisk:
        """A model that goes on from ``fleet`` (what checkpoints before it held)."""
        model = cls(fleet.prior, fleet.lr)
        model.fleet = fleet
        return model

    @property
    def learned(self) -> bool:
        """Whether the fleet model has seen both outcomes (before: the prior)."""
        return self.fleet.learned

    @property
    def drifts(self) -> int:
        """Changes the fleet model's drift detector found in the outcomes it learned."""
        return self.fleet.drifts

    def learn_one(self, server: str, x: dict, failed: bool) -> None:
        """Learn one finished call of ``server``: its inputs at start, whether it failed."""
        self.calls += 1
        if self.calls % self.fleet_every == 0 or not self.fleet.learned:
            self.fleet.learn_one(x, failed)
        model = self.servers.get(server)
        if model is None:
            model = self.servers[server] = OnlineRisk(self.prior, self.lr)
        model.learn_one(x, failed)

    def predict_proba(self, server: str, x: dict) -> float:
        """Probability that a call to ``server`` with inputs ``x`` fails."""
        p = self.fleet.predict_proba_one(x)[True]
        own = self.servers.get(server)
        if own is None or not own.learned:
            return p
        q = own.predict_proba_one(x)[True]
        logit = 0.5 * (_logit(p) + _logit(q))
        return 1.0 / (1.0 + math.exp(-logit))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


#: Rule-based prior: P(recovered | error type, strategy) before any telemetry.
RECOVERY_PRIOR = {
    "rate_limit": {"retry": 0.8, "fallback": 0.7, "degrade": 0.5, "abort": 0.0},
    "timeout": {"retry": 0.4, "fallback": 0.7, "degrade": 0.5, "abort": 0.0},
    "connection": {"retry": 0.3, "fallback": 0.8, "degrade": 0.5, "abort": 0.0},
    "tool_error": {"retry": 0.5, "fallback": 0.5, "degrade": 0.5, "abort": 0.0},
    "invalid_params": {"retry": 0.0, "fallback": 0.1, "degrade": 0.5, "abort": 0.0},
}
_DEFAULT_PRIOR = {"retry": 0.5, "fallback": 0.6, "degrade": 0.5, "abort": 0.0}
STRATEGIES = ("retry", "fallback", "degrade", "abort")


class RecoveryStats:
    """Success rate of each recovery strategy per error type, shrunk towards the prior.

    ``rate = (successes + k * prior) / (attempts + k)`` with ``k`` pseudo-counts.

    >>> stats = RecoveryStats(prior_weight=2)
    >>> for ok in (True, True, True, False):
    ...     stats.learn_one("timeout", "retry", ok)
    >>> round(stats.rate("timeout", "retry"), 3)
    0.633
    >>> stats.best("invalid_params")
    'degrade'
    """

    def __init__(self, prior_weight: float = 5.0) -> None:
        self.prior_weight = prior_weight
        # A plain dict (not a defaultdict of a lambda) so that checkpoints pickle.
        self._counts: dict[tuple[str, str], list[float]] = {}

    def learn_one(self, error_type: str, strategy: str, recovered: bool) -> None:
        cell = self._counts.setdefault((error_type, strategy), [0.0, 0.0])
        cell[0] += float(recovered)
        cell[1] += 1.0

    def rate(self, error_type: str, strategy: str) -> float:
        prior = RECOVERY_PRIOR.get(error_type, _DEFAULT_PRIOR)[strategy]
        ok, n = self._counts.get((error_type, strategy), (0.0, 0.0))
        return (ok + self.prior_weight * prior) / (n + self.prior_weight)

    def attempts(self, error_type: str, strategy: str) -> int:
        return int(self._counts.get((error_type, strategy), (0.0, 0.0))[1])

    def best(self, error_type: str, allowed: tuple[str, ...] = STRATEGIES) -> str:
        return max(allowed, key=lambda s: (self.rate(error_type, s), -STRATEGIES.index(s)))

    def table(self) -> dict[str, dict[str, float]]:
        types = sorted({e for e, _ in self._counts} | set(RECOVERY_PRIOR))
        return {e: {s: round(self.rate(e, s), 4) for s in STRATEGIES} for e in types}
