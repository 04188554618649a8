"""Prometheus metrics of the lookup service (the prometheus_client library).

Request counters and histograms are recorded as requests happen. What describes the system rather than the
requests (the live version, its age and quality, the event backlog) is read at scrape time by
`LiveCollector`, so every scrape says how things are now, whichever worker answers it.

Under gunicorn with several worker processes, PROMETHEUS_MULTIPROC_DIR is set (serving/gunicorn.conf.py) and
/metrics aggregates every worker's samples.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Histogram(
    "reco_http_request_duration_seconds",
    "Request latency by endpoint and status",
    ["endpoint", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FALLBACKS = Counter("reco_fallbacks_total", "Answers served from a fallback list", ["reason"])
SHORTENED = Counter(
    "reco_answers_shortened_total",
    "Answers shorter than the k asked for: filters and exclusions "
    "left too few movies in the lists they draw from (topped up from the popular lists)",
    ["endpoint"],
)
REDIS_ERRORS = Counter("reco_redis_errors_total", "Requests that failed because Redis was unavailable")
EXPERIMENT_REQUESTS = Histogram(
    "reco_experiment_request_duration_seconds",
    "Latency of the answers given in an experiment, by arm",
    ["experiment", "arm", "endpoint", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EXPERIMENT_FALLBACKS = Counter(
    "reco_experiment_fallbacks_total", "Fallback answers in an experiment, by arm", ["experiment", "arm", "reason"]
)
EXPOSURES = Counter(
    "reco_exposures_total",
    "Answers shown in an experiment: logged for judging, sampled_out "
    "(outside experiments.sample_rate) or dropped (log full or unreachable too long)",
    ["experiment", "arm", "outcome"],
)
EVENTS_ACCEPTED = Counter("reco_events_accepted_total", "Events accepted by POST /v1/events", ["type"])
EVENTS_REJECTED = Counter(
    "reco_events_rejected_total",
    "Events or requests refused by POST /v1/events, by the field at fault or the reason",
    ["reason"],
)
EVENTS_REPLAYED = Counter(
    "reco_events_replayed_total", "Events answered again for a retried Idempotency-Key, not appended again"
)


class LiveCollector:
    """Scrape-time gauges from Redis: the live version (info, publication time, age, headline metrics), the
    event backlog against its limit, the speed layer's lag, and the last batch run (result, task seconds, row
    counts; recorded by the DAG's report_run task). `reco_store_up` is 0 when Redis cannot be read (the rest is
    then absent)."""

    def __init__(self, versions, event_log, backlog_limit: int):
        self.versions, self.event_log, self.backlog_limit = versions, event_log, backlog_limit

    def collect(self):
        import redis

        from schemas import redis_keys as rk
        from serving.versions import NoLiveVersion, StoreUnavailable

        up = GaugeMetricFamily("reco_store_up", "1 when Redis answered this scrape")
        try:
            backlog = self.event_log.backlog(max_age=0)
            speed_lag = speed_layer_lag(self.versions.client)
            last_run = rk.decode(self.versions.client.get(rk.LAST_RUN))
            try:
                version, experiment = self.versions.state(refresh=True)
                (meta,) = self.versions.get_in_version(version, [rk.suffix("meta")])
            except NoLiveVersion:
                version, meta, experiment = None, None, None
        except (StoreUnavailable, redis.RedisError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge("reco_event_backlog", "Events waiting in the stream for the next run's archive", backlog)
        yield _gauge("reco_event_backlog_limit", "events.backlog: intake answers 503 at this many", self.backlog_limit)
        if speed_lag is not None:
            yield _gauge("reco_speed_layer_lag", "Events the speed layer has not read yet (serving/speed/)", speed_lag)
        if last_run:
            yield from _last_run(last_run)
        if experiment:
            running = GaugeMetricFamily(
                "reco_experiment_info",
                "The running experiment (always 1)",
                labels=["experiment", "kind", "control", "treatment"],
            )
            running.add_metric(
                [experiment["id"], experiment["kind"], experiment["control"], experiment["treatment"]], 1
            )
            yield running
            yield _gauge("reco_experiment_treatment_share", "Share of users in the treatment arm", experiment["share"])
        if not version or not meta:
            return
        info = GaugeMetricFamily(
            "reco_live_version_info", "The live version (always 1)", labels=["version", "run_id", "dataset"]
        )
        info.add_metric([version, str(meta.get("run_id", "")), str(meta.get("dataset", ""))], 1)
        yield info
        published = datetime.fromisoformat(meta["published_at"]).timestamp()
        yield _gauge(
            "reco_live_version_published_timestamp_seconds",
            "When the live version was published (Unix time)",
            published,
        )
        yield _gauge(
            "reco_live_version_age_seconds", "Seconds since the live version was published", time.time() - published
        )
        quality = GaugeMetricFamily(
            "reco_live_version_metric", "Offline metrics of the live version's run", labels=["metric"]
        )
        for name, value in (meta.get("metrics") or {}).items():
            if value is not None:
                quality.add_metric([name], float(value))
        yield quality


def speed_layer_lag(client) -> int | None:
    """Events a speed layer's consumer group has not been given yet (the largest, when several share the
    people); None without a speed layer (or when Redis cannot count them: entries trimmed past the group's
    position)."""
    import redis

    from schemas import redis_keys as rk

    try:
        groups = client.xinfo_groups(rk.EVENTS)
    except redis.ResponseError:  # no stream yet
        return None
    names = [(g["name"].decode() if isinstance(g["name"], bytes) else g["name"], g.get("lag")) for g in groups]
    lags = [lag for name, lag in names if name.partition("-")[0] == rk.SPEED_GROUP]
    return None if not lags or None in lags else max(lags)


def _last_run(run: dict):
    info = GaugeMetricFamily("reco_batch_last_run_info", "The last DAG run (always 1)", labels=["run_id", "result"])
    info.add_metric([run["run_id"], run["result"]], 1)
    yield info
    yield _gauge(
        "reco_batch_last_run_success",
        "1 when the last DAG run published; 0 when it failed or a gate stopped it",
        1 if run["result"] == "success" else 0,
    )
    yield _gauge(
        "reco_batch_last_run_timestamp_seconds",
        "When the last DAG run finished (Unix time)",
        datetime.fromisoformat(run["finished_at"]).timestamp(),
    )
    seconds = GaugeMetricFamily(
        "reco_batch_task_duration_seconds", "Seconds per task of the last DAG run", labels=["task"]
    )
    for task, value in sorted(run.get("task_seconds", {}).items()):
        seconds.add_metric([task], value)
    yield seconds
    rows = GaugeMetricFamily("reco_batch_rows", "Row counts of the last DAG run", labels=["table"])
    for table, value in sorted(run.get("rows", {}).items()):
        rows.add_metric([table], value)
    yield rows
    quality = GaugeMetricFamily(
        "reco_batch_last_run_metric", "Offline metrics of the last DAG run (published or not)", labels=["metric"]
    )
    for name, value in sorted((run.get("metrics") or {}).items()):
        if isinstance(value, (int, float)):
            quality.add_metric([name], value)
    yield quality


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def render(live: LiveCollector | None = None) -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if live is not None:
        scraped = CollectorRegistry()
        scraped.register(live)
        body += generate_latest(scraped)
    return body, CONTENT_TYPE_LATEST
