"""Prometheus metrics of the server: requests, latency, errors, batches, queue depth.

With several worker processes, metrics go through prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``keepwell serve``), so a scrape sums every worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as mp

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's metrics, in a registry of their own (tests create many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.requests = Counter("keepwell_requests_total", "Prediction requests answered.",
                                ["model", "version", "arm", "status"], registry=self.registry)
        self.latency = Histogram("keepwell_request_latency_seconds",
                                 "Time to answer a prediction request.",
                                 ["model", "version", "arm"], buckets=_LATENCY_BUCKETS,
                                 registry=self.registry)
        self.errors = Counter("keepwell_errors_total", "Error responses, by problem type.",
                              ["model", "code"], registry=self.registry)
        self.batch_size = Histogram("keepwell_batch_requests", "Requests per model call.",
                                    ["model", "version", "arm"], buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.batch_rows = Histogram("keepwell_batch_rows", "Rows per model call.",
                                    ["model", "version", "arm"], buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.queue_depth = Gauge("keepwell_queue_depth", "Requests waiting for a batch.",
                                 ["model"], registry=self.registry,
                                 multiprocess_mode="livesum")
        self.shadow_failures = Counter("keepwell_shadow_failures_total",
                                       "Shadow scorings that failed (never user-visible).",
                                       ["model"], registry=self.registry)
        self.logged = Counter("keepwell_predlog_records_total",
                              "Prediction records committed to the logbook.",
                              ["model", "arm"], registry=self.registry)

    def observe_batch(self, model: str, version: int, arm: str, requests: int,
                      rows: int) -> None:
        labels = (model, str(version), arm)
        self.batch_size.labels(*labels).observe(requests)
        self.batch_rows.labels(*labels).observe(rows)
        self.logged.labels(model, arm).inc(rows)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
