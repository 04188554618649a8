"""clean: raw -> clean ratings and movies. Duplicates removed, rows breaking soft rules dropped and counted
per rule, activity filters applied, titles split into title and year, genres normalised.

The archived events join in (ingest's `events.json` names the archive files this run trains on): rating events
are more ratings (the latest rating of a (user, movie) pair wins, MovieLens' or an event's), clicks are counted
per (user, movie) into `clicks.parquet`, dismissals ("not interested") become the pairs of `dismissed.parquet`,
which recommend leaves out of the person's list and whose clicks do not count. A bad event is dropped and
counted by rule, like a bad rating. Where the release ships them, tags become (movie, tag, people) rows, tags
normalised, and the genome's scores are kept as they are; bad rows of both dropped and counted by rule.
"""
from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.lib.data.cleaning import (
    GENOME_RULES,
    RULES,
    TAG_RULES,
    clean_movies,
    clicks_per_pair,
    count_by,
    dismissed_pairs,
    drop_duplicates,
    drops_by_rule,
    filter_activity,
    flag_genome,
    flag_tags,
    flag_violations,
    movie_tags,
    split_events,
)
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from schemas.events import FUTURE_SLACK_S
from schemas.movielens import DATASETS, RATING_COLUMNS
from schemas.storage import exists, read_json, remove_folder, write_json
from schemas.tables import CLEAN_CLICKS, CLEAN_DISMISSED, EVENTS

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
    event_ratings, event_clicks, event_dismissals, unknown_type = split_events(events)
    ts_max = int(time.time()) + FUTURE_SLACK_S

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
    per_rule = count_by(flagged.where("violation IS NOT NULL"), "source", "violation")
    valid = flagged.where("violation IS NULL").drop("violation")
    active = filter_activity(valid, config.clean.min_user_ratings, config.clean.min_item_ratings)
    if event_files:
        active = active.cache()
        kept_by_source = count_by(active, "source")
    active.drop("source").write.mode("overwrite").parquet(paths.clean_ratings)
    flagged.unpersist()
    active.unpersist()

    click_rules, dismiss_rules = {}, {}
    if event_files:
        flagged_dismissals = flag_violations(event_dismissals, movies, (), config.validation.ts_min_epoch,
                                             ts_max).cache()
        dismiss_rules = count_by(flagged_dismissals.where("violation IS NOT NULL"), "violation")
        dismissed_pairs(flagged_dismissals.where("violation IS NULL")).write.mode("overwrite") \
            .parquet(paths.clean_dismissed)
        flagged_dismissals.unpersist()
        dismissed = spark.read.parquet(paths.clean_dismissed)
        flagged_clicks = flag_violations(event_clicks, movies, (), config.validation.ts_min_epoch, ts_max).cache()
        click_rules = count_by(flagged_clicks.where("violation IS NOT NULL"), "violation")
        clicks = clicks_per_pair(flagged_clicks.where("violation IS NULL"), dismissed)
    else:
        spark.createDataFrame([], CLEAN_DISMISSED).write.mode("overwrite").parquet(paths.clean_dismissed)
        clicks = spark.createDataFrame([], CLEAN_CLICKS)
    clicks.write.mode("overwrite").parquet(paths.clean_clicks)
    if event_files:
        flagged_clicks.unpersist()

    content = clean_content(config, paths, spark, movies, ts_max)
    clean = spark.read.parquet(paths.clean_ratings)
    rows_out = clean.count()
    dropped = drops_by_rule(rows_in, exact_dupes, pair_dupes, per_rule, rows_out)
    events_report = {
        "archive_files": len(event_files),
        "ratings_in": event_ratings.count() if event_files else 0,
        "ratings_kept": kept_by_source.get(("event",), 0) if event_files else 0,
        "ratings_dropped": {rule: per_rule.get(("event", rule), 0) for rule in RULES},
        "clicks_in": event_clicks.count() if event_files else 0,
        "clicks_dropped": {rule: click_rules.get((rule,), 0) for rule in RULES if rule != "rating_off_scale"},
        "click_pairs": spark.read.parquet(paths.clean_clicks).count() if event_files else 0,
        "dismissals_in": event_dismissals.count() if event_files else 0,
        "dismissals_dropped": {rule: dismiss_rules.get((rule,), 0) for rule in RULES if rule != "rating_off_scale"},
        "dismissed_pairs": spark.read.parquet(paths.clean_dismissed).count() if event_files else 0,
        "unknown_type": unknown_type.count() if event_files else 0,
    }
    report = {
        "run_id": run_id,
        "ratings_in": rows_in,
        "ratings_out": rows_out,
        "dropped": dropped,
        "activity_filters": config.clean.model_dump(),
        "users": clean.select("user_id").distinct().count(),
        "movies_rated": clean.select("movie_id").distinct().count(),
        "movies": movies.count(),
        "movies_without_year": movies.where("year IS NULL").count(),
        "movies_without_genre": movies.where("size(genres) = 0").count(),
        "events": events_report,
        **content,
        "cleaned_at": utc_now(),
    }
    write_json(paths.clean_report, report)
    log.info("clean: %d -> %d ratings, dropped %s", rows_in, rows_out, report["dropped"])
    return report


def clean_content(config: Config, paths, spark: SparkSession, movies, ts_max: int) -> dict:
    """The release's tags and genome (where ingest found them) into clean tables; rows dropped per rule."""
    report = {}
    for kind, rules in (("tags", TAG_RULES), ("genome", GENOME_RULES)):
        raw_path, clean_path = getattr(paths, f"raw_{kind}"), getattr(paths, f"clean_{kind}")
        if not exists(raw_path):
            remove_folder(clean_path)
            continue
        raw = spark.read.parquet(raw_path)
        flagged = (flag_tags(raw, movies, config.validation.ts_min_epoch, ts_max, config.validation.max_tag_length)
                   if kind == "tags" else flag_genome(raw, movies)).cache()
        kept = flagged.where("violation IS NULL")
        (movie_tags(flagged) if kind == "tags" else kept.drop("violation")).write.mode("overwrite").parquet(clean_path)
        dropped = count_by(flagged.where("violation IS NOT NULL"), "violation")
        written = spark.read.parquet(clean_path)
        report[kind] = {"rows_in": flagged.count(), "rows_kept": kept.count(),
                        "dropped": {rule: dropped.get((rule,), 0) for rule in rules},
                        "rows_out": written.count(), "movies": written.select("movie_id").distinct().count()}
        flagged.unpersist()
    return report


def main() -> None:
    job_main("clean", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
