"""A run's publication: build its values in Spark (once per run's outputs), write them as a new version, flip live
or start an experiment."""
from __future__ import annotations

import logging
from datetime import datetime

import redis
from pyspark.sql import SparkSession

from conf import redis_client
from conf.settings import Config
from jobs.lib.evaluation.metrics import HEADLINE, metric
from jobs.lib.loop import experiment_control
from jobs.lib.model.als import fold_in_settings
from jobs.lib.publication import versions
from jobs.lib.publication.values import build_values, count_by_kind
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.leases import Lease, default_holder
from jobs.lib.runtime.run_layout import new_version_id, run_paths, utc_now
from schemas import items
from schemas import redis_keys as rk
from schemas.events import stream_id_key
from schemas.experiments import public_view
from schemas.storage import delete_file, exists, fingerprint, read_json, write_json
from schemas.versions import VersionMeta

log = logging.getLogger("reco.publish")


def publish_run(config: Config, run_id: str, spark: SparkSession, force: bool = False, candidate: bool = False,
                share: float | None = None, salt: str | None = None, data_as_of: str | None = None) -> dict:
    """Publish a run's lists as a new version: live at once, or as an experiment's candidate (a canary release
    holds it while an experiment runs). Refused when metrics.json says not publishable, or when the live version
    was built from newer data (a later `data_as_of`, the DAG run's logical date, or later events), unless forced.
    Runs under the `publish` lease: one publication at a time."""
    paths = run_paths(config, run_id)
    canary = config.experiments.release == "canary" and not candidate
    candidate = candidate or canary
    metrics = read_json(paths.metrics)
    if not metrics.get("publishable") and not force:
        failed = [g["gate"] for g in metrics.get("gates", []) if not g.get("passed")]
        raise JobError(f"run {run_id} is not publishable (failed gates: {failed}); use --force to publish anyway")
    client = redis_client.writer(config.redis)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise TransientJobError(f"Redis unreachable at {redis_client.safe_url(config.redis.url)}: {exc}") from None
    with Lease(client, "publish", default_holder(run_id), config.redis.lease_ttl_s, config.redis.lease_wait_s) as lease:
        return _publish_under_lease(config, run_id, spark, client, lease, metrics, force, candidate, canary, share,
                                    salt, data_as_of)


def _publish_under_lease(config, run_id, spark, client, lease, metrics, force, candidate, canary, share, salt,
                         data_as_of) -> dict:
    paths = run_paths(config, run_id)
    running = experiment_control.current(client)
    if candidate and running:
        if not canary:
            raise JobError(f"experiment {running['id']} is running; promote or abort it before a new candidate")
        report = {"held": f"experiment {running['id']} is still running; this run's version waits for its "
                          "judgement (publish nothing)", "experiment": running["id"], "published_at": utc_now()}
        write_json(paths.publish_report, report)
        log.warning(report["held"])
        return report

    archived = read_json(paths.events) if exists(paths.events) else {}
    events_high_water = (archived.get("batch") or {}).get("last_id")  # none when events.archive is off
    previous = versions.live_version(client)
    newer = _newer_live_data(client, previous, data_as_of, events_high_water) if previous and not candidate else ""
    if newer and not force:  # a backfill of an older date: its run succeeds, live stays
        report = {"held": f"live version {previous} was built from newer data ({newer}): not replaced; --force "
                          "publishes anyway", "live": previous, "published_at": utc_now()}
        write_json(paths.publish_report, report)
        log.warning(report["held"])
        return report
    if newer:
        log.warning("replacing live version %s, built from newer data (%s): forced", previous, newer)
    # Pruned first, so that Redis holds at most redis.retention versions while this one is written (and the live
    # one, and any an experiment serves); the live one stays for rollback.
    pruned = versions.prune(client, config.redis.retention - 1, lease)
    version = new_version_id(run_id)
    counts, built = run_values(spark, paths)
    expected = sum(counts.values())
    k = metrics["k"]
    meta = VersionMeta(
        version=version, run_id=run_id, dataset=metrics["dataset"], k=k, published_at=utc_now(),
        trained_at=read_json(paths.train_report)["trained_at"], data_as_of=data_as_of,
        events_high_water=events_high_water,
        metrics={**{metric(name, k): metrics["models"]["als"].get(metric(name, k)) for name in HEADLINE},
                 f"popularity_{metric('ndcg', k)}": metrics["models"]["popularity"].get(metric("ndcg", k))},
        counts=counts, top_n=config.recommend.top_n, format=items.FORMAT,
        # What the speed layer folds people's new events into, exactly as train built its preferences: the
        # settings, and the bundle the recommend job wrote (schemas/bundle.py).
        fold_in={**fold_in_settings(config), "bundle": paths.fold_in_bundle},
        forced=bool(force and not metrics.get("publishable")))
    seconds = versions.publish_version(client, config.redis, version, paths.publish_values, expected, meta.to_json(),
                                       lease, make_live=not candidate or not previous)
    experiment = None
    if candidate and previous:  # with nothing live yet, the first version simply goes live
        try:
            experiment = experiment_control.start(client, version, share or config.experiments.canary_share,
                                                  "canary" if canary else "ab", config.experiments.sample_rate, salt)
        except BaseException:
            versions.delete_version(client, version)
            raise
    pruned += versions.prune(client, config.redis.retention, lease, keep=(previous,) if previous else ())
    report = {"version": version, "previous": previous, "keys": expected + 1, "counts": counts, "values_built": built,
              "write_seconds": round(seconds, 3), "keys_per_second": round(expected / seconds),
              "pruned": pruned, "published_at": meta.published_at, "forced": meta.forced, "candidate": bool(experiment),
              "experiment": public_view(experiment)}
    write_json(paths.publish_report, report)
    log.info("published version %s (%d keys, %.0f keys/s)%s; live: %s", version, expected + 1,
             report["keys_per_second"], f" as the treatment of {experiment['id']}" if experiment else "",
             previous if experiment else version)
    return report


# What a run's values are built from (run_layout names; the optional ones only where the run has them).
VALUE_INPUTS = ("user_recs", "item_neighbors", "popular", "clean_movies", "movie_stats", "clean_ratings",
                "clean_dismissed", "content_neighbors", "new_picks", "new_lists")


def run_values(spark: SparkSession, paths) -> tuple[dict[str, int], bool]:
    """(keys per kind, built now?) of the run's values in paths.publish_values, the version's exact suffixes and
    values, written from there with pyarrow (no JVM-to-Python hop). They do not depend on the version, so they
    are built in Spark only when the files they come from changed since the last build (or the value format
    did): a retried, forced or repeated publication of a run writes what the first one built."""
    files = {name: fingerprint(getattr(paths, name)) for name in VALUE_INPUTS}
    inputs = {name: getattr(paths, name) for name, found in files.items() if found}  # [] where the run has none
    built_from = {"format": items.FORMAT, "inputs": {name: files[name] for name in inputs}}
    if exists(paths.publish_values_built):
        record = read_json(paths.publish_values_built)
        if record["built_from"] == built_from and record["values"] == fingerprint(paths.publish_values):
            return record["counts"], False
        delete_file(paths.publish_values_built)  # gone before the files it describes are replaced
    seen = spark.read.parquet(paths.clean_ratings).select("user_id", "movie_id")
    if "clean_dismissed" in inputs:
        seen = seen.unionByName(spark.read.parquet(paths.clean_dismissed).select("user_id", "movie_id"))
    optional = {name: spark.read.parquet(inputs[name]) if name in inputs else None
                for name in ("content_neighbors", "new_picks", "new_lists")}
    build_values(spark.read.parquet(paths.user_recs), spark.read.parquet(paths.item_neighbors),
                 spark.read.parquet(paths.popular), spark.read.parquet(paths.clean_movies),
                 spark.read.parquet(paths.movie_stats), seen, optional["content_neighbors"], optional["new_picks"],
                 optional["new_lists"]) \
        .write.mode("overwrite").options(**versions.FILE_OPTIONS).parquet(paths.publish_values)
    counts = count_by_kind(spark.read.parquet(paths.publish_values))
    # Last, once they are complete; with the values' own files, so that one lost or changed is built again.
    write_json(paths.publish_values_built,
               {"built_from": built_from, "values": fingerprint(paths.publish_values), "counts": counts})
    return counts, True


def _newer_live_data(client, live: str, data_as_of: str | None, events_high_water: str | None) -> str:
    """How the live version's data is newer than this run's (compared where both know it), or ""."""
    meta = VersionMeta.from_json(client.get(rk.key(live, "meta"))) or VersionMeta(version=live, run_id="")
    reasons = []
    if data_as_of and meta.data_as_of and datetime.fromisoformat(meta.data_as_of) > datetime.fromisoformat(data_as_of):
        reasons.append(f"its data is as of {meta.data_as_of}, this run's as of {data_as_of}")
    if events_high_water and meta.events_high_water and \
            stream_id_key(meta.events_high_water) > stream_id_key(events_high_water):
        reasons.append(f"it learnt from events up to {meta.events_high_water}, this run up to {events_high_water}")
    return "; ".join(reasons)
