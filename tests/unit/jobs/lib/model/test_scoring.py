"""Top-N scoring, popular lists and neighbours: exact results on tiny frames, numpy on random ones."""
import math

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from jobs.lib.evaluation.metrics import popularity_percentiles
from jobs.lib.model.scoring import (
    Factors,
    factors_of,
    item_neighbors,
    neighbors_on_driver,
    popular_lists,
    popularity_top_n,
    top_n_by_dot,
    top_n_on_driver,
)
from tests.support import RATINGS, assert_same_rankings, rows


def test_top_n_by_dot_excludes_and_orders(spark):
    items = spark.createDataFrame([(10, [1.0, 0.0]), (20, [0.0, 1.0]), (30, [1.0, 1.0]), (40, [0.5, 0.0])],
                                  "movie_id int, features array<float>")
    queries = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.0, 2.0])], "user_id int, features array<float>")
    exclude = spark.createDataFrame([(1, 30), (3, 10), (1, 99)], "user_id int, movie_id int")  # 3, 99: unknown
    got = rows(top_n_by_dot(queries, items, 2, "user_id", exclude=exclude), "user_id", "rank")
    assert got == [(1, 1, 10, 1.0), (1, 2, 40, 0.5), (2, 1, 20, 2.0), (2, 2, 30, 2.0)]


def test_top_n_breaks_ties_by_movie_id_and_never_returns_excluded(spark):
    items = spark.createDataFrame([(m, [1.0]) for m in (5, 3, 9, 1)], "movie_id int, features array<float>")
    queries = spark.createDataFrame([(1, [1.0])], "user_id int, features array<float>")
    pairs = "user_id int, movie_id int"
    everything = spark.createDataFrame([(1, 1), (1, 3), (1, 5), (1, 9)], pairs)
    assert top_n_by_dot(queries, items, 3, "user_id", exclude=everything).count() == 0
    got = top_n_by_dot(queries, items, 3, "user_id", exclude=spark.createDataFrame([(1, 3)], pairs))
    assert [r["movie_id"] for r in got.orderBy("rank").collect()] == [1, 5, 9]


def test_top_n_by_dot_matches_numpy_across_partitions_and_score_blocks(spark, monkeypatch):
    """Exclusions reach their query whatever partition and Arrow batch they come in, and blocks of queries
    smaller than a partition mask only their own rows: the same lists as numpy on the whole matrices. The
    driver's version (blocks on two threads) gives the same lists."""
    import jobs.lib.model.scoring as ranking
    rng = np.random.default_rng(7)
    users, movies, rank, n = 300, 50, 4, 5
    user_vectors, item_vectors = rng.normal(size=(users, rank)), rng.normal(size=(movies, rank))
    rated = {(int(u), int(m)) for u, m in zip(rng.integers(1, users + 1, 3000), rng.integers(1, movies + 1, 3000))}
    monkeypatch.setattr(ranking, "SCORE_BLOCK", 7 * movies)  # 7 queries per matmul
    monkeypatch.setattr(ranking, "DRIVER_SCORE_BLOCK", 11 * movies)
    monkeypatch.setattr(ranking, "DRIVER_THREADS", 2)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    try:
        got = top_n_by_dot(
            spark.createDataFrame([(u + 1, user_vectors[u].tolist()) for u in range(users)],
                                  "user_id int, features array<float>").repartition(3),
            spark.createDataFrame([(m + 1, item_vectors[m].tolist()) for m in range(movies)],
                                  "movie_id int, features array<float>"),
            n, "user_id", exclude=spark.createDataFrame(sorted(rated), "user_id int, movie_id int").repartition(5))
        executors = [(r["user_id"], r["rank"], r["movie_id"], r["score"]) for r in got.collect()]
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    driver = top_n_on_driver(
        factors_of(pa.table({"id": np.arange(users, 0, -1), "features": list(user_vectors[::-1].astype(np.float32))})),
        Factors(np.arange(1, movies + 1), item_vectors.astype(np.float32)), n=n,
        rated=pa.table({"user_id": [u for u, _ in rated] + [users + 9], "movie_id": [m for _, m in rated] + [1]}))
    assert driver.schema.names == ["user_id", "rank", "movie_id", "score"]
    scores = user_vectors.astype(np.float32) @ item_vectors.astype(np.float32).T
    for u, m in rated:
        scores[u - 1, m - 1] = -np.inf
    expected = {}
    for u in range(users):
        best = [m for m in np.argsort(-scores[u], kind="stable")[:n] if np.isfinite(scores[u, m])]
        if best:
            expected[u + 1] = [(m + 1, float(scores[u, m])) for m in best]
    for name, found in (("executors", executors), ("driver", zip(*driver.to_pydict().values()))):
        lists = {}
        for user, _, movie, score in sorted(found, key=lambda row: row[:2]):
            lists.setdefault(user, []).append((movie, score))
        assert_same_rankings(lists, expected, name=name)


def test_popularity_baseline_excludes_rated_movies(spark):
    train = spark.createDataFrame([(1, 1, 5.0, 1), (2, 1, 4.0, 1), (3, 1, 3.0, 1), (2, 2, 5.0, 1), (3, 2, 5.0, 1),
                                   (3, 3, 1.0, 1)], RATINGS)
    users = spark.createDataFrame([(1,), (3,)], "user_id int")
    got = rows(popularity_top_n(train, users, 2).select("user_id", "rank", "movie_id"), "user_id", "rank")
    assert got == [(1, 1, 2), (1, 2, 3)]  # user 3 rated everything
    pct = {r["movie_id"]: r["pop_pct"] for r in popularity_percentiles(train).collect()}
    assert pct == {1: 1.0, 2: 0.5, 3: 0.0}


def test_the_popularity_walk_gives_what_scoring_every_movie_gives(spark):
    """Random ratings with many ties: each user's first n unseen of the one ranking are the rows scoring every
    movie (top_n_by_dot with each movie's popularity as its vector) gives, rank by rank; a user who has seen
    all but two gets two, one who has seen everything none, one the ratings do not know the top n."""
    from jobs.lib.model.scoring import popularity
    rng = np.random.default_rng(4)
    pairs = {(int(u), int(m)) for u, m in zip(rng.integers(1, 60, 900), rng.integers(1, 40, 900))}
    pairs |= {(70, m) for m in range(1, 40)} | {(71, m) for m in range(3, 40)}
    train = spark.createDataFrame([(u, m, float(rng.choice([1.0, 3.0, 5.0])), 1) for u, m in sorted(pairs)],
                                  RATINGS)
    users = spark.createDataFrame([(u,) for u in [*range(1, 60), 70, 71, 99]], "user_id int")
    items = popularity(train).select("movie_id", F.array(F.col("score").cast("float")).alias("features"))
    queries = users.withColumn("features", F.array(F.lit(1.0).cast("float")))
    for n in (1, 5, 12):
        walked = rows(popularity_top_n(train, users, n), "user_id", "rank")
        assert walked == rows(top_n_by_dot(queries, items, n, "user_id", exclude=train), "user_id", "rank")
        per_user = {u: sum(1 for row in walked if row[0] == u) for u in (70, 71, 99, 5)}
        assert per_user == {70: 0, 71: min(n, 2), 99: n, 5: n}


def test_popular_lists_overall_and_per_genre(spark):
    ratings = spark.createDataFrame([(u, 1, 4.0, 1) for u in range(3)] + [(u, 2, 5.0, 1) for u in range(2)]
                                    + [(0, 3, 2.0, 1), (1, 3, 3.0, 1)], RATINGS)
    movies = spark.createDataFrame([(1, ["Drama"]), (2, ["Comedy", "Drama"]), (3, ["Comedy"])],
                                   "movie_id int, genres array<string>")
    got = rows(popular_lists(ratings, movies, 2).select("genre", "rank", "movie_id"), "genre", "rank")
    # movie 2 and 3 both have 2 ratings; movie 2's higher mean breaks the tie
    assert got == [("Comedy", 1, 2), ("Comedy", 2, 3), ("Drama", 1, 1), ("Drama", 2, 2), ("_all", 1, 1),
                   ("_all", 2, 2)]


def test_item_neighbors_are_cosine_and_skip_self(spark):
    class Model:  # the only thing item_neighbors reads of an ALSModel
        itemFactors = spark.createDataFrame(  # noqa: N815 - the attribute's name in ALSModel
            [(1, [1.0, 0.0]), (2, [10.0, 1.0]), (3, [0.0, 1.0])], "id int, features array<float>")
    got = {(r["movie_id"], r["rank"]): (r["neighbor_id"], r["score"]) for r in item_neighbors(Model, 1).collect()}
    assert got[(1, 1)][0] == 2 and got[(3, 1)][0] == 2
    assert got[(1, 1)][1] == pytest.approx(10 / math.sqrt(101), rel=1e-5)
    on_driver = neighbors_on_driver(factors_of(Model.itemFactors.toArrow()), 1)
    assert on_driver.schema.names == ["movie_id", "rank", "neighbor_id", "score"]
    assert {(m, r): (b, pytest.approx(s, rel=1e-6)) for m, r, b, s in zip(*on_driver.to_pydict().values())} == got
