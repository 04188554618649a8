"""HTTP plumbing every blueprint shares: parsing and bounding parameters (the OpenAPI document states the same
bounds), the JSON answer and error shapes, and the error handlers: bad input is a 4xx JSON error, Redis
unavailable a 503 with Retry-After, never a 500 for anything a client sent."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from schemas.events import MAX_ID
from schemas.movielens import GENRES
from serving.lists import NO_FILTERS, Filters
from serving.observability import REDIS_ERRORS
from serving.versions import NoLiveVersion, StoreUnavailable

log = logging.getLogger("reco.serving")

MAX_QUERY_CHARS = 100
MAX_EXCLUDE = 100
YEARS = (1800, 2100)
DIVERSITY_DECIMALS = 3
# A genre as written ("Sci-Fi") or in lower case ("sci-fi"); the OpenAPI document lists exactly these.
GENRE_NAMES = {**{g: g for g in GENRES}, **{g.lower(): g for g in GENRES}}
FILTER_NAMES = frozenset({"genre", "year_min", "year_max"})


class BadRequest(Exception):
    """A request the service refuses: `status`, `{"error", "detail", **extra}` and any `headers`."""

    def __init__(
        self,
        detail: str,
        status: int = 400,
        error: str = "bad_request",
        extra: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(detail)
        self.detail, self.status, self.error = detail, status, error
        self.extra, self.headers = extra or {}, headers or {}


def json_response(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype="application/json")


def answer(payload: dict) -> Response:
    """A lookup answer, named by its request_id (a click event sends it back)."""
    return json_response({"request_id": g.request_id, **payload})


def error_response(status: int, error: str, detail: str, **extra) -> Response:
    return json_response({"error": error, "detail": detail, **extra}, status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest):
        response = error_response(exc.status, exc.error, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable):
        REDIS_ERRORS.inc()
        response = error_response(
            503,
            "unavailable",
            "the recommendation store is unreachable, or refuses writes (out of memory); retry shortly",
        )
        response.headers["Retry-After"] = "1"  # each request tries Redis again; the pool reconnects by itself
        return response

    @app.errorhandler(NoLiveVersion)
    def no_live_version(exc: NoLiveVersion):
        response = error_response(503, "not_ready", str(exc))
        response.headers["Retry-After"] = "10"  # the first publication is a pipeline run away
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110: a 405 says what is
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; it has been logged")


# ---------------------------------------------------------------- parameters


def parse_id(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= MAX_ID:
        raise BadRequest(f"{name} must be a whole number from 1 to {MAX_ID}, got {raw[:40]!r}")
    return int(raw)


def query_args() -> dict[str, str]:
    """The request's query parameters (the first value of each) as a plain dict, read once by a handler and
    passed to the parsers below. Parsed here, not by werkzeug's `request.args`, which raised on raw bytes that are
    not UTF-8 (a 500); and a missing name in a dict costs a lookup, not the KeyError MultiDict.get raises and
    catches."""
    raw = request.environ.get("QUERY_STRING")
    if not raw:
        return {}
    try:
        text = raw.encode("latin-1").decode()  # WSGI hands the request's bytes over as latin-1
    except UnicodeError:
        raise BadRequest("the query string must be UTF-8 (percent-encode any other bytes)") from None
    query: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
        query.setdefault(name, value)
    return query


def parse_k(query: dict[str, str], limit: int, default: int = 10) -> int:
    raw = query.get("k")
    if raw is None:
        return min(default, limit)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= limit:
        raise BadRequest(f"k must be a whole number from 1 to {limit}, got {raw[:40]!r}")
    return int(raw)


def parse_filters(query: dict[str, str]) -> Filters:
    """`genre=Western,Comedy` (any of them; as written or in lower case), `year_min`, `year_max` (inclusive)."""
    if not query.keys() & FILTER_NAMES:  # most requests ask for no filter
        return NO_FILTERS
    genres: tuple[str, ...] = ()
    raw = query.get("genre")
    if raw is not None:
        names = raw.split(",")
        unknown = [name for name in names if name not in GENRE_NAMES]
        if unknown or len(names) > len(GENRES):
            raise BadRequest(
                f"unknown genre {(unknown or [raw])[0][:40]!r}; up to {len(GENRES)} of: "
                f"{', '.join(GENRES)} (or in lower case), comma-separated"
            )
        genres = tuple(dict.fromkeys(GENRE_NAMES[name] for name in names))
    # A year_min after year_max is an empty range, answered with no movies (the OpenAPI document cannot state
    # a bound between two parameters, so a 400 would refuse a request the document allows).
    return Filters(genres, parse_year(query, "year_min"), parse_year(query, "year_max"))


def parse_year(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) != 4 or not YEARS[0] <= int(raw) <= YEARS[1]:
        raise BadRequest(f"{name} must be a year from {YEARS[0]} to {YEARS[1]}, got {raw[:40]!r}")
    return int(raw)


def parse_diversity(query: dict[str, str]) -> float:
    """`diversity`: 0 (the published order) to 1, at most DIVERSITY_DECIMALS decimals."""
    raw = query.get("diversity")
    if raw is None:
        return 0.0
    whole, dot, decimals = raw.partition(".")
    if not (
        raw.isascii()
        and whole in ("0", "1")
        and (not dot or (decimals.isdigit() and len(decimals) <= DIVERSITY_DECIMALS))
        and float(raw) <= 1
    ):
        raise BadRequest(f"diversity must be a number from 0 to 1 (e.g. 0.3), got {raw[:40]!r}")
    return float(raw)


def parse_exclude(query: dict[str, str]) -> set[int]:
    """`exclude=1,2,3`: at most MAX_EXCLUDE movie ids, each as parse_id takes it."""
    raw = query.get("exclude")
    if raw is None:
        return set()
    parts = raw.split(",")
    if len(parts) > MAX_EXCLUDE:
        raise BadRequest(f"exclude takes at most {MAX_EXCLUDE} movie ids, got {len(parts)}")
    # As the OpenAPI pattern says: 1 to 10 digits, no leading zero (an id no movie has simply matches nothing).
    if not all(part.isascii() and part.isdigit() and len(part) <= 10 and part[0] != "0" for part in parts):
        raise BadRequest(f"exclude must be movie ids separated by commas, got {raw[:40]!r}")
    return {int(part) for part in parts}


def parse_for_user(query: dict[str, str]) -> int | None:
    raw = query.get("user_id")
    return None if raw is None else parse_id(raw, "user_id")
