"""Ranking helpers shared by evaluate, recommend and tune: vectorised top-N scoring and the GUIDE's metrics.

`top_n_by_dot` scores every query (a user, or a movie for neighbours) against every item in numpy blocks on
the executors (mapInPandas), masks what the query must not get back, and keeps the best N. The item matrix is
broadcast once; no per-user loop runs on the driver.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

QUERY_BLOCK = 256  # queries scored per numpy matmul; bounds executor memory at 256 x n_items floats


def top_n_by_dot(queries: DataFrame, items: DataFrame, n: int, id_col: str) -> DataFrame:
    """Top-n items per query by dot product.

    queries: (id_col, features array<float>, exclude array<int> or null); items: (movie_id, features).
    Returns (id_col, rank, movie_id, score), rank 1 = best; ties go to the lower movie id.
    """
    spark = queries.sparkSession
    item_frame = items.select("movie_id", "features").toPandas()
    order = np.argsort(item_frame["movie_id"].to_numpy())
    item_ids = item_frame["movie_id"].to_numpy(np.int64)[order]
    matrix = np.stack(item_frame["features"].to_numpy())[order].astype(np.float32) if len(order) else \
        np.zeros((0, 1), np.float32)
    shared = spark.sparkContext.broadcast((item_ids, matrix))
    id_type = dict(queries.dtypes)[id_col]

    def score(batches):
        ids, mat = shared.value
        for frame in batches:
            for start in range(0, len(frame), QUERY_BLOCK):
                yield _top_n_block(frame.iloc[start:start + QUERY_BLOCK], ids, mat, n, id_col)

    schema = f"{id_col} {id_type}, rank int, movie_id int, score float"
    return queries.select(id_col, "features", "exclude").mapInPandas(score, schema)


def _top_n_block(block: pd.DataFrame, ids: np.ndarray, mat: np.ndarray, n: int, id_col: str) -> pd.DataFrame:
    queries = np.stack(block["features"].to_numpy()).astype(np.float32)
    scores = queries @ mat.T
    excluded = [np.asarray(e, np.int64) if e is not None else np.empty(0, np.int64) for e in block["exclude"]]
    lengths = np.fromiter((len(e) for e in excluded), np.int64, len(excluded))
    if lengths.sum():
        flat = np.concatenate(excluded)
        rows = np.repeat(np.arange(len(block)), lengths)
        pos = np.minimum(np.searchsorted(ids, flat), len(ids) - 1)
        hit = ids[pos] == flat
        scores[rows[hit], pos[hit]] = -np.inf
    k = min(n, scores.shape[1])
    if k == 0:
        return pd.DataFrame({id_col: [], "rank": [], "movie_id": [], "score": []})
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((ids[top], -top_scores), axis=1)  # best score first, then lower movie id
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    out = pd.DataFrame({
        id_col: np.repeat(block[id_col].to_numpy(), k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(block)),
        "movie_id": ids[top].ravel().astype(np.int32),
        "score": top_scores.ravel(),
    })
    return out[np.isfinite(out["score"].to_numpy())]


def rated_items(ratings: DataFrame) -> DataFrame:
    """(user_id, exclude): the movies each user has rated, to keep out of their recommendations."""
    return ratings.groupBy("user_id").agg(F.collect_set("movie_id").alias("exclude"))


def popularity(ratings: DataFrame) -> DataFrame:
    """(movie_id, n_ratings, mean_rating, score): the popularity baseline ranks by how many users rated a movie;
    ties go to the better mean rating (score = n + mean/10, mean < 10 keeps the count's order)."""
    return ratings.groupBy("movie_id").agg(
        F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating")
    ).withColumn("score", F.col("n_ratings") + F.col("mean_rating") / 10)


def popularity_top_n(ratings: DataFrame, users: DataFrame, n: int) -> DataFrame:
    """Top-n most popular movies per user, excluding what the user rated (the baseline, as a dot product:
    every user's vector is [1], every movie's is [its popularity score])."""
    items = popularity(ratings).select("movie_id", F.array(F.col("score").cast("float")).alias("features"))
    queries = users.select("user_id").distinct().join(rated_items(ratings), "user_id", "left") \
        .withColumn("features", F.array(F.lit(1.0).cast("float")))
    return top_n_by_dot(queries, items, n, "user_id")


# ---------------------------------------------------------------- metrics (GUIDE protocol)


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
    row = per_user.agg(F.avg("precision"), F.avg("recall"), F.avg("ndcg"), F.avg("ap"), F.count("*")).first()
    return {f"precision@{k}": row[0], f"recall@{k}": row[1], f"ndcg@{k}": row[2], f"map@{k}": row[3],
            "users_evaluated": row[4]}


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
