"""ingest: MovieLens (a local folder or GroupLens' zip) -> raw ratings and movies in Parquet, plus a manifest.

Reads all three published layouts (ml-100k's u.data/u.item, ml-1m's `::` .dat files, and the CSV of
ml-latest-small / ml-20m / ml-25m / ml-32m). Fields that do not parse become nulls and are counted as
malformed in the manifest: the validate job decides whether the run may go on.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from pathlib import Path

import requests
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Config
from jobs.common import JobError, is_local, job_main, join, run_paths, spark_session, utc_now, write_json
from schemas.movielens import DATASETS, GENRES_100K, RAW_MOVIES, RAW_RATINGS, DatasetSpec

log = logging.getLogger("reco.ingest")

# ---------------------------------------------------------------- acquiring the files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_dataset(spec: DatasetSpec, base_url: str, cache_dir: Path, timeout: float = 60.0) -> dict:
    """Download `<base_url>/<name>.zip` into the cache once, verified, and extract it.

    Verification: the byte count against Content-Length, the MD5 GroupLens publishes beside each zip
    (`<zip>.md5`) when the server has it, and the zip's own CRCs. A download that fails any of them is
    deleted, so the cache never holds a bad file. Returns what was checked, for the manifest.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{spec.zip_name}"
    zip_path = cache_dir / spec.zip_name
    stamp = cache_dir / f"{spec.zip_name}.verified"
    extracted = cache_dir / spec.name
    if zip_path.exists() and stamp.exists() and stamp.read_text().strip() == sha256_of(zip_path):
        log.info("using cached %s", zip_path)
        checks = {"cached": True}
    else:
        checks = _fetch_verified(url, zip_path, timeout)
        stamp.write_text(sha256_of(zip_path))
        shutil.rmtree(extracted, ignore_errors=True)
    if not (extracted / spec.ratings_file).exists():
        tmp = cache_dir / f".{spec.name}.extracting"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        # Archives hold one top folder named like the dataset; take whichever folder has the ratings.
        inner = next(p.parent for p in tmp.rglob(spec.ratings_file))
        shutil.rmtree(extracted, ignore_errors=True)
        os.replace(inner, extracted)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"url": url, "zip": str(zip_path), "folder": str(extracted), **checks}


def _fetch_verified(url: str, zip_path: Path, timeout: float) -> dict:
    part = zip_path.with_suffix(".zip.part")
    log.info("downloading %s", url)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise JobError(f"download of {url} failed: HTTP {response.status_code}")
            expected_size = int(response.headers.get("Content-Length", 0)) or None
            md5 = hashlib.md5()
            with open(part, "wb") as out:
                for block in response.iter_content(1 << 20):
                    out.write(block)
                    md5.update(block)
        size = part.stat().st_size
        if expected_size is not None and size != expected_size:
            raise JobError(f"download of {url} is truncated: {size} of {expected_size} bytes")
        published_md5 = _published_md5(url, timeout)
        if published_md5 is not None and published_md5 != md5.hexdigest():
            raise JobError(f"download of {url} is corrupt: md5 {md5.hexdigest()}, published {published_md5}")
        with zipfile.ZipFile(part) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise JobError(f"download of {url} is corrupt: CRC error in {bad}")
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} is not a zip archive: {exc}") from None
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} failed: {exc}") from None
    except JobError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, zip_path)
    return {"bytes": size, "content_length_checked": expected_size is not None,
            "md5": md5.hexdigest(), "md5_checked": published_md5 is not None, "zip_crc_checked": True}


def _published_md5(url: str, timeout: float) -> str | None:
    try:
        response = requests.get(url + ".md5", timeout=timeout)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    # GroupLens' .md5 files read "MD5 (ml-100k.zip) = <hex>"; md5sum writes "<hex>  name". Take the hex word.
    words = [w for w in response.text.replace("=", " ").split() if len(w) == 32]
    return words[0].lower() if words else None


def locate_source(config: Config, spec: DatasetSpec) -> dict:
    """The folder holding the dataset's files: RECO_MOVIELENS_DIR if set, otherwise the verified download."""
    if config.movielens_dir:
        folder = Path(config.movielens_dir)
        if not (folder / spec.ratings_file).is_file() or not (folder / spec.movies_file).is_file():
            raise JobError(f"{folder} does not hold {spec.ratings_file} and {spec.movies_file} "
                           f"(the {spec.name} layout)")
        return {"folder": str(folder), "url": None}
    cache = Path(join(config.data_root, "downloads")) if is_local(config.data_root) else \
        Path.home() / ".cache" / "movielens-reco"
    return download_dataset(spec, config.data.download_base_url, cache)


# ---------------------------------------------------------------- parsing (pure DataFrame functions)


def _int(column: str):
    return F.trim(F.col(column)).try_cast("int")


def parse_ratings(raw: DataFrame) -> DataFrame:
    """Four string columns (user, movie, rating, timestamp) -> RAW_RATINGS; unparsable fields become null."""
    c_user, c_movie, c_rating, c_ts = raw.columns[:4]
    return raw.select(
        _int(c_user).alias("user_id"),
        _int(c_movie).alias("movie_id"),
        F.trim(F.col(c_rating)).try_cast("double").alias("rating"),
        F.trim(F.col(c_ts)).try_cast("long").alias("ts"),
    )


def parse_movies_100k(raw: DataFrame) -> DataFrame:
    """u.item: id | title | release date | video date | url | 19 genre flags -> RAW_MOVIES."""
    cols = raw.columns
    flags = cols[5:5 + len(GENRES_100K)]
    genres = F.array(*[F.when(F.trim(F.col(c)) == "1", F.lit(g)) for c, g in zip(flags, GENRES_100K)])
    released = F.try_to_timestamp(F.trim(F.col(cols[2])), F.lit("dd-MMM-yyyy"))
    return raw.select(
        _int(cols[0]).alias("movie_id"),
        F.col(cols[1]).alias("title"),
        F.year(released).cast("int").alias("year"),
        F.filter(genres, lambda g: g.isNotNull()).alias("genres"),
    )


def parse_movies_pipe_genres(raw: DataFrame) -> DataFrame:
    """movies.dat and movies.csv: id, title, "A|B|C" -> RAW_MOVIES (no release date field: year is null)."""
    c_id, c_title, c_genres = raw.columns[:3]
    return raw.select(
        _int(c_id).alias("movie_id"),
        F.col(c_title).alias("title"),
        F.lit(None).cast("int").alias("year"),
        F.when(F.col(c_genres).isNull(), F.array().cast("array<string>"))
         .otherwise(F.split(F.col(c_genres), r"\|")).alias("genres"),
    )


def count_malformed(parsed: DataFrame) -> DataFrame:
    """Rows with any field that did not parse."""
    return parsed.where(" OR ".join(f"{c} IS NULL" for c in ("user_id", "movie_id", "rating", "ts")))


def read_layout(spark: SparkSession, spec: DatasetSpec, folder: str) -> tuple[DataFrame, DataFrame]:
    """Read the dataset's two files in their published layout and return (raw ratings, raw movies)."""
    ratings_path, movies_path = join(folder, spec.ratings_file), join(folder, spec.movies_file)
    reader = spark.read.option("mode", "PERMISSIVE")
    if spec.layout == "csv":
        ratings_text = reader.csv(ratings_path, header=True, inferSchema=False)
        movies_text = reader.csv(movies_path, header=True, inferSchema=False, quote='"', escape='"',
                                 encoding="UTF-8")
        movies = parse_movies_pipe_genres(movies_text)
    elif spec.layout == "dat":
        ratings_text = reader.csv(ratings_path, sep="::", inferSchema=False)
        movies_text = reader.csv(movies_path, sep="::", inferSchema=False, encoding="ISO-8859-1", quote="")
        movies = parse_movies_pipe_genres(movies_text)
    else:
        ratings_text = reader.csv(ratings_path, sep="\t", inferSchema=False)
        movies_text = reader.csv(movies_path, sep="|", inferSchema=False, encoding="ISO-8859-1", quote="")
        movies = parse_movies_100k(movies_text)
    ratings_text = _ensure_columns(ratings_text, 4)
    return parse_ratings(ratings_text), movies


def _ensure_columns(frame: DataFrame, n: int) -> DataFrame:
    """A file with the wrong delimiter reads as one column; pad with nulls so parsing flags every row."""
    for i in range(len(frame.columns), n):
        frame = frame.withColumn(f"_missing{i}", F.lit(None).cast("string"))
    return frame


# ---------------------------------------------------------------- the job


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[config.data.dataset]
    source = locate_source(config, spec)
    folder = Path(source["folder"])
    files = {}
    for name in (spec.ratings_file, spec.movies_file):
        files[name] = {"bytes": (folder / name).stat().st_size, "sha256": sha256_of(folder / name)}
    published_ok = None
    if spec.ratings_sha256:
        published_ok = files[spec.ratings_file]["sha256"] == spec.ratings_sha256
        if not published_ok and source.get("url"):
            raise JobError(f"downloaded {spec.ratings_file} differs from the published file (sha256)")
        if not published_ok:
            log.warning("%s differs from the published file: validation will judge it", spec.ratings_file)

    spark = spark or spark_session(config, "ingest")
    spark_folder = source["folder"]
    if not is_local(config.data_root):
        # Executors on a cluster cannot see the driver's disk: stage the files beside the run.
        from pyarrow import fs as pafs
        staged = join(paths.root, "ingest", "source")
        pafs.copy_files(source["folder"], staged.replace("s3a://", "s3://"))
        spark_folder = staged
    ratings, movies = read_layout(spark, spec, spark_folder)
    ratings = ratings.select([f.name for f in RAW_RATINGS.fields])
    movies = movies.select([f.name for f in RAW_MOVIES.fields])
    ratings.write.mode("overwrite").parquet(paths.raw_ratings)
    movies.write.mode("overwrite").parquet(paths.raw_movies)

    written_ratings = spark.read.parquet(paths.raw_ratings)
    written_movies = spark.read.parquet(paths.raw_movies)
    manifest = {
        "run_id": run_id,
        "dataset": spec.name,
        "layout": spec.layout,
        "source": source,
        "files": files,
        "ratings_sha256_matches_published": published_ok,
        "rows": {"ratings": written_ratings.count(), "movies": written_movies.count()},
        "malformed": {
            "ratings": count_malformed(written_ratings).count(),
            "movies": written_movies.where("movie_id IS NULL OR title IS NULL").count(),
        },
        "ingested_at": utc_now(),
    }
    write_json(paths.manifest, manifest)
    log.info("ingested %s ratings and %s movies into %s", manifest["rows"]["ratings"],
             manifest["rows"]["movies"], paths.root)
    return manifest


def main() -> None:
    job_main("ingest", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
