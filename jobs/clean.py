"""clean: raw -> clean ratings and movies. Duplicates removed, rows breaking soft rules dropped and counted
per rule, activity filters applied, titles split into title and year, genres normalised.
"""
from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.common import job_main, read_json, run_paths, spark_session, utc_now, write_json
from schemas.movielens import CLEAN_MOVIES, DATASETS, GENRE_ALIASES, NO_GENRE

log = logging.getLogger("reco.clean")

YEAR_SUFFIX = r"\s*\((\d{4})\)\s*$"


def drop_duplicates(ratings: DataFrame) -> DataFrame:
    """One rating per (user, movie): the latest (highest ts; ties resolved by the higher rating)."""
    latest_first = Window.partitionBy("user_id", "movie_id").orderBy(F.desc("ts"), F.desc("rating"))
    return ratings.withColumn("_n", F.row_number().over(latest_first)).where("_n = 1").drop("_n")


def flag_violations(ratings: DataFrame, movie_ids: DataFrame, rating_values, ts_min: int, ts_max: int) -> DataFrame:
    """Add `violation`: the first soft rule a rating breaks, or null. Rules in order:
    missing_field, rating_off_scale, ts_out_of_range, unknown_movie."""
    known = movie_ids.select("movie_id").distinct().withColumn("_known", F.lit(True))
    flagged = ratings.join(known, "movie_id", "left")
    rule = (
        F.when(F.col("user_id").isNull() | F.col("movie_id").isNull() | F.col("rating").isNull()
               | F.col("ts").isNull(), "missing_field")
        .when(~F.col("rating").isin(list(rating_values)), "rating_off_scale")
        .when((F.col("ts") < ts_min) | (F.col("ts") > ts_max), "ts_out_of_range")
        .when(F.col("_known").isNull(), "unknown_movie")
    )
    return flagged.withColumn("violation", rule).drop("_known").select(*ratings.columns, "violation")


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


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[read_json(paths.manifest)["dataset"]]
    spark = spark or spark_session(config, "clean")
    raw_ratings = spark.read.parquet(paths.raw_ratings)
    movies = clean_movies(spark.read.parquet(paths.raw_movies))
    movies.write.mode("overwrite").parquet(paths.clean_movies)
    movies = spark.read.parquet(paths.clean_movies)

    rows_in = raw_ratings.count()
    exact = raw_ratings.dropDuplicates()
    exact_dupes = rows_in - exact.count()
    deduped = drop_duplicates(exact)
    pair_dupes = rows_in - exact_dupes - deduped.count()
    flagged = flag_violations(deduped, movies, spec.rating_values, config.validation.ts_min_epoch,
                              int(time.time()) + 86_400).cache()
    per_rule = {row["violation"]: row["count"]
                for row in flagged.where("violation IS NOT NULL").groupBy("violation").count().collect()}
    valid = flagged.where("violation IS NULL").drop("violation")
    active = filter_activity(valid, config.clean.min_user_ratings, config.clean.min_item_ratings)
    active.write.mode("overwrite").parquet(paths.clean_ratings)
    flagged.unpersist()

    clean = spark.read.parquet(paths.clean_ratings)
    rows_out = clean.count()
    valid_rows = rows_in - exact_dupes - pair_dupes - sum(per_rule.values())
    report = {
        "run_id": run_id,
        "ratings_in": rows_in,
        "ratings_out": rows_out,
        "dropped": {
            "exact_duplicate": exact_dupes,
            "duplicate_user_movie": pair_dupes,
            **{rule: per_rule.get(rule, 0)
               for rule in ("missing_field", "rating_off_scale", "ts_out_of_range", "unknown_movie")},
            "below_activity_threshold": valid_rows - rows_out,
        },
        "activity_filters": config.clean.model_dump(),
        "users": clean.select("user_id").distinct().count(),
        "movies_rated": clean.select("movie_id").distinct().count(),
        "movies": movies.count(),
        "movies_without_year": movies.where("year IS NULL").count(),
        "movies_without_genre": movies.where("size(genres) = 0").count(),
        "cleaned_at": utc_now(),
    }
    write_json(paths.clean_report, report)
    log.info("clean: %d -> %d ratings, dropped %s", rows_in, rows_out, report["dropped"])
    return report


def main() -> None:
    job_main("clean", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
