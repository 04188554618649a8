"""ALS settings into models (Spark MLlib): the implicit-feedback model that ranks movies, and the explicit model
that predicts ratings (ALS on the residuals of a global + user + item bias model, blended with the implicit
score)."""
from __future__ import annotations

import logging

import numpy as np
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import ALSSettings, Config, ImplicitALSSettings
from jobs.lib.model.splits import stratified_split
from schemas.preferences import SETTINGS
from schemas.storage import join

log = logging.getLogger("reco.als")


def fold_in_settings(config: Config) -> dict:
    """The settings of the preference rules train applies (schemas/preferences.py SETTINGS), as the speed layer
    needs them to fold new events in the same way."""
    return {**config.als.implicit.model_dump(include=set(SETTINGS) - {"click_weight"}),
            "click_weight": config.events.click_weight}


def seen_pairs(ratings: DataFrame, dismissed: DataFrame | None) -> DataFrame:
    """(user_id, movie_id) of what each person has seen, rated or dismissed (schemas/people.py): never in their
    lists, and published as their `seen` list."""
    seen = ratings.select("user_id", "movie_id")
    return seen if dismissed is None else seen.unionByName(dismissed.select("user_id", "movie_id"))


def click_preferences(clicks: DataFrame, rated: DataFrame, weight: float) -> DataFrame:
    """Clicks as implicit feedback, by schemas/preferences.py's rule: (user_id, movie_id, rating = weight *
    clicks) for the pairs nobody rated. The rule in Spark; tests/jobs/test_fold_in.py holds it to the core's."""
    return clicks.join(rated.select("user_id", "movie_id"), ["user_id", "movie_id"], "left_anti").select(
        "user_id", "movie_id", (F.col("clicks") * F.lit(weight)).cast("double").alias("rating"))


def implicit_preferences(ratings: DataFrame, settings: ImplicitALSSettings,
                         clicks: DataFrame | None = None) -> DataFrame:
    """The `rating` column ALS reads as implicit feedback (Spark turns it into confidence 1 + alpha * r), by the
    rules of schemas/preferences.py: each rating's value by `confidence`, `clicks` (from click_preferences) as
    they are, then the activity and popularity scaling. The rules in Spark expressions (the core's numpy would
    cost a Python pass over every rating); tests/jobs/test_fold_in.py holds them to the core's on the same data.
    """
    value = {
        "linear": F.col("rating"),
        "log": F.log1p("rating"),
        "binary": F.lit(1.0),
        "threshold": F.when(F.col("rating") >= settings.threshold, F.col("rating")),
    }[settings.confidence]
    prefs = ratings.select("user_id", "movie_id", value.cast("double").alias("rating")).where("rating IS NOT NULL")
    if clicks is not None:
        prefs = prefs.unionByName(clicks)
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
    user_bias = ratings.join(F.broadcast(item_bias), "movie_id").groupBy("user_id").agg(
        (F.sum(F.col("rating") - mu - F.col("item_bias")) / (F.count("*") + shrinkage)).alias("user_bias"))
    return mu, user_bias, item_bias


def with_baseline(pairs: DataFrame, mu: float, user_bias: DataFrame, item_bias: DataFrame) -> DataFrame:
    """Add `baseline` = mu + b_u + b_i (unknown users or items get a 0 bias)."""
    # The catalogue's biases go to every task (no shuffle of the ratings for them); people's are joined.
    return pairs.join(user_bias, "user_id", "left").join(F.broadcast(item_bias), "movie_id", "left").withColumn(
        "baseline", F.lit(mu) + F.coalesce("user_bias", F.lit(0.0)) + F.coalesce("item_bias", F.lit(0.0))
    ).drop("user_bias", "item_bias")


def engine_params(ratings: DataFrame, als: ALSSettings) -> dict:
    """How MLlib runs ALS (not what it learns): blocks and checkpoint interval."""
    blocks = als.num_blocks or ratings.sparkSession.sparkContext.defaultParallelism
    return {"numUserBlocks": blocks, "numItemBlocks": blocks, "checkpointInterval": als.checkpoint_interval}


def fit_implicit(ratings: DataFrame, settings: ImplicitALSSettings, als: ALSSettings,
                 clicks: DataFrame | None = None) -> ALSModel:
    """The ranking model. `settings`: what it learns; `als`: how MLlib runs (blocks, checkpoints); `clicks`:
    more implicit feedback (click_preferences)."""
    return implicit_als(settings, als, ratings).fit(implicit_preferences(ratings, settings, clicks))


def implicit_als(settings: ImplicitALSSettings, als: ALSSettings, preferences: DataFrame) -> ALS:
    """The estimator fit_implicit fits on `preferences` (from implicit_preferences)."""
    return ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", implicitPrefs=True,
               rank=settings.rank, regParam=settings.reg_param, alpha=settings.alpha, maxIter=settings.max_iter,
               seed=settings.seed, coldStartStrategy="drop", **engine_params(preferences, als))


class ExplicitModel:
    """Rating prediction: mu + b_u + b_i + ALS(residual), clipped to the rating scale; with `implicit_feature`,
    mu + b_u + b_i + w_r * ALS(residual) + w_s * implicit ALS score + c.

    The implicit score adds which movies a user chose to rate (the signal SVD++ uses), which the residual model
    never sees. Its weights come from least squares on a held-out share (`blend_holdout`) of each user's ratings,
    with every part fit on the rest; then the parts are refit on all ratings and keep those weights.
    Saved as one folder per ALS part, the two bias tables and a parameter row.
    """

    def __init__(self, mu: float, user_bias: DataFrame, item_bias: DataFrame, parts: dict[str, ALSModel],
                 weights: list[float], scale: tuple[float, float]):
        """`parts`: "residual", and "implicit" when blended; each scores into a column `_<name>`. `weights`: one
        per part, then the intercept."""
        self.mu, self.user_bias, self.item_bias, self.scale = mu, user_bias, item_bias, scale
        self.parts, self.weights = parts, weights
        for name, model in parts.items():
            model.setPredictionCol(f"_{name}").setColdStartStrategy("nan")

    @property
    def columns(self) -> list[str]:
        return [f"_{name}" for name in self.parts]

    @classmethod
    def fit(cls, ratings: DataFrame, settings: ALSSettings, scale: tuple[float, float],
            implicit_model: ALSModel | None = None) -> ExplicitModel:
        """`implicit_model`, when given, is the implicit ALS already fit on these ratings (else it is fit here)."""
        explicit = settings.explicit
        if not explicit.implicit_feature:
            return cls._fit_parts(ratings, settings, scale, None, [1.0, 0.0])
        fit_part, holdout = stratified_split(ratings, 1.0 - explicit.blend_holdout, explicit.seed)
        draft = cls._fit_parts(fit_part.cache(), settings, scale, None, [])
        weights = draft.least_squares_weights(holdout)
        log.info("explicit blend weights: residual ALS %.4f, implicit score %.4f, intercept %.4f", *weights)
        fit_part.unpersist()
        return cls._fit_parts(ratings, settings, scale, implicit_model, weights)

    @classmethod
    def _fit_parts(cls, ratings: DataFrame, settings: ALSSettings, scale: tuple[float, float],
                   implicit_model: ALSModel | None, weights: list[float]) -> ExplicitModel:
        explicit = settings.explicit
        if explicit.bias_reg > 0:
            mu, user_bias, item_bias = bias_model(ratings, explicit.bias_reg)
        else:  # plain ALS on the ratings
            spark = ratings.sparkSession
            mu = 0.0
            user_bias = spark.createDataFrame([], "user_id int, user_bias double")
            item_bias = spark.createDataFrame([], "movie_id int, item_bias double")
        user_bias, item_bias = user_bias.cache(), item_bias.cache()
        residuals = with_baseline(ratings, mu, user_bias, item_bias) \
            .select("user_id", "movie_id", (F.col("rating") - F.col("baseline")).alias("rating"))
        residual = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=explicit.rank,
                       regParam=explicit.reg_param, maxIter=explicit.max_iter, seed=explicit.seed,
                       **engine_params(ratings, settings)).fit(residuals)
        parts = {"residual": residual}
        if explicit.implicit_feature:
            parts["implicit"] = implicit_model.copy() if implicit_model is not None else \
                fit_implicit(ratings, settings.implicit, settings)
        return cls(mu, user_bias, item_bias, parts, weights, scale)

    def _features(self, pairs: DataFrame) -> DataFrame:
        """Add `baseline` and one column per model part (0 where the part does not know the user or movie)."""
        scored = pairs
        for model in self.parts.values():
            scored = model.transform(scored)
        scored = scored.select(*pairs.columns, *[F.nanvl(c, F.lit(0.0)).alias(c) for c in self.columns])
        return with_baseline(scored, self.mu, self.user_bias, self.item_bias)

    def least_squares_weights(self, holdout: DataFrame) -> list[float]:
        """Weights of the parts and an intercept minimising the squared error of (rating - baseline) on
        `holdout`, from the normal equations (one aggregation; a tiny ridge keeps them solvable)."""
        columns = [*self.columns, "_one"]
        frame = self._features(holdout).withColumn("_one", F.lit(1.0)) \
            .withColumn("_target", F.col("rating") - F.col("baseline"))
        sums = frame.agg(*[F.sum(F.col(a) * F.col(b)).alias(f"{a}*{b}") for a in columns for b in columns + ["_target"]]
                         ).first()
        if not sums["_one*_one"]:  # nothing held out (every user has a single rating): the plain model
            log.warning("no held-out ratings to fit the explicit blend on; using the residual ALS alone")
            return [1.0] + [0.0] * (len(columns) - 1)
        gram = np.array([[sums[f"{a}*{b}"] for b in columns] for a in columns])
        moment = np.array([sums[f"{a}*_target"] for a in columns])
        return [float(w) for w in np.linalg.solve(gram + 1e-6 * np.eye(len(columns)), moment)]

    def predict(self, pairs: DataFrame) -> DataFrame:
        """Add `prediction`, clipped to the rating scale; parts that do not know a user or movie contribute 0."""
        blend = F.lit(self.weights[-1])
        for column, weight in zip(self.columns, self.weights):
            blend = blend + F.lit(weight) * F.col(column)
        low, high = self.scale
        return self._features(pairs).withColumn(
            "prediction", F.least(F.lit(high), F.greatest(F.lit(low), F.col("baseline") + blend))
        ).drop("baseline", *self.columns)

    def save(self, path: str) -> None:
        for name, model in self.parts.items():
            model.write().overwrite().save(join(path, name))
        self.user_bias.write.mode("overwrite").parquet(join(path, "user_bias.parquet"))
        self.item_bias.write.mode("overwrite").parquet(join(path, "item_bias.parquet"))
        self.user_bias.sparkSession.createDataFrame(
            [(float(self.mu), float(self.scale[0]), float(self.scale[1]), list(self.parts), self.weights)],
            "mu double, low double, high double, parts array<string>, weights array<double>"
        ).write.mode("overwrite").parquet(join(path, "params.parquet"))

    @classmethod
    def load(cls, spark: SparkSession, path: str) -> ExplicitModel:
        params = spark.read.parquet(join(path, "params.parquet")).first()
        return cls(params["mu"], spark.read.parquet(join(path, "user_bias.parquet")),
                   spark.read.parquet(join(path, "item_bias.parquet")),
                   {name: ALSModel.load(join(path, name)) for name in params["parts"]}, list(params["weights"]),
                   (params["low"], params["high"]))
