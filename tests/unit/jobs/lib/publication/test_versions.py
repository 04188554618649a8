"""The publisher's own RESP packing of MSET (jobs.lib.publication.versions._packed_mset) is byte for byte what redis-py
sends for the same command (tests/jobs/test_publish.py writes through it into a real Redis)."""
import pyarrow as pa
import pytest
from redis.connection import PythonRespSerializer

from jobs.lib.publication.versions import _packed_mset
from jobs.lib.runtime.errors import JobError

KEYS = ["reco:v:1:user:7", "reco:v:1:movie:50", "reco:v:1:title:amélie"]
VALUES = ['[{"movie_id": 1, "title": "Amélie (2001)"}]', "x" * 7000, ""]


def redis_py_mset(keys, values) -> bytes:
    args = [arg for pair in zip(keys, values) for arg in pair]
    return b"".join(PythonRespSerializer(6000, lambda a: a.encode() if isinstance(a, str) else a).pack("MSET", *args))


def test_packing_matches_redis_py():
    packed = b"".join(bytes(part) for part in _packed_mset(pa.array(KEYS), pa.array(VALUES)))
    assert packed == redis_py_mset(KEYS, VALUES)


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string()])
def test_slices_and_large_strings_pack_only_their_own_rows(string_type):
    # a batch is a slice of a file's arrays: the body must start and end at the slice's own offsets
    keys, values = pa.array(["k0", *KEYS, "k9"], string_type), pa.array(["v0", *VALUES, "v9"], string_type)
    packed = b"".join(bytes(part) for part in _packed_mset(keys.slice(1, 3), values.slice(1, 3)))
    assert packed == redis_py_mset(KEYS, VALUES)


def test_a_null_value_is_refused():
    with pytest.raises(JobError, match="null"):
        _packed_mset(pa.array(KEYS), pa.array([VALUES[0], None, VALUES[2]]))
