"""The near cache keeps a version's values immutable, so Python's collector stops walking them."""
import gc

import orjson

from serving.store import frozen


def test_cached_values_are_immutable_and_leave_the_collectors_sight():
    raw = orjson.dumps([{"movie_id": m, "title": f"Movie {m} (1990)", "genres": ["Drama", "Comedy"], "score": 0.5}
                        for m in range(1, 51)])
    value = frozen(orjson.loads(raw))
    assert isinstance(value, tuple) and isinstance(value[0]["genres"], tuple)
    assert orjson.loads(orjson.dumps(value)) == orjson.loads(raw)  # the same JSON goes out
    gc.collect()  # a full pass untracks the genre tuples and the dicts holding only atomic values and them
    # (the outer tuple stays tracked: one object per cached value instead of about a hundred)
    assert not any(gc.is_tracked(item) or gc.is_tracked(item["genres"]) for item in value)
    assert frozen({"metrics": {"ndcg_at_10": 0.5}, "genres": ["Drama"]}) == {"metrics": {"ndcg_at_10": 0.5},
                                                                             "genres": ("Drama",)}


class CountingRedis:
    """Values by key; counts the keys read (the near cache's misses)."""

    def __init__(self, values: dict[str, bytes]):
        self.values, self.reads = values, 0

    def mget(self, keys):
        self.reads += len(keys)
        return [self.values.get(key) for key in keys]

    def register_script(self, script):
        return None


def test_the_near_cache_is_bounded_in_bytes_not_entries():
    from schemas import redis_keys as rk
    from serving.store import CACHE_ENTRY_OVERHEAD, Store
    value = orjson.dumps([{"movie_id": m, "title": "x" * 40} for m in range(50)])  # about 3 KB
    prefix = rk.version_prefix("v1")
    redis_ = CountingRedis({f"{prefix}user:{u}": value for u in range(1000)})
    store = Store(redis_, cache_mb=0.1)  # room for 100 KiB: about 30 such lists
    for user in range(1000):
        assert store.get_in_version("v1", [f"user:{user}"]) == [frozen(orjson.loads(value))]
    assert store._cache.currsize <= 0.1 * 2**20
    assert len(store._cache) == int(0.1 * 2**20 // (len(value) + CACHE_ENTRY_OVERHEAD))
    reads = redis_.reads
    store.get_in_version("v1", ["user:999", "user:998"])  # the latest are kept
    assert redis_.reads == reads
    store.get_in_version("v1", ["user:0"])  # the first was evicted
    assert redis_.reads == reads + 1
    huge = Store(CountingRedis({f"{prefix}user:1": b"[" + b"1," * 60_000 + b"1]"}), cache_mb=0.1)
    assert len(huge.get_in_version("v1", ["user:1"])[0]) == 60_001  # served even when larger than the cache
