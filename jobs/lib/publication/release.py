"""A run's publication: build its values in Spark, write them as a new version, flip live or start an experiment."""
from __future__ import annotations

import logging

import redis
from pyspark.sql import SparkSession

from conf import redis_client
from conf.settings import Config
from jobs.lib.evaluation.metrics import HEADLINE, metric
from jobs.lib.loop import experiment_control
from jobs.lib.publication import versions
from jobs.lib.publication.values import build_values, count_by_kind
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.run_layout import new_version_id, run_paths, utc_now
from jobs.lib.runtime.storage import read_json, write_json
from schemas.experiments import public_view

log = logging.getLogger("reco.publish")


def publish_run(config: Config, run_id: str, spark: SparkSession, force: bool = False, candidate: bool = False,
                share: float | None = None, salt: str | None = None) -> dict:
    """Publish a run's lists as a new version: live at once, or as an experiment's candidate (a canary release
    holds it while an experiment runs). Refused when metrics.json says not publishable, unless forced."""
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
    running = experiment_control.current(client)
    if candidate and running:
        if not canary:
            raise JobError(f"experiment {running['id']} is running; promote or abort it before a new candidate")
        report = {"held": f"experiment {running['id']} is still running; this run's version waits for its "
                          "judgement (publish nothing)", "experiment": running["id"], "published_at": utc_now()}
        write_json(paths.publish_report, report)
        log.warning(report["held"])
        return report

    version = new_version_id(run_id)
    # Built once into the run's folder (the version's exact keys and values), then counted and written from the
    # files: the write reads them with pyarrow, without the JVM-to-Python hop of a cached DataFrame.
    build_values(version, spark.read.parquet(paths.user_recs), spark.read.parquet(paths.item_neighbors),
                 spark.read.parquet(paths.popular), spark.read.parquet(paths.clean_movies),
                 spark.read.parquet(paths.movie_stats)).write.mode("overwrite") \
        .options(**versions.FILE_OPTIONS).parquet(paths.publish_values)
    k = metrics["k"]
    counts = count_by_kind(spark.read.parquet(paths.publish_values), version)
    expected = sum(counts.values())
    meta = {"version": version, "run_id": run_id, "dataset": metrics["dataset"], "k": k,
            "published_at": utc_now(), "trained_at": read_json(paths.train_report)["trained_at"],
            "metrics": {**{metric(name, k): metrics["models"]["als"].get(metric(name, k)) for name in HEADLINE},
                        f"popularity_{metric('ndcg', k)}": metrics["models"]["popularity"].get(metric("ndcg", k))},
            "counts": counts, "top_n": config.recommend.top_n,
            "forced": bool(force and not metrics.get("publishable"))}
    previous = versions.live_version(client)
    seconds = versions.publish_version(client, config.redis, version, paths.publish_values, expected, meta,
                                          make_live=not candidate or not previous)
    experiment = None
    if candidate and previous:  # with nothing live yet, the first version simply goes live
        try:
            experiment = experiment_control.start(client, version, share or config.experiments.canary_share,
                                                  "canary" if canary else "ab", config.experiments.sample_rate, salt)
        except BaseException:
            versions.delete_version(client, version)
            raise
    pruned = versions.prune(client, config.redis.retention)
    report = {"version": version, "previous": previous, "keys": expected + 1, "counts": counts,
              "write_seconds": round(seconds, 3), "keys_per_second": round(expected / seconds),
              "pruned": pruned, "published_at": meta["published_at"], "candidate": bool(experiment),
              "experiment": public_view(experiment)}
    write_json(paths.publish_report, report)
    log.info("published version %s (%d keys, %.0f keys/s)%s; live: %s", version, expected + 1,
             report["keys_per_second"], f" as the treatment of {experiment['id']}" if experiment else "",
             previous if experiment else version)
    return report
