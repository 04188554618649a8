"""The one Redis client factory: how the publisher (jobs), its executors and the lookup service connect.

The URL carries the password and TLS (`redis://:pw@host:6379/0`, `rediss://...`). The reader gets short
timeouts so that a request never hangs on a dead Redis (503 instead); the writer waits longer, because a
pipelined batch of thousands of keys takes longer than one lookup.
"""
from __future__ import annotations

import re

import redis

from conf.settings import RedisSettings

WRITER_TIMEOUT_S = 30.0
WRITER_CONNECT_TIMEOUT_S = 5.0


def connect(url: str, *, timeout: float, connect_timeout: float, max_connections: int | None = None,
            health_check_interval: int = 0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                                max_connections=max_connections, health_check_interval=health_check_interval)


def writer(url: str) -> redis.Redis:
    """For publication, retention and rollback (the jobs and their executors)."""
    return connect(url, timeout=WRITER_TIMEOUT_S, connect_timeout=WRITER_CONNECT_TIMEOUT_S)


def reader(settings: RedisSettings, max_connections: int = 64) -> redis.Redis:
    """For lookups: the configured short timeouts, a bounded pool that reconnects by itself."""
    return connect(settings.url, timeout=settings.socket_timeout, connect_timeout=settings.connect_timeout,
                   max_connections=max_connections, health_check_interval=30)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)
