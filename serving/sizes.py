"""What a worker's caches count against their bounds: the memory a decoded value holds in this process."""

from __future__ import annotations

import sys

# A cache's own bookkeeping per entry beyond its value (measured with tracemalloc: the LRU's node and its two
# dicts' tables, the key, the entry's tuple): tests/unit/serving/test_people.py holds the bound to real memory.
ENTRY_OVERHEAD = 500


def held_bytes(value) -> int:
    """Memory a decoded value holds in this process: its objects, without those it shares (small ints, None,
    empty tuples, and the field names orjson decodes once for every value)."""
    if value is None or value == () or isinstance(value, bool) or (isinstance(value, int) and -5 <= value <= 256):
        return 0
    size = sys.getsizeof(value)
    if isinstance(value, (tuple, frozenset, list, set)):
        size += sum(held_bytes(item) for item in value)
    elif isinstance(value, dict):
        size += sum(held_bytes(item) for item in value.values())
    return size
