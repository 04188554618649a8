"""Read access to the published versions in Redis, with a near cache that is safe because versions are
immutable.

- The live pointer, with the running experiment beside it (one MGET: both keys live in the `{ctl}` slot), is
  read at most once per `pointer_ttl` seconds per worker. A flip, rollback, or the start or end of an
  experiment is therefore seen within that time; until then the worker answers from the previous state, whose
  versions are still complete (publication keeps at least two, and never prunes an experiment's).
- Values are decoded once and cached per (version, key) in an LRU bounded in bytes (`serving.cache_mb` of
  values as Redis holds them; decoded, a 50-item list takes about 4.6 times its JSON, measured with
  tracemalloc): a version's keys never change once it is live. They are kept immutable (JSON arrays as
  tuples), which also lets Python's collector stop tracking them: a full collection walks every tracked
  object, and a warm cache of lists of dicts made it pause 94 ms per 255k objects (measured in process, two
  versions of 943 lists).
- A key missing under a cached pointer re-reads the pointer before concluding "not found", so a version pruned
  behind a stale pointer can never pass for an unknown user.
- Once the pointer's time is up it must be re-read: with Redis down that fails and the request gets a 503,
  so an outage shows within `pointer_ttl`, and the pool reconnects by itself when Redis is back.
- What a person did since the version (their excluded set, fold-in list, latest ratings) is mutable: cached
  only while Redis pushes this worker every change to it (serving/people.py), read every time otherwise.
- The event stream is never cached.
"""
from __future__ import annotations

import logging
import threading
import time

import cachetools
import redis

from conf import redis_client
from schemas import redis_keys as rk
from schemas.events import FIELD, to_stream_value
from schemas.experiments import arm_of
from serving.people import PeopleCache

log = logging.getLogger(__name__)

# Appends a request's events in one atomic step: redis-py packing a MULTI of 100 XADDs and the recent-list
# commands cost the worker about 5 ms, this script's one EVALSHA about 1 ms. Every key carries the {events} hash
# tag (one cluster slot). `#!lua` (no flags): Redis refuses the whole script up front when it is out of memory,
# so a request is never half written. With an idempotency key, a key already recorded returns what it recorded
# and appends nothing; otherwise the key is recorded with the new ids in the same atomic step. Before anything
# is written, the request must fit this minute's caps: the intake's (what its token's senders add) and each
# user's; a request that does not is refused whole and counts against nothing.
# KEYS: the stream, this minute's intake counter, the idempotency key when once_ttl > 0, then (recent,
# excluded, this minute's counter) per user.
# ARGV: the entry's field name, recent_max, ttl_s, n, once_ttl (0: no key), the request's fingerprint, the
# intake's and a user's cap per minute, n event JSONs, then per user: its events, its ratings, its dismissals,
# then (recent entry, movie id) per rating, then the movie id per dismissal.
# Returns {0, the stream's length, the n stream ids}, {1, "<fingerprint> <id> <id> ..."} for a key seen before,
# or {2, "intake" or "user", the user's position} for a request over a cap. Every key's type is checked before
# anything is written: a key another client left of the wrong type is a WRONGTYPE error that wrote nothing (a
# script that fails half way keeps its earlier writes, and a retry would append its events again).
APPEND_EVENTS = """#!lua
local field, recent_max, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local once_ttl, fingerprint = tonumber(ARGV[5]), ARGV[6]
local intake_cap, user_cap = tonumber(ARGV[7]), tonumber(ARGV[8])
local first_user = 3
if once_ttl > 0 then first_user = 4 end
local kinds = {'stream', 'string', 'string'}
for u = first_user, #KEYS, 3 do kinds[u], kinds[u + 1], kinds[u + 2] = 'list', 'set', 'string' end
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ' where the intake keeps a ' ..
                             kinds[i] .. '; nothing was written')
  end
end
if once_ttl > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {1, seen} end
end
local function used(key) return tonumber(redis.call('GET', key) or '0') end
if used(KEYS[2]) + n > intake_cap then return {2, 'intake', 0} end
local at = 8 + n
for u = first_user, #KEYS, 3 do
  if used(KEYS[u + 2]) + tonumber(ARGV[at + 1]) > user_cap then return {2, 'user', (u - first_user) / 3} end
  at = at + 3 + 2 * tonumber(ARGV[at + 2]) + tonumber(ARGV[at + 3])
end
local function count(key, events)
  if redis.call('INCRBY', key, events) == events then redis.call('EXPIRE', key, 120) end
end
count(KEYS[2], n)
local replies = {0, 0}
for i = 1, n do replies[i + 2] = redis.call('XADD', KEYS[1], '*', field, ARGV[8 + i]) end
at = 8 + n
for u = first_user, #KEYS, 3 do
  local recent, excluded = KEYS[u], KEYS[u + 1]
  local ratings, dismissals = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  count(KEYS[u + 2], tonumber(ARGV[at + 1]))
  at = at + 3
  if ratings > 0 then
    for j = 1, ratings do
      redis.call('LPUSH', recent, ARGV[at + 2 * j - 1])
      redis.call('SADD', excluded, ARGV[at + 2 * j])
    end
    redis.call('LTRIM', recent, 0, recent_max - 1)
    redis.call('EXPIRE', recent, ttl)
  end
  at = at + 2 * ratings
  for j = 1, dismissals do redis.call('SADD', excluded, ARGV[at + j]) end
  if ratings + dismissals > 0 then redis.call('EXPIRE', excluded, ttl) end
  at = at + dismissals
end
replies[2] = redis.call('XLEN', KEYS[1])
if once_ttl > 0 then
  redis.call('SET', KEYS[3], fingerprint .. ' ' .. table.concat(replies, ' ', 3), 'EX', once_ttl)
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


CACHE_ENTRY_OVERHEAD = 100  # bytes counted per near-cache entry beyond its value: its key, a missing value


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached, or answered with an error."""


class KeyReused(ValueError):
    """An idempotency key came back with a different request than the one it was first used for."""


class OverCap(ValueError):
    """A request that would take the intake or one user past their events per minute: `who` is "intake" or the
    user id, `retry_after` the seconds to the next minute."""

    def __init__(self, who, retry_after: int):
        super().__init__(who)
        self.who, self.retry_after = who, retry_after


class NoLiveVersion(RuntimeError):
    """Redis is up but nothing has been published yet."""


class Store:
    def __init__(self, client: redis.Redis, pointer_ttl: float = 1.0, cache_mb: float = 32,
                 people_cache_mb: float = 0):
        """`client`: from conf.redis_client.reader (short timeouts; connects on first use). `cache_mb`: the near
        cache's bound, in bytes of the values as Redis holds them (0: no cache); `people_cache_mb` the same for
        what people did since the version (0, or a Redis Cluster: read every time)."""
        self.client = client
        self.people = PeopleCache(client, people_cache_mb) \
            if people_cache_mb and not redis_client.is_cluster(client) else None
        self.pointer_ttl = pointer_ttl
        self._pointer: tuple[str, dict | None, float] | None = None  # (version, experiment, monotonic time read)
        self._lock = threading.Lock()
        # (version, suffix) -> (frozen value, its size); sized so that no one kind of request can grow it.
        self._cache = cachetools.LRUCache(maxsize=int(cache_mb * 2**20), getsizeof=lambda entry: entry[1]) \
            if cache_mb else None
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
        if self._cache is None:
            return [rk.decode(value) for value in self._fetch_raw(version, suffixes)]
        return [self._cached(version, s) for s in suffixes]

    def _cached(self, version: str, suffix: str):
        """A value through the near cache (frozen: it lives as long as its cache entry)."""
        key = (version, suffix)
        entry = self._cache.get(key)
        if entry is None:
            (raw,) = self._fetch_raw(version, [suffix])
            entry = (frozen(rk.decode(raw)), len(raw or b"") + CACHE_ENTRY_OVERHEAD)
            try:
                self._cache[key] = entry
            except ValueError:  # larger than the whole cache: served, not kept
                pass
        return entry[0]

    def _fetch_raw(self, version: str, suffixes: list[str]) -> list[bytes | None]:
        if not suffixes:
            return []
        prefix = rk.version_prefix(version)
        try:
            return redis_client.mget(self.client, [prefix + s for s in suffixes])
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None

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
                      once: tuple[str, str, int] | None = None,
                      caps: tuple[int, int] = (2**53, 2**53)) -> tuple[list[str], bool]:
        """All events or none, in one round trip: each appended to the stream; each rating also at the head of
        the person's recent list (trimmed to recent_max); each rating or dismissal in their excluded set.
        Returns (the stream ids, False).
        `once` = (idempotency key, the request's fingerprint, seconds to remember it): a key seen before appends
        nothing and returns (the ids it recorded, True), or raises KeyReused if it came with another request.
        `caps` = (the intake's, one user's) events per minute: a request past either raises OverCap."""
        by_user: dict[int, list[dict]] = {}
        for event in events:
            by_user.setdefault(event["user_id"], []).append(event)
        now = time.time()
        minute = int(now // 60)
        keys, once_args = [rk.EVENTS, rk.intake_rate(minute)], [0, ""]
        if once:
            key, fingerprint, ttl_s = once
            keys.append(rk.idempotency(key))
            once_args = [ttl_s, fingerprint]
        args = [FIELD, recent_max, recent_ttl_s, len(events), *once_args, *caps,
                *(to_stream_value(e) for e in events)]
        for user, theirs in by_user.items():
            keys += [rk.recent(user), rk.excluded(user), rk.user_rate(user, minute)]
            rated = [event for event in theirs if event["type"] == "rating"]
            dismissed = [event["movie_id"] for event in theirs if event["type"] == "dismiss"]
            args += [len(theirs), len(rated), len(dismissed)]
            for event in rated:
                args += [f"{event['movie_id']}:{event['rating']:g}", event["movie_id"]]
            args += dismissed
        try:
            replies = self._append_events(keys=keys, args=args)
        except redis.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):  # another client broke a key: nothing written, an operator must look
                log.error("intake refused a request: %s", exc)
            raise StoreUnavailable(str(exc)) from None
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if replies[0] == 2:
            who = "intake" if replies[1] == b"intake" else list(by_user)[replies[2]]
            raise OverCap(who, 60 - int(now % 60))
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

    def personal(self, user_id: int) -> tuple[frozenset[int], dict | None, tuple[tuple[int, float], ...]]:
        """What is known of the person since the version was built: (every movie they rated or dismissed, their
        list as the speed layer last folded it in or None, their latest ratings as (movie, rating), newest
        first). From this worker's copy while Redis tracks it for us, else in one round trip."""
        if self.people is None:
            return self._read_personal(user_id)[0]
        return self.people.get(user_id, lambda: self._read_personal(user_id))

    def _read_personal(self, user_id: int) -> tuple[tuple, int]:
        """(`personal`'s values, frozen: a copy may share them between requests; their size in Redis's bytes)."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.smembers(rk.excluded(user_id))
                pipe.get(rk.fresh(user_id))
                pipe.lrange(rk.recent(user_id), 0, -1)
                excluded, fresh, latest = pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        pairs = [entry.decode().split(":") for entry in latest]
        size = len(fresh or b"") + sum(map(len, excluded)) + sum(map(len, latest))
        return (frozenset(int(m) for m in excluded), frozen(rk.decode(fresh)),
                tuple((int(m), float(r)) for m, r in pairs)), size

    def speed_layer_lag(self) -> int | None:
        """Events a speed layer's consumer group has not been given yet (the largest, when several share the
        people); None without a speed layer (or when Redis cannot count them: entries trimmed past the group's
        position)."""
        try:
            groups = self.client.xinfo_groups(rk.EVENTS)
        except redis.ResponseError:  # no stream yet
            return None
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        names = [(g["name"].decode() if isinstance(g["name"], bytes) else g["name"], g.get("lag")) for g in groups]
        lags = [lag for name, lag in names if name.partition("-")[0] == rk.SPEED_GROUP]
        return None if not lags or None in lags else max(lags)

    def excluded(self, user_id: int) -> frozenset[int]:
        """Every movie the person rated or dismissed since the version was built (none of it is shown them)."""
        return self.personal(user_id)[0]
