"""Top-N lists: vectorised scoring of users (or movies) against movies, ALS recommendations, movie neighbours,
the popularity ranking and the popular lists per genre.

`top_n_by_dot` scores every query (a user, or a movie for neighbours) against every item in numpy blocks on
the executors (mapInPandas), masks what the query must not get back, and keeps the best N. The item matrix is
broadcast once; no per-user loop runs on the driver.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas.redis_keys import ALL_GENRES

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


def als_top_n(model: ALSModel, rated: DataFrame, n: int, users: DataFrame | None = None) -> DataFrame:
    """Top n per user by the implicit model, excluding what the user rated in `rated`; for every user the model
    knows, or only those in `users`. (user_id, rank, movie_id, score)."""
    queries = model.userFactors.withColumnRenamed("id", "user_id")
    if users is not None:
        queries = queries.join(users.select("user_id").distinct(), "user_id")
    queries = queries.join(rated_items(rated), "user_id", "left")
    return top_n_by_dot(queries, model.itemFactors.withColumnRenamed("id", "movie_id"), n, "user_id")


def normalized(factors: DataFrame) -> DataFrame:
    """Unit-length item vectors, so a dot product is the cosine similarity."""
    norm = F.sqrt(F.aggregate("features", F.lit(0.0), lambda acc, x: acc + x * x))
    return factors.select(F.col("id").alias("movie_id"),
                          F.transform("features", lambda x: (x / F.greatest(norm, F.lit(1e-12))).cast("float"))
                          .alias("features"))


def item_neighbors(model: ALSModel, n: int) -> DataFrame:
    """(movie_id, rank, neighbor_id, score): nearest movies by cosine, the movie itself excluded."""
    items = normalized(model.itemFactors)
    queries = items.withColumn("exclude", F.array("movie_id"))
    top = top_n_by_dot(queries.withColumnRenamed("movie_id", "query_id"), items, n, "query_id")
    return top.select(F.col("query_id").alias("movie_id"), "rank", F.col("movie_id").alias("neighbor_id"), "score")


def popular_lists(ratings: DataFrame, movies: DataFrame, n: int) -> DataFrame:
    """(genre, rank, movie_id, score): top n by popularity overall (genre '_all') and within each genre.
    The score shown is the number of ratings; the order also breaks ties by mean rating, as the baseline."""
    scored = popularity(ratings).join(movies.select("movie_id", "genres"), "movie_id")
    by_genre = scored.select("movie_id", "score", "n_ratings", F.explode("genres").alias("genre"))
    overall = scored.select("movie_id", "score", "n_ratings", F.lit(ALL_GENRES).alias("genre"))
    ranked = by_genre.unionByName(overall).withColumn(
        "rank", F.row_number().over(Window.partitionBy("genre").orderBy(F.desc("score"), "movie_id")))
    return ranked.where(F.col("rank") <= n).select("genre", "rank", "movie_id",
                                                   F.col("n_ratings").cast("float").alias("score"))
