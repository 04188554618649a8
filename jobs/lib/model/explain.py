"""Why a movie is on a person's list: `because`, the movie they rated that contributed most to its score.

Taken from the ALS factors rather than the neighbour similarities: a recommended movie's score is exactly a sum
of one term per movie the person has a preference for (schemas/ranking.py's `because`, which the speed layer
calls too), so the movie named is the one the model itself leaned on most, not a look-alike it may have ignored.
Only rated movies are named (a click is a weaker reason to show); a movie whose score no rated movie pushed up gets
none.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.lib.model.scoring import Factors
from schemas.ranking import ItemFactors, because, fold_in

RECS_WITH_BECAUSE = "user_id int, rank int, movie_id int, score float, because_id int"


def because_of_users(recs: pd.DataFrame, preferences: pd.DataFrame, items: ItemFactors, alpha: float,
                     reg: float) -> pd.DataFrame:
    """recs (user_id, rank, movie_id, score) with `because_id`, from the users' preferences (user_id, movie_id,
    rating = the implicit value as train built it, rated = a rating rather than a click). Arrays sorted by user
    and sliced per person (pandas' per-group work cost more than the maths)."""
    prefs = preferences[np.isin(preferences.movie_id.to_numpy(), items.ids)].sort_values("user_id", kind="stable")
    p_users, p_movies = prefs.user_id.to_numpy(), prefs.movie_id.to_numpy()
    p_values, p_rated = prefs.rating.to_numpy(np.float64), prefs.rated.to_numpy(bool)
    order = np.argsort(recs.user_id.to_numpy(), kind="stable")
    r_users, r_movies = recs.user_id.to_numpy()[order], recs.movie_id.to_numpy()[order]
    named = np.full(len(recs), -1, dtype=np.int64)
    users, starts = np.unique(r_users, return_index=True)
    ends = np.append(starts[1:], len(r_users))
    first, last = np.searchsorted(p_users, users, "left"), np.searchsorted(p_users, users, "right")
    for start, end, a, b in zip(starts, ends, first, last):
        if a < b:
            folded = fold_in(items, p_movies[a:b], p_values[a:b], alpha, reg, explain=True)
            answers = because(items, folded, r_movies[start:end], p_rated[a:b])
            named[order[start:end]] = [-1 if movie is None else movie for movie in answers]
    return recs.assign(because_id=pd.arrays.IntegerArray(np.maximum(named, 0).astype(np.int32), named < 0))


def with_rated_flag(preferences: DataFrame, rated: DataFrame) -> DataFrame:
    """`preferences` as train's implicit_preferences built them, with `rated`: whether the pair is among the
    (user_id, movie_id) pairs of `rated` (a rating) rather than a click."""
    return preferences.join(rated.select("user_id", "movie_id", F.lit(True).alias("rated")),
                            ["user_id", "movie_id"], "left").fillna(False, ["rated"])


def with_because(recs: DataFrame, preferences: DataFrame, items: Factors, alpha: float, reg: float) -> DataFrame:
    """user_recs with `because_id`, on the executors; `preferences` from `with_rated_flag`. People go in buckets
    (as many as shuffle partitions), one Python call per bucket: a call per person would cost more in Spark's per-group
    overhead than the maths."""
    catalogue = ItemFactors(items.ids, items.matrix)  # shipped to the executors with the function
    buckets = int(recs.sparkSession.conf.get("spark.sql.shuffle.partitions"))

    def explain(theirs: pd.DataFrame, prefs: pd.DataFrame) -> pd.DataFrame:
        return because_of_users(theirs.drop(columns="bucket"), prefs, catalogue, alpha, reg)

    def bucketed(frame: DataFrame):
        return frame.withColumn("bucket", F.pmod("user_id", F.lit(buckets))).groupBy("bucket")
    return bucketed(recs).cogroup(bucketed(preferences)).applyInPandas(explain, RECS_WITH_BECAUSE)


def with_because_on_driver(recs: pd.DataFrame, preferences: pd.DataFrame, items: Factors, alpha: float,
                           reg: float) -> pd.DataFrame:
    """`with_because` in this process, for a model small enough to score here."""
    return because_of_users(recs, preferences, ItemFactors(items.ids, items.matrix), alpha, reg)

