"""ingest: the real download code against a loopback HTTP server, and every published layout."""
import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from jobs import clean, ingest, validate
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from jobs.lib.runtime.storage import read_json


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture()
def grouplens(tmp_path):
    """A loopback 'GroupLens': serves files put into its folder, records the paths requested."""
    root = tmp_path / "site"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", server.requests
    server.shutdown()


def zip_folder(source: Path, archive: Path, top: str) -> str:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(source.iterdir()):
            out.write(path, f"{top}/{path.name}")
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_verifies_caches_and_ingests(spark, make_config, ml100k_dir, grouplens, tmp_path):
    site, url, requests = grouplens
    md5 = zip_folder(ml100k_dir, site / "ml-100k.zip", "ml-100k")
    (site / "ml-100k.zip.md5").write_text(f"MD5 (ml-100k.zip) = {md5}\n")
    config = make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=url)

    manifest = ingest.run(config, "dl", spark=spark)
    assert manifest["source"]["md5_checked"] and manifest["source"]["content_length_checked"]
    assert manifest["source"]["md5"] == md5
    assert manifest["ratings_sha256_matches_published"] is True
    assert manifest["rows"] == {"ratings": 100_000, "movies": 1682}
    assert manifest["malformed"] == {"ratings": 0, "movies": 0}
    assert (tmp_path / "data" / "downloads" / "ml-100k" / "u.data").is_file()

    fetched = len(requests)
    again = ingest.run(config, "dl2", spark=spark)
    assert again["source"]["cached"] is True
    assert len(requests) == fetched  # the second run did not download again
    assert read_json(run_paths(config, "dl2").manifest)["rows"]["ratings"] == 100_000


def test_corrupt_download_is_rejected_and_not_cached(spark, make_config, ml100k_dir, grouplens, tmp_path):
    site, url, _ = grouplens
    zip_folder(ml100k_dir, site / "ml-100k.zip", "ml-100k")
    (site / "ml-100k.zip.md5").write_text("0123456789abcdef0123456789abcdef  ml-100k.zip\n")
    config = make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=url)
    with pytest.raises(JobError, match="corrupt: md5"):
        ingest.run(config, "bad", spark=spark)
    assert not list((tmp_path / "data" / "downloads").glob("ml-100k.zip*"))


def test_missing_and_non_zip_downloads_fail_clearly(spark, make_config, grouplens, tmp_path):
    site, url, _ = grouplens
    config = make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=url)
    with pytest.raises(JobError, match="HTTP 404"):
        ingest.run(config, "missing", spark=spark)
    (site / "ml-100k.zip").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(JobError, match="not a zip"):
        ingest.run(config, "html", spark=spark)


def write_csv_layout(folder: Path) -> None:
    folder.mkdir(parents=True)
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, 41):
        for movie in range(1, 31):
            if (user + movie) % 3:
                ratings.append(f"{user},{movie},{((user * movie) % 10 + 1) / 2},{1_100_000_000 + user * movie}")
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    movies = ["movieId,title,genres",
              '1,"American President, The (1995)",Comedy|Drama|Romance',
              "2,Heat (1995),Action|Crime|Thriller",
              '3,"Misérables, Les (1995)",Drama|War',
              "4,Pulp Fiction (1994),(no genres listed)",
              "5,Children's Story (2001),Children|IMAX"]
    movies += [f"{m},Movie {m} ({1990 + m % 20}),Drama" for m in range(6, 31)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n", encoding="utf-8")


def test_csv_layout_with_half_star_ratings(spark, make_config, tmp_path):
    folder = tmp_path / "ml-latest-small"
    write_csv_layout(folder)
    # no RECO_DATASET: the release is detected from the files and the folder's name
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder),
                         validation__min_ratings=100, validation__min_movies=10)
    manifest = ingest.run(config, "csv", spark=spark)
    assert manifest["dataset"] == "ml-latest-small"
    assert manifest["layout"] == "csv" and manifest["malformed"]["ratings"] == 0
    assert manifest["rows"]["ratings"] == sum(1 for u in range(1, 41) for m in range(1, 31) if (u + m) % 3)
    assert validate.run(config, "csv", spark=spark)["success"]
    clean.run(config, "csv", spark=spark)
    paths = run_paths(config, "csv")
    ratings = spark.read.parquet(paths.clean_ratings)
    assert {r["rating"] for r in ratings.select("rating").distinct().collect()} <= {x / 2 for x in range(1, 11)}
    assert 0.5 in {r["rating"] for r in ratings.select("rating").distinct().collect()}
    movies = {r["movie_id"]: r for r in spark.read.parquet(paths.clean_movies).collect()}
    assert (movies[1]["title"], movies[1]["year"]) == ("American President, The", 1995)
    assert movies[3]["title"] == "Misérables, Les"
    assert movies[4]["genres"] == [] and movies[5]["genres"] == ["Children", "IMAX"]


def test_dat_layout_latin1(spark, make_config, tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    lines = [f"{u}::{m}::{(u + m) % 5 + 1}::{978300000 + u}" for u in range(1, 31) for m in range(1, 41)]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    movies = [f"{m}::Film {m} ({1980 + m})::Drama|Children's" for m in range(1, 40)] + \
             ["40::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi"]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder),
                         validation__min_ratings=100, validation__min_movies=10)
    manifest = ingest.run(config, "dat", spark=spark)
    assert manifest["dataset"] == "ml-1m"  # the only release in the .dat layout
    assert manifest["rows"] == {"ratings": 1200, "movies": 40} and manifest["malformed"]["ratings"] == 0
    assert validate.run(config, "dat", spark=spark)["success"]
    clean.run(config, "dat", spark=spark)
    movies = {r["movie_id"]: r for r in spark.read.parquet(run_paths(config, "dat").clean_movies).collect()}
    assert movies[40]["title"] == "Cité des enfants perdus, La" and movies[40]["year"] == 1995
    assert movies[1]["genres"] == ["Drama", "Children"]


def test_local_folder_without_the_layout_is_refused(spark, make_config, tmp_path):
    config = make_config(tmp_path / "data", data__movielens_dir=str(tmp_path))
    with pytest.raises(JobError, match="holds no MovieLens layout"):
        ingest.run(config, "empty", spark=spark)


def test_an_ambiguous_csv_folder_asks_for_the_dataset_by_name(spark, make_config, tmp_path):
    folder = tmp_path / "my-ratings"
    write_csv_layout(folder)
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder))
    with pytest.raises(JobError, match="set RECO_DATASET to one of them"):
        ingest.run(config, "ambiguous", spark=spark)
    named = make_config(tmp_path / "data", data__movielens_dir=str(folder), data__dataset="ml-25m")
    assert ingest.run(named, "named", spark=spark)["dataset"] == "ml-25m"
    wrong = make_config(tmp_path / "data", data__movielens_dir=str(folder), data__dataset="ml-100k")
    with pytest.raises(JobError, match="the dataset is set to ml-100k"):
        ingest.run(wrong, "wrong", spark=spark)
