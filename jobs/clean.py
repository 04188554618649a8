"""clean: raw -> clean ratings and movies. Duplicates removed, rows breaking soft rules dropped and counted
per rule, activity filters applied, titles split into title and year, genres normalised.
"""
from __future__ import annotations

import logging
import time

from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib.cleaning import clean_movies, drop_duplicates, filter_activity, flag_violations
from jobs.lib.files import read_json, write_json
from jobs.lib.runs import run_paths, utc_now
from jobs.lib.runtime import job_main, spark_session
from schemas.movielens import DATASETS

log = logging.getLogger("reco.clean")


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
