"""MovieLens releases: names, file layouts, rating scales, genres and the column names of our tables.

Plain Python (no Spark import), so the config loader, the DAG file and the service can use it cheaply; the
Spark schemas built from these names are in `schemas/tables.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The three published layouts: which files hold the ratings and the movies.
LAYOUT_FILES = {
    "100k": ("u.data", "u.item"),  # tab-separated ratings; `|`-separated movies with 19 genre flags
    "dat": ("ratings.dat", "movies.dat"),  # `::`-separated
    "csv": ("ratings.csv", "movies.csv"),  # CSV with a header, half stars
}
# What some releases also ship about the movies, used for content (optional: a release without them works):
# user tags (ml-10m's tags.dat, the CSV releases' tags.csv: user, movie, tag, timestamp) and the tag genome
# (ml-20m and ml-25m: genome-scores.csv, the relevance 0..1 of each of 1,128 tags to a movie).
CONTENT_FILES = {
    "dat": {"tags": "tags.dat"},
    "csv": {"tags": "tags.csv", "genome": "genome-scores.csv"},
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    layout: str  # a key of LAYOUT_FILES
    rating_values: tuple[float, ...]
    # sha256 of the ratings file of an intact download, where we know it.
    ratings_sha256: str | None = None
    # The MD5 of the release's zip as GroupLens published it (pinned here: a checksum fetched from the host that
    # serves the zip proves nothing). data.download_sha256 adds or replaces pins with sha256.
    zip_md5: str | None = None

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"

    @property
    def ratings_file(self) -> str:
        return LAYOUT_FILES[self.layout][0]

    @property
    def movies_file(self) -> str:
        return LAYOUT_FILES[self.layout][1]

    @property
    def rating_scale(self) -> tuple[float, float]:
        return min(self.rating_values), max(self.rating_values)


WHOLE_STARS = (1.0, 2.0, 3.0, 4.0, 5.0)
HALF_STARS = tuple(x / 2 for x in range(1, 11))  # 0.5 .. 5.0

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-100k",
            "100k",
            WHOLE_STARS,
            ratings_sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            zip_md5="0e33842e24a9c977be4e0107933c0723",
        ),
        DatasetSpec("ml-1m", "dat", WHOLE_STARS, zip_md5="c4d9eecfca2ab87c1945afe126590906"),
        # ml-latest-small changes with each refresh and ml-32m's digest is not known here: data.download_sha256.
        DatasetSpec("ml-latest-small", "csv", HALF_STARS),
        DatasetSpec("ml-20m", "csv", HALF_STARS, zip_md5="cd245b17a1ae2cc31bb14903e1204af3"),
        DatasetSpec("ml-25m", "csv", HALF_STARS, zip_md5="6b51fb2759a8657d3bfcbfc42b592ada"),
        DatasetSpec("ml-32m", "csv", HALF_STARS),
    )
}
DATASET_NAMES = tuple(DATASETS)
DEFAULT_DOWNLOAD = "ml-100k"  # what is downloaded when neither a dataset nor a folder is configured


class AmbiguousFolder(ValueError):
    """The folder's files fit several releases, or none; the message says which and what to set."""


def detect_dataset(folder: Path, configured: str | None = None) -> DatasetSpec:
    """The release a local MovieLens folder holds, from its files.

    The layout follows from the file names (u.data/u.item, ratings.dat/movies.dat, ratings.csv/movies.csv).
    ml-100k and ml-1m are the only releases of their layouts. The CSV releases share layout and rating scale:
    a configured name of that layout wins, then the README's "This dataset (ml-25m)", then the folder's name;
    otherwise the caller must say which (RECO_DATASET). A configured name of another layout is an error.
    """
    layouts = [layout for layout, files in LAYOUT_FILES.items() if all((folder / f).is_file() for f in files)]
    if not layouts:
        expected = "; ".join(" and ".join(files) for files in LAYOUT_FILES.values())
        raise AmbiguousFolder(f"{folder} holds no MovieLens layout (expected one of: {expected})")
    candidates = [spec for spec in DATASETS.values() if spec.layout in layouts]
    if configured:
        spec = DATASETS[configured]
        if spec not in candidates:
            raise AmbiguousFolder(
                f"{folder} holds {' and '.join(LAYOUT_FILES[layouts[0]])} (the layout of "
                f"{', '.join(c.name for c in candidates)}), but the dataset is set to {configured}, whose layout is "
                f"{' and '.join(LAYOUT_FILES[spec.layout])}: unset RECO_DATASET or set it to match"
            )
        return spec
    if len(candidates) == 1:
        return candidates[0]
    readme = folder / "README.txt"
    text = readme.read_text(errors="replace")[:4000] if readme.is_file() else ""
    named = [c for c in candidates if f"({c.name})" in text] or [c for c in candidates if c.name == folder.name]
    if len(named) == 1:
        return named[0]
    raise AmbiguousFolder(
        f"{folder} holds {' and '.join(LAYOUT_FILES[candidates[0].layout])}, the layout of "
        f"{', '.join(c.name for c in candidates)}; nothing in it says which: set RECO_DATASET to one of them"
    )


# The 19 genre flags of u.item, in column order (u.genre lists the same).
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# Genre names as published across all layouts (validation vocabulary for raw data).
RAW_GENRES = frozenset(GENRES_100K) | {"Children", "IMAX", "(no genres listed)"}
# Placeholders meaning "no genre"; clean drops them.
NO_GENRE = frozenset({"unknown", "(no genres listed)"})
# Spelling differences between layouts; clean maps them to one name.
GENRE_ALIASES = {"Children's": "Children"}
# The genres of clean data, the service's `genre` parameter accepts exactly these.
GENRES = tuple(sorted({GENRE_ALIASES.get(g, g) for g in RAW_GENRES} - NO_GENRE))

# Column names of the ratings and movies tables (raw and clean), in order.
RATING_COLUMNS = ("user_id", "movie_id", "rating", "ts")
MOVIE_COLUMNS = ("movie_id", "title", "year", "genres")
TAG_COLUMNS = ("user_id", "movie_id", "tag", "ts")
GENOME_COLUMNS = ("movie_id", "tag_id", "relevance")
