"""Why a movie is on a person's list: `because`, the movie they rated that contributed most to its score.

Taken from the ALS factors rather than the neighbour similarities: a recommended movie's score is exactly a sum
of one term per movie the person has a preference for (jobs/lib/model/fold_in.py's `because`), so the movie
named is the one the model itself leaned on most, not a look-alike it may have ignored. Only rated movies are
named (a click is a weaker reason to show); a movie whose score no rated movie pushed up gets none.
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.lib.model.fold_in import ItemFactors, because
from jobs.lib.model.scoring import Factors

RECS_WITH_BECAUSE = "user_id int, rank int, movie_id int, score float, because_id int"


def because_of_users(recs: pd.DataFrame, preferences: pd.DataFrame, items: ItemFactors, alpha: float,
                     reg: float) -> pd.DataFrame:
    """recs (user_id, rank, movie_id, score) with `because_id`, from the users' preferences (user_id, movie_id,
    rating = the implicit value as train built it, rated = a rating rather than a click)."""
    named = pd.Series(pd.NA, index=recs.index, dtype="Int32")
    by_user = {user: frame for user, frame in preferences.groupby("user_id", sort=False)}
    for user, theirs in recs.groupby("user_id", sort=False):
        prefs = by_user.get(user)
        if prefs is None:
            continue
        known = prefs.movie_id.isin(items.known).to_numpy()
        prefs = prefs[known]
        answers = because(items, prefs.movie_id.to_numpy(), prefs.rating.to_numpy(), alpha, reg,
                          theirs.movie_id.to_numpy(), prefs.rated.to_numpy())
        named.loc[theirs.index] = [pd.NA if movie is None else movie for movie in answers]
    return recs.assign(because_id=named)


def marked(preferences: DataFrame, rated: DataFrame) -> DataFrame:
    """`preferences` as train's implicit_preferences built them, with `rated`: whether the pair is among the
    (user_id, movie_id) pairs of `rated` (a rating) rather than a click."""
    return preferences.join(rated.select("user_id", "movie_id", F.lit(True).alias("rated")),
                            ["user_id", "movie_id"], "left").fillna(False, ["rated"])


def with_because(recs: DataFrame, preferences: DataFrame, items: Factors, alpha: float, reg: float) -> DataFrame:
    """user_recs with `because_id`, on the executors (one person at a time); `preferences` from `marked`."""
    catalogue = ItemFactors(items.ids, items.matrix)  # shipped to the executors with the function

    def explain(theirs: pd.DataFrame, prefs: pd.DataFrame) -> pd.DataFrame:
        return because_of_users(theirs, prefs, catalogue, alpha, reg)

    return recs.groupBy("user_id").cogroup(preferences.groupBy("user_id")).applyInPandas(explain,
                                                                                          RECS_WITH_BECAUSE)


def with_because_on_driver(recs: pd.DataFrame, preferences: pd.DataFrame, items: Factors, alpha: float,
                           reg: float) -> pd.DataFrame:
    """`with_because` in this process, for a model small enough to score here."""
    return because_of_users(recs, preferences, ItemFactors(items.ids, items.matrix), alpha, reg)

