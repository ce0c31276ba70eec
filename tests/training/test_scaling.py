from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from predictor.models.load import window_counts
from predictor.training.eval_scaling import predictive_replicas, reactive_replicas


def test_reactive_is_the_hpa_rule_one_window_late():
    loads = np.array([7.0, 14.0, 70.0])
    assert reactive_replicas(loads, 10.0).tolist() == [1.0, 1.0, 2.0, 10.0]


def test_predictive_steps_up_at_most_one_and_a_half():
    reps = predictive_replicas(np.array([10.0, 1000.0, 1000.0, 1000.0]), 1.0)
    assert reps[0] == 15.0
    assert all(b <= max(a + 1, np.floor(a * 1.5)) for a, b in itertools.pairwise(reps))


def test_predictive_scales_down_only_after_stabilization():
    reps = predictive_replicas(np.array([70.0] * 3 + [7.0] * 8), 10.0)
    assert reps[3] == 10.0  # the high recommendation is still in the window
    assert reps[-1] == 1.0


def test_window_counts_fill_empty_windows():
    counts = window_counts(np.array([0.0, 1.0, 130.0]), np.array(["a", "a", "b"], dtype=object),
                           60.0)
    assert isinstance(counts, pd.DataFrame)
    assert counts["a"].tolist() == [2.0, 0.0, 0.0]
    assert counts["b"].tolist() == [0.0, 0.0, 1.0]
