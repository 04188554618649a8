"""Event intake (blueprint `events`): `POST /v1/events`, what people did with what they were shown.

A request is all-or-nothing: every event is checked first (types, the live version's catalogue and rating
scale, timestamps), then all are appended to the `reco:{events}` stream in one atomic step (serving/event_log.py),
with each rating also pushed onto the person's recent list (for "similar_to_recent" until the next version knows
them) and what they have seen into their excluded set. The answer is 202 once Redis has them: ingest archives the
stream at the start of the next run (jobs/lib/loop/event_archive.py).
A request sent with an `Idempotency-Key` header is appended at most once: the script records the key with the
request's fingerprint and ids (for events.idempotency_ttl_s), and a retry with that key gets the first answer
again (`Idempotent-Replayed: true`) without appending; the same key with another request is a 422.
The backlog limit is checked against the stream length the worker saw with its last write (at most 1 s old,
else XLEN): one round trip per request while intake is busy, at the price of letting each worker's in-flight
request through when the limit is reached.
Writes need the bearer token (`events.token` / RECO_EVENTS_TOKEN), compared in constant time and never logged.
What the public can add is bounded: `events.max_per_minute` for the token's senders together and
`events.max_per_user_per_minute` for one user id (429 with Retry-After beyond, checked in the same script, so a
refused request writes nothing), and `events.backlog` events waiting in all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import orjson
from flask import Blueprint, current_app, request

from conf.settings import EventSettings
from schemas import redis_keys as rk
from schemas.events import FUTURE_SLACK_S, MAX_ID, MAX_REQUEST_ID_CHARS, TYPES
from schemas.movielens import DATASETS
from serving.event_log import AppendRequest, EventLog, KeyReused, OverCap
from serving.http import BadRequest, json_response
from serving.observability import EVENTS_ACCEPTED, EVENTS_REJECTED, EVENTS_REPLAYED
from serving.versions import Versions

events = Blueprint("events", __name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,%d}$" % MAX_REQUEST_ID_CHARS)  # also an Idempotency-Key's form
FIELDS = {"user_id", "movie_id", "type", "rating", "ts", "request_id"}


class Unauthorized(BadRequest):
    def __init__(self, detail: str):
        super().__init__(detail, 401, "unauthorized", headers={"WWW-Authenticate": 'Bearer realm="events"'})


def settings() -> EventSettings:
    return current_app.config["RECO_EVENTS"]


def versions() -> Versions:
    return current_app.extensions["reco_versions"]


def event_log() -> EventLog:
    return current_app.extensions["reco_event_log"]


def authorize(token: str | None) -> None:
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    if not token:
        raise Unauthorized("event intake is closed: the service has no events.token (RECO_EVENTS_TOKEN)")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise Unauthorized("a valid bearer token is required (Authorization: Bearer <token>)")


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_event(index: int, event, rating_values: tuple[float, ...], ts_min: int, now: int) -> dict:
    """One event as the stream stores it, or BadRequest naming `events[index].field`: 400 where it breaks the
    OpenAPI document's schema, 422 where it is well-formed but the live version cannot take it."""

    def bad(field: str, why: str, status: int = 400):
        raise BadRequest(
            f"events[{index}].{field}: {why}" if field else f"events[{index}]: {why}",
            status,
            "invalid_event" if status == 400 else "unprocessable_event",
            extra={"index": index, "field": field or None},
        )

    if not isinstance(event, dict):
        bad("", "must be an object")
    unknown = sorted(set(event) - FIELDS)
    if unknown:
        bad(unknown[0], f"unknown field; the fields are {', '.join(sorted(FIELDS))}")
    for field in ("user_id", "movie_id"):
        if not _whole(event.get(field), 1, MAX_ID):
            bad(field, f"must be a whole number from 1 to {MAX_ID}")
    kind = event.get("type")
    if kind not in TYPES:
        bad("type", f"must be one of {', '.join(TYPES)}")
    rating = event.get("rating")
    if kind == "rating":
        if (
            isinstance(rating, bool)
            or not isinstance(rating, (int, float))
            or not 0.5 <= rating <= 5
            or (rating * 2) % 1
        ):
            bad("rating", "a rating event needs a rating from 0.5 to 5 in half stars")
        rating = float(rating)
        if rating not in rating_values:
            bad(
                "rating", f"must be one of {', '.join(f'{v:g}' for v in rating_values)} (the live dataset's scale)", 422
            )
    elif "rating" in event:
        bad("rating", "only a rating event has a rating")
    ts = event.get("ts", now)
    if not _whole(ts, 0, 2**63 - 1):
        bad("ts", "must be whole seconds since the epoch")
    if not ts_min <= ts <= now + FUTURE_SLACK_S:
        bad("ts", f"must be from {ts_min} (validation.ts_min) to {now + FUTURE_SLACK_S} (tomorrow)", 422)
    request_id = event.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not REQUEST_ID.match(request_id)):
        bad("request_id", f"must be 1 to {MAX_REQUEST_ID_CHARS} letters, digits, '-' or '_'")
    return {
        "user_id": event["user_id"],
        "movie_id": event["movie_id"],
        "type": kind,
        "rating": rating,
        "ts": ts,
        "request_id": request_id,
    }


def checked_against_live(raw: list, config: EventSettings) -> list[dict]:
    """The events as the stream stores them, checked against the live version (its catalogue and rating scale)
    and the backlog limit; else BadRequest (400, 422 or 503) naming the first bad event (counted by the caller:
    a retry's refusal may still be answered by its idempotency key)."""
    version, (meta,) = versions().lookup(rk.suffix("meta"))
    spec = DATASETS.get((meta or {}).get("dataset") or "")
    rating_values = spec.rating_values if spec else ()
    now = int(time.time())
    checked = [check_event(i, e, rating_values, current_app.config["RECO_TS_MIN"], now) for i, e in enumerate(raw)]
    movie_ids = list(dict.fromkeys(e["movie_id"] for e in checked))
    known = dict(zip(movie_ids, versions().get_in_version(version, [rk.suffix("movie", m) for m in movie_ids])))
    for index, event in enumerate(checked):
        if known[event["movie_id"]] is None:
            raise BadRequest(
                f"events[{index}].movie_id: movie {event['movie_id']} is not in the catalogue of version {version}",
                422,
                "unprocessable_event",
                extra={"index": index, "field": "movie_id"},
            )

    if event_log().backlog() >= config.backlog:
        raise BadRequest(
            f"the event backlog is full ({config.backlog} events wait for the next run); retry later",
            503,
            "backlog_full",
            headers={"Retry-After": "60"},
        )
    return checked


def replayed_answer(ids: list[str]):
    """The first answer again, for a retry whose Idempotency-Key was recorded: nothing appended."""
    EVENTS_REPLAYED.inc(len(ids))
    response = json_response({"accepted": len(ids), "ids": ids}, 202)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def rejection_reason(refused: BadRequest) -> str:
    """The metric's label for a refusal by the checks: the field at fault, from a fixed set (a field name the
    client made up would be a new time series per name), or the kind of refusal."""
    field = refused.extra.get("field")
    if field:
        return field if field in FIELDS else "unknown_field"
    return "event" if "index" in refused.extra else refused.error


@events.post("/v1/events")
def post_events():
    config: EventSettings = settings()
    authorize(config.token)
    return take_events(config)


@events.post("/demo/events")
def page_events():
    """The page's own way to post what the person on display does (rate, not interested) without the intake's
    token in the browser: same origin, the same checks and caps, and off unless serving.page_events (a demo
    setting: `make demo` turns it on; anyone who reaches the page could post events for any user)."""
    if not current_app.config["RECO_PAGE_EVENTS"]:
        raise BadRequest("no such resource (the page's events are off: serving.page_events)", 404, "not_found")
    return take_events(settings())


def take_events(config: EventSettings):
    key = request.headers.get("Idempotency-Key")
    if key is not None and not REQUEST_ID.match(key):
        EVENTS_REJECTED.labels(reason="idempotency_key").inc()
        raise BadRequest(
            f"Idempotency-Key: must be 1 to {MAX_REQUEST_ID_CHARS} letters, digits, '-' or '_'",
            error="bad_idempotency_key",
            extra={"field": "Idempotency-Key"},
        )
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        EVENTS_REJECTED.labels(reason="json").inc()
        raise BadRequest(f"the body is not JSON: {exc}", error="bad_json") from None
    raw = body.get("events") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw or set(body) != {"events"}:
        EVENTS_REJECTED.labels(reason="events").inc()
        raise BadRequest('the body must be {"events": [event, ...]} with at least one event', error="bad_body")
    if len(raw) > config.max_events_per_request:
        EVENTS_REJECTED.labels(reason="too_many").inc()
        raise BadRequest(
            f"{len(raw)} events; at most {config.max_events_per_request} per request", error="too_many_events"
        )

    # The fingerprint is of the events as sent (keys sorted): a retry's server-filled ts may differ.
    once = (
        (key, hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest(), config.idempotency_ttl_s)
        if key
        else None
    )
    try:
        checked = checked_against_live(raw, config)
    except BadRequest as refused:
        # A retry of a request stored before a flip, or before the backlog filled, still gets its first answer.
        if once and refused.status in (422, 503) and (ids := event_log().recorded(once[0], once[1])) is not None:
            return replayed_answer(ids)
        EVENTS_REJECTED.labels(reason=rejection_reason(refused)).inc()
        raise
    try:
        ids, replayed = event_log().append(
            AppendRequest(
                checked,
                config.recent_max,
                config.recent_ttl_days * 86_400,
                int(time.time() // 60),
                once,
                (config.max_per_minute, config.max_per_user_per_minute),
            )
        )
    except OverCap as over:
        EVENTS_REJECTED.labels(reason="rate_intake" if over.who == "intake" else "rate_user").inc()
        whose = "the intake's" if over.who == "intake" else f"user {over.who}'s"
        cap = config.max_per_minute if over.who == "intake" else config.max_per_user_per_minute
        raise BadRequest(
            f"this request would take {whose} events past {cap} a minute; retry after {over.retry_after} s",
            429,
            "too_many_events_per_minute",
            headers={"Retry-After": str(over.retry_after)},
        ) from None
    except KeyReused:
        EVENTS_REJECTED.labels(reason="idempotency_key").inc()
        raise BadRequest(
            "Idempotency-Key: already used for a different request; use a new key for new events",
            422,
            "idempotency_key_reused",
            extra={"field": "Idempotency-Key"},
        ) from None
    if replayed:
        return replayed_answer(ids)
    for kind in TYPES:
        if count := sum(1 for event in checked if event["type"] == kind):
            EVENTS_ACCEPTED.labels(type=kind).inc(count)
    return json_response({"accepted": len(ids), "ids": ids}, 202)
