"""The one Redis client factory: how the publisher (jobs), its executors and the lookup service connect.

The URL carries the password and TLS (`redis://:pw@host:6379/0`, `rediss://...`). The reader gets short
timeouts so that a request never hangs on a dead Redis (503 instead); the writer waits longer, because a
pipelined batch of thousands of keys takes longer than one lookup. With `redis.cluster: true` the URL names one
seed node of a Redis Cluster and the client (redis-py's RedisCluster) finds the rest; key placement is in
schemas/redis_keys.py. `mget` below works on both.
"""
from __future__ import annotations

import re
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conf.settings import RedisSettings

WRITER_TIMEOUT_S = 30.0
WRITER_CONNECT_TIMEOUT_S = 5.0


def connect(url: str, *, cluster: bool = False, timeout: float, connect_timeout: float,
            max_connections: int | None = None, health_check_interval: int = 0) -> Any:
    options = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout,
               "health_check_interval": health_check_interval}
    if cluster:
        # Pools per node; a moved slot or a failed-over master is followed by the client itself.
        return redis.RedisCluster.from_url(url, max_connections=max_connections or 2**31, **options)
    # Never resent by the client: an XADD whose reply was lost would be appended twice. A caller that gets the
    # error decides (intake answers 503; its sender retries with an Idempotency-Key). tests/serving/test_intake.py
    # loses a reply between Redis and the service and checks the events were stored once.
    return redis.Redis.from_url(url, max_connections=max_connections, retry=Retry(NoBackoff(), 0), **options)


def writer(settings: RedisSettings) -> redis.Redis:
    """For publication, retention, rollback and the event archive (the jobs)."""
    return connect(settings.url, cluster=settings.cluster, timeout=WRITER_TIMEOUT_S,
                   connect_timeout=WRITER_CONNECT_TIMEOUT_S)


def reader(settings: RedisSettings, max_connections: int = 64) -> redis.Redis:
    """For lookups: the configured short timeouts, a bounded pool that reconnects by itself."""
    return connect(settings.url, cluster=settings.cluster, timeout=settings.socket_timeout,
                   connect_timeout=settings.connect_timeout, max_connections=max_connections,
                   health_check_interval=30)


def user_rules(user: str = "service") -> str:
    """The ACL rules of a least-privilege Redis user, as one line: conf/redis/service-user.acl (the lookup
    service) or conf/redis/speed-user.acl (the speed layer)."""
    from pathlib import Path
    text = (Path(__file__).parent / "redis" / f"{user}-user.acl").read_text()
    return next(line for line in text.splitlines() if line.strip() and not line.startswith("#"))


def is_cluster(client) -> bool:
    return isinstance(client, redis.RedisCluster)


def mget(client, keys: list) -> list:
    """MGET; on a cluster one per slot (a version's keys never change, so the lack of atomicity is harmless)."""
    return client.mget_nonatomic(keys) if is_cluster(client) else client.mget(keys)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)
