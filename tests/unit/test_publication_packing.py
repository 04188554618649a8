"""The publisher's own RESP packing of MSET (jobs.lib.publication._packed_mset) is byte for byte what redis-py
sends for the same command (tests/test_publish.py writes through it into a real Redis)."""
import pyarrow as pa
import pytest
from redis.connection import PythonRespSerializer

from jobs.lib.errors import JobError
from jobs.lib.publication import _packed_mset

KEYS = ["reco:v:1:user:7", "reco:v:1:movie:50", "reco:v:1:title:amélie"]
VALUES = ['[{"movie_id": 1, "title": "Amélie (2001)"}]', "x" * 7000, ""]


def test_packing_matches_redis_py():
    packed = b"".join(bytes(part) for part in _packed_mset(pa.array(KEYS), pa.array(VALUES)))
    args = [arg for pair in zip(KEYS, VALUES) for arg in pair]
    expected = b"".join(PythonRespSerializer(6000, lambda a: a.encode() if isinstance(a, str) else a)
                        .pack("MSET", *args))
    assert packed == expected


def test_a_null_value_is_refused():
    with pytest.raises(JobError, match="null"):
        _packed_mset(pa.array(KEYS), pa.array([VALUES[0], None, VALUES[2]]))
