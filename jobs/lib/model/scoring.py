"""Top-N lists: vectorised scoring of users (or movies) against movies, ALS recommendations, movie neighbours,
the popularity ranking and the popular lists per genre.

`top_n_by_dot` scores every query (a user, or a movie for neighbours) against every item in numpy blocks on
the executors (mapInArrow), masks what the query must not get back, and keeps the best N. The item matrix is
broadcast once; no per-user loop runs on the driver. `top_n_on_driver` and `neighbors_on_driver` do the same
numpy work in this process, for a model small enough that Spark's stages cost more than the scoring (the recommend
job chooses by `recommend.driver_max_scores`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas.ranking import best_of_rows
from schemas.redis_keys import ALL_GENRES

if TYPE_CHECKING:  # not at run time: executors unpickling the scoring function skip pyspark.ml's imports
    from pyspark.ml.recommendation import ALSModel

SCORE_BLOCK = 1 << 24  # scores held at once per task (64 MB of float32): the queries per numpy matmul
# In the driver: smaller blocks, several per thread, each thread on a core of this machine.
DRIVER_SCORE_BLOCK = 1 << 22
DRIVER_THREADS = len(os.sched_getaffinity(0))


class Factors(NamedTuple):
    """Factor vectors in id order: ids (int64, ascending) and one float32 row of `matrix` per id."""
    ids: np.ndarray
    matrix: np.ndarray


def factors_of(table: pa.Table, id_col: str = "id") -> Factors:
    """Factors from an Arrow table of (id_col, features list<float>), e.g. an ALS model's userFactors files."""
    ids = table.column(id_col).to_numpy().astype(np.int64)
    flat = table.column("features").combine_chunks().flatten().to_numpy()
    matrix = flat.reshape(len(ids), -1) if len(ids) else np.zeros((0, 1))
    order = np.argsort(ids, kind="stable")
    return Factors(ids[order], matrix[order].astype(np.float32))


def top_n_by_dot(queries: DataFrame, items: DataFrame, n: int, id_col: str, exclude: DataFrame | None = None,
                 cosine: bool = False) -> DataFrame:
    """Top-n items per query by dot product (`cosine`: of the unit-length vectors, i.e. cosine similarity).

    queries: (id_col, features array<float>), one row per query; items: (movie_id, features); exclude: (id_col,
    movie_id) pairs the query must not get back (e.g. what a user rated), or None.
    Returns (id_col, rank, movie_id, score), rank 1 = best; ties go to the lower movie id.
    One shuffle brings each query's vector and its exclusions into the same task (hash of the id): cheaper than
    grouping the exclusions into lists and joining them to the vectors (two shuffles and a boxed list per query).
    Arrow batches in and out (mapInArrow): vectors and exclusions are read as flat numpy arrays.
    """
    item_factors = factors_of(items.select("movie_id", "features").toArrow(), "movie_id")
    if cosine:
        item_factors = Factors(item_factors.ids, _unit_rows(item_factors.matrix))
    shared = queries.sparkSession.sparkContext.broadcast(item_factors)
    id_type = dict(queries.dtypes)[id_col]
    block = _block(item_factors)

    def score(batches):
        batches = list(batches)  # the whole partition: a query's exclusions may come in any of its batches
        if batches:
            yield from _top_n_partition(pa.Table.from_batches(batches), shared.value, n, id_col, cosine, block)

    rows = queries.select(id_col, F.col("features").cast("array<float>"), F.lit(None).cast("int").alias("movie_id"))
    if exclude is not None:  # an empty array, not null: Spark's Arrow writer is many times slower on null arrays
        rows = rows.unionByName(exclude.select(id_col, F.array().cast("array<float>").alias("features"),
                                               F.col("movie_id").cast("int"))).repartition(id_col)
    return rows.mapInArrow(score, f"{id_col} {id_type}, rank int, movie_id int, score float")


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _top_n_partition(table: pa.Table, items: Factors, n: int, id_col: str, cosine: bool, block: int):
    """Record batches of the top n per query of one partition: rows without a movie id are queries (id,
    features), rows with one are (query, movie) exclusions."""
    is_query = pc.is_null(table.column("movie_id"))
    queries, excluded = table.filter(is_query), table.filter(pc.invert(is_query))
    yield from _top_n_blocks(factors_of(queries, id_col), items, n, id_col,
                             table.schema.field(id_col).type, excluded.column(id_col).to_numpy(),
                             excluded.column("movie_id").to_numpy(), cosine, block)


def _top_n_blocks(queries: Factors, items: Factors, n: int, id_col: str, id_field: pa.DataType,
                  who: np.ndarray, what: np.ndarray, cosine: bool, block: int,
                  threads: int = 1) -> Iterator[pa.RecordBatch]:
    """Record batches of the top n items per query, in blocks of `block` queries, `threads` blocks at a time
    (numpy's matmul and partition run without the GIL); (who[i], what[i]) are (query, item) pairs to leave out
    (ids either side may be unknown). `items.matrix` is already unit-length if cosine."""
    query_ids, vectors = queries
    ids, mat = items
    if not len(query_ids):
        return
    if cosine:
        vectors = _unit_rows(vectors)
    # Exclusions as (query row, item column), sorted by query row so that each block takes a slice.
    what = what.astype(np.int64)
    rows = np.minimum(np.searchsorted(query_ids, who), len(query_ids) - 1)
    cols = np.minimum(np.searchsorted(ids, what), max(len(ids) - 1, 0))
    known = (query_ids[rows] == who) & (ids[cols] == what) if len(ids) else np.zeros(len(who), bool)
    rows, cols = rows[known], cols[known]
    by_row = np.argsort(rows, kind="stable")
    rows, cols = rows[by_row], cols[by_row]

    def best_of_block(start: int) -> pa.RecordBatch:
        stop = min(start + block, len(query_ids))
        scores = vectors[start:stop] @ mat.T
        lo, hi = np.searchsorted(rows, [start, stop])
        scores[rows[lo:hi] - start, cols[lo:hi]] = -np.inf
        return _best(scores, query_ids[start:stop], ids, n, id_col, id_field)
    starts = range(0, len(query_ids), block)
    if threads == 1:
        yield from map(best_of_block, starts)
    else:
        with ThreadPoolExecutor(threads) as pool:
            yield from pool.map(best_of_block, starts)


def top_n_on_driver(users: Factors, items: Factors, rated: pa.Table, n: int) -> pa.Table:
    """`als_top_n` for every user, computed in this process: (user_id, rank, movie_id, score), the same rows.
    rated: (user_id, movie_id) pairs to leave out."""
    batches = _top_n_blocks(users, items, n, "user_id", pa.int32(), rated.column("user_id").to_numpy(),
                            rated.column("movie_id").to_numpy(), False, _block(items, DRIVER_SCORE_BLOCK),
                            DRIVER_THREADS)
    return pa.Table.from_batches(list(batches), _schema("user_id", "movie_id"))


def neighbors_on_driver(items: Factors, n: int, of: np.ndarray | None = None) -> pa.Table:
    """`item_neighbors`, computed in this process: (movie_id, rank, neighbor_id, score), the same rows; of the
    movies `of` (sorted ids among items') only, when given."""
    unit = Factors(items.ids, _unit_rows(items.matrix))
    queries = unit if of is None else Factors(of, unit.matrix[np.searchsorted(items.ids, of)])
    batches = _top_n_blocks(queries, unit, n, "query_id", pa.int32(), items.ids, items.ids, False,
                            _block(items, DRIVER_SCORE_BLOCK), DRIVER_THREADS)
    return pa.Table.from_batches(list(batches), _schema("query_id", "movie_id")).rename_columns(
        ["movie_id", "rank", "neighbor_id", "score"])


def _block(items: Factors, scores: int | None = None) -> int:
    return max(1, (scores or SCORE_BLOCK) // max(len(items.ids), 1))


def _schema(id_col: str, item_col: str) -> pa.Schema:
    return pa.schema([(id_col, pa.int32()), ("rank", pa.int32()), (item_col, pa.int32()), ("score", pa.float32())])


def _best(scores: np.ndarray, query_ids: np.ndarray, ids: np.ndarray, n: int, id_col: str,
          id_field: pa.DataType) -> pa.RecordBatch:
    """The rows of the n best items per query, by the one tie rule (schemas/ranking.py)."""
    top, top_scores = best_of_rows(scores, ids, n)
    rows, k = top.shape
    top, top_scores = top.ravel(), top_scores.ravel()
    keep = np.isfinite(top_scores)
    return pa.RecordBatch.from_arrays([
        pa.array(np.repeat(query_ids, k)[keep], id_field),
        pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), rows)[keep]),
        pa.array(ids[top][keep].astype(np.int32)),
        pa.array(top_scores[keep].astype(np.float32)),
    ], names=[id_col, "rank", "movie_id", "score"])


def popularity(ratings: DataFrame) -> DataFrame:
    """(movie_id, n_ratings, mean_rating, score): the popularity baseline ranks by how many users rated a movie;
    ties go to the better mean rating (score = n + mean/10, mean < 10 keeps the count's order)."""
    return ratings.groupBy("movie_id").agg(
        F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating")
    ).withColumn("score", F.col("n_ratings") + F.col("mean_rating") / 10)


def popularity_top_n(ratings: DataFrame, users: DataFrame, n: int, exclude: DataFrame | None = None) -> DataFrame:
    """Top-n most popular movies per user, excluding what the user rated (or the (user_id, movie_id) pairs of
    `exclude`): (user_id, rank, movie_id, score). Every user shares one ranking (popularity's score, ties to the
    lower id: the top-N rule), so each user's list is the first n of it they have not seen: a walk of n plus
    their exclusions down the ranking, not a score of every movie (at 1M people x 25k movies that is 2 minutes)."""
    ranked = popularity(ratings).select("movie_id", F.col("score").cast("float")).toArrow()
    ids, scores = ranked.column("movie_id").to_numpy(), ranked.column("score").to_numpy()
    order = np.lexsort((ids, -scores))
    shared = users.sparkSession.sparkContext.broadcast((ids[order], scores[order]))
    id_type = dict(users.dtypes)["user_id"]

    def walk(batches):
        batches = list(batches)  # the whole partition: a user's exclusions may come in any of its batches
        if batches:
            yield from _first_unseen(pa.Table.from_batches(batches), *shared.value, n)

    rows = users.select("user_id", F.lit(None).cast("int").alias("movie_id")).distinct().unionByName(
        (ratings if exclude is None else exclude).select("user_id", F.col("movie_id").cast("int"))
    ).repartition("user_id")
    return rows.mapInArrow(walk, f"user_id {id_type}, rank int, movie_id int, score float")


def _first_unseen(table: pa.Table, ranked_ids: np.ndarray, ranked_scores: np.ndarray, n: int):
    """Record batches of each query's (rows without a movie id) first n movies of the ranking that are not among
    its excluded (user, movie) rows."""
    is_query = pc.is_null(table.column("movie_id"))
    users = np.unique(table.filter(is_query).column("user_id").to_numpy())
    excluded = table.filter(pc.invert(is_query))
    e_users, e_movies = excluded.column("user_id").to_numpy(), excluded.column("movie_id").to_numpy()
    by_id = np.argsort(ranked_ids)
    at = np.minimum(np.searchsorted(ranked_ids, e_movies, sorter=by_id), max(len(ranked_ids) - 1, 0))
    known = (ranked_ids[by_id[at]] == e_movies) & np.isin(e_users, users) if len(ranked_ids) else \
        np.zeros(len(e_users), bool)
    e_rows, e_positions = np.searchsorted(users, e_users[known]), by_id[at[known]]
    # Each user's window: the first n + (their exclusions) places of the ranking hold their n (or all there are).
    window = np.minimum(n + np.bincount(e_rows, minlength=len(users)), len(ranked_ids))
    starts = np.concatenate([[0], np.cumsum(window)])
    seen = np.zeros(int(starts[-1]), dtype=bool)
    inside = e_positions < window[e_rows]
    seen[starts[e_rows[inside]] + e_positions[inside]] = True
    free = np.flatnonzero(~seen)
    owner = np.searchsorted(starts, free, "right") - 1
    rank = np.arange(len(free)) - np.searchsorted(owner, owner)  # 0-based place among the user's unseen
    kept = rank < n
    positions = free[kept] - starts[owner[kept]]
    yield pa.RecordBatch.from_arrays([
        pa.array(users[owner[kept]], table.schema.field("user_id").type), pa.array(rank[kept] + 1, pa.int32()),
        pa.array(ranked_ids[positions].astype(np.int32)), pa.array(ranked_scores[positions].astype(np.float32)),
    ], names=["user_id", "rank", "movie_id", "score"])


def als_top_n(model: ALSModel, rated: DataFrame, n: int, users: DataFrame | None = None) -> DataFrame:
    """Top n per user by the implicit model, excluding what the user rated in `rated`; for every user the model
    knows, or only those in `users`. (user_id, rank, movie_id, score)."""
    queries = model.userFactors.withColumnRenamed("id", "user_id")
    if users is not None:
        queries = queries.join(users.select("user_id").distinct(), "user_id")
    return top_n_by_dot(queries, model.itemFactors.withColumnRenamed("id", "movie_id"), n, "user_id", exclude=rated)


def item_neighbors(model: ALSModel, n: int) -> DataFrame:
    """(movie_id, rank, neighbor_id, score): nearest movies by cosine, the movie itself excluded."""
    items = model.itemFactors.withColumnRenamed("id", "movie_id")
    queries = items.select(F.col("movie_id").alias("query_id"), "features")
    top = top_n_by_dot(queries, items, n, "query_id", exclude=items.select(F.col("movie_id").alias("query_id"),
                                                                             "movie_id"), cosine=True)
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
