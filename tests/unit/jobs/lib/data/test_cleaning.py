"""Raw into clean tables, on tiny frames with exact expected results."""
from jobs.lib.data.cleaning import (
    clean_movies,
    drop_duplicates,
    filter_activity,
    flag_violations,
)
from tests.support import RATINGS, rows


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



