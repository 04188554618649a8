"""The three MovieLens layouts into one raw schema (pure DataFrame functions but `read_layout`).

Fields that do not parse become nulls, counted as malformed in the manifest: validation decides whether the run
goes on.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from schemas.movielens import CONTENT_FILES, GENRES_100K, DatasetSpec
from schemas.storage import join


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


def parse_tags(raw: DataFrame) -> DataFrame:
    """tags.csv / tags.dat: user, movie, tag, timestamp -> RAW_TAGS (the tag as written; null where absent)."""
    c_user, c_movie, c_tag, c_ts = raw.columns[:4]
    return raw.select(_int(c_user).alias("user_id"), _int(c_movie).alias("movie_id"), F.col(c_tag).alias("tag"),
                      F.trim(F.col(c_ts)).try_cast("long").alias("ts"))


def parse_genome(raw: DataFrame) -> DataFrame:
    """genome-scores.csv: movie, tag id, relevance -> RAW_GENOME."""
    c_movie, c_tag, c_relevance = raw.columns[:3]
    return raw.select(_int(c_movie).alias("movie_id"), _int(c_tag).alias("tag_id"),
                      F.trim(F.col(c_relevance)).try_cast("double").alias("relevance"))


MALFORMED = {  # a row with any of these null did not parse (or lacks a field)
    "ratings": ("user_id", "movie_id", "rating", "ts"),
    "tags": ("user_id", "movie_id", "tag", "ts"),
    "genome": ("movie_id", "tag_id", "relevance"),
}


def count_malformed(parsed: DataFrame, kind: str = "ratings") -> DataFrame:
    """Rows with any field that did not parse."""
    return parsed.where(" OR ".join(f"{c} IS NULL" for c in MALFORMED[kind]))


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


def content_files(spec: DatasetSpec, present) -> dict[str, str]:
    """{"tags": "tags.csv", ...}: the optional content files of the release's layout among the names `present`."""
    return {kind: name for kind, name in CONTENT_FILES.get(spec.layout, {}).items() if name in present}


def read_content(spark: SparkSession, spec: DatasetSpec, folder: str, files: dict[str, str]) -> dict[str, DataFrame]:
    """The content files named by `content_files`, parsed: {"tags": RAW_TAGS, "genome": RAW_GENOME}."""
    from schemas.tables import RAW_GENOME, RAW_TAGS
    reader = spark.read.option("mode", "PERMISSIVE")
    frames = {}
    if "tags" in files:
        path = join(folder, files["tags"])
        text = reader.csv(path, sep="::", inferSchema=False, quote="") if spec.layout == "dat" else \
            reader.csv(path, header=True, inferSchema=False, quote='"', escape='"', encoding="UTF-8")
        frames["tags"] = parse_tags(_ensure_columns(text, 4)).select(*RAW_TAGS.names)
    if "genome" in files:
        text = reader.csv(join(folder, files["genome"]), header=True, inferSchema=False)
        frames["genome"] = parse_genome(_ensure_columns(text, 3)).select(*RAW_GENOME.names)
    return frames


def _ensure_columns(frame: DataFrame, n: int) -> DataFrame:
    """A file with the wrong delimiter reads as one column; pad with nulls so parsing flags every row."""
    for i in range(len(frame.columns), n):
        frame = frame.withColumn(f"_missing{i}", F.lit(None).cast("string"))
    return frame


def raw_tables(spark: SparkSession, spec: DatasetSpec, folder: str) -> tuple[DataFrame, DataFrame]:
    """(raw ratings, raw movies) in the column order of schemas/tables.py."""
    from schemas.tables import RAW_MOVIES, RAW_RATINGS
    ratings, movies = read_layout(spark, spec, folder)
    return ratings.select(*RAW_RATINGS.names), movies.select(*RAW_MOVIES.names)
