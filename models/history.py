"""Leak-free history features: what was known about each server before a call started.

A call's outcome (latency, success, tokens) becomes known when it finishes,
at ``ts + latency_ms``; :class:`History` applies it only to calls that start
strictly later. Calls without a latency are taken to finish when they start
(nothing better is known). Health probes are known at their own time.

The same object serves the batch feature pass (:func:`call_features`), the
online learners and the decisions, so every variant sees the same inputs.

>>> h = History()
>>> h.observe_call(0.0, "a", "t", latency_ms=1000.0, success=True)
>>> h.features(0.5, "a", "t")["hist_latency"]  # not finished yet at 0.5 s
nan
>>> round(h.features(1.5, "a", "t")["hist_latency"], 1)
1000.0
"""

from __future__ import annotations

import heapq
from array import array
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["HISTORY_FEATURES", "History", "call_features"]

NAN = float("nan")

#: Names of the features :meth:`History.features` returns, in order.
HISTORY_FEATURES = (
    "hist_latency",
    "hist_latency_fast",
    "hist_latency_trend",
    "hist_output_tokens",
    "hist_success",
    "hist_calls",
    "srv_error_rate",
    "srv_recent_error_rate",
    "srv_latency",
    "srv_last_concurrency",
    "srv_since_failure_s",
    "probe_reachable",
    "probe_latency",
    "probe_cpu",
    "probe_mem",
    "probe_queue",
    "probe_age_s",
)


class _Ewma:
    """A moving average as checkpoints from before the flat statistics held it (read by
    :meth:`History.__setstate__` only)."""

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value = NAN


@dataclass
class _PairStats:
    """A pair's statistics as older checkpoints held them (see :class:`_Ewma`)."""

    latency: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    latency_fast: _Ewma = field(default_factory=lambda: _Ewma(0.6))
    output_tokens: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    success: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    calls: int = 0


@dataclass
class _ServerStats:
    """A server's statistics as older checkpoints held them (see :class:`_Ewma`)."""

    errors: _Ewma = field(default_factory=lambda: _Ewma(0.05))
    latency: _Ewma = field(default_factory=lambda: _Ewma(0.1))
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    last_concurrency: float = NAN
    last_failure: float = NAN
    probe: tuple[float, float, float, float, float, float] = (NAN,) * 6


#: Moving averages' weights of the newest value. 0.2 for a pair's latency: what
#: latency-based routers use (the DESIGN ``ewma`` baseline).
_PAIR_ALPHA, _FAST_ALPHA, _ERRORS_ALPHA, _SERVER_LATENCY_ALPHA = 0.2, 0.6, 0.05, 0.1
#: Failures the server's recent error rate is over.
_RECENT_CALLS = 20
_NO_PROBE = (NAN,) * 6


def _new_server() -> list:
    """A server's statistics: errors and latency (moving averages), last concurrency, last
    failure's end, last probe ``(ts, reachable, latency, cpu, mem, queue)``, and its
    recent outcomes (1.0 failed)."""
    return [NAN, NAN, NAN, NAN, _NO_PROBE, deque(maxlen=_RECENT_CALLS)]


class History:
    """Per (server, tool) and per server statistics of finished calls and probes.

    The statistics are flat lists (a pair's: latency, fast latency, output
    tokens and success moving averages, then its calls; a server's: see
    :func:`_new_server`), updated in place: this runs for every call of every
    log replayed and every call the risk decision learns, and objects per
    moving average cost a method call per value.
    """

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], list] = {}
        self._servers: dict[str, list] = {}
        self._pending: list[tuple[float, int, str, str, float, float, float]] = []
        self._seq = 0

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        # Checkpoints from before the flat statistics held an object per moving average.
        pairs, servers = self._pairs, self._servers
        for key, pair in pairs.items():
            if isinstance(pair, _PairStats):
                pairs[key] = [pair.latency.value, pair.latency_fast.value,
                              pair.output_tokens.value, pair.success.value, pair.calls]
        for key, srv in servers.items():
            if isinstance(srv, _ServerStats):
                servers[key] = [srv.errors.value, srv.latency.value, srv.last_concurrency,
                                srv.last_failure, srv.probe, srv.recent]

    def _server(self, server: str) -> list:
        stats = self._servers.get(server)
        if stats is None:
            stats = self._servers[server] = _new_server()
        return stats

    def observe_call(self, ts: float, server: str, tool: str, *, latency_ms: float = NAN,
                     success: float = NAN, output_tokens: float = NAN,
                     concurrency: float = NAN) -> None:
        """Record a call that started at ``ts``; its outcome counts once it has finished."""
        if concurrency == concurrency:  # not NaN
            self._server(server)[2] = concurrency
        end = ts + (0.0 if latency_ms != latency_ms else latency_ms / 1000.0)
        heapq.heappush(self._pending, (end, self._seq, server, tool, latency_ms, success,
                                       output_tokens))
        self._seq += 1

    def observe_health(self, ts: float, server: str, *, reachable: float, latency_ms: float,
                       cpu_pct: float, mem_pct: float, queue_depth: float) -> None:
        """Record a health probe taken at ``ts``."""
        self._server(server)[4] = (ts, reachable, latency_ms, cpu_pct, mem_pct, queue_depth)

    def advance(self, ts: float) -> None:
        """Apply every outcome that finished strictly before ``ts``."""
        pending = self._pending
        pairs, servers = self._pairs, self._servers
        pop = heapq.heappop
        # ``v != v``: NaN, a moving average that has no value yet (it takes the first one).
        while pending and pending[0][0] < ts:
            end, _, server, tool, latency, success, out_tokens = pop(pending)
            pair = pairs.get((server, tool))
            if pair is None:
                pair = pairs[(server, tool)] = [NAN, NAN, NAN, NAN, 0]
            srv = servers.get(server)
            if srv is None:
                srv = servers[server] = _new_server()
            pair[4] += 1
            if latency == latency:
                v = pair[0]
                pair[0] = latency if v != v else v + _PAIR_ALPHA * (latency - v)
                v = pair[1]
                pair[1] = latency if v != v else v + _FAST_ALPHA * (latency - v)
                v = srv[1]
                srv[1] = latency if v != v else v + _SERVER_LATENCY_ALPHA * (latency - v)
            if out_tokens == out_tokens:
                v = pair[2]
                pair[2] = out_tokens if v != v else v + _PAIR_ALPHA * (out_tokens - v)
            if success == success:
                v = pair[3]
                pair[3] = success if v != v else v + _PAIR_ALPHA * (success - v)
                failed = 1.0 - success
                v = srv[0]
                srv[0] = failed if v != v else v + _ERRORS_ALPHA * (failed - v)
                srv[5].append(failed)
                if failed:
                    srv[3] = end

    def features(self, ts: float, server: str, tool: str) -> dict[str, float]:
        """History features for a call to ``server``/``tool`` starting at ``ts``."""
        return dict(zip(HISTORY_FEATURES, self.values(ts, server, tool), strict=True))

    def values(self, ts: float, server: str, tool: str) -> tuple[float, ...]:
        """:meth:`features` as a tuple in the order of :data:`HISTORY_FEATURES`: what the
        learners and the feature pass read, without a dictionary per call."""
        pending = self._pending
        if pending and pending[0][0] < ts:
            self.advance(ts)
        pair = self._pairs.get((server, tool))
        srv = self._servers.get(server)
        if pair is None:
            lat = fast = out = ok = NAN
            calls = 0.0
        else:
            lat, fast, out, ok, count = pair
            calls = float(count)
        if srv is None:
            err = recent = slat = conc = since = NAN
            probe: tuple[float, ...] = _NO_PROBE
        else:
            err, slat, conc, last_failure, probe, outcomes = srv
            recent = sum(outcomes) / len(outcomes) if outcomes else NAN
            since = ts - last_failure if last_failure == last_failure else NAN
        probed = probe[0]
        return (lat, fast, fast / lat if lat and lat == lat else NAN, out, ok, calls,
                err, recent, slat, conc, since, probe[1], probe[2], probe[3], probe[4],
                probe[5], ts - probed if probed == probed else NAN)


def call_features(frame: pd.DataFrame) -> pd.DataFrame:
    """History features for every call of a time-ordered telemetry frame.

    Returns a frame indexed like the call rows of ``frame`` with the columns
    of :data:`HISTORY_FEATURES`. Each row uses only what had finished before
    that call started.
    """
    history = History()
    # One flat array of floats: a list of boxed floats per call, held until the end, cost
    # many times the 8 bytes a value takes here.
    values = array("d")
    extend = values.extend
    cols = [frame[c].to_numpy() for c in ("ts", "kind", "server", "tool", "latency_ms",
                                           "success", "output_tokens", "concurrency",
                                           "reachable", "cpu_pct", "mem_pct", "queue_depth")]
    for ts, kind, server, tool, lat, ok, out, conc, reach, cpu, mem, queue in zip(
            *cols, strict=True):
        if kind == "health":
            history.observe_health(ts, server, reachable=reach, latency_ms=lat, cpu_pct=cpu,
                                   mem_pct=mem, queue_depth=queue)
            continue
        extend(history.values(ts, server, tool))
        history.observe_call(ts, server, tool, latency_ms=lat, success=ok, output_tokens=out,
                             concurrency=conc)
    index = frame.index[frame["kind"].to_numpy() != "health"]
    return pd.DataFrame(np.frombuffer(values, dtype=float).reshape(-1, len(HISTORY_FEATURES)),
                        index=index, columns=list(HISTORY_FEATURES))
