"""The MovieLens layouts into raw tables, on tiny frames with exact expected results."""
from jobs.lib.data.layouts import (
    parse_genome,
    parse_movies_100k,
    parse_movies_pipe_genres,
    parse_ratings,
    parse_tags,
)
from schemas.movielens import GENRES_100K
from tests.support import rows


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





def test_parse_tags_and_genome_turn_bad_fields_into_nulls(spark):
    raw = spark.createDataFrame([("15", "339", "sandra 'boring' bullock", "1138537770"), ("x", "1", "", "y")],
                                "a string, b string, c string, d string")
    assert rows(parse_tags(raw), "ts") == [(None, 1, "", None), (15, 339, "sandra 'boring' bullock", 1138537770)]
    raw = spark.createDataFrame([("1", "1", "0.02875"), ("1", "b", "0.5"), ("2", "3", "high")],
                                "a string, b string, c string")
    assert rows(parse_genome(raw), "movie_id", "tag_id") == [(1, None, 0.5), (1, 1, 0.02875), (2, 3, None)]
