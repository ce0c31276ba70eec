from __future__ import annotations

import math

import numpy as np
import pandas as pd

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.models.history import History, call_features


def test_outcomes_count_only_after_the_call_finished():
    h = History()
    h.observe_call(0.0, "a", "t", latency_ms=2000.0, success=0.0)
    assert math.isnan(h.features(1.0, "a", "t")["hist_latency"])
    assert math.isnan(h.features(2.0, "a", "t")["srv_recent_error_rate"])  # finishes at 2.0
    feats = h.features(2.5, "a", "t")
    assert feats["hist_latency"] == 2000.0
    assert feats["srv_recent_error_rate"] == 1.0


def test_call_features_never_see_their_own_outcome():
    records = [parse_record({"ts": float(i), "server": "a", "tool": "t",
                             "latency_ms": 100.0 * (i + 1)}) for i in range(5)]
    frame = records_to_frame(records)
    feats = call_features(frame)
    # Call i sees the EWMA of calls 0..i-1 (each finishes 0.1*(j+1) s after it starts).
    assert np.isnan(feats["hist_latency"].iloc[0])
    assert feats["hist_latency"].iloc[1] == 100.0
    assert feats["hist_latency"].iloc[2] == 100.0 + 0.2 * (200.0 - 100.0)


def test_health_probes_feed_server_features():
    frame = records_to_frame([
        parse_record({"ts": 0, "server": "a", "kind": "health", "reachable": True,
                      "mem_pct": 91.0, "cpu_pct": 50.0, "queue_depth": 4}),
        parse_record({"ts": 10, "server": "a", "tool": "t"}),
    ])
    feats = call_features(frame)
    assert feats["probe_mem"].iloc[0] == 91.0
    assert feats["probe_age_s"].iloc[0] == 10.0
    assert isinstance(feats, pd.DataFrame)


def test_a_history_checkpointed_with_an_object_per_average_loads_and_goes_on():
    """Checkpoints from before the flat statistics held _PairStats and _ServerStats: they
    load into the lists, answer the same and learn on as the history that wrote them."""
    import pickle

    from predictor.models.history import _Ewma, _PairStats, _ServerStats

    def fed(history: History, start: int, stop: int) -> History:
        for i in range(start, stop):
            server = "ab"[i % 2]
            history.observe_call(float(i), server, "t", latency_ms=100.0 + 37 * (i % 5),
                                 success=float(i % 3 != 0), output_tokens=10.0 * i,
                                 concurrency=float(i % 4))
            if i % 7 == 0:
                history.observe_health(float(i), server, reachable=1.0, latency_ms=3.0,
                                       cpu_pct=40.0, mem_pct=50.0 + i, queue_depth=2.0)
        return history

    new = fed(History(), 0, 40)
    new.advance(40.0)
    old = pickle.loads(pickle.dumps(new))  # then rewritten as the objects older code held

    def ewma(alpha: float, value: float) -> _Ewma:
        average = _Ewma(alpha)
        average.value = value
        return average

    old._pairs = {key: _PairStats(ewma(0.2, p[0]), ewma(0.6, p[1]), ewma(0.2, p[2]),
                                  ewma(0.2, p[3]), p[4]) for key, p in new._pairs.items()}
    old._servers = {key: _ServerStats(ewma(0.05, s[0]), ewma(0.1, s[1]), s[5], s[2], s[3],
                                      s[4]) for key, s in new._servers.items()}
    loaded = pickle.loads(pickle.dumps(old))
    assert all(isinstance(p, list) for p in loaded._pairs.values())
    fed(loaded, 40, 80)
    fed(new, 40, 80)
    for server in "ab":
        assert np.array_equal(loaded.values(90.0, server, "t"), new.values(90.0, server, "t"),
                              equal_nan=True)
    assert loaded.features(90.0, "a", "t")["hist_calls"] == 40.0
