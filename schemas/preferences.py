"""What a person's ratings and clicks mean to the ranking model: their implicit preferences (numpy only).

Train builds the preferences it fits ALS on from these rules (jobs/lib/model/als.py applies them in Spark), and
the speed layer folds a person's new events in by the same rules (serving/speed/), so a person folded in with
their training data gets back their trained vector (tests/jobs/test_fold_in.py).

- A rating's value (`confidence`): linear, the stars; log, log(1 + stars); binary, 1; threshold, the stars when at
  least `threshold`, else no preference at all (NaN: the pair is dropped).
- A click counts `click_weight` per click, and only on a (person, movie) pair with no rating: a rating says more
  than a click, and a rating held out for evaluation must not leak back in as a click.
- Scaling: a value times (n_u / mean n_u) ** user_activity_exponent and (n_i / mean n_i) **
  item_popularity_exponent, where n counts the person's (the movie's) preferences.
"""

from __future__ import annotations

import numpy as np

# The settings these rules read, as a version's metadata records them (`fold_in`) for the speed layer.
SETTINGS = (
    "alpha",
    "reg_param",
    "confidence",
    "threshold",
    "user_activity_exponent",
    "item_popularity_exponent",
    "click_weight",
)


def rating_values(ratings, confidence: str, threshold: float) -> np.ndarray:
    """Each rating's implicit value (NaN: no preference, the pair is dropped)."""
    ratings = np.asarray(ratings, dtype=np.float64)
    if confidence == "linear":
        return ratings
    if confidence == "log":
        return np.log1p(ratings)
    if confidence == "binary":
        return np.ones_like(ratings)
    if confidence == "threshold":
        return np.where(ratings >= threshold, ratings, np.nan)
    raise ValueError(f"unknown confidence {confidence!r}")


def scaling(counts, mean: float, exponent: float):
    """The factor a preference is scaled by for its person's (or movie's) number of preferences."""
    return (np.asarray(counts, dtype=np.float64) / mean) ** exponent


def person_values(
    training: dict[int, float], trained: set[int], ratings: dict[int, float], clicks: dict[int, int], settings: dict
) -> dict[int, float]:
    """A person's preferences (movie -> value, before scaling): their training ones (`trained`: the movies among
    them), then their ratings since (each replaces the training value, or removes it when it is no preference),
    then their clicks since on movies they never rated (neither in training nor since)."""
    values = dict(training)
    if ratings:
        movies = list(ratings)
        for movie, value in zip(
            movies, rating_values([ratings[m] for m in movies], settings["confidence"], settings["threshold"]).tolist()
        ):
            if value == value:  # not NaN
                values[movie] = value
            else:
                values.pop(movie, None)
    if settings["click_weight"] > 0:
        for movie, count in clicks.items():
            if movie not in trained and movie not in ratings:
                values[movie] = values.get(movie, 0.0) + count * settings["click_weight"]
    return values


def training_pairs(
    rating_users: np.ndarray,
    rating_movies: np.ndarray,
    ratings: np.ndarray,
    click_users: np.ndarray,
    click_movies: np.ndarray,
    clicks: np.ndarray,
    settings: dict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(users, movies, values before scaling, rated) of every training preference, by the rules above: what a
    person's ratings and clicks were worth to the model that was trained on them."""
    values = rating_values(ratings, settings["confidence"], settings["threshold"])
    kept = ~np.isnan(values)
    users, movies, values = np.asarray(rating_users)[kept], np.asarray(rating_movies)[kept], values[kept]
    rated = np.ones(len(values), dtype=bool)
    if len(clicks) and settings["click_weight"] > 0:
        # The pairs nobody rated: (user, movie) as one int64 each, looked up in the rated ones sorted.
        rated_keys = np.sort(np.asarray(rating_users, np.int64) << 32 | np.asarray(rating_movies, np.int64))
        click_keys = np.asarray(click_users, np.int64) << 32 | np.asarray(click_movies, np.int64)
        at = np.minimum(np.searchsorted(rated_keys, click_keys), max(len(rated_keys) - 1, 0))
        new = rated_keys[at] != click_keys if len(rated_keys) else np.ones(len(click_keys), bool)
        users = np.concatenate([users, np.asarray(click_users)[new]])
        movies = np.concatenate([movies, np.asarray(click_movies)[new]])
        values = np.concatenate([values, settings["click_weight"] * np.asarray(clicks, np.float64)[new]])
        rated = np.concatenate([rated, np.zeros(int(new.sum()), dtype=bool)])
    return users.astype(np.int64), movies.astype(np.int64), values.astype(np.float64), rated


class TrainingPreferences:
    """A version's training preferences as train built them, per person, before the activity and popularity
    scaling, and the counts that scaling uses: a person's new ratings and clicks join their training ones
    exactly as the next run would (against this version's counts: a handful of new events moves the means by
    nothing measurable). Arrays sorted by user; memory-mapped from the version's bundle (schemas/bundle.py), so
    holding them costs the pages of the people folded in."""

    def __init__(
        self,
        users: np.ndarray,
        starts: np.ndarray,
        movie_ids: np.ndarray,
        values: np.ndarray,
        rated: np.ndarray,
        counted_movies: np.ndarray,
        movie_counts: np.ndarray,
        mean_user: float,
        mean_item: float,
        settings: dict,
    ):
        self.users, self.starts, self.movie_ids, self.values, self.rated = users, starts, movie_ids, values, rated
        self.counted_movies, self.movie_counts = counted_movies, movie_counts
        self.mean_user, self.mean_item, self.settings = mean_user, mean_item, settings

    @classmethod
    def from_pairs(
        cls, users: np.ndarray, movies: np.ndarray, values: np.ndarray, rated: np.ndarray, settings: dict
    ) -> TrainingPreferences:
        order = np.argsort(users, kind="stable")
        users, movies, values, rated = users[order], movies[order], values[order], rated[order]
        distinct, starts = np.unique(users, return_index=True)
        counted, per_movie = np.unique(movies, return_counts=True)
        return cls(
            distinct,
            starts,
            movies,
            values,
            rated,
            counted,
            per_movie,
            float(len(users) / len(distinct)) if len(distinct) else 1.0,
            float(per_movie.mean()) if len(per_movie) else 1.0,
            settings,
        )

    def _span(self, user_id: int) -> slice:
        at = int(np.searchsorted(self.users, user_id))
        if at == len(self.users) or self.users[at] != user_id:
            return slice(0, 0)
        end = int(self.starts[at + 1]) if at + 1 < len(self.starts) else len(self.movie_ids)
        return slice(int(self.starts[at]), end)

    def of(self, user_id: int) -> dict[int, float]:
        """A person's training (movie -> value), empty for one the version does not know."""
        span = self._span(user_id)
        return dict(zip(self.movie_ids[span].tolist(), self.values[span].tolist()))

    def rated_by(self, user_id: int) -> set[int]:
        """The movies among a person's training preferences that they rated (not only clicked)."""
        span = self._span(user_id)
        return set(self.movie_ids[span][self.rated[span]].tolist())

    def scaled(self, values: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, preferences) with the activity and popularity scaling applied, float32 like train."""
        movies = np.fromiter(values, dtype=np.int64, count=len(values))
        prefs = np.fromiter(values.values(), dtype=np.float64, count=len(values))
        return movies, self._scale(movies, prefs, len(values))

    def users_of_pairs(self) -> np.ndarray:
        """The person of each training preference, in the arrays' order (beside movie_ids, values, rated)."""
        return np.repeat(self.users, self._per_person())

    def scaled_all(self) -> np.ndarray:
        """Every training preference's value with the scaling applied (float32, in the arrays' order): what
        train fitted the version's model on."""
        per_person = self._per_person()
        return self._scale(np.asarray(self.movie_ids), np.asarray(self.values), np.repeat(per_person, per_person))

    def _per_person(self) -> np.ndarray:
        return np.diff(self.starts, append=len(self.movie_ids))

    def _scale(self, movies: np.ndarray, prefs: np.ndarray, person_counts) -> np.ndarray:
        user_exponent = self.settings["user_activity_exponent"]
        item_exponent = self.settings["item_popularity_exponent"]
        if user_exponent:
            prefs = prefs * scaling(person_counts, self.mean_user, user_exponent)
        if item_exponent:
            at = np.minimum(np.searchsorted(self.counted_movies, movies), max(len(self.counted_movies) - 1, 0))
            known = self.counted_movies[at] == movies if len(self.counted_movies) else np.zeros(len(movies), bool)
            counts = np.where(known, self.movie_counts[at] if len(self.counted_movies) else 1, 1)
            prefs = prefs * scaling(counts, self.mean_item, item_exponent)
        return prefs.astype(np.float32)
