"""A run's answers as Redis values under their key suffixes (pure DataFrame functions). Lists are stored compact,
as schemas/items.py packs them (movie ids, scores, `because` ids): the service joins what it shows of each movie
from the version's movie keys. A suffix is a key without its version prefix (schemas/redis_keys.py), so one run's
values serve any version published from it: the writer adds the prefix."""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from schemas import items as packed_lists
from schemas import redis_keys as rk


def _pack_lists(movie_ids: pd.Series, scores: pd.Series, because: pd.Series) -> pd.Series:
    """Each row's list, packed (`because` rows are null where the list has no reasons)."""
    return pd.Series([packed_lists.pack(ids, s, b if b is not None else None)
                      for ids, s, b in zip(movie_ids, scores, because)])


def _pack_ids(movie_ids: pd.Series) -> pd.Series:
    return pd.Series([packed_lists.pack(ids) for ids in movie_ids])


def _udf(function):
    """A pandas UDF returning bytes (made when first used: making one needs a Spark session)."""
    return F.pandas_udf(function, "binary")


def _ranked_list(frame: DataFrame, group_col: str, movie_col: str) -> DataFrame:
    """(group_col, value): the list of each group ordered by rank, packed; with a `because_id` column, each item
    names that movie (0: none)."""
    because = F.coalesce("because_id", F.lit(0)) if "because_id" in frame.columns else F.lit(None).cast("int")
    item = F.struct("rank", F.col(movie_col).cast("int").alias("movie_id"), F.col("score").cast("float")
                    .alias("score"), because.cast("int").alias("because_id"))
    ranked = frame.groupBy(group_col).agg(F.array_sort(F.collect_list(item)).alias("ranked"))
    reasons = F.col("ranked.because_id") if "because_id" in frame.columns else F.lit(None).cast("array<int>")
    return ranked.select(group_col, _udf(_pack_lists)(F.col("ranked.movie_id"), F.col("ranked.score"), reasons)
                         .alias("value"))


def build_values(user_recs: DataFrame, neighbors: DataFrame, popular: DataFrame,
                 movies: DataFrame, movie_stats: DataFrame, seen: DataFrame,
                 content: DataFrame | None = None, new_picks: DataFrame | None = None,
                 new_lists: DataFrame | None = None) -> DataFrame:
    """Every (suffix, value) of a version except meta: lists packed (schemas/items.py), a movie's details as JSON.
    `seen`: the (user_id, movie_id) pairs each person has seen (rated or dismissed, schemas/people.py), which a
    filtered answer's fill-up leaves out."""
    def keyed(frame: DataFrame, kind: str, ident: str) -> DataFrame:
        return frame.select(F.concat(F.lit(rk.suffix(kind, "")), F.col(ident).cast("string")).alias("suffix"),
                            "value")

    users = keyed(_ranked_list(user_recs, "user_id", "movie_id"), "user", "user_id")
    similar = keyed(_ranked_list(neighbors, "movie_id", "neighbor_id"), "similar", "movie_id")
    popular_lists = keyed(_ranked_list(popular, "genre", "movie_id"), "popular", "genre")
    details = keyed(movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", F.to_json(F.struct("movie_id", "title", "year", "genres",
                                       F.coalesce("n_ratings", F.lit(0)).alias("n_ratings"),
                                       F.round("mean_rating", 3).alias("mean_rating"))).cast("binary")
        .alias("value")), "movie", "movie_id")
    seen_lists = keyed(seen.groupBy("user_id").agg(_udf(_pack_ids)(F.array_sort(F.collect_set(
        F.col("movie_id").cast("int")))).alias("value")).join(user_recs.select("user_id").distinct(), "user_id"),
        "seen", "user_id")
    values = users.unionByName(similar).unionByName(popular_lists).unionByName(details) \
        .unionByName(title_index(movies, movie_stats)).unionByName(seen_lists)
    if content is not None:  # by content, for the movies without an ALS neighbour list only
        content = content.join(neighbors.select("movie_id").distinct(), "movie_id", "left_anti")
        values = values.unionByName(keyed(_ranked_list(content, "movie_id", "neighbor_id"), "content", "movie_id"))
    if new_picks is not None:  # per user, the new movies their ALS vector scores highest
        values = values.unionByName(keyed(_ranked_list(new_picks, "user_id", "movie_id"), "new", "user_id"))
    if new_lists is not None:  # per genre, the new movies nearest the genre's most liked
        values = values.unionByName(keyed(_ranked_list(new_lists, "genre", "movie_id"), "new_movies", "genre"))
    return values


def title_index(movies: DataFrame, movie_stats: DataFrame) -> DataFrame:
    """(suffix, value): per title word, the movies having it, most rated first (the service intersects them)."""
    spark = movies.sparkSession
    ranked = movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", "title", F.coalesce("n_ratings", F.lit(0)).alias("n"))
    pairs = ranked.rdd.flatMap(
        lambda row: [(token, row["n"], row["movie_id"]) for token in set(rk.title_tokens(row["title"]))])
    tokens = spark.createDataFrame(pairs, "token string, n long, movie_id int")
    return tokens.groupBy("token").agg(_udf(_pack_ids)(F.transform(
        F.array_sort(F.collect_list(F.struct((-F.col("n")).alias("neg_n"), "movie_id"))),
        lambda s: s["movie_id"])).alias("value")).select(
        F.concat(F.lit(rk.suffix("title", "")), "token").alias("suffix"), "value")


def count_by_kind(values: DataFrame) -> dict[str, int]:
    """Keys per kind (user, similar, ...) in one pass: the kind is the suffix's first part."""
    kind = F.split("suffix", ":").getItem(0)
    return {row["kind"]: row["count"] for row in values.groupBy(kind.alias("kind")).count().collect()}
