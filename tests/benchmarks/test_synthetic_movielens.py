"""The MovieLens-shaped generator of the scale benchmark: deterministic, shaped like the releases, and read by
the real ingest, validate and clean path in every layout."""
import hashlib

import numpy as np
import pytest

from benchmarks.synthetic_movielens import PRESETS, generate, scaled, write
from jobs import clean, ingest, validate
from jobs.lib.runtime.run_layout import run_paths


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    shape = scaled(PRESETS["ml-1m"], 0.01)
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write(tmp_path / name, "csv", *generate(shape, seed))
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_shapes_of_the_releases():
    shape = scaled(PRESETS["ml-25m"], 0.004)  # 100k ratings
    ratings, movies = generate(shape, 42)
    per_user = np.bincount(ratings["user_id"])[1:]
    assert per_user.min() >= 20 and per_user.max() > 10 * np.median(per_user)  # floor and a heavy tail
    assert abs(len(ratings["user_id"]) - shape.ratings) < 0.01 * shape.ratings
    per_movie = np.sort(np.bincount(ratings["movie_id"], minlength=shape.movies + 1)[1:])[::-1]
    assert per_movie[: shape.movies // 10].sum() > 0.4 * per_movie.sum()  # Zipf-like: top 10% hold > 40%
    assert set(np.unique(ratings["rating"])) <= {x / 2 for x in range(1, 11)} and 0.5 in ratings["rating"]
    pairs = ratings["user_id"].astype(np.int64) * 10**6 + ratings["movie_id"]
    assert len(np.unique(pairs)) == len(pairs)  # one rating per (user, movie)
    # Tastes cluster by genre: a user's favourite genre's movies are rated higher than their others.
    main = np.array([g[0] for g in movies["genres"]])[ratings["movie_id"] - 1]
    liked, other = [], []
    for user in range(1, 200):
        mine = ratings["user_id"] == user
        genres, counts = np.unique(main[mine], return_counts=True)
        favourite = main[mine] == genres[np.argmax(counts)]
        if favourite.all():
            continue
        liked.append(ratings["rating"][mine][favourite].mean())
        other.append(ratings["rating"][mine][~favourite].mean())
    assert np.mean(liked) > np.mean(other) + 0.2
    # The catalogue also lists movies nobody rated, as the large releases do: the newest ids, of recent years.
    unrated = movies["movie_id"][shape.movies:]
    assert len(movies["movie_id"]) == len(movies["genres"]) == len(movies["title"]) == shape.movies + shape.unrated
    assert shape.unrated > 0 and not np.isin(unrated, ratings["movie_id"]).any()
    assert (movies["year"][shape.movies:] >= shape.last_year - 1).all() and all(movies["genres"][shape.movies:])


@pytest.mark.parametrize("layout, preset, dataset", [("csv", "ml-25m", "ml-25m"), ("dat", "ml-1m", "ml-1m"),
                                                     ("100k", "ml-100k", "ml-100k")])
def test_the_real_ingest_path_reads_every_layout(spark, make_config, tmp_path, layout, preset, dataset):
    folder = tmp_path / dataset
    ratings, movies = generate(scaled(PRESETS[preset], {"ml-25m": 0.002, "ml-1m": 0.03, "ml-100k": 0.3}[preset]), 3)
    if "genome" in movies:  # the genome of 20 movies is enough for the path (331 x 1,128 rows cost 10 s more)
        movies["genome"] = {name: column[:20 * 1128] for name, column in movies["genome"].items()}
    write(folder, layout, ratings, movies)
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder), validation__min_ratings=100,
                         validation__min_movies=10)
    manifest = ingest.run(config, "synthetic", spark=spark)
    content = {"tags": 0, "genome": 0} if layout == "csv" else {}  # ml-25m ships both; the others neither
    assert manifest["dataset"] == dataset and manifest["malformed"] == {"ratings": 0, "movies": 0, **content}
    assert manifest["rows"]["ratings"] == len(ratings["user_id"])
    assert manifest["rows"]["movies"] == len(movies["movie_id"])  # the unrated ones listed too
    if layout != "csv":
        return  # validate and clean read the raw tables, the same whatever the layout: once is enough
    assert validate.run(config, "synthetic", spark=spark)["success"]
    report = clean.run(config, "synthetic", spark=spark)
    assert report["ratings_out"] == len(ratings["user_id"]) and report["users"] == len(np.unique(ratings["user_id"]))
    assert report["movies"] == len(movies["movie_id"]) > report["movies_rated"]
    stored = spark.read.parquet(run_paths(config, "synthetic").clean_ratings).selectExpr("sum(rating)").first()[0]
    assert stored == pytest.approx(float(ratings["rating"].sum()))
    assert manifest["rows"]["tags"] == report["tags"]["rows_in"] == len(movies["tags"]["tag"])
    assert manifest["rows"]["genome"] == report["genome"]["rows_out"] == len(movies["genome"]["relevance"])
    assert report["tags"]["dropped"]["unknown_movie"] == report["tags"]["dropped"]["bad_tag_length"] == 0
