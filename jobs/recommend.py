"""recommend: every answer the service will give, computed ahead of time from the production models.

- user_recs: top N per user (recommend.top_n) by the implicit ALS model (or, with recommend.model: popularity,
  the most rated movies), excluding movies the user rated or dismissed (clean's dismissed pairs); with the ALS
  model each carries `because_id`, the rated movie that contributed most to its score (jobs/lib/model/explain.py);
- item_neighbors: the recommend.neighbors nearest movies per movie, cosine similarity of ALS item factors
  (these two are scored in this process, not on the executors, while users x movies, resp. movies x movies,
  stay within recommend.driver_max_scores: the same lists without Spark's stage costs);
- content_neighbors: for each catalogue movie ALS does not know yet, its recommend.neighbors nearest movies
  (rated or not) by content (genres, decade, title words, tags and genome where the release has them:
  jobs/lib/model/content.py): the others' neighbours come from ALS;
- new_picks: per user, the recommend.new_picks movies ALS does not know yet that their ALS vector scores highest,
  the new movies' factors mapped from their content (content.factor_reg), for the slots serving.new_slots gives
  them;
- new_lists: per genre (and "_all"), the movies ALS does not know yet nearest the content of the genre's 50 most
  liked movies (most ratings of 4 or more), for /v1/new;
- popular: the most rated movies overall (genre "_all") and per genre, ties to the better mean rating (the same
  ranking as the popularity baseline that evaluate measures), max(recommend.popular_n, recommend.filter_pool)
  per list: the service fills filtered answers from them;
- movie_stats: number of ratings and mean rating per movie, for movie details;
- fold_in_bundle: what the speed layer needs of the version (the production model's item factors, the training
  preferences before scaling, what people dismissed: schemas/bundle.py).
Then `runs/latest` points at this run.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.lib.model.als import (
    seen_pairs,
)
from jobs.lib.model.content import (
    content_neighbors,
    content_vectors,
    factors_from_content,
    new_by_genre,
    new_movie_picks,
)
from jobs.lib.model.explain import with_because
from jobs.lib.model.fold_in import columns, training_preferences
from jobs.lib.model.scoring import (
    DRIVER_THREADS,
    als_top_n,
    factors_of,
    item_neighbors,
    neighbors_on_driver,
    popular_lists,
    popularity,
    popularity_top_n,
    top_n_on_driver,
)
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.run_layout import mark_latest, run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from schemas import bundle
from schemas.ranking import ItemFactors
from schemas.storage import (
    exists,
    join,
    read_table,
    replace_folder_with_table,
    write_json,
)

log = logging.getLogger("reco.recommend")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    settings = config.recommend
    spark = spark or spark_session(config, "recommend")
    # Not cached: each step reads only the columns it needs from Parquet, cheaper than building a cache of all.
    ratings = spark.read.parquet(paths.clean_ratings)
    movies = spark.read.parquet(paths.clean_movies)
    # What a person's list leaves out: what they have seen (schemas/people.py).
    dismissed = spark.read.parquet(paths.clean_dismissed).select("user_id", "movie_id") \
        if exists(paths.clean_dismissed) else None
    excluded = seen_pairs(ratings, dismissed)
    prod = paths.model("prod", "implicit")
    users, items = (factors_of(read_table(join(prod, part))) for part in ("userFactors", "itemFactors"))
    # Scored in this process where the model is small (recommend.driver_max_scores): the same lists.
    on_driver = {"user_recs": settings.model == "als" and len(users.ids) * len(items.ids) <= settings.driver_max_scores,
                 "item_neighbors": len(items.ids) ** 2 <= settings.driver_max_scores}
    on_executors = not on_driver["item_neighbors"] or (settings.model == "als" and not on_driver["user_recs"])
    model = ALSModel.load(prod) if on_executors else None  # Spark's model, for the lists scored on the executors

    def user_lists():
        if settings.model == "popularity":
            return popularity_top_n(ratings, ratings, settings.top_n, excluded)
        if on_driver["user_recs"]:
            return top_n_on_driver(users, items, seen_table(paths), settings.top_n)
        return als_top_n(model, excluded, settings.top_n)

    def explained(lists: pa.Table) -> pa.Table:
        """The lists with `because_id` (ALS only: popularity lists have no reason beyond popularity), from the
        preferences the production model was fitted on."""
        if settings.model != "als":
            return lists
        implicit = config.als.implicit
        return with_because(lists, training.users_of_pairs(), training.movie_ids, training.scaled_all(),
                            training.rated, ItemFactors(items.ids, items.matrix), implicit.alpha, implicit.reg_param,
                            DRIVER_THREADS)

    def new_lists():
        genres = {row["movie_id"]: row["genres"] or [] for row in read_table(
            paths.clean_movies, ["movie_id", "genres"]).to_pylist()}
        rated = read_table(paths.clean_ratings, ["movie_id", "rating"]).to_pandas()
        return new_by_genre(*content, set(items.ids.tolist()), genres, rated.movie_id[rated.rating >= 4].to_numpy(),
                            max(settings.popular_n, settings.filter_pool))

    def neighbour_lists():
        if on_driver["item_neighbors"]:
            return neighbors_on_driver(items, settings.neighbors)
        return item_neighbors(model, settings.neighbors)

    seconds = {}  # per step, for the scale benchmark's comparison with a numpy floor
    started = time.perf_counter()
    recs = user_lists()
    if isinstance(recs, DataFrame):  # scored on the executors: the lists come to the driver for `because`
        save(recs, paths.user_recs)
        recs = read_table(paths.user_recs)
    seconds["user_recs_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    training = training_preferences(config, paths)
    save(explained(recs), paths.user_recs)
    seconds["because_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    tags, genome = (spark.read.parquet(path) if exists(path) else None
                    for path in (paths.clean_tags, paths.clean_genome))
    content = content_vectors(movies, config.content, tags, genome)
    new_movies = np.sort(content[0][~np.isin(content[0], items.ids)])
    seconds["content_vectors_s"] = round(time.perf_counter() - started, 2)
    for name, lists, path in (
            ("item_neighbors", neighbour_lists, paths.item_neighbors),
            # By content for the movies ALS does not know: the others' neighbours come from ALS.
            ("content_neighbors", lambda: content_neighbors(*content, settings.neighbors, new_movies),
             paths.content_neighbors),
            ("new_picks", lambda: new_movie_picks(
                users, factors_from_content(*content, items, config.content.factor_reg), settings.new_picks),
             paths.new_picks),
            ("new_lists", new_lists, paths.new_lists),
            ("popular", lambda: popular_lists(ratings, movies, max(settings.popular_n, settings.filter_pool)),
             paths.popular),
            ("movie_stats", lambda: popularity(ratings).select("movie_id", "n_ratings",
                                                               F.col("mean_rating").cast("float")),
             paths.movie_stats)):
        started = time.perf_counter()
        save(lists(), path)
        seconds[f"{name}_s"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    bundle.write(paths.fold_in_bundle, items.ids, items.matrix, training, *dismissed_pairs(paths),
                 config.recommend.top_n)
    seconds["fold_in_bundle_s"] = round(time.perf_counter() - started, 2)

    counts = {name: spark.read.parquet(getattr(paths, name)).count()
              for name in ("user_recs", "item_neighbors", "content_neighbors", "new_picks", "new_lists", "popular",
                           "movie_stats")}
    counts["users"] = spark.read.parquet(paths.user_recs).select("user_id").distinct().count()
    counts["movies_with_neighbors"] = spark.read.parquet(paths.item_neighbors).select("movie_id").distinct().count()
    report = {"run_id": run_id, "model": settings.model, "counts": counts, "top_n": settings.top_n,
              "neighbors": settings.neighbors, "popular_n": settings.popular_n, "seconds": seconds,
              "on_driver": on_driver, "content_shape": list(content[1].shape),
              "new_movies": len(new_movies),
              "recommended_at": utc_now()}
    write_json(paths.recommend_report, report)
    mark_latest(config, run_id)
    log.info("recommendations written: %s", counts)
    return report


def seen_table(paths) -> pa.Table:
    """(user_id, movie_id) of what each person has seen, in this process: seen_pairs without Spark."""
    pairs = read_table(paths.clean_ratings, ["user_id", "movie_id"])
    if exists(paths.clean_dismissed):
        pairs = pa.concat_tables([pairs, read_table(paths.clean_dismissed, ["user_id", "movie_id"]).cast(pairs.schema)])
    return pairs


def dismissed_pairs(paths) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, movie ids) of what people dismissed."""
    dismissed = read_table(paths.clean_dismissed, ["user_id", "movie_id"]) if exists(paths.clean_dismissed) else None
    return columns(dismissed, "user_id", "movie_id")


def save(lists: DataFrame | pa.Table, path: str) -> None:
    """A step's lists as Parquet at `path`: a DataFrame written by Spark, a driver's table by pyarrow."""
    if isinstance(lists, pa.Table):
        replace_folder_with_table(path, lists)
    else:
        lists.write.mode("overwrite").parquet(path)


def main() -> None:
    job_main("recommend", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
