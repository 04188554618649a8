"""Drift figures on tiny frames with known answers."""
import math

import pytest

from conf.settings import DriftSettings
from jobs.lib.data.drift import compare, profile, psi


def test_psi_is_zero_for_equal_distributions_and_grows_with_the_shift():
    same = {"1": 0.5, "2": 0.5}
    assert psi(same, same) == 0
    small, large = psi({"1": 0.55, "2": 0.45}, same), psi({"1": 0.9, "2": 0.1}, same)
    assert 0 < small < large
    assert small == pytest.approx(0.05 * math.log(0.55 / 0.5) - 0.05 * math.log(0.45 / 0.5))


def test_profile_of_a_tiny_run(spark):
    ratings = spark.createDataFrame(
        [(1, 10, 5.0, 0), (1, 11, 4.0, 0), (1, 12, 4.0, 0), (2, 10, 3.0, 0)], "user_id int, movie_id int, "
        "rating double, ts long")
    movies = spark.createDataFrame([(10, ["Drama"]), (11, ["Drama", "Comedy"]), (12, [])],
                                   "movie_id int, genres array<string>")
    p = profile(ratings, movies)
    assert (p["ratings"], p["users"], p["movies"]) == (4, 2, 3)
    assert p["rating_shares"] == {"3.0": 0.25, "4.0": 0.5, "5.0": 0.25}
    assert p["activity_shares"] == {"1": 0.5, "2": 0.5}   # one user with 1 rating, one with 3 (bucket 2)
    assert p["genre_shares"] == {"Comedy": 0.25, "Drama": 0.75}  # (rating, genre) pairs: Drama 3, Comedy 1
    assert p["top_1pct_user_share"] == 0.75                 # the one heaviest user gave 3 of 4


def test_compare_names_what_moved():
    live = {"ratings": 100, "users": 10, "movies": 20, "rating_shares": {"1": 0.5, "2": 0.5},
            "activity_shares": {"1": 1.0}, "genre_shares": {"Drama": 1.0}, "top_1pct_user_share": 0.1}
    now = {**live, "users": 16, "rating_shares": {"1": 0.9, "2": 0.1}}
    checks = compare(now, live, {"new_user_share": 0.6, "new_movie_share": 0.0}, DriftSettings(), "r1")
    failed = {c["gate"].split(" <=")[0] for c in checks if not c["passed"]}
    assert failed == {"drift rating distribution PSI", "drift users change", "drift new users share"}
    assert all("(against run r1)" in c["gate"] for c in checks)
