"""A worker's copy of what each person did since the version was built, kept right by Redis itself.

A person's answers need what they rated or dismissed, their fold-in list and their latest ratings: three keys
that the intake and the speed layer change at any time, from any process or host. Reading them on every request
costs a round trip (lookups at 0.53 of `/healthz`, against 0.76 with this copy: `make bench-serving`). Instead
each worker keeps the people it answered for, and one RESP3 connection per worker asks Redis to push the name
of every key under those prefixes that anyone changes, or that expires or is evicted (`CLIENT TRACKING ON
BCAST`). Each request first drains that connection (a poll of its socket when nothing came), so the entry of
anyone who acted is gone before it is looked at.

Why no answer misses a change it comes after: Redis writes its BCAST invalidations in the same pass of its event
loop as the write's reply, and before it, so they are in this worker's socket before the writer hears OK, hence
before the intake answers 202 and before any request that follows it (tests/serving/test_people.py checks this
on the real server, with the intake's own script). That order holds with Redis's `io-threads` at 1, its
default and ours (threaded writes may go out in any order). Across hosts a push could in principle be
overtaken only by a lost packet of its own.

Read through, never from the copy, whenever the tracking connection is not up: before it connects, after it
breaks (the copy is emptied at once: pushes may have been lost), for a second between attempts to reconnect,
and on Redis Cluster, where the keys' slot can move to a node this connection does not watch.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import cachetools
import redis

from schemas import redis_keys as rk

log = logging.getLogger(__name__)

ENTRY_OVERHEAD = 200  # bytes counted per person beyond their values' size: the tuple, its sets and key


class PeopleCache:
    def __init__(self, client: redis.Redis, max_mb: float, retry_s: float = 1.0):
        """`client`: the reader, whose pool's settings (address, user, password, TLS, timeouts) the tracking
        connection copies. `max_mb`: the bound, in bytes of the values as Redis holds them."""
        self._pool = client.connection_pool
        self._entries = cachetools.LRUCache(maxsize=int(max_mb * 2**20), getsizeof=lambda entry: entry[1])
        self._retry_s = retry_s
        self._conn: redis.Connection | None = None
        self._pid = 0  # the process that opened the connection: a forked child opens its own
        self._next_attempt = 0.0
        self._warned = False
        # Bumped by every invalidation handled: a read that overlapped one (another thread drained it) is not
        # kept, since the push it needed may already be spent.
        self._epoch = 0
        self._lock = threading.RLock()

    def get(self, user_id: int, load: Callable[[], tuple[object, int]]):
        """The person's values: from the copy when it is tracked and holds them, else `load()` -> (values, size
        in bytes), kept when the copy is tracked."""
        with self._lock:
            tracked = self._drain()
            if tracked:
                entry = self._entries.get(user_id)
                if entry is not None:
                    return entry[0]
            epoch = self._epoch
        value, size = load()
        if tracked:
            with self._lock:
                if self._epoch == epoch and self._conn is not None:
                    try:
                        self._entries[user_id] = (value, size + ENTRY_OVERHEAD)
                    except ValueError:  # larger than the whole copy: served, not kept
                        pass
        return value

    @property
    def tracked(self) -> bool:
        return self._conn is not None and self._pid == os.getpid()

    def _drain(self) -> bool:
        """Handles every push waiting on the tracking connection; False when it is not up (read through)."""
        if not self.tracked:
            self._conn = None
            if time.monotonic() < self._next_attempt or not self._open():
                return False
        try:
            while self._conn.can_read(0):
                self._conn.read_response(push_request=True, timeout=0, disconnect_on_error=False)
        except redis.TimeoutError:  # the rest of a push is still on its way (Redis sends 64 KiB a pass)
            return False  # read through this time; the parser keeps the part, the next drain finishes it
        except (redis.RedisError, OSError):
            self._close()
            return False
        return True

    def _open(self) -> bool:
        conn = self._pool.connection_class(**{**self._pool.connection_kwargs, "protocol": 3})
        try:
            conn.connect()
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST",
                              *(part for prefix in rk.PERSON_PREFIXES for part in ("PREFIX", prefix)))
            conn.read_response()
        except (redis.RedisError, OSError) as exc:
            conn.disconnect()
            self._next_attempt = time.monotonic() + self._retry_s
            if not self._warned:  # once per outage: e.g. an ACL without +client|tracking reads through for good
                log.warning("people's keys are read on every request: Redis tracking is off (%s)", exc)
                self._warned = True
            return False
        # The parser hands each invalidation to this handler while the connection is drained.
        conn._parser.set_invalidation_push_handler(self._invalidate)
        self._entries.clear()
        self._conn, self._pid, self._warned = conn, os.getpid(), False
        return True

    def _close(self) -> None:
        """The connection broke: pushes may have been lost, so the copy goes with it."""
        try:
            self._conn.disconnect()
        except (redis.RedisError, OSError):
            pass
        self._conn = None
        self._entries.clear()
        self._epoch += 1
        self._next_attempt = time.monotonic() + self._retry_s

    def _invalidate(self, message) -> None:
        """["invalidate", [key, ...]], or ["invalidate", None] when the whole database was flushed."""
        self._epoch += 1
        keys = message[1]
        if keys is None:
            self._entries.clear()
            return
        for key in keys:
            try:
                self._entries.pop(rk.person_of(key), None)
            except ValueError:  # not a person's key after all: drop everyone rather than guess
                self._entries.clear()
