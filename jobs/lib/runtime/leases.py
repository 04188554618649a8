"""Leases: a named lock in Redis that expires unless its holder renews it, with a fencing token.

What must not overlap (the event archive of a stream, publication) runs under a lease. A holder that crashed
blocks nobody for longer than the lease's time to live; a holder that stalled past it (a long GC pause, a frozen
VM) finds its token superseded and every fenced step refuses it: `check()` before a step that cannot be fenced in
Redis (a file commit), the token compared inside the same Lua script as the write where the write is in Redis
(publication's flip). Tokens only grow (INCR), so a newer holder always has the larger one.

    reco:{ctl}:lease:<name>   string  "<token> <holder>", with the lease's expiry
    reco:{ctl}:fence:<name>   int     the last token handed out
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis

from jobs.lib.runtime.errors import JobError, TransientJobError
from schemas import redis_keys as rk

log = logging.getLogger("reco.leases")

# The one check of a fencing token, for every script that must act only while the lease is still its holder's
# (renewal and release below, publication's flip): KEYS[1] is the lease, ARGV[1] the token; `held` is what it holds.
FENCE = """
local held = redis.call('GET', KEYS[1])
local ours = held and string.sub(held, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' '
"""
# ARGV[2] milliseconds to live. 1 if still ours (and extended), else 0.
_RENEW = FENCE + """
if ours then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# Deletes the lease only if it is still ours.
_RELEASE = FENCE + """
if ours then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _describe(held: bytes) -> str:
    token, _, holder = held.decode().partition(" ")
    return f"{holder} (token {token})"


class LeaseLost(JobError):
    """This holder's lease expired and another holder has (or may have) taken it: stop without writing."""


def default_holder(run_id: str | None = None) -> str:
    """Who holds a lease, as people read it in a refusal: run id, host and process."""
    return f"{run_id or 'manual'}@{socket.gethostname()}:{os.getpid()}"


class Lease:
    """`with Lease(client, "publish", holder):` holds the lease named `name` for the block, renewed in the
    background every ttl_s / 3. Taking it waits up to `wait_s` for the holder to finish, then stops with a
    TransientJobError (exit 3: the DAG retries later) naming the holder. `token` is this holder's fencing token."""

    def __init__(self, client: redis.Redis, name: str, holder: str, ttl_s: float = 30.0, wait_s: float = 0.0):
        self.client, self.name, self.holder = client, name, holder
        self.ttl_ms, self.wait_s = int(ttl_s * 1000), wait_s
        self.key, self.fence = rk.lease(name), rk.fence(name)
        self.token: int | None = None
        self._renew, self._release = client.register_script(_RENEW), client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._lost = False
        self._thread: threading.Thread | None = None

    def acquire(self) -> int:
        deadline = time.monotonic() + self.wait_s
        while True:
            token = int(self.client.incr(self.fence))
            if self.client.set(self.key, f"{token} {self.holder}", nx=True, px=self.ttl_ms):
                self.token = token
                log.info("lease %s taken by %s (token %d)", self.name, self.holder, token)
                return token
            held, remaining_ms = self.client.get(self.key), self.client.pttl(self.key)
            if time.monotonic() >= deadline:
                raise TransientJobError(f"{self.name} is held by {_describe(held) if held else 'someone'} "
                               f"(lease expires in {max(remaining_ms, 0) / 1000:.0f} s): another run is doing "
                               f"it{f'; waited {self.wait_s:.0f} s' if self.wait_s else ''}. Try again when it ends")
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))

    def check(self) -> None:
        """Renew now and raise LeaseLost unless the lease is still this holder's: call it right before a step
        that must not happen twice."""
        if self._lost or not self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            self._lost = True
            held = self.client.get(self.key)
            now = f"is held by {_describe(held)}" if held else "may be taken by another run"
            raise LeaseLost(f"{self.name}: the lease of {self.holder} (token {self.token}) expired and {now}; "
                            "nothing more is written by this run")

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.token is not None and not self._lost:
            try:
                self._release(keys=[self.key], args=[self.token])
            except redis.RedisError as exc:  # it expires by itself
                log.warning("lease %s not released (%s): it expires in %d ms", self.name, exc, self.ttl_ms)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
                    self._lost = True
                    log.error("lease %s lost by %s (token %d)", self.name, self.holder, self.token)
                    return
            except redis.RedisError as exc:  # a blip: the next beat tries again before the lease runs out
                log.warning("lease %s not renewed: %s", self.name, exc)

    def __enter__(self) -> Lease:
        self.acquire()
        self._thread = threading.Thread(target=self._keep_alive, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
