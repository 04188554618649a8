"""clean: raw -> clean ratings and movies. Duplicates removed, rows breaking soft rules dropped and counted
per rule, activity filters applied, titles split into title and year, genres normalised.

The archived events join in (ingest's `events.json` names the archive files this run trains on): rating events
are more ratings (the latest rating of a (user, movie) pair wins, MovieLens' or an event's), clicks are counted
per (user, movie) into `clicks.parquet`. A bad event is dropped and counted by rule, like a bad rating.
"""
from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.lib.cleaning import (clean_movies, clicks_per_pair, drop_duplicates, filter_activity, flag_violations,
                               split_events)
from jobs.lib.files import exists, read_json, write_json
from jobs.lib.runs import run_paths, utc_now
from jobs.lib.runtime import job_main, spark_session
from schemas.movielens import DATASETS, RATING_COLUMNS
from schemas.tables import CLEAN_CLICKS, EVENTS

RULES = ("missing_field", "rating_off_scale", "ts_out_of_range", "unknown_movie")

log = logging.getLogger("reco.clean")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[read_json(paths.manifest)["dataset"]]
    spark = spark or spark_session(config, "clean")
    raw_ratings = spark.read.parquet(paths.raw_ratings)
    movies = clean_movies(spark.read.parquet(paths.raw_movies))
    movies.write.mode("overwrite").parquet(paths.clean_movies)
    movies = spark.read.parquet(paths.clean_movies)

    event_files = read_json(paths.events)["files"] if exists(paths.events) else []
    events = spark.read.schema(EVENTS).parquet(*event_files) if event_files else spark.createDataFrame([], EVENTS)
    event_ratings, event_clicks, unknown_type = split_events(events)
    ts_max = int(time.time()) + 86_400

    combined = raw_ratings.withColumn("source", F.lit("movielens")).unionByName(event_ratings)
    rows_in = combined.count()
    # Kept (memory, then disk) so that the counts below do not redo the shuffles: each pass costs about a
    # minute at 25M ratings.
    exact = combined.dropDuplicates(list(RATING_COLUMNS)).persist(StorageLevel.MEMORY_AND_DISK)
    exact_dupes = rows_in - exact.count()  # an event equal to a MovieLens row is one rating
    flagged = flag_violations(drop_duplicates(exact), movies, spec.rating_values, config.validation.ts_min_epoch,
                              ts_max).persist(StorageLevel.MEMORY_AND_DISK)
    pair_dupes = rows_in - exact_dupes - flagged.count()
    exact.unpersist()
    per_rule = _count_by(flagged.where("violation IS NOT NULL"), "source", "violation")
    valid = flagged.where("violation IS NULL").drop("violation")
    active = filter_activity(valid, config.clean.min_user_ratings, config.clean.min_item_ratings)
    if event_files:
        active = active.cache()
        kept_by_source = _count_by(active, "source")
    active.drop("source").write.mode("overwrite").parquet(paths.clean_ratings)
    flagged.unpersist()
    active.unpersist()

    click_rules = {}
    if event_files:
        flagged_clicks = flag_violations(event_clicks, movies, (), config.validation.ts_min_epoch, ts_max).cache()
        click_rules = _count_by(flagged_clicks.where("violation IS NOT NULL"), "violation")
        clicks = clicks_per_pair(flagged_clicks.where("violation IS NULL"))
    else:
        clicks = spark.createDataFrame([], CLEAN_CLICKS)
    clicks.write.mode("overwrite").parquet(paths.clean_clicks)
    if event_files:
        flagged_clicks.unpersist()

    clean = spark.read.parquet(paths.clean_ratings)
    rows_out = clean.count()
    total_by_rule = {rule: sum(n for (_, r), n in per_rule.items() if r == rule) for rule in RULES}
    valid_rows = rows_in - exact_dupes - pair_dupes - sum(total_by_rule.values())
    events_report = {
        "archive_files": len(event_files),
        "ratings_in": event_ratings.count() if event_files else 0,
        "ratings_kept": kept_by_source.get(("event",), 0) if event_files else 0,
        "ratings_dropped": {rule: per_rule.get(("event", rule), 0) for rule in RULES},
        "clicks_in": event_clicks.count() if event_files else 0,
        "clicks_dropped": {rule: click_rules.get((rule,), 0) for rule in RULES if rule != "rating_off_scale"},
        "click_pairs": spark.read.parquet(paths.clean_clicks).count() if event_files else 0,
        "unknown_type": unknown_type.count() if event_files else 0,
    }
    report = {
        "run_id": run_id,
        "ratings_in": rows_in,
        "ratings_out": rows_out,
        "dropped": {
            "exact_duplicate": exact_dupes,
            "duplicate_user_movie": pair_dupes,
            **total_by_rule,
            "below_activity_threshold": valid_rows - rows_out,
        },
        "activity_filters": config.clean.model_dump(),
        "users": clean.select("user_id").distinct().count(),
        "movies_rated": clean.select("movie_id").distinct().count(),
        "movies": movies.count(),
        "movies_without_year": movies.where("year IS NULL").count(),
        "movies_without_genre": movies.where("size(genres) = 0").count(),
        "events": events_report,
        "cleaned_at": utc_now(),
    }
    write_json(paths.clean_report, report)
    log.info("clean: %d -> %d ratings, dropped %s", rows_in, rows_out, report["dropped"])
    return report


def _count_by(frame: DataFrame, *columns: str) -> dict[tuple, int]:
    return {tuple(row[c] for c in columns): row["count"] for row in frame.groupBy(*columns).count().collect()}


def main() -> None:
    job_main("clean", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
