"""Issue 15's sparse-load weakness on real data: azure-llm-2023 with its clock slowed 200 times.

Most 60 s windows of a server then hold 0 to 2 calls
(``predictor.data.scenarios.stretched``).
"""

from __future__ import annotations

import gzip

import orjson

from predictor.data.frame import records_to_frame
from predictor.data.scenarios import stretched
from predictor.data.schema import parse_record
from predictor.training.eval_scaling import fit_scaling, score_scaling
from predictor.training.features import Features


def test_the_scale_decision_on_sparse_load_against_hpa_at_its_cost(shared_data):
    with gzip.open(shared_data / "azure-llm-2023.jsonl.gz") as handle:
        raw = stretched([orjson.loads(line) for line in handle], 200.0)
    frame = records_to_frame([parse_record(r) for r in raw]).reset_index(drop=True)
    features = Features.of(frame)
    section, _ = score_scaling(features, fit_scaling(features))
    assert section["window_s"] == 60.0  # the requested window: no coarsening
    mae = section["forecast_mae"]
    assert mae["online"] <= 1.1 * mae["last_value"] and mae["batch"] <= 1.1 * mae["last_value"]
    under, replicas = section["underprovisioned_pct"], section["mean_replicas"]
    # At exactly the HPA rule's mean replicas on the test windows (interpolated between
    # the quantiles that bracket it) the decision misses at most 75 % of the HPA's windows;
    # this session measured 1.83 % against 3.28 %.
    assert replicas["decision_at_hpa_cost"] == replicas["reactive"]
    assert under["decision_at_hpa_cost"] <= 0.75 * under["reactive"]
    # The quantile chosen beforehand on training windows spends less and still misses fewer.
    assert replicas["decision_matched_cost"] <= replicas["reactive"]
    assert under["decision_matched_cost"] < under["reactive"]
