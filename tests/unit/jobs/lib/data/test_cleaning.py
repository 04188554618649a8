"""Raw into clean tables, on tiny frames with exact expected results."""
from jobs.lib.data.cleaning import (
    clean_movies,
    clicks_per_pair,
    dismissed_pairs,
    drop_duplicates,
    filter_activity,
    flag_genome,
    flag_tags,
    flag_violations,
    movie_tags,
    split_events,
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





def test_events_split_by_type_and_a_dismissal_outweighs_clicks(spark):
    events = spark.createDataFrame([
        ("1-0", 1, 10, "rating", 4.0, 100, None), ("2-0", 1, 11, "click", None, 101, None),
        ("3-0", 1, 11, "click", None, 102, None), ("4-0", 1, 12, "click", None, 103, None),
        ("5-0", 1, 12, "dismiss", None, 104, None), ("6-0", 1, 12, "dismiss", None, 105, None),
        ("7-0", 2, 10, "like", None, 106, None)],
        "stream_id string, user_id int, movie_id int, type string, rating double, ts long, request_id string")
    ratings, clicks, dismissals, unknown = split_events(events)
    assert (ratings.count(), clicks.count(), dismissals.count(), unknown.count()) == (1, 3, 2, 1)
    dismissed = dismissed_pairs(dismissals)
    assert rows(dismissed, "user_id", "movie_id") == [(1, 12, 105)]
    assert rows(clicks_per_pair(clicks, dismissed), "user_id", "movie_id") == [(1, 11, 2, 102)]
    assert rows(clicks_per_pair(clicks), "user_id", "movie_id") == [(1, 11, 2, 102), (1, 12, 1, 103)]


def test_tags_are_normalised_and_bad_or_repeated_ones_dropped_by_rule(spark):
    movies = spark.createDataFrame([(1,), (2,)], "movie_id int")
    raw = spark.createDataFrame([
        (1, 1, "Time  Travel ", 100), (2, 1, "time travel", 110), (1, 1, "TIME TRAVEL", 120),  # the same, again
        (1, 2, "   ", 100), (1, 2, "x" * 300, 100), (1, 9, "heist", 100), (None, 2, "heist", 100),
        (1, 2, "heist", 5), (3, 2, "Heist", 130)], "user_id int, movie_id int, tag string, ts long")
    flagged = flag_tags(raw, movies, ts_min=50, ts_max=1000, max_length=255)
    assert rows(flagged.groupBy("violation").count(), "violation") == [
        (None, 3), ("bad_tag_length", 2), ("duplicate", 1), ("missing_field", 1), ("ts_out_of_range", 1),
        ("unknown_movie", 1)]
    assert rows(movie_tags(flagged), "movie_id") == [(1, "time travel", 2), (2, "heist", 1)]


def test_genome_scores_out_of_range_unknown_or_repeated_are_dropped_by_rule(spark):
    movies = spark.createDataFrame([(1,), (2,)], "movie_id int")
    raw = spark.createDataFrame([(1, 1, 0.5), (1, 1, 0.7), (1, 2, 1.5), (9, 1, 0.2), (2, None, 0.3), (2, 1, 0.0)],
                                "movie_id int, tag_id int, relevance double")
    flagged = flag_genome(raw, movies)
    assert rows(flagged, "movie_id", "tag_id", "relevance") == [
        (1, 1, 0.5, "duplicate"), (1, 1, 0.7, None), (1, 2, 1.5, "relevance_out_of_range"),
        (2, None, 0.3, "missing_field"), (2, 1, 0.0, None), (9, 1, 0.2, "unknown_movie")]
