"""Data drift between runs: this run's clean ratings against those of the run live now.

A profile is a handful of distributions, computed from three small aggregates (ratings per value, per user,
per movie) collected to the driver:
- the rating distribution (share of ratings per value of the scale),
- activity (share of users per power-of-two bucket of their number of ratings),
- genre shares (share of (rating, genre) pairs per genre),
- the share of all ratings given by the 1% most active users (a flood of one user's events shows here),
- the numbers of ratings, users and movies.
`compare` turns two profiles (and the shares of users and movies the live run did not have) into checks
against the `drift` thresholds; a failed check stops publication like a failed quality gate.
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame

from conf.settings import DriftSettings

EPSILON = 1e-4  # PSI's floor for an empty bin


def profile(ratings: DataFrame, movies: DataFrame) -> dict:
    """The distributions above, for one run's clean ratings and movies."""
    by_value = {float(r["rating"]): r["count"] for r in ratings.groupBy("rating").count().collect()}
    per_user = [r["count"] for r in ratings.groupBy("user_id").count().collect()]
    per_movie = {r["movie_id"]: r["count"] for r in ratings.groupBy("movie_id").count().collect()}
    genres = {r["movie_id"]: r["genres"] or [] for r in movies.select("movie_id", "genres").collect()}
    total = sum(by_value.values()) or 1
    activity: dict[str, int] = {}
    for count in per_user:
        bucket = str(2 ** int(math.log2(count)))
        activity[bucket] = activity.get(bucket, 0) + 1
    by_genre: dict[str, int] = {}
    for movie, count in per_movie.items():
        for genre in genres.get(movie, ()):
            by_genre[genre] = by_genre.get(genre, 0) + count
    heaviest = sorted(per_user, reverse=True)[:max(1, math.ceil(len(per_user) / 100))]
    return {
        "ratings": total, "users": len(per_user), "movies": len(per_movie),
        "rating_shares": _shares({str(k): v for k, v in by_value.items()}),
        "activity_shares": _shares(activity),
        "genre_shares": _shares(by_genre),
        "top_1pct_user_share": sum(heaviest) / total,
    }


def new_shares(ratings: DataFrame, live_ratings: DataFrame) -> dict:
    """Shares of this run's users and rated movies that the live run's ratings do not have."""
    shares = {}
    for column in ("user_id", "movie_id"):
        now = ratings.select(column).distinct()
        shares[column] = now.join(live_ratings.select(column).distinct(), column, "left_anti").count() / max(
            1, now.count())
    return {"new_user_share": shares["user_id"], "new_movie_share": shares["movie_id"]}


def psi(current: dict[str, float], reference: dict[str, float]) -> float:
    """Population stability index of two share distributions over the union of their bins."""
    total = 0.0
    for key in set(current) | set(reference):
        p, q = max(current.get(key, 0.0), EPSILON), max(reference.get(key, 0.0), EPSILON)
        total += (p - q) * math.log(p / q)
    return total


def compare(current: dict, live: dict, new: dict | None, settings: DriftSettings, live_run: str) -> list[dict]:
    """One check per figure: {"gate": "drift <figure> ...", "value", "limit", "passed"}."""
    checks = [
        ("rating distribution PSI", psi(current["rating_shares"], live["rating_shares"]), settings.max_rating_psi),
        ("activity distribution PSI", psi(current["activity_shares"], live["activity_shares"]),
         settings.max_activity_psi),
        ("genre shares PSI", psi(current["genre_shares"], live["genre_shares"]), settings.max_genre_psi),
        ("users change", abs(current["users"] / max(1, live["users"]) - 1), settings.max_count_change),
        ("movies change", abs(current["movies"] / max(1, live["movies"]) - 1), settings.max_count_change),
        ("top 1% users' share change", abs(current["top_1pct_user_share"] - live["top_1pct_user_share"]),
         settings.max_top_user_share_change),
    ]
    if new is not None:
        checks += [("new users share", new["new_user_share"], settings.max_new_share),
                   ("new movies share", new["new_movie_share"], settings.max_new_share)]
    return [{"gate": f"drift {name} <= {limit} (against run {live_run})", "value": round(value, 6),
             "limit": limit, "passed": value <= limit} for name, value, limit in checks]


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {key: count / total for key, count in sorted(counts.items())}
