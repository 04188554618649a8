"""The core's fold-in (schemas/ranking.py) for many people at once, in the driver: the training preferences as
train built them (numpy), and people with as many preferences solved together in stacks (one Python call per
person costs more than the maths). `because` (explain.py) and train's one-fit mode (below) use it.

One-fit mode (`split.evaluation_people`): the evaluation model is fit on everyone's ratings but the evaluated
people's test part, and serves as the production model once those people's vectors are folded in from all their
preferences against its item factors (the exact MLlib user step), instead of a second fit on every rating.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from conf.settings import Config
from jobs.lib.model.als import fold_in_settings
from jobs.lib.model.scoring import DRIVER_THREADS, factors_of
from schemas.preferences import TrainingPreferences, training_pairs
from schemas.ranking import ItemFactors, fold_in_many
from schemas.storage import exists, join, read_table, replace_folder_with_table

STACK_PREFERENCES = 1 << 16  # preferences per stack (people x n): a few tens of MB of float64 products


def stacks(n: np.ndarray, k: np.ndarray | None = None) -> list[np.ndarray]:
    """Positions of the people with preferences (n > 0), in stacks of people with equal n (and equal k, their
    recommendations, when given), each stack within STACK_PREFERENCES preferences (or recommendations)."""
    k = np.zeros(len(n), np.int64) if k is None else np.asarray(k, np.int64)
    people = np.flatnonzero(n > 0)
    shape = n[people].astype(np.int64) * (int(k.max(initial=0)) + 1) + k[people]
    grouped = people[np.argsort(shape, kind="stable")]
    bounds = np.flatnonzero(np.diff(np.sort(shape))) + 1
    result = []
    for same in np.split(grouped, bounds) if len(grouped) else []:
        size = max(1, STACK_PREFERENCES // max(int(n[same[0]]), int(k[same[0]])))
        result.extend(same[start:start + size] for start in range(0, len(same), size))
    return result


def training_preferences(config: Config, paths) -> TrainingPreferences:
    """Every clean rating's and click's preference by the rules train applies (schemas/preferences.py), before
    scaling: what the production model is fitted on, for `because`, the speed layer's bundle and one-fit mode."""
    settings = fold_in_settings(config)
    ratings = read_table(paths.clean_ratings, ["user_id", "movie_id", "rating"])
    clicks = read_table(paths.clean_clicks, ["user_id", "movie_id", "clicks"]) if exists(paths.clean_clicks) else None
    pairs = training_pairs(*columns(ratings, "user_id", "movie_id", "rating"),
                           *columns(clicks, "user_id", "movie_id", "clicks"), settings)
    return TrainingPreferences.from_pairs(*pairs, settings)


def columns(table: pa.Table | None, *names: str) -> list[np.ndarray]:
    """Columns of a table as numpy arrays (empty ones for no table)."""
    return [table.column(name).to_numpy() if table is not None else np.zeros(0) for name in names]


def folded_vectors(training: TrainingPreferences, people: np.ndarray, items: ItemFactors, alpha: float, reg: float,
                   threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Each person's vector (float32, people x rank) folded in from all their training preferences, scaled as
    train scales them, and whether they had any on a movie `items` knows (the others' rows are zeros)."""
    users, movies, values = training.users_of_pairs(), np.asarray(training.movie_ids), training.scaled_all()
    keep = np.isin(users, people) & np.isin(movies, items.ids)
    users, movies, values = users[keep], movies[keep], values[keep]  # still sorted by person
    first = np.searchsorted(users, people, "left")
    n = np.searchsorted(users, people, "right") - first
    vectors = np.zeros((len(people), items.factors.shape[1]), np.float32)

    def solve(stack: np.ndarray) -> None:
        at = first[stack][:, None] + np.arange(n[stack[0]])
        vectors[stack] = fold_in_many(items, movies[at], values[at], alpha, reg).vectors
    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(solve, stacks(n)))
    return vectors, n > 0


def fold_people_into_model(config: Config, paths, model: str, people: np.ndarray) -> None:
    """Rewrite the saved ALS model's user factors with these people's vectors folded in from all their training
    preferences against its item factors: one-fit mode's production model."""
    users, items = (factors_of(read_table(join(model, part))) for part in ("userFactors", "itemFactors"))
    implicit = config.als.implicit
    people = np.intersect1d(people, users.ids)
    vectors, folded = folded_vectors(training_preferences(config, paths), people,
                                     ItemFactors(items.ids, items.matrix), implicit.alpha, implicit.reg_param,
                                     DRIVER_THREADS)
    matrix = users.matrix.copy()
    matrix[np.searchsorted(users.ids, people[folded])] = vectors[folded]
    rank = matrix.shape[1]
    features = pa.ListArray.from_arrays(pa.array(np.arange(0, len(matrix) * rank + 1, rank, dtype=np.int32)),
                                        pa.array(matrix.ravel()))
    replace_folder_with_table(join(model, "userFactors"),
                              pa.table({"id": pa.array(users.ids, pa.int32()), "features": features}))
