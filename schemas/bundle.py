"""The fold-in bundle: what the speed layer needs of a version, written by the batch beside the run's lists
(jobs/recommend.py) and named by the version's meta (`fold_in.bundle`), so that the speed layer reads one
documented folder rather than the run's internal layout, starts in a moment and holds only the pages it uses.

    <folder>/manifest.json       {"format": 1, "settings": {...}, "top_n": n, "mean_user": x, "mean_item": y}
    <folder>/item_ids.npy        int64, ascending          the movies with factors
    <folder>/item_factors.npy    float32, movies x rank    their ALS factors, in that order
    <folder>/users.npy           int64, ascending          people with training preferences
    <folder>/starts.npy          int64                     where each person's pairs start in the arrays below
    <folder>/movie_ids.npy       int64                     their movies, grouped by person
    <folder>/values.npy          float64                   the values before scaling (schemas/preferences.py)
    <folder>/rated.npy           bool                      a rating, not only clicks
    <folder>/counted_movies.npy  int64, ascending          movies with training preferences
    <folder>/movie_counts.npy    int64                     how many each (the popularity scaling's n_i)
    <folder>/dismissed_users.npy, dismissed_starts.npy, dismissed_movies.npy   what each person dismissed
Arrays are .npy files, memory-mapped when the folder is on this machine's disk (read whole from an object store).
"""

from __future__ import annotations

import io
import json
from typing import NamedTuple

import numpy as np

from schemas.preferences import TrainingPreferences
from schemas.ranking import ItemFactors
from schemas.storage import join, local_path, read_bytes, write_bytes

FORMAT = 1
ARRAYS = (
    "item_ids",
    "item_factors",
    "users",
    "starts",
    "movie_ids",
    "values",
    "rated",
    "counted_movies",
    "movie_counts",
    "dismissed_users",
    "dismissed_starts",
    "dismissed_movies",
)


class FoldInModel(NamedTuple):
    """A version's fold-in bundle, read: its movies' factors, its people's training preferences and dismissals,
    the settings train used and the length of a list."""

    items: ItemFactors
    training: TrainingPreferences
    dismissed: Dismissed
    settings: dict
    top_n: int


class Dismissed(NamedTuple):
    users: np.ndarray
    starts: np.ndarray
    movies: np.ndarray

    def of(self, user_id: int) -> set[int]:
        at = int(np.searchsorted(self.users, user_id))
        if at == len(self.users) or self.users[at] != user_id:
            return set()
        end = int(self.starts[at + 1]) if at + 1 < len(self.starts) else len(self.movies)
        return set(self.movies[int(self.starts[at]) : end].tolist())


def grouped(users: np.ndarray, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct users ascending, where each one's movies start, the movies grouped by user)."""
    order = np.argsort(users, kind="stable")
    users, movies = np.asarray(users, np.int64)[order], np.asarray(movies, np.int64)[order]
    distinct, starts = np.unique(users, return_index=True)
    return distinct, starts.astype(np.int64), movies


def write(
    folder: str,
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    training: TrainingPreferences,
    dismissed_users: np.ndarray,
    dismissed_movies: np.ndarray,
    top_n: int,
) -> None:
    """Write a bundle into `folder` (local or s3a://); its manifest last, so a bundle with one is complete."""
    order = np.argsort(item_ids)
    d_users, d_starts, d_movies = grouped(dismissed_users, dismissed_movies)
    arrays: dict[str, np.ndarray] = {
        "item_ids": np.asarray(item_ids, np.int64)[order],
        "item_factors": np.asarray(item_factors, np.float32)[order],
        "users": training.users.astype(np.int64),
        "starts": training.starts.astype(np.int64),
        "movie_ids": training.movie_ids.astype(np.int64),
        "values": training.values.astype(np.float64),
        "rated": training.rated.astype(bool),
        "counted_movies": training.counted_movies.astype(np.int64),
        "movie_counts": training.movie_counts.astype(np.int64),
        "dismissed_users": d_users,
        "dismissed_starts": d_starts,
        "dismissed_movies": d_movies,
    }
    manifest = {
        "format": FORMAT,
        "settings": training.settings,
        "top_n": top_n,
        "mean_user": training.mean_user,
        "mean_item": training.mean_item,
    }
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_bytes(join(folder, f"{name}.npy"), buffer.getvalue())
    write_bytes(join(folder, "manifest.json"), json.dumps(manifest).encode())


def read(folder: str) -> FoldInModel:
    """A bundle from `folder`."""
    manifest = json.loads(read_bytes(join(folder, "manifest.json")))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"fold-in bundle {folder} has format {manifest.get('format')}; this reads {FORMAT}")
    a = {name: _load(join(folder, f"{name}.npy")) for name in ARRAYS}
    settings = manifest["settings"]
    training = TrainingPreferences(
        a["users"],
        a["starts"],
        a["movie_ids"],
        a["values"],
        a["rated"],
        a["counted_movies"],
        a["movie_counts"],
        manifest["mean_user"],
        manifest["mean_item"],
        settings,
    )
    return FoldInModel(
        ItemFactors(a["item_ids"], a["item_factors"]),
        training,
        Dismissed(a["dismissed_users"], a["dismissed_starts"], a["dismissed_movies"]),
        settings,
        int(manifest["top_n"]),
    )


def _load(path: str) -> np.ndarray:
    on_disk = local_path(path)
    if on_disk is not None:
        return np.load(on_disk, mmap_mode="r", allow_pickle=False)
    return np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)
