"""Why a movie is on a person's list: `because`, the movie they rated that contributed most to its score.

Taken from the ALS factors rather than the neighbour similarities: a recommended movie's score is exactly a sum
of one term per movie the person has a preference for (schemas/ranking.py's `because`, which the speed layer
calls too), so the movie named is the one the model itself leaned on most, not a look-alike it may have ignored.
Only rated movies are named (a click is a weaker reason to show); a movie whose score no rated movie pushed up gets
none.

Computed in the driver from numpy arrays for every person at once: people with as many preferences and as many
recommendations go through the core's fold_in_many / because_many together, in stacks (fold_in.py; one Python
call per person cost more than the maths: 97 s for 162,541 people at 25M ratings that way).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from jobs.lib.model.fold_in import stacks
from schemas.ranking import ItemFactors, because_many, fold_in_many


def because_of_users(rec_users: np.ndarray, rec_movies: np.ndarray, pref_users: np.ndarray,
                     pref_movies: np.ndarray, pref_values: np.ndarray, pref_rated: np.ndarray, items: ItemFactors,
                     alpha: float, reg: float, threads: int = 1) -> np.ndarray:
    """The `because` movie of each recommendation (rec_users[i], rec_movies[i]), -1 for none, from the people's
    preferences (pref_*: one row per (person, movie), value = the implicit value as train fitted it, rated = a
    rating rather than a click). `threads` stacks at a time (numpy's products and solves run without the GIL)."""
    known = np.isin(pref_movies, items.ids)
    by_user = np.argsort(pref_users[known], kind="stable")
    p_users, p_movies = pref_users[known][by_user], pref_movies[known][by_user]
    p_values, p_rated = pref_values[known][by_user], pref_rated[known][by_user]
    order = np.argsort(rec_users, kind="stable")
    r_movies = np.asarray(rec_movies)[order]
    users, r_first, k = np.unique(np.asarray(rec_users)[order], return_index=True, return_counts=True)
    p_first = np.searchsorted(p_users, users, "left")
    n = np.searchsorted(p_users, users, "right") - p_first
    named = np.full(len(order), -1, dtype=np.int64)

    def explain(people: np.ndarray) -> None:
        """One stack: people with as many preferences (n) and recommendations (k) as each other."""
        prefs = p_first[people][:, None] + np.arange(n[people[0]])
        recs = r_first[people][:, None] + np.arange(k[people[0]])
        folded = fold_in_many(items, p_movies[prefs], p_values[prefs], alpha, reg, explain=True)
        named[order[recs]] = because_many(items, folded, r_movies[recs], p_rated[prefs])

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(explain, stacks(n, k)))
    return named


def with_because(recs: pa.Table, users: np.ndarray, movies: np.ndarray, values: np.ndarray, rated: np.ndarray,
                 items: ItemFactors, alpha: float, reg: float, threads: int = 1) -> pa.Table:
    """user_recs (user_id, rank, movie_id, score) with `because_id` (null for none); the preferences as in
    `because_of_users`."""
    named = because_of_users(recs.column("user_id").to_numpy(), recs.column("movie_id").to_numpy(), users, movies,
                             values, rated, items, alpha, reg, threads)
    return recs.append_column("because_id", pa.array(named.astype(np.int32), pa.int32(), mask=named < 0))
