"""Great Expectations suites for raw MovieLens data: the contract a run must meet before anything downstream.

Four suites, each over one frame the validate job builds:
- `ratings`: ratings with a `movie_in_catalog` flag (the rated movie exists in movies),
- `movies`: one row per movie,
- `movie_genres`: one row per (movie, genre) pair,
- `events`: the archived events this run trains on (when there are any), with `movie_in_catalog` and
  `rating_on_scale` flags;
- `tags` and `genome`: the release's user tags and tag genome (where it ships them), with `movie_in_catalog`.
Row-level expectations accept up to `validation.max_bad_fraction` bad rows (`mostly`); the default 0 is strict.
Events are what people send: clean drops a bad one and counts it, so their suite tolerates up to
`validation.max_bad_event_fraction` (1%) of bad events and stops the run only above that (a broken sender).
Tags are what people wrote, with the same tolerance; the genome is computed by GroupLens and held strictly.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home from batch jobs

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402

from conf.settings import ValidationSettings  # noqa: E402
from schemas.events import TYPES as EVENT_TYPES  # noqa: E402
from schemas.movielens import RAW_GENRES, DatasetSpec  # noqa: E402

SUITE_NAMES = ("ratings", "movies", "movie_genres", "events", "tags", "genome")


def build_suites(spec: DatasetSpec, settings: ValidationSettings) -> dict[str, gx.ExpectationSuite]:
    mostly = 1.0 - settings.max_bad_fraction
    ts_max = int(time.time()) + 86_400  # tomorrow: a timestamp from the future is a broken clock or a bad row
    ratings = gx.ExpectationSuite(name="ratings", expectations=[
        gxe.ExpectTableRowCountToBeBetween(min_value=settings.min_ratings),
        gxe.ExpectColumnValuesToNotBeNull(column="user_id", mostly=mostly),
        gxe.ExpectColumnValuesToNotBeNull(column="movie_id", mostly=mostly),
        gxe.ExpectColumnValuesToNotBeNull(column="rating", mostly=mostly),
        gxe.ExpectColumnValuesToNotBeNull(column="ts", mostly=mostly),
        gxe.ExpectColumnValuesToBeBetween(column="user_id", min_value=1, mostly=mostly),
        gxe.ExpectColumnValuesToBeInSet(column="rating", value_set=list(spec.rating_values), mostly=mostly),
        gxe.ExpectColumnValuesToBeBetween(column="ts", min_value=settings.ts_min_epoch, max_value=ts_max,
                                          mostly=mostly),
        gxe.ExpectColumnValuesToBeInSet(column="movie_in_catalog", value_set=[True], mostly=mostly),
    ])
    movies = gx.ExpectationSuite(name="movies", expectations=[
        gxe.ExpectTableRowCountToBeBetween(min_value=settings.min_movies),
        gxe.ExpectColumnValuesToNotBeNull(column="movie_id"),
        gxe.ExpectColumnValuesToBeUnique(column="movie_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="title", mostly=mostly),
        gxe.ExpectColumnValueLengthsToBeBetween(column="title", min_value=1, mostly=mostly),
    ])
    movie_genres = gx.ExpectationSuite(name="movie_genres", expectations=[
        gxe.ExpectColumnValuesToBeInSet(column="genre", value_set=sorted(RAW_GENRES), mostly=mostly),
    ])
    tolerated = 1.0 - settings.max_bad_event_fraction
    events = gx.ExpectationSuite(name="events", expectations=[
        gxe.ExpectColumnValuesToBeUnique(column="stream_id"),  # the archive holds each stream entry once
        gxe.ExpectColumnValuesToNotBeNull(column="user_id", mostly=tolerated),
        gxe.ExpectColumnValuesToNotBeNull(column="movie_id", mostly=tolerated),
        gxe.ExpectColumnValuesToNotBeNull(column="ts", mostly=tolerated),
        gxe.ExpectColumnValuesToBeInSet(column="type", value_set=list(EVENT_TYPES), mostly=tolerated),
        gxe.ExpectColumnValuesToBeInSet(column="rating_on_scale", value_set=[True], mostly=tolerated),
        gxe.ExpectColumnValuesToBeBetween(column="ts", min_value=settings.ts_min_epoch, max_value=ts_max,
                                          mostly=tolerated),
        gxe.ExpectColumnValuesToBeInSet(column="movie_in_catalog", value_set=[True], mostly=tolerated),
    ])
    tags = gx.ExpectationSuite(name="tags", expectations=[
        *(gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=tolerated) for c in ("user_id", "movie_id", "tag", "ts")),
        gxe.ExpectColumnValueLengthsToBeBetween(column="tag", min_value=1, max_value=settings.max_tag_length,
                                                mostly=tolerated),
        gxe.ExpectColumnValuesToBeBetween(column="ts", min_value=settings.ts_min_epoch, max_value=ts_max,
                                          mostly=tolerated),
        gxe.ExpectColumnValuesToBeInSet(column="movie_in_catalog", value_set=[True], mostly=tolerated),
    ])
    genome = gx.ExpectationSuite(name="genome", expectations=[
        *(gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly) for c in ("movie_id", "tag_id", "relevance")),
        gxe.ExpectColumnValuesToBeBetween(column="relevance", min_value=0.0, max_value=1.0, mostly=mostly),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["movie_id", "tag_id"], mostly=mostly),
        gxe.ExpectColumnValuesToBeInSet(column="movie_in_catalog", value_set=[True], mostly=mostly),
    ])
    return {"ratings": ratings, "movies": movies, "movie_genres": movie_genres, "events": events, "tags": tags,
            "genome": genome}


def describe(expectation_type: str, kwargs: dict) -> str:
    """`expect_column_values_to_be_in_set(column=rating, value_set=[1.0, ...])`, short enough for a log line."""
    def short(value):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...]"
    args = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items() if k not in ("batch_id",))
    return f"{expectation_type}({args})"
