"""The copy's handling of a push that arrives in parts (serving/people.py); the rest runs against a real Redis
in tests/serving/test_people.py."""
import redis

from serving.people import PeopleCache


class HalfAPush:
    """A tracking connection whose next push is only partly in: reading it times out once, then completes."""
    kwargs = {}

    def __init__(self, **_):
        self.pending, self.calls = 0, 0

    def connect(self):
        pass

    def send_command(self, *args):
        pass

    def read_response(self, push_request=False, **_):
        if not push_request:
            return b"OK"
        self.calls += 1
        if self.calls == 1:
            raise redis.TimeoutError("Timeout reading from socket")
        self.pending = 0
        self._parser.handler([b"invalidate", [b"reco:{events}:excluded:7"]])

    def can_read(self, timeout=0):
        return self.pending > 0

    class _parser:
        @classmethod
        def set_invalidation_push_handler(cls, handler):
            cls.handler = staticmethod(handler)


class Pool:
    connection_class, connection_kwargs = HalfAPush, {}


class Client:
    connection_pool = Pool()


def test_a_push_half_in_reads_through_keeps_the_connection_and_is_finished_next_time():
    people = PeopleCache(Client(), max_mb=1)
    assert people.get(7, lambda: ("before", 10)) == "before"  # kept: the connection is up
    conn = people._conn
    conn.pending = 1  # a push for person 7 has started to arrive
    assert people.get(7, lambda: ("after", 10)) == "after"  # not answered from the copy, nor kept
    assert people.tracked and people._conn is conn  # no reconnection for a push in flight
    assert people.get(7, lambda: ("latest", 10)) == "latest"  # the rest came: 7's entry is dropped, re-read
    assert people.get(7, lambda: ("unused", 10)) == "latest"
