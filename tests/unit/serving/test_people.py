"""The copy's own rules (serving/people.py) on a scripted connection: a push that arrives in parts, a heartbeat
gone quiet, a parser that cannot see pushes, and the bound held to real memory. The same copy against a real
Redis, its network path and its buffers: tests/serving/test_people.py."""
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from serving import people as people_module
from serving.people import PING_PREFIX, PeopleCache

REPO = Path(__file__).resolve().parents[3]


class ScriptedConnection:
    """A tracking connection whose replies the test hands in (`arrive`): `queue` holds what Redis has sent, and
    its socket is readable while anything waits there, as a real one would be. A None in it is the first part of
    a push: reading it times out, and the parser holds that part (`holding`) until the next reply comes."""

    def __init__(self, **_):
        self.queue, self.sent, self.holding = [], [], False
        self._sock, self._peer = socket.socketpair()
        self._sock.setblocking(False)

    def arrive(self, *replies):
        self.queue += replies
        self._peer.send(b"r")

    def connect(self):
        pass

    def disconnect(self):
        self.closed = True

    def send_command(self, *args, **_):
        self.sent.append(args)
        if args[0] == "PING":
            self.pings = getattr(self, "pings", []) + [args[1]]

    def read_response(self, push_request=False, **_):
        if not push_request:
            return b"OK"  # CLIENT TRACKING
        if not self.queue:
            if self.holding:
                raise redis.TimeoutError("Timeout reading from socket")
            return [b"subscribe", b"__redis__:invalidate", 1]
        item = self.queue.pop(0)
        if not self.queue:  # all read: the socket shows nothing more
            self._sock.recv(4096)
        self.holding = item is None
        if item is None:
            raise redis.TimeoutError("Timeout reading from socket")
        if item[0] == b"invalidate":
            return self._parser.handler(item)
        return item

    def can_read(self, timeout=0):
        return bool(self.queue) or self.holding  # as redis-py's: data on the socket or held by the parser

    class _parser:  # noqa: N801 - the attribute redis-py's connection has
        @classmethod
        def set_invalidation_push_handler(cls, handler):
            cls.handler = staticmethod(handler)


class Pool:
    connection_class, connection_kwargs = ScriptedConnection, {}


class Client:
    connection_pool = Pool()


@pytest.fixture
def people(monkeypatch):
    """A copy whose watcher the test drives by hand (`_watch_once`), connected."""
    monkeypatch.setattr(PeopleCache, "start", lambda self: None)
    copy = PeopleCache(Client(), max_mb=1)
    copy._watch_once()
    assert copy._conn is not None
    return copy


def answer_pings(conn):
    conn.arrive(*[PING_PREFIX + token[len(PING_PREFIX):] for token in getattr(conn, "pings", [])])
    conn.pings = []


def test_a_push_half_in_reads_through_keeps_the_connection_and_is_finished_next_time(people):
    assert people.get(7, lambda: ("before", 10)) == "before"  # kept: the connection is up
    conn = people._conn
    conn.arrive(None, [b"invalidate", [b"reco:{events}:excluded:7"]])  # a push for 7 has started to arrive
    assert people.get(7, lambda: ("after", 10)) == "after"  # not answered from the copy, nor kept
    assert people.tracked and people._conn is conn  # no reconnection for a push in flight; the rest came
    assert people.get(7, lambda: ("latest", 10)) == "latest"  # 7's entry was dropped: read again
    assert people.get(7, lambda: ("unused", 10)) == "latest"


def test_a_push_whose_rest_has_not_come_keeps_the_copy_from_answering_though_the_socket_is_empty(people):
    """Each drain first asks the socket whether anything came (one poll): that is not enough while the parser
    holds the first part of a push, which the socket no longer shows."""
    assert people.get(7, lambda: ("before", 10)) == "before"
    conn = people._conn
    conn.arrive(None)  # the first part of a push for 7, read off the socket
    assert people.get(7, lambda: ("after", 10)) == "after"
    assert people.get(7, lambda: ("still", 10)) == "still"  # the socket is empty; the part is still held
    conn.arrive([b"invalidate", [b"reco:{events}:excluded:7"]])  # its rest
    assert people.get(7, lambda: ("latest", 10)) == "latest"
    assert people.get(7, lambda: ("unused", 10)) == "latest"  # the copy answers again


def test_the_copy_answers_only_while_a_recent_ping_was_answered(people, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(people_module.time, "monotonic", lambda: clock[0])
    people._confirmed_at = clock[0]
    people.get(1, lambda: ("kept", 1))
    conn = people._conn
    clock[0] += 0.3
    people._watch_once()  # a heartbeat is due: one PING goes out
    assert len(conn.pings) == 1
    answer_pings(conn)
    clock[0] += 0.5
    assert people.get(1, lambda: ("read", 1)) == "kept"  # the answer confirmed the state as of 0.3 s ago
    clock[0] += 0.6  # the path went quiet: the last confirmation is 1.1 s old and the next PING goes unanswered
    people._watch_once()
    assert people.get(1, lambda: ("read through", 1)) == "read through"
    assert not people.tracked and people._conn is conn  # not answered from the copy, the connection kept
    clock[0] += 1.01  # that PING unanswered for over a second: the connection and the copy go
    people._watch_once()
    assert people._conn is None and people.held() == 0 and conn.closed


def test_a_parser_that_cannot_see_pushes_never_lets_the_copy_answer(monkeypatch):
    monkeypatch.setattr(people_module, "push_support", lambda: "hiredis 3.1.0 hands Redis's pushes over as "
                                                               "plain replies (3.2 or later needed)")
    copy = PeopleCache(Client(), max_mb=1)
    for value in ("first", "second"):
        assert copy.get(7, lambda: (value, 1)) == value
    assert copy._conn is None and copy._watcher_pid == 0 and not copy.tracked


def test_the_push_support_check_knows_hiredis_before_3_2(monkeypatch):
    import hiredis
    assert people_module.push_support() is None  # the pinned hiredis
    monkeypatch.delattr(hiredis, "PushNotification")
    assert "3.2 or later" in people_module.push_support()


MEASURED = textwrap.dedent("""
    import sys, tracemalloc
    from schemas import items
    from serving.people import PeopleCache, SinceVersion, fresh_of
    from tests.unit.serving.test_people import Client
    exclusions = int(sys.argv[1])
    PeopleCache.start = lambda self: None
    people = PeopleCache(Client(), max_mb=1)
    people._watch_once()
    fresh = items.pack(range(1000, 1050), [0.5] * 50, range(2000, 2050),
                       header={"version": "v1", "events": 3, "updated_at": 1.5})

    def person(user):  # decoded anew for each read, as People decodes what Redis sent
        return SinceVersion(frozenset(int(m) for m in map(str, range(1000, 1000 + exclusions))),
                            fresh_of(fresh) if exclusions else None,
                            ((user, 4.0),) if exclusions else ()), 0
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    people_read = 10_000 if exclusions == 0 else 500
    for user in range(100_000, 100_000 + people_read):
        people.get(user, lambda: person(user))
    held = tracemalloc.get_traced_memory()[0] - before
    print(held, people._entries.maxsize, len(people._entries), people_read)
""")


@pytest.mark.parametrize("exclusions", [0, 300])
def test_the_bound_holds_in_real_memory(exclusions):
    """Before, the bound counted the values' bytes as Redis sent them: 8 MiB took 24.7 MiB with anonymous users
    and 99 MiB with people holding 300 exclusions. Measured in a fresh interpreter: no other thread allocating."""
    out = subprocess.run([sys.executable, "-c", MEASURED, str(exclusions)], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    held, bound, kept, read = map(int, out.split())
    assert kept < read  # the bound was reached
    assert 0.7 * bound < held < 1.1 * bound, (held, bound)  # held within the bound, and the bound not idle
