"""ALS preferences, the bias model and the explicit blend, on tiny frames."""
import math

import pytest
from pyspark.sql import functions as F

from conf.settings import ALSSettings, ImplicitALSSettings
from jobs.lib.model.als import ExplicitModel, bias_model, implicit_preferences
from tests.support import RATINGS


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



