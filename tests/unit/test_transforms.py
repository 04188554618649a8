"""Unit tests of the pure DataFrame transforms on tiny frames, with exact expected results."""
import math

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from conf.settings import ALSSettings, ImplicitALSSettings
from jobs.lib.als import ExplicitModel, bias_model, implicit_preferences
from jobs.lib.cleaning import clean_movies, drop_duplicates, filter_activity, flag_violations
from jobs.lib.evaluation import mean_ranking_metrics, per_user_ranking_metrics, popularity_percentiles
from jobs.lib.parsing import parse_movies_100k, parse_movies_pipe_genres, parse_ratings
from jobs.lib.ranking import (Factors, factors_of, item_neighbors, neighbors_on_driver, popular_lists,
                              popularity_top_n, top_n_by_dot, top_n_on_driver)
from jobs.lib.splits import kfold_splits, stratified_split
from schemas.movielens import GENRES_100K
from tests.support import assert_same_rankings

RATINGS = "user_id int, movie_id int, rating double, ts long"


def rows(frame, *order):
    return [tuple(r) for r in frame.orderBy(*order).collect()]


# ---------------------------------------------------------------- ingest parsing

def test_parse_ratings_turns_bad_fields_into_nulls(spark):
    raw = spark.createDataFrame([("1", "10", "4", "881250949"), ("x", "10", "4", "1"), ("2", " 3 ", "4.5", "")],
                                "a string, b string, c string, d string")
    assert rows(parse_ratings(raw), "ts") == [(2, 3, 4.5, None), (None, 10, 4.0, 1), (1, 10, 4.0, 881250949)]


def test_parse_movies_100k_genre_flags_and_release_year(spark):
    flags = ["0"] * 19
    flags[GENRES_100K.index("Comedy")] = "1"
    flags[GENRES_100K.index("Children's")] = "1"
    raw = spark.createDataFrame([("1", "Toy Story (1995)", "01-Jan-1995", "", "http://x", *flags),
                                 ("2", "Nothing", "", "", "", *(["0"] * 19))],
                                ", ".join(f"c{i} string" for i in range(24)))
    assert rows(parse_movies_100k(raw), "movie_id") == [
        (1, "Toy Story (1995)", 1995, ["Children's", "Comedy"]), (2, "Nothing", None, [])]


def test_parse_movies_pipe_genres(spark):
    raw = spark.createDataFrame([("1", "Heat (1995)", "Action|Crime|Thriller"), ("2", "X", None)],
                                "a string, b string, c string")
    assert rows(parse_movies_pipe_genres(raw), "movie_id") == [
        (1, "Heat (1995)", None, ["Action", "Crime", "Thriller"]), (2, "X", None, [])]


# ---------------------------------------------------------------- clean

def test_drop_duplicates_keeps_latest_rating(spark):
    frame = spark.createDataFrame([(1, 1, 3.0, 10), (1, 1, 5.0, 20), (1, 2, 4.0, 5), (2, 1, 1.0, 7)], RATINGS)
    assert rows(drop_duplicates(frame), "user_id", "movie_id") == [(1, 1, 5.0, 20), (1, 2, 4.0, 5), (2, 1, 1.0, 7)]


def test_flag_violations_names_first_rule_broken(spark):
    frame = spark.createDataFrame([(1, 1, 4.0, 100), (None, 1, 4.0, 100), (1, 1, 7.0, 100), (1, 1, 4.0, 5),
                                   (1, 99, 4.0, 100)], RATINGS)
    movies = spark.createDataFrame([(1,)], "movie_id int")
    flagged = flag_violations(frame, movies, (1.0, 2.0, 3.0, 4.0, 5.0), ts_min=50, ts_max=1000)
    assert sorted((r["violation"] or "ok") for r in flagged.collect()) == sorted(
        ["ok", "missing_field", "rating_off_scale", "ts_out_of_range", "unknown_movie"])


def test_filter_activity_items_then_users(spark):
    # movie 3 has one rating (dropped with min_item=2); user 2 is then left with 1 rating (dropped with min_user=2)
    frame = spark.createDataFrame([(1, 1, 4.0, 1), (1, 2, 4.0, 1), (2, 1, 4.0, 1), (2, 3, 4.0, 1),
                                   (3, 2, 4.0, 1), (3, 1, 4.0, 1)], RATINGS)
    kept = filter_activity(frame, min_user_ratings=2, min_item_ratings=2)
    assert rows(kept.select("user_id", "movie_id"), "user_id", "movie_id") == [(1, 1), (1, 2), (3, 1), (3, 2)]


def test_clean_movies_year_title_and_genres(spark):
    frame = spark.createDataFrame([
        (1, "Toy Story (1995)", None, ["Children's", "Comedy", "unknown"]),
        (2, "Misérables, Les (1995) ", None, ["(no genres listed)"]),
        (3, "No Year Here", 1999, ["Drama"]),
    ], "movie_id int, title string, year int, genres array<string>")
    assert rows(clean_movies(frame), "movie_id") == [
        (1, "Toy Story", 1995, ["Children", "Comedy"]), (2, "Misérables, Les", 1995, []),
        (3, "No Year Here", 1999, ["Drama"])]


# ---------------------------------------------------------------- train

def test_stratified_split_is_per_user_and_deterministic(spark):
    frame = spark.createDataFrame([(u, m, 4.0, 1) for u in (1, 2) for m in range(1, 21)] + [(3, 1, 4.0, 1)],
                                  RATINGS)
    train, test = stratified_split(frame, 0.75, seed=7)
    per_user = {r["user_id"]: r["count"] for r in train.groupBy("user_id").count().collect()}
    assert per_user == {1: 15, 2: 15, 3: 1}  # 75% of 20, and a one-rating user keeps it in train
    assert test.count() == 10
    assert train.join(test, ["user_id", "movie_id"]).count() == 0
    again, _ = stratified_split(frame.repartition(3), 0.75, seed=7)
    assert set(rows(train, "user_id", "movie_id")) == set(rows(again, "user_id", "movie_id"))
    other, _ = stratified_split(frame, 0.75, seed=8)
    assert set(rows(train, "user_id", "movie_id")) != set(rows(other, "user_id", "movie_id"))


def test_kfold_splits_validate_every_rating_once_and_keep_lone_ratings_in_fit(spark):
    frame = spark.createDataFrame([(u, m, 4.0, 1) for u in (1, 2) for m in range(1, 21)] + [(3, 1, 4.0, 1)],
                                  RATINGS)
    splits = kfold_splits(frame, 4, seed=7)
    everything = set(rows(frame, "user_id", "movie_id"))
    held_out = []
    for fit, validation in splits:
        fit_rows, validation_rows = set(rows(fit, "user_id", "movie_id")), rows(validation, "user_id", "movie_id")
        assert fit_rows | set(validation_rows) == everything and not fit_rows & set(validation_rows)
        assert sorted(r[0] for r in validation_rows) == [1] * 5 + [2] * 5  # 1/4 of each user's 20 ratings
        held_out += validation_rows
    assert sorted(held_out) == sorted(r for r in everything if r[0] != 3)  # each once; user 3's only one never
    again = kfold_splits(frame.repartition(3), 4, seed=7)
    assert set(rows(again[0][1], "user_id", "movie_id")) == set(rows(splits[0][1], "user_id", "movie_id"))


@pytest.mark.parametrize("confidence, expected", [
    ("linear", [1.0, 4.0]), ("binary", [1.0, 1.0]), ("log", [math.log1p(1.0), math.log1p(4.0)]),
    ("threshold", [4.0]),
])
def test_implicit_preferences(spark, confidence, expected):
    frame = spark.createDataFrame([(1, 1, 1.0, 1), (1, 2, 4.0, 1)], RATINGS)
    got = [r["rating"] for r in implicit_preferences(frame, ImplicitALSSettings(confidence=confidence))
           .orderBy("movie_id").collect()]
    assert got == pytest.approx(expected, rel=1e-6)


def test_implicit_preferences_scale_by_activity_and_popularity(spark):
    # user 1 rated 3 movies, user 2 one (mean 2); movie 1 has 2 ratings, movies 2 and 3 one each (mean 4/3)
    frame = spark.createDataFrame([(1, 1, 5.0, 1), (1, 2, 3.0, 1), (1, 3, 4.0, 1), (2, 1, 2.0, 1)], RATINGS)
    settings = ImplicitALSSettings(confidence="binary", user_activity_exponent=1.0, item_popularity_exponent=0.5)
    got = {(r["user_id"], r["movie_id"]): r["rating"] for r in implicit_preferences(frame, settings).collect()}
    assert got == pytest.approx({(1, 1): 1.5 * math.sqrt(1.5), (1, 2): 1.5 * math.sqrt(0.75),
                                 (1, 3): 1.5 * math.sqrt(0.75), (2, 1): 0.5 * math.sqrt(1.5)}, rel=1e-6)


def test_bias_model_shrinks_toward_mean(spark):
    frame = spark.createDataFrame([(1, 1, 5.0, 1), (2, 1, 5.0, 1), (1, 2, 1.0, 1), (2, 2, 1.0, 1)], RATINGS)
    mu, users, items = bias_model(frame, shrinkage=2.0)
    assert mu == 3.0
    item = {r["movie_id"]: r["item_bias"] for r in items.collect()}
    assert item == pytest.approx({1: 4.0 / 4, 2: -4.0 / 4})  # sum(r - mu) / (n + 2)
    assert {r["user_id"]: r["user_bias"] for r in users.collect()} == pytest.approx({1: 0.0, 2: 0.0})


def test_explicit_blend_weights_are_least_squares_and_survive_save_and_load(spark, tmp_path):
    frame = spark.createDataFrame([(u, m, float(1 + (u * m) % 5), 1) for u in range(1, 7) for m in range(1, 9)
                                   if (u + m) % 3], RATINGS)
    settings = ALSSettings.model_validate({"implicit": {"rank": 2, "max_iter": 3},
                                           "explicit": {"rank": 2, "max_iter": 3, "implicit_feature": True}})
    model = ExplicitModel._fit_parts(frame, settings, (1.0, 5.0), None, [])
    # a held-out set whose ratings are exactly baseline + 0.5 * residual ALS + 2 * implicit score + 0.3
    pairs = spark.createDataFrame([(u, m, 0.0, 1) for u in range(1, 7) for m in range(1, 9) if not (u + m) % 3],
                                  RATINGS)
    exact = model._features(pairs).withColumn(
        "rating", F.col("baseline") + 0.5 * F.col("_residual") + 2.0 * F.col("_implicit") + 0.3
    ).select("user_id", "movie_id", "rating")
    assert model.least_squares_weights(exact) == pytest.approx([0.5, 2.0, 0.3], abs=1e-4)
    assert model.least_squares_weights(exact.limit(0)) == [1.0, 0.0, 0.0]  # nothing held out: the plain model

    model.weights = [0.5, 2.0, 0.3]
    expected = {(r["user_id"], r["movie_id"]): min(5.0, max(1.0, r["rating"])) for r in exact.collect()}
    model.save(str(tmp_path / "explicit"))
    for candidate in (model, ExplicitModel.load(spark, str(tmp_path / "explicit"))):
        got = {(r["user_id"], r["movie_id"]): r["prediction"] for r in candidate.predict(pairs).collect()}
        assert got == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- ranking

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
    import jobs.lib.ranking as ranking
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


def test_ranking_metrics_match_hand_computation(spark):
    recs = spark.createDataFrame([(1, 1, 10), (1, 2, 20), (1, 3, 30), (2, 1, 40), (2, 2, 50), (2, 3, 60)],
                                 "user_id int, rank int, movie_id int")
    truth = spark.createDataFrame([(1, 20), (1, 99), (2, 40), (2, 60), (3, 70)], "user_id int, movie_id int")
    per_user = {r["user_id"]: r for r in per_user_ranking_metrics(recs, truth, 3).collect()}
    one, two, three = per_user[1], per_user[2], per_user[3]
    assert one["precision"] == pytest.approx(1 / 3) and one["recall"] == pytest.approx(1 / 2)
    assert one["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert one["ap"] == pytest.approx((1 / 2) / 2)
    assert two["precision"] == pytest.approx(2 / 3) and two["recall"] == pytest.approx(1.0)
    assert two["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert two["ap"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert (three["precision"], three["recall"], three["ndcg"], three["ap"]) == (0, 0, 0, 0)  # no recs: zeros
    means = mean_ranking_metrics(per_user_ranking_metrics(recs, truth, 3), 3)
    assert means["users_evaluated"] == 3
    assert means["precision@3"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_popularity_baseline_excludes_rated_movies(spark):
    train = spark.createDataFrame([(1, 1, 5.0, 1), (2, 1, 4.0, 1), (3, 1, 3.0, 1), (2, 2, 5.0, 1), (3, 2, 5.0, 1),
                                   (3, 3, 1.0, 1)], RATINGS)
    users = spark.createDataFrame([(1,), (3,)], "user_id int")
    got = rows(popularity_top_n(train, users, 2).select("user_id", "rank", "movie_id"), "user_id", "rank")
    assert got == [(1, 1, 2), (1, 2, 3)]  # user 3 rated everything
    pct = {r["movie_id"]: r["pop_pct"] for r in popularity_percentiles(train).collect()}
    assert pct == {1: 1.0, 2: 0.5, 3: 0.0}


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
        itemFactors = spark.createDataFrame([(1, [1.0, 0.0]), (2, [10.0, 1.0]), (3, [0.0, 1.0])],
                                            "id int, features array<float>")
    got = {(r["movie_id"], r["rank"]): (r["neighbor_id"], r["score"]) for r in item_neighbors(Model, 1).collect()}
    assert got[(1, 1)][0] == 2 and got[(3, 1)][0] == 2
    assert got[(1, 1)][1] == pytest.approx(10 / math.sqrt(101), rel=1e-5)
    on_driver = neighbors_on_driver(factors_of(Model.itemFactors.toArrow()), 1)
    assert on_driver.schema.names == ["movie_id", "rank", "neighbor_id", "score"]
    assert {(m, r): (b, pytest.approx(s, rel=1e-6)) for m, r, b, s in zip(*on_driver.to_pydict().values())} == got
