"""A lookup worker's full garbage collection with its near cache full (`make bench-serving` runs it).

A full pass of CPython's cyclic collector walks every object it tracks, and a worker is paused for the walk. The
near cache (serving/versions.py) holds people's lists as the API's items; this fills a worker's cache to its
bound (serving.cache_mb) with lists of the seeds' shape (50 movies with their `because`, 27,000 movies) and times
full passes, in a fresh interpreter whose imports are frozen as a gunicorn worker's are (serving/wsgi.py):
- the cache full of items as schemas.items makes them;
- the same full cache with each `because` as a nested dict, as items held it before
  (`--nested-because`): what schemas.items.because_field saves.
Redis is a dict here: what is measured is the worker's own objects. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import time
from statistics import median

import orjson

from schemas import items
from schemas import redis_keys as rk
from serving.versions import Versions

MOVIES, LIST_LENGTH, VERSION = 27_000, 50, "bench"


class DictRedis:
    """mget over a version's movie details; a person's list made on demand (seeded by the person's id)."""

    def __init__(self):
        prefix = rk.version_prefix(VERSION)
        self.prefix = prefix
        self.values = {prefix + "meta": orjson.dumps({"version": VERSION, "format": items.FORMAT})} | {
            f"{prefix}movie:{m}": orjson.dumps({"movie_id": m, "title": f"A Movie Called Number {m}",
                                                "year": 1950 + m % 70, "genres": ["Drama", "Comedy"][: 1 + m % 2]})
            for m in range(1, MOVIES + 1)}

    def mget(self, keys):
        return [self.values.get(key) or self.made(key) for key in keys]

    def made(self, key: str) -> bytes | None:
        if not key.startswith(self.prefix + "user:"):
            return None
        rng = random.Random(int(key.rsplit(":", 1)[1]))
        movies = rng.sample(range(1, MOVIES + 1), LIST_LENGTH)
        return items.pack(movies, sorted((rng.random() for _ in movies), reverse=True),
                          [rng.choice(movies) for _ in movies])


def full_pass_ms(rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return round(median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-mb", type=float, default=128)
    parser.add_argument("--nested-because", action="store_true")
    args = parser.parse_args()
    if args.nested_because:  # the layout before: {"movie_id", "title"} as a dict in every item
        items.because_field = lambda details: {"movie_id": details["movie_id"], "title": details["title"]}
    versions = Versions(DictRedis(), cache_mb=args.cache_mb)  # type: ignore[arg-type]
    gc.collect()
    gc.freeze()  # as serving/wsgi.py does once the worker is built
    cache = versions._cache
    assert cache is not None
    person = 0
    while cache.currsize < 0.98 * cache.maxsize:
        person += 1
        versions.get_in_version(VERSION, [rk.suffix("user", person)])
    gc.collect()  # the first pass after the lists came in untracks what it can
    print(json.dumps({"cache_mb": args.cache_mb, "lists": len(cache), "nested_because": args.nested_because,
                      "pause_ms": full_pass_ms(), "tracked": len(gc.get_objects())}))


if __name__ == "__main__":
    main()
