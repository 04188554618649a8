"""An experiment's evidence in Spark: archived exposures joined with the clicks and ratings people sent, per
user and arm, ready for the statistics (jobs/lib/loop/experiment_stats.py).

Attribution, within `experiments.attribution_hours` after the answer:
- a click counts for the exposure whose request_id it carries, when the same user clicked a movie that answer
  showed; an exposure is `clicked` when at least one of its movies was;
- a conversion is a rating of at least `experiments.conversion_rating` by the user of a movie an answer had
  shown them (ratings carry no request_id), counted once per (user, movie) at its first qualifying exposure.
Exposures are counted once per request_id (the service may write one twice after a failed write); answers
that failed (status >= 400) count for the guardrails only.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas.experiments import ARMS

CHECKPOINTS = 10  # the experiment's time span cut into this many steps for the over-time plot


def experiment_exposures(exposures: DataFrame, experiment_id: str) -> DataFrame:
    return exposures.where(F.col("experiment") == experiment_id).where(F.col("request_id").isNotNull()) \
        .where(F.col("user_id").isNotNull() & F.col("arm").isin(*ARMS)).dropDuplicates(["request_id"])


def guardrails(exposures: DataFrame) -> dict:
    """Per arm: the share of answers that failed with a server error, and the p99 latency (ms)."""
    rows = exposures.groupBy("arm").agg(
        F.count("*").alias("answers"),
        F.avg((F.col("status") >= 500).cast("double")).alias("error_rate"),
        F.percentile_approx("latency_ms", 0.99, 10_000).alias("p99_ms")).collect()
    return {r["arm"]: {"answers": r["answers"], "error_rate": r["error_rate"], "p99_ms": r["p99_ms"]}
            for r in rows}


def per_user_totals(exposures: DataFrame, events: DataFrame, window_s: int, conversion_rating: float) -> DataFrame:
    """One row per (user, arm, checkpoint): exposures, clicked exposures, clicks and conversions in that step of
    the experiment's time span. Pure DataFrame work; the caller collects it (one row per user and step)."""
    shown = exposures.where((F.col("status") < 400) & F.col("items").isNotNull())
    span = shown.agg(F.min("ts").alias("t0"), F.max("ts").alias("t1"))
    shown = shown.crossJoin(F.broadcast(span)).withColumn(
        "checkpoint", F.floor((F.col("ts") - F.col("t0")) * CHECKPOINTS / (F.col("t1") - F.col("t0") + 1))
        .cast("int")).drop("t0", "t1")
    items = shown.select("request_id", "user_id", "arm", "checkpoint", "ts", F.explode("items").alias("movie_id"))

    clicks = events.where((F.col("type") == "click") & F.col("request_id").isNotNull()) \
        .select("request_id", "user_id", "movie_id", F.col("ts").alias("event_ts"))
    clicked = items.join(clicks, ["request_id", "user_id", "movie_id"]) \
        .where(F.col("event_ts").between(F.col("ts"), F.col("ts") + window_s)) \
        .groupBy("request_id").agg(F.countDistinct("movie_id").alias("clicks"))
    per_exposure = shown.select("request_id", "user_id", "arm", "checkpoint") \
        .join(clicked, "request_id", "left").fillna(0, ["clicks"])

    ratings = events.where((F.col("type") == "rating") & (F.col("rating") >= conversion_rating)) \
        .select("user_id", "movie_id", F.col("ts").alias("event_ts"))
    first = Window.partitionBy("user_id", "movie_id").orderBy("ts", "request_id")
    conversions = items.join(ratings, ["user_id", "movie_id"]) \
        .where(F.col("event_ts").between(F.col("ts"), F.col("ts") + window_s)) \
        .withColumn("n", F.row_number().over(first)).where(F.col("n") == 1) \
        .groupBy("user_id", "arm", "checkpoint").agg(F.count("*").alias("conversions"))

    return per_exposure.groupBy("user_id", "arm", "checkpoint").agg(
        F.count("*").alias("exposures"), F.sum((F.col("clicks") > 0).cast("int")).alias("clicked"),
        F.sum("clicks").alias("clicks")) \
        .join(conversions, ["user_id", "arm", "checkpoint"], "left").fillna(0, ["conversions"])
