"""MovieLens datasets: where they come from, how each layout is read, and the schemas of raw and clean data."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    layout: str  # "100k" (u.data / u.item), "dat" (:: separated), "csv"
    rating_values: tuple[float, ...]
    # sha256 of the ratings file of an intact download, where we know it.
    ratings_sha256: str | None = None

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"

    @property
    def ratings_file(self) -> str:
        return {"100k": "u.data", "dat": "ratings.dat", "csv": "ratings.csv"}[self.layout]

    @property
    def movies_file(self) -> str:
        return {"100k": "u.item", "dat": "movies.dat", "csv": "movies.csv"}[self.layout]


WHOLE_STARS = (1.0, 2.0, 3.0, 4.0, 5.0)
HALF_STARS = tuple(x / 2 for x in range(1, 11))  # 0.5 .. 5.0

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-100k", "100k", WHOLE_STARS,
            ratings_sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        ),
        DatasetSpec("ml-1m", "dat", WHOLE_STARS),
        DatasetSpec("ml-latest-small", "csv", HALF_STARS),
        DatasetSpec("ml-20m", "csv", HALF_STARS),
        DatasetSpec("ml-25m", "csv", HALF_STARS),
        DatasetSpec("ml-32m", "csv", HALF_STARS),
    )
}

# The 19 genre flags of u.item, in column order (u.genre lists the same).
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
# Genre names as published across all layouts (validation vocabulary for raw data).
RAW_GENRES = frozenset(GENRES_100K) | {"Children", "IMAX", "(no genres listed)"}
# Placeholders meaning "no genre"; clean drops them.
NO_GENRE = frozenset({"unknown", "(no genres listed)"})
# Spelling differences between layouts; clean maps them to one name.
GENRE_ALIASES = {"Children's": "Children"}
# The genres of clean data, the service's `genre` parameter accepts exactly these.
GENRES = tuple(sorted({GENRE_ALIASES.get(g, g) for g in RAW_GENRES} - NO_GENRE))

RAW_RATINGS = T.StructType([
    T.StructField("user_id", T.IntegerType()),
    T.StructField("movie_id", T.IntegerType()),
    T.StructField("rating", T.DoubleType()),
    T.StructField("ts", T.LongType()),  # seconds since the epoch
])

RAW_MOVIES = T.StructType([
    T.StructField("movie_id", T.IntegerType()),
    T.StructField("title", T.StringType()),  # as published, year suffix included
    T.StructField("year", T.IntegerType()),  # release year where the layout has a date field, else null
    T.StructField("genres", T.ArrayType(T.StringType())),  # as published
])

CLEAN_RATINGS = RAW_RATINGS

CLEAN_MOVIES = T.StructType([
    T.StructField("movie_id", T.IntegerType(), False),
    T.StructField("title", T.StringType()),  # year suffix removed
    T.StructField("year", T.IntegerType()),
    T.StructField("genres", T.ArrayType(T.StringType())),  # from GENRES
])
