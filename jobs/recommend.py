"""recommend: every answer the service will give, computed ahead of time from the production models.

- user_recs: top N per user (recommend.top_n) by the implicit ALS model (or, with recommend.model: popularity,
  the most rated movies), excluding movies the user rated;
- item_neighbors: the recommend.neighbors nearest movies per movie, cosine similarity of ALS item factors;
- popular: the recommend.popular_n most rated movies overall (genre "_all") and per genre, ties to the better
  mean rating: the same ranking as the popularity baseline that evaluate measures;
- movie_stats: number of ratings and mean rating per movie, for movie details.
Then `runs/latest` points at this run.
"""
from __future__ import annotations

import logging
import time

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.lib.files import write_json
from jobs.lib.ranking import als_top_n, item_neighbors, popular_lists, popularity, popularity_top_n
from jobs.lib.runs import mark_latest, run_paths, utc_now
from jobs.lib.runtime import job_main, spark_session

log = logging.getLogger("reco.recommend")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spark = spark or spark_session(config, "recommend")
    # Not cached: each step reads only the columns it needs from Parquet, cheaper than building a cache of all.
    ratings = spark.read.parquet(paths.clean_ratings)
    movies = spark.read.parquet(paths.clean_movies)
    model = ALSModel.load(paths.model("prod", "implicit"))

    if config.recommend.model == "popularity":
        user_recs = popularity_top_n(ratings, ratings, config.recommend.top_n)
    else:
        user_recs = als_top_n(model, ratings, config.recommend.top_n)
    seconds = {}  # per step, for the scale benchmark's comparison with a numpy floor
    for name, frame, path in (
            ("user_recs", user_recs, paths.user_recs),
            ("item_neighbors", item_neighbors(model, config.recommend.neighbors), paths.item_neighbors),
            ("popular", popular_lists(ratings, movies, config.recommend.popular_n), paths.popular),
            ("movie_stats", popularity(ratings).select("movie_id", "n_ratings", F.col("mean_rating").cast("float")),
             paths.movie_stats)):
        started = time.perf_counter()
        frame.write.mode("overwrite").parquet(path)
        seconds[f"{name}_s"] = round(time.perf_counter() - started, 2)

    counts = {name: spark.read.parquet(getattr(paths, name)).count()
              for name in ("user_recs", "item_neighbors", "popular", "movie_stats")}
    counts["users"] = spark.read.parquet(paths.user_recs).select("user_id").distinct().count()
    counts["movies_with_neighbors"] = spark.read.parquet(paths.item_neighbors).select("movie_id").distinct().count()
    report = {"run_id": run_id, "model": config.recommend.model, "counts": counts, "top_n": config.recommend.top_n,
              "neighbors": config.recommend.neighbors, "popular_n": config.recommend.popular_n,
              "seconds": seconds, "recommended_at": utc_now()}
    write_json(paths.recommend_report, report)
    mark_latest(config, run_id)
    log.info("recommendations written: %s", counts)
    return report


def main() -> None:
    job_main("recommend", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
