"""A worker's view of the versions (serving/versions.py) on a scripted Redis: compact lists decoded into the
API's items with each movie's details read once per version, a version published as JSON (before the compact
format) still answered, the near cache bounded in the bytes it holds and out of the collector's sight."""
import gc

import orjson

from schemas import items
from schemas import redis_keys as rk
from serving.versions import Versions, frozen

DETAILS = {m: {"movie_id": m, "title": f"Movie {m}", "year": 1990 + m % 10, "genres": ["Drama"], "n_ratings": m,
               "mean_rating": 3.5} for m in range(1, 201)}


class CountingRedis:
    """Values by key; counts the keys read (the caches' misses)."""

    def __init__(self, values: dict[str, bytes]):
        self.values, self.reads = values, 0

    def mget(self, keys):
        self.reads += len(keys)
        return [self.values.get(key) for key in keys]


def version_keys(version: str, lists: dict[str, bytes], format_: int | None = items.FORMAT) -> dict[str, bytes]:
    prefix = rk.version_prefix(version)
    meta = {"version": version, "run_id": "r"} | ({"format": format_} if format_ else {})
    return {prefix + "meta": orjson.dumps(meta), **{prefix + k: v for k, v in lists.items()},
            **{f"{prefix}movie:{m}": orjson.dumps(d) for m, d in DETAILS.items()}}


def test_a_compact_list_is_answered_as_the_api_items_and_a_json_version_as_it_was_stored():
    packed = items.pack([3, 1, 2], [0.9, 0.5, 0.25], [2, 0, 1])
    as_json = orjson.dumps([{"movie_id": 3, "title": "Movie 3", "year": 1993, "genres": ["Drama"], "score": 0.9}])
    redis_ = CountingRedis(version_keys("v2", {"user:7": packed, "seen:7": items.pack([4, 5])})
                           | version_keys("v1", {"user:7": as_json, "seen:7": b"[4, 5]"}, format_=None))
    versions = Versions(redis_, cache_mb=1)
    shown, seen = versions.get_in_version("v2", ["user:7", "seen:7"])
    assert [i["movie_id"] for i in shown] == [3, 1, 2] and seen == (4, 5)
    assert orjson.loads(orjson.dumps(shown[0])) == {"movie_id": 3, "title": "Movie 3", "year": 1993,
                                                    "genres": ["Drama"], "score": 0.9,
                                                    "because": {"movie_id": 2, "title": "Movie 2"}}
    assert "because" not in shown[1]  # 0: no movie to name
    assert versions.get_in_version("v1", ["user:7", "seen:7"]) == [frozen(orjson.loads(as_json)), (4, 5)]
    reads = redis_.reads
    versions.get_in_version("v2", ["user:8", "similar:1"])  # missing: None, the details already read
    assert redis_.reads == reads + 2


def test_cached_values_are_immutable_and_leave_the_collectors_sight():
    """A full collection walks every object the collector tracks: a worker's near cache of lists, items and
    their `because`, must not be among them, or each full pass grows with the cache (tens of ms at 128 MB)."""
    packed = items.pack(range(1, 51), [0.5] * 50, range(51, 101))
    raw = orjson.dumps([{"movie_id": m, "title": f"Movie {m} (1990)", "genres": ["Drama", "Comedy"], "score": 0.5}
                        for m in range(1, 51)])
    versions = Versions(CountingRedis(version_keys("v2", {"user:7": packed})
                                      | version_keys("v1", {"user:7": raw}, format_=None)), cache_mb=1)
    compact, as_json = versions.get_in_version("v2", ["user:7"])[0], versions.get_in_version("v1", ["user:7"])[0]
    assert isinstance(compact, tuple) and isinstance(compact[0]["genres"], tuple) and "because" in compact[0]
    assert orjson.loads(orjson.dumps(as_json)) == orjson.loads(raw)  # the same JSON goes out
    gc.collect()  # a full pass untracks the tuples of atomic values, then the dicts holding only those
    # (the outer tuple stays tracked: one object per cached value instead of about a hundred)
    for value in (compact, as_json):
        assert not any(gc.is_tracked(item) or gc.is_tracked(item["genres"]) for item in value)


def test_the_near_cache_is_bounded_in_the_bytes_it_holds():
    import tracemalloc
    lists = {f"user:{u}": items.pack(range(1, 51), [0.5] * 50, range(51, 101)) for u in range(1000)}
    redis_ = CountingRedis(version_keys("v1", lists))
    versions = Versions(redis_, cache_mb=0.5)
    versions.movies("v1", range(1, 201))  # the movie details first: what the bound counts is the lists
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for user in range(1000):
        assert len(versions.get_in_version("v1", [f"user:{user}"])[0]) == 50
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert versions._cache.currsize <= 0.5 * 2**20 and len(versions._cache) < 1000
    assert held < 1.3 * 0.5 * 2**20, held  # joined items share their details' strings: the count errs high
    reads = redis_.reads
    versions.get_in_version("v1", ["user:999", "user:998"])  # the latest are kept
    assert redis_.reads == reads
    versions.get_in_version("v1", ["user:0"])  # the first was evicted
    assert redis_.reads == reads + 1


def test_a_fold_in_list_is_joined_once_and_kept_under_its_contents():
    versions = Versions(CountingRedis(version_keys("v1", {}) | version_keys("v2", {})), cache_mb=1)

    def fold_in(ids, because, version="v1", events=1):  # as the people copy reads it after each rating
        return items.unpack(items.pack(ids, [0.9, 0.5], because, {"version": version, "events": events}))

    first = versions.fresh_items("v1", fold_in([3, 1], [2, 0]))
    assert orjson.loads(orjson.dumps(first)) == [
        {"movie_id": 3, "title": "Movie 3", "year": 1993, "genres": ["Drama"], "score": 0.9,
         "because": {"movie_id": 2, "title": "Movie 2"}},
        {"movie_id": 1, "title": "Movie 1", "year": 1991, "genres": ["Drama"], "score": 0.5}]
    assert versions.fresh_items("v1", fold_in([3, 1], [2, 0], events=2)) is first  # the same list read again
    assert [i["movie_id"] for i in versions.fresh_items("v1", fold_in([1, 3], [0, 2]))] == [1, 3]  # rated again
    assert versions.fresh_items("v2", fold_in([3, 1], [2, 0], "v2")) is not first  # another version's details
    uncached = Versions(CountingRedis(version_keys("v1", {})), cache_mb=0)
    assert uncached.fresh_items("v1", fold_in([3, 1], [2, 0])) == uncached.fresh_items("v1", fold_in([3, 1], [2, 0]))
