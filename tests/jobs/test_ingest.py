"""ingest: the real download code against a loopback HTTP server, and every published layout."""
import hashlib
import http.server
import os
import shutil
import threading
import time
import zipfile
from functools import partial
from pathlib import Path

import pytest

from jobs import clean, ingest, validate
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from schemas.storage import read_json
from tests.support import rows


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)
        if self.path in self.server.trickled:  # a byte every 0.1 s: each read is quick, the whole never ends
            self.send_response(200)
            self.send_header("Content-Length", str(2**20))
            self.end_headers()
            for _ in range(600):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
            return
        target = self.server.redirects.get(self.path)
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        super().do_GET()


class _Site(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that stops reading (a capped or refused download) is what some tests do on purpose


@pytest.fixture()
def grouplens(tmp_path):
    """A loopback 'GroupLens': serves files put into its folder, records the paths requested, and answers the
    paths in `server.redirects` with a redirect."""
    root = tmp_path / "site"
    root.mkdir()
    server = _Site(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests, server.redirects, server.trickled = [], {}, set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()


def zip_folder(source: Path, archive: Path, top: str) -> str:
    """Zips the folder; returns the archive's sha256 (what an operator pins in data.download_sha256)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(source.iterdir()):
            out.write(path, f"{top}/{path.name}")
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def download_config(make_config, tmp_path, url, sha256="0" * 64, **overrides):
    """Downloads from the loopback site only, with the zip's digest pinned."""
    return make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=url,
                       data__download_allowed=[url], data__download_sha256={"ml-100k": sha256}, **overrides)


def test_download_verifies_caches_and_ingests(spark, make_config, ml100k_dir, grouplens, tmp_path):
    site, url, server = grouplens
    sha256 = zip_folder(ml100k_dir, site / "ml-100k.zip", "ml-100k")
    (site / "ml-100k.zip.md5").write_text("MD5 (ml-100k.zip) = 0123456789abcdef0123456789abcdef\n")
    config = download_config(make_config, tmp_path, url, sha256)

    manifest = ingest.run(config, "dl", spark=spark)
    assert manifest["source"]["digest_checked"] and manifest["source"]["content_length_checked"]
    assert manifest["source"]["digest"] == sha256 and manifest["source"]["digest_algorithm"] == "sha256"
    assert manifest["ratings_sha256_matches_published"] is True
    assert manifest["rows"] == {"ratings": 100_000, "movies": 1682}
    assert manifest["malformed"] == {"ratings": 0, "movies": 0}
    assert (tmp_path / "data" / "downloads" / "ml-100k" / "u.data").is_file()
    assert server.requests == ["/ml-100k.zip"]  # the host's own checksum is not asked for: it proves nothing

    again = ingest.run(config, "dl2", spark=spark)
    assert again["source"]["cached"] is True
    assert len(server.requests) == 1  # the second run did not download again
    assert read_json(run_paths(config, "dl2").manifest)["rows"]["ratings"] == 100_000


def test_a_zip_without_the_pinned_digest_is_rejected_and_not_cached(spark, make_config, ml100k_dir, grouplens,
                                                                     tmp_path):
    site, url, _ = grouplens
    zip_folder(ml100k_dir, site / "ml-100k.zip", "ml-100k")
    config = download_config(make_config, tmp_path, url, "ab" * 32)
    with pytest.raises(JobError, match="corrupt or not the release: sha256"):
        ingest.run(config, "bad", spark=spark)
    assert not list((tmp_path / "data" / "downloads").glob("ml-100k.zip*"))
    # The pin of schemas/movielens.py (GroupLens' own zip) is what applies when none is configured.
    unpinned = make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=url,
                           data__download_allowed=[url])
    with pytest.raises(JobError, match="corrupt or not the release: md5 .* pinned 0e33842e"):
        ingest.run(unpinned, "bad2", spark=spark)


def test_missing_and_non_zip_downloads_fail_clearly(spark, make_config, grouplens, tmp_path):
    site, url, _ = grouplens
    page = b"<html>not a zip</html>"
    config = download_config(make_config, tmp_path, url, hashlib.sha256(page).hexdigest())
    with pytest.raises(JobError, match="HTTP 404"):
        ingest.run(config, "missing", spark=spark)
    (site / "ml-100k.zip").write_bytes(page)
    with pytest.raises(JobError, match="not a zip"):
        ingest.run(config, "html", spark=spark)


def test_downloads_only_from_allowed_places_and_never_redirected_away(spark, make_config, ml100k_dir, grouplens,
                                                                      tmp_path):
    site, url, server = grouplens
    sha256 = zip_folder(ml100k_dir, site / "moved.zip", "ml-100k")
    elsewhere = "http://127.0.0.2:1/datasets"
    refused = make_config(tmp_path / "data", data__movielens_dir=None, data__download_base_url=elsewhere,
                          data__download_sha256={"ml-100k": sha256})
    with pytest.raises(JobError, match="is not allowed; data.download_allowed: https://files.grouplens.org"):
        ingest.run(refused, "elsewhere", spark=spark)
    config = download_config(make_config, tmp_path, url, sha256)
    server.redirects["/ml-100k.zip"] = f"http://localhost:{url.rsplit(':', 1)[1]}/moved.zip"  # another host
    with pytest.raises(JobError, match="redirects to another host"):
        ingest.run(config, "away", spark=spark)
    assert server.requests == ["/ml-100k.zip"]
    server.redirects["/ml-100k.zip"] = "/moved.zip"  # the same host: followed
    assert ingest.run(config, "same-host", spark=spark)["rows"]["ratings"] == 100_000


def test_downloads_and_extractions_are_capped_in_bytes(spark, make_config, grouplens, tmp_path):
    """A zip bomb (64 MB of zeros in a 64 KB zip) is not extracted past data.max_extract_mb, and a download
    past data.max_download_mb is stopped; neither leaves a file in the cache."""
    site, url, _ = grouplens
    bomb = site / "ml-100k.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ml-100k/u.data", b"\0" * (64 * 2**20))
    assert bomb.stat().st_size < 2**20
    sha256 = hashlib.sha256(bomb.read_bytes()).hexdigest()
    config = download_config(make_config, tmp_path, url, sha256, data__max_extract_mb=16)
    with pytest.raises(JobError, match="would extract to 64 MB, over data.max_extract_mb"):
        ingest.run(config, "bomb", spark=spark)
    assert not (tmp_path / "data" / "downloads" / "ml-100k").exists()
    (site / "ml-100k.zip").write_bytes(b"x" * (2 * 2**20))
    big = download_config(make_config, tmp_path / "big", url, "0" * 64, data__max_download_mb=1)
    with pytest.raises(JobError, match="over data.max_download_mb"):
        ingest.run(big, "big", spark=spark)
    assert not list((tmp_path / "big" / "data" / "downloads").glob("ml-100k.zip*"))


def test_a_download_that_trickles_is_stopped_at_its_deadline(spark, make_config, grouplens, tmp_path):
    """A server that sends a byte now and then passes every per-read timeout: the deadline stops it."""
    _, url, server = grouplens
    server.trickled.add("/ml-100k.zip")
    config = download_config(make_config, tmp_path, url, data__download_deadline_s=1)
    with pytest.raises(JobError, match=r"took longer than data.download_deadline_s \(1 s\); stopped"):
        ingest.run(config, "trickled", spark=spark)
    assert not list((tmp_path / "data" / "downloads").glob("ml-100k.zip*"))


def test_a_folder_outside_the_configured_roots_is_refused(spark, make_config, ml100k_dir, tmp_path):
    root = tmp_path / "allowed"
    root.mkdir()
    (root / "ml-100k").symlink_to(ml100k_dir)  # a link inside the root to a folder outside it
    for folder in (ml100k_dir, root / "ml-100k", root / ".." / ".." / ml100k_dir.name):
        config = make_config(tmp_path / "data", data__movielens_dir=str(folder), data__movielens_roots=[str(root)])
        with pytest.raises(JobError, match="outside data.movielens_roots"):
            ingest.run(config, "outside", spark=spark)


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


def write_content_files(folder: Path) -> None:
    """tags.csv (one tag with a comma, one repeated, one of an unknown movie) and genome-scores.csv."""
    tags = ["userId,movieId,tag,timestamp", '1,2,"heist, bank",1139045764', "2,2,Heist,1139045765",
            "3,2,heist,1139045766", "3,2,heist,1139045767", "1,7,time travel,1139045768", "2,8,time travel,1139045769",
            "4,99,lost,1139045770"]
    (folder / "tags.csv").write_text("\n".join(tags) + "\n", encoding="utf-8")
    scores = ["movieId,tagId,relevance"] + [f"{m},{t},{(m * t) % 10 / 10}" for m in range(1, 31) for t in (1, 2, 3)]
    (folder / "genome-scores.csv").write_text("\n".join(scores) + "\n")


def test_csv_layout_with_half_star_ratings_tags_and_genome(spark, make_config, tmp_path):
    folder = tmp_path / "ml-latest-small"
    write_csv_layout(folder)
    write_content_files(folder)
    # no RECO_DATASET: the release is detected from the files and the folder's name
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder),
                         validation__min_ratings=100, validation__min_movies=10,
                         validation__max_bad_event_fraction=0.2)  # one tag in 7 names an unknown movie
    manifest = ingest.run(config, "csv", spark=spark)
    assert manifest["dataset"] == "ml-latest-small"
    assert manifest["layout"] == "csv" and manifest["malformed"]["ratings"] == 0
    assert manifest["rows"]["ratings"] == sum(1 for u in range(1, 41) for m in range(1, 31) if (u + m) % 3)
    assert validate.run(config, "csv", spark=spark)["success"]
    report = clean.run(config, "csv", spark=spark)
    paths = run_paths(config, "csv")
    ratings = spark.read.parquet(paths.clean_ratings)
    assert {r["rating"] for r in ratings.select("rating").distinct().collect()} <= {x / 2 for x in range(1, 11)}
    assert 0.5 in {r["rating"] for r in ratings.select("rating").distinct().collect()}
    movies = {r["movie_id"]: r for r in spark.read.parquet(paths.clean_movies).collect()}
    assert (movies[1]["title"], movies[1]["year"]) == ("American President, The", 1995)
    assert movies[3]["title"] == "Misérables, Les"
    assert movies[4]["genres"] == [] and movies[5]["genres"] == ["Children", "IMAX"]
    # Tags and genome: ingested, validated (within the tolerance for tags people wrote), cleaned by rule.
    assert manifest["content_files"] == {"tags": "tags.csv", "genome": "genome-scores.csv"}
    assert manifest["rows"]["tags"] == 7 and manifest["rows"]["genome"] == 90 and manifest["malformed"]["tags"] == 0
    assert report["tags"]["dropped"] == {"missing_field": 0, "bad_tag_length": 0, "ts_out_of_range": 0,
                                         "unknown_movie": 1, "duplicate": 1}
    assert rows(spark.read.parquet(paths.clean_tags), "movie_id", "tag") == [
        (2, "heist", 2), (2, "heist, bank", 1), (7, "time travel", 1), (8, "time travel", 1)]
    assert report["genome"]["rows_out"] == 90 and report["genome"]["movies"] == 30
    # A broken genome file (GroupLens computes it: held strictly) stops the run at validation.
    broken = run_paths(config, "bad-genome")
    shutil.copytree(run_paths(config, "csv").root, broken.root)
    genome = spark.read.parquet(paths.raw_genome)
    genome.limit(1).selectExpr("movie_id", "tag_id + 1000 AS tag_id", "1.5 AS relevance").unionByName(genome) \
        .write.mode("overwrite").parquet(broken.raw_genome + ".new")
    shutil.rmtree(broken.raw_genome)
    os.rename(broken.raw_genome + ".new", broken.raw_genome)
    with pytest.raises(JobError, match=r"\[genome\] expect_column_values_to_be_between\(column='relevance'"):
        validate.run(config, "bad-genome", spark=spark)


def test_the_tagged_2016_release_as_grouplens_published_it(spark, make_config, tagged_release_dir, tmp_path):
    """ml-latest-small (October 2016) taken as it is: release detected from its README, half stars, tags read,
    validated and cleaned (the whole pipeline and the DAG run on it too: benchmarks/results/quality.md)."""
    config = make_config(tmp_path / "data", data__movielens_dir=str(tagged_release_dir))
    manifest = ingest.run(config, "tagged", spark=spark)
    assert (manifest["dataset"], manifest["layout"]) == ("ml-latest-small", "csv")
    assert manifest["rows"]["ratings"] == 100_004 and manifest["rows"]["movies"] == 9_125
    assert manifest["rows"]["tags"] == 1_296 and manifest["content_files"] == {"tags": "tags.csv"}
    assert validate.run(config, "tagged", spark=spark)["success"]
    report = clean.run(config, "tagged", spark=spark)
    paths = run_paths(config, "tagged")
    ratings = spark.read.parquet(paths.clean_ratings)
    assert ratings.count() == 100_004 and ratings.select("user_id").distinct().count() == 671
    assert {r["rating"] for r in ratings.select("rating").distinct().collect()} == {x / 2 for x in range(1, 11)}
    tags = spark.read.parquet(paths.clean_tags)
    assert report["tags"]["rows_out"] == tags.count() > 1_000 and tags.agg({"people": "sum"}).first()[0] <= 1_296


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
