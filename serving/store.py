"""Read access to the published versions in Redis, with a near cache that is safe because versions are
immutable.

- The live pointer is read at most once per `pointer_ttl` seconds per worker. A flip or rollback is therefore
  seen within that time; until then the worker answers from the previous version, which is still complete
  (publication keeps at least two versions).
- Values are decoded once and cached per (version, key) in an LRU: a version's keys never change once it is
  live. Callers must treat them as read-only.
- A key missing under a cached pointer re-reads the pointer before concluding "not found", so a version pruned
  behind a stale pointer can never pass for an unknown user.
- Once the pointer's time is up it must be re-read: with Redis down that fails and the request gets a 503,
  so an outage shows within `pointer_ttl`, and the pool reconnects by itself when Redis is back.
"""
from __future__ import annotations

import threading
import time
from functools import lru_cache

import redis

from schemas import redis_keys as rk


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached, or answered with an error."""


class NoLiveVersion(RuntimeError):
    """Redis is up but nothing has been published yet."""


class Store:
    def __init__(self, client: redis.Redis, pointer_ttl: float = 1.0, cache_entries: int = 20_000):
        """`client`: from schemas.redis_client.reader (short timeouts; connects on first use)."""
        self.client = client
        self.pointer_ttl = pointer_ttl
        self._pointer: tuple[str, float] | None = None  # (version, monotonic time read)
        self._lock = threading.Lock()
        self._cached = lru_cache(maxsize=cache_entries)(self._fetch_one) if cache_entries else None

    # -- the live pointer

    def live_version(self, refresh: bool = False) -> str:
        pointer = self._pointer
        if not refresh and pointer and time.monotonic() - pointer[1] < self.pointer_ttl:
            return pointer[0]
        try:
            raw = self.client.get(rk.LIVE)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        if raw is None:
            raise NoLiveVersion("no version has been published yet")
        with self._lock:
            self._pointer = (raw.decode(), time.monotonic())
        return self._pointer[0]

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

    def get_in_version(self, version: str, suffixes: list[str]) -> list:
        """Values of keys in a version already resolved (a second step of one request stays on its version)."""
        if self._cached is None:
            return self._fetch_many(version, tuple(suffixes))
        return [self._cached(version, s) for s in suffixes]

    def _fetch_one(self, version: str, suffix: str):
        return self._fetch_many(version, (suffix,))[0]

    def _fetch_many(self, version: str, suffixes: tuple[str, ...]) -> list:
        if not suffixes:
            return []
        prefix = rk.version_prefix(version)
        try:
            raw = self.client.mget([prefix + s for s in suffixes])
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        return [rk.decode(value) for value in raw]
