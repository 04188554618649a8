"""Each worker's copy of what people did (serving/people.py) against a real redis-server: a change made by
another process is never missed by the next read, hits cost no round trip, and whenever the pushes may have
been lost the copy is dropped and reads go to Redis; a path that dies without a word, a worker left idle while
pushes pour in, and a worker frozen while they do, each done for real."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest
import redis

from schemas import items
from schemas import redis_keys as rk
from serving.event_log import AppendRequest, EventLog
from serving.people import People, PeopleCache
from serving.versions import StoreUnavailable
from tests.support import REPO, RedisServer, SilentProxy, wait_until

USER = 4242


def rating(movie: int, user: int = USER) -> dict:
    return {"user_id": user, "movie_id": movie, "type": "rating", "rating": 4.0, "ts": 1_700_000_000}


class Writer:
    """Another worker, writing as the intake does."""

    def __init__(self, client):
        self.log = EventLog(client)

    def append_events(self, events, recent_max, recent_ttl_s):
        return self.log.append(AppendRequest(events, recent_max, recent_ttl_s, minute=int(time.time() // 60)))


def tracking_client(admin: redis.Redis) -> dict:
    """The newest of the RESP3 connections with tracking on (flag t): the copy's."""
    return max((c for c in admin.client_list() if c.get("resp") == "3" and "t" in c["flags"]),
               key=lambda c: int(c["id"]))


def commands(admin: redis.Redis, name: str) -> int:
    """Calls of one command Redis has answered since it started."""
    return admin.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0)


@pytest.fixture
def stores(redis_server):
    """(a worker with the copy, another worker that writes as the intake does, an admin client). The copy may go
    30 s without a PING answered: these tests are about pushes, and a loaded host can keep the watcher's thread
    waiting past the 1 s bound, which its own test below covers."""
    admin = redis_server.client()
    admin.flushall()
    reader = People(redis.Redis.from_url(redis_server.url), copy_mb=1, max_stale_s=30)
    writer = Writer(redis.Redis.from_url(redis_server.url))
    reader.since_version(USER)  # starts the worker's watcher, which connects the copy
    wait_until(lambda: reader.copy.tracked, 5, what="the copy tracked")
    yield reader, writer, admin
    admin.flushall()


def test_another_workers_write_is_in_the_very_next_read(stores):
    reader, writer, admin = stores
    assert tuple(reader.since_version(USER)) == (frozenset(), None, ())
    # Redis writes the push before the writer's OK: 500 times over, the read right after the intake's script
    # returns already has the movie (the copy held the state before it each time).
    for movie in range(1, 501):
        writer.append_events([rating(movie)], recent_max=10, recent_ttl_s=60)
        assert movie in reader.since_version(USER)[0]
    writer.append_events([{"user_id": USER, "movie_id": 9999, "type": "dismiss", "ts": 1_700_000_000}],
                         recent_max=10, recent_ttl_s=60)
    assert 9999 in reader.excluded(USER)
    # Unchanged, the person is answered from the copy: no read reaches Redis.
    before = commands(admin, "smembers")
    for _ in range(50):
        assert len(reader.since_version(USER)[0]) == 501
    assert commands(admin, "smembers") == before


def test_the_speed_layers_list_an_expiry_and_a_flush_reach_the_copy(stores):
    reader, _, admin = stores
    assert reader.since_version(USER).fresh is None
    admin.set(rk.fresh(USER), items.pack([5], [0.5], [0], header={"version": "v1", "events": 1, "updated_at": 2.0}))
    assert reader.since_version(USER).fresh[:3] == ("v1", 1, 2.0)  # as the speed layer writes it
    admin.sadd(rk.excluded(USER), 7)
    admin.pexpire(rk.excluded(USER), 50)
    assert reader.since_version(USER)[0] == {7}
    # Nobody reads the key again: Redis's own expiry cycle deletes it, and that pushes too.
    wait_until(lambda: reader.since_version(USER)[0] == frozenset(), 5, what="the expired set leaves the copy")
    # A flush of the whole database is pushed as it runs, not with the replies: it reaches the copy a moment
    # after the flusher's OK rather than before it.
    admin.flushall()
    wait_until(lambda: tuple(reader.since_version(USER)) == (frozenset(), None, ()), 5,
               what="the flush empties the copy")


def test_a_change_landing_between_a_read_and_its_keeping_is_not_missed(redis_server):
    admin = redis_server.client()
    admin.delete("reco:{events}:excluded:1")
    people = PeopleCache(redis.Redis.from_url(redis_server.url), max_mb=1)
    people.get(1, lambda: (None, 0))
    wait_until(lambda: people.tracked, 5, what="the copy tracked")

    def read_then_someone_writes():
        value = frozenset(admin.smembers("reco:{events}:excluded:1"))
        admin.sadd("reco:{events}:excluded:1", b"5")  # lands after the read, before the copy keeps it
        return value, 0

    assert people.get(1, read_then_someone_writes) == frozenset()
    assert people.get(1, lambda: (frozenset(admin.smembers("reco:{events}:excluded:1")), 0)) == {b"5"}


def test_a_lost_tracking_connection_drops_the_copy_and_reads_until_it_is_back(stores):
    reader, writer, admin = stores
    admin.client_kill_filter(_id=tracking_client(admin)["id"])
    # Written while the pushes have nowhere to go: the next read must go to Redis.
    writer.append_events([rating(31)], recent_max=10, recent_ttl_s=60)
    assert reader.since_version(USER)[0] == {31}
    assert not reader.copy.tracked
    writer.append_events([rating(32)], recent_max=10, recent_ttl_s=60)
    assert reader.since_version(USER)[0] == {31, 32}  # still reading through until the next attempt
    wait_until(lambda: reader.copy.tracked, 3, what="tracked again")  # one attempt per second
    assert reader.since_version(USER)[0] == {31, 32}
    writer.append_events([rating(33)], recent_max=10, recent_ttl_s=60)
    assert reader.since_version(USER)[0] == {31, 32, 33}


def test_redis_down_is_unavailable_and_the_copy_comes_back_with_it(tmp_path):
    from tests.support import RedisServer
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        reader = People(client, copy_mb=1)
        server.client().sadd(rk.excluded(USER), 1)
        assert reader.since_version(USER)[0] == {1}
        wait_until(lambda: reader.copy.tracked, 5, what="tracked")
        server.stop()
        with pytest.raises(StoreUnavailable):
            reader.since_version(USER)
        server.start()  # empty: nothing was saved
        wait_until(lambda: reader.since_version(USER)[0] == frozenset(), 5, what="answers again")
        wait_until(lambda: reader.since_version(USER) is not None and reader.copy.tracked, 5, what="tracked again")
        server.client().sadd(rk.excluded(USER), 2)
        assert reader.since_version(USER)[0] == {2}
    finally:
        server.stop()


def test_a_path_that_dies_without_a_word_leaves_answers_at_most_a_second_stale(redis_server):
    """Before: the copy read "no bytes" as "nothing changed" and served the old exclusions for good."""
    admin = redis_server.client()
    admin.delete(rk.excluded(USER))
    proxy = SilentProxy(redis_server.port)
    try:
        reader = People(redis.Redis.from_url(proxy.url, socket_timeout=0.2, socket_connect_timeout=0.2), copy_mb=1)
        reader.since_version(USER)
        wait_until(lambda: reader.copy.tracked, 5, what="the copy tracked")
        assert reader.since_version(USER)[0] == frozenset()
        proxy.silence()  # every connection open now goes quiet, none is closed
        admin.sadd(rk.excluded(USER), 77)
        changed = time.monotonic()
        answers = []  # (seconds after the change, whether the answer has it; None: 503)
        while time.monotonic() - changed < 2.5:
            try:
                has = 77 in reader.since_version(USER)[0]
            except StoreUnavailable:  # a pooled read connection on the dead path times out once
                has = None
            answers.append((time.monotonic() - changed, has))
            time.sleep(0.01)
        stale = [seconds for seconds, has in answers if has is False]
        assert stale, "the copy answered nothing after the path died"
        assert max(stale) < 1.0 + 0.05, stale[-5:]  # the bound: docs/security-and-reliability.md
        assert all(has for seconds, has in answers if seconds > 1.3)
        # The watcher gave the dead connection up and tracks again on a new one.
        wait_until(lambda: reader.copy.tracked, 5, what="tracked again")
        admin.sadd(rk.excluded(USER), 78)  # its push comes through the proxy, on a path of its own
        wait_until(lambda: {77, 78} <= reader.since_version(USER)[0], 1, 0.01, what="the push on the new connection")
        assert reader.copy.tracked
    finally:
        proxy.close()


def test_a_worker_serving_nobody_reads_its_pushes_as_they_come(stores):
    """Before: pushes waited in Redis until the worker's next personal request, growing without a bound."""
    reader, _, admin = stores
    conn = reader.copy._conn
    largest = 0
    with admin.pipeline(transaction=False) as pipe:
        for round_ in range(20):  # 200,000 changes of people's keys (about 9 MB of pushes) while nobody asks
            for user in range(10_000):
                pipe.set(rk.fresh(1_000_000 + user), round_)
            pipe.execute()
            largest = max(largest, int(tracking_client(admin)["omem"]))
    assert largest < 2**20, largest  # what waits in Redis for this worker stays small
    wait_until(lambda: not conn.can_read(0), 5, what="the pushes read")  # and nothing waits in its socket
    assert reader.copy._conn is conn and reader.copy.tracked


FROZEN_WORKER = textwrap.dedent("""
    import json, sys, time
    import redis
    from serving.people import People
    store = People(redis.Redis.from_url(sys.argv[1], socket_timeout=2), copy_mb=1)
    user = int(sys.argv[2])
    store.since_version(user)
    while not store.copy.tracked:
        time.sleep(0.05)
    print("tracked", flush=True)
    for _ in sys.stdin:
        print(json.dumps(sorted(store.since_version(user).excluded)), flush=True)
""")


def test_a_frozen_worker_is_cut_off_before_its_pushes_fill_redis(tmp_path):
    """A worker that stops reading (SIGSTOP) while people's keys keep changing: Redis drops its connection at
    the pub/sub output-buffer limit instead of holding the pushes until `maxmemory` refuses every write (before:
    an idle tracker's buffer grew to 53 MiB and XADD was refused). Resumed, it answers right."""
    server = RedisServer(tmp_path / "redis").start(["--client-output-buffer-limit", "pubsub 1mb 256kb 1",
                                                      "--maxmemory-policy", "noeviction"])
    worker = subprocess.Popen([sys.executable, "-c", FROZEN_WORKER, server.url, str(USER)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        admin = server.client()
        assert worker.stdout.readline().strip() == "tracked"
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] + 4 * 2**20)
        os.kill(worker.pid, signal.SIGSTOP)
        with admin.pipeline(transaction=False) as pipe:
            for round_ in range(40):  # about 18 MB of pushes for the frozen worker; Redis's own data stays flat
                for user in range(10_000):
                    pipe.set(rk.fresh(1_000_000 + user), round_)
                assert all(pipe.execute())  # never refused for memory
        assert not [c for c in admin.client_list() if "t" in c["flags"]]  # the frozen tracker was cut off
        admin.sadd(rk.excluded(USER), 77)
        os.kill(worker.pid, signal.SIGCONT)
        worker.stdin.write("get\n")
        worker.stdin.flush()
        assert orjson.loads(worker.stdout.readline()) == [77]
    finally:
        worker.kill()
        worker.wait(10)
        server.stop()
