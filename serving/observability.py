"""Prometheus metrics of the lookup service (the prometheus_client library).

Under gunicorn with several worker processes, PROMETHEUS_MULTIPROC_DIR is set (serving/gunicorn.conf.py) and
/metrics aggregates every worker's samples.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = Histogram(
    "reco_http_request_duration_seconds", "Request latency by endpoint and status",
    ["endpoint", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
FALLBACKS = Counter("reco_fallbacks_total", "Answers served from a fallback list", ["reason"])
REDIS_ERRORS = Counter("reco_redis_errors_total", "Requests that failed because Redis was unavailable")
EVENTS_ACCEPTED = Counter("reco_events_accepted_total", "Events accepted by POST /v1/events", ["type"])
EVENTS_REJECTED = Counter("reco_events_rejected_total", "Events or requests refused by POST /v1/events, by the "
                          "field at fault or the reason", ["reason"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
