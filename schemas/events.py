"""What people send back (POST /v1/events), as it travels: the service's validated event -> one entry of the
`reco:events` stream (strings, one field each) -> one row of the Parquet event archive (jobs/lib/events.py).

    stream_id   the entry's id in the stream, "<ms>-<seq>": unique, ordered; the archive's key
    user_id     int; a new person is just an id MovieLens does not have
    movie_id    int; in the live version's catalogue when it was accepted
    type        "rating" | "click" (a person opened a recommended movie)
    rating      float on the dataset's scale for a rating; null for a click
    ts          seconds since the epoch when it happened (the server's time when the sender gave none)
    request_id  the lookup answer a click came from; null when absent
"""
from __future__ import annotations

TYPES = ("rating", "click")
COLUMNS = ("stream_id", "user_id", "movie_id", "type", "rating", "ts", "request_id")
MAX_REQUEST_ID_CHARS = 64


def to_stream_fields(event: dict) -> dict[str, str]:
    """A validated event as stream fields (Redis stores strings; empty means null)."""
    rating = event.get("rating")
    return {"user_id": str(event["user_id"]), "movie_id": str(event["movie_id"]), "type": event["type"],
            "rating": "" if rating is None else repr(float(rating)), "ts": str(event["ts"]),
            "request_id": event.get("request_id") or ""}


def from_stream_entry(stream_id: bytes | str, fields: dict) -> dict:
    """One stream entry (as redis-py returns it) as an archive row."""
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()}
    return {"stream_id": stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
            "user_id": _int(text.get("user_id"), 31), "movie_id": _int(text.get("movie_id"), 31),
            "type": text.get("type") or None, "rating": _float(text.get("rating")), "ts": _int(text.get("ts"), 63),
            "request_id": text.get("request_id") or None}


def arrow_schema():
    import pyarrow as pa
    return pa.schema([("stream_id", pa.string()), ("user_id", pa.int32()), ("movie_id", pa.int32()),
                      ("type", pa.string()), ("rating", pa.float64()), ("ts", pa.int64()),
                      ("request_id", pa.string())])


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), not as text."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_stream_id(stream_id: str) -> str:
    """The smallest id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = stream_id_key(stream_id)
    return f"{ms}-{seq + 1}"


def _int(text: str | None, bits: int) -> int | None:
    """An integer that fits a signed column of bits + 1 bits; anything else is null (clean drops the row)."""
    try:
        value = int(text) if text else None
    except ValueError:
        return None
    return value if value is not None and -2**bits <= value < 2**bits else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
