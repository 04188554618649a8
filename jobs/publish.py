"""publish: write a run's answers into Redis as a new version, verify it, then switch the live pointer.

    spark-submit jobs/publish.py --run-id RUN [--force]     publish (refused when metrics say not publishable)
    spark-submit jobs/publish.py --run-id RUN --candidate [--share 0.5]
                                                            publish as a candidate and start an experiment
    spark-submit jobs/publish.py --promote | --abort        end the running experiment: treatment or control live
    spark-submit jobs/publish.py --rollback [VERSION]       point live back to a kept version (default: previous)
    spark-submit jobs/publish.py --prune                    delete versions beyond the retention count

With `experiments.release: canary` every publication is a candidate at `experiments.canary_share`; while an
experiment is still running, a canary publication is held (nothing is written) until a judgement ends it.

Values are built in Spark in the exact shape the API returns, kept as Parquet in the run's folder
(publish/values.parquet) and written from there by the driver with pipelined MSETs. Readers never see half a
version: the pointer moves only after every key is written and counted.
"""
from __future__ import annotations

import argparse
import logging

import redis
from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib import experiments, publication
from jobs.lib.errors import JobError, TransientJobError
from jobs.lib.evaluation import HEADLINE, metric
from jobs.lib.files import read_json, write_json
from jobs.lib.redis_values import build_values, count_by_kind
from jobs.lib.runs import new_version_id, run_paths, utc_now
from jobs.lib.runtime import job_main, spark_session
from schemas import redis_client
from schemas.experiments import public_view

log = logging.getLogger("reco.publish")


def publish(config: Config, run_id: str, spark: SparkSession, force: bool = False, candidate: bool = False,
            share: float | None = None, salt: str | None = None) -> dict:
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
    running = experiments.current(client)
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
        .options(**publication.FILE_OPTIONS).parquet(paths.publish_values)
    k = metrics["k"]
    counts = count_by_kind(spark.read.parquet(paths.publish_values), version)
    expected = sum(counts.values())
    meta = {"version": version, "run_id": run_id, "dataset": metrics["dataset"], "k": k,
            "published_at": utc_now(), "trained_at": read_json(paths.train_report)["trained_at"],
            "metrics": {**{metric(name, k): metrics["models"]["als"].get(metric(name, k)) for name in HEADLINE},
                        f"popularity_{metric('ndcg', k)}": metrics["models"]["popularity"].get(metric("ndcg", k))},
            "counts": counts, "top_n": config.recommend.top_n,
            "forced": bool(force and not metrics.get("publishable"))}
    previous = publication.live_version(client)
    seconds = publication.publish_version(client, config.redis, version, paths.publish_values, expected, meta,
                                          make_live=not candidate or not previous)
    experiment = None
    if candidate and previous:  # with nothing live yet, the first version simply goes live
        try:
            experiment = experiments.start(client, version, share or config.experiments.canary_share,
                                           "canary" if canary else "ab", config.experiments.sample_rate, salt)
        except BaseException:
            publication.delete_version(client, version)
            raise
    pruned = publication.prune(client, config.redis.retention)
    report = {"version": version, "previous": previous, "keys": expected + 1, "counts": counts,
              "write_seconds": round(seconds, 3), "keys_per_second": round(expected / seconds),
              "pruned": pruned, "published_at": meta["published_at"], "candidate": bool(experiment),
              "experiment": public_view(experiment)}
    write_json(paths.publish_report, report)
    log.info("published version %s (%d keys, %.0f keys/s)%s; live: %s", version, expected + 1,
             report["keys_per_second"], f" as the treatment of {experiment['id']}" if experiment else "",
             previous if experiment else version)
    return report


def run(config: Config, run_id: str | None, spark: SparkSession | None = None, force: bool = False,
        rollback_to: str | bool | None = None, prune_only: bool = False, candidate: bool = False,
        share: float | None = None, salt: str | None = None, promote: bool = False, abort: bool = False) -> dict:
    if promote or abort:
        return experiments.end(redis_client.writer(config.redis), "promoted" if promote else "aborted",
                               reason="by hand (publish --promote / --abort)")
    if rollback_to is not None:
        return publication.rollback(redis_client.writer(config.redis), rollback_to or None)
    if prune_only:
        return {"pruned": publication.prune(redis_client.writer(config.redis), config.redis.retention)}
    if not run_id:
        raise JobError("--run-id is required to publish")
    return publish(config, run_id, spark or spark_session(config, "publish"), force=force, candidate=candidate,
                   share=share, salt=salt)


def _arguments(parser) -> None:
    parser.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                        help="publish even when metrics.json says not publishable")
    parser.add_argument("--rollback", dest="rollback_to", nargs="?", const="", default=None, metavar="VERSION",
                        help="point live at VERSION (default: the previous kept version) and exit")
    parser.add_argument("--prune", dest="prune_only", action="store_true",
                        help="delete versions beyond redis.retention and exit")
    parser.add_argument("--candidate", action="store_true",
                        help="publish without going live and start an experiment against the live version")
    parser.add_argument("--share", type=float, default=None,
                        help="the candidate's share of users (default: experiments.canary_share)")
    parser.add_argument("--salt", default=None,
                        help="the candidate's assignment salt (default: random); the same salt, the same split")
    parser.add_argument("--promote", action="store_true", help="end the running experiment: treatment goes live")
    parser.add_argument("--abort", action="store_true", help="end the running experiment: control stays live")


def main() -> None:
    job_main("publish", __doc__.splitlines()[0], run, _arguments, run_id_required=False)


if __name__ == "__main__":
    main()
