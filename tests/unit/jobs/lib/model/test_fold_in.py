"""Fold-in's pieces on tiny inputs with results worked out by hand or by a direct solve."""
import numpy as np
import pandas as pd
import pytest

from jobs.lib.model.fold_in import ItemFactors, Preferences, because, fold_in, preference_values, top_n


def test_fold_in_solves_the_implicit_normal_equations():
    rng = np.random.default_rng(1)
    ids, y = np.array([30, 10, 20, 40]), rng.normal(size=(4, 3)).astype(np.float32)
    items = ItemFactors(ids, y)
    movies, prefs, alpha, reg = np.array([10, 40]), np.array([2.0, -1.0]), 0.5, 0.1
    rows = [list(ids).index(m) for m in movies]
    yy, c = y.astype(float), alpha * np.abs(prefs)
    a = yy.T @ yy + sum(c[i] * np.outer(yy[r], yy[r]) for i, r in enumerate(rows)) + reg * 1 * np.eye(3)
    b = (1 + c[0]) * yy[rows[0]]  # only the positive preference has p = 1
    assert np.allclose(fold_in(items, movies, prefs, alpha, reg), np.linalg.solve(a, b), rtol=1e-5)
    with pytest.raises(KeyError, match="movie 99"):
        fold_in(items, np.array([99]), np.array([1.0]), alpha, reg)


def test_top_n_orders_by_score_then_id_and_leaves_out_what_is_excluded():
    items = ItemFactors(np.array([1, 2, 3, 4]), np.array([[1.0], [3.0], [3.0], [2.0]], dtype=np.float32))
    assert [m for m, _ in top_n(items, np.array([1.0], dtype=np.float32), 3, {3})] == [2, 4, 1]
    assert [m for m, _ in top_n(items, np.array([1.0], dtype=np.float32), 9, set())] == [2, 3, 4, 1]


def test_preferences_map_and_scale_as_train_does():
    assert np.allclose(preference_values([1, 4], "log", 0), np.log1p([1, 4]))
    assert np.isnan(preference_values([3.0], "threshold", 3.5)[0])
    settings = {"confidence": "linear", "threshold": 3.5, "click_weight": 2.0, "user_activity_exponent": 0.0,
                "item_popularity_exponent": 1.0}
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 20, 10], "rating": [4.0, 2.0, 5.0]})
    clicks = pd.DataFrame({"user_id": [2, 1], "movie_id": [20, 10], "clicks": [3, 7]})  # (1, 10) was rated
    preferences = Preferences.from_tables(ratings, clicks, settings)
    assert preferences.of(2) == {10: 5.0, 20: 6.0} and preferences.of(3) == {}
    assert preferences.rated_by(2) == {10} and preferences.rated_by(1) == {10, 20}  # (2, 20) is a click
    movies, prefs = preferences.scaled(preferences.of(1))  # both movies have 2 positives, the mean is 2
    assert dict(zip(movies.tolist(), prefs.tolist())) == {10: 4.0, 20: 2.0}


def test_a_shard_keeps_its_peoples_preferences_and_everyones_scaling():
    settings = {"confidence": "linear", "threshold": 0.0, "click_weight": 0.0, "user_activity_exponent": 1.0,
                "item_popularity_exponent": 1.0}
    ratings = pd.DataFrame({"user_id": [1, 1, 2, 3, 4, 4, 4], "movie_id": [10, 20, 10, 30, 10, 20, 30],
                            "rating": [4.0, 2.0, 5.0, 1.0, 3.0, 3.0, 3.0]})
    everyone = Preferences.from_tables(ratings, None, settings)
    odd = Preferences.from_tables(ratings, None, settings, shard=(2, 2))  # user_id % 2 == 1
    assert odd.users.tolist() == [1, 3] and odd.of(2) == {} and odd.of(1) == everyone.of(1)
    for user in (1, 3):
        assert all(np.array_equal(a, b) for a, b in zip(odd.scaled(odd.of(user)), everyone.scaled(everyone.of(user))))


def test_because_names_the_preference_whose_share_of_the_score_is_largest():
    rng = np.random.default_rng(3)
    items = ItemFactors(np.arange(1, 41), rng.normal(size=(40, 6)).astype(np.float32))
    movies, prefs = np.array([3, 7, 11, 20]), np.array([4.0, 1.0, 5.0, 2.0])
    vector = fold_in(items, movies, prefs, 1.0, 0.1).astype(np.float64)
    recommended = np.array([1, 2, 30])
    named = because(items, movies, prefs, 1.0, 0.1, recommended)
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
    assert set(because(items, movies, prefs, 1.0, 0.1, recommended, np.array([0, 1, 0, 0]))) <= {7, None}
