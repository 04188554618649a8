"""Raw into clean tables (pure DataFrame functions): duplicates, soft-rule violations, activity filters, titles
and genres."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas.movielens import GENRE_ALIASES, NO_GENRE

YEAR_SUFFIX = r"\s*\((\d{4})\)\s*$"


def drop_duplicates(ratings: DataFrame) -> DataFrame:
    """One rating per (user, movie): the latest (highest ts; ties resolved by the higher rating)."""
    latest_first = Window.partitionBy("user_id", "movie_id").orderBy(F.desc("ts"), F.desc("rating"))
    return ratings.withColumn("_n", F.row_number().over(latest_first)).where("_n = 1").drop("_n")


def flag_violations(ratings: DataFrame, movie_ids: DataFrame, rating_values, ts_min: int, ts_max: int) -> DataFrame:
    """Add `violation`: the first soft rule a rating breaks, or null. Rules in order:
    missing_field, rating_off_scale, ts_out_of_range, unknown_movie. Without `rating_values` (clicks) the rating
    is neither required nor checked."""
    known = movie_ids.select("movie_id").distinct().withColumn("_known", F.lit(True))
    flagged = ratings.join(known, "movie_id", "left")
    missing = F.col("user_id").isNull() | F.col("movie_id").isNull() | F.col("ts").isNull()
    if rating_values:
        missing = missing | F.col("rating").isNull()
    on_scale = F.col("rating").isin(list(rating_values)) if rating_values else F.lit(True)
    rule = (
        F.when(missing, "missing_field")
        .when(~on_scale, "rating_off_scale")
        .when((F.col("ts") < ts_min) | (F.col("ts") > ts_max), "ts_out_of_range")
        .when(F.col("_known").isNull(), "unknown_movie")
    )
    return flagged.withColumn("violation", rule).drop("_known").select(*ratings.columns, "violation")


def split_events(events: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """Archived events -> (ratings in the raw ratings' columns plus `source` = "event", clicks, dismissals,
    unknown types)."""
    ratings = events.where(F.col("type") == "rating").select(
        "user_id", "movie_id", "rating", "ts", F.lit("event").alias("source"))
    clicks = events.where(F.col("type") == "click").select("user_id", "movie_id", "rating", "ts")
    dismissals = events.where(F.col("type") == "dismiss").select("user_id", "movie_id", "rating", "ts")
    unknown = events.where(~F.col("type").isin("rating", "click", "dismiss") | F.col("type").isNull())
    return ratings, clicks, dismissals, unknown


def dismissed_pairs(dismissals: DataFrame) -> DataFrame:
    """(user_id, movie_id, ts): what a person said they are not interested in, and when last. A dismissal is for
    good: the lists leave the pair out (an exclusion, not a negative preference in training)."""
    return dismissals.groupBy("user_id", "movie_id").agg(F.max("ts").alias("ts"))


def clicks_per_pair(clicks: DataFrame, dismissed: DataFrame | None = None) -> DataFrame:
    """(user_id, movie_id, clicks, ts): how often a person opened a movie, and when last; none for a pair they
    dismissed (their last word on it)."""
    per_pair = clicks.groupBy("user_id", "movie_id").agg(F.count("*").alias("clicks"), F.max("ts").alias("ts"))
    if dismissed is not None:
        per_pair = per_pair.join(dismissed.select("user_id", "movie_id"), ["user_id", "movie_id"], "left_anti")
    return per_pair


def filter_activity(ratings: DataFrame, min_user_ratings: int, min_item_ratings: int) -> DataFrame:
    """Keep movies with at least min_item_ratings ratings, then users with at least min_user_ratings of what
    remains (one pass each, in that order: the model cannot learn from users or movies it barely sees)."""
    if min_item_ratings > 1:
        per_item = Window.partitionBy("movie_id")
        ratings = ratings.withColumn("_n", F.count("*").over(per_item)).where(F.col("_n") >= min_item_ratings) \
            .drop("_n")
    if min_user_ratings > 1:
        per_user = Window.partitionBy("user_id")
        ratings = ratings.withColumn("_n", F.count("*").over(per_user)).where(F.col("_n") >= min_user_ratings) \
            .drop("_n")
    return ratings


def clean_movies(movies: DataFrame) -> DataFrame:
    """Title year parsed from the '(1995)' suffix (else the raw release year), suffix removed from the title,
    genre placeholders dropped and spelling unified ("Children's" -> "Children")."""
    aliases = F.create_map(*[F.lit(x) for pair in GENRE_ALIASES.items() for x in pair])
    genres = F.transform(
        F.filter(F.coalesce("genres", F.array().cast("array<string>")),
                 lambda g: ~g.isin(list(NO_GENRE))),
        lambda g: F.coalesce(aliases[g], g))
    title_year = F.regexp_extract("title", YEAR_SUFFIX, 1)
    return movies.where("movie_id IS NOT NULL").dropDuplicates(["movie_id"]).select(
        F.col("movie_id"),
        F.trim(F.regexp_replace("title", YEAR_SUFFIX, "")).alias("title"),
        F.when(title_year != "", title_year.cast("int")).otherwise(F.col("year")).alias("year"),
        F.array_distinct(genres).alias("genres"),
    )


TAG_RULES = ("missing_field", "bad_tag_length", "ts_out_of_range", "unknown_movie", "duplicate")
GENOME_RULES = ("missing_field", "relevance_out_of_range", "unknown_movie", "duplicate")


def _first_violation(frame: DataFrame, movies: DataFrame, rules) -> DataFrame:
    """`violation`: the first of (name, condition) `rules` a row breaks, then unknown_movie, or null."""
    known = movies.select("movie_id").distinct().withColumn("_known", F.lit(True))
    flagged = frame.join(known, "movie_id", "left")
    rule = F.when(F.lit(False), F.lit(None))
    for name, condition in rules:
        rule = rule.when(condition, name)
    rule = rule.when(F.col("_known").isNull(), "unknown_movie")
    return flagged.withColumn("violation", rule).drop("_known").select(*frame.columns, "violation")


def _flag_repeats(flagged: DataFrame, again: Window) -> DataFrame:
    """`violation` "duplicate" on each valid row after the first of its `again` window."""
    return flagged.withColumn("_n", F.when(F.col("violation").isNull(), F.row_number().over(again))) \
        .withColumn("violation", F.when(F.col("_n") > 1, F.lit("duplicate")).otherwise(F.col("violation"))) \
        .drop("_n")


def normalise_tag(column):
    """Tags as people type them: trimmed, lowercased, inner whitespace collapsed ("Sci  Fi " -> "sci fi")."""
    return F.lower(F.trim(F.regexp_replace(column, r"\s+", " ")))


def flag_tags(tags: DataFrame, movies: DataFrame, ts_min: int, ts_max: int, max_length: int) -> DataFrame:
    """Raw tags with `tag` normalised and `violation` (TAG_RULES; duplicate: the same person put the same tag on
    the same movie again, only the first one counts)."""
    normalised = tags.withColumn("tag", normalise_tag(F.col("tag")))
    missing = F.col("user_id").isNull() | F.col("movie_id").isNull() | F.col("tag").isNull() | F.col("ts").isNull()
    length = F.length("tag")
    flagged = _first_violation(normalised, movies, [
        ("missing_field", missing), ("bad_tag_length", (length < 1) | (length > max_length)),
        ("ts_out_of_range", (F.col("ts") < ts_min) | (F.col("ts") > ts_max))])
    return _flag_repeats(flagged, Window.partitionBy("user_id", "movie_id", "tag").orderBy("ts"))


def movie_tags(flagged: DataFrame) -> DataFrame:
    """CLEAN_TAGS: (movie_id, tag, people) from the tags without a violation."""
    return flagged.where("violation IS NULL").groupBy("movie_id", "tag").agg(F.count("*").alias("people"))


def flag_genome(genome: DataFrame, movies: DataFrame) -> DataFrame:
    """Raw genome scores with `violation` (GENOME_RULES; duplicate: another score of the same (movie, tag), of
    which the highest is kept)."""
    missing = F.col("movie_id").isNull() | F.col("tag_id").isNull() | F.col("relevance").isNull()
    flagged = _first_violation(genome, movies, [
        ("missing_field", missing),
        ("relevance_out_of_range", (F.col("relevance") < 0) | (F.col("relevance") > 1))])
    return _flag_repeats(flagged, Window.partitionBy("movie_id", "tag_id").orderBy(F.desc("relevance")))


RULES = ("missing_field", "rating_off_scale", "ts_out_of_range", "unknown_movie")  # flag_violations' names


def count_by(frame: DataFrame, *columns: str) -> dict[tuple, int]:
    """Rows per value of `columns`, e.g. {("event", "unknown_movie"): 3}."""
    return {tuple(row[c] for c in columns): row["count"] for row in frame.groupBy(*columns).count().collect()}


def drops_by_rule(rows_in: int, exact_duplicates: int, pair_duplicates: int, per_rule: dict[tuple, int],
                  rows_out: int) -> dict[str, int]:
    """The clean report's `dropped`: rows removed per reason, adding up to rows_in - rows_out. per_rule is
    count_by(flagged rows, "source", "violation")."""
    by_rule = {rule: sum(n for (_, r), n in per_rule.items() if r == rule) for rule in RULES}
    valid = rows_in - exact_duplicates - pair_duplicates - sum(by_rule.values())
    return {"exact_duplicate": exact_duplicates, "duplicate_user_movie": pair_duplicates, **by_rule,
            "below_activity_threshold": valid - rows_out}
