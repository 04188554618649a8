"""Read access to the published versions in Redis, with a near cache that is safe because versions are
immutable.

- The live pointer, with the running experiment beside it (one MGET: both keys live in the `{ctl}` slot), is
  read at most once per `pointer_ttl` seconds per worker. A flip, rollback, or the start or end of an
  experiment is therefore seen within that time; until then the worker answers from the previous state, whose
  versions are still complete (publication keeps at least two, and never prunes an experiment's).
- Values are decoded once and cached per (version, key) in an LRU: a version's keys never change once it is
  live. They are kept immutable (JSON arrays as tuples), which also lets Python's collector stop tracking them:
  a full collection walks every tracked object, and a warm cache of lists of dicts made it pause 94 ms per
  255k objects (measured in process, two versions of 943 lists).
- A key missing under a cached pointer re-reads the pointer before concluding "not found", so a version pruned
  behind a stale pointer can never pass for an unknown user.
- Once the pointer's time is up it must be re-read: with Redis down that fails and the request gets a 503,
  so an outage shows within `pointer_ttl`, and the pool reconnects by itself when Redis is back.
- The event stream and the per-user recent lists are mutable: never cached.
"""
from __future__ import annotations

import threading
import time
from functools import lru_cache

import redis

from conf import redis_client
from schemas import redis_keys as rk
from schemas.events import FIELD, to_stream_fields, to_stream_value
from schemas.experiments import arm_of

# Appends a request's events in one atomic step: redis-py packing a MULTI of 100 XADDs and the recent-list
# commands cost the worker about 5 ms, this script's one EVALSHA about 1 ms. Every key carries the {events} hash
# tag (one cluster slot). `#!lua` (no flags): Redis refuses the whole script up front when it is out of memory,
# so a request is never half written. With an idempotency key, a key already recorded returns what it recorded
# and appends nothing; otherwise the key is recorded with the new ids in the same atomic step.
# KEYS: the stream, the idempotency key when once_ttl > 0, then (recent, rated) per user with ratings.
# ARGV: the entry's field name, recent_max, ttl_s, n, once_ttl (0: no key), the request's fingerprint, n event
# JSONs, then per user: its count, then (recent entry, movie id) per rating.
# Returns {0, the stream's length, the n stream ids}, or {1, "<fingerprint> <id> <id> ..."} for a key seen before.
APPEND_EVENTS = """#!lua
local field, recent_max, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local once_ttl, fingerprint = tonumber(ARGV[5]), ARGV[6]
local user = 2
if once_ttl > 0 then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {1, seen} end
  user = 3
end
local replies = {0, 0}
for i = 1, n do replies[i + 2] = redis.call('XADD', KEYS[1], '*', field, ARGV[6 + i]) end
local at = 6 + n
for u = user, #KEYS, 2 do
  local recent, rated = KEYS[u], KEYS[u + 1]
  local count = tonumber(ARGV[at + 1])
  for j = 1, count do
    redis.call('LPUSH', recent, ARGV[at + 2 * j])
    redis.call('SADD', rated, ARGV[at + 2 * j + 1])
  end
  redis.call('LTRIM', recent, 0, recent_max - 1)
  redis.call('EXPIRE', recent, ttl)
  redis.call('EXPIRE', rated, ttl)
  at = at + 1 + 2 * count
end
replies[2] = redis.call('XLEN', KEYS[1])
if once_ttl > 0 then
  redis.call('SET', KEYS[2], fingerprint .. ' ' .. table.concat(replies, ' ', 3), 'EX', once_ttl)
end
return replies
"""


def frozen(value):
    """Decoded JSON with its arrays as tuples: a full collection stops tracking the tuples of atomic values and
    the dicts holding only those, so a cached list of 50 items is one tracked object instead of about 100."""
    if isinstance(value, list):
        return tuple(frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: frozen(item) for key, item in value.items()}
    return value


def _recorded(value: bytes) -> tuple[str, list[str]]:
    """An idempotency key's record, as APPEND_EVENTS writes it: (fingerprint, stream ids)."""
    fingerprint, *ids = value.decode().split(" ")
    return fingerprint, ids


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached, or answered with an error."""


class KeyReused(ValueError):
    """An idempotency key came back with a different request than the one it was first used for."""


class NoLiveVersion(RuntimeError):
    """Redis is up but nothing has been published yet."""


class Store:
    def __init__(self, client: redis.Redis, pointer_ttl: float = 1.0, cache_entries: int = 20_000):
        """`client`: from conf.redis_client.reader (short timeouts; connects on first use)."""
        self.client = client
        self.pointer_ttl = pointer_ttl
        self._pointer: tuple[str, dict | None, float] | None = None  # (version, experiment, monotonic time read)
        self._lock = threading.Lock()
        self._cached = lru_cache(maxsize=cache_entries)(self._fetch_one) if cache_entries else None
        self._backlog: tuple[int, float] | None = None  # (stream length, monotonic time seen)
        self._append_events = client.register_script(APPEND_EVENTS)

    # -- the live pointer

    def live_version(self, refresh: bool = False) -> str:
        return self.state(refresh)[0]

    def state(self, refresh: bool = False) -> tuple[str, dict | None]:
        """(the live version, the running experiment or None)."""
        pointer = self._pointer
        if not refresh and pointer and time.monotonic() - pointer[2] < self.pointer_ttl:
            return pointer[0], pointer[1]
        try:
            raw, experiment = redis_client.mget(self.client, [rk.LIVE, rk.EXPERIMENT])
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if raw is None:
            raise NoLiveVersion("no version has been published yet")
        with self._lock:
            self._pointer = (raw.decode(), rk.decode(experiment), time.monotonic())
        return self._pointer[0], self._pointer[1]

    # -- values

    def lookup(self, *suffixes: str) -> tuple[str, list]:
        """(live version, decoded values of the `<kind>:<id>` suffixes under it; None where missing)."""
        version = self.live_version()
        values = self.get_in_version(version, list(suffixes))
        if any(v is None for v in values):
            current = self.live_version(refresh=True)
            if current != version:  # the pointer moved under us: answer from the new version
                return current, self.get_in_version(current, list(suffixes))
        return version, values

    def lookup_for(self, user_id: int, *suffixes: str) -> tuple[str, list, dict | None, str | None]:
        """Like `lookup`, from the version this user is to see: (version, values, experiment, arm), the
        experiment and arm None when none runs."""
        version, experiment = self.state()
        arm = arm_of(experiment, user_id) if experiment else None
        chosen = experiment[arm] if experiment else version
        values = self.get_in_version(chosen, list(suffixes))
        if any(v is None for v in values):  # the state may have moved under us: answer from the current one
            version, current = self.state(refresh=True)
            if current != experiment or (not current and version != chosen):
                experiment, arm = current, arm_of(current, user_id) if current else None
                chosen = current[arm] if current else version
                values = self.get_in_version(chosen, list(suffixes))
        return chosen, values, experiment, arm

    def get_in_version(self, version: str, suffixes: list[str]) -> list:
        """Values of keys in a version already resolved (a second step of one request stays on its version)."""
        if self._cached is None:
            return self._fetch_many(version, tuple(suffixes))
        return [self._cached(version, s) for s in suffixes]

    def _fetch_one(self, version: str, suffix: str):
        """A value as the near cache keeps it (frozen: it lives as long as its cache entry)."""
        return frozen(self._fetch_many(version, (suffix,))[0])

    def _fetch_many(self, version: str, suffixes: tuple[str, ...]) -> list:
        if not suffixes:
            return []
        prefix = rk.version_prefix(version)
        try:
            raw = redis_client.mget(self.client, [prefix + s for s in suffixes])
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        return [rk.decode(value) for value in raw]

    # -- the loop (serving/intake.py): mutable keys, outside every version

    def last_run(self) -> dict | None:
        """The last DAG run's summary (jobs/lib/runtime/run_summary.py), or None."""
        try:
            return rk.decode(self.client.get(rk.LAST_RUN))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

    def event_backlog(self, max_age: float = 1.0) -> int:
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

    def append_events(self, events: list[dict], recent_max: int, recent_ttl_s: int,
                      once: tuple[str, str, int] | None = None) -> tuple[list[str], bool]:
        """All events or none, in one round trip: each appended to the stream; each rating also at the head of
        the person's recent list (trimmed to recent_max) and in their rated set. Returns (the stream ids, False).
        `once` = (idempotency key, the request's fingerprint, seconds to remember it): a key seen before appends
        nothing and returns (the ids it recorded, True), or raises KeyReused if it came with another request."""
        ratings: dict[int, list[dict]] = {}
        for event in events:
            if event["type"] == "rating":
                ratings.setdefault(event["user_id"], []).append(event)
        if len(events) == 1 and not ratings and once is None:
            return [self._append_one(events[0])], False
        keys, once_args = [rk.EVENTS], [0, ""]
        if once:
            key, fingerprint, ttl_s = once
            keys.append(rk.idempotency(key))
            once_args = [ttl_s, fingerprint]
        args = [FIELD, recent_max, recent_ttl_s, len(events), *once_args, *(to_stream_value(e) for e in events)]
        for user, rated in ratings.items():
            keys += [rk.recent(user), rk.rated(user)]
            args.append(len(rated))
            for event in rated:
                args += [f"{event['movie_id']}:{event['rating']:g}", event["movie_id"]]
        try:
            replies = self._append_events(keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if replies[0] == 1:
            fingerprint, ids = _recorded(replies[1])
            if fingerprint != once[1]:
                raise KeyReused(once[0])
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

    def _append_one(self, event: dict) -> str:
        """One click: one XADD, atomic on its own, without a pipeline's cost. The stream length is not read back:
        the backlog this worker saw is counted up, and event_backlog re-reads it once it is a second old."""
        try:
            stream_id = self.client.xadd(rk.EVENTS, to_stream_fields(event))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if self._backlog:
            self._backlog = (self._backlog[0] + 1, self._backlog[1])
        return stream_id.decode()

    def recent(self, user_id: int) -> tuple[list[tuple[int, float]], set[int]]:
        """(the person's latest ratings as (movie, rating), newest first; every movie they rated) from events
        not yet in a version."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(rk.recent(user_id), 0, -1)
                pipe.smembers(rk.rated(user_id))
                latest, rated = pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        pairs = [entry.decode().split(":") for entry in latest]
        return [(int(m), float(r)) for m, r in pairs], {int(m) for m in rated}
