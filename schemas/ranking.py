"""How a list is ranked, wherever it is computed: the top N of scores (with its tie rule), fold-in with
`because` (numpy only).
The batch job scores every user in blocks (jobs/lib/model/scoring.py) and names the reasons for stacks of
people at once (jobs/lib/model/explain.py), the speed layer folds in one person per event (serving/speed/): both
call these functions (one person is a stack of one), so a list and its reasons come out the same wherever they are made
(tests/jobs/test_fold_in.py holds the Spark wrappers to them).

Fold-in is the exact implicit-ALS least-squares step Spark MLlib takes for each user (ALS.scala, computeFactors).
For a user with preferences r_i over items with factors y_i (rank f), c_i = alpha * |r_i|:
    A = YtY + sum_i c_i y_i y_i^T + reg * n * I      (n: items with r_i > 0; MLlib scales reg by it)
    b = sum_{i: r_i > 0} (1 + c_i) y_i
    x = A^-1 b   in float64 like MLlib's normal equations, returned as float32.
A user the version trained on, folded in with exactly their training preferences, gets back their stored vector
to float32 precision. `because`: a recommended movie's score is linear in the preferences (Hu, Koren and
Volinsky 2008, section 5): y_i . x = sum_j (1 + c_j) y_i^T A^-1 y_j over the positives j, each term that movie's
share; the movie named is the one with the largest positive share.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def best_of_rows(scores: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `scores` (queries x items; -inf marks an item the query may not get), the positions and scores
    of its n best items: best score first, ties to the lower id. Non-finite scores come last; callers drop them."""
    rows = scores.shape[0]
    k = min(n, scores.shape[1])
    # The k largest at the end (not the k smallest of -scores: that copies the block)
    top = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:] if k else np.zeros((rows, 0), np.int64)
    top_scores = np.take_along_axis(scores, top, axis=1)
    if 0 < k < scores.shape[1]:
        # The partition cuts ties at the k-th score anyhow: a row holding more items at or above its k-th score
        # than k (exact ties, or fewer than k finite scores) is ranked in full, so the lower ids win the cut.
        tied = np.count_nonzero(scores >= top_scores.min(axis=1)[:, None], axis=1) > k
        for row in np.flatnonzero(tied):
            top[row] = np.lexsort((ids, -scores[row]))[:k]
            top_scores[row] = scores[row, top[row]]
    order = np.lexsort((ids[top], -top_scores), axis=1)  # best score first, then the lower id
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


class ItemFactors:
    """A version's item factors in id order, with the Gram matrix every fold-in shares (computed once)."""

    def __init__(self, ids: np.ndarray, factors: np.ndarray):
        order = np.argsort(ids)
        self.ids = np.asarray(ids)[order]
        self.factors = np.asarray(factors, dtype=np.float32)[order]
        self.known = set(self.ids.tolist())
        as_double = self.factors.astype(np.float64)
        self.gram = as_double.T @ as_double

    def rows(self, movie_ids: np.ndarray) -> np.ndarray:
        """Row positions of the movies (KeyError naming the first one the version does not know)."""
        movie_ids = np.asarray(movie_ids)
        positions = np.minimum(np.searchsorted(self.ids, movie_ids), len(self.ids) - 1)
        unknown = self.ids[positions] != movie_ids
        if unknown.any():
            raise KeyError(f"movie {int(movie_ids[unknown][0])} has no factors in this version")
        return positions

    def top_n(self, vector: np.ndarray, n: int, exclude: set[int]) -> list[tuple[int, float]]:
        """(movie id, score) of the n best-scoring movies for the vector, best first, none in `exclude`."""
        scores = (self.factors @ vector)[None, :]
        if exclude:
            scores[0, np.isin(self.ids, list(exclude))] = -np.inf
        top, top_scores = best_of_rows(scores, self.ids, n)
        kept = np.isfinite(top_scores[0])
        return list(zip(self.ids[top[0][kept]].tolist(), top_scores[0][kept].tolist()))


class Folded(NamedTuple):
    """Fold-ins of a stack of people with as many preferences each (one row a person): their vectors, and what
    `because` needs of the systems they came from."""

    vectors: np.ndarray  # float32, people x f
    movie_ids: np.ndarray  # people x n: their preferences' movies
    weights: np.ndarray  # people x n: 1 + c_j of each preference
    positive: np.ndarray  # people x n: r_j > 0
    solved: np.ndarray  # people x f x n: A^-1 y_j of each preference (explain only)

    @property
    def vector(self) -> np.ndarray:
        """The first (for `fold_in`, the only) person's vector."""
        return self.vectors[0]


def fold_in_many(
    items: ItemFactors, movie_ids: np.ndarray, preferences: np.ndarray, alpha: float, reg: float, explain: bool = False
) -> Folded:
    """`fold_in` for a stack of people (people x n arrays: as many preferences each), one system each, solved
    together: each person's numbers are those of their own `fold_in` (the same products, slice by slice)."""
    movie_ids, preferences = np.asarray(movie_ids), np.asarray(preferences, dtype=np.float64)
    y = items.factors[items.rows(movie_ids)].astype(np.float64)  # people x n x f
    y_t = y.transpose(0, 2, 1)
    confidence = alpha * np.abs(preferences)
    positive = preferences > 0
    a = items.gram + (y_t * confidence[:, None, :]) @ y
    diagonal = np.arange(a.shape[-1])
    a[:, diagonal, diagonal] += reg * positive.sum(axis=1)[:, None]
    weights = 1.0 + confidence
    b = ((weights * positive)[:, None, :] @ y)[:, 0, :]
    right = np.concatenate([b[:, :, None], y_t], axis=2) if explain else b[:, :, None]
    solution = np.linalg.solve(a, right)
    return Folded(solution[:, :, 0].astype(np.float32), movie_ids, weights, positive, solution[:, :, 1:])


def fold_in(
    items: ItemFactors, movie_ids: np.ndarray, preferences: np.ndarray, alpha: float, reg: float, explain: bool = False
) -> Folded:
    """The user's vector from their implicit preferences on `movie_ids` (one solve of the system A); with
    `explain`, A^-1 y_j of each preference too, from the same solve, for `because`."""
    return fold_in_many(items, np.asarray(movie_ids)[None], np.asarray(preferences)[None], alpha, reg, explain)


def because_many(
    items: ItemFactors, folded: Folded, recommended: np.ndarray, eligible: np.ndarray | None = None
) -> np.ndarray:
    """`because` for a stack of people (`folded` from fold_in_many(..., explain=True); recommended: people x k
    movie ids): people x k movie ids, -1 where no preference contributed positively."""
    recommended = np.asarray(recommended)
    named = folded.positive if eligible is None else folded.positive & np.asarray(eligible, dtype=bool)
    if not recommended.size or not named.shape[1]:
        return np.full(recommended.shape, -1, dtype=np.int64)
    shares = items.factors[items.rows(recommended)].astype(np.float64) @ (folded.solved * folded.weights[:, None, :])
    shares[~np.broadcast_to(named[:, None, :], shares.shape)] = -np.inf  # people x k x n
    best = shares.argmax(axis=2)  # the first of equal shares, in the preferences' order
    top = np.take_along_axis(shares, best[:, :, None], axis=2)[:, :, 0]
    return np.where(top > 0, np.take_along_axis(folded.movie_ids, best, axis=1), -1).astype(np.int64)


def because(
    items: ItemFactors, folded: Folded, recommended: np.ndarray, eligible: np.ndarray | list | None = None
) -> list[int | None]:
    """For each recommended movie, the movie of the person's preferences that contributed most to its score, or
    None when none contributed positively. `eligible`: which preferences may be named (e.g. ratings, not clicks);
    all by default. `folded` must come from fold_in(..., explain=True)."""
    stacked = None if eligible is None else np.asarray(eligible, dtype=bool)[None]
    named = because_many(items, folded, np.asarray(recommended)[None], stacked)[0]
    return [None if movie < 0 else int(movie) for movie in named.tolist()]
