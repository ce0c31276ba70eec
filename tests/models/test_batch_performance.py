"""BatchPerformance: the targets it fits, and each the same whatever else is fitted."""

import numpy as np
import pytest

from predictor.models.performance import PERFORMANCE_TARGETS, BatchPerformance


def _data(n: int = 1500, seed: int = 3) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    server = rng.integers(0, 3, n)
    load = rng.uniform(0, 10, n)
    X = np.column_stack([server, load, rng.normal(size=n)])
    latency = np.exp(4.0 + 0.5 * server + 0.1 * load + rng.normal(0, 0.3, n))
    success = (rng.uniform(size=n) > 0.05 + 0.1 * (server == 2)).astype(float)
    tokens = rng.integers(10, 500, n).astype(float)
    cost = 1e-4 * (1 + server) + rng.uniform(0, 1e-5, n)
    return X, {"latency_ms": latency, "success": success, "output_tokens": tokens,
               "cost_usd": cost}


def test_a_subset_of_targets_predicts_them_as_the_full_model_and_nan_for_the_rest() -> None:
    X, y = _data()
    categorical = [True, False, False]
    full = BatchPerformance(categorical=categorical).fit(X, **y)
    some = BatchPerformance(categorical=categorical,
                            targets=("latency_p50_ms", "success")).fit(X, **y)
    a, b = full.predict(X[:200]), some.predict(X[:200])
    np.testing.assert_array_equal(a.latency_p50_ms, b.latency_p50_ms)
    np.testing.assert_array_equal(a.success, b.success)
    for name in ("latency_p95_ms", "output_tokens", "cost_usd"):
        assert np.isnan(getattr(b, name)).all()
        assert np.isfinite(getattr(a, name)).all()
    # The latency model learned the servers apart: server 2 is the slowest.
    p50 = a.latency_p50_ms
    assert p50[X[:200, 0] == 2].mean() > 2 * p50[X[:200, 0] == 0].mean()


def test_every_target_is_fitted_by_default_and_unknown_ones_are_refused() -> None:
    assert BatchPerformance().targets == PERFORMANCE_TARGETS
    with pytest.raises(ValueError, match="latency_p99"):
        BatchPerformance(targets=("latency_p99",))
