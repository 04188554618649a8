"""The ranking rules (schemas/ranking.py) on tiny inputs with results worked out by hand or by a direct solve."""
import numpy as np
import pytest

from schemas.ranking import ItemFactors, because, best_of_rows, fold_in


def test_fold_in_solves_the_implicit_normal_equations():
    rng = np.random.default_rng(1)
    ids, y = np.array([30, 10, 20, 40]), rng.normal(size=(4, 3)).astype(np.float32)
    items = ItemFactors(ids, y)
    movies, prefs, alpha, reg = np.array([10, 40]), np.array([2.0, -1.0]), 0.5, 0.1
    rows = [list(ids).index(m) for m in movies]
    yy, c = y.astype(float), alpha * np.abs(prefs)
    a = yy.T @ yy + sum(c[i] * np.outer(yy[r], yy[r]) for i, r in enumerate(rows)) + reg * 1 * np.eye(3)
    b = (1 + c[0]) * yy[rows[0]]  # only the positive preference has p = 1
    assert np.allclose(fold_in(items, movies, prefs, alpha, reg).vector, np.linalg.solve(a, b), rtol=1e-5)
    with pytest.raises(KeyError, match="movie 99"):
        fold_in(items, np.array([99]), np.array([1.0]), alpha, reg)


def test_the_top_n_orders_by_score_then_id_and_leaves_out_what_is_excluded():
    items = ItemFactors(np.array([1, 2, 3, 4]), np.array([[1.0], [3.0], [3.0], [2.0]], dtype=np.float32))
    one = np.array([1.0], dtype=np.float32)
    assert [m for m, _ in items.top_n(one, 3, {3})] == [2, 4, 1]
    assert [m for m, _ in items.top_n(one, 9, set())] == [2, 3, 4, 1]
    # The same rule for the batch's blocks: per row, best first, ties to the lower id, -inf last.
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, -np.inf, 0.0, 5.0]])
    top, top_scores = best_of_rows(scores, np.array([1, 2, 3, 4]), 3)
    assert top.tolist() == [[1, 2, 3], [0, 3, 2]] and top_scores[1].tolist() == [5.0, 5.0, 0.0]


def test_because_names_the_preference_whose_share_of_the_score_is_largest():
    rng = np.random.default_rng(3)
    items = ItemFactors(np.arange(1, 41), rng.normal(size=(40, 6)).astype(np.float32))
    movies, prefs = np.array([3, 7, 11, 20]), np.array([4.0, 1.0, 5.0, 2.0])
    folded = fold_in(items, movies, prefs, 1.0, 0.1, explain=True)
    vector = folded.vector.astype(np.float64)
    recommended = np.array([1, 2, 30])
    named = because(items, folded, recommended)
    # The shares, computed term by term, add up to the score; the named movie holds the largest.
    y = items.factors.astype(np.float64)
    c = 1.0 * prefs
    a = items.gram + (y[movies - 1].T * c) @ y[movies - 1] + 0.1 * 4 * np.eye(6)
    for movie, name in zip(recommended, named):
        shares = {int(j): (1 + cj) * y[movie - 1] @ np.linalg.solve(a, y[j - 1]) for j, cj in zip(movies, c)}
        assert np.isclose(sum(shares.values()), y[movie - 1] @ vector, rtol=1e-4)
        best = max(shares, key=shares.get)
        assert name == (best if shares[best] > 0 else None)
    # Only eligible preferences are named (e.g. ratings, not clicks).
    assert set(because(items, folded, recommended, np.array([0, 1, 0, 0]))) <= {7, None}


def test_ties_at_the_cut_go_to_the_lower_id():
    """The k-th place, tied among items the partition may split anyhow, goes to the lowest ids, in every row."""
    rng = np.random.default_rng(2)
    ids = np.arange(100, 140)
    scores = rng.integers(0, 4, size=(300, 40)).astype(np.float32)  # many ties at every cut
    scores[5, :35] = -np.inf  # fewer finite scores than k
    for k in (1, 3, 7):
        top, top_scores = best_of_rows(scores, ids, k)
        for row in range(len(scores)):
            expected = np.lexsort((ids, -scores[row]))[:k]
            assert top[row].tolist() == expected.tolist()
            assert top_scores[row].tolist() == scores[row, expected].tolist()
