"""The evaluation split and the cross-validation folds."""
from jobs.lib.model.splits import kfold_splits, stratified_split
from tests.support import RATINGS, rows


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


