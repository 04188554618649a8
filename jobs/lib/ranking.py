"""Top-N lists: vectorised scoring of users (or movies) against movies, ALS recommendations, movie neighbours,
the popularity ranking and the popular lists per genre.

`top_n_by_dot` scores every query (a user, or a movie for neighbours) against every item in numpy blocks on
the executors (mapInArrow), masks what the query must not get back, and keeps the best N. The item matrix is
broadcast once; no per-user loop runs on the driver.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas.redis_keys import ALL_GENRES

if TYPE_CHECKING:  # not at run time: executors unpickling the scoring function skip pyspark.ml's imports
    from pyspark.ml.recommendation import ALSModel

SCORE_BLOCK = 1 << 24  # scores held at once per task (64 MB of float32): the queries per numpy matmul


def top_n_by_dot(queries: DataFrame, items: DataFrame, n: int, id_col: str, cosine: bool = False) -> DataFrame:
    """Top-n items per query by dot product (`cosine`: of the unit-length vectors, i.e. cosine similarity).

    queries: (id_col, features array<float>, exclude array<int> or null); items: (movie_id, features).
    Returns (id_col, rank, movie_id, score), rank 1 = best; ties go to the lower movie id.
    Arrow batches in and out (mapInArrow): the factor and exclusion lists are read as flat numpy arrays, never as
    per-row Python objects.
    """
    spark = queries.sparkSession
    item_frame = items.select("movie_id", "features").toPandas()
    order = np.argsort(item_frame["movie_id"].to_numpy())
    item_ids = item_frame["movie_id"].to_numpy(np.int64)[order]
    matrix = np.stack(item_frame["features"].to_numpy())[order].astype(np.float32) if len(order) else \
        np.zeros((0, 1), np.float32)
    if cosine:
        matrix = _unit_rows(matrix)
    shared = spark.sparkContext.broadcast((item_ids, matrix))
    id_type = dict(queries.dtypes)[id_col]
    block = max(1, SCORE_BLOCK // max(len(item_ids), 1))

    def score(batches):
        ids, mat = shared.value
        for batch in batches:
            for start in range(0, batch.num_rows, block):
                yield _top_n_block(batch.slice(start, block), ids, mat, n, id_col, cosine)

    schema = f"{id_col} {id_type}, rank int, movie_id int, score float"
    return queries.select(id_col, F.col("features").cast("array<float>"), F.col("exclude").cast("array<int>")) \
        .mapInArrow(score, schema)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _top_n_block(batch: pa.RecordBatch, ids: np.ndarray, mat: np.ndarray, n: int, id_col: str,
                 cosine: bool) -> pa.RecordBatch:
    rows = batch.num_rows
    queries = batch.column("features").flatten().to_numpy(zero_copy_only=False).reshape(rows, -1)
    if cosine:
        queries = _unit_rows(queries)
    scores = queries @ mat.T
    exclude = batch.column("exclude")
    lengths = pc.fill_null(pc.list_value_length(exclude), 0).to_numpy(zero_copy_only=False)
    if lengths.sum():
        flat = exclude.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        which = np.repeat(np.arange(rows), lengths)
        pos = np.minimum(np.searchsorted(ids, flat), len(ids) - 1)
        hit = ids[pos] == flat
        scores[which[hit], pos[hit]] = -np.inf
    k = min(n, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else np.zeros((rows, 0), np.int64)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((ids[top], -top_scores), axis=1)  # best score first, then lower movie id
    top = np.take_along_axis(top, order, axis=1).ravel()
    top_scores = np.take_along_axis(top_scores, order, axis=1).ravel()
    keep = np.isfinite(top_scores)
    query_ids = batch.column(id_col).to_numpy(zero_copy_only=False)
    return pa.RecordBatch.from_arrays([
        pa.array(np.repeat(query_ids, k)[keep], batch.schema.field(id_col).type),
        pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), rows)[keep]),
        pa.array(ids[top][keep].astype(np.int32)),
        pa.array(top_scores[keep].astype(np.float32)),
    ], names=[id_col, "rank", "movie_id", "score"])


def rated_items(ratings: DataFrame) -> DataFrame:
    """(user_id, exclude): the movies each user has rated, to keep out of their recommendations (a list: clean
    ratings hold one per pair, and a repeat would only be masked twice)."""
    return ratings.groupBy("user_id").agg(F.collect_list("movie_id").alias("exclude"))


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


def item_neighbors(model: ALSModel, n: int) -> DataFrame:
    """(movie_id, rank, neighbor_id, score): nearest movies by cosine, the movie itself excluded."""
    items = model.itemFactors.withColumnRenamed("id", "movie_id")
    queries = items.select(F.col("movie_id").alias("query_id"), "features", F.array("movie_id").alias("exclude"))
    top = top_n_by_dot(queries, items, n, "query_id", cosine=True)
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
