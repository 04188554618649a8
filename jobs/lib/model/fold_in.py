"""Fold-in: a person's vector solved from their preferences against a version's item factors, the exact
implicit-ALS least-squares step Spark MLlib takes for each user (ALS.scala, computeFactors), so that lists can
follow what a person just did without a retrain. numpy only: the speed layer (jobs/speed_layer.py) runs it
outside Spark.

For a user with preferences r_i over items with factors y_i (rank f), c_i = alpha * |r_i|:
    A = YtY + sum_i c_i y_i y_i^T + reg * n * I      (n: items with r_i > 0; MLlib scales reg by it)
    b = sum_{i: r_i > 0} (1 + c_i) y_i
    x = A^-1 b   in float64 like MLlib's normal equations (it uses Cholesky; A is symmetric positive
                 definite, so any exact solver agrees to float32 precision), returned as float32.
A user the version trained on, folded in with exactly their training preferences (jobs/lib/model/als.py's
implicit_preferences), gets back their stored vector to float32 precision: tests/jobs/test_fold_in.py.
"""
from __future__ import annotations

import numpy as np


class ItemFactors:
    """A version's item factors with the Gram matrix every fold-in shares (computed once)."""

    def __init__(self, ids: np.ndarray, factors: np.ndarray):
        order = np.argsort(ids)
        self.ids = np.asarray(ids)[order]
        self.factors = np.asarray(factors, dtype=np.float32)[order]
        self.known = set(self.ids.tolist())
        as_double = self.factors.astype(np.float64)
        self.gram = as_double.T @ as_double

    def rows(self, movie_ids: np.ndarray) -> np.ndarray:
        """Row positions of the movies (KeyError naming the first one the version does not know)."""
        positions = np.searchsorted(self.ids, movie_ids)
        positions = np.minimum(positions, len(self.ids) - 1)
        unknown = self.ids[positions] != movie_ids
        if unknown.any():
            raise KeyError(f"movie {int(np.asarray(movie_ids)[unknown][0])} has no factors in this version")
        return positions


def fold_in(items: ItemFactors, movie_ids: np.ndarray, preferences: np.ndarray, alpha: float,
            reg: float) -> np.ndarray:
    """The user's factor vector (float32) from their implicit preferences on `movie_ids`."""
    movie_ids, preferences = np.asarray(movie_ids), np.asarray(preferences, dtype=np.float64)
    y = items.factors[items.rows(movie_ids)].astype(np.float64)
    confidence = alpha * np.abs(preferences)
    positive = preferences > 0
    a = items.gram + (y.T * confidence) @ y
    a[np.diag_indices_from(a)] += reg * positive.sum()
    b = ((1.0 + confidence[positive])[:, None] * y[positive]).sum(axis=0)
    return np.linalg.solve(a, b).astype(np.float32)


def because(items: ItemFactors, movie_ids: np.ndarray, preferences: np.ndarray, alpha: float, reg: float,
            recommended: np.ndarray, eligible: np.ndarray | None = None) -> list[int | None]:
    """For each recommended movie, the movie of the user's preferences that contributed most to its score, or
    None when none contributed positively. The score is linear in the preferences (Hu, Koren and Volinsky 2008,
    section 5): y_i . x = sum_j (1 + c_j) y_i^T A^-1 y_j over the positives j, so each term is that movie's
    share. `eligible`: which preferences may be named (e.g. ratings, not clicks); all by default."""
    movie_ids, preferences = np.asarray(movie_ids), np.asarray(preferences, dtype=np.float64)
    y = items.factors[items.rows(movie_ids)].astype(np.float64)
    confidence = alpha * np.abs(preferences)
    positive = preferences > 0
    positive_named = positive & (np.asarray(eligible, dtype=bool) if eligible is not None else True)
    a = items.gram + (y.T * confidence) @ y
    a[np.diag_indices_from(a)] += reg * positive.sum()
    if not positive_named.any() or not len(recommended):
        return [None] * len(recommended)
    weighted = np.linalg.solve(a, y[positive_named].T) * (1.0 + confidence[positive_named])  # f x named
    shares = items.factors[items.rows(np.asarray(recommended))].astype(np.float64) @ weighted  # k x named
    named = movie_ids[positive_named]
    best = shares.argmax(axis=1)
    return [int(named[j]) if shares[i, j] > 0 else None for i, j in enumerate(best)]


def top_n(items: ItemFactors, user: np.ndarray, n: int, exclude: set[int]) -> list[tuple[int, float]]:
    """(movie id, score) of the n best-scoring movies for the vector, best first, none in `exclude`."""
    scores = items.factors @ user
    if exclude:
        scores[np.isin(items.ids, list(exclude))] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    best = np.argpartition(-scores, n - 1)[:n] if n else np.array([], dtype=int)
    best = best[np.lexsort((items.ids[best], -scores[best]))]
    return [(int(items.ids[i]), float(scores[i])) for i in best]


def preference_values(ratings: np.ndarray, confidence: str, threshold: float) -> np.ndarray:
    """A rating's implicit value as implicit_preferences maps it (NaN: not a positive, the row is dropped)."""
    ratings = np.asarray(ratings, dtype=np.float64)
    if confidence == "linear":
        return ratings
    if confidence == "log":
        return np.log1p(ratings)
    if confidence == "binary":
        return np.ones_like(ratings)
    return np.where(ratings >= threshold, ratings, np.nan)


class Preferences:
    """A version's training preferences as train built them (jobs/lib/model/als.py's implicit_preferences):
    per user, their (movie, value) pairs before the activity and popularity scaling, and the counts that scaling
    uses, so that a person's new ratings and clicks join their training ones exactly as the next run would
    (against this version's counts: a handful of new events moves the means by nothing measurable)."""

    def __init__(self, user_ids: np.ndarray, movie_ids: np.ndarray, values: np.ndarray, settings: dict,
                 shard: tuple[int, int] = (1, 1), rated: np.ndarray | None = None):
        """`shard` = (k, n): keep the pairs of the users with user_id % n == k - 1 only (the scaling's counts
        stay those of everyone). `rated`: which pairs are ratings rather than clicks (all by default)."""
        rated = np.ones(len(user_ids), dtype=bool) if rated is None else np.asarray(rated, dtype=bool)
        self.settings = settings
        items, per_item = np.unique(movie_ids, return_counts=True)
        self.item_count = dict(zip(items.tolist(), per_item.tolist()))
        self.mean_item = float(per_item.mean()) if len(per_item) else 1.0
        distinct_users = len(np.unique(user_ids))
        self.mean_user = float(len(user_ids) / distinct_users) if distinct_users else 1.0
        if shard[1] > 1:
            kept = user_ids % shard[1] == shard[0] - 1
            user_ids, movie_ids, values, rated = user_ids[kept], movie_ids[kept], values[kept], rated[kept]
        order = np.argsort(user_ids, kind="stable")
        self.user_ids, self.movie_ids, self.values = user_ids[order], movie_ids[order], values[order]
        self.rated = rated[order]
        self.users, self.starts = np.unique(self.user_ids, return_index=True)

    @classmethod
    def from_tables(cls, ratings, clicks, settings: dict, shard: tuple[int, int] = (1, 1)) -> "Preferences":
        """From clean ratings (user_id, movie_id, rating) and clean clicks (user_id, movie_id, clicks) as
        pandas frames: clicks count only for pairs nobody rated (click_preferences)."""
        values = preference_values(ratings.rating.to_numpy(), settings["confidence"], settings["threshold"])
        kept = ~np.isnan(values)
        users, movies = ratings.user_id.to_numpy()[kept], ratings.movie_id.to_numpy()[kept]
        values = values[kept]
        rated = np.ones(len(values), dtype=bool)
        if clicks is not None and len(clicks) and settings["click_weight"] > 0:
            pairs = set(zip(ratings.user_id.tolist(), ratings.movie_id.tolist()))
            new = [i for i, pair in enumerate(zip(clicks.user_id.tolist(), clicks.movie_id.tolist()))
                   if pair not in pairs]
            users = np.concatenate([users, clicks.user_id.to_numpy()[new]])
            movies = np.concatenate([movies, clicks.movie_id.to_numpy()[new]])
            values = np.concatenate([values, settings["click_weight"] * clicks.clicks.to_numpy()[new]])
            rated = np.concatenate([rated, np.zeros(len(new), dtype=bool)])
        return cls(users.astype(np.int64), movies.astype(np.int64), values.astype(np.float64), settings, shard,
                   rated)

    def of(self, user_id: int) -> dict[int, float]:
        """A user's training (movie -> value), empty for a user the version does not know."""
        span = self._span(user_id)
        return dict(zip(self.movie_ids[span].tolist(), self.values[span].tolist()))

    def rated_by(self, user_id: int) -> set[int]:
        """The movies among a user's training preferences that they rated (not only clicked)."""
        span = self._span(user_id)
        return set(self.movie_ids[span][self.rated[span]].tolist())

    def _span(self, user_id: int) -> slice:
        at = np.searchsorted(self.users, user_id)
        if at == len(self.users) or self.users[at] != user_id:
            return slice(0, 0)
        end = self.starts[at + 1] if at + 1 < len(self.starts) else len(self.user_ids)
        return slice(self.starts[at], end)

    def scaled(self, values: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, preferences) with the activity and popularity scaling applied, as float32 like train."""
        movies = np.fromiter(values, dtype=np.int64, count=len(values))
        prefs = np.fromiter(values.values(), dtype=np.float64, count=len(values))
        user_exponent = self.settings["user_activity_exponent"]
        item_exponent = self.settings["item_popularity_exponent"]
        if user_exponent:
            prefs = prefs * (len(values) / self.mean_user) ** user_exponent
        if item_exponent:
            counts = np.array([self.item_count.get(m, 1) for m in movies.tolist()], dtype=np.float64)
            prefs = prefs * (counts / self.mean_item) ** item_exponent
        return movies, prefs.astype(np.float32)
