"""A run's answers as Redis keys and values (pure DataFrame functions), built in Spark in exactly the shape the
API returns, so a request does a lookup, a slice and no joins. Key layout: schemas/redis_keys.py."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from schemas import redis_keys as rk


def _item(movies: DataFrame, id_col: str) -> DataFrame:
    """Columns of an API item for the movie in id_col: movie_id, title, year, genres."""
    return movies.select(F.col("movie_id").alias(id_col), F.struct(
        F.col("movie_id"), "title", "year", "genres").alias("_movie"))


def _json_list(frame: DataFrame, group_col: str, movie_col: str, movies: DataFrame) -> DataFrame:
    """(group_col, value): a JSON array of items ordered by rank; with a `because_id` column, each item names
    that movie as `because` ({movie_id, title}; left out where null)."""
    with_movie = frame.join(_item(movies, movie_col), movie_col)
    fields = [F.col("_movie.movie_id"), F.col("_movie.title"), F.col("_movie.year"), F.col("_movie.genres"),
              F.round("score", 5).alias("score")]
    if "because_id" in frame.columns:
        reasons = movies.select(F.col("movie_id").alias("because_id"), F.struct(
            F.col("movie_id"), "title").alias("because"))
        with_movie = with_movie.join(reasons, "because_id", "left")
        fields.append(F.col("because"))
    item = F.struct("rank", F.struct(*fields).alias("item"))
    return with_movie.groupBy(group_col).agg(
        F.to_json(F.transform(F.array_sort(F.collect_list(item)), lambda s: s["item"])).alias("value"))


def build_values(version: str, user_recs: DataFrame, neighbors: DataFrame, popular: DataFrame,
                 movies: DataFrame, movie_stats: DataFrame, seen: DataFrame,
                 content: DataFrame | None = None, new_picks: DataFrame | None = None,
                 new_lists: DataFrame | None = None) -> DataFrame:
    """Every (key, value) of a version except meta, values as the API serves them. `seen`: the (user_id,
    movie_id) pairs each person rated or dismissed, which a filtered answer's fill-up leaves out."""
    def keyed(frame: DataFrame, kind: str, ident: str) -> DataFrame:
        return frame.select(F.concat(F.lit(rk.kind_prefix(version, kind)), F.col(ident).cast("string"))
                            .alias("key"), "value")

    users = keyed(_json_list(user_recs, "user_id", "movie_id", movies), "user", "user_id")
    similar = keyed(_json_list(neighbors, "movie_id", "neighbor_id", movies), "similar", "movie_id")
    popular_lists = keyed(_json_list(popular, "genre", "movie_id", movies), "popular", "genre")
    details = keyed(movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", F.to_json(F.struct("movie_id", "title", "year", "genres",
                                       F.coalesce("n_ratings", F.lit(0)).alias("n_ratings"),
                                       F.round("mean_rating", 3).alias("mean_rating"))).alias("value")),
        "movie", "movie_id")
    seen_lists = keyed(seen.groupBy("user_id").agg(F.to_json(F.array_sort(F.collect_set(
        F.col("movie_id").cast("int")))).alias("value")).join(user_recs.select("user_id").distinct(), "user_id"),
        "seen", "user_id")
    values = users.unionByName(similar).unionByName(popular_lists).unionByName(details) \
        .unionByName(title_index(version, movies, movie_stats)).unionByName(seen_lists)
    if content is not None:  # by content, for the movies without an ALS neighbour list only
        content = content.join(neighbors.select("movie_id").distinct(), "movie_id", "left_anti")
        values = values.unionByName(keyed(_json_list(content, "movie_id", "neighbor_id", movies), "content",
                                          "movie_id"))
    if new_picks is not None:  # per user, the new movies their ALS vector scores highest
        values = values.unionByName(keyed(_json_list(new_picks, "user_id", "movie_id", movies), "new", "user_id"))
    if new_lists is not None:  # per genre, the new movies nearest the genre's most liked
        values = values.unionByName(keyed(_json_list(new_lists, "genre", "movie_id", movies), "new_movies", "genre"))
    return values


def title_index(version: str, movies: DataFrame, movie_stats: DataFrame) -> DataFrame:
    """(key, value): per title word, the movies having it, most rated first (the service intersects them)."""
    spark = movies.sparkSession
    ranked = movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", "title", F.coalesce("n_ratings", F.lit(0)).alias("n"))
    pairs = ranked.rdd.flatMap(
        lambda row: [(token, row["n"], row["movie_id"]) for token in set(rk.title_tokens(row["title"]))])
    tokens = spark.createDataFrame(pairs, "token string, n long, movie_id int")
    return tokens.groupBy("token").agg(F.to_json(F.transform(
        F.array_sort(F.collect_list(F.struct((-F.col("n")).alias("neg_n"), "movie_id"))),
        lambda s: s["movie_id"])).alias("value")).select(
        F.concat(F.lit(rk.kind_prefix(version, "title")), "token").alias("key"), "value")


def count_by_kind(values: DataFrame, version: str) -> dict[str, int]:
    """Keys per kind (user, similar, ...) in one pass: the kind is the key's first part after the version prefix."""
    kind = F.split(F.substring("key", len(rk.version_prefix(version)) + 1, 1 << 20), ":").getItem(0)
    return {row["kind"]: row["count"] for row in values.groupBy(kind.alias("kind")).count().collect()}
