"""train: Spark MLlib ALS. An implicit-feedback model ranks movies; an explicit model (ALS on the residuals of a
global + user + item bias model, blended with the implicit score) predicts ratings.

Two stages per run: `eval` models (implicit and explicit) fit on the per-user stratified 75/25 split, for the
evaluate job, and the `prod` implicit model fit on all clean ratings, for recommend; with
`split.evaluation_people` (large data), only that many people are split, and the `prod` model is the `eval`
one with their vectors folded in from all their ratings: one implicit fit instead of two. People's clicks (clean's
clicks.parquet, `events.click_weight` each) join both implicit models for the pairs nobody rated.
"""
from __future__ import annotations

import logging
import time

from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib.model.als import (
    ExplicitModel,
    click_preferences,
    fit_implicit,
    implicit_als,
    implicit_preferences,
)
from jobs.lib.model.fold_in import fold_people_into_model
from jobs.lib.model.splits import stratified_split
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from jobs.lib.tracking.runs import save_spark_model
from schemas.movielens import DATASETS
from schemas.storage import read_json, write_json

log = logging.getLogger("reco.train")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    scale = DATASETS[read_json(paths.manifest)["dataset"]].rating_scale
    spark = spark or spark_session(config, "train")
    ratings = spark.read.parquet(paths.clean_ratings)
    people = config.split.evaluation_people
    share = min(1.0, people / ratings.select("user_id").distinct().count()) if people else 1.0
    train, test = stratified_split(ratings, config.split.train_ratio, config.split.seed, share)
    train.write.mode("overwrite").parquet(paths.split_train)
    test.write.mode("overwrite").parquet(paths.split_test)

    clicks = None
    if read_json(paths.clean_report).get("events", {}).get("click_pairs") and config.events.click_weight > 0:
        clicks = click_preferences(spark.read.parquet(paths.clean_clicks), ratings, config.events.click_weight)
        clicks = clicks.cache()
    timings = {}
    train = spark.read.parquet(paths.split_train).cache()
    # The eval model's preferences are built and cached before its clock starts, and saving it is timed apart:
    # eval_implicit_s is ALS's fit alone, the figure the scale benchmark compares with the `implicit` library's
    # fit on a matrix built beforehand.
    started = time.perf_counter()
    preferences = implicit_preferences(train, config.als.implicit, clicks).cache()
    preferences.count()
    timings["eval_preferences_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    implicit = implicit_als(config.als.implicit, config.als, preferences).fit(preferences)
    timings["eval_implicit_s"] = round(time.perf_counter() - started, 2)
    preferences.unpersist()
    started = time.perf_counter()
    implicit.write().overwrite().save(paths.model("eval", "implicit"))
    timings["eval_implicit_save_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    explicit = ExplicitModel.fit(train, config.als, scale, implicit_model=implicit)
    explicit.save(paths.model("eval", "explicit"))
    timings["eval_explicit_s"] = round(time.perf_counter() - started, 2)
    train.unpersist()
    # Nothing serves predicted ratings, so the explicit model is fit for evaluation only.
    started = time.perf_counter()
    if share < 1.0:  # one fit: the evaluation model serves, the evaluated people folded in from all they rated
        implicit.write().overwrite().save(paths.model("prod", "implicit"))
        evaluated = spark.read.parquet(paths.split_test).select("user_id").distinct().toArrow()
        fold_people_into_model(config, paths, paths.model("prod", "implicit"),
                               evaluated.column("user_id").to_numpy())
        timings["prod_fold_in_s"] = round(time.perf_counter() - started, 2)
    else:
        fit_implicit(ratings.cache(), config.als.implicit, config.als, clicks).write().overwrite() \
            .save(paths.model("prod", "implicit"))
        timings["prod_implicit_s"] = round(time.perf_counter() - started, 2)
    if config.tracking.enabled:  # the serving model again in MLflow's Spark flavor, for the tracking step to log
        started = time.perf_counter()
        save_spark_model(paths.model("prod", "implicit"), paths.mlflow_model)
        timings["mlflow_model_save_s"] = round(time.perf_counter() - started, 2)
    report = {
        "run_id": run_id,
        "params": {"implicit": config.als.implicit.model_dump(), "explicit": config.als.explicit.model_dump(),
                   "split": config.split.model_dump()},
        "counts": {"train": spark.read.parquet(paths.split_train).count(),
                   "test": spark.read.parquet(paths.split_test).count(), "all": ratings.count(),
                   "click_pairs": clicks.count() if clicks is not None else 0},
        "evaluated_people_share": share,  # below 1: one fit (split.evaluation_people)
        "explicit_blend_weights": explicit.weights,   # residual ALS, [implicit score,] intercept
        "fit_seconds": timings,
        "trained_at": utc_now(),
    }
    write_json(paths.train_report, report)
    log.info("trained; fit seconds %s", timings)
    return report


def main() -> None:
    job_main("train", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
