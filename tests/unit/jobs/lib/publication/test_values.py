"""A run's answers as Redis values under their key suffixes, on tiny frames: lists packed as schemas/items.py
reads them, which the service joins with the movies' details into exactly the items the API serves."""
import json

import orjson

from jobs.lib.publication.values import build_values, count_by_kind
from schemas import items
from schemas import redis_keys as rk


def test_values_are_the_api_shapes_in_rank_order_and_counted_per_kind(spark):
    movies = spark.createDataFrame([(1, "Alien", 1979, ["Sci-Fi"]), (2, "Heat", 1995, ["Crime"]),
                                    (3, "Alien Nation", 1988, ["Sci-Fi"])],
                                   "movie_id int, title string, year int, genres array<string>")
    stats = spark.createDataFrame([(1, 10, 4.25), (2, 3, 3.5)], "movie_id int, n_ratings long, mean_rating double")
    user_recs = spark.createDataFrame([(7, 2, 1, 0.5, 2), (7, 1, 3, 0.8123441, None)],
                                      "user_id int, rank int, movie_id int, score float, because_id int")
    neighbors = spark.createDataFrame([(1, 1, 3, 0.9)], "movie_id int, rank int, neighbor_id int, score float")
    popular = spark.createDataFrame([("_all", 1, 1, 10.0), ("_all", 2, 2, 3.0)],
                                    "genre string, rank int, movie_id int, score float")
    seen = spark.createDataFrame([(7, 2), (7, 2), (8, 1)], "user_id int, movie_id int")  # 8 has no list
    content = spark.createDataFrame([(1, 1, 3, 0.7), (2, 1, 1, 0.2)],
                                    "movie_id int, rank int, neighbor_id int, score float")
    new_lists = spark.createDataFrame([("_all", 1, 2, 0.4), ("Crime", 1, 2, 0.9)],
                                      "genre string, rank int, movie_id int, score float")
    values = build_values(user_recs, neighbors, popular, movies, stats, seen, content, None, new_lists)
    raw = {rk.version_prefix("v1") + row["suffix"]: bytes(row["value"]) for row in values.collect()}
    details = {int(k.rsplit(":", 1)[1]): json.loads(v) for k, v in raw.items() if ":movie:" in k}
    because = {movie: items.because_field(d) for movie, d in details.items()}
    ids_only = (":seen:", ":title:")
    # Every list as the service shows it: decoded and joined with the details (serving/versions.py).
    got = {k: (list(items.unpack(v).movie_ids) if any(kind in k for kind in ids_only)
               else orjson.loads(orjson.dumps(items.items_of(items.unpack(v), details, because)))) if ":movie:" not in k
           else json.loads(v) for k, v in raw.items()}

    assert [item["movie_id"] for item in got[rk.key("v1", "user", 7)]] == [3, 1]  # by rank, not by row order
    assert got[rk.key("v1", "user", 7)][0] == {"movie_id": 3, "title": "Alien Nation", "year": 1988,
                                                "genres": ["Sci-Fi"], "score": 0.81234}  # no because: none
    assert got[rk.key("v1", "user", 7)][1]["because"] == {"movie_id": 2, "title": "Heat"}
    assert got[rk.key("v1", "seen", 7)] == [2] and rk.key("v1", "seen", 8) not in got
    assert [item["movie_id"] for item in got[rk.key("v1", "similar", 1)]] == [3]
    # By content only where ALS has no neighbours for the movie.
    assert [item["movie_id"] for item in got[rk.key("v1", "content", 2)]] == [1]
    assert rk.key("v1", "content", 1) not in got
    assert [item["movie_id"] for item in got[rk.key("v1", "popular", "_all")]] == [1, 2]
    assert got[rk.key("v1", "new_movies", "Crime")] == [{"movie_id": 2, "title": "Heat", "year": 1995,
                                                        "genres": ["Crime"], "score": 0.9}]
    assert got[rk.key("v1", "movie", 3)] == {"movie_id": 3, "title": "Alien Nation", "year": 1988,
                                             "genres": ["Sci-Fi"], "n_ratings": 0}  # never rated
    assert got[rk.key("v1", "title", "alien")] == [1, 3]  # most rated first
    assert count_by_kind(values) == {"user": 1, "seen": 1, "similar": 1, "content": 1, "popular": 1, "movie": 3,
                                           "new_movies": 2,
                                           "title": len({t for m in ("Alien", "Heat", "Alien Nation")
                                                         for t in rk.title_tokens(m)})}
