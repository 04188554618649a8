"""A worker's copy of what each person did since the version was built, kept right by Redis itself.

A person's answers need what they rated or dismissed, their fold-in list and their latest ratings: three keys
that the intake and the speed layer change at any time, from any process or host. Reading them on every request
costs a round trip (`make bench-serving` measures both ways). Instead each worker keeps the people it answered
for, and one RESP3 connection per worker asks Redis to push the name of every key under those prefixes that
anyone changes, or that expires or is evicted (`CLIENT TRACKING ON BCAST`).

Why no answer misses a change it comes after: Redis writes its BCAST invalidations in the same pass of its event
loop as the write's reply, and before it, so they are in this worker's socket before the writer hears OK, hence
before the intake answers 202. Each request drains that socket before it looks at the copy (a poll when nothing
came). That order holds with Redis's `io-threads` at 1, its default and ours, while Redis holds no output for this
connection: it flushes the connections queued last first, so one still holding output (a PONG queued in the same
pass, or a socket full because the worker fell behind) gets its push after the writer's OK, by as long as Redis
takes to reach it. The PING below bounds that too.

What keeps that promise when the network or Redis misbehaves (docs/security-and-reliability.md):
- **A path that dies without a FIN** (a crashed host, a fail-over to a new address, a NAT forgetting the flow)
  looks like a quiet connection. A thread per worker PINGs the tracking connection every HEARTBEAT_S, and the
  copy answers only while Redis has answered a PING sent less than MAX_STALE_S ago: every write Redis finished
  before that PING was sent had its push ahead of the PONG. So an answer is at most MAX_STALE_S stale when the
  path dies (`serving.people_cache_stale_s`, 1 s by default; a host so loaded that a thread waits longer than that
  for its turn reads Redis meanwhile); then reads go to Redis, and a PING unanswered for MAX_STALE_S drops the
  connection (and the copy) and the thread connects again.
- **Pushes piling up in Redis** for a worker that serves no personal request: the same thread reads them as
  they come. And the connection SUBSCRIBEs to Redis's invalidation channel, which makes Redis count it as a
  pub/sub client: its output buffer falls under `client-output-buffer-limit pubsub` (Redis's default: cut off
  at 32 MiB, or after 60 s above 8 MiB), so a worker that stops reading (frozen, swapped out) is disconnected
  instead of filling Redis's memory, and reads through once it runs again.
- **A parser that cannot tell pushes from replies** (hiredis before 3.2 hands them over as plain replies, and
  they would be dropped unseen): the copy is never used; every request reads Redis.
Reads go to Redis, never to the copy, whenever it is not confirmed: before the connection is up (a gunicorn
worker connects it as it starts, serving/wsgi.py), after it breaks, when Redis refuses tracking or the
subscription (an ACL without them), and on Redis Cluster (the keys' slot can move to a node this connection does
not watch: the Store never builds a copy there).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import NamedTuple

import cachetools
import redis
from redis.utils import HIREDIS_AVAILABLE

from conf import redis_client
from conf.settings import ServingSettings
from schemas import redis_keys as rk
from schemas.items import MAGIC, Packed, unpack
from serving.sizes import ENTRY_OVERHEAD, held_bytes
from serving.versions import StoreUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.25  # a PING on the tracking connection this often
# The copy answers only while a PING sent less than this long ago has been answered (serving.people_cache_stale_s).
MAX_STALE_S = ServingSettings.model_fields["people_cache_stale_s"].default
# Subscribed, the tracking connection is a pub/sub client to Redis, with pub/sub's output-buffer limits. Nothing
# is published there (it is the channel RESP2 clients receive invalidations on when they ask for a redirect).
INVALIDATION_CHANNEL = "__redis__:invalidate"
PING_PREFIX = b"reco-people-ping "


def push_support() -> str | None:
    """None when this process's Redis client can tell pushes from replies, else why not."""
    if HIREDIS_AVAILABLE:
        import hiredis

        if not hasattr(hiredis, "PushNotification"):
            return f"hiredis {hiredis.__version__} hands Redis's pushes over as plain replies (3.2 or later needed)"
    return None


class PeopleCache:
    def __init__(
        self,
        client: redis.Redis,
        max_mb: float,
        retry_s: float = 1.0,
        heartbeat_s: float = HEARTBEAT_S,
        max_stale_s: float = MAX_STALE_S,
    ):
        """`client`: the reader, whose pool's settings (address, user, password, TLS, timeouts) the tracking
        connection copies. `max_mb`: the bound, in bytes this process holds for the copy."""
        self._pool = client.connection_pool
        self._entries: cachetools.LRUCache = cachetools.LRUCache(
            maxsize=int(max_mb * 2**20), getsizeof=lambda entry: entry[1]
        )
        self._retry_s, self._heartbeat_s, self._max_stale_s = retry_s, heartbeat_s, max_stale_s
        self._unsupported = push_support()
        if self._unsupported:
            log.warning("people's keys are read on every request: %s", self._unsupported)
        self._conn: redis.Connection | None = None
        self._confirmed_at = 0.0  # when the last PING that Redis answered was sent (monotonic)
        self._ping_sent_at: float | None = None  # the PING awaiting its answer
        self._watcher_pid = 0  # the process whose thread watches the connection (gunicorn forks)
        self._next_attempt = 0.0
        self._warned = False
        # Bumped by every invalidation handled: a read that overlapped one (the watcher drained it) is not kept,
        # since the push it needed may already be spent.
        self._epoch = 0
        self._lock = threading.RLock()
        self._readable = select.poll()  # the connection's socket, registered once per connection
        # A drain stopped inside a push, or the connection is new: the parser may hold what the socket no longer
        # shows, so the next drain asks the parser and not only the socket.
        self._parser_may_hold = True

    def get(self, user_id: int, load: Callable[[], tuple[object, int]]):
        """The person's values: from the copy when it is confirmed and holds them, else `load()` -> (values, their
        size as Redis sent them), kept when the copy is confirmed."""
        self.start()
        with self._lock:
            usable = self._drain() and self._confirmed()
            if usable:
                entry = self._entries.get(user_id)
                if entry is not None:
                    return entry[0]
            epoch = self._epoch
        value, _ = load()
        if usable:
            with self._lock:
                if self._epoch == epoch and self._confirmed():
                    try:
                        self._entries[user_id] = (value, held_bytes(value) + ENTRY_OVERHEAD)
                    except ValueError:  # larger than the whole copy: served, not kept
                        pass
        return value

    @property
    def tracked(self) -> bool:
        """Whether the copy may answer now (tracked, and confirmed within MAX_STALE_S)."""
        with self._lock:
            return self._drain() and self._confirmed()

    def held(self) -> int:
        """Bytes the copy counts against its bound."""
        return int(self._entries.currsize)

    def _confirmed(self) -> bool:
        return self._conn is not None and time.monotonic() - self._confirmed_at < self._max_stale_s

    # -- the watcher: one daemon thread per process, the only one that opens the connection

    def start(self) -> None:
        """Starts this process's watcher thread (once per process: after a fork the parent's is not ours)."""
        if self._watcher_pid == os.getpid() or self._unsupported:
            return
        with self._lock:
            if self._watcher_pid == os.getpid():
                return
            # After a fork the parent's connection and thread are not this process's: start afresh.
            self._conn, self._watcher_pid = None, os.getpid()
            self._entries.clear()
            threading.Thread(
                target=_watch, args=(weakref.ref(self), os.getpid()), name="people-copy", daemon=True
            ).start()

    def _watch_once(self):
        """One round of the watcher: connect when due, else handle what came and keep the heartbeat. Returns the
        socket to wait on (None: nothing to wait on yet)."""
        if self._conn is None:
            if time.monotonic() >= self._next_attempt:
                self._open()
            return None
        with self._lock:
            if self._conn is None:
                return None
            if self._drain() or self._conn is not None:
                self._heartbeat()
            return self._conn._sock if self._conn is not None else None

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at > self._max_stale_s:  # the path died without a word: start again
                log.warning(
                    "the tracking connection did not answer a PING for %.1f s; people's keys are read until it is back",
                    now - self._ping_sent_at,
                )
                self._close()
            return
        if self._conn is not None and now - self._confirmed_at >= self._heartbeat_s:
            try:
                self._conn.send_command("PING", PING_PREFIX + repr(now).encode(), check_health=False)
            except (redis.RedisError, OSError):
                self._close()
                return
            self._ping_sent_at = now

    def _drain(self) -> bool:
        """Handles every push and PING answer waiting on the connection; False when it is not up."""
        conn = self._conn
        if conn is None:
            return False
        if not self._parser_may_hold and not self._readable.poll(0):  # nothing came: one syscall, most requests
            return True
        try:
            while conn.can_read(0):
                reply = conn.read_response(push_request=True, timeout=0, disconnect_on_error=False)
                if isinstance(reply, bytes) and reply.startswith(PING_PREFIX):
                    self._confirmed_at = float(reply[len(PING_PREFIX) :])
                    self._ping_sent_at = None
        except redis.TimeoutError:  # the rest of a push is still on its way (Redis sends 64 KiB a pass)
            self._parser_may_hold = True
            return False  # read through this time; the parser keeps the part, the next drain finishes it
        except (redis.RedisError, OSError, ValueError):
            self._close()
            return False
        self._parser_may_hold = False  # read to the end: what comes next shows on the socket
        return True

    def _open(self) -> None:
        """Connect (outside the lock: it may wait for the connect timeout), then install under it."""
        conn = self._pool.connection_class(**{**self._pool.connection_kwargs, "protocol": 3})
        try:
            conn.connect()
            conn.send_command(
                "CLIENT",
                "TRACKING",
                "ON",
                "BCAST",
                *(part for prefix in rk.PERSON_PREFIXES for part in ("PREFIX", prefix)),
            )
            conn.read_response()
            conn.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            conn.read_response(push_request=True)
            opened_at = time.monotonic()  # every write Redis finishes from now on pushes to this connection
        except (redis.RedisError, OSError) as exc:
            conn.disconnect()
            self._next_attempt = time.monotonic() + self._retry_s
            if not self._warned:  # once per outage: e.g. an ACL without +client|tracking reads through for good
                log.warning("people's keys are read on every request: Redis tracking is off (%s)", exc)
                self._warned = True
            return
        # The parser hands each invalidation to this handler while the connection is drained.
        conn._parser.set_invalidation_push_handler(self._invalidate)
        readable = select.poll()
        readable.register(conn._sock, select.POLLIN)
        with self._lock:
            self._entries.clear()
            self._epoch += 1
            self._conn, self._confirmed_at, self._ping_sent_at, self._warned = conn, opened_at, None, False
            self._readable, self._parser_may_hold = readable, True

    def _close(self) -> None:
        """The connection broke or went quiet: pushes may have been lost, so the copy goes with it."""
        conn, self._conn = self._conn, None
        self._entries.clear()
        self._epoch += 1
        self._ping_sent_at = None
        self._next_attempt = time.monotonic() + self._retry_s
        if conn is not None:
            try:
                conn.disconnect()
            except (redis.RedisError, OSError):
                pass

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


def _watch(ref: weakref.ref, pid: int) -> None:
    """The watcher's loop: holds the copy only weakly, so a copy nobody uses any more takes its thread along."""
    while True:
        people = ref()
        if people is None or people._watcher_pid != pid:
            return
        try:
            sock = people._watch_once()
        except Exception:  # the watcher must outlive anything one round meets; the copy stays unconfirmed
            log.exception("the people copy's watcher failed a round")
            sock = None
        wait = people._heartbeat_s / 2
        del people
        if sock is None:
            time.sleep(0.05)
            continue
        try:
            select.select([sock], [], [], wait)
        except (OSError, ValueError, TypeError):  # closed under us by a request that found it broken
            pass


class Fresh(NamedTuple):
    """A person's list as the speed layer last folded it in: the version it was folded into, the ratings and
    clicks it counts, when, and the list (packed: schemas/items.py)."""

    version: str
    events: int
    updated_at: float
    packed: Packed


class SinceVersion(NamedTuple):
    """What is known of a person since the version was built."""

    excluded: frozenset[int]  # what they rated or dismissed through the intake: never shown
    fresh: Fresh | None  # their fold-in, when the speed layer has one
    latest: tuple[tuple[int, float], ...]  # their latest ratings (movie, rating), newest first


class People:
    """Reads what people did since the version (three keys per person that the intake and the speed layer
    change), through this worker's copy while Redis tracks it for us, else in one round trip."""

    def __init__(self, client: redis.Redis, copy_mb: float, max_stale_s: float = MAX_STALE_S):
        self.client = client
        cluster = redis_client.is_cluster(client)
        self.copy = PeopleCache(client, copy_mb, max_stale_s=max_stale_s) if copy_mb and not cluster else None

    def start(self) -> None:
        """Connects the copy now rather than on the first request, which would otherwise read Redis (and so would
        the next few) while the connection comes up: a gunicorn worker calls this once it is forked."""
        if self.copy is not None:
            self.copy.start()

    def since_version(self, user_id: int) -> SinceVersion:
        if self.copy is None:
            return self._read(user_id)[0]
        return self.copy.get(user_id, lambda: self._read(user_id))

    def excluded(self, user_id: int) -> frozenset[int]:
        return self.since_version(user_id).excluded

    def _read(self, user_id: int) -> tuple[SinceVersion, int]:
        """(what they did, its size in Redis's bytes)."""
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
        return SinceVersion(
            frozenset(int(m) for m in excluded), fresh_of(fresh), tuple((int(m), float(r)) for m, r in pairs)
        ), size


def fresh_of(raw: bytes | None) -> Fresh | None:
    """A fold-in list as stored (schemas/items.py, its header naming the version); a list an older speed layer
    wrote (JSON items) is ignored: the current one writes every person's list again when it starts."""
    if not raw or raw[0] != MAGIC:
        return None
    packed = unpack(raw)
    header = packed.header or {}
    return Fresh(header.get("version", ""), int(header.get("events", 0)), float(header.get("updated_at", 0)), packed)
