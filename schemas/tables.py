"""Spark schemas of the raw and clean tables (column names from `schemas/movielens.py`)."""

from __future__ import annotations

from pyspark.sql import types as T

from schemas.movielens import GENOME_COLUMNS, MOVIE_COLUMNS, RATING_COLUMNS, TAG_COLUMNS

_RATING_TYPES = (T.IntegerType(), T.IntegerType(), T.DoubleType(), T.LongType())  # ts: seconds since the epoch

RAW_RATINGS = T.StructType([T.StructField(name, kind) for name, kind in zip(RATING_COLUMNS, _RATING_TYPES)])
CLEAN_RATINGS = RAW_RATINGS

RAW_MOVIES = T.StructType(
    [
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("title", T.StringType()),  # as published, year suffix included
        T.StructField("year", T.IntegerType()),  # release year where the layout has a date field, else null
        T.StructField("genres", T.ArrayType(T.StringType())),  # as published
    ]
)

CLEAN_MOVIES = T.StructType(
    [
        T.StructField("movie_id", T.IntegerType(), False),
        T.StructField("title", T.StringType()),  # year suffix removed
        T.StructField("year", T.IntegerType()),
        T.StructField("genres", T.ArrayType(T.StringType())),  # from schemas.movielens.GENRES
    ]
)
assert tuple(RAW_MOVIES.names) == tuple(CLEAN_MOVIES.names) == MOVIE_COLUMNS

# Optional content files (schemas.movielens.CONTENT_FILES). A tag as a person wrote it; clean lowercases it.
RAW_TAGS = T.StructType(
    [
        T.StructField(name, kind)
        for name, kind in zip(TAG_COLUMNS, (T.IntegerType(), T.IntegerType(), T.StringType(), T.LongType()))
    ]
)
RAW_GENOME = T.StructType(
    [
        T.StructField(name, kind)
        for name, kind in zip(GENOME_COLUMNS, (T.IntegerType(), T.IntegerType(), T.DoubleType()))
    ]
)
# Clean tags: one row per (movie, tag), with how many people applied it.
CLEAN_TAGS = T.StructType(
    [
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("tag", T.StringType()),  # trimmed, lowercased, inner spaces collapsed
        T.StructField("people", T.LongType()),
    ]
)
CLEAN_GENOME = RAW_GENOME

# The event archive (schemas/events.py; written by pyarrow, read by clean).
EVENTS = T.StructType(
    [
        T.StructField("stream_id", T.StringType()),
        T.StructField("user_id", T.IntegerType()),
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("type", T.StringType()),
        T.StructField("rating", T.DoubleType()),
        T.StructField("ts", T.LongType()),
        T.StructField("request_id", T.StringType()),
    ]
)

# (user, movie) pairs a person dismissed ("not interested"): left out of their lists, and of the clicks.
CLEAN_DISMISSED = T.StructType(
    [
        T.StructField("user_id", T.IntegerType()),
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("ts", T.LongType()),  # the latest dismissal
    ]
)

# Clicks per (user, movie) that clean kept: implicit signal for training.
CLEAN_CLICKS = T.StructType(
    [
        T.StructField("user_id", T.IntegerType()),
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("clicks", T.LongType()),
        T.StructField("ts", T.LongType()),  # the latest click
    ]
)
