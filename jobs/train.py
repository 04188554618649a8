"""train: Spark MLlib ALS. An implicit-feedback model ranks movies; an explicit model (ALS on the residuals of a
global + user + item bias model) predicts ratings.

Two stages per run: `eval` models fit on the per-user stratified 75/25 split (saved for the evaluate job), and
`prod` models fit on all clean ratings (used by recommend).
"""
from __future__ import annotations

import logging
import time

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import Config, ExplicitALSSettings, ImplicitALSSettings
from jobs.common import job_main, join, read_json, run_paths, spark_session, utc_now, write_json
from schemas.movielens import DATASETS

log = logging.getLogger("reco.train")


# ---------------------------------------------------------------- pure transforms


def stratified_split(ratings: DataFrame, train_ratio: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Per user, a seeded random train_ratio of their ratings to train and the rest to test.

    The shuffle is a hash of (seed, user, movie), so the split does not depend on partitioning. Every user
    keeps at least one training rating.
    """
    order = F.xxhash64(F.lit(seed), "user_id", "movie_id")
    ranked = ratings.withColumn("_r", F.row_number().over(
        Window.partitionBy("user_id").orderBy(order, "movie_id")
    )).withColumn("_n", F.count("*").over(
        Window.partitionBy("user_id")))
    in_train = F.col("_r") <= F.greatest(F.lit(1), F.round(F.col("_n") * train_ratio))
    train = ranked.where(in_train).drop("_r", "_n")
    test = ranked.where(~in_train).drop("_r", "_n")
    return train, test


def implicit_preferences(ratings: DataFrame, settings: ImplicitALSSettings) -> DataFrame:
    """The `rating` column ALS reads as implicit feedback; Spark turns it into confidence 1 + alpha * r.

    linear: the star rating; log: log(1 + rating); binary: 1 for every rating;
    threshold: the rating when at least `threshold`, else the row is dropped (not counted as a positive).
    Then scaled by (n_u / mean n_u) ** user_activity_exponent and (n_i / mean n_i) ** item_popularity_exponent,
    the user's and the movie's number of positives against the mean.
    """
    value = {
        "linear": F.col("rating"),
        "log": F.log1p("rating"),
        "binary": F.lit(1.0),
        "threshold": F.when(F.col("rating") >= settings.threshold, F.col("rating")),
    }[settings.confidence]
    prefs = ratings.select("user_id", "movie_id", value.cast("double").alias("rating")).where("rating IS NOT NULL")
    for column, exponent in (("user_id", settings.user_activity_exponent),
                             ("movie_id", settings.item_popularity_exponent)):
        if exponent:
            counts = prefs.groupBy(column).agg(F.count("*").alias("_n"))
            counts = counts.crossJoin(counts.agg(F.avg("_n").alias("_mean")))
            prefs = prefs.join(counts, column).withColumn(
                "rating", F.col("rating") * F.pow(F.col("_n") / F.col("_mean"), F.lit(exponent))).drop("_n", "_mean")
    return prefs.select("user_id", "movie_id", F.col("rating").cast("float"))


def bias_model(ratings: DataFrame, shrinkage: float) -> tuple[float, DataFrame, DataFrame]:
    """Global mean, then item and user biases shrunk toward 0: b_i = sum(r - mu) / (shrinkage + n_i),
    b_u = sum(r - mu - b_i) / (shrinkage + n_u)."""
    mu = ratings.agg(F.avg("rating")).first()[0]
    item_bias = ratings.groupBy("movie_id").agg(
        (F.sum(F.col("rating") - mu) / (F.count("*") + shrinkage)).alias("item_bias"))
    user_bias = ratings.join(item_bias, "movie_id").groupBy("user_id").agg(
        (F.sum(F.col("rating") - mu - F.col("item_bias")) / (F.count("*") + shrinkage)).alias("user_bias"))
    return mu, user_bias, item_bias


def with_baseline(pairs: DataFrame, mu: float, user_bias: DataFrame, item_bias: DataFrame) -> DataFrame:
    """Add `baseline` = mu + b_u + b_i (unknown users or items get a 0 bias)."""
    return pairs.join(user_bias, "user_id", "left").join(item_bias, "movie_id", "left").withColumn(
        "baseline", F.lit(mu) + F.coalesce("user_bias", F.lit(0.0)) + F.coalesce("item_bias", F.lit(0.0))
    ).drop("user_bias", "item_bias")


# ---------------------------------------------------------------- fitting


def fit_implicit(ratings: DataFrame, settings: ImplicitALSSettings, checkpoint_interval: int) -> ALSModel:
    als = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", implicitPrefs=True,
              rank=settings.rank, regParam=settings.reg_param, alpha=settings.alpha, maxIter=settings.max_iter,
              seed=settings.seed, checkpointInterval=checkpoint_interval, coldStartStrategy="drop")
    return als.fit(implicit_preferences(ratings, settings))


class ExplicitModel:
    """Rating prediction: mu + b_u + b_i + ALS(residual). Saved as an ALS model plus two bias tables."""

    def __init__(self, mu: float, user_bias: DataFrame, item_bias: DataFrame, als: ALSModel | None,
                 scale: tuple[float, float]):
        self.mu, self.user_bias, self.item_bias, self.als, self.scale = mu, user_bias, item_bias, als, scale

    @classmethod
    def fit(cls, ratings: DataFrame, settings: ExplicitALSSettings, checkpoint_interval: int,
            scale: tuple[float, float]) -> "ExplicitModel":
        if settings.bias_reg > 0:
            mu, user_bias, item_bias = bias_model(ratings, settings.bias_reg)
        else:  # plain ALS on the ratings
            spark = ratings.sparkSession
            mu = 0.0
            user_bias = spark.createDataFrame([], "user_id int, user_bias double")
            item_bias = spark.createDataFrame([], "movie_id int, item_bias double")
        user_bias, item_bias = user_bias.cache(), item_bias.cache()
        residuals = with_baseline(ratings, mu, user_bias, item_bias) \
            .select("user_id", "movie_id", (F.col("rating") - F.col("baseline")).alias("rating"))
        als = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=settings.rank,
                  regParam=settings.reg_param, maxIter=settings.max_iter, seed=settings.seed,
                  checkpointInterval=checkpoint_interval, coldStartStrategy="nan").fit(residuals)
        return cls(mu, user_bias, item_bias, als, scale)

    def predict(self, pairs: DataFrame) -> DataFrame:
        """Add `prediction`, clipped to the rating scale; pairs the factors do not know fall back to the biases."""
        scored = self.als.transform(pairs.select("user_id", "movie_id", *[c for c in pairs.columns
                                                                          if c not in ("user_id", "movie_id")]))
        low, high = self.scale
        return with_baseline(scored, self.mu, self.user_bias, self.item_bias).withColumn(
            "prediction",
            F.least(F.lit(high), F.greatest(F.lit(low), F.col("baseline") + F.nanvl("prediction", F.lit(0.0))))
        ).drop("baseline")

    def save(self, path: str) -> None:
        self.als.write().overwrite().save(join(path, "als"))
        self.user_bias.write.mode("overwrite").parquet(join(path, "user_bias.parquet"))
        self.item_bias.write.mode("overwrite").parquet(join(path, "item_bias.parquet"))
        self.user_bias.sparkSession.createDataFrame(
            [(float(self.mu), float(self.scale[0]), float(self.scale[1]))], "mu double, low double, high double"
        ).write.mode("overwrite").parquet(join(path, "params.parquet"))

    @classmethod
    def load(cls, spark: SparkSession, path: str) -> "ExplicitModel":
        params = spark.read.parquet(join(path, "params.parquet")).first()
        return cls(params["mu"], spark.read.parquet(join(path, "user_bias.parquet")),
                   spark.read.parquet(join(path, "item_bias.parquet")), ALSModel.load(join(path, "als")),
                   (params["low"], params["high"]))


def model_path(models_root: str, stage: str, kind: str) -> str:
    return join(models_root, stage, kind)


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[read_json(paths.manifest)["dataset"]]
    scale = (min(spec.rating_values), max(spec.rating_values))
    spark = spark or spark_session(config, "train")
    ratings = spark.read.parquet(paths.clean_ratings)
    train, test = stratified_split(ratings, config.split.train_ratio, config.split.seed)
    train.write.mode("overwrite").parquet(paths.split_train)
    test.write.mode("overwrite").parquet(paths.split_test)

    timings = {}
    interval = config.als.checkpoint_interval
    for stage, frame in (("eval", spark.read.parquet(paths.split_train)), ("prod", ratings)):
        frame = frame.cache()
        started = time.perf_counter()
        fit_implicit(frame, config.als.implicit, interval).write().overwrite() \
            .save(model_path(paths.models, stage, "implicit"))
        timings[f"{stage}_implicit_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        ExplicitModel.fit(frame, config.als.explicit, interval, scale).save(model_path(paths.models, stage,
                                                                                        "explicit"))
        timings[f"{stage}_explicit_s"] = round(time.perf_counter() - started, 2)
        frame.unpersist()
    report = {
        "run_id": run_id,
        "params": {"implicit": config.als.implicit.model_dump(), "explicit": config.als.explicit.model_dump(),
                   "split": config.split.model_dump()},
        "counts": {"train": spark.read.parquet(paths.split_train).count(),
                   "test": spark.read.parquet(paths.split_test).count(), "all": ratings.count()},
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
