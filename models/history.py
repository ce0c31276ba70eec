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
import math
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
    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value = NAN

    def update(self, x: float) -> None:
        self.value = x if math.isnan(self.value) else self.value + self.alpha * (x - self.value)


@dataclass
class _PairStats:
    # alpha 0.2: what latency-based routers use (the DESIGN ``ewma`` baseline).
    latency: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    latency_fast: _Ewma = field(default_factory=lambda: _Ewma(0.6))
    output_tokens: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    success: _Ewma = field(default_factory=lambda: _Ewma(0.2))
    calls: int = 0


@dataclass
class _ServerStats:
    errors: _Ewma = field(default_factory=lambda: _Ewma(0.05))
    latency: _Ewma = field(default_factory=lambda: _Ewma(0.1))
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    last_concurrency: float = NAN
    last_failure: float = NAN
    probe: tuple[float, float, float, float, float, float] = (NAN,) * 6


class History:
    """Per (server, tool) and per server statistics of finished calls and probes."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], _PairStats] = {}
        self._servers: dict[str, _ServerStats] = {}
        self._pending: list[tuple[float, int, str, str, float, float, float]] = []
        self._seq = 0

    def _server(self, server: str) -> _ServerStats:
        stats = self._servers.get(server)
        if stats is None:
            stats = self._servers[server] = _ServerStats()
        return stats

    def observe_call(self, ts: float, server: str, tool: str, *, latency_ms: float = NAN,
                     success: float = NAN, output_tokens: float = NAN,
                     concurrency: float = NAN) -> None:
        """Record a call that started at ``ts``; its outcome counts once it has finished."""
        if not math.isnan(concurrency):
            self._server(server).last_concurrency = concurrency
        end = ts + (0.0 if math.isnan(latency_ms) else latency_ms / 1000.0)
        heapq.heappush(self._pending, (end, self._seq, server, tool, latency_ms, success,
                                       output_tokens))
        self._seq += 1

    def observe_health(self, ts: float, server: str, *, reachable: float, latency_ms: float,
                       cpu_pct: float, mem_pct: float, queue_depth: float) -> None:
        """Record a health probe taken at ``ts``."""
        self._server(server).probe = (ts, reachable, latency_ms, cpu_pct, mem_pct, queue_depth)

    def advance(self, ts: float) -> None:
        """Apply every outcome that finished strictly before ``ts``."""
        pending = self._pending
        while pending and pending[0][0] < ts:
            end, _, server, tool, latency, success, out_tokens = heapq.heappop(pending)
            pair = self._pairs.get((server, tool))
            if pair is None:
                pair = self._pairs[(server, tool)] = _PairStats()
            srv = self._server(server)
            pair.calls += 1
            if not math.isnan(latency):
                pair.latency.update(latency)
                pair.latency_fast.update(latency)
                srv.latency.update(latency)
            if not math.isnan(out_tokens):
                pair.output_tokens.update(out_tokens)
            if not math.isnan(success):
                pair.success.update(success)
                failed = 1.0 - success
                srv.errors.update(failed)
                srv.recent.append(failed)
                if failed:
                    srv.last_failure = end

    def features(self, ts: float, server: str, tool: str) -> dict[str, float]:
        """History features for a call to ``server``/``tool`` starting at ``ts``."""
        return dict(zip(HISTORY_FEATURES, self.values(ts, server, tool), strict=True))

    def values(self, ts: float, server: str, tool: str) -> tuple[float, ...]:
        """:meth:`features` as a tuple in the order of :data:`HISTORY_FEATURES`: what the
        learners and the feature pass read, without a dictionary per call."""
        self.advance(ts)
        pair = self._pairs.get((server, tool))
        srv = self._servers.get(server)
        if pair is None:
            lat = fast = out = ok = NAN
            calls = 0.0
        else:
            lat, fast, out = pair.latency.value, pair.latency_fast.value, pair.output_tokens.value
            ok, calls = pair.success.value, float(pair.calls)
        if srv is None:
            err = recent = slat = conc = since = NAN
            probe: tuple[float, ...] = (NAN,) * 6
        else:
            err, slat, conc = srv.errors.value, srv.latency.value, srv.last_concurrency
            recent = sum(srv.recent) / len(srv.recent) if srv.recent else NAN
            since = ts - srv.last_failure if not math.isnan(srv.last_failure) else NAN
            probe = srv.probe
        return (lat, fast, fast / lat if lat and not math.isnan(lat) else NAN, out, ok, calls,
                err, recent, slat, conc, since, probe[1], probe[2], probe[3], probe[4],
                probe[5], ts - probe[0] if not math.isnan(probe[0]) else NAN)


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
