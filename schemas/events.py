"""What people send back (POST /v1/events), as it travels: the service's validated event -> one entry of the
`reco:{events}` stream (one field, `event`, holding the event as JSON: a third of the command arguments of a
field per column, which is most of the intake's cost) -> one row of the Parquet event archive
(jobs/lib/loop/event_archive.py).

    stream_id   the entry's id in the stream, "<ms>-<seq>": unique, ordered; the archive's key
    user_id     int; a new person is just an id MovieLens does not have
    movie_id    int; in the live version's catalogue when it was accepted
    type        "rating" | "click" (a person opened a recommended movie) | "dismiss" ("not interested": hidden
                from that person at once and for good)
    rating      float on the dataset's scale for a rating; null otherwise
    ts          seconds since the epoch when it happened (the server's time when the sender gave none)
    request_id  the lookup answer a click came from; null when absent
"""

from __future__ import annotations

import orjson

TYPES = ("rating", "click", "dismiss")
MAX_ID = 2**31 - 1  # user and movie ids: positive 32-bit integers
COLUMNS = ("stream_id", "user_id", "movie_id", "type", "rating", "ts", "request_id")
MAX_REQUEST_ID_CHARS = 64
FUTURE_SLACK_S = 86_400  # an event or rating stamped more than a day ahead of now: a broken clock or a bad row
FIELD = "event"  # the stream entry's one field (serving/versions.py's script writes it too)


def to_stream_value(event: dict) -> bytes:
    """A validated event as the JSON its stream entry holds."""
    return orjson.dumps({k: event.get(k) for k in COLUMNS[1:]})


def to_stream_fields(event: dict) -> dict[str, bytes]:
    """A validated event as the stream entry's fields."""
    return {FIELD: to_stream_value(event)}


def from_stream_entry(stream_id: bytes | str, fields: dict) -> dict:
    """One stream entry (as redis-py returns it) as an archive row; what cannot be read becomes null (clean
    drops the row as missing_field)."""
    raw = fields.get(FIELD.encode(), fields.get(FIELD))
    try:
        event = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        event = {}
    if not isinstance(event, dict):
        event = {}
    kind, request_id = event.get("type"), event.get("request_id")
    return {
        "stream_id": stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
        "user_id": _int(event.get("user_id"), 31),
        "movie_id": _int(event.get("movie_id"), 31),
        "type": kind if isinstance(kind, str) else None,
        "rating": _float(event.get("rating")),
        "ts": _int(event.get("ts"), 63),
        "request_id": request_id if isinstance(request_id, str) else None,
    }


class MalformedEvent(ValueError):
    """A stream entry or archive row that is not an event the intake could have accepted (written around it)."""


def event_of(fields: dict) -> dict:
    """The event a stream entry holds, {user_id, movie_id, type, rating}, or MalformedEvent saying what is wrong
    with it: what a consumer folds in must be what the intake accepts (serving/intake.py checks it in full)."""
    raw = fields.get(FIELD.encode(), fields.get(FIELD))
    if raw is None:
        raise MalformedEvent(f"no {FIELD!r} field")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedEvent("not JSON") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"a JSON {type(event).__name__}, not an object")
    return checked(event)


def checked(event: dict) -> dict:
    """{user_id, movie_id, type, rating} of an event as the stream or the archive holds it, else MalformedEvent."""
    for field in ("user_id", "movie_id"):
        value = event.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            raise MalformedEvent(f"{field} {value!r} is not an id")
    kind, rating = event.get("type"), event.get("rating")
    if kind not in TYPES:
        raise MalformedEvent(f"type {kind!r} is not one of {', '.join(TYPES)}")
    if kind == "rating" and (isinstance(rating, bool) or not isinstance(rating, (int, float)) or not 0 < rating <= 10):
        raise MalformedEvent(f"rating {rating!r} is not a rating")
    return {
        "user_id": event["user_id"],
        "movie_id": event["movie_id"],
        "type": kind,
        "rating": float(rating) if kind == "rating" and rating is not None else None,
    }


def arrow_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("stream_id", pa.string()),
            ("user_id", pa.int32()),
            ("movie_id", pa.int32()),
            ("type", pa.string()),
            ("rating", pa.float64()),
            ("ts", pa.int64()),
            ("request_id", pa.string()),
        ]
    )


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), not as text."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_stream_id(stream_id: str) -> str:
    """The smallest id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = stream_id_key(stream_id)
    return f"{ms}-{seq + 1}"


def _int(value, bits: int) -> int | None:
    """An integer that fits a signed column of bits + 1 bits; anything else is null."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**bits) <= value < 2**bits:
        return None
    return value


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
