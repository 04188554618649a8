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
