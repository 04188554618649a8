"""The published versions as a worker reads them: the live pointer (and the running experiment), a version's
values decoded into what the API shows, and a near cache that is safe because versions are immutable.

- The live pointer, with the running experiment beside it (one MGET: both keys live in the `{ctl}` slot), is
  read at most once per `pointer_ttl` seconds per worker. A flip, rollback, or the start or end of an
  experiment is therefore seen within that time; until then the worker answers from the previous state, whose
  versions are still complete (publication keeps at least two, and never prunes an experiment's).
- A version's lists are stored compact (schemas/items.py, the format its meta names): a list is decoded and
  joined with the version's movie details (`movies`, kept per worker and version once read: they never change)
  into the API's items. Decoded values are cached per (version, key) in an LRU bounded in the bytes the decoded
  values hold (`serving.cache_mb`), and so is a person's fold-in list, under its contents. They hold only
  numbers, strings, tuples and pre-serialized `because` fields, which lets Python's collector stop tracking the
  items (a full collection walks every tracked object: `make bench-serving` times one with the cache full).
- A key missing under a cached pointer re-reads the pointer before concluding "not found", so a version pruned
  behind a stale pointer can never pass for an unknown user.
- Once the pointer's time is up it must be re-read: with Redis down that fails and the request gets a 503,
  so an outage shows within `pointer_ttl`, and the pool reconnects by itself when Redis is back.
"""

from __future__ import annotations

import threading
import time

import cachetools
import orjson
import redis

from conf import redis_client
from schemas import items as lists
from schemas import redis_keys as rk
from schemas.experiments import arm_of
from serving.sizes import ENTRY_OVERHEAD, held_bytes

LIST_KINDS = frozenset({"user", "similar", "content", "new", "new_movies", "popular"})  # decoded into items
ID_KINDS = frozenset({"seen", "title"})  # decoded into movie ids
KEPT_VERSIONS = 4  # versions whose movie details a worker keeps (live, an experiment's arms, the one before)


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached, or answered with an error."""


class NoLiveVersion(RuntimeError):
    """Redis is up but nothing has been published yet."""


def frozen(value):
    """Decoded JSON with its arrays as tuples: a full collection stops tracking the tuples of atomic values and
    the dicts holding only those, so a cached list of 50 items is one tracked object instead of about 100."""
    if isinstance(value, list):
        return tuple(frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: frozen(item) for key, item in value.items()}
    return value


class Versions:
    def __init__(self, client: redis.Redis, pointer_ttl: float = 1.0, cache_mb: float = 32):
        """`client`: from conf.redis_client.reader (short timeouts; connects on first use). `cache_mb`: the near
        cache's bound, in bytes of the decoded values it holds (0: no cache)."""
        self.client = client
        self.pointer_ttl = pointer_ttl
        self._pointer: tuple[str, dict | None, float] | None = None  # (version, experiment, monotonic time read)
        self._lock = threading.Lock()
        self._cache: cachetools.LRUCache | None = (
            cachetools.LRUCache(maxsize=int(cache_mb * 2**20), getsizeof=lambda entry: entry[1]) if cache_mb else None
        )
        self._formats: dict[str, int] = {}  # version -> how its lists are stored
        # version -> (movie -> details or None, movie -> its `because` field), the newest versions last; two maps,
        # not a pair per movie: a pair (a tuple holding a dict) would stay in the garbage collector's sight
        self._movies: dict[str, tuple[dict[int, dict | None], dict[int, orjson.Fragment]]] = {}

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
            self._pointer = pointer = (raw.decode(), rk.decode(experiment), time.monotonic())
        return pointer[0], pointer[1]

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
        """Values of keys in a version already resolved (a second step of one request stays on its version):
        lists as the API's items, id lists as movie ids, details and meta as dicts; None where missing."""
        if self._cache is None:
            return [self._decoded(version, s, raw) for s, raw in zip(suffixes, self._fetch_raw(version, suffixes))]
        return [self._cached(version, s) for s in suffixes]

    def items(self, version: str, packed: lists.Packed) -> tuple[dict, ...]:
        """A packed list's items, joined with the version's movie details."""
        details, because = self.movies(version, lists.movies_named(packed))
        return lists.items_of(packed, details, because)

    def fresh_items(self, version: str, packed: lists.Packed) -> tuple[dict, ...]:
        """A person's fold-in list (the speed layer's, against this version) as the API's items, joined once and
        kept in the near cache under its contents: a person's next requests answer the same list until they rate
        again (joining 50 items on every request made such a lookup take 1.7 times as long, in-process)."""
        if self._cache is None:
            return self.items(version, packed)
        key = (version, packed.movie_ids, packed.scores, packed.because)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._keep(key, self.items(version, packed), held_bytes(key))
        return entry[0]

    def movies(self, version: str, movies) -> tuple[dict[int, dict], dict[int, orjson.Fragment]]:
        """(details, `because` fields) of these movies in the version (those it has): read and built once per
        worker and version."""
        known = self._movies.get(version)
        if known is None:
            with self._lock:
                known = self._movies.setdefault(version, ({}, {}))
                while len(self._movies) > KEPT_VERSIONS:
                    del self._movies[next(iter(self._movies))]
        details, because = known
        missing = [m for m in movies if m not in details]
        if missing:
            for movie, raw in zip(missing, self._fetch_raw(version, [rk.suffix("movie", m) for m in missing])):
                value = frozen(rk.decode(raw)) if raw is not None else None
                if value is not None:
                    because[movie] = lists.because_field(value)
                details[movie] = value  # last: whoever finds a movie's details finds its `because`
        shown = {m: value for m in movies if (value := details.get(m)) is not None}
        return shown, {m: because[m] for m in shown}

    def format_of(self, version: str) -> int:
        """How a version's lists are stored: its meta's `format` (1, JSON items, when it names none)."""
        stored = self._formats.get(version)
        if stored is None:
            (meta,) = self._fetch_raw(version, [rk.suffix("meta")])
            stored = (rk.decode(meta) or {}).get("format", 1)
            if meta is not None:
                self._formats[version] = stored
        return stored

    def _decoded(self, version: str, suffix: str, raw: bytes | None):
        if raw is None:
            return None
        kind = suffix.partition(":")[0]
        if kind in LIST_KINDS or kind in ID_KINDS:
            if self.format_of(version) < lists.FORMAT:  # a version published before the compact format
                return frozen(lists.decode_json_list(raw))
            packed = lists.unpack(raw)
            return packed.movie_ids if kind in ID_KINDS else self.items(version, packed)
        return frozen(rk.decode(raw))

    def _cached(self, version: str, suffix: str):
        """A value through the near cache (frozen: it lives as long as its cache entry)."""
        assert self._cache is not None  # get_in_version reads around the cache when there is none
        key = (version, suffix)
        entry = self._cache.get(key)
        if entry is None:
            (raw,) = self._fetch_raw(version, [suffix])
            entry = self._keep(key, self._decoded(version, suffix, raw))
        return entry[0]

    def _keep(self, key: tuple, value, key_bytes: int = 0) -> tuple:
        """The near cache's entry for `value` (the value, the bytes it holds), kept under `key`."""
        assert self._cache is not None
        entry = (value, held_bytes(value) + key_bytes + ENTRY_OVERHEAD)
        try:
            self._cache[key] = entry
        except ValueError:  # larger than the whole cache: served, not kept
            pass
        return entry

    def _fetch_raw(self, version: str, suffixes: list[str]) -> list[bytes | None]:
        if not suffixes:
            return []
        prefix = rk.version_prefix(version)
        try:
            return redis_client.mget(self.client, [prefix + s for s in suffixes])
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
