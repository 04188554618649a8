"""evaluate: the GUIDE's protocol for ALS and the popularity baseline, a quality gate, metrics.json.

Ranking (implicit ALS vs most-popular): Precision, Recall, NDCG and MAP at k over the top k among movies the
user did not rate in train, binary relevance, averaged over users with a test rating; catalog coverage and
popularity bias of the lists; the same by user-activity bucket. Rating prediction (explicit ALS vs each
movie's mean rating): RMSE and MAE on the test ratings.
"""
from __future__ import annotations

import logging
import time

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.common import job_main, read_json, run_paths, spark_session, utc_now, write_json
from jobs.ranking import (activity_bucket, catalog_coverage, mean_popularity_percentile, mean_ranking_metrics,
                          per_user_ranking_metrics, popularity_percentiles, popularity_top_n, rated_items,
                          top_n_by_dot)
from jobs.train import ExplicitModel, model_path
from schemas import redis_keys

log = logging.getLogger("reco.evaluate")


def als_top_n(model: ALSModel, train: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """Top n per user by the implicit model, excluding the user's training movies."""
    queries = model.userFactors.withColumnRenamed("id", "user_id") \
        .join(users.select("user_id").distinct(), "user_id").join(rated_items(train), "user_id", "left")
    return top_n_by_dot(queries, model.itemFactors.withColumnRenamed("id", "movie_id"), n, "user_id")


def rating_errors(predictions: DataFrame) -> dict:
    row = predictions.agg(F.sqrt(F.avg((F.col("prediction") - F.col("rating")) ** 2)),
                          F.avg(F.abs(F.col("prediction") - F.col("rating")))).first()
    return {"rmse": row[0], "mae": row[1]}


def ranking_report(recs: DataFrame, test: DataFrame, activity: DataFrame, percentiles: DataFrame,
                   n_catalog: int, k: int) -> dict:
    per_user = per_user_ranking_metrics(recs, test, k).join(activity, "user_id").cache()
    report = mean_ranking_metrics(per_user, k)
    report["coverage"] = catalog_coverage(recs, n_catalog, k)
    report["popularity_percentile"] = mean_popularity_percentile(recs, percentiles, k)
    report["by_activity"] = {
        row["bucket"]: {"users": row["users"], f"ndcg@{k}": row["ndcg"], f"precision@{k}": row["precision"],
                        f"recall@{k}": row["recall"]}
        for row in per_user.groupBy(activity_bucket().alias("bucket")).agg(
            F.count("*").alias("users"), F.avg("ndcg").alias("ndcg"), F.avg("precision").alias("precision"),
            F.avg("recall").alias("recall")).collect()
    }
    per_user.unpersist()
    return report


def live_metrics(config: Config) -> tuple[dict | None, str]:
    """The live version's metadata from Redis, for the regression gate, and a note of how it went."""
    import redis

    from jobs.publish import connect
    try:
        client = connect(config.redis)
        version = client.get(redis_keys.LIVE)
        if version is None:
            return None, "no live version"
        meta = redis_keys.decode(client.get(redis_keys.key(version.decode(), "meta")))
        return meta, f"live version {version.decode()}"
    except redis.RedisError as exc:
        return None, f"live version unknown (Redis: {exc})"


def quality_gate(metrics: dict, live: dict | None, config: Config) -> tuple[bool, list[dict]]:
    """Publish only when ALS beats popularity on NDCG@k by the configured lift and does not fall more than the
    configured tolerance below the live version's NDCG@k (same dataset and k only)."""
    k = metrics["k"]
    name = f"ndcg@{k}"
    als, pop = metrics["models"]["als"][name], metrics["models"]["popularity"][name]
    lift = config.gates.min_ndcg_lift_over_popularity
    checks = [{"gate": f"als {name} > popularity {name} + {lift}", "als": als, "popularity": pop,
               "passed": als > pop + lift}]
    live_value = None
    if live and live.get("dataset") == metrics["dataset"] and live.get("k") == k:
        live_value = (live.get("metrics") or {}).get(name)
    if live_value is not None:
        drop = config.gates.max_ndcg_drop_vs_live
        checks.append({"gate": f"als {name} >= live {name} - {drop}", "als": als, "live": live_value,
                       "live_version": live.get("version"), "passed": als >= live_value - drop})
    return all(c["passed"] for c in checks), checks


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    manifest = read_json(paths.manifest)
    spark = spark or spark_session(config, "evaluate")
    k = config.evaluate.k
    train = spark.read.parquet(paths.split_train).cache()
    test = spark.read.parquet(paths.split_test).cache()
    activity = train.groupBy("user_id").agg(F.count("*").alias("n_train"))
    percentiles = popularity_percentiles(train).cache()
    n_catalog = train.select("movie_id").distinct().count()

    timings = {}
    started = time.perf_counter()
    implicit = ALSModel.load(model_path(paths.models, "eval", "implicit"))
    als_recs = als_top_n(implicit, train, test, k).cache()
    als = ranking_report(als_recs, test, activity, percentiles, n_catalog, k)
    timings["als_ranking_s"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    pop_recs = popularity_top_n(train, test, k).cache()
    pop = ranking_report(pop_recs, test, activity, percentiles, n_catalog, k)
    timings["popularity_ranking_s"] = round(time.perf_counter() - started, 2)

    explicit = ExplicitModel.load(spark, model_path(paths.models, "eval", "explicit"))
    als.update(rating_errors(explicit.predict(test)))
    movie_means = train.groupBy("movie_id").agg(F.avg("rating").alias("movie_mean"))
    global_mean = train.agg(F.avg("rating")).first()[0]
    pop.update(rating_errors(test.join(movie_means, "movie_id", "left").withColumn(
        "prediction", F.coalesce("movie_mean", F.lit(global_mean)))))

    train_report = read_json(paths.train_report)
    metrics = {
        "run_id": run_id,
        "dataset": manifest["dataset"],
        "k": k,
        "models": {"als": als, "popularity": pop},
        "params": train_report["params"],
        "counts": {**train_report["counts"], "users": activity.count(), "catalog": n_catalog,
                   "test_users": test.select("user_id").distinct().count()},
        "timings": {**train_report["fit_seconds"], **timings},
        "evaluated_at": utc_now(),
    }
    live, live_note = live_metrics(config)
    publishable, gates = quality_gate(metrics, live, config)
    metrics.update({"publishable": publishable, "gates": gates, "live_comparison": live_note})
    write_json(paths.metrics, metrics)
    for frame in (train, test, percentiles, als_recs, pop_recs):
        frame.unpersist()
    try:
        from jobs.report import write_report
        write_report(config, paths, metrics)
    except Exception as exc:  # the HTML report is for people; never let it fail the run
        log.warning("evaluation report not written: %s", exc)
    log.info("ALS ndcg@%d %.4f vs popularity %.4f; publishable=%s (%s)", k, als[f"ndcg@{k}"],
             pop[f"ndcg@{k}"], publishable, live_note)
    return {"metrics": paths.metrics, "publishable": publishable,
            "als": {m: als[m] for m in (f"ndcg@{k}", f"precision@{k}", "rmse")},
            "popularity": {m: pop[m] for m in (f"ndcg@{k}", f"precision@{k}", "rmse")}}


def main() -> None:
    job_main("evaluate", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
