"""The intake's write path: a request's events appended to the `reco:{events}` stream in one atomic step,
with what each person's answers need at once (their latest ratings; what they have seen, schemas/people.py),
the per-minute caps and the idempotency record checked and written in the same step (serving/append_events.lua:
redis-py packing a MULTI of 100 XADDs and the per-person commands cost the worker about 5 times the one
EVALSHA). Every key carries the {events} hash tag (one cluster slot)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import resources

import redis

from schemas import redis_keys as rk
from schemas.events import FIELD, to_stream_value
from schemas.people import marks_seen
from serving.versions import StoreUnavailable

log = logging.getLogger(__name__)

SCRIPT = resources.files("serving").joinpath("append_events.lua").read_text()


class KeyReused(ValueError):
    """An idempotency key came back with a different request than the one it was first used for."""


class OverCap(ValueError):
    """A request that would take the intake or one person past their events per minute: `who` is "intake" or the
    user id, `retry_after` the seconds to the next minute."""

    def __init__(self, who, retry_after: int):
        super().__init__(who)
        self.who, self.retry_after = who, retry_after


@dataclass(frozen=True)
class AppendRequest:
    """One request's events (checked, as the stream stores them) and what the script needs to store them: the
    keys and arguments in the layout append_events.lua reads."""

    events: list[dict]
    recent_max: int
    recent_ttl_s: int
    minute: int
    once: tuple[str, str, int] | None = None  # (idempotency key, the request's fingerprint, seconds kept)
    caps: tuple[int, int] = (2**53, 2**53)  # events per minute: the intake's, one person's

    def people(self) -> dict[int, list[dict]]:
        by_person: dict[int, list[dict]] = {}
        for event in self.events:
            by_person.setdefault(event["user_id"], []).append(event)
        return by_person

    def keys(self) -> list[str]:
        keys = [rk.EVENTS, rk.intake_rate(self.minute)] + ([rk.idempotency(self.once[0])] if self.once else [])
        for person in self.people():
            keys += [rk.recent(person), rk.excluded(person), rk.user_rate(person, self.minute)]
        return keys

    def args(self) -> list:
        once = [self.once[2], self.once[1]] if self.once else [0, ""]
        args = [
            FIELD,
            self.recent_max,
            self.recent_ttl_s,
            len(self.events),
            *once,
            *self.caps,
            *(to_stream_value(e) for e in self.events),
        ]
        for theirs in self.people().values():
            recent = [f"{e['movie_id']}:{e['rating']:g}" for e in theirs if e["type"] == "rating"]
            seen = [e["movie_id"] for e in theirs if marks_seen(e["type"])]
            args += [len(theirs), len(recent), len(seen), *recent, *seen]
        return args


def _recorded(value: bytes | str) -> tuple[str, list[str]]:
    """An idempotency key's record, as the script writes it: (fingerprint, stream ids)."""
    fingerprint, *ids = (value.decode() if isinstance(value, bytes) else value).split(" ")
    return fingerprint, ids


class EventLog:
    def __init__(self, client: redis.Redis):
        self.client = client
        self._append = client.register_script(SCRIPT)
        self._backlog: tuple[int, float] | None = None  # (stream length, monotonic time seen)

    def append(self, request: AppendRequest) -> tuple[list[str], bool]:
        """All events or none, in one round trip. Returns (the stream ids, False); for an idempotency key seen
        before, nothing is appended and it returns (the ids it recorded, True), or raises KeyReused if it came with
        another request. A request past a per-minute cap raises OverCap."""
        try:
            replies = self._append(keys=request.keys(), args=request.args())
        except redis.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):  # another client broke a key: nothing written, an operator must look
                log.error("intake refused a request: %s", exc)
            raise StoreUnavailable(str(exc)) from None
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if replies[0] == 2:
            who = "intake" if replies[1] == b"intake" else list(request.people())[replies[2]]
            raise OverCap(who, 60 - int(time.time() % 60))
        if replies[0] == 1:
            assert request.once is not None  # the script answers 1 only for a request with an idempotency key
            fingerprint, ids = _recorded(replies[1])
            if fingerprint != request.once[1]:
                raise KeyReused(request.once[0])
            return ids, True
        self._backlog = (replies[1], time.monotonic())
        return [reply.decode() for reply in replies[2:]], False

    def recorded(self, key: str, fingerprint: str) -> list[str] | None:
        """The stream ids an idempotency key recorded for this request (same fingerprint), else None."""
        try:
            seen = self.client.get(rk.idempotency(key))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if seen is None:
            return None
        recorded_fingerprint, ids = _recorded(seen)
        return ids if recorded_fingerprint == fingerprint else None

    def backlog(self, max_age: float = 1.0) -> int:
        """Events waiting in the stream for the next run's archive: the length this worker saw with its last
        write when that is under max_age seconds old (no extra round trip while intake is busy), else XLEN."""
        seen = self._backlog
        if seen and time.monotonic() - seen[1] < max_age:
            return seen[0]
        try:
            length = self.client.xlen(rk.EVENTS)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        self._backlog = (length, time.monotonic())
        return length
