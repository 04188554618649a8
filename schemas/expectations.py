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

The suites are data here, an expectation as (its Great Expectations class name, its arguments); the validate
job builds and runs them (jobs/lib/data/validation.py).
"""

from __future__ import annotations

import time
from typing import Protocol

from schemas.events import FUTURE_SLACK_S
from schemas.events import TYPES as EVENT_TYPES
from schemas.movielens import RAW_GENRES, DatasetSpec

SUITE_NAMES = ("ratings", "movies", "movie_genres", "events", "tags", "genome")


class Limits(Protocol):
    """What the suites read of the configuration (conf/settings.py ValidationSettings)."""

    min_ratings: int
    min_movies: int
    ts_min_epoch: int
    max_bad_fraction: float
    max_bad_event_fraction: float
    max_tag_length: int


def expect(name: str, **kwargs) -> tuple[str, dict]:
    """An expectation: its Great Expectations class (great_expectations.expectations.<name>) and arguments."""
    return name, kwargs


def suites(spec: DatasetSpec, settings: Limits) -> dict[str, list[tuple[str, dict]]]:
    strict = 1.0 - settings.max_bad_fraction
    tolerated = 1.0 - settings.max_bad_event_fraction
    ts_max = int(time.time()) + FUTURE_SLACK_S  # a timestamp from the future is a broken clock or a bad row

    def present(*columns: str, mostly: float) -> list[tuple[str, dict]]:
        return [expect("ExpectColumnValuesToNotBeNull", column=c, mostly=mostly) for c in columns]

    def timely(mostly: float) -> tuple[str, dict]:
        return expect(
            "ExpectColumnValuesToBeBetween",
            column="ts",
            min_value=settings.ts_min_epoch,
            max_value=ts_max,
            mostly=mostly,
        )

    def in_catalog(mostly: float) -> tuple[str, dict]:
        return expect("ExpectColumnValuesToBeInSet", column="movie_in_catalog", value_set=[True], mostly=mostly)

    return {
        "ratings": [
            expect("ExpectTableRowCountToBeBetween", min_value=settings.min_ratings),
            *present("user_id", "movie_id", "rating", "ts", mostly=strict),
            expect("ExpectColumnValuesToBeBetween", column="user_id", min_value=1, mostly=strict),
            expect("ExpectColumnValuesToBeInSet", column="rating", value_set=list(spec.rating_values), mostly=strict),
            timely(strict),
            in_catalog(strict),
        ],
        "movies": [
            expect("ExpectTableRowCountToBeBetween", min_value=settings.min_movies),
            expect("ExpectColumnValuesToNotBeNull", column="movie_id"),
            expect("ExpectColumnValuesToBeUnique", column="movie_id"),
            *present("title", mostly=strict),
            expect("ExpectColumnValueLengthsToBeBetween", column="title", min_value=1, mostly=strict),
        ],
        "movie_genres": [
            expect("ExpectColumnValuesToBeInSet", column="genre", value_set=sorted(RAW_GENRES), mostly=strict),
        ],
        "events": [
            expect("ExpectColumnValuesToBeUnique", column="stream_id"),  # the archive holds each stream entry once
            *present("user_id", "movie_id", "ts", mostly=tolerated),
            expect("ExpectColumnValuesToBeInSet", column="type", value_set=list(EVENT_TYPES), mostly=tolerated),
            expect("ExpectColumnValuesToBeInSet", column="rating_on_scale", value_set=[True], mostly=tolerated),
            timely(tolerated),
            in_catalog(tolerated),
        ],
        "tags": [
            *present("user_id", "movie_id", "tag", "ts", mostly=tolerated),
            expect(
                "ExpectColumnValueLengthsToBeBetween",
                column="tag",
                min_value=1,
                max_value=settings.max_tag_length,
                mostly=tolerated,
            ),
            timely(tolerated),
            in_catalog(tolerated),
        ],
        "genome": [
            *present("movie_id", "tag_id", "relevance", mostly=strict),
            expect("ExpectColumnValuesToBeBetween", column="relevance", min_value=0.0, max_value=1.0, mostly=strict),
            expect("ExpectCompoundColumnsToBeUnique", column_list=["movie_id", "tag_id"], mostly=strict),
            in_catalog(strict),
        ],
    }


def describe(expectation_type: str, kwargs: dict) -> str:
    """`expect_column_values_to_be_in_set(column=rating, value_set=[1.0, ...])`, short enough for a log line."""

    def short(value):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...]"

    args = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items() if k not in ("batch_id",))
    return f"{expectation_type}({args})"
