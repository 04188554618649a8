"""Splits of a ratings table: the evaluation protocol's per-user stratified split and the cross-validation
folds of tune. Every shuffle is a seeded hash of (seed, user, movie), so no split depends on partitioning."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

SHARE_PRECISION = 1_000_000


def stratified_split(ratings: DataFrame, train_ratio: float, seed: int,
                     people_share: float = 1.0) -> tuple[DataFrame, DataFrame]:
    """Per user, a seeded random train_ratio of their ratings to train and the rest to test; with
    `people_share` < 1, only that seeded random share of the people is split, everyone else's ratings all train.

    The shuffles are hashes of (seed, user, movie) and (seed, user), so the split does not depend on
    partitioning. Every user keeps at least one training rating.
    """
    ranked = shuffled_per_user(ratings, seed)
    in_train = F.col("_r") <= F.greatest(F.lit(1), F.round(F.col("_n") * train_ratio))
    if people_share < 1.0:
        drawn = F.pmod(F.xxhash64(F.lit(seed), F.lit("evaluated"), "user_id"), F.lit(SHARE_PRECISION))
        in_train = in_train | (drawn >= F.lit(round(people_share * SHARE_PRECISION)))
    train = ranked.where(in_train).drop("_r", "_n")
    test = ranked.where(~in_train).drop("_r", "_n")
    return train, test


def shuffled_per_user(ratings: DataFrame, seed: int) -> DataFrame:
    """Adds `_r`, each rating's 1-based place in a seeded random order of its user's ratings, and `_n`, the
    user's number of ratings. The order is a hash of (seed, user, movie), so it does not depend on partitioning."""
    order = F.xxhash64(F.lit(seed), "user_id", "movie_id")
    return ratings.withColumn("_r", F.row_number().over(
        Window.partitionBy("user_id").orderBy(order, "movie_id"))).withColumn(
        "_n", F.count("*").over(Window.partitionBy("user_id")))


def kfold_splits(ratings: DataFrame, folds: int, seed: int) -> list[tuple[DataFrame, DataFrame]]:
    """(fit, validation) per fold: each user's ratings dealt in a seeded random order into `folds` disjoint parts.

    A user's only rating is never held out, so every validated user has a factor in the fit part.
    """
    dealt = shuffled_per_user(ratings, seed)
    held_out = [((F.col("_r") - 1) % folds == fold) & (F.col("_n") > 1) for fold in range(folds)]
    return [(dealt.where(~cond).drop("_r", "_n"), dealt.where(cond).drop("_r", "_n")) for cond in held_out]
