"""ingest: MovieLens (a local folder or GroupLens' zip) -> raw ratings and movies in Parquet, plus a manifest;
and the events people sent since the last run -> the event archive (jobs/lib/loop/event_archive.py).

Reads all three published layouts (ml-100k's u.data/u.item, ml-1m's `::` .dat files, and the CSV of
ml-latest-small / ml-20m / ml-25m / ml-32m). A local folder's release is detected from its files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib.data.download import locate_source, sha256_of
from jobs.lib.data.layouts import (
    content_files,
    count_malformed,
    raw_tables,
    read_content,
)
from jobs.lib.loop.event_archive import EVENTS, EXPOSURES, EventsLost, archive_events
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from schemas.storage import copy_folder, is_local, remove_folder, write_json

log = logging.getLogger("reco.ingest")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec, source = locate_source(config)
    folder = Path(source["folder"])
    optional = content_files(spec, {p.name for p in folder.iterdir()})  # tags, genome: where the release has them
    files = {name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_of(folder / name)}
             for name in (spec.ratings_file, spec.movies_file, *optional.values())}
    published_ok = None
    if spec.ratings_sha256:
        published_ok = files[spec.ratings_file]["sha256"] == spec.ratings_sha256
        if not published_ok and source.get("url"):
            raise JobError(f"downloaded {spec.ratings_file} differs from the published file (sha256)")
        if not published_ok:
            log.warning("%s differs from the published file: validation will judge it", spec.ratings_file)

    spark = spark or spark_session(config, "ingest")
    spark_folder = source["folder"]
    if not is_local(config.data_root):
        # Executors on a cluster cannot see the driver's disk: stage the files beside the run.
        copy_folder(source["folder"], paths.staged_source)
        spark_folder = paths.staged_source
    ratings, movies = raw_tables(spark, spec, spark_folder)
    ratings.write.mode("overwrite").parquet(paths.raw_ratings)
    movies.write.mode("overwrite").parquet(paths.raw_movies)

    written_ratings = spark.read.parquet(paths.raw_ratings)
    written_movies = spark.read.parquet(paths.raw_movies)
    content = {}
    for kind, frame in read_content(spark, spec, spark_folder, optional).items():
        frame.write.mode("overwrite").parquet(getattr(paths, f"raw_{kind}"))
        content[kind] = spark.read.parquet(getattr(paths, f"raw_{kind}"))
    for kind in {"tags", "genome"} - set(content):  # a rerun on a release without them leaves none behind
        remove_folder(getattr(paths, f"raw_{kind}"))
    manifest = {
        "run_id": run_id,
        "dataset": spec.name,
        "layout": spec.layout,
        "source": source,
        "files": files,
        "ratings_sha256_matches_published": published_ok,
        "content_files": optional,
        "rows": {"ratings": written_ratings.count(), "movies": written_movies.count(),
                 **{kind: frame.count() for kind, frame in content.items()}},
        "malformed": {
            "ratings": count_malformed(written_ratings).count(),
            "movies": written_movies.where("movie_id IS NULL OR title IS NULL").count(),
            **{kind: count_malformed(frame, kind).count() for kind, frame in content.items()},
        },
        "ingested_at": utc_now(),
    }
    # Events: archived here, at the start of every run, so that whatever stops the run later (a failed gate)
    # they are already safe on disk and the next run trains on them once.
    # The exposures of experiments go the same way, for the judging job (jobs/experiment.py).
    losses = []
    if config.events.archive:
        leases = {"lease_ttl_s": config.redis.lease_ttl_s, "lease_wait_s": config.redis.lease_wait_s}
        archived = []
        for stream in (EVENTS, EXPOSURES):
            try:
                archived.append(archive_events(config.redis, config.data_root, run_id, config.events.archive_page,
                                               stream=stream, **leases))
            except EventsLost as lost:  # committed and counted; the run stops once the reports say so
                losses.append(lost)
                archived.append(lost.summary)
        events, exposures = archived
    else:
        events = {"batch": None, "rerun": False, "files": [], "rows": 0, "disabled": True}
        exposures = dict(events)
    write_json(paths.events, events)
    write_json(paths.exposures, exposures)
    manifest["events"] = {"archived": events["batch"], "rows_trained_on": events["rows"],
                          "lost": (events["batch"] or {}).get("lost", 0)}
    manifest["exposures"] = {"archived": exposures["batch"], "rows": exposures["rows"],
                             "lost": (exposures["batch"] or {}).get("lost", 0)}
    write_json(paths.manifest, manifest)
    if losses:
        raise losses[0]
    log.info("ingested %s ratings and %s movies of %s into %s", manifest["rows"]["ratings"],
             manifest["rows"]["movies"], spec.name, paths.root)
    return manifest


def main() -> None:
    job_main("ingest", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
