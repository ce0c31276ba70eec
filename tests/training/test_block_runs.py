"""Issue 15's cache weakness on real arrivals: requests that read runs of prompt blocks.

``azure-llm-2023``'s requests as the 256-token blocks a prefix cache reads
(``predictor.data.scenarios.prefix_blocks``): shared system prompts and
conversation histories, and most blocks read once.
"""

from __future__ import annotations

import gzip

import orjson

from predictor.data.frame import records_to_frame
from predictor.data.scenarios import prefix_blocks
from predictor.data.schema import parse_record
from predictor.models.caching import PredictiveCache
from predictor.preload import Preloader
from predictor.training.eval_cache import _ServedPreloads, fit_cache, score_cache
from predictor.training.features import Features


def test_the_served_cache_closes_the_gap_to_belady_on_block_runs(shared_data):
    with gzip.open(shared_data / "azure-llm-2023.jsonl.gz") as handle:
        blocks = prefix_blocks([orjson.loads(line) for line in handle])
    frame = records_to_frame([parse_record(r) for r in blocks]).reset_index(drop=True)
    features = Features.of(frame)
    section, _ = score_cache(features, fit_cache(features))
    ratios = section["hit_ratio"]
    gap = ratios["belady"] - ratios["lru"]
    # Measured: the served decision's cache closes 0.41 of the LRU-to-Belady gap (it
    # closed 0.12 as a segmented LRU that admits every missed block).
    assert (ratios["served"] - ratios["lru"]) / gap >= 0.40

    # The same preload decision in front of the former cache: every miss admitted.
    keys = features.calls["cache_key"].to_numpy(object)
    ts = features.calls["ts"].to_numpy(float)
    preloader = Preloader()
    for key, t in zip(keys[features.train], ts[features.train], strict=True):
        preloader.observe(key, float(t))
    before = PredictiveCache(section["cache_size"], _ServedPreloads(preloader),
                             threshold=0.05, protected_share=0.8, preload_share=0.25,
                             window_share=None, adapt_preloads=False)
    for key, t in zip(keys[features.test], ts[features.test], strict=True):
        before.access(key, float(t))
    assert (before.hit_ratio - ratios["lru"]) / gap < 0.2


def test_the_served_cache_holds_its_figure_on_cloudphysics(shared_data):
    """Issue 15: the served decision's cache at or above the figure the tuned predictive
    cache reached before its preload share adapted (0.620)."""
    from predictor.training.evaluate import load_log

    features = Features.of(load_log(shared_data / "cloudphysics-cache.jsonl.gz"))
    section, _ = score_cache(features, fit_cache(features))
    ratios = section["hit_ratio"]
    # Measured: 0.6205 (0.5958 with the preloads' share fixed at 5 %).
    assert section["cache_size"] == 96
    assert ratios["served"] >= 0.620
    assert ratios["lru"] < ratios["served"] < ratios["belady"]
