"""Each worker's copy of what people did (serving/people.py) against a real redis-server: a change made by
another process is never missed by the next read, hits cost no round trip, and whenever the pushes may have
been lost the copy is dropped and reads go to Redis."""
import time

import pytest
import redis

from schemas import redis_keys as rk
from serving.people import PeopleCache
from serving.store import Store
from tests.support import wait_until

USER = 4242


def rating(movie: int, user: int = USER) -> dict:
    return {"user_id": user, "movie_id": movie, "type": "rating", "rating": 4.0, "ts": 1_700_000_000}


def commands(admin: redis.Redis, name: str) -> int:
    """Calls of one command Redis has answered since it started."""
    return admin.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0)


@pytest.fixture
def stores(redis_server):
    """(a worker with the copy, another worker that writes as the intake does, an admin client)."""
    admin = redis_server.client()
    admin.flushall()
    reader = Store(redis.Redis.from_url(redis_server.url), people_cache_mb=1)
    writer = Store(redis.Redis.from_url(redis_server.url))
    yield reader, writer, admin
    admin.flushall()


def test_another_workers_write_is_in_the_very_next_read(stores):
    reader, writer, admin = stores
    assert reader.personal(USER) == (frozenset(), None, ())
    assert reader.people.tracked
    # Redis writes the push before the writer's OK: 500 times over, the read right after the intake's script
    # returns already has the movie (the copy held the state before it each time).
    for movie in range(1, 501):
        writer.append_events([rating(movie)], recent_max=10, recent_ttl_s=60)
        assert movie in reader.personal(USER)[0]
    writer.append_events([{"user_id": USER, "movie_id": 9999, "type": "dismiss", "ts": 1_700_000_000}],
                         recent_max=10, recent_ttl_s=60)
    assert 9999 in reader.excluded(USER)
    # Unchanged, the person is answered from the copy: no read reaches Redis.
    before = commands(admin, "smembers")
    for _ in range(50):
        assert len(reader.personal(USER)[0]) == 501
    assert commands(admin, "smembers") == before


def test_the_speed_layers_list_an_expiry_and_a_flush_reach_the_copy(stores):
    reader, _, admin = stores
    assert reader.personal(USER)[1] is None
    admin.set(rk.fresh(USER), b'{"version": "v1", "items": [], "events": 1}')  # as the speed layer writes it
    assert reader.personal(USER)[1] == {"version": "v1", "items": (), "events": 1}
    admin.sadd(rk.excluded(USER), 7)
    admin.pexpire(rk.excluded(USER), 50)
    assert reader.personal(USER)[0] == {7}
    # Nobody reads the key again: Redis's own expiry cycle deletes it, and that pushes too.
    wait_until(lambda: reader.personal(USER)[0] == frozenset(), 5, what="the expired set leaves the copy")
    # A flush of the whole database is pushed as it runs, not with the replies: it reaches the copy a moment
    # after the flusher's OK rather than before it.
    admin.flushall()
    wait_until(lambda: reader.personal(USER) == (frozenset(), None, ()), 5, what="the flush empties the copy")


def test_a_change_landing_between_a_read_and_its_keeping_is_not_missed(redis_server):
    admin = redis_server.client()
    admin.delete("reco:{events}:excluded:1")
    people = PeopleCache(redis.Redis.from_url(redis_server.url), max_mb=1)

    def read_then_someone_writes():
        value = frozenset(admin.smembers("reco:{events}:excluded:1"))
        admin.sadd("reco:{events}:excluded:1", b"5")  # lands after the read, before the copy keeps it
        return value, 0

    assert people.get(1, read_then_someone_writes) == frozenset()
    assert people.get(1, lambda: (frozenset(admin.smembers("reco:{events}:excluded:1")), 0)) == {b"5"}


def test_a_lost_tracking_connection_drops_the_copy_and_reads_until_it_is_back(stores):
    reader, writer, admin = stores
    reader.personal(USER)
    # This reader's tracking connection: the newest of the RESP3 ones with tracking on (flag t).
    tracking = max((c for c in admin.client_list() if c.get("resp") == "3" and "t" in c["flags"]),
                   key=lambda c: int(c["id"]))
    admin.client_kill_filter(_id=tracking["id"])
    # Written while the pushes have nowhere to go: the next read must go to Redis.
    writer.append_events([rating(31)], recent_max=10, recent_ttl_s=60)
    assert reader.personal(USER)[0] == {31}
    assert not reader.people.tracked
    writer.append_events([rating(32)], recent_max=10, recent_ttl_s=60)
    assert reader.personal(USER)[0] == {31, 32}  # still reading through until the next attempt
    time.sleep(1.1)  # one attempt per second
    assert reader.personal(USER)[0] == {31, 32} and reader.people.tracked
    writer.append_events([rating(33)], recent_max=10, recent_ttl_s=60)
    assert reader.personal(USER)[0] == {31, 32, 33}


def test_redis_down_is_unavailable_and_the_copy_comes_back_with_it(tmp_path):
    from serving.store import StoreUnavailable
    from tests.support import RedisServer
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        reader = Store(client, people_cache_mb=1)
        server.client().sadd(rk.excluded(USER), 1)
        assert reader.personal(USER)[0] == {1} and reader.people.tracked
        server.stop()
        with pytest.raises(StoreUnavailable):
            reader.personal(USER)
        server.start()  # empty: nothing was saved
        wait_until(lambda: reader.personal(USER)[0] == frozenset(), 5, what="answers again")
        wait_until(lambda: reader.personal(USER) is not None and reader.people.tracked, 5, what="tracked again")
        server.client().sadd(rk.excluded(USER), 2)
        assert reader.personal(USER)[0] == {2}
    finally:
        server.stop()
