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
