"""The GUIDE's evaluation protocol, as one set of functions shared by the evaluate job, tune and the quality
benchmark: ranking metrics of top-k lists against held-out ratings (binary relevance), rating errors, and
`evaluate_models`, the whole comparison of ALS against the popularity baseline.

Metric names are defined here once: `metric(name, k)` gives "ndcg@10" and the like.
"""
from __future__ import annotations

import time

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.lib.model.scoring import als_top_n, popularity_top_n

RANKING_METRICS = ("precision", "recall", "ndcg", "map")   # each "@k"
HEADLINE = ("ndcg", "precision", "recall", "map", "rmse", "mae", "coverage")  # shown by /v1/version


def metric(name: str, k: int) -> str:
    """The key of a metric in metrics.json: ranking metrics carry their cut-off ("ndcg@10"), others do not."""
    return f"{name}@{k}" if name in RANKING_METRICS else name


def per_user_ranking_metrics(recs: DataFrame, truth: DataFrame, k: int) -> DataFrame:
    """Per user with at least one test item: precision, recall, ndcg and ap at k, binary relevance.

    recs: (user_id, rank, movie_id); truth: (user_id, movie_id). NDCG uses a log2 discount and the ideal
    over min(|truth|, k); AP sums precision at each hit rank and divides by |truth|.
    """
    ranked = recs.where(F.col("rank") <= k).groupBy("user_id").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("rank", "movie_id"))), lambda s: s["movie_id"])
        .alias("recs"))
    relevant = truth.groupBy("user_id").agg(F.collect_set("movie_id").alias("truth"))
    joined = relevant.join(ranked, "user_id", "left") \
        .withColumn("recs", F.coalesce("recs", F.array().cast("array<int>")))
    hits = "transform(recs, x -> IF(array_contains(truth, x), 1, 0))"
    return joined.selectExpr("user_id", f"{hits} AS hits", "size(truth) AS n_truth").selectExpr(
        "user_id", "n_truth",
        f"aggregate(hits, 0, (a, h) -> a + h) / {k} AS precision",
        "aggregate(hits, 0, (a, h) -> a + h) / n_truth AS recall",
        "IF(size(hits) = 0, 0D, aggregate(sequence(1, size(hits)), 0D, "
        "  (a, i) -> a + hits[i - 1] / log2(i + 1))) "
        f"/ aggregate(sequence(1, least(n_truth, {k})), 0D, (a, i) -> a + 1 / log2(i + 1)) AS ndcg",
        "IF(size(hits) = 0, 0D, aggregate(sequence(1, size(hits)), 0D, "
        "  (a, i) -> a + IF(hits[i - 1] = 1, aggregate(slice(hits, 1, i), 0, (s, h) -> s + h) / i, 0D))) "
        "/ n_truth AS ap",
    )


def mean_ranking_metrics(per_user: DataFrame, k: int) -> dict:
    row = per_user.agg(*[F.avg(name) for name in ("precision", "recall", "ndcg", "ap")], F.count("*")).first()
    return {**{metric(name, k): value for name, value in zip(RANKING_METRICS, row)}, "users_evaluated": row[4]}


def catalog_coverage(recs: DataFrame, n_catalog: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k."""
    return recs.where(F.col("rank") <= k).select("movie_id").distinct().count() / max(n_catalog, 1)


def popularity_percentiles(train: DataFrame) -> DataFrame:
    """(movie_id, pop_pct): 1.0 for the most rated movie, near 0 for the least."""
    counts = train.groupBy("movie_id").agg(F.count("*").alias("n"))
    # One window over the whole catalog: Spark warns that it moves to one partition, which is fine for one row
    # per movie (about 87,000 on ML-32M).
    return counts.withColumn("pop_pct", F.percent_rank().over(Window.orderBy("n"))).select("movie_id", "pop_pct")


def mean_popularity_percentile(recs: DataFrame, percentiles: DataFrame, k: int) -> float:
    """Popularity bias of the lists: the mean popularity percentile of recommended movies."""
    return recs.where(F.col("rank") <= k).join(percentiles, "movie_id").agg(F.avg("pop_pct")).first()[0]


ACTIVITY_BUCKETS = ((1, 19), (20, 49), (50, 99), (100, 249), (250, None))


def activity_bucket(n_col: str = "n_train"):
    """Label of the user-activity bucket (number of training ratings), e.g. '20-49' or '250+'."""
    expr = None
    for low, high in ACTIVITY_BUCKETS:
        label = f"{low}+" if high is None else f"{low}-{high}"
        cond = F.col(n_col) >= low if high is None else F.col(n_col).between(low, high)
        expr = F.when(cond, label) if expr is None else expr.when(cond, label)
    return expr


def rating_errors(predictions: DataFrame) -> dict:
    row = predictions.agg(F.sqrt(F.avg((F.col("prediction") - F.col("rating")) ** 2)),
                          F.avg(F.abs(F.col("prediction") - F.col("rating")))).first()
    return {"rmse": row[0], "mae": row[1]}


def score_lists(recs: DataFrame, truth: DataFrame, k: int) -> dict:
    """Mean precision, recall, NDCG and MAP at k of top-k lists against held-out ratings (tune's score)."""
    return mean_ranking_metrics(per_user_ranking_metrics(recs, truth, k), k)


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


def evaluate_models(train: DataFrame, test: DataFrame, implicit: ALSModel, explicit, k: int) -> tuple[dict, dict]:
    """ALS against the popularity baseline on one split: ({"als": ..., "popularity": ...}, seconds per step).

    Ranking: each model's top k among movies the user did not rate in train, scored against the test ratings,
    with catalogue coverage, popularity bias and the figures per activity bucket. Rating prediction: the
    explicit model (`explicit.predict`) against each movie's mean training rating.
    """
    activity = train.groupBy("user_id").agg(F.count("*").alias("n_train")).cache()
    percentiles = popularity_percentiles(train).cache()
    n_catalog = train.select("movie_id").distinct().count()
    timings, reports = {}, {}
    for name, top_n in (("als", lambda: als_top_n(implicit, train, k, users=test)),
                        ("popularity", lambda: popularity_top_n(train, test, k))):
        started = time.perf_counter()
        recs = top_n().cache()
        reports[name] = ranking_report(recs, test, activity, percentiles, n_catalog, k)
        recs.unpersist()
        timings[f"{name}_ranking_s"] = round(time.perf_counter() - started, 2)
    reports["als"].update(rating_errors(explicit.predict(test)))
    movie_means = train.groupBy("movie_id").agg(F.avg("rating").alias("movie_mean"))
    global_mean = train.agg(F.avg("rating")).first()[0]
    reports["popularity"].update(rating_errors(test.join(movie_means, "movie_id", "left").withColumn(
        "prediction", F.coalesce("movie_mean", F.lit(global_mean)))))
    for frame in (activity, percentiles):
        frame.unpersist()
    return reports, timings
