"""recommend: every answer the service will give, computed ahead of time from the production models.

- user_recs: top N per user (recommend.top_n) by the implicit ALS model, excluding movies the user rated;
- item_neighbors: the recommend.neighbors nearest movies per movie, cosine similarity of ALS item factors;
- popular: the recommend.popular_n most rated movies overall (genre "_all") and per genre, ties to the better
  mean rating: the same ranking as the popularity baseline that evaluate measures;
- movie_stats: number of ratings and mean rating per movie, for movie details.
Then `runs/latest` points at this run.
"""
from __future__ import annotations

import logging

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.common import job_main, mark_latest, run_paths, spark_session, utc_now, write_json
from jobs.ranking import popularity, rated_items, top_n_by_dot
from jobs.train import model_path
from schemas.redis_keys import ALL_GENRES

log = logging.getLogger("reco.recommend")


def user_top_n(model: ALSModel, ratings: DataFrame, n: int) -> DataFrame:
    queries = model.userFactors.withColumnRenamed("id", "user_id").join(rated_items(ratings), "user_id", "left")
    return top_n_by_dot(queries, model.itemFactors.withColumnRenamed("id", "movie_id"), n, "user_id")


def normalized(factors: DataFrame) -> DataFrame:
    """Unit-length item vectors, so a dot product is the cosine similarity."""
    norm = F.sqrt(F.aggregate("features", F.lit(0.0), lambda acc, x: acc + x * x))
    return factors.select(F.col("id").alias("movie_id"),
                          F.transform("features", lambda x: (x / F.greatest(norm, F.lit(1e-12))).cast("float"))
                          .alias("features"))


def item_neighbors(model: ALSModel, n: int) -> DataFrame:
    """(movie_id, rank, neighbor_id, score): nearest movies by cosine, the movie itself excluded."""
    items = normalized(model.itemFactors)
    queries = items.withColumn("exclude", F.array("movie_id"))
    top = top_n_by_dot(queries.withColumnRenamed("movie_id", "query_id"), items, n, "query_id")
    return top.select(F.col("query_id").alias("movie_id"), "rank", F.col("movie_id").alias("neighbor_id"), "score")


def popular_lists(ratings: DataFrame, movies: DataFrame, n: int) -> DataFrame:
    """(genre, rank, movie_id, score): top n by popularity overall (genre '_all') and within each genre.
    The score shown is the number of ratings; the order also breaks ties by mean rating, as the baseline."""
    scored = popularity(ratings).join(movies.select("movie_id", "genres"), "movie_id")
    by_genre = scored.select("movie_id", "score", "n_ratings", F.explode("genres").alias("genre"))
    overall = scored.select("movie_id", "score", "n_ratings", F.lit(ALL_GENRES).alias("genre"))
    ranked = by_genre.unionByName(overall).withColumn(
        "rank", F.row_number().over(Window.partitionBy("genre").orderBy(F.desc("score"), "movie_id")))
    return ranked.where(F.col("rank") <= n).select("genre", "rank", "movie_id",
                                                   F.col("n_ratings").cast("float").alias("score"))


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spark = spark or spark_session(config, "recommend")
    ratings = spark.read.parquet(paths.clean_ratings).cache()
    movies = spark.read.parquet(paths.clean_movies)
    model = ALSModel.load(model_path(paths.models, "prod", "implicit"))

    user_top_n(model, ratings, config.recommend.top_n).write.mode("overwrite").parquet(paths.user_recs)
    item_neighbors(model, config.recommend.neighbors).write.mode("overwrite").parquet(paths.item_neighbors)
    popular_lists(ratings, movies, config.recommend.popular_n).write.mode("overwrite").parquet(paths.popular)
    popularity(ratings).select("movie_id", "n_ratings", F.col("mean_rating").cast("float")) \
        .write.mode("overwrite").parquet(paths.movie_stats)
    ratings.unpersist()

    counts = {name: spark.read.parquet(getattr(paths, name)).count()
              for name in ("user_recs", "item_neighbors", "popular", "movie_stats")}
    counts["users"] = spark.read.parquet(paths.user_recs).select("user_id").distinct().count()
    counts["movies_with_neighbors"] = spark.read.parquet(paths.item_neighbors).select("movie_id").distinct().count()
    report = {"run_id": run_id, "counts": counts, "top_n": config.recommend.top_n,
              "neighbors": config.recommend.neighbors, "popular_n": config.recommend.popular_n,
              "recommended_at": utc_now()}
    write_json(paths.recommend_report, report)
    mark_latest(config, run_id)
    log.info("recommendations written: %s", counts)
    return report


def main() -> None:
    job_main("recommend", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
