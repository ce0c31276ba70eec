"""Per-family model speed: online learn/predict microseconds, batch fit and predict.

Usage::

    python bench/models.py [--events 100000] [--seed 0]

Simulates ``--events`` records, builds the shared features once (not
timed), then times each family's online variant one event at a time
(median microseconds over the calls) and its batch variant: fit seconds
scaled to 100,000 rows, predict microseconds per call for 1 and 10 rows (a
decision about ten candidates) and per row in batches of 1,000 (median of
repeats). Also the select decision with 10 candidates.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file is named like the project's ``models`` package: drop its own folder from
# the import path so that ``import models`` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402

from predictor.data.frame import records_to_frame  # noqa: E402
from predictor.data.schema import parse_record  # noqa: E402
from predictor.data.simulator import Simulator  # noqa: E402
from predictor.models.cache import AccessModel  # noqa: E402
from predictor.models.features import CallFeaturizer  # noqa: E402
from predictor.models.history import call_features  # noqa: E402
from predictor.models.load import BatchLoad, OnlineLoad, load_features, window_counts  # noqa: E402
from predictor.models.performance import BatchPerformance, OnlinePerformance  # noqa: E402
from predictor.models.resources import BatchResources, OnlineResources  # noqa: E402
from predictor.models.risk import RISK_FEATURES, BatchRisk, ServerRisk  # noqa: E402
from predictor.select import Selector, SelectRequest  # noqa: E402


def per_call_us(fn: Callable[[int], object], n: int, repeat: int = 3) -> float:
    """Median over repeats of the mean microseconds per call of ``fn(i)`` for i < n."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = records_to_frame(parse_record(r) for r in Simulator(args.seed).records(args.events))
    calls = frame[frame["kind"] == "call"]
    history = call_features(frame)
    featurizer = CallFeaturizer().fit(calls, history)
    X = featurizer.transform(calls, history)
    xs = list(featurizer.dicts(X[:5000]))
    lat = calls["latency_ms"].to_numpy(float)
    ok = calls["success"].to_numpy(float)
    tokens = calls["output_tokens"].to_numpy(float)
    cost = calls["cost_usd"].to_numpy(float)
    rows = []

    def batch_row(family: str, fit: Callable[[], object], predict: Callable[[np.ndarray], object],
                  matrix: np.ndarray) -> None:
        start = time.perf_counter()
        fit()
        fit_s = (time.perf_counter() - start) * 100_000 / len(matrix)
        one = per_call_us(lambda i: predict(matrix[i % len(matrix): i % len(matrix) + 1]), 200)
        ten = per_call_us(lambda i: predict(matrix[i % (len(matrix) - 10):][:10]), 200)
        thousand = per_call_us(lambda i: predict(matrix[:1000]), 5) / 1000
        rows.append((family, "batch", f"fit {fit_s:.1f} s / 100k rows",
                     f"predict {one:.0f} us (1 row), {ten:.0f} us (10 rows), "
                     f"{thousand:.1f} us/row (1000)"))

    def online_row(family: str, learn: Callable[[int], object],
                   predict: Callable[[int], object], n: int) -> None:
        rows.append((family, "online", f"learn_one {per_call_us(learn, n, 1):.0f} us",
                     f"predict_one {per_call_us(predict, n):.0f} us"))

    perf = OnlinePerformance()
    online_row("performance",
               lambda i: perf.learn_one(xs[i], {"latency_ms": lat[i], "success": ok[i],
                                                "output_tokens": tokens[i], "cost_usd": cost[i]}),
               lambda i: perf.predict_one(xs[i]), len(xs))
    batch_perf = BatchPerformance(categorical=featurizer.categorical_mask)
    batch_row("performance",
              lambda: batch_perf.fit(X, latency_ms=lat, success=ok, output_tokens=tokens,
                                     cost_usd=cost, feature_names=featurizer.feature_names_),
              batch_perf.predict, X)

    res = OnlineResources()
    online_row("resources", lambda i: res.learn_one(xs[i], lat[i]),
               lambda i: res.predict_one(xs[i]), len(xs))
    batch_res = BatchResources(categorical=featurizer.categorical_mask)
    batch_row("resources",
              lambda: batch_res.fit(X, {"duration_ms": lat},
                                    base_column=featurizer.feature_names_.index("hist_latency")),
              batch_res.predict, X)

    risk_x = history.loc[calls.index, list(RISK_FEATURES)].to_numpy(float)
    risk_dicts = [dict(zip(RISK_FEATURES, row, strict=True)) for row in risk_x[:5000]]
    risk_servers = calls["server"].to_numpy(object)
    online_risk = ServerRisk()  # what the risk decision learns: fleet and per-server models
    online_row("risk", lambda i: online_risk.learn_one(risk_servers[i], risk_dicts[i], not ok[i]),
               lambda i: online_risk.predict_proba(risk_servers[i], risk_dicts[i]),
               len(risk_dicts))
    batch_risk = BatchRisk()
    batch_row("risk", lambda: batch_risk.fit(risk_x, 1 - ok), batch_risk.predict_proba, risk_x)

    counts = window_counts(calls["ts"].to_numpy(float), calls["server"].to_numpy(object), 60.0)
    feats = load_features(counts, 60.0)
    load_dicts = feats.drop(columns=["y", "series"]).to_dict("records")
    y_load = feats["y"].to_numpy(float)
    online_load = OnlineLoad()
    online_row("load", lambda i: online_load.learn_one(load_dicts[i], y_load[i]),
               lambda i: online_load.predict_one(load_dicts[i]), len(load_dicts))
    batch_load = BatchLoad()
    batch_row("load", lambda: batch_load.fit(feats), lambda m: batch_load.predict(feats.iloc[m]),
              np.arange(len(feats)))

    keys = calls["cache_key"].dropna().tolist()
    key_ts = calls.loc[calls["cache_key"].notna(), "ts"].tolist()
    access = AccessModel()
    online_row("cache", lambda i: access.learn_one(keys[i], key_ts[i]),
               lambda i: access.predict_next(keys[i], k=2), min(len(keys), 20_000))

    selector = Selector(seed=0)
    servers = [f"s{i}" for i in range(10)]
    for i in range(5000):
        selector.observe_call(float(i), servers[i % 10], "search",
                              latency_ms=100.0 + 10 * (i % 10), success=i % 17 != 0)
    req = SelectRequest(task_type="search", candidates=servers, explore=0.1)
    samples = []
    for _ in range(3000):
        start = time.perf_counter()
        selector.select(req)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    rows.append(("select", "decision", f"median {samples[len(samples) // 2]:.0f} us",
                 f"p99 {samples[int(0.99 * len(samples))]:.0f} us (10 candidates)"))

    width = max(len(r[2]) for r in rows)
    print(f"events: {args.events}, calls: {len(calls)}, features: {X.shape[1]}")
    for family, variant, a, b in rows:
        print(f"{family:12s} {variant:8s} {a:{width}s}  {b}")
    # ru_maxrss is in KiB on Linux; this process is the only one (fits use threads).
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak resident memory: {peak_mb:,} MB")
    print(f"command: python bench/models.py --events {args.events} --seed {args.seed}")


if __name__ == "__main__":
    main()
