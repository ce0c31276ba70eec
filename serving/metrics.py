"""Prometheus metrics of one service, in a registry of its own.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so two
apps in one process (tests) do not share counters.

>>> m = Metrics()
>>> m.ingested.labels(via="telemetry").inc(3)
>>> b"predictor_records_ingested_total" in m.render()[0]
True
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0)


class Metrics:
    """Requests, latencies, ingestion, learning queue, model versions, decision sources."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("predictor_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("predictor_http_request_seconds", "HTTP request latency",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ingested = Counter("predictor_records_ingested", "records stored durably",
                                ["via"], registry=r)
        self.rejected = Counter("predictor_records_rejected", "records rejected as invalid",
                                ["via"], registry=r)
        self.replayed = Counter("predictor_ingest_replayed",
                                "retried batches (a batch id seen before) answered, not stored",
                                registry=r)
        self.throttled = Counter("predictor_ingest_throttled",
                                 "ingest batches refused because the learning queue was full",
                                 registry=r)
        self.learned = Counter("predictor_records_learned", "records the online models learned",
                               registry=r)
        self.queue = Gauge("predictor_learning_queue_records",
                           "records stored but not yet learned", registry=r)
        self.model_version = Gauge("predictor_model_version",
                                   "version of each family's model answering (online: records "
                                   "learned)", ["family", "variant"], registry=r)
        self.decisions = Counter("predictor_decisions", "decisions answered, by source",
                                 ["decision", "source"], registry=r)
        self.checkpoints = Counter("predictor_checkpoints", "online model checkpoints written",
                                   registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
