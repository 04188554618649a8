"""Fold-in: a person's vector solved from their preferences against a version's item factors, the exact
implicit-ALS least-squares step Spark MLlib takes for each user (ALS.scala, computeFactors), so that lists can
follow what a person just did without a retrain. numpy only: the speed layer runs it outside Spark.

For a user with preferences r_i over items with factors y_i (rank f), c_i = alpha * |r_i|:
    A = YtY + sum_i c_i y_i y_i^T + reg * n * I      (n: items with r_i > 0; MLlib scales reg by it)
    b = sum_{i: r_i > 0} (1 + c_i) y_i
    x = A^-1 b   in float64 like MLlib's normal equations (it uses Cholesky; A is symmetric positive
                 definite, so any exact solver agrees to float32 precision), returned as float32.
A user the version trained on, folded in with exactly their training preferences (jobs/lib/model/als.py's
implicit_preferences), gets back their stored vector to float32 precision: tests/serving/test_fold_in.py.
"""
from __future__ import annotations

import numpy as np


class ItemFactors:
    """A version's item factors with the Gram matrix every fold-in shares (computed once)."""

    def __init__(self, ids: np.ndarray, factors: np.ndarray):
        order = np.argsort(ids)
        self.ids = np.asarray(ids)[order]
        self.factors = np.asarray(factors, dtype=np.float32)[order]
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


def top_n(items: ItemFactors, user: np.ndarray, n: int, exclude: set[int]) -> list[tuple[int, float]]:
    """(movie id, score) of the n best-scoring movies for the vector, best first, none in `exclude`."""
    scores = items.factors @ user
    if exclude:
        scores[np.isin(items.ids, list(exclude))] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    best = np.argpartition(-scores, n - 1)[:n] if n else np.array([], dtype=int)
    best = best[np.lexsort((items.ids[best], -scores[best]))]
    return [(int(items.ids[i]), float(scores[i])) for i in best]
