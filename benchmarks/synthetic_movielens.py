"""MovieLens-shaped ratings for benchmarks (time, memory and growth only: their lists say nothing of quality).

MovieLens itself cannot be downloaded on our machines, and never redistributed. This writes a folder in any of
the three published layouts that the real ingest path reads, with the shapes of the real releases:
- every user has at least 20 ratings; activity per user is heavy-tailed (log-normal);
- movie popularity is Zipf-like; each movie has one to three of the 19 genres;
- the catalogue also lists the movies nobody has rated yet, as many as the release lists (the newest ids, of the
  release's last two years, no tags, no genome scores): what the content mapping serves;
- tastes cluster by genre: each user draws most of their movies from a few favourite genres and rates those
  higher, so ALS has structure to find;
- the release's rating scale (whole or half stars), timestamps within MovieLens' years, titles with years;
- where the release ships them, user tags (as many as it has; mostly words of the movie's main genre, the rest
  from a long tail) and a tag genome (1,128 relevance scores for as many of the most rated movies as it scores,
  higher for the tags of the movie's genres).
Deterministic by seed; no MovieLens content is copied (titles are made up from a word list).

    python -m benchmarks.synthetic_movielens --preset ml-25m --out /tmp/ml-25m-synthetic [--scale 0.1]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from schemas.movielens import (
    CONTENT_FILES,
    GENRES,
    GENRES_100K,
    HALF_STARS,
    LAYOUT_FILES,
    WHOLE_STARS,
)


@dataclass(frozen=True)
class Shape:
    users: int
    movies: int  # rated
    ratings: int
    layout: str
    half_stars: bool
    first_year: int
    last_year: int
    tags: int = 0  # tag applications
    genome_movies: int = 0  # movies the genome scores
    unrated: int = 0  # movies the catalogue lists that nobody rated


# User, movie (rated), rating, tag and genome counts of the published releases, and how many more movies their
# movie file lists (ML-25M: 62,423 listed, 59,047 rated).
PRESETS = {
    "ml-100k": Shape(943, 1_682, 100_000, "100k", False, 1997, 1998),
    "ml-1m": Shape(6_040, 3_706, 1_000_209, "dat", False, 2000, 2003, unrated=177),
    "ml-10m": Shape(69_878, 10_677, 10_000_054, "csv", True, 1995, 2009, tags=95_580, unrated=4),
    "ml-25m": Shape(162_541, 59_047, 25_000_095, "csv", True, 1995, 2019, tags=1_093_360, genome_movies=13_816,
                    unrated=3_376),
    "ml-32m": Shape(200_948, 84_432, 32_000_204, "csv", True, 1995, 2023, tags=2_000_072, unrated=3_153),
    # The production system of the seeds: "a catalog of approximately 27,000 movies and 1 million users"; 40
    # ratings a person on average (ML-32M has 159), 1,500 of the movies not rated yet.
    "seed": Shape(1_000_000, 25_500, 40_000_000, "csv", True, 1995, 2024, unrated=1_500),
}
GENOME_TAGS = 1_128
MIN_RATINGS_PER_USER = 20
WORDS = ("Silent River Night Last Summer Red Dark City Love Story Return Shadow King Dead Man Woman Road Blue "
         "House Star Lost World Little Big Secret Game Heart Fire Ghost Black White Golden Wild Life Time "
         "Dream Island Stranger Winter Angel Moon Sun War Street Lady Boy Girl Family Journey").split()
CHUNK = 2_000_000  # ratings sampled per block: bounds memory at a few hundred MB for any size


def scaled(shape: Shape, scale: float) -> Shape:
    """The same shape at `scale` times the ratings (users and movies shrink slower, as in the real releases)."""
    if scale == 1.0:
        return shape
    users = max(50, round(shape.users * scale))
    movies = max(200, round(shape.movies * scale ** 0.6))
    return Shape(users, movies, max(users * MIN_RATINGS_PER_USER, round(shape.ratings * scale)), shape.layout,
                 shape.half_stars, shape.first_year, shape.last_year, round(shape.tags * scale),
                 round(shape.genome_movies * scale ** 0.6), round(shape.unrated * scale ** 0.6))


def generate(shape: Shape, seed: int = 42) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(ratings columns user_id, movie_id, rating, ts; movie columns movie_id, title, year, genres)."""
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    # Movies: Zipf-like popularity over a random order of ids; 1-3 genres, the first one weighted.
    popularity = 1.0 / np.arange(1, shape.movies + 1) ** 1.0
    rng.shuffle(popularity)
    genre_weight = rng.dirichlet(np.full(n_genres, 2.0))
    main_genre = rng.choice(n_genres, shape.movies, p=genre_weight)
    extra = rng.integers(0, n_genres, (shape.movies, 2))
    n_extra = rng.choice(3, shape.movies, p=[0.45, 0.35, 0.2])
    movie_years = rng.integers(1920, shape.last_year + 1, shape.movies)
    # Per genre: its movies and the cumulative popularity to sample them from.
    members = [np.flatnonzero((main_genre == g) | ((extra[:, 0] == g) & (n_extra >= 1))
                              | ((extra[:, 1] == g) & (n_extra >= 2))) for g in range(n_genres)]
    members = [m if len(m) else np.arange(shape.movies) for m in members]
    cdfs = [np.cumsum(popularity[m]) / popularity[m].sum() for m in members]
    global_cdf = np.cumsum(popularity) / popularity.sum()

    # Users: log-normal activity with a floor of 20, scaled to the total; a few favourite genres each.
    activity = rng.lognormal(0.0, 1.1, shape.users)
    spare = shape.ratings - MIN_RATINGS_PER_USER * shape.users
    counts = MIN_RATINGS_PER_USER + np.floor(activity / activity.sum() * spare).astype(np.int64)
    counts[np.argsort(-activity)[: shape.ratings - counts.sum()]] += 1
    cap = int(shape.movies * 0.8)  # nobody rates the whole catalogue; what the cap cuts goes to the others
    for _ in range(10):
        excess = int(np.maximum(counts - cap, 0).sum())
        if not excess:
            break
        counts = np.minimum(counts, cap)
        room = cap - counts
        counts += np.minimum(room, np.ceil(room / room.sum() * excess).astype(np.int64))
    tastes = rng.dirichlet(np.full(n_genres, 0.25), shape.users)  # concentrated on a few genres
    taste_cdf = np.cumsum(tastes, axis=1)
    user_bias = rng.normal(0.0, 0.45, shape.users)
    movie_bias = rng.normal(0.0, 0.5, shape.movies) + 0.4 * (popularity / popularity.max()) ** 0.3
    start = rng.uniform(_epoch(shape.first_year), _epoch(shape.last_year + 1) - 86_400 * 30, shape.users)

    users, movies = _sample_pairs(rng, counts, taste_cdf, members, cdfs, global_cdf, shape.movies)
    favourite = tastes[users, main_genre[movies]]  # how much the user likes the movie's main genre
    stars = 3.5 + user_bias[users] + movie_bias[movies] + 2.0 * (favourite - 1 / n_genres) \
        + rng.normal(0.0, 0.8, len(users))
    steps = np.array(HALF_STARS if shape.half_stars else WHOLE_STARS)
    stars = np.clip(np.round(stars * (2 if shape.half_stars else 1)) / (2 if shape.half_stars else 1),
                    steps.min(), steps.max())
    ts = (start[users] + rng.exponential(86_400 * 60, len(users))).astype(np.int64)
    ts = np.minimum(ts, int(_epoch(shape.last_year + 1)) - 1)

    titles = np.array([f"{' '.join(rng.choice(WORDS, rng.integers(1, 4)))} {i}" for i in range(shape.movies)],
                      dtype=object)
    genres = [[GENRES[g] for g in dict.fromkeys([main_genre[i], *extra[i, :n_extra[i]]])]
              for i in range(shape.movies)]
    ratings = {"user_id": users + 1, "movie_id": movies + 1, "rating": stars, "ts": ts}
    catalogue = {"movie_id": np.arange(1, shape.movies + 1), "title": titles, "year": movie_years,
                 "genres": _objects(genres)}
    if shape.tags:
        catalogue["tags"] = _tags(rng, shape.tags, ratings, main_genre)
    if shape.genome_movies:
        catalogue["genome"] = _genome(rng, shape.genome_movies, popularity, main_genre, n_extra, extra)
    if shape.unrated:  # drawn last: the releases that list none keep their files byte for byte
        catalogue.update(_unrated(rng, shape, catalogue))
    return ratings, catalogue


def _unrated(rng, shape: Shape, catalogue: dict) -> dict:
    """The catalogue columns with `shape.unrated` movies appended: the next ids, of the release's last two years,
    one or two genres each, drawn uniformly."""
    n, first = shape.unrated, shape.movies + 1
    main = rng.integers(0, len(GENRES), n)
    extra = rng.integers(0, len(GENRES), n)
    genres = [[GENRES[g] for g in dict.fromkeys([main[i], extra[i]] if rng.random() < 0.5 else [main[i]])]
              for i in range(n)]
    titles = [f"{' '.join(rng.choice(WORDS, rng.integers(1, 4)))} {i}" for i in range(first - 1, first - 1 + n)]
    return {"movie_id": np.concatenate([catalogue["movie_id"], np.arange(first, first + n)]),
            "title": np.concatenate([catalogue["title"], np.array(titles, dtype=object)]),
            "year": np.concatenate([catalogue["year"], rng.integers(shape.last_year - 1, shape.last_year + 1, n)]),
            "genres": np.concatenate([catalogue["genres"], _objects(genres)])}


def _objects(lists: list) -> np.ndarray:
    """A 1-D object array of lists (np.array would make a 2-D array of lists of one length)."""
    out = np.empty(len(lists), dtype=object)
    for i, item in enumerate(lists):
        out[i] = item
    return out


def _tags(rng, n: int, ratings: dict, main_genre: np.ndarray) -> dict:
    """Tag applications on rated (user, movie) pairs: 70% from the movie's main genre's tags (its name and a
    word), Zipf-like, the rest from a Zipf-like tail of 20,000 tags."""
    picked = rng.integers(0, len(ratings["user_id"]), n)
    movie = ratings["movie_id"][picked] - 1
    genre_words = np.array([f"{g.lower()} {w}".lower() for g in GENRES for w in WORDS], dtype=object)
    tail = np.array([f"{a} {b}".lower() + f" {i}" for i, (a, b) in enumerate(
        zip(rng.choice(WORDS, 20_000), rng.choice(WORDS, 20_000)))], dtype=object)
    by_genre = rng.random(n) < 0.7
    word = np.minimum(rng.zipf(1.3, n) - 1, len(WORDS) - 1)
    text = np.where(by_genre, genre_words[main_genre[movie] * len(WORDS) + word],
                    tail[np.minimum(rng.zipf(1.2, n) - 1, len(tail) - 1)])
    return {"user_id": ratings["user_id"][picked], "movie_id": movie + 1, "tag": text,
            "ts": ratings["ts"][picked] + rng.integers(0, 86_400, n)}


def _genome(rng, n_movies: int, popularity, main_genre, n_extra, extra) -> dict:
    """Relevance of GENOME_TAGS tags for the n_movies most popular movies: tag t belongs to genre t % 19;
    a movie's genres raise their tags' relevance."""
    movies = np.argsort(-popularity)[:n_movies]
    tag_genre = np.arange(GENOME_TAGS) % len(GENRES)
    logit = rng.normal(-2.0, 1.0, (n_movies, GENOME_TAGS)).astype(np.float32)
    logit += 3.0 * (tag_genre[None, :] == main_genre[movies, None])
    for slot in range(2):
        has = n_extra[movies] > slot
        logit[has] += 1.5 * (tag_genre[None, :] == extra[movies[has], slot, None])
    relevance = np.round(1.0 / (1.0 + np.exp(-logit)), 5)
    return {"movie_id": np.repeat(movies + 1, GENOME_TAGS), "tag_id": np.tile(np.arange(1, GENOME_TAGS + 1), n_movies),
            "relevance": relevance.ravel()}


def _sample_pairs(rng, counts, taste_cdf, members, cdfs, global_cdf, n_movies):
    """Distinct (user, movie) pairs, `counts[u]` per user (fewer only where a user's draws ran out of distinct
    movies): 80% of a user's movies from genres drawn by taste, 20% by global popularity."""
    users = np.repeat(np.arange(len(counts)), counts)
    picked = np.empty(len(users), np.int64)
    for lo in range(0, len(users), CHUNK):
        block = users[lo:lo + CHUNK]
        genre = (taste_cdf[block] < rng.random((len(block), 1))).sum(axis=1)
        genre = np.minimum(genre, taste_cdf.shape[1] - 1)
        chosen = np.empty(len(block), np.int64)
        by_taste = rng.random(len(block)) < 0.8
        for g in np.unique(genre[by_taste]):
            rows = np.flatnonzero(by_taste & (genre == g))
            position = np.searchsorted(cdfs[g], rng.random(len(rows)))
            chosen[rows] = members[g][np.minimum(position, len(members[g]) - 1)]
        rows = np.flatnonzero(~by_taste)
        chosen[rows] = np.minimum(np.searchsorted(global_cdf, rng.random(len(rows))), n_movies - 1)
        picked[lo:lo + CHUNK] = chosen
    # Repeats of a (user, movie) pair are redrawn by popularity (which keeps the long tail long), then, for the
    # last few left, uniformly.
    for round_ in range(12):
        key = users * n_movies + picked
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(len(key), bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not repeat.any():
            break
        redraw = np.searchsorted(global_cdf, rng.random(repeat.sum())) if round_ < 8 else \
            rng.integers(0, n_movies, repeat.sum())
        picked[repeat] = np.minimum(redraw, n_movies - 1)
    key = np.unique(users * n_movies + picked)
    return key // n_movies, key % n_movies


def _epoch(year: int) -> float:
    return float(np.datetime64(f"{year}-01-01", "s").astype(np.int64))


def write(folder: Path, layout: str, ratings: dict, movies: dict) -> None:
    """The release's files in `layout` (100k, dat or csv), as GroupLens publishes them."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings_file, movies_file = LAYOUT_FILES[layout]
    table = pa.table({k: pa.array(v) for k, v in ratings.items()})
    if layout == "csv" or not np.all(np.mod(ratings["rating"], 1) == 0):
        text = pc.cast(table["rating"], pa.string())  # Arrow writes 4.0 as "4"; the releases write "4.0"
        stars = pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", ""))
    else:  # whole stars, written as integers ("4")
        stars = pc.cast(pc.cast(table["rating"], pa.int64()), pa.string())
    if layout == "csv":
        table = table.set_column(2, "rating", stars)
        with open(folder / ratings_file, "wb") as out:
            out.write(b"userId,movieId,rating,timestamp\n")  # Arrow would quote the header names
            pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, quoting_style="none"))
        titles = [f'"{t} ({y})"' if "," in t else f"{t} ({y})" for t, y in zip(movies["title"], movies["year"])]
        lines = ["movieId,title,genres"] + [f"{m},{t},{'|'.join(g) or '(no genres listed)'}" for m, t, g in
                                            zip(movies["movie_id"], titles, movies["genres"])]
        (folder / movies_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
        for kind, name in CONTENT_FILES["csv"].items():
            if kind in movies:
                header = "userId,movieId,tag,timestamp" if kind == "tags" else "movieId,tagId,relevance"
                with open(folder / name, "wb") as out:
                    out.write(header.encode() + b"\n")
                    pcsv.write_csv(pa.table({k: pa.array(v) for k, v in movies[kind].items()}), out,
                                   pcsv.WriteOptions(include_header=False, quoting_style="none"))
        return
    separator = "\t" if layout == "100k" else "::"
    columns = [pc.cast(table["user_id"], pa.string()), pc.cast(table["movie_id"], pa.string()), stars,
               pc.cast(table["ts"], pa.string())]
    lines = pc.binary_join_element_wise(*columns, separator)
    pcsv.write_csv(pa.table({"line": lines}), folder / ratings_file,
                   pcsv.WriteOptions(include_header=False, quoting_style="none"))
    if layout == "dat":
        text = "".join(f"{m}::{t} ({y})::{'|'.join(g)}\n" for m, t, y, g in
                       zip(movies["movie_id"], movies["title"], movies["year"], movies["genres"]))
        (folder / movies_file).write_bytes(text.encode("latin-1"))
    else:  # u.item: id | title | release date | video date | url | 19 genre flags
        flags = {g: i for i, g in enumerate(GENRES_100K)}
        flags["Children"] = flags["Children's"]
        lines = []
        for m, t, y, g in zip(movies["movie_id"], movies["title"], movies["year"], movies["genres"]):
            row = ["0"] * len(GENRES_100K)
            for name in g:
                if name in flags:  # IMAX has no flag in this layout
                    row[flags[name]] = "1"
            lines.append(f"{m}|{t} ({y})|01-Jan-{y}||http://example.invalid/{m}|{'|'.join(row)}\n")
        (folder / movies_file).write_bytes("".join(lines).encode("latin-1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ml-1m")
    parser.add_argument("--scale", type=float, default=1.0, help="times the preset's ratings")
    parser.add_argument("--layout", choices=sorted(LAYOUT_FILES), help="default: the preset's")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    shape = scaled(PRESETS[args.preset], args.scale)
    started = time.perf_counter()
    ratings, movies = generate(shape, args.seed)
    write(args.out, args.layout or shape.layout, ratings, movies)
    print(f"{len(ratings['user_id']):,} ratings of {shape.users:,} users and {shape.movies:,} rated movies "
          f"(of {shape.movies + shape.unrated:,}) in the {args.layout or shape.layout} layout at {args.out} "
          f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
